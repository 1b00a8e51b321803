"""A one-line progress display for long rounds (thousands of simulated devices):
``[simulate] 4,200/10,000 devices trained · SecAgg+ SHARE_KEYS  31.2 s`` on stderr,
rewritten in place at most every ``every`` seconds, only at a terminal (or when
asked); cleared before any other line is printed (:meth:`Progress.wrap`)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TextIO


class Progress:
    def __init__(self, total: int, *, label: str = "simulate", enabled: bool = True, every: float = 0.25,
                 stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.enabled = enabled
        self.every = every
        self.stream = stream or sys.stderr
        self.done = 0
        self.what = ""
        self._t0 = time.monotonic()
        self._last = 0.0
        self._shown = False
        self._lock = threading.Lock()  # devices train on several threads

    def tick(self, n: int = 1) -> None:
        """n more devices trained (the count starts over with every step)."""
        with self._lock:
            if self.done >= self.total:
                self.done, self.what, self._t0 = 0, "", time.monotonic()
            self.done += n
            self._show()

    def stage(self, what: str) -> None:
        self.what = what
        self._show(force=True)

    def _show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
        text = (f"[{self.label}] [{bar}] {self.done:,}/{self.total:,} devices trained"
                + (f" · {self.what}" if self.what else "") + f"  {now - self._t0:.1f} s")
        self.stream.write("\r" + text[:150].ljust(100))
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()
            self._shown = False

    def wrap(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """``log`` that clears the progress line first."""
        def out(s: str) -> None:
            self.clear()
            log(s)
        return out


__all__ = ["Progress"]
