"""One federated run from start to report, shared by ``tinyfed fleet``,
``tinyfed simulate`` and ``tinyfed demo``: rounds (printed as a table as
they complete), the centralised baseline, the JSON report and the PNG plot."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .checkpoint import Checkpoint, new_checkpoint, run_options
from .experiment import FlBuild, centralised
from .fedavg import Aggregator, PlainAggregator
from .plot import plot_accuracy
from .report import build_report, table_header, table_row, write_report
from .rounds import DEFAULT_ROUNDS, DEFAULT_TRAIN, FedAvgRunner, FleetConfig, Participant, RoundRecord




@dataclass
class RunResult:
    records: list[RoundRecord]
    report: dict[str, Any]
    report_path: Path | None
    plot_path: Path | None
    runner: FedAvgRunner


def run_federated(kind: str, build: FlBuild, participants: Sequence[Participant], cfg: FleetConfig, *,
                  aggregator: Aggregator | None = None, report_path: Path | None = None,
                  plot_path: Path | None = None, with_centralised: bool = True,
                  log: Callable[[str], None] = print, extra: dict[str, Any] | None = None,
                  state_path: Path | None = None, resume: bool = False) -> RunResult:
    """``state_path``: the run's checkpoint, rewritten after every round; ``resume``: continue
    the run it records (host/checkpoint.py) instead of starting at round 0."""
    t0 = time.monotonic()
    agg = aggregator or PlainAggregator()
    init = build.init_params()
    options = run_options(cfg, agg.name)
    start = None
    if resume:
        if state_path is None:
            raise ValueError("resume needs the checkpoint's path")
        ck = Checkpoint.read(state_path)
        ck.check_compatible(state_path, model_hash=build.model_hash, options=options, n_params=init.size,
                            rounds=cfg.rounds)
        load = getattr(agg, "load_state", None)
        if callable(load):
            load(ck.aggregator)
        records0 = ck.restored_records()
        start = (ck.round, ck.params, records0)
        log(f"resuming {state_path}: round {ck.round} of {cfg.rounds} was the last completed "
            f"(global accuracy {records0[-1].accuracy:.4f}); continuing with round {ck.round + 1}")
    elif state_path is not None and Path(state_path).exists():
        log(f"note: a new run replaces the checkpoint {state_path} of an earlier one (--resume continues it)")
    runner = FedAvgRunner(participants, init_params=init, model_hash=build.model_hash,
                          evaluator=build.evaluator(), config=cfg, aggregator=agg, log=log, resume=start)
    try:
        header = [False]

        def on_round(r: RoundRecord) -> None:
            if not header[0]:
                log(table_header())
                header[0] = True
            log(table_row(r))
            if state_path is not None:
                state = getattr(agg, "state_dict", None)
                new_checkpoint(kind, build.model_hash, options, r.round, runner.state.params,
                               runner.state.records, state() if callable(state) else {}).write(state_path)

        records = runner.run(on_round=on_round)
    finally:
        runner.close()
    wall = time.monotonic() - t0
    if runner.state.final_holders:
        log(f"final global model delivered to {len(runner.state.final_holders)} device(s): "
            f"{', '.join(runner.state.final_holders)}")
    base = None
    if with_centralised and build.shards:
        base = centralised(build.model_dir, build.shards, (build.test_x, build.test_y), cfg.train, cfg.rounds)
        log(f"centralised fine-tuning of the same parameters on the union of the shards "
            f"({base['epochs']} epochs, {base['samples']} samples): accuracy {base['accuracy']:.4f}")
    first, last = records[0], records[-1]
    log(f"global accuracy: round 0 {first.accuracy:.4f} -> round {last.round} {last.accuracy:.4f}"
        + (f"  (centralised {base['accuracy']:.4f}, gap {100 * (last.accuracy - base['accuracy']):+.2f} pp)"
           if base else ""))
    parts = []
    for d in runner.state.devices:
        i = d.info
        parts.append({"name": d.participant.name, "status": d.stage.value, "reason": d.reason,
                      **({"board": i.board, "model_name": i.model_name, "shard_size": i.shard_size,
                          "persist": i.persist} if i else {})})
    config = {"rounds": cfg.rounds, "train": asdict(cfg.train), "min_clients": cfg.min_clients,
              "train_timeout": cfg.train_timeout, "persist": cfg.persist, "server_lr": cfg.server_lr,
              "aggregator": runner.aggregator.name}
    report = build_report(kind, model=build.model_json(), config=config, participants=parts, records=records,
                          centralised=base, wall=wall,
                          extra={"build": str(build.out_dir), "final_model_on": runner.state.final_holders,
                                 **(extra or {})})
    rp = write_report(report_path, report) if report_path else None
    pp = None
    if plot_path:
        pp = plot_accuracy(records, plot_path, centralised=base["accuracy"] if base else None,
                           title=f"{build.model_name}: FedAvg over {len(participants)} "
                                 f"{'virtual devices' if kind == 'simulate' else 'boards'}")
    if rp:
        log(f"report: {rp}")
    if pp:
        log(f"plot: {pp}")
    return RunResult(list(records), report, rp, pp, runner)


__all__ = ["run_federated", "RunResult", "DEFAULT_ROUNDS", "DEFAULT_TRAIN"]
