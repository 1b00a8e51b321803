"""Semi-asynchronous rounds (FedBuff, FTTE) on in-process devices and the virtual clock.

Checked: the staleness factors and the server step on known inputs; the
virtual clock's event order and device timing (stragglers, link bytes);
a buffered step aggregates exactly the first K updates with their staleness
weights; updates staler than --max-staleness are dropped and counted; a
device that fails is left out while the others keep going; an async run
killed mid-way resumes from its checkpoint; the command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfed_host.aggregation import WEIGHT_ONE, CohortSum, effective_count, public_weight
from tinyfed_host.checkpoint import Checkpoint
from tinyfed_host.clock import JobResult, TimingModel, TimingOptions, VirtualClock
from tinyfed_host.experiment import FlBuild
from tinyfed_host.fl_run import run_federated
from tinyfed_host.participant import InProcessParticipant
from tinyfed_host.rounds import DevStage, FederatedRunner, FleetConfig
from tinyfed_host.simulate import make_participants
from tinyfed_host.strategy import FTTE, FedBuff, StrategyError, StrategyOptions, SyncFedAvg, make_strategy, server_step
from tinyfed_toolchain.facts.train_config import TrainConfig

CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=4, max_samples=48)
IPS = 50_000.0  # instructions per training sample given to the clock (tests do not measure a firmware)


# ---- staleness factors and the server step on known inputs -------------------------------------
def test_fedbuff_factor_and_public_weights() -> None:
    s = FedBuff(StrategyOptions("fedbuff", buffer=3))
    assert [s.factor(t) for t in (0, 1, 3, 8, 24)] == [1.0, 1 / math.sqrt(2), 0.5, 1 / 3, 0.2]
    assert not s.synchronous and s.buffer_size(100) == 3 and s.buffer_size(2) == 2
    assert SyncFedAvg(StrategyOptions()).factor(7) == 1.0 and SyncFedAvg(StrategyOptions()).buffer_size(9) == 9
    # public weights: samples x factor in units of 2^-8 samples, rounded, at least 1
    assert public_weight(1.0, 37) == 37 * 256
    assert public_weight(0.5, 37) == 37 * 128
    assert public_weight(1 / 3, 10) == round(2560 / 3) == 853
    assert public_weight(1e-9, 1) == 1
    with pytest.raises(ValueError):
        public_weight(0.0, 5)
    with pytest.raises(StrategyError):
        make_strategy(StrategyOptions("fedasync"))
    with pytest.raises(StrategyError):
        StrategyOptions("fedbuff", buffer=0).check()


def test_ftte_factor_uses_age_and_update_variance() -> None:
    s = FTTE(StrategyOptions("ftte", buffer=4, ema=0.5))
    # before two cohorts revealed the spread of the updates: FedBuff's factor
    assert s.factor(3) == 0.5 and s.factor(0) == 1.0
    n = 6
    old = np.zeros(n, np.float32)
    new = np.full(n, 0.5, np.float32)  # |step|^2 = 1.5
    mu1 = np.zeros(n)
    mu2 = np.full(n, 1.0)  # |mu2 - mu1|^2 = 6
    # two cohorts of 4 equally weighted updates: effective count 4 each
    assert effective_count([7, 7, 7, 7]) == 4.0 and effective_count([3, 1]) == pytest.approx(1.6)
    s.observe(old, new, CohortSum(mu1, 4 * WEIGHT_ONE, 4, 4, ("a", "b", "c", "d"), effective_count=4.0))
    assert s.drift_sq == pytest.approx(1.5) and s.variance is None and s.factor(3) == 0.5
    s.observe(old, new, CohortSum(mu2, 4 * WEIGHT_ONE, 4, 4, ("a", "b", "c", "d"), effective_count=4.0))
    # sigma^2 = |mu2 - mu1|^2 / (1/4 + 1/4) = 12
    assert s.drift_sq == pytest.approx(1.5) and s.variance == pytest.approx(12.0)
    r = 1.5 / 12.0
    for tau in (1, 2, 5):
        assert s.factor(tau) == pytest.approx(1 / math.sqrt(1 + tau * tau * r))
    # cohorts that disagree more (larger sigma^2): stale updates keep more weight
    s.observe(old, new, CohortSum(mu2 + 3.0, 4 * WEIGHT_ONE, 4, 4, ("a",), effective_count=4.0))
    assert s.variance == pytest.approx(0.5 * 12.0 + 0.5 * (9 * n) / 0.5)
    assert s.factor(2) > 1 / math.sqrt(1 + 4 * r)
    # the state survives a checkpoint (JSON) and a restart
    again = FTTE(StrategyOptions("ftte", buffer=4, ema=0.5))
    again.load_state(json.loads(json.dumps(s.state_dict())))
    assert again.factor(3) == s.factor(3)
    # the ratio is clamped, so a factor never reaches 0 or exceeds 1
    s.load_state({"drift_sq": 1e9, "variance": 1e-9})
    assert 0 < s.factor(50) < s.factor(1) < 1


def test_server_step_scales_by_the_cohorts_mean_staleness_factor() -> None:
    rng = np.random.default_rng(1)
    p = rng.standard_normal(5).astype(np.float32)
    mean = rng.standard_normal(5)
    # two members of 10 and 30 samples with factors 1 and 1/2: weights 2560 and 3840
    c = CohortSum(mean, 2560 + 3840, 40, 2, ("a", "b"))
    want = (p.astype(np.float64) + 0.7 * mean * ((2560 + 3840) / (256 * 40))).astype(np.float32)
    np.testing.assert_array_equal(server_step(p, c, 0.7), want)
    # synchronous FedAvg: the factor is exactly 1
    np.testing.assert_array_equal(server_step(p, CohortSum(mean, 40 * 256, 40, 2, ("a", "b")), 1.0),
                                  (p.astype(np.float64) + mean).astype(np.float32))


# ---- the virtual clock ------------------------------------------------------------------------
def test_virtual_clock_orders_events_and_times_devices() -> None:
    jittered = TimingModel(TimingOptions(insns_per_sample=1.0, stragglers=0.5, straggler_slowdown=10.0, seed=3), 40)
    s = jittered.slowdown
    assert len(jittered.stragglers) == 20 and np.all((s[jittered.stragglers] >= 9.0) & (s[jittered.stragglers] <= 11.0))
    assert np.all(np.delete(s, jittered.stragglers) <= 1.1) and len(set(s.tolist())) == 40  # +-10 % each
    t = TimingModel(TimingOptions(device_mhz=10.0, baud=100_000, insns_per_sample=1000.0, insns_per_inference=500.0,
                                  stragglers=0.5, straggler_slowdown=10.0, jitter=0.0, seed=3), 4)
    assert len(t.stragglers) == 2 and sorted(set(t.slowdown)) == [1.0, 10.0]
    fast, slow = [i for i in range(4) if i not in t.stragglers][0], t.stragglers[0]
    # 200 samples trained + 100 evaluated at 10 MHz (x10 for a straggler) + 5,000 bytes at 10 bits / byte
    r = JobResult(fast, 0, seen=200, eval_samples=100, wire_bytes=5000)
    assert t.job_seconds(r) == pytest.approx((200 * 1000 + 100 * 500) / 10e6 + 0.5)
    r.device = slow
    assert t.job_seconds(r) == pytest.approx(10 * (200 * 1000 + 100 * 500) / 10e6 + 0.5)
    clock = VirtualClock(t)
    clock.submit(lambda: JobResult(slow, 0, seen=200, eval_samples=100, wire_bytes=5000), slow)
    clock.submit(lambda: JobResult(fast, 0, seen=200, eval_samples=100, wire_bytes=5000), fast)
    first = clock.next_done()
    assert first.device == fast and clock.now() == pytest.approx(0.525)
    clock.submit(lambda: JobResult(fast, 1, seen=200, eval_samples=100, wire_bytes=5000), fast)
    assert clock.next_done().device == slow and clock.now() == pytest.approx(0.75)
    assert clock.next_done().device == fast and clock.now() == pytest.approx(1.05)
    clock.hold([fast], clock.now() + 2.0)  # e.g. its SecAgg+ cohort: a new job starts after that
    clock.submit(lambda: JobResult(fast, 2, seen=200, eval_samples=100, wire_bytes=5000), fast)
    assert clock.next_done().finished == pytest.approx(3.575)
    with pytest.raises(ValueError):
        TimingModel(TimingOptions(insns_per_sample=None), 2)
    with pytest.raises(ValueError):
        TimingOptions(stragglers=1.5, insns_per_sample=1.0).check()


def test_the_threaded_virtual_clock_orders_as_one_thread_and_passes_a_failure_on() -> None:
    t = TimingModel(TimingOptions(device_mhz=1.0, baud=100_000, insns_per_sample=1000.0, jitter=0.0), 4)
    clocks = [VirtualClock(t, workers=w) for w in (1, 3)]
    for c in clocks:  # device d takes (4 - d) ms per sample: the last submitted finishes first
        for d in range(4):
            c.submit(lambda d=d: JobResult(d, 0, seen=(4 - d) * 10), d)
    orders = [[(r.device, r.finished) for r in (c.next_done() for _ in range(4))] for c in clocks]
    assert orders[0] == orders[1] and [d for d, _ in orders[0]] == [3, 2, 1, 0]
    c = clocks[1]

    def bug() -> JobResult:
        raise RuntimeError("a bug in a job")
    c.submit(bug, 0)
    c.submit(lambda: JobResult(1, 1, seen=1), 1)
    with pytest.raises(RuntimeError, match="a bug in a job"):
        c.next_done()
    assert c.in_flight() == 0
    for c in clocks:
        c.close()


# ---- the engine -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(digits_fl_build: Path) -> Path:
    return digits_fl_build


def _runner(build: FlBuild, parts: list[InProcessParticipant], strategy: StrategyOptions, updates: int,
            timing: TimingOptions | None = None) -> FederatedRunner:
    timing = timing or TimingOptions(insns_per_sample=IPS)
    return FederatedRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                           evaluator=build.evaluator(), log=lambda s: None,
                           config=FleetConfig(updates=updates, strategy=strategy, train=CFG, final_broadcast=False),
                           clock=VirtualClock(TimingModel(timing, len(parts))))


def test_a_buffered_step_aggregates_the_first_k_updates_with_staleness_weights(built: Path) -> None:
    build = FlBuild.load(built)
    parts = make_participants(build, build.shards)
    run = _runner(build, parts, StrategyOptions("fedbuff", buffer=2), 6,
                  TimingOptions(insns_per_sample=IPS, stragglers=0.5, straggler_slowdown=20.0))
    run.setup()
    seen_stale = False
    for _ in range(6):
        before = run.state.params.copy()
        v = run.state.version
        rec = run.step()
        assert rec.completed and rec.updates == 2 and rec.version == v + 1
        agg = run.state.last_aggregate
        assert agg is not None
        rows = [d for d in rec.devices if d.public_weight is not None]
        assert len(rows) == 2
        for d in rows:
            assert d.staleness == v - d.version and d.public_weight == public_weight(1 / math.sqrt(1 + d.staleness),
                                                                                     d.weight)
            seen_stale |= d.staleness > 0
        # the step is the FedBuff formula over exactly these two updates
        ups = {u.device: u for u in run.state.last_updates}
        wsum = sum(d.public_weight for d in rows)
        mean = sum(d.public_weight * ups[d.name].delta().astype(np.float64) for d in rows) / wsum
        want = (before.astype(np.float64) + mean * (wsum / (WEIGHT_ONE * sum(d.weight for d in rows))))
        np.testing.assert_array_equal(run.state.params, want.astype(np.float32))
    assert seen_stale
    times = [r.time_s for r in run.state.records]
    assert all(b >= a for a, b in zip(times, times[1:])) and times[-1] > 0
    # the stragglers' (20x slower) updates are not in the first steps: every device is kept busy,
    # so the fast ones produce the early versions
    early = {d.name for r in run.state.records[1:3] for d in r.devices if d.public_weight is not None}
    assert not early & {f"virtual{i}" for i in run.clock.timing.stragglers}  # type: ignore[union-attr]
    run.close()


@pytest.mark.parametrize("strategy", [StrategyOptions(), StrategyOptions("fedbuff", buffer=3)])
def test_jobs_on_several_threads_give_the_run_of_one(built: Path, strategy: StrategyOptions) -> None:
    """The simulation's clock runs training on every core (workers > 1): the same devices and
    seeds give the same run as one after the other -- the same final parameters bit for bit,
    the same completions in the same virtual order, the same rows."""
    from tinyfed_host.direct import DirectFleet
    from tinyfed_host.inprocess import DeviceLibrary

    build = FlBuild.load(built)
    lib = DeviceLibrary.build(build.model_dir, build.train_dir)
    timing = TimingOptions(insns_per_sample=IPS, stragglers=0.3, straggler_slowdown=5.0, seed=2)
    runs = []
    for workers in (1, 3):
        fleet = DirectFleet(lib, build.shards, model_name=build.model_name, threads=workers)
        parts = fleet.participants
        clock = VirtualClock(TimingModel(timing, len(parts)), workers=workers)
        order: list[tuple[int, int, float]] = []
        take = clock.next_done

        def spy() -> JobResult:
            r = take()
            order.append((r.device, r.version, r.finished))
            return r
        clock.next_done = spy  # type: ignore[method-assign]
        run = FederatedRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                              evaluator=build.evaluator(), log=lambda s: None, clock=clock,
                              config=FleetConfig(updates=4, strategy=strategy, train=CFG, final_broadcast=False))
        run.setup()
        for _ in range(4):
            run.step()
        rows = [[(d.name, d.status, d.version, d.weight, d.update_norm) for d in r.devices] for r in run.state.records]
        runs.append((run.state.params.copy(), order, rows, [r.time_s for r in run.state.records]))
        run.close()
    (p1, o1, r1, t1), (p3, o3, r3, t3) = runs
    assert np.array_equal(p1, p3) and o1 == o3 and r1 == r3 and t1 == t3
    assert len(o1) >= 4 * 3


def test_stale_updates_are_dropped_and_counted(built: Path) -> None:
    build = FlBuild.load(built)
    parts = make_participants(build, build.shards[:3])
    run = _runner(build, parts, StrategyOptions("fedbuff", buffer=1, max_staleness=1), 16,
                  TimingOptions(insns_per_sample=IPS, baud=10_000_000, stragglers=1 / 3, straggler_slowdown=4.0,
                                seed=1))
    recs = run.run()
    slow = f"virtual{run.clock.timing.stragglers[0]}"  # type: ignore[union-attr]
    dropped = [d for r in recs[1:] for d in r.devices if d.status == "stale"]
    assert sum(r.stale_dropped for r in recs) == len(dropped) >= 1
    assert run.state.stale_dropped_total == len(dropped)
    for d in dropped:
        assert d.staleness is not None and d.staleness > 1 and "dropped" in d.reason
    assert slow in {d.name for d in dropped}  # the straggler's updates arrive too late
    # only fresh-enough updates were aggregated
    agg_rows = [d for r in recs[1:] for d in r.devices if d.public_weight is not None]
    assert agg_rows and all(d.staleness is not None and d.staleness <= 1 for d in agg_rows)
    # the dropped device was not punished: it trained again on a newer version
    assert sum(1 for r in recs[1:] for d in r.devices if d.name == slow) > len(dropped) or \
        run.state.devices[int(slow[7:])].stage is not DevStage.OUT
    rep = json.loads(json.dumps([r.as_dict() for r in recs]))
    assert sum(r["stale_dropped"] for r in rep) == len(dropped)
    run.close()


def test_a_failing_device_is_left_out_and_the_others_go_on(built: Path) -> None:
    build = FlBuild.load(built)
    parts = make_participants(build, build.shards[:4])

    class Dies(InProcessParticipant):
        def train(self, version: int, cfg: TrainConfig, timeout: float) -> Any:
            if version == 2:
                self.device.power_off()  # loses power during TRAIN of version 2
            return super().train(version, cfg, timeout)

    parts[2] = Dies(parts[2].device)
    run = _runner(build, parts, StrategyOptions("ftte", buffer=2), 6)
    recs = run.run()
    assert all(r.completed for r in recs[1:])
    bad = [d for r in recs[1:] for d in r.devices if d.name == "virtual2" and d.status != "ok"]
    assert len(bad) == 1 and bad[0].status in ("lost", "timeout")
    assert run.state.devices[2].stage is DevStage.OUT
    assert recs[-1].accuracy > recs[0].accuracy
    run.close()


# ---- resume ------------------------------------------------------------------------------------------
class KillHost(InProcessParticipant):
    """Training version ``at`` stops the host (as SIGKILL would)."""

    at: int | None = None

    def train(self, version: int, cfg: TrainConfig, timeout: float) -> Any:
        if self.at is not None and version == self.at:
            raise SystemExit("host killed")
        return super().train(version, cfg, timeout)


def _async_run(build: FlBuild, state: Path, *, kill_at: int | None = None, resume: bool = False,
               updates: int = 8) -> Any:
    parts = [KillHost(p.device) for p in make_participants(build, build.shards[:4])]
    for p in parts:
        p.at = kill_at  # the first device to train that version stops the host
    cfg = FleetConfig(updates=updates, strategy=StrategyOptions("ftte", buffer=2, max_staleness=4), train=CFG,
                      final_broadcast=False)
    clock = VirtualClock(TimingModel(TimingOptions(insns_per_sample=IPS, stragglers=0.25), len(parts)))
    return run_federated("simulate", build, parts, cfg, clock=clock, with_centralised=False, log=lambda s: None,
                         state_path=state, resume=resume)


def test_an_async_run_resumes_from_its_checkpoint(built: Path, tmp_path: Path) -> None:
    build = FlBuild.load(built)
    state = tmp_path / "state.json"
    with pytest.raises(SystemExit):
        _async_run(build, state, kill_at=4)
    ck = Checkpoint.read(state)
    assert 3 <= ck.round < 8 and ck.version == ck.round and ck.time_s > 0
    assert ck.strategy["drift_sq"] is not None and ck.strategy["variance"] is not None
    res = _async_run(build, state, resume=True)
    recs = res.records
    assert [r.round for r in recs] == list(range(9)) and all(r.completed for r in recs[1:])
    # the resumed part starts from the checkpointed model, version and clock
    assert recs[ck.round].time_s == ck.time_s and recs[ck.round + 1].time_s > ck.time_s
    assert recs[ck.round + 1].version == ck.version + 1
    assert res.runner.strategy.state_dict() != ck.strategy  # it went on learning the variance
    assert res.report["strategy"] == "ftte" and [r["round"] for r in res.report["rounds"]] == list(range(9))
    assert Checkpoint.read(state).round == 8
    assert recs[-1].accuracy > recs[0].accuracy


def test_simulate_cli_fedbuff_with_stragglers(built: Path, tmp_path: Path) -> None:
    rep = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "simulate", "--devices", "12", "--build", str(built),
                        "--strategy", "fedbuff", "--buffer", "3", "--max-staleness", "6", "--updates", "6",
                        "--stragglers", "0.5", "--straggler-slowdown", "10", "--device-mhz", "48", "--baud", "230400",
                        "--insns-per-sample", str(IPS), "--epochs", "1", "--max-samples", "32", "--no-secure",
                        "--no-centralised", "--target-accuracy", "0.3", "--report", str(rep)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(rep.read_text())
    assert r["strategy"] == "fedbuff" and r["secure"] is False and r["config"]["strategy"]["buffer"] == 3
    assert r["timing"]["device_mhz"] == 48 and r["timing"]["baud"] == 230400 and r["timing"]["straggler_devices"] == 6
    assert len(r["rounds"]) == 7 and all(x["updates"] == 3 for x in r["rounds"][1:])
    for key in ("accuracy", "time_s", "updates", "stale_dropped", "bytes_up", "bytes_down"):
        assert all(key in x for x in r["rounds"])
    assert r["payload_bytes_per_update"] == 4 * r["model"]["n_params"]
    assert r["device_train_mem_bytes"] > 0 and "time to 30.0 % accuracy" in p.stdout
    bad = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "simulate", "--devices", "4", "--build", str(built),
                          "--strategy", "fedbuff", "--buffer", "0", "--insns-per-sample", "1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "buffer" in bad.stderr and "Traceback" not in bad.stderr


# ---- the demo's synchronous reference: a board run's measured speeds, replayed -------------------
def test_a_measured_run_replays_as_synchronous_fedavg_on_the_same_fleet(built: Path) -> None:
    from tinyfed_host.clock import MeasuredTiming
    from tinyfed_host.fl_client import TrainResult
    from tinyfed_host.rounds import DeviceRound, RoundRecord
    from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions
    from tinyfed_host.simulate import measured_speeds, replay_sync
    from tinyfed_toolchain.facts.errors import OptionsError

    tr = TrainResult(1, 40, 40, 5, 20, 40.0, 40, 20, 40.0, 100, 0, 0, 0)

    def row(name: str, seconds: float, status: str = "ok") -> DeviceRound:
        return DeviceRound(name, status, train=tr, seconds=seconds)

    names = ["board0", "board1", "board2"]
    recs = [RoundRecord(0, 0.5, 1.0),
            RoundRecord(1, 0.6, 1.0, devices=[row("board0", 2.0), row("board1", 3.0)], aggregate_seconds=1.0),
            RoundRecord(2, 0.7, 1.0, devices=[row("board0", 4.0), row("board2", 24.0), row("board1", 9.0, "timeout")],
                        aggregate_seconds=2.0),
            RoundRecord(3, 0.7, 1.0, completed=False, aggregate_seconds=50.0)]
    sp = measured_speeds(recs, names)
    # mean wall seconds of each board's successful jobs; mean aggregation time of completed steps
    assert sp.job_seconds == [3.0, 3.0, 24.0] and sp.flush_seconds == 1.5
    with pytest.raises(OptionsError, match="board3"):
        measured_speeds(recs, names + ["board3"])
    t = MeasuredTiming(sp.job_seconds, sp.flush_seconds)
    assert t.stragglers == [2] and t.job_seconds(JobResult(2, 0)) == 24.0

    build = FlBuild.load(built)
    cfg = FleetConfig(updates=3, strategy=StrategyOptions("ftte", buffer=2), train=CFG)
    ref = replay_sync(build, sp, cfg, None, log=lambda s: None)
    # synchronous: every round waits for the slowest board (24 s), all three boards in each
    assert [r.round for r in ref] == [0, 1, 2, 3] and all(r.completed and r.updates == 3 for r in ref[1:])
    assert [r.time_s for r in ref] == pytest.approx([0.0, 24.0, 48.0, 72.0])
    assert ref[-1].accuracy > ref[0].accuracy
    # secure: each round's SecAgg+ flush is charged its measured time on top
    sec = replay_sync(build, sp, dataclasses.replace(cfg, updates=1),
                      SecureAggregator(SecureOptions(clip=10.0), log=lambda s: None), log=lambda s: None)
    assert sec[1].completed and sec[1].secure and sec[1].time_s == pytest.approx(24.0 + 1.5)


# ---- sparse updates: FTTE's w* ----------------------------------------------------------------------
def test_a_sparse_build_trains_and_sends_only_w_star(built: Path, tmp_path: Path) -> None:
    from fl_setup import make_digits_build

    dense = FlBuild.load(built)
    sparse = FlBuild.load(make_digits_build(tmp_path, devices=4, per_device=60, train_scheme="sparse3k"))
    # the toolchain picked one subset for the whole fleet from its own samples, within the memory budget
    assert sparse.train_info["scheme"] == "sparse" and dense.train_info["scheme"] != "sparse"
    n, n_dense = sparse.train_info["n_params"], dense.train_info["n_params"]
    assert 0 < n < n_dense / 3 and sparse.train_mem_bytes() <= 3 * 1024 < dense.train_mem_bytes()  # type: ignore[operator]
    assert sparse.init_params().size == n
    cfg = FleetConfig(updates=4, strategy=StrategyOptions("ftte", buffer=2), train=CFG, final_broadcast=False)
    clock = VirtualClock(TimingModel(TimingOptions(insns_per_sample=IPS, stragglers=0.25), 4))
    res = run_federated("simulate", sparse, make_participants(sparse, sparse.shards), cfg, clock=clock,
                        with_centralised=False, log=lambda s: None)
    # the wire carries w* only: each plain update is n float32 values
    assert res.report["payload_bytes_per_update"] == 4 * n
    assert res.report["device_train_mem_bytes"] == sparse.train_mem_bytes()
    assert all(r.completed and r.updates == 2 for r in res.records[1:])
    assert res.records[-1].accuracy > res.records[0].accuracy


def test_issue_flags_keep_their_names_on_every_federated_verb() -> None:
    """The flags issue 9 names (scripts depend on them) parse on fleet, simulate and demo and land
    in the run's options; --rounds stays an alias of --updates."""
    from tinyfed_host import cli, commands

    parser = cli._build_parser()
    engine = ["--strategy", "ftte", "--buffer", "4", "--max-staleness", "5", "--updates", "7",
              "--target-accuracy", "0.8", "--report", "r.json"]
    for verb, extra in (("fleet", ["--port", "socket://x:1"]), ("simulate", ["--devices", "500"]), ("demo", [])):
        args = parser.parse_args([verb, *extra, *engine])
        cfg = commands.fleet_config(args)
        assert (cfg.strategy.name, cfg.strategy.buffer, cfg.strategy.max_staleness) == ("ftte", 4, 5), verb
        assert cfg.updates == 7 and cfg.target_accuracy == 0.8 and args.report == "r.json", verb
        assert commands.fleet_config(parser.parse_args([verb, *extra, "--strategy", "sync", "--rounds", "3"])).updates == 3
    args = parser.parse_args(["simulate", "--devices", "500", "--stragglers", "0.9", "--straggler-slowdown", "10",
                              "--device-mhz", "64", "--baud", "115200"])
    assert (args.devices, args.stragglers, args.straggler_slowdown, args.device_mhz, args.baud) == \
        (500, 0.9, 10.0, 64.0, 115200)
    for bad in (["simulate", "--devices", "5", "--strategy", "fedasync"], ["fleet", "--port", "p", "--buffer", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
