"""The golden reference: the tflite-micro runtime (TFLM's own kernels, host build).

tinyfed's C runtime must match it byte for byte.  (tf.lite is *not* the
reference: it requantizes FULLY_CONNECTED with single rounding.)
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tflite_reader import ModelError


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

    try:
        g = read_tflite(tflite)
    except ModelError:  # the runtime judges it for itself (run_tflm runs it in a child process)
        return 10 * len(tflite)
    act = sum(int(np.prod(t.shape, dtype=np.int64)) * _TYPE_BYTES.get(t.dtype, 8)
              for t in g.tensors if not t.is_const)
    return max(10 * len(tflite), 2 * act + 256 * 1024)


_TYPE_BYTES = {"INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4, "INT64": 8, "BOOL": 1}


class ReferenceRuntimeError(ModelError):
    """The tflite-micro runtime crashed on the model, or refused it."""


def run_tflm(tflite: bytes, inputs: np.ndarray | list[np.ndarray], *, timeout: float = 600.0) -> list[np.ndarray]:
    """Run every sample through the tflite-micro runtime, in a child process: the
    runtime is C++ that trusts the model, and a malformed one can crash it, which must
    not take tinyfed down.  A crash or a refusal raises :class:`ReferenceRuntimeError`.

    ``inputs`` is ``[N, *input_shape]`` for a single-input model (or a list of such
    arrays, one per model input).  Returns one ``[N, *output_shape]`` array per output.
    """
    xs = inputs if isinstance(inputs, list) else [inputs]
    with tempfile.TemporaryDirectory(prefix="tinyfed-tflm-") as tmp:
        d = Path(tmp)
        (d / "model.tflite").write_bytes(tflite)
        np.savez(d / "in.npz", *[np.asarray(x) for x in xs])
        code = ("import sys\nfrom tinyfed_toolchain.compile.tflm import _child_main\n"
                "sys.exit(_child_main(sys.argv[1]))\n")
        try:
            proc = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ReferenceRuntimeError(f"the tflite-micro runtime did not finish in {timeout:.0f} s on this model") from exc
        if proc.returncode < 0:
            try:
                sig = signal.Signals(-proc.returncode).name
            except ValueError:
                sig = f"signal {-proc.returncode}"
            raise ReferenceRuntimeError(f"the tflite-micro runtime crashed on this model ({sig})")
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            why = lines[-1].strip() if lines else f"exit status {proc.returncode}"
            raise ReferenceRuntimeError(f"the tflite-micro runtime refused this model: {why[:300]}")
        with np.load(d / "out.npz") as z:
            return [z[f"arr_{j}"] for j in range(len(z.files))]


def _child_main(work: str) -> int:
    """The child of :func:`run_tflm`: model.tflite + in.npz in ``work`` -> out.npz."""
    d = Path(work)
    with np.load(d / "in.npz") as z:
        xs = [z[f"arr_{j}"] for j in range(len(z.files))]
    try:
        outs = _run_tflm_here((d / "model.tflite").read_bytes(), xs)
    except Exception as exc:  # noqa: BLE001 - reported by the parent in one line
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        return 3
    np.savez(d / "out.npz", *outs)
    return 0


def _run_tflm_here(tflite: bytes, xs: list[np.ndarray]) -> list[np.ndarray]:
    it = _interpreter(tflite)
    n = xs[0].shape[0]
    in_details = [it.get_input_details(i) for i in range(len(xs))]
    from .tflite_reader import read_tflite

    try:
        n_out = len(read_tflite(tflite).outputs)
    except ModelError:  # malformed: the runtime is left to judge it (in the child process)
        n_out = 1
    outs: list[list[np.ndarray]] = [[] for _ in range(n_out)]
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
