"""`tinyfed verify`: emitted C (compiled for the host) vs the tflite-micro runtime, byte for byte."""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .emit_c import emit_model
from .host_cc import compile_host, runtime_sources
from .paths import BUILD, FIRMWARE
from .plan import plan_model
from .tflite_reader import read_tflite
from .tflm import run_tflm


@dataclass
class VerifyResult:
    mismatches: int  # samples whose output bytes differ in any output
    total: int
    outputs: list[np.ndarray]  # C outputs, one array per model output
    reference: list[np.ndarray]
    max_abs_diff: int

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


def compile_model_for_host(tflite: bytes, work_dir: Path, name: str = "model") -> Path:
    """Plan + emit the model into ``work_dir`` and build the host verify harness."""
    graph = read_tflite(tflite)
    plan = plan_model(graph, tflite)
    emit_model(plan, work_dir, name=name)
    sources = [*runtime_sources(), work_dir / "model_data.c", FIRMWARE / "host" / "verify_main.c"]
    return compile_host(sources, [work_dir], "verify")


def run_c_model(exe: Path, tflite: bytes, inputs: np.ndarray) -> list[np.ndarray]:
    """Run ``inputs`` ([N, *shape]) through a compiled harness; return its outputs."""
    graph = read_tflite(tflite)
    in_t = graph.tensor(graph.inputs[0])
    x = np.ascontiguousarray(inputs, dtype=in_t.np_dtype)
    n = x.shape[0]
    if x[0].size != in_t.num_elements:
        raise ValueError(
            f"inputs have {x[0].size} elements per sample, the model input {in_t.name!r} "
            f"has shape {list(in_t.shape)} ({in_t.num_elements} elements)"
        )
    proc = subprocess.run([str(exe)], input=struct.pack("<I", n) + x.tobytes(), capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"C model failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace').strip()}")
    outs: list[np.ndarray] = []
    out_ts = [graph.tensor(i) for i in graph.outputs]
    per_sample = sum(t.num_elements * t.np_dtype.itemsize for t in out_ts)
    raw = proc.stdout
    if len(raw) != per_sample * n:
        raise RuntimeError(f"C model wrote {len(raw)} bytes, expected {per_sample * n}")
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(n, per_sample)
    pos = 0
    for t in out_ts:
        nb = t.num_elements * t.np_dtype.itemsize
        outs.append(arr[:, pos : pos + nb].copy().view(t.np_dtype).reshape((n, *t.shape)))
        pos += nb
    return outs


def verify(tflite: bytes, inputs: np.ndarray, work_dir: Path | None = None) -> VerifyResult:
    work = work_dir or (BUILD / "verify")
    exe = compile_model_for_host(tflite, work)
    got = run_c_model(exe, tflite, inputs)
    graph = read_tflite(tflite)
    in_t = graph.tensor(graph.inputs[0])
    x = np.asarray(inputs, dtype=in_t.np_dtype).reshape((inputs.shape[0], *in_t.shape))
    ref = run_tflm(tflite, x)
    n = inputs.shape[0]
    bad = np.zeros(n, dtype=bool)
    max_diff = 0
    for g, r in zip(got, ref):
        r = r.reshape(g.shape)
        diff = g.reshape(n, -1).astype(np.float64) - r.reshape(n, -1).astype(np.float64)
        bad |= np.any(g.reshape(n, -1).view(np.uint8) != r.reshape(n, -1).view(np.uint8), axis=1) if g.dtype.itemsize == 1 else np.any(diff != 0, axis=1)
        max_diff = max(max_diff, int(np.max(np.abs(diff))) if diff.size else 0)
    return VerifyResult(mismatches=int(bad.sum()), total=n, outputs=got, reference=ref, max_abs_diff=max_diff)
