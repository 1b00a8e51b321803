"""The model verbs: ``build`` (data -> ... -> firmware images), ``verify`` and ``profile``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinyfed_host.profile import ProfileOptions, ProfileResult, profile_model
from tinyfed_toolchain.build import BuildOptions, BuildResult, run_build
from tinyfed_toolchain.facts.errors import InputError
from tinyfed_toolchain.verify import VerifyResult
from tinyfed_toolchain.verify import verify as _verify

from .options import VerifyOptions


def build(options: BuildOptions | None = None, /, *, log: Callable[[str], None] = print,
          **fields: Any) -> BuildResult:
    """Data -> teacher -> distilled int8 student -> emitted C -> one shard and image per device.

    Give a :class:`BuildOptions`, or its fields as keywords::

        result = tinyfed.build(dataset="my_data.npz", devices=2, out_dir=Path("build/mine"))

    Returns the :class:`BuildResult` (paths, emitted model info, budget, images, the
    verify figures); ``build_report.json`` in the output folder records the same.
    """
    opts = options if options is not None else BuildOptions(**fields)
    return run_build(opts, log=log)


def verify(model: Path | bytes | VerifyOptions, inputs: np.ndarray | Path | None = None, *,
           work_dir: Path | None = None) -> VerifyResult:
    """The emitted C (compiled for this machine) against the tflite-micro runtime, byte for byte.

    ``model``: the int8 ``.tflite`` (path or bytes), or a :class:`VerifyOptions`;
    ``inputs``: int8 samples ``[N, *input_shape]`` (an array or a ``.npy``).
    ``result.mismatches`` counts the samples whose outputs differ in any byte.
    """
    if isinstance(model, VerifyOptions):
        opts = model
        model, inputs, work_dir = opts.model, opts.inputs, opts.work_dir
    try:
        tflite = model if isinstance(model, bytes) else Path(model).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read model {model}: {exc.strerror or exc}") from exc
    if inputs is None:
        raise InputError("verify: no inputs")
    if isinstance(inputs, np.ndarray):
        x = inputs
    else:
        try:
            x = np.load(inputs)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read inputs {inputs}: {exc}") from exc
    return _verify(tflite, x, work_dir)


def profile(options: ProfileOptions | None = None, /, **fields: Any) -> ProfileResult:
    """Instructions per inference of a model on an emulated board, in total and per layer.

    Builds the model's image for the board (its kernels: optimized on cores with
    the DSP extension), runs it under QEMU ``-icount`` on ``runs`` int8 inputs and
    returns the mean instructions per inference, each layer's, the arena and the
    image's flash and SRAM.  Instruction counts, not cycles::

        r = tinyfed.profile(model=Path("build/model/model.tflite"), board="mps2-an505")
        print(r.insns_per_inference, [(layer.op, layer.insns) for layer in r.layers])
    """
    opts = options if options is not None else ProfileOptions(**fields)
    return profile_model(opts)


def device_images(build_dir: Path) -> list[Path]:
    """The device images of a build, in device order."""
    return sorted((Path(build_dir) / "devices").glob("dev*/firmware.elf"), key=lambda p: int(p.parent.name[3:]))


def ensure_images(build_dir: Path, n: int, board: str, dataset: str = "digits", quick: bool = False) -> list[Path]:
    """Device images for ``n`` boards, building them (into ``build_dir``) if they are missing
    or were built for another board."""
    images = device_images(build_dir)
    report = Path(build_dir) / "build_report.json"
    stale = False
    if report.exists():
        stale = json.loads(report.read_text()).get("options", {}).get("board") != board
    if len(images) < n or stale:
        print(f"[tinyfed] building {n} device images for {board} into {build_dir} ...", file=sys.stderr)
        run_build(BuildOptions(dataset=dataset, out_dir=Path(build_dir), board=board, devices=n, quick=quick))
        images = device_images(build_dir)
    return images[:n]


__all__ = ["build", "verify", "profile", "device_images", "ensure_images"]
