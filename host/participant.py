"""Participants: anything that takes the global parameters, trains on its
private shard and hands back an update -- a board over serial
(:class:`SerialParticipant`) or the same device C code running in this
process (:class:`InProcessParticipant`, ``tinyfed_host.inprocess``).  Both
speak the device protocol through a :class:`~tinyfed_host.protocol.DeviceClient`;
only the link differs, so the round engine, the strategies and the SecAgg+
server treat them alike.

The interface (:class:`Participant`)::

    open() -> ParticipantInfo                     HELLO (again after a failure: a rejoin)
    push_params(version, params, hash, persist)   MODEL_PARAMS transfer + PARAMS commit
    train(version, cfg, timeout) -> TrainResult   TRAIN (numbers only come back)
    fetch_update(version, encoding) -> Update     GET_UPDATE + MODEL_UPDATE (plain aggregation)
    secagg_endpoint(client_id, enc) -> Endpoint   the device as a SecAgg+ client (secure aggregation)
    traffic() -> Traffic                          bytes exchanged so far (payload and wire)
    close()

``version`` is the model version the parameters are (the protocol's ``round``
field): a device trains version v and its update is for version v.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from .fl_client import (CAP_PERSIST, CAP_SECURE_ONLY, CAP_TEST_MESSAGES, CAP_TRAINING, TrainConfig, TrainResult,
                        Update, fetch_update, send_params, train)
from .link import LinkError
from .protocol import ClientOptions, DeviceClient, DeviceError, DeviceInfo


@dataclass(frozen=True)
class ParticipantInfo:
    name: str
    board: str
    model_name: str
    model_hash: bytes
    shard_size: int
    training: bool
    persist: bool = False  # keeps committed parameters across resets (CAP_PERSIST)
    test_image: bool = False  # TEST-gated messages compiled in (CAP_TEST_MESSAGES): not for real data
    secure_only: bool = False  # no plain update path (CAP_SECURE_ONLY): secure aggregation only
    identity: "DeviceIdentityInfo | None" = None  # which fleet manifest entry it is (GET_IDENTITY); None: none

    @classmethod
    def from_device(cls, name: str, i: DeviceInfo) -> "ParticipantInfo":
        return cls(name, i.board, i.model_name, i.model_hash, i.shard_size, bool(i.caps & CAP_TRAINING),
                   bool(i.caps & CAP_PERSIST), bool(i.caps & CAP_TEST_MESSAGES), bool(i.caps & CAP_SECURE_ONLY))


@dataclass(frozen=True)
class DeviceIdentityInfo:
    """A device's answer to GET_IDENTITY (firmware/include/tfd/identity.h)."""

    status: int            # tfd_status_t of its identity record's check; 0: usable
    device_id: int         # its manifest id = its SecAgg+ client id
    public_key: bytes
    fleet_id: bytes
    manifest_version: int
    n_devices: int
    manifest_digest: bytes

    @classmethod
    def of(cls, manifest: Any, device_id: int, status: int = 0) -> "DeviceIdentityInfo":
        """What a device provisioned as ``device_id`` of ``manifest`` answers (in-process devices
        driven without the wire: tinyfed_host.direct)."""
        return cls(int(status), int(device_id), manifest.public_key(device_id), manifest.fleet_id,
                   manifest.version, len(manifest.entries), manifest.digest)

    @classmethod
    def from_reply(cls, r: dict[str, Any]) -> "DeviceIdentityInfo":
        return cls(int(r["status"]), int(r["device_id"]), bytes(r["public_key"]), bytes(r["fleet_id"]),
                   int(r["manifest_version"]), int(r["n_devices"]), bytes(r["manifest_digest"]))

    def as_fields(self) -> dict[str, Any]:
        """JSON-able fields (bytes in hex): what a gateway relays (host/flower)."""
        return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> "DeviceIdentityInfo":
        """The inverse of :meth:`as_fields`."""
        return cls.from_reply({k: (bytes.fromhex(v) if isinstance(v, str) else v) for k, v in f.items()})


@dataclass
class Traffic:
    """Bytes a participant exchanged: transfer payloads and everything on the wire."""

    payload_out: int = 0
    payload_in: int = 0
    wire_out: int = 0
    wire_in: int = 0

    def minus(self, other: "Traffic") -> "Traffic":
        return Traffic(self.payload_out - other.payload_out, self.payload_in - other.payload_in,
                       self.wire_out - other.wire_out, self.wire_in - other.wire_in)

    def plus(self, other: "Traffic") -> "Traffic":
        return Traffic(self.payload_out + other.payload_out, self.payload_in + other.payload_in,
                       self.wire_out + other.wire_out, self.wire_in + other.wire_in)


class Participant(Protocol):
    name: str

    def open(self) -> ParticipantInfo: ...
    def push_params(self, version: int, params: np.ndarray, model_hash: bytes, persist: bool) -> None: ...
    def train(self, version: int, cfg: TrainConfig, timeout: float) -> TrainResult: ...
    def fetch_update(self, version: int, encoding: int) -> Update: ...
    def secagg_endpoint(self, client_id: int, enc: Any, weight: int = 0, staleness: int = 0) -> Any: ...
    def traffic(self) -> Traffic: ...
    def close(self) -> None: ...


class DeviceParticipant:
    """A device reached through a :class:`DeviceClient` (subclasses say how to connect)."""

    def __init__(self, name: str, options: ClientOptions) -> None:
        self.name = name
        self.options = options
        self.dev: DeviceClient | None = None
        self.info: ParticipantInfo | None = None

    def _connect(self) -> DeviceClient:
        raise NotImplementedError

    def _client(self) -> DeviceClient:
        if self.dev is None:
            raise LinkError(f"{self.name}: not connected")
        return self.dev

    def open(self) -> ParticipantInfo:
        if self.dev is None:
            self.dev = self._connect()
            i = self.dev.hello()
        else:
            # rejoin after a failure: drop stale replies, one quick try
            self.dev.link.drain(limit=0.5)
            self.dev.options = dataclasses.replace(self.options, retries=1)
            try:
                i = self.dev.hello()
            finally:
                self.dev.options = self.options
        info = ParticipantInfo.from_device(self.name, i)
        self.info = dataclasses.replace(info, identity=self._identity()) if info.training else info
        return self.info

    def _identity(self) -> DeviceIdentityInfo | None:
        """GET_IDENTITY; None if the firmware does not know the message."""
        try:
            r = self._client().request("GET_IDENTITY", expect=("IDENTITY",), nonce=0x1D)
        except DeviceError:
            return None
        return DeviceIdentityInfo.from_reply(r)

    def push_params(self, version: int, params: np.ndarray, model_hash: bytes, persist: bool) -> None:
        send_params(self._client(), version, params, model_hash, persist=persist)

    def train(self, version: int, cfg: TrainConfig, timeout: float) -> TrainResult:
        return train(self._client(), version, cfg, timeout=timeout)

    def fetch_update(self, version: int, encoding: int) -> Update:
        return fetch_update(self._client(), version, encoding=encoding, device=self.name)

    def secagg_endpoint(self, client_id: int, enc: Any, weight: int = 0, staleness: int = 0) -> Any:
        """This device as SecAgg+ client ``client_id`` (tinyfed_host.secagg.serial), invited with its
        public weight (0: its samples) and staleness."""
        from .secagg.serial import SerialEndpoint

        return SerialEndpoint(client_id, self._client(), enc, weight, staleness)

    def traffic(self) -> Traffic:
        if self.dev is None:
            return Traffic()
        c, link = self.dev.counters, self.dev.link.counters
        return Traffic(c.payload_out, c.payload_in, link.bytes_out, link.bytes_in)

    def close(self) -> None:
        if self.dev is not None:
            self.dev.close()
            self.dev = None


class SerialParticipant(DeviceParticipant):
    """A board on a serial URL (``socket://…`` for QEMU, ``/dev/ttyACM0`` for a real one)."""

    def __init__(self, url: str, options: ClientOptions | None = None, name: str | None = None) -> None:
        super().__init__(name or url, options or ClientOptions(timeout=2.0, retries=6))
        self.url = url

    def _connect(self) -> DeviceClient:
        return DeviceClient.connect(self.url, self.options)

    def secagg_endpoint(self, client_id: int, enc: Any, weight: int = 0, staleness: int = 0) -> Any:
        ep = super().secagg_endpoint(client_id, enc, weight, staleness)
        ep.batch = exchange_in_parallel  # every board on its own link: a stage's requests run at once
        return ep


def exchange_in_parallel(stage: str, calls: Sequence[tuple[Any, bytes]]) -> list[Any]:
    """One SecAgg+ stage's requests to boards on separate links, all at once (one thread each):
    a stage then takes as long as its slowest board, not the sum of all (the server's ``batch``
    hook, tinyfed_host.secagg.server).  A reply, or the exception that made that board drop out."""
    def one(ep: Any, payload: bytes) -> Any:
        try:
            return ep.exchange(stage, payload)
        except Exception as e:  # noqa: BLE001 - any failure = that client dropped out (the server's rule)
            return e

    if len(calls) <= 1:
        return [one(ep, payload) for ep, payload in calls]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda c: one(*c), calls))


class _DyingEndpoint:
    """A SecAgg+ endpoint whose device loses power before / after one stage (dropout tests)."""

    def __init__(self, inner: Any, device: Any, die_before: str | None, die_after: str | None) -> None:
        self.inner = inner
        self.id = inner.id
        self.device = device
        self.die_before, self.die_after = die_before, die_after

    def exchange(self, message: str, payload: bytes) -> bytes:
        if message == self.die_before:
            self.device.power_off()
        reply: bytes = self.inner.exchange(message, payload)
        if message == self.die_after:
            self.device.power_off()
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class InProcessParticipant(DeviceParticipant):
    """An in-process device (``tinyfed_host.inprocess.InProcessDevice``): a board's C code and RAM
    in this process, reached over a memory link.  ``secagg_die_before`` / ``secagg_die_after``
    name a SecAgg+ stage at which the device loses power in every secure aggregation it joins
    (dropout tests); a switched-off device rejoins after ``device.power_on()``."""

    def __init__(self, device: Any, options: ClientOptions | None = None, *,
                 secagg_die_before: str | None = None, secagg_die_after: str | None = None) -> None:
        super().__init__(device.name, options or ClientOptions(timeout=0.05, retries=2))
        self.device = device
        self._die = (secagg_die_before, secagg_die_after)

    @property
    def manifest(self) -> Any:
        """The fleet manifest its device was provisioned in (InProcessDevice.set_identity), or None."""
        return self.device.manifest

    def _connect(self) -> DeviceClient:
        return DeviceClient(self.device.link(self.options.timeout), self.options)

    def secagg_endpoint(self, client_id: int, enc: Any, weight: int = 0, staleness: int = 0) -> Any:
        ep = super().secagg_endpoint(client_id, enc, weight, staleness)
        if self._die == (None, None):
            return ep
        return _DyingEndpoint(ep, self.device, *self._die)


__all__ = ["DeviceIdentityInfo", "DeviceParticipant", "InProcessParticipant", "Participant", "ParticipantInfo",
           "SerialParticipant", "Traffic", "exchange_in_parallel"]
