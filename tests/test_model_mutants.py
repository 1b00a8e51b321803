"""Malformed models: the .tflite reader validates every index, shape, size and
quantization vector before lowering; the tflite-micro reference runtime runs in
a child process (its crash is reported, never kills tinyfed); `tinyfed verify`
answers every failure with one line and a non-zero exit.  The cases the
adversarial testing found (issue 14), then a small seeded mutation campaign
(bench/model_mutants.py runs >= 1,000): 0 crashes, 0 wrong accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tflite_mutants import campaign, judge

from tinyfed_toolchain.compile.tflite_reader import ModelError, read_tflite


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[bytes, np.ndarray]]:
    import keras

    from quantized_models import to_int8_tflite

    keras.utils.set_random_seed(3)
    b = {"bias_initializer": keras.initializers.RandomNormal(0.0, 0.2)}  # non-zero: the converter keeps biases
    mlp = keras.Sequential([keras.Input((8, 8, 1), batch_size=1), keras.layers.Flatten(),
                            keras.layers.Dense(32, activation="relu", **b), keras.layers.Dense(10, **b)])
    cnn = keras.Sequential([keras.Input((8, 8, 1), batch_size=1),
                            keras.layers.Conv2D(4, 3, activation="relu", **b), keras.layers.MaxPooling2D(),
                            keras.layers.Flatten(), keras.layers.Dense(10, **b)])
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (6, 8, 8, 1)).astype(np.int8)
    return {"mlp": (to_int8_tflite(mlp, [(8, 8, 1)]), x), "cnn": (to_int8_tflite(cnn, [(8, 8, 1)]), x)}


def _edit(model: bytes, fn) -> bytes:  # type: ignore[no-untyped-def]
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    fn(m, m.subgraphs[0])
    b = flatbuffers.Builder(len(model) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _fc(sg, k: int):  # type: ignore[no-untyped-def]
    """The k-th FULLY_CONNECTED's (filter, bias, output) tensors."""
    ops = [o for o in sg.operators if len(o.inputs) == 3 and o.inputs[2] >= 0]
    o = ops[k]
    return sg.tensors[o.inputs[1]], sg.tensors[o.inputs[2]], sg.tensors[o.outputs[0]]


def _set(obj, **kw):  # type: ignore[no-untyped-def]
    for k, v in kw.items():
        setattr(obj, k, v)


CASES = {
    # the eight crashes and two wrong accepts of the adversarial testing, each refused in one line
    "buffer index 169": (lambda m, sg: _set(_fc(sg, 0)[0], buffer=169), "refers to buffer 169"),
    "buffer index 2^24": (lambda m, sg: _set(_fc(sg, 1)[1], buffer=1 << 24), "refers to buffer 16777216"),
    "186 scales for 32 channels": (lambda m, sg: _set(_fc(sg, 0)[0].quantization, scale=[0.01] * 186),
                                   "186 (per-channel )?scales"),
    "output shape (1, 2^24)": (lambda m, sg: _set(_fc(sg, 1)[2], shape=[1, 1 << 24]), "filter depth|elements|shape"),
    "output shape (1, 0)": (lambda m, sg: _set(_fc(sg, 1)[2], shape=[1, 0]), "no elements"),
    "empty weight scales": (lambda m, sg: _set(_fc(sg, 0)[0].quantization, scale=[], zeroPoint=[]),
                            "no quantization scale"),
    "bias buffer 2^30": (lambda m, sg: _set(_fc(sg, 0)[1], buffer=1 << 30), "refers to buffer"),
    "bias data emptied": (lambda m, sg: _set(m.buffers[_fc(sg, 0)[1].buffer], data=None),
                          "not constant and no earlier op writes"),
    "zero point 128 on int8": (lambda m, sg: _set(_fc(sg, 0)[2].quantization, zeroPoint=[128]),
                               r"zero point outside \[-128, 127\]"),
    "negative scale": (lambda m, sg: _set(_fc(sg, 0)[2].quantization, scale=[-0.5]), "not a positive number"),
    "op reads tensor -2": (lambda m, sg: _set(sg.operators[0], inputs=[-2] + list(sg.operators[0].inputs[1:])),
                           "refers to tensor -2"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_model_is_refused_in_one_line(models, case: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fn, why = CASES[case]
    mutant = _edit(models["mlp"][0], fn)
    v = judge(mutant, models["mlp"][1], tmp_path / "w", case)
    assert v.kind == "refused", v
    import re

    assert re.search(why, v.detail), v.detail


def test_verify_cli_one_line_and_exit_status(models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(_edit(models["mlp"][0], CASES["buffer index 2^24"][0]))
    x = tmp_path / "x.npy"
    np.save(x, models["mlp"][1])
    p = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "verify", str(bad), "--inputs", str(x),
                        "--work", str(tmp_path / "w")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("tinyfed: error: malformed .tflite: tensor ")
    p = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "verify", str(tmp_path), "--inputs", str(x)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "cannot read model" in p.stderr


def test_reference_runtime_crash_is_reported_not_fatal(models) -> None:  # type: ignore[no-untyped-def]
    """The tflite-micro runtime itself is given a model it cannot survive (the reader would
    refuse it first): the crash stays in the child process and is reported as such."""
    from tinyfed_toolchain.compile.tflm import ReferenceRuntimeError, run_tflm

    bad = _edit(models["mlp"][0], CASES["buffer index 2^24"][0])
    with pytest.raises(ModelError):
        read_tflite(bad)
    with pytest.raises(ReferenceRuntimeError, match="the tflite-micro runtime (crashed on|refused) this model"):
        run_tflm(bad, models["mlp"][1])
    good = run_tflm(models["mlp"][0], models["mlp"][1])  # and the parent goes on
    assert good[0].shape == (6, 1, 10)


def test_seeded_mutation_campaign(models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    verdicts = campaign(models, 12, seed=14, work=tmp_path / "w")
    kinds = [v.kind for v in verdicts]
    bad = [v for v in verdicts if v.kind in ("crash", "wrong")]
    assert not bad, bad
    assert kinds.count("refused") >= 4 and kinds.count("accepted") >= 1, kinds
    assert all("\n" not in v.detail for v in verdicts)
