"""A seeded fault-injection TCP proxy for link tests.

It sits between the host and a device that listens on TCP (QEMU
``-serial tcp:...,server`` or the loopback device) and, per byte and per
direction, flips one bit, drops the byte, or injects a random byte before it,
with the probabilities of a :class:`FaultSpec`.  The same seed gives the same
decisions for the same byte stream.  Only loopback addresses are used.

>>> with FaultProxy(("127.0.0.1", 5555), FaultSpec(flip=1e-3), seed=1) as px:  # doctest: +SKIP
...     client = DeviceClient.connect(px.url)
"""

from __future__ import annotations

import random
import socket
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FaultSpec:
    flip: float = 0.0  # probability per byte: flip one random bit
    drop: float = 0.0  # probability per byte: drop it
    inject: float = 0.0  # probability per byte: insert a random byte before it
    h2d: bool = True  # apply to host -> device bytes
    d2h: bool = True  # apply to device -> host bytes
    max_faults: int | None = None  # stop injecting after this many (None: never)

    @classmethod
    def from_ber(cls, ber: float, *, drop: float = 0.0, inject: float = 0.0) -> "FaultSpec":
        """A link with bit error rate ``ber``: each byte is hit with probability
        1 - (1 - ber)^8 (one bit flipped: two flips in one byte are ~28 ber^2, negligible)."""
        if not 0.0 <= ber < 1.0:
            raise ValueError(f"bit error rate {ber} not in [0, 1)")
        return cls(flip=1.0 - (1.0 - ber) ** 8, drop=drop, inject=inject)


@dataclass
class FaultCounters:
    bytes_h2d: int = 0
    bytes_d2h: int = 0
    flipped: int = 0
    dropped: int = 0
    injected: int = 0

    @property
    def faults(self) -> int:
        return self.flipped + self.dropped + self.injected


@dataclass
class _Pump:
    src: socket.socket
    dst: socket.socket
    active: bool
    rng: random.Random
    h2d: bool
    thread: threading.Thread | None = field(default=None)


class FaultProxy:
    """Listen on 127.0.0.1 (ephemeral port), forward one connection to ``target``."""

    def __init__(self, target: tuple[str, int], spec: FaultSpec, *, seed: int = 0, timeout: float = 10.0) -> None:
        if target[0] not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only forwards to loopback addresses")
        self.target = target
        self.spec = spec
        self.seed = seed
        self.timeout = timeout
        self.counters = FaultCounters()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self._listener.settimeout(timeout)
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="faultproxy-accept", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            device = socket.create_connection(self.target, timeout=self.timeout)
        except OSError:
            client.close()
            return
        for s in (client, device):
            s.settimeout(0.2)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socks.append(s)
        for src, dst, h2d in ((client, device, True), (device, client, False)):
            active = self.spec.h2d if h2d else self.spec.d2h
            pump = _Pump(src, dst, active, random.Random(self.seed * 2 + int(h2d)), h2d)
            pump.thread = threading.Thread(target=self._run, args=(pump,), name="faultproxy-pump", daemon=True)
            pump.thread.start()

    def _budget_left(self) -> bool:
        return self.spec.max_faults is None or self.counters.faults < self.spec.max_faults

    def _mangle(self, pump: _Pump, data: bytes) -> bytes:
        if not pump.active:
            return data
        s, rng = self.spec, pump.rng
        out = bytearray()
        with self._lock:
            for b in data:
                r = rng.random()
                if r < s.inject and self._budget_left():
                    out.append(rng.randrange(256))
                    self.counters.injected += 1
                r = rng.random()
                if r < s.drop and self._budget_left():
                    self.counters.dropped += 1
                    continue
                r = rng.random()
                if r < s.flip and self._budget_left():
                    b ^= 1 << rng.randrange(8)
                    self.counters.flipped += 1
                out.append(b)
        return bytes(out)

    def _run(self, pump: _Pump) -> None:
        while not self._stop.is_set():
            try:
                data = pump.src.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            with self._lock:
                if pump.h2d:
                    self.counters.bytes_h2d += len(data)
                else:
                    self.counters.bytes_d2h += len(data)
            try:
                pump.dst.sendall(self._mangle(pump, data))
            except OSError:
                break
        for s in (pump.src, pump.dst):  # one side closed: close both
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FaultProxy", "FaultSpec", "FaultCounters"]
