"""The federated-training exchanges with one device (wire.def, "federated training").

One round with a device, on top of a :class:`~tinyfed_host.protocol.DeviceClient`::

    send_params(dev, r, params, model_hash)   # MODEL_PARAMS transfer + PARAMS commit
    res = train(dev, r, TrainConfig(...))     # TRAIN -> TRAIN_RESULT (numbers only)
    upd = fetch_update(dev, r)                # GET_UPDATE -> UPDATE, MODEL_UPDATE transfer

Vectors travel in the ``ENC_F32`` encoding (little-endian IEEE-754 binary32,
no header); the update is the device's model DELTA (trained - global
parameters), described by the UPDATE message (weight = samples trained on,
payload size and CRC-32, L2 norm, clipping bound applied).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyfed_toolchain.facts.train_config import TrainConfig

from .protocol import DeviceClient, ProtocolError
from tinyfed_toolchain.facts.wire_table import WIRE

ENC_F32 = WIRE.const("ENC_F32")
PARAMS_PERSIST = WIRE.const("PARAMS_PERSIST")
CAP_TRAINING = WIRE.const("CAP_TRAINING")
CAP_PERSIST = WIRE.const("CAP_PERSIST")
CAP_TEST_MESSAGES = WIRE.const("CAP_TEST_MESSAGES")
CAP_SECURE_ONLY = WIRE.const("CAP_SECURE_ONLY")

def encode_f32(vec: np.ndarray) -> bytes:
    """A vector in the ENC_F32 encoding."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def decode_f32(data: bytes, n: int) -> np.ndarray:
    """ENC_F32 bytes -> float32 vector of ``n`` values (length checked)."""
    if len(data) != 4 * n:
        raise ProtocolError(f"ENC_F32 vector: {len(data)} bytes for {n} values")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def train_fields(cfg: TrainConfig, round_: int) -> dict[str, Any]:
    """The TRAIN message's fields for ``cfg`` (the same options as the host engine's)."""
    return {"round": round_, "epochs": cfg.epochs, "batch": cfg.batch, "lr": cfg.lr,
            "momentum": cfg.momentum, "weight_decay": cfg.weight_decay,
            "seed": cfg.seed & 0xFFFFFFFF, "schedule": cfg.schedule_id, "max_samples": cfg.max_samples}


@dataclass(frozen=True)
class TrainResult:
    """TRAIN_RESULT: aggregates over the device's shard, and its resource use."""

    round: int
    samples: int
    seen: int
    steps: int
    train_correct: int
    train_loss_sum: float
    eval_samples: int
    eval_correct: int
    eval_loss_sum: float
    elapsed_ms: int
    insns_per_sample: int
    train_mem_bytes: int
    sram_peak: int

    @property
    def train_accuracy(self) -> float:
        return self.train_correct / self.seen if self.seen else float("nan")

    @property
    def train_loss(self) -> float:
        return self.train_loss_sum / self.seen if self.seen else float("nan")

    @property
    def eval_accuracy(self) -> float:
        return self.eval_correct / self.eval_samples if self.eval_samples else float("nan")

    @property
    def eval_loss(self) -> float:
        return self.eval_loss_sum / self.eval_samples if self.eval_samples else float("nan")

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> "TrainResult":
        names = {x.name for x in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in f.items() if k in names}
        return cls(**values)


@dataclass(frozen=True)
class Update:
    """One device's contribution to a round: an encoded model delta and its weight.

    ``payload`` is what crossed the link (in ``encoding``); :meth:`delta`
    decodes it.  Aggregators work from ``payload`` so that a secure-aggregation
    encoding (masked fixed point) slots in without changing this type.
    """

    device: str
    round: int
    n_params: int
    encoding: int
    weight: int
    payload: bytes
    norm: float
    clip: float

    def delta(self) -> np.ndarray:
        if self.encoding != ENC_F32:
            raise ProtocolError(f"update encoding {self.encoding} cannot be decoded in the clear")
        return decode_f32(self.payload, self.n_params)


def send_params(dev: DeviceClient, round_: int, params: np.ndarray, model_hash: bytes, *,
                persist: bool = True) -> int:
    """Send the global parameters and commit them; returns the payload bytes sent."""
    data = encode_f32(params)
    dev.send_payload("MODEL_PARAMS", data)
    r = dev.request("PARAMS", expect=("ACK",), round=round_, n_params=int(params.size), encoding=ENC_F32,
                    flags=PARAMS_PERSIST if persist else 0, crc32=zlib.crc32(data), model_hash=bytes(model_hash))
    if r["value"] != round_ & 0xFFFFFFFF:
        raise ProtocolError(f"PARAMS: device acknowledged round {r['value']}, sent {round_}")
    return len(data)


def train(dev: DeviceClient, round_: int, cfg: TrainConfig, *, timeout: float = 300.0,
          attempts: int = 4) -> TrainResult:
    """Run local training; wait up to ``timeout`` s in all.

    The request is resent ``attempts - 1`` times at even intervals (a lost
    frame costs one interval, not the whole timeout); the device answers a
    repeated request from its reply cache, never training twice.
    """
    per_try = max(0.05, timeout / max(1, attempts))
    saved = dev.options
    dev.options = dataclasses.replace(saved, retries=max(0, attempts - 1))
    try:
        r = dev.request("TRAIN", expect=("TRAIN_RESULT",), timeout=per_try, **train_fields(cfg, round_))
    finally:
        dev.options = saved
    res = TrainResult.from_fields(r.fields)
    if res.round != round_ & 0xFFFFFFFF:
        raise ProtocolError(f"TRAIN_RESULT for round {res.round}, expected {round_}")
    return res


def fetch_update(dev: DeviceClient, round_: int, *, encoding: int = ENC_F32, device: str = "") -> Update:
    """Describe (GET_UPDATE -> UPDATE) and pull (MODEL_UPDATE) the round's update."""
    u = dev.request("GET_UPDATE", expect=("UPDATE",), round=round_, encoding=encoding)
    if u["round"] != round_ & 0xFFFFFFFF or u["encoding"] != encoding:
        raise ProtocolError(f"UPDATE describes round {u['round']} / encoding {u['encoding']}")
    data = dev.receive_payload("MODEL_UPDATE", round_)
    if len(data) != u["total_len"] or zlib.crc32(data) != u["crc32"]:
        raise ProtocolError(f"MODEL_UPDATE: {len(data)} bytes / CRC {zlib.crc32(data):08x} do not match "
                            f"UPDATE ({u['total_len']} bytes / {u['crc32']:08x})")
    if encoding == ENC_F32 and len(data) != 4 * u["n_params"]:
        raise ProtocolError(f"MODEL_UPDATE: {len(data)} bytes for {u['n_params']} float32 values")
    return Update(device=device or dev.link.url, round=round_, n_params=int(u["n_params"]),
                  encoding=int(u["encoding"]), weight=int(u["weight"]), payload=data,
                  norm=float(u["norm"]), clip=float(u["clip"]))


__all__ = ["TrainResult", "Update", "send_params", "train", "fetch_update", "train_fields",
           "encode_f32", "decode_f32", "ENC_F32", "CAP_TRAINING", "CAP_PERSIST"]
