"""Seeded mutation campaign against malformed .tflite models.

    .venv/bin/python bench/model_mutants.py [--n 1000] [--seed 14] [--log build/model-mutants.jsonl]

Five small int8 models (MLP, CNN, depthwise CNN, a two-dense sensor model, a pooled CNN;
untrained, with non-zero biases so the converter keeps them) are mutated as in
tests/tflite_mutants.py: truncations, bit flips, zeroed regions, 32-bit words replaced
by hostile values, and structured edits through the flatbuffer object API (buffer
indices, dimensions, quantization vectors, biases made non-constant, op inputs).
Each mutant goes through what `tinyfed verify` runs (reader -> plan -> emitted C
compiled for the host vs the tflite-micro runtime in a child process) and is
counted as refused (one-line error), accepted (byte-equal to tflite-micro), wrong
(accepted but different) or crash (any other exception).  Prints progress every
100 mutants and the totals; one JSON line per mutant goes to --log.
Exit status 1 if any crash or wrong accept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a script from a checkout
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

import numpy as np  # noqa: E402

from tests.tflite_mutants import campaign  # noqa: E402


def models() -> dict[str, tuple[bytes, np.ndarray]]:
    import keras

    from tests.quantized_models import to_int8_tflite

    keras.utils.set_random_seed(14)
    b = {"bias_initializer": keras.initializers.RandomNormal(0.0, 0.2)}
    L = keras.layers
    img = (8, 8, 1)
    nets = {
        "mlp": ([L.Flatten(), L.Dense(32, activation="relu", **b), L.Dense(10, **b)], img),
        "cnn": ([L.Conv2D(4, 3, activation="relu", **b), L.MaxPooling2D(), L.Flatten(), L.Dense(10, **b)], img),
        "dwcnn": ([L.Conv2D(4, 3, padding="same", **b), L.DepthwiseConv2D(3, activation="relu", **b),
                   L.AveragePooling2D(2), L.Flatten(), L.Dense(10, **b)], img),
        "sensor": ([L.Flatten(), L.Dense(24, activation="relu", **b), L.Dense(4, **b)], (20, 3)),
        "pooled": ([L.Conv2D(6, 3, activation="relu6", **b), L.GlobalAveragePooling2D(), L.Dense(5, **b)], img),
    }
    rng = np.random.default_rng(0)
    out = {}
    for name, (layers, shape) in nets.items():
        m = keras.Sequential([keras.Input(shape, batch_size=1), *layers])
        x = rng.integers(-128, 128, (6, *shape)).astype(np.int8)
        out[name] = (to_int8_tflite(m, [shape]), x)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--log", type=Path, default=REPO_ROOT / "build" / "model-mutants.jsonl")
    a = ap.parse_args(argv)
    ms = models()
    a.log.parent.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    t0 = time.monotonic()
    with open(a.log, "w") as log:
        def progress(i: int, v: object) -> None:
            counts[v.kind] += 1  # type: ignore[attr-defined]
            log.write(json.dumps(v.__dict__) + "\n")  # type: ignore[attr-defined]
            log.flush()
            if v.kind in ("crash", "wrong"):  # type: ignore[attr-defined]
                print(f"  {v.kind.upper()}: {v.mutation}: {v.detail}", flush=True)  # type: ignore[attr-defined]
            if (i + 1) % 100 == 0:
                print(f"{i + 1} mutants: {dict(counts)} ({time.monotonic() - t0:.0f} s)", flush=True)

        campaign(ms, a.n, a.seed, REPO_ROOT / "build" / "model-mutants-work", progress)
    print(f"{a.n} mutants of {len(ms)} models (seed {a.seed}): refused {counts['refused']}, "
          f"accepted {counts['accepted']} (byte-equal to tflite-micro), wrong {counts['wrong']}, "
          f"crashes {counts['crash']}; {time.monotonic() - t0:.0f} s")
    return 1 if counts["crash"] or counts["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
