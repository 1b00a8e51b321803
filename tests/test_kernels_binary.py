"""SUB, MAXIMUM, MINIMUM (and ADD alongside): emitted C vs the tflite-micro
runtime, byte for byte.

Two kinds of evidence:

- exhaustive: binary ops of a [256, 1] and a [1, 256] input see all 65536 int8
  code pairs in one sample (broadcasting both ways); the converted model is then
  re-quantized at random (scales, zero points, SUB's fused activation), so one
  conversion covers many TFLM Prepare results;
- Keras graphs as a user writes them: constant operands broadcast along
  different axes on either side, ``Subtract`` of activations with different
  scales, ``Maximum`` / ``Minimum`` layers, a fused ReLU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quantized_models import (
    BCAST_SHAPES,
    assert_bit_exact,
    code_grid_inputs,
    const_operand_layer,
    lowered_params,
    op_names,
    patch_tflite,
    set_quantization,
    to_int8_tflite,
)

N_SAMPLES = 48

# (op, operands swapped?) of the exhaustive model, one [256,1] x [1,256] pair each.
GRID_OPS = [("sub", False), ("sub", True), ("sub", False), ("add", False), ("max", False), ("min", True)]


@pytest.fixture(scope="module")
def grid_model() -> bytes:
    import keras

    def combine(kind: str, a: Any, b: Any) -> Any:
        return {"sub": lambda: a - b, "add": lambda: a + b, "max": lambda: keras.ops.maximum(a, b),
                "min": lambda: keras.ops.minimum(a, b)}[kind]()

    ins: list[Any] = []
    outs: list[Any] = []
    for kind, swap in GRID_OPS:
        a, b = keras.Input((256, 1), batch_size=1), keras.Input((1, 256), batch_size=1)
        ins += [a, b]
        outs.append(keras.layers.Lambda(lambda t, k=kind, s=swap: combine(k, *(t[::-1] if s else t)))([a, b]))
    tfl = to_int8_tflite(keras.Model(ins, outs), [(256, 1), (1, 256)] * len(GRID_OPS), n_rep=8)
    assert sorted(op_names(tfl)) == sorted(["SUB", "SUB", "SUB", "ADD", "MAXIMUM", "MINIMUM"]), op_names(tfl)
    return tfl


# (scales, zero points) of input 1, input 2, output for which SUB's Prepare in
# double and in float32 (TFLM's source text) give outputs that differ: the first
# SUB of every variant gets them (the tflite-micro runtime computes in double).
SUB_PINNED = ([0.0016432879492640495, 0.014121913351118565, 0.027734829112887383], [-94, -100, 71])


def _requantize(rng: np.random.Generator) -> Any:
    """Random scales (1e-3 .. 1) and zero points on every ADD/SUB tensor (SUB_PINNED
    on the first SUB, without activation), a different fused activation on each
    other SUB; MAXIMUM/MINIMUM keep the converter's quantization."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    def fn(model: Any) -> None:
        sg = model.subgraphs[0]
        pinned = True
        acts = list(rng.permutation([1, 2, 3]))  # RELU_N1_TO_1, RELU6, RELU in some order
        for o in sg.operators:
            code = model.operatorCodes[o.opcodeIndex].builtinCode
            if code not in (fb.BuiltinOperator.SUB, fb.BuiltinOperator.ADD):
                continue
            tensors = [sg.tensors[t] for t in [*o.inputs, *o.outputs]]
            if code == fb.BuiltinOperator.SUB and pinned:
                for t, scale, zp in zip(tensors, *SUB_PINNED):
                    set_quantization(t, scale, zp)
                o.builtinOptions.fusedActivationFunction = 0
                pinned = False
                continue
            for t in tensors:
                set_quantization(t, float(np.exp(rng.uniform(np.log(1e-3), 0.0))), int(rng.integers(-128, 128)))
            if code == fb.BuiltinOperator.SUB:
                o.builtinOptions.fusedActivationFunction = int(acts.pop())

    return fn


@pytest.mark.parametrize("seed", range(3))
def test_binary_all_code_pairs(grid_model: bytes, seed: int, tmp_path: Path) -> None:
    """Every int8 code pair through SUB (both operand orders), ADD, MAXIMUM and
    MINIMUM under random quantization; SUB with three different fused activations."""
    from tinyfed_toolchain.compile.ops import fused_activation

    rng = np.random.default_rng(600 + seed)
    # large activations, tiny weights: the tflite-micro reference needs the arena
    # toolchain/compile/tflm.py sizes from the graph (its default, 10x the file, is too small)
    tfl = patch_tflite(grid_model, _requantize(rng))
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    g = read_tflite(tfl)
    acts = [fused_activation(op) for op in g.ops if op.name == "SUB"]
    assert acts[0] == "NONE" and len(set(acts)) == len(acts), acts
    assert len(lowered_params(tfl, "SUB")) == 3
    res = assert_bit_exact(tfl, tmp_path, inputs=code_grid_inputs(tfl))
    assert all(o.size == 65536 for o in res.outputs)



@pytest.mark.parametrize("seed", range(3))
def test_sub_max_min_keras(seed: int, tmp_path: Path) -> None:
    """Constant operands broadcast along different axes (either side), Subtract /
    Maximum / Minimum of two activations with different scales, a fused ReLU."""
    import keras

    rng = np.random.default_rng(700 + seed)
    keras.utils.set_random_seed(seed)
    h, w, c = (int(v) for v in rng.integers(1, 7, size=3))
    inp = keras.Input((h, w, c), batch_size=1)
    a = const_operand_layer("sub", BCAST_SHAPES[seed % 6](h, w, c), bool(seed % 2))(inp)
    b = const_operand_layer("mul", BCAST_SHAPES[(seed + 3) % 6](h, w, c), False)(inp)
    d = keras.layers.Subtract()([a, b] if seed % 2 else [b, a])
    d = keras.layers.ReLU()(d)  # fused into SUB by the converter
    mx = keras.layers.Maximum()([a, b])
    mn = keras.layers.Minimum()([b, inp])
    cmx = const_operand_layer("max", BCAST_SHAPES[(seed + 1) % 6](h, w, c), bool(seed % 2))(b)
    cmn = const_operand_layer("min", BCAST_SHAPES[(seed + 2) % 6](h, w, c), not seed % 2)(a)
    tfl = to_int8_tflite(keras.Model(inp, [d, mx, mn, cmx, cmn]), [(h, w, c)], seed=seed,
                         rep_scale=float(rng.uniform(0.3, 6.0)))
    names = op_names(tfl)
    assert names.count("SUB") >= 1 and names.count("MAXIMUM") >= 2 and names.count("MINIMUM") >= 2, names
    assert_bit_exact(tfl, tmp_path, n=N_SAMPLES, seed=seed)
