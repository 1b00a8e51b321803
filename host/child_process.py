"""Child processes that stand in for a device (host-compiled C devices): read
the line a child announces itself with, and stop it politely, then firmly.

Used by :mod:`tinyfed_host.native_device` and :mod:`tinyfed_host.loopback`.
"""

from __future__ import annotations

import select
import subprocess


def announced_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line ``proc`` prints on stdout (stripped), or ``""`` if none
    comes within ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if ready else ""


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if ``proc`` has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


__all__ = ["announced_line", "terminate"]
