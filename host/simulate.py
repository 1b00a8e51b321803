"""Virtual devices: the device's C training engine compiled for the host
(:class:`tinyfed_toolchain.train_host.HostTrainer`), one per device, each with
its own shard, driven by the same round logic as the boards
(:class:`~tinyfed_host.rounds.FedAvgRunner`).

A virtual device does what ``src/fl/fl_device.c`` does on a board: take the
global parameters, train on its shard, return ``delta = trained - global``
(ENC_F32) with its sample count as the FedAvg weight, and its local
evaluation.  No link: the traffic it reports is the vector bytes a board
would have exchanged (payload), with no framing.

Secure aggregation: a virtual device masks its delta with the device's own
SecAgg+ client (``firmware/src/secagg/protocol.c``), compiled for the host and
run as one process per device per round
(:class:`~tinyfed_host.secagg.c_client.CClientEndpoint`).  The process is
started when the round's aggregator asks for the device's endpoint
(:meth:`VirtualParticipant.secagg_endpoint`) and ends after UNMASK, when the
device drops out of a stage, when the next round starts, or at ``close()``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from tinyfed_toolchain.train_host import HostTrainer, TrainConfig

from .fl_client import ENC_F32, TrainResult, Update, encode_f32
from .protocol import ProtocolError
from .rounds import ParticipantInfo, Traffic
from .secagg.c_client import CClientEndpoint, build_client_host
from .secagg.encoding import Encoding


@functools.cache
def secagg_client_exe() -> Path:
    """The device's SecAgg+ client compiled for the host: built (or found in the
    build cache) once per process, shared by every virtual device and round."""
    return build_client_host()


class VirtualSecAggEndpoint:
    """One virtual device's C SecAgg+ client for one round, as a server endpoint.

    Counts the payload bytes of every stage into the device's :class:`Traffic`
    (a board's link counts the same bodies) and ends the client process after
    UNMASK (its last stage) or as soon as an exchange fails (a dropout).
    """

    def __init__(self, client: CClientEndpoint, traffic: Traffic) -> None:
        self.id = client.id
        self.client = client
        self._traffic = traffic

    def exchange(self, message: str, payload: bytes) -> bytes:
        self._traffic.payload_out += len(payload)
        try:
            reply = self.client.exchange(message, payload)
        except BaseException:
            self.client.kill()  # dropped out of the round: its process ends now
            self.close()
            raise
        self._traffic.payload_in += len(reply)
        if message == "UNMASK":
            self.close()  # the client is DONE (its secrets wiped): let it exit
        return reply

    @property
    def running(self) -> bool:
        return self.client.proc.poll() is None

    def close(self) -> None:
        """End the client (EOF on its pipe; killed if it does not exit) and remove its update file."""
        self.client.close()


class VirtualParticipant:
    """One virtual device (its own trainer and memory block)."""

    def __init__(self, name: str, model_dir: Path, x: np.ndarray, y: np.ndarray, model_hash: bytes,
                 *, train_dir: Path | None = None, model_name: str = "", secagg_exe: Path | None = None,
                 secagg_die_before: str | None = None, secagg_die_after: str | None = None) -> None:
        """``secagg_die_before`` / ``secagg_die_after`` name a SecAgg+ stage at which
        this device's client process is killed every round (a board losing power:
        for dropout tests)."""
        self.name = name
        self.trainer = HostTrainer(model_dir, train_dir)
        self.x, self.y = x, np.asarray(y, dtype=np.uint8)
        self.model_hash = bytes(model_hash)
        self.model_name = model_name
        self._global: np.ndarray | None = None
        self._delta: np.ndarray | None = None
        self._round = -1
        self._weight = 0
        self._traffic = Traffic()
        self._secagg_exe = secagg_exe
        self._secagg_die = (secagg_die_before, secagg_die_after)
        self._endpoint: VirtualSecAggEndpoint | None = None

    def open(self) -> ParticipantInfo:
        return ParticipantInfo(self.name, "host (virtual)", self.model_name, self.model_hash, len(self.y),
                               True, False)

    def push_params(self, round_: int, params: np.ndarray, model_hash: bytes, persist: bool) -> None:
        if bytes(model_hash) != self.model_hash:
            raise ProtocolError(f"{self.name}: parameters for another model")
        p = np.asarray(params, dtype=np.float32)
        if p.size != self.trainer.n_params:
            raise ProtocolError(f"{self.name}: {p.size} parameters, the plan has {self.trainer.n_params}")
        self._end_secagg()  # a new round: last round's client (if still running) is gone
        self.trainer.set_params(p)
        self._global, self._delta, self._round = p.copy(), None, round_
        self._traffic.payload_out += 4 * p.size

    def train(self, round_: int, cfg: TrainConfig, timeout: float) -> TrainResult:
        if self._global is None or round_ != self._round:
            raise ProtocolError(f"{self.name}: TRAIN for round {round_} without its parameters")
        t0 = time.perf_counter()
        st = self.trainer.fit(cfg, self.x, self.y)
        ms = int(1000 * (time.perf_counter() - t0))
        correct, loss, n = self.trainer.eval(self.x, self.y)
        self._delta = (self.trainer.params() - self._global).astype(np.float32)
        used = len(self.y) if not cfg.max_samples else min(cfg.max_samples, len(self.y))
        self._weight = used
        return TrainResult(round=round_, samples=used, seen=st.samples, steps=st.steps,
                           train_correct=st.correct, train_loss_sum=st.loss_sum, eval_samples=n,
                           eval_correct=correct, eval_loss_sum=loss, elapsed_ms=max(1, ms),
                           insns_per_sample=0, train_mem_bytes=self.trainer.mem_bytes, sram_peak=0)

    def fetch_update(self, round_: int, encoding: int) -> Update:
        if self._delta is None or round_ != self._round:
            raise ProtocolError(f"{self.name}: no update for round {round_}")
        if encoding != ENC_F32:
            raise ProtocolError(f"{self.name}: encoding {encoding} not supported")
        data = encode_f32(self._delta)
        self._traffic.payload_in += len(data)
        return Update(self.name, round_, int(self._delta.size), ENC_F32, self._weight, data,
                      float(np.linalg.norm(self._delta.astype(np.float64))), 0.0)

    def secagg_endpoint(self, client_id: int, enc: Encoding) -> VirtualSecAggEndpoint:
        """This device as SecAgg+ client ``client_id``: the device's C client,
        holding this round's delta (float32) and FedAvg weight (the samples it
        trained on) -- what a board masks after TRAIN."""
        if self._delta is None:
            raise ProtocolError(f"{self.name}: secure aggregation without a trained update")
        self._end_secagg()
        before, after = self._secagg_die
        client = CClientEndpoint(client_id, enc, self._delta, self._weight,
                                 exe=self._secagg_exe or secagg_client_exe(), die_before=before, die_after=after)
        self._endpoint = VirtualSecAggEndpoint(client, self._traffic)
        return self._endpoint

    def _end_secagg(self) -> None:
        if self._endpoint is not None:
            ep, self._endpoint = self._endpoint, None
            ep.close()

    def traffic(self) -> Traffic:
        return Traffic(**self._traffic.__dict__)

    def close(self) -> None:
        self._end_secagg()


__all__ = ["VirtualParticipant", "VirtualSecAggEndpoint", "secagg_client_exe"]
