"""`tinyfed verify`: emitted C (compiled for the host) vs the tflite-micro runtime, byte for byte."""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .compile.emit_c import emit_model
from .facts.errors import BuildStepError, InputError
from .facts.manifests import verify_sources
from .facts.paths import BUILD
from .image.native_cc import compile_native
from .compile.plan import plan_model
from .compile.tflite_reader import Graph, read_tflite
from .compile.tflm import run_tflm


@dataclass
class VerifyResult:
    mismatches: int  # samples whose output bytes differ in any output
    total: int
    outputs: list[np.ndarray]  # C outputs, one array per model output
    reference: list[np.ndarray]
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


def compile_model_native(tflite: bytes, work_dir: Path, name: str = "model") -> Path:
    """Plan + emit the model into ``work_dir`` and build the host verify harness.

    The harness is built with the optimized kernels (``TFD_KERNELS_DSP=1``, their
    SIMD instructions in portable C) and also runs the reference kernels: every
    layer's output must be identical under both (else it fails naming the layer),
    and the outputs compared with tflite-micro are the optimized kernels'."""
    graph = read_tflite(tflite)
    plan = plan_model(graph, tflite)
    emit_model(plan, work_dir, name=name)
    return compile_native(verify_sources(work_dir), [work_dir], "verify", extra_flags=["-DTFD_KERNELS_DSP=1"])


def _as_input_list(graph: "Graph", inputs: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    xs = inputs if isinstance(inputs, list) else [inputs]
    if len(xs) != len(graph.inputs):
        raise InputError(f"the model has {len(graph.inputs)} inputs, {len(xs)} input arrays were given")
    out = []
    for x, t_index in zip(xs, graph.inputs):
        t = graph.tensor(t_index)
        x = np.asarray(x)
        if x.ndim == 0 or x[0].size != t.num_elements:
            raise InputError(
                f"inputs shaped {list(x.shape)} do not match model input {t.name!r} "
                f"shape {list(t.shape)} ({t.num_elements} elements per sample)"
            )
        if t.dtype == "INT8" and x.dtype != np.int8:
            if not np.issubdtype(x.dtype, np.integer) or x.min() < -128 or x.max() > 127:
                raise InputError(f"model input {t.name!r} is int8; inputs are {x.dtype} (quantize them first)")
        out.append(np.ascontiguousarray(x, dtype=t.np_dtype).reshape((x.shape[0], *t.shape)))
    if len({x.shape[0] for x in out}) != 1:
        raise InputError("all input arrays must have the same number of samples")
    return out


def run_c_model(exe: Path, tflite: bytes, inputs: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """Run ``inputs`` ([N, *shape], or one such array per model input) through a compiled harness."""
    graph = read_tflite(tflite)
    xs = _as_input_list(graph, inputs)
    n = xs[0].shape[0]
    payload = b"".join(b"".join(x[s].tobytes() for x in xs) for s in range(n))
    proc = subprocess.run([str(exe)], input=struct.pack("<I", n) + payload, capture_output=True, timeout=600)
    if proc.returncode != 0:
        why = " ".join(proc.stderr.decode(errors="replace").split())[:300]
        raise BuildStepError(f"the emitted C model failed (exit {proc.returncode}): {why}")
    outs: list[np.ndarray] = []
    out_ts = [graph.tensor(i) for i in graph.outputs]
    per_sample = sum(t.num_elements * t.np_dtype.itemsize for t in out_ts)
    raw = proc.stdout
    if len(raw) != per_sample * n:
        raise BuildStepError(f"the emitted C model wrote {len(raw)} bytes, expected {per_sample * n}")
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(n, per_sample)
    pos = 0
    for t in out_ts:
        nb = t.num_elements * t.np_dtype.itemsize
        outs.append(arr[:, pos : pos + nb].copy().view(t.np_dtype).reshape((n, *t.shape)))
        pos += nb
    return outs


def verify(tflite: bytes, inputs: np.ndarray | list[np.ndarray], work_dir: Path | None = None) -> VerifyResult:
    """Compare emitted C with tflite-micro on every sample; byte equality per sample."""
    work = work_dir or (BUILD / "verify")
    graph = read_tflite(tflite)
    xs = _as_input_list(graph, inputs)
    exe = compile_model_native(tflite, work)
    got = run_c_model(exe, tflite, xs)
    ref = run_tflm(tflite, xs)
    n = xs[0].shape[0]
    bad = np.zeros(n, dtype=bool)
    max_diff = 0.0
    for g, r in zip(got, ref):
        gb = np.ascontiguousarray(g).reshape(n, -1)
        rb = np.ascontiguousarray(r, dtype=g.dtype).reshape(n, -1)
        bad |= np.any(gb.view(np.uint8) != rb.view(np.uint8), axis=1)
        if gb.size:
            max_diff = max(max_diff, float(np.max(np.abs(gb.astype(np.float64) - rb.astype(np.float64)))))
    return VerifyResult(mismatches=int(bad.sum()), total=n, outputs=got, reference=ref, max_abs_diff=max_diff)
