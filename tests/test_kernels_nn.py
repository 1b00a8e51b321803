"""CONV_2D, DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D, MEAN: emitted C vs the
tflite-micro runtime, byte for byte, on seeded random shapes, quantization,
strides, padding, dilation, activations and depth multipliers; plus edge cases
and refusals.

Each test converts one tiny Keras model.  To keep conversions few, a model
holds several independent random layers as parallel branches of one input
(each branch is one more model output, all compared).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from quantized_models import assert_bit_exact, op_names, to_int8_tflite

ACTIVATIONS = [None, "relu", "relu6"]


def _rep_fn(rng: np.random.Generator, shape: tuple[int, ...]) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """Representative data with a random centre and spread, so the input zero
    point and scale vary from model to model (not always symmetric)."""
    centre = float(rng.uniform(-1.5, 1.5))
    spread = float(rng.uniform(0.1, 3.0))

    def fn(r: np.random.Generator) -> list[np.ndarray]:
        return [(centre + spread * r.standard_normal((1, *shape))).astype(np.float32)]

    return fn


def _convert_and_check(
    model: Any, shape: tuple[int, ...], seed: int, tmp_path: Path, expect: set[str], n: int = 40
) -> bytes:
    rng = np.random.default_rng(1000 + seed)
    tfl = to_int8_tflite(model, [shape], seed=seed, rep_fn=_rep_fn(rng, shape))
    ops = set(op_names(tfl))
    assert expect <= ops, f"expected ops {expect} in the converted model, got {sorted(ops)}"
    assert_bit_exact(tfl, tmp_path, n=n, seed=seed)
    return tfl


def _bias_init(seed: int) -> Any:
    import keras

    return keras.initializers.RandomNormal(stddev=0.3, seed=seed)


def _random_window(rng: np.random.Generator, h: int, w: int) -> dict[str, Any]:
    """Kernel, stride / dilation and padding that Keras accepts for an h x w input."""
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    if rng.random() < 0.3:
        strides, dilation = (1, 1), (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    else:
        strides, dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4))), (1, 1)
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    padding = "same" if (eff_h > h or eff_w > w or rng.random() < 0.5) else "valid"
    return {"kernel_size": (kh, kw), "strides": strides, "dilation_rate": dilation, "padding": padding}


# ---- CONV_2D ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_conv2d_random(seed: int, tmp_path: Path) -> None:
    import keras

    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    h, w, c = int(rng.integers(1, 13)), int(rng.integers(1, 13)), int(rng.integers(1, 9))
    inp = keras.Input((h, w, c), batch_size=1)
    outs = []
    for k in range(3):  # three independent random convolutions of the same input
        outs.append(
            keras.layers.Conv2D(
                int(rng.integers(1, 13)),
                activation=ACTIVATIONS[int(rng.integers(0, 3))],
                use_bias=bool(rng.random() < 0.8),
                bias_initializer=_bias_init(seed * 10 + k),
                **_random_window(rng, h, w),
            )(inp)
        )
    _convert_and_check(keras.Model(inp, outs), (h, w, c), seed, tmp_path, {"CONV_2D"})


def test_conv2d_edge_cases(tmp_path: Path) -> None:
    """1x1 conv, kernel larger than the input (SAME), stride > kernel, dilation 2,
    odd sizes, a single-pixel input, a chained second conv (int8 input from the first)."""
    import keras

    keras.utils.set_random_seed(7)
    b = _bias_init(7)
    inp = keras.Input((7, 5, 3), batch_size=1)
    x1 = keras.layers.Conv2D(4, 1, bias_initializer=b)(inp)  # 1x1
    x2 = keras.layers.Conv2D(3, (9, 7), padding="same", bias_initializer=b)(inp)  # kernel > input
    x3 = keras.layers.Conv2D(5, 2, strides=3, padding="same", activation="relu", bias_initializer=b)(inp)
    x4 = keras.layers.Conv2D(2, 3, dilation_rate=2, padding="same", activation="relu6", bias_initializer=b)(inp)
    x5 = keras.layers.Conv2D(3, (3, 2), dilation_rate=(2, 1), padding="valid", bias_initializer=b)(inp)
    x6 = keras.layers.Conv2D(6, 3, strides=(2, 1), padding="valid", use_bias=False)(inp)
    x7 = keras.layers.Conv2D(4, 3, padding="same", activation="relu", bias_initializer=b)(x6)  # chained
    _convert_and_check(keras.Model(inp, [x1, x2, x3, x4, x5, x6, x7]), (7, 5, 3), 7, tmp_path, {"CONV_2D"})

    inp1 = keras.Input((1, 1, 5), batch_size=1)  # single pixel, SAME 3x3: only the centre tap
    y = keras.layers.Conv2D(3, 3, padding="same", bias_initializer=b)(inp1)
    _convert_and_check(keras.Model(inp1, y), (1, 1, 5), 8, tmp_path / "px", {"CONV_2D"})


def test_conv2d_batch_of_two(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 2), batch_size=2)
    y = keras.layers.Conv2D(3, 3, strides=2, padding="same", bias_initializer=_bias_init(3))(inp)
    _convert_and_check(keras.Model(inp, y), (6, 6, 2), 3, tmp_path, {"CONV_2D"})


# ---- DEPTHWISE_CONV_2D -------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_depthwise_random(seed: int, tmp_path: Path) -> None:
    import keras

    rng = np.random.default_rng(100 + seed)
    keras.utils.set_random_seed(seed)
    h, w, c = int(rng.integers(1, 13)), int(rng.integers(1, 13)), int(rng.integers(2, 9))
    inp = keras.Input((h, w, c), batch_size=1)
    outs = []
    for k in range(3):
        win = _random_window(rng, h, w)
        outs.append(
            keras.layers.DepthwiseConv2D(
                depth_multiplier=int(rng.integers(1, 4)),
                activation=ACTIVATIONS[int(rng.integers(0, 3))],
                use_bias=bool(rng.random() < 0.8),
                bias_initializer=_bias_init(seed * 10 + k),
                **win,
            )(inp)
        )
    _convert_and_check(keras.Model(inp, outs), (h, w, c), seed, tmp_path, {"DEPTHWISE_CONV_2D"})


def test_depthwise_edge_cases(tmp_path: Path) -> None:
    """Kernel larger than the input (SAME), stride > kernel, dilation 2, multiplier 3,
    more channels than the kernel's 32-channel accumulator chunk, and a depthwise
    conv fed by a conv (MobileNet-style block)."""
    import keras

    keras.utils.set_random_seed(11)
    b = _bias_init(11)
    inp = keras.Input((5, 7, 35), batch_size=1)
    x1 = keras.layers.DepthwiseConv2D((7, 9), padding="same", bias_initializer=b)(inp)
    x2 = keras.layers.DepthwiseConv2D(2, strides=3, padding="same", depth_multiplier=2, bias_initializer=b)(inp)
    x3 = keras.layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu", bias_initializer=b)(inp)
    x4 = keras.layers.DepthwiseConv2D(1, depth_multiplier=3, activation="relu6", bias_initializer=b)(inp)
    h = keras.layers.Conv2D(6, 1, activation="relu", bias_initializer=b)(inp)
    x5 = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", bias_initializer=b)(h)
    ops = {"DEPTHWISE_CONV_2D", "CONV_2D"}
    _convert_and_check(keras.Model(inp, [x1, x2, x3, x4, x5]), (5, 7, 35), 11, tmp_path, ops)


# ---- MAX_POOL_2D / AVERAGE_POOL_2D ----------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_pooling_random(seed: int, tmp_path: Path) -> None:
    import keras

    rng = np.random.default_rng(200 + seed)
    keras.utils.set_random_seed(seed)
    h, w, c = int(rng.integers(1, 14)), int(rng.integers(1, 14)), int(rng.integers(1, 7))
    inp = keras.Input((h, w, c), batch_size=1)
    outs = []
    for layer in [keras.layers.MaxPooling2D, keras.layers.AveragePooling2D] * 2:
        ph, pw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        strides = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        padding = "same" if (ph > h or pw > w or rng.random() < 0.6) else "valid"
        outs.append(layer(pool_size=(ph, pw), strides=strides, padding=padding)(inp))
    # A fused activation: pooling after a ReLU conv gets RELU folded in (or not);
    # either way, the pool reads a requantized int8 tensor.
    hconv = keras.layers.Conv2D(3, 1, activation="relu")(inp)
    outs.append(keras.layers.AveragePooling2D(2, padding="same")(hconv))
    outs.append(keras.layers.MaxPooling2D(2, padding="same")(hconv))
    ops = {"MAX_POOL_2D", "AVERAGE_POOL_2D"}
    _convert_and_check(keras.Model(inp, outs), (h, w, c), seed, tmp_path, ops)


def test_pooling_edge_cases(tmp_path: Path) -> None:
    """AveragePooling with SAME padding at odd sizes (edge windows count only
    the valid elements), a window larger than the input, stride > window."""
    import keras

    inp = keras.Input((5, 7, 3), batch_size=1)
    outs = [
        keras.layers.AveragePooling2D(2, padding="same")(inp),  # odd: last window half outside
        keras.layers.AveragePooling2D(3, strides=2, padding="same")(inp),
        keras.layers.AveragePooling2D((6, 9), strides=1, padding="same")(inp),  # window > input
        keras.layers.AveragePooling2D(2, strides=3, padding="valid")(inp),  # stride > window
        keras.layers.MaxPooling2D((6, 9), strides=1, padding="same")(inp),
        keras.layers.MaxPooling2D(1, strides=3, padding="same")(inp),
        keras.layers.AveragePooling2D((5, 7), padding="valid")(inp),  # global
    ]
    ops = {"MAX_POOL_2D", "AVERAGE_POOL_2D"}
    _convert_and_check(keras.Model(inp, outs), (5, 7, 3), 21, tmp_path, ops, n=64)


def test_average_pool_rounding_is_half_away_from_zero(tmp_path: Path) -> None:
    """Inputs built so that many window sums are exact halves (positive and negative)."""
    import keras

    inp = keras.Input((4, 4, 2), batch_size=1)
    out = keras.layers.AveragePooling2D(2, padding="valid")(inp)
    tfl = to_int8_tflite(keras.Model(inp, out), [(4, 4, 2)], seed=1)
    rng = np.random.default_rng(5)
    # Each 2x2 window: values v, v, v, v+2 → sum = 4v + 2 → exact .5 after / 4.
    base = rng.integers(-100, 100, size=(48, 2, 2, 2))
    x = np.repeat(np.repeat(base, 2, axis=1), 2, axis=2)
    x[:, 1::2, 1::2, :] += 2
    assert_bit_exact(tfl, tmp_path, inputs=x.astype(np.int8))


# ---- MEAN --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_mean_random(seed: int, tmp_path: Path) -> None:
    """Global average pooling (axes 1,2; keepdims both ways) and means over a
    single axis (positive and negative) of a 4-D tensor."""
    import keras

    rng = np.random.default_rng(300 + seed)
    h, w, c = int(rng.integers(1, 12)), int(rng.integers(1, 12)), int(rng.integers(1, 9))
    inp = keras.Input((h, w, c), batch_size=1)
    outs = [
        keras.layers.GlobalAveragePooling2D()(inp),
        keras.layers.GlobalAveragePooling2D(keepdims=True)(inp),
    ]
    for axis in rng.choice([1, 2, 3, -1, -2, -3], size=3, replace=False):
        outs.append(keras.ops.mean(inp, axis=int(axis), keepdims=bool(rng.random() < 0.5)))
    outs.append(keras.ops.mean(inp, axis=(1, 3), keepdims=False))  # two non-adjacent axes
    _convert_and_check(keras.Model(inp, outs), (h, w, c), seed, tmp_path, {"MEAN"})


def test_mean_low_rank_and_after_conv(tmp_path: Path) -> None:
    """MEAN on 2-D and 3-D tensors, and GAP after a ReLU conv (a real student head)."""
    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((6, 5), batch_size=1)
    a = keras.ops.mean(inp, axis=-1)
    b = keras.ops.mean(inp, axis=1, keepdims=True)
    flat = keras.layers.Flatten()(inp)
    c = keras.ops.mean(flat, axis=-1, keepdims=True)
    _convert_and_check(keras.Model(inp, [a, b, c]), (6, 5), 4, tmp_path / "low", {"MEAN"})

    inp4 = keras.Input((9, 9, 2), batch_size=1)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp4)
    g = keras.layers.GlobalAveragePooling2D()(h)
    _convert_and_check(keras.Model(inp4, g), (9, 9, 2), 5, tmp_path / "gap", {"MEAN", "CONV_2D"})


def _set_output_quant_like_input(tflite: bytes, op_name: str) -> bytes:
    """Rewrite the model so ``op_name``'s output has exactly its input's scale and
    zero point (TFLM once special-cased that for MEAN; it must still match)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    sg = model.subgraphs[0]
    names = {i: c for i, c in enumerate(model.operatorCodes)}
    changed = 0
    for o in sg.operators:
        code = max(int(names[o.opcodeIndex].builtinCode), int(names[o.opcodeIndex].deprecatedBuiltinCode))
        if code == getattr(fb.BuiltinOperator, op_name):
            src, dst = sg.tensors[o.inputs[0]].quantization, sg.tensors[o.outputs[0]].quantization
            dst.scale, dst.zeroPoint = list(src.scale), list(src.zeroPoint)
            changed += 1
    assert changed
    b = flatbuffers.Builder(len(tflite) + 1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_mean_equal_input_output_quantization(tmp_path: Path) -> None:
    import keras

    inp = keras.Input((4, 6, 3), batch_size=1)
    outs = [keras.layers.GlobalAveragePooling2D()(inp), keras.ops.mean(inp, axis=2, keepdims=True)]
    tfl = to_int8_tflite(keras.Model(inp, outs), [(4, 6, 3)], seed=2, rep_fn=lambda r: [
        (0.5 + r.standard_normal((1, 4, 6, 3))).astype(np.float32)])
    tfl = _set_output_quant_like_input(tfl, "MEAN")
    assert_bit_exact(tfl, tmp_path, n=48, seed=2)


def test_mean_multiplier_matches_tflm_folding() -> None:
    """The 1/N fold, checked against a direct transcription of the arithmetic."""
    from tinyfed_toolchain.compile.ops.nn import mean_multiplier
    from tinyfed_toolchain.compile.quant_math import quantize_multiplier

    rng = np.random.default_rng(9)
    for _ in range(200):
        si, so = float(np.float32(rng.uniform(1e-3, 1.0))), float(np.float32(rng.uniform(1e-3, 1.0)))
        n = int(rng.integers(1, 5000))
        m, s = quantize_multiplier(float(np.float32(si)) / float(np.float32(so)))
        k = min(int(np.floor(np.log2(n))), 32, 31 + s)
        assert mean_multiplier(si, so, n) == ((m << k) // n, s - k)
    assert mean_multiplier(0.5, 0.5, 1) == quantize_multiplier(1.0)


# ---- padding arithmetic -----------------------------------------------------------


def test_padding_matches_tflm_formulas() -> None:
    from tinyfed_toolchain.compile.ops.nn import leading_padding, out_size

    # SAME, 5 wide, kernel 2, stride 1: out 5, total pad 1 → 0 before (the odd pixel goes after).
    assert out_size("SAME", 5, 2, 1, 1) == 5 and leading_padding(5, 2, 5, 1, 1) == 0
    # SAME, 7 wide, kernel 3, dilation 2 (effective 5): out 7, pad 2 before.
    assert out_size("SAME", 7, 3, 1, 2) == 7 and leading_padding(7, 3, 7, 1, 2) == 2
    # SAME, 5 wide, kernel 9 > input: out 5, total pad 8 → 4 before.
    assert out_size("SAME", 5, 9, 1, 1) == 5 and leading_padding(5, 9, 5, 1, 1) == 4
    # VALID never pads.
    assert out_size("VALID", 7, 3, 2, 1) == 3 and leading_padding(7, 3, 3, 2, 1) == 0
    # SAME with stride 3 over 7: out 3, total (3-1)*3+2-7 = 1 → 0 before.
    assert out_size("SAME", 7, 2, 3, 1) == 3 and leading_padding(7, 2, 3, 3, 1) == 0


# ---- refusals -----------------------------------------------------------------------


def _plan_error(tflite: bytes) -> str:
    from tinyfed_toolchain.compile.plan import plan_model
    from tinyfed_toolchain.compile.tflite_reader import UnsupportedOpError, read_tflite

    with pytest.raises(UnsupportedOpError) as err:
        plan_model(read_tflite(tflite), tflite)
    return str(err.value)


def test_unsupported_op_is_refused_by_name() -> None:
    import keras
    import tensorflow as tf

    inp = keras.Input((6,), batch_size=1)
    h = keras.layers.Lambda(tf.math.rsqrt)(inp)  # inputs are positive (see rep_fn)
    out = keras.layers.Dense(4)(h)
    tfl = to_int8_tflite(keras.Model(inp, out), [(6,)],
                         rep_fn=lambda r: [r.uniform(0.5, 4.0, (1, 6)).astype(np.float32)])
    assert "RSQRT" in op_names(tfl)
    msg = _plan_error(tfl)
    assert "unsupported op" in msg and "RSQRT" in msg


def test_grouped_conv_is_refused() -> None:
    import keras

    inp = keras.Input((5, 5, 4), batch_size=1)
    out = keras.layers.Conv2D(4, 3, groups=2)(inp)
    tfl = to_int8_tflite(keras.Model(inp, out), [(5, 5, 4)])
    assert "CONV_2D" in op_names(tfl)
    msg = _plan_error(tfl)
    assert "CONV_2D" in msg and "grouped" in msg


def test_int16_activations_are_refused() -> None:
    import keras
    import tensorflow as tf

    inp = keras.Input((5, 5, 2), batch_size=1)
    out = keras.layers.Conv2D(3, 3)(inp)
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.standard_normal((1, 5, 5, 2)).astype(np.float32)] for _ in range(16))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16
    tfl = bytes(conv.convert())
    msg = _plan_error(tfl)
    assert "CONV_2D" in msg and "INT16" in msg
