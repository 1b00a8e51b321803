"""Instructions per inference of a model on an emulated board, per layer (``tinyfed profile``).

What a user wants to know before flashing: the model's image is built for the
board (the board's kernels: optimized DSP kernels on Cortex-M4/M7/M33, see
board.json ``kernels``), booted in QEMU with ``-icount``, and timed per
inference (``firmware/src/app/bench_infer.c``): the whole ``tfd_invoke`` and
each layer on its own (``tfd_invoke_range(i, i + 1)``, the same counter), on
``runs`` int8 inputs (random, seeded, or given).  The figures are INSTRUCTION
counts under ``-icount`` (every instruction advances the virtual clock by the
same step), not cycles: a real core's cycles depend on its pipeline and memory.

The result also states the image's flash and SRAM (the linker's figures, the
16 KiB stack included) and the model's arena (the toolchain's static plan).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyfed_toolchain.compile.emit_c import emit_model
from tinyfed_toolchain.compile.plan import plan_model
from tinyfed_toolchain.compile.tflite_reader import read_tflite
from tinyfed_toolchain.facts.boards import KERNEL_VARIANTS, board_names, load_board
from tinyfed_toolchain.facts.c_headers import op_ids
from tinyfed_toolchain.facts.errors import DeviceFailure, InputError, OptionsError
from tinyfed_toolchain.facts.paths import BUILD
from tinyfed_toolchain.image.firmware import build_image

from .emulator import run_to_exit

#: QEMU -icount shift: 2^6 ns of virtual time per instruction (bench/icount.py validates it)
ICOUNT_SHIFT = 6
_KV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$")


@dataclass
class ProfileOptions:
    """``tinyfed profile``: one model on one emulated board."""

    model: Path  # int8 .tflite
    board: str = "mps2-an386"
    runs: int = 8  # inferences timed (distinct inputs)
    inputs: Path | None = None  # .npy [N, *input_shape] int8 (default: random, seeded)
    seed: int = 0
    kernels: str | None = None  # "dsp" / "reference" (default: the board's)
    work_dir: Path | None = None  # emitted C + image (default build/profile/<model>/<board>)
    timeout: float = 600.0

    def check(self) -> None:
        if self.runs < 1:
            raise OptionsError(f"runs: {self.runs}, need at least 1")
        if self.board not in board_names():
            raise OptionsError(f"unknown board {self.board!r}; boards: {', '.join(board_names())}")
        if not load_board(self.board).emulated:
            emulated = [b for b in board_names() if load_board(b).emulated]
            raise OptionsError(f"board {self.board} cannot run here (not emulated); "
                               f"profile on one of: {', '.join(emulated)}")
        if self.kernels is not None and self.kernels not in KERNEL_VARIANTS:
            raise OptionsError(f"kernels {self.kernels!r} is not one of {', '.join(KERNEL_VARIANTS)}")


@dataclass
class LayerProfile:
    index: int
    op: str
    insns: int  # mean instructions of this layer alone
    share: float  # of the sum over layers


@dataclass
class ProfileResult:
    model: str
    board: str
    kernels: str
    runs: int
    insns_per_inference: int  # mean over the runs, the whole tfd_invoke
    insns_min: int
    insns_max: int
    layers: list[LayerProfile]
    arena_bytes: int
    flash_bytes: int
    sram_bytes: int
    flash_size: int
    sram_size: int
    icount_shift: int = ICOUNT_SHIFT
    unit: str = "instructions (QEMU -icount), not cycles"
    elf: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def interpreter_insns(self) -> int:
        """The whole inference minus the layers: the interpreter's work between layers."""
        return self.insns_per_inference - sum(layer.insns for layer in self.layers)

    def to_json(self) -> dict[str, Any]:
        """The JSON a script reads (keys: board, insns_per_inference, layers [{op, insns}],
        arena_bytes, flash_bytes, sram_bytes, and more)."""
        out = asdict(self)
        out["interpreter_insns"] = self.interpreter_insns
        return out

    def table(self) -> str:
        lines = [f"{self.model} on {self.board} ({self.kernels} kernels): {self.insns_per_inference:,} "
                 f"instructions per inference (mean of {self.runs}; min {self.insns_min:,}, max "
                 f"{self.insns_max:,}) -- QEMU -icount instruction counts, not cycles",
                 f"{'#':>3}  {'op':<24} {'instructions':>12} {'share':>7}"]
        for layer in self.layers:
            lines.append(f"{layer.index:>3}  {layer.op:<24} {layer.insns:>12,} {100 * layer.share:>6.1f}%")
        lines.append(f"{'':>3}  {'(between layers)':<24} {self.interpreter_insns:>12,}")
        lines.append(f"arena {self.arena_bytes:,} B (static plan); image flash {self.flash_bytes:,} / "
                     f"{self.flash_size:,} B, SRAM {self.sram_bytes:,} / {self.sram_size:,} B "
                     "(stack included)")
        return "\n".join(lines)


def _inputs(tflite: bytes, opts: ProfileOptions) -> np.ndarray:
    graph = read_tflite(tflite)
    if len(graph.inputs) != 1:
        raise InputError(f"profile handles single-input models; this one has {len(graph.inputs)} inputs")
    t = graph.tensor(graph.inputs[0])
    if t.dtype != "INT8":
        raise InputError(f"profile feeds int8 inputs; the model's input {t.name!r} is {t.dtype}")
    if opts.inputs is None:
        rng = np.random.default_rng(opts.seed)
        return rng.integers(-128, 128, size=(opts.runs, *t.shape), dtype=np.int8)
    try:
        x = np.load(opts.inputs)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read inputs {opts.inputs}: {exc}") from exc
    if x.ndim == 0 or x.shape[0] < 1 or x[0].size != t.num_elements:
        raise InputError(f"inputs shaped {list(x.shape)} do not match the model input shape {list(t.shape)}")
    if x.dtype != np.int8 and (not np.issubdtype(x.dtype, np.integer) or x.min() < -128 or x.max() > 127):
        raise InputError(f"inputs are {x.dtype}; the model input is int8 (quantize them first)")
    return np.ascontiguousarray(x, dtype=np.int8).reshape(x.shape[0], -1)


def _write_inputs(x: np.ndarray, path: Path) -> None:
    rows = x.reshape(x.shape[0], -1)
    body = ",\n".join("    {" + ", ".join(str(int(v)) for v in r) + "}" for r in rows)
    text = ("/* generated by tinyfed profile -- do not edit: the profiled inputs */\n"
            "#ifndef TFD_BENCH_INPUTS_H\n#define TFD_BENCH_INPUTS_H\n#include <stdint.h>\n"
            f"#define TFD_BENCH_N_INPUTS {rows.shape[0]}\n"
            f"static const int8_t tfd_bench_inputs[{rows.shape[0]}][{rows.shape[1]}] = {{\n{body}\n}};\n#endif\n")
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def profile_model(opts: ProfileOptions) -> ProfileResult:
    """Build ``opts.model``'s bench image for ``opts.board`` and time it under QEMU -icount."""
    opts.check()
    try:
        tflite = Path(opts.model).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read model {opts.model}: {exc}") from exc
    name = Path(opts.model).stem
    kernels = opts.kernels or load_board(opts.board).kernels
    work = opts.work_dir or BUILD / "profile" / f"{name}-{hashlib.blake2b(tflite, digest_size=4).hexdigest()}" / (
        f"{opts.board}-{kernels}")
    plan = plan_model(read_tflite(tflite), tflite)
    model_dir = Path(work) / "model_c"
    emit_model(plan, model_dir, name=name)
    _write_inputs(_inputs(tflite, opts), model_dir / "bench_inputs.h")
    info = build_image(opts.board, model_dir, Path(work), app="bench_infer", name="bench_infer", quiet=True,
                       defines={"TFD_BENCH_RUNS": opts.runs}, kernels=kernels)
    code, text = run_to_exit(info.elf, opts.board, icount_shift=ICOUNT_SHIFT, timeout=opts.timeout)
    kv = {m.group(1): m.group(2) for m in (_KV.match(line.strip()) for line in text.splitlines()) if m}
    if code != 0 or "error" in kv:
        detail = kv.get("error", f"exit code {code}")
        layer = f" at layer {kv['failed_layer']}" if "failed_layer" in kv else ""
        raise DeviceFailure(f"the profiled image failed{layer}: {detail}\n{text[-1500:]}")
    if kv.get("icount_shift") != str(ICOUNT_SHIFT) or kv.get("runs") != str(opts.runs):
        raise DeviceFailure(f"the profiled image did not report its runs / icount shift:\n{text[-1500:]}")
    names = {v: k for k, v in op_ids().items()}
    layers = [LayerProfile(index=i, op=names.get(int(kv[f"layer{i}_op"]), kv[f"layer{i}_op"]),
                           insns=int(kv[f"layer{i}_insns"]), share=0.0)
              for i in range(int(kv["layers"]))]
    total_layers = sum(layer.insns for layer in layers) or 1
    for layer in layers:
        layer.share = layer.insns / total_layers
    return ProfileResult(model=name, board=opts.board, kernels=kernels, runs=opts.runs,
                         insns_per_inference=int(kv["insns_mean"]), insns_min=int(kv["insns_min"]),
                         insns_max=int(kv["insns_max"]), layers=layers, arena_bytes=plan.arena_bytes,
                         flash_bytes=info.flash_used, sram_bytes=info.ram_used, flash_size=info.flash_size,
                         sram_size=info.ram_size, elf=str(info.elf),
                         extra={"output_checksum": int(kv["output_checksum"])})


__all__ = ["ProfileOptions", "ProfileResult", "LayerProfile", "profile_model", "ICOUNT_SHIFT"]
