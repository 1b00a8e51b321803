"""Distributed DP: the device's integer noise (firmware/src/secagg/dp_noise.c,
tfd/secagg_dp.h) against its Python mirror (tinyfed_host.secagg.dp_device).

* Vectors: the same ChaCha20 key and sigma^2 give the same draws and the same number
  of stream words in C (host build; the M4 build is checked by
  bench/secagg_primitives.c in test_secagg_vectors.py) and in Python; the
  calibration (Delta, s2, tt, B + L) and its refusals are the same.
* The draws follow N_Z(0, s2): exact pmf chi-square for a small sigma, mean and
  variance for a large one (fixed keys: deterministic, no timing).
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyfed_host.secagg import dp_device as D
from tinyfed_toolchain.facts.manifests import secagg_vectors_sources
from tinyfed_toolchain.image.native_cc import compile_native

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")

ERR_ARG = 7
ERR_OVERFLOW = 19


@pytest.fixture(scope="module")
def harness() -> Path:
    return compile_native(secagg_vectors_sources(), [], "secagg_vectors", monocypher=True)


def run(exe: Path, lines: list[str]) -> list[str]:
    proc = subprocess.run([str(exe)], input="".join(x + "\n" for x in lines), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) == len(lines)
    return out


def f32(x: float) -> str:
    return struct.pack("<f", x).hex()


def key(i: int) -> bytes:
    return bytes((i * 37 + j * 11 + 5) & 0xFF for j in range(32))


SIGMAS_SQ = [1, 2, 3, 10, 100, 12345, 10**6, 2**31 + 11, 549790417441, (1 << 52) - 1]


def test_samples_identical_in_c_and_python(harness: Path) -> None:
    """Every draw and the words it used, for sigma^2 from 1 to 2^52 (tt up to 2^26)."""
    lines, want = [], []
    for i, s2 in enumerate(SIGMAS_SQ):
        n = 200 if s2 < 2**40 else 60
        ys, words = D.DeviceGaussian(s2).samples(key(i), n)
        lines.append(f"dpsample {key(i).hex()} {s2} {n}")
        want.append("OK " + " ".join(map(str, ys)) + f" words {words}")
        assert all(abs(y) <= 16 * (math.isqrt(s2) + 1) for y in ys)
    lines += [f"dpsample {key(0).hex()} 0 1", f"dpsample {key(0).hex()} {(1 << 52) + (1 << 27)} 1"]
    want += [f"ERR {ERR_ARG}", f"ERR {ERR_OVERFLOW}"]  # sigma^2 0; tt = 2^26 + 1
    with pytest.raises(ValueError):
        D.DeviceGaussian(0)
    with pytest.raises(OverflowError):
        D.DeviceGaussian((1 << 52) + (1 << 27))
    got = run(harness, lines)
    bad = [(s, g[:60], w[:60]) for s, g, w in zip(SIGMAS_SQ + ["0", "big"], got, want) if g != w]
    assert not bad, bad


def test_add_noise_identical(harness: Path) -> None:
    """tfd_dp_add_noise: words + draws mod 2^32 (wrapping from negative words too)."""
    rng = np.random.default_rng(3)
    words = rng.integers(-(2**20), 2**20, size=300).astype(np.int64)
    words[:3] = [0, -1, 2**31 - 1 - 2**20]
    s2 = 77777
    ys, _ = D.DeviceGaussian(s2).samples(key(9), words.size)
    want = ((words + np.array(ys, dtype=np.int64)) % 2**32).astype("<u4").tobytes().hex()
    inp = (words % 2**32).astype("<u4").tobytes().hex()
    assert run(harness, [f"dpnoise {key(9).hex()} {s2} {inp}"]) == ["OK " + want]


def test_calibration_identical(harness: Path) -> None:
    """Delta, s2, tt and the word bound B' + L -- and the same refusals -- for clips (normal,
    subnormal, large), fraction bits, dimensions, noise multipliers and survivor minimums."""
    cases = []
    for clip in (1.0, 0.1, 3.7, 1e-3, 1e-40, 250.0):
        for f in (0, 8, 16, 20, 24, 30):
            for d in (1, 7, 1000, 123457):
                for z in (1, 700, 1000, 4321):
                    for m in (2, 3, 9):
                        cases.append((clip, f, d, z, m))
    cases += [(1.0, 20, 10, 0, 3), (1.0, 20, 10, 1000, 1), (1.0, 30, 10, 2**32 - 1, 2)]
    lines, want = [], []
    for clip, f, d, z, m in cases:
        lines.append(f"dpcalib {f32(clip)} {f} {d} {z} {m}")
        try:
            delta = D.sensitivity(clip, f, d)
            s2 = D.sigma_sq(z, delta, m)
            g = D.DeviceGaussian(s2)
            bound = D.word_bound(clip, f, s2)
            if bound > D.INT32_MAX:
                raise OverflowError
            want.append(f"OK {delta} {s2} {g.tt} {bound}")
        except OverflowError:
            want.append(f"ERR {ERR_OVERFLOW}")
        except ValueError:
            want.append(f"ERR {ERR_ARG}")
    got = run(harness, lines)
    bad = [(c, g, w) for c, g, w in zip(cases, got, want) if g != w]
    assert not bad, (len(bad), bad[:3])
    assert sum(w.startswith("OK") for w in want) > 500 and sum(w.startswith("ERR") for w in want) > 50


def test_sensitivity_bounds_the_central_one() -> None:
    """Delta >= the central mechanism's exact bound C 2^f (1 + (d + 8) 2^-53) + sqrt(d) (dp.py)."""
    from tinyfed_host.secagg import dp
    for clip in (1.0, 0.37, 5.0, 1e-3):
        for f in (4, 16, 24):
            for d in (1, 10, 4097, 10**6):
                exact = dp.sensitivity_bound(float(np.float32(clip)), f, d)
                assert D.sensitivity(clip, f, d) >= exact
                assert D.sensitivity(clip, f, d) - exact < 3


def _dg_pmf(s2: int, support: int) -> np.ndarray:
    ks = np.arange(-support, support + 1, dtype=np.float64)
    w = np.exp(-ks * ks / (2.0 * s2))
    return w / w.sum()


def test_small_sigma_follows_the_exact_pmf() -> None:
    """sigma^2 = 3: 20,000 draws vs the pmf of N_Z(0, 3) (chi-square, |y| <= 6 pooled tails)."""
    ys, _ = D.DeviceGaussian(3).samples(key(42), 20000)
    ys = np.array(ys)
    pmf = _dg_pmf(3, 40)
    ks = np.arange(-40, 41)
    obs = np.array([np.sum(ys <= -7)] + [np.sum(ys == k) for k in range(-6, 7)] + [np.sum(ys >= 7)], dtype=float)
    exp = np.array([pmf[ks <= -7].sum()] + [pmf[ks == k][0] for k in range(-6, 7)] + [pmf[ks >= 7].sum()]) * ys.size
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    assert chi2 < 40.0, chi2  # 14 degrees of freedom: p ~ 2e-4 at 40
    # and a shifted law is refused by the same test (the test can fail)
    shifted = ys + 1
    obs2 = np.array([np.sum(shifted <= -7)] + [np.sum(shifted == k) for k in range(-6, 7)] + [np.sum(shifted >= 7)],
                    dtype=float)
    assert float(((obs2 - exp) ** 2 / exp).sum()) > 1000


def test_large_sigma_mean_and_variance() -> None:
    """sigma^2 = 10^8: 4,000 draws have mean ~0 and variance ~10^8 (5 standard errors)."""
    s2 = 10**8
    ys, words = D.DeviceGaussian(s2).samples(key(7), 4000)
    y = np.array(ys, dtype=np.float64)
    assert abs(y.mean()) < 5 * math.sqrt(s2 / y.size)
    se_var = s2 * math.sqrt(2.0 / y.size)
    assert abs(y.var() - s2) < 5 * se_var
    assert words / y.size < 40  # stream words per draw (the device's cost driver)
