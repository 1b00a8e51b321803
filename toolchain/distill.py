"""Training: the teacher, the student alone (baseline) and the distilled student.

Knowledge distillation (Hinton et al., 2015)::

    loss = alpha * CE(y, softmax(z_s)) + (1 - alpha) * T² * KL(softmax(z_t/T) || softmax(z_s/T))

``alpha`` weighs the hard-label cross entropy, ``T`` softens both distributions and
the ``T²`` factor keeps the soft-target gradients on the same scale as the hard
ones.  The teacher is frozen and sees exactly the inputs the student sees, so its
logits are computed once up front and travel with the labels as the target
``[one_hot(y) | z_t]`` — the loss needs no custom training step and works on any
Keras backend.

For an honest comparison :func:`train_student_alone` trains the *same*
architecture from the *same* initial weights with the *same* optimizer, schedule,
epochs, batch order and seed — only the loss differs (hard labels only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import keras
import numpy as np
from keras import ops

__all__ = [
    "DistillConfig",
    "TrainConfig",
    "accuracy",
    "distill",
    "distillation_loss",
    "predict_logits",
    "train_student_alone",
    "train_teacher",
]


@dataclass(frozen=True)
class TrainConfig:
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
    alpha: float = 0.1

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


def distillation_loss(
    num_classes: int, temperature: float, alpha: float
) -> Callable[[Any, Any], Any]:
    """Loss over targets ``[one_hot(y) | teacher_logits]`` (shape ``(B, 2K)``)."""
    k = int(num_classes)
    t = float(temperature)

    def kd_loss(y_true: Any, y_pred: Any) -> Any:
        onehot = y_true[:, :k]
        teacher = y_true[:, k:]
        hard = ops.categorical_crossentropy(onehot, y_pred, from_logits=True)
        log_p_t = ops.log_softmax(teacher / t, axis=-1)
        log_p_s = ops.log_softmax(y_pred / t, axis=-1)
        kl = ops.sum(ops.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
        return alpha * hard + (1.0 - alpha) * (t * t) * kl

    kd_loss.__name__ = f"kd_T{t:g}_a{alpha:g}"
    return kd_loss


def _optimizer(cfg: TrainConfig, n_samples: int) -> keras.optimizers.Optimizer:
    steps = max(1, cfg.epochs * int(np.ceil(n_samples / cfg.batch_size)))
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=steps, alpha=0.01
    )
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)


def _fit(
    model: keras.Model,
    x: np.ndarray,
    targets: np.ndarray,
    loss: Any,
    cfg: TrainConfig,
) -> keras.callbacks.History:
    keras.utils.set_random_seed(cfg.seed)  # same shuffling order for every student
    model.compile(optimizer=_optimizer(cfg, len(x)), loss=loss)
    return model.fit(
        x, targets, epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0
    )


def train_teacher(
    model: keras.Model, x: np.ndarray, y: np.ndarray, cfg: TrainConfig
) -> keras.callbacks.History:
    """Train a model on hard labels (the teacher)."""
    return _fit(model, x, np.asarray(y, dtype=np.int64),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True), cfg)


def train_student_alone(
    model: keras.Model, x: np.ndarray, y: np.ndarray, cfg: TrainConfig
) -> keras.callbacks.History:
    """Baseline: the student trained on hard labels only."""
    return train_teacher(model, x, y, cfg)


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of ``model`` on ``x`` as float32 (inference mode)."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def distill(
    student: keras.Model,
    teacher_logits: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    cfg: TrainConfig,
    kd: DistillConfig,
) -> keras.callbacks.History:
    """Train ``student`` against the teacher's logits on ``x`` and the labels ``y``."""
    y = np.asarray(y, dtype=np.int64)
    if teacher_logits.shape != (len(x), num_classes):
        raise ValueError(
            f"teacher logits shape {teacher_logits.shape} != {(len(x), num_classes)}"
        )
    onehot = np.eye(num_classes, dtype=np.float32)[y]
    targets = np.concatenate([onehot, teacher_logits.astype(np.float32)], axis=1)
    return _fit(student, x, targets, distillation_loss(num_classes, kd.temperature, kd.alpha),
                cfg)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of logits (or scores) against integer labels."""
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))
