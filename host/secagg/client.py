"""SecAgg+ client state machine, host reference (the behaviour the device's C
state machine must have; Bonawitz et al. 2017 section 4, Bell et al. 2020).

One round, four stages, bytes in and bytes out (host/secagg/messages.py)::

    IDLE --ADVERTISE_KEYS--> ADVERTISED --SHARE_KEYS--> SHARED
         --MASKED_INPUT--> MASKED --UNMASK--> DONE

* every request names its round; a request for another round than the
  current one, or in another stage, is refused (``StateError``): no replay,
  no out-of-round message, no stage run twice.  A new ADVERTISE_KEYS must
  carry a round strictly greater than any seen before.
* ADVERTISE_KEYS: two fresh X25519 key pairs (c: encrypts shares, s: masks).
* SHARE_KEYS: fresh self-mask seed b; b and the mask secret key s_sk are
  Shamir-split (threshold t, one x per neighbour); each live neighbour v gets
  its b-share || s-share sealed with XChaCha20-Poly1305 under
  agree(c_sk, c_pk_v, "share-key", round), AD = (sender, receiver, round).
* MASKED_INPUT: stores the sealed shares addressed to it (it cannot open
  anything of its own), then sends y = encode(clip(x) w/W) || w + PRG(b) +
  sum_v sign(u, v) PRG(s_uv) over the neighbours that shared keys.  b and
  s_sk are dropped right after.
* UNMASK: for each neighbour named dropped, the s-share; for each named
  surviving, the b-share -- a request naming one id in both lists (which
  would let the server unmask that client's input) is refused, as is any id
  whose share it does not hold.

Python cannot wipe memory; secrets are dropped (set to None) on every path,
the C client wipes them with crypto_wipe.
"""

from __future__ import annotations

import enum
import os
from typing import Callable

import numpy as np

from . import messages as M
from . import primitives as P
from .encoding import Encoding, encode
from .graph import holders

Random = Callable[[int], bytes]


class StateError(RuntimeError):
    """A request out of round or out of stage (replay, reordering)."""


class Refused(RuntimeError):
    """A request that is well-formed but must not be answered (e.g. both shares of one client)."""


class ClientStage(enum.IntEnum):
    IDLE = 0
    ADVERTISED = 1
    SHARED = 2
    MASKED = 3
    DONE = 4


_NEXT = {ClientStage.IDLE: ClientStage.ADVERTISED, ClientStage.ADVERTISED: ClientStage.SHARED,
         ClientStage.SHARED: ClientStage.MASKED, ClientStage.MASKED: ClientStage.DONE}


class SecAggClient:
    """One client (see the module docstring); ``set_update`` before MASKED_INPUT."""

    def __init__(self, client_id: int, enc: Encoding, rand: Random = os.urandom, keep_encoding: bool = False) -> None:
        if not 1 <= client_id <= 0xFFFFFFFF:
            raise ValueError("client id must be 1..2^32-1")
        self.id = client_id
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
        self._held: dict[int, M.SealedShare] = {}

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
        if req.round <= self.round:
            raise StateError(f"client {self.id}: ADVERTISE_KEYS for round {req.round} after round {self.round}")
        if req.self_id != self.id:
            raise Refused(f"client {self.id}: addressed as {req.self_id}")
        ns = req.neighbours
        if (not ns or len(ns) > 254 or self.id in ns or list(ns) != sorted(set(ns))
                or not 2 <= req.threshold <= len(ns) + 1):
            raise Refused(f"client {self.id}: bad neighbour list / threshold")
        self._reset()  # a new round ends the previous one (its secrets go); the update stays
        self.stage, self.round = ClientStage.IDLE, req.round
        self.threshold, self.neighbours = req.threshold, ns
        r1, r2 = self.rand(32), self.rand(32)
        self._share_sk, self._share_pk = r1, P.public_key(r1)
        self._mask_sk, self._mask_pk = r2, P.public_key(r2)
        self._go(ClientStage.ADVERTISED)
        return M.AdvertiseReply(self.round, self.id, self._share_pk, self._mask_pk).pack()

    def share_keys(self, payload: bytes) -> bytes:
        req = M.ShareKeysRequest.unpack(payload)
        self._expect(ClientStage.ADVERTISED, req.round)
        ids = [i for i, _, _ in req.keys]
        if len(set(ids)) != len(ids) or any(i not in self.neighbours for i in ids):
            self._abandon()
            raise Refused(f"client {self.id}: SHARE_KEYS names ids outside its neighbourhood")
        if len(ids) + 1 < self.threshold:
            self._abandon()
            raise Refused(f"client {self.id}: {len(ids)} live neighbours + itself < threshold {self.threshold}")
        assert self._mask_sk is not None and self._share_sk is not None
        self._peers = {i: (c, s) for i, c, s in req.keys}
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
                out.append(M.SealedShare(self.id, v, nonce, sealed))
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

    def unmask(self, payload: bytes) -> bytes:
        req = M.UnmaskRequest.unpack(payload)
        self._expect(ClientStage.MASKED, req.round)
        both = set(req.dropped) & set(req.survivors)
        try:
            if both:
                raise Refused(f"client {self.id}: UNMASK asks for both shares of {sorted(both)}: refused")
            ids = [*req.dropped, *req.survivors]
            if len(set(ids)) != len(ids) or any(i not in self._held and i != self.id for i in ids) \
                    or self.id in req.dropped:
                raise Refused(f"client {self.id}: UNMASK names ids whose shares it does not hold")
            assert self._share_sk is not None
            out = []
            if self.id in req.survivors:
                assert self._own_b is not None
                out.append((self.id, M.KIND_B, self._own_b))
            for owner in (i for i in ids if i != self.id):
                s = self._held[owner]
                key = P.agree(self._share_sk, self._share_pk, self._peers[owner][0], P.LABEL_SHARE_KEY, self.round)
                plain = P.open_share(key, s.nonce, owner, self.id, self.round, s.sealed)
                if owner in req.dropped:
                    out.append((owner, M.KIND_S, plain[32:]))
                else:
                    out.append((owner, M.KIND_B, plain[:32]))
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
              "MASKED_INPUT": self.masked_input, "UNMASK": self.unmask}.get(message)
        if fn is None:
            raise StateError(f"unknown message {message}")
        return fn(payload)


__all__ = ["ClientStage", "Refused", "SecAggClient", "StateError"]
