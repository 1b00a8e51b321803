"""The relay between tinyfed's Flower ServerApp and its gateways: what one
Flower message asks a gateway to do with its boards, and what comes back.

One message goes to a gateway (a Flower node) per step, carrying an ordered
list of **operations**, each addressed to one of the gateway's boards by its
device key (the serial URL the gateway opened).  The gateway runs each
board's operations in order, the boards in parallel, and answers every
operation with an :class:`OpResult`.  So the federation addresses each board
individually (its own participant, its own dropouts) while paying Flower's
per-message cost once per gateway and step.

Operations (``Op.kind``) mirror the device protocol; the gateway runs them
over the board's serial link with tinyfed's :class:`~tinyfed_host.protocol.DeviceClient`:

=========  ===================================  ==============================================
kind       args                                 result
=========  ===================================  ==============================================
HELLO      {}                                   fields: the board's ParticipantInfo
PARAMS     version, persist, model_hash (hex),  {} (``params[index]`` committed on the board)
           index
TRAIN      version, timeout, cfg (TrainConfig)  fields: TrainResult
UPDATE     version, encoding                    fields: n_params, weight, norm, clip;
                                                data: the encoded update (plain runs only)
SECAGG     stage, client_id, clip, frac_bits,   data: the device's reply body
           weight_max, dp_z_milli, weight,
           staleness;
           data: the request body
=========  ===================================  ==============================================

A SecAgg+ body is opaque here: it is the device's own (wire.def) request or
reply, masked or sealed end to end between the board and the server, so the
gateway relays bytes it cannot read.  The global parameters travel once per
message (``RelayRequest.params``), not once per board.

Encoding: a message's content is a single Flower ``ConfigRecord`` named
``tinyfed`` whose values are ints, strings, bytes and lists of them
(:meth:`RelayRequest.to_fields` / :meth:`from_fields`); small structured
arguments are JSON text.  Between the ClientApp process and the gateway the
same field dictionary travels over a Unix socket as a length-prefixed
type-tagged encoding (:func:`pack_fields` / :func:`unpack_fields`).  Every
decoder checks types and sizes: a malformed message is refused with
:class:`RelayError`, never half-applied.

This module imports neither Flower nor the device code: the ClientApp
process, which starts per message, loads it quickly.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from tinyfed_toolchain.facts.errors import InputError

#: version of this relay; a gateway refuses a request of another version
RELAY_VERSION = 1
#: the Flower message type of every relay message
MESSAGE_TYPE = "query.tinyfed"
#: the name of the ConfigRecord holding a relay message in a Flower RecordDict
RECORD = "tinyfed"
#: node-config keys a gateway gives its SuperNode (read by the ClientApp)
NODE_SOCKET_KEY = "tinyfed-gateway-socket"
NODE_NAME_KEY = "tinyfed-gateway-name"

OPS = ("HELLO", "PARAMS", "TRAIN", "UPDATE", "SECAGG")
#: what kind of failure an operation met (the ServerApp maps each back to the
#: exception a board over serial raises, so the round engine treats both alike)
FAILURES = ("timeout", "lost", "device", "protocol", "gateway")
SECAGG_STAGES = ("ADVERTISE_KEYS", "SHARE_KEYS", "MASKED_INPUT", "SURVIVORS", "UNMASK")

#: largest packed message accepted (a relay step with 100k parameters for 64 boards is ~30 MB)
MAX_PACKED = 256 << 20

Value = Union[int, float, str, bytes, bool, list[int], list[float], list[str], list[bytes], list[bool]]


class RelayError(InputError):
    """A relay message is malformed (wrong version, types, sizes)."""


# ---- the operations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """One operation for one board of a gateway."""

    device: str
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    data: bytes = b""

    def __post_init__(self) -> None:
        if self.kind not in OPS:
            raise RelayError(f"unknown operation {self.kind!r}")
        if not self.device:
            raise RelayError("an operation needs a device key")


@dataclass(frozen=True)
class RelayRequest:
    """One message from the ServerApp to one gateway."""

    seq: int
    ops: tuple[Op, ...] = ()
    params: tuple[bytes, ...] = ()  # ENC_F32 parameter vectors the PARAMS operations refer to (by index)
    inventory: bool = False  # also list the gateway's boards (RelayReply.devices)

    def to_fields(self) -> dict[str, Value]:
        return {"v": RELAY_VERSION, "seq": int(self.seq), "inventory": bool(self.inventory),
                "params": [bytes(p) for p in self.params],
                "device": [o.device for o in self.ops], "op": [o.kind for o in self.ops],
                "args": [json.dumps(o.args, separators=(",", ":")) for o in self.ops],
                "data": [bytes(o.data) for o in self.ops]}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> "RelayRequest":
        _check_version(f)
        seq = _get(f, "seq", int)
        devices = _list(f, "device", str)
        kinds = _list(f, "op", str)
        args = _list(f, "args", str)
        data = _list(f, "data", bytes)
        if not len(devices) == len(kinds) == len(args) == len(data):
            raise RelayError("operation lists of different lengths")
        ops = tuple(Op(d, k, _json_obj(a), b) for d, k, a, b in zip(devices, kinds, args, data))
        return cls(seq, ops, tuple(_list(f, "params", bytes)), bool(_get(f, "inventory", (bool, int))))


@dataclass(frozen=True)
class OpResult:
    """What one operation gave.  ``failure`` is empty on success, else one of FAILURES."""

    device: str
    failure: str = ""
    error: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    data: bytes = b""
    traffic: tuple[int, int, int, int] = (0, 0, 0, 0)  # the board's link, cumulative: payload out/in, wire out/in

    @property
    def ok(self) -> bool:
        return not self.failure


@dataclass(frozen=True)
class DeviceEntry:
    """A board a gateway owns, as its inventory lists it."""

    device: str
    online: bool
    info: dict[str, Any] = field(default_factory=dict)  # ParticipantInfo fields (model_hash hex)
    error: str = ""
    name: str = ""  # participant name the gateway proposes (default: <gateway>/<device>)


@dataclass(frozen=True)
class RelayReply:
    """A gateway's answer: one result per operation, in order (and its boards if asked)."""

    seq: int
    gateway: str
    results: tuple[OpResult, ...] = ()
    devices: tuple[DeviceEntry, ...] = ()

    def to_fields(self) -> dict[str, Value]:
        r = self.results
        return {"v": RELAY_VERSION, "seq": int(self.seq), "gateway": self.gateway,
                "device": [x.device for x in r], "failure": [x.failure for x in r],
                "error": [x.error for x in r],
                "fields": [json.dumps(x.fields, separators=(",", ":")) for x in r],
                "data": [bytes(x.data) for x in r],
                "traffic": [int(v) for x in r for v in x.traffic],
                "inv": [json.dumps({"device": d.device, "online": d.online, "info": d.info, "error": d.error,
                                    "name": d.name}, separators=(",", ":")) for d in self.devices]}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> "RelayReply":
        _check_version(f)
        devices = _list(f, "device", str)
        failures = _list(f, "failure", str)
        errors = _list(f, "error", str)
        fields_ = _list(f, "fields", str)
        data = _list(f, "data", bytes)
        traffic = _list(f, "traffic", int)
        n = len(devices)
        if not (len(failures) == len(errors) == len(fields_) == len(data) == n and len(traffic) == 4 * n):
            raise RelayError("result lists of different lengths")
        if any(x and x not in FAILURES for x in failures):
            raise RelayError("unknown failure kind")
        results = tuple(OpResult(devices[i], failures[i], errors[i], _json_obj(fields_[i]), data[i],
                                 (traffic[4 * i], traffic[4 * i + 1], traffic[4 * i + 2], traffic[4 * i + 3]))
                        for i in range(n))
        inv = []
        for s in _list(f, "inv", str):
            d = _json_obj(s)
            if not isinstance(d.get("device"), str) or not isinstance(d.get("info", {}), dict):
                raise RelayError("bad inventory entry")
            inv.append(DeviceEntry(d["device"], bool(d.get("online")), dict(d.get("info") or {}),
                                   str(d.get("error", "")), str(d.get("name", ""))))
        return cls(_get(f, "seq", int), _get(f, "gateway", str), results, tuple(inv))


def _check_version(f: Mapping[str, Any]) -> None:
    v = f.get("v")
    if v != RELAY_VERSION:
        raise RelayError(f"relay version {v!r}, this side speaks {RELAY_VERSION} (update tinyfed on both sides)")


def _get(f: Mapping[str, Any], key: str, typ: type | tuple[type, ...]) -> Any:
    if key not in f:
        raise RelayError(f"missing field {key!r}")
    v = f[key]
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise RelayError(f"field {key!r} has type {type(v).__name__}")
    return v


def _list(f: Mapping[str, Any], key: str, typ: type) -> list[Any]:
    v = f.get(key, [])
    if not isinstance(v, list) or any(not isinstance(x, typ) or (typ is int and isinstance(x, bool)) for x in v):
        raise RelayError(f"field {key!r} must be a list of {typ.__name__}")
    return v


def _json_obj(s: str) -> dict[str, Any]:
    try:
        d = json.loads(s) if s else {}
    except json.JSONDecodeError as e:
        raise RelayError(f"bad JSON argument: {e}") from None
    if not isinstance(d, dict):
        raise RelayError("a JSON argument must be an object")
    return d


# ---- packing a field dictionary (ClientApp <-> gateway socket) -----------------------------------
_T_INT, _T_FLOAT, _T_STR, _T_BYTES, _T_BOOL, _T_LIST = 1, 2, 3, 4, 5, 6
_U32 = struct.Struct("<I")


def pack_fields(fields: Mapping[str, Value]) -> bytes:
    """A field dictionary as bytes: u32 count, then per field: u32-prefixed UTF-8 key and
    a tagged value (ints as i64, floats as f64, text and bytes u32-prefixed, lists as
    u32 count + tagged items)."""
    out = bytearray(_U32.pack(len(fields)))
    for k, v in fields.items():
        kb = k.encode()
        out += _U32.pack(len(kb)) + kb
        _pack_value(out, v, top=True)
    return bytes(out)


def _pack_value(out: bytearray, v: Any, top: bool) -> None:
    if isinstance(v, bool):
        out += bytes([_T_BOOL, int(v)])
    elif isinstance(v, int):
        out += bytes([_T_INT]) + struct.pack("<q", v)
    elif isinstance(v, float):
        out += bytes([_T_FLOAT]) + struct.pack("<d", v)
    elif isinstance(v, str):
        b = v.encode()
        out += bytes([_T_STR]) + _U32.pack(len(b)) + b
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        out += bytes([_T_BYTES]) + _U32.pack(len(b)) + b
    elif isinstance(v, (list, tuple)) and top:
        out += bytes([_T_LIST]) + _U32.pack(len(v))
        for x in v:
            _pack_value(out, x, top=False)
    else:
        raise RelayError(f"cannot pack a {type(v).__name__}")


def unpack_fields(buf: bytes) -> dict[str, Value]:
    """Inverse of :func:`pack_fields`; :class:`RelayError` on anything malformed."""
    if len(buf) > MAX_PACKED:
        raise RelayError(f"packed message of {len(buf)} bytes exceeds {MAX_PACKED}")
    mv = memoryview(buf)
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if n < 0 or pos + n > len(mv):
            raise RelayError("truncated message")
        s = mv[pos:pos + n]
        pos += n
        return s

    def u32() -> int:
        return int(_U32.unpack(take(4))[0])

    def value(top: bool) -> Any:
        tag = take(1)[0]
        if tag == _T_BOOL:
            b = take(1)[0]
            if b > 1:
                raise RelayError("bad bool")
            return bool(b)
        if tag == _T_INT:
            return int(struct.unpack("<q", take(8))[0])
        if tag == _T_FLOAT:
            return float(struct.unpack("<d", take(8))[0])
        if tag == _T_STR:
            try:
                return bytes(take(u32())).decode()
            except UnicodeDecodeError:
                raise RelayError("text is not UTF-8") from None
        if tag == _T_BYTES:
            return bytes(take(u32()))
        if tag == _T_LIST and top:
            n = u32()
            if n > len(mv) - pos:
                raise RelayError("list longer than the message")
            return [value(False) for _ in range(n)]
        raise RelayError(f"unknown value tag {tag}")

    out: dict[str, Value] = {}
    for _ in range(u32()):
        try:
            key = bytes(take(u32())).decode()
        except UnicodeDecodeError:
            raise RelayError("key is not UTF-8") from None
        out[key] = value(True)
    if pos != len(mv):
        raise RelayError(f"{len(mv) - pos} trailing bytes")
    return out


def failure_kind(exc: BaseException) -> str:
    """The FAILURES kind of an exception a board operation raised (gateway side)."""
    from ..link import LinkError, LinkTimeout  # the device stack is loaded in the gateway anyway
    from ..protocol import DeviceError, ProtocolError

    if isinstance(exc, (LinkTimeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, DeviceError):
        return "device"
    if isinstance(exc, (LinkError, OSError, EOFError)):
        return "lost"
    if isinstance(exc, ProtocolError):
        return "protocol"
    return "gateway"


__all__ = ["DeviceEntry", "FAILURES", "MESSAGE_TYPE", "NODE_NAME_KEY", "NODE_SOCKET_KEY", "OPS", "Op", "OpResult",
           "RECORD", "RELAY_VERSION", "RelayError", "RelayReply", "RelayRequest", "SECAGG_STAGES", "failure_kind",
           "pack_fields", "unpack_fields"]
