"""Per-board memory budget: stated before anything is flashed.

Two stages: a *model* budget from the plan alone (weights + tables in flash,
arena in SRAM) that refuses a model that cannot fit whatever the firmware
costs, and an *image* budget from the linked firmware (the linker script also
enforces the chip's real sizes; this module reports them)."""

from __future__ import annotations

from dataclasses import dataclass

from ..facts.errors import TinyfedError


class BudgetError(TinyfedError, ValueError):
    """The model (or image) does not fit the chosen board; the message has the numbers."""


@dataclass
class Budget:
    board: str
    flash_total: int
    ram_total: int
    model_flash: int  # constant tensors + parameter tables (approx. emitted rodata)
    arena: int  # inference activations (static memory plan)
    image_flash: int | None = None  # from the linked image, when built
    image_ram: int | None = None
    tflm_arena: int | None = None  # what the tflite-micro runtime needs for the same model

    def lines(self) -> list[str]:
        def pct(a: int, b: int) -> str:
            return f"{100.0 * a / b:5.1f}%" if b else "  n/a"

        out = [
            f"budget for {self.board}: flash {self.flash_total // 1024} KiB, SRAM {self.ram_total // 1024} KiB",
            f"  model weights+tables (flash) {self.model_flash:>9,} B  {pct(self.model_flash, self.flash_total)}",
            f"  inference arena (SRAM)       {self.arena:>9,} B  {pct(self.arena, self.ram_total)}",
        ]
        if self.tflm_arena is not None:
            out.append(f"  tflite-micro arena, same model {self.tflm_arena:>7,} B")
        if self.image_flash is not None and self.image_ram is not None:
            out.append(f"  firmware image flash         {self.image_flash:>9,} B  {pct(self.image_flash, self.flash_total)}")
            out.append(f"  firmware image SRAM          {self.image_ram:>9,} B  {pct(self.image_ram, self.ram_total)}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def model_budget(info: dict, board: str, flash_total: int, ram_total: int) -> Budget:
    """Budget from the emitted model's info (model_info.json); raises BudgetError if it cannot fit."""
    b = Budget(
        board=board,
        flash_total=flash_total,
        ram_total=ram_total,
        model_flash=int(info["const_bytes"]) + 64 * int(info["n_tensors"]) + 96 * int(info["n_layers"]),
        arena=int(info["arena_bytes"]),
    )
    problems = []
    if b.model_flash > flash_total:
        problems.append(f"model needs {b.model_flash:,} B of flash, {board} has {flash_total:,} B")
    if b.arena > ram_total:
        problems.append(f"model needs a {b.arena:,} B arena, {board} has {ram_total:,} B of SRAM")
    if problems:
        raise BudgetError(f"model {info.get('name', '?')!r} does not fit {board}: " + "; ".join(problems))
    return b
