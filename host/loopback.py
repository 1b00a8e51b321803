"""The host "loopback device": firmware/src/proto compiled for the host
(firmware/native/proto_loopback.c) and run as a subprocess that speaks the
protocol over TCP (like QEMU's ``-serial tcp``), a pty, or stdin/stdout.

It is the real C protocol code (framing, codec, state machine) with a small
deterministic application, so host-side tests and benchmarks exercise both
languages end to end without a board.

>>> with start_loopback() as dev:                 # doctest: +SKIP
...     client = DeviceClient.connect(dev.url)
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

from tinyfed_toolchain.facts.manifests import loopback_sources
from tinyfed_toolchain.image.native_cc import compile_native

from .child_process import announced_line, terminate

SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1")
SANITIZER_ENV = {"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1", "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def build_loopback(*, sanitize: bool = False, test_messages: bool = True, extra: Sequence[str] = ()) -> Path:
    """Compile (cached) the loopback device; ``sanitize`` adds ASan + UBSan."""
    flags = [f"-DTFD_TEST_MESSAGES={int(test_messages)}", *(SANITIZE_FLAGS if sanitize else ()), *extra]
    name = "proto_loopback" + ("-asan" if sanitize else "") + ("" if test_messages else "-prod")
    return compile_native(loopback_sources(), [], name, extra_flags=flags)


@dataclass
class LoopbackDevice:
    proc: subprocess.Popen[bytes]
    url: str
    mode: str
    stderr: str = field(default="")

    def stop(self, timeout: float = 5.0) -> str:
        """Stop the process (closing its stdin ends a pty server); return its stderr."""
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout if self.mode == "pty" else 0.5)
            except subprocess.TimeoutExpired:
                terminate(self.proc, timeout)
        if self.proc.stderr:
            self.stderr = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.stderr

    def stats(self) -> dict[str, str]:
        """The STATS line the process prints on exit (after :meth:`stop`)."""
        m = re.search(r"^STATS (.*)$", self.stderr, re.M)
        return dict(kv.split("=", 1) for kv in m.group(1).split()) if m else {}

    def __enter__(self) -> "LoopbackDevice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_loopback(mode: Literal["tcp", "pty"] = "tcp", *, sanitize: bool = False, test_messages: bool = True,
                   startup_timeout: float = 10.0) -> LoopbackDevice:
    """Start a loopback device and return it with its pyserial URL."""
    exe = build_loopback(sanitize=sanitize, test_messages=test_messages)
    argv = [str(exe), "--tcp", "0"] if mode == "tcp" else [str(exe), "--pty"]
    env = {**os.environ, **SANITIZER_ENV}
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        line = announced_line(proc, startup_timeout)
        m = re.fullmatch(r"(TCP|PTY) (\S+)", line)
        if not m:
            raise RuntimeError(f"loopback device did not start: {line!r}")
        url = f"socket://127.0.0.1:{m.group(2)}" if m.group(1) == "TCP" else m.group(2)
        return LoopbackDevice(proc, url, mode)
    except BaseException:
        proc.kill()
        proc.wait(timeout=5)
        raise


__all__ = ["LoopbackDevice", "build_loopback", "start_loopback", "SANITIZE_FLAGS"]
