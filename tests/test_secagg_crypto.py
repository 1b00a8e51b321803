"""Secure-aggregation crypto layer: properties of the primitives (host/secagg),
the Monocypher supply chain (toolchain/image/third_party.py), and the C side's
cross-compilation and flash cost.  Byte equality between C and Python is
tests/test_secagg_vectors.py.
"""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tinyfed_host.secagg import encoding as E
from tinyfed_host.secagg import primitives as P
from tinyfed_host.secagg import shamir as S
from tinyfed_toolchain.image import third_party as T
from tinyfed_toolchain.facts.paths import FIRMWARE, ROOT

HAVE_ARM_GCC = shutil.which("arm-none-eabi-gcc") is not None


# ---------------------------------------------------------------- Monocypher supply chain


def test_monocypher_is_fetched_verified_and_outside_the_tree() -> None:
    d = T.monocypher_dir()
    assert d.is_relative_to(T.third_party_root())
    assert d.is_relative_to(ROOT / "build") or "TINYFED_BUILD_DIR" in __import__("os").environ
    for name, digest in T.MONOCYPHER_FILES_SHA256.items():
        assert T._sha256(d / name) == digest
    assert (d / "monocypher.h").read_text().startswith("// Monocypher version 4.0.3")
    assert sorted(p.name for p in d.iterdir()) == ["monocypher.c", "monocypher.h"]
    # never in the source tree
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [p for p in tracked if Path(p).name.startswith("monocypher")]
    assert not list((ROOT / "firmware").rglob("monocypher*")) and not list((ROOT / "boards").rglob("monocypher*"))
    assert T.is_third_party(d / "monocypher.c") and not T.is_third_party(FIRMWARE / "src" / "secagg" / "prg.c")


def _fake_sdist(path: Path, c_text: bytes) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("monocypher.c", c_text), ("monocypher.h", b"// Monocypher version 4.0.3\n")):
            info = tarfile.TarInfo(f"pymonocypher-4.0.3.4/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_tampered_sdist_is_refused(tmp_path: Path) -> None:
    fake = _fake_sdist(tmp_path / T.PYMONOCYPHER_SDIST, b"int crypto_verify32(void) { return 0; }\n")
    with pytest.raises(T.ThirdPartyError) as err:
        T.extract_monocypher(fake, tmp_path / "out")
    text = str(err.value)
    assert T.PYMONOCYPHER_SDIST_SHA256 in text and T._sha256(fake) in text and "refusing" in text
    assert not (tmp_path / "out" / "monocypher.c").exists()


def test_the_pinned_sdist_extracts_only_the_two_files(tmp_path: Path) -> None:
    """Re-fetch through pip (require-hashes) into a scratch dir: the archive
    has the pinned digest and yields exactly the pinned files."""
    import os

    local = os.environ.get(T.SDIST_ENV)
    try:
        sdist = Path(local) if local else T._download_sdist(tmp_path)
    except T.ThirdPartyError as exc:
        pytest.skip(f"PyPI not reachable: {str(exc)[:200]}")
    T.verify_sdist(sdist)
    T.extract_monocypher(sdist, tmp_path / "mc")
    assert sorted(p.name for p in (tmp_path / "mc").iterdir()) == ["monocypher.c", "monocypher.h"]


# ---------------------------------------------------------------- keys, KDF, PRG


def test_agreement_is_symmetric_and_bound_to_label_round_and_keys() -> None:
    rng = np.random.default_rng(1)
    a_sk, a_pk = P.keypair(rng.bytes(32))
    b_sk, b_pk = P.keypair(rng.bytes(32))
    c_sk, c_pk = P.keypair(rng.bytes(32))
    k = P.agree(a_sk, a_pk, b_pk, P.LABEL_PAIR_MASK, 4)
    assert k == P.agree(b_sk, b_pk, a_pk, P.LABEL_PAIR_MASK, 4)
    others = {P.agree(a_sk, a_pk, b_pk, P.LABEL_SHARE_KEY, 4), P.agree(a_sk, a_pk, b_pk, P.LABEL_PAIR_MASK, 5),
              P.agree(a_sk, a_pk, c_pk, P.LABEL_PAIR_MASK, 4), P.x25519(a_sk, b_pk)}
    assert k not in others and len(others) == 4
    # the KDF is keyed BLAKE2b-256 over exactly the documented message
    import hashlib
    import struct

    raw = P.x25519(a_sk, b_pk)
    lo, hi = sorted((a_pk, b_pk))
    msg = b"tinyfed/v1/" + bytes([9]) + b"pair-mask" + struct.pack("<I", 4) + lo + hi
    assert k == hashlib.blake2b(msg, key=raw, digest_size=32).digest()


def test_keys_are_32_bytes_never_a_small_seed() -> None:
    for bad in (b"", bytes(4), bytes(16), bytes(31), bytes(33)):
        with pytest.raises(ValueError):
            P.prg(bad, 4)
        with pytest.raises(ValueError):
            P.kdf(bad, "x", 0)
        with pytest.raises(ValueError):
            P.keypair(bad)
    with pytest.raises(ValueError):
        P.kdf(bytes(32), "", 0)


def test_prg_is_chacha20_ietf_and_seekable() -> None:
    key = bytes(range(32))
    words = P.prg(key, 64)
    stream = P.chacha20_keystream(key, bytes(12), 0, 256)
    assert words.astype("<u4").tobytes() == stream
    for off in (1, 15, 16, 17, 40):
        assert np.array_equal(P.prg(key, 64 - off, off), words[off:])
    assert not np.array_equal(P.prg(bytes(31) + b"\x01", 64), words)


def test_ct_equal() -> None:
    assert P.ct_equal(b"a" * 32, b"a" * 32) and not P.ct_equal(b"a" * 32, b"a" * 31 + b"b")


# ---------------------------------------------------------------- Shamir over GF(2^8)


def test_gf256_field_laws() -> None:
    assert S.gf_mul(0x57, 0x83) == 0xC1 and S.gf_mul(0x57, 0x13) == 0xFE  # FIPS-197 section 4.2
    for a in range(1, 256):
        assert S.gf_mul(a, S.gf_inv(a)) == 1
    rng = np.random.default_rng(0)
    for a, b, c in rng.integers(0, 256, size=(300, 3)):
        a, b, c = int(a), int(b), int(c)
        assert S.gf_mul(a, b) == S.gf_mul(b, a)
        assert S.gf_mul(a, S.gf_mul(b, c)) == S.gf_mul(S.gf_mul(a, b), c)
        assert S.gf_mul(a, b ^ c) == S.gf_mul(a, b) ^ S.gf_mul(a, c)


def test_any_t_shares_reconstruct() -> None:
    rng = np.random.default_rng(5)
    for t, k in [(1, 3), (2, 4), (3, 5), (4, 6)]:
        secret = rng.bytes(32)
        shares = S.split(secret, t, k, rng.bytes(32 * (t - 1)))
        for m in range(t, k + 1):
            for xs in itertools.combinations(range(1, k + 1), m):
                assert S.combine(list(xs), [shares[x - 1] for x in xs]) == secret


def test_fewer_than_t_shares_reveal_nothing() -> None:
    """t - 1 shares are uniform whatever the secret: for t = 3 and shares
    x = 1, 2 of one byte, the map (a1, a2) -> (y1, y2) is a bijection of
    GF(256)^2 for every secret byte, so (y1, y2) is uniform."""
    secret_bytes = (0x00, 0x5A, 0xFF)
    mul = np.array([[S.gf_mul(a, b) for b in range(256)] for a in range(256)], dtype=np.uint8)
    a1 = np.repeat(np.arange(256), 256)
    a2 = np.tile(np.arange(256), 256)
    for s in secret_bytes:
        y1 = s ^ mul[a1, 1] ^ mul[a2, 1]
        y2 = s ^ mul[a1, 2] ^ mul[a2, mul[2, 2]]
        pairs = y1.astype(np.int64) * 256 + y2
        assert np.unique(pairs).size == 65536


# ---------------------------------------------------------------- masks


def _clients(n_clients: int, rng: np.random.Generator) -> dict[int, tuple[bytes, bytes]]:
    ids = sorted(int(i) for i in rng.choice(100_000, size=n_clients, replace=False))
    return {cid: P.keypair(rng.bytes(32)) for cid in ids}


def test_pairwise_masks_cancel_on_a_sparse_symmetric_graph() -> None:
    """SecAgg+: each client masks only with its neighbours (a random k-regular
    ring here); the masks still sum to zero over all clients."""
    rng = np.random.default_rng(8)
    clients = _clients(12, rng)
    ids = list(clients)
    order = list(rng.permutation(ids))
    neighbours: dict[int, set[int]] = {cid: set() for cid in ids}
    for i, cid in enumerate(order):
        for d in (1, 2):  # 4-regular circulant graph
            other = order[(i + d) % len(order)]
            neighbours[cid].add(other)
            neighbours[other].add(cid)
    total = np.zeros(257, dtype=np.uint32)
    for cid, (sk, pk) in clients.items():
        peers = [(p, clients[p][1]) for p in sorted(neighbours[cid])]
        m = P.pair_masks(cid, sk, pk, peers, 3, 257)
        assert np.count_nonzero(m) > 250
        total = total + m
    assert not total.any()


def test_self_mask_depends_on_seed_and_round() -> None:
    seed = bytes(range(32))
    a = P.self_mask(seed, 1, 100)
    assert not np.array_equal(a, P.self_mask(seed, 2, 100))
    assert not np.array_equal(a, P.self_mask(bytes(32), 1, 100))


# ---------------------------------------------------------------- encoding


def test_fraction_bits_are_the_largest_that_cannot_wrap() -> None:
    for n_max, clip in [(1, 1.0), (10, 1.0), (100, 0.5), (1000, 2.0), (5000, 10.0)]:
        f = E.choose_fraction_bits(n_max, clip)
        E.check_encoding(n_max, E.Encoding(clip, f))
        if f < E.MAX_FRAC_BITS:
            with pytest.raises(OverflowError):
                E.check_encoding(n_max, E.Encoding(clip, f + 1))
    assert E.choose_fraction_bits(10, 1.0) == 27  # 10 * (2^27 + 1) < 2^31 <= 10 * (2^28 + 1)


def test_worst_case_sum_does_not_wrap_and_the_check_matters() -> None:
    """n_max clients each at +C in one coordinate (rounded up: the bound B)
    sum to at most 2^31 - 1 and decode correctly; with one more fraction bit
    (refused by check_encoding) the same sum wraps to a negative number."""
    n_max, clip = 37, 1.5
    f = E.choose_fraction_bits(n_max, clip)
    for ff, wraps in ((f, False), (f + 1, True)):
        enc = E.Encoding(clip, ff)
        total = np.zeros(3, dtype=np.uint32)
        for i in range(n_max):
            w = E.encode(np.array([clip, 0.0], np.float32), enc, 1, bytes([i]) * 32, 0)
            assert w[0] <= enc.bound
            total = total + w
        values, weight = E.decode_sum(total, enc)
        assert weight == n_max
        if wraps:
            assert values[0] < 0
        else:
            assert values[0] == pytest.approx(n_max * clip, rel=1e-6)


def test_clipping_weighting_and_decoding() -> None:
    rng = np.random.default_rng(4)
    enc = E.Encoding(1.0, E.choose_fraction_bits(3, 1.0), 100)
    big = (rng.standard_normal(500) * 10).astype(np.float32)      # norm ~ 224: clipped to 1
    small = (rng.standard_normal(500) * 0.01).astype(np.float32)  # norm ~ 0.22: untouched
    words = E.encode(big, enc, 100, bytes(32), 1)
    values, w = E.decode_sum(words, enc)
    assert w == 100
    assert np.linalg.norm(values) == pytest.approx(1.0, rel=1e-5)
    assert np.allclose(values, big / np.linalg.norm(big.astype(np.float64)), atol=2.0**-enc.frac_bits)
    # weighted mean of two unclipped clients: sum(w x) / sum(w)
    a = small
    b = (rng.standard_normal(500) * 0.01).astype(np.float32)
    total = E.encode(a, enc, 30, bytes([1]) * 32, 1) + E.encode(b, enc, 70, bytes([2]) * 32, 1)
    mean = E.weighted_mean(total, enc)
    exact = (30 * a.astype(np.float64) + 70 * b) / 100
    assert np.max(np.abs(mean - exact)) <= 2 * enc.weight_max / 100 / 2**enc.frac_bits


def test_stochastic_rounding_is_unbiased() -> None:
    """Each word is floor(v) or floor(v) + 1, and its mean over independent
    rounding streams is v (within 5 standard errors), where round-to-nearest
    would be biased by 0.3 / 2^f."""
    enc = E.Encoding(4096.0, 0, 1)  # f = 0: one unit = 1.0
    x = np.full(4000, 0.3, dtype=np.float32)
    v = float(np.float32(0.3))
    draws = np.stack([E.encode(x, enc, 1, bytes([k]) * 32, 1)[:-1].view(np.int32) for k in range(5)])
    assert set(np.unique(draws)) == {0, 1}
    mean, se = draws.mean(), np.sqrt(v * (1 - v) / draws.size)
    assert abs(mean - v) < 5 * se
    neg = np.stack([E.encode(-x, enc, 1, bytes([k]) * 32, 2)[:-1].view(np.int32) for k in range(5)])
    assert set(np.unique(neg)) == {-1, 0} and abs(neg.mean() + v) < 5 * se


def test_encoding_refuses_bad_input() -> None:
    enc = E.Encoding(1.0, 10, 10)
    for bad in (np.array([np.nan], np.float32), np.array([1.0, -np.inf], np.float32)):
        with pytest.raises(ValueError):
            E.encode(bad, enc, 1, bytes(32), 0)
    for w in (0, 11):
        with pytest.raises(ValueError):
            E.encode(np.zeros(3, np.float32), enc, w, bytes(32), 0)
    with pytest.raises(OverflowError):
        E.check_encoding(2, E.Encoding(1.0, 10, 2**31 + 1))


def test_masked_input_unmasks_to_the_encoding() -> None:
    rng = np.random.default_rng(12)
    clients = _clients(4, rng)
    enc = E.Encoding(1.0, E.choose_fraction_bits(4, 1.0), 10)
    seeds = {cid: rng.bytes(32) for cid in clients}
    xs = {cid: (rng.standard_normal(64) * 0.05).astype(np.float32) for cid in clients}
    total = np.zeros(65, dtype=np.uint32)
    for cid, (sk, pk) in clients.items():
        peers = [(p, clients[p][1]) for p in clients if p != cid]
        y = E.masked_input(xs[cid], enc, 5, bytes(32), 2, cid, seeds[cid], sk, pk, peers)
        total = total + y - P.self_mask(seeds[cid], 2, 65)
    mean = E.weighted_mean(total, enc)
    exact = np.mean([xs[c].astype(np.float64) for c in clients], axis=0)
    assert np.max(np.abs(mean - exact)) <= 4 * 10 / 20 / 2**enc.frac_bits


# ---------------------------------------------------------------- C side: cross builds, flash


ARM_CPUS = {
    "m4": ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "m7": ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
    "m33": ["-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"],
}


@pytest.mark.skipif(not HAVE_ARM_GCC, reason="arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("cpu", sorted(ARM_CPUS))
def test_secagg_sources_cross_compile_warning_free(cpu: str, tmp_path: Path) -> None:
    srcs = sorted((FIRMWARE / "src" / "secagg").glob("*.c"))
    assert len(srcs) >= 5
    for src in srcs:
        argv = ["arm-none-eabi-gcc", *ARM_CPUS[cpu], "-Os", "-std=c11", "-Wall", "-Wextra", "-Werror",
                "-Wshadow", "-Wstrict-prototypes", "-Wconversion", "-ffunction-sections", "-fdata-sections",
                f"-I{FIRMWARE / 'include'}", f"-I{T.monocypher_dir()}", "-c", str(src),
                "-o", str(tmp_path / (src.stem + ".o"))]
        proc = subprocess.run(argv, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not HAVE_ARM_GCC, reason="arm-none-eabi-gcc not installed")
def test_monocypher_flash_cost_on_m4(tmp_path: Path) -> None:
    """--gc-sections keeps only what an image calls: a board self-test (the
    emulated RNG's BLAKE2b only) keeps ~3 KB of Monocypher; an image using
    every SecAgg primitive keeps X25519 + ChaCha20 + Poly1305 + BLAKE2b
    (~11 KB), far under the whole file (36.7 KB of .text at -Os; BLAKE2b
    unrolled alone is 15 KB, hence BLAKE2_NO_UNROLLING in firmware images)."""
    import importlib.util
    import sys

    from tinyfed_toolchain.image.firmware import build_image

    path = ROOT / "bench" / "secagg_primitives.py"
    spec = importlib.util.spec_from_file_location("bench_secagg_primitives", path)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)

    rng_only = build_image("mps2-an386", None, tmp_path / "echo", app=ROOT / "boards" / "selftest" / "uart_echo.c",
                           runtime=False, name="uart_echo", quiet=True)
    full = bench.build("mps2-an386", reps=1)
    small, big = bench.flash_share(rng_only.map), bench.flash_share(full.map)
    print(f"\nMonocypher flash on M4 (-Os): {small.monocypher} B with BLAKE2b only, "
          f"{big.monocypher} B with all SecAgg primitives; secagg code {big.secagg} B")
    assert 500 < small.monocypher < 6_000 and small.secagg == 0
    assert 6_000 < big.monocypher < 20_000
    assert 1_000 < big.secagg < 8_000
