"""A small federated-learning setup for tests (seconds, not minutes).

digits: a tiny Keras MLP pre-trained briefly on a small "vendor" subset of the
training split, full-int8 quantized, emitted as C with a training plan (the
last two FULLY_CONNECTED layers train); the rest of the training split is
divided non-IID into device shards (int8, model-quantized); the held-out split
stays on the host for evaluation."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


@dataclass
class FlSetup:
    model_dir: Path
    model_hash: bytes
    n_params: int
    shards: list[tuple[np.ndarray, np.ndarray]]  # int8 inputs, labels
    test: tuple[np.ndarray, np.ndarray]
    tflite: bytes


@functools.lru_cache(maxsize=None)
def digits_student_tflite(*, pretrain: int = 120, hidden: int = 24, epochs: int = 25, seed: int = 0) -> bytes:
    """The small digits student, pre-trained on ``pretrain`` samples of the training split
    and full-int8 quantized.  Trained once per test session for each set of arguments
    (TensorFlow's training and conversion are the slow part): every test that asks for
    the same student gets the same .tflite."""
    import keras

    from quantized_models import to_int8_tflite
    from tinyfed_toolchain.ml.data import load_dataset

    ds = load_dataset("digits", seed=seed)
    order = np.random.default_rng(seed).permutation(len(ds.y_train))
    pre, rest = order[:pretrain], order[pretrain:]
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8, 8, 1), batch_size=1), keras.layers.Flatten(),
                              keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ds.x_train[pre], ds.y_train[pre], epochs=epochs, batch_size=16, verbose=0)
    xr = ds.x_train[rest]
    return to_int8_tflite(model, [(8, 8, 1)], rep_fn=lambda g: [xr[g.integers(len(xr))][None]])


def make_digits_setup(root: Path, *, devices: int = 3, pretrain: int = 120, hidden: int = 24,
                      epochs: int = 25, seed: int = 0, alpha: float = 0.5, per_device: int | None = None) -> FlSetup:
    from tinyfed_toolchain.ml.quantize import quantize_inputs
    from tinyfed_toolchain.ml.data import load_dataset, partition
    from tinyfed_toolchain.compile.emit_c import emit_model
    from tinyfed_toolchain.training.emit import emit_train
    from tinyfed_toolchain.compile.plan import plan_model
    from tinyfed_toolchain.compile.tflite_reader import read_tflite
    from tinyfed_toolchain.training.plan import build_train_plan
    from tinyfed_toolchain.training.schemes import select_last_k

    tflite = digits_student_tflite(pretrain=pretrain, hidden=hidden, epochs=epochs, seed=seed)
    ds = load_dataset("digits", seed=seed)
    rest = np.random.default_rng(seed).permutation(len(ds.y_train))[pretrain:]
    graph = read_tflite(tflite)
    plan = plan_model(graph, tflite)
    model_dir = Path(root) / "model_c"
    emit_model(plan, model_dir, name="digits_fl_test")
    tp = build_train_plan(plan, select_last_k(plan, 2))
    emit_train(tp, model_dir, name="digits_fl_test")
    in_t = graph.tensor(graph.inputs[0])

    def q(x: np.ndarray) -> np.ndarray:
        return quantize_inputs(x, in_t.scale, in_t.zero_point).reshape(len(x), -1)

    parts = partition(ds.x_train[rest], ds.y_train[rest], devices, scheme="dirichlet", alpha=alpha, seed=seed)
    shards = [(q(x)[:per_device], y[:per_device].astype(np.uint8)) if per_device else (q(x), y.astype(np.uint8))
              for x, y in parts]
    return FlSetup(model_dir, bytes(plan.model_hash), tp.n_params, shards,
                   (q(ds.x_test), ds.y_test.astype(np.uint8)), tflite)


def make_digits_build(root: Path, *, devices: int = 3, per_device: int = 100, images: bool = False,
                      head_init: str = "reset-head", **build_options: object) -> Path:
    """A `tinyfed build --tflite` of a small digits student (make_digits_setup) into root/b:
    model tables, training plan, one shard per device (and images with ``images=True``)."""
    from tinyfed_toolchain.build import BuildOptions, run_build

    setup = make_digits_setup(root / "setup", devices=devices, per_device=per_device)
    (root / "m.tflite").write_bytes(setup.tflite)
    run_build(BuildOptions(tflite=root / "m.tflite", dataset="digits", out_dir=root / "b", devices=devices,
                           images=images, head_init=head_init, **build_options),  # type: ignore[arg-type]
              log=lambda s: None)
    return root / "b"
