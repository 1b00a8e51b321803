"""The local-training options a device runs with: the wire's TRAIN message, as a dataclass.

One :class:`TrainConfig` for every trainer -- a board over serial (the TRAIN
message, ``wire.def``), the host-compiled device and the native training
library (``tfd_train_cfg_t``, ``firmware/include/tfd/train.h``).  Schedule
names and their ids come from ``tfd_lr_schedule_t`` in train.h.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .c_headers import LR_SCHEDULES
from .errors import TinyfedError

#: learning-rate schedule name -> tfd_lr_schedule_t (read from train.h)
SCHEDULES = LR_SCHEDULES

ScheduleName = Literal["constant", "cosine", "step"]


class TrainConfigError(TinyfedError, ValueError):
    """A training option outside what the device accepts."""


@dataclass(frozen=True)
class TrainConfig:
    """Local training options (mirrors ``tfd_train_cfg_t`` and the TRAIN message)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 1
    batch: int = 8
    seed: int = 0
    schedule: ScheduleName = "constant"
    max_samples: int = 0  # 0 = the whole shard (per epoch)

    @property
    def schedule_id(self) -> int:
        """``tfd_lr_schedule_t`` of :attr:`schedule` (a name, or already an id)."""
        if isinstance(self.schedule, int):
            return int(self.schedule)
        if self.schedule not in SCHEDULES:
            raise TrainConfigError(f"unknown learning-rate schedule {self.schedule!r}: {' | '.join(SCHEDULES)}")
        return SCHEDULES[self.schedule]


assert set(SCHEDULES) == {"constant", "cosine", "step"}, "tfd_lr_schedule_t changed: update ScheduleName"

__all__ = ["TrainConfig", "TrainConfigError", "SCHEDULES", "ScheduleName"]
