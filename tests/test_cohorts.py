"""Secure aggregation with a buffer: one SecAgg+ instance per cohort, several in flight.

In-process devices (the boards' C code; test images, which serve SA_ENCODED,
the words a device masked) run FedBuff / FTTE with SecAgg+, up to
``max_cohorts`` cohorts in flight at once.  Checked: two cohorts in flight at
the same time, each one's unmasked sum equal to the sum of its members'
encodings bit for bit; every member weights its own update by the public
weight its invitation named (staleness factor x samples at formation); the
step a cohort makes, applied at the version current when it lands, equals
the plain weighted step (weights at landing) to the fixed-point rounding;
FTTE learns the updates' spread from the cohort sums alone; a device refuses
a weight heavier than its samples; a member dropping out of its cohort while
another cohort is in flight; a run killed with cohorts in flight resumes;
two cohorts at once in worker threads on the wall clock.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfed_host.aggregation import WEIGHT_ONE, public_weight
from tinyfed_host.clock import TimingModel, TimingOptions, VirtualClock
from tinyfed_host.experiment import FlBuild
from tinyfed_host.fl_client import ENC_F32, fetch_update
from tinyfed_host.participant import InProcessParticipant
from tinyfed_host.rounds import DevStage, FederatedRunner, FleetConfig
from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions
from tinyfed_host.secagg.encoding import N_SUMMED, SUMMED, Encoding
from tinyfed_host.simulate import make_participants
from tinyfed_host.strategy import StrategyOptions
from tinyfed_toolchain.facts.train_config import TrainConfig

CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=4, max_samples=48)
CLIP = 10.0


@pytest.fixture(scope="module")
def built(digits_fl_build: Path) -> Path:
    return digits_fl_build


class Watching(InProcessParticipant):
    """Records, for every cohort it joins, what its device masked (SA_ENCODED, test images) and
    the plain delta it held -- what the host never sees in a real run."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.seen: list[dict[str, Any]] = []

    def secagg_endpoint(self, client_id: int, enc: Encoding, weight: int = 0, staleness: int = 0) -> Any:
        ep = super().secagg_endpoint(client_id, enc, weight, staleness)
        me = self

        class Tap:
            id = ep.id

            def exchange(self, message: str, payload: bytes) -> bytes:
                if message == "ADVERTISE_KEYS":  # a test image still gives its plain delta before masking
                    assert me.dev is not None
                    me._delta = fetch_update(me.dev, me._version, device=me.name).delta()
                reply = ep.exchange(message, payload)
                if message == "MASKED_INPUT":
                    rid = struct.unpack_from("<I", payload)[0]
                    me.seen.append({"round": rid, "weight": weight, "staleness": staleness, "enc": enc,
                                    "encoded": ep.encoded(rid), "delta": me._delta})
                return reply

        return Tap()

    def train(self, version: int, cfg: TrainConfig, timeout: float) -> Any:
        self._version = version
        return super().train(version, cfg, timeout)


class Recording(SecureAggregator):
    """Keeps every SecAgg+ server by its round id (the exact sum words of each cohort)."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.servers: dict[int, Any] = {}

    def aggregate_secure(self, round_: int, n_params: int, members: Any) -> Any:
        try:
            return super().aggregate_secure(round_, n_params, members)
        finally:
            srv = self.last_server  # this thread's: each cohort's own, also when several run at once
            if srv is not None:
                self.servers[srv.round] = srv


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two cohorts (report rows) were in flight at the same time."""
    return a["formed_at_s"] < b["done_at_s"] and b["formed_at_s"] < a["done_at_s"]


def _runner(build: FlBuild, parts: list[InProcessParticipant], strategy: StrategyOptions, updates: int,
            stragglers: float = 0.5, max_cohorts: int = 8) -> FederatedRunner:
    agg = Recording(SecureOptions(clip=CLIP, seed=3, fleet_size=len(parts)), log=lambda s: None)
    return FederatedRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                           evaluator=build.evaluator(), aggregator=agg, log=lambda s: None,
                           config=FleetConfig(updates=updates, strategy=strategy, train=CFG, final_broadcast=False,
                                              max_cohorts=max_cohorts),
                           clock=VirtualClock(TimingModel(TimingOptions(insns_per_sample=50_000.0,
                                                                        stragglers=stragglers,
                                                                        straggler_slowdown=4.0), len(parts))))


def _check_cohort(run: FederatedRunner, parts: list[Watching], rec: Any, before: np.ndarray, name: str) -> int:
    """The cohort ``rec`` landed: its sum is its members' encodings bit for bit, their weights are the
    invitation's, the step is the plain weighted one.  Returns how many members were stale."""
    c = run.state.last_cohort
    assert c is not None and rec.cohort == c.as_dict() and c.stage.value == "applied"
    assert c.applied_version == rec.version and rec.completed and rec.updates == 3
    srv = run.aggregation.inner.servers[rec.secure["round_id"]]  # type: ignore[attr-defined]
    seen = {p.name: p.seen[-1] for p in parts if p.seen and p.seen[-1]["round"] == srv.round}
    assert sorted(seen) == sorted(m.name for m in c.members)
    stale = 0
    for m in c.members:
        tau_formed = c.formed_version - m.version
        assert m.staleness == c.applied_version - 1 - m.version >= tau_formed  # counted at landing
        s = seen[m.name]
        # the invitation named the strategy's public weight at formation: staleness factor x samples
        assert s["staleness"] == tau_formed and s["weight"] == m.weight <= WEIGHT_ONE * m.samples
        if name == "fedbuff":
            assert s["weight"] == public_weight(1 / (1 + tau_formed) ** 0.5, m.samples)
        assert c.rows[m.name].public_weight == m.weight and c.rows[m.name].staleness == m.staleness
        stale += m.staleness > 0
        # the device weighted its own update: the summed weight word is its public weight
        assert dict(zip(SUMMED, s["encoded"][-N_SUMMED:].tolist()))["weight"] == s["weight"]
    # the unmasked cohort sum is the sum of the members' encodings, bit for bit
    total = np.zeros_like(next(iter(seen.values()))["encoded"])
    for s in seen.values():
        total += s["encoded"]
    np.testing.assert_array_equal(srv.result.sum_words, total)
    # the step is the plain FedBuff / FTTE step over the same deltas: the direction weighted as the
    # devices did, its size by the factors of the staleness at landing (no clipping here)
    enc = next(iter(seen.values()))["enc"]
    ws = [seen[m.name]["weight"] for m in c.members]
    assert max(float(np.linalg.norm(s["delta"])) for s in seen.values()) < CLIP
    mean = sum(w * seen[m.name]["delta"].astype(np.float64) for w, m in zip(ws, c.members)) / sum(ws)
    samples = sum(m.samples for m in c.members)
    landed = sum(public_weight(run.strategy.factor(m.staleness), m.samples) for m in c.members) \
        if name == "fedbuff" else run.state.last_aggregate.weight_total  # type: ignore[union-attr]
    scale = landed / (WEIGHT_ONE * samples)
    want = before.astype(np.float64) + mean * scale
    step = 3 * enc.weight_max / sum(ws) * 2.0 ** -enc.frac_bits * scale
    np.testing.assert_allclose(run.state.params, want, rtol=0, atol=step + 4e-7)
    agg = run.state.last_aggregate
    assert agg is not None and agg.second_moment is None  # a secure sum reveals no single update's norm
    assert agg.effective_count == pytest.approx(sum(ws) ** 2 / sum(w * w for w in ws))
    return stale


@pytest.mark.parametrize("name", ["fedbuff", "ftte"])
def test_two_cohorts_in_flight_each_sum_exactly(built: Path, name: str) -> None:
    build = FlBuild.load(built)
    parts = [Watching(p.device) for p in make_participants(build, build.shards, test_messages=True)]
    run = _runner(build, parts, StrategyOptions(name, buffer=3), 6)
    run.setup()
    stale = 0
    for _ in range(6):
        before = run.state.params.copy()
        rec = run.step()
        stale += _check_cohort(run, parts, rec, before, name)
    cohorts = [r.cohort for r in run.state.records[1:]]
    assert [c["id"] for c in cohorts] == sorted(c["id"] for c in cohorts)  # type: ignore[index]
    # with 6 devices and K = 3, the second cohort forms while the first is in its SecAgg+ rounds
    assert any(c["in_flight"] == 2 for c in cohorts)  # type: ignore[index]
    assert any(_overlap(a, b) for a in cohorts for b in cohorts if a is not b)  # type: ignore[arg-type]
    assert any(c["applied_version"] - 1 > c["formed_version"] for c in cohorts)  # type: ignore[index,operator]
    assert stale > 0  # some members were stale: their step was discounted
    if name == "ftte":
        assert run.strategy.variance is not None and run.strategy.variance > 0  # type: ignore[attr-defined]
    # the fleet kept training while cohorts were in SecAgg+: more than one cohort's time in flight
    assert run.state.records[-1].time_s < sum(c["done_at_s"] - c["formed_at_s"] for c in cohorts)  # type: ignore[index,operator]
    run.close()


def test_cohorts_on_a_virtual_clock_with_worker_threads_land_as_one_after_the_other(built: Path) -> None:
    """VirtualClock(workers=2) runs the jobs and cohorts submitted since the last completion in
    threads: the same cohorts form and land at the same virtual times as with one worker."""
    build = FlBuild.load(built)
    runs = []
    for workers in (1, 2):
        run = _runner(build, make_participants(build, build.shards), StrategyOptions("fedbuff", buffer=3), 5)
        run.clock = VirtualClock(run.clock.timing, workers=workers)  # type: ignore[union-attr]
        recs = run.run()
        run.close()
        runs.append([(r.cohort["id"], r.cohort["in_flight"], r.cohort["formed_version"], r.time_s)  # type: ignore[index]
                     for r in recs[1:]])
    # (virtual times to COBS framing: a masked vector's wire bytes depend on its random words)
    assert [c[:3] for c in runs[0]] == [c[:3] for c in runs[1]] and any(c[1] == 2 for c in runs[0])
    assert [c[3] for c in runs[0]] == pytest.approx([c[3] for c in runs[1]], rel=1e-3)


def test_one_cohort_at_a_time_when_asked(built: Path) -> None:
    build = FlBuild.load(built)
    run = _runner(build, make_participants(build, build.shards), StrategyOptions("fedbuff", buffer=3), 4,
                  max_cohorts=1)
    recs = run.run()
    cohorts = [r.cohort for r in recs[1:]]
    assert all(r.completed for r in recs[1:]) and all(c["in_flight"] == 1 for c in cohorts)  # type: ignore[index]
    assert not any(_overlap(a, b) for a in cohorts for b in cohorts if a is not b)  # type: ignore[arg-type]
    run.close()
    with pytest.raises(ValueError, match="max-cohorts"):
        _runner(build, make_participants(build, build.shards[:3]), StrategyOptions("fedbuff"), 1, max_cohorts=0)


def test_a_device_refuses_a_weight_heavier_than_its_samples(built: Path) -> None:
    build = FlBuild.load(built)
    parts = make_participants(build, build.shards[:4])
    init = build.init_params()
    samples = []
    for p in parts:
        p.open()
        p.push_params(0, init, build.model_hash, False)
        samples.append(p.train(0, CFG, 30.0).samples)
    agg = SecureAggregator(SecureOptions(clip=CLIP, seed=1, neighbours=3, threshold=3), log=lambda s: None)
    members = [(k + 1, p, WEIGHT_ONE * n, 0) for k, (p, n) in enumerate(zip(parts, samples))]
    members[2] = (3, parts[2], WEIGHT_ONE * samples[2] + 1, 0)  # one 1/256 sample too heavy
    res = agg.aggregate_secure(1, init.size, members)
    assert agg.last_report is not None and agg.last_report["dropouts"]["MASKED_INPUT"] == ["virtual2"]
    assert set(res.devices) == {"virtual0", "virtual1", "virtual3"}
    assert res.total_weight == WEIGHT_ONE * (samples[0] + samples[1] + samples[3])


def test_a_member_dropping_out_of_its_cohort_while_another_is_in_flight(built: Path) -> None:
    """A device loses power after it advertised its keys, before its masked input, while another
    cohort is in its SecAgg+ rounds: its own cohort's sum goes on without it (its pairwise masks
    are removed), it is OUT, the other cohort lands untouched, later steps go on."""
    build = FlBuild.load(built)
    parts = make_participants(build, build.shards, die={4: ("MASKED_INPUT", None)})
    run = _runner(build, parts, StrategyOptions("fedbuff", buffer=3), 5, stragglers=0.0)
    recs = run.run()
    hit = [r for r in recs[1:] if r.secure and r.secure["dropouts"]["MASKED_INPUT"]]
    assert len(hit) == 1 and hit[0].secure["dropouts"]["MASKED_INPUT"] == ["virtual4"]  # type: ignore[index]
    assert hit[0].completed and hit[0].updates == 2
    others = [r for r in recs[1:] if r is not hit[0]]
    assert any(_overlap(hit[0].cohort, r.cohort) for r in others)  # type: ignore[arg-type]
    row = next(d for r in recs[1:] for d in r.devices if d.name == "virtual4" and d.status != "ok")
    assert row.status == "lost" and "MASKED_INPUT" in row.reason
    assert run.state.devices[4].stage is DevStage.OUT
    assert all(r.completed and r.updates == 3 for r in others)
    assert recs[-1].accuracy > recs[0].accuracy
    run.close()


# ---- resume with cohorts in flight ---------------------------------------------------------------
class KillsHost(Recording):
    """Its ``at``-th SecAgg+ round stops the host (as SIGKILL would), counting the cohorts launched."""

    at: int | None = None
    calls = 0

    def aggregate_secure(self, round_: int, n_params: int, members: Any) -> Any:
        self.calls += 1
        if self.at is not None and self.calls == self.at:
            raise SystemExit("host killed")
        return super().aggregate_secure(round_, n_params, members)


def _secure_run(build: FlBuild, state: Path, agg: KillsHost, *, resume: bool = False) -> Any:
    from tinyfed_host.fl_run import run_federated

    parts = make_participants(build, build.shards)
    cfg = FleetConfig(updates=7, strategy=StrategyOptions("fedbuff", buffer=3, max_staleness=4), train=CFG,
                      final_broadcast=False)
    clock = VirtualClock(TimingModel(TimingOptions(insns_per_sample=50_000.0, stragglers=0.5,
                                                   straggler_slowdown=4.0), len(parts)))
    return run_federated("simulate", build, parts, cfg, aggregator=agg, clock=clock, with_centralised=False,
                         log=lambda s: None, state_path=state, resume=resume)


def test_a_run_killed_with_cohorts_in_flight_resumes(built: Path, tmp_path: Path) -> None:
    from tinyfed_host.checkpoint import Checkpoint

    build = FlBuild.load(built)
    state = tmp_path / "state.json"
    killer = KillsHost(SecureOptions(clip=CLIP, seed=3), log=lambda s: None)
    killer.at = 5  # the 5th cohort's SecAgg+ round kills the host (cohort 4 is in flight then)
    with pytest.raises(SystemExit):
        _secure_run(build, state, killer)
    ck = Checkpoint.read(state)
    # cohorts launched minus cohorts landed: the killed one and at least one more were in flight
    assert killer.calls - ck.round >= 2 and 2 <= ck.round < 7
    assert ck.round <= ck.aggregator["rounds_done"] < killer.calls  # SecAgg+ rounds summed by then
    ids = [r["cohort"]["id"] for r in ck.records[1:]]
    res = _secure_run(build, state, KillsHost(SecureOptions(clip=CLIP, seed=3), log=lambda s: None), resume=True)
    recs = res.records
    assert [r.round for r in recs] == list(range(8)) and all(r.completed for r in recs[1:])
    # the resumed part starts from the checkpointed model, version and clock; the cohorts that were in
    # flight are gone (their devices trained again), new ones get new ids
    assert recs[ck.round].time_s == ck.time_s and recs[ck.round + 1].time_s > ck.time_s
    assert recs[ck.round + 1].version == ck.version + 1
    new_ids = [r.cohort["id"] for r in recs[ck.round + 1:]]  # type: ignore[index]
    assert min(new_ids) > max(ids) and all(r["cohort"] is not None for r in res.report["rounds"][1:])
    assert res.runner.aggregation.inner.rounds_done >= ck.aggregator["rounds_done"] + 7 - ck.round
    assert not res.runner.state.cohorts  # nothing left in flight at the end
    assert recs[-1].accuracy > recs[0].accuracy


# ---- two cohorts at once in worker threads (the wall clock, as on boards) --------------------------
class Meets(Recording):
    """The first two SecAgg+ rounds wait for each other: they can only both finish if they run at once."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        import threading

        self.barrier = threading.Barrier(2, timeout=60)
        self.started = 0
        self.threads: set[int] = set()

    def aggregate_secure(self, round_: int, n_params: int, members: Any) -> Any:
        import threading

        self.started += 1
        self.threads.add(threading.get_ident())
        if self.started <= 2:
            self.barrier.wait()  # BrokenBarrierError (the test fails) if the second cohort never starts
        return super().aggregate_secure(round_, n_params, members)


def test_two_cohorts_at_once_in_threads_on_in_process_devices(built: Path) -> None:
    import threading

    build = FlBuild.load(built)
    parts = [Watching(p.device) for p in make_participants(build, build.shards, test_messages=True)]
    agg = Meets(SecureOptions(clip=CLIP, seed=3, fleet_size=len(parts)), log=lambda s: None)
    run = FederatedRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                          evaluator=build.evaluator(), aggregator=agg, log=lambda s: None,
                          config=FleetConfig(updates=2, strategy=StrategyOptions("fedbuff", buffer=3), train=CFG,
                                             final_broadcast=False, max_cohorts=2))
    try:
        recs = run.run()
    finally:
        run.close()
    assert len(agg.threads) >= 2 and threading.get_ident() not in agg.threads  # worker threads
    assert all(r.completed and r.updates == 3 for r in recs[1:])
    # the barrier proved cohorts 1 and 2 ran at once; their report rows say so too (a third cohort,
    # formed once one of them landed, may rarely land before the other: then only one is recorded)
    cohorts = {r.cohort["id"]: r.cohort for r in recs[1:] if r.cohort is not None}
    assert len(cohorts) == 2 and cohorts.keys() & {1, 2}
    if {1, 2} <= cohorts.keys():
        assert (cohorts[1]["in_flight"], cohorts[2]["in_flight"]) == (1, 2) and _overlap(cohorts[1], cohorts[2])
    # each cohort's unmasked sum is its members' encodings, bit for bit
    for r in recs[1:]:
        srv = agg.servers[r.secure["round_id"]]  # type: ignore[index]
        # (a member may have joined a later cohort since: look its entry up by round id)
        words = [m["encoded"] for p in parts for m in p.seen if m["round"] == srv.round]
        assert len(words) == 3
        np.testing.assert_array_equal(srv.result.sum_words, sum(w.astype(np.uint32) for w in words))
    assert recs[-1].accuracy > recs[0].accuracy


def test_max_cohorts_flag_on_every_federated_verb() -> None:
    from tinyfed_host import cli, commands
    from tinyfed_host.rounds import DEFAULT_MAX_COHORTS

    parser = cli._build_parser()
    for verb, extra in (("fleet", ["--port", "socket://x:1"]), ("simulate", ["--devices", "50"]), ("demo", [])):
        assert commands.fleet_config(parser.parse_args([verb, *extra, "--strategy", "ftte", "--max-cohorts", "3"])
                                     ).max_cohorts == 3, verb
        assert commands.fleet_config(parser.parse_args([verb, *extra])).max_cohorts == DEFAULT_MAX_COHORTS == 8
        with pytest.raises(ValueError, match="max-cohorts 0"):
            commands.fleet_config(parser.parse_args([verb, *extra, "--max-cohorts", "0"]))
def test_a_weight_floor_in_the_manifest_stops_isolating_one_update(built: Path) -> None:
    """Issue 13's weights gap, closed by fleet policy: with a weight floor of 1/2 (128/256 per sample)
    in the signed manifest, a malicious host that weights one device 256 x its samples and the others
    1/256 sample (or 0, "my samples") gets POLICY from each down-weighted device at MASKED_INPUT: too
    few masked inputs, the round aborts, no share is requested.  An honest host's engine clamps its
    staleness weights to the floor and the round completes."""
    from tinyfed_host.aggregation import Contribution, SecureAggregation
    from tinyfed_host.secagg.identity import ephemeral_fleet
    from tinyfed_host.secagg.server import SecAggAbort

    build = FlBuild.load(built)
    fleet = ephemeral_fleet([1, 2, 3, 4], weight_floor=128)
    parts = make_participants(build, build.shards[:4], fleet=fleet)
    init = build.init_params()

    def train_all(version: int) -> list[int]:
        out = []
        for p in parts:
            p.push_params(version, init, build.model_hash, False)
            out.append(p.train(version, CFG, 30.0).samples)
        return out

    for p in parts:
        p.open()
    samples = train_all(0)
    agg = SecureAggregator(SecureOptions(clip=CLIP, seed=1, neighbours=3, threshold=3), log=lambda s: None)
    assert agg.weight_floor(parts) == 128
    for low in (1, 0):  # 1/256 sample; 0 = the word is the samples (1/256 per sample)
        members = [(1, parts[0], WEIGHT_ONE * samples[0], 0)] + [(k + 1, parts[k], low, 0) for k in (1, 2, 3)]
        if low == 1:
            with pytest.raises(SecAggAbort):
                agg.aggregate_secure(1, init.size, members)
        else:
            samples = train_all(1)  # device 1 masked its update above: a fresh one
            members[0] = (1, parts[0], WEIGHT_ONE * samples[0], 0)
            with pytest.raises(SecAggAbort):
                agg.aggregate_secure(2, init.size, members)
        srv = agg.last_server
        assert srv is not None and srv.result is None and srv.share_requests == 0
        refused = dict(srv.stats["MASKED_INPUT"].dropped)
        assert sorted(refused) == [2, 3, 4] and all("POLICY" in why for why in refused.values()), refused
    # the honest engine: staleness weights below the floor are raised to it, every device accepts
    samples = train_all(2)
    cons = [Contribution(k + 1, p.name, p, 2, n, weight=public_weight(f, n))
            for k, (p, n, f) in enumerate(zip(parts, samples, (1.0, 0.25, 0.5, 0.1)))]
    res = SecureAggregation(agg, log=lambda s: None).aggregate(3, init.size, cons)
    assert sorted(res.devices) == sorted(p.name for p in parts)
    assert [c.weight for c in cons] == [WEIGHT_ONE * samples[0], 128 * samples[1], 128 * samples[2], 128 * samples[3]]
    assert res.weight_total == sum(c.weight for c in cons)
    for p in parts:
        p.close()
