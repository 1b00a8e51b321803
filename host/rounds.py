"""Federated rounds: the host's round state machine over a set of participants.

A participant is anything that can take the global parameters, train locally
and hand back an update: an emulated or real board over serial
(:class:`SerialParticipant`) or a virtual device running the same C engine on
the host (``tinyfed_host.simulate.VirtualParticipant``).  The round logic is
the same for both.

Round r (DESIGN.md rule 8: stages are constants, state is a dataclass, every
transition is checked)::

    SETUP ─► EVALUATE(round 0) ─► CLIENTS ─► AGGREGATE ─► EVALUATE ─► … ─► DONE

* SETUP: every participant says hello; one whose model hash differs from the
  fleet's is REFUSED with a clear message and never used.
* CLIENTS: each active participant, in parallel, goes
  ``READY ─► PARAMS (global params sent, committed) ─► TRAINED ─► UPDATED``.
  A participant that times out, loses its link or answers an error is left
  OUT of this round (the round still completes with the others) and asked to
  rejoin (HELLO) at the start of the next round.
* AGGREGATE: the aggregator (plain FedAvg now, secure aggregation later)
  combines the updates weighted by sample count; the new global parameters
  are ``w + server_lr * mean_delta``.  Fewer than ``min_clients`` updates: the
  round is recorded as failed and the global parameters stay.
* EVALUATE: the global parameters on the host's held-out split.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .fedavg import Aggregate, AggregationError, Aggregator, PlainAggregator, apply_aggregate
from .fl_client import CAP_PERSIST, CAP_SECURE_ONLY, CAP_TEST_MESSAGES, CAP_TRAINING, TrainConfig, TrainResult, Update, fetch_update, send_params, train
from .link import LinkError, LinkTimeout
from .protocol import ClientOptions, DeviceClient, DeviceError, ProtocolError


class RoundError(RuntimeError):
    """The fleet cannot run (no usable participant, bad configuration)."""


class RefusedError(RoundError):
    """A participant runs another model (or cannot train): it is not admitted."""


# ---- participants -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ParticipantInfo:
    name: str
    board: str
    model_name: str
    model_hash: bytes
    shard_size: int
    training: bool
    persist: bool = False  # keeps committed parameters across resets (CAP_PERSIST)
    test_image: bool = False  # TEST-gated messages compiled in (CAP_TEST_MESSAGES): not for real data
    secure_only: bool = False  # no plain update path (CAP_SECURE_ONLY): secure aggregation only


@dataclass
class Traffic:
    """Bytes a participant exchanged: transfer payloads and everything on the wire."""

    payload_out: int = 0
    payload_in: int = 0
    wire_out: int = 0
    wire_in: int = 0

    def minus(self, other: "Traffic") -> "Traffic":
        return Traffic(self.payload_out - other.payload_out, self.payload_in - other.payload_in,
                       self.wire_out - other.wire_out, self.wire_in - other.wire_in)

    def plus(self, other: "Traffic") -> "Traffic":
        return Traffic(self.payload_out + other.payload_out, self.payload_in + other.payload_in,
                       self.wire_out + other.wire_out, self.wire_in + other.wire_in)


class Participant(Protocol):
    name: str

    def open(self) -> ParticipantInfo: ...
    def push_params(self, round_: int, params: np.ndarray, model_hash: bytes, persist: bool) -> None: ...
    def train(self, round_: int, cfg: TrainConfig, timeout: float) -> TrainResult: ...
    def fetch_update(self, round_: int, encoding: int) -> Update: ...
    def traffic(self) -> Traffic: ...
    def close(self) -> None: ...


class SerialParticipant:
    """A board on a serial URL (``socket://…`` for QEMU, ``/dev/ttyACM0`` for a real one)."""

    def __init__(self, url: str, options: ClientOptions | None = None, name: str | None = None) -> None:
        self.url = url
        self.name = name or url
        self.options = options or ClientOptions(timeout=2.0, retries=6)
        self.dev: DeviceClient | None = None
        self.info: ParticipantInfo | None = None

    def _client(self) -> DeviceClient:
        if self.dev is None:
            raise LinkError(f"{self.name}: not connected")
        return self.dev

    def open(self) -> ParticipantInfo:
        if self.dev is None:
            self.dev = DeviceClient.connect(self.url, self.options)
            i = self.dev.hello()
        else:
            # rejoin after a failure: drop stale replies, one quick try
            self.dev.link.drain(limit=0.5)
            self.dev.options = dataclasses.replace(self.options, retries=1)
            try:
                i = self.dev.hello()
            finally:
                self.dev.options = self.options
        self.info = ParticipantInfo(self.name, i.board, i.model_name, i.model_hash, i.shard_size,
                                    bool(i.caps & CAP_TRAINING), bool(i.caps & CAP_PERSIST),
                                    bool(i.caps & CAP_TEST_MESSAGES), bool(i.caps & CAP_SECURE_ONLY))
        return self.info

    def push_params(self, round_: int, params: np.ndarray, model_hash: bytes, persist: bool) -> None:
        send_params(self._client(), round_, params, model_hash, persist=persist)

    def train(self, round_: int, cfg: TrainConfig, timeout: float) -> TrainResult:
        return train(self._client(), round_, cfg, timeout=timeout)

    def fetch_update(self, round_: int, encoding: int) -> Update:
        return fetch_update(self._client(), round_, encoding=encoding, device=self.name)

    def secagg_endpoint(self, client_id: int, enc: Any) -> Any:
        """This board as SecAgg+ client ``client_id`` (tinyfed_host.secagg.serial)."""
        from .secagg.serial import SerialEndpoint

        return SerialEndpoint(client_id, self._client(), enc)

    def traffic(self) -> Traffic:
        if self.dev is None:
            return Traffic()
        c, l = self.dev.counters, self.dev.link.counters
        return Traffic(c.payload_out, c.payload_in, l.bytes_out, l.bytes_in)

    def close(self) -> None:
        if self.dev is not None:
            self.dev.close()
            self.dev = None


# ---- state ------------------------------------------------------------------------------------
class Stage(enum.Enum):
    SETUP = "setup"
    CLIENTS = "clients"
    AGGREGATE = "aggregate"
    EVALUATE = "evaluate"
    DONE = "done"


_TRANSITIONS: dict[Stage, set[Stage]] = {
    Stage.SETUP: {Stage.EVALUATE},
    Stage.EVALUATE: {Stage.CLIENTS, Stage.DONE},
    Stage.CLIENTS: {Stage.AGGREGATE},
    Stage.AGGREGATE: {Stage.EVALUATE},
    Stage.DONE: set(),
}


class DevStage(enum.Enum):
    READY = "ready"
    PARAMS = "params"  # global parameters committed on the device
    TRAINED = "trained"
    UPDATED = "updated"  # update received by the host
    OUT = "out"  # left out (timeout, lost link, error) until it rejoins
    REFUSED = "refused"  # never admitted (other model / no training engine)


_DEV_TRANSITIONS: dict[DevStage, set[DevStage]] = {
    DevStage.READY: {DevStage.PARAMS, DevStage.OUT},
    DevStage.PARAMS: {DevStage.TRAINED, DevStage.OUT},
    DevStage.TRAINED: {DevStage.UPDATED, DevStage.OUT},
    DevStage.UPDATED: {DevStage.READY, DevStage.OUT},
    DevStage.OUT: {DevStage.READY, DevStage.OUT},
    DevStage.REFUSED: set(),
}


@dataclass
class DeviceState:
    participant: Participant
    stage: DevStage = DevStage.READY
    info: ParticipantInfo | None = None
    reason: str = ""

    def go(self, to: DevStage) -> None:
        if to not in _DEV_TRANSITIONS[self.stage]:
            raise RoundError(f"{self.participant.name}: illegal transition {self.stage.value} -> {to.value}")
        self.stage = to


@dataclass
class DeviceRound:
    """One participant in one round."""

    name: str
    status: str  # ok | timeout | lost | error | absent
    reason: str = ""
    weight: int = 0
    train: TrainResult | None = None
    update_norm: float | None = None
    traffic: Traffic = field(default_factory=Traffic)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "status": self.status, "reason": self.reason,
                             "weight": self.weight, "update_norm": self.update_norm,
                             "seconds": round(self.seconds, 3), **self.traffic.__dict__}
        if self.train is not None:
            t = self.train
            d.update({"samples": t.samples, "seen": t.seen, "steps": t.steps,
                      "train_accuracy": t.train_accuracy, "train_loss": t.train_loss,
                      "local_accuracy": t.eval_accuracy, "local_loss": t.eval_loss,
                      "train_ms": t.elapsed_ms, "insns_per_sample": t.insns_per_sample or None,
                      "train_mem_bytes": t.train_mem_bytes or None, "sram_peak": t.sram_peak or None})
        return d


@dataclass
class RoundRecord:
    round: int
    accuracy: float
    loss: float
    completed: bool = True  # False: too few updates, global parameters unchanged
    devices: list[DeviceRound] = field(default_factory=list)
    traffic: Traffic = field(default_factory=Traffic)
    seconds: float = 0.0
    aggregate_weight: int = 0
    updates: int = 0
    secure: dict[str, Any] | None = None  # SecAgg+ round report (dropouts, bytes per stage, epsilon)
    restored: dict[str, Any] | None = field(default=None, repr=False)  # from a checkpoint: its report row

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RoundRecord":
        """A round of an interrupted run, from its report row (host/checkpoint.py)."""
        nan = float("nan")
        return cls(int(d["round"]), nan if d.get("accuracy") is None else float(d["accuracy"]),
                   nan if d.get("loss") is None else float(d["loss"]), bool(d.get("completed", True)),
                   seconds=float(d.get("seconds") or 0.0), aggregate_weight=int(d.get("aggregate_weight") or 0),
                   updates=int(d.get("updates") or 0), secure=d.get("secure"), restored=dict(d))

    def as_dict(self) -> dict[str, Any]:
        if self.restored is not None:
            return dict(self.restored)
        return {"round": self.round, "accuracy": self.accuracy, "loss": self.loss, "secure": self.secure,
                "completed": self.completed, "updates": self.updates,
                "aggregate_weight": self.aggregate_weight, "seconds": round(self.seconds, 3),
                "bytes_to_devices": self.traffic.wire_out, "bytes_from_devices": self.traffic.wire_in,
                "payload_to_devices": self.traffic.payload_out,
                "payload_from_devices": self.traffic.payload_in,
                "devices": [d.as_dict() for d in self.devices]}


# Defaults, measured on digits and BasicMotions (4 non-IID devices, Dirichlet
# 0.5, classifier re-initialised, seeds 0-3): local SGD, momentum 0.9, lr 0.02
# with a cosine decay over each local run, 2 local epochs per round, 20 rounds.
# The federated result then lands within about 2 pp of centralised fine-tuning
# with the same epoch budget on both (lr 0.03+ diverges with momentum 0.9).
DEFAULT_ROUNDS = 20
DEFAULT_TRAIN = TrainConfig(lr=0.02, momentum=0.9, weight_decay=0.0, epochs=5, batch=8, seed=0, schedule="cosine")


@dataclass(frozen=True)
class FleetConfig:
    """Every knob of a federated run, declared once."""

    rounds: int = DEFAULT_ROUNDS
    train: TrainConfig = DEFAULT_TRAIN
    min_clients: int = 1
    train_timeout: float = 300.0
    persist: bool = True
    server_lr: float = 1.0
    parallel: bool = True
    vary_seed: bool = True  # round r trains with seed + r (different shuffles per round)
    final_broadcast: bool = True  # after the last round, every device gets (and persists) the final model


@dataclass
class FleetState:
    stage: Stage
    round: int
    params: np.ndarray
    model_hash: bytes
    devices: list[DeviceState]
    records: list[RoundRecord] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, message)
    # the last round's raw material, for checks and reports
    last_updates: list[Update] = field(default_factory=list)
    last_aggregate: Aggregate | None = None
    final_holders: list[str] = field(default_factory=list)  # devices that received the final model


#: evaluate(params) -> (accuracy, mean loss) on the host's held-out split
Evaluator = Callable[[np.ndarray], tuple[float, float]]


def _hex(h: bytes) -> str:
    return h.hex()


class FedAvgRunner:
    """Drives participants through rounds (see the module docstring)."""

    def __init__(self, participants: Sequence[Participant], *, init_params: np.ndarray, model_hash: bytes,
                 evaluator: Evaluator, config: FleetConfig = FleetConfig(),
                 aggregator: Aggregator | None = None, log: Callable[[str], None] = print,
                 resume: tuple[int, np.ndarray, Sequence[RoundRecord]] | None = None) -> None:
        """``resume = (round, params, records)``: continue an interrupted run after ``round``
        (host/checkpoint.py) instead of evaluating round 0."""
        if not participants:
            raise RoundError("no participants")
        self._resume = resume
        self.cfg = config
        self.aggregator = aggregator or PlainAggregator()
        self.evaluator = evaluator
        self.log = log
        self.state = FleetState(Stage.SETUP, 0, np.asarray(init_params, dtype=np.float32).copy(),
                                bytes(model_hash), [DeviceState(p) for p in participants])

    # -- stage machine ------------------------------------------------------------------------
    def _go(self, to: Stage) -> None:
        if to not in _TRANSITIONS[self.state.stage]:
            raise RoundError(f"illegal transition {self.state.stage.value} -> {to.value}")
        self.state.stage = to

    # -- SETUP --------------------------------------------------------------------------------
    def setup(self) -> None:
        """Hello to every participant; refuse those with another model."""
        if self.state.stage is not Stage.SETUP:
            raise RoundError("setup() twice")
        for d in self.state.devices:
            name = d.participant.name
            try:
                info = d.participant.open()
            except (LinkTimeout, LinkError, ProtocolError, OSError) as e:
                d.go(DevStage.OUT)
                d.reason = f"no answer: {e}"
                self.log(f"[fleet] {name}: not reachable ({e}); will retry next round")
                continue
            d.info = info
            if info.model_hash != self.state.model_hash:
                msg = (f"{name} runs model {info.model_name!r} hash {_hex(info.model_hash)}, but this fleet "
                       f"trains hash {_hex(self.state.model_hash)}: refused (flash it with an image of the same "
                       f"build, or point the host at that board's build)")
                d.stage, d.reason = DevStage.REFUSED, msg
                self.state.refused.append((name, msg))
                self.log(f"[fleet] {msg}")
            elif not info.training:
                msg = f"{name} ({info.board}) has no training engine linked in: refused"
                d.stage, d.reason = DevStage.REFUSED, msg
                self.state.refused.append((name, msg))
                self.log(f"[fleet] {msg}")
            elif info.secure_only and not getattr(self.aggregator, "interactive", False):
                msg = (f"{name} runs a secure-only image (built with --secure-only): it never sends a plain "
                       f"update, so it cannot join a --no-secure run: refused (run with secure aggregation)")
                d.stage, d.reason = DevStage.REFUSED, msg
                self.state.refused.append((name, msg))
                self.log(f"[fleet] {msg}")
            elif info.test_image and getattr(self.aggregator, "interactive", False):
                self.log(f"[fleet] warning: {name} runs a TEST image (TFD_TEST_MESSAGES): it would reveal its "
                         f"unmasked update on request; secure aggregation only protects release images")
        if not any(d.stage is not DevStage.REFUSED for d in self.state.devices):
            raise RefusedError("no participant can join: " + "; ".join(m for _, m in self.state.refused))
        self._go(Stage.EVALUATE)
        if self._resume is not None:
            r, params, records = self._resume
            self.state.round = int(r)
            self.state.params = np.asarray(params, dtype=np.float32).copy()
            self.state.records = list(records)
            return
        self._evaluate(RoundRecord(0, float("nan"), float("nan")), t0=time.monotonic())

    # -- EVALUATE -----------------------------------------------------------------------------
    def _evaluate(self, rec: RoundRecord, t0: float) -> RoundRecord:
        acc, loss = self.evaluator(self.state.params)
        rec.accuracy, rec.loss = float(acc), float(loss)
        rec.seconds = time.monotonic() - t0
        self.state.records.append(rec)
        return rec

    # -- one round ----------------------------------------------------------------------------
    def run_round(self) -> RoundRecord:
        if self.state.stage is not Stage.EVALUATE:
            raise RoundError(f"run_round() in stage {self.state.stage.value}")
        if self.state.round >= self.cfg.rounds:
            raise RoundError(f"all {self.cfg.rounds} rounds done")
        t0 = time.monotonic()
        self._go(Stage.CLIENTS)
        self.state.round += 1
        r = self.state.round
        self._rejoin()
        active = [d for d in self.state.devices if d.stage is DevStage.READY]
        tcfg = self.cfg.train
        if self.cfg.vary_seed:
            tcfg = dataclasses.replace(tcfg, seed=(tcfg.seed + r * 7919) & 0xFFFFFFFF)
        params = self.state.params.copy()
        if self.cfg.parallel and len(active) > 1:
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(active)) as pool:
                results = list(pool.map(lambda d: self._client_round(d, r, params, tcfg), active))
        else:
            results = [self._client_round(d, r, params, tcfg) for d in active]
        rows: list[DeviceRound] = []
        updates: list[Update] = []
        for d, (row, upd) in zip(active, results):
            rows.append(row)
            if upd is not None:
                updates.append(upd)
        for d in self.state.devices:
            if d not in active:
                rows.append(DeviceRound(d.participant.name, "refused" if d.stage is DevStage.REFUSED else "absent",
                                        d.reason))
        # AGGREGATE
        self._go(Stage.AGGREGATE)
        rec = RoundRecord(r, float("nan"), float("nan"), devices=rows)
        for row in rows:
            rec.traffic = rec.traffic.plus(row.traffic)
        self.state.last_updates = updates
        self.state.last_aggregate = None
        if getattr(self.aggregator, "interactive", False):
            self._aggregate_secure(r, params, active, rows, rec)
        elif len(updates) >= max(1, self.cfg.min_clients):
            self.aggregator.begin(r, int(params.size))
            accepted = 0
            for u, row in ((u, next(x for x in rows if x.name == u.device)) for u in updates):
                try:
                    self.aggregator.add(u)
                    accepted += 1
                except AggregationError as e:
                    row.status, row.reason = "error", f"update rejected: {e}"
                    self.log(f"[fleet] round {r}: {row.name}: update rejected: {e}")
            if accepted >= max(1, self.cfg.min_clients):
                agg = self.aggregator.finish()
                self.state.last_aggregate = agg
                self.state.params = apply_aggregate(params, agg, self.cfg.server_lr)
                rec.aggregate_weight, rec.updates = agg.total_weight, agg.count
            else:
                rec.completed = False
        else:
            rec.completed = False
            self.log(f"[fleet] round {r}: {len(updates)} update(s), need {self.cfg.min_clients}: "
                     "global parameters unchanged")
        for d in self.state.devices:
            if d.stage is DevStage.UPDATED:
                d.go(DevStage.READY)
        self._go(Stage.EVALUATE)
        return self._evaluate(rec, t0)

    def _aggregate_secure(self, r: int, params: np.ndarray, active: list[DeviceState], rows: list[DeviceRound],
                          rec: RoundRecord) -> None:
        """SecAgg+ over the devices that trained (the aggregator drives the four stages)."""
        from .secagg.server import SecAggAbort

        agg_ = self.aggregator
        trained = [(d, row) for d, row in zip(active, rows) if d.stage is DevStage.TRAINED and row.status == "ok"]
        members = [(self.state.devices.index(d) + 1, d.participant, row.weight) for d, row in trained]
        before = {d.participant.name: d.participant.traffic() for d, _ in trained}
        agg: Aggregate | None = None
        try:
            if len(members) < max(1, self.cfg.min_clients):
                raise SecAggAbort(f"{len(members)} trained device(s), need {self.cfg.min_clients}")
            agg = agg_.aggregate_secure(r, int(params.size), members)  # type: ignore[attr-defined]
        except (SecAggAbort, AggregationError) as e:
            self.log(f"[fleet] round {r}: secure aggregation aborted: {e}; global parameters unchanged")
            rec.completed = False
        rec.secure = getattr(agg_, "last_report", None)
        if rec.secure is not None and not rec.completed:
            rec.secure = {**rec.secure, "aborted": True}
        survivors = set(agg.devices) if agg is not None else set()
        for d, row in trained:
            extra = d.participant.traffic().minus(before[d.participant.name])
            row.traffic = row.traffic.plus(extra)
            rec.traffic = rec.traffic.plus(extra)
            if agg is None or d.participant.name in survivors:
                d.go(DevStage.UPDATED)
            else:
                stage = next((s for s, names in (rec.secure or {}).get("dropouts", {}).items()
                              if d.participant.name in names), "secagg")
                row.status, row.reason = "lost", f"dropped out of secure aggregation at {stage}"
                d.go(DevStage.OUT)
                d.reason = row.reason
        if agg is not None:
            self.state.last_aggregate = agg
            self.state.params = apply_aggregate(params, agg, self.cfg.server_lr)
            rec.aggregate_weight, rec.updates = agg.total_weight, agg.count

    def _client_round(self, d: DeviceState, r: int, params: np.ndarray,
                      tcfg: TrainConfig) -> tuple[DeviceRound, Update | None]:
        p = d.participant
        t0 = time.monotonic()
        before = p.traffic()
        row = DeviceRound(p.name, "ok")
        upd: Update | None = None
        try:
            persist = self.cfg.persist and d.info is not None and d.info.persist
            p.push_params(r, params, self.state.model_hash, persist)
            d.go(DevStage.PARAMS)
            res = p.train(r, tcfg, self.cfg.train_timeout)
            row.train = res
            d.go(DevStage.TRAINED)
            if getattr(self.aggregator, "interactive", False):
                row.weight = res.samples  # the update stays on the device: SecAgg+ masks it there
            else:
                upd = p.fetch_update(r, self.aggregator.encoding)
                d.go(DevStage.UPDATED)
                row.weight, row.update_norm = upd.weight, upd.norm
        except (LinkTimeout, TimeoutError) as e:
            row.status, row.reason = "timeout", str(e)
        except DeviceError as e:
            row.status, row.reason = "error", str(e)
        except (LinkError, OSError, EOFError) as e:
            row.status, row.reason = "lost", str(e)
        except ProtocolError as e:
            row.status, row.reason = "error", str(e)
        if row.status != "ok":
            upd = None
            d.go(DevStage.OUT)
            d.reason = row.reason
            self.log(f"[fleet] round {r}: {p.name} left out ({row.status}: {row.reason})")
        row.traffic = p.traffic().minus(before)
        row.seconds = time.monotonic() - t0
        return row, upd

    def _rejoin(self) -> None:
        for d in self.state.devices:
            if d.stage is not DevStage.OUT:
                continue
            try:
                info = d.participant.open()
            except (LinkTimeout, LinkError, ProtocolError, OSError) as e:
                d.reason = f"rejoin failed: {e}"
                continue
            if info.model_hash != self.state.model_hash or not info.training:
                d.stage, d.reason = DevStage.REFUSED, "model changed while out"
                continue
            d.info = info
            d.go(DevStage.READY)
            self.log(f"[fleet] {d.participant.name} rejoined")

    # -- whole run ----------------------------------------------------------------------------
    def run(self, on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        if self.state.stage is Stage.SETUP:
            self.setup()
            if on_round and self._resume is None:
                on_round(self.state.records[0])
        while self.state.round < self.cfg.rounds:
            rec = self.run_round()
            if on_round:
                on_round(rec)
        if self.cfg.final_broadcast and self.cfg.rounds > 0:
            self.broadcast_final()
        self._go(Stage.DONE)
        return self.state.records

    def broadcast_final(self) -> list[str]:
        """Send the final global parameters to every reachable device (committed and,
        where the device can, persisted), so each board keeps the federated model."""
        if self.state.stage is not Stage.EVALUATE:
            raise RoundError(f"broadcast_final() in stage {self.state.stage.value}")
        self._rejoin()
        done: list[str] = []
        for d in self.state.devices:
            if d.stage is not DevStage.READY:
                continue
            persist = self.cfg.persist and d.info is not None and d.info.persist
            try:
                d.participant.push_params(self.state.round, self.state.params, self.state.model_hash, persist)
                done.append(d.participant.name)
            except (LinkTimeout, TimeoutError, LinkError, OSError, ProtocolError) as e:
                d.go(DevStage.OUT)
                d.reason = f"final model not delivered: {e}"
                self.log(f"[fleet] {d.participant.name}: final model not delivered ({e})")
        self.state.final_holders = done
        return done

    def close(self) -> None:
        for d in self.state.devices:
            try:
                d.participant.close()
            except OSError:
                pass


__all__ = ["DEFAULT_ROUNDS", "DEFAULT_TRAIN", "FedAvgRunner", "FleetConfig", "FleetState", "RoundRecord",
           "DeviceRound", "Participant", "ParticipantInfo", "SerialParticipant", "Traffic", "Stage", "DevStage",
           "RoundError", "RefusedError", "Evaluator"]
