"""Federated-learning devices compiled for the host (firmware/native/fl_device_host.c).

The real device code -- protocol, round logic (src/fl), training engine,
runtime, parameter store -- built with the host compiler and served over TCP
like an emulated board's UART, so the host's round logic and the tests run
against genuine device C code without QEMU, in seconds.  The private shard is
handed to the process as two raw files (int8 inputs, uint8 labels); storage is
a host file behaving as NOR flash.

>>> with start_native_devices(model_dir, shards) as devs:     # doctest: +SKIP
...     urls = [d.url for d in devs]
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import DeviceFailure, InputError
from tinyfed_toolchain.facts.manifests import fl_device_sources
from tinyfed_toolchain.image.native_cc import compile_native
from tinyfed_toolchain.image.provision import Fleet

from .child_process import announced_line, terminate
from .secagg.identity import ephemeral_fleet


def build_native_device(model_dir: Path, *, extra_flags: Sequence[str] = ()) -> Path:
    """Compile (cached) the native device for the model + training plan in ``model_dir``
    (model_data.{c,h}, train_data.{c,h})."""
    model_dir = Path(model_dir).resolve()
    if not ((model_dir / "model_data.c").is_file() and (model_dir / "train_data.c").is_file()):
        raise InputError(f"{model_dir}: needs model_data.c and train_data.c (tinyfed build)")
    return compile_native(fl_device_sources(model_dir), [model_dir], "fl_device_host",
                          extra_flags=list(extra_flags), monocypher=True)


@dataclass
class NativeDevice:
    proc: subprocess.Popen[bytes]
    url: str
    name: str
    workdir: Path
    stderr_path: Path
    _files: list[object] = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Stop the process at once (a board losing power)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            terminate(self.proc, timeout)
        if self.proc.stdout:
            self.proc.stdout.close()

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def start_host_device(exe: Path, x: np.ndarray, y: np.ndarray, *, name: str, workdir: Path | None = None,
                      storage: Path | None = None, train_delay_ms: int = 0,
                      startup_timeout: float = 10.0, identity: bytes | None = None) -> NativeDevice:
    """Start one host device with shard (x int8, y labels) and, if given, its identity record
    (tfd/identity.h: without one it refuses secure aggregation); returns once it listens."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tinyfed-hostdev-"))
    work.mkdir(parents=True, exist_ok=True)
    xs, ys = work / f"{name}.x.bin", work / f"{name}.y.bin"
    xs.write_bytes(np.ascontiguousarray(x, dtype=np.int8).tobytes())
    ys.write_bytes(np.asarray(y, dtype=np.uint8).tobytes())
    argv = [str(exe), "--tcp", "0", "--shard-x", str(xs), "--shard-y", str(ys), "--name", name]
    if storage is not None:
        argv += ["--storage", str(storage)]
    if train_delay_ms:
        argv += ["--train-delay-ms", str(int(train_delay_ms))]
    if identity is not None:
        rec = work / f"{name}.identity.bin"  # its "flash": a secret, owner-only
        fd = os.open(rec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(identity)
        argv += ["--identity", str(rec)]
    err_path = work / f"{name}.stderr"
    err = open(err_path, "wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    try:
        line = announced_line(proc, startup_timeout)
        m = re.fullmatch(r"TCP (\d+)", line)
        if not m:
            raise DeviceFailure(f"native device {name} did not start: {line!r} {err_path.read_text()[-500:]}")
        return NativeDevice(proc, f"socket://127.0.0.1:{m.group(1)}", name, work, err_path, [err])
    except BaseException:
        proc.kill()
        proc.wait(timeout=5)
        err.close()
        raise


class HostFleet:
    """Several host devices stopped together (a context manager)."""

    def __init__(self, devices: list[NativeDevice], manifest: Any = None) -> None:
        self.devices = devices
        self.manifest = manifest  # the fleet manifest the devices are provisioned in

    def __iter__(self) -> Iterator[NativeDevice]:
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def __getitem__(self, i: int) -> NativeDevice:
        return self.devices[i]

    def stop(self) -> None:
        for d in self.devices:
            d.stop()

    def __enter__(self) -> "HostFleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_native_devices(model_dir: Path, shards: Sequence[tuple[np.ndarray, np.ndarray]], *,
                       workdir: Path | None = None, storage: bool = True,
                       train_delay_ms: Sequence[int] | None = None,
                       extra_flags: Sequence[str] = (), fleet: Fleet | None = None) -> HostFleet:
    """One host device per shard; ``extra_flags`` go to the compiler (e.g. -DTFD_FL_SECURE_ONLY=1).
    Device k is provisioned as id k + 1 of ``fleet`` (default: a fleet made for these devices
    under a key that lives only in this process); ``HostFleet.manifest`` is its manifest."""
    exe = build_native_device(model_dir, extra_flags=extra_flags)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tinyfed-hostfleet-"))
    fleet = fleet if fleet is not None else ephemeral_fleet(list(range(1, len(shards) + 1)))
    devs: list[NativeDevice] = []
    try:
        for k, (x, y) in enumerate(shards):
            devs.append(start_host_device(exe, x, y, name=f"hostdev{k}", workdir=work,
                                          storage=work / f"hostdev{k}.storage" if storage else None,
                                          train_delay_ms=(train_delay_ms[k] if train_delay_ms else 0),
                                          identity=fleet.record(k + 1) if k + 1 in fleet.seeds else None))
    except BaseException:
        for d in devs:
            d.stop()
        raise
    return HostFleet(devs, fleet.manifest)


__all__ = ["NativeDevice", "HostFleet", "build_native_device", "start_host_device", "start_native_devices"]
