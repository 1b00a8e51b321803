"""`tinyfed build --tflite` / `tinyfed verify` from the command line: clear errors, budget refusal."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np

from quantized_models import to_int8_tflite

TINYFED = [sys.executable, "-m", "tinyfed_host.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TINYFED, *args], capture_output=True, text=True, timeout=600)


@functools.lru_cache(maxsize=None)
def _small_tflite() -> bytes:
    """A small conv model, converted once per session (every test here uses the same one)."""
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 1), batch_size=1)
    h = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(3)(h)
    return to_int8_tflite(keras.Model(inp, out), [(8, 8, 1)])


def _small_model(tmp_path: Path) -> Path:
    p = tmp_path / "small.tflite"
    p.write_bytes(_small_tflite())
    return p


def test_verify_cli_reports_zero_mismatches_and_dumps(tmp_path: Path) -> None:
    model = _small_model(tmp_path)
    x = np.random.default_rng(0).integers(-128, 128, size=(20, 1, 8, 8, 1), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    r = _run("verify", str(model), "--inputs", str(tmp_path / "x.npy"), "--dump", str(tmp_path / "y.npy"),
             "--work", str(tmp_path / "w"))
    assert r.returncode == 0, r.stderr
    assert "mismatches: 0 of 20" in r.stdout
    y = np.load(tmp_path / "y.npy")
    assert y.shape[0] == 20 and y.dtype == np.int8


def test_verify_cli_rejects_wrong_input_shape(tmp_path: Path) -> None:
    model = _small_model(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((3, 7), dtype=np.int8))
    r = _run("verify", str(model), "--inputs", str(tmp_path / "x.npy"), "--work", str(tmp_path / "w"))
    assert r.returncode != 0
    assert "shape" in r.stderr


def test_malformed_tflite_is_a_clear_error(tmp_path: Path) -> None:
    model = _small_model(tmp_path)
    data = model.read_bytes()
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(data[: len(data) // 3])
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 1), dtype=np.int8))
    r = _run("verify", str(bad), "--inputs", str(tmp_path / "x.npy"))
    assert r.returncode == 2
    assert "malformed .tflite" in r.stderr
    assert "Traceback" not in r.stderr
    r = _run("build", "--tflite", str(tmp_path / "missing.tflite"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "missing.tflite" in r.stderr


def test_build_tflite_emits_tables_and_budget(tmp_path: Path) -> None:
    model = _small_model(tmp_path)
    out = tmp_path / "out"
    r = _run("build", "--tflite", str(model), "--out", str(out), "--no-images")
    assert r.returncode == 0, r.stderr
    src = (out / "model_c" / "model_data.c").read_text()
    assert "do not edit" in src.splitlines()[0]
    hdr = (out / "model_c" / "model_data.h").read_text()
    assert "#if TFD_MODEL_ABI !=" in hdr and "#error" in hdr
    assert "budget for mps2-an386" in r.stdout
    assert "tflite-micro arena" in r.stdout
    # Deterministic: emitting twice gives identical bytes (no timestamps).
    r2 = _run("build", "--tflite", str(model), "--out", str(tmp_path / "out2"), "--no-images")
    assert r2.returncode == 0
    assert (tmp_path / "out2" / "model_c" / "model_data.c").read_text() == src


def test_model_too_big_for_the_board_is_refused_with_numbers(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(2)
    inp = keras.Input((96, 96, 3), batch_size=1)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inp)  # 96*96*32 = 294912 B int8
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(2)(h)
    p = tmp_path / "big.tflite"
    p.write_bytes(to_int8_tflite(keras.Model(inp, out), [(96, 96, 3)], n_rep=4))
    r = _run("build", "--tflite", str(p), "--out", str(tmp_path / "o"), "--no-images")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "does not fit mps2-an386" in r.stderr
    assert "262,144" in r.stderr  # the board's SRAM, stated
    assert "Traceback" not in r.stderr
