"""Secure aggregation with a buffer: one SecAgg+ instance per buffer flush (cohort).

In-process devices (the boards' C code; test images, which serve SA_ENCODED,
the words a device masked) run FedBuff / FTTE with SecAgg+.  Checked: every
member weights its own update by the public weight the cohort invitation
named (staleness factor x samples); the unmasked cohort sum equals the sum
of the members' encodings bit for bit; the decoded step equals the plain
weighted step to the fixed-point rounding; FTTE learns the updates' spread
from the cohort sums alone; a device refuses a weight heavier than its
samples; a member dropping out of its cohort is left out and the step still
completes.
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


def _runner(build: FlBuild, parts: list[InProcessParticipant], strategy: StrategyOptions, updates: int,
            stragglers: float = 0.5) -> FederatedRunner:
    agg = SecureAggregator(SecureOptions(clip=CLIP, seed=3, fleet_size=len(parts)), log=lambda s: None)
    return FederatedRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                           evaluator=build.evaluator(), aggregator=agg, log=lambda s: None,
                           config=FleetConfig(updates=updates, strategy=strategy, train=CFG, final_broadcast=False),
                           clock=VirtualClock(TimingModel(TimingOptions(insns_per_sample=50_000.0,
                                                                        stragglers=stragglers,
                                                                        straggler_slowdown=4.0), len(parts))))


@pytest.mark.parametrize("name", ["fedbuff", "ftte"])
def test_a_cohorts_secure_sum_is_the_sum_of_its_weighted_encodings(built: Path, name: str) -> None:
    build = FlBuild.load(built)
    parts = [Watching(p.device) for p in make_participants(build, build.shards, test_messages=True)]
    run = _runner(build, parts, StrategyOptions(name, buffer=3), 5)
    run.setup()
    stale = 0
    for _ in range(5):
        before = run.state.params.copy()
        rec = run.step()
        assert rec.completed and rec.updates == 3 and rec.secure is not None and not rec.secure["aborted"]
        srv = run.aggregation.inner.last_server  # type: ignore[attr-defined]
        members = [p.seen[-1] for p in parts if p.seen and p.seen[-1]["round"] == srv.round]
        assert len(members) == 3
        rows = {d.name: d for d in rec.devices if d.public_weight is not None}
        for p in parts:
            if p.seen and p.seen[-1]["round"] == srv.round:
                m, row = p.seen[-1], rows[p.name]
                # the invitation named the strategy's public weight: staleness factor x samples
                assert m["weight"] == row.public_weight <= WEIGHT_ONE * row.weight
                if name == "fedbuff":
                    assert m["weight"] == public_weight(1 / (1 + row.staleness) ** 0.5, row.weight)
                assert m["staleness"] == row.staleness
                stale += row.staleness > 0
                # the device weighted its own update: the summed weight word is its public weight
                words = m["encoded"]
                assert dict(zip(SUMMED, words[-N_SUMMED:].tolist()))["weight"] == m["weight"]
        # the unmasked cohort sum is the sum of the members' encodings, bit for bit
        total = np.zeros_like(members[0]["encoded"])
        for m in members:
            total += m["encoded"]
        np.testing.assert_array_equal(srv.result.sum_words, total)
        # and the step is the plain FedBuff / FTTE step over the same deltas and weights, to the
        # fixed-point rounding (no clipping here)
        enc = members[0]["enc"]
        ws = [m["weight"] for m in members]
        assert max(float(np.linalg.norm(m["delta"])) for m in members) < CLIP
        mean = sum(w * m["delta"].astype(np.float64) for w, m in zip(ws, members)) / sum(ws)
        samples = sum(rows[p.name].weight for p in parts if p.seen and p.seen[-1]["round"] == srv.round)
        want = before.astype(np.float64) + mean * (sum(ws) / (WEIGHT_ONE * samples))
        step = 3 * enc.weight_max / sum(ws) * 2.0 ** -enc.frac_bits * (sum(ws) / (WEIGHT_ONE * samples))
        np.testing.assert_allclose(run.state.params, want, rtol=0, atol=step + 4e-7)
        agg = run.state.last_aggregate
        assert agg is not None and agg.second_moment is None  # a secure sum reveals no single update's norm
        assert agg.effective_count == pytest.approx(sum(ws) ** 2 / sum(w * w for w in ws))
    assert stale > 0  # some members were stale: their weights were discounted on the device
    if name == "ftte":
        assert run.strategy.variance is not None and run.strategy.variance > 0  # type: ignore[attr-defined]
    run.close()


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


def test_a_member_dropping_out_of_its_cohort(built: Path) -> None:
    """A device loses power after it advertised its keys, before its masked input: its cohort's
    sum goes on without it (its pairwise masks are removed), it is OUT, later steps go on."""
    build = FlBuild.load(built)
    parts = make_participants(build, build.shards, die={1: ("MASKED_INPUT", None)})
    run = _runner(build, parts, StrategyOptions("fedbuff", buffer=4), 4, stragglers=0.0)
    recs = run.run()
    hit = [r for r in recs[1:] if r.secure and r.secure["dropouts"]["MASKED_INPUT"]]
    assert len(hit) == 1 and hit[0].secure["dropouts"]["MASKED_INPUT"] == ["virtual1"]  # type: ignore[index]
    assert hit[0].completed and hit[0].updates == 3
    row = next(d for d in hit[0].devices if d.name == "virtual1")
    assert row.status == "lost" and "MASKED_INPUT" in row.reason
    assert run.state.devices[1].stage is DevStage.OUT
    assert all(r.completed and r.updates == 4 for r in recs[1:] if r is not hit[0])
    assert recs[-1].accuracy > recs[0].accuracy
    run.close()
