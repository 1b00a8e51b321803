"""Framing, byte for byte the same as firmware/src/proto/{crc32,cobs,frame}.c.

A frame on the wire is ``COBS(header | payload | CRC-32 LE)`` followed by
``END_ZEROS`` (2) delimiters ``b"\\x00"``: the second is an empty frame to the
decoder, and ends the frame instead when a noisy line loses or flips the
first.  The header layout comes from wire.def.  The decoder keeps the C decoder's
semantics exactly (same drop reasons, same counters), which
tests/test_proto_c.py checks by feeding both the same garbage.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, fields

from tinyfed_toolchain.facts.wire_table import WIRE, WireTable

crc32 = zlib.crc32  # IEEE 802.3, the function the C side implements


def cobs_encode(data: bytes) -> bytes:
    """COBS without the delimiter (a 254-byte run ends in an extra 0x01 block, like the C encoder)."""
    out = bytearray(b"\0")
    code_pos, code = 0, 1
    for b in data:
        if b == 0:
            out[code_pos] = code
            code_pos, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_pos] = code
                code_pos, code = len(out), 1
                out.append(0)
    out[code_pos] = code
    return bytes(out)


def cobs_decode(enc: bytes, limit: int | None = None) -> tuple[bytes, bool, bool]:
    """Decode one COBS frame (no delimiter).

    Returns ``(data, complete, oversize)``: ``complete`` is False when the last
    block was cut short; ``oversize`` when more than ``limit`` bytes would be
    produced (data is then truncated).  Mirrors the C decoder's streaming rules.
    """
    out = bytearray()
    pos, prev = 0, 0
    n = len(enc)
    while pos < n:
        code = enc[pos]
        if prev not in (0, 0xFF):
            out.append(0)
        block = enc[pos + 1 : pos + code]
        out += block
        if limit is not None and len(out) > limit:
            return bytes(out[:limit]), True, True
        if len(block) < code - 1:
            return bytes(out), False, False
        pos += code
        prev = code
    return bytes(out), True, False


@dataclass(frozen=True)
class Frame:
    msg_id: int
    seq: int
    flags: int
    payload: bytes
    crc: int = 0

    @property
    def name(self) -> str:
        m = WIRE.by_id.get(self.msg_id)
        return m.name if m else f"0x{self.msg_id:02X}"


@dataclass(frozen=True)
class DroppedFrame:
    """A frame the decoder dropped; ``reason`` is its FrameStats counter."""

    reason: str


def _header_struct(table: WireTable) -> struct.Struct:
    fmt = "<" + "".join({"U8": "B", "U16": "H", "U32": "I"}[f.type] for f in table.header)
    return struct.Struct(fmt)


_HDR = _header_struct(WIRE)
HEADER_BYTES = _HDR.size
MAX_FRAME = WIRE.max_frame
MAX_WIRE_FRAME = WIRE.max_wire_frame
FRAME_VERSION = WIRE.const("FRAME_VERSION")
FLAG_REPLY = WIRE.const("FLAG_REPLY")
FLAG_UNSOLICITED = WIRE.const("FLAG_UNSOLICITED")
FLAG_MASK = WIRE.const("FLAG_MASK")
assert [f.name for f in WIRE.header] == ["version", "msg_id", "flags", "seq", "length"], "header changed: update framing.py"


def encode_raw(msg_id: int, seq: int, payload: bytes, flags: int = 0) -> bytes:
    """Header + payload + CRC, before COBS."""
    if len(payload) > WIRE.const("MAX_PAYLOAD"):
        raise ValueError(f"payload of {len(payload)} bytes > MAX_PAYLOAD")
    body = _HDR.pack(FRAME_VERSION, msg_id, flags, seq & 0xFFFF, len(payload)) + bytes(payload)
    return body + struct.pack("<I", crc32(body))


END_ZEROS = WIRE.const("END_ZEROS")


def encode_frame(msg_id: int, seq: int, payload: bytes, flags: int = 0) -> bytes:
    """One frame as it goes on the wire (COBS + END_ZEROS x 0x00)."""
    return cobs_encode(encode_raw(msg_id, seq, payload, flags)) + bytes(END_ZEROS)


@dataclass
class FrameStats:
    """Same counters, same meaning, as the C tfd_frame_stats_t."""

    bytes: int = 0
    frames_ok: int = 0
    empty: int = 0
    crc_errors: int = 0
    cobs_errors: int = 0
    oversize: int = 0
    runts: int = 0
    bad_header: int = 0

    @property
    def dropped(self) -> int:
        return self.crc_errors + self.cobs_errors + self.oversize + self.runts + self.bad_header

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Raw bytes beyond which a frame is certainly oversize (decoded >= raw*254/255 - 1).
_RAW_CAP = 2 * MAX_FRAME + 8


class FrameDecoder:
    """Streaming decoder: ``feed(bytes) -> [Frame, ...]``, drops counted in ``stats``."""

    def __init__(self) -> None:
        self.stats = FrameStats()
        self._buf = bytearray()
        self._overflow = False
        self.drops: list[str] = []  # reason of each drop, most recent last (bounded)

    def _drop(self, reason: str) -> None:
        setattr(self.stats, reason, getattr(self.stats, reason) + 1)
        self.drops.append(reason)
        del self.drops[:-64]

    def feed(self, data: bytes) -> list[Frame]:
        """The frames that ``data`` completes (dropped ones are only counted)."""
        return [e for e in self.feed_events(data) if isinstance(e, Frame)]

    def feed_events(self, data: bytes) -> list["Frame | DroppedFrame"]:
        """Like :meth:`feed`, with each dropped frame in its place in the stream as a
        :class:`DroppedFrame` (a receiver waiting for a reply learns at once that one was spoilt)."""
        out: list[Frame | DroppedFrame] = []
        self.stats.bytes += len(data)
        start = 0
        while start <= len(data):
            z = data.find(b"\0", start)
            chunk = data[start:] if z < 0 else data[start:z]
            if not self._overflow:
                self._buf += chunk
                if len(self._buf) > _RAW_CAP:
                    self._overflow = True
                    self._buf.clear()
            if z < 0:
                break
            drops = self.stats.dropped
            frame = self._finish()
            if frame is not None:
                out.append(frame)
            elif self.stats.dropped != drops:
                out.append(DroppedFrame(self.drops[-1]))
            start = z + 1
        return out

    def _finish(self) -> Frame | None:
        raw, overflow = bytes(self._buf), self._overflow
        self._buf.clear()
        self._overflow = False
        if not raw and not overflow:
            self.stats.empty += 1
            return None
        if overflow:
            self._drop("oversize")
            return None
        data, complete, oversize = cobs_decode(raw, MAX_FRAME)
        if oversize:
            self._drop("oversize")
            return None
        if not complete:
            self._drop("cobs_errors")
            return None
        if len(data) < HEADER_BYTES + 4:
            self._drop("runts")
            return None
        body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
        if crc32(body) != crc:
            self._drop("crc_errors")
            return None
        version, msg_id, flags, seq, length = _HDR.unpack_from(body)
        if version != FRAME_VERSION or flags & ~FLAG_MASK or length != len(body) - HEADER_BYTES:
            self._drop("bad_header")
            return None
        self.stats.frames_ok += 1
        return Frame(msg_id, seq, flags, body[HEADER_BYTES:], crc)


def wire_size(payload_len: int) -> int:
    """Upper bound of the bytes a frame with this payload size takes on the wire."""
    raw = HEADER_BYTES + payload_len + 4
    return raw + raw // 254 + 1 + END_ZEROS


__all__ = [
    "DroppedFrame", "Frame", "FrameDecoder", "FrameStats", "cobs_encode", "cobs_decode", "encode_frame",
    "encode_raw", "crc32", "END_ZEROS", "HEADER_BYTES", "MAX_FRAME", "MAX_WIRE_FRAME", "FLAG_REPLY",
    "FLAG_UNSOLICITED", "wire_size",
]
