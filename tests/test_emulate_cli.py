"""`tinyfed emulate` supervises its boards: a board whose QEMU dies is reported on
stderr (which board, its URL, why), and the command exits non-zero (4, a device
failure) once every board is gone (it used to wait forever: `running` was tested, never called)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)


def _readline(stream: object, deadline: float) -> str:
    line = stream.readline()  # type: ignore[attr-defined]
    assert time.monotonic() < deadline, "emulate said nothing in time"
    return str(line)


def test_emulate_reports_each_dead_board_and_exits_when_all_are_gone(tmp_path: Path) -> None:
    from tinyfed_toolchain.facts.manifests import proto_sources
    from tinyfed_toolchain.image.firmware import build_image

    elf = build_image("mps2-an386", None, tmp_path / "img", app="proto_link", runtime=False,
                      extra_sources=proto_sources(), quiet=True).elf
    proc = subprocess.Popen([sys.executable, "-m", "tinyfed_host.cli", "emulate", "--boards", "2", "--image", str(elf)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        urls = [_readline(proc.stdout, deadline).strip() for _ in range(2)]
        assert all(u.startswith("socket://127.0.0.1:") for u in urls), urls
        running = _readline(proc.stderr, deadline)
        pids = [int(p) for p in re.search(r"QEMU pids ([\d, ]+)\)", running).group(1).split(", ")]  # type: ignore[union-attr]
        os.kill(pids[1], signal.SIGKILL)
        line = _readline(proc.stderr, deadline)
        assert f"board 1 ({urls[1]}, QEMU pid {pids[1]}) killed by SIGKILL" in line and line.endswith("1 of 2 still running\n")
        assert proc.poll() is None  # one board left: still serving
        os.kill(pids[0], signal.SIGKILL)
        assert proc.wait(30) == 4  # a device / emulator failure (facts.errors.EXIT_DEVICE)
        rest = proc.stderr.read()  # type: ignore[union-attr]
        assert f"board 0 ({urls[0]}, QEMU pid {pids[0]}) killed by SIGKILL" in rest and "; no board left\n" in rest
        assert "tinyfed: error: all 2 board(s) are gone" in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
