"""The device's C client and the host's Python reference client agree on every
request: the same outcome class (accepted / does not decode / out of round or
stage / refused by policy / refused) and the same stage afterwards, for valid and
mutated requests of every stage (issue 13: "make them agree; one validation
table; cross-language tests").

Two worlds run the same honest round (4 clients, ids 1..4, complete graph,
t = 3): one of C clients (firmware/native/secagg_client_host.c behind pipes),
one of Python clients.  Client 1 of each world is saved before each stage; each
mutation of that stage's valid request -- the same positions and values in both
worlds -- is fed to the restored client of each world.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from tinyfed_host.secagg import messages as M
from tinyfed_host.secagg.c_client import CClientEndpoint, DeviceRefused, build_native_client
from tinyfed_host.secagg.client import PolicyRefused, Refused, SecAggClient, StateError
from tinyfed_host.secagg.encoding import Encoding
from tinyfed_host.secagg.primitives import CryptoError

from secagg_fleet import identity

IDS = (1, 2, 3, 4)
T, ROUND = 3, 9
STAGES = ("ADVERTISE_KEYS", "SHARE_KEYS", "MASKED_INPUT", "SURVIVORS", "UNMASK")
C_CLASS = {"TFD_ERR_MSG_LENGTH": "length", "TFD_ERR_PROTO_STATE": "state", "TFD_ERR_POLICY": "policy",
           "TFD_ERR_ARG": "refused", "TFD_ERR_CRYPTO": "refused"}


def _py_class(e: BaseException) -> str:
    if isinstance(e, M.MessageError):
        return "length"
    if isinstance(e, StateError):
        return "state"
    if isinstance(e, PolicyRefused):
        return "policy"
    if isinstance(e, (Refused, CryptoError)):
        return "refused"
    raise e


def _c_class(e: DeviceRefused) -> str:
    name = str(e).rsplit(": ", 1)[-1]
    return C_CLASS.get(name, name)


class _PyWorld:
    def __init__(self, ups, ws, enc) -> None:
        self.cl = {}
        for i, x, w in zip(IDS, ups, ws):
            c = SecAggClient(identity(i, IDS), enc)
            c.set_update(x, w)
            self.cl[i] = c
        self.saved: SecAggClient | None = None

    def call(self, i: int, stage: str, body: bytes) -> bytes:
        return self.cl[i].handle(stage, body)

    def save(self) -> None:
        self.saved = copy.deepcopy(self.cl[1])

    def restore(self) -> None:
        self.cl[1] = copy.deepcopy(self.saved)

    def outcome(self, stage: str, body: bytes) -> tuple[str, int]:
        try:
            self.cl[1].handle(stage, body)
            cls = "ok"
        except Exception as e:  # noqa: BLE001 - classified, unknown ones re-raised
            cls = _py_class(e)
        return cls, int(self.cl[1].stage)

    def close(self) -> None:
        pass


class _CWorld:
    def __init__(self, exe, ups, ws, enc) -> None:
        self.cl = {i: CClientEndpoint(identity(i, IDS), enc, x, w, exe=exe) for i, x, w in zip(IDS, ups, ws)}

    def call(self, i: int, stage: str, body: bytes) -> bytes:
        return self.cl[i].call(stage, body)

    def save(self) -> None:
        self.cl[1].call("SAVE")

    def restore(self) -> None:
        self.cl[1].call("RESTORE")

    def outcome(self, stage: str, body: bytes) -> tuple[str, int]:
        try:
            self.cl[1].call(stage, body)
            cls = "ok"
        except DeviceRefused as e:
            cls = _c_class(e)
        return cls, self.cl[1].stage()

    def close(self) -> None:
        for c in self.cl.values():
            c.close()


def _run_round(w, at_stage) -> None:
    """The honest round in world w; before client 1 answers a stage, at_stage(stage, body)."""
    ads = {}
    for i in IDS:
        req = M.AdvertiseRequest(ROUND, i, T, tuple(v for v in IDS if v != i)).pack()
        if i == 1:
            at_stage("ADVERTISE_KEYS", req)
        ads[i] = M.AdvertiseReply.unpack(w.call(i, "ADVERTISE_KEYS", req))
    inbox: dict[int, list] = {i: [] for i in IDS}
    for i in IDS:
        req = M.ShareKeysRequest(ROUND, tuple(M.peer_keys(v, ads[v].share_pk, ads[v].mask_pk,
                                                          [u for u in IDS if u != v], ads[v].sig)
                                              for v in IDS if v != i)).pack()
        if i == 1:
            at_stage("SHARE_KEYS", req)
        for x in M.ShareKeysReply.unpack(w.call(i, "SHARE_KEYS", req)).shares:
            inbox[x.receiver].append(M.SealedIn(i, x.receiver, x.nonce, x.sealed))
    for i in IDS:
        req = M.MaskedInputRequest(ROUND, tuple(inbox[i])).pack()
        if i == 1:
            at_stage("MASKED_INPUT", req)
        w.call(i, "MASKED_INPUT", req)
    sigs = {}
    for i in IDS:
        req = M.SurvivorsRequest(ROUND, b"\x0f").pack()
        if i == 1:
            at_stage("SURVIVORS", req)
        sigs[i] = M.SurvivorsReply.unpack(w.call(i, "SURVIVORS", req)).sig
    req = M.UnmaskRequest(ROUND, tuple(M.Signature(v, sigs[v]) for v in IDS if v != 1)).pack()
    at_stage("UNMASK", req)
    w.call(1, "UNMASK", req)


def _mutations(body: bytes, rng: random.Random, n: int) -> list[bytes]:
    out = [body]
    for _ in range(n):
        b = bytearray(body)
        op = rng.randrange(6)
        if op == 0:  # the round
            b[rng.randrange(4)] ^= 1 << rng.randrange(8)
        elif op == 1 and len(b) > 6:  # a count or a header field
            i, v = rng.randrange(4, min(12, len(b))), rng.choice((0, 1, 2, 3, 4, 5, 17, 0xFF))
            # past the header these are key bytes, which differ between the worlds: a value
            # equal to one world's byte would leave that world's request valid, so flip it
            b[i] = v if b[i] != v else v ^ 0x80
        elif op == 2:  # one byte anywhere, always changed: the worlds' valid bodies differ (their
            # keys), so setting a value could leave one world's byte as it was and not the other's
            b[rng.randrange(len(b))] ^= rng.randrange(1, 256)
        elif op == 3:
            del b[rng.randrange(len(b) + 1):]
        elif op == 4:
            b += bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 68, 112))))
        else:  # an id field of a record (4-byte aligned after the fixed part)
            if len(b) >= 12:
                i = 4 * rng.randrange(1, len(b) // 4)
                b[i:i + 4] = rng.choice((0, 1, 2, 4, 5, 0xFFFFFFFF)).to_bytes(4, "little")
        out.append(bytes(b))
    return out


@pytest.fixture(scope="module")
def exe():
    return build_native_client()


def test_c_and_python_clients_agree_on_valid_and_mutated_requests(exe) -> None:
    rng = np.random.default_rng(4)
    ups = [rng.normal(0, 0.05, 40).astype(np.float32) for _ in IDS]
    ws = [7, 9, 11, 13]
    enc = Encoding(1.0, 16, 16)
    py, cw = _PyWorld(ups, ws, enc), _CWorld(exe, ups, ws, enc)
    seeds = random.Random(13)
    results: dict[str, dict[str, list[tuple[str, int]]]] = {"py": {}, "c": {}}
    cases: dict[str, dict[str, list[bytes]]] = {"py": {}, "c": {}}

    def hook(world: str, w):
        def at_stage(stage: str, body: bytes) -> None:
            # the same mutations (positions and values) of each world's own valid request
            muts = _mutations(body, random.Random(stage_seed[stage]), 150)
            cases[world][stage] = muts
            w.save()
            out = []
            for b in muts:
                w.restore()
                out.append(w.outcome(stage, b))
            w.restore()
            results[world][stage] = out
        return at_stage

    stage_seed = {s: seeds.randrange(1 << 30) for s in STAGES}
    try:
        _run_round(py, hook("py", py))
        _run_round(cw, hook("c", cw))
    finally:
        cw.close()
    for stage in STAGES:
        a, b = results["py"][stage], results["c"][stage]
        for k, (x, y) in enumerate(zip(a, b)):
            assert x == y, (stage, k, cases["py"][stage][k].hex(), cases["c"][stage][k].hex(), x, y)
        counts: dict[str, int] = {}
        for cls, _ in a:
            counts[cls] = counts.get(cls, 0) + 1
        assert a[0][0] == "ok" and len(a) == 151, (stage, counts)  # the valid request is answered
        assert counts.get("length", 0) >= 10 and counts.get("refused", 0) + counts.get("policy", 0) >= 1, (stage, counts)
        if stage != "ADVERTISE_KEYS":  # a fresh client takes any round
            assert counts.get("state", 0) >= 5, (stage, counts)
