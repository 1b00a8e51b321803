"""Full-int8 post-training quantization and int8 evaluation on the TFLM runtime.

* :func:`convert_int8` — Keras model → full-int8 ``.tflite`` (batch 1, int8 input
  and output, ``TFLITE_BUILTINS_INT8`` only, calibrated on training data) and a
  check that every op is one the tinyfed runtime implements.
* :func:`read_io` / :func:`op_names` — the model's input/output tensors
  (shape, dtype, scale, zero point) and op list, read from the flatbuffer with the
  schema that ships in the tflite-micro wheel (no interpreter needed).
* :func:`quantize`, :func:`dequantize` — float ↔ int8 with a tensor's parameters,
  rounding like TFLite's QUANTIZE op (half away from zero, saturating).
* :func:`run_tflm`, :func:`evaluate_int8` — inference with the **tflite-micro**
  Python runtime, the golden reference our C runtime is held bit-exact to (tf.lite
  differs from TFLM by ±1 in FULLY_CONNECTED, see ENVIRONMENT.md).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..facts.errors import TinyfedError
from ..compile.ops import supported_ops
from .data import Normalization

__all__ = [
    "SUPPORTED_OPS",
    "quantize_inputs",
    "Int8Eval",
    "QuantParams",
    "TensorInfo",
    "UnsupportedOpsError",
    "check_supported_ops",
    "convert_int8",
    "dequantize",
    "evaluate_int8",
    "op_names",
    "quantize",
    "raw_input_affine",
    "read_io",
    "run_tflm",
]

#: Ops the tinyfed C runtime implements (firmware/include/tfd/model.h TFD_OP_LIST).
# The ops tinyfed's runtime has kernels for: read from the lowering registry
# (toolchain/compile/ops/, whose op ids come from firmware/include/tfd/model.h), so this
# list cannot drift from the C side.  SQUEEZE / EXPAND_DIMS lower to RESHAPE.
SUPPORTED_OPS: frozenset[str] = frozenset(supported_ops())


class UnsupportedOpsError(TinyfedError, ValueError):
    """The converted model uses ops the tinyfed runtime does not implement."""


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    return fb


_TENSOR_TYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization ``real = scale * (q - zero_point)`` (per tensor)."""

    scale: float
    zero_point: int

    def to_json(self) -> dict[str, float | int]:
        return {"scale": self.scale, "zero_point": self.zero_point}


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output as stored in the flatbuffer."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: QuantParams | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "quant": self.quant.to_json() if self.quant else None,
        }


def _model(buf: bytes) -> Any:
    fb = _schema()
    if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (missing TFL3 identifier)")
    return fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(bytearray(buf), 0))


def op_names(buf: bytes) -> list[str]:
    """Builtin op names of the main subgraph, in execution order."""
    fb = _schema()
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    m = _model(buf)
    out = []
    for op in m.subgraphs[0].operators or []:
        code = m.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == fb.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if code.customCode else "?"
            out.append(f"CUSTOM:{custom}")
        else:
            out.append(names.get(builtin, f"UNKNOWN_{builtin}"))
    return out


def check_supported_ops(buf: bytes) -> list[str]:
    """Return the op list; raise :class:`UnsupportedOpsError` if any is unsupported."""
    ops = op_names(buf)
    bad = sorted(set(ops) - SUPPORTED_OPS)
    if bad:
        raise UnsupportedOpsError(
            f"model uses op(s) the tinyfed runtime does not implement: {', '.join(bad)}"
        )
    return ops


def _tensor_info(m: Any, index: int) -> TensorInfo:
    t = m.subgraphs[0].tensors[index]
    q = t.quantization
    quant = None
    if q is not None and q.scale is not None and len(q.scale) > 0:
        if len(q.scale) != 1:
            raise ValueError(f"tensor {index}: per-channel quantization on a model I/O tensor")
        quant = QuantParams(float(q.scale[0]), int(q.zeroPoint[0]))
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
    return TensorInfo(name, tuple(int(d) for d in t.shape), _TENSOR_TYPES.get(t.type, str(t.type)),
                      quant)


def read_io(buf: bytes) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Inputs and outputs of the main subgraph (shape, dtype, quantization)."""
    m = _model(buf)
    sg = m.subgraphs[0]
    return ([_tensor_info(m, int(i)) for i in sg.inputs],
            [_tensor_info(m, int(i)) for i in sg.outputs])


def quantize(x: np.ndarray, qp: QuantParams) -> np.ndarray:
    """float → int8 as TFLite's QUANTIZE: ``clamp(round(x / scale) + zp)``, ties away from 0."""
    v = np.asarray(x, dtype=np.float32) / np.float32(qp.scale)
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)
    out: np.ndarray = np.clip(r + qp.zero_point, -128, 127).astype(np.int8)
    return out


def quantize_inputs(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float inputs -> the model's int8 input (TFLite QUANTIZE: ties away from zero, saturate)."""
    return quantize(x, QuantParams(scale=float(scale), zero_point=int(zero_point)))


def raw_input_affine(norm: Normalization, qp: QuantParams) -> dict[str, list[float]]:
    """Per-channel ``mul``/``add`` taking *raw* sensor values straight to model int8.

    ``q = clamp(round(raw * mul[c] + add[c]), -128, 127)`` equals quantizing the
    normalized value ``(raw - mean[c]) / std[c]`` (up to float rounding), so a
    device can feed its sensors to the model without a float normalization pass.
    """
    mean = np.asarray(norm.mean, dtype=np.float64)
    std = np.asarray(norm.std, dtype=np.float64)
    mul = 1.0 / (std * qp.scale)
    add = qp.zero_point - mean * mul
    return {"mul": [float(v) for v in mul], "add": [float(v) for v in add]}


def dequantize(q: np.ndarray, qp: QuantParams) -> np.ndarray:
    """int8 → float: ``scale * (q - zero_point)``."""
    return (np.float32(qp.scale) * (np.asarray(q, dtype=np.int32) - qp.zero_point)).astype(
        np.float32
    )


def convert_int8(
    model: Any,
    representative: np.ndarray,
    *,
    max_samples: int = 1000,
    seed: int = 0,
    check_ops: bool = True,
) -> bytes:
    """Convert a Keras model to a full-int8 ``.tflite`` with batch size 1.

    Parameters
    ----------
    model
        A functional Keras model with a single input (any batch size: it is
        cloned with batch size 1 for export).
    representative
        Calibration inputs ``(N, *input_shape)`` (training data, normalized).
    max_samples
        Calibrate on at most this many samples (a seeded random subset).
    check_ops
        Raise :class:`UnsupportedOpsError` if the result uses ops outside
        :data:`SUPPORTED_OPS`.
    """
    import tensorflow as tf

    rep = np.asarray(representative, dtype=np.float32)
    if rep.ndim < 2 or len(rep) == 0:
        raise ValueError(f"representative data must be (N, ...) with N > 0, got {rep.shape}")
    if len(rep) > max_samples:
        idx = np.random.default_rng(seed).choice(len(rep), max_samples, replace=False)
        rep = rep[np.sort(idx)]
    from .models import with_batch_size

    # A batch-1 clone: with a dynamic batch the graph gains SHAPE/STRIDED_SLICE/PACK.
    export = with_batch_size(model, 1)

    def representative_dataset() -> Iterator[list[np.ndarray]]:
        for sample in rep:
            yield [sample[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(export)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # Keras prints "Saved artifact at ..."; the converter warns that int8 I/O has
    # no user-given input statistics (calibration provides them).
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        buf = bytes(converter.convert())
    ins, outs = read_io(buf)
    if len(ins) != 1 or ins[0].dtype != "int8" or ins[0].shape[0] != 1:
        raise ValueError(f"conversion did not give one int8 batch-1 input: {ins}")
    if any(o.dtype != "int8" for o in outs):
        raise ValueError(f"conversion did not give int8 outputs: {outs}")
    if check_ops:
        check_supported_ops(buf)
    return buf


def run_tflm(buf: bytes, x_int8: np.ndarray, output_index: int = 0) -> np.ndarray:
    """Run the tflite-micro runtime on each int8 sample; returns int8 outputs ``(N, ...)``.

    ``x_int8`` is ``(N, *input_shape)`` without the batch-1 axis, already quantized.
    """
    from tflite_micro.python.tflite_micro import runtime

    ins, outs = read_io(buf)
    in_shape = ins[0].shape
    x = np.asarray(x_int8)
    if x.dtype != np.int8:
        raise TypeError(f"inputs must be int8 (quantize them first), got {x.dtype}")
    if tuple(x.shape[1:]) != tuple(in_shape[1:]):
        raise ValueError(f"input samples have shape {x.shape[1:]}, model wants {in_shape[1:]}")
    interp = runtime.Interpreter.from_bytes(buf)
    result = np.empty((len(x),) + tuple(outs[output_index].shape[1:]), dtype=np.int8)
    for i in range(len(x)):
        interp.set_input(x[i].reshape(in_shape), 0)
        interp.invoke()
        result[i] = interp.get_output(output_index).reshape(result.shape[1:])
    return result


@dataclass(frozen=True)
class Int8Eval:
    """Result of :func:`evaluate_int8`."""

    accuracy: float
    outputs_int8: np.ndarray  # (N, num_classes) raw int8 model outputs
    logits: np.ndarray  # dequantized outputs
    x_int8: np.ndarray  # the quantized inputs that were fed


def evaluate_int8(buf: bytes, x_float: np.ndarray, y: Sequence[int] | np.ndarray) -> Int8Eval:
    """Quantize float inputs with the model's input parameters, run TFLM, score top-1."""
    ins, outs = read_io(buf)
    if ins[0].quant is None or outs[0].quant is None:
        raise ValueError("model input/output is not quantized")
    x_q = quantize(x_float, ins[0].quant)
    out_q = run_tflm(buf, x_q)
    logits = dequantize(out_q, outs[0].quant)
    acc = float(np.mean(np.argmax(out_q, axis=-1) == np.asarray(y)))
    return Int8Eval(acc, out_q, logits, x_q)
