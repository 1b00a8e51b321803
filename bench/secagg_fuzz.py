"""Fuzz the SecAgg+ stage bodies and the device client that decodes them, for
many inputs (default 1,000,000) and print the figures.

    .venv/bin/python bench/secagg_fuzz.py [--runs N] [--engine auto|libfuzzer|driver] [--seed S]

The target (firmware/native/fuzz_secagg.c) mutates valid requests of every stage
and raw bodies of every TFD_BODY of wire.def, under AddressSanitizer and
UndefinedBehaviorSanitizer, and checks the client's invariants after every
request (see the target's header).  libFuzzer (coverage-guided) when clang is
installed, else the target's own structured mutation driver (gcc).  A finding
stops the run: crashes = 1 and the reproducer is left in --workdir.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinyfed_host.secagg.fuzz import build_fuzzer, run_fuzzer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--engine", choices=("auto", "libfuzzer", "driver"), default="auto")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the corpus / reproducers here")
    a = ap.parse_args(argv)
    build = build_fuzzer(a.engine)
    print(f"engine: {build.engine} ({Path(build.compiler).name}, -fsanitize=address,undefined)")
    res = run_fuzzer(build, a.runs, seed=a.seed, workdir=a.workdir, timeout=24 * 3600)
    print(f"inputs: {res.inputs:,}")
    print(f"crashes: {res.crashes} (sanitizer reports + invariant violations)")
    print(f"seconds: {res.seconds:.1f}  ({res.exec_per_s:,.0f} inputs/s)")
    if res.coverage is not None:
        print(f"coverage: {res.coverage} edges, corpus {res.corpus} inputs")
    if res.crashes:
        print(res.log[-4000:])
    return 1 if res.crashes or res.inputs < a.runs else 0


if __name__ == "__main__":
    raise SystemExit(main())
