"""Training: the teacher, the student alone (baseline) and the distilled student.

Knowledge distillation (Hinton et al., 2015)::

    loss = alpha * CE(y, softmax(z_s)) + (1 - alpha) * T² * KL(softmax(z_t/T) || softmax(z_s/T))

``alpha`` weighs the hard-label cross entropy, ``T`` softens both distributions and
the ``T²`` factor keeps the soft-target gradients on the same scale as the hard
ones.  The teacher is frozen; each epoch it labels exactly the (augmented) inputs
the student is about to train on, and its logits travel with the labels as the
target ``[one_hot(y) | z_t]`` — the loss needs no custom training step and works on
any Keras backend.

For an honest comparison :func:`train_student_alone` trains the *same*
architecture from the *same* initial weights with the *same* optimizer, schedule,
epochs, batch order and seed — only the loss differs (hard labels only).

Augmentation (:class:`AugmentConfig`) is applied per pass from a seeded stream.
The pipeline's defaults train the *teacher* with augmentation (mixup gives it
softer, less over-confident logits; on digits distillation only helped with such
a teacher) and both students without: the tiny students underfit under
shift/mixup at the default budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# Before TensorFlow loads: hide its C++ info/warning chatter (and tf.data's
# harmless attribute errors) unless the user asked for a log level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np
from keras import ops

from ..facts.errors import OptionsError

__all__ = [
    "AugmentConfig",
    "DistillConfig",
    "DistillationLoss",
    "FitConfig",
    "accuracy",
    "augment_batch",
    "default_augment",
    "distill",
    "distillation_loss",
    "predict_logits",
    "set_seed",
    "train_student_alone",
    "train_teacher",
]


@dataclass(frozen=True)
class FitConfig:
    """Optimizer settings shared by all three trainings (epochs differ per model)."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DistillConfig:
    """Distillation mix: ``alpha`` weighs hard labels, ``temperature`` softens logits."""

    temperature: float = 4.0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise OptionsError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise OptionsError(f"alpha must be in [0, 1], got {self.alpha}")


@keras.saving.register_keras_serializable(package="tinyfed")
class DistillationLoss(keras.losses.Loss):  # type: ignore[misc]
    """Distillation loss over targets ``[one_hot(y) | teacher_logits]`` (``(B, 2K)``).

    ``alpha * CE(y, z_s) + (1 - alpha) * T² * KL(softmax(z_t/T) || softmax(z_s/T))``.
    Serializable, so compiled students can be cloned and saved.
    """

    def __init__(self, num_classes: int, temperature: float = 4.0, alpha: float = 0.5,
                 name: str = "distillation", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        k, t = self.num_classes, self.temperature
        onehot = y_true[:, :k]
        teacher = y_true[:, k:]
        hard = ops.categorical_crossentropy(onehot, y_pred, from_logits=True)
        log_p_t = ops.log_softmax(teacher / t, axis=-1)
        log_p_s = ops.log_softmax(y_pred / t, axis=-1)
        kl = ops.sum(ops.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
        return self.alpha * hard + (1.0 - self.alpha) * (t * t) * kl

    def get_config(self) -> dict[str, Any]:
        cfg = dict(super().get_config())
        cfg.update(num_classes=self.num_classes, temperature=self.temperature, alpha=self.alpha)
        return cfg


def distillation_loss(num_classes: int, temperature: float, alpha: float) -> DistillationLoss:
    """Shorthand for :class:`DistillationLoss`."""
    return DistillationLoss(num_classes, temperature, alpha)


@dataclass(frozen=True)
class AugmentConfig:
    """Label-preserving input perturbations, regenerated every epoch.

    Every model (teacher, student alone, distilled student) sees the *same*
    augmented stream for a given seed; the distilled student's teacher targets are
    computed on exactly the augmented inputs it trains on ("consistent teaching").

    Attributes
    ----------
    shift
        Images: random translation by up to ``shift`` pixels (zero fill).
        Time series: random circular shift by up to ``shift`` steps.
    noise
        Std of additive Gaussian noise (normalized input units).
    scale
        Time series / features: per-sample, per-channel gain ``1 + N(0, scale)``.
    mixup
        Mixup Beta(m, m) parameter; 0 disables.  Mixed samples carry mixed one-hot
        labels; for distillation the teacher labels the mixed input itself.
    """

    shift: int = 0
    noise: float = 0.0
    scale: float = 0.0
    mixup: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def enabled(self) -> bool:
        return bool(self.shift or self.noise or self.scale or self.mixup)


def default_augment(input_shape: tuple[int, ...]) -> AugmentConfig:
    """Mild default augmentation per input kind."""
    rank = len(input_shape)
    if rank == 3:  # image
        return AugmentConfig(shift=1, mixup=0.2)
    if rank == 2:  # time series
        return AugmentConfig(shift=int(input_shape[0]) // 10, noise=0.05, scale=0.1, mixup=0.2)
    return AugmentConfig(noise=0.05, mixup=0.2)


def augment_batch(
    x: np.ndarray, y_soft: np.ndarray, aug: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return an augmented copy of ``(x, y_soft)`` (``y_soft``: one-hot rows)."""
    x = np.array(x, dtype=np.float32, copy=True)
    n = len(x)
    if aug.shift and x.ndim == 4:  # images: translate with zero fill
        s = aug.shift
        pad = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)))
        dy = rng.integers(0, 2 * s + 1, size=n)
        dx = rng.integers(0, 2 * s + 1, size=n)
        h, w = x.shape[1], x.shape[2]
        for i in range(n):
            x[i] = pad[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    elif aug.shift and x.ndim == 3:  # series: circular shift in time
        shifts = rng.integers(-aug.shift, aug.shift + 1, size=n)
        for i in range(n):
            x[i] = np.roll(x[i], int(shifts[i]), axis=0)
    if aug.scale and x.ndim in (2, 3):
        gain_shape = (n, 1, x.shape[-1]) if x.ndim == 3 else (n, x.shape[-1])
        x *= (1.0 + aug.scale * rng.standard_normal(gain_shape)).astype(np.float32)
    if aug.noise:
        x += (aug.noise * rng.standard_normal(x.shape)).astype(np.float32)
    y = np.asarray(y_soft, dtype=np.float32)
    if aug.mixup:
        lam = rng.beta(aug.mixup, aug.mixup, size=n).astype(np.float32)
        lam = np.maximum(lam, 1.0 - lam)  # the first sample dominates
        perm = rng.permutation(n)
        lx = lam.reshape((n,) + (1,) * (x.ndim - 1))
        x = lx * x + (1.0 - lx) * x[perm]
        y = lam[:, None] * y + (1.0 - lam[:, None]) * y[perm]
    return x, y


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend (weight init, shuffling, dropout)."""
    keras.utils.set_random_seed(int(seed))


def _optimizer(cfg: FitConfig, n_samples: int) -> keras.optimizers.Optimizer:
    steps = max(1, cfg.epochs * int(np.ceil(n_samples / cfg.batch_size)))
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=steps, alpha=0.01
    )
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)


TargetFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
STREAM_CHUNK_BYTES = 64 << 20


#: seconds between two progress lines of a training run
PROGRESS_EVERY = 10.0


class _Progress(keras.callbacks.Callback):  # type: ignore[misc]
    """Reports ``epoch e/N, loss x`` through ``say`` at most every PROGRESS_EVERY s (and
    after the last epoch), so a long fit is never silent."""

    def __init__(self, say: Callable[[str], None], total: int, offset: int = 0) -> None:
        super().__init__()
        import time

        self._clock = time.monotonic
        self.say, self.total, self.offset = say, total, offset
        self.last = self._clock()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        done = self.offset + epoch + 1
        now = self._clock()
        if now - self.last >= PROGRESS_EVERY or done == self.total:
            loss = (logs or {}).get("loss")
            self.say(f"epoch {done}/{self.total}" + (f", loss {loss:.4f}" if loss is not None else ""))
            self.last = now


def _fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    loss: Any,
    targets: TargetFn,
    cfg: FitConfig,
    aug: AugmentConfig,
    progress: Callable[[str], None] | None = None,
) -> list[float]:
    """Train for ``cfg.epochs`` passes; returns the loss per fit call.  ``progress``
    hears ``epoch e/N, loss x`` at most every PROGRESS_EVERY seconds.

    Without augmentation this is one ``fit`` over ``x``.  With augmentation, pass
    ``e`` sees ``augment_batch(x, rng=default_rng([seed, e]))`` — the same stream
    for every model trained with the same seed — and passes are grouped into
    chunks of at most :data:`STREAM_CHUNK_BYTES` (shuffled within the chunk).
    ``targets(x_chunk, y_soft_chunk)`` turns inputs and (mixed) one-hot labels
    into the targets for ``loss``.
    """
    keras.utils.set_random_seed(cfg.seed)  # same batch order for every model
    model.compile(optimizer=_optimizer(cfg, len(x)), loss=loss)
    onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]
    if not aug.enabled:  # one stream, one fit call
        cb = [_Progress(progress, cfg.epochs)] if progress else []
        hist = model.fit(x, targets(x, onehot), epochs=cfg.epochs, batch_size=cfg.batch_size,
                         shuffle=True, verbose=0, callbacks=cb)
        return [float(v) for v in hist.history["loss"]]
    # Augmented: materialize several epochs' worth of fresh samples per fit call
    # (bounded memory) — far cheaper than one fit call per epoch.
    sample_bytes = max(1, int(np.prod(x.shape[1:])) * 4)
    per_chunk = max(1, min(cfg.epochs, STREAM_CHUNK_BYTES // (len(x) * sample_bytes)))
    reporter = _Progress(progress, cfg.epochs) if progress else None
    losses: list[float] = []
    done = 0
    while done < cfg.epochs:
        n_ep = min(per_chunk, cfg.epochs - done)
        parts = [augment_batch(x, onehot, aug, np.random.default_rng([cfg.seed, done + e]))
                 for e in range(n_ep)]
        x_c = np.concatenate([p[0] for p in parts])
        y_c = np.concatenate([p[1] for p in parts])
        chunk_no = len(losses)
        hist = model.fit(x_c, targets(x_c, y_c), epochs=chunk_no + 1, initial_epoch=chunk_no,
                         batch_size=cfg.batch_size, shuffle=True, verbose=0)
        losses.append(float(hist.history["loss"][-1]))
        done += n_ep
        if reporter is not None:  # one fit call covers n_ep epochs of fresh samples
            reporter.offset = done - chunk_no - 1
            reporter.on_epoch_end(chunk_no, {"loss": losses[-1]})
    return losses


def _hard_targets(x_e: np.ndarray, y_e: np.ndarray) -> np.ndarray:
    return y_e


def train_teacher(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    cfg: FitConfig,
    aug: AugmentConfig = AugmentConfig(),
    progress: Callable[[str], None] | None = None,
) -> list[float]:
    """Train a model on (mixed) hard labels; returns per-epoch training loss."""
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    return _fit(model, x, y, num_classes, loss, _hard_targets, cfg, aug, progress)


#: Baseline: the student trained on hard labels only, on the same stream as
#: distillation.  Exactly the teacher's training (:func:`train_teacher`), named
#: for its role in the comparison.
train_student_alone = train_teacher


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits of ``model`` on ``x`` as float32 (inference mode).

    Calls the model eagerly batch by batch: no per-shape ``tf.function`` retracing
    when many different arrays are labelled (the teacher labels every chunk).
    """
    if len(x) == 0:
        raise ValueError("no inputs")
    out = [
        np.asarray(ops.convert_to_numpy(model(x[i:i + batch_size], training=False)),
                   dtype=np.float32)
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out)


def distill(
    student: keras.Model,
    teacher: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    cfg: FitConfig,
    kd: DistillConfig,
    aug: AugmentConfig = AugmentConfig(),
    progress: Callable[[str], None] | None = None,
) -> list[float]:
    """Train ``student`` to match the frozen ``teacher`` (and the labels) on ``x``.

    The teacher labels each epoch's augmented inputs, so the student is always
    taught on exactly what it sees.  Returns per-epoch training loss.
    """
    fixed = None if aug.enabled else predict_logits(teacher, x)  # label once

    def targets(x_e: np.ndarray, y_e: np.ndarray) -> np.ndarray:
        z_t = fixed if fixed is not None else predict_logits(teacher, x_e)
        return np.concatenate([y_e, z_t], axis=1)

    loss = distillation_loss(num_classes, kd.temperature, kd.alpha)
    return _fit(student, x, y, num_classes, loss, targets, cfg, aug, progress)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of logits (or scores) against integer labels."""
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))
