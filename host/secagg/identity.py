"""Device identity in SecAgg+, host side: the statements devices sign
(``firmware/include/tfd/secagg_client.h``), survivor bitmaps over the fleet
manifest, and the identity of the host's reference client (client.py).

* ``adv_digest``: H_adv = H("tinyfed/v1/sa-adv" || fleet_id || u32 round || u32 id
  || u16 t || u16 k || u32 dp_z_milli || k x u32 neighbour ids || share_pk || mask_pk)
* ``survivors_digest``: H_surv = H("tinyfed/v1/sa-survivors" || fleet_id || u32 round
  || u16 len || bitmap)

with H = BLAKE2b-256, integers little endian; a signature is EdDSA (Monocypher's
crypto_eddsa, tinyfed_toolchain.image.eddsa) over the 32 bytes of H.  Bit i of
a survivor bitmap (byte i // 8, bit i % 8) is manifest entry i.

The host never needs a device key or the fleet key: it relays signatures.  An
``ephemeral_fleet`` (a fleet key that exists only in memory) serves tests and
simulations, where the same process plays the user who provisions the devices.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

from tinyfed_toolchain.facts.c_headers import string_defines
from tinyfed_toolchain.image import eddsa
from tinyfed_toolchain.image.provision import Fleet, FleetKey, Manifest, make_fleet

_DOMAINS = string_defines("secagg_client.h")  # firmware/include/tfd/secagg_client.h
DOMAIN_ADV = _DOMAINS["TFD_SA_DOMAIN_ADV"]
DOMAIN_SURVIVORS = _DOMAINS["TFD_SA_DOMAIN_SURVIVORS"]


def adv_digest(fleet_id: bytes, round_id: int, device_id: int, threshold: int, neighbours: Sequence[int],
               share_pk: bytes, mask_pk: bytes, dp_z_milli: int = 0) -> bytes:
    """What a device signs in ADVERTISE_KEYS (the round's distributed-DP noise multiplier x 1000 too)."""
    return eddsa.digest(DOMAIN_ADV, fleet_id, struct.pack("<IIHHI", round_id, device_id, threshold, len(neighbours),
                                                          dp_z_milli),
                        b"".join(struct.pack("<I", v) for v in neighbours), share_pk, mask_pk)


def survivors_digest(fleet_id: bytes, round_id: int, bitmap: bytes) -> bytes:
    """What a device signs in SURVIVORS."""
    return eddsa.digest(DOMAIN_SURVIVORS, fleet_id, struct.pack("<IH", round_id, len(bitmap)), bitmap)


def bitmap(manifest_ids: Sequence[int], members: Iterable[int]) -> bytes:
    """The survivor bitmap of ``members`` over the manifest's order."""
    index = {d: i for i, d in enumerate(manifest_ids)}
    out = bytearray((len(manifest_ids) + 7) // 8)
    for m in members:
        i = index[m]
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def bitmap_members(manifest_ids: Sequence[int], bm: bytes) -> set[int]:
    return {d for i, d in enumerate(manifest_ids) if i // 8 < len(bm) and (bm[i // 8] >> (i % 8)) & 1}


@dataclass(frozen=True)
class DeviceIdentity:
    """One device's key and its fleet manifest (what a device's identity record holds)."""

    device_id: int
    seed: bytes
    manifest: Manifest

    @property
    def fleet_id(self) -> bytes:
        return self.manifest.fleet_id

    def sign(self, digest: bytes) -> bytes:
        sk, _ = eddsa.keypair(self.seed)
        return eddsa.sign(sk, digest)

    def verify(self, signer: int, signature: bytes, digest: bytes) -> bool:
        """``signature`` is manifest device ``signer``'s signature of ``digest``."""
        try:
            pk = self.manifest.public_key(signer)
        except Exception:  # noqa: BLE001 - not in the manifest
            return False
        return eddsa.verify(pk, digest, signature)

    def in_manifest(self, device_id: int) -> bool:
        try:
            self.manifest.index(device_id)
        except Exception:  # noqa: BLE001
            return False
        return True

    def record(self) -> bytes:
        """The provisioning record (tfd/identity.h) of this identity, for a C client."""
        from tinyfed_toolchain.image.provision import record

        return record(self.manifest, self.device_id, self.seed)


def ephemeral_fleet(ids: Sequence[int], *, min_neighbours: int = 2, dp_min_noise_multiplier: float = 0.0,
                    weight_floor: int = 0) -> Fleet:
    """A fleet for ``ids`` under a fleet key that exists only in this process (tests, simulations)."""
    return make_fleet(FleetKey(eddsa.new_seed()), ids, min_neighbours=min_neighbours,
                      dp_min_noise_multiplier=dp_min_noise_multiplier, weight_floor=weight_floor)


def identities(fleet: Fleet) -> dict[int, DeviceIdentity]:
    return {i: DeviceIdentity(i, s, fleet.manifest) for i, s in fleet.seeds.items()}


__all__ = ["DOMAIN_ADV", "DOMAIN_SURVIVORS", "DeviceIdentity", "adv_digest", "bitmap", "bitmap_members",
           "ephemeral_fleet", "identities", "survivors_digest"]
