"""The public Python API (`import tinyfed`): a host script's path through the chain --
build a small model from an .npz, verify it, simulate two rounds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import tinyfed


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tinyfed.BuildResult:
    """A 3-class sensor-like dataset (16 features) as an .npz, built with the API."""
    root = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(5)
    centres = rng.normal(0.0, 2.0, size=(3, 16))
    y = rng.integers(0, 3, size=600)
    x = (centres[y] + rng.normal(0.0, 1.0, size=(600, 16))).astype(np.float32)
    np.savez(root / "sensor.npz", x=x, y=y, class_names=np.array(["idle", "walk", "run"]))
    return tinyfed.build(dataset=str(root / "sensor.npz"), out_dir=root / "build", devices=2, quick=True,
                         images=False, train_scheme="last1", verify_samples=32, log=lambda line: None)


def test_build_from_npz(built: tinyfed.BuildResult) -> None:
    assert built.tflite.is_file() and (built.model_dir / "model_data.c").is_file()
    assert built.verify_mismatches == 0 and built.verify_total == 32
    assert len(built.device_dirs) == 2 and built.images == []  # images=False: no cross build
    assert built.budget.arena > 0 and built.report["training"]["scheme"] == "last1"


def test_verify(built: tinyfed.BuildResult) -> None:
    x = np.load(built.out_dir / "test_x_int8.npy")[:16]
    res = tinyfed.verify(built.tflite, x, work_dir=built.out_dir / "verify-api")
    assert res.ok and res.mismatches == 0 and res.total == 16
    with pytest.raises(tinyfed.InputError, match="int8"):
        tinyfed.verify(built.tflite, x.astype(np.float32), work_dir=built.out_dir / "verify-api")


def test_simulate_two_rounds(built: tinyfed.BuildResult, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tinyfed.FleetConfig(), updates=2,
                              train=tinyfed.TrainConfig(lr=0.05, epochs=1, batch=8, max_samples=64))
    run = tinyfed.simulate(tinyfed.SimulateOptions(devices=3, build=built.out_dir, config=cfg,
                                                   centralised=False, state=tmp_path / "state.json",
                                                   report=tmp_path / "report.json",
                                                   timing=tinyfed.TimingOptions(insns_per_sample=50_000)),
                           log=lambda line: None)
    assert [r.round for r in run.records] == [0, 1, 2]
    assert 0 < run.records[1].time_s < run.records[2].time_s  # virtual seconds
    assert all(r.completed and r.secure and not r.secure["aborted"] for r in run.records[1:])  # SecAgg+ default
    assert (tmp_path / "report.json").is_file() and (tmp_path / "state.json").is_file()
    assert 0.0 <= run.records[-1].accuracy <= 1.0


def test_options_are_checked_before_any_work(built: tinyfed.BuildResult) -> None:
    with pytest.raises(tinyfed.OptionsError, match="at least 3 devices"):
        tinyfed.simulate(devices=1, build=built.out_dir)
    with pytest.raises(tinyfed.OptionsError, match="no board"):
        tinyfed.fleet(build=built.out_dir)
    with pytest.raises(tinyfed.OptionsError, match="clip"):
        tinyfed.simulate(devices=2, build=built.out_dir, secure=tinyfed.SecureOptions(clip=0.0))
