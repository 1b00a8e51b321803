"""Processes a test started, stopped by PID: :func:`descendants` lists this process's
descendants (pid -> start time, so a reused pid is never mistaken for ours), and
:func:`left_running` waits for the ones a test saw to exit, kills any left by PID and
lists them (the test then fails).  Used by the Flower tests, whose SuperLink,
SuperExec, ServerApp, gateways, SuperNodes, flwr and QEMU boards are all children or
grandchildren of the test process (a killed parent's children are reparented, so a
test snapshots the tree while they are still ours)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process, None if it is gone."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return f[0], int(f[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants() -> dict[int, int]:
    """This process's descendants now: pid -> start time."""
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int(Path(p, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    out: dict[int, int] = {}
    todo = list(kids.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        st = proc_stat(pid)
        if st is not None:
            out[pid] = st[1]
        todo += kids.get(pid, [])
    return out


class Watch:
    """``with Watch() as w:`` samples this process's descendants every ``every`` seconds while
    the block runs (processes that come and go inside a library call, e.g. Ray's); ``w.seen``."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.seen: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.seen.update(descendants())
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> "Watch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def left_running(seen: dict[int, int], wait: float = 20.0) -> list[str]:
    """Which of the processes ``seen`` (pid -> start time) still run after ``wait`` seconds;
    those are killed by PID and listed (pid: command line)."""
    def running() -> list[int]:
        return [pid for pid, start in seen.items()
                if (st := proc_stat(pid)) is not None and st[1] == start and st[0] != "Z"]

    t0 = time.monotonic()
    while (left := running()) and time.monotonic() - t0 < wait:
        time.sleep(0.5)
    out = []
    for pid in left:
        try:
            out.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160])
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return out


class Proc:
    """A child process whose output lines are collected (and waited for)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, text=True)
        self.lines: list[str] = []
        self.q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(time.strftime("%H:%M:%S ") + line.rstrip())
            self.q.put(line.rstrip())

    def wait_for(self, pred: Callable[[str], bool], timeout: float) -> str:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                line = self.q.get(timeout=0.5)
            except queue.Empty:
                if self.p.poll() is not None:
                    break
                continue
            if pred(line):
                return line
        raise AssertionError(f"no matching line within {timeout} s:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
