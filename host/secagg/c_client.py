"""The device's SecAgg+ client (firmware/src/secagg/protocol.c) compiled for
the host and driven through a pipe (firmware/host/secagg_client_host.c): an
endpoint for :class:`~tinyfed_host.secagg.server.SecAggServer`, so the host
server runs the four stages against the real device C state machine.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinyfed_toolchain.host_cc import compile_host, secagg_sources
from tinyfed_toolchain.paths import FIRMWARE

from ..wire import parse_status_codes
from .encoding import Encoding

#: the harness's static update buffer (firmware/host/secagg_client_host.c)
MAX_PARAMS = 1 << 20

OPS = {"ADVERTISE_KEYS": 1, "SHARE_KEYS": 2, "MASKED_INPUT": 3, "UNMASK": 4, "ENCODED": 5, "STAGE": 6}


class DeviceRefused(RuntimeError):
    """The C client answered a status other than TFD_OK."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def build_client_host() -> Path:
    return compile_host([*secagg_sources(), FIRMWARE / "host" / "secagg_client_host.c"], [],
                        "secagg_client_host", monocypher=True)


class CClientEndpoint:
    """One C client process; ``kill()`` is a board losing power."""

    def __init__(self, client_id: int, enc: Encoding, update: np.ndarray, weight: int, *,
                 exe: Path | None = None, chunk: int = 64, die_before: str | None = None,
                 die_after: str | None = None) -> None:
        if np.size(update) > MAX_PARAMS:
            raise ValueError(f"client {client_id}: {np.size(update):,} parameters; the host harness of the C "
                             f"client holds at most {MAX_PARAMS:,} (firmware/host/secagg_client_host.c)")
        self.id = client_id
        self.die_before, self.die_after = die_before, die_after
        self._tmp = tempfile.NamedTemporaryFile(prefix="tinyfed-sa-", suffix=".f32", delete=False)
        self._tmp.write(np.ascontiguousarray(update, dtype="<f4").tobytes())
        self._tmp.close()
        argv = [str(exe or build_client_host()), "--id", str(client_id), "--clip", repr(float(enc.clip32)),
                "--frac", str(enc.frac_bits), "--wmax", str(enc.weight_max), "--update", self._tmp.name,
                "--weight", str(int(weight)), "--chunk", str(chunk)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.seen: list[tuple[str, bytes, bytes]] = []
        self._codes = parse_status_codes()

    def call(self, op: str, payload: bytes = b"") -> bytes:
        if self.proc.poll() is not None or self.proc.stdin is None or self.proc.stdout is None:
            raise ConnectionError(f"client {self.id}: process gone")
        self.proc.stdin.write(struct.pack("<BI", OPS[op], len(payload)) + payload)
        self.proc.stdin.flush()
        head = self.proc.stdout.read(6)
        if len(head) != 6:
            raise ConnectionError(f"client {self.id}: no reply")
        st, n = struct.unpack("<HI", head)
        data = self.proc.stdout.read(n)
        if st:
            name = self._codes.get(st, (f"status {st}", ""))[0]
            raise DeviceRefused(st, f"client {self.id}: {op} refused: {name}")
        return data

    def exchange(self, message: str, payload: bytes) -> bytes:
        if message == self.die_before:
            self.kill()
        reply = self.call(message, payload)
        self.seen.append((message, payload, reply))
        if message == self.die_after:
            self.kill()
        return reply

    def encoded(self) -> np.ndarray:
        return np.frombuffer(self.call("ENCODED"), dtype="<u4").astype(np.uint32)

    def stage(self) -> int:
        return self.call("STAGE")[0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        for s in (self.proc.stdin, self.proc.stdout):
            if s and not s.closed:
                s.close()
        Path(self._tmp.name).unlink(missing_ok=True)


__all__ = ["CClientEndpoint", "DeviceRefused", "MAX_PARAMS", "build_client_host"]
