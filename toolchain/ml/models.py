"""Keras teacher and student architectures, one family per input kind.

* image ``(H, W, C)`` → small CNN (Conv2D, depthwise-separable blocks, MaxPool, Dense)
* time series ``(T, C)`` → ``Reshape`` to ``(T, 1, C)`` then Conv2D with ``(k, 1)``
  kernels and ``(p, 1)`` max pooling, so the exported graph only needs 2-D ops
* flat features ``(F,)`` → MLP

Students end in plain ``Dense`` layers: the last hidden ``Dense`` is named
``embedding`` and the classifier ``logits`` (no softmax: logits are what
distillation, int8 quantization and later on-device training of the last
layer(s) want).  Every student uses only ops from
:data:`tinyfed_toolchain.ml.quantize.SUPPORTED_OPS` once converted to int8 — the
pipeline checks this.

Teachers are larger (and may use BatchNorm/Dropout); they never leave the host.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Before TensorFlow loads: hide its C++ info/warning chatter (and tf.data's
# harmless attribute errors) unless the user asked for a log level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import layers

from .data import input_kind

__all__ = [
    "StudentConfig",
    "TeacherConfig",
    "build_student",
    "build_teacher",
    "count_params",
    "with_batch_size",
]


@dataclass(frozen=True)
class StudentConfig:
    """Size of the tiny on-device model.

    Attributes
    ----------
    conv_filters
        Output channels of each conv block (image / time series). The first block
        is a full ``Conv2D``; later blocks are depthwise-separable
        (``DepthwiseConv2D`` + 1×1 ``Conv2D``) when ``separable`` is set.
    kernel_size
        Spatial kernel for images (k×k).
    time_kernel
        Temporal kernel for time series (k×1).
    pool
        Max-pool factor after each conv block (images: p×p, series: p×1).
    separable
        Use depthwise-separable conv for blocks after the first.
    global_pool
        End the conv stack with a global average (``MEAN``) instead of flattening.
    dense_units
        Hidden ``Dense`` widths before the classifier (for features: the MLP).
        The last one is the ``embedding`` layer.
    dropout
        Dropout before the classifier during training (no op at inference).
    """

    conv_filters: tuple[int, ...] = (8, 16)
    kernel_size: int = 3
    time_kernel: int = 5
    pool: int = 2
    separable: bool = True
    global_pool: bool = False
    dense_units: tuple[int, ...] = (32,)
    dropout: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StudentConfig:
        d = dict(d)
        for k in ("conv_filters", "dense_units"):
            if k in d:
                d[k] = tuple(int(v) for v in d[k])
        return cls(**d)


@dataclass(frozen=True)
class TeacherConfig:
    """Size of the host-side teacher."""

    conv_filters: tuple[int, ...] = (32, 64, 64)
    kernel_size: int = 3
    time_kernel: int = 7
    dense_units: tuple[int, ...] = (128,)
    dropout: float = 0.3

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_student_config(input_shape: Sequence[int]) -> StudentConfig:
    """A default student per input kind (a few thousand parameters)."""
    kind = input_kind(input_shape)
    if kind == "timeseries":
        return StudentConfig(conv_filters=(8, 16), time_kernel=5, pool=4, global_pool=True,
                             dense_units=(16,))
    if kind == "features":
        return StudentConfig(conv_filters=(), dense_units=(32, 16))
    return StudentConfig()


def _input(shape: Sequence[int], batch_size: int | None) -> keras.KerasTensor:
    return keras.Input(shape=tuple(int(d) for d in shape), batch_size=batch_size, name="input")


def build_student(
    input_shape: Sequence[int],
    num_classes: int,
    cfg: StudentConfig | None = None,
    *,
    batch_size: int | None = None,
    name: str = "student",
) -> keras.Model:
    """Build the on-device student (outputs logits).

    ``batch_size=1`` gives a graph with fully static shapes for export.
    """
    cfg = cfg or default_student_config(input_shape)
    kind = input_kind(input_shape)
    inp = _input(input_shape, batch_size)
    h = inp
    if kind in ("image", "timeseries"):
        if kind == "timeseries":
            t, c = int(input_shape[0]), int(input_shape[1])
            h = layers.Reshape((t, 1, c), name="to_2d")(h)
            kernel: tuple[int, int] = (cfg.time_kernel, 1)
            pool: tuple[int, int] = (cfg.pool, 1)
        else:
            kernel = (cfg.kernel_size, cfg.kernel_size)
            pool = (cfg.pool, cfg.pool)
        for i, f in enumerate(cfg.conv_filters):
            if i == 0 or not cfg.separable:
                h = layers.Conv2D(f, kernel, padding="same", activation="relu",
                                  name=f"conv{i}")(h)
            else:
                h = layers.DepthwiseConv2D(kernel, padding="same", activation="relu",
                                           name=f"dw{i}")(h)
                h = layers.Conv2D(f, (1, 1), activation="relu", name=f"pw{i}")(h)
            if h.shape[1] >= pool[0] and h.shape[2] >= pool[1] and pool != (1, 1):
                h = layers.MaxPooling2D(pool, name=f"pool{i}")(h)
        if cfg.global_pool:
            h = layers.GlobalAveragePooling2D(name="gap")(h)
        else:
            h = layers.Flatten(name="flatten")(h)
    elif len(input_shape) != 1:  # pragma: no cover - input_kind already checks
        raise ValueError(f"unsupported input shape {tuple(input_shape)}")
    for i, units in enumerate(cfg.dense_units):
        last = i == len(cfg.dense_units) - 1
        h = layers.Dense(units, activation="relu", name="embedding" if last else f"fc{i}")(h)
    if cfg.dropout > 0:
        h = layers.Dropout(cfg.dropout, name="dropout")(h)
    out = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inp, out, name=name)


def build_teacher(
    input_shape: Sequence[int],
    num_classes: int,
    cfg: TeacherConfig | None = None,
    *,
    name: str = "teacher",
) -> keras.Model:
    """Build the host-side teacher (outputs logits)."""
    cfg = cfg or TeacherConfig()
    kind = input_kind(input_shape)
    inp = _input(input_shape, None)
    h = inp
    if kind == "image":
        for i, f in enumerate(cfg.conv_filters):
            h = layers.Conv2D(f, cfg.kernel_size, padding="same", use_bias=False,
                              name=f"conv{i}")(h)
            h = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(h)
            h = layers.Activation("relu")(h)
            if h.shape[1] >= 2 and h.shape[2] >= 2 and i < len(cfg.conv_filters) - 1:
                h = layers.MaxPooling2D(2, name=f"pool{i}")(h)
        h = layers.GlobalAveragePooling2D(name="gap")(h)
    elif kind == "timeseries":
        for i, f in enumerate(cfg.conv_filters):
            h = layers.Conv1D(f, cfg.time_kernel, padding="same", use_bias=False,
                              name=f"conv{i}")(h)
            h = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(h)
            h = layers.Activation("relu")(h)
            if i < len(cfg.conv_filters) - 1 and h.shape[1] >= 4:
                h = layers.MaxPooling1D(2, name=f"pool{i}")(h)
        h = layers.GlobalAveragePooling1D(name="gap")(h)
    else:
        for i, units in enumerate(cfg.dense_units):
            h = layers.Dense(units * 2, activation="relu", name=f"mlp{i}")(h)
    for i, units in enumerate(cfg.dense_units):
        h = layers.Dense(units, activation="relu", name=f"fc{i}")(h)
        if cfg.dropout > 0:
            h = layers.Dropout(cfg.dropout, name=f"dropout{i}")(h)
    out = layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inp, out, name=name)


def with_batch_size(model: keras.Model, batch_size: int = 1) -> keras.Model:
    """A copy of a functional model with a fixed batch size and the same weights.

    TFLite export wants ``batch_size=1`` inputs: with a dynamic batch the graph
    gains SHAPE / STRIDED_SLICE / PACK ops for reshapes.
    """
    inp = keras.Input(
        shape=tuple(model.input_shape[1:]), batch_size=batch_size, name=model.inputs[0].name
    )
    clone = keras.models.clone_model(model, input_tensors=inp)
    clone.set_weights(model.get_weights())
    return clone


def count_params(model: keras.Model) -> int:
    """Number of parameters (weights and biases) in a model."""
    return int(model.count_params())
