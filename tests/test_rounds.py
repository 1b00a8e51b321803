"""Federated rounds against devices compiled for the host (the real device C
code: protocol, round logic, training engine, parameter store), over TCP:
FedAvg arithmetic, the round state machine, a device timing out, a device
killed mid-round, a device with another model, corrupt frames during the
parameter transfer, persistence across a device restart, protocol order
errors, and the `tinyfed simulate` / `tinyfed fleet` command lines."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from fl_setup import FlSetup, make_digits_setup
from tinyfed_host.experiment import make_evaluator
from tinyfed_host.faultproxy import FaultProxy, FaultSpec
from tinyfed_host.aggregation import WEIGHT_ONE, Contribution, PlainAggregation, public_weight
from tinyfed_host.fedavg import AggregationError, fedavg
from tinyfed_host.fl_client import ENC_F32, Update, encode_f32, fetch_update, send_params, train
from tinyfed_toolchain.facts.train_config import TrainConfig
from tinyfed_host.native_device import build_native_device, start_host_device, start_native_devices
from tinyfed_host.protocol import ClientOptions, DeviceClient, DeviceError
from tinyfed_host.rounds import DevStage, FedAvgRunner, FleetConfig, RoundError, SerialParticipant, Stage
from tinyfed_host.strategy import server_step
from tinyfed_host.inprocess import DeviceLibrary, InProcessDevice
from tinyfed_host.participant import InProcessParticipant
from tinyfed_toolchain.training.native_trainer import NativeTrainer

CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> FlSetup:
    return make_digits_setup(tmp_path_factory.mktemp("fl_rounds"), devices=3, per_device=160)


@pytest.fixture(scope="module")
def host(setup: FlSetup) -> tuple[NativeTrainer, np.ndarray]:
    tr = NativeTrainer(setup.model_dir)
    return tr, tr.params()


def _runner(setup: FlSetup, host: tuple[NativeTrainer, np.ndarray], parts: list, **cfg: object) -> FedAvgRunner:
    tr, init = host
    return FedAvgRunner(parts, init_params=init, model_hash=setup.model_hash,
                        evaluator=make_evaluator(tr, *setup.test),
                        config=FleetConfig(**{"updates": 2, "train": CFG, "train_timeout": 20.0, **cfg}),
                        log=lambda s: None)


def _opts() -> ClientOptions:
    return ClientOptions(timeout=1.0, retries=4)


# ---- FedAvg arithmetic ------------------------------------------------------------------------
def test_plain_aggregation_is_weighted_fedavg() -> None:
    rng = np.random.default_rng(0)
    n = 37
    deltas = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    samples = [10, 250, 3]
    members = [Contribution(k + 1, f"d{k}", None, 5, w, Update(f"d{k}", 5, n, ENC_F32, w, encode_f32(d), 0.0, 0.0),
                            0, public_weight(1.0, w)) for k, (d, w) in enumerate(zip(deltas, samples))]
    a = PlainAggregation().aggregate(6, n, members)
    assert a.samples_total == 263 and a.weight_total == 263 * WEIGHT_ONE and a.count == 3
    want = sum(w * d.astype(np.float64) for d, w in zip(deltas, samples)) / 263
    np.testing.assert_allclose(a.mean, want, rtol=1e-12, atol=1e-12)
    p = rng.standard_normal(n).astype(np.float32)
    # synchronous FedAvg: the server step is exactly the reference formula
    np.testing.assert_array_equal(server_step(p, a, 1.0), fedavg(p, deltas, samples))
    # what does not fit is left out, by name, and the rest is summed
    bad = [Contribution(9, "short", None, 5, 1, Update("short", 5, n - 1, ENC_F32, 1, encode_f32(deltas[0][:-1]), 0, 0),
                        0, WEIGHT_ONE),
           Contribution(10, "d0", None, 5, 1, Update("d0", 5, n, ENC_F32, 1, encode_f32(deltas[0]), 0, 0), 0,
                        WEIGHT_ONE),
           Contribution(11, "nan", None, 5, 1, Update("nan", 5, n, ENC_F32, 1,
                                                      encode_f32(np.full(n, np.nan, np.float32)), 0, 0), 0, WEIGHT_ONE),
           Contribution(12, "none", None, 5, 1, None, 0, WEIGHT_ONE)]
    b = PlainAggregation().aggregate(6, n, members + bad)
    assert b.count == 3 and set(b.dropped) == {"short", "d0", "nan", "none"}
    np.testing.assert_array_equal(b.mean, a.mean)
    with pytest.raises(AggregationError):
        PlainAggregation().aggregate(6, n, [bad[0], *bad[2:]])


# ---- rounds on host-compiled devices ------------------------------------------------------------
def test_rounds_fedavg_equals_average_of_received_deltas(setup: FlSetup, host, tmp_path: Path) -> None:
    with start_native_devices(setup.model_dir, setup.shards, workdir=tmp_path) as fleet:
        parts = [SerialParticipant(d.url, _opts(), name=d.name) for d in fleet]
        run = _runner(setup, host, parts, updates=3)
        run.setup()
        assert run.state.stage is Stage.EVALUATE
        with pytest.raises(RoundError):
            run.setup()
        for r in range(1, 4):
            before = run.state.params.copy()
            rec = run.run_round()
            assert rec.completed and rec.updates == 3 and rec.round == r
            ups = run.state.last_updates
            assert sorted(u.device for u in ups) == sorted(p.name for p in parts)
            assert [u.weight for u in sorted(ups, key=lambda u: u.device)] == [len(y) for _, y in setup.shards]
            # the new global parameters are exactly FedAvg of what was received
            np.testing.assert_array_equal(run.state.params, fedavg(before, [u.delta() for u in ups],
                                                                   [u.weight for u in ups]))
            assert all(u.norm == pytest.approx(float(np.linalg.norm(u.delta())), rel=1e-5) for u in ups)
            for d in rec.devices:
                assert d.status == "ok" and d.train is not None and d.train.samples == d.weight
                assert d.traffic.payload_out == d.traffic.payload_in == 4 * setup.n_params
                assert d.traffic.wire_out > d.traffic.payload_out  # framing, acks, requests
        recs = run.state.records
        # the global model improves over round 0 on the host's held-out split
        assert recs[-1].accuracy > recs[0].accuracy + 0.05
        assert recs[-1].loss < recs[0].loss
        run.close()


def test_device_training_is_the_host_engine(setup: FlSetup, host, tmp_path: Path) -> None:
    """A device's update equals the host engine's and the in-process device's for the same
    parameters, configuration and shard (same C code, float32, no FMA contraction)."""
    tr, init = host
    x, y = setup.shards[0]
    v = InProcessParticipant(InProcessDevice(DeviceLibrary.build(setup.model_dir), x, y, name="v"))
    assert v.open().training
    with start_native_devices(setup.model_dir, [setup.shards[0]], workdir=tmp_path) as fleet:
        dev = DeviceClient.connect(fleet[0].url, _opts())
        dev.hello()
        send_params(dev, 7, init, setup.model_hash)
        res = train(dev, 7, CFG, timeout=20)
        u = fetch_update(dev, 7)
        dev.close()
    v.push_params(7, init, setup.model_hash, False)
    vres = v.train(7, CFG, 10)
    vu = v.fetch_update(7, ENC_F32)
    np.testing.assert_array_equal(u.delta(), vu.delta())
    tr.set_params(init)
    tr.fit(CFG, x, y)
    np.testing.assert_array_equal(u.delta(), tr.params() - init)
    assert (res.samples, res.seen, res.steps, res.train_correct, res.eval_correct) == \
        (vres.samples, vres.seen, vres.steps, vres.train_correct, vres.eval_correct)
    assert res.train_loss_sum == pytest.approx(vres.train_loss_sum, rel=1e-6)


def test_timeout_is_left_out_and_round_completes(setup: FlSetup, host, tmp_path: Path) -> None:
    with start_native_devices(setup.model_dir, setup.shards, workdir=tmp_path,
                            train_delay_ms=[0, 0, 4000]) as fleet:
        parts = [SerialParticipant(d.url, _opts(), name=d.name) for d in fleet]
        run = _runner(setup, host, parts, updates=1, train_timeout=1.5)
        recs = run.run()
        r1 = recs[1]
        status = {d.name: d.status for d in r1.devices}
        assert status == {"hostdev0": "ok", "hostdev1": "ok", "hostdev2": "timeout"}
        assert r1.completed and r1.updates == 2
        assert r1.aggregate_weight == len(setup.shards[0][1]) + len(setup.shards[1][1])
        assert run.state.devices[2].stage is DevStage.OUT
        assert recs[1].loss < recs[0].loss  # the two others' updates were applied
        run.close()


def test_device_killed_mid_round(setup: FlSetup, host, tmp_path: Path) -> None:
    with start_native_devices(setup.model_dir, setup.shards, workdir=tmp_path) as fleet:

        class KillAfterParams(SerialParticipant):
            def push_params(self, version: int, params: np.ndarray, model_hash: bytes, persist: bool) -> None:
                super().push_params(version, params, model_hash, persist)
                if version == 1:  # round 2 trains version 1
                    fleet[1].kill()  # power lost between PARAMS and TRAIN

        parts = [SerialParticipant(fleet[0].url, _opts(), name="a"),
                 KillAfterParams(fleet[1].url, _opts(), name="b"),
                 SerialParticipant(fleet[2].url, _opts(), name="c")]
        run = _runner(setup, host, parts, updates=3)
        recs = run.run()
        assert [r.updates for r in recs[1:]] == [3, 2, 2]
        r2 = {d.name: d for d in recs[2].devices}
        assert r2["b"].status in ("lost", "timeout") and r2["a"].status == r2["c"].status == "ok"
        assert {d.name: d.status for d in recs[3].devices}["b"] == "absent"  # rejoin failed: still out
        assert all(r.completed for r in recs[1:])
        run.close()


def test_other_model_is_refused_with_a_clear_message(setup: FlSetup, host, tmp_path: Path) -> None:
    other = make_digits_setup(tmp_path / "other", devices=1, per_device=50, hidden=12, epochs=2, seed=5)
    assert other.model_hash != setup.model_hash
    exe_other = build_native_device(other.model_dir)
    with start_native_devices(setup.model_dir, setup.shards[:2], workdir=tmp_path / "a") as fleet:
        odd = start_host_device(exe_other, *other.shards[0], name="odd", workdir=tmp_path / "b")
        try:
            msgs: list[str] = []
            parts = [SerialParticipant(d.url, _opts(), name=d.name) for d in fleet]
            parts.append(SerialParticipant(odd.url, _opts(), name="odd"))
            tr, init = host
            run = FedAvgRunner(parts, init_params=init, model_hash=setup.model_hash,
                               evaluator=make_evaluator(tr, *setup.test),
                               config=FleetConfig(updates=1, train=CFG), log=msgs.append)
            recs = run.run()
            assert [n for n, _ in run.state.refused] == ["odd"]
            msg = run.state.refused[0][1]
            assert other.model_hash.hex() in msg and setup.model_hash.hex() in msg and "refused" in msg
            assert any(msg in m for m in msgs)
            assert recs[1].updates == 2
            assert {d.name: d.status for d in recs[1].devices}["odd"] == "refused"
            # the device refuses parameters for another model too (defence in depth)
            dev = parts[-1].dev
            assert dev is not None
            with pytest.raises(DeviceError) as e:
                send_params(dev, 1, np.zeros(other.n_params, np.float32), setup.model_hash)
            assert e.value.name == "TFD_ERR_BAD_MODEL"
            run.close()
        finally:
            odd.stop()


def test_corrupt_frames_during_parameter_transfer(setup: FlSetup, host, tmp_path: Path) -> None:
    with start_native_devices(setup.model_dir, setup.shards[:2], workdir=tmp_path) as fleet:
        port = int(fleet[0].url.rsplit(":", 1)[1])
        spec = FaultSpec(flip=1e-3, drop=2e-4, inject=2e-4, d2h=False)  # corrupt what the host sends
        with FaultProxy(("127.0.0.1", port), spec, seed=11) as px:
            noisy = SerialParticipant(px.url, ClientOptions(timeout=0.3, retries=8), name="noisy")
            clean = SerialParticipant(fleet[1].url, _opts(), name="clean")
            run = _runner(setup, host, [noisy, clean], updates=2)
            recs = run.run()
            assert px.counters.faults >= 5
            assert all(r.updates == 2 for r in recs[1:]), [d.as_dict() for r in recs[1:] for d in r.devices]
            assert noisy.dev is not None and noisy.dev.counters.resends + noisy.dev.counters.nacks > 0
            # the round's result is the clean FedAvg of the received (CRC-checked) deltas
            assert run.state.last_aggregate is not None and run.state.last_aggregate.count == 2
            run.close()


def test_parameters_persist_across_a_device_restart(setup: FlSetup, host, tmp_path: Path) -> None:
    tr, init = host
    exe = build_native_device(setup.model_dir)
    x, y = setup.shards[0]
    store = tmp_path / "dev.storage"
    d = start_host_device(exe, x, y, name="p", workdir=tmp_path, storage=store)
    try:
        dev = DeviceClient.connect(d.url, _opts())
        info = dev.hello()
        assert info.caps & 0x08  # CAP_PERSIST
        fresh = dev.eval()
        trained = init + 0.05 * np.sign(np.random.default_rng(1).standard_normal(init.size)).astype(np.float32)
        send_params(dev, 9, trained, setup.model_hash, persist=True)
        after = dev.eval()
        assert after.loss_sum != fresh.loss_sum
        dev.close()
    finally:
        d.stop()
    d = start_host_device(exe, x, y, name="p", workdir=tmp_path, storage=store)
    try:
        dev = DeviceClient.connect(d.url, _opts())
        dev.hello()
        again = dev.eval()
        assert (again.correct, again.loss_sum) == (after.correct, after.loss_sum)
        assert "restored parameters of round 9" in d.log()
        dev.close()
    finally:
        d.stop()


def test_protocol_order_and_checks(setup: FlSetup, host, tmp_path: Path) -> None:
    tr, init = host
    exe = build_native_device(setup.model_dir)
    d = start_host_device(exe, *setup.shards[0], name="o", workdir=tmp_path)
    try:
        dev = DeviceClient.connect(d.url, _opts())
        dev.hello()

        def err(fn) -> DeviceError:  # type: ignore[no-untyped-def]
            with pytest.raises(DeviceError) as e:
                fn()
            return e.value

        tf = {"round": 1, "epochs": 1, "batch": 8, "lr": 0.01, "momentum": 0.0, "weight_decay": 0.0, "seed": 0,
              "schedule": 0, "max_samples": 0}
        assert err(lambda: dev.request("TRAIN", **tf)).name == "TFD_ERR_PROTO_STATE"
        assert err(lambda: dev.request("GET_UPDATE", round=1, encoding=ENC_F32)).name == "TFD_ERR_PROTO_STATE"
        assert err(lambda: dev.request("PARAMS", round=1, n_params=setup.n_params, encoding=ENC_F32, flags=0,
                                       crc32=0, model_hash=setup.model_hash)).name == "TFD_ERR_PROTO_STATE"
        assert err(lambda: dev.send_payload("MODEL_PARAMS", b"\0" * 12)).name == "TFD_ERR_SHAPE"
        data = encode_f32(init)
        dev.send_payload("MODEL_PARAMS", data)
        e = err(lambda: dev.request("PARAMS", round=1, n_params=setup.n_params + 1, encoding=ENC_F32, flags=0,
                                    crc32=zlib.crc32(data), model_hash=setup.model_hash))
        assert e.name == "TFD_ERR_SHAPE" and e.detail == setup.n_params
        assert err(lambda: dev.request("PARAMS", round=1, n_params=setup.n_params, encoding=ENC_F32, flags=0,
                                       crc32=zlib.crc32(data) ^ 1, model_hash=setup.model_hash)).name == "TFD_ERR_FRAME_CRC"
        dev.request("PARAMS", expect=("ACK",), round=1, n_params=setup.n_params, encoding=ENC_F32, flags=0,
                    crc32=zlib.crc32(data), model_hash=setup.model_hash)
        assert err(lambda: dev.request("TRAIN", **{**tf, "round": 2})).name == "TFD_ERR_ARG"
        assert err(lambda: dev.request("TRAIN", **{**tf, "lr": -1.0})).name == "TFD_ERR_ARG"
        assert err(lambda: dev.receive_payload("MODEL_UPDATE", 1)).name == "TFD_ERR_PROTO_STATE"
        dev.request("TRAIN", expect=("TRAIN_RESULT",), timeout=20, **tf)
        assert err(lambda: dev.request("TRAIN", **tf)).name == "TFD_ERR_PROTO_STATE"  # once per PARAMS
        assert err(lambda: dev.request("GET_UPDATE", round=2, encoding=ENC_F32)).name == "TFD_ERR_ARG"
        assert err(lambda: dev.request("GET_UPDATE", round=1, encoding=9)).name == "TFD_ERR_ARG"
        u = fetch_update(dev, 1)
        assert u.n_params == setup.n_params and u.weight == len(setup.shards[0][1])
        assert err(lambda: dev.receive_payload("MODEL_UPDATE", 2)).name == "TFD_ERR_ARG"
        dev.close()
    finally:
        d.stop()


# ---- command lines ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(setup: FlSetup, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinyfed_toolchain.build import BuildOptions, run_build

    out = tmp_path_factory.mktemp("fl_build")
    tfl = out / "m.tflite"
    tfl.write_bytes(setup.tflite)
    run_build(BuildOptions(tflite=tfl, dataset="digits", out_dir=out / "b", devices=3, images=False,
                           head_init="reset-head"), log=lambda s: None)
    return out / "b"


def test_build_emits_what_rounds_need(built: Path) -> None:
    rep = json.loads((built / "build_report.json").read_text())
    assert rep["training"]["scheme"] == "last2" and rep["training"]["head_init"] == "reset-head"
    assert (built / "model_c" / "train_data.c").is_file() and (built / "test_y.npy").is_file()
    z = [np.load(built / "devices" / f"dev{k}" / "shard.npz") for k in range(3)]
    assert sum(len(a["y"]) for a in z) == sum(r["samples"] for r in rep["shards"])
    # reset-head: the classifier starts from scratch (chance-level accuracy), the layer below is kept
    tr = NativeTrainer(built / "model_c")
    x, y = np.load(built / "test_x_int8.npy"), np.load(built / "test_y.npy")
    correct, _, n = tr.eval(x, y)
    assert correct / n < 0.35


def test_simulate_cli(built: Path, tmp_path: Path) -> None:
    rep, png = tmp_path / "r.json", tmp_path / "r.png"
    p = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "simulate", "--devices", "4", "--build", str(built),
                        "--rounds", "3", "--no-secure", "--report", str(rep), "--plot", str(png),
                        "--insns-per-sample", "50000", "--target-accuracy", "0.5"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(rep.read_text())
    assert r["kind"] == "simulate" and len(r["rounds"]) == 4 and len(r["participants"]) == 4
    assert r["strategy"] == "sync" and r["secure"] is False
    assert r["payload_bytes_per_update"] == 4 * r["model"]["n_params"]
    assert r["device_train_mem_bytes"] == r["model"]["train_mem_bytes"] > 0
    times = [x["time_s"] for x in r["rounds"]]
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))  # virtual seconds
    hit = next(x["time_s"] for x in r["rounds"] if x["accuracy"] >= 0.5)
    assert r["time_to_target_s"] == hit
    assert all(x["updates"] == 4 and x["stale_dropped"] == 0 and x["bytes_up"] > x["payload_from_devices"] > 0
               for x in r["rounds"][1:])
    assert r["summary"]["final_accuracy"] > r["summary"]["round0_accuracy"] + 0.3
    from tinyfed_host.rounds import DEFAULT_TRAIN

    # same budget: rounds x local epochs
    assert r["centralised"]["epochs"] == 3 * DEFAULT_TRAIN.epochs and 0 < r["centralised"]["accuracy"] <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "centralised" in p.stdout and "step" in p.stdout


def test_fleet_cli_is_secure_by_default(built: Path, tmp_path: Path) -> None:
    h = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "fleet", "--help"], capture_output=True, text=True)
    assert all(o in h.stdout for o in ("--clip", "--neighbours", "--threshold", "--dp-noise-multiplier", "--no-secure"))
    shards = [np.load(built / "devices" / f"dev{k}" / "shard.npz") for k in range(3)]
    with start_native_devices(built / "model_c", [(z["x"], z["y"]) for z in shards], workdir=tmp_path,
                            storage=False) as fleet:
        rep = tmp_path / "r.json"
        man = tmp_path / "manifest.json"  # the fleet the native devices were provisioned in
        man.write_text(json.dumps(fleet.manifest.to_json()))
        p = subprocess.run([sys.executable, "-m", "tinyfed_host.cli", "fleet", *sum((["--port", d.url] for d in fleet), []),
                            "--manifest", str(man),
                            "--build", str(built), "--rounds", "2", "--epochs", "1", "--no-centralised", "--no-persist",
                            "--clip", "20", "--dp-noise-multiplier", "0.5", "--report", str(rep)],
                           capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(rep.read_text())
    sec = [x["secure"] for x in r["rounds"][1:]]
    assert all(s and s["secure"] and not s["aborted"] for s in sec)
    assert sec[0]["epsilon"] < sec[1]["epsilon"] and sec[0]["masking_overhead"] <= 1.10
    assert "secure aggregation (SecAgg+): 2 of 2 rounds without dropouts" in p.stdout and "epsilon" in p.stdout
