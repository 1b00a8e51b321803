"""The federated verbs: ``fleet`` (boards over serial), ``simulate`` (virtual devices)
and ``demo`` (the main job on emulated boards)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence


from tinyfed_host.clock import TimingModel, VirtualClock
from tinyfed_host.direct import DirectFleet
from tinyfed_host.experiment import FlBuild
from tinyfed_host.fl_run import RunResult, run_federated
from tinyfed_host.inprocess import DeviceLibrary
from tinyfed_host.plot import plot_accuracy
from tinyfed_host.protocol import ClientOptions
from tinyfed_host.report import time_to_target, write_report
from tinyfed_host.rounds import RoundRecord, SerialParticipant
from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions
from tinyfed_host.simulate import fleet_shards, measured_speeds, replay_sync, resolve_timing
from tinyfed_host.strategy import make_strategy
from tinyfed_toolchain.image.provision import load_manifest
from tinyfed_toolchain.build import BuildOptions, run_build
from tinyfed_toolchain.facts.errors import OptionsError

from .boards import emulate
from .options import DemoOptions, EmulateOptions, FleetOptions, SimulateOptions


def _aggregator(secure: SecureOptions | None, n_participants: int,
                log: Callable[[str], None], manifest: Any = None) -> SecureAggregator | None:
    """``manifest``: the fleet manifest the boards pin (None: carried by in-process participants)."""
    if secure is None:
        return None
    return SecureAggregator(dataclasses.replace(secure, fleet_size=n_participants), log=log, manifest=manifest)


def _path(p: Path | None) -> Path | None:
    return Path(p) if p is not None else None


def fleet(options: FleetOptions | None = None, /, *, log: Callable[[str], None] = print,
          **fields: Any) -> RunResult:
    """Federated rounds over serial with boards running a build's images; secure
    aggregation (SecAgg+) unless ``secure=None``::

        result = tinyfed.fleet(ports=["socket://127.0.0.1:5000", ...], build=Path("build/model"))
        print(result.records[-1].accuracy)
    """
    opts = options if options is not None else FleetOptions(**fields)
    opts.check()
    build = FlBuild.load(Path(opts.build))
    parts = [SerialParticipant(u, ClientOptions(timeout=opts.timeout, retries=6)) for u in opts.ports]
    manifest = load_manifest(Path(opts.manifest)) if opts.manifest else build.manifest
    return run_federated("fleet", build, parts, opts.config,
                         aggregator=_aggregator(opts.secure, len(parts), log, manifest),
                         report_path=_path(opts.report), plot_path=_path(opts.plot),
                         with_centralised=opts.centralised, log=log,
                         state_path=opts.state_path(Path(opts.build), "fleet"), resume=opts.resume)


def simulate(options: SimulateOptions | None = None, /, *, log: Callable[[str], None] = print,
             **fields: Any) -> RunResult:
    """The same rounds with N in-process devices (the boards' C code: protocol, round state
    machine, trainer, SecAgg+ client) on a virtual clock: a device's time is its measured
    instructions per training sample at ``timing.device_mhz`` (stragglers slower) plus its
    link bytes at ``timing.baud``.  Each device masks its own update (unless ``secure=None``)::

        result = tinyfed.simulate(devices=100, build=Path("build/model"),
                                  config=FleetConfig(strategy=StrategyOptions("fedbuff", buffer=10)),
                                  timing=TimingOptions(stragglers=0.9, straggler_slowdown=10))
    """
    opts = options if options is not None else SimulateOptions(**fields)
    opts.check()
    build = FlBuild.load(Path(opts.build))
    fs = fleet_shards(build, opts.devices, scheme=opts.partition, alpha=opts.alpha, seed=opts.seed,
                      min_samples=opts.samples_per_device)
    build.shards = fs.shards
    shard_info = {"shards": [int(len(s[1])) for s in fs.shards], "shards_from": fs.how, "shard_pool": fs.pool}
    if opts.engine == "flower":
        return _simulate_on_flower(opts, build, fs.shards, shard_info, log)
    timing = resolve_timing(build, dataclasses.replace(opts.timing, seed=opts.seed), log=log)
    aggregator = _aggregator(opts.secure, len(fs.shards), log)
    # the devices' own C code, driven without the wire (host/direct.py): thousands of devices per round
    fleet = DirectFleet(DeviceLibrary.build(build.model_dir, build.train_dir), fs.shards, model_name=build.model_name)
    fleet.progress.enabled = opts.progress
    log = fleet.progress.wrap(log)
    parts = fleet.participants
    clock = VirtualClock(TimingModel(timing, len(parts)), workers=fleet.batch.threads)  # training on every core
    res = run_federated("simulate", build, parts, opts.config, aggregator=aggregator, clock=clock,
                        report_path=_path(opts.report), plot_path=_path(opts.plot),
                        with_centralised=opts.centralised, log=log,
                        extra={**shard_info, "straggler_devices": clock.timing.stragglers,
                               "device_memory": fleet.memory().as_dict()},
                        state_path=opts.state_path(Path(opts.build), "simulate"), resume=opts.resume)
    if opts.config.target_accuracy is not None:
        t = res.report["time_to_target_s"]
        log(f"time to {100 * opts.config.target_accuracy:.1f} % accuracy: "
            + (f"{t:,.1f} virtual seconds" if t is not None else "not reached"))
    return res


def _simulate_on_flower(opts: SimulateOptions, build: FlBuild, shards: Sequence[Any], shard_info: dict[str, Any],
                        log: Callable[[str], None]) -> RunResult:
    """``engine="flower"``: the same devices as simulated Flower nodes (Flower's simulation engine,
    wall-clock time: the virtual clock's device model does not apply)."""
    from tinyfed_host.flower.options import ServerAppRun
    from tinyfed_host.flower.simulation import simulate_flower

    run = ServerAppRun(build=Path(opts.build), config=opts.config, secure=opts.secure, report=_path(opts.report),
                       plot=_path(opts.plot), state=opts.state_path(Path(opts.build), "simulate"),
                       resume=opts.resume, centralised=opts.centralised)
    return simulate_flower(build, shards, run, log=log, extra=shard_info)


def _secure_only(out: Path) -> bool:
    """Whether the build's images have no plain update path (build_report.json options)."""
    try:
        return bool(json.loads((out / "build_report.json").read_text())["options"].get("secure_only"))
    except (OSError, ValueError, KeyError):
        return False


def demo(options: DemoOptions | None = None, /, *, log: Callable[[str], None] = print,
         **fields: Any) -> RunResult:
    """The main job, end to end on emulated boards.

    build (teacher -> distilled int8 student -> emitted C verified against
    tflite-micro -> on-device training plan) -> N device images with non-IID
    private shards -> boot N QEMU boards of unequal speed (``slowdowns``: held
    to real time at 10^9 / 2^icount instructions per second / slowdown -- 62.5 M
    for a 1x board at the default icount 4; persistent storage on) -> federated
    rounds, semi-asynchronous FTTE by default (``config.strategy``) -> a table
    per aggregation step, the centralised baseline, a JSON report and a PNG plot
    of accuracy against wall time beside synchronous FedAvg of the same fleet
    (``sync_reference``: the same shards, model, local training and
    aggregation on in-process devices, on a virtual clock replaying each
    board's measured seconds per job and per secure flush).  Aggregation is
    secure by default, and the images are then built secure-only (their plain
    update path answers POLICY); ``secure=None`` builds ordinary images and
    aggregates plain deltas for comparison.
    """
    opts = options if options is not None else DemoOptions(**fields)
    opts.check()
    t0 = time.monotonic()
    out = opts.build_dir
    cfg = opts.config
    slowdowns = opts.board_slowdowns() if opts.icount is not None else None
    log(f"== tinyfed demo: {opts.dataset} on {opts.boards} emulated {opts.board} boards"
        + (f" (slowdowns {', '.join(f'{s}x' for s in slowdowns)})" if slowdowns and any(s != 1 for s in slowdowns)
           else "") + f", {cfg.strategy.name}, {cfg.updates} aggregation steps ==")
    if not (opts.skip_build or opts.resume):  # a resumed demo keeps the interrupted run's build
        run_build(BuildOptions(dataset=opts.dataset, out_dir=out, board=opts.board, devices=opts.boards,
                               partition="dirichlet", quick=opts.quick, train_scheme=opts.train_scheme,
                               head_init=opts.head_init, public_fraction=opts.public_fraction,
                               # a secure demo flashes secure-only images: no plain update path at all
                               secure_only=opts.secure is not None), log=log)
    build = FlBuild.load(out)
    if len(build.images) < opts.boards:
        raise OptionsError(f"{out}: {len(build.images)} device images for {opts.boards} boards")
    log(f"\nmodel {build.model_name} ({build.model_hash.hex()}): {build.train_info.get('scheme')} trains "
        f"{build.train_info.get('n_params')} parameters on each board; shards "
        f"{', '.join(str(len(s[1])) for s in build.shards)} samples; held-out split {len(build.test_y)} samples")
    log("aggregation: " + ("plain FedAvg weighted by sample count (--no-secure: the host sees each delta)"
                           if opts.secure is None else
                           f"SecAgg+ secure aggregation (clip {opts.secure.clip:g}), FedAvg weighted by sample count"
                           + ("; secure-only images (no plain update path)" if _secure_only(out) else "")) + "\n")
    log(f"strategy: {make_strategy(cfg.strategy).describe()}")
    report_path = Path(opts.report or out / "demo_report.json")
    plot_path = Path(opts.plot or out / "demo_accuracy.png")
    with emulate(EmulateOptions(boards=opts.boards, board=opts.board, image=None, build=out,
                                storage=out / "storage", icount=opts.icount, log_dir=out / "qemu",
                                slowdowns=slowdowns)) as urls:
        parts = [SerialParticipant(u, ClientOptions(timeout=3.0, retries=6), name=f"board{k}")
                 for k, u in enumerate(urls)]
        res = run_federated("demo", build, parts, cfg,
                            aggregator=_aggregator(opts.secure, len(parts), log, build.manifest),
                            report_path=report_path, plot_path=None,
                            with_centralised=opts.centralised, log=log,
                            extra={"dataset": opts.dataset, "board": opts.board, "icount_shift": opts.icount,
                                   "slowdowns": slowdowns},
                            state_path=opts.state_path(out, "demo"), resume=opts.resume)
    for line in secure_summary(res.records):
        log(line)
    reference = None
    if opts.sync_reference and cfg.strategy.name != "sync" and len(res.records) > 1:
        reference = _sync_reference(build, res, opts, [p.name for p in parts], log)
    base = res.report.get("centralised")
    res.plot_path = plot_accuracy(
        res.records, plot_path, centralised=base["accuracy"] if base else None,
        title=f"{build.model_name} on {opts.boards} unequal boards: {cfg.strategy.name} vs sync",
        label=f"{cfg.strategy.name}{' + SecAgg+' if opts.secure is not None else ''} on the boards (wall time)",
        reference=reference, reference_label="sync FedAvg, same fleet (simulated, board times measured)",
        target=res.report.get("demo_target_accuracy"), time_base="wall" if reference is None else "")
    log(f"plot: {res.plot_path}")
    dev = [d for d in res.records[-1].devices if d.train is not None]
    if dev:
        t = dev[0].train
        assert t is not None
        extra = f", {t.insns_per_sample:,} instructions per sample" if t.insns_per_sample else ""
        log(f"on-device training ({dev[0].name}, last step): {t.elapsed_ms} ms for {t.seen} samples, "
            f"training memory {t.train_mem_bytes:,} B, SRAM peak {t.sram_peak:,} B{extra}")
    log(f"\ndone in {time.monotonic() - t0:.0f} s")
    return res


def _sync_reference(build: FlBuild, res: RunResult, opts: DemoOptions, names: list[str],
                    log: Callable[[str], None]) -> list[RoundRecord] | None:
    """Synchronous FedAvg of the demo's fleet on a virtual clock replaying the boards' measured
    speeds; adds it to the report (``sync_reference``) and compares the times to a target."""
    try:
        speeds = measured_speeds(res.records, names)
    except OptionsError as e:
        log(f"no synchronous reference: {e}")
        return None
    log("\nsynchronous FedAvg of the same fleet, simulated (in-process devices, each board's measured "
        f"seconds per job {', '.join(f'{s:.1f}' for s in speeds.job_seconds)}, per secure flush "
        f"{speeds.flush_seconds:.1f}) ...")
    ref = replay_sync(build, speeds, opts.config, _aggregator(opts.secure, len(names), lambda s: None),
                      log=lambda s: None)
    mine, theirs = res.records, ref
    target = opts.config.target_accuracy
    if target is None:  # 1 point below the lower of the two best accuracies: both reach it
        target = round(min(max(r.accuracy for r in mine), max(r.accuracy for r in theirs)) - 0.01, 4)
    t_mine, t_sync = time_to_target(mine, target), time_to_target(theirs, target)
    res.report["demo_target_accuracy"] = target
    res.report["sync_reference"] = {
        "how": "sync FedAvg, same shards / model / local training / aggregation, in-process devices, virtual "
               "clock replaying the boards' measured seconds per job and per secure flush",
        "measured": speeds.as_dict(), "time_to_target_s": t_sync, "final_accuracy": theirs[-1].accuracy,
        "rounds": [{"round": r.round, "time_s": r.time_s, "accuracy": r.accuracy} for r in theirs]}
    res.report["time_to_demo_target_s"] = t_mine
    if res.report_path is not None:
        write_report(res.report_path, res.report)
    log(f"{opts.config.strategy.name} on the boards: {100 * mine[-1].accuracy:.1f} % after {mine[-1].time_s:.0f} s; "
        f"sync FedAvg (same fleet): {100 * theirs[-1].accuracy:.1f} % after {theirs[-1].time_s:.0f} s")
    if t_mine is not None and t_sync is not None:
        log(f"time to {100 * target:.1f} %: {t_mine:.0f} s semi-async on the boards vs {t_sync:.0f} s sync "
            f"({100 * (1 - t_mine / t_sync):.0f} % sooner)" if t_sync > 0 else "")
    return ref


def secure_summary(records: Sequence[RoundRecord]) -> list[str]:
    """One line for the secure rounds; a line per round only where something happened."""
    rounds = [(r.round, r.secure) for r in records[1:] if r.secure]
    lines: list[str] = []
    quiet: list[tuple[int, dict[str, Any]]] = []
    for n, sec in rounds:
        d = {k: len(v) for k, v in sec["dropouts"].items()}
        eps = f", epsilon {sec['epsilon']:.3f}" if "epsilon" in sec else ""
        if sec["aborted"] or any(d.values()):
            b = sec["bytes_per_device"]["MASKED_INPUT"]["from_device"]
            lines.append(f"round {n}: secure aggregation {'aborted' if sec['aborted'] else 'ok'}, "
                         f"dropouts per stage {d}, masked input {b:.0f} B/device{eps}")
        else:
            quiet.append((n, sec))
    if quiet:
        n, sec = quiet[-1]
        b = sec["bytes_per_device"]["MASKED_INPUT"]["from_device"]
        ovh = sec["masking_overhead"]
        eps = f"; epsilon after round {n}: {sec['epsilon']:.3f}" if "epsilon" in sec else ""
        lines.append(f"secure aggregation (SecAgg+): {len(quiet)} of {len(rounds)} rounds without dropouts; "
                     f"masked input {b:.0f} B/device" + (f" ({ovh:.4f} x the plain update)" if ovh else "") + eps)
    return lines


def completed(result: RunResult) -> bool:
    """Whether the run changed the model: a round completed (or none was asked for)."""
    return any(r.completed for r in result.records[1:]) or len(result.records) <= 1


__all__ = ["fleet", "simulate", "demo", "secure_summary", "completed"]
