"""LEAKY_RELU and HARD_SWISH: emitted C vs the tflite-micro runtime, byte for byte.

- exhaustive: 16 independent ops on [256] inputs see all 256 int8 codes each;
  the converted model is re-quantized at random (and LEAKY_RELU's alpha set to
  0, small, 1, > 1 and negative), so one conversion covers many TFLM Prepare
  results, including both signs of HARD_SWISH's "reluish" exponent, an output
  exponent of 0 and LEAKY_RELU rounding ties with a negative alpha;
- Keras graphs: Conv2D -> LeakyReLU, a MobileNetV3-style conv / depthwise block
  with hard_swish, on tensors above and below 256 elements (the kernels'
  per-code table and direct paths).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quantized_models import (
    assert_bit_exact,
    code_grid_inputs,
    lowered_params,
    op_names,
    patch_tflite,
    set_quantization,
    to_int8_tflite,
)

N_PER_OP = 8
# Pinned LEAKY_RELU ops, (input scale, zero point, output scale, zero point, alpha),
# None = random scales:
# - equal scales make the alpha multipliers exact (3 * 2^29, shift 1 and 0), so
#   many offset inputs hit rounding ties, where TFLM's "negate the |multiplier|
#   result" for a negative alpha differs from multiplying by the negative one;
# - scales where s_in * alpha / s_out (then s_in / s_out) in double and in float32
#   quantize to multipliers that give different outputs: the tflite-micro runtime
#   computes in double.
LEAKY_PINNED: list[tuple[float | None, int, float | None, int, float]] = [
    (0.5, 3, 0.5, -7, -1.5),
    (0.25, -9, 0.25, 4, 0.75),
    (0.02469271793961525, 127, 0.0023341639898717403, 0, -0.029464714229106903),
    (0.0910264328122139, 127, 0.014579643495380878, 0, -0.07829172909259796),
    (0.004053911659866571, -128, 0.0033684675581753254, 0, 0.2),
    (None, 0, None, 0, 0.0),
    (None, 0, None, 0, 1.7),
    (None, 0, None, 0, -0.4),
]
# Pinned HARD_SWISH ops (input scale, zero point, output scale, zero point):
# - two where the output multiplier in double and in float32 give different
#   outputs (the runtime computes in double);
# - extreme exponents, each seen in real models (e.g. a dead channel of an untrained
#   MobileNetV3): reluish -20 and output -17 (TFLM's int16 rounding shift past 15
#   bits degenerates to +-1), reluish 18 and 31 (saturating shifts past 16 bits).
HARD_SWISH_PINNED = [(0.0054268427193164825, -48, 0.0011816361220553517, 23),
                     (0.032244447618722916, -87, 0.0515344999730587, -17),
                     (9.3e-9, 5, 6.5e-9, -3), (0.01, -20, 20.0, 3),
                     (3000.0, 17, 1500.0, -50), (2e7, 0, 1e7, 0)]


@pytest.fixture(scope="module")
def grid_model() -> bytes:
    import keras

    ins = [keras.Input((256,), batch_size=1) for _ in range(2 * N_PER_OP)]
    outs = [keras.layers.LeakyReLU(0.1)(x) for x in ins[:N_PER_OP]]
    outs += [keras.layers.Activation("hard_swish")(x) for x in ins[N_PER_OP:]]
    tfl = to_int8_tflite(keras.Model(ins, outs), [(256,)] * (2 * N_PER_OP), n_rep=8)
    names = op_names(tfl)
    assert names.count("LEAKY_RELU") == N_PER_OP and names.count("HARD_SWISH") == N_PER_OP, names
    return tfl


def _requantize(rng: np.random.Generator) -> Any:
    """LEAKY_RELU: LEAKY_PINNED, the random ones with input scales 1e-3 .. 2,
    output scales 0.05 .. 3 x the input's; HARD_SWISH: HARD_SWISH_PINNED, then
    input scales alternately 1e-4 .. 0.01 (reluish exponent <= 0) and 0.02 .. 100
    (> 0), output scales s_in / 120 .. 8 s_in, one at s_in / 128 * 1.01 (output
    exponent 0: the largest pre-shift values); random zero points."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    def rand_zp() -> int:
        return int(rng.integers(-128, 128))

    def fn(model: Any) -> None:
        sg = model.subgraphs[0]
        leaky = list(rng.permutation(len(LEAKY_PINNED)))
        n_hs = 0
        for o in sg.operators:
            x, y = sg.tensors[o.inputs[0]], sg.tensors[o.outputs[0]]
            if model.operatorCodes[o.opcodeIndex].builtinCode == fb.BuiltinOperator.LEAKY_RELU:
                s_in, zp_in, s_out, zp_out, alpha = LEAKY_PINNED[leaky.pop()]
                o.builtinOptions.alpha = alpha
                if s_in is None or s_out is None:
                    s_in = float(np.exp(rng.uniform(np.log(1e-3), np.log(2.0))))
                    s_out = s_in * float(np.exp(rng.uniform(np.log(0.05), np.log(3.0))))
                    zp_in, zp_out = rand_zp(), rand_zp()
            elif n_hs < len(HARD_SWISH_PINNED):
                s_in, zp_in, s_out, zp_out = HARD_SWISH_PINNED[n_hs]
            else:
                lo, hi = ((1e-4, 0.01), (0.02, 100.0))[n_hs % 2]
                s_in = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
                ratio = 1.01 / 128.0 if n_hs == len(HARD_SWISH_PINNED) else float(
                    np.exp(rng.uniform(np.log(1 / 120), np.log(8.0))))
                s_out, zp_in, zp_out = s_in * ratio, rand_zp(), rand_zp()
            if model.operatorCodes[o.opcodeIndex].builtinCode == fb.BuiltinOperator.HARD_SWISH:
                n_hs += 1
            set_quantization(x, s_in, zp_in)
            set_quantization(y, s_out, zp_out)

    return fn


@pytest.mark.parametrize("seed", range(3))
def test_leaky_relu_hard_swish_all_codes(grid_model: bytes, seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(800 + seed)
    tfl = patch_tflite(grid_model, _requantize(rng))
    hs = [rec["params"] for rec in lowered_params(tfl, "HARD_SWISH")]
    reluish = {p["reluish_exponent"] for p in hs}
    assert min(reluish) < -15 and max(reluish) == 31 and any(0 < e <= 16 for e in reluish)
    assert {0, -17} <= {p["output_exponent"] for p in hs}
    lr = [rec["params"] for rec in lowered_params(tfl, "LEAKY_RELU")]
    assert any(p["alpha_negative"] for p in lr) and any(p["mult_alpha"] == 0 for p in lr)
    res = assert_bit_exact(tfl, tmp_path, inputs=code_grid_inputs(tfl))
    assert len(res.outputs) == 2 * N_PER_OP and all(o.size == 256 for o in res.outputs)


@pytest.mark.parametrize("seed", range(2))
def test_leaky_relu_hard_swish_keras(seed: int, tmp_path: Path) -> None:
    """Conv2D -> LeakyReLU(alpha) and a MobileNetV3-style block
    (conv -> hard_swish -> depthwise -> hard_swish), large and small tensors."""
    import keras

    rng = np.random.default_rng(900 + seed)
    keras.utils.set_random_seed(seed)
    h, w = [(9, 8), (3, 2)][seed]  # > 256 and < 256 elements per activation
    inp = keras.Input((h, w, 3), batch_size=1)
    a = keras.layers.Conv2D(6, 3, padding="same")(inp)
    a = keras.layers.LeakyReLU(float(rng.uniform(0.01, 0.5)))(a)
    b = keras.layers.Conv2D(8, 1)(inp)
    b = keras.layers.Activation("hard_swish")(b)
    b = keras.layers.DepthwiseConv2D(3, padding="same")(b)
    b = keras.layers.Activation("hard_swish")(b)
    c = keras.layers.LeakyReLU(0.3)(inp)  # straight on the model input
    tfl = to_int8_tflite(keras.Model(inp, [a, b, c]), [(h, w, 3)], seed=seed,
                         rep_scale=[6.0, 0.4][seed])
    names = op_names(tfl)
    assert names.count("HARD_SWISH") == 2 and names.count("LEAKY_RELU") == 2, names
    assert_bit_exact(tfl, tmp_path, n=48, seed=seed)


def test_hard_swish_refusals() -> None:
    """An output scale below input scale / 128 (TFLM's Prepare refuses it) and an
    input scale so large that TFLM's 1 << (reluish exponent - 1) would overflow."""
    import keras

    from tinyfed_toolchain.compile.plan import plan_model
    from tinyfed_toolchain.compile.tflite_reader import UnsupportedOpError, read_tflite

    inp = keras.Input((8,), batch_size=1)
    tfl = to_int8_tflite(keras.Model(inp, keras.layers.Activation("hard_swish")(inp)), [(8,)], n_rep=8)
    for s_in, ratio, match in ((0.05, 1.0 / 200.0, r"HARD_SWISH .*output exponent <= 0"),
                               (1e8, 0.5, r"HARD_SWISH .*reluish exponent 33")):
        def fn(model: Any, s_in: float = s_in, ratio: float = ratio) -> None:
            sg = model.subgraphs[0]
            (o,) = sg.operators
            set_quantization(sg.tensors[o.inputs[0]], s_in, 0)
            set_quantization(sg.tensors[o.outputs[0]], s_in * ratio, 0)

        bad = patch_tflite(tfl, fn)
        with pytest.raises(UnsupportedOpError, match=match):
            plan_model(read_tflite(bad), bad)
