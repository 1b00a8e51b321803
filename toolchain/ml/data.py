"""Datasets for ``tinyfed build``: loading, validation, normalization, partitioning.

Every dataset becomes a :class:`Dataset` of float32 inputs and int64 labels with a
fixed train / held-out test split.  Inputs are normalized with statistics of the
*training* split only; the :class:`Normalization` used is kept on the dataset so
that the same transform can be applied to raw data on a device (or in the host
tools) later.

Specs understood by :func:`load_dataset`:

``digits``
    ``sklearn.datasets.load_digits`` — 1797 8×8 grey images, 10 classes, shaped
    ``(N, 8, 8, 1)`` and scaled to [0, 1]; stratified held-out split.
``basicmotions``
    The UEA BasicMotions set (smartwatch accelerometer + gyroscope, 6 channels ×
    100 steps, 4 classes) shipped as ``.ts`` files inside the ``aeon`` wheel.  aeon
    itself is *not* imported (it is installed without its dependencies); the files
    are located through the import system and parsed here.  Official TRAIN/TEST
    split; ``x`` is ``(N, 100, 6)`` (time, channel), standardized per channel.
``PATH.npz``
    Arrays ``x`` and ``y``, optionally ``x_test``/``y_test`` and ``class_names``.
``PATH.csv``
    Numeric feature columns; the label is the column named ``label`` (if there is
    a header) or else the last column.  Labels may be integers or class names.

Anything malformed raises :class:`DataError` (a ``ValueError``) naming the problem.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict, Unpack

import numpy as np

from ..facts.errors import TinyfedError

__all__ = [
    "BUILTIN_DATASETS",
    "DataError",
    "Dataset",
    "Normalization",
    "PartitionOptions",
    "PartitionScheme",
    "label_histogram",
    "load_dataset",
    "partition",
    "partition_indices",
    "validate_arrays",
]

BUILTIN_DATASETS = ("digits", "basicmotions")
DEFAULT_TEST_FRACTION = 0.25
PartitionScheme = Literal["iid", "dirichlet", "shards"]


class PartitionOptions(TypedDict, total=False):
    """Keyword options of :func:`partition_indices` (defaults and meaning
    there), which :func:`partition` forwards."""

    scheme: PartitionScheme
    alpha: float
    shards_per_device: int
    seed: int


class DataError(TinyfedError, ValueError):
    """Input data is unusable (bad shape, bad values, bad labels, missing file...)."""


@dataclass(frozen=True)
class Normalization:
    """``x_model = (x_raw - mean) / std``, broadcast over the last (channel) axis.

    ``mean`` and ``std`` have one entry per channel (the size of the last input
    axis), or a single entry applied to every value.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, x_raw: np.ndarray) -> np.ndarray:
        """Normalize raw inputs; returns float32."""
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        return ((np.asarray(x_raw, dtype=np.float64) - mean) / std).astype(np.float32)

    def invert(self, x_model: np.ndarray) -> np.ndarray:
        """Map normalized inputs back to raw units; returns float32."""
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        return (np.asarray(x_model, dtype=np.float64) * std + mean).astype(np.float32)

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, d: dict[str, Sequence[float]]) -> Normalization:
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))

    @classmethod
    def fit(cls, x_raw: np.ndarray, eps: float = 1e-8) -> Normalization:
        """Per-channel mean/std over every axis but the last (train data only)."""
        x = np.asarray(x_raw, dtype=np.float64).reshape(-1, x_raw.shape[-1])
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        # Constant channels: leave them centred at 0 instead of dividing by ~0.
        std = np.where(std < eps, 1.0, std)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))


@dataclass
class Dataset:
    """A classification dataset with a fixed train / held-out split.

    ``x_*`` are float32 of shape ``(N, *input_shape)`` (already normalized),
    ``y_*`` int64 of shape ``(N,)`` with values in ``[0, num_classes)``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: list[str]
    normalization: Normalization = field(default_factory=lambda: Normalization((0.0,), (1.0,)))
    notes: list[str] = field(default_factory=list)  # accepted with a warning (README "Bad data")

    @property
    def kind(self) -> Literal["image", "timeseries", "features"]:
        """What the input shape means: (H, W, C) image, (T, C) series, (F,) features."""
        return input_kind(self.input_shape)

    def summary(self) -> str:
        return (
            f"{self.name}: {self.kind} {self.input_shape}, {self.num_classes} classes, "
            f"{len(self.y_train)} train / {len(self.y_test)} test"
        )


def input_kind(input_shape: Sequence[int]) -> Literal["image", "timeseries", "features"]:
    """Classify an input shape (without batch axis) as image / timeseries / features."""
    rank = len(input_shape)
    if rank == 3:
        return "image"
    if rank == 2:
        return "timeseries"
    if rank == 1:
        return "features"
    raise DataError(f"unsupported input rank {rank} for shape {tuple(input_shape)}")


# --------------------------------------------------------------------------- validation


def _as_labels(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what}: labels must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise DataError(f"{what}: no labels")
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind != "f":
        raise DataError(f"{what}: labels must be integers, got dtype {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise DataError(f"{what}: labels contain NaN or inf")
    if not np.all(y == np.round(y)):
        bad = y[y != np.round(y)][:3]
        raise DataError(f"{what}: labels must be integers, got e.g. {bad.tolist()}")
    return y.astype(np.int64)


#: largest feature magnitude accepted: beyond it float32 training overflows (squares pass
#: 3.4e38 from 1.8e19) or loses the data's resolution; such values are unit or parsing errors
MAX_ABS_FEATURE = 1e15
#: fewer training samples than this in a class earns a warning (see README "Bad data")
FEW_SAMPLES = 10


def _as_inputs(x: np.ndarray, what: str, notes: list[str] | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iufb":
        raise DataError(f"{what}: inputs must be numeric, got dtype {x.dtype}")
    if x.dtype.kind == "b" and notes is not None:
        notes.append(f"{what}: boolean inputs, read as 0.0 / 1.0")
    if x.ndim < 2:
        raise DataError(
            f"{what}: inputs must be (N, features...), got shape {x.shape}"
        )
    if x.shape[0] == 0 or x.size == 0:
        raise DataError(f"{what}: empty inputs (shape {x.shape})")
    if x.ndim > 4:
        raise DataError(f"{what}: at most (N, H, W, C) inputs are supported, got {x.shape}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        n_bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataError(f"{what}: inputs contain {n_bad} NaN/inf value(s)")
    big = np.abs(x) > MAX_ABS_FEATURE
    if big.any():
        raise DataError(f"{what}: {int(big.sum())} input value(s) beyond +-{MAX_ABS_FEATURE:g} (largest "
                        f"{float(np.abs(x).max()):.3g}): float32 training would overflow; a unit or parsing error?")
    return x


def validate_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    num_classes: int | None = None,
    notes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """Check and convert a train (and optional test) set.

    Returns float32 inputs, int64 labels and the number of classes (``num_classes``
    if given, else ``max(label) + 1``).  Raises :class:`DataError` on: wrong or
    mismatched shapes, NaN/inf or values beyond +-MAX_ABS_FEATURE, empty arrays,
    non-integer or out-of-range labels, fewer than two classes in the training
    labels.  What is accepted with a warning is appended to ``notes``.
    """
    xtr = _as_inputs(x_train, "x", notes)
    ytr = _as_labels(y_train, "y")
    if len(xtr) != len(ytr):
        raise DataError(f"x has {len(xtr)} samples but y has {len(ytr)}")
    xte = yte = None
    if (x_test is None) != (y_test is None):
        raise DataError("x_test and y_test must be given together")
    if x_test is not None and y_test is not None:
        xte = _as_inputs(x_test, "x_test", notes)
        yte = _as_labels(y_test, "y_test")
        if len(xte) != len(yte):
            raise DataError(f"x_test has {len(xte)} samples but y_test has {len(yte)}")
        if xte.shape[1:] != xtr.shape[1:]:
            raise DataError(
                f"x_test sample shape {xte.shape[1:]} differs from x sample shape {xtr.shape[1:]}"
            )
    all_y = ytr if yte is None else np.concatenate([ytr, yte])
    if all_y.min() < 0:
        raise DataError(f"labels out of range: found {int(all_y.min())} (must be >= 0)")
    if num_classes is None:
        num_classes = int(all_y.max()) + 1
    elif all_y.max() >= num_classes:
        raise DataError(
            f"labels out of range: found {int(all_y.max())} with {num_classes} classes"
        )
    if num_classes > 256:
        raise DataError(f"{num_classes} classes: labels look like regression targets")
    if len(np.unique(ytr)) < 2:
        raise DataError(
            f"training labels hold a single class ({int(ytr[0])}); need at least two"
        )
    if yte is not None:
        unseen = sorted(set(np.unique(yte).tolist()) - set(np.unique(ytr).tolist()))
        if unseen:
            raise DataError(f"test labels {unseen} are not in the training labels")
    return xtr, ytr, xte, yte, num_classes


# --------------------------------------------------------------------------- splitting


def stratified_split(
    n: int, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (train, test) with each class split in the same proportion.

    Every class with at least two samples lands in both halves; the test split
    gets ``round(test_fraction * n_c)`` of class ``c`` (at least one).
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < 2:
            train.append(idx)
            continue
        n_test = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx)))))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    tr = rng.permutation(np.concatenate(train))
    te = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    if len(te) == 0:
        raise DataError(f"cannot hold out a test split from {n} samples")
    return tr, te


# --------------------------------------------------------------------------- builtins


def _load_digits(seed: int, test_fraction: float) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_raw = bunch.images.astype(np.float32)[..., None]  # (N, 8, 8, 1), values 0..16
    y = bunch.target.astype(np.int64)
    tr, te = stratified_split(len(y), y, test_fraction, seed)
    norm = Normalization((0.0,), (16.0,))  # pixel intensities 0..16 -> [0, 1]
    return Dataset(
        name="digits",
        x_train=norm.apply(x_raw[tr]),
        y_train=y[tr],
        x_test=norm.apply(x_raw[te]),
        y_test=y[te],
        num_classes=10,
        input_shape=(8, 8, 1),
        class_names=[str(c) for c in bunch.target_names],
        normalization=norm,
    )


def aeon_data_dir(name: str) -> Path:
    """Folder of a dataset shipped in the aeon wheel, without importing aeon."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the 'aeon' package (which ships BasicMotions) is not installed; "
            "install it with `pip install --no-deps aeon`"
        )
    for root in spec.submodule_search_locations:
        folder = Path(root) / "datasets" / "data" / name
        if folder.is_dir():
            return folder
    raise DataError(f"dataset folder {name!r} not found in the installed aeon package")


def parse_ts(path: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Parse an equal-length, labelled ``.ts`` file (sktime/aeon format).

    Returns ``(x, labels, class_names)`` with ``x`` of shape (N, dims, length) float32
    and ``labels`` the raw class strings.  ``class_names`` comes from the
    ``@classLabel`` header (order kept) and defines the label indices.
    """
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    class_names: list[str] = []
    dims: int | None = None
    rows: list[list[list[float]]] = []
    labels: list[str] = []
    in_data = False
    with path.open("r", encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    parts = line.split()
                    if len(parts) >= 2 and parts[1].lower() == "true":
                        class_names = parts[2:]
                elif low.startswith("@dimensions"):
                    try:
                        dims = int(line.split()[1])
                    except (IndexError, ValueError):
                        raise DataError(f"{path}:{lineno}: bad @dimensions line") from None
                elif low.startswith("@data"):
                    in_data = True
                continue
            fields = line.split(":")
            if len(fields) < 2:
                raise DataError(f"{path}:{lineno}: expected 'dim:...:dim:label'")
            *series, label = fields
            try:
                rows.append([[float(v) for v in s.split(",")] for s in series])
            except ValueError as e:
                raise DataError(f"{path}:{lineno}: non-numeric value ({e})") from None
            labels.append(label.strip())
    if not rows:
        raise DataError(f"{path}: no data rows")
    n_dims = {len(r) for r in rows}
    lengths = {len(s) for r in rows for s in r}
    if len(n_dims) != 1 or len(lengths) != 1:
        raise DataError(f"{path}: series have unequal dimensions or lengths")
    if dims is not None and n_dims != {dims}:
        raise DataError(f"{path}: header says {dims} dimensions, rows have {n_dims.pop()}")
    if not class_names:
        class_names = sorted(set(labels))
    unknown = set(labels) - set(class_names)
    if unknown:
        raise DataError(f"{path}: labels {sorted(unknown)} not in @classLabel header")
    return np.asarray(rows, dtype=np.float32), labels, class_names


def _load_basicmotions() -> Dataset:
    folder = aeon_data_dir("BasicMotions")
    x_tr, lab_tr, names = parse_ts(folder / "BasicMotions_TRAIN.ts")
    x_te, lab_te, names_te = parse_ts(folder / "BasicMotions_TEST.ts")
    if names_te != names:
        raise DataError("BasicMotions TRAIN and TEST headers list different classes")
    index = {c: i for i, c in enumerate(names)}
    y_tr = np.array([index[c] for c in lab_tr], dtype=np.int64)
    y_te = np.array([index[c] for c in lab_te], dtype=np.int64)
    # (N, channel, time) -> (N, time, channel): channels last, like a sensor FIFO.
    x_tr = np.ascontiguousarray(x_tr.transpose(0, 2, 1))
    x_te = np.ascontiguousarray(x_te.transpose(0, 2, 1))
    xtr, ytr, xte, yte, k = validate_arrays(x_tr, y_tr, x_te, y_te, len(names))
    assert xte is not None and yte is not None
    norm = Normalization.fit(xtr)
    return Dataset(
        name="basicmotions",
        x_train=norm.apply(xtr),
        y_train=ytr,
        x_test=norm.apply(xte),
        y_test=yte,
        num_classes=k,
        input_shape=tuple(int(d) for d in xtr.shape[1:]),
        class_names=list(names),
        normalization=norm,
    )


# --------------------------------------------------------------------------- files


def _from_arrays(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    class_names: list[str] | None,
    seed: int,
    test_fraction: float,
) -> Dataset:
    notes: list[str] = []
    xtr, ytr, xte, yte, k = validate_arrays(
        x, y, x_test, y_test, len(class_names) if class_names else None, notes
    )
    if xte is None or yte is None:
        tr, te = stratified_split(len(ytr), ytr, test_fraction, seed)
        xtr, ytr, xte, yte = xtr[tr], ytr[tr], xtr[te], ytr[te]
        if len(np.unique(ytr)) < 2:
            raise DataError("training split holds a single class; need more data")
    counts = np.bincount(ytr, minlength=k)
    few = int(np.count_nonzero(counts < FEW_SAMPLES))
    if few:
        notes.append(f"{few} of {k} classes have fewer than {FEW_SAMPLES} training samples (smallest "
                     f"{int(counts.min())}): the model can barely learn them, and their held-out accuracy "
                     "rests on a handful of samples")
    norm = Normalization.fit(xtr)
    return Dataset(
        name=name,
        x_train=norm.apply(xtr),
        y_train=ytr,
        x_test=norm.apply(xte),
        y_test=yte,
        num_classes=k,
        input_shape=tuple(int(d) for d in xtr.shape[1:]),
        class_names=class_names or [str(i) for i in range(k)],
        normalization=norm,
        notes=notes,
    )


def _load_npz(path: Path, seed: int, test_fraction: float) -> Dataset:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .npz file (a zip archive of .npy arrays x, y)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read as .npz ({e})") from None
    missing = {"x", "y"} - arrays.keys()
    if missing:
        raise DataError(
            f"{path}: missing array(s) {sorted(missing)}; found {sorted(arrays)}"
        )
    names = arrays.get("class_names")
    class_names = [str(s) for s in names.tolist()] if names is not None else None
    return _from_arrays(
        path.stem,
        arrays["x"],
        arrays["y"],
        arrays.get("x_test"),
        arrays.get("y_test"),
        class_names,
        seed,
        test_fraction,
    )


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _load_csv(path: Path, seed: int, test_fraction: float) -> Dataset:
    try:
        with path.open("r", encoding="utf-8", newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if not rows:
        raise DataError(f"{path}: empty file")
    header: list[str] | None = None
    first = [c.strip() for c in rows[0]]
    nonnum = [j for j, c in enumerate(first) if not _is_number(c)]
    if nonnum:
        if nonnum != [len(first) - 1] or first[-1].lower() == "label":
            header = first  # a textual feature cell: column names
        elif len(rows) > 1 and _is_number(rows[1][-1].strip()):
            header = first  # numeric labels below a textual one: a column name
        # else: no header, textual class labels in the last column
    body = rows[1:] if header is not None else rows
    if not body:
        raise DataError(f"{path}: no data rows")
    width = len(header) if header is not None else len(body[0])
    for i, r in enumerate(body):
        if len(r) != width:
            raise DataError(f"{path}: data row {i + 1} has {len(r)} columns, expected {width}")
    if width < 2:
        raise DataError(f"{path}: need at least one feature column and a label column")
    label_col = width - 1
    if header is not None:
        lower = [h.lower() for h in header]
        if "label" in lower:
            label_col = lower.index("label")
    feat_cols = [j for j in range(width) if j != label_col]
    x = np.empty((len(body), len(feat_cols)), dtype=np.float64)
    for i, r in enumerate(body):
        for k, j in enumerate(feat_cols):
            cell = r[j].strip()
            try:
                x[i, k] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: data row {i + 1}: non-numeric feature {cell!r} in column {j + 1}"
                ) from None
    raw_labels = [r[label_col].strip() for r in body]
    class_names: list[str] | None = None
    if all(_is_number(s) for s in raw_labels):
        y = np.array([float(s) for s in raw_labels], dtype=np.float64)
    else:
        class_names = sorted(set(raw_labels))
        index = {c: i for i, c in enumerate(class_names)}
        y = np.array([index[s] for s in raw_labels], dtype=np.int64)
    return _from_arrays(path.stem, x, y, None, None, class_names, seed, test_fraction)


def load_dataset(
    spec: str, seed: int = 0, test_fraction: float = DEFAULT_TEST_FRACTION
) -> Dataset:
    """Load a dataset by spec: ``digits``, ``basicmotions``, ``*.npz`` or ``*.csv``.

    Parameters
    ----------
    spec
        A built-in name or a path to an ``.npz`` / ``.csv`` file.
    seed
        Seeds the held-out split (when the data has no official split).
    test_fraction
        Share of each class held out for testing when there is no official split.

    Raises
    ------
    DataError
        Unknown spec, missing or unreadable file, or invalid contents.
    """
    key = spec.strip().lower()
    if key == "digits":
        return _load_digits(seed, test_fraction)
    if key == "basicmotions":
        return _load_basicmotions()
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise DataError(
            f"unknown dataset {spec!r}: expected one of {', '.join(BUILTIN_DATASETS)} "
            "or a path to a .npz or .csv file"
        )
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a dataset file")
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    if suffix == ".npz":
        return _load_npz(path, seed, test_fraction)
    return _load_csv(path, seed, test_fraction)


# --------------------------------------------------------------------------- partition


def _ensure_nonempty(parts: list[list[int]], rng: np.random.Generator) -> None:
    """Move single samples from the largest device to empty ones (in place)."""
    for i in range(len(parts)):
        if parts[i]:
            continue
        donor = max(range(len(parts)), key=lambda j: (len(parts[j]), -j))
        if len(parts[donor]) < 2:
            raise DataError("not enough samples to give every device one")
        k = int(rng.integers(len(parts[donor])))
        parts[i].append(parts[donor].pop(k))


def partition_indices(
    y: np.ndarray,
    n_devices: int,
    *,
    scheme: PartitionScheme = "iid",
    alpha: float = 0.5,
    shards_per_device: int = 2,
    seed: int = 0,
) -> list[np.ndarray]:
    """Split sample indices ``0..len(y)-1`` across ``n_devices`` devices.

    Schemes
    -------
    ``iid``
        A random permutation cut into near-equal parts.
    ``dirichlet``
        For each class, its samples are divided among devices in proportions drawn
        from ``Dirichlet(alpha)``; small ``alpha`` gives strongly skewed label
        mixes (alpha → ∞ approaches IID).
    ``shards``
        Samples sorted by label, cut into ``n_devices * shards_per_device``
        contiguous shards, each device receiving ``shards_per_device`` random
        shards (so it sees only a few classes).

    The result is a disjoint cover of all indices, every device has at least one
    sample, and the same arguments always give the same split.
    """
    y = _as_labels(y, "y")
    n = len(y)
    if n_devices < 1:
        raise DataError(f"n_devices must be >= 1, got {n_devices}")
    if n_devices > n:
        raise DataError(f"cannot give {n_devices} devices a sample each from {n} samples")
    rng = np.random.default_rng(seed)
    parts: list[list[int]]
    if scheme == "iid":
        perm = rng.permutation(n)
        return [np.sort(p) for p in np.array_split(perm, n_devices)]
    if scheme == "dirichlet":
        if not (alpha > 0 and math.isfinite(alpha)):
            raise DataError(f"dirichlet alpha must be a positive number, got {alpha}")
        parts = [[] for _ in range(n_devices)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            props = rng.dirichlet(np.full(n_devices, alpha))
            cuts = np.floor(np.cumsum(props)[:-1] * len(idx) + 0.5).astype(int)
            for dev, chunk in enumerate(np.split(idx, cuts)):
                parts[dev].extend(int(i) for i in chunk)
        _ensure_nonempty(parts, rng)
        return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    if scheme == "shards":
        if shards_per_device < 1:
            raise DataError(f"shards_per_device must be >= 1, got {shards_per_device}")
        n_shards = n_devices * shards_per_device
        if n_shards > n:
            raise DataError(f"{n_shards} shards need at least {n_shards} samples, have {n}")
        # Stable sort by label after a shuffle: shards are label-pure where possible.
        perm = rng.permutation(n)
        order = perm[np.argsort(y[perm], kind="stable")]
        shards = np.array_split(order, n_shards)
        owner = rng.permutation(n_shards)
        return [
            np.sort(np.concatenate([shards[s] for s in owner[d::n_devices]]))
            for d in range(n_devices)
        ]
    raise DataError(f"unknown partition scheme {scheme!r}: use iid, dirichlet or shards")


def partition(
    x: np.ndarray, y: np.ndarray, n_devices: int, **options: Unpack[PartitionOptions]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split a training set into one private ``(x, y)`` shard per device.

    See :func:`partition_indices` for the options, schemes and guarantees.
    """
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} samples but y has {len(y)}")
    idx = partition_indices(y, n_devices, **options)
    y = np.asarray(y)
    return [(x[i], y[i]) for i in idx]


def label_histogram(parts: Sequence[tuple[np.ndarray, np.ndarray]], num_classes: int) -> np.ndarray:
    """Per-device class counts, shape ``(n_devices, num_classes)``."""
    return np.stack(
        [np.bincount(np.asarray(yp, dtype=np.int64), minlength=num_classes) for _, yp in parts]
    )
