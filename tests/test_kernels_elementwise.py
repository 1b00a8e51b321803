"""Elementwise / activation / data-movement kernels: emitted C vs the
tflite-micro runtime, byte for byte, on randomized shapes, quantizations and
activations (ADD, MUL, SOFTMAX, LOGISTIC, TANH, RELU, RELU6, PAD, PADV2,
CONCATENATION, QUANTIZE, DEQUANTIZE), plus the lowering's refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from quantized_models import (
    BCAST_SHAPES,
    assert_bit_exact,
    const_operand_layer,
    lowered_params,
    op_names,
    ops_of,
    patch_tflite,
    random_int8_inputs,
    to_int8_tflite,
)

N_SAMPLES = 48


# ---- helpers --------------------------------------------------------------------

def _keras() -> Any:
    import keras

    return keras


# ---- ADD / MUL ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_add_mul_broadcast(seed: int, tmp_path: Path) -> None:
    """ADD/MUL with constant operands broadcast along different axes (on either
    side), ADD/MUL of two activations with different scales, fused activations,
    and the ADD of a tensor with itself."""
    keras = _keras()
    rng = np.random.default_rng(100 + seed)
    keras.utils.set_random_seed(seed)
    h, w, c = (int(v) for v in rng.integers(1, 7, size=3))
    acts = [None, "relu", "relu6"]
    inp = keras.Input((h, w, c), batch_size=1)
    a = const_operand_layer("add", BCAST_SHAPES[seed % 6](h, w, c), bool(seed % 2))(inp)
    b = const_operand_layer("mul", BCAST_SHAPES[(seed + 3) % 6](h, w, c), not seed % 2)(a)
    s = keras.layers.Add()([b, inp] if seed % 2 else [inp, b])
    if acts[seed % 3]:
        s = keras.layers.Activation(acts[seed % 3])(s)
    p = keras.layers.Multiply()([s, a])
    if acts[(seed + 1) % 3]:
        p = keras.layers.Activation(acts[(seed + 1) % 3])(p)
    out = keras.layers.Add()([p, p])
    tfl = to_int8_tflite(keras.Model(inp, out), [(h, w, c)], seed=seed, rep_scale=float(rng.uniform(0.3, 6.0)))
    names = op_names(tfl)
    assert names.count("ADD") >= 2 and names.count("MUL") >= 1, names
    assert_bit_exact(tfl, tmp_path, n=N_SAMPLES, seed=seed)


def test_add_mul_rank2_scalar(tmp_path: Path) -> None:
    """Rank-2 tensors, scalar constants (shape ()) and a [1, 1] constant."""
    import tensorflow as tf

    keras = _keras()
    keras.utils.set_random_seed(7)
    inp = keras.Input((23,), batch_size=1)
    x = keras.layers.Multiply()([inp, inp])
    x = keras.layers.Lambda(lambda t: t * 0.75)(x)
    x = keras.layers.Lambda(lambda t: t + tf.constant([[0.5]]))(x)
    tfl = to_int8_tflite(keras.Model(inp, x), [(23,)], seed=7, rep_scale=2.0)
    names = op_names(tfl)
    assert names.count("MUL") == 2 and "ADD" in names, names
    assert_bit_exact(tfl, tmp_path, n=N_SAMPLES, seed=7)


# ---- SOFTMAX --------------------------------------------------------------------

def _set_softmax_beta(beta: float) -> Callable[[Any], None]:
    def fn(model: Any) -> None:
        ops = ops_of(model, "SOFTMAX")
        assert ops
        for o in ops:
            o.builtinOptions.beta = beta

    return fn


@pytest.mark.parametrize("seed", range(3))
def test_softmax_scales_and_beta(seed: int, tmp_path: Path) -> None:
    """SOFTMAX with input scales from ~0.01 to ~1 and betas from 0.02 to 1000
    (1000 saturates the input multiplier at 2^31 - 1, shift 31)."""
    keras = _keras()
    rng = np.random.default_rng(200 + seed)
    shape = [(int(rng.integers(2, 40)),), (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 12)))][
        seed % 2
    ]
    inp = keras.Input(shape, batch_size=1)
    out = keras.layers.Softmax(axis=-1)(inp)
    rep_scale = [0.3, 5.0, 60.0][seed]
    tfl = to_int8_tflite(keras.Model(inp, out), [shape], seed=seed, rep_scale=rep_scale)
    assert op_names(tfl) == ["SOFTMAX"]
    betas = [[1.0, 0.05, 7.5], [1.0, 0.3, 1000.0], [1.0, 2.0, 0.02]][seed]
    shifts = []
    for k, beta in enumerate(betas):
        patched = patch_tflite(tfl, _set_softmax_beta(beta)) if beta != 1.0 else tfl
        shifts.append(lowered_params(patched, "SOFTMAX")[0]["params"]["input_left_shift"])
        assert_bit_exact(patched, tmp_path / f"b{k}", n=N_SAMPLES, seed=seed + k)
    if seed == 1:
        assert 31 in shifts  # beta * scale * 2^26 clamped to 2^31 - 1


def test_softmax_int16_output(tmp_path: Path) -> None:
    """int8 -> int16 SOFTMAX (output zero point -32768, scale 1/65536)."""
    keras = _keras()
    inp = keras.Input((2, 17), batch_size=1)
    out = keras.layers.Softmax(axis=-1)(inp)
    tfl = to_int8_tflite(keras.Model(inp, out), [(2, 17)], seed=3, rep_scale=4.0)

    def to_int16(model: Any) -> None:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

        (op,) = ops_of(model, "SOFTMAX")
        t = model.subgraphs[0].tensors[op.outputs[0]]
        t.type = fb.TensorType.INT16
        t.quantization.scale = [1.0 / 65536.0]
        t.quantization.zeroPoint = [-32768]

    patched = patch_tflite(tfl, to_int16)
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    g = read_tflite(patched)
    assert g.tensor(g.outputs[0]).dtype == "INT16"
    assert_bit_exact(patched, tmp_path, n=N_SAMPLES, seed=3)


# ---- LOGISTIC / TANH (+ int8 requantizing QUANTIZE, CONCATENATION) --------------

@pytest.mark.parametrize("seed", range(4))
def test_logistic_tanh(seed: int, tmp_path: Path) -> None:
    """LOGISTIC and TANH over input scales where random int8 inputs fall both
    inside and outside the saturation radius; outputs are concatenated, which
    makes the converter requantize them (int8 -> int8 QUANTIZE)."""
    keras = _keras()
    rng = np.random.default_rng(300 + seed)
    if seed % 2:  # > 256 elements: the kernels' per-code table path
        shape = (int(rng.integers(5, 9)), int(rng.integers(5, 9)), int(rng.integers(11, 16)))
    else:
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 9)))
    inp = keras.Input(shape, batch_size=1)
    s = keras.layers.Activation("sigmoid")(inp)
    t = keras.layers.Activation("tanh")(inp)
    out = keras.layers.Concatenate(axis=-1)([s, t, inp]) if seed % 2 == 0 else keras.layers.Concatenate(axis=1)([t, s])
    rep_scale = [0.2, 1.5, 6.0, 40.0][seed]
    tfl = to_int8_tflite(keras.Model(inp, out), [shape], seed=seed, rep_scale=rep_scale)
    names = op_names(tfl)
    assert "LOGISTIC" in names and "TANH" in names, names
    x = random_int8_inputs(tfl, N_SAMPLES, seed)
    if seed >= 2:
        # The edge case: some inputs lie outside the range radius (saturate).
        for rec in lowered_params(tfl, "LOGISTIC") + lowered_params(tfl, "TANH"):
            v = x.astype(np.int32) - rec["input"].zero_point
            assert np.any(np.abs(v) >= rec["params"]["input_range_radius"])
            assert np.any(np.abs(v) < rec["params"]["input_range_radius"])
    assert_bit_exact(tfl, tmp_path, inputs=x)


# ---- RELU / RELU6 / PAD / PADV2 / CONCATENATION ---------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_relu_pad_concat(seed: int, tmp_path: Path) -> None:
    """Standalone RELU / RELU6 (after ops that cannot fuse them), PAD with
    random paddings, PADV2 with a constant, CONCATENATION along each axis."""
    import tensorflow as tf

    keras = _keras()
    rng = np.random.default_rng(400 + seed)
    keras.utils.set_random_seed(seed)
    h, w, c = (int(v) for v in rng.integers(1, 6, size=3))
    inp = keras.Input((h, w, c), batch_size=1)
    pads = [[0, 0]] + [[int(a), int(b)] for a, b in rng.integers(0, 3, size=(3, 2))]
    x = keras.layers.Lambda(lambda t: tf.pad(t, pads))(inp)
    x = keras.layers.ReLU()(x)
    b = const_operand_layer("add", (1, 1, 1, c), False)(inp)
    cv = float(rng.uniform(-1.0, 1.0))
    y = keras.layers.Lambda(lambda t: tf.pad(t, pads, constant_values=cv))(b)
    axis = [1, 2, 3, -1][seed]
    z = keras.layers.Concatenate(axis=axis)([x, y, x])
    z = keras.layers.Reshape((-1,))(z)
    z = keras.layers.ReLU(max_value=6.0)(z)
    tfl = to_int8_tflite(keras.Model(inp, z), [(h, w, c)], seed=seed, rep_scale=float(rng.uniform(0.5, 8.0)))
    names = op_names(tfl)
    for want in ("PAD", "RELU", "CONCATENATION", "RELU6"):
        assert want in names, names
    assert_bit_exact(tfl, tmp_path, n=N_SAMPLES, seed=seed)


# (input scale, zero point, output scale, zero point) where RELU's multiplier
# s_in / s_out quantized from a double and from a float32 quotient (TFLM's source
# text) gives different outputs; the tflite-micro runtime computes in double.
RELU_PINNED = [(0.1568828672170639, -20, 0.1175464540719986, -110), (0.002891907934099436, 10, 0.0010697339894250035, -66),
               (0.70191890001297, -120, 0.3990459144115448, -120), (0.04872638359665871, -1, 0.030994152650237083, -96)]


def test_relu_multiplier_in_double(tmp_path: Path) -> None:
    """Standalone RELU over all 256 input codes at RELU_PINNED quantizations."""
    from quantized_models import code_grid_inputs, set_quantization

    keras = _keras()
    ins = [keras.Input((256,), batch_size=1) for _ in RELU_PINNED]
    tfl = to_int8_tflite(keras.Model(ins, [keras.layers.ReLU()(x) for x in ins]), [(256,)] * len(ins), n_rep=8)
    assert op_names(tfl) == ["RELU"] * len(ins)

    def pin(model: Any) -> None:
        sg = model.subgraphs[0]
        for o, (s_in, zp_in, s_out, zp_out) in zip(sg.operators, RELU_PINNED):
            set_quantization(sg.tensors[o.inputs[0]], s_in, zp_in)
            set_quantization(sg.tensors[o.outputs[0]], s_out, zp_out)

    tfl = patch_tflite(tfl, pin)
    assert_bit_exact(tfl, tmp_path, inputs=code_grid_inputs(tfl))


def test_pad_v2(tmp_path: Path) -> None:
    import tensorflow as tf

    keras = _keras()
    inp = keras.Input((3, 4, 5), batch_size=1)
    x = keras.layers.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 0], [0, 2], [1, 1]], constant_values=0.5))(inp)
    tfl = to_int8_tflite(keras.Model(inp, x), [(3, 4, 5)], seed=5)
    assert op_names(tfl) == ["PADV2"]
    (rec,) = lowered_params(tfl, "PADV2")
    assert rec["params"]["before"] == [0, 1, 0, 1] and rec["params"]["after"] == [0, 0, 2, 1]
    assert_bit_exact(tfl, tmp_path, n=N_SAMPLES, seed=5)


# ---- float interface: QUANTIZE float32 -> int8, DEQUANTIZE int8 -> float32 -----------

@pytest.mark.parametrize("seed", range(3))
def test_float_io_quantize_dequantize(seed: int, tmp_path: Path) -> None:
    keras = _keras()
    rng = np.random.default_rng(500 + seed)
    keras.utils.set_random_seed(seed)
    shape = (int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 7)))
    inp = keras.Input(shape, batch_size=1)
    x = const_operand_layer("mul", (1, 1, 1, shape[-1]), False)(inp)
    x = keras.layers.Activation(["sigmoid", "tanh", "relu"][seed])(x)
    rep_scale = float(rng.uniform(0.5, 4.0))
    tfl = to_int8_tflite(
        keras.Model(inp, x), [shape], seed=seed, rep_scale=rep_scale,
        inference_input_type="float32", inference_output_type="float32",
    )
    names = op_names(tfl)
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE", names
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    g = read_tflite(tfl)
    assert g.tensor(g.inputs[0]).dtype == "FLOAT32" and g.tensor(g.outputs[0]).dtype == "FLOAT32"
    q_in = g.tensor(g.ops[0].outputs[0])
    # Normal samples, out-of-range values (clamping) and exact half-way codes (rounding ties).
    xs = (rng.standard_normal((N_SAMPLES, *shape)) * rep_scale).astype(np.float32)
    xs[: N_SAMPLES // 4] *= np.float32(50.0)
    ties = (rng.integers(-140, 140, size=(N_SAMPLES // 4, *shape)) + 0.5 - q_in.zero_point).astype(np.float32)
    xs[-(N_SAMPLES // 4):] = ties * np.float32(q_in.scale)
    xs = xs.reshape((N_SAMPLES, *g.tensor(g.inputs[0]).shape))
    assert_bit_exact(tfl, tmp_path, inputs=xs)


# ---- refusals -------------------------------------------------------------------

def _concat_model() -> bytes:
    keras = _keras()
    inp = keras.Input((2, 3, 4), batch_size=1)
    out = keras.layers.Concatenate(axis=-1)([inp, keras.layers.ReLU()(inp)])
    return to_int8_tflite(keras.Model(inp, out), [(2, 3, 4)], seed=11)


def test_refusals() -> None:
    """Variants TFLM rejects (or tinyfed cannot run) fail at lowering, naming the op."""
    from tinyfed_toolchain.compile.plan import plan_model
    from tinyfed_toolchain.compile.tflite_reader import UnsupportedOpError, read_tflite

    keras = _keras()
    base = _concat_model()
    assert "CONCATENATION" in op_names(base)

    def unequal_concat_input(model: Any) -> None:
        (op,) = ops_of(model, "CONCATENATION")
        t = model.subgraphs[0].tensors[op.inputs[0]]
        t.quantization.scale = [float(t.quantization.scale[0]) * 1.5]

    bad = patch_tflite(base, unequal_concat_input)
    with pytest.raises(UnsupportedOpError, match=r"CONCATENATION .*TFLM requires them equal"):
        plan_model(read_tflite(bad), bad)

    inp = keras.Input((6,), batch_size=1)
    sm = to_int8_tflite(keras.Model(inp, keras.layers.Softmax()(inp)), [(6,)], seed=12)

    def softmax_zp(model: Any) -> None:
        (op,) = ops_of(model, "SOFTMAX")
        model.subgraphs[0].tensors[op.outputs[0]].quantization.zeroPoint = [0]

    bad = patch_tflite(sm, softmax_zp)
    with pytest.raises(UnsupportedOpError, match=r"SOFTMAX .*zero point -128"):
        plan_model(read_tflite(bad), bad)

    def softmax_tiny_beta(model: Any) -> None:
        _set_softmax_beta(1e-12)(model)

    bad = patch_tflite(sm, softmax_tiny_beta)
    with pytest.raises(UnsupportedOpError, match=r"SOFTMAX .*too small"):
        plan_model(read_tflite(bad), bad)

    def logistic_zp(model: Any) -> None:
        (op,) = ops_of(model, "SOFTMAX")
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

        # Reuse the graph: turn the SOFTMAX into a LOGISTIC whose output zero point is 0.
        model.operatorCodes[op.opcodeIndex].builtinCode = fb.BuiltinOperator.LOGISTIC
        model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode = fb.BuiltinOperator.LOGISTIC
        op.builtinOptionsType = 0
        op.builtinOptions = None
        model.subgraphs[0].tensors[op.outputs[0]].quantization.zeroPoint = [0]

    bad = patch_tflite(sm, logistic_zp)
    assert op_names(bad) == ["LOGISTIC"]
    with pytest.raises(UnsupportedOpError, match=r"LOGISTIC .*-128"):
        plan_model(read_tflite(bad), bad)
