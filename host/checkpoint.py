"""The host's checkpoint of a federated run, so a host killed mid-run loses at
most the round it was in (``tinyfed fleet|simulate|demo --resume``).

After every evaluated round (round 0 included) the run writes one JSON file,
atomically (a temporary file in the same folder, fsync, ``os.replace``):

    version      CHECKPOINT_VERSION
    kind         "fleet" | "simulate" | "demo"
    model_hash   the global model's hash (a checkpoint of another model is refused)
    options      what must not change across a resume: the FleetConfig without
                 ``rounds`` (which may grow) and the aggregator's name
    round        the last completed round
    params       the global parameters after it (float32 little endian, base64)
    records      the rounds' report rows (RoundRecord.as_dict)
    aggregator   the aggregator's own state (SecAgg+: DP rounds accounted, last
                 SecAgg round id), restored with ``load_state``

On resume the runner says HELLO to every participant as usual (a device may be
anywhere in the round it was in: the next PARAMS restarts it), skips round 0's
evaluation and continues with round ``round + 1`` from ``params``.  The round
seeds depend on the round number only, so a resumed plain run reproduces the
uninterrupted one exactly (tests/test_resume.py).
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

from .report import json_clean
from .rounds import FleetConfig, RoundRecord

CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """The checkpoint is missing, unreadable or belongs to another run."""


def run_options(cfg: FleetConfig, aggregator_name: str) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one (``rounds`` may grow)."""
    d = asdict(cfg)
    d.pop("rounds")
    return {"fleet": d, "aggregator": aggregator_name}


@dataclass
class Checkpoint:
    kind: str
    model_hash: bytes
    options: dict[str, Any]
    round: int
    params: np.ndarray
    records: list[dict[str, Any]]
    aggregator: dict[str, Any]

    def restored_records(self) -> list[RoundRecord]:
        return [RoundRecord.from_dict(r) for r in self.records]

    # -- file ---------------------------------------------------------------------------------
    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        p = np.ascontiguousarray(self.params, dtype="<f4")
        doc = {"version": CHECKPOINT_VERSION, "kind": self.kind, "model_hash": self.model_hash.hex(),
               "options": self.options, "round": self.round, "n_params": int(p.size),
               "params": base64.b64encode(p.tobytes()).decode("ascii"),
               "records": self.records, "aggregator": self.aggregator}
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
                       int(doc["round"]), params, list(doc["records"]), dict(doc.get("aggregator") or {}))
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
            raise CheckpointError(f"{path}: {self.round} rounds already done, --rounds {rounds} is fewer")


def new_checkpoint(kind: str, model_hash: bytes, options: dict[str, Any], round_: int, params: np.ndarray,
                   records: Sequence[RoundRecord], aggregator_state: dict[str, Any]) -> Checkpoint:
    return Checkpoint(kind, bytes(model_hash), json.loads(json.dumps(options)), int(round_),
                      np.asarray(params, dtype=np.float32).copy(), [json_clean(r.as_dict()) for r in records],
                      dict(aggregator_state))


__all__ = ["Checkpoint", "CheckpointError", "CHECKPOINT_VERSION", "new_checkpoint", "run_options"]
