"""SecAgg+ server, batched stages (host/secagg/server.py ``_call_all``): endpoints
sharing a ``batch`` callable get exactly one call per stage with every request
of that stage, and the round is the same as with one exchange at a time:
exact sum, same dropouts, same abort rules.  (The Flower relay and the
in-process fleet rely on this; tests/test_secagg_protocol.py covers the
protocol itself.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tinyfed_host.secagg.client import SecAggClient
from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits
from tinyfed_host.secagg.graph import harary_graph
from tinyfed_host.secagg.server import STAGES, SecAggAbort, SecAggServer
from tinyfed_host.secagg.simulate import LocalEndpoint

from secagg_fleet import identity


class Batch:
    """One shared batch callable: records (stage, ids) per call, answers in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []

    def __call__(self, stage: str, calls: list[tuple[Any, bytes]]) -> list[Any]:
        self.calls.append((stage, [ep.id for ep, _ in calls]))
        out: list[Any] = []
        for ep, payload in calls:
            try:
                out.append(ep.inner.exchange(stage, payload))
            except Exception as e:  # noqa: BLE001 - a dropout is an outcome, as a gateway reports it
                out.append(e)
        return out


class Batched:
    def __init__(self, inner: LocalEndpoint, batch: Batch) -> None:
        self.inner, self.batch, self.id = inner, batch, inner.id

    def exchange(self, message: str, payload: bytes) -> bytes:  # never used when batching
        raise AssertionError("a batched endpoint must not be called one by one")


def _round(n: int, die_before: dict[int, str], batched: bool, seed: int = 3):
    rng = np.random.default_rng(seed)
    ups = [rng.normal(0, 0.05, 40).astype(np.float32) for _ in range(n)]
    enc = Encoding(1.0, choose_fraction_bits(n, 1.0), 50)
    eps: list[Any] = []
    batch = Batch()
    for i, x in enumerate(ups, start=1):
        c = SecAggClient(identity(i, range(1, n + 1)), enc, keep_encoding=True)
        c.set_update(x, 10 + i)
        ep = LocalEndpoint(c, die_before=die_before.get(i))
        eps.append(Batched(ep, batch) if batched else ep)
    g = harary_graph(list(range(1, n + 1)), 4, seed=1)
    srv = SecAggServer(g, 3, 7, 41)
    return srv, eps, batch


@pytest.mark.parametrize("die", [{}, {4: "MASKED_INPUT", 9: "SHARE_KEYS"}])
def test_batched_round_equals_sequential(die: dict[int, str]) -> None:
    srv_b, eps_b, batch = _round(10, die, batched=True)
    res = srv_b.run(eps_b)
    assert [s for s, _ in batch.calls] == list(STAGES)  # one call per stage
    assert batch.calls[0][1] == list(range(1, 11))  # every client asked at once
    survivors = [i for i in range(1, 11) if i not in die]
    assert list(res.survivors) == survivors
    plain = sum(e.inner.client.encoded.astype(np.uint64) for e in eps_b if e.id in survivors)
    assert np.array_equal(res.sum_words, (plain % (1 << 32)).astype(np.uint32))
    srv_s, eps_s, _ = _round(10, die, batched=False)
    seq = srv_s.run(eps_s)
    assert res.dropouts() == seq.dropouts()
    assert {s: st.sent for s, st in res.stats.items()} == {s: st.sent for s, st in seq.stats.items()}


def test_batched_abort_asks_no_shares() -> None:
    die = {i: "MASKED_INPUT" for i in (2, 3, 4, 5, 6)}
    srv, eps, batch = _round(8, die, batched=True)
    with pytest.raises(SecAggAbort):
        srv.run(eps)
    assert [s for s, _ in batch.calls] == ["ADVERTISE_KEYS", "SHARE_KEYS", "MASKED_INPUT"]
    assert srv.share_requests == 0


def test_combine_many_equals_combine() -> None:
    import os

    from tinyfed_host.secagg.shamir import combine, combine_many, split

    rng = np.random.default_rng(5)
    rows_x, rows, want = [], [], []
    for r in range(40):
        t, k = int(rng.integers(2, 9)), 12
        secret = os.urandom(32)
        shares = split(secret, t, k, os.urandom(32 * (t - 1)))
        xs = sorted(rng.choice(np.arange(1, k + 1), size=4, replace=False).tolist()) if t <= 4 else list(range(1, t + 1))
        xs = xs[:t] if len(xs) >= t else list(range(1, t + 1))
        assert combine(xs, [shares[x - 1] for x in xs]) == secret
        if t == 4:  # one batch: rows with the same threshold
            rows_x.append(xs)
            rows.append([np.frombuffer(shares[x - 1], dtype=np.uint8) for x in xs])
            want.append(secret)
    got = combine_many(rows_x, np.array(rows, dtype=np.uint8))
    assert [bytes(g) for g in got] == want
