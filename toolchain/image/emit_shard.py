"""Emit one device's private data shard as C (it goes into that device's flash).

The shard is data the device learns from and evaluates on; no protocol message
can carry it off the device (see the wire table's classification column)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..compile.emit_c import banner, c_array
from ..facts.errors import InputError


def emit_shard(x_int8: np.ndarray, y: np.ndarray, out_dir: Path, *, device: int, num_classes: int) -> Path:
    """Write ``shard_data.c`` with ``tfd_shard_x`` (int8 inputs, model-quantized),
    ``tfd_shard_y`` (labels) and ``tfd_shard_n``."""
    if x_int8.dtype != np.int8:
        raise InputError("shard inputs must be int8 (quantized to the model input)")
    if len(x_int8) != len(y) or len(y) == 0:
        raise InputError(f"shard {device}: {len(x_int8)} inputs vs {len(y)} labels")
    if int(np.max(y)) >= num_classes or int(np.min(y)) < 0 or num_classes > 255:
        raise InputError(f"shard {device}: labels out of range for {num_classes} classes")
    out_dir.mkdir(parents=True, exist_ok=True)
    n = int(len(y))
    per = int(x_int8[0].size)
    text = (
        banner(f"private data shard of device {device}")
        + "#include <stdint.h>\n\n"
        + f"const uint32_t tfd_shard_n = {n}u;\n"
        + f"const uint32_t tfd_shard_sample_bytes = {per}u;\n"
        + f"const uint32_t tfd_shard_device_id = {device}u;\n"
        + c_array("tfd_shard_x", "int8_t", x_int8.reshape(-1), align=16, static=False)
        + c_array("tfd_shard_y", "uint8_t", np.asarray(y, dtype=np.uint8), align=4, static=False)
    )
    path = out_dir / "shard_data.c"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
