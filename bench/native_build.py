"""Native (host-compiled) build times: the in-process device library of `tinyfed simulate`
and `tinyfed verify`, cold (empty cache), warm (same model again) and for a second model
once the model-independent objects are cached.

Each measurement runs in a child process whose build folder (``TINYFED_BUILD_DIR``) is a
fresh temporary folder, so "cold" really is cold; wall-clock seconds, so run it on an idle
machine (or compare runs made under the same load); CPU seconds (user + sys of the
process and its compilers) are printed next to them and move less with the load.  The two models are quick digits
builds (``tinyfed build --quick --no-images``, seeds 0 and 1: same architecture, different
tables), made once under ``build/bench-native/`` unless ``--models A B`` names two build
folders.

    .venv/bin/python bench/native_build.py [--models A B] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINYFED = Path(sys.executable).with_name("tinyfed")

LIBRARY = """
import json, resource, sys, time
from tinyfed_host.inprocess import build_device_library
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
times = []
for d in sys.argv[1:]:
    t, u = time.perf_counter(), cpu()
    build_device_library(d + "/model_c")
    times.append((time.perf_counter() - t, cpu() - u))
print(json.dumps(times))
"""


def make_build(out: Path, seed: int) -> Path:
    if not (out / "model_c" / "train_data.c").is_file():
        subprocess.run([str(TINYFED), "build", "--dataset", "digits", "--quick", "--no-images", "--devices", "2",
                        "--seed", str(seed), "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


def children_cpu() -> float:
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return c.ru_utime + c.ru_stime


def library_times(a: Path, b: Path, env: dict[str, str]) -> list[tuple[float, float]]:
    """Device library: model A cold, A again, B (objects cached), in one process: (wall, CPU) seconds."""
    out = subprocess.run([sys.executable, "-c", LIBRARY, str(a), str(a), str(b)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return [(float(w), float(c)) for w, c in json.loads(out.strip().splitlines()[-1])]


def verify_time(model: Path, env: dict[str, str]) -> tuple[float, float]:
    """`tinyfed verify` of a build's model.tflite on 20 of its test inputs (the whole command):
    (wall, CPU) seconds."""
    inputs = Path(env["TINYFED_BUILD_DIR"]) / f"inputs-{model.name}.npy"
    if not inputs.exists():
        import numpy as np

        np.save(inputs, np.load(model / "test_x_int8.npy")[:20])
    t, u = time.perf_counter(), children_cpu()
    subprocess.run([str(TINYFED), "verify", str(model / "model.tflite"), "--inputs", str(inputs)], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t, children_cpu() - u


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs=2, type=Path, help="two tinyfed build folders (default: made here)")
    ap.add_argument("--jobs", type=int, help="TINYFED_NATIVE_JOBS for the compiles (default: CPU count)")
    args = ap.parse_args()
    if args.models:
        a, b = (p.resolve() for p in args.models)
    else:
        base = ROOT / "build" / "bench-native"
        a, b = make_build(base / "A", 0), make_build(base / "B", 1)
    with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
        env = {**os.environ, "TINYFED_BUILD_DIR": t1}
        if args.jobs:
            env["TINYFED_NATIVE_JOBS"] = str(args.jobs)
        lib = library_times(a, b, env)
        env["TINYFED_BUILD_DIR"] = t2
        ver = [verify_time(a, env), verify_time(a, env), verify_time(b, env)]
    print(f"load average {os.getloadavg()[0]:.1f}; seconds: wall / CPU (user+sys, compilers included)")
    print(f"{'':<32}{'cold':>16}{'same model':>16}{'new model':>16}")
    for what, row in (("in-process device library", lib), ("tinyfed verify (whole command)", ver)):
        print(f"{what:<32}" + "".join(f"{f'{w:.2f} / {c:.2f}':>16}" for w, c in row))


if __name__ == "__main__":
    main()
