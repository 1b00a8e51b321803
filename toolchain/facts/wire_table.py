"""The message table, read from the one definition of the wire.

``firmware/include/tfd/wire.def`` is an X-macro table that the C side includes;
this module parses the very same file at import (ARCHITECTURE.md rule 7), so ids,
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

from .c_headers import WIRE_DIRECTIONS, WIRE_GATES, WIRE_TYPE_CODES, define, status_codes
from .errors import TinyfedError
from .paths import TFD_INCLUDE

WIRE_DEF = Path(os.environ.get("TINYFED_WIRE_DEF", TFD_INCLUDE / "wire.def"))

#: struct format of each wire type (little endian on the wire)
_FORMATS = {"U8": "B", "I8": "b", "U16": "H", "I16": "h", "U32": "I", "I32": "i", "F32": "f", "CHAR": "s"}
#: wire type -> (code in the C enum tfd_wire_type_t, struct format, element size TFD_WSIZE_*), read from wire.h
TYPES: dict[str, tuple[int, str, int]] = {
    name: (code, _FORMATS[name], define(f"TFD_WSIZE_{name}", "wire.h")) for name, code in WIRE_TYPE_CODES.items()
}
DIRECTIONS = WIRE_DIRECTIONS
GATES = WIRE_GATES


class WireDefError(TinyfedError, ValueError):
    """wire.def does not follow its grammar (or breaks one of its rules)."""


class CodecError(TinyfedError, ValueError):
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
class Repeat:
    """A repeated group of a body: ``count`` (a count field) or REST records of ``record``."""

    name: str
    record: str
    count: str | None  # the count field's name; None: TFD_REST (as many as the bytes left hold)
    max: int


@dataclass(frozen=True)
class Struct:
    """A TFD_RECORD (fixed size) or TFD_BODY (fixed part + repeated records) of wire.def.

    ``encode`` takes the fixed fields by name (count fields may be omitted: they
    are the lengths of their groups) and each group as a sequence of records
    (a mapping or a tuple in field order; a bare value for a one-field record)
    or as bytes already packed; ``decode`` returns the fixed fields and each
    group as a tuple of records (a tuple in field order, a bare value for a
    one-field record), a TFD_REST group as its bytes.
    """

    name: str
    fields: tuple[Field, ...]
    repeats: tuple[Repeat, ...] = ()
    msg: str | None = None        # body: its stage message
    direction: str | None = None  # body: H2D (request) | D2H (reply)
    purpose: str | None = None    # body: the transfer purpose carrying it
    table: "WireTable | None" = field(default=None, compare=False, repr=False)

    @property
    def is_body(self) -> bool:
        return self.msg is not None

    @property
    def fixed_size(self) -> int:
        return sum(f.size for f in self.fields)

    @property
    def count_fields(self) -> frozenset[str]:
        return frozenset(r.count for r in self.repeats if r.count is not None)

    def _rec(self, r: Repeat) -> "Struct":
        assert self.table is not None
        return self.table.record(r.record)

    @property
    def max_size(self) -> int | None:
        """Largest body (None with a TFD_REST group)."""
        if any(r.count is None for r in self.repeats):
            return None
        return self.fixed_size + sum(r.max * self._rec(r).fixed_size for r in self.repeats)

    # -- records ---------------------------------------------------------------------------
    def _pack_fields(self, values: Mapping[str, Any], out: bytearray, skip: frozenset[str] = frozenset()) -> None:
        for f in self.fields:
            if f.name in skip:
                continue
            if f.name not in values:
                raise CodecError(f"{self.name}: missing field {f.name}")
            v = values[f.name]
            if f.is_array and f.type not in ("U8", "I8", "CHAR") and not isinstance(v, (bytes, bytearray, memoryview)):
                items = list(v)  # a multi-byte array given as numbers
                if len(items) != f.count:
                    raise CodecError(f"{self.name}.{f.name}: need {f.count} values, got {len(items)}")
                try:
                    out += struct.pack(f"<{f.count}{TYPES[f.type][1]}", *items)
                except struct.error as e:
                    raise CodecError(f"{self.name}.{f.name}: {e}") from None
            elif f.is_array:
                raw = _as_bytes(v, f)
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

    def _unpack_fields(self, data: bytes | memoryview, base: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.fields:
            o = base + f.offset
            if f.is_array:
                raw = bytes(data[o:o + f.size])
                if f.type == "CHAR":
                    out[f.name] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                elif f.type in ("U8", "I8"):
                    out[f.name] = raw
                else:
                    out[f.name] = list(struct.unpack_from(f"<{f.count}{TYPES[f.type][1]}", data, o))
            else:
                out[f.name] = struct.unpack_from("<" + TYPES[f.type][1], data, o)[0]
        return out

    @cached_property
    def _tuple_packer(self) -> tuple[struct.Struct, tuple[tuple[int, int], ...]] | None:
        """A record without text fields packed in one struct call (SecAgg+ bodies carry ~10^5
        records a round at 10,000 devices): its format and, per field, (kind, count) with kind
        0 scalar, 1 byte array, 2 array of wider numbers; None for a record with a CHAR field."""
        if self.is_body or any(f.type == "CHAR" or f.is_tail for f in self.fields):
            return None
        plan: list[tuple[int, int]] = []
        fmt = "<"
        for f in self.fields:
            code = TYPES[f.type][1]
            if not f.is_array:
                plan.append((0, 1))
                fmt += code
            elif f.type in ("U8", "I8"):
                plan.append((1, f.count))
                fmt += f"{f.count}s"
            else:
                plan.append((2, f.count))
                fmt += f"{f.count}{code}"
        return struct.Struct(fmt), tuple(plan)

    def _pack_tuple_fast(self, t: tuple[Any, ...]) -> bytes | None:
        """:meth:`pack_record` of a tuple in field order in one struct call, or None when the
        general path must decide (any value not plainly right: it also words the error)."""
        got = self._tuple_packer
        if got is None or len(t) != len(self.fields):
            return None
        packer, plan = got
        args: list[Any] = []
        for (kind, n), v in zip(plan, t):
            if kind == 0:
                args.append(v)
            elif kind == 1:
                if type(v) is not bytes or len(v) != n:
                    return None
                args.append(v)
            else:
                if isinstance(v, (bytes, bytearray, memoryview, str)):
                    return None
                items = list(v)
                if len(items) != n:
                    return None
                args += items
        try:
            return packer.pack(*args)
        except struct.error:
            return None

    def pack_record(self, rec: Any) -> bytes:
        """One record: a mapping, a tuple in field order, or a bare value (one-field record)."""
        if isinstance(rec, tuple) and len(self.fields) > 1:
            fast = self._pack_tuple_fast(rec)
            if fast is not None:
                return fast
        if isinstance(rec, Mapping):
            values = dict(rec)
        elif len(self.fields) == 1 and not isinstance(rec, tuple):
            values = {self.fields[0].name: rec}
        else:
            t = tuple(rec)
            if len(t) != len(self.fields):
                raise CodecError(f"{self.name}: record of {len(t)} values, expected {len(self.fields)}")
            values = {f.name: v for f, v in zip(self.fields, t)}
        out = bytearray()
        self._pack_fields(values, out)
        return bytes(out)

    def unpack_record(self, data: bytes | memoryview, base: int = 0) -> Any:
        got = self._tuple_packer if len(self.fields) > 1 else None
        if got is not None:  # one struct call (the same values as field by field)
            packer, plan = got
            try:
                flat = packer.unpack_from(data, base)
            except struct.error:
                flat = None
            if flat is not None:
                if all(kind != 2 for kind, _ in plan):
                    return flat
                out: list[Any] = []
                k = 0
                for kind, n in plan:
                    if kind == 2:
                        out.append(list(flat[k:k + n]))
                        k += n
                    else:
                        out.append(flat[k])
                        k += 1
                return tuple(out)
        d = self._unpack_fields(data, base)
        return d[self.fields[0].name] if len(self.fields) == 1 else tuple(d.values())

    # -- bodies -----------------------------------------------------------------------------
    def encode(self, **values: Any) -> bytes:
        if not self.is_body:
            return self.pack_record(values)
        known = {f.name for f in self.fields} | {r.name for r in self.repeats}
        extra = set(values) - known
        if extra:
            raise CodecError(f"{self.name}: unknown field(s) {sorted(extra)}")
        groups: list[bytes] = []
        counts: dict[str, int] = {}
        for r in self.repeats:
            rec = self._rec(r)
            v = values.get(r.name, b"" if r.count is None else ())
            if isinstance(v, (bytes, bytearray, memoryview)):
                raw = bytes(v)
                if len(raw) % rec.fixed_size:
                    raise CodecError(f"{self.name}.{r.name}: {len(raw)} bytes is not whole {r.record} records")
            else:
                raw = b"".join(rec.pack_record(x) for x in v)
            n = len(raw) // rec.fixed_size
            if n > r.max:
                raise CodecError(f"{self.name}.{r.name}: {n} records > max {r.max}")
            if r.count is not None:
                given = values.get(r.count)
                if given is not None and int(given) != n:
                    raise CodecError(f"{self.name}.{r.count}={given} but {r.name} has {n} records")
                counts[r.count] = n
            groups.append(raw)
        out = bytearray()
        self._pack_fields({**values, **counts}, out)
        for g in groups:
            out += g
        return bytes(out)

    def decode(self, payload: bytes | memoryview) -> dict[str, Any]:
        """Lengths first: exactly the fixed part + the announced records, each count <= MAX."""
        data = memoryview(bytes(payload)) if not isinstance(payload, memoryview) else payload
        n = len(data)
        if n < self.fixed_size:
            raise CodecError(f"{self.name}: {n} bytes, the fixed part alone is {self.fixed_size}")
        if not self.is_body:
            if n != self.fixed_size:
                raise CodecError(f"{self.name}: record of {n} bytes, expected {self.fixed_size}")
            return self._unpack_fields(data, 0)
        out = self._unpack_fields(data, 0)
        off = self.fixed_size
        for r in self.repeats:
            rec = self._rec(r)
            rs = rec.fixed_size
            if r.count is None:
                if (n - off) % rs:
                    raise CodecError(f"{self.name}.{r.name}: {n - off} bytes is not whole {r.record} records")
                cnt = (n - off) // rs
            else:
                cnt = int(out[r.count])
            if cnt > r.max or cnt * rs > n - off:
                raise CodecError(f"{self.name}.{r.name}: {cnt} records (max {r.max}) in {n - off} bytes left")
            if r.count is None:
                out[r.name] = bytes(data[off:off + cnt * rs])
            else:
                out[r.name] = tuple(rec.unpack_record(data, off + i * rs) for i in range(cnt))
            off += cnt * rs
        if off != n:
            raise CodecError(f"{self.name}: {n - off} bytes beyond the announced records")
        return out


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
    structs: tuple[Struct, ...] = ()  # records and bodies, in table order
    summed: tuple[str, ...] = ()      # TFD_SUMMED: masked-vector words after the update

    @cached_property
    def structs_by_name(self) -> dict[str, Struct]:
        return {s.name: s for s in self.structs}

    def record(self, name: str) -> Struct:
        s = self.structs_by_name.get(name)
        if s is None or s.is_body:
            raise KeyError(f"no TFD_RECORD {name!r} in {self.source.name}")
        return s

    def body(self, name: str) -> Struct:
        s = self.structs_by_name.get(name)
        if s is None or not s.is_body:
            raise KeyError(f"no TFD_BODY {name!r} in {self.source.name}")
        return s

    def body_of(self, msg: str, direction: str) -> Struct:
        """The request (H2D) or reply (D2H) body of stage message ``msg``."""
        for s in self.structs:
            if s.msg == msg and s.direction == direction:
                return s
        raise KeyError(f"no {direction} body for {msg} in {self.source.name}")

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
        """TFD_MAX_WIRE_FRAME: a COBS-encoded frame plus its END_ZEROS delimiters."""
        return self.max_frame + self.max_frame // 254 + 1 + self.consts["END_ZEROS"]

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
        index = {s.name: i for i, s in enumerate(self.structs)}
        for s in self.structs:
            b += struct.pack(
                "<BBBBHB", int(s.is_body), self.msg(s.msg).id if s.msg else 0,
                DIRECTIONS[s.direction] if s.direction else 0, self.purpose(s.purpose).id if s.purpose else 0,
                s.fixed_size, len(s.fields),
            )
            for f in s.fields:
                b += struct.pack("<BHH", TYPES[f.type][0], f.count, f.offset)
            b.append(len(s.repeats))
            for r in s.repeats:
                cf = next((f for f in s.fields if f.name == r.count), None)
                b += struct.pack("<BHBI", index[r.record], cf.offset if cf else 0, cf.size if cf else 0, r.max)
        b.append(len(self.summed))
        return zlib.crc32(bytes(b))


# ---- parser ------------------------------------------------------------------------------------
_MACRO = re.compile(
    r"\bTFD_(WIRE_CONST|HEADER|CARRIES|BLOCK|PLANNED|MSG|FIELD|ARRAY|TAIL|END|PURPOSE"
    r"|RECORD|BODY|BFIELD|BARRAY|REPEAT|REST|BEND|SUMMED)\(([^()]*)\)"
)


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
    structs: list[Struct] = []
    summed: list[str] = []
    cur: dict[str, Any] | None = None
    scur: dict[str, Any] | None = None  # the open TFD_RECORD / TFD_BODY

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
        elif kind in ("RECORD", "BODY"):
            need(kind, args, 1 if kind == "RECORD" else 4)
            if cur is not None:
                raise WireDefError(f"TFD_{kind}({args[0]}) inside {cur['name']}: missing TFD_END")
            if scur is not None:
                raise WireDefError(f"TFD_{kind}({args[0]}) inside {scur['name']}: missing TFD_BEND")
            scur = {"name": args[0], "fields": [], "repeats": [], "body": kind == "BODY",
                    "msg": args[1] if kind == "BODY" else None, "dir": args[2] if kind == "BODY" else None,
                    "purpose": args[3] if kind == "BODY" else None}
        elif kind in ("BFIELD", "BARRAY"):
            need(kind, args, 3 if kind == "BFIELD" else 4)
            if scur is None or args[0] != scur["name"]:
                raise WireDefError(f"TFD_{kind}({', '.join(args)}) outside its TFD_RECORD / TFD_BODY")
            if scur["repeats"]:
                raise WireDefError(f"{scur['name']}.{args[2]}: scalars and arrays come before the repeated groups")
            typ = args[1]
            if typ not in TYPES:
                raise WireDefError(f"{scur['name']}.{args[2]}: unknown type {typ}")
            offset = sum(f.size for f in scur["fields"])
            if kind == "BFIELD":
                if typ == "CHAR":
                    raise WireDefError(f"{scur['name']}.{args[2]}: CHAR needs TFD_BARRAY")
                scur["fields"].append(Field(args[2], typ, 1, offset))
            else:
                scur["fields"].append(Field(args[2], typ, count_of(args[3]), offset, is_array=True))
        elif kind in ("REPEAT", "REST"):
            need(kind, args, 5 if kind == "REPEAT" else 4)
            if scur is None or args[0] != scur["name"] or not scur["body"]:
                raise WireDefError(f"TFD_{kind}({', '.join(args)}) outside a TFD_BODY")
            if scur["repeats"] and scur["repeats"][-1].count is None:
                raise WireDefError(f"{scur['name']}: a TFD_REST group must be the last")
            rec = next((x for x in structs if x.name == args[1] and not x.is_body), None)
            if rec is None:
                raise WireDefError(f"{scur['name']}.{args[2]}: {args[1]} is not an earlier TFD_RECORD")
            if kind == "REPEAT":
                cf = next((f for f in scur["fields"] if f.name == args[3]), None)
                if cf is None or cf.is_array or cf.type not in ("U8", "U16", "U32"):
                    raise WireDefError(f"{scur['name']}.{args[2]}: count {args[3]} is not an earlier U8/U16/U32 scalar")
                if any(r.count == args[3] for r in scur["repeats"]):
                    raise WireDefError(f"{scur['name']}: count {args[3]} used by two groups")
                mx = count_of(args[4])
                if mx >= 1 << (8 * cf.size):
                    raise WireDefError(f"{scur['name']}.{args[2]}: max {mx} does not fit {args[3]} ({cf.type})")
                scur["repeats"].append(Repeat(args[2], args[1], args[3], mx))
            else:
                scur["repeats"].append(Repeat(args[2], args[1], None, count_of(args[3])))
        elif kind == "BEND":
            need(kind, args, 1)
            if scur is None or args[0] != scur["name"]:
                raise WireDefError(f"TFD_BEND({args[0]}) without its TFD_RECORD / TFD_BODY")
            if not scur["fields"]:
                raise WireDefError(f"{scur['name']}: needs at least one field")
            structs.append(Struct(scur["name"], tuple(scur["fields"]), tuple(scur["repeats"]), scur["msg"],
                                  scur["dir"], scur["purpose"]))
            scur = None
        elif kind == "SUMMED":
            need(kind, args, 1)
            summed.append(args[0])
    if cur is not None:
        raise WireDefError(f"{cur['name']}: missing TFD_END")
    if scur is not None:
        raise WireDefError(f"{scur['name']}: missing TFD_BEND")

    table = WireTable(consts, tuple(header), classes, blocks, planned, tuple(messages), tuple(purposes), path,
                      tuple(structs), tuple(summed))
    for st_ in structs:  # a struct decodes its groups' records through the table
        object.__setattr__(st_, "table", table)
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
    snames: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for s in t.structs:
        if s.name in snames or s.name in t.by_name:
            raise WireDefError(f"{s.name}: name used twice")
        snames.add(s.name)
        names = [f.name for f in s.fields] + [r.name for r in s.repeats]
        if len(set(names)) != len(names):
            raise WireDefError(f"{s.name}: duplicate field names")
        if not s.is_body:
            continue
        if s.msg not in t.by_name:
            raise WireDefError(f"body {s.name}: {s.msg} is not a TFD_MSG")
        if s.direction not in ("H2D", "D2H"):
            raise WireDefError(f"body {s.name}: direction must be H2D or D2H")
        if (s.msg, s.direction) in pairs:
            raise WireDefError(f"body {s.name}: {s.msg} already has a {s.direction} body")
        pairs.add((s.msg, s.direction))
        try:
            p = t.purpose(s.purpose or "")
        except KeyError:
            raise WireDefError(f"body {s.name}: {s.purpose} is not a TFD_PURPOSE") from None
        if p.direction not in (s.direction, "BOTH"):
            raise WireDefError(f"body {s.name}: purpose {p.name} goes {p.direction}, the body {s.direction}")
        if not s.fields or s.fields[0].name != "round" or s.fields[0].type != "U32":
            raise WireDefError(f"body {s.name}: the first field must be U32 round")
        mx = s.max_size
        if mx is not None and "SA_BODY_MAX" in t.consts and mx > t.consts["SA_BODY_MAX"]:
            raise WireDefError(f"body {s.name}: up to {mx} bytes > SA_BODY_MAX")


WIRE: WireTable = parse_wire_def()
STATUS: dict[int, tuple[str, str]] = status_codes()
STATUS_BY_NAME: dict[str, int] = {name: code for code, (name, _) in STATUS.items()}

__all__ = [
    "WIRE", "STATUS", "STATUS_BY_NAME", "WireTable", "Message", "Field", "Purpose", "Struct", "Repeat",
    "parse_wire_def", "WireDefError", "CodecError", "TYPES",
]
