"""The message table, read from the one definition of the wire.

``firmware/include/tfd/wire.def`` is an X-macro table that the C side includes;
this module parses the very same file at import (DESIGN.md rule 7), so ids,
field layouts, sizes, classes and constants cannot drift between host and
device.  ``WIRE`` is the parsed table; ``STATUS`` the status codes from
``firmware/include/tfd/status.h``.

>>> WIRE.msg("PING").encode(token=7)
b'\\x07\\x00\\x00\\x00'
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

_ROOT = Path(os.environ.get("TINYFED_ROOT", Path(__file__).resolve().parent.parent))
WIRE_DEF = Path(os.environ.get("TINYFED_WIRE_DEF", _ROOT / "firmware" / "include" / "tfd" / "wire.def"))
STATUS_H = _ROOT / "firmware" / "include" / "tfd" / "status.h"

#: wire type -> (code in the C enum tfd_wire_type_t, struct format, element size)
TYPES: dict[str, tuple[int, str, int]] = {
    "U8": (1, "B", 1),
    "I8": (2, "b", 1),
    "U16": (3, "H", 2),
    "I16": (4, "h", 2),
    "U32": (5, "I", 4),
    "I32": (6, "i", 4),
    "F32": (7, "f", 4),
    "CHAR": (8, "s", 1),
}
DIRECTIONS = {"H2D": 1, "D2H": 2, "BOTH": 3}
GATES = {"ALWAYS": 0, "TEST": 1}


class WireDefError(ValueError):
    """wire.def does not follow its grammar (or breaks one of its rules)."""


class CodecError(ValueError):
    """A payload or a set of field values does not fit its message."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    count: int  # array length; 1 for scalars; max elements for a tail
    offset: int  # wire offset in the payload
    is_tail: bool = False
    is_array: bool = False

    @property
    def elem_size(self) -> int:
        return TYPES[self.type][2]

    @property
    def size(self) -> int:
        """Bytes on the wire (the maximum for a tail)."""
        return self.elem_size * self.count


@dataclass(frozen=True)
class Message:
    name: str
    id: int
    direction: str
    cls: str
    gate: str
    fields: tuple[Field, ...]

    @property
    def tail(self) -> Field | None:
        return self.fields[-1] if self.fields and self.fields[-1].is_tail else None

    @property
    def fixed_size(self) -> int:
        return sum(f.size for f in self.fields if not f.is_tail)

    @property
    def tail_max(self) -> int:
        return self.tail.size if self.tail else 0

    @property
    def max_size(self) -> int:
        return self.fixed_size + self.tail_max

    # -- codec ---------------------------------------------------------------------------
    def encode(self, **values: Any) -> bytes:
        """Field values -> payload bytes (little endian, no padding).

        Scalars are ints/floats, CHAR arrays/tails ``str`` or ``bytes``, U8/I8
        arrays and tails ``bytes`` (or anything ``bytes()`` accepts, e.g. an
        int8 numpy array).  Every field must be given; a tail may be omitted
        (empty).
        """
        names = {f.name for f in self.fields}
        extra = set(values) - names
        if extra:
            raise CodecError(f"{self.name}: unknown field(s) {sorted(extra)}")
        out = bytearray()
        for f in self.fields:
            if f.name not in values:
                if f.is_tail:
                    continue
                raise CodecError(f"{self.name}: missing field {f.name}")
            v = values[f.name]
            if f.is_tail or f.is_array:
                raw = _as_bytes(v, f)
                if f.is_tail:
                    if len(raw) > f.count:
                        raise CodecError(f"{self.name}.{f.name}: {len(raw)} bytes > max {f.count}")
                    out += raw
                else:
                    if f.type == "CHAR":
                        if len(raw) > f.count:
                            raise CodecError(f"{self.name}.{f.name}: text longer than {f.count}")
                        raw = raw.ljust(f.count, b"\0")
                    elif len(raw) != f.size:
                        raise CodecError(f"{self.name}.{f.name}: need {f.size} bytes, got {len(raw)}")
                    out += raw
            else:
                try:
                    out += struct.pack("<" + TYPES[f.type][1], v)
                except struct.error as e:
                    raise CodecError(f"{self.name}.{f.name}={v!r}: {e}") from None
        return bytes(out)

    def decode(self, payload: bytes) -> dict[str, Any]:
        """Payload bytes -> field values; the length is checked first."""
        n = len(payload)
        if n < self.fixed_size or n - self.fixed_size > self.tail_max:
            raise CodecError(
                f"{self.name}: payload of {n} bytes, expected {self.fixed_size}"
                + (f"..{self.max_size}" if self.tail else "")
            )
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.is_tail:
                raw = bytes(payload[f.offset :])
                out[f.name] = raw.decode("utf-8", "replace") if f.type == "CHAR" else raw
            elif f.is_array:
                raw = bytes(payload[f.offset : f.offset + f.size])
                if f.type == "CHAR":
                    out[f.name] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                elif f.type in ("U8", "I8"):
                    out[f.name] = raw
                else:
                    out[f.name] = list(struct.unpack_from(f"<{f.count}{TYPES[f.type][1]}", payload, f.offset))
            else:
                out[f.name] = struct.unpack_from("<" + TYPES[f.type][1], payload, f.offset)[0]
        return out


def _as_bytes(v: Any, f: Field) -> bytes:
    if isinstance(v, str):
        if f.type != "CHAR":
            raise CodecError(f"{f.name}: text given for a {f.type} field")
        return v.encode("utf-8")
    try:
        return bytes(memoryview(v).cast("B")) if not isinstance(v, (bytes, bytearray)) else bytes(v)
    except TypeError:
        return bytes(v)


@dataclass(frozen=True)
class Purpose:
    name: str
    id: int
    direction: str
    cls: str
    gate: str


@dataclass(frozen=True)
class WireTable:
    """Everything wire.def says, in declaration order."""

    consts: Mapping[str, int]
    header: tuple[Field, ...]
    classes: Mapping[str, bool]  # class -> may travel device->host
    blocks: Mapping[str, tuple[int, int]]
    planned: Mapping[str, tuple[int, str]]
    messages: tuple[Message, ...]
    purposes: tuple[Purpose, ...]
    source: Path = field(compare=False, default=WIRE_DEF)

    # -- lookup ----------------------------------------------------------------------------
    @cached_property
    def by_name(self) -> dict[str, Message]:
        return {m.name: m for m in self.messages}

    @cached_property
    def by_id(self) -> dict[int, Message]:
        return {m.id: m for m in self.messages}

    def msg(self, name_or_id: str | int) -> Message:
        try:
            return self.by_name[name_or_id] if isinstance(name_or_id, str) else self.by_id[name_or_id]
        except KeyError:
            raise KeyError(f"no message {name_or_id!r} in {self.source.name}") from None

    def purpose(self, name_or_id: str | int) -> Purpose:
        for p in self.purposes:
            if p.name == name_or_id or p.id == name_or_id:
                return p
        raise KeyError(f"no transfer purpose {name_or_id!r} in {self.source.name}")

    def const(self, name: str) -> int:
        return self.consts[name]

    @property
    def header_size(self) -> int:
        return sum(f.size for f in self.header)

    @property
    def max_frame(self) -> int:
        """TFD_MAX_FRAME: header + largest payload + CRC-32."""
        return self.header_size + self.consts["MAX_PAYLOAD"] + 4

    @property
    def max_wire_frame(self) -> int:
        """TFD_MAX_WIRE_FRAME: a COBS-encoded frame plus its delimiter."""
        return self.max_frame + self.max_frame // 254 + 2

    @cached_property
    def table_crc(self) -> int:
        """CRC-32 of the canonical table serialization (C: tfd_wire_table_crc)."""
        b = bytearray()
        for k in ("FRAME_VERSION", "PROTO_VERSION", "MAX_PAYLOAD"):
            b += struct.pack("<H", self.consts[k])
        for h in self.header:
            b.append(TYPES[h.type][0])
        cls_index = {c: i for i, c in enumerate(self.classes)}
        for m in self.messages:
            b += struct.pack(
                "<BBBBHHB", m.id, DIRECTIONS[m.direction], cls_index[m.cls], GATES[m.gate],
                m.fixed_size, m.tail_max, len(m.fields),
            )
            for f in m.fields:
                b += struct.pack("<BBHH", TYPES[f.type][0], int(f.is_tail), f.count, f.offset)
        for p in self.purposes:
            b += struct.pack("<BBBB", p.id, DIRECTIONS[p.direction], cls_index[p.cls], GATES[p.gate])
        return zlib.crc32(bytes(b))


# ---- parser ------------------------------------------------------------------------------------
_MACRO = re.compile(r"\bTFD_(WIRE_CONST|HEADER|CARRIES|BLOCK|PLANNED|MSG|FIELD|ARRAY|TAIL|END|PURPOSE)\(([^()]*)\)")


def _strip(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    # preprocessor lines: the default (empty) macro definitions and #undefs
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def parse_wire_def(path: Path = WIRE_DEF) -> WireTable:
    """Parse wire.def; raise WireDefError on anything outside its grammar."""
    text = _strip(path.read_text())
    leftover = _MACRO.sub(" ", text).strip()
    if leftover:
        raise WireDefError(f"{path}: text outside the grammar: {leftover[:80]!r}")

    consts: dict[str, int] = {}
    header: list[Field] = []
    classes: dict[str, bool] = {}
    blocks: dict[str, tuple[int, int]] = {}
    planned: dict[str, tuple[int, str]] = {}
    messages: list[Message] = []
    purposes: list[Purpose] = []
    cur: dict[str, Any] | None = None

    def num(tok: str) -> int:
        return int(tok, 0)

    def count_of(tok: str) -> int:
        if tok not in consts:
            raise WireDefError(f"count {tok!r} is not a TFD_WIRE_CONST")
        return consts[tok]

    def need(kind: str, args: list[str], n: int) -> None:
        if len(args) != n:
            raise WireDefError(f"TFD_{kind} takes {n} arguments, got {args}")

    def field_of(kind: str, args: list[str]) -> None:
        if cur is None or args[0] != cur["name"]:
            raise WireDefError(f"TFD_{kind}({', '.join(args)}) outside its TFD_MSG")
        if cur["fields"] and cur["fields"][-1].is_tail:
            raise WireDefError(f"{cur['name']}: the tail must be the last field")
        typ = args[1]
        if typ not in TYPES:
            raise WireDefError(f"{cur['name']}.{args[2]}: unknown type {typ}")
        offset = sum(f.size for f in cur["fields"])
        if kind == "FIELD":
            need(kind, args, 3)
            if typ == "CHAR":
                raise WireDefError(f"{cur['name']}.{args[2]}: CHAR needs TFD_ARRAY")
            cur["fields"].append(Field(args[2], typ, 1, offset))
        elif kind == "ARRAY":
            need(kind, args, 4)
            cur["fields"].append(Field(args[2], typ, count_of(args[3]), offset, is_array=True))
        else:
            need(kind, args, 4)
            if TYPES[typ][2] != 1:
                raise WireDefError(f"{cur['name']}.{args[2]}: a tail has 1-byte elements")
            cur["fields"].append(Field(args[2], typ, count_of(args[3]), offset, is_tail=True))

    for m in _MACRO.finditer(text):
        kind = m.group(1)
        args = [a.strip() for a in m.group(2).split(",")]
        if kind == "WIRE_CONST":
            need(kind, args, 2)
            consts[args[0]] = num(args[1])
        elif kind == "HEADER":
            need(kind, args, 2)
            header.append(Field(args[1], args[0], 1, sum(f.size for f in header)))
        elif kind == "CARRIES":
            need(kind, args, 2)
            if args[1] not in ("YES", "NO"):
                raise WireDefError(f"TFD_CARRIES({args[0]}): FROM_DEVICE must be YES or NO")
            classes[args[0]] = args[1] == "YES"
        elif kind == "BLOCK":
            need(kind, args, 3)
            blocks[args[0]] = (num(args[1]), num(args[2]))
        elif kind == "PLANNED":
            need(kind, args, 3)
            planned[args[0]] = (num(args[1]), args[2])
        elif kind == "MSG":
            need(kind, args, 5)
            if cur is not None:
                raise WireDefError(f"TFD_MSG({args[0]}) inside {cur['name']}: missing TFD_END")
            cur = {"name": args[0], "id": num(args[1]), "dir": args[2], "cls": args[3], "gate": args[4], "fields": []}
        elif kind in ("FIELD", "ARRAY", "TAIL"):
            field_of(kind, args)
        elif kind == "END":
            need(kind, args, 1)
            if cur is None or args[0] != cur["name"]:
                raise WireDefError(f"TFD_END({args[0]}) without its TFD_MSG")
            if not cur["fields"]:
                raise WireDefError(f"{cur['name']}: a message needs at least one field")
            messages.append(
                Message(cur["name"], cur["id"], cur["dir"], cur["cls"], cur["gate"], tuple(cur["fields"]))
            )
            cur = None
        elif kind == "PURPOSE":
            need(kind, args, 5)
            purposes.append(Purpose(args[0], num(args[1]), args[2], args[3], args[4]))
    if cur is not None:
        raise WireDefError(f"{cur['name']}: missing TFD_END")

    table = WireTable(consts, tuple(header), classes, blocks, planned, tuple(messages), tuple(purposes), path)
    _validate(table)
    return table


def _validate(t: WireTable) -> None:
    """Rules the C compiler would not catch (or would catch less clearly)."""
    seen: dict[int, str] = {}
    for m in t.messages:
        if not 0 < m.id < 256:
            raise WireDefError(f"{m.name}: id {m.id} out of 1..255")
        if m.id in seen:
            raise WireDefError(f"{m.name}: id 0x{m.id:02X} already used by {seen[m.id]}")
        seen[m.id] = m.name
        if m.direction not in DIRECTIONS or m.gate not in GATES:
            raise WireDefError(f"{m.name}: bad direction/gate {m.direction}/{m.gate}")
        if m.cls not in t.classes:
            raise WireDefError(f"{m.name}: class {m.cls} is not a TFD_CARRIES class")
        if m.direction in ("D2H", "BOTH") and not t.classes[m.cls]:
            raise WireDefError(f"{m.name}: class {m.cls} may not travel device->host")
        if not any(lo <= m.id <= hi for lo, hi in t.blocks.values()):
            raise WireDefError(f"{m.name}: id 0x{m.id:02X} is in no TFD_BLOCK")
        if m.max_size > t.consts["MAX_PAYLOAD"]:
            raise WireDefError(f"{m.name}: {m.max_size} bytes > MAX_PAYLOAD")
        names = [f.name for f in m.fields]
        if len(set(names)) != len(names):
            raise WireDefError(f"{m.name}: duplicate field names")
    for name, (pid, block) in t.planned.items():
        if pid in seen:
            raise WireDefError(f"planned {name} (0x{pid:02X}) collides with {seen[pid]}: drop the TFD_PLANNED line")
        lo, hi = t.blocks[block]
        if not lo <= pid <= hi:
            raise WireDefError(f"planned {name}: 0x{pid:02X} outside block {block}")
    for p in t.purposes:
        if p.cls not in t.classes or p.direction not in DIRECTIONS or p.gate not in GATES:
            raise WireDefError(f"purpose {p.name}: bad class/direction/gate")
        if p.direction in ("D2H", "BOTH") and not t.classes[p.cls]:
            raise WireDefError(f"purpose {p.name}: class {p.cls} may not travel device->host")


def parse_status_codes(path: Path = STATUS_H) -> dict[int, tuple[str, str]]:
    """TFD_STATUS_LIST from status.h: code -> (name, text)."""
    text = path.read_text()
    return {
        int(m.group(2)): (m.group(1), m.group(3))
        for m in re.finditer(r'X\((TFD_\w+),\s*(\d+),\s*"([^"]*)"\)', text)
    }


WIRE: WireTable = parse_wire_def()
STATUS: dict[int, tuple[str, str]] = parse_status_codes()
STATUS_BY_NAME: dict[str, int] = {name: code for code, (name, _) in STATUS.items()}

__all__ = [
    "WIRE", "STATUS", "STATUS_BY_NAME", "WireTable", "Message", "Field", "Purpose",
    "parse_wire_def", "parse_status_codes", "WireDefError", "CodecError", "TYPES",
]
