"""Shared tear-down for tests that drive QEMU boards through DeviceClients."""

from __future__ import annotations

from typing import Any, Iterable


def shut_down(devs: Iterable[Any], boards: Iterable[Any]) -> None:
    """Close every client (a board that already hung up is fine), then stop every board
    (QEMU processes are stopped by PID)."""
    for d in devs:
        try:
            d.close()
        except OSError:
            pass
    for b in boards:
        b.stop()
