"""The ML build: models, distillation loss, int8 conversion, TFLM evaluation, pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tinyfed_toolchain.ml.data import Dataset, load_dataset
from tinyfed_toolchain.ml.distill import (
    AugmentConfig,
    DistillationLoss,
    FitConfig,
    augment_batch,
    predict_logits,
    train_student_alone,
)
from tinyfed_toolchain.ml.models import (
    StudentConfig,
    build_student,
    count_params,
    default_student_config,
    with_batch_size,
)
from tinyfed_toolchain.ml.pipeline import PipelineConfig, MlResult, auto_epochs, run_ml_pipeline
from tinyfed_toolchain.ml.quantize import (
    SUPPORTED_OPS,
    QuantParams,
    UnsupportedOpsError,
    convert_int8,
    dequantize,
    quantize,
    read_io,
    run_tflm,
)


def _np(t: object) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(t))


def _ops_from_flatbuffer(buf: bytes) -> list[str]:
    """Op names read straight from the schema (independent of quantize.op_names)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    model = fb.Model.GetRootAsModel(bytearray(buf), 0)
    g = model.Subgraphs(0)
    out = []
    for i in range(g.OperatorsLength()):
        code = model.OperatorCodes(g.Operators(i).OpcodeIndex())
        out.append(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return out


# --------------------------------------------------------------------------- units


def test_distillation_loss_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    k, t, alpha = 5, 3.0, 0.3
    y = np.eye(k, dtype=np.float32)[rng.integers(0, k, 8)]
    zt = rng.normal(size=(8, k)).astype(np.float32) * 3
    zs = rng.normal(size=(8, k)).astype(np.float32) * 3

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(1, keepdims=True)
        out: np.ndarray = z - np.log(np.exp(z).sum(1, keepdims=True))
        return out

    ce = -(y * log_softmax(zs)).sum(1)
    pt = np.exp(log_softmax(zt / t))
    kl = (pt * (log_softmax(zt / t) - log_softmax(zs / t))).sum(1)
    want = np.mean(alpha * ce + (1 - alpha) * t * t * kl)
    loss = DistillationLoss(k, t, alpha)
    got = float(_np(loss(np.concatenate([y, zt], 1), zs)))
    assert got == pytest.approx(float(want), rel=1e-5)
    # alpha = 1: plain cross entropy; identical logits: zero KL
    only_ce = float(_np(DistillationLoss(k, t, 1.0)(np.concatenate([y, zt], 1), zs)))
    assert only_ce == pytest.approx(float(ce.mean()), rel=1e-5)
    same = float(_np(DistillationLoss(k, t, 0.0)(np.concatenate([y, zs], 1), zs)))
    assert abs(same) < 1e-5
    # serializable (needed to clone / save compiled students)
    again = DistillationLoss.from_config(loss.get_config())
    assert (again.num_classes, again.temperature, again.alpha) == (k, t, alpha)


def test_quantize_rounding_and_saturation() -> None:
    qp = QuantParams(scale=0.5, zero_point=-3)
    x = np.array([0.25, -0.25, 0.75, -0.75, 1.0, 1000.0, -1000.0], dtype=np.float32)
    # x / scale = 0.5, -0.5, 1.5, -1.5, 2 -> ties away from zero: 1, -1, 2, -2, 2
    assert quantize(x, qp).tolist() == [-2, -4, -1, -5, -1, 127, -128]
    q = np.arange(-128, 128, dtype=np.int8)
    np.testing.assert_array_equal(quantize(dequantize(q, qp), qp), q)


def test_augment_batch_is_seeded_and_label_preserving() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[np.arange(16) % 4]
    aug = AugmentConfig(shift=1, noise=0.1, mixup=0.2)
    a = augment_batch(x, y, aug, np.random.default_rng(1))
    b = augment_batch(x, y, aug, np.random.default_rng(1))
    c = augment_batch(x, y, aug, np.random.default_rng(2))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == x.shape and a[1].shape == y.shape
    np.testing.assert_allclose(a[1].sum(1), 1.0, rtol=1e-6)
    assert np.all(a[1].max(1) >= 0.5 - 1e-6)  # the original sample dominates a mix
    ts = rng.normal(size=(6, 50, 3)).astype(np.float32)
    xs, _ = augment_batch(ts, np.eye(2, dtype=np.float32)[np.arange(6) % 2],
                          AugmentConfig(shift=5, scale=0.1), np.random.default_rng(0))
    assert xs.shape == ts.shape and not np.array_equal(xs, ts)


@pytest.mark.parametrize("shape", [(8, 8, 1), (100, 6), (12,)])
def test_default_students_are_tiny_and_convert_to_supported_ops(shape: tuple[int, ...]) -> None:
    model = build_student(shape, 4)
    n = count_params(model)
    assert 300 < n < 50_000
    rng = np.random.default_rng(0)
    rep = rng.normal(size=(32,) + shape).astype(np.float32)
    buf = convert_int8(model, rep)
    ops = _ops_from_flatbuffer(buf)
    assert set(ops) <= SUPPORTED_OPS, ops
    assert ops[-1] == "FULLY_CONNECTED"  # ends in Dense: logits, no softmax
    assert len(buf) < 64 * 1024
    ins, outs = read_io(buf)
    assert ins[0].shape == (1,) + shape and ins[0].dtype == "int8"
    assert outs[0].shape == (1, 4) and outs[0].dtype == "int8"
    assert model.layers[-1].name == "logits" and model.get_layer("embedding") is not None


def test_with_batch_size_keeps_weights() -> None:
    model = build_student((8, 8, 1), 3, StudentConfig(conv_filters=(4,), dense_units=(8,)))
    fixed = with_batch_size(model, 1)
    assert fixed.inputs[0].shape[0] == 1
    x = np.random.default_rng(0).random((1, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(_np(fixed(x)), _np(model(x)), rtol=1e-6)


def test_unsupported_op_is_rejected() -> None:
    import keras

    inp = keras.Input((6,), batch_size=1)
    out = keras.layers.Dense(3)(keras.layers.LayerNormalization()(keras.layers.Dense(8)(inp)))
    model = keras.Model(inp, out)
    rep = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    with pytest.raises(UnsupportedOpsError, match="does not implement"):
        convert_int8(model, rep)


def test_training_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    cfg = FitConfig(epochs=3, batch_size=16, seed=7)
    weights = []
    for _ in range(2):
        import keras

        keras.utils.set_random_seed(7)
        m = build_student((10,), 2, StudentConfig(conv_filters=(), dense_units=(8,)))
        train_student_alone(m, x, y, 2, cfg, AugmentConfig(noise=0.1))
        weights.append(m.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_build_config_validation() -> None:
    with pytest.raises(ValueError, match="student_epochs"):
        PipelineConfig(student_epochs=0)
    with pytest.raises(ValueError, match="alpha"):
        PipelineConfig(alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        PipelineConfig(temperature=0.0)
    assert isinstance(PipelineConfig(out_dir="x").out_dir, Path)
    q = PipelineConfig(student_epochs=3).quick()
    assert (q.teacher_epochs, q.student_epochs) == (6, 3)


def test_auto_epochs() -> None:
    assert auto_epochs(1347, 32) == 40
    assert auto_epochs(40, 8) == 100
    assert auto_epochs(100_000, 32) == 20


# --------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory: pytest.TempPathFactory) -> MlResult:
    cfg = PipelineConfig(dataset="digits", seed=0,
                      out_dir=tmp_path_factory.mktemp("digits_model")).quick()
    return run_ml_pipeline(cfg, log=lambda s: None)


def test_pipeline_writes_all_files(digits_build: MlResult) -> None:
    out = digits_build.out_dir
    for name in ("model.tflite", "test_x_int8.npy", "test_x.npy", "test_y.npy", "train_x.npy",
                 "train_y.npy", "ml_report.json", "student.keras"):
        assert (out / name).is_file(), name
    assert (out / "model.tflite").read_bytes() == digits_build.tflite
    ds: Dataset = digits_build.dataset
    x_int8 = np.load(out / "test_x_int8.npy")
    assert x_int8.dtype == np.int8 and x_int8.shape == (len(ds.y_test), 8, 8, 1)
    ins, _ = read_io(digits_build.tflite)
    assert ins[0].quant is not None
    np.testing.assert_array_equal(x_int8, quantize(ds.x_test, ins[0].quant))
    np.testing.assert_array_equal(np.load(out / "test_y.npy"), ds.y_test)
    train_x = np.load(out / "train_x.npy")
    assert train_x.dtype == np.float32 and train_x.shape == ds.x_train.shape
    np.testing.assert_array_equal(np.load(out / "train_y.npy"), ds.y_train)


def test_pipeline_model_is_full_int8_with_supported_ops(digits_build: MlResult) -> None:
    buf = digits_build.tflite
    ops = _ops_from_flatbuffer(buf)
    assert set(ops) <= SUPPORTED_OPS, ops
    assert "CONV_2D" in ops and "FULLY_CONNECTED" in ops
    ins, outs = read_io(buf)
    assert (ins[0].dtype, ins[0].shape) == ("int8", (1, 8, 8, 1))
    assert (outs[0].dtype, outs[0].shape) == ("int8", (1, 10))
    # every activation tensor is int8 (no float path left), biases int32
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    g = fb.Model.GetRootAsModel(bytearray(buf), 0).Subgraphs(0)
    types = {g.Tensors(i).Type() for i in range(g.TensorsLength())}
    assert types <= {fb.TensorType.INT8, fb.TensorType.INT32}


def test_pipeline_int8_accuracy_on_tflm(digits_build: MlResult) -> None:
    rep = digits_build.report
    out = digits_build.out_dir
    # re-run the tflite-micro runtime on the written files: same accuracy as reported
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes((out / "model.tflite").read_bytes())
    x = np.load(out / "test_x_int8.npy")
    y = np.load(out / "test_y.npy")
    pred = []
    for sample in x:
        interp.set_input(sample[None], 0)
        interp.invoke()
        pred.append(int(np.argmax(interp.get_output(0))))
    acc = float(np.mean(np.array(pred) == y))
    assert acc == pytest.approx(rep["student"]["int8_accuracy"])
    assert np.array_equal(run_tflm(digits_build.tflite, x).argmax(1), pred)
    # a short training run still learns, and int8 stays close to float
    float_acc = rep["student"]["float_accuracy"]
    assert float_acc > 0.8 and rep["teacher"]["float_accuracy"] > 0.8
    assert abs(acc - float_acc) <= 0.02
    assert rep["int8_float_agreement"] >= 0.95
    # and matches the float model on the same inputs
    float_pred = predict_logits(digits_build.student, digits_build.dataset.x_test).argmax(1)
    assert np.mean(float_pred == np.array(pred)) == pytest.approx(rep["int8_float_agreement"])


def test_pipeline_report(digits_build: MlResult) -> None:
    rep = json.loads((digits_build.out_dir / "ml_report.json").read_text())
    assert rep == json.loads(json.dumps(digits_build.report))
    assert rep["dataset"]["normalization"] == {"mean": [0.0], "std": [16.0]}
    assert rep["dataset"]["n_test"] == len(digits_build.dataset.y_test)
    assert rep["student"]["tflite_bytes"] == len(digits_build.tflite)
    assert rep["student"]["params"] == rep["student_alone"]["params"]
    assert rep["student"]["params"] == count_params(digits_build.student)
    assert rep["teacher"]["params"] > 5 * rep["student"]["params"]
    assert rep["resolved"]["student_train"]["epochs"] == 12
    assert rep["resolved"]["teacher_train"]["epochs"] == 6
    for key in ("teacher", "student_alone", "student"):
        assert 0.0 <= rep[key]["float_accuracy"] <= 1.0
    assert rep["distillation_gain_pp"] == pytest.approx(
        100 * (rep["student"]["float_accuracy"] - rep["student_alone"]["float_accuracy"]), abs=1e-3
    )
    assert rep["student"]["output_is"] == "logits"
    q = rep["student"]["input"]["quant"]
    assert q["zero_point"] == -128 and q["scale"] == pytest.approx(1 / 255, rel=1e-3)


def test_pipeline_timeseries(tmp_path: Path) -> None:
    cfg = PipelineConfig(dataset="basicmotions", teacher_epochs=5, student_epochs=25,
                      out_dir=tmp_path / "bm")
    lines: list[str] = []
    res = run_ml_pipeline(cfg, log=lines.append)
    ops = _ops_from_flatbuffer(res.tflite)
    assert ops[0] == "RESHAPE" and set(ops) <= SUPPORTED_OPS
    x = np.load(tmp_path / "bm" / "test_x_int8.npy")
    assert x.shape == (40, 100, 6) and x.dtype == np.int8
    rep = res.report
    assert len(rep["dataset"]["normalization"]["mean"]) == 6
    assert rep["student"]["float_accuracy"] >= 0.75
    assert abs(rep["int8_minus_float_pp"]) <= 5.0  # 40 test samples: 1 sample = 2.5 pp
    assert any("student distilled" in line for line in lines)
    assert load_dataset("basicmotions").input_shape == tuple(rep["dataset"]["input_shape"])
    # raw sensor values -> model int8 in one affine step per channel
    from tinyfed_toolchain.ml.data import aeon_data_dir, parse_ts

    raw, _, _ = parse_ts(aeon_data_dir("BasicMotions") / "BasicMotions_TEST.ts")
    aff = rep["student"]["raw_to_int8"]
    v = raw.transpose(0, 2, 1).astype(np.float64) * aff["mul"] + aff["add"]
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127).astype(np.int8)
    diff = np.abs(q.astype(int) - x.astype(int))
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99
    assert default_student_config((100, 6)).to_json() == rep["resolved"]["student_config"]


# --------------------------------------------------------------------------- emitted C


def test_digits_student_emitted_c_is_bit_exact_on_the_whole_test_split(digits_build: MlResult,
                                                                       tmp_path: Path) -> None:
    from tinyfed_toolchain.verify import verify

    x = np.load(digits_build.out_dir / "test_x_int8.npy")
    res = verify(digits_build.tflite, x, tmp_path / "v")
    assert res.total == len(x) == 450
    assert res.mismatches == 0, f"mismatches: {res.mismatches} of {res.total}"


def test_basicmotions_student_emitted_c_is_bit_exact_on_the_whole_test_split(tmp_path: Path) -> None:
    from tinyfed_toolchain.verify import verify

    cfg = PipelineConfig(dataset="basicmotions", teacher_epochs=3, student_epochs=10, out_dir=tmp_path / "bm")
    res_ml = run_ml_pipeline(cfg, log=lambda s: None)
    x = np.load(tmp_path / "bm" / "test_x_int8.npy")
    res = verify(res_ml.tflite, x, tmp_path / "v")
    assert res.total == len(x) == 40
    assert res.mismatches == 0, f"mismatches: {res.mismatches} of {res.total}"


def test_public_fraction_keeps_the_private_part_out_of_pretraining(tmp_path: Path) -> None:
    cfg = PipelineConfig(dataset="digits", seed=3, out_dir=tmp_path / "pf", public_fraction=0.2).quick()
    res = run_ml_pipeline(cfg, log=lambda s: None)
    pub = np.load(tmp_path / "pf" / "train_x.npy")
    priv = np.load(tmp_path / "pf" / "private_x.npy")
    full = load_dataset("digits", seed=3)
    assert len(pub) + len(priv) == len(full.x_train)
    assert 0.15 < len(pub) / len(full.x_train) < 0.25
    pub_rows = {r.tobytes() for r in pub.reshape(len(pub), -1)}
    # digits has a few duplicate images; the split itself must be disjoint by index
    overlap = sum(r.tobytes() in pub_rows for r in priv.reshape(len(priv), -1))
    assert overlap <= 3
    assert res.report["dataset"]["n_private"] == len(priv)
    assert set(np.unique(np.load(tmp_path / "pf" / "private_y.npy"))) == set(range(10))
