"""A host killed mid-run loses at most the round it was in (host/checkpoint.py).

In process (virtual devices, fast): the run dies inside round 3 (a device's
TRAIN raises SystemExit, as a killed host would stop there); the checkpoint
still holds round 2, and ``--resume`` continues to round 4 -- with plain
aggregation the final model equals the uninterrupted run's bit for bit (the
rounds' seeds depend on the round number only); with SecAgg+ and DP the
epsilon accounting continues (round 4 reports epsilon of 4 rounds).
Checkpoints of another model or with other options are refused with a clear
message; a truncated checkpoint is refused, not half-read.

On QEMU: `tinyfed fleet` is killed with SIGKILL in the middle of round 2 on 3
emulated boards (secure rounds); `tinyfed fleet --resume` reconnects to the
same boards and completes the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secagg_fleet import fleet_for
from tinyfed_host.checkpoint import Checkpoint, CheckpointError
from tinyfed_host.experiment import FlBuild
from tinyfed_toolchain.facts.train_config import TrainConfig
from tinyfed_host.fl_run import run_federated
from tinyfed_host.rounds import FleetConfig
from tinyfed_host.secagg import dp
from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions
from tinyfed_host.inprocess import DeviceLibrary, InProcessDevice
from tinyfed_host.participant import InProcessParticipant

CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=4, max_samples=48)
FLEET = FleetConfig(updates=4, train=CFG, parallel=False, final_broadcast=False)


@pytest.fixture(scope="module")
def built(digits_fl_build: Path) -> Path:
    return digits_fl_build


class Killed(InProcessParticipant):
    """An in-process device whose TRAIN in round ``die_in`` stops the host (as SIGKILL would, mid-round)."""

    def __init__(self, *a: Any, die_in: int | None = None, **k: Any) -> None:
        super().__init__(*a, **k)
        self.die_in = die_in

    def train(self, version: int, cfg: TrainConfig, timeout: float) -> Any:
        if self.die_in is not None and version == self.die_in - 1:  # round r trains version r - 1
            raise SystemExit("host killed")
        return super().train(version, cfg, timeout)


def _parts(build: FlBuild, die_in: int | None = None) -> list[Killed]:
    lib = DeviceLibrary.build(build.model_dir)
    fleet = fleet_for(range(1, len(build.shards) + 1))  # the devices' identities (secure aggregation)
    out = []
    for k, (x, y) in enumerate(build.shards):
        dev = InProcessDevice(lib, x, y, name=f"virtual{k}")
        dev.set_identity(fleet.record(k + 1), fleet.manifest)
        out.append(Killed(dev, die_in=die_in if k == 1 else None))
    return out


def _secure(z: float = 0.0) -> SecureAggregator:
    return SecureAggregator(SecureOptions(clip=10.0, seed=2, dp_noise_multiplier=z), log=lambda s: None)


def _run(build: FlBuild, state: Path, *, die_in: int | None = None, resume: bool = False, agg: Any = None,
         cfg: FleetConfig = FLEET) -> Any:
    return run_federated("simulate", build, _parts(build, die_in), cfg, aggregator=agg, with_centralised=False,
                         log=lambda s: None, state_path=state, resume=resume)


def test_plain_run_killed_in_round_3_resumes_to_the_same_model(built: Path, tmp_path: Path) -> None:
    build = FlBuild.load(built)
    whole = _run(build, tmp_path / "whole.json")
    state = tmp_path / "state.json"
    with pytest.raises(SystemExit):
        _run(build, state, die_in=3)
    ck = Checkpoint.read(state)
    assert ck.round == 2 and [r["round"] for r in ck.records] == [0, 1, 2]
    res = _run(build, state, resume=True)
    assert [r.round for r in res.records] == [0, 1, 2, 3, 4] and all(r.completed for r in res.records[1:])
    np.testing.assert_array_equal(res.runner.state.params, whole.runner.state.params)
    assert [r.accuracy for r in res.records] == [r.accuracy for r in whole.records]
    assert [r["round"] for r in res.report["rounds"]] == [0, 1, 2, 3, 4]
    assert res.report["dp"] is None  # no DP noise
    assert Checkpoint.read(state).round == 4


def test_secure_dp_run_resumes_with_its_epsilon_accounting(built: Path, tmp_path: Path) -> None:
    build = FlBuild.load(built)
    state = tmp_path / "state.json"
    with pytest.raises(SystemExit):
        _run(build, state, die_in=3, agg=_secure(z=1.5))
    assert Checkpoint.read(state).aggregator["rounds_done"] == 2
    res = _run(build, state, resume=True, agg=_secure(z=1.5))
    eps = [r.secure["epsilon"] for r in res.records[1:]]
    assert eps[3] == pytest.approx(dp.epsilon(1.5, 4, 1e-5)) and eps[0] < eps[1] < eps[2] < eps[3]
    # the report's dp (issue 13's names): the run's mechanism, z, delta and epsilon after its 4 rounds
    assert res.report["dp"] == {"mechanism": "central", "noise_multiplier": 1.5, "delta": 1e-5,
                                "epsilon": pytest.approx(eps[3]), "rounds": 4}
    assert all(r.secure["secure"] and not r.secure["aborted"] for r in res.records[1:])


def test_resume_refuses_another_run(built: Path, tmp_path: Path) -> None:
    build = FlBuild.load(built)
    state = tmp_path / "state.json"
    with pytest.raises(SystemExit):
        _run(build, state, die_in=2)
    other = FleetConfig(updates=4, train=TrainConfig(lr=0.05, epochs=1, seed=4, max_samples=48), parallel=False,
                        final_broadcast=False)
    with pytest.raises(CheckpointError, match="other options .*train"):
        _run(build, state, resume=True, cfg=other)
    with pytest.raises(CheckpointError, match="aggregator"):
        _run(build, state, resume=True, agg=_secure())  # plain run, resumed secure
    doc = json.loads(state.read_text())
    doc["model_hash"] = "00" * 32
    (tmp_path / "other.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="checkpoint of model"):
        _run(build, tmp_path / "other.json", resume=True)
    (tmp_path / "cut.json").write_text(state.read_text()[: len(state.read_text()) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        _run(build, tmp_path / "cut.json", resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _run(build, tmp_path / "absent.json", resume=True)


# ---- QEMU: SIGKILL of the host process in the middle of a secure round ---------------------------
qemu = pytest.mark.skipif(not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
                          reason="needs qemu-system-arm and arm-none-eabi-gcc")


@qemu
@pytest.mark.qemu
def test_fleet_killed_mid_round_resumes_on_the_same_boards(digits_fl_images: Path, tmp_path: Path) -> None:
    from tinyfed_host.emulator import start_boards

    out = digits_fl_images
    build = FlBuild.load(out)
    boards = start_boards(3, "mps2-an386", build.images[:3], log_dir=tmp_path / "qemu")
    state = tmp_path / "fleet_state.json"
    argv = [sys.executable, "-m", "tinyfed_host.cli", "fleet", "--build", str(out), "--rounds", "3",
            "--epochs", "1", "--max-samples", "40", "--no-centralised", "--no-persist", "--clip", "10",
            "--state", str(state), *[a for b in boards for a in ("--port", b.url)]]
    try:
        first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and first.poll() is None:
                try:
                    if Checkpoint.read(state).round >= 1:
                        break
                except CheckpointError:
                    pass
                time.sleep(0.2)
            assert first.poll() is None, first.communicate()[0].decode()
            time.sleep(1.5)  # into round 2: parameters sent, boards training or masking
            os.killpg(first.pid, signal.SIGKILL)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            if first.stdout:
                first.stdout.close()
        assert Checkpoint.read(state).round == 1
        second = subprocess.run([*argv, "--resume", "--report", str(tmp_path / "r.json")], capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "resuming" in second.stdout
        report = json.loads((tmp_path / "r.json").read_text())
        assert [r["round"] for r in report["rounds"]] == [0, 1, 2, 3]
        assert all(r["completed"] and r["updates"] == 3 and r["secure"]["secure"] for r in report["rounds"][1:])
        assert Checkpoint.read(state).round == 3
    finally:
        for b in boards:
            b.stop()
