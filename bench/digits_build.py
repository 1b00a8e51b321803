"""What the simulation benches (simulate_scale.py, dp_accuracy.py) share: the digits model they
simulate, built once into a folder they reuse, and the training cost they hand the virtual clock
so that QEMU need not run (their figures are wall time, memory, epsilon and accuracy, not virtual
time)."""

from __future__ import annotations

from pathlib import Path

#: instructions per training sample of the digits student's last two layers on the M4, as
#: bench/training.py measured it before issue 11's kernels (README); only the virtual clock uses it
INSNS_PER_SAMPLE = 266_913.0


def build_digits(out: Path) -> Path:
    """The digits model (8 shards, no firmware images) in ``out``, built on first use."""
    if not (out / "model_c" / "train_data.c").is_file():
        import tinyfed

        print(f"[bench] building the digits model into {out} (once) ...", flush=True)
        tinyfed.build(dataset="digits", out_dir=out, devices=8, images=False, log=lambda s: None)
    return out
