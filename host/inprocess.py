"""In-process devices: the host build of a board's federated-learning C code
(``firmware/native/fl_device_host.c`` with ``-DFDH_LIBRARY``: protocol, round
state machine, training engine, runtime, SecAgg+ client) loaded once as a
shared library, with any number of device states in one Python process.

A device is a block of memory the library's code runs on (``fdh_device_size()``
bytes) plus its shard, passed as a *view*: the int8 inputs and labels stay in
the caller's numpy arrays.  The host reaches it exactly as it reaches a board:
a :class:`~tinyfed_host.protocol.DeviceClient` over a :class:`MemoryLink`,
whose ``write`` feeds the frames to the device (which runs the request to the
end, TRAIN included) and whose reads return the device's reply frames.  Every
byte the host and the device exchange is a real frame, counted like a serial
link's bytes, so simulation reports the same wire figures as boards.

>>> lib = DeviceLibrary.build(model_dir)                        # doctest: +SKIP
>>> dev = InProcessDevice(lib, x_int8, y, name="dev0")           # doctest: +SKIP
>>> client = DeviceClient(dev.link()); client.hello()            # doctest: +SKIP

Test images (``test_messages=True``) compile the TEST-gated messages
(``SA_ENCODED``: the encoded update before masking) for exactness tests.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import InputError
from tinyfed_toolchain.facts.manifests import fl_device_sources
from tinyfed_toolchain.facts.wire_table import STATUS_BY_NAME
from tinyfed_toolchain.image.native_cc import compile_native
from tinyfed_toolchain.image.provision import HEADER_BYTES, Fleet
from .link import LinkCounters, LinkError, LinkTimeout
from .secagg.identity import ephemeral_fleet

LIB_FLAGS = ("-DFDH_LIBRARY", "-fPIC", "-shared", "-fvisibility=hidden")


def build_device_library(model_dir: Path, train_dir: Path | None = None, *, test_messages: bool = False,
                         secure_only: bool = False) -> Path:
    """Compile (cached) the device library for the model tables in ``model_dir``
    and the training plan in ``train_dir`` (default: the same folder)."""
    model_dir = Path(model_dir).resolve()
    train_dir = Path(train_dir).resolve() if train_dir is not None else model_dir
    for f in (model_dir / "model_data.c", train_dir / "train_data.c"):
        if not f.is_file():
            raise InputError(f"{f} does not exist (tinyfed build emits it)")
    flags = [*LIB_FLAGS, f"-DTFD_TEST_MESSAGES={int(test_messages)}", f"-DTFD_FL_SECURE_ONLY={int(secure_only)}"]
    incs = [model_dir] if train_dir == model_dir else [model_dir, train_dir]
    name = "libfl_device" + ("-test" if test_messages else "") + ("-secure-only" if secure_only else "")
    return compile_native(fl_device_sources(model_dir, train_dir), incs, name + ".so", extra_flags=flags,
                          monocypher=True)


_u32 = ctypes.c_uint32
_vp = ctypes.c_void_p
_sz = ctypes.c_size_t


class DeviceLibrary:
    """One loaded build of the device code (one model + training plan)."""

    _loaded: dict[Path, "DeviceLibrary"] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        lib = ctypes.CDLL(str(self.path))
        sigs: dict[str, tuple[Any, list[Any]]] = {
            "fdh_device_size": (_sz, []),
            "fdh_n_params": (_u32, []),
            "fdh_sample_bytes": (_u32, []),
            "fdh_train_mem_bytes": (_sz, []),
            "fdh_device_init": (ctypes.c_int, [_vp, _vp, _vp, _u32, ctypes.c_char_p]),
            "fdh_device_feed": (_sz, [_vp, _vp, _sz]),
            "fdh_device_read": (_sz, [_vp, _vp, _sz]),
            "fdh_device_lost": (_u32, [_vp]),
            "fdh_device_stage": (ctypes.c_int, [_vp]),
            "fdh_device_set_identity": (ctypes.c_int, [_vp, _vp, _sz, _vp, _sz]),
            "fdh_status_str": (ctypes.c_char_p, [ctypes.c_int]),
        }
        for fn_name, (res, args) in sigs.items():
            fn = getattr(lib, fn_name)
            fn.restype = res
            fn.argtypes = args
        self.lib = lib
        self.state_bytes = int(lib.fdh_device_size())
        self.n_params = int(lib.fdh_n_params())
        self.sample_bytes = int(lib.fdh_sample_bytes())
        self.train_mem_bytes = int(lib.fdh_train_mem_bytes())

    @classmethod
    def load(cls, path: Path) -> "DeviceLibrary":
        """The library at ``path``, loaded once per process."""
        p = Path(path).resolve()
        with cls._lock:
            if p not in cls._loaded:
                cls._loaded[p] = cls(p)
            return cls._loaded[p]

    @classmethod
    def build(cls, model_dir: Path, train_dir: Path | None = None, *, test_messages: bool = False,
              secure_only: bool = False) -> "DeviceLibrary":
        return cls.load(build_device_library(model_dir, train_dir, test_messages=test_messages,
                                             secure_only=secure_only))

    def status_text(self, status: int) -> str:
        return self.lib.fdh_status_str(status).decode()


class InProcessDevice:
    """One device state in the library: a board's RAM, in a numpy buffer.

    ``power_off()`` drops the link (a board losing power: every later exchange
    fails); ``power_on()`` boots it again from scratch (RAM lost, the shard kept).
    """

    def __init__(self, lib: DeviceLibrary, x: np.ndarray, y: np.ndarray, *, name: str) -> None:
        self.lib = lib
        self.name = name
        x = np.asarray(x)
        if x.dtype != np.int8:
            raise InputError(f"{name}: shard inputs must be int8 (model-quantized), got {x.dtype}")
        n = int(len(y))
        if n == 0:
            raise InputError(f"{name}: empty shard")
        self.x = np.ascontiguousarray(x.reshape(n, -1))  # a view when x is already contiguous
        if self.x.shape[1] != lib.sample_bytes:
            raise InputError(f"{name}: samples of {self.x.shape[1]} bytes, the model input takes {lib.sample_bytes}")
        self.y = np.ascontiguousarray(np.asarray(y), dtype=np.uint8)
        raw = np.zeros(lib.state_bytes + 16, dtype=np.uint8)
        start = (-int(raw.ctypes.data)) % 16
        self._raw = raw
        self._state = raw[start:start + lib.state_bytes]
        self.on = False
        self.training_status = 0
        self.identity_status = STATUS_BY_NAME["TFD_ERR_POLICY"]
        self._identity: tuple[np.ndarray, np.ndarray] | None = None  # its identity record (head, manifest): its "flash"
        self.manifest: Any = None  # the public fleet manifest that record belongs to (for the host's side)
        self.power_on()

    @property
    def shard_size(self) -> int:
        return int(len(self.y))

    def _ptr(self) -> int:
        return int(self._state.ctypes.data)

    def power_on(self) -> None:
        st = self.lib.lib.fdh_device_init(self._ptr(), int(self.x.ctypes.data), int(self.y.ctypes.data),
                                          self.shard_size, self.name.encode()[:31])
        self.training_status = int(st)
        self.on = True
        if self._identity is not None:  # RAM lost, the provisioned record kept
            self._apply_identity()

    def set_identity(self, record: bytes, manifest: Any = None) -> int:
        """Provision this device (its identity record, tfd/identity.h; ``manifest``: the public fleet
        manifest it belongs to, which the host side uses); returns the record's check (0: usable)."""
        rec = bytes(record)
        return self.set_identity_parts(rec[:HEADER_BYTES], np.frombuffer(rec[HEADER_BYTES:],
                                                                               dtype=np.uint8).copy(), manifest)

    def set_identity_parts(self, head: bytes, manifest_bytes: np.ndarray, manifest: Any = None) -> int:
        """The same with the record in two pieces: this device's head (id, secret seed, fleet key) and
        the signed manifest bytes (a uint8 array the caller may share between devices: a fleet of
        10,000 devices holds one copy; kept alive here)."""
        self._identity = (np.frombuffer(bytes(head), dtype=np.uint8).copy(), manifest_bytes)
        self.manifest = manifest
        return self._apply_identity()

    def _apply_identity(self) -> int:
        assert self._identity is not None
        head, man = self._identity
        self.identity_status = int(self.lib.lib.fdh_device_set_identity(
            self._ptr(), int(head.ctypes.data), int(head.size), int(man.ctypes.data), int(man.size)))
        return self.identity_status

    def power_off(self) -> None:
        self.on = False

    def feed(self, data: bytes) -> None:
        if not self.on:
            raise LinkError(f"{self.name}: device is off")
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self.lib.lib.fdh_device_feed(self._ptr(), ctypes.addressof(buf), len(data))
        if self.lib.lib.fdh_device_lost(self._ptr()):
            raise LinkError(f"{self.name}: device output overflowed (host sent too many requests at once)")

    def read(self, cap: int = 65536) -> bytes:
        out = (ctypes.c_uint8 * cap)()
        n = self.lib.lib.fdh_device_read(self._ptr(), ctypes.addressof(out), cap)
        return bytes(out[:n])

    def stage(self) -> int:
        """The device's round stage (tfd_fl_stage_t: 0 EMPTY .. 4 TRAINED)."""
        return int(self.lib.lib.fdh_device_stage(self._ptr()))

    def link(self, timeout: float = 0.0) -> "MemoryLink":
        return MemoryLink(self, timeout)


class MemoryLink:
    """:class:`~tinyfed_host.link.Link`'s interface over an in-process device.

    The device answers inside ``write``, so a read never waits: with nothing
    buffered it reports the timeout at once (a switched-off device)."""

    def __init__(self, device: InProcessDevice, timeout: float = 0.0) -> None:
        self.device = device
        self.url = f"inprocess://{device.name}"
        self.timeout = timeout
        self.counters = LinkCounters()
        self._rx = bytearray(b"\x00")  # the device's first delimiter, as a board's boot sends it
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise LinkError(f"{self.url}: link closed")
        self.device.feed(bytes(data))
        self._rx += self.device.read()
        self.counters.bytes_out += len(data)
        self.counters.writes += 1

    def read_some(self, timeout: float, max_bytes: int = 65536) -> bytes:
        if not self._rx:
            if not self.device.on:
                raise LinkError(f"{self.url}: device is off")
            time.sleep(min(max(timeout, 0.0), 0.001))
            return b""
        data = bytes(self._rx[:max_bytes])
        del self._rx[:max_bytes]
        self.counters.bytes_in += len(data)
        self.counters.reads += 1
        return data

    def read_exactly(self, n: int, timeout: float) -> bytes:
        if len(self._rx) < n:
            raise LinkTimeout(f"{self.url}: {len(self._rx)} of {n} bytes")
        return self.read_some(timeout, n)

    def drain(self, quiet: float = 0.05, limit: float = 1.0) -> int:
        n = len(self._rx)
        self.counters.bytes_in += n
        self._rx.clear()
        return n

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "MemoryLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def provision(devices: Sequence[InProcessDevice], fleet: Fleet | None = None) -> Fleet:
    """Device k becomes id k + 1 of ``fleet`` (default: a fleet made for these devices under a fleet
    key that lives only in this process -- the simulation plays the user who provisions them).
    One copy of the manifest bytes is shared by all devices; returns the fleet."""
    fleet = fleet if fleet is not None else ephemeral_fleet(list(range(1, len(devices) + 1)))
    shared = np.frombuffer(fleet.manifest.to_bytes(), dtype=np.uint8)
    for k, dev in enumerate(devices):
        if k + 1 in fleet.seeds:
            dev.set_identity_parts(fleet.head(k + 1), shared, fleet.manifest)
    return fleet


@dataclass
class InProcessFleet:
    """Devices of one library, one per shard (``devices[k]`` holds ``shards[k]``)."""

    library: DeviceLibrary
    devices: list[InProcessDevice]

    @classmethod
    def create(cls, lib: DeviceLibrary, shards: Sequence[tuple[np.ndarray, np.ndarray]],
               prefix: str = "dev") -> "InProcessFleet":
        return cls(lib, [InProcessDevice(lib, x, y, name=f"{prefix}{k}") for k, (x, y) in enumerate(shards)])

    @property
    def state_bytes(self) -> int:
        """Host memory the device states take (shards not counted: they are views)."""
        return self.library.state_bytes * len(self.devices)


__all__ = ["DeviceLibrary", "InProcessDevice", "InProcessFleet", "MemoryLink", "provision",
           "build_device_library"]
