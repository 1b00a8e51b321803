"""What tinyfed's Flower ServerApp is asked to run, and its form as Flower's
*run config*: the flat key=value table of the app (``[tool.flwr.app.config]``
in ``host/flower/app/pyproject.toml``) that ``flwr run … --run-config``
overrides and the ServerApp reads (``context.run_config``).

:class:`ServerAppRun` holds a federated run's options as every run has them
(the round engine's FleetConfig, SecAgg+ SecureOptions or None, the paths of
the build, report, plot and checkpoint) plus :class:`ServerSettings`, what
only a ServerApp needs (how many boards to wait for, how long a gateway may
take).  :class:`tinyfed.FlowerRunOptions` (the API and ``tinyfed flower
run``) carries the same and converts to this.  A key is the CLI flag's name
without its dashes (``min-devices``, ``dp-noise-multiplier``, …); ``""`` stands
for "not set" (Flower's run config has no null).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

from dataclasses import dataclass, field

from tinyfed_toolchain.facts.errors import OptionsError
from tinyfed_toolchain.facts.train_config import TrainConfig

from ..rounds import DEFAULT_TRAIN, DEFAULT_UPDATES, FleetConfig
from ..secagg.aggregator import SecureOptions
from ..strategy import StrategyOptions

_UNSET = ""


@dataclass(frozen=True)
class ServerSettings:
    """What only a Flower ServerApp needs beyond a run's options."""

    min_devices: int = 2  # boards online before round 1 (and before a rejoin gives up on a gone gateway)
    wait: float = 300.0  # seconds to wait for them
    latency: float = 120.0  # seconds a gateway may add to a step's own time before its boards count as gone
    window: float = 0.3  # seconds the ServerApp gathers operations for one message per gateway
    check_exact: bool = False  # TEST IMAGES ONLY: each secure sum against the boards' plain encodings

    def check(self, secure: bool) -> None:
        if self.min_devices < 1 or (secure and self.min_devices < 2):
            raise OptionsError(f"min_devices {self.min_devices}: secure aggregation needs at least 2 boards")
        if self.wait < 0 or self.latency <= 0 or self.window < 0:
            raise OptionsError("wait >= 0, latency > 0 and window >= 0 are required")


def _fleet_default() -> FleetConfig:
    return FleetConfig(updates=DEFAULT_UPDATES, train=DEFAULT_TRAIN, train_timeout=600.0)


@dataclass
class ServerAppRun:
    """One run as the ServerApp gets it (paths on the SuperLink's machine)."""

    build: Path = Path("build/model")
    config: FleetConfig = field(default_factory=_fleet_default)
    secure: SecureOptions | None = field(default_factory=lambda: SecureOptions(clip=10.0))
    report: Path | None = None
    plot: Path | None = None
    state: Path | None = None  # default <build>/flower_state.json
    resume: bool = False
    centralised: bool = True
    server: ServerSettings = field(default_factory=ServerSettings)

    def check(self) -> None:
        s = self.secure
        if s is not None:
            s.check()
        if self.config.updates < 0:
            raise OptionsError(f"updates: {self.config.updates}")
        self.server.check(self.secure is not None)


def _opt(v: Any) -> Any:
    return _UNSET if v is None else v


def to_run_config(o: ServerAppRun) -> dict[str, Any]:
    """The flat run config of ``o`` (every key of the app's config table)."""
    c, t, s = o.config, o.config.train, o.config.strategy
    sec = o.secure or SecureOptions()
    return {
        "build": str(o.build), "updates": c.updates, "strategy": s.name, "buffer": _opt(s.buffer),
        "max-staleness": _opt(s.max_staleness), "server-lr": s.server_lr,
        "target-accuracy": _opt(c.target_accuracy), "min-clients": c.min_clients,
        "train-timeout": c.train_timeout, "persist": c.persist,
        "epochs": t.epochs, "lr": t.lr, "momentum": t.momentum, "weight-decay": t.weight_decay, "batch": t.batch,
        "schedule": str(t.schedule), "max-samples": t.max_samples, "seed": t.seed,
        "secure": o.secure is not None, "clip": sec.clip, "neighbours": _opt(sec.neighbours),
        "threshold": _opt(sec.threshold), "graph-seed": _opt(sec.seed),
        "dp": sec.dp, "dp-noise-multiplier": sec.dp_noise_multiplier, "dp-delta": sec.dp_delta,
        "report": str(o.report or _UNSET), "plot": str(o.plot or _UNSET), "state": str(o.state or _UNSET),
        "resume": o.resume, "centralised": o.centralised, "min-devices": o.server.min_devices,
        "wait": o.server.wait, "latency": o.server.latency, "window": o.server.window,
        "check-exact": o.server.check_exact,
    }


def _get(cfg: Mapping[str, Any], key: str, typ: Callable[[Any], Any], default: Any) -> Any:
    if key not in cfg:
        return default
    v = cfg[key]
    if v == _UNSET and default is None:
        return None
    try:
        if typ is bool:
            if isinstance(v, str):
                if v.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(v)
                return v.lower() in ("true", "1")
            return bool(v)
        if typ is int and isinstance(v, float) and not v.is_integer():
            raise ValueError(v)
        return typ(v)
    except (TypeError, ValueError):
        raise OptionsError(f"run config {key}={v!r}: expected {typ.__name__}") from None


def from_run_config(cfg: Mapping[str, Any]) -> ServerAppRun:
    """The run a run config asks for (keys it lacks keep the defaults)."""
    d = ServerAppRun()
    c, t, s = d.config, d.config.train, d.config.strategy
    sec0 = SecureOptions()

    def path(key: str) -> Path | None:
        v = _get(cfg, key, str, None)
        return Path(v) if v else None

    train = TrainConfig(epochs=_get(cfg, "epochs", int, t.epochs), lr=_get(cfg, "lr", float, t.lr),
                        momentum=_get(cfg, "momentum", float, t.momentum),
                        weight_decay=_get(cfg, "weight-decay", float, t.weight_decay),
                        batch=_get(cfg, "batch", int, t.batch), seed=_get(cfg, "seed", int, t.seed),
                        schedule=_get(cfg, "schedule", str, t.schedule),
                        max_samples=_get(cfg, "max-samples", int, t.max_samples))
    strategy = StrategyOptions(name=_get(cfg, "strategy", str, s.name), buffer=_get(cfg, "buffer", int, None),
                               max_staleness=_get(cfg, "max-staleness", int, None),
                               server_lr=_get(cfg, "server-lr", float, s.server_lr))
    config = dataclasses.replace(c, updates=_get(cfg, "updates", int, c.updates), train=train, strategy=strategy,
                                 min_clients=_get(cfg, "min-clients", int, c.min_clients),
                                 train_timeout=_get(cfg, "train-timeout", float, c.train_timeout),
                                 persist=_get(cfg, "persist", bool, c.persist),
                                 target_accuracy=_get(cfg, "target-accuracy", float, None))
    secure = None
    if _get(cfg, "secure", bool, True):
        secure = SecureOptions(clip=_get(cfg, "clip", float, sec0.clip), neighbours=_get(cfg, "neighbours", int, None),
                               threshold=_get(cfg, "threshold", int, None), seed=_get(cfg, "graph-seed", int, None),
                               dp_noise_multiplier=_get(cfg, "dp-noise-multiplier", float, sec0.dp_noise_multiplier),
                               dp_delta=_get(cfg, "dp-delta", float, sec0.dp_delta),
                               dp=_get(cfg, "dp", str, sec0.dp))
    sv = d.server
    server = ServerSettings(min_devices=_get(cfg, "min-devices", int, sv.min_devices),
                            wait=_get(cfg, "wait", float, sv.wait), latency=_get(cfg, "latency", float, sv.latency),
                            window=_get(cfg, "window", float, sv.window),
                            check_exact=_get(cfg, "check-exact", bool, sv.check_exact))
    o = ServerAppRun(build=Path(_get(cfg, "build", str, str(d.build))), config=config, secure=secure,
                     report=path("report"), plot=path("plot"), state=path("state"),
                     resume=_get(cfg, "resume", bool, False), centralised=_get(cfg, "centralised", bool, d.centralised),
                     server=server)
    o.check()
    return o


__all__ = ["ServerAppRun", "ServerSettings", "from_run_config", "to_run_config"]
