"""STRIDED_SLICE and RESIZE_NEAREST_NEIGHBOR: emitted C vs the tflite-micro
runtime, byte for byte, on random slices (ranks 2..4, negative indices and
strides, begin / end / shrink masks), Keras Cropping layers, and random
resizes (up and down, every align_corners / half_pixel_centers combination);
plus the refusals (ellipsis / new-axis masks, offset, non-constant begin,
UpSampling2D's TILE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quantized_models import assert_bit_exact, op_names, ops_of, patch_tflite, to_int8_tflite

N_SAMPLES = 32


def _random_slice(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
    """tf.strided_slice arguments with a non-empty result (checked with NumPy,
    whose basic slicing has the same semantics)."""
    while True:
        begin: list[int] = []
        end: list[int] = []
        strides: list[int] = []
        begin_mask = end_mask = shrink = 0
        index: list[Any] = []
        for a, n in enumerate(shape):
            s = int(rng.choice([1, 1, 2, 3, -1, -2]))
            b, e = int(rng.integers(-n - 1, n + 1)), int(rng.integers(-n - 1, n + 2))
            if a > 0 and rng.random() < 0.15:  # shrink this axis to one index
                b = int(rng.integers(-n, n))
                shrink |= 1 << a
                begin += [b]
                end += [b + 1]
                strides += [1]
                index.append(b)
                continue
            bm, em = rng.random() < 0.3, rng.random() < 0.3
            begin_mask |= int(bm) << a
            end_mask |= int(em) << a
            begin += [b]
            end += [e]
            strides += [s]
            index.append(slice(None if bm else b, None if em else e, s))
        if np.zeros(shape)[tuple(index)].size > 0:
            return {"begin": begin, "end": end, "strides": strides, "begin_mask": begin_mask,
                    "end_mask": end_mask, "shrink_axis_mask": shrink}


@pytest.mark.parametrize("seed", range(3))
def test_strided_slice_random(seed: int, tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(1100 + seed)
    inner = [(int(rng.integers(2, 9)),), (int(rng.integers(2, 6)), int(rng.integers(2, 7))),
             tuple(int(v) for v in rng.integers(1, 6, size=3))][seed]
    inp = keras.Input(inner, batch_size=1)
    shape = (1, *inner)
    outs = []
    for _ in range(4):
        kw = _random_slice(rng, shape)
        outs.append(keras.layers.Lambda(lambda t, kw=kw: tf.strided_slice(t, **kw))(inp))
    tfl = to_int8_tflite(keras.Model(inp, outs), [inner], seed=seed)
    assert op_names(tfl).count("STRIDED_SLICE") >= 3, op_names(tfl)
    assert_bit_exact(tfl, tmp_path, n=N_SAMPLES, seed=seed)


def test_cropping_layers(tmp_path: Path) -> None:
    """Keras Cropping1D / Cropping2D (begin/end masks on batch and channels) and
    NumPy-style slicing with an ellipsis, an integer index and a reversed axis."""
    import keras

    inp = keras.Input((7, 6, 3), batch_size=1)
    seq = keras.Input((9, 4), batch_size=1)
    outs = [
        keras.layers.Cropping2D(((1, 2), (0, 3)))(inp),
        keras.layers.Cropping2D(((0, 0), (2, 1)))(inp),
        keras.layers.Cropping1D((2, 3))(seq),
        keras.layers.Lambda(lambda t: t[..., 1])(inp),
        keras.layers.Lambda(lambda t: t[:, ::-2, 1:, :2])(inp),
    ]
    tfl = to_int8_tflite(keras.Model([inp, seq], outs), [(7, 6, 3), (9, 4)], seed=3)
    assert op_names(tfl).count("STRIDED_SLICE") == 5, op_names(tfl)
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    g = read_tflite(tfl)
    rng = np.random.default_rng(3)
    xs = [rng.integers(-128, 128, size=(N_SAMPLES, *g.tensor(i).shape), dtype=np.int8) for i in g.inputs]
    assert_bit_exact(tfl, tmp_path, inputs=xs)


# ---- RESIZE_NEAREST_NEIGHBOR ---------------------------------------------------------

MODES = [(False, False), (True, False), (False, True)]  # (align_corners, half_pixel_centers)


@pytest.mark.parametrize("seed", range(2))
def test_resize_nearest_random(seed: int, tmp_path: Path) -> None:
    """Random output sizes (smaller and larger, odd ratios) in each mode; then the
    same model with align_corners and half_pixel_centers both set (TF refuses to
    build that, TFLM runs it)."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(1200 + seed)
    h, w, c = int(rng.integers(1, 8)), int(rng.integers(2, 8)), int(rng.integers(1, 4))
    inp = keras.Input((h, w, c), batch_size=1)
    outs = []
    for k in range(6):
        size = (int(rng.integers(1, 3 * h + 2)), int(rng.integers(1, 3 * w + 2)))
        align, half = MODES[k % 3]
        outs.append(keras.layers.Lambda(lambda t, s=size, a=align, hp=half: tf.raw_ops.ResizeNearestNeighbor(
            images=t, size=s, align_corners=a, half_pixel_centers=hp))(inp))
    outs.append(keras.layers.Resizing(2 * h + 1, max(w - 1, 1), interpolation="nearest")(inp))
    tfl = to_int8_tflite(keras.Model(inp, outs), [(h, w, c)], seed=seed)
    assert op_names(tfl).count("RESIZE_NEAREST_NEIGHBOR") == 7, op_names(tfl)
    assert_bit_exact(tfl, tmp_path / "modes", n=N_SAMPLES, seed=seed)

    def both(model: Any) -> None:
        for o in ops_of(model, "RESIZE_NEAREST_NEIGHBOR"):
            o.builtinOptions.alignCorners = True
            o.builtinOptions.halfPixelCenters = True

    assert_bit_exact(patch_tflite(tfl, both), tmp_path / "both", n=N_SAMPLES, seed=seed)


def test_nearest_index_matches_tf() -> None:
    """The float32 index arithmetic against TF's own kernel on an index image."""
    import tensorflow as tf

    from tinyfed_toolchain.compile.ops.gather import nearest_neighbor_index

    rng = np.random.default_rng(5)
    for _ in range(40):
        n_in, n_out = int(rng.integers(1, 40)), int(rng.integers(1, 90))
        ramp = tf.reshape(tf.range(n_in, dtype=tf.float32), (1, n_in, 1, 1))
        for align, half in MODES:
            got = tf.raw_ops.ResizeNearestNeighbor(images=ramp, size=(n_out, 1), align_corners=align,
                                                   half_pixel_centers=half).numpy().reshape(-1)
            want = [nearest_neighbor_index(i, n_in, n_out, align, half) for i in range(n_out)]
            assert got.astype(int).tolist() == want, (n_in, n_out, align, half)


# ---- refusals ----------------------------------------------------------------------------

def _plan_error(tflite: bytes) -> str:
    from tinyfed_toolchain.compile.plan import plan_model
    from tinyfed_toolchain.compile.tflite_reader import UnsupportedOpError, read_tflite

    with pytest.raises(UnsupportedOpError) as err:
        plan_model(read_tflite(tflite), tflite)
    return str(err.value)


def test_refusals() -> None:
    import keras

    inp = keras.Input((5, 4, 2), batch_size=1)
    tfl = to_int8_tflite(keras.Model(inp, keras.layers.Cropping2D(((1, 1), (1, 0)))(inp)), [(5, 4, 2)], n_rep=8)
    assert op_names(tfl) == ["STRIDED_SLICE"]

    def set_option(name: str, value: Any) -> Any:
        def fn(model: Any) -> None:
            (o,) = ops_of(model, "STRIDED_SLICE")
            setattr(o.builtinOptions, name, value)

        return fn

    for name, value, text in (("ellipsisMask", 2, "ellipsis_mask"), ("newAxisMask", 1, "new_axis_mask"),
                              ("offset", True, "offset")):
        msg = _plan_error(patch_tflite(tfl, set_option(name, value)))
        assert "STRIDED_SLICE" in msg and text in msg, msg

    def variable_begin(model: Any) -> None:
        (o,) = ops_of(model, "STRIDED_SLICE")
        sg = model.subgraphs[0]
        sg.tensors[o.inputs[1]].buffer = 0  # no data: a run-time tensor, fed as a model input
        sg.inputs = list(sg.inputs) + [o.inputs[1]]

    msg = _plan_error(patch_tflite(tfl, variable_begin))
    assert "STRIDED_SLICE" in msg and "non-constant begin" in msg, msg

    def zero_stride(model: Any) -> None:
        (o,) = ops_of(model, "STRIDED_SLICE")
        sg = model.subgraphs[0]
        buf = model.buffers[sg.tensors[o.inputs[3]].buffer]
        buf.data = np.zeros(16, dtype=np.uint8)

    msg = _plan_error(patch_tflite(tfl, zero_stride))
    assert "STRIDED_SLICE" in msg and "stride of 0" in msg, msg

    # Keras 3 UpSampling2D lowers to RESHAPE / TILE, an op TFLM has no kernel for:
    # refused by name (Resizing(interpolation="nearest") gives RESIZE_NEAREST_NEIGHBOR).
    up = to_int8_tflite(keras.Model(inp, keras.layers.UpSampling2D(2)(inp)), [(5, 4, 2)], n_rep=8)
    if "TILE" in op_names(up):
        msg = _plan_error(up)
        assert "unsupported op: TILE" in msg, msg
    else:  # a TF that lowers it to RESIZE_NEAREST_NEIGHBOR: then it must plan
        from tinyfed_toolchain.compile.plan import plan_model
        from tinyfed_toolchain.compile.tflite_reader import read_tflite

        plan_model(read_tflite(up), up)
