"""A board behind a gateway, as a round-engine participant.

:class:`FlowerParticipant` has the interface of a board over serial (open,
push_params, train, fetch_update, secagg_endpoint, traffic, close); each call
becomes a relay operation (:mod:`tinyfed_host.flower.relay`) that the
:class:`~tinyfed_host.flower.router.Router` sends in the next Flower message
to the board's gateway.  Failures come back as the exceptions a serial board
raises (link lost, timeout, device/protocol error), so the round engine,
the strategies and the SecAgg+ server treat a board behind a gateway exactly
like one on a local port -- a per-device dropout, never a whole gateway's
unless the gateway itself is gone.

``push_params`` does not wait: the parameters go in the same message as the
board's next operation (TRAIN), saving one Flower round trip per round; if
they fail, that next operation fails with the reason.  A push with nothing
after it (the final model) is sent after the router's window and awaited at
:meth:`FlowerParticipant.close`.

SecAgg+: :meth:`secagg_endpoint` returns an endpoint whose ``batch`` is
shared by all boards of the run, so the SecAgg+ server hands each stage's
requests over at once and the router sends one message per gateway per
stage.  The bodies are the device's own; the gateway relays them.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from typing import Any, Sequence

import numpy as np

from tinyfed_toolchain.facts.train_config import TrainConfig

from ..fl_client import TrainResult, Update, encode_f32
from ..link import LinkError, LinkTimeout
from ..protocol import ProtocolError
from ..participant import DeviceIdentityInfo, ParticipantInfo, Traffic
from .relay import OpResult
from .router import RouteError, Router

#: seconds a SecAgg+ stage may take on a board (key agreement on a Cortex-M4 is ~0.1 s per neighbour;
#: MASKED_INPUT streams the whole masked vector over serial)
SECAGG_BUDGET = 60.0
HELLO_BUDGET = 30.0


def raise_failure(name: str, res: OpResult) -> None:
    """Raise what a board over serial would have raised for this failed operation."""
    msg = f"{name}: {res.error}"
    if res.failure == "timeout":
        raise LinkTimeout(msg)
    if res.failure in ("device", "protocol"):
        raise ProtocolError(msg)
    raise LinkError(msg)  # lost, gateway


def participant_info(name: str, fields: dict[str, Any]) -> ParticipantInfo:
    names = {f.name for f in dataclasses.fields(ParticipantInfo)}
    d = {k: v for k, v in fields.items() if k in names}
    d["name"] = name
    d["model_hash"] = bytes.fromhex(str(fields.get("model_hash", "")))
    ident = fields.get("identity")
    d["identity"] = DeviceIdentityInfo.from_fields(ident) if ident else None
    return ParticipantInfo(**d)


class FlowerParticipant:
    """One board of one gateway (``name`` = ``<gateway>/<port>``)."""

    def __init__(self, name: str, router: Router, batch: "SecAggBatch", *, min_devices: int = 0,
                 wait: float = 0.0) -> None:
        """``min_devices`` / ``wait``: when this board's gateway is gone and fewer than
        ``min_devices`` boards are online, a rejoin waits up to ``wait`` s for gateways to
        come back (the run's minimum; a gateway gone for good costs nothing while the
        others still make the minimum)."""
        self.name = name
        self.router = router
        self._batch = batch
        self.min_devices, self.wait = min_devices, wait
        self._traffic = Traffic()
        self._pushed: Future[OpResult] | None = None
        self.info: ParticipantInfo | None = None

    def _wait(self, fut: "Future[OpResult]", budget: float) -> OpResult:
        try:
            res = fut.result(timeout=budget + self.router.latency + 5.0)
        except RouteError as e:
            raise LinkError(str(e)) from None
        except ConnectionError as e:
            raise LinkError(f"{self.name}: {e}") from None
        except TimeoutError as e:
            raise LinkTimeout(f"{self.name}: {e}") from None
        self._take_traffic(res)
        if not res.ok:
            raise_failure(self.name, res)
        return res

    def _take_traffic(self, res: OpResult) -> None:
        po, pi, wo, wi = res.traffic
        if (po, pi, wo, wi) != (0, 0, 0, 0):
            self._traffic = Traffic(po, pi, wo, wi)

    def open(self) -> ParticipantInfo:
        if self.name not in self.router.routes:
            self.router.discover()
            if self.name not in self.router.routes and self.router.online() < self.min_devices:
                self.router.wait_for_devices(self.min_devices, self.wait)
        entry = self.router.devices.get(self.name)
        if self.info is None and entry is not None and entry.online and entry.info:
            # first open: the gateway's inventory already carries the board's HELLO (no message)
            self.info = participant_info(self.name, entry.info)
            return self.info
        res = self._wait(self.router.submit(self.name, "HELLO", budget=HELLO_BUDGET), HELLO_BUDGET)
        self.info = participant_info(self.name, res.fields)
        return self.info

    def push_params(self, round_: int, params: np.ndarray, model_hash: bytes, persist: bool) -> None:
        data = encode_f32(np.asarray(params, dtype=np.float32))
        self._pushed = self.router.submit(self.name, "PARAMS", {"version": int(round_), "persist": bool(persist),
                                                                "model_hash": bytes(model_hash).hex()},
                                          params=data, budget=HELLO_BUDGET)

    def _take_push(self) -> None:
        """The deferred PARAMS result, if it is already known (its failure also fails what follows)."""
        f, self._pushed = self._pushed, None
        if f is not None and f.done() and f.exception() is None:
            self._take_traffic(f.result())

    def train(self, round_: int, cfg: TrainConfig, timeout: float) -> TrainResult:
        fut = self.router.submit(self.name, "TRAIN", {"version": int(round_), "timeout": float(timeout),
                                                      "cfg": dataclasses.asdict(cfg)}, budget=timeout)
        pushed = self._pushed
        try:
            res = self._wait(fut, timeout)
        finally:
            if pushed is not None and pushed.done():
                self._take_push()
        names = {f.name for f in dataclasses.fields(TrainResult)}
        return TrainResult(**{k: v for k, v in res.fields.items() if k in names})

    def fetch_update(self, round_: int, encoding: int) -> Update:
        res = self._wait(self.router.submit(self.name, "UPDATE", {"version": int(round_), "encoding": int(encoding)},
                                            budget=HELLO_BUDGET), HELLO_BUDGET)
        f = res.fields
        return Update(self.name, int(f["round"]), int(f["n_params"]), int(f["encoding"]), int(f["weight"]),
                      res.data, float(f["norm"]), float(f["clip"]))

    def secagg_endpoint(self, client_id: int, enc: Any, weight: int = 0, staleness: int = 0) -> "FlowerSecAggEndpoint":
        return FlowerSecAggEndpoint(client_id, self, enc, self._batch, weight, staleness)

    def traffic(self) -> Traffic:
        return Traffic(**self._traffic.__dict__)

    def close(self) -> None:
        f, self._pushed = self._pushed, None
        if f is None:
            return
        self.router.flush()
        try:
            self._wait(f, HELLO_BUDGET)
        except (LinkError, LinkTimeout, ProtocolError) as e:
            self.router.log(f"[flower] {self.name}: the last parameters were not delivered ({e})")


class FlowerSecAggEndpoint:
    """A board as SecAgg+ client ``id``; its stage exchanges go through the shared batch."""

    def __init__(self, client_id: int, participant: FlowerParticipant, enc: Any, batch: "SecAggBatch",
                 weight: int = 0, staleness: int = 0) -> None:
        self.id = client_id
        self.participant = participant
        self.enc = enc
        self.batch = batch
        self.weight, self.staleness = int(weight), int(staleness)

    def args(self, stage: str) -> dict[str, Any]:
        e = self.enc
        a = {"stage": stage, "client_id": int(self.id), "clip": float(e.clip32), "frac_bits": int(e.frac_bits),
             "weight_max": int(e.weight_max), "dp_z_milli": int(e.dp_z_milli), "weight": self.weight,
             "staleness": self.staleness}
        if self.batch.check_exact and stage == "MASKED_INPUT":
            a["encoded"] = True
        return a

    def exchange(self, message: str, payload: bytes) -> bytes:
        out = self.batch(message, [(self, payload)])[0]
        if isinstance(out, BaseException):
            raise out
        return out


class SecAggBatch:
    """``batch(stage, [(endpoint, body)]) -> [reply or exception]``: one relay operation per board,
    flushed together (one message per gateway)."""

    def __init__(self, router: Router, budget: float = SECAGG_BUDGET, *, check_exact: bool = False) -> None:
        self.router = router
        self.budget = budget
        self.check_exact = check_exact
        #: --check-exact (test images): (SecAgg round, client id) -> the words the board masked
        self.encoded: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, stage: str, calls: Sequence[tuple[FlowerSecAggEndpoint, bytes]]) -> list[Any]:
        futs = [ep.participant.router.submit(ep.participant.name, "SECAGG", ep.args(stage), data=body,
                                             budget=self.budget) for ep, body in calls]
        self.router.flush()
        out: list[Any] = []
        for (ep, body), f in zip(calls, futs):
            try:
                res = ep.participant._wait(f, self.budget)
            except (LinkError, LinkTimeout, ProtocolError) as e:
                out.append(e)
                continue
            n = res.fields.get("reply_len")
            if isinstance(n, int) and self.check_exact:
                sa_round = int.from_bytes(body[:4], "little")
                self.encoded[(sa_round, ep.id)] = np.frombuffer(res.data[n:], dtype="<u4").astype(np.uint32)
                out.append(res.data[:n])
            else:
                out.append(res.data)
        return out


def make_participants(router: Router, names: Sequence[str], batch: SecAggBatch | None = None, *,
                      min_devices: int = 0, wait: float = 0.0) -> list[FlowerParticipant]:
    b = batch or SecAggBatch(router)
    return [FlowerParticipant(n, router, b, min_devices=min_devices, wait=wait) for n in names]


__all__ = ["FlowerParticipant", "FlowerSecAggEndpoint", "SecAggBatch", "make_participants", "participant_info",
           "raise_failure"]
