"""Simulation: N in-process devices (the boards' C code, ``tinyfed_host.inprocess``)
driven by the same round engine as boards, on a virtual clock.

* Devices: one ``InProcessDevice`` per shard, all in this process (one
  library per model + plan; each device a block of its RAM; shards are
  views).  Plain or secure exactly as boards: a secure run's devices mask
  their own updates with their C SecAgg+ client.
* Time: a :class:`~tinyfed_host.clock.VirtualClock`.  A device's training
  time is its samples x the *measured* instructions per training sample of
  the real firmware (:func:`measure_device_cost`: the build's device image
  under QEMU ``-icount``) at ``--device-mhz``, times its slowdown (stragglers:
  ``--stragglers F --straggler-slowdown X``); link time is the job's wire
  bytes at ``--baud`` (8N1).  Events are processed in time order, never by
  sleeping.
* Shards: the build's shards; for another device count the union is re-split
  (Dirichlet by default).  When the pool is too small to give every device
  ``min_samples`` disjoint samples, devices draw their shards from it (each
  its own Dirichlet class mix, with replacement): devices then share samples,
  and the report says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import DeviceFailure, OptionsError
from tinyfed_toolchain.image.provision import Fleet

from .clock import TimingOptions
from .experiment import BuildMissing, FlBuild
from .inprocess import DeviceLibrary, InProcessDevice, provision
from .participant import InProcessParticipant
from .protocol import ClientOptions

DEVICE_COST_FILE = "device_cost.json"


@dataclass(frozen=True)
class FleetShards:
    shards: list[tuple[np.ndarray, np.ndarray]]
    how: str  # "build" | "partition" | "sampled"
    pool: int  # samples in the pool the shards come from


def fleet_shards(build: FlBuild, n_devices: int, *, scheme: str = "dirichlet", alpha: float = 0.5, seed: int = 0,
                 min_samples: int = 8) -> FleetShards:
    """``n_devices`` shards from the build's (see the module docstring)."""
    from tinyfed_toolchain.ml.data import partition_indices

    if n_devices < 1:
        raise OptionsError(f"{n_devices} devices: need at least 1")
    if not build.shards:
        raise OptionsError(f"{build.out_dir}: no device shards (devices/devK/shard.npz): build with --devices N")
    if n_devices == len(build.shards):
        return FleetShards(list(build.shards), "build", sum(len(s[1]) for s in build.shards))
    x = np.concatenate([s[0].reshape(len(s[0]), -1) for s in build.shards])
    y = np.concatenate([s[1] for s in build.shards]).astype(np.uint8)
    if n_devices * min_samples <= len(y):
        idx = partition_indices(y.astype(np.int64), n_devices, scheme=scheme, alpha=alpha,  # type: ignore[arg-type]
                                seed=seed)
        return FleetShards([(x[i], y[i]) for i in idx], "partition", len(y))
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    by_class = {int(c): np.flatnonzero(y == c) for c in classes}
    shards = []
    for _ in range(n_devices):
        mix = rng.dirichlet(np.full(len(classes), alpha)) if scheme == "dirichlet" else np.full(len(classes),
                                                                                               1 / len(classes))
        counts = rng.multinomial(min_samples, mix)
        idx = np.concatenate([rng.choice(by_class[int(c)], size=int(k), replace=True)
                              for c, k in zip(classes, counts) if k]) if counts.any() else rng.choice(len(y), 1)
        shards.append((x[idx], y[idx]))
    return FleetShards(shards, "sampled", len(y))


def make_participants(build: FlBuild, shards: Sequence[tuple[np.ndarray, np.ndarray]], *,
                      secure_only: bool = False, test_messages: bool = False, prefix: str = "virtual",
                      die: dict[int, tuple[str | None, str | None]] | None = None,
                      fleet: Fleet | None = None) -> list[InProcessParticipant]:
    """One in-process device per shard (``die``: device index -> (SecAgg+ stage it loses power
    before, after), for dropout tests).  Device k is provisioned as id k + 1 of ``fleet`` (default:
    a fleet made for this run under a fleet key that lives only in this process -- the
    simulation plays the user who provisions the devices); each participant carries the
    fleet's manifest (``.manifest``) for secure aggregation."""
    lib = DeviceLibrary.build(build.model_dir, build.train_dir, test_messages=test_messages, secure_only=secure_only)
    devices = [InProcessDevice(lib, x, y, name=f"{prefix}{k}") for k, (x, y) in enumerate(shards)]
    provision(devices, fleet)
    out = []
    for k, dev in enumerate(devices):
        before, after = (die or {}).get(k, (None, None))
        out.append(InProcessParticipant(dev, ClientOptions(timeout=0.05, retries=2),
                                        secagg_die_before=before, secagg_die_after=after))
    return out


# ---- the real device's cost ---------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceCost:
    """Instructions the firmware spends per training sample and per inference (QEMU -icount)."""

    insns_per_sample: float
    insns_per_inference: float
    board: str
    image: str
    icount_shift: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _image_key(image: Path, shift: int) -> str:
    return hashlib.blake2b(image.read_bytes() + f"|{shift}".encode(), digest_size=12).hexdigest()


def measure_device_cost(build: FlBuild, *, icount_shift: int = 6, samples: int = 32,
                        log: Any = print) -> DeviceCost:
    """Boot the build's first device image under QEMU ``-icount shift=N``, train one epoch
    on ``samples`` samples and evaluate as many: TRAIN_RESULT.insns_per_sample (the firmware's
    own instruction counter around training) and EVAL's elapsed virtual time (1 instruction =
    2^N ns).  Cached in ``<build>/device_cost.json`` per image."""
    from .emulator import start_boards
    from .participant import SerialParticipant
    from .rounds import DEFAULT_TRAIN

    if not build.images:
        raise BuildMissing(f"{build.out_dir}: no device image to measure (build without --no-images, "
                                "or give --insns-per-sample)")
    image = build.images[0]
    key = _image_key(image, icount_shift)
    cache = build.out_dir / DEVICE_COST_FILE
    try:
        doc = json.loads(cache.read_text())
        if doc.get("key") == key:
            c = doc["cost"]
            return DeviceCost(float(c["insns_per_sample"]), float(c["insns_per_inference"]), str(c["board"]),
                              str(c["image"]), int(c["icount_shift"]))
    except (OSError, ValueError, KeyError):
        pass
    log(f"[simulate] measuring the firmware's instructions per training sample on {build.board} "
        f"(QEMU -icount shift={icount_shift}, {image}) ...")
    t0 = time.monotonic()
    boards = start_boards(1, build.board, [image], icount_shift)
    try:
        p = SerialParticipant(boards[0].url, ClientOptions(timeout=5.0, retries=4), name="measure")
        info = p.open()
        n = min(samples, info.shard_size)
        p.push_params(1, build.init_params(), build.model_hash, False)
        res = p.train(1, dataclasses.replace(DEFAULT_TRAIN, epochs=1, max_samples=n), 300.0)
        assert p.dev is not None
        ev = p.dev.eval(n)
        p.close()
    finally:
        for b in boards:
            b.stop()
    if not res.insns_per_sample:
        raise DeviceFailure(f"{image}: the image reports no instruction count (built without a counter?)")
    per_inf = ev.elapsed_ms * 1e6 / float(1 << icount_shift) / max(1, ev.samples)
    cost = DeviceCost(float(res.insns_per_sample), float(per_inf), build.board, str(image), icount_shift)
    cache.write_text(json.dumps({"key": key, "cost": cost.as_dict()}, indent=2) + "\n")
    log(f"[simulate] {cost.insns_per_sample:,.0f} instructions per training sample, "
        f"{cost.insns_per_inference:,.0f} per inference ({time.monotonic() - t0:.0f} s)")
    return cost


def resolve_timing(build: FlBuild, timing: TimingOptions, log: Any = print) -> TimingOptions:
    """``timing`` with the instructions per training sample (and per inference) filled in from
    the firmware (:func:`measure_device_cost`) when not given."""
    if timing.insns_per_sample is not None:
        return timing
    cost = measure_device_cost(build, log=log)
    return dataclasses.replace(timing, insns_per_sample=cost.insns_per_sample,
                               insns_per_inference=timing.insns_per_inference or cost.insns_per_inference)


# ---- a measured run, replayed synchronously -------------------------------------------------------
@dataclass
class MeasuredSpeeds:
    """What a run on boards says about their speed: each board's mean seconds per job (parameters
    in, training, its own evaluation, the update out) and the mean seconds of a secure flush."""

    job_seconds: list[float]
    flush_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"job_seconds": [round(s, 3) for s in self.job_seconds], "flush_seconds": round(self.flush_seconds, 3)}


def measured_speeds(records: Sequence[Any], names: Sequence[str]) -> MeasuredSpeeds:
    """Per-device mean wall seconds per successful job (``names`` in fleet order) and the mean
    aggregation seconds per completed step, from a run's RoundRecords."""
    per: dict[str, list[float]] = {n: [] for n in names}
    flush: list[float] = []
    for r in records[1:]:
        for d in r.devices:
            if d.status == "ok" and d.train is not None and d.name in per:
                per[d.name].append(float(d.seconds))
        if r.completed:
            flush.append(float(r.aggregate_seconds))
    missing = [n for n, v in per.items() if not v]
    if missing:
        raise OptionsError(f"no completed job measured for {', '.join(missing)}: cannot replay their speed")
    return MeasuredSpeeds([float(np.mean(per[n])) for n in names], float(np.mean(flush)) if flush else 0.0)


def replay_sync(build: FlBuild, speeds: MeasuredSpeeds, cfg: Any, aggregator: Any, *,
                log: Any = print) -> list[Any]:
    """Synchronous FedAvg of the same fleet -- the build's shards, model and plan, the same local
    training and aggregation -- on in-process devices, on a virtual clock where device k takes
    ``speeds.job_seconds[k]`` per job and every secure flush ``speeds.flush_seconds``: the
    synchronous curve of a fleet measured on boards.  Returns its records."""
    from .clock import MeasuredTiming, VirtualClock
    from .fl_run import run_federated
    from .strategy import StrategyOptions

    shards = list(build.shards[:len(speeds.job_seconds)])
    parts = make_participants(build, shards, prefix="sync")
    sync_cfg = dataclasses.replace(cfg, strategy=StrategyOptions("sync", server_lr=cfg.strategy.server_lr),
                                   final_broadcast=False, persist=False)
    clock = VirtualClock(MeasuredTiming(speeds.job_seconds, speeds.flush_seconds))
    res = run_federated("simulate", build, parts, sync_cfg, aggregator=aggregator, clock=clock,
                        with_centralised=False, log=log)
    return list(res.records)


__all__ = ["DeviceCost", "FleetShards", "MeasuredSpeeds", "fleet_shards", "make_participants", "measure_device_cost",
           "measured_speeds", "replay_sync", "resolve_timing"]
