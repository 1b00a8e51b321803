"""Helpers for tests: build small Keras models, convert them to full-int8 .tflite,
and check tinyfed's emitted C against the tflite-micro runtime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def to_int8_tflite(
    model: "object",
    input_shapes: Sequence[Sequence[int]],
    *,
    seed: int = 0,
    n_rep: int = 64,
    rep_scale: float = 1.0,
    rep_fn: Callable[[np.random.Generator], list[np.ndarray]] | None = None,
    inference_input_type: str = "int8",
    inference_output_type: str = "int8",
) -> bytes:
    """Full-int8 post-training quantization of a Keras model (int8 in/out).

    ``inference_input_type`` / ``inference_output_type`` ("int8" or "float32")
    choose the model's interface types; with "float32" the converter adds a
    QUANTIZE op after the input / a DEQUANTIZE op before the output.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def rep():  # type: ignore[no-untyped-def]
        for _ in range(n_rep):
            if rep_fn is not None:
                yield rep_fn(rng)
            else:
                yield [
                    (rng.standard_normal((1, *s)) * rep_scale).astype(np.float32) for s in input_shapes
                ]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    types = {"int8": tf.int8, "float32": tf.float32}
    conv.inference_input_type = types[inference_input_type]
    conv.inference_output_type = types[inference_output_type]
    return bytes(conv.convert())


def random_int8_inputs(tflite: bytes, n: int, seed: int = 0) -> np.ndarray:
    from tinyfed_toolchain.tflite_reader import read_tflite

    g = read_tflite(tflite)
    t = g.tensor(g.inputs[0])
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(n, *t.shape), dtype=np.int8)


def assert_bit_exact(tflite: bytes, tmp_path: Path, n: int = 32, seed: int = 0, inputs: np.ndarray | None = None) -> None:
    """Emitted C == tflite-micro runtime on ``n`` random int8 inputs, byte for byte."""
    from tinyfed_toolchain.verify import verify

    x = inputs if inputs is not None else random_int8_inputs(tflite, n, seed)
    res = verify(tflite, x, tmp_path / "verify")
    assert res.total == x.shape[0]
    assert res.mismatches == 0, f"mismatches: {res.mismatches} of {res.total} (max |diff| {res.max_abs_diff})"


def op_names(tflite: bytes) -> list[str]:
    from tinyfed_toolchain.tflite_reader import read_tflite

    return [op.name for op in read_tflite(tflite).ops]
