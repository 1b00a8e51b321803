"""The host's checkpoint of a federated run, so a host killed mid-run loses at
most the round it was in (``tinyfed fleet|simulate|demo --resume``).

After every evaluated round (round 0 included) the run writes one JSON file,
atomically (a temporary file in the same folder, fsync, ``os.replace``):

    version      CHECKPOINT_VERSION
    kind         "fleet" | "simulate" | "demo"
    model_hash   the global model's hash (a checkpoint of another model is refused)
    options      what must not change across a resume: the FleetConfig (strategy
                 included) without ``updates`` (which may grow) and the
                 aggregation's name
    round        the last completed aggregation step
    model_version  the model version after it
    time_s       the run's clock then (virtual seconds in simulation)
    params       the global parameters after it (float32 little endian, base64)
    records      the steps' report rows (RoundRecord.as_dict)
    aggregator   the aggregation's own state (SecAgg+: DP rounds accounted, last
                 SecAgg round id), restored with ``load_state``
    strategy     the strategy's state (FTTE: running drift and variance)

On resume the runner says HELLO to every participant as usual (a device may be
anywhere in the step it was in: the next PARAMS restarts it), skips step 0's
evaluation and continues with step ``round + 1`` from ``params``.  Updates in
flight or buffered when the host died are lost; every device starts again on
the checkpointed version.  The step seeds depend on the step number only, so
a resumed synchronous plain run reproduces the uninterrupted one exactly
(tests/test_resume.py).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import TinyfedError

from .report import json_clean
from .rounds import FleetConfig, RoundRecord

CHECKPOINT_VERSION = 2


class CheckpointError(TinyfedError, RuntimeError):
    """The checkpoint is missing, unreadable or belongs to another run."""


def run_options(cfg: FleetConfig, aggregator_name: str) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one (``updates`` may grow)."""
    d = asdict(cfg)
    d.pop("updates")
    d.pop("target_accuracy")
    return {"fleet": d, "aggregator": aggregator_name}


@dataclass
class Checkpoint:
    kind: str
    model_hash: bytes
    options: dict[str, Any]
    round: int
    version: int
    params: np.ndarray
    records: list[dict[str, Any]]
    aggregator: dict[str, Any]
    strategy: dict[str, Any]
    time_s: float

    def restored_records(self) -> list[RoundRecord]:
        return [RoundRecord.from_dict(r) for r in self.records]

    # -- file ---------------------------------------------------------------------------------
    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        p = np.ascontiguousarray(self.params, dtype="<f4")
        doc = {"version": CHECKPOINT_VERSION, "kind": self.kind, "model_hash": self.model_hash.hex(),
               "options": self.options, "round": self.round, "model_version": self.version, "time_s": self.time_s,
               "n_params": int(p.size),
               "params": base64.b64encode(p.tobytes()).decode("ascii"),
               "records": self.records, "aggregator": self.aggregator, "strategy": self.strategy}
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(json_clean(doc), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def read(cls, path: Path) -> "Checkpoint":
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no checkpoint to resume from (a run writes it after every "
                                  f"round; start without --resume)") from None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: unreadable checkpoint ({exc})") from None
        try:
            if doc["version"] != CHECKPOINT_VERSION:
                raise CheckpointError(f"{path}: checkpoint version {doc['version']}, this tinyfed reads "
                                      f"{CHECKPOINT_VERSION}")
            raw = base64.b64decode(doc["params"], validate=True)
            params = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            if params.size != int(doc["n_params"]) or not np.all(np.isfinite(params)):
                raise CheckpointError(f"{path}: corrupt parameters")
            return cls(str(doc["kind"]), bytes.fromhex(doc["model_hash"]), dict(doc["options"]),
                       int(doc["round"]), int(doc["model_version"]), params, list(doc["records"]),
                       dict(doc.get("aggregator") or {}), dict(doc.get("strategy") or {}), float(doc["time_s"]))
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: malformed checkpoint ({type(exc).__name__}: {exc})") from None

    def check_compatible(self, path: Path, *, model_hash: bytes, options: dict[str, Any], n_params: int,
                         rounds: int) -> None:
        """Refuse to resume a run of another model or with other options."""
        if self.model_hash != model_hash:
            raise CheckpointError(f"{path}: checkpoint of model {self.model_hash.hex()}, this build is "
                                  f"{model_hash.hex()}")
        if self.params.size != n_params:
            raise CheckpointError(f"{path}: {self.params.size} parameters, the model trains {n_params}")
        if json_clean(self.options) != json_clean(json.loads(json.dumps(options))):
            diff = sorted(k for k in set(self.options["fleet"]) | set(options["fleet"])
                          if self.options["fleet"].get(k) != json.loads(json.dumps(options["fleet"])).get(k))
            if self.options.get("aggregator") != options.get("aggregator"):
                diff.append("aggregator (secure / --no-secure)")
            raise CheckpointError(f"{path}: the interrupted run used other options ({', '.join(diff)}): "
                                  f"resume with the same options, or start a new run without --resume")
        if rounds < self.round:
            raise CheckpointError(f"{path}: {self.round} steps already done, --updates {rounds} is fewer")


def new_checkpoint(kind: str, model_hash: bytes, options: dict[str, Any], round_: int, version: int,
                   params: np.ndarray, records: Sequence[RoundRecord], aggregator_state: dict[str, Any],
                   strategy_state: dict[str, Any], time_s: float) -> Checkpoint:
    return Checkpoint(kind, bytes(model_hash), json.loads(json.dumps(options)), int(round_), int(version),
                      np.asarray(params, dtype=np.float32).copy(), [json_clean(r.as_dict()) for r in records],
                      dict(aggregator_state), json_clean(dict(strategy_state)), float(time_s))


__all__ = ["Checkpoint", "CheckpointError", "CHECKPOINT_VERSION", "new_checkpoint", "run_options"]
