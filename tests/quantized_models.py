"""Helpers for tests: build small Keras models, convert them to full-int8 .tflite,
edit them, and check tinyfed's emitted C against the tflite-micro runtime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

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


# Shapes of a constant operand broadcast against an [h, w, c] activation (batch 1):
# along channels, rows, columns, the whole tensor, a scalar-like [1], a bare [c].
BCAST_SHAPES: list[Callable[[int, int, int], tuple[int, ...]]] = [
    lambda h, w, c: (1, 1, 1, c),
    lambda h, w, c: (1, h, 1, 1),
    lambda h, w, c: (1, 1, w, c),
    lambda h, w, c: (1, h, w, c),
    lambda h, w, c: (1,),
    lambda h, w, c: (c,),
]


def const_operand_layer(kind: str, shape: tuple[int, ...], const_first: bool) -> Any:
    """A Keras layer combining its input with a trainable constant of ``shape``
    (the converter turns it into a binary op with a constant, broadcast operand).
    ``kind``: "add", "sub", "mul", "max" or "min"."""
    import keras

    def combine(a: Any, b: Any) -> Any:
        if kind == "add":
            return a + b
        if kind == "sub":
            return a - b
        if kind == "mul":
            return a * b
        if kind == "max":
            return keras.ops.maximum(a, b)
        if kind == "min":
            return keras.ops.minimum(a, b)
        raise ValueError(kind)

    class ConstOperand(keras.layers.Layer):  # type: ignore[misc,name-defined]
        def build(self, input_shape: Any) -> None:
            self.c = self.add_weight(shape=shape, initializer=keras.initializers.RandomNormal(0.3, 1.0))

        def call(self, x: Any) -> Any:
            return combine(self.c, x) if const_first else combine(x, self.c)

    return ConstOperand()


def random_int8_inputs(tflite: bytes, n: int, seed: int = 0) -> np.ndarray:
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    g = read_tflite(tflite)
    t = g.tensor(g.inputs[0])
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(n, *t.shape), dtype=np.int8)


def assert_bit_exact(
    tflite: bytes, tmp_path: Path, n: int = 32, seed: int = 0, inputs: np.ndarray | list[np.ndarray] | None = None
) -> Any:
    """Emitted C == tflite-micro runtime on ``n`` random int8 inputs (or ``inputs``:
    one array, or one per model input), byte for byte.  Returns the VerifyResult and
    prints how many samples and output bytes were compared (visible with ``-s``)."""
    from tinyfed_toolchain.verify import verify

    x = inputs if inputs is not None else random_int8_inputs(tflite, n, seed)
    res = verify(tflite, x, tmp_path / "verify")
    n_samples = (x[0] if isinstance(x, list) else x).shape[0]
    assert res.total == n_samples
    assert res.mismatches == 0, f"mismatches: {res.mismatches} of {res.total} (max |diff| {res.max_abs_diff})"
    compared = sum(int(o.nbytes) for o in res.outputs)
    print(f"bit-exact: {op_names(tflite)} samples {n_samples} bytes {compared} mismatches 0")
    return res


def lowered_params(tflite: bytes, op_name: str) -> list[dict[str, Any]]:
    """Each ``op_name`` op's lowered parameter fields and its input tensor."""
    from tinyfed_toolchain.compile.ops import lower_op
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    g = read_tflite(tflite)
    out = []
    for op in g.ops:
        if op.name == op_name:
            low = lower_op(g, op)
            assert low.params is not None
            out.append({"params": low.params.fields, "input": g.tensor(op.inputs[0])})
    return out


def op_names(tflite: bytes) -> list[str]:
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    return [op.name for op in read_tflite(tflite).ops]


# ---- editing a .tflite -------------------------------------------------------------

def patch_tflite(tflite: bytes, fn: Callable[[Any], None]) -> bytes:
    """Edit a .tflite through the schema's object API (e.g. a SOFTMAX beta)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    fn(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def ops_of(model: Any, name: str) -> list[Any]:
    """The operators of ``model`` (object API) whose builtin is ``name``."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    code = getattr(fb.BuiltinOperator, name)
    sg = model.subgraphs[0]
    return [
        o for o in sg.operators
        if max(model.operatorCodes[o.opcodeIndex].builtinCode, model.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode)
        == code
    ]


def set_quantization(tensor: Any, scale: float, zero_point: int) -> None:
    """Give a tensor (object API) a per-tensor scale and zero point."""
    tensor.quantization.scale = [float(scale)]
    tensor.quantization.zeroPoint = [int(zero_point)]


def code_grid_inputs(tflite: bytes) -> list[np.ndarray]:
    """One sample per model input holding every int8 code once along the input's
    single axis of extent 256 (other axes 1): unary ops on such an input see all
    256 codes; a binary op of a [256, 1] and a [1, 256] input sees all 65536 pairs."""
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    g = read_tflite(tflite)
    xs = []
    for i in g.inputs:
        shape = g.tensor(i).shape
        axes = [k for k, d in enumerate(shape) if d == 256]
        assert len(axes) == 1 and int(np.prod(shape)) == 256, f"input shape {shape} is not a code grid"
        view = [1] * len(shape)
        view[axes[0]] = 256
        xs.append(np.arange(-128, 128, dtype=np.int8).reshape(view)[None])
    return xs
