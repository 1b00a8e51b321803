"""Host side of the device protocol: :class:`DeviceClient`.

The host drives every exchange: it sends a request frame and waits (with a
timeout) for the reply carrying the same sequence number.  A device about to
erase or program flash (which stalls its CPU and loses incoming bytes) first
sends BUSY with the longest it will be deaf: the client then extends its wait
by that much and sends nothing meanwhile.  It resends the *identical* frame at
once when the exchange is known to be spoilt -- the device reports a corrupt
request (an UNSOLICITED NACK) or the host's own decoder drops a corrupt reply --
and after a timeout when nothing came; the device recognises the repetition
(same seq, same CRC) and replays its cached reply instead of running the
request twice.  A noisy line therefore costs a round trip per spoilt frame, not
a timeout (every frame ends in two delimiters, so a lost delimiter never hides
a frame's end either).

Chunked transfers pipeline requests.  The device answers in order, one reply
per request, so a reply, a NACK or a dropped frame tells the host exactly which
exchange failed: chunk reads (pure) are asked for again selectively; chunk
writes (idempotent on the device: a duplicate is acknowledged with the next
expected offset, a gap is NACKed with it) go back to the first one the device
is missing.  The chunk size follows the link's measured byte error rate
(:class:`~tinyfed_host.link_quality.LinkQuality`): full 1 KiB chunks on a
clean line, smaller ones where long frames rarely get through.

The client is a small state machine too (ARCHITECTURE.md rule 8): ``Stage``,
checked transitions in ``_TRANSITIONS``, one method per exchange.
"""

from __future__ import annotations

import enum
import os
from collections import deque
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyfed_toolchain.facts.errors import DeviceFailure
from tinyfed_toolchain.facts.wire_table import STATUS, WIRE, Message

from .framing import FLAG_REPLY, FLAG_UNSOLICITED, DroppedFrame, Frame, FrameDecoder, encode_frame, crc32, wire_size
from .link import Link, LinkTimeout
from .link_quality import CHUNK_SIZES, LinkQuality


MIN_CHUNK = 32  # smallest chunk the transfers shrink to on a noisy line
STATUS_SEQ = next(c for c, (n, _) in STATUS.items() if n == "TFD_ERR_SEQ")
_ACK_WIRE = wire_size(WIRE.msg("ACK").max_size)  # an ACK / NACK reply on the wire
_CHUNK_OVERHEAD = wire_size(WIRE.msg("XFER_CHUNK").fixed_size)  # an XFER_CHUNK frame without its data
_READ_WIRE = wire_size(WIRE.msg("XFER_READ").max_size)


class ProtocolError(DeviceFailure, RuntimeError):
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
    retries: int = 6  # resends after a silent attempt (per request / per stalled window)
    # resends after attempts spoilt by a corrupt frame, in a row without progress: a line
    # this bad is given up on (each such attempt costs a round trip, not a timeout)
    corrupt_retries: int = 48
    window: int = 2  # at least this many requests in flight during chunked transfers
    inflight_bytes: int = 640  # ... and more (up to 8) while they hold fewer bytes than this
    chunk: int = WIRE.const("CHUNK_MAX")  # largest chunk; smaller on a noisy line
    adaptive: bool = True  # chunk size from the link's measured error rate
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
    dropped: int = 0  # frames from the device the host's decoder dropped as corrupt
    stale: int = 0  # replies to an older request (ignored)
    busy: int = 0  # BUSY notices (the device saved to flash; the host waited without resending)
    payload_out: int = 0  # transfer payload bytes sent / received
    payload_in: int = 0


@dataclass(frozen=True)
class Spoilt:
    """An exchange that failed on the line: the device dropped request ``seq`` as corrupt
    (``by_device``: its unsolicited NACK), or the host dropped the device's answer to it.
    ``seq`` is None when no request was waiting (a stray NACK or noise)."""

    seq: int | None
    by_device: bool


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
        self._pending: list[Frame | DroppedFrame] = []
        self._outstanding: deque[int] = deque()  # seqs sent, not yet answered, oldest first
        self.quality = LinkQuality()

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

    def _send(self, frame: bytes, seq: int) -> None:
        self.link.write(frame)
        self.counters.frames_out += 1
        self._outstanding.append(seq)

    def _receive(self, deadline: float) -> Frame | Spoilt | None:
        """The device's next reply frame, a :class:`Spoilt` exchange, or None on a timeout.

        The device answers every frame it receives, in order, with a reply or (for
        a frame it dropped) an unsolicited NACK.  So with the seqs of the frames
        sent and not yet answered (``_outstanding``) an unsolicited NACK, or a
        device frame the host dropped, is pinned on the oldest of them, and a
        reply to seq s also answers (as lost) any older ones still waiting.  A
        timeout forgets them all.
        """
        while True:
            while self._pending:
                e = self._pending.pop(0)
                if isinstance(e, Frame) and e.flags & FLAG_REPLY:
                    if e.seq in self._outstanding:
                        while self._outstanding.popleft() != e.seq:
                            pass
                    return e
                if isinstance(e, Frame) and not e.flags & FLAG_UNSOLICITED:
                    self.counters.stale += 1  # not a reply, not a NACK: not for the host
                    continue
                by_device = isinstance(e, Frame)
                if by_device:
                    self.counters.nacks += 1
                return Spoilt(self._outstanding.popleft() if self._outstanding else None, by_device)
            left = deadline - time.monotonic()
            if left <= 0:
                self.counters.timeouts += 1
                self._outstanding.clear()
                return None
            data = self.link.read_some(left)
            if data:
                events = self.decoder.feed_events(data)
                for e in events:
                    if isinstance(e, Frame):
                        self.counters.frames_in += 1
                    else:
                        self.counters.dropped += 1
                self._pending.extend(events)

    class _Budget:
        """Attempts left for one exchange or transfer: silent ones (timeouts) and spoilt
        ones (corrupt frames) are counted apart and reset by progress."""

        def __init__(self, options: "ClientOptions", what: str) -> None:
            self.options, self.what = options, what
            self.silent = self.corrupt = 0

        def charge(self, e: "Spoilt | None") -> None:
            if e is None:
                self.silent += 1
            else:
                self.corrupt += 1
            if self.silent > self.options.retries:
                raise LinkTimeout(f"{self.what}: no reply after {self.silent} attempts")
            if self.corrupt > self.options.corrupt_retries:
                raise LinkTimeout(f"{self.what}: {self.corrupt} corrupt frames in a row (the line is too noisy)")

        def progress(self) -> None:
            self.silent = self.corrupt = 0

    def _window(self, frame_bytes: int, inflight_bytes: int) -> int:
        """Requests in flight: options.window, or more (up to 8) while they hold fewer
        than ``inflight_bytes`` (short frames would leave the line idle between replies)."""
        w = max(1, self.options.window)
        return max(w, min(8, -(-inflight_bytes // max(1, frame_bytes))))

    def _plan(self, cap: int, *, push: bool) -> tuple[int, int]:
        """(chunk size, window) for the next chunks of a transfer: the pair with the highest
        expected payload rate at the link's measured error rate.  A lost chunk write also
        wastes the writes in flight behind it (go-back); a lost read wastes nothing."""
        budget = self.options.inflight_bytes * (1 if push else 3)
        if not self.options.adaptive:
            return cap, self._window(cap + _CHUNK_OVERHEAD, budget)
        best = (cap, 1, -1.0)
        for size in CHUNK_SIZES:
            if size > cap or size < min(cap, MIN_CHUNK):
                continue
            w = self._window(size + _CHUNK_OVERHEAD, budget)
            rate = self.quality.payload_rate(size, overhead=_CHUNK_OVERHEAD + (0 if push else _READ_WIRE),
                                             go_back=w - 1 if push else 0)
            if rate > best[2]:
                best = (size, w, rate)
        if best[2] < 0:  # cap below every listed size
            return cap, self._window(cap + _CHUNK_OVERHEAD, budget)
        return best[0], best[1]

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
        budget = self._Budget(self.options, f"{name} to {self.link.url}")
        attempt = 0
        while True:
            if attempt:
                self.counters.resends += 1
            attempt += 1
            self._send(frame, seq)
            deadline = time.monotonic() + per_try
            while True:
                f = self._receive(deadline)
                if f is None or (isinstance(f, Spoilt) and f.seq == seq):
                    break  # resend now
                if isinstance(f, Spoilt) or f.seq != seq:
                    self.counters.stale += 1  # about an earlier exchange
                    continue
                self.quality.ok(len(frame) + wire_size(len(f.payload)))
                r = self._raise_if_error(self._decode(f))
                if r.name == "BUSY":
                    # The device is about to stall on a flash erase/program and would lose
                    # what we send: no resend until its reply, or max_ms + the usual timeout.
                    self.counters.busy += 1
                    deadline = time.monotonic() + r["max_ms"] / 1000.0 + per_try
                    self._outstanding.append(seq)  # its final reply is still to come
                    continue
                if expect and r.name not in expect:
                    raise ProtocolError(f"{name}: expected {'/'.join(expect)}, got {r.name}")
                return r
            self.quality.lost(len(frame) + _ACK_WIRE)
            budget.charge(f)

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
            start = 0
            for _ in range(self.options.retries + 1):
                self._push_chunks(xid, data, start)
                r = self.request("XFER_END", expect=("ACK", "NACK"), xfer_id=xid, abort=0)
                if r.name == "ACK":
                    self.counters.payload_out += len(data)
                    self._go(Stage.READY)
                    return
                self.counters.nacks += 1
                # the device is missing data from r["value"] on (its last ACK was lost), or
                # the whole-payload CRC failed and it starts over from 0
                start = r["value"] if r["code"] == STATUS_SEQ and r["value"] <= len(data) else 0
            raise ProtocolError(f"transfer {p.name}: device kept refusing XFER_END")
        except BaseException:
            self._abort(xid)
            raise

    def _push_chunks(self, xid: int, data: bytes, start: int = 0) -> None:
        """XFER_CHUNKs from offset ``start`` until every byte is acknowledged.

        The device takes bytes in order and answers every chunk: ACK(next offset
        it needs) for one it took (or the new part of one that overlaps what it
        has), NACK(next) for one past a gap.  The host sends forward from an
        offset in a *run*; a run ends when the device is known to be missing
        something behind it -- a NACK, or the device dropping a chunk of this run
        (its unsolicited NACK, pinned on that chunk) -- and the next run starts
        there at once.  Answers to chunks of an earlier run only move the
        acknowledged offset (or start a run when the device is behind the
        current one).  A reply the host dropped as corrupt is covered by the next
        cumulative ACK, or by XFER_END's NACK after the last chunk.
        """
        msg = WIRE.msg("XFER_CHUNK")
        total = len(data)
        base = nxt = start  # the device has everything below base; nxt: next offset to send
        inflight: dict[int, tuple[int, int, int]] = {}  # seq -> (offset, length, wire bytes), in send order
        run_of: dict[int, int] = {}  # seq -> run it was sent in (every chunk of this transfer)
        run, run_start = 0, start
        budget = self._Budget(self.options, f"transfer to {self.link.url} stalled at offset {base} of {total}")

        def restart(at: int) -> None:
            nonlocal run, run_start, nxt
            self.counters.resends += len(inflight)
            inflight.clear()
            run, run_start, nxt = run + 1, at, at

        while base < total:
            chunk, window = self._plan(self.options.chunk, push=True)
            while len(inflight) < window and nxt < total:
                seq = self._next_seq()
                n = min(chunk, total - nxt)
                frame = encode_frame(msg.id, seq, msg.encode(xfer_id=xid, offset=nxt, data=data[nxt:nxt + n]))
                self._send(frame, seq)
                inflight[seq] = (nxt, n, len(frame))
                run_of[seq] = run
                nxt += n
            if not inflight:  # all sent, the last answers spoilt: XFER_END says where the device is
                return
            e = self._receive(time.monotonic() + self.options.timeout)
            if e is None:  # nothing came back: send everything unacknowledged again
                budget.charge(e)
                for _, _, wl in inflight.values():
                    self.quality.lost(wl + _ACK_WIRE)
                restart(base)
                continue
            if isinstance(e, Spoilt):
                if e.seq not in inflight:
                    self.counters.stale += 1
                    continue
                budget.charge(e)
                off, _, wl = inflight.pop(e.seq)
                self.quality.lost(wl + _ACK_WIRE)
                if e.by_device:  # the device dropped it and will NACK the chunks behind it
                    restart(max(base, off))
                continue
            if not e.flags & FLAG_REPLY or e.seq not in run_of:
                self.counters.stale += 1
                continue
            r = self._raise_if_error(self._decode(e))
            if r["xfer_id"] != xid:
                raise ProtocolError(f"{r.name} for transfer {r['xfer_id']}, expected {xid}")
            if r.name not in ("ACK", "NACK"):
                raise ProtocolError(f"XFER_CHUNK: unexpected {r.name}")
            if e.seq in inflight:  # answers come in order: older chunks still in flight got none
                for s in list(inflight):
                    _, _, wl = inflight.pop(s)
                    if s == e.seq:
                        self.quality.ok(wl + _ACK_WIRE)
                        break
                    self.quality.lost(wl + _ACK_WIRE)
            value = int(r["value"])
            if value > total:
                raise ProtocolError(f"{r.name}: device at offset {value} of a {total}-byte transfer")
            if value > base:
                base = value
                nxt = max(nxt, base)
                budget.progress()
                budget.what = f"transfer to {self.link.url} stalled at offset {base} of {total}"
            if r.name == "NACK":
                self.counters.nacks += 1
                if run_of[e.seq] == run or value < run_start:  # the device is behind this run
                    restart(value)

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

    def _pull_chunks(self, xid: int, total: int, cap: int) -> bytes:
        """Pipelined XFER_READs.  Replies come in order, so a reply to a later read, a
        dropped frame or an unsolicited NACK marks the oldest reads in flight as lost:
        they are asked for again at once (sized for the link as it is now)."""
        msg = WIRE.msg("XFER_READ")
        buf = bytearray(total)
        missing: list[tuple[int, int]] = [(0, total)] if total else []  # ranges still to read, in order
        inflight: dict[int, tuple[int, int]] = {}  # seq -> (offset, length), in send order
        budget = self._Budget(self.options, f"transfer from {self.link.url} stalled with {total} bytes missing")
        received = 0
        while received < total:
            chunk, window = self._plan(cap, push=False)
            while missing and len(inflight) < window:
                off, n = missing.pop(0)
                take = min(n, chunk)
                if take < n:
                    missing.insert(0, (off + take, n - take))
                seq = self._next_seq()
                self._send(encode_frame(msg.id, seq, msg.encode(xfer_id=xid, offset=off, length=take)), seq)
                inflight[seq] = (off, take)
            e = self._receive(time.monotonic() + self.options.timeout)
            if e is None or isinstance(e, Spoilt):
                lost = list(inflight) if e is None else [e.seq] if e.seq in inflight else []
                if e is not None and not lost:
                    self.counters.stale += 1
                    continue
                budget.charge(e)
                for s in lost:
                    off, n = inflight.pop(s)
                    self.quality.lost(_READ_WIRE + wire_size(n + _CHUNK_OVERHEAD))
                    missing.append((off, n))
                self.counters.resends += len(lost)
                missing.sort()
                continue
            if not e.flags & FLAG_REPLY:
                self.counters.stale += 1
                continue
            if e.seq in inflight:
                for s in list(inflight):  # older reads still in flight got no answer
                    if s == e.seq:
                        break
                    off, n = inflight.pop(s)
                    self.quality.lost(_READ_WIRE + wire_size(n + _CHUNK_OVERHEAD))
                    missing.append((off, n))
                    self.counters.resends += 1
                missing.sort()
                off, want = inflight.pop(e.seq)
            elif (hit := self._late_read(e, xid, missing)) is not None:
                off, want = hit  # a reply to a read given up on: still good
            else:
                self.counters.stale += 1
                continue
            r = self._raise_if_error(self._decode(e))
            if r.name != "XFER_CHUNK" or r["xfer_id"] != xid or r["offset"] != off:
                raise ProtocolError(f"XFER_READ at {off}: unexpected {r.name} {r.fields}")
            if len(r["data"]) != want:
                raise ProtocolError(f"XFER_READ at {off}: {len(r['data'])} bytes, expected {want}")
            self.quality.ok(_READ_WIRE + wire_size(len(e.payload)))
            buf[off:off + want] = r["data"]
            received += want
            budget.progress()
            budget.what = f"transfer from {self.link.url} stalled with {total - received} bytes missing"
        return bytes(buf)

    @staticmethod
    def _late_read(f: Frame, xid: int, missing: list[tuple[int, int]]) -> tuple[int, int] | None:
        """A reply to a read no longer in flight whose range is exactly one still missing:
        take that range out of ``missing`` and return it."""
        m = WIRE.by_id.get(f.msg_id)
        if m is None or m.name != "XFER_CHUNK":
            return None
        try:
            v = m.decode(f.payload)
        except ValueError:
            return None
        rng = (int(v["offset"]), len(v["data"]))
        if v["xfer_id"] != xid or rng not in missing:
            return None
        missing.remove(rng)
        return rng

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
