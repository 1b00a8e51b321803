"""Cortex-M55 (mps3-an547): what the reference kernels cost there, and what
Helium (MVE) could gain -- prints figures; not a test.

tinyfed's kernels are portable C (the reference kernels are the source of
truth, ARCHITECTURE.md rule 3); no Helium variant exists yet.  This measures,
on the same model and held-out inputs, under QEMU ``-icount`` (instruction
counts, not cycles):

* instructions per inference on the M4F (mps2-an386) and on the M55
  (mps3-an547) with the images' ``-Os``;
* the M55 with ``-O3``, where GCC may auto-vectorize loops with MVE
  instructions (it reports how many MVE instructions the kernels contain);
* the model's multiply-accumulates, so instructions per MAC can be compared
  with the bound a Helium kernel has: one ``VMLADAV(A).S8`` adds 16 int8
  products per instruction (vs 2 for the M4's ``SMLAD``, and the ~3+
  instructions per MAC of a scalar loop).

Usage::

    .venv/bin/python bench/helium.py [--dataset digits] [--runs 8]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from icount import BUILD_DIR, DEFAULT_SHIFT, parse_kv, run_counted  # noqa: E402
from inference import ensure_model, write_inputs  # noqa: E402

from tinyfed_toolchain.compile.tflite_reader import read_tflite  # noqa: E402
from tinyfed_toolchain.image.firmware import build_image  # noqa: E402


def model_macs(tflite: bytes) -> int:
    """Multiply-accumulates of one inference (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D)."""
    g = read_tflite(tflite)
    macs = 0
    for op in g.ops:
        out = g.tensor(op.outputs[0])
        w = g.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
        if op.name == "FULLY_CONNECTED" and w is not None:
            macs += out.num_elements * int(w.shape[-1])
        elif op.name == "CONV_2D" and w is not None:
            macs += out.num_elements * int(np.prod(w.shape[1:]))
        elif op.name == "DEPTHWISE_CONV_2D" and w is not None:
            macs += out.num_elements * int(w.shape[1] * w.shape[2])
    return macs


def mve_instructions(elf: Path) -> int:
    """MVE (Helium) instructions in the image's kernels (v* on q registers)."""
    text = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    return sum(1 for line in text.splitlines() if re.search(r"\tv\w+(\.\w+)*\s+q\d", line))


def measure(model_dir: Path, board: str, opt: str, runs: int) -> tuple[int, int, str, Path]:
    info = build_image(board, model_dir, BUILD_DIR / "helium" / f"{board}{opt}", app="bench_infer",
                       defines={"TFD_BENCH_RUNS": runs}, opt=opt, quiet=True)
    code, text = run_counted(info.elf, board, DEFAULT_SHIFT, timeout=600)
    if code != 0:
        raise RuntimeError(f"bench_infer on {board} exited {code}:\n{text}")
    kv = parse_kv(text)
    return int(kv["insns_mean"]), info.flash_used, info.statement(), info.elf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--runs", type=int, default=8)
    a = ap.parse_args(argv)
    out = ensure_model(a.dataset)
    write_inputs(out, a.runs)
    macs = model_macs((out / "model.tflite").read_bytes())
    print(f"{a.dataset} student: {macs:,} MACs per inference; QEMU -icount shift={DEFAULT_SHIFT} "
          f"(instruction counts, not cycles)")
    print(f"{'board':<12} {'opt':<4} {'insns/inf':>10} {'insns/MAC':>9} {'MVE insns':>9} {'image flash':>11}")
    for board, opt in (("mps2-an386", "-Os"), ("mps3-an547", "-Os"), ("mps3-an547", "-O3")):
        insns, flash, _, elf = measure(out / "model_c", board, opt, a.runs)
        mve = mve_instructions(elf) if board == "mps3-an547" else 0
        print(f"{board:<12} {opt:<4} {insns:>10,} {insns / macs:>9.2f} {mve:>9,} {flash:>11,}")
    print(f"Helium bound: {macs / 16:,.0f} VMLADAV instructions for the MACs alone "
          f"(16 int8 MACs each; the M4's SMLAD does 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
