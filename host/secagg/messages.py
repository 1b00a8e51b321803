"""The four SecAgg+ exchanges as bytes: the bodies of wire.def's
ADVERTISE_KEYS (0x50), SHARE_KEYS (0x51), MASKED_INPUT (0x52) and UNMASK
(0x53).  Over serial (tinyfed_host.secagg.serial) a request body travels as
transfer SA_REQUEST, the stage message names its round, length and CRC, and
the reply body comes back as transfer SA_REPLY (SA_MASKED after
MASKED_INPUT).  Every body starts with ``u32 round``; integers little-endian.

What each carries (and the wire table's privacy class of the transfer):

=================  ===========================================  =================================
message            request body (SA_REQUEST, KEYS)              reply body
=================  ===========================================  =================================
ADVERTISE_KEYS     own id, threshold, neighbour ids             2 X25519 public keys (SA_REPLY, KEYS)
SHARE_KEYS         neighbours' public keys                      sealed shares, ciphertext (SA_REPLY, KEYS)
MASKED_INPUT       sealed shares addressed to the device        masked vector (SA_MASKED, UPDATE)
UNMASK             dropped / surviving ids                      Shamir shares (SA_REPLY, KEYS)
=================  ===========================================  =================================

None carries samples or an unmasked update: the only vector is the masked
one (uniform in Z_2^32 to anyone without the masks).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

KEY = 32
NONCE = 24
SHARE_PLAIN = 64  # b-share || s-share
SEALED = SHARE_PLAIN + 16
KIND_B, KIND_S = 0, 1

#: message -> (request transfer purpose, reply transfer purpose, what the reply carries)
CARRIES: dict[str, tuple[str, str, str]] = {
    "ADVERTISE_KEYS": ("SA_REQUEST", "SA_REPLY", "public keys"),
    "SHARE_KEYS": ("SA_REQUEST", "SA_REPLY", "ciphertext shares"),
    "MASKED_INPUT": ("SA_REQUEST", "SA_MASKED", "masked vector"),
    "UNMASK": ("SA_REQUEST", "SA_REPLY", "shares"),
}


class MessageError(ValueError):
    """A payload that does not parse (wrong length, count, kind)."""


class _R:
    def __init__(self, data: bytes) -> None:
        self.d, self.o = bytes(data), 0

    def take(self, n: int) -> bytes:
        if self.o + n > len(self.d):
            raise MessageError("payload too short")
        b = self.d[self.o:self.o + n]
        self.o += n
        return b

    def u(self, fmt: str) -> int:
        return int(struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0])

    def end(self) -> None:
        if self.o != len(self.d):
            raise MessageError(f"{len(self.d) - self.o} trailing bytes")


@dataclass(frozen=True)
class AdvertiseRequest:
    round: int
    self_id: int
    threshold: int
    neighbours: tuple[int, ...]

    def pack(self) -> bytes:
        return struct.pack("<IIHH", self.round, self.self_id, self.threshold, len(self.neighbours)) + \
            b"".join(struct.pack("<I", v) for v in self.neighbours)

    @classmethod
    def unpack(cls, data: bytes) -> "AdvertiseRequest":
        r = _R(data)
        rnd, sid, t, k = r.u("I"), r.u("I"), r.u("H"), r.u("H")
        ns = tuple(r.u("I") for _ in range(k))
        r.end()
        return cls(rnd, sid, t, ns)


@dataclass(frozen=True)
class AdvertiseReply:
    round: int
    self_id: int
    share_pk: bytes  # c_u: encrypts shares
    mask_pk: bytes   # s_u: pairwise masks

    def pack(self) -> bytes:
        return struct.pack("<II", self.round, self.self_id) + self.share_pk + self.mask_pk

    @classmethod
    def unpack(cls, data: bytes) -> "AdvertiseReply":
        r = _R(data)
        out = cls(r.u("I"), r.u("I"), r.take(KEY), r.take(KEY))
        r.end()
        return out


@dataclass(frozen=True)
class ShareKeysRequest:
    round: int
    keys: tuple[tuple[int, bytes, bytes], ...]  # (id, share_pk, mask_pk) of live neighbours

    def pack(self) -> bytes:
        return struct.pack("<IH", self.round, len(self.keys)) + \
            b"".join(struct.pack("<I", i) + c + s for i, c, s in self.keys)

    @classmethod
    def unpack(cls, data: bytes) -> "ShareKeysRequest":
        r = _R(data)
        rnd, n = r.u("I"), r.u("H")
        keys = tuple((r.u("I"), r.take(KEY), r.take(KEY)) for _ in range(n))
        r.end()
        return cls(rnd, keys)


@dataclass(frozen=True)
class SealedShare:
    sender: int
    receiver: int
    nonce: bytes
    sealed: bytes  # ciphertext || mac of b-share || s-share


@dataclass(frozen=True)
class ShareKeysReply:
    round: int
    sender: int
    shares: tuple[SealedShare, ...]

    def pack(self) -> bytes:
        return struct.pack("<IIH", self.round, self.sender, len(self.shares)) + \
            b"".join(struct.pack("<I", s.receiver) + s.nonce + s.sealed for s in self.shares)

    @classmethod
    def unpack(cls, data: bytes) -> "ShareKeysReply":
        r = _R(data)
        rnd, snd, n = r.u("I"), r.u("I"), r.u("H")
        shares = tuple(SealedShare(snd, r.u("I"), r.take(NONCE), r.take(SEALED)) for _ in range(n))
        r.end()
        return cls(rnd, snd, shares)


@dataclass(frozen=True)
class MaskedInputRequest:
    round: int
    shares: tuple[SealedShare, ...]  # addressed to this device

    def pack(self) -> bytes:
        return struct.pack("<IH", self.round, len(self.shares)) + \
            b"".join(struct.pack("<II", s.sender, s.receiver) + s.nonce + s.sealed for s in self.shares)

    @classmethod
    def unpack(cls, data: bytes) -> "MaskedInputRequest":
        r = _R(data)
        rnd, n = r.u("I"), r.u("H")
        shares = tuple(SealedShare(r.u("I"), r.u("I"), r.take(NONCE), r.take(SEALED)) for _ in range(n))
        r.end()
        return cls(rnd, shares)


@dataclass(frozen=True)
class MaskedInputReply:
    round: int
    words: bytes  # (n + 1) uint32 LE: the masked encoded update || masked weight

    def pack(self) -> bytes:
        return struct.pack("<I", self.round) + self.words

    @classmethod
    def unpack(cls, data: bytes) -> "MaskedInputReply":
        if len(data) < 8 or (len(data) - 4) % 4:
            raise MessageError("masked input must be whole uint32 words")
        return cls(struct.unpack_from("<I", data)[0], bytes(data[4:]))


@dataclass(frozen=True)
class UnmaskRequest:
    round: int
    dropped: tuple[int, ...]    # neighbours that shared keys but sent no masked input
    survivors: tuple[int, ...]  # neighbours whose masked input is in the sum

    def pack(self) -> bytes:
        return struct.pack("<IHH", self.round, len(self.dropped), len(self.survivors)) + \
            b"".join(struct.pack("<I", v) for v in (*self.dropped, *self.survivors))

    @classmethod
    def unpack(cls, data: bytes) -> "UnmaskRequest":
        r = _R(data)
        rnd, nd, ns = r.u("I"), r.u("H"), r.u("H")
        d = tuple(r.u("I") for _ in range(nd))
        s = tuple(r.u("I") for _ in range(ns))
        r.end()
        return cls(rnd, d, s)


@dataclass(frozen=True)
class UnmaskReply:
    round: int
    holder: int
    shares: tuple[tuple[int, int, bytes], ...]  # (owner id, KIND_B | KIND_S, 32-byte share)

    def pack(self) -> bytes:
        return struct.pack("<IIH", self.round, self.holder, len(self.shares)) + \
            b"".join(struct.pack("<IB", o, k) + s for o, k, s in self.shares)

    @classmethod
    def unpack(cls, data: bytes) -> "UnmaskReply":
        r = _R(data)
        rnd, h, n = r.u("I"), r.u("I"), r.u("H")
        shares = []
        for _ in range(n):
            o, k, s = r.u("I"), r.u("B"), r.take(32)
            if k not in (KIND_B, KIND_S):
                raise MessageError(f"share kind {k}")
            shares.append((o, k, s))
        r.end()
        return cls(rnd, h, tuple(shares))


__all__ = ["AdvertiseReply", "AdvertiseRequest", "CARRIES", "KIND_B", "KIND_S", "MaskedInputReply",
           "MaskedInputRequest", "MessageError", "SealedShare", "ShareKeysReply", "ShareKeysRequest",
           "UnmaskReply", "UnmaskRequest"]
