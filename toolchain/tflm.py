"""The golden reference: the tflite-micro runtime (TFLM's own kernels, host build).

tinyfed's C runtime must match it byte for byte.  (tf.lite is *not* the
reference: it requantizes FULLY_CONNECTED with single rounding.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np


def _interpreter(tflite: bytes, preserve_all: bool = False):  # type: ignore[no-untyped-def]
    from tflite_micro.python.tflite_micro import runtime

    cfg = (
        runtime.InterpreterConfig.kPreserveAllTensors
        if preserve_all
        else runtime.InterpreterConfig.kAllocationRecording
    )
    return runtime.Interpreter.from_bytes(tflite, arena_size=_arena_size(tflite), intrepreter_config=cfg)


def _arena_size(tflite: bytes) -> int:
    """An arena the TFLM interpreter cannot outgrow.  Its default is 10x the file size,
    too small for a model with few weights and large activations; every non-constant
    tensor twice over (no reuse at all), plus room for TFLM's persistent buffers, is an
    upper bound (an over-large arena only costs host memory)."""
    from .tflite_reader import read_tflite

    g = read_tflite(tflite)
    act = sum(int(np.prod(t.shape, dtype=np.int64)) * _TYPE_BYTES.get(t.dtype, 8)
              for t in g.tensors if not t.is_const)
    return max(10 * len(tflite), 2 * act + 256 * 1024)


_TYPE_BYTES = {"INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4, "INT64": 8, "BOOL": 1}


def run_tflm(tflite: bytes, inputs: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """Run every sample through the tflite-micro runtime.

    ``inputs`` is ``[N, *input_shape]`` for a single-input model (or a list of such
    arrays, one per model input).  Returns one ``[N, *output_shape]`` array per output.
    """
    xs = inputs if isinstance(inputs, list) else [inputs]
    it = _interpreter(tflite)
    n = xs[0].shape[0]
    in_details = [it.get_input_details(i) for i in range(len(xs))]
    from .tflite_reader import read_tflite

    outs: list[list[np.ndarray]] = [[] for _ in read_tflite(tflite).outputs]
    for s in range(n):
        for i, x in enumerate(xs):
            d = in_details[i]
            it.set_input(np.asarray(x[s], dtype=d["dtype"]).reshape(d["shape"]), i)
        it.invoke()
        for j in range(len(outs)):
            outs[j].append(np.array(it.get_output(j), copy=True))
    return [np.stack(o) for o in outs]


@dataclass
class TflmArena:
    total: int  # whole arena the TFLM interpreter used (planned + persistent)
    head: int  # the planned (non-persistent) activation part


def tflm_arena(tflite_path: str) -> TflmArena:
    """Arena bytes the tflite-micro runtime needs for this model (RecordingMicroAllocator)."""
    code = (
        "import sys\n"
        "from tflite_micro.python.tflite_micro import runtime\n"
        f"it = runtime.Interpreter.from_file({tflite_path!r})\n"
        "it.print_allocations()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    total = re.search(r"Arena allocation total (\d+)", text)
    head = re.search(r"Arena allocation head (\d+)", text)
    if not total or not head:
        raise RuntimeError(f"could not read the tflite-micro arena report:\n{text[-2000:]}")
    return TflmArena(total=int(total.group(1)), head=int(head.group(1)))
