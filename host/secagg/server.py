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
payload`` (any exception = the client dropped out of the round).  A stage's
requests never depend on that stage's replies, so the server builds all of
them first and hands them over together: endpoints that share a ``batch``
callable (``batch(stage, [(endpoint, payload), ...]) -> [reply or
exception, ...]``) get one call per stage -- a gateway relay sends one
message per gateway, an in-process fleet runs the C clients on every core;
other endpoints are called one after the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import DeviceFailure, OptionsError
from tinyfed_toolchain.facts.wire_table import WIRE

from . import messages as M
from . import primitives as P
from .encoding import Encoding, decode_sum
from .graph import Graph, policy_problem
from .identity import bitmap
from .shamir import combine_many as shamir_combine_many

STAGES = M.STAGES  # ADVERTISE_KEYS, SHARE_KEYS, MASKED_INPUT, SURVIVORS, UNMASK
MAX_SIGNERS = WIRE.const("SA_MAX_SIGNERS")


class SecAggAbort(DeviceFailure, RuntimeError):
    """The round cannot be unmasked safely; no aggregate is produced."""


class SecAggPolicyError(OptionsError):
    """Parameters the devices' policy refuses (threshold, neighbourhood size): refused before any message."""


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
    sum_words: np.ndarray  # n_words(n) uint32: sum over U3 of encode(x_u) || the summed scalars (w_u ...)
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
                 log: Callable[[str], None] | None = None, *, label: str | None = None,
                 names: dict[int, str] | None = None, fleet_ids: Sequence[int] | None = None,
                 check_advert: Callable[[int, Any], str | None] | None = None) -> None:
        """``label``: how log lines name the round (default: its wire id); ``names``: how
        they name client ids (default: "client <id>"); ``fleet_ids``: the fleet manifest's
        device ids in its order (survivor bitmaps are over it; default: the graph's ids,
        a manifest of exactly this cohort); ``check_advert(u, advertisement)``: a reason to
        drop device u at ADVERTISE_KEYS, or None (distributed DP: u did not sign the round's
        noise, so its noise would not be what the host accounts)."""
        graph.check()
        for u in graph.ids:  # what every device will check (its policy): refuse before any message
            why = policy_problem(graph.degree(u), threshold)
            if why is not None:
                raise SecAggPolicyError(f"device {u} would refuse: {why}")
        if not 0 <= round_id <= 0xFFFFFFFF or n_words < 2:
            raise ValueError("bad round id or vector size")
        self.g, self.t, self.round, self.n_words = graph, threshold, round_id, n_words
        self.fleet_ids = list(fleet_ids) if fleet_ids is not None else list(graph.ids)
        missing = set(graph.ids) - set(self.fleet_ids)
        if missing:
            raise SecAggPolicyError(f"devices {sorted(missing)} are not in the fleet manifest: they cannot take part")
        self.log = log or (lambda s: None)
        self.check_advert = check_advert
        self.label = label if label is not None else f"round {round_id}"
        self.names = dict(names or {})
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
            self._log_drop(stage, ep.id, e)
            return None
        st.received[ep.id] = st.received.get(ep.id, 0) + len(reply)
        return reply

    def _call_all(self, stage: str, calls: Sequence[tuple[Endpoint, bytes]]) -> dict[int, bytes | None]:
        """Every request of one stage; a reply per client id (None: it dropped out)."""
        batch = getattr(calls[0][0], "batch", None) if calls else None
        if batch is None or any(getattr(ep, "batch", None) is not batch for ep, _ in calls[1:]):
            return {ep.id: self._call(stage, ep, payload) for ep, payload in calls}
        st = self.stats[stage]
        for ep, payload in calls:
            st.sent[ep.id] = st.sent.get(ep.id, 0) + len(payload)
        outcomes = list(batch(stage, list(calls)))
        if len(outcomes) != len(calls):
            raise RuntimeError(f"{stage}: batch answered {len(outcomes)} of {len(calls)} requests")
        out: dict[int, bytes | None] = {}
        for (ep, _), res in zip(calls, outcomes):
            if isinstance(res, BaseException):
                st.dropped.append((ep.id, f"{type(res).__name__}: {res}"))
                self._log_drop(stage, ep.id, res)
                out[ep.id] = None
            else:
                st.received[ep.id] = st.received.get(ep.id, 0) + len(res)
                out[ep.id] = bytes(res)
        return out

    def _drop(self, stage: str, u: int, why: str) -> None:
        self.stats[stage].dropped.append((u, why))
        self._log_drop(stage, u, why)

    def _log_drop(self, stage: str, u: int, why: object) -> None:
        who = self.names.get(u, f"client {u}")
        self.log(f"[secagg] {self.label}: {who} dropped out at {stage} ({why})")

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
        ads: dict[int, Any] = {}  # u -> its signed advertisement (keys, signature)
        replies = self._call_all("ADVERTISE_KEYS", [(eps[u], M.AdvertiseRequest(r, u, t, g.neighbours[u]).pack())
                                                    for u in g.ids])
        for u in g.ids:
            rep = replies[u]
            if rep is None:
                continue
            try:
                a = M.AdvertiseReply.unpack(rep)
                if a.round != r or a.self_id != u or a.share_pk == a.mask_pk:
                    raise M.MessageError("wrong round / id / repeated key")
                why = self.check_advert(u, a) if self.check_advert is not None else None
                if why is not None:
                    raise M.MessageError(why)
            except M.MessageError as e:
                self._drop("ADVERTISE_KEYS", u, str(e))
                continue
            ads[u] = a
        keys = {u: (a.share_pk, a.mask_pk) for u, a in ads.items()}
        self.stats["ADVERTISE_KEYS"].seconds = time.perf_counter() - t0
        u1 = set(keys)
        self._check_neighbourhoods("ADVERTISE_KEYS", u1, sorted(u1))

        # 2. SHARE_KEYS: each live neighbour's keys as it signed them (with its neighbourhood)
        t0 = time.perf_counter()
        inbox: dict[int, list[Any]] = {u: [] for u in u1}  # receiver -> [M.SealedIn]
        u2: set[int] = set()
        # each live device's record packed once (its k neighbours all receive the same bytes)
        rec = WIRE.record("SA_PEER_KEYS")
        packed = {v: rec.pack_record(M.peer_keys(v, ads[v].share_pk, ads[v].mask_pk, g.neighbours[v], ads[v].sig))
                  for v in sorted(u1)}
        lives = {u: [v for v in g.neighbours[u] if v in u1] for u in sorted(u1)}
        replies = self._call_all("SHARE_KEYS", [(eps[u], M.ShareKeysRequest(r, b"".join(packed[v] for v in lives[u]))
                                                 .pack()) for u in sorted(u1)])
        for u in sorted(u1):
            live = lives[u]
            rep = replies[u]
            if rep is None:
                continue
            try:
                s = M.ShareKeysReply.unpack(rep)
                if s.round != r or s.sender != u or sorted(x.receiver for x in s.shares) != live:
                    raise M.MessageError("shares not for exactly its live neighbours")
            except M.MessageError as e:
                self._drop("SHARE_KEYS", u, str(e))
                continue
            for x in s.shares:
                inbox[x.receiver].append(M.SealedIn(u, x.receiver, x.nonce, x.sealed))
            u2.add(u)
        self.stats["SHARE_KEYS"].seconds = time.perf_counter() - t0
        self._check_neighbourhoods("SHARE_KEYS", u2, sorted(u2))

        # 3. MASKED_INPUT
        t0 = time.perf_counter()
        total = np.zeros(self.n_words, dtype=np.uint32)
        u3: set[int] = set()
        delivered = {u: tuple(x for x in inbox[u] if x.sender in u2) for u in sorted(u2)}
        replies = self._call_all("MASKED_INPUT", [(eps[u], M.MaskedInputRequest(r, delivered[u]).pack())
                                                  for u in sorted(u2)])
        for u in sorted(u2):
            rep = replies[u]
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
        needed = sorted(u3 | {j for j in dropped if any(v in u3 for v in g.neighbours[j])})
        self._check_neighbourhoods("MASKED_INPUT", u3, needed)

        # 4. SURVIVORS (the consistency check): every survivor signs the one survivor set
        t0 = time.perf_counter()
        bm = bitmap(self.fleet_ids, u3)
        replies = self._call_all("SURVIVORS", [(eps[u], M.SurvivorsRequest(r, bm).pack()) for u in sorted(u3)])
        sigs: dict[int, bytes] = {}
        for u in sorted(u3):
            rep = replies[u]
            if rep is None:
                continue
            try:
                sv = M.SurvivorsReply.unpack(rep)
                if sv.round != r or sv.self_id != u:
                    raise M.MessageError("wrong round / id")
            except M.MessageError as e:
                self._drop("SURVIVORS", u, str(e))
                continue
            sigs[u] = sv.sig
        self.stats["SURVIVORS"].seconds = time.perf_counter() - t0
        # a device reveals shares of a secret only with t of its holders' signatures: check first
        self._check_neighbourhoods("SURVIVORS", set(sigs), needed)

        # 5. UNMASK: each signer gets the signatures its holders need; it answers with its own
        # b-share, and per neighbour it holds a share of: b if in the set, s if dropped
        t0 = time.perf_counter()
        b_sh: dict[int, dict[int, bytes]] = {u: {} for u in u3}
        s_sh: dict[int, dict[int, bytes]] = {j: {} for j in dropped}
        asks = {u: self._signatures_for(u, u2, sigs) for u in sorted(sigs)}
        self.share_requests += len(asks)
        replies = self._call_all("UNMASK", [(eps[u], M.UnmaskRequest(r, asks[u]).pack()) for u in sorted(sigs)])
        for u in sorted(sigs):
            rep = replies[u]
            if rep is None:
                continue
            expect = {u: M.KIND_B, **{v: (M.KIND_B if v in u3 else M.KIND_S) for v in g.neighbours[u] if v in u2}}
            try:
                un = M.UnmaskReply.unpack(rep)
                got = {o: k for o, k, _ in un.shares}
                if un.round != r or un.holder != u or len(got) != len(un.shares) or got != expect:
                    raise M.MessageError("shares for other ids or of other kinds than the survivor set says")
            except M.MessageError as e:
                self._drop("UNMASK", u, str(e))
                continue
            for owner, kind, share in un.shares:
                if kind == M.KIND_B:
                    b_sh[owner][u] = share
                else:
                    s_sh[owner][u] = share
        self.stats["UNMASK"].seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        total = self._remove_masks(total, u3, dropped, keys, b_sh, s_sh)
        unmask_s = time.perf_counter() - t0
        self.result = SecAggResult(r, total, tuple(sorted(u3)), self.stats, unmask_s)
        return self.result

    def _signatures_for(self, u: int, u2: set[int], sigs: dict[int, bytes]) -> tuple[Any, ...]:
        """The survivor-set signatures device u needs: for its own secrets and each neighbour's it
        holds shares of, t signers among that secret's holders (at most SA_MAX_SIGNERS in all)."""
        g, t = self.g, self.t
        chosen: list[int] = []
        owners = [u] + [v for v in g.neighbours[u] if v in u2]
        for o in owners:
            holders_o = [h for h in g.holders(o) if h in sigs]
            have = sum(1 for h in holders_o if h in chosen or h == u)
            for h in holders_o:
                if have >= t:
                    break
                if h not in chosen and h != u:
                    chosen.append(h)
                    have += 1
        if len(chosen) > MAX_SIGNERS:
            raise SecAggAbort(f"round {self.round} aborted: device {u} needs {len(chosen)} survivor signatures, "
                              f"more than one UNMASK carries ({MAX_SIGNERS}); use a ring (Harary) graph")
        return tuple(M.Signature(h, sigs[h]) for h in sorted(chosen))

    def _combine(self, owner: int, shares: dict[int, bytes], what: str) -> bytes:
        if len(shares) < self.t:
            raise SecAggAbort(f"round {self.round} aborted in UNMASK: {len(shares)} {what}-share(s) of client "
                              f"{owner}, threshold is {self.t}; no aggregate revealed")
        holders = sorted(shares)[: self.t]
        return P.shamir_combine([self.g.holder_x(owner, h) for h in holders], [shares[h] for h in holders])

    def _combine_all(self, owners: Sequence[int], shares_of: dict[int, dict[int, bytes]], what: str) -> dict[int, bytes]:
        """:meth:`_combine` for many owners at once (vectorised Lagrange over GF(2^8))."""
        rows_x: list[list[int]] = []
        rows: list[bytes] = []
        for u in owners:
            sh = shares_of[u]
            if len(sh) < self.t:
                raise SecAggAbort(f"round {self.round} aborted in UNMASK: {len(sh)} {what}-share(s) of client "
                                  f"{u}, threshold is {self.t}; no aggregate revealed")
            hs = sorted(sh)[: self.t]
            x_of = {h: i + 1 for i, h in enumerate(self.g.holders(u))}
            rows_x.append([x_of[h] for h in hs])
            rows.append(b"".join(sh[h] for h in hs))
        if not rows:
            return {}
        arr = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), self.t, len(rows[0]) // self.t)
        out = shamir_combine_many(rows_x, arr)
        return {u: out[k].tobytes() for k, u in enumerate(owners)}

    def _remove_masks(self, total: np.ndarray, u3: set[int], dropped: set[int],
                      keys: dict[int, tuple[bytes, bytes]], b_sh: dict[int, dict[int, bytes]],
                      s_sh: dict[int, dict[int, bytes]]) -> np.ndarray:
        r, n = self.round, self.n_words
        # rebuild everything first: an abort must leave no partial result behind
        seeds = self._combine_all(sorted(u3), b_sh, "b")
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


__all__ = ["Endpoint", "STAGES", "SecAggAbort", "SecAggPolicyError", "SecAggResult", "SecAggServer", "StageStats"]
