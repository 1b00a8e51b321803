"""Inference benchmark for the built-in students (prints figures; not a test).

For each built-in dataset's distilled int8 student:

* instructions per inference under QEMU ``-icount`` on each emulated core
  (instruction counts, not cycles), on real held-out inputs;
* tinyfed's static arena (the toolchain's memory plan) next to the arena the
  tflite-micro runtime allocates for the same model (total, and its planned
  activation part);
* flash / SRAM of the benchmark image.

Usage::

    .venv/bin/python bench/inference.py [--datasets digits basicmotions] [--boards mps2-an386 ...]

Models are built (``tinyfed build --no-images``) into build/bench/<dataset> if absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from icount import DEFAULT_SHIFT, bench_infer  # noqa: E402

from tinyfed_toolchain.compile.emit_c import banner  # noqa: E402
from tinyfed_toolchain.facts.paths import BUILD  # noqa: E402


def ensure_model(dataset: str) -> Path:
    """The dataset's student, built once into build/bench/<dataset>; tables emitted for an
    older model ABI are re-emitted from the kept model.tflite (no retraining)."""
    from tinyfed_toolchain.build import BuildOptions, run_build
    from tinyfed_toolchain.facts.c_headers import model_abi

    out = BUILD / "bench" / dataset
    header = out / "model_c" / "model_data.h"
    if not header.exists() or not (out / "test_x_int8.npy").exists():
        run_build(BuildOptions(dataset=dataset, out_dir=out, devices=0, images=False))
    elif f"#if TFD_MODEL_ABI != {model_abi()}\n" not in header.read_text():
        run_build(BuildOptions(dataset=dataset, tflite=out / "model.tflite", out_dir=out, devices=0,
                               images=False))
    return out


def write_inputs(out: Path, n: int) -> None:
    x = np.load(out / "test_x_int8.npy")[:n]
    rows = x.reshape(len(x), -1)
    body = ",\n".join("    {" + ", ".join(str(int(v)) for v in r) + "}" for r in rows)
    text = (
        banner("benchmark inputs (held-out samples)")
        + "#ifndef TFD_BENCH_INPUTS_H\n#define TFD_BENCH_INPUTS_H\n#include <stdint.h>\n"
        + f"#define TFD_BENCH_N_INPUTS {len(rows)}\n"
        + f"static const int8_t tfd_bench_inputs[{rows.shape[0]}][{rows.shape[1]}] = {{\n{body}\n}};\n"
        + "#endif\n"
    )
    p = out / "model_c" / "bench_inputs.h"
    if not p.exists() or p.read_text() != text:
        p.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "basicmotions"])
    ap.add_argument("--boards", nargs="+", default=["mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547", "stm32f405"])
    ap.add_argument("--runs", type=int, default=8)
    a = ap.parse_args(argv)

    from tinyfed_toolchain.compile.tflm import tflm_arena

    print(f"instructions per inference under QEMU -icount shift={DEFAULT_SHIFT} (instruction counts, not cycles)")
    print(f"{'model':<14} {'board':<12} {'insns/inf':>10} {'arena B':>8} {'TFLM arena B':>13} "
          f"{'TFLM planned B':>15} {'image flash':>12} {'image SRAM':>11}")
    for ds in a.datasets:
        out = ensure_model(ds)
        write_inputs(out, a.runs)
        arena = tflm_arena(str(out / "model.tflite"))
        for board in a.boards:
            kv = bench_infer(out / "model_c", board, DEFAULT_SHIFT, a.runs)
            mem = kv["memory"]
            flash = mem.split("flash ")[1].split(" /")[0]
            sram = mem.split("SRAM ")[1].split(" /")[0]
            print(f"{ds:<14} {board:<12} {int(kv['insns_mean']):>10,} {int(kv['arena_bytes']):>8,} "
                  f"{arena.total:>13,} {arena.head:>15,} {int(flash):>12,} {int(sram):>11,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
