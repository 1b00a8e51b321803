"""Facts the C headers define, read from the headers themselves (ARCHITECTURE.md rules 7, 12).

Python never restates a value C defines: op ids (``TFD_OP_LIST``), tensor type
ids (``tfd_type_t``), the model and training ABI versions, status codes
(``TFD_STATUS_LIST``), the training plan's flags and enums, the learning-rate
schedules (``tfd_lr_schedule_t``), the wire's field types, directions and
gates, and the other sizes the host must agree on.  Each reader parses
``firmware/include/tfd/<header>`` once (cached).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .paths import TFD_INCLUDE

_INT = r"(0x[0-9a-fA-F]+|-?\d+)"


@lru_cache(maxsize=None)
def header_text(name: str) -> str:
    """The text of ``firmware/include/tfd/<name>``, comments removed."""
    text = (TFD_INCLUDE / name).read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


@lru_cache(maxsize=None)
def int_defines(name: str) -> dict[str, int]:
    """Every ``#define NAME <integer>`` of a header (a ``u`` suffix and parentheses allowed)."""
    return {m.group(1): int(m.group(2), 0)
            for m in re.finditer(r"#define\s+(\w+)\s+\(?" + _INT + r"u?\)?[ \t]*$", header_text(name), re.M)}


@lru_cache(maxsize=None)
def string_defines(name: str) -> dict[str, bytes]:
    """Every ``#define NAME "text"`` of a header (plain ASCII, no escapes), as bytes: the
    domain-separation strings C hashes and Python must hash identically."""
    return {m.group(1): m.group(2).encode("ascii")
            for m in re.finditer(r'#define\s+(\w+)\s+"([^"\\]*)"[ \t]*$', header_text(name), re.M)}


@lru_cache(maxsize=None)
def enum_values(name: str, prefix: str) -> dict[str, int]:
    """``NAME = value`` enumerators starting with ``prefix`` (explicit values only)."""
    return {m.group(1): int(m.group(2), 0)
            for m in re.finditer(r"\b(" + prefix + r"\w*)\s*=\s*" + _INT + r"\b", header_text(name))}


def define(name: str, header: str) -> int:
    """One integer ``#define`` (``KeyError``-free: a missing one is a broken checkout)."""
    values = int_defines(header)
    if name not in values:
        raise LookupError(f"{name} is not defined in firmware/include/tfd/{header}")
    return values[name]


# ---- the model ABI (model.h, status.h) -------------------------------------------------


@lru_cache(maxsize=None)
def op_ids() -> dict[str, int]:
    """TFD_OP_LIST: op name -> numeric id."""
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"X\((\w+),\s*(\d+),\s*\w+\)", header_text("model.h"))}


@lru_cache(maxsize=None)
def kernel_names() -> dict[str, str]:
    """TFD_OP_LIST: op name -> kernel name (the C kernel is ``tfd_eval_<name>``)."""
    return {m.group(1): m.group(2)
            for m in re.finditer(r"X\((\w+),\s*\d+,\s*(\w+)\)", header_text("model.h"))}


def model_abi() -> int:
    return define("TFD_MODEL_ABI", "model.h")


def conv_dsp_scratch_bytes(taps: int) -> int:
    """TFD_CONV_DSP_SCRATCH_BYTES(taps) (params_nn.h): arena scratch of the
    optimized CONV_2D for a filter of ``taps`` = KH * KW * IC values:
    TFD_CONV_DSP_COLUMNS int16 columns + one int8 column of round4(taps)."""
    return (2 * define("TFD_CONV_DSP_COLUMNS", "params_nn.h") + 1) * ((taps + 3) // 4 * 4)


def add_dsp_scratch_bytes(elements: int) -> int:
    """ADD / SUB: arena scratch of the optimized kernel (two 256-entry int32 tables),
    planned when the output has at least TFD_ADD_DSP_MIN_ELEMS elements (params_elementwise.h)."""
    return (define("TFD_ADD_DSP_SCRATCH_BYTES", "params_elementwise.h")
            if elements >= define("TFD_ADD_DSP_MIN_ELEMS", "params_elementwise.h") else 0)


def dw_dsp_scratch_bytes(taps: int, channels: int, depth_multiplier: int) -> int:
    """TFD_DW_DSP_SCRATCH_BYTES(taps, c) (params_nn.h): arena scratch of the
    optimized DEPTHWISE_CONV_2D (depth multiplier 1 only; else 0): the filter's
    first ``channels & ~3`` channels widened to int16, ``taps`` = KH * KW each."""
    return 2 * taps * (channels & ~3) if depth_multiplier == 1 else 0


@lru_cache(maxsize=None)
def status_codes() -> dict[int, tuple[str, str]]:
    """TFD_STATUS_LIST: code -> (name, text)."""
    text = (TFD_INCLUDE / "status.h").read_text()  # the texts are string literals: keep comments' neighbours intact
    return {int(m.group(2)): (m.group(1), m.group(3))
            for m in re.finditer(r'X\((TFD_\w+),\s*(\d+),\s*"([^"]*)"\)', text)}


def _suffixes(header: str, prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: v for k, v in enum_values(header, prefix).items()}


#: tensor type name (as the .tflite schema spells it) -> tfd_type_t
TYPE_IDS: dict[str, int] = _suffixes("model.h", "TFD_TYPE_")
#: bytes per element and C type of each tensor type (C's own sizes)
TYPE_SIZES = {"INT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4}
C_TYPES = {"INT8": "int8_t", "INT16": "int16_t", "INT32": "int32_t", "FLOAT32": "float"}
assert set(TYPE_SIZES) == set(TYPE_IDS), "tfd_type_t in model.h and TYPE_SIZES disagree"

# ---- training (train_plan.h, train.h) --------------------------------------------------


@lru_cache(maxsize=None)
def train_constants() -> dict[str, int]:
    """``TFD_TRAIN_ABI``, ``TFD_TL_*`` flags, ``TFD_TSEG_*``, ``TFD_TACT_*`` and the domains."""
    out = {k: v for k, v in int_defines("train_plan.h").items() if k == "TFD_TRAIN_ABI" or k.startswith("TFD_TL_")}
    out.update(enum_values("train_plan.h", "TFD_(?:TSEG|TACT|TRAIN)_"))
    return out


def train_abi() -> int:
    return train_constants()["TFD_TRAIN_ABI"]


def train_flag(name: str) -> int:
    """A tail-layer flag ``TFD_TL_<name>``."""
    return train_constants()[f"TFD_TL_{name}"]


def train_act_id(act: str) -> int:
    """``tfd_train_act_t`` of an activation name (NONE, RELU, RELU6, RELU_N1_TO_1)."""
    return train_constants()[f"TFD_TACT_{act}"]


def train_seg_kind_id(kind: str) -> int:
    """``tfd_train_seg_kind_t`` of a segment kind (weight, bias, lora_a, lora_b)."""
    return train_constants()[f"TFD_TSEG_{kind.upper()}"]


#: learning-rate schedule name -> tfd_lr_schedule_t (train.h)
LR_SCHEDULES: dict[str, int] = {k.lower(): v for k, v in _suffixes("train.h", "TFD_LR_").items()}

# ---- the wire (wire.h) -----------------------------------------------------------------

#: wire field type -> tfd_wire_type_t (TFD_WT_END, the list terminator, left out)
WIRE_TYPE_CODES: dict[str, int] = {k: v for k, v in _suffixes("wire.h", "TFD_WT_").items() if k != "END"}
#: message direction -> tfd_wire_dir_t; message gate -> tfd_wire_gate_t
WIRE_DIRECTIONS: dict[str, int] = _suffixes("wire.h", "TFD_DIR_")
WIRE_GATES: dict[str, int] = _suffixes("wire.h", "TFD_GATE_")

__all__ = [
    "header_text", "int_defines", "enum_values", "define", "op_ids", "model_abi", "status_codes",
    "TYPE_IDS", "TYPE_SIZES", "C_TYPES", "train_constants", "train_abi", "train_flag", "train_act_id",
    "train_seg_kind_id", "LR_SCHEDULES", "WIRE_TYPE_CODES", "WIRE_DIRECTIONS", "WIRE_GATES",
]
