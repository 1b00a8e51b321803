"""``tinyfed simulate --engine flower``: 20 devices as simulated Flower nodes
(Flower's simulation engine) give the built-in simulation's result for the
same shards and seeds:

* plain aggregation: the same final parameters bit for bit, the same
  accuracy every round;
* secure aggregation (SecAgg+ from each device's C client, relayed as opaque
  bodies): the same model to the fixed-point step -- each device's
  stochastic rounding draws fresh randomness (as a board's TRNG does), so
  two runs differ there, and only there.

Both Flower runs share one start of the simulation engine; every process it
starts (Ray's) is gone when it returns (checked by PID)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

import tinyfed  # noqa: E402
from proc_watch import Watch, left_running  # noqa: E402
from tinyfed_host.experiment import FlBuild  # noqa: E402
from tinyfed_host.flower.options import ServerAppRun  # noqa: E402
from tinyfed_host.flower.simulation import simulate_flower_runs  # noqa: E402
from tinyfed_host.simulate import fleet_shards  # noqa: E402

N = 20


def test_flower_engine_gives_the_builtin_result(digits_fl_build: Path, tmp_path: Path) -> None:
    bdir = digits_fl_build
    cfg = tinyfed.FleetConfig(updates=2, train=tinyfed.TrainConfig(epochs=1, lr=0.02, momentum=0.9, batch=8))
    sim = tinyfed.SimulateOptions(devices=N, build=bdir, config=cfg, centralised=False,
                                  timing=tinyfed.TimingOptions(insns_per_sample=300_000.0))
    builtin = {mode: tinyfed.simulate(dataclasses.replace(sim, secure=sec, state=tmp_path / f"{mode}.json"),
                                      log=lambda s: None)
               for mode, sec in (("plain", None), ("secure", tinyfed.SecureOptions(clip=10.0)))}

    build = FlBuild.load(bdir)
    shards = fleet_shards(build, N, scheme=sim.partition, alpha=sim.alpha, seed=sim.seed,
                          min_samples=sim.samples_per_device).shards
    build.shards = shards
    runs = [ServerAppRun(build=bdir, config=cfg, secure=sec, centralised=False, state=tmp_path / f"fl-{mode}.json")
            for mode, sec in (("plain", None), ("secure", tinyfed.SecureOptions(clip=10.0)))]
    with Watch() as watch:  # Flower's simulation engine starts Ray (GCS, raylet, workers...)
        plain, secure = simulate_flower_runs(build, shards, runs, log=lambda s: None)
    assert watch.seen  # it did start processes, and every one of them is gone
    left = left_running(watch.seen)
    assert not left, f"simulation processes left running (killed now): {left}"

    for res in (plain, secure):
        assert res.report["engine"] == "flower" and res.report["devices"] == N
        assert sorted(d["name"] for d in res.report["rounds"][1]["devices"]) == sorted(f"virtual{k}" for k in range(N))
        assert all(r.completed for r in res.records[1:])
    assert builtin["plain"].report["engine"] == "builtin" and builtin["plain"].report["devices"] == N

    a, b = builtin["plain"].runner.state.params, plain.runner.state.params
    assert np.array_equal(a, b)  # plain: bit for bit
    assert [r.accuracy for r in builtin["plain"].records] == [r.accuracy for r in plain.records]

    a, b = builtin["secure"].runner.state.params, secure.runner.state.params
    step = 2.0 ** -secure.records[1].secure["frac_bits"]
    assert np.max(np.abs(a - b)) <= 64 * step  # secure: the fixed-point step (observed ~1 step)
    assert abs(builtin["secure"].records[-1].accuracy - secure.records[-1].accuracy) <= 0.01
    assert secure.records[1].secure["dropouts"] == {s: [] for s in secure.records[1].secure["dropouts"]}
