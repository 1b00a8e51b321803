"""The ML half of ``tinyfed build``: data → teacher → distilled student → int8 .tflite.

:func:`run_ml_pipeline` loads the dataset, trains a teacher, trains the student
architecture twice from the same initial weights — once alone on hard labels, once
distilled from the teacher — with the same budget, converts both to full int8,
scores everything on the held-out split (int8 on the tflite-micro runtime), and
writes into ``cfg.out_dir``:

``model.tflite``        the distilled student, full int8, batch 1
``test_x_int8.npy``     held-out inputs quantized to the model input, ``[N, *input_shape]`` int8
``test_x.npy``          the same inputs as float32 (normalized)
``test_y.npy``          held-out labels (int64)
``train_x.npy``         training inputs, float32 (normalized) — source of device shards
``train_y.npy``         training labels (int64)
``student.keras``       the distilled student in float (for fine-tuning / debugging)
``ml_report.json``      config, dataset facts (incl. normalization), accuracies,
                        parameter counts, .tflite size and ops, I/O quantization, timings
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..facts.errors import OptionsError
from .data import Dataset, load_dataset, stratified_split
from .distill import (
    AugmentConfig,
    DistillConfig,
    FitConfig,
    accuracy,
    default_augment,
    distill,
    predict_logits,
    set_seed,
    train_student_alone,
    train_teacher,
)
from .models import (
    StudentConfig,
    TeacherConfig,
    build_student,
    build_teacher,
    count_params,
    default_student_config,
)
from .quantize import (
    QuantParams,
    convert_int8,
    evaluate_int8,
    op_names,
    raw_input_affine,
    read_io,
)

__all__ = ["PipelineConfig", "MlResult", "auto_batch_size", "auto_epochs", "run_ml_pipeline"]

REPORT_SCHEMA = 1
Log = Callable[[str], None]


@dataclass
class PipelineConfig:
    """Options of the ML build (declared once; the CLI maps flags onto these).

    ``None`` means "choose from the dataset" (see :func:`auto_epochs`,
    :func:`auto_batch_size`, :func:`tinyfed_toolchain.ml.models.default_student_config`,
    :func:`tinyfed_toolchain.ml.distill.default_augment`).
    """

    dataset: str = "digits"
    seed: int = 0
    teacher_epochs: int | None = None
    student_epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float = 3e-3
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the hard-label loss; 1 - alpha on the teacher
    student: StudentConfig | None = None
    teacher: TeacherConfig | None = None
    teacher_augment: AugmentConfig | None = None  # None: default per input kind
    student_augment: AugmentConfig = field(default_factory=AugmentConfig)  # off
    test_fraction: float = 0.25
    # Fraction of the training split the toolchain may see ("public" / server-side
    # data).  The rest is the devices' private data: written to private_{x,y}.npy,
    # partitioned into shards, never used for pretraining.  1.0 = no private part.
    public_fraction: float = 1.0
    calibration_samples: int = 1000
    out_dir: Path = Path("build/model")
    deterministic: bool = True  # TF op determinism: same seed, same bytes

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        for name in ("teacher_epochs", "student_epochs", "batch_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise OptionsError(f"{name} must be >= 1 (or None for auto), got {v}")
        if not 0.0 < self.test_fraction < 1.0:
            raise OptionsError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0.0 < self.public_fraction <= 1.0:
            raise OptionsError(f"public_fraction must be in (0, 1], got {self.public_fraction}")
        if self.calibration_samples < 1:
            raise OptionsError(f"calibration_samples must be >= 1, got {self.calibration_samples}")
        if self.learning_rate <= 0:
            raise OptionsError(f"learning_rate must be > 0, got {self.learning_rate}")
        DistillConfig(self.temperature, self.alpha)  # validates both

    def quick(self) -> PipelineConfig:
        """A reduced budget for smoke tests and CI (~4× faster, a few pp less accurate)."""
        return replace(self, teacher_epochs=self.teacher_epochs or 6,
                       student_epochs=self.student_epochs or 12)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


@dataclass
class MlResult:
    """What :func:`run_ml_pipeline` produced (also written to ``ml_report.json``)."""

    out_dir: Path
    files: dict[str, Path]
    report: dict[str, Any]
    tflite: bytes
    dataset: Dataset  # its training split is the public part the toolchain pretrained on
    student: Any = None  # the distilled float keras.Model
    x_test_int8: np.ndarray | None = None  # the held-out split, quantized to the model input
    private: tuple[np.ndarray, np.ndarray] | None = None  # the devices' part of the training split (x, y)

    @property
    def teacher_accuracy(self) -> float:
        return float(self.report["teacher"]["float_accuracy"])

    @property
    def student_alone_accuracy(self) -> float:
        return float(self.report["student_alone"]["float_accuracy"])

    @property
    def distilled_accuracy(self) -> float:
        return float(self.report["student"]["float_accuracy"])

    @property
    def int8_accuracy(self) -> float:
        return float(self.report["student"]["int8_accuracy"])


def auto_batch_size(n_train: int) -> int:
    """32, or 8 for small sets (< 256 samples) so each epoch has several steps."""
    return 32 if n_train >= 256 else 8


def auto_epochs(n_train: int, batch_size: int, target_steps: int = 1700) -> int:
    """Epochs for about ``target_steps`` optimizer steps, clamped to [20, 100]."""
    steps_per_epoch = math.ceil(n_train / batch_size)
    return int(min(100, max(20, round(target_steps / steps_per_epoch))))


def _set_determinism(cfg: PipelineConfig) -> None:
    import tensorflow as tf

    set_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()


def _pct(v: float) -> str:
    return f"{100.0 * v:6.2f}%"


def format_summary(report: dict[str, Any]) -> str:
    """A compact table of the report for the terminal."""
    ds = report["dataset"]
    t, a, s = report["teacher"], report["student_alone"], report["student"]
    tm = report["timings_s"]
    lines = [
        f"dataset {ds['name']}: {ds['kind']} {tuple(ds['input_shape'])}, "
        f"{ds['num_classes']} classes, {ds['n_train']} train / {ds['n_test']} test",
        f"{'model':<20}{'params':>9}{'float':>10}{'int8 (TFLM)':>13}{'.tflite':>10}",
        f"{'teacher':<20}{t['params']:>9}{_pct(t['float_accuracy']):>10}{'-':>13}{'-':>10}",
        f"{'student alone':<20}{a['params']:>9}{_pct(a['float_accuracy']):>10}"
        f"{_pct(a['int8_accuracy']):>13}{a['tflite_bytes']:>9}B",
        f"{'student distilled':<20}{s['params']:>9}{_pct(s['float_accuracy']):>10}"
        f"{_pct(s['int8_accuracy']):>13}{s['tflite_bytes']:>9}B",
        f"distillation gain {report['distillation_gain_pp']:+.2f} pp; "
        f"int8 - float {report['int8_minus_float_pp']:+.2f} pp "
        f"(top-1 agreement {100 * report['int8_float_agreement']:.1f}%); "
        f"ops: {', '.join(sorted(set(s['ops'])))}",
        f"time {tm['total']:.1f} s (teacher {tm['teacher']:.1f}, alone {tm['student_alone']:.1f}, "
        f"distill {tm['distill']:.1f}, int8 {tm['quantize_eval']:.1f})",
    ]
    return "\n".join(lines)


def run_ml_pipeline(cfg: PipelineConfig, log: Log = print) -> MlResult:
    """Run data → teacher → student alone / distilled → int8 → evaluate → files.

    Returns an :class:`MlResult`; every number in it is also in ``ml_report.json``.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        return now

    t0 = t_start
    ds = load_dataset(cfg.dataset, seed=cfg.seed, test_fraction=cfg.test_fraction)
    log(f"[ml] {ds.summary()}")
    for note in ds.notes:
        log(f"[ml] warning: {note}")
    x_private = np.zeros((0, *ds.input_shape), dtype=np.float32)
    y_private = np.zeros((0,), dtype=np.int64)
    if cfg.public_fraction < 1.0:
        # Hold the devices' private data out of pretraining (stratified).
        priv_idx, pub_idx = stratified_split(len(ds.y_train), ds.y_train, cfg.public_fraction, cfg.seed + 1)
        x_private, y_private = ds.x_train[priv_idx], ds.y_train[priv_idx]
        ds = replace(ds, x_train=ds.x_train[pub_idx], y_train=ds.y_train[pub_idx])
        log(f"[ml] pretraining on the public part: {len(pub_idx)} samples; "
            f"{len(priv_idx)} private samples held out for the devices")
    _set_determinism(cfg)
    t0 = lap("data", t0)

    batch = cfg.batch_size or auto_batch_size(len(ds.y_train))
    default_ep = auto_epochs(len(ds.y_train), batch)
    teacher_cfg = FitConfig(epochs=cfg.teacher_epochs or default_ep, batch_size=batch,
                              learning_rate=cfg.learning_rate, seed=cfg.seed)
    student_cfg = replace(teacher_cfg, epochs=cfg.student_epochs or default_ep)
    kd = DistillConfig(temperature=cfg.temperature, alpha=cfg.alpha)
    t_aug = cfg.teacher_augment if cfg.teacher_augment is not None else default_augment(
        ds.input_shape)
    s_aug = cfg.student_augment
    s_cfg = cfg.student or default_student_config(ds.input_shape)

    # Teacher.
    set_seed(cfg.seed)
    teacher = build_teacher(ds.input_shape, ds.num_classes, cfg.teacher)
    log(f"[ml] teacher: {count_params(teacher)} params, {teacher_cfg.epochs} epochs")
    train_teacher(teacher, ds.x_train, ds.y_train, ds.num_classes, teacher_cfg, t_aug,
                  progress=lambda m: log(f"[ml] teacher: {m}"))
    teacher_acc = accuracy(predict_logits(teacher, ds.x_test), ds.y_test)
    t0 = lap("teacher", t0)

    # Both students start from the same initial weights.
    set_seed(cfg.seed)
    alone = build_student(ds.input_shape, ds.num_classes, s_cfg, name="student_alone")
    init_weights = alone.get_weights()
    log(f"[ml] student: {count_params(alone)} params, {student_cfg.epochs} epochs, "
        f"T={kd.temperature:g} alpha={kd.alpha:g}")
    train_student_alone(alone, ds.x_train, ds.y_train, ds.num_classes, student_cfg, s_aug,
                        progress=lambda m: log(f"[ml] student alone (baseline): {m}"))
    alone_acc = accuracy(predict_logits(alone, ds.x_test), ds.y_test)
    t0 = lap("student_alone", t0)

    student = build_student(ds.input_shape, ds.num_classes, s_cfg, name="student")
    student.set_weights(init_weights)
    distill(student, teacher, ds.x_train, ds.y_train, ds.num_classes, student_cfg, kd, s_aug,
            progress=lambda m: log(f"[ml] distilling the student: {m}"))
    student_logits = predict_logits(student, ds.x_test)
    student_acc = accuracy(student_logits, ds.y_test)
    t0 = lap("distill", t0)

    # Full int8 + evaluation on the tflite-micro runtime.
    tfl = convert_int8(student, ds.x_train, max_samples=cfg.calibration_samples, seed=cfg.seed)
    tfl_alone = convert_int8(alone, ds.x_train, max_samples=cfg.calibration_samples,
                             seed=cfg.seed)
    ev = evaluate_int8(tfl, ds.x_test, ds.y_test)
    ev_alone = evaluate_int8(tfl_alone, ds.x_test, ds.y_test)
    ins, outs = read_io(tfl)
    in_q: QuantParams | None = ins[0].quant
    assert in_q is not None
    agreement = float(np.mean(np.argmax(ev.outputs_int8, -1) == np.argmax(student_logits, -1)))
    t0 = lap("quantize_eval", t0)

    # Files.
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "model": out / "model.tflite",
        "test_x_int8": out / "test_x_int8.npy",
        "test_x": out / "test_x.npy",
        "test_y": out / "test_y.npy",
        "train_x": out / "train_x.npy",
        "train_y": out / "train_y.npy",
        "student_keras": out / "student.keras",
        "report": out / "ml_report.json",
    }
    files["model"].write_bytes(tfl)
    np.save(files["test_x_int8"], ev.x_int8.astype(np.int8))
    np.save(files["test_x"], ds.x_test.astype(np.float32))
    np.save(files["test_y"], ds.y_test.astype(np.int64))
    np.save(files["train_x"], ds.x_train.astype(np.float32))
    np.save(files["train_y"], ds.y_train.astype(np.int64))
    np.save(out / "private_x.npy", x_private.astype(np.float32))
    np.save(out / "private_y.npy", y_private.astype(np.int64))
    with warnings.catch_warnings():  # Keras-internal numpy 2 copy= deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        student.save(files["student_keras"])
    lap("write", t0)
    timings["total"] = round(time.perf_counter() - t_start, 3)

    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "config": cfg.to_json(),
        "resolved": {
            "teacher_train": teacher_cfg.to_json(),
            "student_train": student_cfg.to_json(),
            "teacher_augment": t_aug.to_json(),
            "student_augment": s_aug.to_json(),
            "student_config": s_cfg.to_json(),
            "student_layers": _layers_json(student),
        },
        "dataset": {
            "name": ds.name,
            "spec": cfg.dataset,
            "kind": ds.kind,
            "input_shape": list(ds.input_shape),
            "num_classes": ds.num_classes,
            "class_names": ds.class_names,
            "n_train": int(len(ds.y_train)),
            "n_private": int(len(y_private)),
            "public_fraction": cfg.public_fraction,
            "n_test": int(len(ds.y_test)),
            "normalization": ds.normalization.to_json(),
        },
        "teacher": {"params": count_params(teacher), "float_accuracy": teacher_acc},
        "student_alone": {
            "params": count_params(alone),
            "float_accuracy": alone_acc,
            "int8_accuracy": ev_alone.accuracy,
            "tflite_bytes": len(tfl_alone),
        },
        "student": {
            "params": count_params(student),
            "float_accuracy": student_acc,
            "int8_accuracy": ev.accuracy,
            "tflite_bytes": len(tfl),
            "ops": op_names(tfl),
            "input": ins[0].to_json(),
            "raw_to_int8": raw_input_affine(ds.normalization, in_q),
            "output": outs[0].to_json(),
            "output_is": "logits",
        },
        "distillation_gain_pp": round(100.0 * (student_acc - alone_acc), 3),
        "distillation_beats_alone": bool(student_acc > alone_acc),
        "int8_minus_float_pp": round(100.0 * (ev.accuracy - student_acc), 3),
        "int8_within_1pp": bool(abs(ev.accuracy - student_acc) <= 0.01 + 1e-9),
        "int8_float_agreement": agreement,
        "int8_runtime": "tflite-micro",
        "timings_s": timings,
        "files": {k: p.name for k, p in files.items()},
    }
    files["report"].write_text(json.dumps(report, indent=2) + "\n")
    for line in format_summary(report).splitlines():
        log(f"[ml] {line}")
    return MlResult(out, files, report, tfl, ds, student, x_test_int8=ev.x_int8.astype(np.int8),
                    private=(x_private, y_private))


def _layers_json(model: Any) -> list[dict[str, Any]]:
    """Layer summary of the student (names, types, output shapes)."""
    return [
        {"name": layer.name, "type": type(layer).__name__,
         "output_shape": list(layer.output.shape[1:])}
        for layer in model.layers
    ]
