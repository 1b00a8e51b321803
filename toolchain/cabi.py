"""The C ABI as the toolchain sees it, read from the C headers themselves so the
two sides cannot drift (DESIGN.md rule 7): op ids, tensor type ids, the model
ABI version and status codes."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from .paths import FIRMWARE_INCLUDE


def _header(name: str) -> str:
    return (FIRMWARE_INCLUDE / "tfd" / name).read_text()


@lru_cache(maxsize=None)
def op_ids() -> dict[str, int]:
    """TFD_OP_LIST: op name → numeric id."""
    text = _header("model.h")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"X\((\w+),\s*(\d+),\s*\w+\)", text)}


@lru_cache(maxsize=None)
def model_abi() -> int:
    m = re.search(r"#define\s+TFD_MODEL_ABI\s+(\d+)", _header("model.h"))
    assert m, "TFD_MODEL_ABI not found in model.h"
    return int(m.group(1))


@lru_cache(maxsize=None)
def status_codes() -> dict[int, tuple[str, str]]:
    """TFD_STATUS_LIST: code → (name, text)."""
    text = _header("status.h")
    return {
        int(m.group(2)): (m.group(1), m.group(3))
        for m in re.finditer(r'X\((TFD_\w+),\s*(\d+),\s*"([^"]*)"\)', text)
    }


TYPE_IDS = {"INT8": 0, "INT16": 1, "INT32": 2, "FLOAT32": 3}
TYPE_SIZES = {"INT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4}
C_TYPES = {"INT8": "int8_t", "INT16": "int16_t", "INT32": "int32_t", "FLOAT32": "float"}

__all__ = ["op_ids", "model_abi", "status_codes", "TYPE_IDS", "TYPE_SIZES", "C_TYPES", "Path"]
