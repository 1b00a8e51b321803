"""Python framing: CRC-32, COBS, frame codec and the streaming decoder's
drop reasons (the C decoder is held to the same results in test_proto_c.py)."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings, strategies as st

from tinyfed_host.framing import (
    END_ZEROS, HEADER_BYTES, MAX_FRAME, FrameDecoder, cobs_decode, cobs_encode, crc32, encode_frame, encode_raw,
    wire_size,
)
from tinyfed_toolchain.facts.wire_table import WIRE


def test_crc32_check_value() -> None:
    assert crc32(b"123456789") == 0xCBF43926  # the standard CRC-32/IEEE check value


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1200))
def test_cobs_round_trip(data: bytes) -> None:
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(enc) == (data, True, False)


def test_cobs_edges() -> None:
    assert cobs_encode(b"") == b"\x01"
    assert cobs_encode(b"\0") == b"\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    run = bytes(range(1, 255))  # 254 non-zero bytes: one full block, then an empty one
    assert cobs_encode(run) == b"\xff" + run + b"\x01"
    assert cobs_decode(b"\xff" + run) == (run, True, False)  # the short form decodes too
    assert cobs_decode(b"\x05\x01\x02")[1] is False  # cut short


def test_frame_layout() -> None:
    raw = encode_raw(0x04, 0x1234, b"\x07\x00\x00\x00", flags=0)
    assert raw[:HEADER_BYTES] == bytes([1, 0x04, 0, 0x34, 0x12, 4, 0])
    assert struct.unpack("<I", raw[-4:])[0] == crc32(raw[:-4])
    wire = encode_frame(0x04, 0x1234, b"\x07\x00\x00\x00")
    # two delimiters end a frame: a noisy line that loses or flips one still ends it
    assert wire.endswith(b"\0\0") and wire.count(0) == 2
    assert len(wire) <= wire_size(4)
    for lost in (len(wire) - 1, len(wire) - 2):
        for mangled in (wire[:lost] + wire[lost + 1:], wire[:lost] + b"\x40" + wire[lost + 1:]):
            dec = FrameDecoder()
            got = dec.feed(mangled)
            # the frame ends on time: delivered whole, or dropped as corrupt (never held back
            # waiting for the next frame); a flipped second zero spoils at most the next frame
            assert len(got) + dec.stats.dropped == 1
            nxt = dec.feed(wire)
            assert len(got) + len(nxt) + dec.stats.dropped == 2


def _frames(n: int, rng: random.Random) -> list[tuple[int, int, bytes, bytes]]:
    out = []
    for i in range(n):
        m = rng.choice(WIRE.messages)
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(m.fixed_size, m.max_size + 1)))
        out.append((m.id, i, payload, encode_frame(m.id, i, payload, flags=rng.choice([0, 1, 2]))))
    return out


def test_decoder_delivers_frames_in_any_fragmentation() -> None:
    rng = random.Random(7)
    frames = _frames(30, rng)
    stream = b"".join(f[3] for f in frames)
    for cut in (1, 3, 64, len(stream)):
        dec = FrameDecoder()
        got = []
        for i in range(0, len(stream), cut):
            got += dec.feed(stream[i : i + cut])
        assert [(f.msg_id, f.seq, f.payload) for f in got] == [(a, b, c) for a, b, c, _ in frames]
        assert dec.stats.frames_ok == 30 and dec.stats.dropped == 0


def test_each_drop_reason_is_counted_and_decoder_resyncs() -> None:
    good = encode_frame(0x04, 9, b"\x01\x02\x03\x04")
    raw = encode_raw(0x04, 9, b"\x01\x02\x03\x04")
    flipped = bytearray(raw)
    flipped[HEADER_BYTES + 1] ^= 0x10  # payload bit flip, valid COBS
    cases = {
        "crc_errors": cobs_encode(bytes(flipped)) + b"\0",
        "cobs_errors": good[:-2 - END_ZEROS] + b"\x7f" + b"\0",  # a code byte promising more than follows
        "runts": cobs_encode(b"\x01\x02\x03") + b"\0",
        "oversize": cobs_encode(bytes(MAX_FRAME + 1)) + b"\0",
        "bad_header": cobs_encode(bytes([2]) + raw[1:-4] + struct.pack("<I", crc32(bytes([2]) + raw[1:-4]))) + b"\0",
    }
    # more bad headers: reserved flag bits, length field lying
    hdr_flags = bytearray(raw[:-4])
    hdr_flags[2] = 0x80
    hdr_len = bytearray(raw[:-4])
    hdr_len[5] = 3
    for body in (bytes(hdr_flags), bytes(hdr_len)):
        dec = FrameDecoder()
        assert dec.feed(cobs_encode(body + struct.pack("<I", crc32(body))) + b"\0" + good)[0].seq == 9
        assert dec.stats.bad_header == 1
    for reason, bad in cases.items():
        dec = FrameDecoder()
        got = dec.feed(b"\0\0" + bad + good)
        assert len(got) == 1 and got[0].payload == b"\x01\x02\x03\x04", reason
        assert getattr(dec.stats, reason) == 1, (reason, dec.stats)
        assert dec.stats.dropped == 1 and dec.stats.empty == 2 + END_ZEROS - 1  # and the good frame's second zero


def test_oversize_garbage_without_delimiter_is_bounded() -> None:
    dec = FrameDecoder()
    for _ in range(50):
        assert dec.feed(b"\x55" * 4096) == []
    assert len(dec._buf) <= 2 * MAX_FRAME + 8
    assert dec.feed(b"\0" + encode_frame(4, 1, bytes(4)))[0].seq == 1
    assert dec.stats.oversize == 1


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 2**32 - 1))
def test_decoder_never_raises_and_recovers(garbage: bytes, seed: int) -> None:
    dec = FrameDecoder()
    dec.feed(garbage)
    good = encode_frame(0x04, seed & 0xFFFF, struct.pack("<I", seed))
    got = dec.feed(b"\0" + good)
    assert got and got[-1].payload == struct.pack("<I", seed)


def test_link_error_text_says_read_failed_once() -> None:
    import pytest
    import serial

    from tinyfed_host.link import Link, LinkError

    class Broken:
        timeout = 0.0

        def read(self, n: int) -> bytes:
            raise serial.SerialException("read failed: socket disconnected")

    with pytest.raises(LinkError) as e:
        Link(Broken(), "socket://127.0.0.1:1", 1.0).read_some(0.1)
    assert str(e.value) == "socket://127.0.0.1:1: read failed: socket disconnected"
