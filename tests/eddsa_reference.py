"""An independent, pure-Python EdDSA over edwards25519 with BLAKE2b-512 (the scheme of
Monocypher 4's crypto_eddsa_*): RFC 8032 section 5.1's Ed25519 with SHA-512 replaced by
BLAKE2b-512.  For cross-language test vectors only -- variable-time big-integer
arithmetic, never for a real key.  The device (Monocypher, C on the M4) and
tinyfed_toolchain.image.eddsa (Monocypher through ctypes) must give the same bytes.
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _h(*parts: bytes) -> int:
    h = hashlib.blake2b(digest_size=64)
    for p in parts:
        h.update(p)
    return int.from_bytes(h.digest(), "little")


# extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x y = T/Z
def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s: int, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(p, q) -> bool:
    x1, y1, z1, _ = p
    x2, y2, z2, _ = q
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


_GY = 4 * pow(5, P - 2, P) % P
_GX = _recover_x(_GY, 0)
assert _GX is not None
G = (_GX, _GY, 1, _GX * _GY % P)


def _encode(p) -> bytes:
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(b: bytes):
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _secret(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.blake2b(seed, digest_size=64).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed: bytes) -> bytes:
    a, _ = _secret(seed)
    return _encode(_mul(a, G))


def sign(seed: bytes, msg: bytes) -> bytes:
    a, prefix = _secret(seed)
    pk = _encode(_mul(a, G))
    r = _h(prefix, msg) % L
    rr = _encode(_mul(r, G))
    k = _h(rr, pk, msg) % L
    s = (r + k * a) % L
    return rr + s.to_bytes(32, "little")


def verify(pk: bytes, msg: bytes, sig: bytes) -> bool:
    if len(sig) != 64:
        return False
    a = _decode(pk)
    r = _decode(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= L:
        return False
    k = _h(sig[:32], pk, msg) % L
    return _equal(_mul(s, G), _add(r, _mul(k, a)))
