"""Models converted with a dynamic batch (Keras 3 `Flatten` / `Reshape` ->
SHAPE, STRIDED_SLICE, PACK feeding RESHAPE's shape operand) compile: the
shape arithmetic is dropped (toolchain/compile/shape_ops.py) and the result stays
bit-exact with tflite-micro, which runs those ops; an int32 computation that
feeds anything else is not dropped (and is refused by name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quantized_models import assert_bit_exact, op_names
from tinyfed_toolchain.compile.plan import plan_model
from tinyfed_toolchain.compile.shape_ops import drop_shape_arithmetic
from tinyfed_toolchain.compile.tflite_reader import read_tflite


def _dynamic_batch_tflite() -> bytes:
    import tensorflow as tf

    inp = tf.keras.Input((8, 8, 1))  # batch None: the converter computes Flatten's shape at run time
    h = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = tf.keras.layers.MaxPooling2D()(h)
    h = tf.keras.layers.Flatten()(h)
    h = tf.keras.layers.Dense(12, activation="relu")(h)
    h = tf.keras.layers.Reshape((3, 4))(h)
    h = tf.keras.layers.Flatten()(h)
    out = tf.keras.layers.Dense(5)(h)
    model = tf.keras.Model(inp, out)
    rng = np.random.default_rng(0)

    def rep():  # type: ignore[no-untyped-def]
        for _ in range(32):
            yield [rng.random((1, 8, 8, 1), dtype=np.float32)]

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c.convert()


def test_dynamic_batch_flatten_compiles_bit_exact(tmp_path: Path) -> None:
    tfl = _dynamic_batch_tflite()
    names = op_names(tfl)
    assert "SHAPE" in names and "PACK" in names  # the pattern this is about is really there
    g = read_tflite(tfl)
    pruned = drop_shape_arithmetic(g)
    kept = [op.name for op in pruned.ops]
    assert "SHAPE" not in kept and "PACK" not in kept and kept.count("RESHAPE") == 3
    # consumers are renumbered to positions in the pruned op list
    for t, ks in pruned.consumers.items():
        assert all(t in pruned.ops[k].inputs for k in ks)
    plan = plan_model(g, tfl)
    assert [l.op for l in plan.layers] == kept
    assert_bit_exact(tfl, tmp_path, n=24)


def test_shape_arithmetic_feeding_anything_else_is_kept() -> None:
    tfl = _dynamic_batch_tflite()
    g = read_tflite(tfl)
    shape_op = next(op for op in g.ops if op.name == "SHAPE")
    # make the model also output the SHAPE result: it is no longer dead
    g.outputs.append(shape_op.outputs[0])
    assert "SHAPE" in [op.name for op in drop_shape_arithmetic(g).ops]
