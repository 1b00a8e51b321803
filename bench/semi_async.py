"""Stragglers: synchronous FedAvg (dense) vs FedBuff (dense) vs FTTE (dense and sparse w*), on a virtual clock.

    .venv/bin/python bench/semi_async.py [--datasets digits basicmotions] [--devices 100 500]
        [--stragglers 0.9] [--slowdown 10] [--rounds 20] [--buffer 10] [--epochs 5] [--server-lr 1]
        [--sparse-fraction 0.2 basicmotions=0.5] [--public-fraction 0.05] [--target A] [--secure]
        [--max-cohorts 1 8] [--max-staleness S] [--runs fedbuff:dense ftte:dense ftte:sparse]
        [--out build/bench-async] [--json FILE] [--plot-dir DIR]

Per dataset, two `tinyfed build`s with the same seed (the ML pipeline is
deterministic: the same model, the same public / private split, the same
held-out split -- checked by model hash), pretrained on a small public share
(--public-fraction 0.05: the pretrained model leaves the fleet something to
learn): *dense* trains the last two layers (`--train-scheme auto`, what sync
FedAvg and FedBuff run), *sparse* trains FTTE's w*: `--train-scheme
sparse:B`, one subset for the whole fleet picked by contribution analysis on
the toolchain's public share within a device training-memory budget B =
--sparse-fraction x the dense plan's (when no w* fits B, the smallest budget
that fits one).  Each build's instructions per training sample are measured
once on its firmware image (QEMU -icount, `simulate.measure_device_cost`).

Per fleet size N: the devices' private data re-split into N Dirichlet(0.5)
shards of >= 16 samples (`simulate.fleet_shards`: when the private pool is too
small for N disjoint shards, devices draw theirs from it with replacement, each
with its own class mix -- the table says which); N in-process devices (the
firmware's C: round state machine, trainer, SecAgg+ client, driven without the
wire by `host/direct.py` as `tinyfed simulate` does) on the virtual clock:
64 MHz, 115,200 baud, a fraction --stragglers of them --slowdown x slower
(compute; +-10 % jitter on everyone).  Plain aggregation unless --secure
(SecAgg+ per round / per cohort, in process; a semi-async secure run keeps up
to --max-cohorts cohorts in SecAgg+ at once, each value a run: 1 = one at a
time; a cohort costs its members their modelled SecAgg+ time, host/clock.py).
Every strategy runs the same local training (--epochs, lr 0.02, momentum
0.9, batch 8, cosine).

* sync: --rounds lock-step FedAvg rounds (each waits for its slowest device);
  its end time T is the budget of the others, and the target accuracy is
  its final accuracy - 1 pp (or --target);
* fedbuff: buffer K = --buffer, s(tau) = 1/sqrt(1+tau), dense update;
* ftte (dense / sparse): buffer K, staleness factor of age and update
  variance (host/strategy.py), the dense update (the staleness function
  alone) and the sparse w* (FTTE as a whole);
  the semi-async runs step until their virtual clock passes T.

Printed per (dataset, N): time to target (virtual seconds), how much sooner
than sync, payload per update (bytes a device sends: its update vector),
device training memory, final accuracy (at T), steps, stale updates, and
the wall time of the simulation.  The goal of issue 9, for FTTE vs sync:
>= 81 % sooner, >= 69 % less payload, >= 80 % less device training memory,
final accuracy within 1 pp.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinyfed_host.aggregation import as_aggregation
from tinyfed_host.clock import TimingModel, TimingOptions, VirtualClock
from tinyfed_host.experiment import BuildMissing, FlBuild
from tinyfed_host.report import payload_per_update, time_to_target
from tinyfed_host.rounds import DEFAULT_TRAIN, FederatedRunner, FleetConfig, RoundRecord
from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions
from tinyfed_host.direct import DirectFleet
from tinyfed_host.inprocess import DeviceLibrary
from tinyfed_host.simulate import fleet_shards, measure_device_cost
from tinyfed_host.strategy import StrategyOptions
from tinyfed_toolchain.build import BuildOptions, run_build
from tinyfed_toolchain.training.layers import TrainPlanError

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_PER_DEVICE = 16


def _build(dataset: str, out: Path, scheme: str, seed: int, public_fraction: float, log: Any) -> FlBuild:
    want = {"train_scheme": scheme, "public_fraction": public_fraction, "seed": seed}
    rep = out / "build_report.json"
    if rep.is_file() and all(json.loads(rep.read_text())["options"].get(k) == v for k, v in want.items()):
        try:
            return FlBuild.load(out)
        except BuildMissing:
            pass
    log(f"[bench] building {dataset} with --train-scheme {scheme} --public-fraction {public_fraction:g} in {out} ...")
    run_build(BuildOptions(dataset=dataset, out_dir=out, devices=4, partition="dirichlet", seed=seed,
                           train_scheme=scheme, public_fraction=public_fraction), log=lambda s: None)
    return FlBuild.load(out)


def builds(dataset: str, root: Path, fraction: float, seed: int, public_fraction: float,
           log: Any) -> tuple[FlBuild, FlBuild]:
    """The dense and the sparse build of ``dataset``; the sparse budget is ``fraction`` x the dense
    plan's training memory, or, when no w* fits that, the smallest budget that fits one."""
    dense = _build(dataset, root / f"{dataset}-dense", "auto", seed, public_fraction, log)
    mem = dense.train_mem_bytes()
    assert mem is not None
    budget = int(fraction * mem)
    memo = root / f"{dataset}-sparse-budget.json"  # the fallback budget of an earlier run
    key = {"fraction": fraction, "dense_mem": mem, "public_fraction": public_fraction, "seed": seed}
    if memo.is_file() and json.loads(memo.read_text()).get("key") == key:
        budget = int(json.loads(memo.read_text())["budget"])
    try:
        sparse = _build(dataset, root / f"{dataset}-sparse", f"sparse:{budget}", seed, public_fraction, log)
    except TrainPlanError as e:
        m = re.search(r"needs ([0-9,]+) B", str(e))
        if not m:
            raise
        budget = int(m.group(1).replace(",", ""))
        log(f"[bench] {dataset}: no w* fits {fraction:.0%} of the dense plan's {mem:,} B; "
            f"the smallest budget that fits one is {budget:,} B ({budget / mem:.0%})")
        memo.write_text(json.dumps({"key": key, "budget": budget}) + "\n")
        sparse = _build(dataset, root / f"{dataset}-sparse", f"sparse:{budget}", seed, public_fraction, log)
    if sparse.model_hash != dense.model_hash:
        log(f"[bench] note: {dataset}: the two pipeline runs gave different models "
            f"({dense.model_hash.hex()[:8]} vs {sparse.model_hash.hex()[:8]}): same architecture and data split")
    return dense, sparse


@dataclasses.dataclass
class Run:
    strategy: str
    scheme: str
    records: list[RoundRecord]
    n_params: int
    train_mem: int | None
    insns_per_sample: float
    wall: float
    stale: int
    server_lr: float
    max_cohorts: int = 1

    def summary(self, target: float) -> dict[str, Any]:
        return {"strategy": self.strategy, "scheme": self.scheme, "server_lr": self.server_lr,
                "max_cohorts": self.max_cohorts, "n_params": self.n_params,
                "time_to_target_s": time_to_target(self.records, target),
                "payload_bytes_per_update": payload_per_update(self.records),
                "device_train_mem_bytes": self.train_mem, "insns_per_sample": self.insns_per_sample,
                "final_accuracy": self.records[-1].accuracy, "best_accuracy": max(r.accuracy for r in self.records),
                "start_accuracy": self.records[0].accuracy, "final_time_s": self.records[-1].time_s,
                "steps": len(self.records) - 1, "updates": sum(r.updates for r in self.records),
                "stale_dropped": self.stale, "wall_seconds": round(self.wall, 1),
                "max_in_flight": max([int((r.cohort or {}).get("in_flight") or 0) for r in self.records] + [0]),
                "curve": [(round(r.time_s, 2), round(r.accuracy, 4)) for r in self.records]}


def simulate(build: FlBuild, n: int, strategy: StrategyOptions, *, rounds: int, until: float | None,
             max_steps: int, args: argparse.Namespace, log: Any, max_cohorts: int = 1) -> Run:
    """One fleet of ``n`` in-process devices: ``rounds`` steps, or steps until the clock passes ``until``."""
    fs = fleet_shards(build, n, scheme="dirichlet", alpha=0.5, seed=args.seed, min_samples=SAMPLES_PER_DEVICE)
    cost = measure_device_cost(build, log=log)
    timing = TimingOptions(insns_per_sample=cost.insns_per_sample, insns_per_inference=cost.insns_per_inference,
                           stragglers=args.stragglers, straggler_slowdown=args.slowdown, seed=args.seed)
    # the devices' own C code driven without the wire (host/direct.py, what `tinyfed simulate` runs)
    fleet = DirectFleet(DeviceLibrary.build(build.model_dir, build.train_dir), fs.shards, model_name=build.model_name)
    parts = fleet.participants
    agg = SecureAggregator(SecureOptions(clip=10.0, fleet_size=n), log=lambda s: None) if args.secure else None
    train = dataclasses.replace(DEFAULT_TRAIN, epochs=args.epochs, seed=args.seed)
    cfg = FleetConfig(updates=max_steps if until is not None else rounds, strategy=strategy, train=train,
                      final_broadcast=False, persist=False, max_cohorts=max_cohorts)
    runner = FederatedRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                             evaluator=build.evaluator(), config=cfg, aggregation=as_aggregation(agg, log),
                             clock=VirtualClock(TimingModel(timing, n), workers=fleet.batch.threads),
                             log=lambda s: None)
    t0 = time.monotonic()
    try:
        runner.setup()
        while runner.state.round < cfg.updates:
            rec = runner.step()
            if until is not None and rec.time_s >= until:
                break
    finally:
        runner.close()
    recs = list(runner.state.records)
    log(f"[bench] {n} devices, {strategy.name} ({build.train_info.get('scheme')}, eta {strategy.server_lr:g}"
        f"{f', {runner.max_cohorts} cohort(s) in flight' if runner.secure and not runner.strategy.synchronous else ''}): "
        f"{len(recs) - 1} steps to {recs[-1].time_s:,.0f} virtual s, accuracy {100 * recs[-1].accuracy:.1f} % "
        f"({time.monotonic() - t0:.0f} s wall)")
    return Run(strategy.name, str(build.train_info.get("scheme")), recs, int(build.train_info.get("n_params") or 0),
               build.train_mem_bytes(), cost.insns_per_sample, time.monotonic() - t0,
               runner.state.stale_dropped_total, strategy.server_lr, runner.max_cohorts)


def plot(path: Path, title: str, runs: list[Run], target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for r in runs:
            ax.plot([x.time_s / 60 for x in r.records], [100 * x.accuracy for x in r.records],
                    label=f"{r.strategy} ({r.scheme}, {r.n_params} params, eta {r.server_lr:g}"
                          f"{f', {r.max_cohorts} in flight' if r.strategy != 'sync' and r.max_cohorts > 1 else ''})")
        ax.axhline(100 * target, linestyle=":", color="green", label=f"target {100 * target:.1f}%")
        ax.set_xlabel("virtual time (min)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)


def _fraction(specs: list[str], dataset: str) -> float:
    """--sparse-fraction F [DATASET=F ...]: the last matching entry."""
    out = 0.2
    for spec in specs:
        name, _, value = spec.rpartition("=")
        if name in ("", dataset):
            out = float(value)
    return out


def _fmt_t(t: float | None) -> str:
    return "never" if t is None else f"{t:,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "basicmotions"])
    ap.add_argument("--devices", nargs="+", type=int, default=[100, 500])
    ap.add_argument("--stragglers", type=float, default=0.9)
    ap.add_argument("--slowdown", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=20, help="sync FedAvg rounds (sets the time budget)")
    ap.add_argument("--buffer", type=int, default=10, help="K of FedBuff and FTTE")
    ap.add_argument("--epochs", type=int, default=DEFAULT_TRAIN.epochs, help="local epochs per job (every strategy)")
    ap.add_argument("--server-lr", type=float, nargs="+", default=[1.0, 0.3],
                    help="server steps eta tried for FedBuff and FTTE, each a run (sync: 1, FedAvg)")
    ap.add_argument("--sparse-fraction", nargs="+", default=["0.2", "basicmotions=0.5"], metavar="[DATASET=]F",
                    help="FTTE's w*: device training-memory budget as a fraction of the dense plan's, for every "
                         "dataset or one (default 0.2, basicmotions 0.5: its cheapest w* at 0.2 is 4 biases)")
    ap.add_argument("--public-fraction", type=float, default=0.05,
                    help="share of the training split the toolchain pretrains on (build --public-fraction; "
                         "small: the pretrained model leaves the fleet something to learn)")
    ap.add_argument("--target", type=float, help="target accuracy (default: sync's final accuracy - 1 pp)")
    ap.add_argument("--secure", action="store_true", help="SecAgg+ per round / per cohort (default: plain)")
    ap.add_argument("--max-cohorts", type=int, nargs="+", default=[8],
                    help="--secure: SecAgg+ cohorts in flight at once in a semi-async run, each value a run "
                         "(1: one at a time; default 8)")
    ap.add_argument("--max-staleness", type=int, help="S of FedBuff and FTTE (default: keep every update)")
    ap.add_argument("--runs", nargs="+", default=["fedbuff:dense", "ftte:dense", "ftte:sparse"],
                    metavar="STRATEGY:UPDATE", help="semi-async runs beside sync (update: dense or sparse)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench-async")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot-dir", type=Path)
    args = ap.parse_args()
    for spec in args.runs:
        name, _, update = spec.partition(":")
        if name not in ("fedbuff", "ftte") or update not in ("dense", "sparse"):
            ap.error(f"--runs {spec}: STRATEGY:UPDATE with STRATEGY fedbuff or ftte, UPDATE dense or sparse")
    if any(m < 1 for m in args.max_cohorts):
        ap.error("--max-cohorts: at least 1")
    log = print
    results: list[dict[str, Any]] = []
    for ds in args.datasets:
        dense, sparse = builds(ds, args.out, _fraction(args.sparse_fraction, ds), args.seed, args.public_fraction,
                               log)
        for n in args.devices:
            log(f"\n== {ds}, {n} devices, {100 * args.stragglers:.0f} % stragglers at {args.slowdown:g}x, "
                f"{'SecAgg+' if args.secure else 'plain'} ==")
            sync = simulate(dense, n, StrategyOptions("sync"), rounds=args.rounds, until=None, max_steps=args.rounds,
                            args=args, log=log)
            horizon = sync.records[-1].time_s
            target = args.target if args.target is not None else round(sync.records[-1].accuracy - 0.01, 4)
            cap = 4 * args.rounds * n // args.buffer
            semi: list[Run] = []
            for eta in args.server_lr:
                for spec in args.runs:
                    name, _, update = spec.partition(":")
                    for mc in (args.max_cohorts if args.secure else [1]):
                        semi.append(simulate(sparse if update == "sparse" else dense, n,
                                             StrategyOptions(name, buffer=args.buffer, server_lr=eta,
                                                             max_staleness=args.max_staleness),
                                             rounds=0, until=horizon, max_steps=cap, args=args, log=log,
                                             max_cohorts=mc))
            fs = fleet_shards(dense, n, scheme="dirichlet", alpha=0.5, seed=args.seed, min_samples=SAMPLES_PER_DEVICE)
            rows = [r.summary(target) for r in (sync, *semi)]
            base = rows[0]
            log(f"shards: {fs.how} from a pool of {fs.pool} private samples; target accuracy {100 * target:.1f} %; "
                f"time budget {horizon:,.0f} virtual s")
            log(f"{'strategy':<9} {'update':<8} {'eta':>4} {'coh':>3} {'params':>6} {'to target s':>11} {'sooner':>7} {'B/update':>9} "
                f"{'less':>5} {'train mem':>9} {'less':>5} {'final acc':>9} {'steps':>5} {'stale':>5} {'wall s':>6}")
            for r in rows:
                t, t0 = r["time_to_target_s"], base["time_to_target_s"]
                sooner = f"{100 * (1 - t / t0):.0f} %" if t is not None and t0 else "-"
                pay = r["payload_bytes_per_update"] or 0
                less_pay = f"{100 * (1 - pay / base['payload_bytes_per_update']):.0f} %" if base["payload_bytes_per_update"] else "-"
                mem = r["device_train_mem_bytes"] or 0
                less_mem = f"{100 * (1 - mem / base['device_train_mem_bytes']):.0f} %" if base["device_train_mem_bytes"] else "-"
                log(f"{r['strategy']:<9} {r['scheme']:<8} {r['server_lr']:>4g} {r['max_cohorts']:>3} {r['n_params']:>6} {_fmt_t(t):>11} {sooner:>7} {pay:>9,.0f} "
                    f"{less_pay:>5} {mem:>9,} {less_mem:>5} {100 * r['final_accuracy']:>8.1f}% {r['steps']:>5} "
                    f"{r['stale_dropped']:>5} {r['wall_seconds']:>6.0f}")
            results.append({"dataset": ds, "devices": n, "stragglers": args.stragglers, "slowdown": args.slowdown,
                             "secure": args.secure, "target_accuracy": target, "time_budget_s": horizon,
                             "shards_from": fs.how, "shard_pool": fs.pool, "runs": rows})
            if args.json:  # after every fleet: a long run's finished part is kept
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=2) + "\n")
            if args.plot_dir:
                plot(args.plot_dir / f"{ds}-{n}.png", f"{ds}, {n} devices, {100 * args.stragglers:.0f} % stragglers "
                     f"at {args.slowdown:g}x", [sync, *semi], target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
