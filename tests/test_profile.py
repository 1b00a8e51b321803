"""``tinyfed profile``: instructions per inference, per layer, arena, flash and SRAM of a
model on an emulated board (QEMU -icount), and the JSON scripts read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from train_reference import DigitsStudent

from tinyfed_host.cli import main as tinyfed_main

HAVE_QEMU = shutil.which("qemu-system-arm") is not None and shutil.which("arm-none-eabi-gcc") is not None


def _checksum(outputs: np.ndarray) -> int:
    """bench_infer.c's output checksum: c = c * 31 + byte over every run's output bytes."""
    c = 0
    for b in np.ascontiguousarray(outputs).view(np.uint8).reshape(-1):
        c = (c * 31 + int(b)) & 0xFFFFFFFF
    return c


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm / arm-none-eabi-gcc not installed")
def test_profile_digits_on_m4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tinyfed_toolchain.compile.plan import plan_model
    from tinyfed_toolchain.compile.tflite_reader import read_tflite
    from tinyfed_toolchain.compile.tflm import run_tflm

    st = DigitsStudent()
    model = tmp_path / "digits.tflite"
    model.write_bytes(st.tflite)
    x = st.x_test[:6]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "p.json"
    rc = tinyfed_main(["profile", str(model), "--board", "mps2-an386", "--runs", "6",
                       "--inputs", str(tmp_path / "x.npy"), "--json", str(out), "--work", str(tmp_path / "w")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "instructions per inference" in text and "not cycles" in text
    r = json.loads(out.read_text())
    for key in ("board", "insns_per_inference", "layers", "arena_bytes", "flash_bytes", "sram_bytes"):
        assert key in r
    assert r["board"] == "mps2-an386" and r["kernels"] == "dsp" and r["runs"] == 6
    plan = plan_model(read_tflite(st.tflite), st.tflite)
    assert [layer["op"] for layer in r["layers"]] == [layer.op for layer in plan.layers]
    assert all(layer["insns"] > 0 for layer in r["layers"] if layer["op"] != "RESHAPE")
    total, layers = r["insns_per_inference"], sum(layer["insns"] for layer in r["layers"])
    # the layers account for the inference, up to the interpreter's few instructions per layer
    assert 0 <= total - layers <= 60 * len(r["layers"])
    assert r["arena_bytes"] == plan.arena_bytes
    assert 10_000 < r["flash_bytes"] < 1024 * 1024 and 16 * 1024 < r["sram_bytes"] < 256 * 1024
    # the optimized kernels on the core computed what the tflite-micro runtime computes
    assert r["extra"]["output_checksum"] == _checksum(run_tflm(st.tflite, x)[0])


def test_profile_refuses_bad_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(DigitsStudent().tflite)
    assert tinyfed_main(["profile", str(model), "--board", "nrf52840"]) == 2
    assert "cannot run here" in capsys.readouterr().err
    assert tinyfed_main(["profile", str(model), "--board", "no-such-board"]) == 2
    assert "unknown board" in capsys.readouterr().err
    assert tinyfed_main(["profile", str(tmp_path / "missing.tflite")]) == 2
    assert "cannot read model" in capsys.readouterr().err
    assert tinyfed_main(["profile", str(model), "--runs", "0"]) == 2
    np.save(tmp_path / "bad.npy", np.zeros((2, 5), np.int8))
    assert tinyfed_main(["profile", str(model), "--inputs", str(tmp_path / "bad.npy")]) == 2
    assert "do not match" in capsys.readouterr().err
