"""The built-in simulation's fast path (host/direct.py, firmware/native/fl_batch.c):
in-process devices driven without the wire compute exactly what the same devices
compute behind their (memory) link -- the same TRAIN_RESULT and update bytes, the
same SecAgg+ sum -- and the link bytes the fast path models are within 0.5 % of
the bytes the framed exchanges really take (an upper bound)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyfed_host.direct import DirectFleet
from tinyfed_host.experiment import FlBuild
from tinyfed_host.fl_client import ENC_F32
from tinyfed_host.inprocess import DeviceLibrary, InProcessDevice, provision
from tinyfed_host.participant import InProcessParticipant
from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits, decode_sum, n_words
from tinyfed_host.secagg.graph import harary_graph
from tinyfed_host.secagg.serial import SerialEndpoint
from tinyfed_host.secagg.server import SecAggServer
from tinyfed_toolchain.facts.train_config import TrainConfig


@pytest.fixture(scope="module")
def build(digits_fl_build: Path) -> FlBuild:
    return FlBuild.load(digits_fl_build)


def test_direct_calls_equal_the_framed_device(build: FlBuild) -> None:
    lib = DeviceLibrary.build(build.model_dir, build.train_dir, test_messages=True)
    shards = build.shards[:4]
    fleet = DirectFleet(lib, shards, model_name=build.model_name, test_messages=True, threads=2)
    framed_devs = [InProcessDevice(lib, x, y, name=f"framed{k}") for k, (x, y) in enumerate(shards)]
    provision(framed_devs, fleet.fleet)  # the same identities (ids 1..4 of the same manifest)
    framed = [InProcessParticipant(d) for d in framed_devs]
    cfg = TrainConfig(epochs=2, lr=0.05, momentum=0.9, batch=8, seed=11, max_samples=30)
    p0 = build.init_params()
    for d, f in zip(fleet.participants, framed):
        assert d.open().model_hash == f.open().model_hash == build.model_hash
        t_d, t_f = d.traffic(), f.traffic()
        d.push_params(4, p0, build.model_hash, False)
        f.push_params(4, p0, build.model_hash, False)
        rd, rf = d.train(4, cfg, 60.0), f.train(4, cfg, 60.0)
        assert {**rd.__dict__, "elapsed_ms": 0} == {**rf.__dict__, "elapsed_ms": 0}
        ud, uf = d.fetch_update(4, ENC_F32), f.fetch_update(4, ENC_F32)
        assert ud.payload == uf.payload and (ud.weight, ud.norm, ud.n_params) == (uf.weight, uf.norm, uf.n_params)
        md, mf = d.traffic().minus(t_d), f.traffic().minus(t_f)
        assert (md.payload_out, md.payload_in) == (mf.payload_out, mf.payload_in) == (4 * p0.size, 4 * p0.size)
        for model, real in ((md.wire_out, mf.wire_out), (md.wire_in, mf.wire_in)):
            assert real <= model <= 1.005 * real + 64  # the framing formula: an upper bound, a few bytes per frame

    # SecAgg+ over the fast path's batch (one C call per stage) and over the framed devices' link:
    # both sums equal the plain sums of the encodings their devices masked, and carry the same weights
    n = len(shards)
    enc = Encoding(10.0, choose_fraction_bits(n, 10.0), 30)
    g = harary_graph(list(range(1, n + 1)), 2, seed=0)
    eps = [d.secagg_endpoint(k + 1, enc) for k, d in enumerate(fleet.participants)]
    calls: list[str] = []
    real = fleet.batch
    mine: dict[int, np.ndarray] = {}

    def spy(stage: str, c: list) -> list:  # noqa: ANN001
        calls.append(stage)
        out = real(stage, c)
        if stage == "MASKED_INPUT":  # TEST library: the words each device masked, before masking
            mine.update({ep.id: ep.participant.encoded(1234) for ep, _ in c})
        return out
    for e in eps:
        e.batch = spy
    res = SecAggServer(g, 2, 1234, n_words(p0.size)).run(eps)
    assert calls == ["ADVERTISE_KEYS", "SHARE_KEYS", "MASKED_INPUT", "SURVIVORS", "UNMASK"]
    assert res.survivors == (1, 2, 3, 4)
    sers = [SerialEndpoint(k + 1, f._client(), enc) for k, f in enumerate(framed)]
    encoded: dict[int, np.ndarray] = {}

    class Spy:
        def __init__(self, ep: SerialEndpoint) -> None:
            self.ep, self.id = ep, ep.id

        def exchange(self, message: str, payload: bytes) -> bytes:
            out = self.ep.exchange(message, payload)
            if message == "MASKED_INPUT":
                encoded[self.id] = self.ep.encoded(4321)
            return out
    res_f = SecAggServer(g, 2, 4321, n_words(p0.size)).run([Spy(e) for e in sers])
    plain = sum(encoded[i].astype(np.uint64) for i in range(1, n + 1)) % (1 << 32)
    assert np.array_equal(res_f.sum_words, plain.astype(np.uint32))
    assert decode_sum(res.sum_words, enc)[1] == decode_sum(res_f.sum_words, enc)[1] == 4 * 30  # the same weights
    # the fast path's secure sum is the plain sum of what its devices encoded, bit for bit
    assert np.array_equal(res.sum_words, (sum(mine[i].astype(np.uint64) for i in mine) % (1 << 32)).astype(np.uint32))
    # and the two paths' sums differ only by each device's fresh stochastic rounding: at most one step per device
    k = p0.size
    d = (res.sum_words[:k].view(np.int32).astype(np.int64) - res_f.sum_words[:k].view(np.int32).astype(np.int64))
    assert np.max(np.abs(d)) <= n


def test_dropouts_and_refusals_stay_per_device(build: FlBuild) -> None:
    lib = DeviceLibrary.build(build.model_dir, build.train_dir, test_messages=True)
    fleet = DirectFleet(lib, build.shards[:4], model_name=build.model_name, threads=2,
                        die={2: ("MASKED_INPUT", None)})
    p0 = build.init_params()
    for d in fleet.participants:
        d.open()
        d.push_params(1, p0, build.model_hash, False)
        d.train(1, TrainConfig(epochs=1, max_samples=10), 60.0)
    enc = Encoding(10.0, choose_fraction_bits(4, 10.0), 10)
    g = harary_graph([1, 2, 3, 4], 3, seed=0)
    res = SecAggServer(g, 3, 7, n_words(p0.size)).run([d.secagg_endpoint(k + 1, enc)
                                                  for k, d in enumerate(fleet.participants)])
    assert res.survivors == (1, 2, 4) and res.dropouts()["MASKED_INPUT"] == [3]
    with pytest.raises(Exception, match="off"):
        fleet.participants[2].train(1, TrainConfig(), 1.0)
    from tinyfed_host.protocol import DeviceError

    with pytest.raises(DeviceError, match="PARAMS"):  # another model's parameters: refused with the device's status
        fleet.participants[0].push_params(2, p0, bytes(16), False)
