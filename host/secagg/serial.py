"""A device over the serial protocol as a SecAgg+ endpoint
(:class:`~tinyfed_host.secagg.server.SecAggServer`): each stage is

    SA_REQUEST transfer (the body) -> stage message (round, length, CRC) -> ACK
    (value = reply length) -> SA_REPLY / SA_MASKED transfer (the reply body)

(wire.def, "secure aggregation").  The device masks the update of the round
it last trained (TRAINED), so a round is PARAMS, TRAIN, then these stages.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..protocol import DeviceClient, ProtocolError
from . import messages as M
from .encoding import Encoding


class SerialEndpoint:
    """SecAgg+ client ``client_id`` reached through ``dev``; bytes per stage are counted by the server."""

    def __init__(self, client_id: int, dev: DeviceClient, enc: Encoding, weight: int = 0, staleness: int = 0) -> None:
        """``weight``: the device's public weight for this cohort (ADVERTISE_KEYS.weight, units of
        1/SA_WEIGHT_ONE sample; 0: its samples), ``staleness``: the versions its update is behind."""
        self.id = client_id
        self.dev = dev
        self.enc = enc
        self.weight = int(weight)
        self.staleness = int(staleness)

    def exchange(self, message: str, payload: bytes) -> bytes:
        try:
            round_id = M.body_round(message, payload)
        except M.MessageError as e:
            raise ProtocolError(f"{message}: request body does not decode: {e}") from None
        self.dev.send_payload(M.request_body(message).purpose or "SA_REQUEST", payload)
        extra = {}
        if message == "ADVERTISE_KEYS":
            extra = {"clip": self.enc.clip32, "frac_bits": self.enc.frac_bits, "weight_max": self.enc.weight_max, "dp_z_milli": self.enc.dp_z_milli,
                     "weight": self.weight, "staleness": min(self.staleness, 0xFFFF)}
        r = self.dev.request(message, expect=("ACK",), round=round_id, body_len=len(payload),
                             crc32=zlib.crc32(payload), **extra)
        n = int(r["value"])
        data = self.dev.receive_payload(M.reply_body(message).purpose or "SA_REPLY", round_id)
        if len(data) != n:
            raise ProtocolError(f"{message}: reply of {len(data)} bytes, ACK announced {n}")
        return data

    def encoded(self, round_id: int) -> np.ndarray:
        """TEST IMAGES ONLY: this round's encoded words before masking (transfer SA_ENCODED,
        between MASKED_INPUT and UNMASK); a release image refuses the transfer."""
        data = self.dev.receive_payload("SA_ENCODED", round_id)
        try:  # the layout of the masked-input reply (round || words), before masking
            body = M.MaskedInputReply.unpack(data)
        except M.MessageError as e:
            raise ProtocolError(f"SA_ENCODED: {e}") from None
        if body.round != round_id:
            raise ProtocolError(f"SA_ENCODED: round {body.round}, expected {round_id}")
        return np.frombuffer(body.words, dtype="<u4").astype(np.uint32)


__all__ = ["SerialEndpoint"]
