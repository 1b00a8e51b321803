"""Secure-aggregation primitives: the C side (firmware/src/secagg + Monocypher,
compiled for the build machine as firmware/native/secagg_vectors.c) and the Python side
(tinyfed_host.secagg) must produce identical bytes for every primitive.

Python generates the inputs (fixed seeds) and the expected outputs; the
harness computes the same in C; every line must match.  Published vectors
(RFC 7748 X25519, RFC 8439 ChaCha20 and ChaCha20-Poly1305,
draft-irtf-cfrg-xchacha HChaCha20 and XChaCha20-Poly1305, RFC 7693 BLAKE2b)
are checked in both languages.  Also: tampered shares are refused on both
sides, a masked vector as the server sees it passes uniformity tests that the
unmasked encoding fails, and masks cancel across C-made inputs with a dropout
recovered through Shamir shares.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tinyfed_host.secagg import encoding as E
from tinyfed_host.secagg import primitives as P
from tinyfed_host.secagg import shamir as S
from tinyfed_toolchain.facts.manifests import secagg_vectors_sources
from tinyfed_toolchain.image.native_cc import compile_native
from tinyfed_toolchain.facts.paths import FIRMWARE
from tinyfed_toolchain.image import eddsa

import eddsa_reference

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")

ERR_ARG = 7
ERR_CRYPTO = 18
ERR_OVERFLOW = 19

SUNSCREEN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
             b"for the future, sunscreen would be it.")


# ---------------------------------------------------------------- harness


@pytest.fixture(scope="module")
def harness() -> Path:
    return compile_native(secagg_vectors_sources(), [], "secagg_vectors", monocypher=True)


def hx(b: bytes) -> str:
    return bytes(b).hex() or "-"


def f32(x: float) -> str:
    return np.float32(x).tobytes().hex()


def floats(x: np.ndarray) -> str:
    return hx(np.asarray(x, dtype="<f4").tobytes())


def words_hex(w: np.ndarray) -> str:
    return np.asarray(w, dtype="<u4").tobytes().hex()


def ok(b: bytes | str) -> str:
    return "OK " + (b if isinstance(b, str) else bytes(b).hex())


def err(code: int) -> str:
    return f"ERR {code}"


@dataclass
class Batch:
    """Commands for the C harness with the Python side's expected answers."""

    items: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, category: str, command: str, expected: str) -> None:
        self.items.append((category, command, expected))

    def run(self, exe: Path) -> list[str]:
        text = "".join(cmd + "\n" for _, cmd, _ in self.items)
        proc = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        got = proc.stdout.splitlines()
        assert len(got) == len(self.items), proc.stderr
        return got

    def check(self, exe: Path) -> Counter[str]:
        got = self.run(exe)
        bad = [(cat, cmd[:120], want[:80], g[:80])
               for (cat, cmd, want), g in zip(self.items, got) if g != want]
        assert not bad, f"{len(bad)} of {len(got)} vectors differ; first: {bad[:3]}"
        counts = Counter(cat for cat, _, _ in self.items)
        print(f"\n{len(self.items)} vectors identical in C and Python: {dict(sorted(counts.items()))}")
        return counts


# ---------------------------------------------------------------- published vectors


RFC7748_5_2 = [
    ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
]
RFC7748_ITER = {1: "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
                1000: "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"}
RFC7748_6_1 = {
    "alice_sk": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    "alice_pk": "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    "bob_sk": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    "bob_pk": "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    "shared": "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
}
KEY_00_1F = bytes(range(32))
KEY_80_9F = bytes(range(0x80, 0xA0))
RFC8439_2_3_2_BLOCK = ("10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
                       "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")
RFC8439_2_4_2_CT = ("6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
                    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
                    "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
                    "5af90bbf74a35be6b40b8eedf2785e42874d")
RFC8439_2_8_2 = {
    "nonce": "070000004041424344454647",
    "ad": "50515253c0c1c2c3c4c5c6c7",
    "ct": ("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
           "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
           "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
           "3ff4def08e4b7a9de576d26586cec64b6116"),
    "tag": "1ae10b594f09e26a7e902ecbd0600691",
}
XCHACHA_HCHACHA = ("000000090000004a0000000031415927",
                   "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
XCHACHA_A_3_1 = {
    "nonce": "404142434445464748494a4b4c4d4e4f5051525354555657",
    "ad": "50515253c0c1c2c3c4c5c6c7",
    "ct": ("bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
           "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
           "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
           "21f9664c97637da9768812f615c68b13b52e"),
    "tag": "c0875924c1c7987947deafd8780acf49",
}
RFC7693_ABC_512 = ("ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
                   "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")


def test_published_vectors_python() -> None:
    """The Python reference reproduces every published vector."""
    for k_hex, u_hex, out in RFC7748_5_2:
        assert P.x25519(bytes.fromhex(k_hex), bytes.fromhex(u_hex)).hex() == out
    k = u = bytes([9]) + bytes(31)
    for i in range(1, 1001):
        k, u = P.x25519(k, u), k
        if i in RFC7748_ITER:
            assert k.hex() == RFC7748_ITER[i]
    v = RFC7748_6_1
    assert P.public_key(bytes.fromhex(v["alice_sk"])).hex() == v["alice_pk"]
    assert P.public_key(bytes.fromhex(v["bob_sk"])).hex() == v["bob_pk"]
    assert P.x25519(bytes.fromhex(v["alice_sk"]), bytes.fromhex(v["bob_pk"])).hex() == v["shared"]
    assert P.x25519(bytes.fromhex(v["bob_sk"]), bytes.fromhex(v["alice_pk"])).hex() == v["shared"]

    nonce = bytes.fromhex("000000090000004a00000000")
    assert P.chacha20_keystream(KEY_00_1F, nonce, 1, 64).hex() == RFC8439_2_3_2_BLOCK
    nonce = bytes.fromhex("000000000000004a00000000")
    ct = bytes(a ^ b for a, b in zip(SUNSCREEN, P.chacha20_keystream(KEY_00_1F, nonce, 1, len(SUNSCREEN))))
    assert ct.hex() == RFC8439_2_4_2_CT

    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    v = RFC8439_2_8_2
    sealed = ChaCha20Poly1305(KEY_80_9F).encrypt(bytes.fromhex(v["nonce"]), SUNSCREEN, bytes.fromhex(v["ad"]))
    assert sealed.hex() == v["ct"] + v["tag"]

    assert P.hchacha20(KEY_00_1F, bytes.fromhex(XCHACHA_HCHACHA[0])).hex() == XCHACHA_HCHACHA[1]
    v = XCHACHA_A_3_1
    sealed = P.xchacha20poly1305_seal(KEY_80_9F, bytes.fromhex(v["nonce"]), bytes.fromhex(v["ad"]), SUNSCREEN)
    assert sealed.hex() == v["ct"] + v["tag"]
    assert P.xchacha20poly1305_open(KEY_80_9F, bytes.fromhex(v["nonce"]), bytes.fromhex(v["ad"]), sealed) == SUNSCREEN

    import hashlib

    assert hashlib.blake2b(b"abc").hexdigest() == RFC7693_ABC_512


def test_published_vectors_c(harness: Path) -> None:
    """Monocypher, through the harness, reproduces every published vector."""
    b = Batch()
    for k, u, out in RFC7748_5_2:
        b.add("rfc7748", f"x25519 {k} {u}", ok(out))
    for n, out in RFC7748_ITER.items():
        b.add("rfc7748", f"x25519_iter {n}", ok(out))
    v = RFC7748_6_1
    b.add("rfc7748", f"pub {v['alice_sk']}", ok(v["alice_pk"]))
    b.add("rfc7748", f"pub {v['bob_sk']}", ok(v["bob_pk"]))
    b.add("rfc7748", f"x25519 {v['alice_sk']} {v['bob_pk']}", ok(v["shared"]))
    b.add("rfc7748", f"x25519 {v['bob_sk']} {v['alice_pk']}", ok(v["shared"]))
    b.add("rfc8439", f"chacha {hx(KEY_00_1F)} 000000090000004a00000000 1 {hx(bytes(64))}",
          ok(RFC8439_2_3_2_BLOCK))
    b.add("rfc8439", f"chacha {hx(KEY_00_1F)} 000000000000004a00000000 1 {hx(SUNSCREEN)}",
          ok(RFC8439_2_4_2_CT))
    v = RFC8439_2_8_2
    b.add("rfc8439", f"aead_ietf {hx(KEY_80_9F)} {v['nonce']} {v['ad']} {hx(SUNSCREEN)}", ok(v["ct"] + v["tag"]))
    b.add("xchacha", f"hchacha {hx(KEY_00_1F)} {XCHACHA_HCHACHA[0]}", ok(XCHACHA_HCHACHA[1]))
    v = XCHACHA_A_3_1
    b.add("xchacha", f"xaead {hx(KEY_80_9F)} {v['nonce']} {v['ad']} {hx(SUNSCREEN)}", ok(v["ct"] + v["tag"]))
    b.add("rfc7693", f"blake2b - 64 {hx(b'abc')}", ok(RFC7693_ABC_512))
    counts = b.check(harness)
    assert counts["rfc7748"] == 8 and counts["rfc8439"] == 3 and counts["xchacha"] == 2


# ---------------------------------------------------------------- random cross-language vectors


def _encode_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, E.Encoding, int]]:
    cases: list[tuple[np.ndarray, E.Encoding, int]] = []
    for n, clip, f, wmax, w, scale in [
        (0, 1.0, 20, 1, 1, 1.0),             # empty update: only the weight word
        (1, 1.0, 24, 1, 1, 0.3),
        (17, 0.5, 22, 100, 37, 0.01),        # no clipping, weighted
        (100, 0.25, 24, 1000, 1000, 1.0),    # clipped (norm ~ 10 > 0.25)
        (257, 3.0, 16, 65535, 1, 0.1),
        (1000, 1.0, 0, 10, 7, 5.0),          # f = 0: integer rounding only
        (64, 1e-3, 30, 1, 1, 1e-5),          # f = 30 with a tiny clip
        (33, 10.0, 12, 7, 3, 1e-30),         # tiny values: pure stochastic rounding
    ]:
        x = (rng.standard_normal(n) * scale).astype(np.float32)
        cases.append((x, E.Encoding(clip, f, wmax), w))
    # subnormal floats, exact zeros, signed zeros, a value exactly at the clip
    x = np.array([1e-40, -1e-45, 0.0, -0.0, 0.5, -0.5, 2.0**-20], dtype=np.float32)
    cases.append((x, E.Encoding(1.0, 28, 5), 5))
    x = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    cases.append((x, E.Encoding(1.0, 29, 1), 1))  # norm == clip: not scaled
    return cases


def test_keys_agreement_kdf_identical(harness: Path) -> None:
    rng = np.random.default_rng(20261121)
    b = Batch()
    labels = [P.LABEL_PAIR_MASK, P.LABEL_SHARE_KEY, P.LABEL_SELF_MASK, P.LABEL_ROUNDING, "x",
              "a-label-of-exactly-thirty-two-by"]
    for i in range(40):
        sk, pk = P.keypair(rng.bytes(32))
        b.add("x25519", f"pub {hx(sk)}", ok(pk))
        sk2, pk2 = P.keypair(rng.bytes(32))
        b.add("x25519", f"x25519 {hx(sk)} {hx(pk2)}", ok(P.x25519(sk, pk2)))
        label = labels[i % len(labels)]
        rnd = int(rng.integers(0, 2**32))
        key = P.agree(sk, pk, pk2, label, rnd)
        assert key == P.agree(sk2, pk2, pk, label, rnd)  # both ends derive the same key
        b.add("agree", f"agree {hx(sk)} {hx(pk)} {hx(pk2)} {hx(label.encode())} {rnd}", ok(key))
        b.add("agree", f"agree {hx(sk2)} {hx(pk2)} {hx(pk)} {hx(label.encode())} {rnd}", ok(key))
        ctx = rng.bytes(int(rng.integers(0, 200)))
        k = rng.bytes(32)
        b.add("kdf", f"kdf {hx(k)} {hx(label.encode())} {rnd} {hx(ctx)}", ok(P.kdf(k, label, rnd, ctx)))
    k = rng.bytes(32)
    long_label = "L" * 255  # the longest label allowed
    b.add("kdf", f"kdf {hx(k)} {hx(long_label.encode())} 7 -", ok(P.kdf(k, long_label, 7)))
    counts = b.check(harness)
    assert counts["x25519"] == 80 and counts["agree"] == 80 and counts["kdf"] == 41


def test_blake2b_identical(harness: Path) -> None:
    """Monocypher's BLAKE2b (incremental, keyed or not; also the emulated
    boards' RNG hash) equals hashlib's around block boundaries."""
    import hashlib

    rng = np.random.default_rng(1)
    b = Batch()
    for n in (0, 1, 63, 64, 65, 127, 128, 129, 300, 1000):
        msg = rng.bytes(n)
        for key, outlen in ((b"", 64), (rng.bytes(32), 32), (rng.bytes(64), 64), (rng.bytes(1), 17)):
            want = hashlib.blake2b(msg, key=key, digest_size=outlen).digest()
            b.add("blake2b", f"blake2b {hx(key)} {outlen} {hx(msg)}", ok(want))
    assert b.check(harness)["blake2b"] == 40


def test_prg_and_masks_identical(harness: Path) -> None:
    rng = np.random.default_rng(2)
    b = Batch()
    # aligned and unaligned offsets, lengths across blocks, the end of the word range
    for offset, n in [(0, 0), (0, 1), (0, 16), (0, 17), (5, 40), (15, 2), (16, 16), (31, 100),
                      (1000, 333), (2**20 + 3, 50), (2**32 - 40, 30)]:
        key = rng.bytes(32)
        b.add("prg", f"prg {hx(key)} {offset} {n}", ok(words_hex(P.prg(key, n, offset))))
    key = rng.bytes(32)  # a long stream is the concatenation of its chunks (devices stream)
    assert np.array_equal(np.concatenate([P.prg(key, 37, 0), P.prg(key, 963, 37)]), P.prg(key, 1000))
    for _ in range(8):
        seed = rng.bytes(32)
        rnd, off, n = int(rng.integers(0, 2**32)), int(rng.integers(0, 100)), int(rng.integers(0, 300))
        b.add("selfmask", f"selfmask {hx(seed)} {rnd} {off} {n}", ok(words_hex(P.self_mask(seed, rnd, n, off))))
    for _ in range(8):  # pairwise masks: peers below and above our id
        n_peers = int(rng.integers(1, 7))
        ids = [int(v) for v in rng.choice(1000, size=n_peers + 1, replace=False)]
        self_id = ids[0]
        sk, pk = P.keypair(rng.bytes(32))
        peers = [(pid, P.keypair(rng.bytes(32))[1]) for pid in ids[1:]]
        rnd, off, n = int(rng.integers(0, 2**32)), int(rng.integers(0, 50)), int(rng.integers(1, 200))
        want = P.pair_masks(self_id, sk, pk, peers, rnd, n, off)
        peer_args = " ".join(f"{pid} {hx(ppk)}" for pid, ppk in peers)
        b.add("pairmasks", f"pairmasks {self_id} {hx(sk)} {hx(pk)} {rnd} {off} {n} {len(peers)} {peer_args}",
              ok(words_hex(want)))
    counts = b.check(harness)
    assert counts["prg"] == 11 and counts["selfmask"] == 8 and counts["pairmasks"] == 8


def test_shamir_identical(harness: Path) -> None:
    """Split identical; reconstruction from random subsets of >= t shares in
    any order; t - 1 shares give the same wrong value on both sides."""
    rng = np.random.default_rng(3)
    b = Batch()
    for t, k in [(1, 1), (1, 3), (2, 2), (2, 5), (3, 5), (5, 9), (10, 10), (17, 40), (2, 255)]:
        secret = rng.bytes(32)
        rand = rng.bytes(32 * (t - 1))
        shares = S.split(secret, t, k, rand)
        b.add("shamir", f"split {hx(secret)} {t} {k} {hx(rand)}", ok(b"".join(shares)))
        for _ in range(3):
            m = int(rng.integers(t, min(k, t + 3) + 1))
            xs = [int(v) for v in rng.choice(np.arange(1, k + 1), size=m, replace=False)]
            sub = [shares[x - 1] for x in xs]
            assert S.combine(xs, sub) == secret
            b.add("shamir", f"combine {hx(bytes(xs))} {hx(b''.join(sub))}", ok(secret))
        if t > 1:
            xs = list(range(1, t))
            sub = [shares[x - 1] for x in xs]
            wrong = S.combine(xs, sub)
            assert wrong != secret
            b.add("shamir", f"combine {hx(bytes(xs))} {hx(b''.join(sub))}", ok(wrong))
    assert b.check(harness)["shamir"] == 43


def test_aead_identical(harness: Path) -> None:
    rng = np.random.default_rng(4)
    b = Batch()
    for i in range(12):
        key, nonce = rng.bytes(32), rng.bytes(24)
        s, r, rnd = (int(v) for v in rng.integers(0, 2**32, size=3))
        pt = rng.bytes([0, 1, 16, 32, 64, 100][i % 6])
        sealed = P.seal_share(key, nonce, s, r, rnd, pt)
        b.add("aead", f"seal {hx(key)} {hx(nonce)} {s} {r} {rnd} {hx(pt)}", ok(sealed))
        b.add("aead", f"open {hx(key)} {hx(nonce)} {s} {r} {rnd} {hx(sealed)}", ok(pt))
    assert b.check(harness)["aead"] == 24


def test_exact_fixed_point_floor_identical(harness: Path) -> None:
    """floor(v * 2^32) from the bits of v (the rounding step of the encoder)
    equals numpy's float64 floor for every kind of double below 2^31:
    signed zeros, subnormals, tiny negatives, exact integers, values needing
    a left shift (|v| >= 2^20), values just below 2^31 and random ones."""
    rng = np.random.default_rng(6)
    specials = [0.0, -0.0, 5e-324, -5e-324, 2.0**-1022, -(2.0**-1022), 1e-300, -1e-300, 2.0**-33, -(2.0**-33),
                2.0**-32, -(2.0**-32), 2.0**-31, -(2.0**-32) * 1.5, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0,
                2.0**20, -(2.0**20), 2.0**20 + 2.0**-32, -(2.0**21) - 2.0**-31, 2.0**31 - 1, -(2.0**31 - 1),
                np.nextafter(2.0**31, 0), -np.nextafter(2.0**31, 0), 12345.678, -12345.678]
    exps = rng.integers(-80, 31, size=300)
    randoms = list(rng.uniform(-1, 1, size=300) * np.exp2(exps.astype(np.float64)))
    b = Batch()
    for v in specials + randoms:
        want = struct.pack("<qB", int(np.floor(np.float64(v) * 4294967296.0)), 0)
        b.add("floor", f"floor32 {struct.pack('<d', v).hex()}", ok(want))
    for huge in (2.0**31, -(2.0**31), 1e300, -1e300):  # outside the encoder's range: flagged
        b.add("floor", f"floor32 {struct.pack('<d', huge).hex()}", ok(struct.pack("<qB", 0, 1)))
    assert b.check(harness)["floor"] == len(specials) + 300 + 4


def _scale_bound(x: np.ndarray, enc: E.Encoding, w: int) -> bytes:
    """The encoder's g * 2^f (float64) and B (int64), as the harness prints them."""
    return struct.pack("<dq", E.encoding_scale(x, enc, w), int(enc.bound))


def test_encoding_identical(harness: Path) -> None:
    """Whole and chunked encodings (chunks of 1, 7, 16 equal the whole), the
    encoder's double arithmetic to the last bit, the bound and the choice of f."""
    rng = np.random.default_rng(5)
    b = Batch()
    noise = rng.bytes(32)
    for x, enc, w in _encode_cases(rng):
        rnd = int(rng.integers(0, 2**32))
        want = E.encode(x, enc, w, noise, rnd)
        for chunk in (0, 1, 16, 7):
            b.add("encode", f"encode {f32(enc.clip)} {enc.frac_bits} {enc.weight_max} {w} {hx(noise)} {rnd} "
                  f"{chunk} {floats(x)}", ok(words_hex(want)))
        scale_bound = _scale_bound(x, enc, w)
        b.add("scale", f"encscale {f32(enc.clip)} {enc.frac_bits} {enc.weight_max} {w} {floats(x)}",
              ok(scale_bound))
    for n in (1, 10, 1000, 30000):  # long sums: the summation order must be the same
        x = (rng.standard_normal(n) * rng.uniform(0.001, 10)).astype(np.float32)
        for enc, w in [(E.Encoding(1.0, 20, 1), 1), (E.Encoding(float(rng.uniform(0.1, 100)), 10, 9), 4)]:
            scale_bound = _scale_bound(x, enc, w)
            b.add("scale", f"encscale {f32(enc.clip)} {enc.frac_bits} {enc.weight_max} {w} {floats(x)}",
                  ok(scale_bound))

    for n_max, clip in [(1, 1.0), (2, 1.0), (10, 1.0), (100, 0.5), (1000, 3.0), (2**20, 0.01),
                        (2**31, 1e-6), (7, 1e-9), (3, 1e6)]:
        try:
            f = E.choose_fraction_bits(n_max, clip)
        except OverflowError:
            b.add("bound", f"choose {n_max} {f32(clip)}", err(ERR_OVERFLOW))
            continue
        b.add("bound", f"choose {n_max} {f32(clip)}", f"OK {f}")
        w_top = (2**32 - 1) // n_max
        for ff, wmax in [(f, 1), (min(f + 1, 30), 1), (f, w_top), (f, min(w_top + 1, 2**32 - 1))]:
            try:
                E.check_encoding(n_max, E.Encoding(clip, ff, wmax))
                code = 0
            except OverflowError:
                code = ERR_OVERFLOW
            b.add("bound", f"check {n_max} {f32(clip)} {ff} {wmax}", f"OK {code}")
    b.add("bound", f"choose 4294967295 {f32(1e6)}", err(ERR_OVERFLOW))
    counts = b.check(harness)
    assert counts["encode"] == 40 and counts["scale"] == 18 and counts["bound"] == 42


def test_masked_inputs_identical(harness: Path) -> None:
    rng = np.random.default_rng(7)
    b = Batch()
    for n, n_peers in [(0, 1), (10, 1), (100, 3), (1000, 5), (4097, 8)]:
        ids = [int(v) for v in rng.choice(10_000, size=n_peers + 1, replace=False)]
        self_id = ids[0]
        seed = rng.bytes(32)
        sk, pk = P.keypair(rng.bytes(32))
        peers = [(pid, P.keypair(rng.bytes(32))[1]) for pid in ids[1:]]
        x = (rng.standard_normal(n) * 0.05).astype(np.float32)
        enc = E.Encoding(1.0, E.choose_fraction_bits(64, 1.0), 500)
        w, noise, rnd = int(rng.integers(1, 501)), rng.bytes(32), int(rng.integers(0, 2**32))
        want = E.masked_input(x, enc, w, noise, rnd, self_id, seed, sk, pk, peers)
        peer_args = " ".join(f"{pid} {hx(ppk)}" for pid, ppk in peers)
        b.add("masked", f"masked {self_id} {hx(seed)} {hx(sk)} {hx(pk)} {f32(enc.clip)} {enc.frac_bits} "
              f"{enc.weight_max} {w} {hx(noise)} {rnd} {floats(x)} {len(peers)} {peer_args}", ok(words_hex(want)))
    assert b.check(harness)["masked"] == 5


# ---------------------------------------------------------------- refusals, identical on both sides


def test_refusals_identical(harness: Path) -> None:
    rng = np.random.default_rng(3)
    b = Batch()
    sk, pk = P.keypair(rng.bytes(32))
    label = hx(P.LABEL_PAIR_MASK.encode())
    # our own public key echoed back
    with pytest.raises(P.CryptoError):
        P.agree(sk, pk, pk, P.LABEL_PAIR_MASK, 1)
    b.add("refuse", f"agree {hx(sk)} {hx(pk)} {hx(pk)} {label} 1", err(ERR_CRYPTO))
    # low-order points (all-zero X25519 output): 0, 1 and the order-8 point
    for low in ("00" * 32, "01" + "00" * 31,
                "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"):
        with pytest.raises(P.CryptoError):
            P.agree(sk, pk, bytes.fromhex(low), P.LABEL_PAIR_MASK, 1)
        b.add("refuse", f"agree {hx(sk)} {hx(pk)} {low} {label} 1", err(ERR_CRYPTO))
    # a peer with our own id
    with pytest.raises(ValueError):
        P.pair_masks(5, sk, pk, [(5, pk)], 1, 4)
    other = P.keypair(rng.bytes(32))[1]
    b.add("refuse", f"pairmasks 5 {hx(sk)} {hx(pk)} 1 0 4 1 5 {hx(other)}", err(ERR_ARG))
    # Shamir: duplicate / zero x, t > k, wrong randomness length
    shares = S.split(rng.bytes(32), 2, 3, rng.bytes(32))
    for xs in ([1, 1], [0, 2]):
        with pytest.raises(ValueError):
            S.combine(xs, shares[:2])
        b.add("refuse", f"combine {hx(bytes(xs))} {hx(b''.join(shares[:2]))}", err(ERR_ARG))
    with pytest.raises(ValueError):
        S.split(bytes(32), 3, 2, bytes(64))
    b.add("refuse", f"split {hx(bytes(32))} 3 2 {hx(bytes(64))}", err(ERR_ARG))
    b.add("refuse", f"split {hx(bytes(32))} 2 3 {hx(bytes(31))}", err(ERR_ARG))
    # encoding: non-finite values, weight above W, weight 0, clip 0, f > 30
    for bad, enc_args, w in [(np.array([1.0, np.nan], np.float32), (1.0, 20, 1), 1),
                             (np.array([np.inf], np.float32), (1.0, 20, 1), 1),
                             (np.array([0.5], np.float32), (1.0, 20, 4), 5),
                             (np.array([0.5], np.float32), (1.0, 20, 4), 0)]:
        with pytest.raises(ValueError):
            E.encode(bad, E.Encoding(*enc_args), w, bytes(32), 1)
        b.add("refuse", f"encode {f32(enc_args[0])} {enc_args[1]} {enc_args[2]} {w} {hx(bytes(32))} 1 0 "
              f"{floats(bad)}", err(ERR_ARG))
    # an encoding whose bound B exceeds 2^31 - 1 cannot hold even one update
    with pytest.raises(OverflowError):
        E.encode(np.array([0.5], np.float32), E.Encoding(4.0, 30), 1, bytes(32), 1)
    b.add("refuse", f"encode {f32(4.0)} 30 1 1 {hx(bytes(32))} 1 0 {floats(np.array([0.5]))}", err(ERR_OVERFLOW))
    for clip, f in [(0.0, 10), (-1.0, 10), (float("nan"), 10), (1.0, 31)]:
        with pytest.raises(ValueError):
            E.Encoding(clip, f)
        b.add("refuse", f"check 1 {f32(clip)} {f} 1", f"OK {ERR_ARG}")
    b.check(harness)


def test_tampered_shares_are_refused(harness: Path) -> None:
    """AEAD rejects a flipped bit anywhere, a wrong key or nonce, swapped
    sender/receiver, another receiver, and a replay into another round -- in
    C (tfd_sa_open, which also wipes its output) and in Python."""
    rng = np.random.default_rng(11)
    key, nonce = rng.bytes(32), rng.bytes(24)
    sender, receiver, rnd = 3, 8, 41
    pt = rng.bytes(64)  # a b_u share || an s_u share
    sealed = P.seal_share(key, nonce, sender, receiver, rnd, pt)
    b = Batch()
    b.add("accept", f"open {hx(key)} {hx(nonce)} {sender} {receiver} {rnd} {hx(sealed)}", ok(pt))
    tampered: list[tuple[bytes, bytes, int, int, int, bytes]] = []
    for bit in (0, 7, 8 * 31 + 3, 8 * 63 + 7, 8 * 64, 8 * 79 + 7):  # ciphertext and tag bits
        s2 = bytearray(sealed)
        s2[bit // 8] ^= 1 << (bit % 8)
        tampered.append((key, nonce, sender, receiver, rnd, bytes(s2)))
    tampered += [
        (key, nonce, receiver, sender, rnd, sealed),       # reflected: sender/receiver swapped
        (key, nonce, sender, receiver + 1, rnd, sealed),   # redirected to another receiver
        (key, nonce, sender + 1, receiver, rnd, sealed),   # claimed by another sender
        (key, nonce, sender, receiver, rnd + 1, sealed),   # replay into the next round
        (key, nonce, sender, receiver, rnd - 1, sealed),   # replay into the previous round
        (key[:-1] + bytes([key[-1] ^ 1]), nonce, sender, receiver, rnd, sealed),
        (key, nonce[:-1] + bytes([nonce[-1] ^ 0x80]), sender, receiver, rnd, sealed),
        (key, nonce, sender, receiver, rnd, sealed[:-1]),  # truncated
    ]
    for k, n, s, r, rd, data in tampered:
        with pytest.raises(P.CryptoError):
            P.open_share(k, n, s, r, rd, data)
        b.add("refuse", f"open {hx(k)} {hx(n)} {s} {r} {rd} {hx(data)}", err(ERR_CRYPTO))
    counts = b.check(harness)
    assert counts["refuse"] == 14


# ---------------------------------------------------------------- what the server sees


# Chi-square, 255 degrees of freedom, upper tail alpha = 1e-4 (scipy.stats.chi2.ppf(1 - 1e-4, 255)).
CHI2_255_CRIT = 347.654
# Per-bit frequency: |z| bound for alpha = 1e-4 over 32 bit positions, two-sided (Bonferroni).
BIT_Z_CRIT = 4.662


def _uniformity(words: np.ndarray) -> tuple[float, float]:
    """(chi-square of the byte histogram, largest |z| of a per-bit frequency)."""
    w = np.asarray(words, dtype="<u4")
    counts = np.bincount(np.frombuffer(w.tobytes(), dtype=np.uint8), minlength=256).astype(np.float64)
    expected = counts.sum() / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    bits = ((w[:, None] >> np.arange(32, dtype=np.uint32)) & 1).sum(axis=0).astype(np.float64)
    n = float(w.size)
    z = float(np.max(np.abs(bits - n / 2) / np.sqrt(n / 4)))
    return chi2, z


def test_masked_vector_looks_uniform_to_the_server(harness: Path) -> None:
    """65 537 words as one device would send them (C), with a fixed threshold;
    the same update unmasked fails the very same tests (the control)."""
    rng = np.random.default_rng(2026)
    n = 65_536
    x = (rng.standard_normal(n) * 0.003).astype(np.float32)  # a plausible model delta
    enc = E.Encoding(1.0, E.choose_fraction_bits(100, 1.0), 1000)
    seed, (sk, pk), noise = rng.bytes(32), P.keypair(rng.bytes(32)), rng.bytes(32)
    peers = [(pid, P.keypair(rng.bytes(32))[1]) for pid in (2, 9, 40)]
    head = f"{f32(enc.clip)} {enc.frac_bits} {enc.weight_max} 250 {hx(noise)} 12"
    b = Batch()
    peer_args = " ".join(f"{pid} {hx(ppk)}" for pid, ppk in peers)
    b.add("masked", f"masked 7 {hx(seed)} {hx(sk)} {hx(pk)} {head} {floats(x)} {len(peers)} {peer_args}", "")
    b.add("encode", f"encode {head} 0 {floats(x)}", "")
    b.add("encode", f"encode {head} 0 {floats(np.abs(x))}", "")
    masked_line, plain_line, positive_line = b.run(harness)
    masked = np.frombuffer(bytes.fromhex(masked_line[3:]), dtype="<u4")
    plain = np.frombuffer(bytes.fromhex(plain_line[3:]), dtype="<u4")
    positive = np.frombuffer(bytes.fromhex(positive_line[3:]), dtype="<u4")
    assert masked.size == plain.size == positive.size == n + 1
    # the C words are the Python reference's
    assert np.array_equal(masked, E.masked_input(x, enc, 250, noise, 12, 7, seed, sk, pk, peers))

    chi2, z = _uniformity(masked)
    print(f"\nmasked: chi2(255) = {chi2:.1f} (< {CHI2_255_CRIT}), max |z| bit = {z:.2f} (< {BIT_Z_CRIT})")
    assert chi2 < CHI2_255_CRIT and z < BIT_Z_CRIT
    # Controls: the unmasked encoding fails.  A delta symmetric around 0 has
    # balanced bits (negatives are all-ones on top) but a skewed byte
    # histogram; an all-positive one fails both statistics.
    chi2_p, z_p = _uniformity(plain)
    chi2_q, z_q = _uniformity(positive)
    print(f"unmasked control: chi2(255) = {chi2_p:.3g}, max |z| bit = {z_p:.3g}; "
          f"all-positive delta: chi2 = {chi2_q:.3g}, max |z| = {z_q:.3g}")
    assert chi2_p > 100 * CHI2_255_CRIT
    assert chi2_q > 100 * CHI2_255_CRIT and z_q > 10 * BIT_Z_CRIT


@dataclass(frozen=True)
class _Client:
    sk: bytes
    pk: bytes
    seed: bytes
    noise: bytes
    x: np.ndarray
    w: int


def test_masks_cancel_and_a_dropout_is_recovered(harness: Path) -> None:
    """Five clients mask in C; the server (Python) sums what arrives from the
    four survivors, removes their self masks, rebuilds the dropped client's
    mask key from t Shamir shares (split in C) and removes its pairwise
    masks: the result is exactly the sum of the survivors' encodings and
    decodes to their weighted mean within the rounding error."""
    rng = np.random.default_rng(99)
    ids = [3, 11, 12, 40, 77]
    n, rnd, t = 300, 5, 3
    enc = E.Encoding(1.0, E.choose_fraction_bits(len(ids), 1.0), 100)
    clients: dict[int, _Client] = {}
    for cid in ids:
        sk, pk = P.keypair(rng.bytes(32))
        clients[cid] = _Client(sk=sk, pk=pk, seed=rng.bytes(32), noise=rng.bytes(32),
                               x=(rng.standard_normal(n) * 0.02).astype(np.float32), w=int(rng.integers(1, 101)))
    dropped = 40
    b = Batch()
    for cid, c in clients.items():
        peers = [(pid, clients[pid].pk) for pid in ids if pid != cid]
        peer_args = " ".join(f"{pid} {hx(ppk)}" for pid, ppk in peers)
        b.add("masked", f"masked {cid} {hx(c.seed)} {hx(c.sk)} {hx(c.pk)} {f32(enc.clip)} "
              f"{enc.frac_bits} {enc.weight_max} {c.w} {hx(c.noise)} {rnd} {floats(c.x)} "
              f"{len(peers)} {peer_args}", "")
        b.add("encode", f"encode {f32(enc.clip)} {enc.frac_bits} {enc.weight_max} {c.w} {hx(c.noise)} "
              f"{rnd} 0 {floats(c.x)}", "")
    share_rand = rng.bytes(32 * (t - 1))
    b.add("split", f"split {hx(clients[dropped].sk)} {t} {len(ids)} {hx(share_rand)}", "")
    out = b.run(harness)
    words = {cid: np.frombuffer(bytes.fromhex(out[2 * i][3:]), dtype="<u4") for i, cid in enumerate(ids)}
    encs = {cid: np.frombuffer(bytes.fromhex(out[2 * i + 1][3:]), dtype="<u4") for i, cid in enumerate(ids)}
    shares = [bytes.fromhex(out[-1][3:])[32 * i:32 * i + 32] for i in range(len(ids))]

    survivors = [cid for cid in ids if cid != dropped]
    with np.errstate(over="ignore"):
        total = np.zeros(n + 1, dtype=np.uint32)
        for cid in survivors:
            total = total + words[cid]
        for cid in survivors:  # b_u reconstructed from shares in the real protocol
            total = total - P.self_mask(clients[cid].seed, rnd, n + 1)
        # the dropped client's mask key from t shares held by survivors (x = position + 1)
        xs = [ids.index(cid) + 1 for cid in survivors[:t]]
        sk_d = S.combine(xs, [shares[x - 1] for x in xs])
        assert sk_d == clients[dropped].sk
        pk_d = P.public_key(sk_d)
        leftover = P.pair_masks(dropped, sk_d, pk_d, [(cid, clients[cid].pk) for cid in survivors], rnd, n + 1)
        total = total + leftover  # the survivors hold -sign(dropped, u) * mask each
        want = np.zeros(n + 1, dtype=np.uint32)
        for cid in survivors:
            want = want + encs[cid]
    assert np.array_equal(total, want)
    mean = E.weighted_mean(total, enc)
    ws = np.array([clients[c].w for c in survivors], dtype=np.float64)
    exact = np.sum([clients[c].w * clients[c].x.astype(np.float64) for c in survivors], axis=0) / ws.sum()
    # no clipping here (norm ~ 0.35 < 1): error = rounding only, < 1 ulp of 2^-f per client
    assert np.max(np.abs(mean - exact)) < enc.weight_max * len(survivors) / ws.sum() / 2**enc.frac_bits


# ---------------------------------------------------------------- device identity: EdDSA
def test_eddsa_equals_an_independent_implementation() -> None:
    """Monocypher's EdDSA (the devices' and the toolchain's, here through ctypes) against
    tests/eddsa_reference.py (pure Python, RFC 8032 with BLAKE2b-512): the same public keys
    and signatures byte for byte, each accepts the other's signatures, and both refuse the
    same forgeries (a flipped bit of R, S, the message or the key; S + L, non-canonical)."""
    rng = np.random.default_rng(13)
    for n, length in enumerate((0, 1, 32, 32, 64, 100, 1000, 32)):
        seed, msg = rng.bytes(32), rng.bytes(length)
        sk, pk = eddsa.keypair(seed)
        assert pk == eddsa_reference.public_key(seed) and sk == seed + pk
        sig = eddsa.sign(sk, msg)
        assert sig == eddsa_reference.sign(seed, msg)  # deterministic: the same bytes
        assert eddsa.verify(pk, msg, sig) and eddsa_reference.verify(pk, msg, sig)
        s = int.from_bytes(sig[32:], "little") + eddsa_reference.L
        bad = [sig[:n % 32] + bytes([sig[n % 32] ^ 1]) + sig[n % 32 + 1:],            # R
               sig[:32 + n % 32] + bytes([sig[32 + n % 32] ^ 4]) + sig[33 + n % 32:],  # S
               sig[:32] + s.to_bytes(32, "little") if s < 1 << 256 else sig[:63] + bytes([sig[63] ^ 0x80])]
        for b in bad:
            assert not eddsa.verify(pk, msg, b) and not eddsa_reference.verify(pk, msg, b)
        other = msg[:-1] + bytes([msg[-1] ^ 0x10]) if msg else b"\0"
        assert not eddsa.verify(pk, other, sig) and not eddsa_reference.verify(pk, other, sig)
        pk2 = eddsa.public_key(rng.bytes(32))
        assert not eddsa.verify(pk2, msg, sig) and not eddsa_reference.verify(pk2, msg, sig)


# ---------------------------------------------------------------- on the emulated Cortex-M


def _load_bench():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parent.parent / "bench" / "secagg_primitives.py"
    spec = importlib.util.spec_from_file_location("bench_secagg_primitives", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="qemu-system-arm / arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an500", "mps2-an505"])
def test_cortex_m_build_produces_the_same_bytes(board: str) -> None:
    """bench/secagg_primitives.c on M4 / M7 / M33 under QEMU: its vectors
    (X25519, agreement, KDF, PRG, Shamir, AEAD, encoding with its double
    arithmetic, masked input) equal the Python reference's."""
    bench = _load_bench()
    kv, _ = bench.run(board, shift=None, reps=1, timeout=120)
    assert not bench.vector_mismatches(kv)
    assert len(bench.expected_vectors()) == 20  # 13 + 7 of the distributed-DP noise
    # device identity: the board's EdDSA key and signatures are the independent reference's bytes
    seed, msg = bench._fill(32, 20), bench._fill(100, 21)
    assert kv["vec_eddsa_pk"] == eddsa_reference.public_key(seed).hex()
    assert kv["vec_eddsa_sig32"] == eddsa_reference.sign(seed, msg[:32]).hex()
    assert kv["vec_eddsa_sig100"] == eddsa_reference.sign(seed, msg).hex()
