"""What a federated run needs from a build folder (``tinyfed build``), on the host.

* the model identity (name, hash) the fleet trains, and the training plan;
* the initial parameters (``plan->init_params``, through the host engine);
* the held-out split (``test_x_int8.npy`` / ``test_y.npy``) to evaluate the
  global parameters with the same C code the devices run
  (:class:`tinyfed_toolchain.training.native_trainer.NativeTrainer`);
* the host copy of the device shards (``devices/devK/shard.npz``), written by
  the build that generated them, for ``tinyfed simulate`` and the centralised
  baseline (fine-tuning the same parameters on the union of the shards).
  The boards never send their shards anywhere: the host has these only
  because it built the images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyfed_toolchain.image.provision import load_manifest
from tinyfed_toolchain.facts.errors import TinyfedError
from tinyfed_toolchain.facts.train_config import TrainConfig
from tinyfed_toolchain.training.native_trainer import NativeTrainer

from .rounds import Evaluator


class BuildMissing(TinyfedError, FileNotFoundError):
    """The build folder lacks something a federated run needs."""


@dataclass
class FlBuild:
    out_dir: Path
    model_dir: Path
    model_name: str
    model_hash: bytes
    test_x: np.ndarray
    test_y: np.ndarray
    shards: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    train_info: dict[str, Any] = field(default_factory=dict)
    train_dir: Path | None = None  # the training plan (train_data.c), when not beside the model tables
    options: dict[str, Any] = field(default_factory=dict)  # the build's options (build_report.json)

    @classmethod
    def load(cls, out_dir: Path) -> "FlBuild":
        out = Path(out_dir)
        model_dir = out / "model_c"
        info_path = model_dir / "model_info.json"
        if not info_path.is_file():
            raise BuildMissing(f"{out}: no model_c/model_info.json (run `tinyfed build --out {out}` first)")
        if not (model_dir / "train_data.c").is_file():
            raise BuildMissing(f"{out}: no training plan (model_c/train_data.c): rebuild with this tinyfed")
        info = json.loads(info_path.read_text())
        tx, ty = out / "test_x_int8.npy", out / "test_y.npy"
        if not (tx.is_file() and ty.is_file()):
            raise BuildMissing(f"{out}: no held-out split (test_x_int8.npy, test_y.npy)")
        shards: list[tuple[np.ndarray, np.ndarray]] = []
        images: list[Path] = []
        devs = sorted((out / "devices").glob("dev*"), key=lambda p: int(p.name[3:]))
        for d in devs:
            if (d / "shard.npz").is_file():
                z = np.load(d / "shard.npz")
                shards.append((z["x"], z["y"].astype(np.uint8)))
            if (d / "firmware.elf").is_file():
                images.append(d / "firmware.elf")
        tinfo = json.loads((model_dir / "train_info.json").read_text()) if (model_dir / "train_info.json").is_file() else {}
        x = np.load(tx)
        try:
            opts = dict(json.loads((out / "build_report.json").read_text()).get("options") or {})
        except (OSError, ValueError):
            opts = {}
        return cls(out, model_dir, str(info.get("name", "")), bytes.fromhex(info["hash"]),
                   x.reshape(len(x), -1), np.load(ty).astype(np.uint8), shards, images, tinfo, None, opts)

    @property
    def manifest(self) -> Any:
        """The fleet manifest the build's images pin (``<build>/fleet/manifest.json``), or None."""
        path = self.out_dir / "fleet" / "manifest.json"
        return load_manifest(path) if path.is_file() else None

    @property
    def plan_dir(self) -> Path:
        return self.train_dir or self.model_dir

    @property
    def board(self) -> str:
        return str(self.options.get("board") or "mps2-an386")

    def trainer(self) -> NativeTrainer:
        return NativeTrainer(self.model_dir, self.train_dir)

    def train_mem_bytes(self) -> int | None:
        """The devices' training memory (TFD_TRAIN_MEM_BYTES of the plan)."""
        mem = (self.train_info.get("memory") or {}).get("mem_bytes")
        return int(mem) if mem is not None else None

    def init_params(self) -> np.ndarray:
        return self.trainer().params()

    def evaluator(self) -> Evaluator:
        return make_evaluator(self.trainer(), self.test_x, self.test_y)

    def model_json(self) -> dict[str, Any]:
        return {"name": self.model_name, "hash": self.model_hash.hex(),
                "n_params": self.train_info.get("n_params"), "scheme": self.train_info.get("scheme"),
                "train_mem_bytes": self.train_mem_bytes()}


def make_evaluator(trainer: NativeTrainer, x: np.ndarray, y: np.ndarray) -> Evaluator:
    """evaluate(params) -> (accuracy, mean cross-entropy) on (x, y), with the device's C code."""

    def evaluate(params: np.ndarray) -> tuple[float, float]:
        trainer.set_params(params)
        correct, loss_sum, n = trainer.eval(x, y)
        return correct / n, loss_sum / n

    return evaluate


def centralised(model_dir: Path, shards: list[tuple[np.ndarray, np.ndarray]], test: tuple[np.ndarray, np.ndarray],
                cfg: TrainConfig, rounds: int, train_dir: Path | None = None) -> dict[str, Any]:
    """Centralised fine-tuning of the same parameters on the union of the shards,
    with the federated run's epoch budget: ``rounds`` x ``cfg.epochs`` epochs, in
    ``rounds`` chunks (the curve is evaluated after each chunk).  Same
    optimizer, learning rate, batch and engine as the devices."""
    tr = NativeTrainer(model_dir, train_dir)
    x = np.concatenate([s[0].reshape(len(s[0]), -1) for s in shards])
    y = np.concatenate([s[1] for s in shards]).astype(np.uint8)
    ev = make_evaluator(NativeTrainer(model_dir, train_dir), *test)
    init = tr.params()
    curve = [ev(init)]
    tr.set_params(init)
    for r in range(1, rounds + 1):
        tr.fit(TrainConfig(**{**cfg.__dict__, "seed": (cfg.seed + r * 7919) & 0xFFFFFFFF}), x, y)
        curve.append(ev(tr.params()))
    return {"accuracy": curve[-1][0], "loss": curve[-1][1], "epochs": rounds * cfg.epochs,
            "samples": int(len(y)), "data": f"union of the build's {len(shards)} device shards", "curve": [{"round": r, "accuracy": a, "loss": l} for r, (a, l) in enumerate(curve)]}


__all__ = ["FlBuild", "BuildMissing", "make_evaluator", "centralised"]
