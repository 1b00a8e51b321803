"""SecAgg+ protocol (host/secagg/{graph,messages,client,server}.py): the
host server against the reference client state machine, in-process.

Must-shows covered here: exactness (bit for bit, with and without dropouts),
dropout recovery and clean abort, the privacy classification of the four
messages, uniformity of a masked vector, and replay / out-of-round refusal.
The DP noise and epsilon are in tests/test_secagg_dp.py; the device (C)
client and the serial path are not in this file.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tinyfed_host.secagg import messages as M
from tinyfed_host.secagg.client import ClientStage, SecAggClient, StateError
from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits, weighted_mean
from tinyfed_host.secagg.graph import default_degree, default_threshold, harary_graph
from tinyfed_host.secagg.server import STAGES, SecAggAbort, SecAggServer
from tinyfed_host.secagg.simulate import LocalEndpoint, simulate_round
from tinyfed_toolchain.facts.wire_table import WIRE

from secagg_fleet import identity


def _fleet(n: int, p: int = 64, seed: int = 0, scale: float = 0.05):
    rng = np.random.default_rng(seed)
    ups = [rng.normal(0, scale, p).astype(np.float32) for _ in range(n)]
    ws = [int(rng.integers(5, 60)) for _ in range(n)]
    enc = Encoding(1.0, choose_fraction_bits(n, 1.0), 64)
    return ups, ws, enc


def _endpoints(ups, ws, enc, die_before=None) -> list[LocalEndpoint]:
    """Python reference clients 1..n holding the updates (encodings kept for checks);
    ``die_before``: {client id: stage} at which that client drops."""
    eps = []
    ids = list(range(1, len(ups) + 1))
    for i, (x, w) in enumerate(zip(ups, ws), start=1):
        c = SecAggClient(identity(i, ids), enc, keep_encoding=True)
        c.set_update(x, w)
        eps.append(LocalEndpoint(c, die_before=(die_before or {}).get(i)))
    return eps


def _plain_sum(eps: list[LocalEndpoint], ids) -> np.ndarray:
    acc = np.zeros(0, dtype=np.uint64)
    for e in eps:
        if e.id in ids:
            assert e.client.encoded is not None
            acc = acc + e.client.encoded.astype(np.uint64) if acc.size else e.client.encoded.astype(np.uint64)
    return (acc % (1 << 32)).astype(np.uint32)


# ---------------------------------------------------------------- graph


def test_harary_graph_is_regular_symmetric_seeded() -> None:
    ids = list(range(1, 101))
    k = default_degree(100)
    assert k == 16 and default_threshold(k) == 9
    g = harary_graph(ids, k, seed=7)
    g.check()
    assert all(g.degree(u) == k for u in ids)
    assert harary_graph(ids, k, seed=7) == g and harary_graph(ids, k, seed=8) != g
    assert sorted(g.holders(5)) == sorted((*g.neighbours[5], 5))
    full = harary_graph([3, 9, 11], 4, seed=0)
    assert full.neighbours == {3: (9, 11), 9: (3, 11), 11: (3, 9)}
    with pytest.raises(ValueError):
        harary_graph(ids, 5, seed=0)  # odd degree on a ring


# ---------------------------------------------------------------- exactness


@pytest.mark.parametrize("n,degree,t", [(5, 4, 3), (12, 6, 4)])
def test_secure_sum_equals_plain_sum_bit_for_bit(n: int, degree: int, t: int) -> None:
    ups, ws, enc = _fleet(n)
    srv, eps, g = simulate_round(ups, ws, enc, degree=degree, threshold=t, round_id=3, seed=1)
    res = srv.result
    assert res is not None and res.survivors == tuple(range(1, n + 1))
    assert np.array_equal(res.sum_words, _plain_sum(eps, res.survivors))
    assert int(res.sum_words[-1]) == sum(ws)
    # the encodings themselves are the reference encoding of each update
    for e, x, w in zip(eps, ups, ws):
        assert e.client.encoded is not None and e.client.encoded.shape == (x.size + 1,)
    # FedAvg through the secure path == plain FedAvg (nothing clipped), to the fixed-point step
    plain = sum(w * x.astype(np.float64) for x, w in zip(ups, ws)) / sum(ws)
    secure = weighted_mean(res.sum_words, enc)
    assert np.max(np.abs(secure - plain)) <= n * enc.weight_max / sum(ws) * 2.0 ** -enc.frac_bits
    # masks really were there: no single masked input equals its encoding
    for e in eps:
        y = np.frombuffer(M.MaskedInputReply.unpack(e.seen[2][2]).words, "<u4")
        assert not np.array_equal(y, e.client.encoded)


def test_clipping_bounds_each_contribution() -> None:
    ups, ws, enc = _fleet(4, scale=1.0)  # norms ~8 >> clip 1
    srv, eps, _ = simulate_round(ups, ws, enc, degree=3, threshold=3)
    vals = weighted_mean(srv.result.sum_words, enc) * sum(ws) / enc.weight_max  # sum_u g_u x_u
    assert np.linalg.norm(vals) <= 4 * enc.clip32 + 1e-3
    assert np.array_equal(srv.result.sum_words, _plain_sum(eps, srv.result.survivors))


# ---------------------------------------------------------------- dropouts


def test_dropouts_before_and_after_masked_input_give_the_survivors_exact_sum() -> None:
    ups, ws, enc = _fleet(5)
    srv, eps, _ = simulate_round(ups, ws, enc, degree=4, threshold=3, round_id=9,
                                 die_before={2: "MASKED_INPUT"}, die_after={4: "MASKED_INPUT"})
    res = srv.result
    assert res.survivors == (1, 3, 4, 5)  # 4's masked input is in the sum, 2's is not
    assert res.dropouts() == {"ADVERTISE_KEYS": [], "SHARE_KEYS": [], "MASKED_INPUT": [2], "SURVIVORS": [4],
                              "UNMASK": []}
    assert np.array_equal(res.sum_words, _plain_sum(eps, {1, 3, 4, 5}))
    assert int(res.sum_words[-1]) == ws[0] + ws[2] + ws[3] + ws[4]


def test_dropouts_at_every_stage_with_the_neighbourhood_graph() -> None:
    ups, ws, enc = _fleet(16, p=40, seed=3)
    srv, eps, g = simulate_round(ups, ws, enc, degree=8, threshold=5, seed=2,
                                 die_before={1: "ADVERTISE_KEYS", 6: "SHARE_KEYS", 11: "MASKED_INPUT"},
                                 die_after={14: "MASKED_INPUT"})
    res = srv.result
    assert set(res.survivors) == set(range(1, 17)) - {1, 6, 11}
    assert np.array_equal(res.sum_words, _plain_sum(eps, set(res.survivors)))


def test_too_few_survivors_abort_cleanly_before_any_share_is_asked() -> None:
    ups, ws, enc = _fleet(5)
    with pytest.raises(SecAggAbort, match=r"threshold is 4.*no shares requested, no aggregate revealed") as err:
        simulate_round(ups, ws, enc, degree=4, threshold=4,
                       die_before={2: "MASKED_INPUT", 3: "MASKED_INPUT"})
    assert "aborted after MASKED_INPUT" in str(err.value)
    # run it by hand to inspect the server: nothing asked in UNMASK, no result
    g = harary_graph([1, 2, 3, 4, 5], 4, seed=0)
    eps = _endpoints(ups, ws, enc, die_before={2: "MASKED_INPUT", 3: "MASKED_INPUT"})
    srv = SecAggServer(g, 4, 1, ups[0].size + 1)
    with pytest.raises(SecAggAbort):
        srv.run(eps)
    assert srv.result is None and srv.share_requests == 0
    assert all(m != "UNMASK" for e in eps for m, _, _ in e.seen)


def test_too_few_unmask_answers_abort_without_a_sum() -> None:
    ups, ws, enc = _fleet(5)
    with pytest.raises(SecAggAbort, match="aborted in UNMASK"):
        simulate_round(ups, ws, enc, degree=4, threshold=4,
                       die_after={1: "SURVIVORS", 2: "SURVIVORS"})


# ---------------------------------------------------------------- client state machine


def _advertised(cid: int = 1, rnd: int = 5) -> tuple[SecAggClient, bytes]:
    _, _, enc = _fleet(3)
    c = SecAggClient(identity(cid, (1, 2, 3)), enc)
    c.set_update(np.zeros(8, np.float32) + 0.01, 3)
    rep = c.advertise_keys(M.AdvertiseRequest(rnd, cid, 2, (2, 3)).pack())
    return c, rep


def test_replayed_and_out_of_round_messages_are_refused() -> None:
    ups, ws, enc = _fleet(3, p=8)
    srv, eps, _ = simulate_round(ups, ws, enc, degree=2, threshold=2, round_id=7)
    e = eps[0]
    # every stage's request replayed after the round: refused, state untouched
    for msg, req, _ in e.seen:
        with pytest.raises(StateError):
            e.client.handle(msg, req)
    assert e.client.stage is ClientStage.DONE
    # a new round must have a larger id (replaying round 7's ADVERTISE_KEYS is refused above)
    c, _ = _advertised(1, 5)
    with pytest.raises(StateError, match="round 4"):
        c.share_keys(M.ShareKeysRequest(4, ()).pack())  # another round
    with pytest.raises(StateError, match="stage ADVERTISED"):
        c.masked_input(M.MaskedInputRequest(5, ()).pack())  # stage skipped
    with pytest.raises(StateError):
        c.advertise_keys(M.AdvertiseRequest(5, 1, 2, (2, 3)).pack())  # same round again
    assert c.stage is ClientStage.ADVERTISED


def test_unmask_without_the_holders_signatures_is_refused() -> None:
    """A device reveals no share unless t holders of each secret signed the survivor set it
    signed: an UNMASK carrying no (or foreign) signatures gets nothing, and the round is wiped."""
    ups, ws, enc = _fleet(4, p=8)

    class Evil(SecAggServer):
        def _call(self, stage, ep, payload):
            if stage == "UNMASK":
                req = M.UnmaskRequest.unpack(payload)
                payload = M.UnmaskRequest(req.round, ()).pack()
            return super()._call(stage, ep, payload)

    g = harary_graph([1, 2, 3, 4], 3, seed=0)
    eps = _endpoints(ups, ws, enc)
    srv = Evil(g, 3, 1, 9)
    with pytest.raises(SecAggAbort):
        srv.run(eps)
    reasons = [r for _, r in srv.stats["UNMASK"].dropped]
    assert len(reasons) == 4 and all("signed this survivor set" in r for r in reasons)
    assert srv.result is None
    assert all(e.client._share_sk is None and e.client._held == {} for e in eps)  # wiped on refusal


def test_tampered_share_is_detected() -> None:
    ups, ws, enc = _fleet(4, p=8)

    class Flip(SecAggServer):
        def _call(self, stage, ep, payload):
            if stage == "MASKED_INPUT" and ep.id == 1:
                b = bytearray(payload)
                b[-1] ^= 1  # last byte of the last sealed share (its MAC)
                payload = bytes(b)
            return super()._call(stage, ep, payload)

    g = harary_graph([1, 2, 3, 4], 3, seed=0)
    eps = _endpoints(ups, ws, enc)
    srv = Flip(g, 3, 1, 9)
    srv.run(eps)  # client 1 refuses to open the tampered share in UNMASK: it drops, the rest suffice
    assert [u for u, _ in srv.stats["UNMASK"].dropped] == [1]
    assert "authentication failed" in srv.stats["UNMASK"].dropped[0][1]
    assert np.array_equal(srv.result.sum_words, _plain_sum(eps, {1, 2, 3, 4}))


# ---------------------------------------------------------------- privacy


def test_no_secagg_message_carries_samples_or_an_unmasked_update() -> None:
    assert set(M.CARRIES) == set(STAGES)
    sa_lo, sa_hi = WIRE.blocks["SECAGG"]
    for name, (req_purpose, rep_purpose, what) in M.CARRIES.items():
        m = WIRE.msg(name)
        assert sa_lo <= m.id <= sa_hi and m.direction == "H2D"
        assert m.cls == "CONTROL" and m.tail is None  # the stage message: round, length, CRC, encoding
        req, rep = WIRE.purpose(req_purpose), WIRE.purpose(rep_purpose)
        assert req.direction == "H2D" and rep.direction == "D2H"
        for cls in (m.cls, req.cls, rep.cls):
            assert cls in WIRE.classes and "SAMPLE" not in cls
        assert WIRE.classes[rep.cls], f"{rep.name} ({rep.cls}) may not travel device->host"
        # classification: keys and shares are KEYS; the only vector is the masked one
        assert rep.cls == ("UPDATE" if what == "masked vector" else "KEYS"), name
    sa_purposes = {p.name: (p.cls, p.gate) for p in WIRE.purposes if p.name.startswith("SA_")}
    assert sa_purposes == {"SA_REQUEST": ("KEYS", "ALWAYS"), "SA_REPLY": ("KEYS", "ALWAYS"),
                           "SA_MASKED": ("UPDATE", "ALWAYS"),
                           # the unmasked encoding, for exactness tests: compiled into test images only
                           "SA_ENCODED": ("UPDATE", "TEST")}
    # no SecAgg message or purpose carries a model update in the clear (ENC_F32 MODEL_UPDATE is
    # the plain path's only update transfer, and a secure round never opens it)
    assert [n for n, (_, r, _) in M.CARRIES.items() if WIRE.purpose(r).cls == "UPDATE"] == ["MASKED_INPUT"]


def test_masked_input_looks_uniform_to_the_host() -> None:
    n, p = 5, 4096
    ups = [np.zeros(p, np.float32) for _ in range(n)]  # worst case: constant, highly structured updates
    enc = Encoding(1.0, choose_fraction_bits(n, 1.0), 1)
    srv, eps, _ = simulate_round(ups, [1] * n, enc, degree=4, threshold=3)
    y = np.frombuffer(M.MaskedInputReply.unpack(eps[0].seen[2][2]).words, "<u4")
    for shift in (0, 24):  # low and high byte of each word
        counts = np.bincount((y >> shift) & 0xFF, minlength=256)
        assert stats.chisquare(counts).pvalue > 1e-4
    # the same test rejects the unmasked encoding (so it can fail)
    enc_words = eps[0].client.encoded
    counts = np.bincount((enc_words >> 24) & 0xFF, minlength=256)
    assert stats.chisquare(counts).pvalue < 1e-6


def test_dropout_lines_name_the_round_and_the_device() -> None:
    """The log says which federated round and which device dropped out (not the SecAgg
    wire round id and a client index), and why, once per dropout."""
    ups, ws, enc = _fleet(4)
    eps = _endpoints(ups, ws, enc, die_before={3: "MASKED_INPUT"})
    lines: list[str] = []
    srv = SecAggServer(harary_graph([e.id for e in eps], 3, 0), 3, 0x6B1A2C4F, len(ups[0]) + 1, log=lines.append,
                       label="round 7", names={e.id: f"board{e.id - 1}" for e in eps})
    srv.run(eps)
    assert len(lines) == 1 and lines[0].split(" (")[0] == "[secagg] round 7: board2 dropped out at MASKED_INPUT"
    assert "lost power" in lines[0]  # the endpoint's reason follows
