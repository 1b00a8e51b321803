"""``tinyfed simulate --engine flower``: the simulation on Flower's simulation
engine (Ray), each virtual device a simulated Flower node.

The ServerApp is tinyfed's own (:func:`~tinyfed_host.flower.server_app.run_flower`:
the same round engine, strategies and SecAgg+ server as on a deployment,
each device its own participant behind the relay).  Each simulated node
runs the relay's gateway side (:class:`~tinyfed_host.flower.gateway.GatewayBoards`)
over one in-process device -- the boards' C code (protocol, round state
machine, trainer, SecAgg+ client) in the simulation's worker process
(``tinyfed_host.inprocess``) -- so a simulated node is a gateway with one
board, answering exactly what a real one answers.

A device's RAM lives in the worker (Ray actor) process between messages, as
a board's does between a host's requests; the backend runs one worker so
every message of a node reaches its device (a device's round state spans
PARAMS, TRAIN and the four SecAgg+ stages).  The shards go to the worker as
one ``.npz`` (memory-mapped views).

Results: the same devices, shards, seeds and strategy give the built-in
simulation's model.  Plain aggregation: the same parameters bit for bit
(both sum the cohort in device order).  Secure aggregation: the same to the
fixed-point step -- each device's stochastic rounding draws fresh randomness
(as a board's TRNG does), so two runs differ there and only there.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tinyfed_toolchain.image.provision import Fleet

from ..experiment import FlBuild
from ..secagg.identity import ephemeral_fleet
from .gateway import GatewayBoards
from .options import ServerAppRun, ServerSettings
from .relay import RelayError, RelayRequest

#: node_config keys Flower's simulation engine sets on each simulated node
PARTITION_KEY = "partition-id"


@dataclass(frozen=True)
class SimulatedFleet:
    """What a simulation worker needs to build its devices (picklable)."""

    model_dir: str
    train_dir: str
    shards_file: str  # npz: x0, y0, x1, y1, ...; id0, id1, ... (each device's identity head) and manifest
    n: int
    prefix: str = "virtual"


_BOARDS: dict[tuple[str, int], GatewayBoards] = {}


def _boards(fleet: SimulatedFleet, k: int) -> GatewayBoards:
    """Node k's gateway side with its one in-process device (made once per worker process)."""
    key = (fleet.shards_file, k)
    b = _BOARDS.get(key)
    if b is None:
        from ..inprocess import DeviceLibrary, InProcessDevice
        from ..participant import InProcessParticipant
        from ..protocol import ClientOptions

        z = np.load(fleet.shards_file, mmap_mode="r")
        lib = DeviceLibrary.build(Path(fleet.model_dir), Path(fleet.train_dir))
        name = f"{fleet.prefix}{k}"
        dev = InProcessDevice(lib, np.asarray(z[f"x{k}"]), np.asarray(z[f"y{k}"]), name=name)
        if f"id{k}" in z:  # its identity: id k + 1 of the fleet the simulation provisioned (SecAgg+)
            dev.set_identity_parts(bytes(z[f"id{k}"]), np.array(z["manifest"], dtype=np.uint8))
        b = GatewayBoards(name, [name], lambda _url: InProcessParticipant(dev, ClientOptions(timeout=0.05, retries=2)),
                          log=lambda s: None, own_names=True)
        b.open_all()
        _BOARDS[key] = b
    return b


def handle_simulated(fields: dict[str, Any], context: Any, fleet: SimulatedFleet) -> dict[str, Any]:
    """A simulated node's answer to a relay request (the ClientApp of the simulation)."""
    k = int(context.node_config[PARTITION_KEY])
    if not 0 <= k < fleet.n:
        return {"fault": f"simulated node {k} of {fleet.n}"}
    boards = _boards(fleet, k)
    try:
        return dict(boards.handle(RelayRequest.from_fields(fields)).to_fields())
    except RelayError as e:
        return {"fault": f"simulated node {k}: {e}"}


def _write_shards(shards: Sequence[tuple[np.ndarray, np.ndarray]], folder: Path, fleet: Fleet | None = None) -> Path:
    """The shards (and, with ``fleet``, device k's identity head as id k + 1 and the manifest) as one .npz
    (in a folder only this process and its workers use: the heads hold the devices' secret seeds)."""
    path = folder / "shards.npz"
    arrays: dict[str, np.ndarray] = {}
    for k, (x, y) in enumerate(shards):
        arrays[f"x{k}"] = np.ascontiguousarray(np.asarray(x, dtype=np.int8).reshape(len(x), -1))
        arrays[f"y{k}"] = np.ascontiguousarray(np.asarray(y, dtype=np.uint8))
        if fleet is not None:
            arrays[f"id{k}"] = np.frombuffer(fleet.head(k + 1), dtype=np.uint8)
    if fleet is not None:
        arrays["manifest"] = np.frombuffer(fleet.manifest.to_bytes(), dtype=np.uint8)
    np.savez(path, **arrays)
    return path


def simulate_flower(build: FlBuild, shards: Sequence[tuple[np.ndarray, np.ndarray]], run: ServerAppRun, *,
                    log: Callable[[str], None] = print, cpus: int | None = None,
                    extra: dict[str, Any] | None = None) -> Any:
    """Run ``run`` over ``len(shards)`` simulated Flower nodes (one in-process device each) on
    Flower's simulation engine; returns the RunResult (report ``engine`` = ``flower``)."""
    return simulate_flower_runs(build, shards, [run], log=log, cpus=cpus, extra=extra)[0]


def simulate_flower_runs(build: FlBuild, shards: Sequence[tuple[np.ndarray, np.ndarray]],
                         runs: Sequence[ServerAppRun], *, log: Callable[[str], None] = print, cpus: int | None = None,
                         extra: dict[str, Any] | None = None) -> list[Any]:
    """Several runs one after the other over the same simulated nodes (one engine start)."""
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    from .relay import RECORD
    from .server_app import run_flower

    n = len(shards)
    work = Path(tempfile.mkdtemp(prefix="tinyfed-flower-sim-"))
    # the simulation plays the user who provisions the devices: a fleet key that lives only in this process
    ids = ephemeral_fleet(list(range(1, n + 1)))
    fleet = SimulatedFleet(str(build.model_dir), str(build.train_dir or build.model_dir),
                           str(_write_shards(shards, work, ids)), n)
    result: list[Any] = []
    error: list[BaseException] = []
    # every device must answer (a simulated node never disconnects); wait for all of them
    runs = [ServerAppRun(**{**run.__dict__, "server": ServerSettings(
        min_devices=n, wait=run.server.wait, latency=run.server.latency, window=0.05,
        check_exact=run.server.check_exact)}) for run in runs]

    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            for run in runs:
                result.append(run_flower(grid, run, log=log, build=build, extra=extra, manifest=ids.manifest))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread below
            error.append(e)

    client_app = ClientApp()

    @client_app.query("tinyfed")
    def _query(msg: Message, context: Context) -> Message:
        reply = handle_simulated(dict(msg.content.config_records[RECORD]), context, fleet)
        if "fault" in reply:
            raise RuntimeError(str(reply["fault"]))
        return Message(RecordDict({RECORD: ConfigRecord(reply)}), reply_to=msg)

    ncpu = max(1, cpus or os.cpu_count() or 1)
    # one worker (all CPUs per simulated node): a node's device keeps its state between messages
    backend = {"client_resources": {"num_cpus": ncpu, "num_gpus": 0.0},
               "init_args": {"num_cpus": ncpu, "num_gpus": 0, "logging_level": "ERROR", "log_to_driver": False}}
    log(f"[flower] simulation engine: {n} simulated nodes, one in-process device each")
    try:
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=n, backend_config=backend)
    finally:
        _remove(work)
    if error:
        raise error[0]
    if len(result) != len(runs):
        from tinyfed_toolchain.facts.errors import DeviceFailure

        raise DeviceFailure("the Flower simulation ended without a result (its log above says why)")
    return result


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


__all__ = ["SimulatedFleet", "handle_simulated", "simulate_flower", "simulate_flower_runs"]
