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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .budget import Budget, BudgetError, model_budget
from .emit_c import emit_model
from .emit_shard import emit_shard
from .plan import plan_model
from .tflite_reader import read_tflite


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


def quantize_inputs(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float inputs → the model's int8 input (TFLite QUANTIZE: ties away from zero, saturate)."""
    from .quantize import QuantParams, quantize

    return quantize(x, QuantParams(scale=float(scale), zero_point=int(zero_point)))


def _tflm_arena_or_none(path: Path) -> int | None:
    try:
        from .tflm import tflm_arena

        return tflm_arena(str(path)).total
    except Exception:
        return None


def run_build(opts: BuildOptions, log: Callable[[str], None] = print) -> BuildResult:
    t0 = time.monotonic()
    image_defines(opts)  # contradictory image options fail before any training
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}}

    # 1. the model: train + distill + quantize, or take the given .tflite
    ds = None
    if opts.tflite is not None:
        tflite_path = out / "model.tflite"
        data = Path(opts.tflite).read_bytes()
        read_tflite(data)  # refuse a malformed model before anything else
        if Path(opts.tflite).resolve() != tflite_path.resolve():
            tflite_path.write_bytes(data)
        name = Path(opts.tflite).stem
    else:
        from .pipeline import run_ml_pipeline, BuildConfig

        cfg = BuildConfig(dataset=opts.dataset or "digits", seed=opts.seed, out_dir=out,
                          public_fraction=opts.public_fraction if opts.devices > 0 else 1.0)
        if opts.quick:
            cfg = cfg.quick() if hasattr(cfg, "quick") else cfg
        ml = run_ml_pipeline(cfg, log=log)
        report["ml"] = json.loads((out / "ml_report.json").read_text())
        tflite_path = out / "model.tflite"
        ds_name = opts.dataset or "digits"
        name = ds_name if "/" not in ds_name else Path(ds_name).stem
        ds = getattr(ml, "dataset", None)
    tflite = tflite_path.read_bytes()

    # 2. plan + emit C tables
    graph = read_tflite(tflite)
    plan = plan_model(graph, tflite)
    model_dir = out / "model_c"
    info = emit_model(plan, model_dir, name=name)
    log(f"emitted {model_dir}/model_data.c: {info['n_layers']} layers ({', '.join(info['layers'])}), "
        f"weights {info['const_bytes']:,} B, arena {info['arena_bytes']:,} B")
    training = _emit_training(plan, model_dir, name, opts, log)
    if training is not None:
        report["training"] = training

    # 3. budget before anything is built or flashed
    from .firmware import load_board

    board = load_board(opts.board)
    budget = model_budget(info, opts.board, board.flash_bytes, board.ram_bytes)
    budget.tflm_arena = _tflm_arena_or_none(tflite_path)
    report["plan"] = {k: info[k] for k in ("hash", "arena_bytes", "const_bytes", "n_layers", "layers")}
    report["tflm_arena_bytes"] = budget.tflm_arena

    # 4. verify the emitted C against tflite-micro on the held-out inputs
    mismatches = total = None
    test_x_path = out / "test_x_int8.npy"
    if opts.tflite is not None and opts.dataset:
        from .data import DataError, load_dataset

        ds = load_dataset(opts.dataset, seed=opts.seed)
        in_t = graph.tensor(graph.inputs[0])
        if int(np.prod(ds.input_shape)) != in_t.num_elements:
            raise DataError(
                f"dataset {opts.dataset!r} samples have shape {list(ds.input_shape)}, "
                f"the model input {in_t.name!r} has shape {list(in_t.shape)}"
            )
        np.save(test_x_path, quantize_inputs(ds.x_test, in_t.scale, in_t.zero_point).reshape((len(ds.x_test), *in_t.shape[1:])))
        np.save(out / "test_y.npy", ds.y_test)
    if test_x_path.exists() and (opts.tflite is None or opts.dataset):
        from .verify import verify

        x = np.load(test_x_path)
        if opts.verify_samples:
            x = x[: opts.verify_samples]
        res = verify(tflite, x, out / "verify")
        mismatches, total = res.mismatches, res.total
        log(f"verify (emitted C vs tflite-micro, held-out split): mismatches: {mismatches} of {total}")
        report["verify"] = {"mismatches": mismatches, "total": total}
        if mismatches:
            raise RuntimeError(f"emitted C disagrees with tflite-micro on {mismatches} of {total} inputs")

    # 5. device shards + firmware images
    device_dirs: list[Path] = []
    images: list[Any] = []
    if (opts.tflite is None or opts.dataset) and opts.devices > 0:
        from .data import load_dataset, partition

        if ds is None:
            ds = load_dataset(opts.dataset or "digits", seed=opts.seed)
        in_t = graph.tensor(graph.inputs[0])
        x_priv, y_priv = ds.x_train, ds.y_train
        if opts.tflite is None and (out / "private_y.npy").exists():
            y_p = np.load(out / "private_y.npy")
            if len(y_p):
                x_priv, y_priv = np.load(out / "private_x.npy"), y_p
        parts = partition(x_priv, y_priv, opts.devices, scheme=opts.partition,  # type: ignore[arg-type]
                          alpha=opts.alpha, seed=opts.seed)
        if not (out / "test_y.npy").exists() or opts.tflite is None:
            # the held-out split for host-side evaluation of federated rounds
            if not test_x_path.exists():
                np.save(test_x_path, quantize_inputs(ds.x_test, in_t.scale, in_t.zero_point)
                        .reshape((len(ds.x_test), *in_t.shape[1:])))
            np.save(out / "test_y.npy", ds.y_test)
        shard_rows = []
        for k, (xs, ys) in enumerate(parts):
            d = out / "devices" / f"dev{k}"
            xq = quantize_inputs(xs, in_t.scale, in_t.zero_point).reshape((len(xs), *in_t.shape[1:]))
            emit_shard(xq, ys, d, device=k, num_classes=ds.num_classes)
            np.savez(d / "shard.npz", x=xq, y=np.asarray(ys, dtype=np.uint8))
            device_dirs.append(d)
            shard_rows.append({"device": k, "samples": int(len(ys)),
                               "classes": np.bincount(ys, minlength=ds.num_classes).tolist()})
        report["shards"] = shard_rows
        log(f"shards ({opts.partition}{f', alpha={opts.alpha}' if opts.partition == 'dirichlet' else ''}): "
            + ", ".join(f"dev{r['device']}={r['samples']}" for r in shard_rows))
        if opts.images:
            from .firmware import build_image

            storage_kb = None
            if training is not None and board.emulated:
                # Emulated flash is resizable: reserve what the A/B parameter store needs.
                need_kb = -(-int(training["param_store_bytes"]) // 1024)
                storage_kb = max(int(board.spec.get("storage_kb", 16)), need_kb)
            for k, d in enumerate(device_dirs):
                img = build_image(opts.board, model_dir, d, extra_sources=[d / "shard_data.c"],
                                  seed=None, quiet=True, storage_kb=storage_kb,
                                  defines=image_defines(opts))
                images.append(img)
            if images and training is not None:
                need = int(training["param_store_bytes"])
                training["storage_bytes"] = images[0].storage_size
                training["persist"] = need <= images[0].storage_size
                if not training["persist"]:
                    log(f"warning: the parameter store needs {need:,} B of storage, {opts.board} images "
                        f"reserve {images[0].storage_size:,} B: trained parameters will not persist")
            if images:
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
    for line in budget.lines():
        log(line)
    report["budget"] = asdict(budget)
    report["seconds"] = round(time.monotonic() - t0, 1)
    (out / "build_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return BuildResult(out, tflite_path, model_dir, info, budget, device_dirs, images, mismatches, total, report)


def training_selection(plan: Any, scheme: str) -> Any:
    """The Selection for a scheme name: auto | lastK | bias | loraR."""
    import re

    from .train_plan import TrainPlanError, select_biases, select_last_k, select_lora, weight_layers

    if scheme == "auto":
        return select_last_k(plan, 2 if len(weight_layers(plan)) >= 2 else 1)
    m = re.fullmatch(r"last(\d+)", scheme)
    if m:
        return select_last_k(plan, int(m.group(1)))
    if scheme == "bias":
        return select_biases(plan)
    m = re.fullmatch(r"lora(\d+)", scheme)
    if m:
        return select_lora(plan, int(m.group(1)), k=1)
    raise TrainPlanError(f"unknown training scheme {scheme!r}: auto | lastK | bias | loraR | none")


def reset_head(tp: Any, seed: int = 0) -> Any:
    """The plan with its last trained layer's parameters re-initialised:
    Glorot-uniform weight rows, zero bias (real-unit parameters only)."""
    import dataclasses

    from .train_plan import TrainPlanError

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


def _emit_training(plan: Any, model_dir: Path, name: str, opts: BuildOptions,
                   log: Callable[[str], None]) -> dict[str, Any] | None:
    """Plan + emit the on-device training tables next to the model's (train_data.{c,h})."""
    from .emit_train import emit_train
    from .firmware import load_board
    from .tflite_reader import UnsupportedOpError
    from .train_plan import TrainPlanError, build_train_plan

    for stale in ("train_data.c", "train_data.h", "train_info.json"):
        (model_dir / stale).unlink(missing_ok=True)
    if opts.train_scheme == "none":
        return None
    if opts.head_init not in ("pretrained", "reset-head"):
        raise TrainPlanError(f"head_init {opts.head_init!r}: pretrained | reset-head")
    try:
        tp = build_train_plan(plan, training_selection(plan, opts.train_scheme))
    except (TrainPlanError, UnsupportedOpError) as exc:
        if opts.train_scheme != "auto":
            raise
        try:  # auto: the last layer alone when the last two cannot train (an op without a backward)
            tp = build_train_plan(plan, training_selection(plan, "last1"))
            log(f"training: the last two layers cannot train here ({exc}); training the last layer")
        except (TrainPlanError, UnsupportedOpError):
            log(f"no on-device training for this model: {exc}")
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
        raise ValueError("test images reveal the unmasked update (SA_ENCODED): they cannot be secure-only")
    out = {}
    if opts.test_images:
        out["TFD_TEST_MESSAGES"] = 1
    if opts.secure_only:
        out["TFD_FL_SECURE_ONLY"] = 1
    return out


def param_store_bytes(n_params: int, erase_unit: int) -> int:
    """Storage the A/B parameter store takes (firmware/src/storage/param_store.c)."""
    slot = -(-(48 + 4 * n_params) // erase_unit) * erase_unit
    return 2 * slot


__all__ = ["BuildOptions", "BuildResult", "run_build", "quantize_inputs", "BudgetError", "training_selection",
           "reset_head", "param_store_bytes", "image_defines"]
