"""FULLY_CONNECTED: emitted C vs tflite-micro, randomized shapes/quantization."""

from __future__ import annotations

import numpy as np
import pytest

from quantized_models import assert_bit_exact, op_names, to_int8_tflite


@pytest.mark.parametrize("seed", range(4))
def test_dense_random(seed: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import keras

    rng = np.random.default_rng(seed)
    depth, units = int(rng.integers(1, 70)), int(rng.integers(1, 40))
    act = ["relu", None, "relu6", "tanh"][seed % 4]
    keras.utils.set_random_seed(seed)
    inp = keras.Input((depth,), batch_size=1)
    out = keras.layers.Dense(units, activation=act, use_bias=seed % 2 == 0)(inp)
    m = keras.Model(inp, out)
    tfl = to_int8_tflite(m, [(depth,)], seed=seed, rep_scale=float(rng.uniform(0.2, 5)))
    assert "FULLY_CONNECTED" in op_names(tfl)
    assert_bit_exact(tfl, tmp_path, n=64, seed=seed)
