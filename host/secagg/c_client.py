"""The device's SecAgg+ client (firmware/src/secagg/protocol.c) compiled for
the host and driven through a pipe (firmware/native/secagg_client_host.c): an
endpoint for :class:`~tinyfed_host.secagg.server.SecAggServer`, so the host
server runs the four stages against the real device C state machine.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinyfed_toolchain.facts.c_headers import status_codes
from tinyfed_toolchain.facts.errors import DeviceFailure
from tinyfed_toolchain.facts.manifests import secagg_client_sources
from tinyfed_toolchain.image.native_cc import compile_native

from .encoding import Encoding
from .identity import DeviceIdentity

#: the harness's static update buffer (firmware/native/secagg_client_host.c)
MAX_PARAMS = 1 << 20

OPS = {"ADVERTISE_KEYS": 1, "SHARE_KEYS": 2, "MASKED_INPUT": 3, "UNMASK": 4, "ENCODED": 5, "STAGE": 6,
       "SAVE": 7, "RESTORE": 8, "SURVIVORS": 9}  # 7, 8: harness only (tests replay one stage from a saved client)


class DeviceRefused(DeviceFailure, RuntimeError):
    """The C client answered a status other than TFD_OK."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def build_native_client() -> Path:
    return compile_native(secagg_client_sources(), [],
                        "secagg_client_host", monocypher=True)


class CClientEndpoint:
    """One C client process; ``kill()`` is a board losing power."""

    def __init__(self, identity: DeviceIdentity | bytes, enc: Encoding, update: np.ndarray, weight: int, *,
                 exe: Path | None = None, chunk: int = 64, die_before: str | None = None,
                 die_after: str | None = None) -> None:
        """``identity``: the device's identity (or its raw record, tfd/identity.h)."""
        rec = identity.record() if isinstance(identity, DeviceIdentity) else bytes(identity)
        client_id = int.from_bytes(rec[8:12], "little") if len(rec) >= 12 else 0
        if np.size(update) > MAX_PARAMS:
            raise ValueError(f"client {client_id}: {np.size(update):,} parameters; the host harness of the C "
                             f"client holds at most {MAX_PARAMS:,} (firmware/native/secagg_client_host.c)")
        self.id = client_id
        self.die_before, self.die_after = die_before, die_after
        self._tmp = tempfile.NamedTemporaryFile(prefix="tinyfed-sa-", suffix=".f32", delete=False)
        self._tmp.write(np.ascontiguousarray(update, dtype="<f4").tobytes())
        self._tmp.close()
        self._rec = tempfile.NamedTemporaryFile(prefix="tinyfed-id-", suffix=".bin", delete=False)
        self._rec.write(rec)
        self._rec.close()
        argv = [str(exe or build_native_client()), "--identity", self._rec.name, "--clip", repr(float(enc.clip32)),
                "--frac", str(enc.frac_bits), "--wmax", str(enc.weight_max), "--dpz", str(enc.dp_z_milli), "--update", self._tmp.name,
                "--weight", str(int(weight)), "--chunk", str(chunk)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.seen: list[tuple[str, bytes, bytes]] = []
        self._codes = status_codes()

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
        Path(self._rec.name).unlink(missing_ok=True)


__all__ = ["CClientEndpoint", "DeviceRefused", "MAX_PARAMS", "build_native_client"]
