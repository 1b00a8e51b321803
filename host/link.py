"""A byte link to a device: a serial port, a pty, or a TCP socket (QEMU's
``-serial tcp:...``), all through pyserial's ``serial_for_url``.

Every read and write has a timeout; nothing here can block forever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import serial

from tinyfed_toolchain.facts.errors import DeviceFailure


class LinkError(DeviceFailure, OSError):
    """The link could not be opened, or broke."""


class LinkTimeout(DeviceFailure, TimeoutError):
    """Nothing (or not enough) arrived in time."""


@dataclass
class LinkCounters:
    bytes_out: int = 0
    bytes_in: int = 0
    writes: int = 0
    reads: int = 0


def _failed(what: str, e: BaseException) -> str:
    """"read failed: <why>" without saying it twice (pyserial's own text often starts so)."""
    text = str(e).strip() or type(e).__name__
    return text if text.lower().startswith(f"{what} failed") else f"{what} failed: {text}"


class Link:
    """Open with :meth:`Link.open`; use as a context manager or call :meth:`close`."""

    def __init__(self, port: Any, url: str, timeout: float) -> None:
        self._port = port
        self.url = url
        self.timeout = timeout
        self.counters = LinkCounters()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        timeout: float = 2.0,
        baudrate: int = 115200,
        connect_timeout: float = 10.0,
    ) -> "Link":
        """Open ``url``: ``/dev/ttyUSB0``, ``/dev/pts/N``, ``socket://127.0.0.1:PORT``,
        ``rfc2217://HOST:PORT``, ``loop://``.

        A socket that refuses the connection (an emulator still starting) is
        retried until ``connect_timeout`` seconds have passed.
        """
        deadline = time.monotonic() + connect_timeout
        last: Exception | None = None
        while True:
            try:
                port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=timeout)
                return cls(port, url, timeout)
            except (serial.SerialException, OSError, ValueError) as e:
                last = e
            if time.monotonic() >= deadline:
                raise LinkError(f"cannot open {url}: {last}")
            time.sleep(0.05)

    # -- I/O ----------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        try:
            n = self._port.write(data)
            self._port.flush()
        except serial.SerialTimeoutException as e:
            raise LinkTimeout(f"{self.url}: write timed out") from e
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: {_failed('write', e)}") from e
        if n is not None and n != len(data):
            raise LinkTimeout(f"{self.url}: wrote {n} of {len(data)} bytes")
        self.counters.bytes_out += len(data)
        self.counters.writes += 1

    def read_some(self, timeout: float, max_bytes: int = 65536) -> bytes:
        """Wait up to ``timeout`` s for at least one byte; return what is there (maybe b"")."""
        try:
            self._port.timeout = max(timeout, 0.0)
            first = self._port.read(1)
            if not first:
                return b""
            # then whatever is already there, without waiting (in_waiting is
            # only 0/1 for socket:// in pyserial, so read with a zero timeout)
            self._port.timeout = 0
            rest = self._port.read(max_bytes - 1) if max_bytes > 1 else b""
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: {_failed('read', e)}") from e
        data = first + rest
        self.counters.bytes_in += len(data)
        self.counters.reads += 1
        return data

    def read_exactly(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"{self.url}: {len(buf)} of {n} bytes in {timeout:.2f} s")
            buf += self.read_some(left, n - len(buf))
        return bytes(buf)

    def drain(self, quiet: float = 0.05, limit: float = 1.0) -> int:
        """Discard input until the line has been quiet for ``quiet`` s (at most ``limit`` s)."""
        end = time.monotonic() + limit
        n = 0
        while time.monotonic() < end:
            got = self.read_some(quiet)
            if not got:
                break
            n += len(got)
        return n

    def close(self) -> None:
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


__all__ = ["Link", "LinkError", "LinkTimeout", "LinkCounters"]
