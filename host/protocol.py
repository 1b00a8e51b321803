"""Host side of the device protocol: :class:`DeviceClient`.

The host drives every exchange: it sends a request frame and waits (with a
timeout) for the reply carrying the same sequence number.  On a timeout, or
when the device reports a corrupt frame (an UNSOLICITED NACK), it resends the
*identical* frame; the device recognises the repetition (same seq, same CRC)
and replays its cached reply instead of running the request twice.

Chunked transfers pipeline up to ``window`` requests (go-back-N): chunk
writes are idempotent on the device (a duplicate is acknowledged with the
next expected offset, a gap is NACKed with it), and chunk reads are pure, so
any lost frame is simply asked for again.

The client is a small state machine too (DESIGN.md rule 8): ``Stage``,
checked transitions in ``_TRANSITIONS``, one method per exchange.
"""

from __future__ import annotations

import enum
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .framing import FLAG_REPLY, FLAG_UNSOLICITED, Frame, FrameDecoder, encode_frame, crc32
from .link import Link, LinkTimeout
from .wire import STATUS, WIRE, Message


MIN_CHUNK = 64  # smallest chunk the transfers shrink to on a noisy line


class ProtocolError(RuntimeError):
    """The device answered something the protocol does not allow (or nothing usable)."""


class DeviceError(ProtocolError):
    """The device refused a request with an ERROR reply."""

    def __init__(self, code: int, text: str, *, ref_id: int = 0, detail: int = 0) -> None:
        self.code = code
        self.name = STATUS.get(code, (f"status {code}", ""))[0]
        self.text = text
        self.ref_id = ref_id
        self.detail = detail
        ref = WIRE.by_id[ref_id].name if ref_id in WIRE.by_id else f"0x{ref_id:02X}"
        super().__init__(f"device error {self.name} ({code}) on {ref}: {text} [detail {detail}]")


class Stage(enum.Enum):
    CLOSED = "closed"  # no session (before HELLO, or after a version mismatch)
    READY = "ready"
    SENDING = "sending"  # host -> device transfer open
    RECEIVING = "receiving"  # device -> host transfer open


_TRANSITIONS: dict[Stage, set[Stage]] = {
    Stage.CLOSED: {Stage.CLOSED, Stage.READY},
    Stage.READY: {Stage.CLOSED, Stage.READY, Stage.SENDING, Stage.RECEIVING},
    Stage.SENDING: {Stage.CLOSED, Stage.READY},
    Stage.RECEIVING: {Stage.CLOSED, Stage.READY},
}


@dataclass(frozen=True)
class ClientOptions:
    """Every knob of the client, declared once."""

    timeout: float = 1.0  # per attempt, for a normal request
    retries: int = 6  # resends after the first attempt (per request / per stalled window)
    window: int = 2  # requests in flight during chunked transfers
    chunk: int = WIRE.const("CHUNK_MAX")
    eval_timeout: float = 300.0  # EVAL runs the model over the whole shard
    infer_timeout: float = 30.0


@dataclass(frozen=True)
class DeviceInfo:
    board: str
    fw_version: str
    proto_version: int
    table_crc: int
    caps: int
    model_name: str
    model_hash: bytes
    flash_used: int
    sram_used: int
    arena_bytes: int
    shard_size: int
    num_classes: int
    input_bytes: int
    output_bytes: int
    max_payload: int

    @property
    def test_messages(self) -> bool:
        return bool(self.caps & WIRE.const("CAP_TEST_MESSAGES"))

    @property
    def has_model(self) -> bool:
        return bool(self.caps & WIRE.const("CAP_MODEL"))

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["model_hash"] = self.model_hash.hex()
        return d


@dataclass(frozen=True)
class EvalResult:
    samples: int
    correct: int
    loss_sum: float
    elapsed_ms: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.samples if self.samples else float("nan")


@dataclass
class WireCounters:
    """What crossed the link, as seen by the client."""

    frames_out: int = 0
    frames_in: int = 0
    resends: int = 0
    timeouts: int = 0
    nacks: int = 0  # NACK replies and unsolicited NACKs received
    stale: int = 0  # replies to an older request (ignored)
    payload_out: int = 0  # transfer payload bytes sent / received
    payload_in: int = 0


@dataclass
class Reply:
    msg: Message
    fields: dict[str, Any]
    frame: Frame

    @property
    def name(self) -> str:
        return self.msg.name

    def __getitem__(self, k: str) -> Any:
        return self.fields[k]


class DeviceClient:
    """One session with one device over a :class:`~tinyfed_host.link.Link`."""

    def __init__(self, link: Link, options: ClientOptions | None = None) -> None:
        self.link = link
        self.options = options or ClientOptions()
        self.decoder = FrameDecoder()
        self.counters = WireCounters()
        self.stage = Stage.CLOSED
        self.device: DeviceInfo | None = None
        self._seq = random.Random(os.getpid() ^ time.monotonic_ns()).randrange(1, 0x10000)
        self._xfer_id = self._seq
        self._pending: list[Frame] = []

    @classmethod
    def connect(cls, url: str, options: ClientOptions | None = None, **link_kw: Any) -> "DeviceClient":
        opts = options or ClientOptions()
        return cls(Link.open(url, timeout=opts.timeout, **link_kw), opts)

    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> "DeviceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stage machine ----------------------------------------------------------------------
    def _go(self, to: Stage) -> None:
        if to not in _TRANSITIONS[self.stage]:
            raise ProtocolError(f"client: illegal transition {self.stage.value} -> {to.value}")
        self.stage = to

    def _need(self, *stages: Stage) -> None:
        if self.stage not in stages:
            raise ProtocolError(f"not valid in stage {self.stage.value} (need {[s.value for s in stages]})")

    # -- frames -----------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _send(self, frame: bytes) -> None:
        self.link.write(frame)
        self.counters.frames_out += 1

    def _receive(self, deadline: float) -> Frame | None:
        """Next frame before ``deadline`` (None on timeout)."""
        while True:
            if self._pending:
                return self._pending.pop(0)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.link.read_some(left)
            if data:
                frames = self.decoder.feed(data)
                self.counters.frames_in += len(frames)
                self._pending.extend(frames)

    def _stalled(self, f: Frame | None, stalls: int, what: str) -> int:
        """A transfer's wait ended without its reply: ``f`` is None (timeout) or
        an unsolicited NACK.  Count it; returns ``stalls + 1``, or raises
        :class:`LinkTimeout` (``what``) past ``options.retries`` stalls."""
        if f is None:
            self.counters.timeouts += 1
        else:
            self.counters.nacks += 1
        stalls += 1
        if stalls > self.options.retries:
            raise LinkTimeout(what)
        return stalls

    def _decode(self, f: Frame) -> Reply:
        m = WIRE.by_id.get(f.msg_id)
        if m is None or m.direction == "H2D":
            raise ProtocolError(f"device sent id 0x{f.msg_id:02X}, which is not a device message")
        try:
            return Reply(m, m.decode(f.payload), f)
        except ValueError as e:
            raise ProtocolError(f"bad {m.name} from device: {e}") from e

    @staticmethod
    def _raise_if_error(r: Reply) -> Reply:
        if r.name == "ERROR":
            raise DeviceError(r["code"], r["text"], ref_id=r["ref_id"], detail=r["detail"])
        return r

    def request(self, name: str, *, timeout: float | None = None, expect: tuple[str, ...] = (), **values: Any) -> Reply:
        """Send request ``name`` and return its reply; resend on timeout or NACK.

        Raises :class:`DeviceError` for an ERROR reply, :class:`LinkTimeout`
        when no reply came after ``1 + retries`` attempts, and
        :class:`ProtocolError` for a reply of a type not in ``expect``.
        """
        msg = WIRE.msg(name)
        if msg.direction == "D2H":
            raise ProtocolError(f"{name} is not a request")
        seq = self._next_seq()
        frame = encode_frame(msg.id, seq, msg.encode(**values))
        per_try = timeout if timeout is not None else self.options.timeout
        for attempt in range(self.options.retries + 1):
            if attempt:
                self.counters.resends += 1
            self._send(frame)
            deadline = time.monotonic() + per_try
            while True:
                f = self._receive(deadline)
                if f is None:
                    self.counters.timeouts += 1
                    break
                if f.flags & FLAG_UNSOLICITED:
                    self.counters.nacks += 1
                    break  # the device dropped a corrupt frame: resend now
                if not f.flags & FLAG_REPLY or f.seq != seq:
                    self.counters.stale += 1
                    continue
                r = self._raise_if_error(self._decode(f))
                if expect and r.name not in expect:
                    raise ProtocolError(f"{name}: expected {'/'.join(expect)}, got {r.name}")
                return r
        raise LinkTimeout(f"{name}: no reply from {self.link.url} after {self.options.retries + 1} attempts")

    # -- session ----------------------------------------------------------------------------
    def hello(self) -> DeviceInfo:
        """Open the session (checks protocol version and wire-table CRC)."""
        nonce = random.getrandbits(32)
        try:
            r = self.request("HELLO", expect=("INFO",), proto_version=WIRE.const("PROTO_VERSION"),
                             table_crc=WIRE.table_crc, nonce=nonce)
        except DeviceError:
            self._go(Stage.CLOSED)
            raise
        if r["nonce"] != nonce:
            raise ProtocolError("HELLO: nonce not echoed")
        self._go(Stage.READY)
        self.device = self._info(r)
        return self.device

    def info(self) -> DeviceInfo:
        self._need(Stage.READY, Stage.SENDING, Stage.RECEIVING)
        nonce = random.getrandbits(32)
        r = self.request("GET_INFO", expect=("INFO",), nonce=nonce)
        if r["nonce"] != nonce:
            raise ProtocolError("GET_INFO: nonce not echoed")
        self.device = self._info(r)
        return self.device

    @staticmethod
    def _info(r: Reply) -> DeviceInfo:
        f = dict(r.fields)
        f.pop("nonce")
        return DeviceInfo(**f)

    def ping(self, token: int | None = None) -> float:
        """Round-trip time in seconds."""
        token = random.getrandbits(32) if token is None else token
        t0 = time.perf_counter()
        r = self.request("PING", expect=("PONG",), token=token)
        if r["token"] != token:
            raise ProtocolError("PING: token not echoed")
        return time.perf_counter() - t0

    def stats(self, reset: bool = False) -> dict[str, int]:
        return dict(self.request("GET_STATS", expect=("STATS",), reset=int(reset)).fields)

    def eval(self, max_samples: int = 0) -> EvalResult:
        """Accuracy and loss of the device's model on its own shard (numbers only)."""
        self._need(Stage.READY)
        r = self.request("EVAL", expect=("EVAL_RESULT",), timeout=self.options.eval_timeout,
                         max_samples=max_samples)
        return EvalResult(r["samples"], r["correct"], float(r["loss_sum"]), r["elapsed_ms"])

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Test-only: the device's int8 model output for int8 input ``x``."""
        self._need(Stage.READY)
        x = np.ascontiguousarray(x)
        if x.dtype != np.int8:
            raise TypeError(f"infer needs int8 input, got {x.dtype}")
        r = self.request("INFER_TEST", expect=("INFER_RESULT",), timeout=self.options.infer_timeout,
                         input=x.tobytes())
        return np.frombuffer(r["output"], dtype=np.int8).copy()

    # -- transfers: host -> device -----------------------------------------------------------
    def send_payload(self, purpose: str | int, data: bytes) -> None:
        """Send ``data`` to the device as transfer ``purpose`` (chunked, acknowledged)."""
        self._need(Stage.READY)
        p = WIRE.purpose(purpose)
        if p.direction not in ("H2D", "BOTH"):
            raise ProtocolError(f"purpose {p.name} does not go host->device")
        data = bytes(data)
        xid = self._new_xfer_id()
        chunk = self.options.chunk
        self.request("XFER_BEGIN", expect=("ACK",), xfer_id=xid, purpose=p.id, total_len=len(data),
                     crc32=crc32(data), chunk_max=chunk)
        self._go(Stage.SENDING)
        try:
            for _ in range(self.options.retries + 1):
                self._push_chunks(xid, data)
                r = self.request("XFER_END", expect=("ACK", "NACK"), xfer_id=xid, abort=0)
                if r.name == "ACK":
                    self.counters.payload_out += len(data)
                    self._go(Stage.READY)
                    return
                self.counters.nacks += 1  # whole-payload CRC or offset mismatch: send again
            raise ProtocolError(f"transfer {p.name}: device kept refusing XFER_END")
        except BaseException:
            self._abort(xid)
            raise

    def _push_chunks(self, xid: int, data: bytes) -> None:
        """Go-back-N over XFER_CHUNK.  The chunk size adapts: halved after every
        stall (a noisy line loses fewer long frames), doubled back after 8
        clean acknowledgements."""
        msg = WIRE.msg("XFER_CHUNK")
        total, window = len(data), max(1, self.options.window)
        chunk = top = self.options.chunk
        base = 0  # device has everything below base
        nxt = 0
        inflight: dict[int, int] = {}  # seq -> offset
        mine: set[int] = set()
        stalls = clean = 0
        while base < total:
            while len(inflight) < window and nxt < total:
                seq = self._next_seq()
                n = min(chunk, total - nxt)
                self._send(encode_frame(msg.id, seq, msg.encode(xfer_id=xid, offset=nxt, data=data[nxt:nxt + n])))
                inflight[seq] = nxt
                mine.add(seq)
                nxt += n
            f = self._receive(time.monotonic() + self.options.timeout)
            if f is None or f.flags & FLAG_UNSOLICITED:
                stalls = self._stalled(f, stalls, f"transfer stalled at offset {base} of {total}")
                clean = 0
                chunk = max(MIN_CHUNK, chunk // 2)
                self.counters.resends += len(inflight)
                inflight.clear()
                nxt = base  # go back N
                continue
            if not f.flags & FLAG_REPLY or f.seq not in mine:
                self.counters.stale += 1
                continue
            r = self._raise_if_error(self._decode(f))
            inflight.pop(f.seq, None)
            if r["xfer_id"] != xid:
                raise ProtocolError(f"{r.name} for transfer {r['xfer_id']}, expected {xid}")
            if r.name == "ACK":
                if r["value"] > base:
                    base = min(r["value"], total)
                    nxt = max(nxt, base)
                    stalls = 0
                    clean += 1
                    if clean >= 8 and chunk < top:
                        chunk, clean = min(top, chunk * 2), 0
            elif r.name == "NACK":
                self.counters.nacks += 1
                base = max(base, r["value"]) if r["value"] <= total else base
                self.counters.resends += len(inflight)
                inflight.clear()
                nxt = r["value"]
            else:
                raise ProtocolError(f"XFER_CHUNK: unexpected {r.name}")

    # -- transfers: device -> host ------------------------------------------------------------
    def receive_payload(self, purpose: str | int, arg: int = 0) -> bytes:
        """Fetch transfer ``purpose`` from the device (its CRC-32 checked)."""
        self._need(Stage.READY)
        p = WIRE.purpose(purpose)
        if p.direction not in ("D2H", "BOTH"):
            raise ProtocolError(f"purpose {p.name} does not go device->host")
        xid = self._new_xfer_id()
        b = self.request("XFER_PULL", expect=("XFER_BEGIN",), xfer_id=xid, purpose=p.id, arg=arg)
        if b["xfer_id"] != xid or b["purpose"] != p.id:
            raise ProtocolError("XFER_PULL: reply for another transfer")
        self._go(Stage.RECEIVING)
        try:
            data = self._pull_chunks(xid, b["total_len"], min(b["chunk_max"], self.options.chunk))
            if crc32(data) != b["crc32"]:
                raise ProtocolError(f"transfer {p.name}: CRC-32 mismatch over {len(data)} bytes")
            self.request("XFER_END", expect=("ACK",), xfer_id=xid, abort=0)
            self._go(Stage.READY)
        except BaseException:
            self._abort(xid)
            raise
        self.counters.payload_in += len(data)
        return data

    def _pull_chunks(self, xid: int, total: int, chunk: int) -> bytes:
        """Pipelined XFER_READs; a stalled read is asked for again, split in halves."""
        msg = WIRE.msg("XFER_READ")
        buf = bytearray(total)
        missing = [(off, min(chunk, total - off)) for off in range(0, total, chunk)][::-1]  # pop from the end
        inflight: dict[int, tuple[int, int]] = {}
        stalls = 0
        while missing or inflight:
            while missing and len(inflight) < max(1, self.options.window):
                off, n = missing.pop()
                seq = self._next_seq()
                self._send(encode_frame(msg.id, seq, msg.encode(xfer_id=xid, offset=off, length=n)))
                inflight[seq] = (off, n)
            f = self._receive(time.monotonic() + self.options.timeout)
            if f is None or f.flags & FLAG_UNSOLICITED:
                stalls = self._stalled(f, stalls, f"transfer stalled with {len(missing) + len(inflight)} reads missing")
                self.counters.resends += len(inflight)
                again: list[tuple[int, int]] = []
                for off, n in sorted(inflight.values()):
                    half = max(MIN_CHUNK, n // 2)
                    again += [(o, min(half, off + n - o)) for o in range(off, off + n, half)]
                missing.extend(again[::-1])
                inflight.clear()
                continue
            if not f.flags & FLAG_REPLY or f.seq not in inflight:
                self.counters.stale += 1
                continue
            r = self._raise_if_error(self._decode(f))
            off, want = inflight.pop(f.seq)
            if r.name != "XFER_CHUNK" or r["xfer_id"] != xid or r["offset"] != off:
                raise ProtocolError(f"XFER_READ at {off}: unexpected {r.name} {r.fields}")
            if len(r["data"]) != want:
                raise ProtocolError(f"XFER_READ at {off}: {len(r['data'])} bytes, expected {want}")
            buf[off:off + want] = r["data"]
            stalls = 0
        return bytes(buf)

    def _new_xfer_id(self) -> int:
        self._xfer_id = (self._xfer_id + 1) & 0xFFFF
        return self._xfer_id

    def _abort(self, xid: int) -> None:
        """Best effort: tell the device to drop the transfer; the client is READY again."""
        try:
            self.request("XFER_END", xfer_id=xid, abort=1)
        except (ProtocolError, LinkTimeout, OSError):
            pass
        if self.stage in (Stage.SENDING, Stage.RECEIVING):
            self._go(Stage.READY)


def pattern_bytes(length: int) -> bytes:
    """The TEST_PATTERN purpose's payload (C: tfd_test_pattern_byte)."""
    i = np.arange(length, dtype=np.uint64)
    return ((i * 7 + length) & 0xFF).astype(np.uint8).tobytes()


__all__ = [
    "DeviceClient", "ClientOptions", "DeviceInfo", "EvalResult", "WireCounters", "Reply", "Stage",
    "ProtocolError", "DeviceError", "LinkTimeout", "pattern_bytes",
]
