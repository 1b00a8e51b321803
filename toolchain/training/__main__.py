"""``python -m tinyfed_toolchain.training MODEL.tflite OUT_DIR --scheme S``: emit a model's
tables and a training plan for it, and print the training memory report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..compile.emit_c import emit_model
from ..compile.plan import plan_model
from ..compile.tflite_reader import ModelError, read_tflite
from ..ml.data import load_dataset
from ..ml.quantize import quantize_inputs
from .emit import emit_train
from .layers import TrainPlanError
from .plan import TrainOptions, build_train_plan, describe_selection
from .schemes import GRAMMAR, select_scheme


def main(argv: list[str] | None = None) -> int:
    """``python -m tinyfed_toolchain.training MODEL.tflite OUT_DIR --scheme last1``:
    emit model_data.* and train_data.* into OUT_DIR and print the memory report."""
    ap = argparse.ArgumentParser(description="emit a training plan next to the model tables")
    ap.add_argument("tflite", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--scheme", default="last1", help=GRAMMAR)
    ap.add_argument("--domain", choices=["real", "quantized"], default="real")
    ap.add_argument("--no-qas", action="store_true")
    ap.add_argument("--no-momentum", action="store_true")
    ap.add_argument("--dataset", default="digits", help="samples for the sparse contribution analysis")
    a = ap.parse_args(argv)
    try:
        tfl = a.tflite.read_bytes()
        mp = plan_model(read_tflite(tfl), tfl)
        x = y = None
        if a.scheme.startswith("sparse"):
            ds = load_dataset(a.dataset)
            t = mp.graph.tensor(mp.graph.inputs[0])
            x = quantize_inputs(ds.x_train[:256], t.scale, t.zero_point).reshape((-1, *t.shape[1:]))
            y = ds.y_train[:256]
        sel = select_scheme(mp, a.scheme, x=x, y=y, work_dir=a.out_dir / "contribution")
        if sel is None:
            raise TrainPlanError("scheme 'none' trains nothing: nothing to emit")
        tp = build_train_plan(mp, sel, TrainOptions(domain=a.domain, qas=not a.no_qas, momentum=not a.no_momentum))
    except (ModelError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    emit_model(mp, a.out_dir, name=a.tflite.stem)
    emit_train(tp, a.out_dir, name=a.tflite.stem)
    print(f"{a.out_dir}/train_data.c: scheme {tp.scheme}, {tp.n_params} parameters, "
          f"float tail from layer {tp.first_layer} ({', '.join(t.op for t in tp.tail)})")
    print(describe_selection(tp))
    print(tp.memory.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
