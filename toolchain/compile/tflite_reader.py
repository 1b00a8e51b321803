"""Read a ``.tflite`` flatbuffer into a small, typed graph IR.

Everything a ``.tflite`` file says is treated as untrusted: a malformed buffer,
a second subgraph, a custom op, an unsupported tensor type or an op the runtime
has no kernel for all raise :class:`ModelError` (or its subclass
:class:`UnsupportedOpError`) with a message that names the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..facts.errors import TinyfedError

__all__ = ["ModelError", "UnsupportedOpError", "Tensor", "Op", "Graph", "read_tflite", "OP_NAMES"]


class ModelError(TinyfedError, ValueError):
    """The model cannot be compiled (malformed, or outside what tinyfed supports)."""


class UnsupportedOpError(ModelError):
    """An operator (or an operator variant) has no tinyfed kernel."""


OP_NAMES: dict[int, str] = {
    v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)
}

_TYPE_NAMES: dict[int, str] = {
    v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_") and isinstance(v, int)
}

_NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    "INT8": np.dtype(np.int8),
    "UINT8": np.dtype(np.uint8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FLOAT32": np.dtype(np.float32),
}


@dataclass
class Tensor:
    """One tensor of the graph: shape, type, quantization and (if constant) data."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # "INT8", "INT32", "FLOAT32", ...
    scales: np.ndarray | None = None  # float32, length 1 or per channel
    zero_points: np.ndarray | None = None  # int64
    quant_dim: int = 0
    data: np.ndarray | None = None  # constant tensors only, already shaped

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def quantized(self) -> bool:
        return self.scales is not None and len(self.scales) > 0

    @property
    def per_channel(self) -> bool:
        return self.scales is not None and len(self.scales) > 1

    @property
    def scale(self) -> float:
        """Per-tensor scale (float32 value as stored), 0.0 if not quantized."""
        if self.scales is None or len(self.scales) == 0:
            return 0.0
        return float(np.float32(self.scales[0]))

    @property
    def zero_point(self) -> int:
        if self.zero_points is None or len(self.zero_points) == 0:
            return 0
        return int(self.zero_points[0])

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return _NUMPY_TYPES[self.dtype]


@dataclass
class Op:
    """One operator: builtin name, tensor indices (-1 = optional input absent), options."""

    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: Any = None  # the schema's <Name>OptionsT object, or None


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    description: str = ""
    consumers: dict[int, list[int]] = field(default_factory=dict)

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]


#: limits of what a microcontroller model can be (anything beyond is a corrupt file)
MAX_RANK = 8
MAX_ELEMENTS = 1 << 24


def _check_quantization(label: str, shape: tuple[int, ...], scales: np.ndarray, zps: np.ndarray | None,
                        qdim: int) -> None:
    """Scales finite and positive, one zero point per scale (or one for all), a per-channel
    vector as long as its dimension."""
    if not np.all(np.isfinite(scales)) or not np.all(scales > 0):
        raise ModelError(f"malformed .tflite: {label} has a quantization scale that is not a positive number")
    nz = 0 if zps is None else len(zps)
    if nz not in (1, len(scales)):
        raise ModelError(f"malformed .tflite: {label} has {len(scales)} scales and {nz} zero points")
    if len(scales) > 1:
        if not 0 <= qdim < len(shape) or shape[qdim] != len(scales):
            raise ModelError(f"malformed .tflite: {label} of shape {shape} has {len(scales)} per-channel scales "
                             f"along dimension {qdim}")


def _check_dataflow(tensors: list["Tensor"], ops: list["Op"], inputs: list[int], outputs: list[int]) -> None:
    """Every tensor an op reads is constant, a model input or written by an earlier op; the
    model's outputs are written by some op; no tensor an op touches is empty; int8 / int16
    tensors carry quantization parameters."""
    ready = set(inputs)
    for op in ops:
        for t in op.inputs:
            if t < 0:
                continue
            if not (tensors[t].is_const or t in ready):
                raise ModelError(f"malformed .tflite: op {op.index} ({op.name}) reads tensor {t} "
                                 f"({tensors[t].name!r}), which is not constant and no earlier op writes")
        for t in op.outputs:
            if t < 0:
                continue
            if tensors[t].is_const:
                raise ModelError(f"malformed .tflite: op {op.index} ({op.name}) writes constant tensor {t}")
            ready.add(t)
    for t in outputs:
        if t not in ready:
            raise ModelError(f"malformed .tflite: model output tensor {t} ({tensors[t].name!r}) is never written")
    used = set(inputs) | set(outputs) | {t for op in ops for t in (*op.inputs, *op.outputs) if t >= 0}
    for t in sorted(used):
        x = tensors[t]
        if x.shape and x.num_elements == 0:
            raise ModelError(f"malformed .tflite: tensor {t} ({x.name!r}) of shape {x.shape} has no elements")
        if x.dtype in ("INT8", "INT16") and not x.quantized:
            raise ModelError(f"malformed .tflite: {x.dtype} tensor {t} ({x.name!r}) has no quantization scale")


def _decode_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def read_tflite(buf: bytes) -> Graph:
    """Parse a ``.tflite`` flatbuffer.

    Raises
    ------
    ModelError
        if the buffer is not a well-formed single-subgraph TFLite model.
    """
    if len(buf) < 8:
        raise ModelError(f"malformed .tflite: {len(buf)} bytes is too short for a flatbuffer")
    if bytes(buf[4:8]) != b"TFL3":
        raise ModelError(
            f"malformed .tflite: file identifier is {bytes(buf[4:8])!r}, expected b'TFL3'"
        )
    try:
        model = fb.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    except Exception as exc:  # the generated parser raises anything on bad offsets
        raise ModelError(f"malformed .tflite: flatbuffer does not parse ({type(exc).__name__}: {exc})") from exc
    try:
        return _to_graph(model)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"malformed .tflite: inconsistent tables ({type(exc).__name__}: {exc})") from exc


def _to_graph(model: Any) -> Graph:
    subgraphs = model.subgraphs or []
    if len(subgraphs) != 1:
        raise ModelError(f"unsupported model: {len(subgraphs)} subgraphs (tinyfed runs exactly one)")
    sg = subgraphs[0]
    buffers = model.buffers or []
    opcodes = model.operatorCodes or []

    tensors: list[Tensor] = []
    for i, t in enumerate(sg.tensors or []):
        type_name = _TYPE_NAMES.get(t.type, f"type#{t.type}")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if any(d < 0 for d in shape):
            raise ModelError(f"tensor {i} ({_decode_str(t.name)!r}) has a dynamic shape {shape}")
        scales = zps = None
        qdim = 0
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 0:
            scales = np.asarray(q.scale, dtype=np.float32)
            zps = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], dtype=np.int64)
            qdim = int(q.quantizedDimension or 0)
        label = f"tensor {i} ({_decode_str(t.name)!r})"
        if len(shape) > MAX_RANK:
            raise ModelError(f"malformed .tflite: {label} has {len(shape)} dimensions (at most {MAX_RANK})")
        if int(np.prod([max(d, 1) for d in shape], dtype=np.float64)) > MAX_ELEMENTS:
            raise ModelError(f"malformed .tflite: {label} of shape {shape} has more than {MAX_ELEMENTS:,} "
                             "elements (not a microcontroller model)")
        if scales is not None:
            _check_quantization(label, shape, scales, zps, qdim)
            lo, hi = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767)}.get(type_name, (-(1 << 31), (1 << 31) - 1))
            if zps is not None and len(zps) and (int(zps.min()) < lo or int(zps.max()) > hi):
                raise ModelError(f"malformed .tflite: {label} ({type_name}) has a zero point outside [{lo}, {hi}]")
        buf_index = int(t.buffer or 0)
        if not 0 <= buf_index < max(1, len(buffers)):
            raise ModelError(f"malformed .tflite: {label} refers to buffer {buf_index} of {len(buffers)}")
        data = None
        if 0 < buf_index < len(buffers):
            raw = buffers[buf_index].data
            if raw is not None and len(raw) > 0:
                if type_name not in _NUMPY_TYPES:
                    raise ModelError(
                        f"unsupported tensor type {type_name} for constant tensor {i} ({_decode_str(t.name)!r})"
                    )
                dt = _NUMPY_TYPES[type_name]
                arr = np.frombuffer(bytes(bytearray(raw)), dtype=dt)
                expected = int(np.prod(shape, dtype=np.int64)) if shape else 1
                if arr.size != expected:
                    raise ModelError(
                        f"malformed .tflite: tensor {i} ({_decode_str(t.name)!r}) has {arr.size} "
                        f"elements of data for shape {shape}"
                    )
                data = arr.reshape(shape) if shape else arr.reshape(())
        tensors.append(
            Tensor(
                index=i,
                name=_decode_str(t.name),
                shape=shape,
                dtype=type_name,
                scales=scales,
                zero_points=zps,
                quant_dim=qdim,
                data=data,
            )
        )

    n = len(tensors)

    def check_index(idx: int, what: str) -> int:
        if not (-1 <= idx < n):
            raise ModelError(f"malformed .tflite: {what} refers to tensor {idx} of {n}")
        return int(idx)

    ops: list[Op] = []
    for k, o in enumerate(sg.operators or []):
        if not (0 <= o.opcodeIndex < len(opcodes)):
            raise ModelError(f"malformed .tflite: op {k} has opcode index {o.opcodeIndex}")
        oc = opcodes[o.opcodeIndex]
        code = max(int(oc.builtinCode or 0), int(oc.deprecatedBuiltinCode or 0))
        name = OP_NAMES.get(code, f"BUILTIN#{code}")
        if name == "CUSTOM":
            raise UnsupportedOpError(
                f"unsupported op: custom op {_decode_str(oc.customCode)!r} (op {k}); tinyfed runs builtin ops only"
            )
        ins = [check_index(int(x), f"op {k} ({name}) input") for x in (o.inputs if o.inputs is not None else [])]
        outs = [check_index(int(x), f"op {k} ({name}) output") for x in (o.outputs if o.outputs is not None else [])]
        ops.append(Op(index=k, name=name, inputs=ins, outputs=outs, options=o.builtinOptions))

    inputs = [check_index(int(x), "subgraph input") for x in (sg.inputs if sg.inputs is not None else [])]
    outputs = [check_index(int(x), "subgraph output") for x in (sg.outputs if sg.outputs is not None else [])]
    if not inputs or not outputs:
        raise ModelError("malformed .tflite: the subgraph declares no inputs or no outputs")
    if -1 in inputs or -1 in outputs:
        raise ModelError("malformed .tflite: a subgraph input or output is tensor -1")
    _check_dataflow(tensors, ops, inputs, outputs)

    consumers: dict[int, list[int]] = {}
    for op in ops:
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(t, []).append(op.index)
    return Graph(
        tensors=tensors,
        ops=ops,
        inputs=inputs,
        outputs=outputs,
        description=_decode_str(model.description),
        consumers=consumers,
    )
