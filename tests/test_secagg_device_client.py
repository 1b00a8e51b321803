"""The device's SecAgg+ client (firmware/src/secagg/protocol.c, host-compiled
behind a pipe: firmware/native/secagg_client_host.c) driven by the host server
(host/secagg/server.py), alone and mixed with the Python reference client.

Exactness: the unmasked sum equals, bit for bit, the sum of the plain
encodings each C client reports having masked (harness-only op); dropouts
before / after MASKED_INPUT; replay, out-of-round and both-shares requests
refused by the C state machine, which then holds no secret.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinyfed_host.secagg import messages as M
from tinyfed_host.secagg.c_client import CClientEndpoint, DeviceRefused, build_native_client
from tinyfed_host.secagg.client import SecAggClient
from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits, weighted_mean
from tinyfed_host.secagg.graph import harary_graph
from tinyfed_host.secagg.server import SecAggAbort, SecAggServer
from tinyfed_host.secagg.simulate import LocalEndpoint

from secagg_fleet import identity

STAGE_DONE, STAGE_IDLE = 5, 0  # tfd_sa_client_stage_t


@pytest.fixture(scope="module")
def exe():
    return build_native_client()


def _fleet(n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ups = [rng.normal(0, 0.05, p).astype(np.float32) for _ in range(n)]
    ws = [int(rng.integers(5, 60)) for _ in range(n)]
    return ups, ws, Encoding(1.0, choose_fraction_bits(n, 1.0), 64)


def _sum(vectors) -> np.ndarray:
    acc = np.zeros_like(vectors[0], dtype=np.uint64)
    for v in vectors:
        acc += v.astype(np.uint64)
    return (acc % (1 << 32)).astype(np.uint32)


def _endpoints(exe, ups, ws, enc, c_ids, die_before=None, die_after=None, chunk=7):
    eps = []
    ids = range(1, len(ups) + 1)
    for i, (x, w) in enumerate(zip(ups, ws), start=1):
        db, da = (die_before or {}).get(i), (die_after or {}).get(i)
        if i in c_ids:
            eps.append(CClientEndpoint(identity(i, ids), enc, x, w, exe=exe, chunk=chunk, die_before=db,
                                       die_after=da))
        else:
            c = SecAggClient(identity(i, ids), enc, keep_encoding=True)
            c.set_update(x, w)
            eps.append(LocalEndpoint(c, db, da))
    return eps


def _close(eps) -> None:
    for e in eps:
        if isinstance(e, CClientEndpoint):
            e.close()


def test_c_clients_sum_exactly_and_mix_with_python_clients(exe) -> None:
    n, p = 6, 301
    ups, ws, enc = _fleet(n, p)
    g = harary_graph(list(range(1, n + 1)), 4, seed=3)
    eps = _endpoints(exe, ups, ws, enc, c_ids={1, 2, 3, 5})
    try:
        srv = SecAggServer(g, 3, 11, p + 1)
        res = srv.run(eps)
        encs = [e.encoded() if isinstance(e, CClientEndpoint) else e.client.encoded for e in eps]
        assert res.survivors == tuple(range(1, n + 1))
        assert np.array_equal(res.sum_words, _sum(encs))
        assert all(e.stage() == STAGE_DONE for e in eps if isinstance(e, CClientEndpoint))
        mean = weighted_mean(res.sum_words, enc)
        plain = sum(w * x.astype(np.float64) for x, w in zip(ups, ws)) / sum(ws)
        assert np.max(np.abs(mean - plain)) <= n * 64 / sum(ws) * 2.0 ** -enc.frac_bits
        # bytes: the masked input is n + 1 words and the round id
        assert srv.stats["MASKED_INPUT"].received[1] == 4 * (p + 1) + 4
    finally:
        _close(eps)


def test_c_clients_killed_before_and_after_masked_input(exe) -> None:
    n, p = 5, 64
    ups, ws, enc = _fleet(n, p, seed=1)
    g = harary_graph(list(range(1, n + 1)), 4, seed=0)
    eps = _endpoints(exe, ups, ws, enc, c_ids={1, 2, 3, 4, 5}, die_before={2: "MASKED_INPUT"},
                     die_after={4: "MASKED_INPUT"})
    try:
        # 4's plain encoding must be read before it dies: read it right after its reply
        enc4: list[np.ndarray] = []
        orig = eps[3].exchange

        def exchange(message: str, payload: bytes, _orig=orig, _e=eps[3]) -> bytes:
            if message == "MASKED_INPUT":
                _e.die_after = None
                rep = _orig(message, payload)
                enc4.append(_e.encoded())
                _e.kill()
                return rep
            return _orig(message, payload)

        eps[3].exchange = exchange  # type: ignore[method-assign]
        srv = SecAggServer(g, 3, 2, p + 1)
        res = srv.run(eps)
        assert res.survivors == (1, 3, 4, 5)
        assert res.dropouts()["MASKED_INPUT"] == [2] and res.dropouts()["SURVIVORS"] == [4]
        encs = [eps[0].encoded(), eps[2].encoded(), enc4[0], eps[4].encoded()]
        assert np.array_equal(res.sum_words, _sum(encs))
    finally:
        _close(eps)


def test_c_clients_abort_with_too_few_survivors(exe) -> None:
    n, p = 5, 16
    ups, ws, enc = _fleet(n, p, seed=2)
    g = harary_graph(list(range(1, n + 1)), 4, seed=0)
    eps = _endpoints(exe, ups, ws, enc, c_ids={1, 2, 3, 4, 5},
                     die_before={1: "MASKED_INPUT", 2: "MASKED_INPUT"})
    try:
        srv = SecAggServer(g, 4, 1, p + 1)
        with pytest.raises(SecAggAbort, match="no shares requested, no aggregate revealed"):
            srv.run(eps)
        assert srv.result is None and srv.share_requests == 0
    finally:
        _close(eps)


def test_c_client_refuses_replay_out_of_round_and_both_shares(exe) -> None:
    n, p = 4, 8
    ups, ws, enc = _fleet(n, p, seed=4)
    g = harary_graph([1, 2, 3, 4], 3, seed=0)
    eps = _endpoints(exe, ups, ws, enc, c_ids={1})
    c = eps[0]
    try:
        c.exchange("ADVERTISE_KEYS", M.AdvertiseRequest(5, 1, 3, g.neighbours[1]).pack())
        # replayed ADVERTISE_KEYS (same round), a request of another round, a skipped stage
        for op, payload in (("ADVERTISE_KEYS", M.AdvertiseRequest(5, 1, 3, g.neighbours[1]).pack()),
                            ("ADVERTISE_KEYS", M.AdvertiseRequest(4, 1, 3, g.neighbours[1]).pack()),
                            ("SHARE_KEYS", M.ShareKeysRequest(6, ()).pack()),
                            ("MASKED_INPUT", M.MaskedInputRequest(5, ()).pack()),
                            ("SURVIVORS", M.SurvivorsRequest(5, b"\x0f").pack()),
                            ("UNMASK", M.UnmaskRequest(5, ()).pack())):
            with pytest.raises(DeviceRefused, match="TFD_ERR_PROTO_STATE"):
                c.call(op, payload)
        assert c.stage() == 1  # still ADVERTISED: a refused replay changes nothing

        # a full round whose UNMASK carries none of the survivors' signatures: nothing revealed
        class Evil(SecAggServer):
            def _call(self, stage, ep, payload):
                if stage == "UNMASK":
                    payload = M.UnmaskRequest(M.UnmaskRequest.unpack(payload).round, ()).pack()
                return super()._call(stage, ep, payload)

        srv = Evil(g, 3, 9, p + 1)
        with pytest.raises(SecAggAbort):
            srv.run(eps)
        reason = dict(srv.stats["UNMASK"].dropped)[1]
        assert "TFD_ERR_POLICY" in reason
        assert c.stage() == STAGE_IDLE  # round abandoned, secrets wiped
        # the finished round cannot be replayed either
        with pytest.raises(DeviceRefused, match="TFD_ERR_PROTO_STATE"):
            c.call("ADVERTISE_KEYS", M.AdvertiseRequest(9, 1, 3, g.neighbours[1]).pack())
    finally:
        _close(eps)


def test_device_neighbourhood_limit_matches_the_host_default(exe) -> None:
    import struct

    from tinyfed_host.secagg.aggregator import DEVICE_MAX_NEIGHBOURS
    from tinyfed_toolchain.facts.paths import FIRMWARE
    from tinyfed_toolchain.facts.wire_table import WIRE

    text = (FIRMWARE / "include" / "tfd" / "secagg_client.h").read_text()
    assert "#define TFD_SA_CLIENT_MAX_NEIGHBOURS ((unsigned)TFD_WIRE_SA_MAX_NEIGHBOURS)" in text
    assert DEVICE_MAX_NEIGHBOURS == WIRE.const("SA_MAX_NEIGHBOURS") == 16
    ups, ws, enc = _fleet(2, 4)
    e = CClientEndpoint(identity(1, range(1, DEVICE_MAX_NEIGHBOURS + 3)), enc, ups[0], ws[0], exe=exe)
    try:
        too_many = tuple(range(2, DEVICE_MAX_NEIGHBOURS + 3))  # one more than the table allows
        with pytest.raises(M.MessageError):
            M.AdvertiseRequest(1, 1, 3, too_many).pack()
        raw = struct.pack("<IIHH", 1, 1, 3, len(too_many)) + b"".join(struct.pack("<I", v) for v in too_many)
        with pytest.raises(DeviceRefused, match="TFD_ERR_MSG_LENGTH"):
            e.call("ADVERTISE_KEYS", raw)
        # policy: a threshold two disjoint sets of holders could both reach, a neighbourhood too small
        with pytest.raises(DeviceRefused, match="TFD_ERR_POLICY"):
            e.call("ADVERTISE_KEYS", M.AdvertiseRequest(1, 1, 8, tuple(range(2, DEVICE_MAX_NEIGHBOURS + 2))).pack())
        with pytest.raises(DeviceRefused, match="TFD_ERR_POLICY"):
            e.call("ADVERTISE_KEYS", M.AdvertiseRequest(1, 1, 2, (2,)).pack())
        # round ids in serial-number order: 0xFFFFFFFF does not block the next rounds
        for r in (0x80000000, 0xFFFFFFFF):
            assert M.AdvertiseReply.unpack(e.call("ADVERTISE_KEYS", M.AdvertiseRequest(
                r, 1, 3, (2, 3, 4)).pack())).round == r
        assert M.AdvertiseReply.unpack(e.call("ADVERTISE_KEYS", M.AdvertiseRequest(
            2, 1, 3, (2, 3, 4)).pack())).round == 2
        with pytest.raises(DeviceRefused, match="TFD_ERR_PROTO_STATE"):  # 2^31 back is not newer
            e.call("ADVERTISE_KEYS", M.AdvertiseRequest(2 + 0x80000000, 1, 3, (2, 3, 4)).pack())
        ok = tuple(range(2, DEVICE_MAX_NEIGHBOURS + 2))
        rep = M.AdvertiseReply.unpack(e.call("ADVERTISE_KEYS", M.AdvertiseRequest(3, 1, 9, ok).pack()))
        assert rep.round == 3 and rep.self_id == 1 and rep.share_pk != rep.mask_pk
    finally:
        e.close()


def test_c_and_python_clients_mix_under_distributed_dp(exe) -> None:
    """Distributed DP with C and Python clients in one round: each verifies the other language's
    signature over the same H_adv (round, t, neighbours, keys and the noise multiplier), each adds
    its noise to what it masks (ENCODED / .encoded hold the noised words: the sum is still exact
    over them), and the noise is there: the words minus the clipped, weighted update have the
    variance of the device calibration, in C and in Python alike."""
    from tinyfed_host.secagg import dp_device as D
    from tinyfed_host.secagg import dp_distributed as DD
    from tinyfed_host.secagg.encoding import encoding_scale

    n, p, t = 6, 400, 3
    ups, ws, _ = _fleet(n, p, seed=2)
    f = DD.choose_fraction_bits(n, 1.0, p, 1500, t)
    enc = Encoding(1.0, f, 64, 1500)
    g = harary_graph(list(range(1, n + 1)), 4, seed=3)
    eps = _endpoints(exe, ups, ws, enc, c_ids={1, 3, 5})
    try:
        res = SecAggServer(g, t, 12, p + 1).run(eps)
        assert res.survivors == tuple(range(1, n + 1))
        encs = [e.encoded() if isinstance(e, CClientEndpoint) else e.client.encoded for e in eps]
        assert np.array_equal(res.sum_words, _sum(encs))
        s2 = D.device_sigma_sq(enc.clip32, f, p, 1500, t)
        for lang, ids in (("C", (1, 3, 5)), ("Python", (2, 4, 6))):
            ys = []
            for i in ids:
                w = encs[i - 1][:-1]
                signed = w.astype(np.int64) - ((w >> 31).astype(np.int64) << 32)
                ys.append(signed - np.floor(ups[i - 1].astype(np.float64) * encoding_scale(ups[i - 1], enc, ws[i - 1])))
            y = np.concatenate(ys)
            assert abs(y.var() / s2 - 1) < 5 * np.sqrt(2.0 / y.size), lang
    finally:
        _close(eps)
