"""One federated run from start to report, shared by ``tinyfed fleet``,
``tinyfed simulate`` and ``tinyfed demo``: aggregation steps (printed as a
table as they complete), the centralised baseline, the JSON report and the
PNG plot, and a checkpoint after every step (``--resume``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tinyfed_toolchain.facts.errors import OptionsError

from .aggregation import as_aggregation
from .checkpoint import Checkpoint, new_checkpoint, run_options
from .clock import VirtualClock, WallClock
from .experiment import FlBuild, centralised
from .plot import plot_accuracy
from .report import build_report, table_header, table_row, write_report
from .rounds import (DEFAULT_ROUNDS, DEFAULT_TRAIN, FederatedRunner, FleetConfig, Participant, ResumePoint,
                     RoundRecord)


@dataclass
class RunResult:
    records: list[RoundRecord]
    report: dict[str, Any]
    report_path: Path | None
    plot_path: Path | None
    runner: FederatedRunner


def _dp_summary(inner: Any) -> dict[str, Any] | None:
    """The report's ``dp``: {mechanism, noise_multiplier, delta, epsilon, rounds} or None (no DP noise)."""
    summary = getattr(inner, "dp_summary", None)
    return summary() if callable(summary) else None


def run_federated(kind: str, build: FlBuild, participants: Sequence[Participant], cfg: FleetConfig, *,
                  aggregator: Any = None, clock: WallClock | VirtualClock | None = None, report_path: Path | None = None,
                  plot_path: Path | None = None, with_centralised: bool = True,
                  log: Callable[[str], None] = print, extra: dict[str, Any] | None = None,
                  state_path: Path | None = None, resume: bool = False,
                  sync_reference: Sequence[RoundRecord] | None = None, engine: str = "builtin") -> RunResult:
    """``aggregator``: None (plain) or a SecAgg+ aggregator; the strategy is ``cfg.strategy``;
    ``clock``: the wall clock unless given (simulation passes a VirtualClock);
    ``state_path``: the run's checkpoint, rewritten after every step; ``resume``: continue the run
    it records (host/checkpoint.py) instead of starting at step 0; ``sync_reference``: a synchronous
    run's records drawn beside this one in the plot; ``engine``: what ran the rounds, reported
    with the number of devices (``builtin``: this process; ``flower``: a Flower ServerApp)."""
    t0 = time.monotonic()
    agg = as_aggregation(aggregator, log)
    inner = getattr(agg, "inner", None)
    if inner is not None and getattr(inner, "manifest", False) is None:
        inner.manifest = build.manifest  # the fleet manifest the build's images pin (None: participants carry it)
    strat = cfg.strategy
    init = build.init_params()
    options = run_options(cfg, agg.name)
    start = None
    if resume:
        if state_path is None:
            raise OptionsError("resume needs the checkpoint's path")
        ck = Checkpoint.read(state_path)
        ck.check_compatible(state_path, model_hash=build.model_hash, options=options, n_params=init.size,
                            rounds=cfg.updates)
        agg.load_state(ck.aggregator)
        records0 = ck.restored_records()
        start = ResumePoint(ck.round, ck.version, ck.params, records0, ck.time_s, ck.strategy)
        log(f"resuming {state_path}: step {ck.round} of {cfg.updates} was the last completed (model version "
            f"{ck.version}, global accuracy {records0[-1].accuracy:.4f}); continuing with step {ck.round + 1}")
    elif state_path is not None and Path(state_path).exists():
        log(f"note: a new run replaces the checkpoint {state_path} of an earlier one (--resume continues it)")
    runner = FederatedRunner(participants, init_params=init, model_hash=build.model_hash,
                             evaluator=build.evaluator(), config=cfg, aggregation=agg,
                             clock=clock, log=log, resume=start)
    try:
        header = [False]

        def on_round(r: RoundRecord) -> None:
            if not header[0]:
                log(table_header())
                header[0] = True
            log(table_row(r))
            if state_path is not None:
                st = runner.state
                new_checkpoint(kind, build.model_hash, options, r.round, st.version, st.params, st.records,
                               agg.state_dict(), runner.strategy.state_dict(), r.time_s).write(state_path)

        records = runner.run(on_round=on_round)
    finally:
        runner.close()
    wall = time.monotonic() - t0
    if runner.state.final_holders:
        log(f"final global model delivered to {len(runner.state.final_holders)} device(s): "
            f"{', '.join(runner.state.final_holders[:8])}{' ...' if len(runner.state.final_holders) > 8 else ''}")
    base = None
    if with_centralised and build.shards:
        base = centralised(build.model_dir, build.shards, (build.test_x, build.test_y), cfg.train, cfg.updates,
                           build.train_dir)
        log(f"centralised fine-tuning of the same parameters on the union of the shards "
            f"({base['epochs']} epochs, {base['samples']} samples): accuracy {base['accuracy']:.4f}")
    first, last = records[0], records[-1]
    log(f"global accuracy: step 0 {first.accuracy:.4f} -> step {last.round} {last.accuracy:.4f}"
        + (f"  (centralised {base['accuracy']:.4f}, gap {100 * (last.accuracy - base['accuracy']):+.2f} pp)"
           if base else ""))
    parts = []
    for d in runner.state.devices:
        i = d.info
        parts.append({"name": d.participant.name, "status": d.stage.value, "reason": d.reason,
                      **({"board": i.board, "model_name": i.model_name, "shard_size": i.shard_size,
                          "persist": i.persist} if i else {})})
    config = {"updates": cfg.updates, "train": asdict(cfg.train), "min_clients": cfg.min_clients,
              "train_timeout": cfg.train_timeout, "persist": cfg.persist, "aggregator": agg.name,
              "strategy": asdict(strat), "target_accuracy": cfg.target_accuracy,
              "max_cohorts": runner.max_cohorts}
    timing = clock.timing.as_dict() if isinstance(clock, VirtualClock) else None
    report = build_report(kind, model=build.model_json(), config=config, participants=parts, records=records,
                          centralised=base, wall=wall, strategy=strat.name, secure=agg.secure,
                          target_accuracy=cfg.target_accuracy, virtual_time=isinstance(clock, VirtualClock),
                          train_mem_bytes=build.train_mem_bytes(),
                          extra={"engine": engine, "devices": len(participants), "build": str(build.out_dir), "final_model_on": runner.state.final_holders,
                                 "dp": _dp_summary(inner),
                                 **({"timing": timing} if timing else {}), **(extra or {})})
    rp = write_report(report_path, report) if report_path else None
    pp = None
    if plot_path:
        what = "virtual devices" if kind == "simulate" else "boards"
        pp = plot_accuracy(records, plot_path, centralised=base["accuracy"] if base else None,
                           title=f"{build.model_name}: {strat.name} over {len(participants)} {what}",
                           label=f"{strat.name}{' + SecAgg+' if agg.secure else ''}",
                           reference=sync_reference, target=cfg.target_accuracy)
    if rp:
        log(f"report: {rp}")
    if pp:
        log(f"plot: {pp}")
    return RunResult(list(records), report, rp, pp, runner)


__all__ = ["run_federated", "RunResult", "DEFAULT_ROUNDS", "DEFAULT_TRAIN"]
