"""tinyfed -- private, federated on-device learning for microcontrollers: the Python API.

Every ``tinyfed`` command is a thin layer over one of these functions; each
takes its options as a typed dataclass (or that dataclass's fields as
keywords) and returns a result object instead of printing only::

    from pathlib import Path
    import tinyfed

    built = tinyfed.build(dataset="my_sensor_data.npz", devices=4, out_dir=Path("build/mine"))
    print(built.budget)                                   # flash / SRAM of the board, stated
    check = tinyfed.verify(built.tflite, Path("build/mine/test_x_int8.npy"))
    assert check.mismatches == 0                          # emitted C == tflite-micro, byte for byte

    with tinyfed.emulate(boards=4, build=Path("build/mine")) as urls:   # QEMU boards, stopped on exit
        run = tinyfed.fleet(ports=urls, build=Path("build/mine"))      # SecAgg+ by default
    print(run.records[-1].accuracy)

    sim = tinyfed.simulate(devices=16, build=Path("build/mine"),
                           config=tinyfed.FleetConfig(updates=5, train=tinyfed.TrainConfig(epochs=2)))
    fast = tinyfed.simulate(devices=100, build=Path("build/mine"),    # semi-async, 90 % stragglers
                            config=tinyfed.FleetConfig(updates=60, strategy=tinyfed.StrategyOptions("fedbuff")),
                            timing=tinyfed.TimingOptions(stragglers=0.9, straggler_slowdown=10))

Errors are :class:`TinyfedError` (a one-line message, an exit code for the CLI).
"""

from __future__ import annotations

if __name__ != "tinyfed":  # host/api/ is installed as the package `tinyfed` (pyproject.toml)
    raise ImportError(f"the public API is `import tinyfed`, not `import {__name__}`")

from tinyfed_host.fl_run import RunResult
from tinyfed_host.clock import TimingOptions
from tinyfed_host.profile import LayerProfile, ProfileOptions, ProfileResult
from tinyfed_host.rounds import FleetConfig, RoundRecord
from tinyfed_host.secagg.aggregator import SecureOptions
from tinyfed_host.strategy import StrategyOptions
from tinyfed_toolchain.build import BuildOptions, BuildResult
from tinyfed_toolchain.facts.errors import (
    BuildStepError,
    DeviceFailure,
    InputError,
    OptionsError,
    TinyfedError,
)
from tinyfed_toolchain.facts.train_config import TrainConfig
from tinyfed_toolchain.verify import VerifyResult

from .boards import EmulatedBoards, device_info, emulate, evaluate
from .flower import FlowerRunResult, flower_run, gateway
from .federated import demo, fleet, secure_summary, simulate
from .model import build, profile, verify
from .options import (DemoOptions, EmulateOptions, FleetOptions, FlowerRunOptions, GatewayOptions, RunOptions,
                      SimulateOptions, VerifyOptions)

__version__ = "0.1.0"

__all__ = [
    # verbs
    "build", "verify", "profile", "emulate", "fleet", "simulate", "demo", "device_info", "evaluate", "gateway",
    "flower_run",
    # options
    "BuildOptions", "VerifyOptions", "EmulateOptions", "RunOptions", "FleetOptions", "SimulateOptions",
    "DemoOptions", "FleetConfig", "StrategyOptions", "TimingOptions", "TrainConfig", "SecureOptions",
    "ProfileOptions", "FlowerRunOptions", "GatewayOptions",
    # results
    "BuildResult", "VerifyResult", "ProfileResult", "LayerProfile", "EmulatedBoards", "RunResult", "RoundRecord",
    "secure_summary", "FlowerRunResult",
    # errors
    "TinyfedError", "OptionsError", "InputError", "BuildStepError", "DeviceFailure",
]
