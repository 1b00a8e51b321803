"""Instruction counts of the secure-aggregation primitives on an emulated
Cortex-M (QEMU ``-icount``), their on-target vectors, and Monocypher's flash cost.

Builds ``bench/secagg_primitives.c`` (no model, no runtime: the secagg
sources + Monocypher + the board), runs it under ``-icount shift=N`` and
prints one row per primitive: instructions (NOT cycles; see
``boards/common/bench_counter.h``).  The same run logs ``vec_*`` results of
fixed inputs; ``expected_vectors()`` computes them with the Python reference
and ``main`` refuses to print figures if any differ.  The flash breakdown
comes from the linker map: bytes of each object's input sections that
``--gc-sections`` kept.

CLI::

    python bench/secagg_primitives.py [--board mps2-an386] [--shift 6] [--reps 3]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from tinyfed_host.emulator import run_to_exit  # noqa: E402
from tinyfed_host.secagg import dp_device as D  # noqa: E402
from tinyfed_host.secagg import encoding as E  # noqa: E402
from tinyfed_host.secagg import primitives as P  # noqa: E402
from tinyfed_host.secagg import shamir as S  # noqa: E402
from tinyfed_toolchain.image import eddsa  # noqa: E402
from tinyfed_toolchain.image.firmware import ImageInfo, build_image  # noqa: E402
from tinyfed_toolchain.facts.paths import FIRMWARE  # noqa: E402
from tinyfed_toolchain.facts.manifests import secagg_sources  # noqa: E402

APP = REPO_ROOT / "bench" / "secagg_primitives.c"
BUILD_DIR = REPO_ROOT / "build" / "bench" / "secagg"
DEFAULT_SHIFT = 6
ROUND = 9
N_PARAMS = 1000
PEER_IDS = (2, 9, 40, 41)

ROWS = [  # (key, what it measures)
    ("x25519_keygen", "X25519 key pair (crypto_x25519_public_key)"),
    ("x25519_agree_kdf", "X25519 agreement + BLAKE2b KDF (tfd_sa_agree)"),
    ("kdf_blake2b", "KDF alone (keyed BLAKE2b-256, 64-byte context)"),
    ("chacha20_1kib", "ChaCha20 PRG, 1 KiB (256 mask words)"),
    ("shamir_split_t3_k5", "Shamir split 32 B, t=3 of k=5"),
    ("shamir_combine_t3", "Shamir reconstruct 32 B from 3 shares"),
    ("shamir_split_t5_k10", "Shamir split 32 B, t=5 of k=10"),
    ("shamir_combine_t5", "Shamir reconstruct 32 B from 5 shares"),
    ("aead_seal_64b", "AEAD seal of one share message (64 B)"),
    ("aead_open_64b", "AEAD open of one share message (64 B)"),
    ("encode_1000", "encode 1000 params (clip, weight, stoch. rounding)"),
    ("self_mask_1000", "self mask, 1000 params + weight word"),
    ("pair_mask_1000", "one pairwise mask, 1000 params (key derived)"),
    ("masked_input_1000_k4", "encode + self mask + 4 pair masks, 1000 params"),
    ("dp_noise_1000", "distributed DP: 1000 discrete Gaussian draws added (z=1, m=3, C=1, f=20)"),
    ("dp_noise_round_2410", "distributed DP, a digits round: key + calibration + 2410 draws"),
]
DP_DRAWS, DP_Z_MILLI, DP_M, DP_FRAC = 200, 1000, 3, 20


def _fill(n: int, tag: int) -> bytes:
    return bytes((tag * 31 + i * 7 + 1) & 0xFF for i in range(n))


def _update() -> np.ndarray:
    state, xs = 12345, []
    for _ in range(N_PARAMS):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        xs.append((state >> 8) - (1 << 23))
    return np.array(xs, dtype=np.float32) * np.float32(2.0**-30)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def expected_vectors() -> dict[str, str]:
    """The ``vec_*`` values of bench/secagg_primitives.c, from the Python reference."""
    sk_a, pk_a = P.keypair(_fill(32, 1))
    sk_b, pk_b = P.keypair(_fill(32, 2))
    seed, noise, key, nonce, secret = _fill(32, 3), _fill(32, 4), _fill(32, 5), _fill(24, 6), _fill(32, 7)
    rand_t5 = _fill(128, 8)
    peers = [(pid, P.public_key(_fill(32, 10 + j))) for j, pid in enumerate(PEER_IDS)]
    shares = S.split(secret, 5, 10, rand_t5)
    enc = E.Encoding(1.0, 24, 1000)
    x = _update()
    ed_sk, ed_pk = eddsa.keypair(_fill(32, 20))
    ed_msg = _fill(100, 21)
    delta = D.sensitivity(1.0, DP_FRAC, N_PARAMS)
    s2 = D.sigma_sq(DP_Z_MILLI, delta, DP_M)
    r = D.WordStream(_fill(32, 30))
    draws = [D.DeviceGaussian(s2).sample(r) for _ in range(DP_DRAWS)]
    words = r.words
    small = [D.DeviceGaussian(3).sample(r) for _ in range(DP_DRAWS)]
    return {
        "vec_pk_a": pk_a.hex(),
        "vec_agree": P.agree(sk_a, pk_a, pk_b, P.LABEL_PAIR_MASK, ROUND).hex(),
        "vec_kdf": P.kdf(key, P.LABEL_SELF_MASK, ROUND, pk_a).hex(),
        "vec_prg": _digest(P.prg(key, 100, 5).astype("<u4").tobytes()),
        "vec_shares": _digest(b"".join(shares)),
        "vec_combine": S.combine([10, 3, 7, 1, 5], [shares[i - 1] for i in (10, 3, 7, 1, 5)]).hex(),
        "vec_seal": P.seal_share(key, nonce, 3, 8, ROUND, secret).hex(),
        "vec_frac_bits": str(E.choose_fraction_bits(100, 1.0)),
        "vec_encode": _digest(E.encode(x, enc, 250, noise, ROUND).astype("<u4").tobytes()),
        "vec_masked": _digest(E.masked_input(x, enc, 250, noise, ROUND, 7, seed, sk_a, pk_a, peers)
                              .astype("<u4").tobytes()),
        # device identity: EdDSA (Monocypher's, BLAKE2b) of the build machine (toolchain/image/eddsa.py);
        # tests/test_secagg_vectors.py also checks these bytes against an independent pure-Python EdDSA
        "vec_eddsa_pk": ed_pk.hex(),
        "vec_eddsa_sig32": eddsa.sign(ed_sk, ed_msg[:32]).hex(),
        "vec_eddsa_sig100": eddsa.sign(ed_sk, ed_msg).hex(),
        # distributed DP noise (firmware/src/secagg/dp_noise.c vs dp_device.py)
        "vec_dp_delta": str(delta),
        "vec_dp_s2": str(s2),
        "vec_dp_bound": str(D.word_bound(1.0, DP_FRAC, s2)),
        "vec_dp_draws": _digest(np.array(draws, dtype="<i4").tobytes()),
        "vec_dp_words": str(words),
        "vec_dp_draws_small": _digest(np.array(small, dtype="<i4").tobytes()),
        "vec_dp_words_total": str(r.words),
    }


def build(board: str = "mps2-an386", reps: int = 3) -> ImageInfo:
    sources = secagg_sources() + [FIRMWARE / "src" / "runtime" / "status.c"]
    return build_image(board, None, BUILD_DIR / board, app=APP, runtime=False, extra_sources=sources,
                       defines={"TFD_SA_BENCH_REPS": reps}, name="secagg_bench", quiet=True)


def parse_kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def run(board: str = "mps2-an386", shift: int | None = DEFAULT_SHIFT, reps: int = 3,
        timeout: float = 300.0) -> tuple[dict[str, str], ImageInfo]:
    """Build and run the bench; returns its key=value log and the image info."""
    info = build(board, reps)
    code, text = run_to_exit(info.elf, board, icount_shift=shift, timeout=timeout)
    kv = parse_kv(text)
    if code != 0 or kv.get("secagg_bench") != "ok":
        raise RuntimeError(f"secagg bench exited {code}:\n{text}")
    return kv, info


def vector_mismatches(kv: dict[str, str]) -> list[str]:
    want = expected_vectors()
    return [f"{k}: device {kv.get(k)} != python {v}" for k, v in want.items() if kv.get(k) != v]


@dataclass(frozen=True)
class FlashShare:
    """Bytes an object contributes to an image's flash (kept input sections)."""

    monocypher: int
    secagg: int
    total: int


_MAP_SECTION = re.compile(r"^ (\.(?:text|rodata|data)[^\s]*)\s*(?:\n\s+)?(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S+\.o)\s*$",
                          re.M)


def flash_share(map_file: Path) -> FlashShare:
    """Flash bytes of Monocypher and of firmware/src/secagg kept in a linked image.

    Objects are identified by their sections: Monocypher's object defines
    ``.text.crypto_*`` functions, the secagg objects ``.text.tfd_sa_*``.
    (Objects live under hashed names in the object cache.)
    """
    text = Path(map_file).read_text()
    start = text.find("Linker script and memory map")
    text = text[start:] if start >= 0 else text
    sizes: dict[str, int] = {}
    names: dict[str, set[str]] = {}
    for m in _MAP_SECTION.finditer(text):
        section, addr, size, obj = m.groups()
        if int(addr, 16) == 0 and int(size, 16) == 0:
            continue
        sizes[obj] = sizes.get(obj, 0) + int(size, 16)
        names.setdefault(obj, set()).add(section)
    mono = sum(s for o, s in sizes.items() if any(n.startswith(".text.crypto_") for n in names[o]))
    sa = sum(s for o, s in sizes.items() if any(n.startswith(".text.tfd_sa_") for n in names[o]))
    return FlashShare(monocypher=mono, secagg=sa, total=sum(sizes.values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", default="mps2-an386")
    parser.add_argument("--shift", type=int, default=DEFAULT_SHIFT)
    parser.add_argument("--reps", type=int, default=3)
    a = parser.parse_args(argv)
    kv, info = run(a.board, a.shift, a.reps)
    bad = vector_mismatches(kv)
    if bad:
        print("on-target vectors differ from the Python reference:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    print(f"{a.board}: SecAgg primitives, instructions (QEMU -icount shift={a.shift}; "
          f"instruction counts, not cycles), min of {kv['reps']} runs; "
          f"{len(expected_vectors())} on-target vectors match the Python reference")
    width = max(len(w) for _, w in ROWS)
    print(f"  {'primitive':<{width}}  {'instructions':>12}")
    for key, what in ROWS:
        print(f"  {what:<{width}}  {int(kv['insns_' + key]):>12,}")
    share = flash_share(info.map)
    print(f"flash: Monocypher kept {share.monocypher} B, secagg {share.secagg} B "
          f"(image {info.flash_used} B; -Os, --gc-sections)")
    print(info.statement())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
