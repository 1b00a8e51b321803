"""Framing overhead and throughput of a chunked transfer (default 64 KiB).

    .venv/bin/python bench/wire_bench.py [--target qemu|loopback] [--size 65536] [--windows 1,2,4]

qemu: one emulated mps2-an386 running the protocol-only image
(firmware/src/app/proto_link.c); the raw link rate is measured on the same
emulated UART with the boards' echo self-test image (64 KiB each way at once).
loopback: the host-compiled C protocol (firmware/native/proto_loopback.c) over
TCP on 127.0.0.1 (no raw-rate reference: the socket is not the bottleneck).

Prints, per direction and pipelining window: payload KiB/s, wire bytes per
payload byte in the payload's direction and in both directions, and payload
rate / raw rate (host->device: raw = 64 KiB of 0x00 through the same
firmware loop; device->host: raw = the echo self-test rate, a lower bound of
the UART's device->host capacity).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import time
from pathlib import Path

from tinyfed_host.framing import encode_frame
from tinyfed_host.loopback import start_loopback
from tinyfed_toolchain.facts.manifests import proto_sources
from tinyfed_host.protocol import ClientOptions, DeviceClient, pattern_bytes
from tinyfed_toolchain.facts.wire_table import WIRE

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "wire_bench"


def static_overhead() -> None:
    chunk = WIRE.const("CHUNK_MAX")
    m = WIRE.msg("XFER_CHUNK")
    frame = encode_frame(m.id, 1, m.encode(xfer_id=1, offset=0, data=pattern_bytes(chunk)))
    ack = encode_frame(WIRE.msg("ACK").id, 1, WIRE.msg("ACK").encode(ref_id=m.id, xfer_id=1, value=chunk), flags=1)
    read = encode_frame(WIRE.msg("XFER_READ").id, 1, WIRE.msg("XFER_READ").encode(xfer_id=1, offset=0, length=chunk))
    print(f"frame: header {WIRE.header_size} B + payload + CRC-32 4 B, COBS <= 1 B/254 + 1, delimiter 1 B")
    print(f"XFER_CHUNK with {chunk} B of data: {len(frame)} B on the wire "
          f"({chunk / len(frame):.2%} payload); its ACK {len(ack)} B; an XFER_READ {len(read)} B")
    print(f"  => upper bound host->device {chunk / len(frame):.2%} one-way, "
          f"{chunk / (len(frame) + len(ack)):.2%} counting ACKs")


def raw_echo_rate(size: int) -> float:
    """KiB/s of the emulated UART, echoing `size` bytes (both directions at once)."""
    import serial

    from tinyfed_host.emulator import Emulator
    from tinyfed_toolchain.image.firmware import build_image

    elf = build_image("mps2-an386", None, OUT / "uart_echo", app=ROOT / "boards" / "selftest" / "uart_echo.c",
                      runtime=False, quiet=True).elf
    payload = pattern_bytes(size)
    with Emulator("mps2-an386") as emu:
        (b,) = emu.start(1, images=elf)
        link = serial.serial_for_url(b.url, timeout=10)
        try:
            link.write(struct.pack("<IB", size, 0))
            link.readline()
            t0 = time.perf_counter()
            link.write(payload)
            got = bytearray()
            while len(got) < size:
                chunk = link.read(size - len(got))
                if not chunk:
                    raise RuntimeError("echo stalled")
                got += chunk
            dt = time.perf_counter() - t0
        finally:
            link.close()
        b.wait(10)
    assert bytes(got) == payload
    return size / 1024 / dt


def raw_h2d_rate(c: DeviceClient, size: int) -> float:
    """KiB/s host->device through the protocol firmware's own UART loop: `size`
    0x00 bytes (empty frames: the decoder only counts them), then a PING."""
    t0 = time.perf_counter()
    c.link.write(bytes(size))
    c.ping()
    return size / 1024 / (time.perf_counter() - t0)


def run(url: str, size: int, windows: list[int], raw: float | None) -> None:
    data = pattern_bytes(size)
    with DeviceClient.connect(url, ClientOptions(timeout=30.0)) as c:
        info = c.hello()
        print(f"device: {info.board} fw {info.fw_version}, max payload {info.max_payload} B")
        raw_h2d = raw_h2d_rate(c, size)
        print(f"raw host->device: {raw_h2d:.1f} KiB/s ({size} B of 0x00 + PING through the same firmware loop)")
        print(f"{'direction':<12} {'window':>6} {'payload KiB/s':>14} {'wire/payload (dir)':>19} "
              f"{'wire/payload (both)':>20} {'payload/raw':>12}")
        for w in windows:
            c.options = ClientOptions(timeout=3.0, window=w)
            for direction in ("host->dev", "dev->host"):
                before = (c.link.counters.bytes_out, c.link.counters.bytes_in)
                t0 = time.perf_counter()
                if direction == "host->dev":
                    c.send_payload("TEST_SINK", data)
                else:
                    assert c.receive_payload("TEST_PATTERN", size) == data
                dt = time.perf_counter() - t0
                out = c.link.counters.bytes_out - before[0]
                inn = c.link.counters.bytes_in - before[1]
                same = out if direction == "host->dev" else inn
                rate = size / 1024 / dt
                ref = raw_h2d if direction == "host->dev" else raw
                rel = f"{rate / ref:.0%}" if ref else "n/a"
                print(f"{direction:<12} {w:>6} {rate:>14.1f} {same / size:>19.4f} {(out + inn) / size:>20.4f} {rel:>12}")
        print(f"client counters: {c.counters}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    have_qemu = bool(shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"))
    ap.add_argument("--target", choices=["qemu", "loopback"], default="qemu" if have_qemu else "loopback")
    ap.add_argument("--size", type=int, default=64 * 1024)
    ap.add_argument("--windows", default="1,2,4")
    a = ap.parse_args(argv)
    windows = [int(w) for w in a.windows.split(",")]
    static_overhead()
    if a.target == "loopback":
        print(f"\ntarget: host loopback device (C protocol over TCP 127.0.0.1), {a.size} B")
        with start_loopback("tcp") as dev:
            run(dev.url, a.size, windows, None)
        return 0
    from tinyfed_host.emulator import start_boards
    from tinyfed_toolchain.image.firmware import build_image

    raw = raw_echo_rate(a.size)
    print(f"\ntarget: QEMU mps2-an386, raw UART echo {raw:.1f} KiB/s each way ({a.size} B)")
    info = build_image("mps2-an386", None, OUT / "proto_link", app="proto_link", runtime=False,
                       extra_sources=proto_sources(), defines={"TFD_TEST_MESSAGES": 1}, quiet=True)
    print(info.statement())
    boards = start_boards(1, "mps2-an386", [info.elf])
    try:
        run(boards[0].url, a.size, windows, raw)
    finally:
        for b in boards:
            b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
