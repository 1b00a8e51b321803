"""The options of every verb, declared once as typed dataclasses.

The ``tinyfed`` command builds these from its flags (the flags' defaults are
read from here) and hands them to the API functions; a host script builds
them directly.  The round engine's own knobs live in
:class:`tinyfed_host.rounds.FleetConfig` (aggregation steps, the strategy --
:class:`tinyfed_host.strategy.StrategyOptions`: sync / fedbuff / ftte, buffer,
max staleness --, local training, ...) and the secure aggregation's in
:class:`tinyfed_host.secagg.aggregator.SecureOptions`; a federated run's
options hold one of each.  A simulation also has a device clock model
(:class:`tinyfed_host.clock.TimingOptions`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tinyfed_host.clock import TimingOptions
from tinyfed_host.flower.gateway import GatewayOptions, superlink_address_problem
from tinyfed_host.flower.options import ServerAppRun, ServerSettings
from tinyfed_host.rounds import DEFAULT_TRAIN, DEFAULT_UPDATES, FleetConfig
from tinyfed_host.secagg.aggregator import DP_MECHANISMS, SecureOptions
from tinyfed_host.secagg.graph import MIN_NEIGHBOURS
from tinyfed_host.strategy import StrategyOptions
from tinyfed_toolchain.build import BuildOptions
from tinyfed_toolchain.facts.errors import OptionsError
from tinyfed_toolchain.facts.train_config import TrainConfig

DEFAULT_BUILD = Path("build/model")
DEFAULT_BOARD = "mps2-an386"
PARTITIONS = ("iid", "dirichlet", "shards")
ENGINES = ("builtin", "flower")  # what runs a simulation's rounds: this process, or Flower's simulation engine


def default_fleet_config() -> FleetConfig:
    """What a federated run does unless told otherwise: 20 synchronous FedAvg rounds of 5 local
    epochs (SGD, momentum 0.9, cosine schedule), up to 10 minutes of training per round."""
    return FleetConfig(updates=DEFAULT_UPDATES, strategy=StrategyOptions(), train=DEFAULT_TRAIN, train_timeout=600.0)


def default_secure_options() -> SecureOptions:
    """SecAgg+ with an L2 clip of 10 per update, the neighbourhood and threshold
    chosen for the fleet's size, no DP noise."""
    return SecureOptions(clip=10.0)


@dataclass
class VerifyOptions:
    """``tinyfed verify``: the emitted C against the tflite-micro runtime."""

    model: Path  # int8 .tflite
    inputs: Path  # .npy, [N, *input_shape], int8
    work_dir: Path | None = None  # emitted C and the native harness (default build/verify)
    dump: Path | None = None  # write the C outputs here (.npy)


@dataclass
class EmulateOptions:
    """``tinyfed emulate``: N emulated boards (QEMU)."""

    boards: int = 4
    board: str = DEFAULT_BOARD
    build: Path = DEFAULT_BUILD  # build folder with device images (built when missing)
    dataset: str = "digits"  # what to build the images from, if they are missing
    image: Path | None = None  # boot this ELF on every board instead of the device images
    storage: Path | None = None  # folder for the boards' persistent storage files
    icount: int | None = None  # QEMU -icount shift (boards then report instruction counts)
    log_dir: Path | None = None  # one QEMU log per board
    # per board, a power of two: held to real time at 10^9 / 2^icount / it instructions per second
    # (icount None: 6, i.e. 15.6 MIPS / it)
    slowdowns: Sequence[int] | None = None

    def check(self) -> None:
        if self.boards < 1:
            raise OptionsError(f"boards: {self.boards}, need at least 1")
        if self.slowdowns is not None and len(self.slowdowns) != self.boards:
            raise OptionsError(f"{len(self.slowdowns)} slowdowns for {self.boards} boards")


@dataclass
class RunOptions:
    """What every federated run shares (fleet, simulate, demo)."""

    build: Path = DEFAULT_BUILD  # the build the devices run: model, training plan, held-out split
    config: FleetConfig = field(default_factory=default_fleet_config)  # the round engine's knobs
    secure: SecureOptions | None = field(default_factory=default_secure_options)  # None: plain FedAvg
    report: Path | None = None  # JSON report of the run
    plot: Path | None = None  # PNG of accuracy over time
    state: Path | None = None  # checkpoint, rewritten every round (default <build>/<verb>_state.json)
    resume: bool = False  # continue the interrupted run its checkpoint records
    centralised: bool = True  # also fine-tune centrally on the union of the shards (the baseline)

    def check(self) -> None:
        s = self.secure
        if s is not None:
            s.check()
        if self.config.updates < 0:
            raise OptionsError(f"updates: {self.config.updates}")
        self.config.strategy.check()
        t = self.config.target_accuracy
        if t is not None and not 0 < t <= 1:
            raise OptionsError(f"target accuracy {t}: a fraction in (0, 1]")

    def state_path(self, build_dir: Path, verb: str) -> Path:
        return Path(self.state) if self.state else Path(build_dir) / f"{verb}_state.json"


@dataclass
class FleetOptions(RunOptions):
    """``tinyfed fleet``: rounds over serial with boards running the build's images."""

    ports: Sequence[str] = ()  # serial URLs, one per board
    timeout: float = 2.0  # seconds per request attempt
    manifest: Path | None = None  # the fleet manifest the boards pin (default <build>/fleet/manifest.json)

    def check(self) -> None:
        super().check()
        if not self.ports:
            raise OptionsError("fleet: no board (give at least one serial port)")


@dataclass
class SimulateOptions(RunOptions):
    """``tinyfed simulate``: N in-process devices (the boards' C code) on a virtual clock."""

    devices: int = 4
    partition: str = "dirichlet"  # how the build's shards are re-split when devices differs
    alpha: float = 0.5  # Dirichlet concentration of that re-split
    seed: int = 0  # seed of that re-split (and of which devices are stragglers)
    samples_per_device: int = 16  # too few samples for disjoint shards of this size: devices draw this many
    timing: TimingOptions = field(default_factory=TimingOptions)  # the virtual clock's device model
    engine: str = "builtin"  # builtin: this process; flower: Flower's simulation engine, a node per device
    progress: bool = False  # a progress bar on stderr during long rounds (the CLI turns it on at a terminal)

    def check(self) -> None:
        super().check()
        self.timing.check()
        if self.engine not in ENGINES:
            raise OptionsError(f"engine {self.engine!r}: {' | '.join(ENGINES)}")
        if self.samples_per_device < 1:
            raise OptionsError(f"samples per device {self.samples_per_device}: need at least 1")
        if self.devices < 1 or (self.devices < MIN_NEIGHBOURS + 1 and self.secure is not None):
            raise OptionsError(f"devices {self.devices}: secure aggregation needs at least {MIN_NEIGHBOURS + 1} devices "
                               f"(a device refuses fewer than {MIN_NEIGHBOURS} neighbours: one neighbour and the "
                               "host together would learn its update); use --no-secure for fewer")
        if self.partition not in PARTITIONS:
            raise OptionsError(f"partition {self.partition!r}: {' | '.join(PARTITIONS)}")


@dataclass
class FlowerRunOptions(RunOptions):
    """``tinyfed flower run``: tinyfed's Flower app (host/flower/app) on a SuperLink, every board of
    every gateway (``tinyfed gateway``) its own participant.  ``build``, ``report``, ``plot`` and
    ``state`` are paths on the SuperLink's machine, where the ServerApp runs."""

    superlink: str = "127.0.0.1:9093"  # HOST:PORT of the SuperLink (its one HTTP(S) port)
    insecure: bool = False  # plain HTTP (tests, a trusted network); default TLS
    root_certificates: Path | None = None  # CA (PEM) of the SuperLink's certificate (default: the system's)
    flwr_home: Path = Path("build/flower/home")  # the Flower CLI's configuration (~/.flwr is not touched)
    server: ServerSettings = field(default_factory=ServerSettings)  # boards to wait for, gateway latency, ...

    def check(self) -> None:
        super().check()
        if self.insecure and self.root_certificates:
            raise OptionsError("insecure and root_certificates contradict")
        why = superlink_address_problem(self.superlink)
        if why:
            raise OptionsError(f"superlink {self.superlink!r}: {why}")
        self.server.check(self.secure is not None)

    def server_app_run(self) -> ServerAppRun:
        """What the ServerApp is asked to run (sent as the app's run config)."""
        return ServerAppRun(build=Path(self.build), config=self.config, secure=self.secure, report=self.report,
                            plot=self.plot, state=self.state, resume=self.resume, centralised=self.centralised,
                            server=self.server)


@dataclass
class DemoOptions(RunOptions):
    """``tinyfed demo``: build, boot N emulated boards, federated rounds, report and plot."""

    build: Path | None = None  # type: ignore[assignment]  # default build/demo-<dataset>
    dataset: str = "digits"
    boards: int = 4
    board: str = DEFAULT_BOARD
    quick: bool = False  # fewer training epochs in the build (the CLI also runs 4 rounds unless --rounds)
    train_scheme: str = "auto"
    head_init: str = "pretrained"
    public_fraction: float = BuildOptions.public_fraction
    # QEMU -icount shift: boards report instructions per sample; unequal boards run at most
    # 10^9 / 2^(icount + log2 slowdown) instructions per second (4: 62.5 M for a 1x board; None: off)
    icount: int | None = 4
    skip_build: bool = False  # reuse the build folder as it is
    config: FleetConfig = field(default_factory=lambda: default_demo_config(4))  # semi-async FTTE
    # per board, a power of two: held to real time at 10^9 / 2^icount / it instructions per second
    # (None: default_slowdowns(boards))
    slowdowns: Sequence[int] | None = None
    sync_reference: bool = True  # beside a semi-async run, synchronous FedAvg of the same fleet (simulated)

    @property
    def build_dir(self) -> Path:
        return Path(self.build) if self.build else Path(f"build/demo-{Path(self.dataset).stem.lower()}")

    def board_slowdowns(self) -> list[int]:
        return list(self.slowdowns) if self.slowdowns is not None else default_slowdowns(self.boards)

    def check(self) -> None:
        super().check()
        if self.slowdowns is not None and len(self.slowdowns) != self.boards:
            raise OptionsError(f"{len(self.slowdowns)} slowdowns for {self.boards} boards")
        if self.icount is None and self.slowdowns is not None and any(s != 1 for s in self.slowdowns):
            raise OptionsError("unequal boards (slowdowns) run under QEMU -icount: give an icount shift")


def default_slowdowns(boards: int) -> list[int]:
    """The demo's unequal fleet: the last quarter of the boards (at least one) 8x slower, the board
    before them 2x, the rest at full speed -- 4 boards: 1, 1, 2, 8."""
    if boards < 2:
        return [1] * boards
    slow = max(1, boards // 4)
    out = [1] * (boards - slow) + [8] * slow
    if boards - slow >= 2:
        out[boards - slow - 1] = 2
    return out


def default_demo_config(boards: int, secure: bool = True) -> FleetConfig:
    """The demo's run: FTTE, semi-asynchronous, a buffer of about half the boards (SecAgg+ needs 3)."""
    k = max(3 if secure else 1, (boards + 1) // 2)
    return dataclasses.replace(default_fleet_config(), strategy=StrategyOptions("ftte", buffer=k))


__all__ = [
    "DEFAULT_BUILD", "DEFAULT_BOARD", "PARTITIONS", "BuildOptions", "VerifyOptions", "EmulateOptions",
    "RunOptions", "FleetOptions", "SimulateOptions", "FlowerRunOptions", "GatewayOptions", "ServerSettings", "DemoOptions",
    "FleetConfig", "SecureOptions", "DP_MECHANISMS", "ENGINES",
    "TrainConfig", "StrategyOptions", "TimingOptions", "default_fleet_config", "default_secure_options",
    "default_demo_config", "default_slowdowns",
]
