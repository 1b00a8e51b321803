"""`tinyfed simulate` with secure aggregation (the default): every in-process
device (the boards' C code, tinyfed_host.inprocess) masks its delta with its
own SecAgg+ client (firmware/src/secagg/protocol.c, reached through the device
protocol like a board's) and the host only unmasks the sum.

Checked: a secure round's global model equals the plain (--no-secure) round's
to the fixed-point step, with the same seed (the devices are deterministic);
the per-device traffic is exactly the SecAgg+ bodies plus the parameters; a
device losing power before / after its masked input; an aborted round; the
command line both ways.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fl_setup import make_digits_build
from tinyfed_host.aggregation import WEIGHT_ONE
from tinyfed_host.experiment import FlBuild
from tinyfed_host.fl_client import ENC_F32
from tinyfed_toolchain.facts.train_config import TrainConfig
from tinyfed_host.participant import InProcessParticipant
from tinyfed_host.rounds import DevStage, FederatedRunner, FleetConfig
from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions
from tinyfed_host.secagg.server import STAGES
from tinyfed_host.simulate import make_participants
from tinyfed_toolchain.training.native_trainer import NativeTrainer

CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=4, max_samples=64)
CLIP = 10.0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_digits_build(tmp_path_factory.mktemp("sim_secure"), per_device=120)


def _parts(build: FlBuild, **die: dict[int, str]) -> list[InProcessParticipant]:
    stages = {k: (die.get("before", {}).get(k), die.get("after", {}).get(k)) for k in range(len(build.shards))}
    return make_participants(build, build.shards, die=stages)


def _expected_deltas(build: FlBuild, init: np.ndarray, step: int = 1) -> list[np.ndarray]:
    """What each device trains in step ``step`` from ``init`` (the host build of the same engine)."""
    tr = NativeTrainer(build.model_dir)
    out = []
    for x, y in build.shards:
        tr.set_params(init)
        tr.fit(TrainConfig(**{**CFG.__dict__, "seed": CFG.seed + step * 7919}), x, y)
        out.append(tr.params() - init)
    return out


def _runner(build: FlBuild, parts: list[InProcessParticipant], secure: bool, rounds: int = 1) -> FederatedRunner:
    agg = SecureAggregator(SecureOptions(clip=CLIP, seed=5, fleet_size=len(parts)), log=lambda s: None) \
        if secure else None
    return FederatedRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                        evaluator=build.evaluator(), aggregator=agg, log=lambda s: None,
                        config=FleetConfig(updates=rounds, train=CFG, parallel=False, final_broadcast=False))


def _step_bound(secure: dict[str, Any], n_survivors: int, total_weight: int, plain: np.ndarray) -> np.ndarray:
    """|secure - plain| per parameter: n W / sum w * 2^-f for the stochastic rounding of the encoding
    (tests/test_secagg_qemu.py), plus the float32 rounding of both new parameter vectors."""
    step = n_survivors * secure["weight_max"] / total_weight * 2.0 ** -secure["frac_bits"]
    return step + 2 * np.spacing(np.abs(plain).astype(np.float32)).astype(np.float64)


def test_secure_round_equals_plain_round_to_the_fixed_point_step(built: Path) -> None:
    build = FlBuild.load(built)
    plain_params = []
    for _ in range(2):
        run = _runner(build, _parts(build), secure=False)
        run.setup()
        plain_rec = run.run_round()
        plain_params.append(run.state.params.copy())
        plain_updates = run.state.last_updates
        run.close()
    # the virtual devices are deterministic given the seed: the comparison below is meaningful
    np.testing.assert_array_equal(plain_params[0], plain_params[1])
    norms = [u.norm for u in plain_updates]
    assert max(norms) < CLIP  # not clipped: the secure mean is the plain mean, encoded

    parts = _parts(build)
    run = _runner(build, parts, secure=True, rounds=2)
    try:
        run.setup()
        init = run.state.params.copy()
        rec = run.run_round()
        sec = rec.secure
        assert sec is not None and sec["secure"] and not sec["aborted"]
        assert all(v == [] for v in sec["dropouts"].values())
        assert rec.completed and rec.updates == 3 == plain_rec.updates
        assert rec.aggregate_weight == plain_rec.aggregate_weight == sum(min(64, len(y)) for _, y in build.shards)
        # sync FedAvg: each device's public weight is its samples (in 1/SA_WEIGHT_ONE units)
        assert sec["weight_max"] == WEIGHT_ONE * max(min(64, len(y)) for _, y in build.shards)
        secure_params = run.state.params
        plain = plain_params[0]
        diff = np.abs(secure_params.astype(np.float64) - plain.astype(np.float64))
        bound = _step_bound(sec, 3, WEIGHT_ONE * rec.aggregate_weight, plain)
        assert np.all(diff <= bound), float(np.max(diff - bound))
        moved = np.abs(plain.astype(np.float64) - init.astype(np.float64))
        assert float(np.max(bound)) < float(np.max(moved)) / 1000  # the bound is far below the round's step
        assert not np.array_equal(secure_params, init)
        # traffic: the parameters plus exactly the SecAgg+ bodies the server exchanged with that device
        srv = run.aggregation.inner.last_server  # type: ignore[attr-defined]
        n = build.init_params().size
        for k, row in enumerate(rec.devices):
            cid = k + 1
            sent = sum(srv.stats[s].sent[cid] for s in STAGES)
            got = sum(srv.stats[s].received[cid] for s in STAGES)
            assert (row.traffic.payload_out, row.traffic.payload_in) == (4 * n + sent, got)
            assert srv.stats["MASKED_INPUT"].received[cid] == 4 * (n + 1) + 4
        # a second round starts fresh clients (a new SecAgg round id each time)
        rec2 = run.run_round()
        assert rec2.completed and rec2.secure is not None and not rec2.secure["aborted"]
        assert run.aggregation.inner.last_server.round > srv.round  # type: ignore[attr-defined]
    finally:
        run.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_virtual_device_losing_power_around_its_masked_input(built: Path, when: str) -> None:
    """before: its update is not in the sum (its pairwise masks are removed from the
    others'); after: its update counts (its self mask is rebuilt from shares)."""
    build = FlBuild.load(built)
    parts = _parts(build, **{when: {1: "MASKED_INPUT"}})
    run = _runner(build, parts, secure=True)
    try:
        run.setup()
        init = run.state.params.copy()
        rec = run.run_round()
        sec = rec.secure
        assert sec is not None and not sec["aborted"] and rec.completed
        drop = {s: v for s, v in sec["dropouts"].items() if v}
        rows = {d.name: d for d in rec.devices}
        if when == "before":
            assert drop == {"MASKED_INPUT": ["virtual1"]}
            survivors = [0, 2]
            assert rows["virtual1"].status == "lost" and "MASKED_INPUT" in rows["virtual1"].reason
            assert run.state.devices[1].stage is DevStage.OUT
        else:
            assert drop == {"SURVIVORS": ["virtual1"]}  # gone after its masked input: it signs nothing
            survivors = [0, 1, 2]
            assert run.state.devices[1].stage is DevStage.READY  # its update counted; it is off only from now
        assert rec.updates == len(survivors)
        # the new model is FedAvg of the survivors' deltas; a masked update never leaves
        # plain afterwards (the device encoded it in place and refuses GET_UPDATE: POLICY)
        deltas = _expected_deltas(build, init)
        with pytest.raises(Exception, match="POLICY"):
            parts[0].fetch_update(0, ENC_F32)
        weights = [min(64, len(build.shards[k][1])) for k in survivors]
        wsum = sum(weights)
        assert rec.aggregate_weight == wsum
        mean = sum(w * deltas[k].astype(np.float64) for w, k in zip(weights, survivors)) / wsum
        plain = (init.astype(np.float64) + mean).astype(np.float32)
        diff = np.abs(run.state.params.astype(np.float64) - plain.astype(np.float64))
        assert np.all(diff <= _step_bound(sec, len(survivors), WEIGHT_ONE * wsum, plain))
    finally:
        run.close()


def _simulate(built: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    rep = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
    p = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "simulate", "--devices", "3", "--build", str(built),
                        "--rounds", "2", "--epochs", "1", "--max-samples", "64", "--seed", "2", "--no-centralised",
                        "--graph-seed", "1", "--insns-per-sample", "50000", "--report", str(rep), *extra],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p, json.loads(rep.read_text())


def test_simulate_cli_is_secure_by_default(built: Path, tmp_path: Path) -> None:
    h = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "simulate", "--help"], capture_output=True,
                       text=True)
    assert all(o in h.stdout for o in ("--clip", "--neighbours", "--threshold", "--dp-noise-multiplier", "--no-secure"))
    p, r = _simulate(built, tmp_path)
    assert r["kind"] == "simulate" and r["config"]["aggregator"] == "secagg+"
    sec = [x["secure"] for x in r["rounds"][1:]]
    assert len(sec) == 2 and all(s and s["secure"] and not s["aborted"] for s in sec)
    assert all(not any(s["dropouts"].values()) for s in sec)
    assert "secure aggregation (SecAgg+): 2 of 2 rounds without dropouts" in p.stdout
    q, plain = _simulate(built, tmp_path, "--no-secure")
    assert plain["config"]["aggregator"] != "secagg+" and all(x["secure"] is None for x in plain["rounds"])
    assert "SecAgg+" not in q.stdout
    # same seed, same devices: the two runs differ only by the encoding's rounding
    for a, b in zip(r["rounds"], plain["rounds"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert r["rounds"][-1]["accuracy"] > r["rounds"][0]["accuracy"] + 0.15
    # one device cannot aggregate securely: a usage error, not a run of aborted rounds
    one = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "simulate", "--devices", "1", "--build", str(built),
                          "--rounds", "1", "--insns-per-sample", "50000"], capture_output=True, text=True, timeout=120)
    assert one.returncode == 2 and "at least 3 devices" in one.stderr and "--no-secure" in one.stderr


def test_an_aborted_secure_round_leaves_the_model_and_no_process(built: Path) -> None:
    """Two of three devices lose power before advertising keys: too few live holders
    of the last one's shares, so the round aborts with the global model unchanged;
    the next round (the two still off) cannot aggregate securely either."""
    build = FlBuild.load(built)
    parts = _parts(build, before={1: "ADVERTISE_KEYS", 2: "ADVERTISE_KEYS"})
    run = _runner(build, parts, secure=True, rounds=2)
    try:
        run.setup()
        init = run.state.params.copy()
        rec = run.run_round()
        assert not rec.completed and rec.secure is not None and rec.secure["aborted"]
        assert rec.secure["dropouts"]["ADVERTISE_KEYS"] == ["virtual1", "virtual2"]
        np.testing.assert_array_equal(run.state.params, init)
        assert [d.stage for d in run.state.devices] == [DevStage.READY, DevStage.OUT, DevStage.OUT]
        rec2 = run.run_round()
        assert not rec2.completed and rec2.version == 0
        assert {d.name: d.status for d in rec2.devices} == {"virtual0": "ok", "virtual1": "absent",
                                                            "virtual2": "absent"}
        np.testing.assert_array_equal(run.state.params, init)
    finally:
        run.close()


def test_simulate_with_distributed_dp(built: Path, tmp_path: Path) -> None:
    """`tinyfed simulate --dp distributed`: the virtual devices (their C client) add the noise, the
    report names the mechanism, z, delta and epsilon (growing per round); the noise is visible."""
    p, r = _simulate(built, tmp_path, "--dp", "distributed", "--dp-noise-multiplier", "0.5", "--dp-delta", "1e-5")
    dps = [x["secure"]["dp"] for x in r["rounds"][1:]]
    assert [d["mechanism"] for d in dps] == ["distributed", "distributed"]
    assert all(d["noise_multiplier"] == 0.5 and d["delta"] == 1e-5 and d["z_milli"] == 500 for d in dps)
    assert 0 < dps[0]["epsilon"] < dps[1]["epsilon"] and dps[1]["rounds"] == 2
    assert all(d["noise_multiplier_effective"] >= 0.5 and d["device_sigma_decoded"] > 0 for d in dps)
    top = r["dp"]  # the run's dp (issue 13's report keys)
    assert (top["mechanism"], top["noise_multiplier"], top["delta"]) == ("distributed", 0.5, 1e-5)
    assert top["epsilon"] == pytest.approx(dps[1]["epsilon"])
    q, plain = _simulate(built, tmp_path)  # the same run without DP: the noise moved the losses
    assert any(abs(a["loss"] - b["loss"]) > 1e-3 for a, b in zip(r["rounds"][1:], plain["rounds"][1:]))
