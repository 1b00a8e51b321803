"""The representative int8 models the kernel benchmarks run (not tests).

Besides the built-in students (``bench/inference.py ensure_model``: digits and
BasicMotions, trained by ``tinyfed build``), five small models cover what
Cortex-M users deploy, each a Keras graph converted to full int8 with a seeded
representative dataset (untrained weights: timing and exactness only):

=================  ===========================================================
``mlp_pc``         600 → 32 → 16 → 4 MLP, FULLY_CONNECTED per-channel (TF 2.21's
                   default), softmax
``mlp_pt``         the same MLP with per-tensor FULLY_CONNECTED weights
``cnn_dw_pool``    32×32×3 image: conv 3×3 → max pool → depthwise 3×3 → 1×1 conv
                   → average pool → depthwise 3×3 (stride 2) → 1×1 conv → mean
                   → dense → softmax
``conv1d_mean``    128×6 series: Conv1D k5 ×2 (strided) → global mean → dense
                   → softmax
``residual_add``   12×12×8: conv 3×3 → conv 3×3 + the block input (ADD) → ReLU
                   → max pool → dense
``ds_cnn``         keyword-spotting DS-CNN shape (49×10 features): conv 10×4
                   stride 2 (64) → 4 × (depthwise 3×3 → 1×1 conv 64) → average
                   pool 25×5 → dense 12 → softmax
``resnet``         16×16×3: conv 3×3 (16) → 2 residual blocks (conv 3×3 → conv
                   3×3 → ADD → ReLU) → average pool 4 → dense 10 → softmax
=================  ===========================================================

``python bench/bench_models.py [OUT_DIR]`` writes them (default
``build/bench-models/``) and prints their paths.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a script from a checkout
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_DIR = REPO_ROOT / "build" / "bench-models"


def _mlp() -> Any:
    import keras

    inp = keras.Input((600,), batch_size=1)
    h = keras.layers.Dense(32, activation="relu")(inp)
    h = keras.layers.Dense(16, activation="relu")(h)
    out = keras.layers.Dense(4, activation="softmax")(h)
    return keras.Model(inp, out)


def _cnn_dw_pool() -> Any:
    import keras

    L = keras.layers
    inp = keras.Input((32, 32, 3), batch_size=1)
    h = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = L.MaxPooling2D(2)(h)
    h = L.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    h = L.Conv2D(16, 1, activation="relu")(h)
    h = L.AveragePooling2D(2)(h)
    h = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(h)
    h = L.Conv2D(32, 1, activation="relu")(h)
    h = L.GlobalAveragePooling2D()(h)
    out = L.Dense(10, activation="softmax")(h)
    return keras.Model(inp, out)


def _conv1d_mean() -> Any:
    import keras

    L = keras.layers
    inp = keras.Input((128, 6), batch_size=1)
    h = L.Conv1D(16, 5, padding="same", activation="relu")(inp)
    h = L.Conv1D(24, 5, strides=2, padding="same", activation="relu")(h)
    h = L.GlobalAveragePooling1D()(h)
    out = L.Dense(4, activation="softmax")(h)
    return keras.Model(inp, out)


def _residual_add() -> Any:
    import keras

    L = keras.layers
    inp = keras.Input((12, 12, 8), batch_size=1)
    h = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = L.Conv2D(8, 3, padding="same")(h)
    h = L.Add()([h, inp])
    h = L.ReLU()(h)
    h = L.MaxPooling2D(2)(h)
    h = L.Flatten()(h)
    out = L.Dense(4)(h)
    return keras.Model(inp, out)


def _ds_cnn() -> Any:
    import keras

    L = keras.layers
    inp = keras.Input((49, 10, 1), batch_size=1)
    h = L.Conv2D(64, (10, 4), strides=2, padding="same", activation="relu")(inp)
    for _ in range(4):
        h = L.DepthwiseConv2D(3, padding="same", activation="relu")(h)
        h = L.Conv2D(64, 1, activation="relu")(h)
    h = L.AveragePooling2D((25, 5))(h)
    h = L.Flatten()(h)
    out = L.Dense(12, activation="softmax")(h)
    return keras.Model(inp, out)


def _resnet() -> Any:
    import keras

    L = keras.layers
    inp = keras.Input((16, 16, 3), batch_size=1)
    h = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    for _ in range(2):
        r = L.Conv2D(16, 3, padding="same", activation="relu")(h)
        r = L.Conv2D(16, 3, padding="same")(r)
        h = L.ReLU()(L.Add()([h, r]))
    h = L.AveragePooling2D(4)(h)
    h = L.Flatten()(h)
    out = L.Dense(10, activation="softmax")(h)
    return keras.Model(inp, out)


#: name -> (Keras builder, input shape, per-tensor FULLY_CONNECTED weights)
MODELS: dict[str, tuple[Callable[[], Any], tuple[int, ...], bool]] = {
    "mlp_pc": (_mlp, (600,), False),
    "mlp_pt": (_mlp, (600,), True),
    "cnn_dw_pool": (_cnn_dw_pool, (32, 32, 3), False),
    "conv1d_mean": (_conv1d_mean, (128, 6), False),
    "residual_add": (_residual_add, (12, 12, 8), False),
    "ds_cnn": (_ds_cnn, (49, 10, 1), False),
    "resnet": (_resnet, (16, 16, 3), False),
}


def convert(model: Any, shape: tuple[int, ...], per_tensor_dense: bool, seed: int = 0) -> bytes:
    """Full-int8 conversion (int8 in/out) with a seeded Gaussian representative set."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def rep():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield [rng.standard_normal((1, *shape)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    if per_tensor_dense:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return bytes(conv.convert())


def representative_models(out_dir: Path = DEFAULT_DIR, names: list[str] | None = None) -> list[Path]:
    """Write (once) and return the ``.tflite`` of each model in ``names`` (default: all)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(MODELS):
        path = out_dir / f"{name}.tflite"
        if not path.is_file():
            import keras

            build, shape, per_tensor = MODELS[name]
            keras.utils.set_random_seed(0)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(convert(build(), shape, per_tensor))
            tmp.replace(path)
        paths.append(path)
    return paths


def student_models() -> list[Path]:
    """The trained built-in students (digits, BasicMotions), built once by bench/inference.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from inference import ensure_model

    return [ensure_model(ds) / "model.tflite" for ds in ("digits", "basicmotions")]


if __name__ == "__main__":
    for p in representative_models(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR):
        print(p)
