"""Training benchmark per scheme (prints figures; not a test).

For the digits student and each training scheme — last layer, biases only,
sparse update (contribution analysis under a memory budget), LoRA — on an
emulated board:

* training SRAM from the plan (``TFD_TRAIN_MEM_BYTES``: the shared
  arena / float work region plus parameters, gradients and momentum), next to
  the inference arena;
* flash and SRAM of a linked image that trains (``firmware/src/app/bench_train.c``)
  and of the inference-only benchmark image (``bench_infer``);
* instructions per training sample (forward + backward + optimizer share)
  vs per int8 inference and per float forward, under QEMU ``-icount``
  (instruction counts, not cycles);
* the on-device loss before / after a short local run on the benchmark samples.

Usage::

    .venv/bin/python bench/training.py [--board mps2-an386] [--samples 32] [--epochs 2]
                                       [--budget-kib 16] [--tflite MODEL.tflite]

The student is ``build/bench/digits/model.tflite`` if ``tinyfed build`` made
one, else a small digits student trained here (tests/train_reference.py).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (HERE, REPO / "tests", REPO):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from icount import BUILD_DIR, DEFAULT_SHIFT, bench_infer, parse_kv, run_counted  # noqa: E402

from tinyfed_toolchain.compile.emit_c import banner, emit_model  # noqa: E402
from tinyfed_toolchain.training.emit import emit_train  # noqa: E402
from tinyfed_toolchain.image.firmware import build_image  # noqa: E402
from tinyfed_toolchain.compile.plan import Plan, plan_model  # noqa: E402
from tinyfed_toolchain.compile.tflite_reader import read_tflite  # noqa: E402
from tinyfed_toolchain.training.plan import Selection, TrainPlan, build_train_plan  # noqa: E402
from tinyfed_toolchain.training.schemes import select_biases, select_last_k, select_lora  # noqa: E402


def write_bench_train_data(model_dir: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """``bench_train_data.h``: the samples the benchmark app trains on."""
    n = len(y)
    rows = ",\n".join("    {" + ", ".join(str(int(v)) for v in x[i].reshape(-1)) + "}" for i in range(n))
    text = (
        banner("training benchmark samples")
        + "#ifndef TFD_BENCH_TRAIN_DATA_H\n#define TFD_BENCH_TRAIN_DATA_H\n#include <stdint.h>\n"
        + '#include "model_data.h"\n'
        + f"#define TFD_BENCH_N {n}u\n"
        + "static const int8_t tfd_bench_x[TFD_BENCH_N][TFD_MODEL_INPUT_BYTES] __attribute__((aligned(16))) = {\n"
        + rows + "\n};\n"
        + "static const uint8_t tfd_bench_y[TFD_BENCH_N] = {" + ", ".join(str(int(v)) for v in y) + "};\n"
        + "#endif\n"
    )
    path = Path(model_dir) / "bench_train_data.h"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


@dataclass
class SchemeResult:
    scheme: str
    plan: TrainPlan
    kv: dict[str, str]
    image_flash: int
    image_ram: int

    def i(self, key: str) -> int:
        return int(self.kv[key])


def bench_scheme(mp: Plan, sel: Selection, x: np.ndarray, y: np.ndarray, board: str = "mps2-an386",
                 shift: int = DEFAULT_SHIFT, epochs: int = 2, batch: int = 8, lr_milli: int = 50,
                 timeout: float = 600.0, label: str | None = None) -> SchemeResult:
    """Emit model + plan, build ``bench_train`` for ``board``, run it under -icount."""
    name = label or sel.scheme
    d = BUILD_DIR / "train" / board / name
    emit_model(mp, d, name="digits")
    tp = build_train_plan(mp, sel)
    emit_train(tp, d, name="digits")
    write_bench_train_data(d, x, y)
    info = build_image(board, d, d / "image", app="bench_train", quiet=True,
                       defines={"TFD_BENCH_EPOCHS": epochs, "TFD_BENCH_BATCH": batch, "TFD_BENCH_LR_MILLI": lr_milli})
    code, text = run_counted(info.elf, board, shift, timeout=timeout)
    kv = parse_kv(text)
    if code != 0:
        raise RuntimeError(f"bench_train ({name}) exited {code}:\n{text}")
    return SchemeResult(name, tp, kv, info.flash_used, info.ram_used)


def default_student(tflite: Path | None) -> tuple[bytes, np.ndarray, np.ndarray]:
    """(tflite, int8 held-out inputs, labels)."""
    if tflite is None:
        built = REPO / "build" / "bench" / "digits"
        if (built / "model.tflite").exists() and (built / "test_x_int8.npy").exists() \
                and (built / "test_y.npy").exists():
            return ((built / "model.tflite").read_bytes(), np.load(built / "test_x_int8.npy"),
                    np.load(built / "test_y.npy").astype(np.uint8))
        from train_reference import DigitsStudent

        st = DigitsStudent()
        x, y = st.shard(400)
        return st.tflite, x, y
    from tinyfed_toolchain.ml.quantize import quantize_inputs
    from tinyfed_toolchain.ml.data import load_dataset

    tfl = Path(tflite).read_bytes()
    g = read_tflite(tfl)
    t = g.tensor(g.inputs[0])
    ds = load_dataset("digits")
    return tfl, quantize_inputs(ds.x_test, t.scale, t.zero_point), ds.y_test.astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="mps2-an386")
    ap.add_argument("--samples", type=int, default=32, help="samples the device trains on")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--budget-kib", type=int, default=16, help="sparse update: training SRAM budget")
    ap.add_argument("--lora-rank", type=int, default=4)
    ap.add_argument("--tflite", type=Path, default=None)
    a = ap.parse_args(argv)

    from tinyfed_toolchain.training.sparse import select_sparse

    tfl, x_all, y_all = default_student(a.tflite)
    mp = plan_model(read_tflite(tfl), tfl)
    x, y = x_all[: a.samples], y_all[: a.samples]
    sparse, rep = select_sparse(mp, x_all[:128], y_all[:128], a.budget_kib * 1024,
                                BUILD_DIR / "train" / "contribution")
    schemes: list[tuple[str, Selection, int]] = [
        ("last-layer", select_last_k(mp, 1), 50),
        ("bias-only", select_biases(mp), 10),
        (f"sparse<={a.budget_kib}KiB", sparse, 20),
        (f"lora-r{a.lora_rank}", select_lora(mp, a.lora_rank), 100),
    ]
    infer = bench_infer(write_infer_model(mp), a.board, DEFAULT_SHIFT, runs=4)
    inf_flash = int(infer["memory"].split("flash ")[1].split(" /")[0])
    inf_ram = int(infer["memory"].split("SRAM ")[1].split(" /")[0])
    results = [bench_scheme(mp, sel, x, y, a.board, DEFAULT_SHIFT, a.epochs, a.batch, lr, label=label)
               for label, sel, lr in schemes]

    print(f"training benchmark on {a.board}: digits student, {len(mp.layers)} layers "
          f"({', '.join(l.op for l in mp.layers)})")
    print(f"instructions under QEMU -icount shift={DEFAULT_SHIFT} (instruction counts, not cycles); "
          f"{a.samples} samples x {a.epochs} epochs, batch {a.batch}")
    print(f"inference-only image: flash {inf_flash:,} B, SRAM {inf_ram:,} B, int8 arena {mp.arena_bytes:,} B, "
          f"{int(infer['insns_mean']):,} insns/inference")
    print()
    hdr = (f"{'scheme':<16} {'params':>7} {'train SRAM':>10} {'region':>7} {'saved':>6} {'state':>7} "
           f"{'image SRAM':>10} {'image flash':>11} {'insns/infer':>11} {'insns/fwd':>10} {'insns/train':>11} "
           f"{'train/infer':>11} {'loss before->after':>19}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        m = r.plan.memory
        ratio = r.i("insns_train") / max(r.i("insns_infer"), 1)
        print(f"{r.scheme:<16} {r.plan.n_params:>7,} {m.mem_bytes:>10,} {m.region_bytes:>7,} {m.saved_bytes:>6,} "
              f"{m.state_bytes:>7,} {r.image_ram:>10,} {r.image_flash:>11,} {r.i('insns_infer'):>11,} "
              f"{r.i('insns_predict'):>10,} {r.i('insns_train'):>11,} {ratio:>10.1f}x "
              f"{r.i('loss_before_u') / 1e6:>9.3f}->{r.i('loss_after_u') / 1e6:.3f}")
    print()
    print("train SRAM = TFD_TRAIN_MEM_BYTES (plan): region = max(int8 arena, float work area) + state "
          "(params, grads, momentum); saved = bytes kept from forward to backward.")
    print("\n".join(rep.lines()))
    for r in results:
        print(f"\n[{r.scheme}] {r.plan.memory.report()}")
    return 0


def write_infer_model(mp: Plan) -> Path:
    d = BUILD_DIR / "train" / "infer_model"
    emit_model(mp, d, name="digits")
    return d


if __name__ == "__main__":
    raise SystemExit(main())
