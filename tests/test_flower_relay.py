"""The relay between tinyfed's Flower ServerApp and its gateways (host/flower/relay.py,
gateway.py, options.py), without a Flower runtime: the message codec and its
refusals, a gateway's boards answering every operation -- a whole SecAgg+ round
relayed as opaque bodies (the host server against the devices' own C clients,
here in-process devices) -- the Unix-socket hand-over of ``--isolation subprocess``,
and the run config of the Flower app.  The Flower transport itself is exercised
against a real SuperLink in tests/test_flower_qemu.py and tests/test_flower_sim.py."""

from __future__ import annotations

import dataclasses
import struct
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfed import FlowerRunOptions
from tinyfed_host.experiment import FlBuild
from tinyfed_host.fl_client import encode_f32
from tinyfed_host.flower.gateway import (GatewayBoards, GatewayError, GatewayOptions, RelayServer, call_gateway,
                                         relay_handler, superlink_address_problem)
from tinyfed_host.flower.options import ServerAppRun, ServerSettings, from_run_config, to_run_config
from tinyfed_host.flower.participant import participant_info
from tinyfed_host.flower.relay import (DeviceEntry, Op, OpResult, RelayError, RelayReply, RelayRequest, pack_fields,
                                       unpack_fields)
from tinyfed_host.inprocess import DeviceLibrary, InProcessDevice, provision
from tinyfed_host.participant import InProcessParticipant
from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits, decode_sum, n_words
from tinyfed_host.secagg.graph import harary_graph
from tinyfed_host.secagg.server import SecAggServer
from tinyfed_toolchain.facts.errors import OptionsError, TinyfedError
from tinyfed_toolchain.facts.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


# ---- the codec -----------------------------------------------------------------------------------
def test_request_and_reply_round_trip_through_the_packed_form() -> None:
    req = RelayRequest(7, (Op("socket://a", "PARAMS", {"version": 3, "index": 0}),
                           Op("socket://a", "TRAIN", {"version": 3, "cfg": {"lr": 0.1}}),
                           Op("/dev/ttyACM1", "SECAGG", {"stage": "SHARE_KEYS"}, bytes(range(256)) * 3)),
                       (b"\x00\x01" * 10,), inventory=True)
    back = RelayRequest.from_fields(unpack_fields(pack_fields(req.to_fields())))
    assert back == req
    rep = RelayReply(7, "gw0", (OpResult("socket://a", traffic=(1, 2, 3, 4)),
                                OpResult("socket://a", "timeout", "TRAIN failed", {"x": 1.5}, b"\x00" * 9)),
                     (DeviceEntry("socket://a", True, {"board": "b"}), DeviceEntry("x", False, {}, "gone", "n")))
    assert RelayReply.from_fields(unpack_fields(pack_fields(rep.to_fields()))) == rep
    assert RelayRequest.from_fields(unpack_fields(pack_fields(RelayRequest(1).to_fields()))) == RelayRequest(1)


@pytest.mark.parametrize("mangle", [
    lambda b: b[:-1],  # truncated
    lambda b: b + b"\x00",  # trailing bytes
    lambda b: b[:4] + b"\xff\xff\xff\x7f" + b[8:],  # a key length past the end
])
def test_malformed_packed_messages_are_refused(mangle: Any) -> None:
    good = pack_fields(RelayRequest(1, (Op("d", "HELLO"),)).to_fields())
    with pytest.raises(RelayError):
        unpack_fields(mangle(good))


def test_malformed_requests_are_refused_with_one_clear_error() -> None:
    f = RelayRequest(1, (Op("d", "HELLO"),)).to_fields()
    for bad, what in [({**f, "v": 99}, "relay version"), ({**f, "op": ["HELLO", "TRAIN"]}, "different lengths"),
                      ({**f, "op": ["REBOOT"]}, "unknown operation"), ({**f, "args": ["[1]"]}, "JSON"),
                      ({**f, "seq": "1"}, "seq"), ({**f, "data": [1]}, "data")]:
        with pytest.raises(RelayError, match=what):
            RelayRequest.from_fields(bad)
    assert issubclass(RelayError, TinyfedError)


@pytest.mark.parametrize("address, why", [("nonsense", "expected HOST:PORT"), ("host:", "expected HOST:PORT"),
                                          ("127.0.0.1:99999", "not in 1..65535"), ("127.0.0.1:0", "not in 1..65535"),
                                          ("a b:9093", "expected HOST:PORT")])
def test_a_bad_superlink_address_is_refused_before_anything_starts(address: str, why: str) -> None:
    with pytest.raises(GatewayError, match=why):
        GatewayOptions(superlink=address, ports=("socket://127.0.0.1:1",), insecure=True).checked()
    with pytest.raises(OptionsError, match=why):
        FlowerRunOptions(superlink=address, insecure=True).check()
    for good in ("127.0.0.1:9093", "server.example:443", "[::1]:9093"):
        assert superlink_address_problem(good) is None


# ---- a gateway's boards (in-process devices: the boards' C code) ---------------------------------------
# (a release image refusing SA_ENCODED, which check-exact asks for, is the device's own test:
# tests/test_secagg_qemu.py / the device protocol tests)
@pytest.fixture(scope="module")
def build(digits_fl_build: Path) -> FlBuild:
    return FlBuild.load(digits_fl_build)


def _boards(build: FlBuild, n: int = 3) -> tuple[GatewayBoards, list[InProcessDevice]]:
    # TEST devices (SA_ENCODED compiled in): the exactness check below reads the plain encodings
    lib = DeviceLibrary.build(build.model_dir, build.train_dir, test_messages=True)
    devs = [InProcessDevice(lib, x, y, name=f"dev{k}") for k, (x, y) in enumerate(build.shards[:n])]
    provision(devs)  # device k is id k + 1 of a fleet made for them (SecAgg+ needs identities)
    by_name = {d.name: d for d in devs}
    boards = GatewayBoards("gw", list(by_name), lambda url: InProcessParticipant(by_name[url]), log=lambda s: None)
    boards.open_all()
    return boards, devs


def test_a_secure_round_relayed_through_a_gateway(build: FlBuild) -> None:
    boards, devs = _boards(build)
    names = [d.name for d in devs]
    params = encode_f32(build.init_params())
    cfg = dataclasses.asdict(TrainConfig(epochs=1, max_samples=20))
    req = RelayRequest(1, tuple(op for n in names for op in (
        Op(n, "PARAMS", {"version": 1, "persist": False, "model_hash": build.model_hash.hex(), "index": 0}),
        Op(n, "TRAIN", {"version": 1, "timeout": 60.0, "cfg": cfg}))), (params,), inventory=True)
    rep = RelayReply.from_fields(relay_handler(boards)(req.to_fields()))  # the fields as Flower carries them
    assert [r.failure for r in rep.results] == [""] * 6 and rep.gateway == "gw"
    assert {d.device for d in rep.devices} == set(names) and all(d.online for d in rep.devices)
    # each board's identity (GET_IDENTITY) crosses the relay with its HELLO fields
    ids = {d.device: participant_info(d.device, d.info).identity for d in rep.devices}
    assert {n: (i.status, i.device_id) for n, i in ids.items()} == {n: (0, k + 1) for k, n in enumerate(names)}
    assert len({i.manifest_digest for i in ids.values()}) == 1
    weights = [r.fields["samples"] for r in rep.results[1::2]]
    assert weights == [20, 20, 20]  # max_samples
    assert all(r.traffic[0] == 4 * build.init_params().size for r in rep.results[1::2])  # the link: the params

    # SecAgg+: the host server against the devices' C clients; the gateway relays opaque bodies
    enc = Encoding(10.0, choose_fraction_bits(3, 10.0), 20)
    seq = [1]

    def batch(stage: str, calls: list[tuple[Any, bytes]]) -> list[Any]:
        seq[0] += 1
        ops = [Op(ep.name, "SECAGG", {"stage": stage, "client_id": ep.id, "clip": enc.clip32,
                                      "frac_bits": enc.frac_bits, "weight_max": enc.weight_max,
                                      "encoded": stage == "MASKED_INPUT"}, body) for ep, body in calls]
        out = RelayReply.from_fields(unpack_fields(pack_fields(
            relay_handler(boards)(RelayRequest(seq[0], tuple(ops)).to_fields()))))
        res: list[Any] = []
        for (ep, body), r in zip(calls, out.results):
            if not r.ok:
                res.append(ConnectionError(r.error))
            elif "reply_len" in r.fields:  # TEST images only; a release image refuses SA_ENCODED
                n = r.fields["reply_len"]
                ep.encoded = np.frombuffer(r.data[n:], dtype="<u4")
                res.append(r.data[:n])
            else:
                res.append(r.data)
        return res

    @dataclasses.dataclass
    class Ep:
        id: int
        name: str
        batch: Any
        encoded: Any = None

        def exchange(self, message: str, payload: bytes) -> bytes:
            raise AssertionError("batched")

    eps = [Ep(k + 1, n, batch) for k, n in enumerate(names)]
    srv = SecAggServer(harary_graph([1, 2, 3], 2, seed=0), 2, 99, n_words(build.init_params().size))
    res = srv.run(eps)
    assert res.survivors == (1, 2, 3)
    plain = sum(e.encoded.astype(np.uint64) for e in eps) % (1 << 32)
    assert np.array_equal(res.sum_words, plain.astype(np.uint32))  # relayed bodies, exact sum
    assert decode_sum(res.sum_words, enc)[1] == sum(weights)


def test_lost_and_unknown_boards_fail_alone(build: FlBuild) -> None:
    boards, devs = _boards(build, 2)
    devs[1].power_off()  # a board losing power: its link fails, the other board is not affected
    req = RelayRequest(1, (Op("dev0", "HELLO"), Op("dev1", "HELLO"), Op("dev1", "UPDATE", {"version": 1, "encoding": 0}),
                           Op("nope", "HELLO")))
    rep = boards.handle(req)
    assert [r.failure for r in rep.results] == ["", "lost", "lost", "gateway"]
    assert "not run" in rep.results[2].error and "no board 'nope'" in rep.results[3].error
    assert rep.results[0].fields["model_hash"] == build.model_hash.hex()
    devs[1].power_on()
    assert boards.handle(RelayRequest(2, (Op("dev1", "HELLO"),))).results[0].ok  # it rejoins
    bad = relay_handler(boards)(RelayRequest(3, (Op("dev0", "TRAIN", {"version": 1}),)).to_fields())
    assert RelayReply.from_fields(bad).results[0].failure == "gateway"  # TRAIN without cfg: refused, not a crash
    assert "missing field" in relay_handler(boards)({"v": 1, "seq": 4})["fault"]  # no operations list: a fault


def test_unix_socket_hand_over(build: FlBuild) -> None:
    boards, _ = _boards(build, 1)
    srv = RelayServer(boards, log=lambda s: None).start()
    try:
        assert (srv.dir.stat().st_mode & 0o777) == 0o700
        rep = RelayReply.from_fields(call_gateway(srv.path, RelayRequest(5, (Op("dev0", "HELLO"),)).to_fields(), 30))
        assert rep.seq == 5 and rep.results[0].ok
        assert "fault" in call_gateway(srv.path, {"v": 2}, 30)  # malformed: a clear fault, the gateway lives on
        assert call_gateway(srv.path, RelayRequest(6, inventory=True).to_fields(), 30)["inv"]
    finally:
        srv.close()
    assert not srv.dir.exists()


# ---- the app's run config -------------------------------------------------------------------------------
def test_run_config_matches_the_app_table_and_round_trips() -> None:
    table = tomllib.loads((ROOT / "host/flower/app/pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert table["components"] == {"serverapp": "tinyfed_host.flower.server_app:app",
                                   "clientapp": "tinyfed_host.flower.client_app:app"}
    cfg = table["config"]
    assert cfg == to_run_config(ServerAppRun()) and from_run_config(cfg) == ServerAppRun()
    import tinyfed

    run = tinyfed.FlowerRunOptions(secure=None, server=ServerSettings(min_devices=7, check_exact=True),
                                   report=Path("/r.json")).server_app_run()
    back = from_run_config(to_run_config(run))
    assert back == run and back.secure is None and back.server.min_devices == 7
    with pytest.raises(OptionsError, match="min_devices"):
        from_run_config({"min-devices": 1})  # secure by default: at least 2 boards
    with pytest.raises(OptionsError, match="expected int"):
        from_run_config({"updates": "many"})
