"""SecAgg+ client state machine, host reference (the behaviour the device's C
state machine must have, firmware/include/tfd/secagg_client.h; Bonawitz et al.
2017 sections 4 and 6 -- malicious server --, Bell et al. 2020).

One round, five stages, bytes in and bytes out (host/secagg/messages.py)::

    IDLE --ADVERTISE_KEYS--> ADVERTISED --SHARE_KEYS--> SHARED
         --MASKED_INPUT--> MASKED --SURVIVORS--> CHECKED --UNMASK--> DONE

* every request names its round; a request for another round than the
  current one, or in another stage, is refused (``StateError``): no replay,
  no out-of-round message, no stage run twice.  A new ADVERTISE_KEYS must
  carry a round after the last one (RFC 1982 serial order).
* ADVERTISE_KEYS: policy (neighbourhood size, a majority threshold), the
  neighbours must be manifest devices; two fresh X25519 key pairs (c: encrypts
  shares, s: masks), signed with the device key (identity.adv_digest).
* SHARE_KEYS: each neighbour's keys only with its signature for this round and
  threshold, over a neighbourhood that contains this client; fresh self-mask
  seed b; b and the mask secret key s_sk are Shamir-split (threshold t, one x
  per neighbour); each live neighbour v gets its b-share || s-share sealed with
  XChaCha20-Poly1305 under agree(c_sk, c_pk_v, "share-key", round), AD =
  (sender, receiver, round).
* MASKED_INPUT: stores the sealed shares addressed to it (it cannot open
  anything of its own), then sends y = encode(clip(x) w/W) || summed + PRG(b) +
  sum_v sign(u, v) PRG(s_uv) over the neighbours that sent it shares.  b and
  s_sk are dropped right after.
* SURVIVORS: checks the survivor set (itself in it; a neighbour in it sent it a
  share) and signs it (identity.survivors_digest).
* UNMASK: counts the valid signatures of the set it signed; for its own b and
  each held neighbour's secret, t of that secret's holders must have signed;
  then its own b-share, and per held neighbour the b-share if it is in the set,
  the s-share if not.

Python cannot wipe memory; secrets are dropped (set to None) on every path,
the C client wipes them with crypto_wipe.
"""

from __future__ import annotations

import enum
import os
from typing import Any, Callable

import numpy as np

from tinyfed_toolchain.facts.errors import TinyfedError

from . import messages as M
from . import primitives as P
from .dp_device import add_device_noise
from .encoding import Encoding, encode
from .graph import MIN_NEIGHBOURS, holders, policy_problem, round_after
from .identity import DeviceIdentity, adv_digest, bitmap_members, survivors_digest

Random = Callable[[int], bytes]


class StateError(TinyfedError, RuntimeError):
    """A request out of round or out of stage (replay, reordering)."""


class Refused(TinyfedError, RuntimeError):
    """A request that is well-formed but must not be answered (e.g. both shares of one client)."""


class PolicyRefused(Refused):
    """Refused by the device policy (threshold / neighbourhood size): the C client's TFD_ERR_POLICY."""


class ClientStage(enum.IntEnum):
    IDLE = 0
    ADVERTISED = 1
    SHARED = 2
    MASKED = 3
    CHECKED = 4
    DONE = 5


_NEXT = {ClientStage.IDLE: ClientStage.ADVERTISED, ClientStage.ADVERTISED: ClientStage.SHARED,
         ClientStage.SHARED: ClientStage.MASKED, ClientStage.MASKED: ClientStage.CHECKED,
         ClientStage.CHECKED: ClientStage.DONE}


class SecAggClient:
    """One client (see the module docstring); ``set_update`` before MASKED_INPUT."""

    def __init__(self, identity: DeviceIdentity, enc: Encoding, rand: Random = os.urandom,
                 keep_encoding: bool = False) -> None:
        if not 1 <= identity.device_id <= 0xFFFFFFFF:
            raise ValueError("client id must be 1..2^32-1")
        self.identity = identity
        self.id = identity.device_id
        self.enc = enc
        self.rand = rand
        self.keep_encoding = keep_encoding  # tests only: keep encode(x) to compare sums
        self.encoded: np.ndarray | None = None
        self.stage = ClientStage.IDLE
        self.round = -1
        self._update: np.ndarray | None = None
        self._weight = 0
        self._reset()

    def _reset(self) -> None:
        self.threshold = 0
        self.neighbours: tuple[int, ...] = ()
        self._share_sk: bytes | None = None
        self._share_pk = b""
        self._mask_sk: bytes | None = None
        self._mask_pk = b""
        self._seed: bytes | None = None
        self._own_b: bytes | None = None
        self._peers: dict[int, tuple[bytes, bytes]] = {}
        self._nbhd: dict[int, tuple[int, ...]] = {}  # neighbour -> its neighbourhood, as it signed it
        self._held: dict[int, Any] = {}  # sender -> M.SealedIn
        self._survivors: set[int] = set()
        self._view = b""

    def wipe(self) -> None:
        """Forget every secret of the round (any path out of a round ends here)."""
        self._reset()
        self._update = None

    def _abandon(self) -> None:
        """A refused request ends the round: secrets gone, back to IDLE (as the C client)."""
        self._reset()
        self.stage = ClientStage.IDLE

    def set_update(self, update: np.ndarray, weight: int) -> None:
        self._update = np.asarray(update, dtype=np.float32).ravel().copy()
        self._weight = int(weight)

    def _expect(self, stage: ClientStage, round_id: int) -> None:
        if round_id != self.round:
            raise StateError(f"client {self.id}: message for round {round_id}, current round {self.round}")
        if self.stage is not stage:
            raise StateError(f"client {self.id}: stage {self.stage.name}, request needs {stage.name}")

    def _go(self, to: ClientStage) -> None:
        if _NEXT.get(self.stage) is not to:
            raise StateError(f"client {self.id}: illegal transition {self.stage.name} -> {to.name}")
        self.stage = to

    # ---- stages ----------------------------------------------------------------------------
    def advertise_keys(self, payload: bytes) -> bytes:
        req = M.AdvertiseRequest.unpack(payload)
        if self.round >= 0 and not round_after(req.round, self.round):
            raise StateError(f"client {self.id}: ADVERTISE_KEYS for round {req.round} after round {self.round}")
        if req.self_id != self.id:
            raise Refused(f"client {self.id}: addressed as {req.self_id}")
        floor = self.identity.manifest.dp_min_z_milli
        if self.enc.dp_z_milli < floor:
            raise PolicyRefused(f"client {self.id}: distributed-DP noise multiplier {self.enc.dp_z_milli / 1000:g} "
                                f"below the fleet's floor {floor / 1000:g}")
        ns = req.neighbours
        why = policy_problem(len(ns), req.threshold, self._min_neighbours())
        if why is not None:
            raise PolicyRefused(f"client {self.id}: {why}")
        if 0 in ns or self.id in ns or list(ns) != sorted(set(ns)):
            raise Refused(f"client {self.id}: bad neighbour list")
        if not all(self.identity.in_manifest(v) for v in ns):
            raise Refused(f"client {self.id}: a neighbour outside the fleet manifest")
        self._reset()  # a new round ends the previous one (its secrets go); the update stays
        self.stage, self.round = ClientStage.IDLE, req.round
        self.threshold, self.neighbours = req.threshold, ns
        r1, r2 = self.rand(32), self.rand(32)
        self._share_sk, self._share_pk = r1, P.public_key(r1)
        self._mask_sk, self._mask_pk = r2, P.public_key(r2)
        self._go(ClientStage.ADVERTISED)
        sig = self.identity.sign(adv_digest(self.identity.fleet_id, self.round, self.id, self.threshold, ns,
                                            self._share_pk, self._mask_pk, self.enc.dp_z_milli))
        return M.AdvertiseReply(self.round, self.id, self._share_pk, self._mask_pk, sig).pack()

    def _min_neighbours(self) -> int:
        return max(MIN_NEIGHBOURS, self.identity.manifest.min_neighbours)

    def share_keys(self, payload: bytes) -> bytes:
        req = M.ShareKeysRequest.unpack(payload)
        self._expect(ClientStage.ADVERTISED, req.round)
        if len(req.keys) > len(self.neighbours):
            self._abandon()
            raise Refused(f"client {self.id}: SHARE_KEYS names more ids than its neighbourhood")
        seen: set[int] = set()
        for e in req.keys:  # in order, as the C client: the first bad record refuses
            if e.id not in self.neighbours or e.id in seen:
                self._abandon()
                raise Refused(f"client {self.id}: SHARE_KEYS names ids outside its neighbourhood / twice")
            seen.add(e.id)
            kv = e.n_nb
            nb = tuple(e.nb[:kv]) if 1 <= kv <= len(e.nb) else ()
            if (not nb or list(nb) != sorted(set(nb)) or 0 in nb or e.id in nb or any(e.nb[kv:])
                    or self.id not in nb):
                self._abandon()
                raise Refused(f"client {self.id}: neighbour {e.id}'s neighbourhood is not canonical / symmetric")
            if policy_problem(kv, self.threshold, self._min_neighbours()) is not None:
                self._abandon()
                raise PolicyRefused(f"client {self.id}: neighbour {e.id}'s neighbourhood fails the policy")
            if not self.identity.in_manifest(e.id):
                self._abandon()
                raise Refused(f"client {self.id}: neighbour {e.id} is not in the fleet manifest")
            h = adv_digest(self.identity.fleet_id, self.round, e.id, self.threshold, nb, e.share_pk, e.mask_pk,
                           self.enc.dp_z_milli)
            if not self.identity.verify(e.id, e.sig, h):
                self._abandon()
                raise Refused(f"client {self.id}: neighbour {e.id}'s keys are not signed by its device key "
                              "(substituted or replayed)")
            self._nbhd[e.id] = nb
        if len(req.keys) + 1 < self.threshold:
            self._abandon()
            raise Refused(f"client {self.id}: {len(req.keys)} live neighbours + itself < threshold {self.threshold}")
        assert self._mask_sk is not None and self._share_sk is not None
        self._peers = {e.id: (e.share_pk, e.mask_pk) for e in req.keys}
        t, hs = self.threshold, holders(self.id, self.neighbours)
        k = len(hs)
        seed = self.rand(32)
        b_sh = P.shamir_split(seed, t, k, self.rand(32 * (t - 1)))
        s_sh = P.shamir_split(self._mask_sk, t, k, self.rand(32 * (t - 1)))
        out = []
        try:
            for v in sorted(self._peers):
                x = hs.index(v) + 1
                key = P.agree(self._share_sk, self._share_pk, self._peers[v][0], P.LABEL_SHARE_KEY, self.round)
                nonce = self.rand(P.NONCE_BYTES)
                sealed = P.seal_share(key, nonce, self.id, v, self.round, b_sh[x - 1] + s_sh[x - 1])
                out.append(M.SealedOut(v, nonce, sealed))
        except P.CryptoError as e:
            self._abandon()
            raise Refused(f"client {self.id}: {e}") from e
        self._seed = seed
        x = hs.index(self.id)
        self._own_b = b_sh[x]  # its own holder share (x of itself): only ever returned as a b-share
        del b_sh, s_sh
        self._go(ClientStage.SHARED)
        return M.ShareKeysReply(self.round, self.id, tuple(out)).pack()

    def masked_input(self, payload: bytes) -> bytes:
        req = M.MaskedInputRequest.unpack(payload)
        self._expect(ClientStage.SHARED, req.round)
        senders = [s.sender for s in req.shares]
        try:
            if any(s.receiver != self.id for s in req.shares) or len(set(senders)) != len(senders) \
                    or any(v not in self._peers for v in senders):
                raise Refused(f"client {self.id}: MASKED_INPUT delivers shares not addressed to it / unknown senders")
            if len(senders) + 1 < self.threshold:
                raise Refused(f"client {self.id}: shares from {len(senders)} neighbours < threshold {self.threshold}")
            if self._update is None:
                raise Refused(f"client {self.id}: no update for round {self.round}")
            assert self._mask_sk is not None and self._seed is not None
            noise_key = self.rand(32)
            words = encode(self._update, self.enc, self._weight, noise_key, self.round)
            if self.enc.dp_z_milli:  # distributed DP: the device's noise (dp_device.py), before masking
                words = add_device_noise(words, self.enc, self.threshold,
                                         P.kdf(noise_key, P.LABEL_DP_NOISE, self.round))
            if self.keep_encoding:
                self.encoded = words.copy()
            n = len(words)
            y = words + P.self_mask(self._seed, self.round, n)
            y = y + P.pair_masks(self.id, self._mask_sk, self._mask_pk,
                                 [(v, self._peers[v][1]) for v in sorted(senders)], self.round, n)
        except BaseException:
            self._abandon()
            raise
        self._held = {s.sender: s for s in req.shares}
        self._seed, self._mask_sk, self._update = None, None, None  # no longer needed
        self._go(ClientStage.MASKED)
        return M.MaskedInputReply(self.round, y.astype("<u4").tobytes()).pack()

    def survivors(self, payload: bytes) -> bytes:
        req = M.SurvivorsRequest.unpack(payload)
        self._expect(ClientStage.MASKED, req.round)
        ids = self.identity.manifest.ids
        bm = bytes(req.bitmap)
        try:
            if len(bm) != (len(ids) + 7) // 8:
                raise Refused(f"client {self.id}: a survivor bitmap of {len(bm)} bytes for {len(ids)} devices")
            if len(ids) % 8 and bm[-1] >> (len(ids) % 8):
                raise Refused(f"client {self.id}: survivor bits past the fleet")
            members = bitmap_members(ids, bm)
            if self.id not in members:
                raise Refused(f"client {self.id}: the survivor set leaves out this client, whose input is in the sum")
            bad = [v for v in self.neighbours if v in members and v not in self._held]
            if bad:
                raise Refused(f"client {self.id}: the survivor set names {bad}, which sent it no share")
        except Refused:
            self._abandon()
            raise
        self._survivors = {v for v in self.neighbours if v in members}
        self._bitmap = bm
        self._view = survivors_digest(self.identity.fleet_id, self.round, bm)
        self._go(ClientStage.CHECKED)
        return M.SurvivorsReply(self.round, self.id, self.identity.sign(self._view)).pack()

    def unmask(self, payload: bytes) -> bytes:
        req = M.UnmaskRequest.unpack(payload)
        self._expect(ClientStage.CHECKED, req.round)
        members = bitmap_members(self.identity.manifest.ids, self._bitmap)
        signers = {self.id}
        for g in req.sigs:
            if g.signer in signers or g.signer not in members:
                continue
            if self.identity.verify(g.signer, g.sig, self._view):
                signers.add(g.signer)
        try:
            owners = [(self.id, self.neighbours)] + [(v, self._nbhd[v]) for v in sorted(self._held)]
            for owner, nb in owners:
                have = len(signers & {owner, *nb})
                if have < self.threshold:
                    raise PolicyRefused(f"client {self.id}: {have} holder(s) of client {owner}'s shares signed "
                                        f"this survivor set, threshold {self.threshold}: nothing revealed")
            assert self._share_sk is not None and self._own_b is not None
            out = [(self.id, M.KIND_B, self._own_b)]
            for owner in sorted(self._held):
                s = self._held[owner]
                key = P.agree(self._share_sk, self._share_pk, self._peers[owner][0], P.LABEL_SHARE_KEY, self.round)
                plain = P.open_share(key, s.nonce, owner, self.id, self.round, s.sealed)
                if owner in self._survivors:
                    out.append((owner, M.KIND_B, plain[:32]))
                else:
                    out.append((owner, M.KIND_S, plain[32:]))
        except P.CryptoError as e:
            self._abandon()
            raise Refused(f"client {self.id}: {e}") from e
        except BaseException:
            self._abandon()
            raise
        self.wipe()
        self._go(ClientStage.DONE)
        return M.UnmaskReply(self.round, self.id, tuple(out)).pack()

    def handle(self, message: str, payload: bytes) -> bytes:
        """Dispatch by message name (what a device's protocol layer does by id)."""
        fn = {"ADVERTISE_KEYS": self.advertise_keys, "SHARE_KEYS": self.share_keys,
              "MASKED_INPUT": self.masked_input, "SURVIVORS": self.survivors, "UNMASK": self.unmask}.get(message)
        if fn is None:
            raise StateError(f"unknown message {message}")
        return fn(payload)


__all__ = ["ClientStage", "PolicyRefused", "Refused", "SecAggClient", "StateError"]
