"""Device identity, provisioned at flash time: the user's fleet key, one EdDSA
key pair per device, and the fleet manifest (every device's id and public key,
signed with the fleet key) pinned in every image.

Layout of the provisioning record and of the manifest: ``firmware/include/tfd/
identity.h`` (the device checks the whole record and the fleet signature at
boot).  Files a build writes (``<build>/fleet/``):

* ``fleet.key``       the fleet secret (hex seed; mode 0600) -- keep it offline: whoever
                      holds it can add devices to the fleet.  Reused by later builds.
* ``manifest.json``   the public manifest (fleet id, version, fleet public key, policy,
                      device ids and public keys, signature): what the host loads to
                      run secure rounds (survivor bitmaps are over its order).
* per device ``devices/devK/identity.bin`` (the record, secret) and
  ``identity_data.c`` (the same bytes as the C table ``tfd_identity_blob``), mode 0600.

The host that runs rounds never needs the fleet key.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..facts.c_headers import int_defines, string_defines
from ..facts.errors import InputError
from ..facts.wire_table import WIRE
from . import eddsa

_ID = int_defines("identity.h")  # the record's layout, as the device reads it (firmware/include/tfd/identity.h)
MAGIC = _ID["TFD_ID_MAGIC"]  # "TFID"
VERSION = _ID["TFD_ID_VERSION"]
HEADER_BYTES = _ID["TFD_ID_HEADER_BYTES"]
MANIFEST_HEAD_BYTES = _ID["TFD_ID_MANIFEST_HEAD_BYTES"]
ENTRY_BYTES = _ID["TFD_ID_ENTRY_BYTES"]
SIG_BYTES = _ID["TFD_ID_SIG_BYTES"]
FLEET_ID_BYTES = _ID["TFD_ID_FLEET_BYTES"]
MAX_DEVICES = _ID["TFD_ID_MAX_DEVICES"]
DOMAIN_MANIFEST = string_defines("identity.h")["TFD_ID_DOMAIN_MANIFEST"]
WEIGHT_ONE = int(WIRE.const("SA_WEIGHT_ONE"))  # public weights are in 1/WEIGHT_ONE sample (wire.def)


class ProvisionError(InputError):
    """A fleet key, manifest or record that cannot be used (the message says why)."""


@dataclass(frozen=True)
class FleetKey:
    seed: bytes
    path: Path | None = None

    @property
    def public(self) -> bytes:
        return eddsa.public_key(self.seed)

    def sign(self, message: bytes) -> bytes:
        sk, _ = eddsa.keypair(self.seed)
        return eddsa.sign(sk, message)


def load_or_create_fleet_key(path: Path) -> FleetKey:
    """The fleet key at ``path`` (hex seed), created (mode 0600) if it does not exist."""
    path = Path(path)
    if path.exists():
        try:
            seed = bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise ProvisionError(f"{path}: not a tinyfed fleet key (64 hex digits)") from None
        if len(seed) != eddsa.SEED_BYTES:
            raise ProvisionError(f"{path}: a fleet key is {eddsa.SEED_BYTES} bytes, this has {len(seed)}")
        return FleetKey(seed, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = eddsa.new_seed()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
    return FleetKey(seed, path)


@dataclass(frozen=True)
class Manifest:
    fleet_id: bytes
    version: int
    entries: tuple[tuple[int, bytes], ...]  # (device id, public key), ids strictly increasing
    fleet_pk: bytes
    min_neighbours: int = 2
    dp_min_z_milli: int = 0
    weight_floor: int = 0   # smallest public weight per sample, in 1/SA_WEIGHT_ONE sample (0: none)
    signature: bytes = b""
    _index: dict[int, int] = field(default_factory=dict, compare=False, repr=False)
    _bytes: list[bytes] = field(default_factory=list, compare=False, repr=False)  # to_bytes(), once
    _cache: dict[str, bytes] = field(default_factory=dict, init=False, compare=False, repr=False)  # signed bytes, digest: once

    def __post_init__(self) -> None:
        self._index.update({i: k for k, (i, _) in enumerate(self.entries)})

    @property
    def ids(self) -> list[int]:
        return [i for i, _ in self.entries]

    def index(self, device_id: int) -> int:
        """Position of ``device_id`` (its bit in a survivor bitmap)."""
        try:
            return self._index[device_id]
        except KeyError:
            raise ProvisionError(f"device {device_id} is not in the fleet manifest") from None

    def public_key(self, device_id: int) -> bytes:
        return self.entries[self.index(device_id)][1]

    def signed_bytes(self) -> bytes:
        """What the fleet key signs (computed once: a manifest is immutable; 10,000 devices' info
        asks for its digest once each)."""
        if "signed" not in self._cache:
            head = struct.pack("<16sIHHIHH", self.fleet_id, self.version, len(self.entries), self.min_neighbours,
                               self.dp_min_z_milli, self.weight_floor, 0)
            self._cache["signed"] = head + b"".join(struct.pack("<I", i) + pk for i, pk in self.entries)
        return self._cache["signed"]

    @property
    def digest(self) -> bytes:
        """H(manifest) as the device computes it (what the fleet key signs)."""
        if "digest" not in self._cache:
            self._cache["digest"] = eddsa.digest(DOMAIN_MANIFEST, self.signed_bytes())
        return self._cache["digest"]

    def to_bytes(self) -> bytes:
        """The signed manifest as the device reads it (after the record's head); computed once."""
        if not self._bytes:
            self._bytes.append(self.signed_bytes() + self.signature)
        return self._bytes[0]

    def check(self) -> None:
        """The checks a device makes (identity.c): order, sizes, the fleet signature."""
        n = len(self.entries)
        if not 1 <= n <= MAX_DEVICES:
            raise ProvisionError(f"a manifest lists 1..{MAX_DEVICES} devices, this one {n}")
        ids = self.ids
        if ids[0] < 1 or any(b <= a for a, b in zip(ids, ids[1:])) or ids[-1] > 0xFFFFFFFF:
            raise ProvisionError("manifest ids must be strictly increasing, nonzero, 32-bit")
        if len(self.fleet_id) != FLEET_ID_BYTES or any(len(pk) != 32 for _, pk in self.entries):
            raise ProvisionError("bad fleet id or public key size")
        if not 0 <= self.weight_floor <= WEIGHT_ONE:
            raise ProvisionError(f"weight floor {self.weight_floor}: 0..{WEIGHT_ONE} (1/{WEIGHT_ONE} sample per sample)")
        if not eddsa.verify(self.fleet_pk, self.digest, self.signature):
            raise ProvisionError("the manifest's signature does not verify with its fleet key")

    def to_json(self) -> dict[str, object]:
        return {"format": "tinyfed-fleet-manifest", "version": self.version, "fleet_id": self.fleet_id.hex(),
                "fleet_public_key": self.fleet_pk.hex(), "min_neighbours": self.min_neighbours,
                "dp_min_noise_multiplier": self.dp_min_z_milli / 1000.0, "weight_floor": self.weight_floor,
                "devices": [{"id": i, "public_key": pk.hex()} for i, pk in self.entries],
                "signature": self.signature.hex(), "digest": self.digest.hex()}

    @classmethod
    def from_json(cls, d: dict) -> "Manifest":
        try:
            m = cls(bytes.fromhex(d["fleet_id"]), int(d["version"]),
                    tuple((int(e["id"]), bytes.fromhex(e["public_key"])) for e in d["devices"]),
                    bytes.fromhex(d["fleet_public_key"]), int(d["min_neighbours"]),
                    int(round(float(d["dp_min_noise_multiplier"]) * 1000)), int(d.get("weight_floor", 0)),
                    bytes.fromhex(d["signature"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ProvisionError(f"not a tinyfed fleet manifest ({type(e).__name__}: {e})") from None
        m.check()
        return m


def make_manifest(key: FleetKey, entries: Sequence[tuple[int, bytes]], *, fleet_id: bytes | None = None,
                  version: int = 1, min_neighbours: int = 2, dp_min_noise_multiplier: float = 0.0,
                  weight_floor: int = 0) -> Manifest:
    """Sign a manifest of (id, public key) entries with the fleet key."""
    unsigned = Manifest(fleet_id if fleet_id is not None else os.urandom(FLEET_ID_BYTES), int(version),
                        tuple(sorted((int(i), bytes(pk)) for i, pk in entries)), key.public, int(min_neighbours),
                        int(round(dp_min_noise_multiplier * 1000)), int(weight_floor))
    signed = Manifest(unsigned.fleet_id, unsigned.version, unsigned.entries, unsigned.fleet_pk,
                      unsigned.min_neighbours, unsigned.dp_min_z_milli, unsigned.weight_floor,
                      key.sign(unsigned.digest))
    signed.check()
    return signed


def record_head(manifest: Manifest, device_id: int, seed: bytes) -> bytes:
    """The first HEADER_BYTES of a device's record: its id, its secret seed, the fleet public key."""
    manifest.index(device_id)
    if len(seed) != eddsa.SEED_BYTES:
        raise ProvisionError("a device seed is 32 bytes")
    if eddsa.public_key(seed) != manifest.public_key(device_id):
        raise ProvisionError(f"device {device_id}: the seed does not give its manifest key")
    return struct.pack("<IHHI", MAGIC, VERSION, 0, device_id) + seed + manifest.fleet_pk


def record(manifest: Manifest, device_id: int, seed: bytes) -> bytes:
    """The provisioning record of one device (firmware/include/tfd/identity.h): head + manifest."""
    return record_head(manifest, device_id, seed) + manifest.to_bytes()


@dataclass(frozen=True)
class Fleet:
    """A provisioned fleet: the manifest and each device's seed (the seeds are secret)."""

    manifest: Manifest
    seeds: dict[int, bytes]

    def record(self, device_id: int) -> bytes:
        return record(self.manifest, device_id, self.seeds[device_id])

    def head(self, device_id: int) -> bytes:
        """The device's record without the manifest (see ``Manifest.to_bytes``)."""
        return record_head(self.manifest, device_id, self.seeds[device_id])


def make_fleet(key: FleetKey, ids: Sequence[int], *, min_neighbours: int = 2,
               dp_min_noise_multiplier: float = 0.0, weight_floor: int = 0, fleet_id: bytes | None = None,
               version: int = 1) -> Fleet:
    """New device key pairs for ``ids`` and their manifest, signed with ``key``."""
    seeds = {int(i): eddsa.new_seed() for i in ids}
    entries = [(i, eddsa.public_key(s)) for i, s in seeds.items()]
    m = make_manifest(key, entries, fleet_id=fleet_id, version=version, min_neighbours=min_neighbours,
                      dp_min_noise_multiplier=dp_min_noise_multiplier, weight_floor=weight_floor)
    return Fleet(m, seeds)


def _write_secret(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def emit_identity_c(rec: bytes, path: Path) -> Path:
    """``identity_data.c``: the record as the data table tfd_identity_blob (a secret: mode 0600)."""
    rows = ",\n".join("    " + ", ".join(f"0x{b:02x}" for b in rec[i:i + 12]) for i in range(0, len(rec), 12))
    text = ("/* generated by tinyfed toolchain/image/provision.py -- do not edit.\n"
            " * This device's identity record (firmware/include/tfd/identity.h): its SECRET signing\n"
            " * seed and the fleet manifest.  Keep this file and the image it is linked into private. */\n"
            "#include <stddef.h>\n#include <stdint.h>\n\n#include \"tfd/identity.h\"\n\n"
            f"const uint8_t tfd_identity_blob[{len(rec)}] = {{\n{rows}\n}};\n"
            f"const size_t tfd_identity_blob_len = {len(rec)}u;\n")
    _write_secret(path, text)
    return path


def write_fleet(fleet: Fleet, fleet_dir: Path) -> Path:
    """``manifest.json`` (public) in ``fleet_dir``; returns its path."""
    fleet_dir.mkdir(parents=True, exist_ok=True)
    p = fleet_dir / "manifest.json"
    p.write_text(json.dumps(fleet.manifest.to_json(), indent=1) + "\n")
    return p


def write_device(fleet: Fleet, device_id: int, device_dir: Path) -> tuple[Path, Path]:
    """``identity.bin`` and ``identity_data.c`` of one device (secret)."""
    rec = fleet.record(device_id)
    _write_secret(device_dir / "identity.bin", rec)
    return device_dir / "identity.bin", emit_identity_c(rec, device_dir / "identity_data.c")


def load_manifest(path: Path) -> Manifest:
    """A fleet's public manifest (checked: order, sizes, the fleet signature)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ProvisionError(f"{path}: cannot read the fleet manifest ({e})") from None
    return Manifest.from_json(d)


__all__ = ["Fleet", "FleetKey", "Manifest", "ProvisionError", "emit_identity_c", "load_manifest",
           "load_or_create_fleet_key", "make_fleet", "make_manifest", "record", "record_head", "write_device", "write_fleet"]
