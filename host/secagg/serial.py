"""A device over the serial protocol as a SecAgg+ endpoint
(:class:`~tinyfed_host.secagg.server.SecAggServer`): each stage is

    SA_REQUEST transfer (the body) -> stage message (round, length, CRC) -> ACK
    (value = reply length) -> SA_REPLY / SA_MASKED transfer (the reply body)

(wire.def, "secure aggregation").  The device masks the update of the round
it last trained (TRAINED), so a round is PARAMS, TRAIN, then these stages.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..protocol import DeviceClient, ProtocolError
from .encoding import Encoding


class SerialEndpoint:
    """SecAgg+ client ``client_id`` reached through ``dev``; bytes per stage are counted by the server."""

    def __init__(self, client_id: int, dev: DeviceClient, enc: Encoding) -> None:
        self.id = client_id
        self.dev = dev
        self.enc = enc

    def exchange(self, message: str, payload: bytes) -> bytes:
        if len(payload) < 4:
            raise ProtocolError("a SecAgg body starts with its round")
        round_id = struct.unpack_from("<I", payload)[0]
        self.dev.send_payload("SA_REQUEST", payload)
        extra = {}
        if message == "ADVERTISE_KEYS":
            extra = {"clip": self.enc.clip32, "frac_bits": self.enc.frac_bits, "weight_max": self.enc.weight_max}
        r = self.dev.request(message, expect=("ACK",), round=round_id, body_len=len(payload),
                             crc32=zlib.crc32(payload), **extra)
        n = int(r["value"])
        data = self.dev.receive_payload("SA_MASKED" if message == "MASKED_INPUT" else "SA_REPLY", round_id)
        if len(data) != n:
            raise ProtocolError(f"{message}: reply of {len(data)} bytes, ACK announced {n}")
        return data

    def encoded(self, round_id: int) -> np.ndarray:
        """TEST IMAGES ONLY: this round's encoded words before masking (transfer SA_ENCODED,
        between MASKED_INPUT and UNMASK); a release image refuses the transfer."""
        data = self.dev.receive_payload("SA_ENCODED", round_id)
        if len(data) < 4 or len(data) % 4 or struct.unpack_from("<I", data)[0] != round_id:
            raise ProtocolError(f"SA_ENCODED: {len(data)} bytes, not u32 round {round_id} || words")
        return np.frombuffer(data, dtype="<u4", offset=4).astype(np.uint32)


__all__ = ["SerialEndpoint"]
