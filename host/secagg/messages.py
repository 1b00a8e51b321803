"""The SecAgg+ stage bodies as Python objects, decoded from the one wire table.

The bodies of ADVERTISE_KEYS (0x50), SHARE_KEYS (0x51), MASKED_INPUT (0x52)
and UNMASK (0x53) are described in ``firmware/include/tfd/wire.def``
(``TFD_BODY`` / ``TFD_RECORD`` lines: a fixed part, then repeated fixed-size
records); the device decodes them from the same table
(``firmware/src/secagg/protocol.c``).  This module builds one frozen dataclass
per body and one named tuple per record from that table, so a field added
there is a field here, with no code change:

=================  ===========================================  =================================
message            request body (SA_REQUEST, KEYS)              reply body
=================  ===========================================  =================================
ADVERTISE_KEYS     own id, threshold, neighbour ids             2 X25519 public keys, signed (SA_REPLY)
SHARE_KEYS         neighbours' signed public keys               sealed shares, ciphertext (SA_REPLY, KEYS)
MASKED_INPUT       sealed shares addressed to the device        masked vector (SA_MASKED, UPDATE)
SURVIVORS          the survivor set (bitmap over the manifest)  its signature of the set (SA_REPLY, KEYS)
UNMASK             the others' signatures of the set            Shamir shares (SA_REPLY, KEYS)
=================  ===========================================  =================================

A body class takes its fields in table order, without the count fields
(they are the lengths of their groups): ``AdvertiseRequest(round, self_id,
threshold, neighbours)``.  A group is a tuple of records -- a named tuple
(``PeerKeys``, ``SealedOut``, ``SealedIn``, ``Share``) or, for a one-field
record (``SA_ID``), the bare value; a TFD_REST group (the masked words) is
bytes.  ``pack()`` / ``unpack()`` go through the table codec
(:class:`tinyfed_toolchain.facts.wire_table.Struct`); a body that does not decode raises
:class:`MessageError`.

None carries samples or an unmasked update: the only vector is the masked
one (uniform in Z_2^32 to anyone without the masks).
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from typing import Any

from tinyfed_toolchain.facts.errors import DeviceFailure
from tinyfed_toolchain.facts.wire_table import WIRE, CodecError, Struct

KEY = WIRE.const("SA_KEY_LEN")
NONCE = WIRE.const("SA_NONCE_LEN")
SEALED = WIRE.const("SA_SEALED_LEN")
SHARE = WIRE.const("SA_SHARE_LEN")
SHARE_PLAIN = 2 * SHARE  # b-share || s-share
KIND_B, KIND_S = WIRE.const("SA_KIND_B"), WIRE.const("SA_KIND_S")
#: the scalars summed with the update, in masked-vector order after its n words (TFD_SUMMED)
SUMMED: tuple[str, ...] = WIRE.summed
STAGES = ("ADVERTISE_KEYS", "SHARE_KEYS", "MASKED_INPUT", "SURVIVORS", "UNMASK")
SIG = WIRE.const("SA_SIG_LEN")

_WHAT = {"ADVERTISE_KEYS": "public keys", "SHARE_KEYS": "ciphertext shares",
         "MASKED_INPUT": "masked vector", "SURVIVORS": "signature", "UNMASK": "shares"}
#: message -> (request transfer purpose, reply transfer purpose, what the reply carries), from the table
CARRIES: dict[str, tuple[str, str, str]] = {
    m: (str(WIRE.body_of(m, "H2D").purpose), str(WIRE.body_of(m, "D2H").purpose), _WHAT[m]) for m in STAGES
}


class MessageError(DeviceFailure, CodecError):
    """A body that does not decode (length, count, field value)."""


def _camel(name: str) -> str:
    parts = name.removeprefix("SA_").split("_")
    words = {"REQ": "Request", "REPLY": "Reply"}
    return "".join(words.get(p, p.capitalize()) for p in parts)


def _record_type(rec: Struct) -> Any:
    """A named tuple of the record's fields, or None for a one-field record (bare values)."""
    if len(rec.fields) == 1:
        return None
    return namedtuple(_camel(rec.name), [f.name for f in rec.fields])  # type: ignore[misc]


RECORDS: dict[str, Any] = {s.name: _record_type(s) for s in WIRE.structs if not s.is_body}


def _body_class(body: Struct) -> type:
    counts = body.count_fields
    specs: list[tuple[str, Any, Any]] = []
    for f in body.fields:
        if f.name in counts:
            continue
        default = (b"" if f.type in ("U8", "I8") else "") if f.is_array else 0
        specs.append((f.name, Any, dataclasses.field(default=default)))
    for r in body.repeats:
        specs.append((r.name, Any, dataclasses.field(default=b"" if r.count is None else ())))

    def pack(self: Any) -> bytes:
        values = {name: getattr(self, name) for name, _, _ in specs}
        try:
            return body.encode(**values)
        except CodecError as e:
            raise MessageError(str(e)) from None

    def unpack(cls: type, data: bytes) -> Any:
        try:
            d = body.decode(data)
        except CodecError as e:
            raise MessageError(str(e)) from None
        for r in body.repeats:
            rt = RECORDS[r.record]
            if rt is not None and r.count is not None:
                d[r.name] = tuple(rt(*x) for x in d[r.name])
        return cls(**{k: v for k, v in d.items() if k not in counts})

    return dataclasses.make_dataclass(
        _camel(body.name), specs, frozen=True,
        namespace={"BODY": body.name, "pack": pack, "unpack": classmethod(unpack),
                   "__doc__": f"Body {body.name} of wire.def ({body.msg}, {body.direction})."},
    )


BODIES: dict[str, type] = {s.name: _body_class(s) for s in WIRE.structs if s.is_body}

AdvertiseRequest: Any = BODIES["SA_ADVERTISE_REQ"]
AdvertiseReply: Any = BODIES["SA_ADVERTISE_REPLY"]
ShareKeysRequest: Any = BODIES["SA_SHARE_KEYS_REQ"]
ShareKeysReply: Any = BODIES["SA_SHARE_KEYS_REPLY"]
MaskedInputRequest: Any = BODIES["SA_MASKED_INPUT_REQ"]
MaskedInputReply: Any = BODIES["SA_MASKED_INPUT_REPLY"]
SurvivorsRequest: Any = BODIES["SA_SURVIVORS_REQ"]
SurvivorsReply: Any = BODIES["SA_SURVIVORS_REPLY"]
UnmaskRequest: Any = BODIES["SA_UNMASK_REQ"]
UnmaskReply: Any = BODIES["SA_UNMASK_REPLY"]

PeerKeys: Any = RECORDS["SA_PEER_KEYS"]    # (id, share_pk, mask_pk, n_nb, nb (zero-padded), sig)
Signature: Any = RECORDS["SA_SIGNATURE"]   # (signer, sig): in an UNMASK request
SealedOut: Any = RECORDS["SA_SEALED_OUT"]  # (receiver, nonce, sealed): in a SHARE_KEYS reply
SealedIn: Any = RECORDS["SA_SEALED_IN"]    # (sender, receiver, nonce, sealed): in a MASKED_INPUT request
Share: Any = RECORDS["SA_SHARE"]           # (owner, kind, share): in an UNMASK reply


def peer_keys(device_id: int, share_pk: bytes, mask_pk: bytes, neighbourhood: Any, sig: bytes) -> Any:
    """A SHARE_KEYS record: a neighbour's keys with its neighbourhood (zero-padded) and signature."""
    nb = list(neighbourhood)
    cap = WIRE.const("SA_MAX_NEIGHBOURS")
    if len(nb) > cap:
        raise MessageError(f"a neighbourhood of {len(nb)} > SA_MAX_NEIGHBOURS {cap}")
    return PeerKeys(device_id, share_pk, mask_pk, len(nb), nb + [0] * (cap - len(nb)), sig)


def request_body(message: str) -> Struct:
    """The table's request body of a stage message."""
    return WIRE.body_of(message, "H2D")


def reply_body(message: str) -> Struct:
    """The table's reply body of a stage message."""
    return WIRE.body_of(message, "D2H")


def body_round(message: str, payload: bytes, direction: str = "H2D") -> int:
    """The ``round`` of a body (its first field), after checking the whole body decodes."""
    try:
        return int(WIRE.body_of(message, direction).decode(payload)["round"])
    except CodecError as e:
        raise MessageError(str(e)) from None


__all__ = ["AdvertiseReply", "AdvertiseRequest", "BODIES", "CARRIES", "KEY", "KIND_B", "KIND_S", "MaskedInputReply",
           "MaskedInputRequest", "MessageError", "NONCE", "PeerKeys", "RECORDS", "SEALED", "SHARE", "SHARE_PLAIN",
           "SIG", "STAGES", "SUMMED", "SealedIn", "SealedOut", "Share", "ShareKeysReply", "ShareKeysRequest",
           "Signature", "SurvivorsReply", "SurvivorsRequest", "UnmaskReply", "UnmaskRequest", "body_round",
           "peer_keys", "reply_body", "request_body"]
