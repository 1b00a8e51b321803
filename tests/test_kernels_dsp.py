"""The optimized (DSP) kernels equal the reference kernels byte for byte.

``tests/c/kernel_check.c`` draws randomized shapes, quantization and data for
every op with an optimized variant, runs ``tfd_eval_<op>`` (optimized) and
``tfd_ref_eval_<op>`` (reference) on the same one-layer model and compares
status and every output byte.  It runs

* on the build machine, under AddressSanitizer + UBSan (the DSP instructions in
  portable C: firmware/src/kernels/dsp/simd.h), many cases;
* on emulated Cortex-M4F (mps2-an386) and Cortex-M33 (mps2-an505) cores under
  QEMU, the real SMLAD/SXTB16/SSAT instructions, one image per core.

Every model the other kernel tests verify goes through both kernel sets too:
the verify harness (toolchain/verify.py) runs the optimized kernels and the
reference ones layer by layer and fails on any difference.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyfed_toolchain.compile.emit_c import emit_model
from tinyfed_toolchain.compile.plan import plan_model
from tinyfed_toolchain.compile.tflite_reader import read_tflite
from tinyfed_toolchain.facts.c_headers import conv_dsp_scratch_bytes, dw_dsp_scratch_bytes, kernel_names, op_ids
from tinyfed_toolchain.facts.manifests import inference_sources
from tinyfed_toolchain.facts.paths import ROOT
from tinyfed_toolchain.image.native_cc import compile_native

KERNEL_CHECK = ROOT / "tests" / "c" / "kernel_check.c"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
HAVE_QEMU = shutil.which("qemu-system-arm") is not None and shutil.which("arm-none-eabi-gcc") is not None


def _kv(text: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"^(\w+)=(\S*)$", text, re.M))


#: ops with an optimized kernel -> does it fall back to the reference for some inputs
OPS = {"fully_connected": True, "conv_2d": True, "depthwise_conv_2d": True, "max_pool_2d": False,
       "average_pool_2d": True, "add": False, "sub": False, "mul": False,
       "softmax": False}


def _check_report(kv: dict[str, str], cases: int) -> None:
    ops = [k[: -len("_cases")] for k in kv if k.endswith("_cases")]
    assert set(ops) == set(OPS), ops
    for op in ops:
        assert int(kv[f"{op}_cases"]) == cases
        assert int(kv[f"{op}_mismatches"]) == 0, kv.get(f"first_mismatch_{op}")
        assert int(kv[f"{op}_macs"]) > 50 * cases  # real work, not degenerate shapes
        # both the optimized paths and the reference fallbacks were exercised
        fallbacks = int(kv[f"{op}_fallbacks"])
        assert (0 < fallbacks < cases // 4) if OPS[op] else fallbacks == 0
    assert kv["mismatches"] == "0"


def test_dsp_kernels_equal_reference_on_host() -> None:
    exe = compile_native([*inference_sources(), KERNEL_CHECK], [], "kernel_check-asan",
                         extra_flags=["-DTFD_KERNELS_DSP=1", *SANITIZE])
    cases = 1000
    p = subprocess.run([str(exe), "1", str(cases)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    _check_report(_kv(p.stdout), cases)


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm / arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an505"])
def test_dsp_kernels_equal_reference_on_qemu(board: str, tmp_path: Path) -> None:
    from tinyfed_host.emulator import run_to_exit
    from tinyfed_toolchain.image.firmware import build_image

    # the runtime and kernels only (runtime=False leaves out the rest of firmware/src)
    info = build_image(board, None, tmp_path, app=KERNEL_CHECK, name="kernel_check", quiet=True, kernels="dsp",
                       runtime=False, extra_sources=inference_sources())
    cases = 250
    code, text = run_to_exit(info.elf, board, timeout=300, args=["--seed=11", f"--cases={cases}"])
    kv = _kv(text)
    assert code == 0, text
    assert kv["kernel_check_board"] == board
    _check_report(kv, cases)


def test_toolchain_folds_the_input_offset_and_plans_scratch(tmp_path: Path) -> None:
    """FULLY_CONNECTED acc_init = bias + input_offset * row sum (wrapped int32);
    CONV_2D and DEPTHWISE_CONV_2D get the scratch their optimized kernels need,
    placed in the arena; the model's kernel table names exactly the ops it uses."""
    from train_reference import DigitsStudent

    tfl = DigitsStudent().tflite  # conv 3x3, depthwise 3x3, 1x1 conv, max pools, dense (cached .tflite)
    plan = plan_model(read_tflite(tfl), tfl)
    g = plan.graph
    fcs = [layer for layer in plan.layers if layer.op == "FULLY_CONNECTED"]
    assert fcs and all(fc.inputs[2] >= 0 for fc in fcs)
    for fc in fcs:
        x, w = g.tensor(fc.inputs[0]), g.tensor(fc.inputs[1])
        bias = np.asarray(g.tensor(fc.inputs[2]).data, dtype=np.int64)
        want = bias - x.zero_point * np.asarray(w.data, dtype=np.int64).sum(axis=1)
        want = (want + 2**31) % 2**32 - 2**31
        assert fc.params is not None
        got = fc.params.fields["acc_init"].values  # type: ignore[union-attr]
        assert np.array_equal(np.asarray(got, dtype=np.int64), want)

    for layer in plan.layers:
        if layer.op not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        w = g.tensor(layer.inputs[1])
        want = (conv_dsp_scratch_bytes(w.shape[1] * w.shape[2] * w.shape[3]) if layer.op == "CONV_2D"
                else dw_dsp_scratch_bytes(w.shape[1] * w.shape[2], w.shape[3], 1))
        assert layer.scratch_bytes == want > 0
        assert layer.params is not None
        offset, size = layer.params.fields["scratch_offset"], layer.params.fields["scratch_bytes"]
        assert size == want and isinstance(offset, int) and offset % 16 == 0
        assert offset + size <= plan.arena_bytes

    emit_model(plan, tmp_path, name="m")
    src = (tmp_path / "model_data.c").read_text()
    table = re.search(r"static const tfd_kernel_fn kernels\[TFD_OP_COUNT\] = \{(.*?)\};", src, re.S)
    assert table is not None
    names = kernel_names()
    used = {layer.op for layer in plan.layers}
    assert set(re.findall(r"tfd_eval_(\w+)", table.group(1))) == {names[op] for op in used}
    assert all(f"[{op_ids()[op]}] = tfd_eval_{names[op]}" in table.group(1) for op in used)


def test_scratch_macro_matches_python(tmp_path: Path) -> None:
    """TFD_CONV_DSP_SCRATCH_BYTES in C == facts.c_headers.conv_dsp_scratch_bytes."""
    probe = tmp_path / "probe.c"
    ks = [1, 2, 3, 4, 5, 9, 27, 64, 575]
    probe.write_text('#include <stdio.h>\n#include "tfd/model.h"\nint main(void) {\n'
                     + "".join(f'    printf("%u\\n", (unsigned)TFD_CONV_DSP_SCRATCH_BYTES({k}));\n' for k in ks)
                     + "    return 0;\n}\n")
    exe = compile_native([probe], [], "scratch-probe", cache_dir=tmp_path)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert [int(v) for v in out] == [conv_dsp_scratch_bytes(k) for k in ks]


def _residual(shape: tuple[int, int, int], stride: int) -> bytes:
    import keras

    from quantized_models import to_int8_tflite

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape, batch_size=1)
    a = keras.layers.Conv2D(4, 3, strides=stride, padding="same")(inp)
    b = keras.layers.Conv2D(4, 3, padding="same")(a)
    h = keras.layers.Add()([a, b])
    out = keras.layers.Dense(3)(keras.layers.Flatten()(h))
    return to_int8_tflite(keras.Model(inp, out), [shape])


def test_add_tables_kept_only_where_they_do_not_grow_the_arena() -> None:
    """ADD's two rescale tables (the optimized kernel's optional scratch) stay where
    they fit beside the live tensors and are dropped where they would make the
    arena larger (the kernel then rescales every element in registers)."""
    from tinyfed_toolchain.facts.c_headers import add_dsp_scratch_bytes

    tables = add_dsp_scratch_bytes(1 << 20)
    for shape, stride, kept in (((16, 16, 4), 1, False), ((64, 64, 4), 4, True)):
        tfl = _residual(shape, stride)
        plan = plan_model(read_tflite(tfl), tfl)
        add = next(layer for layer in plan.layers if layer.op == "ADD")
        assert add.params is not None
        elems = plan.graph.tensor(add.output).num_elements
        assert elems >= 512 and add_dsp_scratch_bytes(elems) == tables > 0  # the kernel would use tables
        got = add.params.fields.get("scratch_bytes", 0)
        assert got == (tables if kept else 0), (shape, got)
        if kept:
            offset = add.params.fields["scratch_offset"]
            assert isinstance(offset, int) and offset + tables <= plan.arena_bytes
            # beside the largest tensor, which is dead by then: the arena is that of the first conv
            assert plan.arena_bytes < shape[0] * shape[1] * shape[2] + tables
