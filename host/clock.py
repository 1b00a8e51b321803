"""Clocks for the round engine: how device jobs run and what time it is.

A *job* is one device's turn: parameters of a model version pushed, local
training, and (plain aggregation) the update fetched.  The engine submits
jobs and waits for the next one to finish; the clock decides what "next"
means.

* :class:`WallClock` -- boards: jobs run in threads (one per device), time
  is the host's monotonic clock.
* :class:`VirtualClock` -- simulation: a job runs to completion in the
  calling thread (in-process devices are fast) and is *scheduled* to finish
  at ``now + duration``, the duration coming from a :class:`TimingModel` of
  the real device (instructions per sample measured on the firmware, a
  stated clock rate, link bytes at a stated baud, a per-device slowdown).
  Completions are taken in virtual-time order, event by event; nothing
  sleeps, so 500 devices x hours of device time take minutes.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import OptionsError

#: bits on a UART line per payload byte (8N1: start + 8 data + stop)
UART_BITS_PER_BYTE = 10


@dataclass
class JobResult:
    """What one device job produced (filled by the engine's job function)."""

    device: int  # index of the device in the fleet
    version: int  # model version it trained from
    ok: bool = True
    status: str = "ok"  # ok | timeout | lost | error
    reason: str = ""
    payload: Any = None  # engine-specific (row, update, train result, traffic)
    seen: int = 0  # samples processed by training (all epochs)
    eval_samples: int = 0  # samples of the device's own evaluation after training
    wire_bytes: int = 0  # bytes both ways on the device's link during the job
    started: float = 0.0  # clock time the job was submitted
    finished: float = 0.0  # clock time it finished (virtual: scheduled)
    duration: float | None = None  # virtual seconds it takes, when the job knows (a SecAgg+ cohort: its
    #                                slowest member's); None: the timing model's job_seconds
    cohort: Any = None  # not a device job but a SecAgg+ cohort (device -1): the engine's Cohort


# ---- timing of a real device ----------------------------------------------------------------------
#: SecAgg+ device client cost on Cortex-M4 with device identity (bench/README.md, bench/secagg_stages.py,
#: mps2-an386 -icount, k = 4, t = 3, 1000 params; checked at k = 16, 10,000 params: model 134.4 M, measured
#: 134.5 M): ADVERTISE_KEYS 3,272,474 (two X25519 key pairs + one EdDSA signature); SHARE_KEYS 12,355,574
#: at k = 4 (per neighbour: its signature check + agreement + sealing); MASKED_INPUT 5,170,282 fixed at
#: k = 4 (X25519 agreements) + per parameter 480 (norm + encoding) + 203 (self mask) + 165.6 per pair mask;
#: SURVIVORS 659,970 (one signature); UNMASK 110,025 + ~k signature checks of 1,681,517
SECAGG_ADVERTISE_INSNS = 3_272_474
SECAGG_SHARE_PER_NEIGHBOUR = 12_355_574 / 4
SECAGG_MASK_PER_NEIGHBOUR = 5_170_282 / 4
SECAGG_MASK_PER_PARAM = 480.0 + 203.0
SECAGG_MASK_PER_PARAM_PER_NEIGHBOUR = 165.6
SECAGG_SURVIVORS_INSNS = 659_970
SECAGG_UNMASK_INSNS = 110_025
SECAGG_VERIFY_INSNS = 1_681_517


def secagg_device_insns(neighbours: int, n_params: int) -> float:
    """Instructions one device spends in the five SecAgg+ stages (M4 figures above)."""
    k = max(1, neighbours)
    return (SECAGG_ADVERTISE_INSNS + k * SECAGG_SHARE_PER_NEIGHBOUR + k * SECAGG_MASK_PER_NEIGHBOUR
            + (SECAGG_MASK_PER_PARAM + k * SECAGG_MASK_PER_PARAM_PER_NEIGHBOUR) * (n_params + 1)
            + SECAGG_SURVIVORS_INSNS + SECAGG_UNMASK_INSNS + k * SECAGG_VERIFY_INSNS)


@dataclass(frozen=True)
class TimingOptions:
    """The virtual clock's device model (CLI: --device-mhz, --baud, --stragglers, --straggler-slowdown)."""

    device_mhz: float = 64.0  # instructions per microsecond of a normal device (1 instruction per cycle)
    baud: int = 115_200  # UART, 8N1
    insns_per_sample: float | None = None  # training, per sample seen (None: measure on the firmware)
    insns_per_inference: float | None = None  # the device's own evaluation after training (None: = training)
    stragglers: float = 0.0  # fraction of devices that are slow
    straggler_slowdown: float = 10.0  # how much slower a straggler computes (its link is the same)
    jitter: float = 0.1  # every device's speed also varies by a fixed factor in [1 - jitter, 1 + jitter]
    seed: int = 0  # which devices are stragglers, and each device's jitter

    def check(self) -> None:
        if not (self.device_mhz > 0 and math.isfinite(self.device_mhz)):
            raise OptionsError(f"--device-mhz {self.device_mhz}: must be > 0")
        if self.baud <= 0:
            raise OptionsError(f"--baud {self.baud}: must be > 0")
        if not 0.0 <= self.stragglers <= 1.0:
            raise OptionsError(f"--stragglers {self.stragglers}: a fraction in [0, 1]")
        if not self.straggler_slowdown >= 1.0:
            raise OptionsError(f"--straggler-slowdown {self.straggler_slowdown}: must be >= 1")
        if not 0.0 <= self.jitter < 1.0:
            raise OptionsError(f"jitter {self.jitter}: must be in [0, 1)")
        for v in (self.insns_per_sample, self.insns_per_inference):
            if v is not None and not v > 0:
                raise OptionsError("instructions per sample must be > 0")


class TimingModel:
    """Seconds a device needs for a job: compute at its speed plus link time at the baud rate."""

    def __init__(self, options: TimingOptions, n_devices: int) -> None:
        options.check()
        if options.insns_per_sample is None:
            raise OptionsError("the timing model needs instructions per training sample (measured or given)")
        self.opt = options
        self.n = n_devices
        rng = np.random.default_rng(options.seed + 0x5EED)
        k = int(round(options.stragglers * n_devices))
        slow = np.zeros(n_devices, dtype=bool)
        if k:
            slow[rng.choice(n_devices, size=k, replace=False)] = True
        self.stragglers = [int(i) for i in np.flatnonzero(slow)]
        #: each device's compute-time multiplier: straggler slowdown x its own fixed jitter
        self.slowdown = np.where(slow, options.straggler_slowdown, 1.0) * rng.uniform(
            1.0 - options.jitter, 1.0 + options.jitter, n_devices)

    @property
    def hz(self) -> float:
        return self.opt.device_mhz * 1e6

    def link_seconds(self, wire_bytes: int) -> float:
        return wire_bytes * UART_BITS_PER_BYTE / float(self.opt.baud)

    def compute_seconds(self, device: int, insns: float) -> float:
        return insns * float(self.slowdown[device]) / self.hz

    def job_seconds(self, r: JobResult) -> float:
        ips = float(self.opt.insns_per_sample or 0.0)
        ipi = float(self.opt.insns_per_inference or ips)
        return self.compute_seconds(r.device, ips * r.seen + ipi * r.eval_samples) + self.link_seconds(r.wire_bytes)

    def secagg_seconds(self, device: int, wire_bytes: int, neighbours: int, n_params: int) -> float:
        return self.compute_seconds(device, secagg_device_insns(neighbours, n_params)) + self.link_seconds(wire_bytes)

    def as_dict(self) -> dict[str, Any]:
        o = self.opt
        return {"device_mhz": o.device_mhz, "baud": o.baud, "insns_per_sample": o.insns_per_sample,
                "insns_per_inference": o.insns_per_inference or o.insns_per_sample, "stragglers": o.stragglers,
                "straggler_slowdown": o.straggler_slowdown, "jitter": o.jitter,
                "straggler_devices": len(self.stragglers)}


class MeasuredTiming:
    """Device times measured elsewhere, replayed: device i needs ``job_seconds[i]`` for a job and
    every SecAgg+ cohort ``flush_seconds`` -- the virtual clock of a run to be compared with one
    measured on boards (the demo's synchronous reference for the same fleet)."""

    def __init__(self, job_seconds: Sequence[float], flush_seconds: float = 0.0) -> None:
        if not job_seconds or any(not (s > 0 and math.isfinite(s)) for s in job_seconds):
            raise OptionsError("measured job seconds must be > 0, one per device")
        self.per_device = [float(s) for s in job_seconds]
        self.flush = max(0.0, float(flush_seconds))
        fastest = min(self.per_device)
        self.slowdown = np.asarray(self.per_device) / fastest
        self.stragglers = [i for i, s in enumerate(self.slowdown) if s >= 2.0]

    def job_seconds(self, r: JobResult) -> float:
        return self.per_device[r.device]

    def secagg_seconds(self, device: int, wire_bytes: int, neighbours: int, n_params: int) -> float:
        return self.flush

    def as_dict(self) -> dict[str, Any]:
        return {"measured_job_seconds": self.per_device, "measured_flush_seconds": self.flush}


# ---- clocks -------------------------------------------------------------------------------------
JobFn = Callable[[], JobResult]


class WallClock:
    """Real time; jobs in parallel threads (``parallel=False``: one after the other)."""

    virtual = False

    def __init__(self, parallel: bool = True, max_workers: int = 64, start: float = 0.0) -> None:
        self.parallel = parallel
        self._t0 = time.monotonic() - start
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) if parallel else None
        self._futures: set[concurrent.futures.Future[JobResult]] = set()
        self._done: list[JobResult] = []

    def now(self) -> float:
        return time.monotonic() - self._t0

    def submit(self, fn: JobFn, device: int) -> None:
        t = self.now()

        def run() -> JobResult:
            r = fn()
            r.started, r.finished = t, self.now()
            return r

        if self._pool is None:
            self._done.append(run())
        else:
            self._futures.add(self._pool.submit(run))

    def in_flight(self) -> int:
        return len(self._futures) + len(self._done)

    def next_done(self) -> JobResult:
        if self._done:
            return self._done.pop(0)
        if not self._futures:
            raise RuntimeError("no job in flight")
        done, _ = concurrent.futures.wait(self._futures, return_when=concurrent.futures.FIRST_COMPLETED)
        f = min(done, key=lambda x: x.result().finished)
        self._futures.discard(f)
        return f.result()

    def advance(self, seconds: float) -> None:
        """Real time advances by itself."""

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class VirtualClock:
    """Discrete-event time: a job finishes at its start + its modelled duration.

    A job starts when submitted (or when its device is free) in virtual time; its code runs
    before the next completion is taken.  With ``workers`` > 1 the jobs submitted since the
    last ``next_done`` run on that many threads (in-process devices release the GIL in their C
    code: training runs on every core); each job touches only its own device, and the
    completions, their virtual times and their order are those of running the jobs one after
    the other at submission (ties: submission order)."""

    virtual = True

    def __init__(self, timing: "TimingModel | MeasuredTiming", start: float = 0.0, *, workers: int = 1) -> None:
        self.timing = timing
        self._now = float(start)
        self._heap: list[tuple[float, int, JobResult]] = []
        self._pending: list[tuple[JobFn, int, float, int]] = []  # (job, device, start, seq), not yet run
        self._seq = itertools.count()
        self.busy_until: dict[int, float] = {}
        self.workers = max(1, int(workers))
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def now(self) -> float:
        return self._now

    def submit(self, fn: JobFn, device: int) -> None:
        """Queue ``fn``; it runs before the next completion is taken and finishes at its start + its
        duration (``r.duration`` if it set one, else the timing model's).  ``device`` < 0: not one
        device's job (a SecAgg+ cohort: it starts now and books no device's time)."""
        start = max(self._now, self.busy_until.get(device, 0.0)) if device >= 0 else self._now
        self._pending.append((fn, device, start, next(self._seq)))
        if self.workers == 1:
            self._run_pending()

    def _run_pending(self) -> None:
        jobs, self._pending = self._pending, []
        if len(jobs) > 1 and self.workers > 1:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.workers)
            futures = [self._pool.submit(j[0]) for j in jobs]
            try:
                results = [f.result() for f in futures]
            except BaseException:  # an interrupt or a bug: the jobs not started yet never run
                for f in futures:
                    f.cancel()
                raise
        else:
            results = [j[0]() for j in jobs]
        for (_, device, start, seq), r in zip(jobs, results):
            r.started = start
            r.finished = start + (r.duration if r.duration is not None else self.timing.job_seconds(r))
            if device >= 0:
                self.busy_until[device] = max(self.busy_until.get(device, 0.0), r.finished)
            heapq.heappush(self._heap, (r.finished, seq, r))

    def in_flight(self) -> int:
        return len(self._heap) + len(self._pending)

    def next_done(self) -> JobResult:
        if self._pending:
            self._run_pending()
        if not self._heap:
            raise RuntimeError("no job in flight")
        t, _, r = heapq.heappop(self._heap)
        self._now = max(self._now, t)
        return r

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    def hold(self, devices: Sequence[int], until: float) -> None:
        """These devices are busy (e.g. in a SecAgg+ cohort) until ``until``."""
        for d in devices:
            self.busy_until[d] = max(self.busy_until.get(d, 0.0), until)

    def close(self) -> None:
        self._pending.clear()  # never ran: as if never submitted
        self._heap.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


@dataclass
class ClockState:
    """What a checkpoint keeps of the clock: the time of the last completed step."""

    time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


__all__ = ["ClockState", "JobResult", "MeasuredTiming", "TimingModel", "TimingOptions", "UART_BITS_PER_BYTE", "VirtualClock",
           "WallClock", "secagg_device_insns"]
