"""The built-in simulation's fast path: many in-process devices (``tinyfed_host.inprocess``)
driven without the wire.

An in-process device behind a :class:`~tinyfed_host.inprocess.MemoryLink` receives
real frames: COBS, CRC, chunked transfers -- in Python on the host side, which costs
far more than the device's own work once there are thousands of devices.  Here the
host makes the calls the device's protocol layer would make for those frames
(``firmware/native/fl_batch.c``: MODEL_PARAMS + PARAMS, TRAIN, GET_UPDATE +
MODEL_UPDATE, the SecAgg+ stages, on the same ``tfd_fl_*`` callbacks): the device
computes exactly what it computes behind its UART, bit for bit, and the host skips
the framing.  A SecAgg+ stage runs for all devices in one call, on every core
(``fb_secagg_many``, POSIX threads): the endpoints share a ``batch``, so the SecAgg+
server hands a stage's requests over at once.

Traffic: payload bytes are the transfers' own; wire bytes are what the same
exchanges take on a clean link by the framing's size formula
(:func:`~tinyfed_host.framing.wire_size`, an upper bound within 0.5 % of the
bytes a board's link carries: tests/test_direct.py), which the virtual clock turns
into link time.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import OptionsError
from tinyfed_toolchain.facts.train_config import TrainConfig
from tinyfed_toolchain.facts.wire_table import WIRE
from tinyfed_toolchain.image.provision import Fleet

from .fl_client import ENC_F32, TrainResult, Update, decode_f32
from .framing import wire_size
from .inprocess import DeviceLibrary, InProcessDevice, provision
from .link import LinkError
from .participant import DeviceIdentityInfo, ParticipantInfo, Traffic
from .progress import Progress
from .protocol import DeviceError

_u8, _u16, _u32, _f32, _vp = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_float, ctypes.c_void_p
STAGE_IDS = {s: WIRE.msg(s).id for s in ("ADVERTISE_KEYS", "SHARE_KEYS", "MASKED_INPUT", "SURVIVORS", "UNMASK")}
SA_BODY_MAX = WIRE.const("SA_BODY_MAX")
HASH_LEN = WIRE.const("HASH_LEN")
CHUNK = WIRE.const("CHUNK_MAX")


def _bind(lib: DeviceLibrary) -> ctypes.CDLL:
    """The library's fb_* functions (firmware/native/fl_batch.c), typed once."""
    c = lib.lib
    if getattr(c, "_fb_bound", False):
        return c
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "fb_model_hash": (ctypes.c_int, [_vp, _vp]),
        "fb_params": (ctypes.c_int, [_vp, _vp, _u32, _u32, _vp, _u8]),
        "fb_train": (ctypes.c_int, [_vp, _u32, _u16, _u16, _f32, _f32, _f32, _u32, _u8, _u32, _vp, _vp]),
        "fb_update": (ctypes.c_int, [_vp, _u32, _vp, _vp, _vp, _u32]),
        "fb_secagg_many": (None, [_vp, _u32, _u8, _vp, _vp, _vp, _f32, _u8, _u32, _u32, _vp, _vp, _vp, _vp, _vp, _vp, _vp,
                                  _u32]),
        "fb_encoded": (ctypes.c_int, [_vp, _u32, _vp, _u32, _vp]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(c, name)
        fn.restype = res
        fn.argtypes = args
    c._fb_bound = True
    return c


# ---- the link these exchanges would take --------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _frame(name: str, extra: int = 0) -> int:
    return wire_size(WIRE.msg(name).fixed_size + extra)


_ACK = _frame("ACK")


@functools.lru_cache(maxsize=None)
def push_wire(n: int) -> tuple[int, int]:
    """(host -> device, device -> host) wire bytes of a host -> device transfer of n bytes."""
    chunks = [min(CHUNK, n - o) for o in range(0, n, CHUNK)]
    out = _frame("XFER_BEGIN") + sum(_frame("XFER_CHUNK", c) for c in chunks) + _frame("XFER_END")
    return out, _ACK * (len(chunks) + 2)


@functools.lru_cache(maxsize=None)
def pull_wire(n: int) -> tuple[int, int]:
    """(host -> device, device -> host) wire bytes of a device -> host transfer of n bytes."""
    chunks = [min(CHUNK, n - o) for o in range(0, n, CHUNK)]
    out = _frame("XFER_PULL") + _frame("XFER_READ") * len(chunks) + _frame("XFER_END")
    back = _frame("XFER_BEGIN") + sum(_frame("XFER_CHUNK", c) for c in chunks) + _ACK
    return out, back


@functools.lru_cache(maxsize=None)
def request_wire(name: str, reply: str) -> tuple[int, int]:
    return _frame(name), _frame(reply)


def _add(t: Traffic, payload_out: int, payload_in: int, *wires: tuple[int, int]) -> None:
    t.payload_out += payload_out
    t.payload_in += payload_in
    for o, i in wires:
        t.wire_out += o
        t.wire_in += i


# ---- participants ---------------------------------------------------------------------------------------
class DirectParticipant:
    """One in-process device, driven without the wire (the Participant interface)."""

    def __init__(self, device: InProcessDevice, fleet: "DirectFleet", *, secagg_die_before: str | None = None,
                 secagg_die_after: str | None = None, device_id: int = 0) -> None:
        self.name = device.name
        self.device = device
        self.fleet = fleet
        self.device_id = device_id  # its id in the fleet manifest (DirectFleet: k + 1)
        self.die = (secagg_die_before, secagg_die_after)
        self._traffic = Traffic()
        self.info: ParticipantInfo | None = None

    @property
    def _dev(self) -> int:
        if not self.device.on:
            raise LinkError(f"{self.name}: device is off")
        return self.device._ptr()

    def _check(self, status: int, what: str) -> None:
        if status:
            raise DeviceError(status, f"{self.name}: {what}: {self.fleet.lib.status_text(status)}")

    def open(self) -> ParticipantInfo:
        self._dev  # a switched-off device does not answer
        f = self.fleet
        ident = (DeviceIdentityInfo.of(f.fleet.manifest, self.device_id, self.device.identity_status)
                 if self.device_id in f.fleet.seeds else None)
        self.info = ParticipantInfo(self.name, self.name, f.model_name, f.model_hash,
                                    self.device.shard_size, True, False, f.test_messages, f.secure_only, ident)
        _add(self._traffic, 0, 0, request_wire("HELLO", "INFO"), request_wire("GET_IDENTITY", "IDENTITY"))
        return self.info

    @property
    def manifest(self) -> Any:
        """The fleet manifest this device is provisioned in."""
        return self.fleet.fleet.manifest

    def push_params(self, version: int, params: np.ndarray, model_hash: bytes, persist: bool) -> None:
        p = np.ascontiguousarray(params, dtype="<f4")
        h = (ctypes.c_uint8 * HASH_LEN).from_buffer_copy(bytes(model_hash)[:HASH_LEN].ljust(HASH_LEN, b"\0"))
        self._check(self.fleet.c.fb_params(self._dev, p.ctypes.data, p.size, version & 0xFFFFFFFF, h, 0),
                    "PARAMS")  # the in-process library has no persistent storage
        _add(self._traffic, 4 * p.size, 0, push_wire(4 * p.size), request_wire("PARAMS", "ACK"))

    def train(self, version: int, cfg: TrainConfig, timeout: float) -> TrainResult:
        u = np.zeros(10, dtype=np.uint32)
        f = np.zeros(2, dtype=np.float32)
        self._check(self.fleet.c.fb_train(self._dev, version & 0xFFFFFFFF, cfg.epochs, cfg.batch, cfg.lr,
                                          cfg.momentum, cfg.weight_decay, cfg.seed & 0xFFFFFFFF, cfg.schedule_id,
                                          cfg.max_samples, u.ctypes.data, f.ctypes.data), "TRAIN")
        _add(self._traffic, 0, 0, request_wire("TRAIN", "TRAIN_RESULT"))
        self.fleet.progress.tick()
        return TrainResult(round=version, samples=int(u[0]), seen=int(u[1]), steps=int(u[2]),
                           train_correct=int(u[3]), train_loss_sum=float(f[0]), eval_samples=int(u[4]),
                           eval_correct=int(u[5]), eval_loss_sum=float(f[1]), elapsed_ms=int(u[6]),
                           insns_per_sample=int(u[7]), train_mem_bytes=int(u[8]), sram_peak=int(u[9]))

    def fetch_update(self, version: int, encoding: int) -> Update:
        if encoding != ENC_F32:
            raise OptionsError(f"{self.name}: update encoding {encoding} (only ENC_F32)")
        n = self.fleet.n_params
        u = np.zeros(5, dtype=np.uint32)
        f = np.zeros(2, dtype=np.float32)
        buf = np.zeros(4 * n, dtype=np.uint8)
        self._check(self.fleet.c.fb_update(self._dev, version & 0xFFFFFFFF, u.ctypes.data, f.ctypes.data,
                                           buf.ctypes.data, buf.size), "GET_UPDATE")
        data = buf.tobytes()
        decode_f32(data, int(u[0]))
        _add(self._traffic, 0, len(data), request_wire("GET_UPDATE", "UPDATE"), pull_wire(len(data)))
        return Update(self.name, version, int(u[0]), int(u[1]), int(u[2]), data, float(f[0]), float(f[1]))

    def secagg_endpoint(self, client_id: int, enc: Any, weight: int = 0, staleness: int = 0) -> "DirectEndpoint":
        """This device as SecAgg+ client ``client_id``, invited with its public weight (0: its
        samples) and staleness (ADVERTISE_KEYS)."""
        return DirectEndpoint(client_id, self, enc, weight, staleness)

    def encoded(self, sa_round: int) -> np.ndarray:
        """TEST libraries only: this round's encoded words before masking (after MASKED_INPUT)."""
        buf = np.zeros(4 * (self.fleet.n_params + 64) + 4, dtype=np.uint8)
        n = ctypes.c_uint32(0)
        self._check(self.fleet.c.fb_encoded(self._dev, sa_round & 0xFFFFFFFF, buf.ctypes.data, buf.size,
                                            ctypes.byref(n)), "SA_ENCODED")
        return buf[4:n.value].view("<u4").astype(np.uint32)

    def traffic(self) -> Traffic:
        return Traffic(**self._traffic.__dict__)

    def close(self) -> None:
        pass


class DirectEndpoint:
    """A device as SecAgg+ client ``id``: its stages run in the fleet's batch."""

    def __init__(self, client_id: int, participant: DirectParticipant, enc: Any, weight: int = 0,
                 staleness: int = 0) -> None:
        self.id = client_id
        self.participant = participant
        self.enc = enc
        self.weight = int(weight)
        self.staleness = min(int(staleness), 0xFFFF)
        self.batch = participant.fleet.batch

    def exchange(self, message: str, payload: bytes) -> bytes:
        out = self.batch(message, [(self, payload)])[0]
        if isinstance(out, BaseException):
            raise out
        return out


class SecAggBatch:
    """``batch(stage, [(endpoint, body)]) -> [reply or exception]``: one C call, every core."""

    def __init__(self, fleet: "DirectFleet", threads: int) -> None:
        self.fleet = fleet
        self.threads = threads

    def __call__(self, stage: str, calls: Sequence[tuple[DirectEndpoint, bytes]]) -> list[Any]:
        fl = self.fleet
        n = len(calls)
        if n == 0:
            return []
        fl.progress.stage(f"SecAgg+ {stage} ({n:,} devices)")
        enc = calls[0][0].enc
        out: list[Any] = [None] * n
        live: list[int] = []
        for i, (ep, _) in enumerate(calls):
            if ep.participant.die[0] == stage:
                ep.participant.device.power_off()  # loses power before answering (dropout tests)
            if not ep.participant.device.on:
                out[i] = LinkError(f"{ep.participant.name}: device is off")
            else:
                live.append(i)
        lens = np.array([len(calls[i][1]) for i in live], dtype=np.uint32)
        offs = np.zeros(len(live), dtype=np.uint64)
        if len(live) > 1:
            offs[1:] = np.cumsum(lens[:-1], dtype=np.uint64)
        bodies = np.frombuffer(b"".join(calls[i][1] for i in live) or b"\0", dtype=np.uint8)
        cap = 4 + 4 * (fl.n_params + 64) if stage == "MASKED_INPUT" else SA_BODY_MAX
        caps = np.full(len(live), cap, dtype=np.uint32)
        ooffs = np.arange(len(live), dtype=np.uint64) * np.uint64(cap)
        obuf = np.zeros(max(1, cap * len(live)), dtype=np.uint8)
        olens = np.zeros(len(live), dtype=np.uint32)
        status = np.zeros(len(live), dtype=np.int32)
        weight = np.array([calls[i][0].weight for i in live], dtype=np.uint32)
        stale = np.array([calls[i][0].staleness for i in live], dtype=np.uint16)
        devs = (ctypes.c_void_p * max(1, len(live)))(*[calls[i][0].participant.device._ptr() for i in live])
        if live:
            fl.c.fb_secagg_many(devs, len(live), STAGE_IDS[stage], bodies.ctypes.data, offs.ctypes.data,
                                lens.ctypes.data, float(enc.clip32), int(enc.frac_bits), int(enc.weight_max), int(enc.dp_z_milli),
                                weight.ctypes.data, stale.ctypes.data, obuf.ctypes.data, ooffs.ctypes.data, caps.ctypes.data, olens.ctypes.data,
                                status.ctypes.data, self.threads)
        msg_out = request_wire(stage, "ACK")
        for k, i in enumerate(live):
            ep, body = calls[i]
            p = ep.participant
            if status[k]:
                out[i] = DeviceError(int(status[k]), f"{p.name}: {stage} refused: {fl.lib.status_text(int(status[k]))}")
                continue
            o = int(ooffs[k])
            reply = obuf[o:o + int(olens[k])].tobytes()
            out[i] = reply
            _add(p._traffic, len(body), len(reply), push_wire(len(body)), msg_out, pull_wire(len(reply)))
            if p.die[1] == stage:
                p.device.power_off()  # the reply is out; the next stage finds it off
        return out


# ---- the fleet --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetMemory:
    """Bytes per device, as laid out here: the device's RAM block and its shard."""

    device_state: int
    shard_mean: float

    def as_dict(self) -> dict[str, Any]:
        return {"device_state_bytes": self.device_state, "shard_bytes_mean": round(self.shard_mean, 1)}


class DirectFleet:
    """N in-process devices of one library, driven without the wire."""

    def __init__(self, lib: DeviceLibrary, shards: Sequence[tuple[np.ndarray, np.ndarray]], *, model_name: str = "",
                 prefix: str = "virtual", threads: int | None = None, test_messages: bool = False,
                 secure_only: bool = False,
                 die: dict[int, tuple[str | None, str | None]] | None = None, fleet: Fleet | None = None) -> None:
        """``fleet``: the identities of the devices (device k is id k + 1; default: a fleet made for
        them under a key that lives only in this process)."""
        self.lib = lib
        self.c = _bind(lib)
        self.n_params = lib.n_params
        self.model_name = model_name
        self.test_messages, self.secure_only = test_messages, secure_only
        self.devices = [InProcessDevice(lib, x, y, name=f"{prefix}{k}") for k, (x, y) in enumerate(shards)]
        self.fleet = provision(self.devices, fleet)
        h = (ctypes.c_uint8 * HASH_LEN)()
        if self.devices and self.c.fb_model_hash(self.devices[0]._ptr(), h):
            raise OptionsError("the device library has no model")
        self.model_hash = bytes(h)
        self.batch = SecAggBatch(self, threads or max(1, os.cpu_count() or 1))
        self.progress = Progress(len(self.devices), enabled=False)
        self.participants = [DirectParticipant(d, self, secagg_die_before=(die or {}).get(k, (None, None))[0],
                                               secagg_die_after=(die or {}).get(k, (None, None))[1],
                                               device_id=k + 1)
                             for k, d in enumerate(self.devices)]

    def memory(self) -> FleetMemory:
        shard = [d.x.nbytes + d.y.nbytes for d in self.devices]
        return FleetMemory(self.lib.state_bytes, float(np.mean(shard)) if shard else math.nan)


__all__ = ["DirectEndpoint", "DirectFleet", "DirectParticipant", "FleetMemory", "SecAggBatch", "pull_wire",
           "push_wire", "request_wire"]
