"""Gradient parity: the training engine's gradients (host build of
firmware/src/train) vs TensorFlow autodiff of the same float graph.

The reference (tests/train_reference.py) is built from the .tflite graph:
dequantized filters / biases with the graph's scales, TF conv / pool ops with
the op's own padding, the boundary activation from the tflite-micro runtime.
Tolerance, float32 on both sides: per parameter segment,
|C - TF| <= 1e-5 * max|TF| + 1e-4 * |TF| (rtol 1e-4, atol 1e-5 relative to
the segment's largest gradient, i.e. 1e-5 absolute for O(1) gradients);
logits within 1e-5 and the loss within 1e-5 relative.  Gradients are taken at a
random point near the initial parameters (so LoRA's B != 0 and every
segment's gradient is non-zero).

One model covers every tail op: CONV_2D (3x3, fused RELU), DEPTHWISE_CONV_2D
(stride 2, SAME, depth multiplier 2, fused RELU6), 1x1 CONV_2D, MAX_POOL_2D
(SAME, clipped windows), RESHAPE, AVERAGE_POOL_2D, MEAN, RELU, FULLY_CONNECTED.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from quantized_models import op_names, to_int8_tflite
from train_reference import TFReference, assert_grads_close, make_trainer, model_plan

from tinyfed_toolchain.compile.plan import Plan
from tinyfed_toolchain.compile.tflite_reader import UnsupportedOpError
from tinyfed_toolchain.training.native_trainer import TrainError
from tinyfed_toolchain.training.plan import Selection, TrainOptions, TrainPlan, build_train_plan
from tinyfed_toolchain.training.schemes import select_all, select_biases, select_last_k, select_lora

EXPECTED_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "AVERAGE_POOL_2D",
                "CONV_2D", "MEAN", "RELU", "FULLY_CONNECTED", "FULLY_CONNECTED"]


def build_tail_model() -> bytes:
    import keras

    keras.utils.set_random_seed(0)
    b = keras.initializers.RandomNormal(stddev=0.2, seed=1)
    inp = keras.Input((9, 9, 2), batch_size=1)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", bias_initializer=b)(inp)
    h = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu6",
                                     bias_initializer=b)(h)
    h = keras.layers.Conv2D(6, 1, activation="relu", bias_initializer=b)(h)
    h = keras.layers.MaxPooling2D(2, padding="same")(h)  # 3x3x6
    h = keras.layers.Reshape((9, 1, 6))(h)
    h = keras.layers.AveragePooling2D((2, 1), strides=1)(h)  # 8x1x6
    h = keras.layers.Conv2D(8, 1, bias_initializer=b)(h)
    h = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(12, activation="relu", bias_initializer=b)(h)
    out = keras.layers.Dense(5, bias_initializer=b)(h)
    return to_int8_tflite(keras.Model(inp, out), [(9, 9, 2)])


@pytest.fixture(scope="module")
def tail_model() -> bytes:
    tfl = build_tail_model()
    assert op_names(tfl) == EXPECTED_OPS
    return tfl


def _sparse(mp: Plan) -> Selection:
    # layer indices: 1 depthwise, 2 conv 1x1, 6 conv 1x1, 9 / 10 FC
    return Selection("sparse", weights={1: (1, 2, 6), 2: (0, 3, 5), 9: (1, 4, 7, 11)},
                     biases=frozenset({0, 6, 10}))


SCHEMES: dict[str, Callable[[Plan], Selection]] = {
    "last1": lambda mp: select_last_k(mp, 1),
    "last3": lambda mp: select_last_k(mp, 3),
    "all": select_all,
    "bias": select_biases,
    "bias_last2": lambda mp: select_biases(mp, 2),
    "sparse": _sparse,
    "lora": lambda mp: select_lora(mp, rank=3, alpha=6.0),
    "lora_store_h_bias": lambda mp: select_lora(mp, rank=2, store_h=True, biases=True),
}

CASES = [(s, "real") for s in SCHEMES] + [(s, "quantized") for s in ("all", "bias", "sparse")]


def _data(seed: int, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(n, 9, 9, 2), dtype=np.int8), rng.integers(0, 5, size=n)


def _perturbed(tp: TrainPlan, seed: int) -> np.ndarray:
    """The initial parameters plus noise of 10% of each segment's largest magnitude
    (at least 0.01: LoRA B starts at 0)."""
    rng = np.random.default_rng(seed)
    p = tp.init_params.copy()
    for s in tp.segments:
        v = p[s.offset : s.offset + s.count]
        v += rng.standard_normal(v.shape).astype(np.float32) * np.float32(0.1 * max(float(np.abs(v).max()), 0.1))
    return p


@pytest.mark.parametrize("scheme,domain", CASES)
def test_gradient_parity(tail_model: bytes, scheme: str, domain: str, tmp_path: Path) -> None:
    mp = model_plan(tail_model)
    sel = SCHEMES[scheme](mp)
    tp, ht = make_trainer(tail_model, sel, tmp_path, TrainOptions(domain=domain), mp)  # type: ignore[arg-type]
    assert ht.n_params == tp.n_params > 0
    np.testing.assert_array_equal(ht.params(), tp.init_params)
    seed = sum(map(ord, scheme + domain))
    x, y = _data(seed)
    p = _perturbed(tp, seed)
    ht.set_params(p)
    got, loss_sum = ht.gradient_and_loss(x, y)
    loss, ref, logits = TFReference(tail_model, tp).run(x, y, p)
    np.testing.assert_allclose(ht.predict(x), logits, rtol=1e-5, atol=1e-5)
    assert abs(loss_sum / len(y) - loss) <= 1e-5 * max(1.0, loss)
    assert_grads_close(got, ref, tp)
    np.testing.assert_array_equal(ht.params(), p)  # gradient() leaves the parameters alone


def test_every_tail_op_has_run_backward(tail_model: bytes) -> None:
    """The 'all' plan's tail is the whole model: every op above ran backward."""
    mp = model_plan(tail_model)
    tp = build_train_plan(mp, select_all(mp))
    assert tp.first_layer == 0 and [t.op for t in tp.tail] == EXPECTED_OPS


def test_parity_at_init_with_float_model(tail_model: bytes, tmp_path: Path) -> None:
    """At the initial parameters the float tail is the dequantized model: the C
    logits equal TF's within float32 rounding (and the int8 model's dequantized
    logits within its quantization error)."""
    mp = model_plan(tail_model)
    tp, ht = make_trainer(tail_model, select_last_k(mp, 3), tmp_path, mplan=mp)
    x, y = _data(5, 8)
    _, _, logits = TFReference(tail_model, tp).run(x, y, tp.init_params)
    np.testing.assert_allclose(ht.predict(x), logits, rtol=1e-5, atol=1e-5)


# ---- refusals: a tail op without a backward ------------------------------------------


@pytest.fixture(scope="module")
def tanh_model() -> bytes:
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((6,), batch_size=1)
    h = keras.layers.Dense(8, activation="tanh")(inp)
    out = keras.layers.Dense(4, activation="softmax")(h)
    tfl = to_int8_tflite(keras.Model(inp, out), [(6,)])
    assert op_names(tfl) == ["FULLY_CONNECTED", "TANH", "FULLY_CONNECTED", "SOFTMAX"]
    return tfl


def test_tail_with_op_without_backward_is_refused(tanh_model: bytes) -> None:
    mp = model_plan(tanh_model)
    with pytest.raises(UnsupportedOpError, match=r"TANH \(layer 1\).*no backward"):
        build_train_plan(mp, select_last_k(mp, 2))


def test_final_softmax_is_the_loss(tanh_model: bytes, tmp_path: Path) -> None:
    """A final SOFTMAX is left out of the tail: logits are its input, the loss
    is softmax cross-entropy on them; gradients still match TF."""
    mp = model_plan(tanh_model)
    tp, ht = make_trainer(tanh_model, select_last_k(mp, 1), tmp_path, mplan=mp)
    assert [t.op for t in tp.tail] == ["FULLY_CONNECTED"] and tp.n_logits == 4
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(10, 6), dtype=np.int8)
    y = rng.integers(0, 4, size=10)
    got = ht.gradient(x, y)
    _, ref, _ = TFReference(tanh_model, tp).run(x, y, tp.init_params)
    assert_grads_close(got, ref, tp)


def test_engine_refuses_op_without_backward(tanh_model: bytes, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: tables that put TANH in the tail (the toolchain check
    bypassed) are refused by tfd_trainer_init with TFD_ERR_UNSUPPORTED_OP."""
    from tinyfed_toolchain.training import plan as train_plan

    monkeypatch.setattr(train_plan, "BACKWARD_OPS", train_plan.BACKWARD_OPS | {"TANH"})
    mp = model_plan(tanh_model)
    with pytest.raises(TrainError, match="unsupported op") as err:
        make_trainer(tanh_model, select_last_k(mp, 2), tmp_path, mplan=mp)
    assert err.value.status == 3


# ---- pooling edge cases, standalone RELU6, float output ----------------------------------


@pytest.fixture(scope="module")
def edge_model() -> bytes:
    """MAX_POOL_2D over 17x17 windows (289 taps: uint16 routes) with a fused RELU6
    (route and mask both saved), MEAN, a standalone RELU6, and a float output
    (DEQUANTIZE at the end of the tail)."""
    import keras

    keras.utils.set_random_seed(4)
    b = keras.initializers.RandomNormal(stddev=0.2, seed=2)
    inp = keras.Input((17, 18, 2), batch_size=1)
    h = keras.layers.Conv2D(4, 1, bias_initializer=b)(inp)
    h = keras.layers.MaxPooling2D(17, strides=1)(h)  # 1x2 outputs
    h = keras.layers.ReLU(max_value=6.0)(h)  # fused into the pool
    h = keras.layers.Conv2D(4, 1, bias_initializer=b)(h)
    h = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    h = keras.layers.ReLU(max_value=6.0)(h)  # standalone
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(3, bias_initializer=b)(h)
    tfl = to_int8_tflite(keras.Model(inp, out), [(17, 18, 2)], inference_output_type="float32", rep_scale=2.0)
    assert op_names(tfl) == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MEAN", "RELU6", "FULLY_CONNECTED", "DEQUANTIZE"]
    return tfl


@pytest.mark.parametrize("scheme", ["all", "bias"])
def test_gradient_parity_pool_edge_cases(edge_model: bytes, scheme: str, tmp_path: Path) -> None:
    from tinyfed_toolchain.facts.c_headers import train_constants

    mp = model_plan(edge_model)
    tp, ht = make_trainer(edge_model, SCHEMES[scheme](mp), tmp_path, mplan=mp)
    flags = train_constants()
    pool = tp.tail[1]
    assert pool.op == "MAX_POOL_2D" and pool.act == "RELU6"
    # "all": the next conv keeps the pool's output for its weight gradient, so the
    # RELU6 derivative is read from it; "bias": nothing keeps it, bits are saved
    mask = flags["TFD_TL_MASK_OUTPUT"] if scheme == "all" else flags["TFD_TL_MASK_BITS"]
    want = flags["TFD_TL_ARGMAX"] | flags["TFD_TL_ARGMAX_WIDE"] | mask
    assert pool.flags & want == want
    if scheme == "bias":
        assert pool.aux_off != pool.mask_off
    assert tp.tail[-1].op == "DEQUANTIZE" and tp.n_logits == 3
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(10, 17, 18, 2), dtype=np.int8)
    y = rng.integers(0, 3, size=10)
    p = _perturbed(tp, 7)
    ht.set_params(p)
    got, loss_sum = ht.gradient_and_loss(x, y)
    loss, ref, logits = TFReference(edge_model, tp).run(x, y, p)
    np.testing.assert_allclose(ht.predict(x), logits, rtol=1e-5, atol=1e-5)
    assert abs(loss_sum / len(y) - loss) <= 1e-5 * max(1.0, loss)
    assert_grads_close(got, ref, tp)
