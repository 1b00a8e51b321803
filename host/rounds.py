"""The round engine: a strategy (``tinyfed_host.strategy``) over participants
(``tinyfed_host.participant``), aggregating plain or through SecAgg+
(``tinyfed_host.aggregation``), on the wall clock (boards) or a virtual clock
(simulation; ``tinyfed_host.clock``).  The runner knows none of these apart
from their interfaces.

Versions and steps.  The global model has a *version* v (0 = initial
parameters); every successful aggregation step makes version v + 1.  A
*step* is one attempt at that (a synchronous round, or a buffer flush); a
step that cannot aggregate (too few updates, an aborted secure sum) is
recorded as failed and leaves the version.  ``FleetConfig.updates`` steps
run.  An update trained from version v and aggregated at version v' has
staleness v' - v.

Host stages (ARCHITECTURE.md rule 8: constants, a state dataclass, checked
transitions)::

    SETUP ─► EVALUATE(version 0) ─► COLLECT ─► AGGREGATE ─► EVALUATE ─► … ─► DONE

* SETUP: every participant says hello; one whose model hash differs from
  the fleet's (or that cannot train, or is secure-only in a plain run) is
  REFUSED with a clear message and never used.
* COLLECT: idle devices get the current version and train (a *job*:
  ``READY ─► PARAMS ─► TRAINED [─► UPDATED: plain, update fetched]``).
  Synchronous: every active device at the start of the step, and the step
  waits for all of them.  Semi-asynchronous: every idle device, always; a
  finished device's update joins the buffer and the device is busy again
  only after its update was aggregated (secure: it holds the update until
  its cohort's SecAgg+ round) or dropped.  Updates staler than the
  strategy's ``max_staleness`` are dropped (``stale_dropped``) and their
  devices start over on the current version.  A device that times out,
  loses its link or answers an error is OUT until it rejoins (HELLO) at the
  start of a later step.
* AGGREGATE: the first K updates (``buffer_size``; sync: all) are weighted
  by the strategy (public weights), summed by the aggregation backend, and
  applied: version + 1.
* EVALUATE: the global parameters on the host's held-out split, at clock
  time ``time_s`` (virtual seconds in simulation, wall seconds on boards).

Cohorts.  The members of one aggregation form a *cohort*, a checked state
machine of its own::

    FORMED ─► SECAGG ─► SUMMED ─► APPLIED
       └─────────┴─────────┴────► FAILED

FORMED: the first K buffered updates; their staleness and public weights are
fixed (a secure cohort's invitation carries them: each device weights its own
update before masking).  SECAGG: summed by the aggregation backend.  SUMMED:
the sum is known.  APPLIED: the server step made a new version.  FAILED:
nothing to apply (too few members, an aborted secure sum, the run ended).

Plain runs and synchronous rounds go through the four stages at once, inside
the step.  A semi-asynchronous *secure* run keeps up to ``max_cohorts``
cohorts in SecAgg+ at the same time (``FleetConfig.max_cohorts``, CLI
``--max-cohorts``; sync is always 1): a device is in at most one cohort, and
only a cohort's members wait for its SecAgg+ rounds while the rest of the
fleet trains and the next cohort fills.  On boards a cohort's SecAgg+ runs
in a worker thread; on the virtual clock it is an event as long as its
slowest member's SecAgg+ time (``clock.TimingModel.secagg_seconds``: the
device's measured instructions and its link bytes).  A step ends when a
cohort lands: it is applied to the version current *then*, and its staleness
is counted then (tau = that version - the version each member trained from).
Its members' weights inside the masked sum were fixed at formation; the
step's size uses the factors of the staleness at landing (the cohort's weight
total is recomputed from the public weights: ``_land``), so a cohort that
waited behind others moves the model less.  ``--max-staleness`` is checked
when a cohort forms; a cohort in flight may land a few versions staler.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .aggregation import Aggregation, CohortSum, Contribution, as_aggregation, public_weight
from .clock import JobResult, VirtualClock, WallClock
from .fedavg import AggregationError
from tinyfed_toolchain.facts.errors import EXIT_REFUSED, DeviceFailure, OptionsError
from tinyfed_toolchain.facts.train_config import TrainConfig

from .fl_client import TrainResult, Update
from .link import LinkError, LinkTimeout
from .participant import (InProcessParticipant, Participant, ParticipantInfo, SerialParticipant,  # noqa: F401
                          Traffic)
from .protocol import DeviceError, ProtocolError
from .strategy import Strategy, StrategyOptions, make_strategy


class RoundError(DeviceFailure, RuntimeError):
    """The fleet cannot run (no usable participant, bad configuration)."""


class RefusedError(RoundError):
    """A participant runs another model (or cannot train): it is not admitted (exit code 2)."""

    exit_code = EXIT_REFUSED


# ---- state ------------------------------------------------------------------------------------
class Stage(enum.Enum):
    SETUP = "setup"
    COLLECT = "collect"
    AGGREGATE = "aggregate"
    EVALUATE = "evaluate"
    DONE = "done"


_TRANSITIONS: dict[Stage, set[Stage]] = {
    Stage.SETUP: {Stage.EVALUATE},
    Stage.EVALUATE: {Stage.COLLECT, Stage.DONE},
    Stage.COLLECT: {Stage.AGGREGATE},
    Stage.AGGREGATE: {Stage.EVALUATE},
    Stage.DONE: set(),
}


class DevStage(enum.Enum):
    READY = "ready"  # idle: may get the current version
    PARAMS = "params"  # global parameters committed on the device
    TRAINED = "trained"  # trained; the update is on the device (secure: it waits there for its cohort)
    UPDATED = "updated"  # plain: update received by the host (waits in the buffer)
    OUT = "out"  # left out (timeout, lost link, error) until it rejoins
    REFUSED = "refused"  # never admitted (other model / no training engine)


_DEV_TRANSITIONS: dict[DevStage, set[DevStage]] = {
    DevStage.READY: {DevStage.PARAMS, DevStage.OUT},
    DevStage.PARAMS: {DevStage.TRAINED, DevStage.OUT},
    DevStage.TRAINED: {DevStage.UPDATED, DevStage.READY, DevStage.OUT},
    DevStage.UPDATED: {DevStage.READY, DevStage.OUT},
    DevStage.OUT: {DevStage.READY, DevStage.OUT},
    DevStage.REFUSED: set(),
}


@dataclass
class DeviceState:
    participant: Participant
    index: int = 0  # position in the fleet (client id = index + 1)
    stage: DevStage = DevStage.READY
    info: ParticipantInfo | None = None
    reason: str = ""
    busy: bool = False  # a job or a buffered update is outstanding

    def go(self, to: DevStage) -> None:
        if to not in _DEV_TRANSITIONS[self.stage]:
            raise RoundError(f"{self.participant.name}: illegal transition {self.stage.value} -> {to.value}")
        self.stage = to


class CohortStage(enum.Enum):
    FORMED = "formed"  # members chosen, staleness and public weights fixed
    SECAGG = "secagg"  # being summed (secure: its SecAgg+ instance runs)
    SUMMED = "summed"  # the (weighted) sum is known
    APPLIED = "applied"  # the server step made a new model version
    FAILED = "failed"  # nothing applied (too few members, aborted secure sum, run ended)


_COHORT_TRANSITIONS: dict[CohortStage, set[CohortStage]] = {
    CohortStage.FORMED: {CohortStage.SECAGG, CohortStage.FAILED},
    CohortStage.SECAGG: {CohortStage.SUMMED, CohortStage.FAILED},
    CohortStage.SUMMED: {CohortStage.APPLIED, CohortStage.FAILED},
    CohortStage.APPLIED: set(),
    CohortStage.FAILED: set(),
}

DEFAULT_MAX_COHORTS = 8  # SecAgg+ cohorts in flight at once in a semi-async secure run


@dataclass
class Cohort:
    """The members of one aggregation step and what became of them (module docstring)."""

    id: int  # 1, 2, ... in order of formation
    step: int  # the step during which it formed
    members: list[Contribution]
    formed_version: int
    formed_at: float  # clock time
    in_flight: int = 1  # cohorts in flight when it formed, itself included
    stage: CohortStage = CohortStage.FORMED
    rows: dict[str, "DeviceRound"] = field(default_factory=dict)  # member -> its job's report row
    result: CohortSum | None = None
    error: str = ""
    report: dict[str, Any] | None = None  # SecAgg+ round report
    traffic: dict[str, Traffic] = field(default_factory=dict)  # member -> bytes of its SecAgg+ rounds
    wall_seconds: float = 0.0  # the sum itself (SecAgg+: its five stages), wall
    secagg_seconds: float = 0.0  # virtual clock: its slowest member's modelled SecAgg+ time
    done_at: float | None = None  # clock time it was summed (or failed)
    applied_version: int | None = None

    def go(self, to: CohortStage) -> None:
        if to not in _COHORT_TRANSITIONS[self.stage]:
            raise RoundError(f"cohort {self.id}: illegal transition {self.stage.value} -> {to.value}")
        self.stage = to

    def fail(self, why: str) -> None:
        self.go(CohortStage.FAILED)
        self.error = why

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.stage.value, "members": len(self.members),
                "formed_version": self.formed_version, "applied_version": self.applied_version,
                "formed_at_s": round(self.formed_at, 6),
                "done_at_s": None if self.done_at is None else round(self.done_at, 6),
                "in_flight": self.in_flight, "secagg_seconds": round(self.secagg_seconds, 6),
                "wall_seconds": round(self.wall_seconds, 3), "error": self.error or None}


@dataclass
class DeviceRound:
    """One device job (or its absence) reported in a step."""

    name: str
    status: str  # ok | stale | timeout | lost | error | absent | refused
    reason: str = ""
    weight: int = 0  # samples trained on
    version: int | None = None  # model version it trained from
    staleness: int | None = None  # versions behind when aggregated (or dropped)
    public_weight: int | None = None  # strategy weight (units 2^-8 samples)
    train: TrainResult | None = None
    update_norm: float | None = None
    traffic: Traffic = field(default_factory=Traffic)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "status": self.status, "reason": self.reason,
                             "weight": self.weight, "version": self.version, "staleness": self.staleness,
                             "public_weight": self.public_weight, "update_norm": self.update_norm,
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
    """One aggregation step (``round`` = step number; round 0 = the initial model)."""

    round: int
    accuracy: float
    loss: float
    completed: bool = True  # False: nothing aggregated, global parameters unchanged
    devices: list[DeviceRound] = field(default_factory=list)
    traffic: Traffic = field(default_factory=Traffic)
    seconds: float = 0.0  # wall seconds the step took
    time_s: float = 0.0  # clock time at its end (virtual in simulation)
    version: int = 0  # model version after the step
    aggregate_weight: int = 0  # samples in the aggregate
    updates: int = 0  # updates aggregated
    stale_dropped: int = 0
    mean_staleness: float | None = None
    aggregate_seconds: float = 0.0  # wall seconds the aggregation itself took (SecAgg+: the four stages)
    secure: dict[str, Any] | None = None  # SecAgg+ report (dropouts, bytes per stage, epsilon)
    cohort: dict[str, Any] | None = None  # the cohort this step landed (Cohort.as_dict)
    restored: dict[str, Any] | None = field(default=None, repr=False)  # from a checkpoint: its report row

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RoundRecord":
        """A step of an interrupted run, from its report row (host/checkpoint.py)."""
        nan = float("nan")
        return cls(int(d["round"]), nan if d.get("accuracy") is None else float(d["accuracy"]),
                   nan if d.get("loss") is None else float(d["loss"]), bool(d.get("completed", True)),
                   seconds=float(d.get("seconds") or 0.0), time_s=float(d.get("time_s") or 0.0),
                   version=int(d.get("version") or 0), aggregate_weight=int(d.get("aggregate_weight") or 0),
                   updates=int(d.get("updates") or 0), stale_dropped=int(d.get("stale_dropped") or 0),
                   aggregate_seconds=float(d.get("aggregate_seconds") or 0.0), secure=d.get("secure"),
                   restored=dict(d))

    def as_dict(self) -> dict[str, Any]:
        if self.restored is not None:
            return dict(self.restored)
        return {"round": self.round, "version": self.version, "accuracy": self.accuracy, "loss": self.loss,
                "time_s": self.time_s, "updates": self.updates, "stale_dropped": self.stale_dropped,
                "mean_staleness": self.mean_staleness, "aggregate_seconds": round(self.aggregate_seconds, 3),
                "bytes_up": self.traffic.wire_in, "bytes_down": self.traffic.wire_out,
                "secure": self.secure, "cohort": self.cohort, "completed": self.completed,
                "aggregate_weight": self.aggregate_weight, "seconds": round(self.seconds, 3),
                "bytes_to_devices": self.traffic.wire_out, "bytes_from_devices": self.traffic.wire_in,
                "payload_to_devices": self.traffic.payload_out,
                "payload_from_devices": self.traffic.payload_in,
                "devices": [d.as_dict() for d in self.devices]}


# Defaults, measured on digits and BasicMotions (4 non-IID devices, Dirichlet
# 0.5, classifier re-initialised, seeds 0-3): local SGD, momentum 0.9, lr 0.02
# with a cosine decay over each local run, 5 local epochs per round, 20 rounds.
# The federated result then lands within about 2 pp of centralised fine-tuning
# with the same epoch budget on both (lr 0.03+ diverges with momentum 0.9).
DEFAULT_UPDATES = 20
DEFAULT_ROUNDS = DEFAULT_UPDATES
DEFAULT_TRAIN = TrainConfig(lr=0.02, momentum=0.9, weight_decay=0.0, epochs=5, batch=8, seed=0, schedule="cosine")


@dataclass(frozen=True)
class FleetConfig:
    """Every knob of the round engine, declared once."""

    updates: int = DEFAULT_UPDATES  # aggregation steps (model versions) to run
    strategy: StrategyOptions = StrategyOptions()  # sync / fedbuff / ftte, buffer, max staleness, server step
    train: TrainConfig = DEFAULT_TRAIN
    min_clients: int = 1  # updates a step needs to change the model
    train_timeout: float = 300.0
    persist: bool = True
    parallel: bool = True  # wall clock: devices train in parallel threads
    vary_seed: bool = True  # step r trains with seed + r * 7919 (different shuffles per step)
    final_broadcast: bool = True  # after the last step, every device gets (and persists) the final model
    target_accuracy: float | None = None  # time_to_target_s: first time the global accuracy reaches it
    max_cohorts: int = DEFAULT_MAX_COHORTS  # semi-async secure: SecAgg+ cohorts in flight at once (sync: 1)

    @property
    def rounds(self) -> int:
        """Synchronous runs call the steps rounds."""
        return self.updates


@dataclass
class FleetState:
    stage: Stage
    round: int  # steps done (records[-1].round)
    version: int  # model version of ``params``
    params: np.ndarray
    model_hash: bytes
    devices: list[DeviceState]
    records: list[RoundRecord] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, message)
    # the last step's raw material, for checks and reports
    last_updates: list[Update] = field(default_factory=list)
    last_aggregate: CohortSum | None = None
    final_holders: list[str] = field(default_factory=list)  # devices that received the final model
    buffer: list[Contribution] = field(default_factory=list)  # updates waiting for a step
    stale_dropped_total: int = 0
    cohorts: list[Cohort] = field(default_factory=list)  # in flight (FORMED / SECAGG / SUMMED)
    cohorts_formed: int = 0
    last_cohort: Cohort | None = None  # the cohort the last step landed


#: evaluate(params) -> (accuracy, mean loss) on the host's held-out split
Evaluator = Callable[[np.ndarray], tuple[float, float]]


@dataclass
class ResumePoint:
    """Where an interrupted run continues (host/checkpoint.py)."""

    round: int
    version: int
    params: np.ndarray
    records: Sequence[RoundRecord]
    time_s: float = 0.0
    strategy: dict[str, Any] = field(default_factory=dict)


_FAILURES = (LinkTimeout, TimeoutError, DeviceError, LinkError, OSError, EOFError, ProtocolError)


def _status_of(e: BaseException) -> str:
    if isinstance(e, (LinkTimeout, TimeoutError)):
        return "timeout"
    if isinstance(e, (DeviceError, ProtocolError)):
        return "error"
    return "lost"


class FederatedRunner:
    """Drives participants through aggregation steps (see the module docstring)."""

    def __init__(self, participants: Sequence[Participant], *, init_params: np.ndarray, model_hash: bytes,
                 evaluator: Evaluator, config: FleetConfig = FleetConfig(),
                 strategy: Strategy | StrategyOptions | None = None, aggregation: Aggregation | None = None,
                 clock: WallClock | VirtualClock | None = None, log: Callable[[str], None] = print,
                 resume: ResumePoint | None = None, aggregator: Any = None) -> None:
        """``aggregator``: a SecAgg+ ``SecureAggregator`` (shorthand for ``aggregation=SecureAggregation(it)``)
        or any Aggregation."""
        if not participants:
            raise RoundError("no participants")
        self.cfg = config
        if strategy is None:
            strategy = config.strategy
        self.strategy: Strategy = make_strategy(strategy) if isinstance(strategy, StrategyOptions) else strategy
        self.aggregation: Aggregation = as_aggregation(aggregation if aggregation is not None else aggregator, log)
        # one thread per device job, and one per SecAgg+ cohort in flight
        self.clock = clock or WallClock(parallel=config.parallel,
                                        max_workers=max(1, len(participants)) + config.max_cohorts)
        self.evaluator = evaluator
        self.log = log
        self._resume = resume
        self.state = FleetState(Stage.SETUP, 0, 0, np.asarray(init_params, dtype=np.float32).copy(),
                                bytes(model_hash), [DeviceState(p, i) for i, p in enumerate(participants)])
        self._step_rows: list[DeviceRound] = []
        self._row_index: dict[tuple[str, int | None], DeviceRound] = {}  # _row_of's index of _step_rows
        self._row_key: tuple[int, int] | None = None
        self._step_traffic = Traffic()
        self._step_stale = 0
        self._versions: dict[int, np.ndarray] = {}
        self._open_rows: dict[tuple[str, int], DeviceRound] = {}  # rows of updates not yet aggregated or dropped
        if config.max_cohorts < 1:
            raise OptionsError(f"--max-cohorts {config.max_cohorts}: at least 1 cohort must be able to run")

    @property
    def max_cohorts(self) -> int:
        """Cohorts in flight at once: ``FleetConfig.max_cohorts`` for a semi-async secure run, else 1
        (synchronous rounds, and plain sums, which take no device time)."""
        return 1 if self.strategy.synchronous or not self.secure else self.cfg.max_cohorts

    @property
    def concurrent(self) -> bool:
        """Cohorts run beside training (semi-async secure); else a step sums its cohort in line."""
        return self.secure and not self.strategy.synchronous

    @property
    def secure(self) -> bool:
        return bool(self.aggregation.secure)

    # -- stage machine ------------------------------------------------------------------------
    def _go(self, to: Stage) -> None:
        if to not in _TRANSITIONS[self.state.stage]:
            raise RoundError(f"illegal transition {self.state.stage.value} -> {to.value}")
        self.state.stage = to

    def _refuse(self, d: DeviceState, msg: str) -> None:
        d.stage, d.reason = DevStage.REFUSED, msg
        self.state.refused.append((d.participant.name, msg))
        self.log(f"[fleet] {msg}")

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
                self.log(f"[fleet] {name}: not reachable ({e}); will retry at the next step")
                continue
            d.info = info
            if info.model_hash != self.state.model_hash:
                self._refuse(d, f"{name} runs model {info.model_name!r} hash {info.model_hash.hex()}, but this "
                                f"fleet trains hash {self.state.model_hash.hex()}: refused (flash it with an image "
                                f"of the same build, or point the host at that board's build)")
            elif not info.training:
                self._refuse(d, f"{name} ({info.board}) has no training engine linked in: refused")
            elif info.secure_only and not self.secure:
                self._refuse(d, f"{name} runs a secure-only image (built with --secure-only): it never sends a "
                                f"plain update, so it cannot join a --no-secure run: refused (run with secure "
                                f"aggregation)")
            elif info.test_image and self.secure:
                self.log(f"[fleet] warning: {name} runs a TEST image (TFD_TEST_MESSAGES): it would reveal its "
                         f"unmasked update on request; secure aggregation only protects release images")
        if not any(d.stage is not DevStage.REFUSED for d in self.state.devices):
            raise RefusedError("no participant can join: " + "; ".join(m for _, m in self.state.refused))
        self._go(Stage.EVALUATE)
        if self._resume is not None:
            rp = self._resume
            self.state.round, self.state.version = int(rp.round), int(rp.version)
            self.state.params = np.asarray(rp.params, dtype=np.float32).copy()
            self.state.records = list(rp.records)
            self.strategy.load_state(dict(rp.strategy))
            if isinstance(self.clock, VirtualClock):
                self.clock.advance(rp.time_s - self.clock.now())
            else:
                self.clock = WallClock(parallel=self.cfg.parallel,
                                       max_workers=max(1, len(self.state.devices)) + self.cfg.max_cohorts,
                                       start=rp.time_s)
            # cohorts in flight when the run stopped are gone (their devices train again); ids go on
            self.state.cohorts_formed = max([int((r.cohort or (r.restored or {}).get("cohort") or {}).get("id") or 0)
                                             for r in self.state.records] + [0])
            return
        self._evaluate(RoundRecord(0, float("nan"), float("nan")), t0=time.monotonic())

    # -- EVALUATE -----------------------------------------------------------------------------
    def _evaluate(self, rec: RoundRecord, t0: float) -> RoundRecord:
        acc, loss = self.evaluator(self.state.params)
        rec.accuracy, rec.loss = float(acc), float(loss)
        rec.seconds = time.monotonic() - t0
        rec.time_s = self.clock.now()
        rec.version = self.state.version
        self.state.records.append(rec)
        return rec

    # -- jobs -----------------------------------------------------------------------------------
    def _train_config(self, step: int) -> TrainConfig:
        tcfg = self.cfg.train
        if self.cfg.vary_seed:
            tcfg = dataclasses.replace(tcfg, seed=(tcfg.seed + step * 7919) & 0xFFFFFFFF)
        return tcfg

    def _job(self, d: DeviceState, version: int, params: np.ndarray, tcfg: TrainConfig) -> JobResult:
        """One device's turn (runs in a worker thread on the wall clock)."""
        p = d.participant
        t0 = time.monotonic()
        before = p.traffic()
        row = DeviceRound(p.name, "ok", version=version)
        upd: Update | None = None
        res = JobResult(d.index, version)
        try:
            persist = self.cfg.persist and d.info is not None and d.info.persist
            p.push_params(version, params, self.state.model_hash, persist)
            d.go(DevStage.PARAMS)
            tr = p.train(version, tcfg, self.cfg.train_timeout)
            row.train, row.weight = tr, tr.samples
            res.seen, res.eval_samples = tr.seen, tr.eval_samples
            d.go(DevStage.TRAINED)
            enc = self.aggregation.fetch_encoding
            if enc is not None:
                upd = p.fetch_update(version, enc)
                d.go(DevStage.UPDATED)
                row.weight, row.update_norm = upd.weight, upd.norm
        except _FAILURES as e:
            res.ok, res.status, res.reason = False, _status_of(e), str(e)
            row.status, row.reason = res.status, res.reason
            upd = None
        row.traffic = p.traffic().minus(before)
        row.seconds = time.monotonic() - t0
        res.wire_bytes = row.traffic.wire_in + row.traffic.wire_out
        res.payload = (row, upd)
        return res

    def _dispatch(self, d: DeviceState, step: int) -> None:
        d.busy = True
        v, params, tcfg = self.state.version, self.state.params.copy(), self._train_config(step)
        self.clock.submit(lambda: self._job(d, v, params, tcfg), d.index)

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

    def _idle(self) -> list[DeviceState]:
        return [d for d in self.state.devices if d.stage is DevStage.READY and not d.busy]

    def _active(self) -> list[DeviceState]:
        return [d for d in self.state.devices if d.stage not in (DevStage.OUT, DevStage.REFUSED)]

    def _take(self, r: JobResult) -> None:
        """A finished job: its update joins the buffer, or the device is OUT."""
        d = self.state.devices[r.device]
        row, upd = r.payload
        self._step_rows.append(row)
        self._step_traffic = self._step_traffic.plus(row.traffic)
        if not r.ok:
            d.busy = False
            d.go(DevStage.OUT)
            d.reason = row.reason
            self.log(f"[fleet] step {self.state.round + 1}: {row.name} left out ({row.status}: {row.reason})")
            return
        self._open_rows[(row.name, r.version)] = row
        self.state.buffer.append(Contribution(d.index + 1, row.name, d.participant, r.version, row.weight, upd))

    def _release(self, c: Contribution) -> None:
        d = self.state.devices[c.client_id - 1]
        d.busy = False
        if d.stage in (DevStage.TRAINED, DevStage.UPDATED):
            d.go(DevStage.READY)

    def _drop_stale(self) -> None:
        s = self.strategy.max_staleness
        if s is None:
            return
        keep = []
        for c in self.state.buffer:
            tau = self.state.version - c.version
            if tau > s:
                self._step_stale += 1
                self.state.stale_dropped_total += 1
                row = self._open_rows.pop((c.name, c.version), None) or self._row_of(c)
                if row is not None:
                    row.status, row.staleness = "stale", tau
                    row.reason = f"trained from version {c.version}, {tau} versions behind (max {s}): dropped"
                self._release(c)
            else:
                keep.append(c)
        self.state.buffer = keep

    # -- one step -----------------------------------------------------------------------------
    def step(self) -> RoundRecord:
        """Collect updates until the strategy's buffer is full, aggregate, evaluate (semi-async
        secure: until a cohort in flight lands)."""
        if self.state.stage is not Stage.EVALUATE:
            raise RoundError(f"step() in stage {self.state.stage.value}")
        if self.state.round >= self.cfg.updates:
            raise RoundError(f"all {self.cfg.updates} steps done")
        t0 = time.monotonic()
        self._go(Stage.COLLECT)
        self.state.round += 1
        r = self.state.round
        self._step_rows, self._step_traffic, self._step_stale = [], Traffic(), 0
        self._row_key = None  # a new list may reuse the old one's id: the index is rebuilt
        self._rejoin()
        sync = self.strategy.synchronous
        landed: Cohort | None = None
        if sync:
            for d in self._idle():
                self._dispatch(d, r)
            while self.clock.in_flight():
                self._take(self.clock.next_done())
            k = len(self.state.buffer)
        elif self.concurrent:
            k = 0
            while landed is None:
                for d in self._idle():
                    self._dispatch(d, r)
                self._drop_stale()
                k = self.strategy.buffer_size(len(self._active()))
                while len(self.state.buffer) >= k and len(self.state.cohorts) < self.max_cohorts:
                    self._launch(r, k)
                if not self.clock.in_flight():
                    if not self.state.buffer:
                        break  # nothing trains, nothing in flight, nothing buffered: a step with nothing
                    self._launch(r, k)  # every device is waiting in the buffer: a cohort of what there is
                    continue
                ev = self.clock.next_done()
                if ev.cohort is not None:
                    landed = ev.cohort
                else:
                    self._take(ev)
        else:
            while True:
                for d in self._idle():
                    self._dispatch(d, r)
                self._drop_stale()
                k = self.strategy.buffer_size(len(self._active()))
                if len(self.state.buffer) >= k:
                    break
                if not self.clock.in_flight():
                    break  # every device is waiting in the buffer or out: aggregate what there is
                self._take(self.clock.next_done())
        # AGGREGATE
        self._go(Stage.AGGREGATE)
        rec = RoundRecord(r, float("nan"), float("nan"))
        if landed is not None:
            self.state.cohorts.remove(landed)
            self._land(landed, rec)
        else:
            self._drop_stale()
            members = self.state.buffer[:max(1, k)]
            self.state.buffer = self.state.buffer[len(members):]
            self._aggregate(r, members, rec)
        if sync:  # a round reports every device: those without a job are absent or refused
            seen = {x.name for x in self._step_rows}
            for d in self.state.devices:
                if d.participant.name not in seen:
                    self._step_rows.append(DeviceRound(d.participant.name,
                                                       "refused" if d.stage is DevStage.REFUSED else "absent",
                                                       d.reason))
        rec.devices = self._step_rows
        rec.traffic = rec.traffic.plus(self._step_traffic)
        rec.stale_dropped = self._step_stale
        self._go(Stage.EVALUATE)
        return self._evaluate(rec, t0)

    run_round = step  # synchronous runs call a step a round

    def _row_of(self, c: Contribution) -> "DeviceRound | None":
        """The step's row of contribution ``c`` (the latest for its device and version): an index
        rebuilt when the step's rows changed -- a linear search per member is quadratic in the
        fleet (10,000 devices)."""
        key = (id(self._step_rows), len(self._step_rows))
        if self._row_key != key:
            self._row_index = {(x.name, x.version): x for x in self._step_rows}  # later rows win
            self._row_key = key
        return self._row_index.get((c.name, c.version))

    # -- cohorts ------------------------------------------------------------------------------
    def _form(self, step: int, members: list[Contribution]) -> Cohort:
        """FORMED: staleness and public weights fixed at the current version."""
        v = self.state.version
        self.state.cohorts_formed += 1
        c = Cohort(self.state.cohorts_formed, step, members, v, self.clock.now(), len(self.state.cohorts) + 1)
        for m in members:
            m.staleness = v - m.version
            m.weight = public_weight(self.strategy.factor(m.staleness), m.samples)
            row = self._open_rows.pop((m.name, m.version), None) or self._row_of(m)
            if row is not None:
                row.staleness, row.public_weight = m.staleness, m.weight
                c.rows[m.name] = row
        return c

    def _sum(self, c: Cohort, step: int) -> None:
        """SECAGG -> SUMMED (or FAILED): the aggregation backend sums the cohort.  Touches only the
        cohort and its members' participants: it may run in a worker thread, beside other cohorts."""
        from .secagg.server import SecAggAbort

        c.go(CohortStage.SECAGG)
        members = c.members
        before = {m.name: m.participant.traffic() for m in members} if self.secure else {}
        t_agg = time.monotonic()
        try:
            c.result = self.aggregation.aggregate(step, int(self.state.params.size), members)
            c.report = c.result.report
            c.go(CohortStage.SUMMED)
        except (SecAggAbort, AggregationError) as e:
            what = "secure aggregation aborted" if self.secure else "aggregation failed"
            self.log(f"[fleet] step {step}: cohort {c.id}: {what}: {e}; global parameters unchanged")
            report = getattr(getattr(self.aggregation, "inner", None), "last_report", None)
            c.report = None if report is None else {**report, "aborted": True}
            c.fail(f"{what}: {e}")
        c.wall_seconds = time.monotonic() - t_agg
        if not self.secure:
            return
        k = int((c.report or {}).get("degree") or 1)
        timing = getattr(self.clock, "timing", None) if isinstance(self.clock, VirtualClock) else None
        for m in members:
            extra = m.participant.traffic().minus(before[m.name])
            c.traffic[m.name] = extra
            if timing is not None:
                c.secagg_seconds = max(c.secagg_seconds, timing.secagg_seconds(
                    m.client_id - 1, extra.wire_in + extra.wire_out, k, int(self.state.params.size)))

    def _launch(self, step: int, k: int) -> None:
        """Form a cohort of the first ``k`` buffered updates and put it in flight: its SecAgg+ runs in
        a worker thread (wall clock), or now and lands after its slowest member's SecAgg+ time
        (virtual clock)."""
        members = self.state.buffer[:max(1, k)]
        self.state.buffer = self.state.buffer[len(members):]
        c = self._form(step, members)
        self.state.cohorts.append(c)

        def run() -> JobResult:
            if len(c.members) < max(1, self.cfg.min_clients):
                c.fail(f"{len(c.members)} update(s), need {self.cfg.min_clients}")
            else:
                self._sum(c, step)
            return JobResult(-1, c.formed_version, ok=c.stage is CohortStage.SUMMED, duration=c.secagg_seconds,
                             cohort=c)

        self.clock.submit(run, -1)

    def _aggregate(self, step: int, members: list[Contribution], rec: RoundRecord) -> None:
        """A cohort summed and applied within the step (synchronous rounds, plain sums)."""
        c = self._form(step, members)
        if len(members) < max(1, self.cfg.min_clients):
            self.log(f"[fleet] step {step}: {len(members)} update(s), need {self.cfg.min_clients}: "
                     "global parameters unchanged")
            c.fail(f"{len(members)} update(s), need {self.cfg.min_clients}")
        else:
            self._sum(c, step)
        if isinstance(self.clock, VirtualClock) and c.secagg_seconds > 0:
            self.clock.advance(c.secagg_seconds)  # every member waits for the cohort's slowest
            self.clock.hold([m.client_id - 1 for m in members], self.clock.now())
        self._land(c, rec)

    def _land(self, c: Cohort, rec: RoundRecord) -> None:
        """SUMMED -> APPLIED at the current version (or a FAILED cohort recorded): members released
        (dropped-out ones OUT), traffic and staleness counted, the server step taken."""
        step = rec.round
        v = self.state.version
        c.done_at = self.clock.now()
        self.state.last_cohort = c
        members = c.members
        agg = c.result if c.stage is CohortStage.SUMMED else None
        late = False
        for m in members:  # staleness is counted at landing
            tau = v - m.version
            late |= tau != m.staleness
            m.staleness = tau
            row = c.rows.get(m.name)
            if row is not None:
                row.staleness = tau
        self.state.last_updates = [m.update for m in members if m.update is not None]
        self.state.last_aggregate = None
        if members:
            rec.mean_staleness = float(np.mean([m.staleness for m in members]))
        rec.aggregate_seconds = c.wall_seconds
        rec.secure = c.report
        for m in members:
            extra = c.traffic.get(m.name)
            if extra is not None:
                rec.traffic = rec.traffic.plus(extra)
                row = c.rows.get(m.name)
                if row is not None:
                    row.traffic = row.traffic.plus(extra)
        dropped = dict(agg.dropped) if agg is not None else {
            name: f"dropped out of secure aggregation at {stage}"
            for stage, names in ((c.report or {}).get("dropouts") or {}).items() for name in names}
        for m in members:
            why = dropped.get(m.name)
            d = self.state.devices[m.client_id - 1]
            if why is not None:
                row = c.rows.get(m.name)
                if row is not None:
                    row.status, row.reason = ("lost" if "dropped out" in why else "error"), why
                self.log(f"[fleet] step {step}: {m.name}: {why}")
                if "dropped out" in why:
                    d.busy = False
                    d.go(DevStage.OUT)
                    d.reason = why
                    continue
            self._release(m)
        if agg is None:
            if c.stage is not CohortStage.FAILED:
                c.fail("nothing summed")
            rec.completed = False
            rec.cohort = c.as_dict()
            return
        for m in members:  # the weights the devices used (a fleet's weight floor may have raised them)
            row = c.rows.get(m.name)
            if row is not None:
                row.public_weight = m.weight
        if late:  # it waited behind other cohorts: the step's size from the factors at landing
            by_name = {m.name: m for m in members}
            floor_of = getattr(getattr(self.aggregation, "inner", None), "weight_floor", None)
            floor = int(floor_of([m.participant for m in members])) if callable(floor_of) else 0
            total = sum(max(public_weight(self.strategy.factor(by_name[n].staleness), by_name[n].samples),
                            floor * by_name[n].samples) for n in agg.devices)
            agg = dataclasses.replace(agg, weight_total=int(total))
        old = self.state.params
        new = self.strategy.apply(old, agg)
        self.strategy.observe(old, new, agg)
        self.state.params = new
        self.state.version += 1
        self.state.last_aggregate = agg
        c.go(CohortStage.APPLIED)
        c.applied_version = self.state.version
        rec.aggregate_weight, rec.updates = agg.samples_total, agg.count
        rec.cohort = c.as_dict()

    # -- whole run ----------------------------------------------------------------------------
    def run(self, on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        if self.state.stage is Stage.SETUP:
            self.setup()
            if on_round and self._resume is None:
                on_round(self.state.records[0])
        while self.state.round < self.cfg.updates:
            rec = self.step()
            if on_round:
                on_round(rec)
        self._finish_jobs()
        if self.cfg.final_broadcast and self.cfg.updates > 0:
            self.broadcast_final()
        self._go(Stage.DONE)
        return self.state.records

    def _finish_jobs(self) -> None:
        """Jobs and cohorts still running when the last step is done: wait for them (their updates
        are not used; a cohort in flight is FAILED, its members released)."""
        while self.clock.in_flight():
            r = self.clock.next_done()
            if r.cohort is not None:
                self._abandon(r.cohort)
                continue
            d = self.state.devices[r.device]
            d.busy = False
            if not r.ok:
                d.go(DevStage.OUT)
            elif d.stage in (DevStage.TRAINED, DevStage.UPDATED):
                d.go(DevStage.READY)
        for c in self.state.buffer:
            self._release(c)
        self.state.buffer = []
        self._open_rows.clear()

    def _abandon(self, c: Cohort) -> None:
        """A cohort in flight when the run ends: nothing applied; members that dropped out are OUT."""
        if c in self.state.cohorts:
            self.state.cohorts.remove(c)
        dropped = set((c.result.dropped if c.result is not None else {}))
        for stage, names in ((c.report or {}).get("dropouts") or {}).items():
            dropped.update(names)
        if c.stage is not CohortStage.FAILED:
            c.fail("the run ended before it was applied")
        for m in c.members:
            d = self.state.devices[m.client_id - 1]
            if m.name in dropped:
                d.busy = False
                d.go(DevStage.OUT)
            else:
                self._release(m)

    def broadcast_final(self) -> list[str]:
        """Send the final global parameters to every reachable device (committed and,
        where the device can, persisted), so each board keeps the federated model."""
        if self.state.stage is not Stage.EVALUATE:
            raise RoundError(f"broadcast_final() in stage {self.state.stage.value}")
        self._rejoin()
        done: list[str] = []
        for d in self.state.devices:
            if d.stage is not DevStage.READY or d.busy:
                continue
            persist = self.cfg.persist and d.info is not None and d.info.persist
            try:
                d.participant.push_params(self.state.version, self.state.params, self.state.model_hash, persist)
                done.append(d.participant.name)
            except (LinkTimeout, TimeoutError, LinkError, OSError, ProtocolError) as e:
                d.go(DevStage.OUT)
                d.reason = f"final model not delivered: {e}"
                self.log(f"[fleet] {d.participant.name}: final model not delivered ({e})")
        self.state.final_holders = done
        return done

    def close(self) -> None:
        self.clock.close()
        for d in self.state.devices:
            try:
                d.participant.close()
            except OSError:
                pass


FedAvgRunner = FederatedRunner  # the synchronous special case's old name

__all__ = ["DEFAULT_ROUNDS", "DEFAULT_TRAIN", "DEFAULT_UPDATES", "FedAvgRunner", "FederatedRunner", "FleetConfig",
           "FleetState", "RoundRecord", "DeviceRound", "Participant", "ParticipantInfo", "SerialParticipant",
           "InProcessParticipant", "ResumePoint", "Traffic", "Stage", "DevStage", "RoundError", "RefusedError",
           "Evaluator"]
