"""`tinyfed build`: data → teacher → distilled int8 student → emitted C → firmware images.

Output folder layout (default ``build/model``)::

    model.tflite            full-int8 student (or the --tflite given)
    ml_report.json          teacher / student / distilled / int8 accuracy
    model_c/                model_data.{c,h}, model_info.json (emitted tables),
                            train_data.{c,h}, train_info.json (the on-device training plan)
    test_x_int8.npy, test_y.npy  the held-out split (int8, model-quantized): host-side evaluation
    devices/devK/           shard_data.c (device K's private shard) and firmware.{elf,bin,map};
                            shard.npz (the same shard, for `tinyfed simulate` and the centralised
                            baseline on the build host -- the boards never send it anywhere)
    build_report.json       plan, budget, verify result, image sizes — the whole build's record
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .compile.emit_c import emit_model
from .compile.plan import plan_model
from .compile.tflite_reader import Graph, read_tflite
from .facts.boards import Board, load_board
from .facts.c_headers import define
from .facts.errors import EXIT_FAILED, OptionsError, TinyfedError
from .image.budget import Budget, BudgetError, model_budget
from .image.emit_shard import emit_shard
from .image.firmware import ImageInfo, build_image
from .image.provision import WEIGHT_ONE, load_or_create_fleet_key, make_fleet, write_device, write_fleet
from .ml.data import Dataset, DataError, load_dataset, partition
from .ml.quantize import quantize_inputs
from .training.emit import emit_train
from .training.layers import TrainPlanError
from .training.schemes import parse_scheme, plan_scheme


class VerifyMismatch(TinyfedError):
    """The emitted C disagrees with the tflite-micro runtime (a tinyfed bug: exit code 1)."""

    exit_code = EXIT_FAILED


@dataclass
class BuildOptions:
    dataset: str | None = None  # None: digits when training; no shards for a given --tflite
    tflite: Path | None = None
    out_dir: Path = Path("build/model")
    board: str = "mps2-an386"
    devices: int = 4
    partition: str = "dirichlet"
    alpha: float = 0.5
    seed: int = 0
    images: bool = True
    quick: bool = False
    verify_samples: int = 0  # 0 = the whole held-out split
    # Share of the training split the toolchain pretrains on (server-side, "public"
    # data).  The devices' private shards come from the rest, which the toolchain
    # never trains on, so federated rounds learn from data the host has not seen.
    public_fraction: float = 0.15
    # on-device training: what trains ("auto" = last2, or last1 for a one-layer model;
    # "lastK", "bias", "loraR"; "none" = inference-only images) and how it starts
    # ("pretrained" = the int8 model's values; "reset-head" = the classifier layer
    # re-initialised, Glorot-uniform weights and zero bias: it is learned federatedly)
    train_scheme: str = "auto"
    head_init: str = "pretrained"
    # images with the TEST-gated messages (TFD_TEST_MESSAGES=1: INFER_TEST, SA_ENCODED);
    # they answer requests a release image refuses, so they are for tests only
    test_images: bool = False
    # images without the plain update path (TFD_FL_SECURE_ONLY=1): an update leaves a
    # device only masked (SecAgg+); --no-secure runs refuse them
    secure_only: bool = False
    # device identity, provisioned into each image (firmware/include/tfd/identity.h): the
    # user's fleet key signs the manifest of the devices' public keys (default
    # <out>/fleet/fleet.key, created once, mode 0600: keep it offline); the manifest's policy
    fleet_key: str | None = None
    min_neighbours: int = 2
    # ... and the smallest distributed-DP noise multiplier a device accepts (0: none required;
    # > 0: every secure round must run --dp distributed with at least this z)
    dp_min_noise_multiplier: float = 0.0
    # ... and the smallest staleness factor a device accepts for its public weight, in (0, 1]
    # (0: none): no member of a secure sum weighs less than this x its samples, so a host can
    # weight one member at most 1/factor times another per sample (manifest weight_floor, 1/256 units)
    weight_floor: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    out_dir: Path
    tflite: Path
    model_dir: Path
    info: dict[str, Any]
    budget: Budget
    device_dirs: list[Path]
    images: list[Any]  # firmware.ImageInfo
    verify_mismatches: int | None
    verify_total: int | None
    report: dict[str, Any]


def _tflm_arena_or_none(path: Path) -> int | None:
    try:
        from .compile.tflm import tflm_arena

        return tflm_arena(str(path)).total
    except Exception:
        return None


@dataclass
class _Model:
    """Step 1's result, handed to the later steps in memory."""

    tflite: bytes
    path: Path  # out/model.tflite
    name: str
    dataset: Dataset | None = None  # what verification and the shards come from (None: no data)
    held_out: tuple[np.ndarray, np.ndarray] | None = None  # (int8 inputs, labels) of the held-out split
    private: tuple[np.ndarray, np.ndarray] | None = None  # the devices' part of the training split
    ml_report: dict[str, Any] | None = None


def run_build(opts: BuildOptions, log: Callable[[str], None] = print) -> BuildResult:
    """``tinyfed build``: the steps below, results handed from one to the next in memory;
    the files in the output folder (module docstring) are outputs only."""
    t0 = time.monotonic()
    _check_options(opts)  # contradictory or unknown options fail before any training
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}}

    model = _obtain_model(opts, out, log)  # 1. train + distill + quantize, or take the given .tflite
    if model.ml_report is not None:
        report["ml"] = model.ml_report
    graph = read_tflite(model.tflite)  # 2. plan + emit the C tables and the training plan
    plan = plan_model(graph, model.tflite)
    model_dir = out / "model_c"
    info = emit_model(plan, model_dir, name=model.name)
    log(f"emitted {model_dir}/model_data.c: {info['n_layers']} layers ({', '.join(info['layers'])}), "
        f"weights {info['const_bytes']:,} B, arena {info['arena_bytes']:,} B")
    training = _emit_training(plan, model_dir, model.name, opts, log, samples=_server_samples(model, graph, opts))
    if training is not None:
        report["training"] = training

    board = load_board(opts.board)  # 3. the budget, before anything is built or flashed
    budget = model_budget(info, opts.board, board.flash_bytes, board.ram_bytes)
    budget.tflm_arena = _tflm_arena_or_none(model.path)
    report["plan"] = {k: info[k] for k in ("hash", "arena_bytes", "const_bytes", "n_layers", "layers")}
    report["tflm_arena_bytes"] = budget.tflm_arena

    held_out = _held_out(model, graph, out)  # 4. the emitted C against tflite-micro on the held-out split
    mismatches = total = None
    if held_out is not None:
        mismatches, total = _verify_emitted(model.tflite, held_out[0], opts, out, log)
        report["verify"] = {"mismatches": mismatches, "total": total}

    device_dirs: list[Path] = []  # 5. a shard and a firmware image per device
    images: list[Any] = []
    if model.dataset is not None and opts.devices > 0:
        device_dirs, report["shards"] = _device_shards(model, model.dataset, graph, opts, out, log)
        if opts.images:
            images = _device_images(opts, board, model_dir, device_dirs, training, budget, report, log)
    for line in budget.lines():
        log(line)
    report["budget"] = asdict(budget)
    report["seconds"] = round(time.monotonic() - t0, 1)
    (out / "build_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return BuildResult(out, model.path, model_dir, info, budget, device_dirs, images, mismatches, total, report)


def _check_options(opts: BuildOptions) -> None:
    image_defines(opts)
    parse_scheme(opts.train_scheme)
    if opts.head_init not in ("pretrained", "reset-head"):
        raise OptionsError(f"head_init {opts.head_init!r}: pretrained | reset-head")


def _obtain_model(opts: BuildOptions, out: Path, log: Callable[[str], None]) -> _Model:
    """The int8 model: the ML pipeline's (with its data), or the given .tflite (with
    ``opts.dataset``'s data, if one is given)."""
    path = out / "model.tflite"
    if opts.tflite is not None:
        data = Path(opts.tflite).read_bytes()
        read_tflite(data)  # refuse a malformed model before anything else
        if Path(opts.tflite).resolve() != path.resolve():
            path.write_bytes(data)
        ds = load_dataset(opts.dataset, seed=opts.seed) if opts.dataset else None
        for note in ds.notes if ds is not None else []:
            log(f"warning: dataset {opts.dataset}: {note}")
        return _Model(data, path, Path(opts.tflite).stem, dataset=ds)
    from .ml.pipeline import PipelineConfig, run_ml_pipeline  # TensorFlow: only when training

    cfg = PipelineConfig(dataset=opts.dataset or "digits", seed=opts.seed, out_dir=out,
                         public_fraction=opts.public_fraction if opts.devices > 0 else 1.0)
    ml = run_ml_pipeline(cfg.quick() if opts.quick else cfg, log=log)
    ds_name = opts.dataset or "digits"
    assert ml.x_test_int8 is not None
    return _Model(ml.tflite, path, ds_name if "/" not in ds_name else Path(ds_name).stem, dataset=ml.dataset,
                  held_out=(ml.x_test_int8, ml.dataset.y_test), private=ml.private, ml_report=ml.report)


def _quantized(x: np.ndarray, graph: Graph) -> np.ndarray:
    """Float samples -> the model's int8 input, shaped like it."""
    t = graph.tensor(graph.inputs[0])
    return quantize_inputs(x, t.scale, t.zero_point).reshape((len(x), *t.shape[1:]))


def _held_out(model: _Model, graph: Graph, out: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The held-out split as int8 model inputs and labels (written for host-side evaluation)."""
    if model.held_out is not None:
        return model.held_out  # the pipeline wrote test_x_int8.npy / test_y.npy
    ds = model.dataset
    if ds is None:
        return None
    t = graph.tensor(graph.inputs[0])
    if int(np.prod(ds.input_shape)) != t.num_elements:
        raise DataError(f"dataset {ds.name!r} samples have shape {list(ds.input_shape)}, "
                        f"the model input {t.name!r} has shape {list(t.shape)}")
    x = _quantized(ds.x_test, graph)
    np.save(out / "test_x_int8.npy", x)
    np.save(out / "test_y.npy", ds.y_test)
    return x, ds.y_test


def _verify_emitted(tflite: bytes, x: np.ndarray, opts: BuildOptions, out: Path,
                    log: Callable[[str], None]) -> tuple[int, int]:
    from .verify import verify

    res = verify(tflite, x[: opts.verify_samples] if opts.verify_samples else x, out / "verify")
    log(f"verify (emitted C vs tflite-micro, held-out split): mismatches: {res.mismatches} of {res.total}")
    if res.mismatches:
        raise VerifyMismatch(f"emitted C disagrees with tflite-micro on {res.mismatches} of {res.total} inputs")
    return res.mismatches, res.total


def _device_shards(model: _Model, ds: Dataset, graph: Graph, opts: BuildOptions, out: Path,
                   log: Callable[[str], None]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Partition the devices' data into one shard per device: ``shard_data.c`` (for the
    image) and ``shard.npz`` (for ``tinyfed simulate`` and the centralised baseline)."""
    x_priv, y_priv = ds.x_train, ds.y_train
    if model.private is not None and len(model.private[1]):
        x_priv, y_priv = model.private
    parts = partition(x_priv, y_priv, opts.devices, scheme=opts.partition,  # type: ignore[arg-type]
                      alpha=opts.alpha, seed=opts.seed)
    dirs, rows = [], []
    for k, (xs, ys) in enumerate(parts):
        d = out / "devices" / f"dev{k}"
        xq = _quantized(xs, graph)
        emit_shard(xq, ys, d, device=k, num_classes=ds.num_classes)
        np.savez(d / "shard.npz", x=xq, y=np.asarray(ys, dtype=np.uint8))
        dirs.append(d)
        rows.append({"device": k, "samples": int(len(ys)),
                     "classes": np.bincount(ys, minlength=ds.num_classes).tolist()})
    log(f"shards ({opts.partition}{f', alpha={opts.alpha}' if opts.partition == 'dirichlet' else ''}): "
        + ", ".join(f"dev{r['device']}={r['samples']}" for r in rows))
    return dirs, rows


def _device_images(opts: BuildOptions, board: Board, model_dir: Path, device_dirs: list[Path],
                   training: dict[str, Any] | None, budget: Budget, report: dict[str, Any],
                   log: Callable[[str], None]) -> list[ImageInfo]:
    """One firmware image per device (model + training plan + its shard); the image
    sizes go into the budget and the report."""
    storage_kb = None
    if training is not None and board.emulated:
        # Emulated flash is resizable: reserve what the A/B parameter store needs.
        need_kb = -(-int(training["param_store_bytes"]) // 1024)
        storage_kb = max(int(board.spec.get("storage_kb", 16)), need_kb)
    _provision(opts, device_dirs, log)
    images = [build_image(opts.board, model_dir, d, extra_sources=[d / "shard_data.c", d / "identity_data.c"],
                          seed=None, quiet=True, storage_kb=storage_kb, defines=image_defines(opts))
              for d in device_dirs]
    if not images:
        return images
    if training is not None:
        need = int(training["param_store_bytes"])
        training["storage_bytes"] = images[0].storage_size
        training["persist"] = need <= images[0].storage_size
        if not training["persist"]:
            log(f"warning: the parameter store needs {need:,} B of storage, {opts.board} images "
                f"reserve {images[0].storage_size:,} B: trained parameters will not persist")
    budget.image_flash = max(i.flash_used for i in images)
    budget.image_ram = max(i.ram_used for i in images)
    report["images"] = [
        {"device": k, "elf": str(i.elf), "flash_used": i.flash_used, "ram_used": i.ram_used,
         "flash_size": i.flash_size, "ram_size": i.ram_size, "test_messages": opts.test_images,
         "secure_only": opts.secure_only}
        for k, i in enumerate(images)
    ]
    if opts.test_images:
        log("note: TEST images (TFD_TEST_MESSAGES=1): they reveal model outputs and the unmasked "
            "encoded update on request -- never deploy them")
    return images


def _provision(opts: BuildOptions, device_dirs: list[Path], log: Callable[[str], None]) -> None:
    """Device identities: a key pair per device (id k + 1 for devK), the manifest of their
    public keys signed with the fleet key, one identity record per image (secret, 0600)."""
    if not (0 <= opts.dp_min_noise_multiplier <= 4_000_000):
        raise OptionsError(f"--dp-min-noise-multiplier {opts.dp_min_noise_multiplier:g}: must be 0 (no floor) .. 4e6")
    if not (0 <= opts.weight_floor <= 1):
        raise OptionsError(f"--weight-floor {opts.weight_floor:g}: a staleness factor, 0 (no floor) .. 1")
    out = Path(opts.out_dir)
    key = load_or_create_fleet_key(Path(opts.fleet_key) if opts.fleet_key else out / "fleet" / "fleet.key")
    fleet = make_fleet(key, [k + 1 for k in range(len(device_dirs))], min_neighbours=opts.min_neighbours,
                       dp_min_noise_multiplier=opts.dp_min_noise_multiplier,
                       weight_floor=math.ceil(opts.weight_floor * WEIGHT_ONE))
    write_fleet(fleet, out / "fleet")
    for k, d in enumerate(device_dirs):
        write_device(fleet, k + 1, d)
    log(f"identity: {len(device_dirs)} device keys, manifest v{fleet.manifest.version} signed with the fleet key "
        f"{key.path} (keep it offline), {out / 'fleet' / 'manifest.json'}")
    if opts.dp_min_noise_multiplier > 0:
        log(f"policy: the devices refuse any secure round without distributed DP of noise multiplier >= "
            f"{fleet.manifest.dp_min_z_milli / 1000:g} (--dp distributed)")
    if fleet.manifest.weight_floor:
        log(f"policy: the devices refuse a public weight below {fleet.manifest.weight_floor}/256 of their samples "
            f"(weight floor {opts.weight_floor:g})")


def reset_head(tp: Any, seed: int = 0) -> Any:
    """The plan with its last trained layer's parameters re-initialised:
    Glorot-uniform weight rows, zero bias (real-unit parameters only)."""
    import dataclasses

    if tp.options.domain != "real":
        raise TrainPlanError("reset-head needs real-unit parameters (TrainOptions(domain='real'))")
    last = max(s.layer for s in tp.segments)
    p = np.array(tp.init_params, dtype=np.float32, copy=True)
    rng = np.random.default_rng(seed)
    fan_out = max(s.rows for s in tp.segments if s.layer == last)
    for s in tp.segments:
        if s.layer != last:
            continue
        view = p[s.offset:s.offset + s.count]
        if s.kind == "weight":
            limit = float(np.sqrt(6.0 / (s.row_len + fan_out)))
            view[:] = rng.uniform(-limit, limit, size=s.count).astype(np.float32)
        elif s.kind in ("bias", "lora_b"):
            view[:] = 0.0
    return dataclasses.replace(tp, init_params=p)


def _server_samples(model: _Model, graph: Graph, opts: BuildOptions) -> dict[str, Any]:
    """What a ``sparse`` scheme's contribution analysis runs on: the toolchain's own (public)
    training samples -- the server picks the fleet's one sparse subset w* without the devices'
    data.  Nothing for other schemes."""
    if parse_scheme(opts.train_scheme).kind != "sparse":
        return {}
    ds = model.dataset
    if ds is None or not len(ds.y_train):
        raise OptionsError(f"--train-scheme {opts.train_scheme}: the sparse update is picked by contribution "
                           "analysis on the toolchain's training samples: give --dataset")
    return {"x": _quantized(ds.x_train, graph), "y": np.asarray(ds.y_train), "work_dir": opts.out_dir / "sparse"}


def _emit_training(plan: Any, model_dir: Path, name: str, opts: BuildOptions,
                   log: Callable[[str], None], samples: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Plan + emit the on-device training tables next to the model's (train_data.{c,h});
    ``samples``: x / y / work_dir of a sparse scheme's contribution analysis."""
    for stale in ("train_data.c", "train_data.h", "train_info.json"):
        (model_dir / stale).unlink(missing_ok=True)
    tp = plan_scheme(plan, opts.train_scheme, log=log, **(samples or {}))
    if tp is None:
        return None
    if opts.head_init == "reset-head":
        tp = reset_head(tp, opts.seed)
    tinfo = emit_train(tp, model_dir, name=name)
    mem = tinfo.get("memory", {})
    log(f"training plan {tp.scheme}: {tp.n_params:,} parameters ({opts.head_init}), "
        f"training memory {mem.get('mem_bytes', 0):,} B")
    return {"scheme": tp.scheme, "n_params": tp.n_params, "head_init": opts.head_init,
            "mem_bytes": mem.get("mem_bytes"), "param_store_bytes": param_store_bytes(tp.n_params, load_board(opts.board).storage_erase_bytes)}


def image_defines(opts: BuildOptions) -> dict[str, int]:
    """C defines of the device images: TEST messages and the secure-only policy."""
    if opts.test_images and opts.secure_only:
        raise OptionsError("test images reveal the unmasked update (SA_ENCODED): they cannot be secure-only")
    out = {}
    if opts.test_images:
        out["TFD_TEST_MESSAGES"] = 1
    if opts.secure_only:
        out["TFD_FL_SECURE_ONLY"] = 1
    return out


def param_store_bytes(n_params: int, erase_unit: int) -> int:
    """Storage the A/B parameter store takes (firmware/src/storage/param_store.c): two slots,
    each a record header (TFD_PARAM_RECORD_HEADER) and the float parameters, in whole erase units."""
    slot = -(-(define("TFD_PARAM_RECORD_HEADER", "param_store.h") + 4 * n_params) // erase_unit) * erase_unit
    return 2 * slot


__all__ = ["BuildOptions", "BuildResult", "run_build", "BudgetError", "VerifyMismatch", "reset_head", "param_store_bytes",
           "image_defines"]
