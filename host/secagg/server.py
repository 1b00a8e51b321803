"""SecAgg+ server: drives the four stages over a set of clients, tracks the
dropouts of every stage, and recovers the exact sum of the survivors' encoded
updates (Bonawitz et al. 2017 with the neighbourhood graph of Bell et al. 2020).

Sets of clients, as in the paper: U1 advertised keys, U2 shared keys, U3 sent a
masked input (they are in the sum), U4 answered UNMASK.  For u in U3 the
server removes u's self mask with b_u rebuilt from the b-shares of u's
neighbours in U4; for j in U2 \\ U3 (dropped after sharing keys: its
neighbours masked with it) it rebuilds j's mask secret key from s-shares,
checks it against j's advertised public key, and removes the pairwise masks
j's surviving neighbours added.  Pairwise masks between two survivors cancel.
No client is ever asked for both shares of one client, so the server never
holds both b_u and s_u of anyone.

Abort: before UNMASK the server checks that every survivor u and every
dropped j has at least t neighbours in U3 (their shares can then be
recovered if those answer); otherwise it raises :class:`SecAggAbort` and asks
nobody for a share -- nothing beyond masked vectors has been seen, and the
result is never computed.  After UNMASK, fewer than t shares for anyone is an
abort too (no sum is returned).  The same threshold check runs after stages 1
and 2 (a neighbourhood with fewer than t live members cannot continue).

A client is reached through an endpoint: ``exchange(message, payload) ->
payload`` (any exception = the client dropped out of the round).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from . import messages as M
from . import primitives as P
from .encoding import Encoding, decode_sum
from .graph import Graph

STAGES = ("ADVERTISE_KEYS", "SHARE_KEYS", "MASKED_INPUT", "UNMASK")


class SecAggAbort(RuntimeError):
    """The round cannot be unmasked safely; no aggregate is produced."""


class Endpoint(Protocol):
    id: int

    def exchange(self, message: str, payload: bytes) -> bytes: ...


@dataclass
class StageStats:
    """One stage: who dropped, bytes per device both ways (payload bytes)."""

    sent: dict[int, int] = field(default_factory=dict)      # host -> device
    received: dict[int, int] = field(default_factory=dict)  # device -> host
    dropped: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        n = max(1, len(self.sent))
        return {"devices": len(self.sent), "dropped": [i for i, _ in self.dropped],
                "reasons": {str(i): r for i, r in self.dropped},
                "bytes_to_device_mean": sum(self.sent.values()) / n,
                "bytes_from_device_mean": sum(self.received.values()) / max(1, len(self.received)),
                "seconds": round(self.seconds, 4)}


@dataclass
class SecAggResult:
    round: int
    sum_words: np.ndarray  # n + 1 uint32: sum over U3 of encode(x_u) || w_u
    survivors: tuple[int, ...]  # U3
    stats: dict[str, StageStats]
    unmask_seconds: float  # host time to rebuild secrets and remove masks

    def decode(self, enc: Encoding) -> tuple[np.ndarray, int]:
        return decode_sum(self.sum_words, enc)

    def dropouts(self) -> dict[str, list[int]]:
        return {s: [i for i, _ in self.stats[s].dropped] for s in STAGES}


class SecAggServer:
    """One round of SecAgg+ over ``graph`` with threshold ``t`` and vectors of ``n_words``."""

    def __init__(self, graph: Graph, threshold: int, round_id: int, n_words: int,
                 log: Callable[[str], None] | None = None) -> None:
        graph.check()
        kmin = min(graph.degree(u) for u in graph.ids)
        if not 2 <= threshold <= kmin + 1:
            raise ValueError(f"threshold {threshold} must be 2..{kmin + 1} (smallest neighbourhood + itself)")
        if not 0 <= round_id <= 0xFFFFFFFF or n_words < 2:
            raise ValueError("bad round id or vector size")
        self.g, self.t, self.round, self.n_words = graph, threshold, round_id, n_words
        self.log = log or (lambda s: None)
        self.stats = {s: StageStats() for s in STAGES}
        self.result: SecAggResult | None = None
        self.share_requests = 0  # UNMASK requests actually sent (0 after an early abort)

    # ---- transport ------------------------------------------------------------------------
    def _call(self, stage: str, ep: Endpoint, payload: bytes) -> bytes | None:
        st = self.stats[stage]
        st.sent[ep.id] = st.sent.get(ep.id, 0) + len(payload)
        try:
            reply = ep.exchange(stage, payload)
        except Exception as e:  # noqa: BLE001 - any failure = the client dropped out
            st.dropped.append((ep.id, f"{type(e).__name__}: {e}"))
            self.log(f"[secagg] round {self.round}: client {ep.id} dropped at {stage} ({e})")
            return None
        st.received[ep.id] = st.received.get(ep.id, 0) + len(reply)
        return reply

    def _drop(self, stage: str, u: int, why: str) -> None:
        self.stats[stage].dropped.append((u, why))
        self.log(f"[secagg] round {self.round}: client {u} dropped at {stage} ({why})")

    def _check_neighbourhoods(self, stage: str, live: set[int], who: Sequence[int]) -> None:
        for u in who:
            m = sum(1 for v in self.g.holders(u) if v in live)
            if m < self.t:
                raise SecAggAbort(f"round {self.round} aborted after {stage}: only {m} live holder(s) of client "
                                  f"{u}'s shares, threshold is {self.t}; no shares requested, no aggregate revealed")

    # ---- the round ------------------------------------------------------------------------
    def run(self, endpoints: Sequence[Endpoint]) -> SecAggResult:
        eps = {e.id: e for e in endpoints}
        if set(eps) != set(self.g.ids):
            raise ValueError("endpoints must match the graph's ids")
        r, t, g = self.round, self.t, self.g

        # 1. ADVERTISE_KEYS
        t0 = time.perf_counter()
        keys: dict[int, tuple[bytes, bytes]] = {}
        for u in g.ids:
            rep = self._call("ADVERTISE_KEYS", eps[u], M.AdvertiseRequest(r, u, t, g.neighbours[u]).pack())
            if rep is None:
                continue
            try:
                a = M.AdvertiseReply.unpack(rep)
                if a.round != r or a.self_id != u or a.share_pk == a.mask_pk:
                    raise M.MessageError("wrong round / id / repeated key")
            except M.MessageError as e:
                self._drop("ADVERTISE_KEYS", u, str(e))
                continue
            keys[u] = (a.share_pk, a.mask_pk)
        self.stats["ADVERTISE_KEYS"].seconds = time.perf_counter() - t0
        u1 = set(keys)
        self._check_neighbourhoods("ADVERTISE_KEYS", u1, sorted(u1))

        # 2. SHARE_KEYS
        t0 = time.perf_counter()
        inbox: dict[int, list[M.SealedShare]] = {u: [] for u in u1}
        u2: set[int] = set()
        for u in sorted(u1):
            live = tuple((v, *keys[v]) for v in g.neighbours[u] if v in u1)
            rep = self._call("SHARE_KEYS", eps[u], M.ShareKeysRequest(r, live).pack())
            if rep is None:
                continue
            try:
                s = M.ShareKeysReply.unpack(rep)
                if s.round != r or s.sender != u or sorted(x.receiver for x in s.shares) != [v for v, _, _ in live]:
                    raise M.MessageError("shares not for exactly its live neighbours")
            except M.MessageError as e:
                self._drop("SHARE_KEYS", u, str(e))
                continue
            for x in s.shares:
                inbox[x.receiver].append(x)
            u2.add(u)
        self.stats["SHARE_KEYS"].seconds = time.perf_counter() - t0
        self._check_neighbourhoods("SHARE_KEYS", u2, sorted(u2))

        # 3. MASKED_INPUT
        t0 = time.perf_counter()
        total = np.zeros(self.n_words, dtype=np.uint32)
        u3: set[int] = set()
        for u in sorted(u2):
            mine = tuple(x for x in inbox[u] if x.sender in u2)
            rep = self._call("MASKED_INPUT", eps[u], M.MaskedInputRequest(r, mine).pack())
            if rep is None:
                continue
            try:
                y = M.MaskedInputReply.unpack(rep)
                if y.round != r or len(y.words) != 4 * self.n_words:
                    raise M.MessageError(f"masked input of {len(y.words)} bytes, expected {4 * self.n_words}")
            except M.MessageError as e:
                self._drop("MASKED_INPUT", u, str(e))
                continue
            total += np.frombuffer(y.words, dtype="<u4").astype(np.uint32)
            u3.add(u)
        self.stats["MASKED_INPUT"].seconds = time.perf_counter() - t0
        dropped = u2 - u3
        if not u3:
            raise SecAggAbort(f"round {r} aborted: no masked input arrived")
        # every secret we will need must be recoverable from survivors' shares
        self._check_neighbourhoods("MASKED_INPUT", u3, sorted(u3 | {j for j in dropped
                                                                    if any(v in u3 for v in g.neighbours[j])}))

        # 4. UNMASK
        t0 = time.perf_counter()
        b_sh: dict[int, dict[int, bytes]] = {u: {} for u in u3}
        s_sh: dict[int, dict[int, bytes]] = {j: {} for j in dropped}
        for u in sorted(u3):
            d = tuple(v for v in g.neighbours[u] if v in dropped)
            s = tuple(v for v in g.holders(u) if v in u3)  # includes u: its own b-share
            self.share_requests += 1
            rep = self._call("UNMASK", eps[u], M.UnmaskRequest(r, d, s).pack())
            if rep is None:
                continue
            try:
                un = M.UnmaskReply.unpack(rep)
                if un.round != r or un.holder != u or sorted(o for o, _, _ in un.shares) != sorted(d + s):
                    raise M.MessageError("shares for other ids than asked")
            except M.MessageError as e:
                self._drop("UNMASK", u, str(e))
                continue
            for owner, kind, share in un.shares:
                if kind == M.KIND_B and owner in u3:
                    b_sh[owner][u] = share
                elif kind == M.KIND_S and owner in dropped:
                    s_sh[owner][u] = share
                else:
                    raise SecAggAbort(f"round {r} aborted: client {u} returned a share of the wrong kind for {owner}")
        self.stats["UNMASK"].seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        total = self._remove_masks(total, u3, dropped, keys, b_sh, s_sh)
        unmask_s = time.perf_counter() - t0
        self.result = SecAggResult(r, total, tuple(sorted(u3)), self.stats, unmask_s)
        return self.result

    def _combine(self, owner: int, shares: dict[int, bytes], what: str) -> bytes:
        if len(shares) < self.t:
            raise SecAggAbort(f"round {self.round} aborted in UNMASK: {len(shares)} {what}-share(s) of client "
                              f"{owner}, threshold is {self.t}; no aggregate revealed")
        holders = sorted(shares)[: self.t]
        return P.shamir_combine([self.g.holder_x(owner, h) for h in holders], [shares[h] for h in holders])

    def _remove_masks(self, total: np.ndarray, u3: set[int], dropped: set[int],
                      keys: dict[int, tuple[bytes, bytes]], b_sh: dict[int, dict[int, bytes]],
                      s_sh: dict[int, dict[int, bytes]]) -> np.ndarray:
        r, n = self.round, self.n_words
        # rebuild everything first: an abort must leave no partial result behind
        seeds = {u: self._combine(u, b_sh[u], "b") for u in sorted(u3)}
        sks: dict[int, bytes] = {}
        for j in sorted(dropped):
            if not any(v in u3 for v in self.g.neighbours[j]):
                continue  # no survivor masked with j
            sk = self._combine(j, s_sh[j], "s")
            if not P.ct_equal(P.public_key(sk), keys[j][1]):
                raise SecAggAbort(f"round {r} aborted: the rebuilt mask key of client {j} does not match its "
                                  "advertised public key (a corrupt share)")
            sks[j] = sk
        acc = total.copy()
        for u, seed in seeds.items():
            acc = acc - P.self_mask(seed, r, n)
        for j, sk in sks.items():
            for u in self.g.neighbours[j]:
                if u in u3:
                    words = P.prg(P.pair_mask_key(sk, keys[j][1], keys[u][1], r), n)
                    # u added sign(u, j) * PRG(s_uj): take it out
                    acc = acc - words if P.pair_sign(u, j) > 0 else acc + words
        return acc.astype(np.uint32)


__all__ = ["Endpoint", "STAGES", "SecAggAbort", "SecAggResult", "SecAggServer", "StageStats"]
