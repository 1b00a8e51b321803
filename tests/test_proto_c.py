"""The C protocol code against the Python host side: shared vectors, a
differential fuzz of the two frame decoders, the device state machine (every
transition), idempotent replays, production gating, the loopback device end to
end over TCP and a pty, and a seeded fault-injection proxy.

C programs are compiled here (gcc -std=c11 -Wall -Wextra -Werror, also with
-fsanitize=address,undefined) and cached under build/host-bin."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinyfed_host.faultproxy import FaultProxy, FaultSpec
from tinyfed_host.framing import FLAG_REPLY, FLAG_UNSOLICITED, Frame, FrameDecoder, cobs_encode, encode_frame, encode_raw
from tinyfed_host.link import LinkTimeout
from tinyfed_host.loopback import SANITIZE_FLAGS, SANITIZER_ENV, build_loopback, start_loopback
from tinyfed_toolchain.facts.manifests import proto_sources
from tinyfed_host.protocol import ClientOptions, DeviceClient, DeviceError, ProtocolError, pattern_bytes
from tinyfed_toolchain.facts.wire_table import STATUS_BY_NAME, WIRE
from tinyfed_toolchain.image.native_cc import compile_native
from tinyfed_toolchain.facts.paths import FIRMWARE, ROOT

WIRE_CHECK = ROOT / "tests" / "c" / "wire_check.c"
ENV = {**os.environ, **SANITIZER_ENV}


def wire_check(sanitize: bool) -> Path:
    flags = ["-DTFD_TEST_MESSAGES=1", *(SANITIZE_FLAGS if sanitize else ())]
    return compile_native([*proto_sources(), WIRE_CHECK], [], "wire_check" + ("-asan" if sanitize else ""), extra_flags=flags)


def msg(name: str, seq: int, **values: object) -> bytes:
    m = WIRE.msg(name)
    return encode_frame(m.id, seq, m.encode(**values))


def hello(seq: int = 1, **over: object) -> bytes:
    v = {"proto_version": WIRE.const("PROTO_VERSION"), "table_crc": WIRE.table_crc, "nonce": 42, **over}
    return msg("HELLO", seq, **v)


def run_stdio(stream: bytes, *, sanitize: bool = True, test_messages: bool = True) -> tuple[list[Frame], dict[str, str]]:
    """Feed `stream` to the loopback device on stdin; its replies, and its final STATS."""
    exe = build_loopback(sanitize=sanitize, test_messages=test_messages)
    p = subprocess.run([str(exe), "--stdio"], input=stream, capture_output=True, timeout=60, env=ENV)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    line = [l for l in p.stderr.decode().splitlines() if l.startswith("STATS ")][-1]
    stats = dict(kv.split("=", 1) for kv in line.split()[1:])
    dec = FrameDecoder()
    frames = dec.feed(p.stdout)
    assert dec.stats.dropped == 0
    return frames, stats


def decoded(f: Frame) -> tuple[str, dict]:
    m = WIRE.msg(f.msg_id)
    return m.name, m.decode(f.payload)


def error_name(f: Frame) -> str:
    name, v = decoded(f)
    assert name == "ERROR", (name, v)
    return [k for k, c in STATUS_BY_NAME.items() if c == v["code"]][0]


# ---- builds ----------------------------------------------------------------------------------
@pytest.mark.parametrize("test_messages", [0, 1])
def test_protocol_builds_clean_for_host_and_cortex_m(tmp_path: Path, test_messages: int) -> None:
    srcs = [*proto_sources(), FIRMWARE / "src" / "eval" / "shard_eval.c"]
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes", "-Wconversion",
             f"-DTFD_TEST_MESSAGES={test_messages}", f"-I{FIRMWARE / 'include'}"]
    compilers = [("gcc", [])]
    if shutil.which("arm-none-eabi-gcc"):
        compilers.append(("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-Os"]))
    for cc, extra in compilers:
        for s in srcs:
            r = subprocess.run([cc, *flags, *extra, "-c", str(s), "-o", str(tmp_path / (s.stem + ".o"))],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, f"{cc} {s.name}:\n{r.stderr}"


# ---- shared vectors --------------------------------------------------------------------------
def _vectors() -> list[bytes]:
    from test_wire import fixed_values  # same fixed field values as the Python round trips

    rng = random.Random(2024)
    out = []
    for i, m in enumerate(WIRE.messages):
        for k in range(3):
            out.append(encode_frame(m.id, (i * 3 + k) * 257, m.encode(**fixed_values(m, k)), flags=k % 3 if k < 2 else 0))
        # plus random payloads of every legal length class
        for n in {m.fixed_size, m.max_size, rng.randrange(m.fixed_size, m.max_size + 1)}:
            out.append(encode_frame(m.id, rng.randrange(65536), bytes(rng.randrange(256) for _ in range(n))))
    return out


@pytest.mark.parametrize("sanitize", [False, True])
def test_c_decodes_and_reencodes_every_vector_identically(sanitize: bool, tmp_path: Path) -> None:
    vectors = _vectors()
    (tmp_path / "vectors.hex").write_text("".join(v.hex() + "\n" for v in vectors))  # kept for inspection
    p = subprocess.run([str(wire_check(sanitize)), "vectors"], input="".join(v.hex() + "\n" for v in vectors),
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == len(vectors) > 3 * len(WIRE.messages)
    for v, line in zip(vectors, lines):
        assert line == "OK " + v.hex(), (WIRE.msg(v and FrameDecoder().feed(v)[0].msg_id).name, line)
    # and a frame of a wrong length is refused by the C codec
    bad = encode_frame(WIRE.msg("PING").id, 1, b"\0" * 5)
    p = subprocess.run([str(wire_check(sanitize)), "vectors"], input=bad.hex() + "\n", capture_output=True, text=True, env=ENV)
    assert p.stdout.strip() == "ERR TFD_ERR_MSG_LENGTH"


def test_c_crc32_equals_zlib() -> None:
    exe = wire_check(False)
    rng = random.Random(5)
    for n in (0, 1, 7, 255, 4096, 10000):
        data = bytes(rng.randrange(256) for _ in range(n))
        out = subprocess.run([str(exe), "crc"], input=data, capture_output=True, timeout=30).stdout.decode().strip()
        assert int(out, 16) == zlib.crc32(data)


# ---- differential fuzz of the frame decoders -------------------------------------------------
def _nasty_stream(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randrange(5, 40)):
        kind = rng.randrange(8)
        m = rng.choice(WIRE.messages)
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, m.max_size + 1)))
        frame = encode_frame(m.id, rng.randrange(65536), payload, flags=rng.randrange(4))
        if kind == 0:
            parts.append(frame)
        elif kind == 1:  # bit flips
            b = bytearray(frame)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            parts.append(bytes(b))
        elif kind == 2:  # truncated
            parts.append(frame[: rng.randrange(len(frame))])
        elif kind == 3:  # garbage
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        elif kind == 4:  # oversized, valid COBS
            parts.append(cobs_encode(bytes(rng.randrange(1, 256) for _ in range(WIRE.max_frame + rng.randrange(1, 600)))) + b"\0")
        elif kind == 5:  # runt
            parts.append(cobs_encode(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 11)))) + b"\0")
        elif kind == 6:  # dropped bytes
            b = bytearray(frame)
            for _ in range(rng.randrange(1, 3)):
                if len(b) > 1:
                    del b[rng.randrange(len(b))]
            parts.append(bytes(b))
        else:  # bad header, good CRC
            raw = bytearray(encode_raw(m.id, 1, payload))
            raw[rng.choice([0, 2, 5])] ^= 0x40
            body = bytes(raw[:-4])
            parts.append(cobs_encode(body + struct.pack("<I", zlib.crc32(body))) + b"\0")
    return b"".join(parts)


def test_c_and_python_frame_decoders_agree_on_garbage() -> None:
    exe = wire_check(True)
    reason = {"TFD_ERR_FRAME_CRC": "crc", "TFD_ERR_FRAME_SIZE": "size", "TFD_ERR_FRAME_DECODE": "decode"}
    for seed in range(40):
        stream = _nasty_stream(random.Random(seed))
        p = subprocess.run([str(exe), "stream"], input=stream, capture_output=True, timeout=60, env=ENV)
        assert p.returncode == 0, p.stderr.decode()
        lines = p.stdout.decode().splitlines()
        c_frames = [tuple(int(x) for x in l.split()[1:]) for l in lines if l.startswith("FRAME")]
        c_stats = dict(kv.split("=") for kv in lines[-1].split()[1:])
        dec = FrameDecoder()
        py = dec.feed(stream)
        assert c_frames == [(f.msg_id, f.seq, f.flags, len(f.payload)) for f in py], seed
        assert {k: int(v) for k, v in c_stats.items()} == dec.stats.as_dict(), seed
        assert dec.stats.dropped > 0 and len([l for l in lines if l.startswith("DROP")]) == dec.stats.dropped
        assert set(l.split()[1] for l in lines if l.startswith("DROP")) <= set(reason)


def test_c_device_survives_garbage_and_answers_the_next_request() -> None:
    rng = random.Random(99)
    total_dropped = 0
    for seed in range(12):
        stream = hello(1) + _nasty_stream(random.Random(1000 + seed)) + b"\0" + msg("PING", 4242, token=seed)
        frames, stats = run_stdio(stream)
        last = frames[-1]
        assert decoded(last) == ("PONG", {"token": seed, "uptime_ms": decoded(last)[1]["uptime_ms"]})
        assert last.seq == 4242 and last.flags == FLAG_REPLY
        dropped = sum(int(stats[k]) for k in ("crc_errors", "cobs_errors", "oversize", "runts", "bad_header"))
        unsolicited = [f for f in frames if f.flags & FLAG_UNSOLICITED]
        assert len(unsolicited) == dropped  # one NACK per dropped frame
        total_dropped += dropped
    assert total_dropped > 50
    # pure random bytes, no delimiter structure at all
    frames, stats = run_stdio(bytes(rng.randrange(256) for _ in range(200_000)) + b"\0" + msg("PING", 7, token=1))
    assert decoded(frames[-1])[0] == "PONG"


# ---- the device state machine ---------------------------------------------------------------------
def test_stage_transitions_and_errors() -> None:
    chunk = bytes(range(200))
    crc = zlib.crc32(chunk)
    sink = WIRE.purpose("TEST_SINK").id
    steps = [
        # (frame, expected reply name or ERROR status)
        (msg("EVAL", 1, max_samples=0), "TFD_ERR_PROTO_STATE"),  # IDLE: no session
        (msg("GET_INFO", 2, nonce=1), "TFD_ERR_PROTO_STATE"),
        (msg("PING", 3, token=5), "PONG"),  # PING works in IDLE
        (hello(4, proto_version=99), "TFD_ERR_PROTO_VERSION"),
        (hello(5, table_crc=WIRE.table_crc ^ 1), "TFD_ERR_PROTO_VERSION"),
        (hello(6), "INFO"),  # IDLE -> READY
        (msg("XFER_CHUNK", 7, xfer_id=1, offset=0, data=b"x"), "TFD_ERR_PROTO_STATE"),  # no transfer open
        (msg("XFER_READ", 8, xfer_id=1, offset=0, length=4), "TFD_ERR_PROTO_STATE"),
        (msg("XFER_BEGIN", 9, xfer_id=1, purpose=77, total_len=4, crc32=0, chunk_max=64), "TFD_ERR_ARG"),
        (msg("XFER_BEGIN", 10, xfer_id=1, purpose=WIRE.purpose("TEST_PATTERN").id, total_len=4, crc32=0, chunk_max=64), "TFD_ERR_ARG"),
        (msg("XFER_BEGIN", 11, xfer_id=1, purpose=sink, total_len=200, crc32=crc, chunk_max=64), "ACK"),  # -> XFER_RX
        (msg("EVAL", 12, max_samples=0), "TFD_ERR_PROTO_STATE"),
        (msg("XFER_CHUNK", 13, xfer_id=1, offset=100, data=chunk[100:]), "NACK"),  # gap
        (msg("XFER_CHUNK", 14, xfer_id=1, offset=0, data=chunk[:100]), "ACK"),
        (msg("XFER_CHUNK", 15, xfer_id=1, offset=0, data=chunk[:100]), "ACK"),  # duplicate: ACKed again
        (msg("XFER_END", 16, xfer_id=1, abort=0), "NACK"),  # incomplete
        (msg("XFER_CHUNK", 150, xfer_id=1, offset=50, data=chunk[50:150]), "ACK"),  # overlaps: its new part taken
        (msg("XFER_CHUNK", 17, xfer_id=1, offset=100, data=chunk[100:] + b"!"), "TFD_ERR_OVERFLOW"),
        (msg("XFER_CHUNK", 18, xfer_id=1, offset=100, data=chunk[100:]), "ACK"),
        (msg("GET_INFO", 19, nonce=2), "INFO"),  # allowed during a transfer
        (msg("XFER_END", 20, xfer_id=1, abort=0), "ACK"),  # CRC ok -> READY
        (msg("XFER_BEGIN", 21, xfer_id=2, purpose=sink, total_len=3, crc32=123, chunk_max=64), "ACK"),
        (msg("XFER_CHUNK", 22, xfer_id=2, offset=0, data=b"abc"), "ACK"),
        (msg("XFER_END", 23, xfer_id=2, abort=0), "NACK"),  # whole-payload CRC wrong: restart from 0
        (msg("XFER_END", 24, xfer_id=2, abort=1), "ACK"),  # abort -> READY
        (msg("XFER_PULL", 25, xfer_id=3, purpose=WIRE.purpose("TEST_PATTERN").id, arg=300), "XFER_BEGIN"),  # -> XFER_TX
        (msg("XFER_READ", 26, xfer_id=3, offset=256, length=100), "XFER_CHUNK"),
        (msg("XFER_READ", 27, xfer_id=3, offset=301, length=1), "TFD_ERR_ARG"),
        (msg("XFER_BEGIN", 28, xfer_id=4, purpose=sink, total_len=3, crc32=0, chunk_max=64), "TFD_ERR_PROTO_STATE"),
        (msg("XFER_END", 29, xfer_id=3, abort=0), "ACK"),  # -> READY
        (msg("EVAL", 30, max_samples=5), "EVAL_RESULT"),
        (msg("INFER_TEST", 31, input=bytes([1, 2, 3])), "INFER_RESULT"),
        (msg("INFER_TEST", 32, input=b""), "TFD_ERR_SHAPE"),
        (encode_frame(0x7F, 33, b""), "TFD_ERR_MSG_UNKNOWN"),  # unknown id
        (encode_frame(WIRE.blocks["SECAGG"][1], 34, b"\0" * 4), "TFD_ERR_MSG_UNKNOWN"),  # free id in a block
        (msg("INFO", 35, **{f.name: (0 if not (f.is_array or f.is_tail) else (b"" if f.type != "CHAR" else "")) if f.type != "U8" or not f.is_array else bytes(f.count) for f in WIRE.msg("INFO").fields}), "TFD_ERR_MSG_UNKNOWN"),  # device->host id
        (encode_frame(WIRE.msg("PING").id, 36, b"\0" * 3), "TFD_ERR_MSG_LENGTH"),
        (hello(37, proto_version=2), "TFD_ERR_PROTO_VERSION"),  # -> IDLE again
        (msg("EVAL", 38, max_samples=0), "TFD_ERR_PROTO_STATE"),
    ]
    frames, stats = run_stdio(b"".join(f for f, _ in steps))
    assert len(frames) == len(steps)
    for (req, want), got in zip(steps, frames):
        seq = FrameDecoder().feed(req)[0].seq
        assert got.seq == seq and got.flags == FLAG_REPLY
        name = decoded(got)[0]
        assert (error_name(got) if name == "ERROR" else name) == want, (seq, decoded(got))
    by_seq = {f.seq: decoded(f)[1] for f in frames}
    assert by_seq[13]["value"] == 0 and by_seq[13]["code"] == STATUS_BY_NAME["TFD_ERR_SEQ"]
    assert by_seq[15]["value"] == 100 and by_seq[20]["value"] == 200
    assert by_seq[16]["value"] == 100 and by_seq[150]["value"] == 150 and by_seq[18]["value"] == 200  # CRC ok at 20
    assert by_seq[23]["code"] == STATUS_BY_NAME["TFD_ERR_FRAME_CRC"] and by_seq[23]["value"] == 0
    assert by_seq[25]["total_len"] == 300 and by_seq[25]["crc32"] == zlib.crc32(pattern_bytes(300))
    assert by_seq[26]["data"] == pattern_bytes(300)[256:] and by_seq[26]["offset"] == 256
    assert by_seq[36]["detail"] == WIRE.msg("PING").fixed_size
    assert stats["stage"] == "IDLE" and int(stats["bad_state"]) == 7 and int(stats["unknown"]) == 2
    assert int(stats["not_request"]) == 1 and int(stats["bad_length"]) == 1


def test_repeated_request_is_replayed_not_rerun() -> None:
    chunk_frame = msg("XFER_CHUNK", 11, xfer_id=5, offset=0, data=b"hello")
    stream = (hello(9) + msg("XFER_BEGIN", 10, xfer_id=5, purpose=WIRE.purpose("TEST_SINK").id, total_len=5,
                             crc32=zlib.crc32(b"hello"), chunk_max=64)
              + chunk_frame + chunk_frame + chunk_frame + msg("XFER_END", 12, xfer_id=5, abort=0) + msg("XFER_END", 12, xfer_id=5, abort=0))
    frames, stats = run_stdio(stream)
    assert [f.seq for f in frames] == [9, 10, 11, 11, 11, 12, 12]
    assert frames[2].payload == frames[3].payload == frames[4].payload  # identical replies
    assert frames[5] == frames[6]
    assert decoded(frames[5])[0] == "ACK" and decoded(frames[5])[1]["value"] == 5  # ran once: offset 5, not 15
    assert int(stats["replays"]) == 3 and int(stats["requests"]) == 4
    # same seq, different content: a new request, not a replay
    frames, stats = run_stdio(hello(1) + msg("PING", 2, token=1) + msg("PING", 2, token=2))
    assert [decoded(f)[1].get("token") for f in frames[1:]] == [1, 2] and stats["replays"] == "0"


def test_reply_flagged_frames_are_never_answered() -> None:
    m = WIRE.msg("PING")
    stream = encode_frame(m.id, 1, m.encode(token=1), flags=FLAG_REPLY) + encode_frame(m.id, 2, m.encode(token=2), flags=FLAG_UNSOLICITED)
    frames, stats = run_stdio(stream + msg("PING", 3, token=3))
    assert [f.seq for f in frames] == [3] and stats["not_request"] == "2"


def test_production_build_has_no_test_messages() -> None:
    frames, _ = run_stdio(hello(1) + msg("INFER_TEST", 2, input=b"\1\2")
                          + msg("XFER_PULL", 3, xfer_id=1, purpose=WIRE.purpose("TEST_PATTERN").id, arg=10),
                          sanitize=False, test_messages=False)
    name, info = decoded(frames[0])
    assert name == "INFO" and not info["caps"] & WIRE.const("CAP_TEST_MESSAGES")
    assert error_name(frames[1]) == "TFD_ERR_MSG_UNKNOWN"
    assert error_name(frames[2]) == "TFD_ERR_ARG"


# ---- the host client against the loopback device ------------------------------------------
def _expected_eval(n: int = 37, classes: int = 10, scale: float = 0.0625, zp: int = -4) -> tuple[int, float]:
    i = np.arange(n)[:, None]
    j = np.arange(classes)[None, :]
    q = (((i * 37 + j * 11 + 5) & 0xFF) - 128).astype(np.int8)
    y = (np.arange(n) * 7 + 3) % classes
    x = scale * (q.astype(np.float64) - zp)
    lse = x.max(1) + np.log(np.exp(x - x.max(1, keepdims=True)).sum(1))
    return int((q.argmax(1) == y).sum()), float((lse - x[np.arange(n), y]).sum())


def _expected_infer(v: np.ndarray) -> np.ndarray:
    i = np.arange(len(v))
    out = [np.clip((int((v.astype(np.int64) * (((i + 3 * k) % 7) - 3)).sum())) >> 4, -128, 127) for k in range(10)]
    return np.array(out, dtype=np.int8)


@pytest.mark.parametrize("mode", ["tcp", "pty"])
def test_client_end_to_end_with_the_loopback_device(mode: str) -> None:
    with start_loopback(mode, sanitize=True) as dev:
        with DeviceClient.connect(dev.url, ClientOptions(timeout=2.0)) as c:
            with pytest.raises(ProtocolError):
                c.eval()  # client-side stage check: no session yet
            info = c.hello()
            assert info.board == "host-loopback" and info.proto_version == WIRE.const("PROTO_VERSION")
            assert info.table_crc == WIRE.table_crc and info.test_messages and info.has_model
            assert info.model_hash == bytes.fromhex("1032547698badcfe0123456789abcdef")
            assert c.info() == info
            assert c.ping() < 1.0
            r = c.eval()
            correct, loss = _expected_eval()
            assert (r.samples, r.correct) == (37, correct)
            assert r.loss_sum == pytest.approx(loss, rel=1e-5)
            assert c.eval(max_samples=5).samples == 5
            rng = np.random.default_rng(1)
            for n in (1, 64, 1024):
                x = rng.integers(-128, 128, n).astype(np.int8)
                assert np.array_equal(c.infer(x), _expected_infer(x))
            with pytest.raises(DeviceError) as e:
                c.infer(np.zeros(0, np.int8))
            assert e.value.name == "TFD_ERR_SHAPE" and "shape" in e.value.text
            for size in (0, 1, 1023, 1024, 1025, 65536 + 17):
                data = pattern_bytes(size)[::-1]
                c.send_payload("TEST_SINK", data)
                assert c.receive_payload("TEST_PATTERN", size) == pattern_bytes(size)
            s = c.stats()
            assert s["frames_ok"] == c.counters.frames_out and s["crc_errors"] == 0
            assert c.counters.resends == 0 and c.counters.payload_in == c.counters.payload_out
    assert dev.proc.returncode == 0, dev.stderr


def test_client_completes_through_a_faulty_link() -> None:
    with start_loopback("tcp", sanitize=True) as dev:
        port = int(dev.url.rsplit(":", 1)[1])
        spec = FaultSpec(flip=2e-4, drop=2e-4, inject=2e-4)
        with FaultProxy(("127.0.0.1", port), spec, seed=11) as px:
            with DeviceClient.connect(px.url, ClientOptions(timeout=0.25, retries=12)) as c:
                t0 = time.monotonic()
                c.hello()
                for _ in range(10):
                    c.ping()
                assert c.eval().samples == 37
                data = pattern_bytes(40000)[::-1]
                c.send_payload("TEST_SINK", data)
                assert c.receive_payload("TEST_PATTERN", 40000) == pattern_bytes(40000)
                s = c.stats()
                assert time.monotonic() - t0 < 60
        assert px.counters.faults > 30
        assert c.counters.resends > 0 and c.decoder.stats.dropped > 0
        assert s["crc_errors"] + s["cobs_errors"] + s["runts"] + s["bad_header"] + s["oversize"] > 0
    assert dev.proc.returncode == 0, dev.stderr


@pytest.mark.parametrize("ber", [1e-4, 1e-3])
def test_noisy_link_costs_round_trips_not_timeouts(ber: float) -> None:
    """Bit errors and lost bytes both ways: every spoilt frame is pinned on its exchange and
    resent at once (no timeout), the chunks shrink to what the line carries, nothing corrupt
    is accepted (both transfers are compared byte for byte, the device checks the CRC-32)."""
    with start_loopback("tcp", sanitize=True) as dev:
        port = int(dev.url.rsplit(":", 1)[1])
        with FaultProxy(("127.0.0.1", port), FaultSpec.from_ber(ber, drop=ber), seed=7) as px:
            with DeviceClient.connect(px.url, ClientOptions(timeout=5.0, retries=2)) as c:
                c.hello()
                rng = random.Random(3)
                for size in (20000, 5000):
                    data = bytes(rng.randrange(256) for _ in range(size))
                    c.send_payload("TEST_SINK", data)
                    assert c.receive_payload("TEST_PATTERN", size) == pattern_bytes(size)
                assert c.counters.timeouts == 0  # (a 5 s timeout would show in the test time)
                assert c.counters.resends > 0 and c.counters.nacks > 0 and c.counters.dropped > 0
                q = c.quality.byte_error_rate
                assert 2 * ber < q < 30 * ber  # a byte is hit with ~9 x BER (8 bits flipped + dropped)
                chunk, window = c._plan(1024, push=True)
                assert chunk <= (256 if ber == 1e-4 else 64) and window >= 2
        assert px.counters.faults > 50
    assert dev.proc.returncode == 0, dev.stderr


def test_link_quality_estimate_and_chunk_choice() -> None:
    from tinyfed_host.link_quality import LinkQuality

    for q, lo, hi in ((0.0, 1024, 1024), (1e-4, 384, 1024), (1e-3, 64, 256), (1e-2, 32, 48)):
        lq = LinkQuality()
        rng = random.Random(1)
        size = 1024
        for _ in range(400):
            n = size + 30
            (lq.ok if rng.random() < (1 - q) ** n else lq.lost)(n)
            size = lq.best_chunk(1024, overhead=30, go_back=1)
        assert lo <= size <= hi, (q, size, lq.byte_error_rate)
        assert q == 0 or q / 3 < lq.byte_error_rate < 3 * q


def test_dead_link_gives_a_clear_timeout_not_a_hang() -> None:
    with start_loopback("tcp") as dev:
        port = int(dev.url.rsplit(":", 1)[1])
        with FaultProxy(("127.0.0.1", port), FaultSpec(drop=1.0), seed=1) as px:
            with DeviceClient.connect(px.url, ClientOptions(timeout=0.1, retries=3)) as c:
                t0 = time.monotonic()
                with pytest.raises(LinkTimeout, match="no reply"):
                    c.hello()
                assert time.monotonic() - t0 < 2.0
                assert c.counters.resends == 3


def test_client_rejects_version_mismatch_from_device() -> None:
    with start_loopback("tcp") as dev:
        with DeviceClient.connect(dev.url) as c:
            with pytest.raises(DeviceError) as e:
                c.request("HELLO", proto_version=7, table_crc=WIRE.table_crc, nonce=1)
            assert e.value.name == "TFD_ERR_PROTO_VERSION" and e.value.detail == WIRE.const("PROTO_VERSION")
            assert c.hello().board == "host-loopback"
