"""The ServerApp's side of the relay: every operation for a board behind a
gateway becomes an entry in the next Flower message to that gateway.

A Flower SuperNode handles one message at a time and each message costs
seconds (the SuperNode polls, a ClientApp process starts per message), so
the router sends **one message per gateway per step** and never more than
one at a time to the same gateway:

* operations submitted for boards of one gateway within ``window`` seconds
  (the round engine calls every board from its own thread at once) are sent
  together; :meth:`Router.flush` sends at once (a SecAgg+ stage submits all
  its requests and flushes);
* a gateway's next message waits until its previous one was answered, so a
  board's operations arrive in the order they were submitted;
* parameter vectors go once per message, however many boards take them.

Replies are pulled every ``poll`` seconds.  A gateway that answers with an
error (Flower reports NODE_UNAVAILABLE when its SuperNode left or missed
its heartbeats for a minute), that comes back as a new node (restarted:
the nodes are listed again every ``rediscover`` seconds while a message is
out), or that does not answer within the operations' own time plus
``latency`` fails all of that message's operations: its boards are
dropouts of that step, exactly as a board over serial that stops
answering.  Gateways are found with
:meth:`Router.discover` (inventory messages to nodes not seen before); a
gateway that restarted comes back as a new node, and its boards, known by
name (``<gateway>/<port>``), are routed to it again.

All Flower calls happen on the router's own thread (``Grid`` is used from
one thread only).
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from tinyfed_toolchain.facts.errors import DeviceFailure

from .relay import (MESSAGE_TYPE, RECORD, DeviceEntry, Op, OpResult, RelayError, RelayReply, RelayRequest,
                    pack_fields)


class RouteError(DeviceFailure, ConnectionError):
    """No gateway currently offers this board."""


@dataclass
class _Entry:
    name: str  # participant name: <gateway>/<device key>
    op: Op
    params: bytes | None
    budget: float  # seconds the board may need for this operation
    future: "Future[OpResult]" = field(default_factory=Future)


@dataclass
class _Inflight:
    message_id: str
    entries: list[_Entry]
    inventory: "Future[RelayReply] | None"
    deadline: float
    sent: float
    bytes_out: int


@dataclass
class _Node:
    node_id: int
    gateway: str = ""
    alive: bool = True
    pending: list[_Entry] = field(default_factory=list)
    first_pending: float = 0.0
    inventory: "Future[RelayReply] | None" = None
    inflight: _Inflight | None = None


@dataclass
class RouterStats:
    """Flower traffic of a run: messages, the relay bytes both ways, time waiting for replies."""

    messages: int = 0
    failed: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    seconds: float = 0.0  # sum over messages of (reply time - send time)

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "failed_messages": self.failed, "bytes_to_gateways": self.bytes_out,
                "bytes_from_gateways": self.bytes_in, "message_seconds": round(self.seconds, 3)}


class Router:
    """Batches operations per gateway into Flower messages (see the module docstring)."""

    def __init__(self, grid: Grid, *, window: float = 0.3, poll: float = 0.2, latency: float = 120.0,
                 rediscover: float = 10.0, log: Callable[[str], None] = print) -> None:
        self.grid = grid
        self.window, self.poll, self.latency = window, poll, latency
        self.rediscover = rediscover
        self._last_discovery = time.monotonic()
        self.log = log
        self.nodes: dict[int, _Node] = {}
        self.routes: dict[str, tuple[int, str]] = {}  # participant name -> (node id, device key)
        self.devices: dict[str, DeviceEntry] = {}  # participant name -> last inventory entry
        self.stats = RouterStats()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._refresh: list["Future[None]"] = []
        self._thread = threading.Thread(target=self._loop, name="flower-router", daemon=True)
        self._thread.start()

    # -- public -----------------------------------------------------------------------------------------
    def submit(self, name: str, kind: str, args: dict[str, Any] | None = None, *, data: bytes = b"",
               params: bytes | None = None, budget: float = 60.0) -> "Future[OpResult]":
        """Queue one operation for the board ``name``; its future resolves with the board's result."""
        with self._lock:
            route = self.routes.get(name)
            node = self.nodes.get(route[0]) if route else None
            if route is None or node is None or not node.alive:
                f: Future[OpResult] = Future()
                f.set_exception(RouteError(f"{name}: no gateway currently offers this board"))
                return f
            e = _Entry(name, Op(route[1], kind, dict(args or {}), data), params, budget)
            if not node.pending:
                node.first_pending = time.monotonic()
            node.pending.append(e)
        self._wake.set()
        return e.future

    def flush(self) -> None:
        """Send every queued operation now (no coalescing window)."""
        with self._lock:
            for n in self.nodes.values():
                if n.pending:
                    n.first_pending = 0.0
        self._wake.set()

    def discover(self, *, timeout: float = 60.0) -> dict[str, DeviceEntry]:
        """Inventory every node not seen before (and forget nodes that left); returns the boards
        known now by participant name."""
        f: Future[None] = Future()
        with self._lock:
            self._refresh.append(f)
        self._wake.set()
        f.result(timeout=timeout + self.latency)
        with self._lock:
            return dict(self.devices)

    def online(self) -> int:
        """Boards online on the gateways currently in the federation (as last inventoried)."""
        with self._lock:
            return sum(1 for name, d in self.devices.items() if d.online and name in self.routes)

    def wait_for_devices(self, n: int, timeout: float, *, log_every: float = 10.0) -> dict[str, DeviceEntry]:
        """Discover until at least ``n`` boards are online or ``timeout`` seconds have passed."""
        t0 = last = time.monotonic()
        while True:
            devs = self.discover()
            online = [name for name, d in devs.items() if d.online and name in self.routes]
            if len(online) >= n or time.monotonic() - t0 >= timeout:
                return devs
            if time.monotonic() - last >= log_every:
                self.log(f"[flower] {len(online)} of {n} board(s) online on {len(self.gateways())} gateway(s); "
                         "waiting for more")
                last = time.monotonic()
            time.sleep(1.0)

    def gateways(self) -> dict[int, str]:
        with self._lock:
            return {n.node_id: n.gateway for n in self.nodes.values() if n.alive}

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        with self._lock:
            for n in self.nodes.values():
                for e in n.pending:
                    e.future.set_exception(RouteError("the run is over"))
                n.pending = []

    # -- the router thread ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._do_refresh()
                self._send_ready()
                self._pull()
                self._expire()
            except Exception as e:  # noqa: BLE001 - the router must outlive a failed Flower call
                self.log(f"[flower] router: {type(e).__name__}: {e}")
            self._wake.wait(self.poll)
            self._wake.clear()

    def _do_refresh(self) -> None:
        with self._lock:
            waiting, self._refresh = self._refresh, []
            busy = any(n.inflight is not None for n in self.nodes.values())
        due = busy and self.nodes and time.monotonic() - self._last_discovery >= self.rediscover
        if not waiting and not due:
            return
        self._last_discovery = time.monotonic()
        try:
            ids = set(int(i) for i in self.grid.get_node_ids())
            with self._lock:
                for nid, n in self.nodes.items():
                    if nid not in ids and n.alive:
                        self._node_left(n, "its SuperNode left the federation")
                new = [i for i in ids if i not in self.nodes]
                for i in new:
                    self.nodes[i] = _Node(i)
                # new nodes, and nodes whose inventory failed (answered an error): ask them (again)
                ask = [i for i in ids if self.nodes[i].alive and not self.nodes[i].gateway
                       and self.nodes[i].inventory is None and self.nodes[i].inflight is None]
                invs = []
                for i in ask:
                    n = self.nodes[i]
                    n.inventory = Future()
                    invs.append(n.inventory)
            self._send_ready()
            if not waiting:
                return  # a periodic look: the inventories' replies arrive through the normal loop
            deadline = time.monotonic() + self.latency
            for f in invs:
                while not f.done() and time.monotonic() < deadline and not self._stop.is_set():
                    self._pull()
                    self._expire()
                    self._send_ready()
                    time.sleep(self.poll)
            for f in waiting:
                f.set_result(None)
        except Exception as e:  # noqa: BLE001
            for f in waiting:
                if not f.done():
                    f.set_exception(e)

    def _send_ready(self) -> None:
        now = time.monotonic()
        batches: list[tuple[_Node, RelayRequest, list[_Entry], Future[RelayReply] | None, float]] = []
        with self._lock:
            for n in self.nodes.values():
                if n.inflight is not None or not n.alive:
                    continue
                ready = bool(n.pending) and (now - n.first_pending >= self.window or n.first_pending == 0.0)
                if not ready and n.inventory is None:
                    continue
                entries = n.pending if ready else []
                n.pending = [] if ready else n.pending
                blobs: list[bytes] = []
                index: dict[bytes, int] = {}  # equal vectors (by value) go once
                ops: list[Op] = []
                for e in entries:
                    op = e.op
                    if e.params is not None:
                        k = index.setdefault(e.params, len(blobs))
                        if k == len(blobs):
                            blobs.append(e.params)
                        op = Op(op.device, op.kind, {**op.args, "index": k}, op.data)
                    ops.append(op)
                req = RelayRequest(next(self._seq), tuple(ops), tuple(blobs), inventory=n.inventory is not None)
                per_board: dict[str, float] = {}
                for e in entries:
                    per_board[e.name] = per_board.get(e.name, 0.0) + e.budget
                budget = max(per_board.values(), default=0.0)
                batches.append((n, req, entries, n.inventory, budget))
                n.inventory = None
                n.inflight = _Inflight("", entries, None, 0.0, 0.0, 0)  # reserve the slot
        for n, req, entries, inv, budget in batches:
            fields = req.to_fields()
            ttl = budget + self.latency
            msg = Message(RecordDict({RECORD: ConfigRecord(fields)}), dst_node_id=n.node_id,
                          message_type=MESSAGE_TYPE, ttl=ttl, group_id=f"tinyfed-{req.seq}")
            size = len(pack_fields(fields))
            try:
                mid = list(self.grid.push_messages([msg]))[0]
            except Exception as e:  # noqa: BLE001
                with self._lock:
                    n.inflight = None
                self._fail(entries, inv, ConnectionError(f"gateway {n.gateway or n.node_id}: push failed: {e}"))
                continue
            t = time.monotonic()
            with self._lock:
                n.inflight = _Inflight(mid, entries, inv, t + ttl, t, size)
                self.stats.messages += 1
                self.stats.bytes_out += size

    def _pull(self) -> None:
        with self._lock:
            inflight = {n.inflight.message_id: n for n in self.nodes.values()
                        if n.inflight is not None and n.inflight.message_id}
        if not inflight:
            return
        for reply in self.grid.pull_messages(list(inflight)):
            n = inflight.get(reply.metadata.reply_to_message_id)
            if n is None or n.inflight is None:
                continue
            fl = n.inflight
            with self._lock:
                n.inflight = None
                self.stats.seconds += time.monotonic() - fl.sent
            if reply.has_error():
                err = reply.error
                self.stats.failed += 1
                why = f"gateway {n.gateway or n.node_id} answered Flower error {err.code}: {err.reason}"
                if fl.inventory is not None:
                    self.log(f"[flower] node {n.node_id}: no inventory ({why.strip()})")
                if err.code == 5:  # NODE_UNAVAILABLE
                    with self._lock:
                        self._node_left(n, "its SuperNode is unavailable")
                self._fail(fl.entries, fl.inventory, ConnectionError(why))
                continue
            try:
                fields = dict(reply.content.config_records[RECORD])
                self.stats.bytes_in += len(pack_fields(fields))
                rr = RelayReply.from_fields(fields)
                if len(rr.results) != len(fl.entries):
                    raise RelayError(f"{len(rr.results)} results for {len(fl.entries)} operations")
            except (RelayError, KeyError, TypeError, ValueError) as e:
                self.stats.failed += 1
                self._fail(fl.entries, fl.inventory, ConnectionError(f"gateway {n.gateway or n.node_id}: bad reply: {e}"))
                continue
            for e, res in zip(fl.entries, rr.results):
                e.future.set_result(res)
            if fl.inventory is not None:
                self._take_inventory(n, rr)
                fl.inventory.set_result(rr)

    def _take_inventory(self, n: _Node, rr: RelayReply) -> None:
        with self._lock:
            n.gateway = rr.gateway
            for old in self.nodes.values():  # a restarted gateway: its previous node is gone
                if old is not n and old.gateway == rr.gateway and old.alive:
                    self._node_left(old, f"gateway {rr.gateway} came back as node {n.node_id}")
            for d in rr.devices:
                name = d.name or f"{rr.gateway}/{d.device}"
                self.routes[name] = (n.node_id, d.device)
                self.devices[name] = d
        self.log(f"[flower] gateway {rr.gateway} (node {n.node_id}): "
                 f"{sum(1 for d in rr.devices if d.online)} of {len(rr.devices)} board(s) online")

    def _expire(self) -> None:
        now = time.monotonic()
        expired: list[tuple[_Node, _Inflight]] = []
        with self._lock:
            for n in self.nodes.values():
                fl = n.inflight
                if fl is not None and fl.message_id and now > fl.deadline:
                    n.inflight = None
                    expired.append((n, fl))
                    self.stats.failed += 1
        for n, fl in expired:
            self._fail(fl.entries, fl.inventory,
                       TimeoutError(f"gateway {n.gateway or n.node_id} did not answer within "
                                    f"{fl.deadline - fl.sent:.0f} s"))

    def _node_left(self, n: _Node, why: str) -> None:
        """(lock held) Forget a node; its queued operations and its message in flight fail."""
        n.alive = False
        fl, n.inflight = n.inflight, None
        if fl is not None and fl.message_id:
            self.stats.failed += 1
            self._fail(fl.entries, fl.inventory, ConnectionError(f"gateway {n.gateway or n.node_id}: {why}"))
        for name, (nid, _) in list(self.routes.items()):
            if nid == n.node_id:
                del self.routes[name]
                if name in self.devices:
                    d = self.devices[name]
                    self.devices[name] = DeviceEntry(d.device, False, d.info, why)
        pending, n.pending = n.pending, []
        for e in pending:
            e.future.set_exception(ConnectionError(f"gateway {n.gateway or n.node_id}: {why}"))

    @staticmethod
    def _fail(entries: Sequence[_Entry], inv: "Future[RelayReply] | None", exc: BaseException) -> None:
        for e in entries:
            if not e.future.done():
                e.future.set_exception(exc)
        if inv is not None and not inv.done():
            inv.set_exception(exc)


__all__ = ["RouteError", "Router", "RouterStats"]
