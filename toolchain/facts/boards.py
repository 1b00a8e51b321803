"""Board descriptions: ``boards/<name>/board.json`` (flash, SRAM, CPU flags, UART, QEMU machine).

The one reader of the board folders, used by the image build, the budget, the
emulator and PlatformIO (which loads the toolchain package by path).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import TinyfedError
from .paths import BOARDS


class BoardError(TinyfedError, ValueError):
    """An unknown board, or a board folder whose board.json is inconsistent."""


#: Kernel variants a board (board.json "kernels") or a build can ask for:
#: "dsp" = the optimized kernels of firmware/src/kernels/dsp/ (TFD_KERNELS_DSP=1,
#: cores with the DSP extension) over the reference kernels; "reference" = those alone.
KERNEL_VARIANTS: tuple[str, ...] = ("reference", "dsp")


@dataclass(frozen=True)
class Board:
    """A board folder: ``boards/<name>/board.json`` plus its path."""

    name: str
    path: Path
    spec: Mapping[str, Any]

    @property
    def cpu_flags(self) -> tuple[str, ...]:
        return tuple(self.spec["cpu_flags"])

    @property
    def emulated(self) -> bool:
        return bool(self.spec.get("emulated", False))

    @property
    def qemu_machine(self) -> str | None:
        qemu = self.spec.get("qemu")
        return qemu["machine"] if qemu else None

    @property
    def flash_bytes(self) -> int:
        return int(self.spec["flash_kb"]) * 1024

    @property
    def ram_bytes(self) -> int:
        return int(self.spec["ram_kb"]) * 1024

    @property
    def storage_erase_bytes(self) -> int:
        """Erase unit of the parameter storage (tfd_port_storage_erase_unit(); the port asserts they agree)."""
        return int(self.spec.get("storage_erase_bytes", 4096))

    @property
    def kernels(self) -> str:
        """Kernel variant of this board's images (board.json ``kernels``, default
        ``reference``): one of :data:`KERNEL_VARIANTS`."""
        kind = str(self.spec.get("kernels", "reference"))
        if kind not in KERNEL_VARIANTS:
            raise BoardError(f"board {self.name}: kernels {kind!r} is not one of {', '.join(KERNEL_VARIANTS)}")
        return kind

    def defines(self, kernels: str | None = None) -> dict[str, str]:
        """C defines every source of this board's images is compiled with
        (``kernels`` overrides the board's kernel variant)."""
        uart = self.spec["uart"]
        out = {
            "TFD_BOARD_NAME": f'"{self.name}"',
            "TFD_BOARD_CPU_HZ": f"{int(self.spec['cpu_hz'])}u",
            "TFD_BOARD_IRQ_COUNT": str(int(self.spec["irq_count"])),
            "TFD_BOARD_UART_BASE": f"{uart['base']}u",
            "TFD_BOARD_UART_RX_IRQ": f"{int(uart['rx_irq'])}u",
            "TFD_BOARD_UART_TX_IRQ": f"{int(uart.get('tx_irq', uart['rx_irq']))}u",
            "TFD_BOARD_STORAGE_ERASE_BYTES": f"{self.storage_erase_bytes}u",
        }
        kind = self.kernels if kernels is None else kernels
        if kind not in KERNEL_VARIANTS:
            raise BoardError(f"kernels {kind!r} is not one of {', '.join(KERNEL_VARIANTS)}")
        out["TFD_KERNELS_DSP"] = "1" if kind == "dsp" else "0"
        if self.spec.get("semihosting"):
            out["TFD_BOARD_SEMIHOSTING"] = "1"
        if self.emulated:
            out["TFD_BOARD_EMULATED"] = "1"
        for key, value in dict(self.spec.get("defines", {})).items():
            out[str(key)] = str(value)
        return out


def board_names() -> list[str]:
    """Every board folder with a board.json, sorted."""
    return sorted(p.parent.name for p in BOARDS.glob("*/board.json"))


def emulated_board_names() -> list[str]:
    """The boards QEMU runs (board.json "qemu"), sorted: what ``tinyfed emulate`` takes."""
    return [n for n in board_names() if load_board(n).qemu_machine]


def load_board(name: str) -> Board:
    path = BOARDS / name
    spec_file = path / "board.json"
    if not spec_file.is_file():
        raise BoardError(f"unknown board {name!r}; boards: {', '.join(board_names())}")
    spec = json.loads(spec_file.read_text())
    if spec.get("name") != name:
        raise BoardError(f"{spec_file}: name {spec.get('name')!r} does not match folder {name!r}")
    return Board(name=name, path=path, spec=spec)


__all__ = ["Board", "BoardError", "board_names", "emulated_board_names", "load_board"]
