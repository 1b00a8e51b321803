"""Instruction counts of firmware code under QEMU ``-icount`` (helper library + CLI).

QEMU models no cycles (DWT->CYCCNT reads 0).  With ``-icount shift=N`` every
guest instruction advances virtual time by exactly 2^N ns, and SysTick counts
the processor clock in that virtual time, so

    instructions = clocks x (1e9 / cpu_hz) / 2^N.

The firmware side is ``boards/common/bench_counter.h``: an exact 64-bit SysTick
count (wraps included, period lengthened to 2^24 clocks so the tick interrupt
adds only ~14 instructions per 2^24 clocks).  ``shift=6`` gives 1.6 clocks per
instruction at 25 MHz (an instruction is never hidden between two clock edges);
``shift=0`` quantises to 40 instructions per clock.  These are INSTRUCTION counts,
not cycles: quote them as such.

``validate()`` runs ``boards/selftest/icount_loop.c`` (loops of exactly two
instructions per iteration) and reports the error; ``bench_infer()`` builds and
runs ``firmware/src/app/bench_infer.c`` on a generated model.

CLI::

    python bench/icount.py validate [--board mps2-an386] [--shift 6]
    python bench/icount.py infer [MODEL_DIR] [--board mps2-an386] [--shift 6]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from tinyfed_host.emulator import run_to_exit  # noqa: E402
from tinyfed_toolchain.image.firmware import build_image  # noqa: E402

DEFAULT_SHIFT = 6
BUILD_DIR = REPO_ROOT / "build" / "bench"
_KV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$")
_LOOP = re.compile(r"^loop (\d+) clocks=(\d+) insns=(\d+)$")


def parse_kv(text: str) -> dict[str, str]:
    """``key=value`` lines of a semihosting log."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _KV.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def run_counted(elf: Path, board: str, shift: int = DEFAULT_SHIFT,
                timeout: float = 120.0) -> tuple[int, str]:
    """Run an image under ``-icount shift=N`` (and tell it N); returns
    ``(exit_code, semihosting output)``."""
    return run_to_exit(elf, board, icount_shift=shift, timeout=timeout)


@dataclass(frozen=True)
class LoopRun:
    iterations: int
    clocks: int
    insns: int

    @property
    def expected_loop_insns(self) -> int:
        return 2 * self.iterations  # subs + bne per iteration


@dataclass(frozen=True)
class IcountValidation:
    """Result of measuring loops of known instruction count.

    ``offset``: measured minus 2*iterations for the shortest loop: the fixed
    instructions inside the measured region around the loop (argument load,
    call, return).  ``errors``: per run, measured - (2*iterations + offset).
    """

    board: str
    shift: int
    runs: tuple[LoopRun, ...]
    offset: int

    @property
    def errors(self) -> list[int]:
        return [r.insns - (r.expected_loop_insns + self.offset) for r in self.runs]

    @property
    def max_abs_error(self) -> int:
        return max(abs(e) for e in self.errors)

    @property
    def max_rel_error(self) -> float:
        return max(abs(e) / r.expected_loop_insns for e, r in zip(self.errors, self.runs))

    def report(self) -> str:
        lines = [f"icount validation on {self.board}, -icount shift={self.shift}: "
                 f"fixed offset {self.offset} instructions (call/return around the loop)"]
        for r, e in zip(self.runs, self.errors):
            lines.append(f"  {r.iterations:>10} iterations: expected {r.expected_loop_insns + self.offset:>10}"
                         f" measured {r.insns:>10}  error {e:+d}")
        lines.append(f"  max error {self.max_abs_error} instructions "
                     f"({self.max_rel_error * 1e6:.2f} ppm)")
        return "\n".join(lines)


def build_selftest(board: str, app: str) -> Path:
    info = build_image(board, None, BUILD_DIR / "selftest" / board,
                       app=REPO_ROOT / "boards" / "selftest" / f"{app}.c",
                       runtime=False, name=app, quiet=True)
    return info.elf


def validate(board: str = "mps2-an386", shift: int = DEFAULT_SHIFT) -> IcountValidation:
    """Measure ``icount_loop.c`` and compare with the known instruction counts."""
    elf = build_selftest(board, "icount_loop")
    code, text = run_counted(elf, board, shift)
    if code != 0:
        raise RuntimeError(f"icount_loop exited {code}:\n{text}")
    kv = parse_kv(text)
    if int(kv.get("icount_shift", "-1")) != shift:
        raise RuntimeError(f"the image did not receive the icount shift:\n{text}")
    runs = []
    for line in text.splitlines():
        m = _LOOP.match(line.strip())
        if m:
            runs.append(LoopRun(int(m.group(1)), int(m.group(2)), int(m.group(3))))
    if not runs:
        raise RuntimeError(f"no loop measurements in:\n{text}")
    runs.sort(key=lambda r: r.iterations)
    offset = runs[0].insns - runs[0].expected_loop_insns
    return IcountValidation(board=board, shift=shift, runs=tuple(runs), offset=offset)


def write_smoke_model(out_dir: Path, depth: int = 64, hidden: int = 32, classes: int = 10) -> Path:
    """Write a small hand-made int8 model (two FULLY_CONNECTED layers, fixed
    pseudo-random weights) as model_data.h/.c into ``out_dir`` (under build/).

    For smoke tests of the build and the bench before the emitter's output
    exists; the numbers it computes mean nothing.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def values(n: int, salt: int) -> list[int]:
        return [((i * 37 + salt * 11) % 255) - 127 for i in range(n)]

    def table(n: int, salt: int) -> str:
        return ", ".join(map(str, values(n, salt)))

    def acc_init(rows: int, cols: int, w_salt: int, b_salt: int, input_offset: int) -> str:
        """bias + input_offset * sum(filter row) (tfd_fc_params_t.acc_init)."""
        w, b = values(rows * cols, w_salt), values(rows, b_salt)
        return ", ".join(str(b[r] + input_offset * sum(w[r * cols:(r + 1) * cols])) for r in range(rows))

    arena = ((depth + hidden + classes + 15) // 16) * 16
    header = f"""/* smoke-test model written by bench/icount.py write_smoke_model -- not a real model */
#ifndef TFD_MODEL_DATA_H
#define TFD_MODEL_DATA_H
#include "tfd/model.h"
#define TFD_MODEL_NAME "smoke"
#define TFD_MODEL_ARENA_BYTES {arena}u
#define TFD_MODEL_INPUT_ELEMS {depth}
#define TFD_MODEL_INPUT_BYTES {depth}
#define TFD_MODEL_INPUT_ZERO_POINT -3
#define TFD_MODEL_OUTPUT_ELEMS {classes}
#define TFD_MODEL_OUTPUT_BYTES {classes}
#define TFD_MODEL_NUM_LAYERS 2
extern const tfd_model_t tfd_model;
#endif
"""
    source = f"""/* smoke-test model written by bench/icount.py write_smoke_model -- not a real model */
#include <stddef.h>
#include <stdint.h>
#include "model_data.h"
#include "tfd/kernels.h"
static const int8_t w1[{hidden * depth}] = {{{table(hidden * depth, 1)}}};
static const int32_t b1[{hidden}] = {{{table(hidden, 2)}}};
static const int8_t w2[{classes * hidden}] = {{{table(classes * hidden, 3)}}};
static const int32_t b2[{classes}] = {{{table(classes, 4)}}};
static const int32_t mult1[1] = {{1500000000}}, shift1[1] = {{-8}};
static const int32_t mult2[1] = {{1400000000}}, shift2[1] = {{-7}};
static const int32_t init1[{hidden}] = {{{acc_init(hidden, depth, 1, 2, 3)}}};
static const int32_t init2[{classes}] = {{{acc_init(classes, hidden, 3, 4, 128)}}};
static const tfd_fc_params_t p1 = {{.input_offset = 3, .filter_offset = 0, .output_offset = -128,
    .act_min = -128, .act_max = 127, .n_mult = 1, .mult = mult1, .shift = shift1, .acc_init = init1}};
static const tfd_fc_params_t p2 = {{.input_offset = 128, .filter_offset = 0, .output_offset = 5,
    .act_min = -128, .act_max = 127, .n_mult = 1, .mult = mult2, .shift = shift2, .acc_init = init2}};
static const tfd_kernel_fn kernels[TFD_OP_COUNT] = {{[TFD_OP_FULLY_CONNECTED] = tfd_eval_fully_connected}};
static const int16_t in1[3] = {{0, 1, 2}}, in2[3] = {{3, 4, 5}};
static const tfd_tensor_t tensors[7] = {{
    {{.data = NULL, .arena_offset = 0, .bytes = {depth}, .dims = {{1, 1, 1, {depth}}}, .rank = 2, .type = TFD_TYPE_INT8, .zero_point = -3, .scale = 0.02f}},
    {{.data = w1, .bytes = {hidden * depth}, .dims = {{1, 1, {hidden}, {depth}}}, .rank = 2, .type = TFD_TYPE_INT8, .scale = 0.004f}},
    {{.data = b1, .bytes = {4 * hidden}, .dims = {{1, 1, 1, {hidden}}}, .rank = 1, .type = TFD_TYPE_INT32, .scale = 0.00008f}},
    {{.data = NULL, .arena_offset = {depth}, .bytes = {hidden}, .dims = {{1, 1, 1, {hidden}}}, .rank = 2, .type = TFD_TYPE_INT8, .zero_point = -128, .scale = 0.01f}},
    {{.data = w2, .bytes = {classes * hidden}, .dims = {{1, 1, {classes}, {hidden}}}, .rank = 2, .type = TFD_TYPE_INT8, .scale = 0.005f}},
    {{.data = b2, .bytes = {4 * classes}, .dims = {{1, 1, 1, {classes}}}, .rank = 1, .type = TFD_TYPE_INT32, .scale = 0.00005f}},
    {{.data = NULL, .arena_offset = {depth + hidden}, .bytes = {classes}, .dims = {{1, 1, 1, {classes}}}, .rank = 2, .type = TFD_TYPE_INT8, .zero_point = 5, .scale = 0.05f}},
}};
static const tfd_layer_t layers[2] = {{
    {{.op = TFD_OP_FULLY_CONNECTED, .n_inputs = 3, .output = 3, .inputs = in1, .params = &p1}},
    {{.op = TFD_OP_FULLY_CONNECTED, .n_inputs = 3, .output = 6, .inputs = in2, .params = &p2}},
}};
static const int16_t model_inputs[1] = {{0}}, model_outputs[1] = {{6}};
const tfd_model_t tfd_model = {{
    .abi = TFD_MODEL_ABI, .name = "smoke", .hash = {{0}},
    .tensors = tensors, .n_tensors = 7, .layers = layers, .n_layers = 2,
    .inputs = model_inputs, .n_inputs = 1, .outputs = model_outputs, .n_outputs = 1,
    .arena_bytes = TFD_MODEL_ARENA_BYTES, .kernels = kernels,
}};
"""
    (out_dir / "model_data.h").write_text(header)
    (out_dir / "model_data.c").write_text(source)
    return out_dir


def bench_infer(model_dir: Path, board: str = "mps2-an386", shift: int = DEFAULT_SHIFT,
                runs: int = 8, timeout: float = 600.0) -> dict[str, str]:
    """Build ``bench_infer`` for ``model_dir`` and return its key=value report
    (``insns_min``/``insns_mean``/``insns_max`` per inference, memory)."""
    info = build_image(board, Path(model_dir), BUILD_DIR / "infer" / board, app="bench_infer",
                       defines={"TFD_BENCH_RUNS": runs}, quiet=True)
    code, text = run_counted(info.elf, board, shift, timeout=timeout)
    kv = parse_kv(text)
    if code != 0:
        raise RuntimeError(f"bench_infer exited {code}:\n{text}")
    kv["memory"] = info.statement()
    return kv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="check the method on loops of known length")
    v.add_argument("--board", default="mps2-an386")
    v.add_argument("--shift", type=int, default=DEFAULT_SHIFT)
    i = sub.add_parser("infer", help="instructions per inference of a generated model")
    i.add_argument("model_dir", type=Path, nargs="?",
                   help="generated model C (default: a hand-made smoke model)")
    i.add_argument("--board", default="mps2-an386")
    i.add_argument("--shift", type=int, default=DEFAULT_SHIFT)
    i.add_argument("--runs", type=int, default=8)
    a = parser.parse_args(argv)
    if a.cmd == "validate":
        print(validate(a.board, a.shift).report())
        return 0
    model_dir = a.model_dir or write_smoke_model(BUILD_DIR / "smoke_model")
    kv = bench_infer(model_dir, a.board, a.shift, a.runs)
    print(f"{a.board}: model {kv.get('model')}: {kv['insns_mean']} instructions per inference "
          f"(min {kv['insns_min']}, max {kv['insns_max']}, {kv['runs']} runs, "
          f"-icount shift={a.shift}; instruction count, not cycles)")
    print(kv["memory"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
