"""Federated rounds on emulated boards (QEMU mps2-an386, Cortex-M4F), end to end:
the build's device images (model + training plan + private shard), real
on-device training, FedAvg over the serial link.  Also: a board killed in the
middle of a round, a board running another model, corrupt frames during the
parameter transfer, and trained parameters surviving a board restart.

Small shards and one local epoch keep the whole file around a minute."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.qemu

if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

from fl_setup import make_digits_setup  # noqa: E402
from tinyfed_host.emulator import start_boards  # noqa: E402
from tinyfed_host.experiment import FlBuild  # noqa: E402
from tinyfed_host.faultproxy import FaultProxy, FaultSpec  # noqa: E402
from tinyfed_host.fedavg import fedavg  # noqa: E402
from tinyfed_host.fl_client import ENC_F32  # noqa: E402
from tinyfed_toolchain.facts.train_config import TrainConfig  # noqa: E402
from tinyfed_host.protocol import ClientOptions, DeviceClient  # noqa: E402
from tinyfed_host.report import build_report  # noqa: E402
from tinyfed_host.rounds import FedAvgRunner, FleetConfig, SerialParticipant  # noqa: E402
from tinyfed_host.simulate import make_participants  # noqa: E402

BOARD = "mps2-an386"
CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=5)
ICOUNT = 6


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> FlBuild:
    from tinyfed_toolchain.build import BuildOptions, run_build

    root = tmp_path_factory.mktemp("fleet_qemu")
    setup = make_digits_setup(root / "setup")
    (root / "m.tflite").write_bytes(setup.tflite)
    # 3 boards with non-IID shards of the digits training split
    run_build(BuildOptions(tflite=root / "m.tflite", dataset="digits", out_dir=root / "b", board=BOARD, devices=3),
              log=lambda s: None)
    return FlBuild.load(root / "b")


def _opts() -> ClientOptions:
    return ClientOptions(timeout=3.0, retries=6)


def _runner(build: FlBuild, parts: list, rounds: int, log: list[str] | None = None) -> FedAvgRunner:
    return FedAvgRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                        evaluator=build.evaluator(), config=FleetConfig(updates=rounds, train=CFG, train_timeout=60),
                        log=(log.append if log is not None else (lambda s: None)))


def test_rounds_on_three_boards(build: FlBuild, tmp_path: Path) -> None:
    assert len(build.images) == 3
    boards = start_boards(3, BOARD, build.images, ICOUNT, storage_dir=tmp_path / "st", log_dir=tmp_path)
    try:
        parts = [SerialParticipant(b.url, _opts(), name=f"board{k}") for k, b in enumerate(boards)]
        run = _runner(build, parts, 3)
        run.setup()
        for p in parts:
            assert p.info is not None and p.info.training and p.info.persist
            assert p.info.model_hash == build.model_hash
        befores = []
        for r in range(1, 4):
            before = run.state.params.copy()
            befores.append(before)
            rec = run.run_round()
            ups = run.state.last_updates
            assert rec.completed and rec.updates == 3
            # FedAvg of what was received, weighted by the devices' sample counts
            np.testing.assert_array_equal(run.state.params, fedavg(before, [u.delta() for u in ups],
                                                                   [u.weight for u in ups]))
            assert sorted(u.weight for u in ups) == sorted(len(s[1]) for s in build.shards)
            for d in rec.devices:
                t = d.train
                assert d.status == "ok" and t is not None
                assert t.seen == t.samples * CFG.epochs and t.steps == -(-t.samples // CFG.batch)
                assert 1_000 < t.insns_per_sample < 10_000_000  # QEMU -icount: instructions, not cycles
                assert t.train_mem_bytes == build.train_info["memory"]["mem_bytes"]
                assert t.sram_peak > t.train_mem_bytes
        recs = run.state.records
        assert recs[-1].accuracy > recs[0].accuracy + 0.05, [r.accuracy for r in recs]
        # the boards' training is the same C code as the host engine's: board0's last
        # update equals an in-process device's with the same shard, parameters and seed
        v = make_participants(build, build.shards[:1])[0]
        v.open()
        v.push_params(3, befores[-1], build.model_hash, False)
        v.train(3, TrainConfig(**{**CFG.__dict__, "seed": (CFG.seed + 3 * 7919) & 0xFFFFFFFF}), 10)
        mine = next(u for u in run.state.last_updates if u.device == "board0")
        np.testing.assert_allclose(mine.delta(), v.fetch_update(3, ENC_F32).delta(), rtol=1e-4, atol=1e-6)
        rep = build_report("fleet", model=build.model_json(), config={}, participants=[], records=recs,
                           centralised=None, wall=1.0)
        assert rep["rounds"][1]["bytes_to_devices"] > 4 * build.train_info["n_params"] * 3
        run.close()
    finally:
        for b in boards:
            b.stop()


def test_board_killed_mid_round(build: FlBuild, tmp_path: Path) -> None:
    boards = start_boards(3, BOARD, build.images, log_dir=tmp_path)
    try:
        class Killer(SerialParticipant):
            def train(self, version, cfg, timeout):  # type: ignore[no-untyped-def]
                if version == 1:  # round 2 (version 1 committed on the board): pull the plug now
                    boards[2].stop()
                return super().train(version, cfg, timeout)

        parts = [SerialParticipant(boards[0].url, _opts(), name="a"), SerialParticipant(boards[1].url, _opts(), name="b"),
                 Killer(boards[2].url, _opts(), name="c")]
        log: list[str] = []
        run = _runner(build, parts, 2, log)
        recs = run.run()
        assert [r.updates for r in recs[1:]] == [3, 2]
        st = {d.name: d.status for d in recs[2].devices}
        assert st["a"] == st["b"] == "ok" and st["c"] in ("lost", "timeout")
        assert recs[2].completed and recs[2].aggregate_weight == sum(len(s[1]) for s in build.shards[:2])
        assert any("c left out" in m for m in log)
        run.close()
    finally:
        for b in boards:
            b.stop()


def test_board_with_another_model_is_refused(build: FlBuild, tmp_path: Path) -> None:
    from tinyfed_toolchain.image.emit_shard import emit_shard
    from tinyfed_toolchain.image.firmware import build_image

    other = make_digits_setup(tmp_path / "other", devices=1, per_device=40, hidden=12, epochs=2, seed=7)
    emit_shard(other.shards[0][0].reshape(-1, 8, 8, 1), other.shards[0][1], tmp_path / "oshard", device=9,
               num_classes=10)
    odd = build_image(BOARD, other.model_dir, tmp_path / "oimg", extra_sources=[tmp_path / "oshard" / "shard_data.c"],
                      quiet=True).elf
    boards = start_boards(2, BOARD, [build.images[0], odd], log_dir=tmp_path)
    try:
        parts = [SerialParticipant(b.url, _opts(), name=f"board{k}") for k, b in enumerate(boards)]
        log: list[str] = []
        run = _runner(build, parts, 1, log)
        recs = run.run()
        assert [n for n, _ in run.state.refused] == ["board1"]
        msg = run.state.refused[0][1]
        assert "board1" in msg and other.model_hash.hex() in msg and build.model_hash.hex() in msg
        assert "refused" in msg and any(msg in m for m in log)
        assert recs[1].updates == 1 and {d.name: d.status for d in recs[1].devices}["board1"] == "refused"
        run.close()
    finally:
        for b in boards:
            b.stop()


def test_corrupt_frames_during_param_transfer_and_restart_keeps_params(build: FlBuild, tmp_path: Path) -> None:
    store = tmp_path / "st"
    boards = start_boards(2, BOARD, build.images[:2], storage_dir=store, log_dir=tmp_path)
    try:
        spec = FaultSpec(flip=1e-3, drop=2e-4, inject=2e-4, d2h=False)
        with FaultProxy(("127.0.0.1", boards[0].port), spec, seed=3) as px:
            noisy = SerialParticipant(px.url, ClientOptions(timeout=0.5, retries=8), name="noisy")
            clean = SerialParticipant(boards[1].url, _opts(), name="clean")
            run = _runner(build, [noisy, clean], 1)
            recs = run.run()
            assert px.counters.faults >= 3 and recs[1].updates == 2
            assert noisy.dev is not None and noisy.dev.counters.resends + noisy.dev.counters.nacks > 0
            before = noisy.dev.eval()  # the board evaluates the parameters it trained
            run.close()
    finally:
        boards[0].stop()
        boards[1].stop()
    # the run ended by giving every board the final global model (persisted): restart
    # board0 on the same storage and it evaluates that model, not the one it booted with
    assert run.state.final_holders == ["noisy", "clean"]
    again = start_boards(1, BOARD, build.images[:1], storage_dir=store, log_dir=tmp_path / "again")
    try:
        dev = DeviceClient.connect(again[0].url, _opts())
        dev.hello()
        after = dev.eval()
        dev.close()
        assert "restored trained parameters" in again[0].log()
        tr = build.trainer()
        tr.set_params(run.state.params)
        c, loss, n = tr.eval(*build.shards[0])
        assert after.samples == n and abs(after.correct - c) <= 1
        assert after.loss_sum == pytest.approx(loss, rel=1e-4)
        tr.set_params(build.init_params())
        c0, loss0, _ = tr.eval(*build.shards[0])
        assert abs(loss0 - loss) > 1e-3 * n  # and that is not what a fresh board evaluates
        assert before.samples == n
    finally:
        again[0].stop()
