"""Dataset loading, validation and device partitioning (toolchain/ml/data.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tinyfed_toolchain.ml.data import (
    DataError,
    Dataset,
    Normalization,
    aeon_data_dir,
    label_histogram,
    load_dataset,
    parse_ts,
    partition,
    partition_indices,
)

# --------------------------------------------------------------------------- built-ins


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def motions() -> Dataset:
    return load_dataset("basicmotions")


def test_digits_shapes_and_ranges(digits: Dataset) -> None:
    assert digits.input_shape == (8, 8, 1) and digits.kind == "image"
    assert digits.num_classes == 10 and digits.class_names == [str(i) for i in range(10)]
    assert digits.x_train.shape[1:] == (8, 8, 1) and digits.x_train.dtype == np.float32
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert len(digits.x_train) == len(digits.y_train) and len(digits.x_test) == len(digits.y_test)
    for x in (digits.x_train, digits.x_test):
        assert np.isfinite(x).all() and x.min() == 0.0 and x.max() == 1.0
    assert digits.y_train.dtype == np.int64
    assert set(np.unique(digits.y_train)) == set(range(10))


def test_digits_split_is_stratified_and_seeded(digits: Dataset) -> None:
    counts_test = np.bincount(digits.y_test, minlength=10)
    counts_all = counts_test + np.bincount(digits.y_train, minlength=10)
    # each class held out at the requested 25 % (+- rounding)
    assert np.all(np.abs(counts_test - 0.25 * counts_all) <= 1)
    again = load_dataset("digits", seed=0)
    assert np.array_equal(again.x_test, digits.x_test)
    assert np.array_equal(again.y_train, digits.y_train)
    other = load_dataset("digits", seed=1)
    assert not np.array_equal(other.y_test, digits.y_test) or not np.array_equal(
        other.x_test, digits.x_test
    )
    # train and test are disjoint: no test image appears in train
    train_rows = {r.tobytes() + bytes([y]) for r, y in zip(digits.x_train, digits.y_train)}
    dup = sum(r.tobytes() + bytes([y]) in train_rows for r, y in zip(digits.x_test, digits.y_test))
    # load_digits itself holds a few exact duplicates; the split must not add any
    from sklearn.datasets import load_digits

    imgs = load_digits().images.reshape(1797, -1)
    n_unique = len({r.tobytes() for r in imgs})
    assert dup <= 1797 - n_unique


def test_basicmotions_official_split(motions: Dataset) -> None:
    assert motions.kind == "timeseries" and motions.input_shape == (100, 6)
    assert motions.x_train.shape == (40, 100, 6) and motions.x_test.shape == (40, 100, 6)
    assert motions.num_classes == 4
    assert motions.class_names == ["Standing", "Running", "Walking", "Badminton"]
    assert np.array_equal(np.bincount(motions.y_train), [10, 10, 10, 10])
    assert np.array_equal(np.bincount(motions.y_test), [10, 10, 10, 10])
    assert np.isfinite(motions.x_train).all() and np.isfinite(motions.x_test).all()
    # standardized per channel with train statistics
    flat = motions.x_train.reshape(-1, 6)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(flat.std(0), 1.0, atol=1e-4)
    assert abs(motions.x_test.reshape(-1, 6).mean()) > 1e-3  # test set not re-fitted


def test_basicmotions_normalization_matches_raw_file(motions: Dataset) -> None:
    raw, labels, names = parse_ts(aeon_data_dir("BasicMotions") / "BasicMotions_TEST.ts")
    assert raw.shape == (40, 6, 100)
    raw_tc = raw.transpose(0, 2, 1)
    np.testing.assert_allclose(motions.normalization.apply(raw_tc), motions.x_test, rtol=1e-6,
                               atol=1e-5)
    np.testing.assert_allclose(motions.normalization.invert(motions.x_test), raw_tc, rtol=1e-5,
                               atol=1e-5)
    assert [names[i] for i in motions.y_test] == labels
    norm = Normalization.from_json(motions.normalization.to_json())
    assert norm == motions.normalization and len(norm.mean) == 6


def test_parse_ts_rejects_ragged(tmp_path: Path) -> None:
    p = tmp_path / "bad.ts"
    p.write_text("@classLabel true a b\n@data\n1,2,3:4,5,6:a\n1,2:3,4:b\n")
    with pytest.raises(DataError, match="unequal"):
        parse_ts(p)
    p.write_text("@classLabel true a b\n@data\n1,2:3,4:c\n")
    with pytest.raises(DataError, match="not in @classLabel"):
        parse_ts(p)


# --------------------------------------------------------------------------- files


def _blobs(n: int = 60, f: int = 5, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.normal(size=(n, f)) + 3.0 * y[:, None]
    return x.astype(np.float32), y


def test_npz_round_trip(tmp_path: Path) -> None:
    x, y = _blobs()
    p = tmp_path / "blobs.npz"
    np.savez(p, x=x, y=y)
    ds = load_dataset(str(p), seed=3, test_fraction=0.2)
    assert ds.name == "blobs" and ds.kind == "features" and ds.input_shape == (5,)
    assert ds.num_classes == 3 and len(ds.y_train) == 48 and len(ds.y_test) == 12
    # normalization fitted on train, invertible back to the file's values
    raw = np.concatenate([ds.normalization.invert(ds.x_train), ds.normalization.invert(ds.x_test)])
    got = sorted(map(tuple, np.round(raw, 4)))
    assert got == sorted(map(tuple, np.round(x, 4)))
    np.testing.assert_allclose(ds.x_train.mean(0), 0.0, atol=1e-5)


def test_npz_with_test_split_and_class_names(tmp_path: Path) -> None:
    x, y = _blobs()
    xt, yt = _blobs(n=9, seed=1)
    p = tmp_path / "given.npz"
    np.savez(p, x=x, y=y, x_test=xt, y_test=yt, class_names=np.array(["a", "b", "c"]))
    ds = load_dataset(str(p))
    assert len(ds.y_train) == 60 and np.array_equal(ds.y_test, yt)
    assert ds.class_names == ["a", "b", "c"]
    np.testing.assert_allclose(ds.normalization.invert(ds.x_test), xt, rtol=1e-5, atol=1e-5)


def test_npz_images_keep_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 6, 6, 2)).astype(np.float32)
    y = np.arange(40) % 2
    p = tmp_path / "img.npz"
    np.savez(p, x=x, y=y)
    ds = load_dataset(str(p))
    assert ds.kind == "image" and ds.input_shape == (6, 6, 2)
    assert len(ds.normalization.mean) == 2  # per channel


def test_csv_with_header_and_label_column(tmp_path: Path) -> None:
    x, y = _blobs(n=30, f=3)
    p = tmp_path / "feat.csv"
    lines = ["label,f0,f1,f2"] + [f"{yy},{a},{b},{c}" for yy, (a, b, c) in zip(y, x)]
    p.write_text("\n".join(lines) + "\n")
    ds = load_dataset(str(p))
    assert ds.input_shape == (3,) and ds.num_classes == 3
    raw = np.concatenate([ds.normalization.invert(ds.x_train), ds.normalization.invert(ds.x_test)])
    assert sorted(map(tuple, np.round(raw, 3))) == sorted(map(tuple, np.round(x, 3)))


def test_csv_without_header_label_last(tmp_path: Path) -> None:
    x, y = _blobs(n=30, f=2)
    p = tmp_path / "plain.csv"
    p.write_text("".join(f"{a},{b},{yy}\n" for (a, b), yy in zip(x, y)))
    ds = load_dataset(str(p))
    assert ds.input_shape == (2,) and ds.num_classes == 3
    assert len(ds.y_train) + len(ds.y_test) == 30


def test_csv_text_labels(tmp_path: Path) -> None:
    x, y = _blobs(n=30, f=2)
    names = np.array(["cat", "dog", "eel"])[y]
    p = tmp_path / "animals.csv"
    p.write_text("".join(f"{a},{b},{n}\n" for (a, b), n in zip(x, names)))
    ds = load_dataset(str(p))
    assert ds.class_names == ["cat", "dog", "eel"]
    assert ds.num_classes == 3


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros(10), "y": np.arange(10) % 2}, "shape"),
        ({"x": np.zeros((10, 3)), "y": np.arange(9) % 2}, "10 samples but y has 9"),
        ({"x": np.full((10, 3), np.nan), "y": np.arange(10) % 2}, "NaN"),
        ({"x": np.full((10, 3), np.inf), "y": np.arange(10) % 2}, "NaN/inf"),
        ({"x": np.zeros((10, 3)), "y": np.zeros(10)}, "single class"),
        ({"x": np.zeros((10, 3)), "y": np.arange(10) % 2 - 1}, "out of range"),
        ({"x": np.zeros((10, 3)), "y": (np.arange(10) % 2) + 0.5}, "integers"),
        ({"x": np.zeros((0, 3)), "y": np.zeros(0)}, "empty|no labels"),
        ({"x": np.zeros((10, 3)), "y": np.arange(10) % 2,
          "class_names": np.array(["one"])}, "out of range"),
        ({"x": np.zeros((10, 3)), "y": np.arange(10) % 2,
          "x_test": np.zeros((4, 2)), "y_test": np.arange(4) % 2}, "x_test sample shape"),
        ({"x": np.zeros((10, 3)), "y": np.arange(10) % 2,
          "x_test": np.zeros((4, 3)), "y_test": np.arange(4) % 3}, "not in the training"),
        ({"x": np.zeros((10, 3)), "y": np.arange(10).astype(str)}, "integers"),
        ({"x": np.zeros((10, 2, 2, 2, 2)), "y": np.arange(10) % 2}, "at most"),
        ({"y": np.arange(10) % 2}, "missing array"),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=match):
        load_dataset(str(p))


def test_data_error_is_value_error() -> None:
    assert issubclass(DataError, ValueError)


def test_unknown_spec_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "nope.npz"))
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "nope.csv"))


def test_corrupt_npz(tmp_path: Path) -> None:
    p = tmp_path / "junk.npz"
    p.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="not a .npz file"):
        load_dataset(str(p))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("a,b,label\n", "no data rows"),
        ("1,2,0\n3,4\n5,6,1\n", "columns"),
        ("1,2,0\n3,x,1\n5,6,0\n", "non-numeric feature"),
        ("1,2,0\n3,4,0\n5,6,0\n", "single class"),
        ("1,nan,0\n3,4,1\n5,6,0\n", "NaN"),
        ("1,2,0.5\n3,4,1\n5,6,0\n", "integers"),
        ("1\n2\n", "feature column"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        load_dataset(str(p))


# --------------------------------------------------------------------------- partition


def _skew(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> float:
    """Mean total-variation distance of device label mixes from the global mix."""
    h = label_histogram(parts, k).astype(float)
    glob = h.sum(0) / h.sum()
    local = h / h.sum(1, keepdims=True)
    return float(np.mean(0.5 * np.abs(local - glob).sum(1)))


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_partition_is_a_disjoint_cover(digits: Dataset, scheme: str) -> None:
    idx = partition_indices(digits.y_train, 7, scheme=scheme, alpha=0.3, seed=5)
    assert len(idx) == 7 and all(len(i) >= 1 for i in idx)
    allidx = np.concatenate(idx)
    assert len(allidx) == len(digits.y_train)
    assert np.array_equal(np.sort(allidx), np.arange(len(digits.y_train)))
    parts = partition(digits.x_train, digits.y_train, 7, scheme=scheme, alpha=0.3, seed=5)
    for (xp, yp), i in zip(parts, idx):
        assert np.array_equal(xp, digits.x_train[i]) and np.array_equal(yp, digits.y_train[i])


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_partition_is_deterministic(digits: Dataset, scheme: str) -> None:
    a = partition_indices(digits.y_train, 4, scheme=scheme, seed=1)
    b = partition_indices(digits.y_train, 4, scheme=scheme, seed=1)
    c = partition_indices(digits.y_train, 4, scheme=scheme, seed=2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_partition_non_iid_skew(digits: Dataset) -> None:
    k = digits.num_classes
    x, y = digits.x_train, digits.y_train
    iid = _skew(partition(x, y, 8, scheme="iid", seed=0), k)
    dir_mild = _skew(partition(x, y, 8, scheme="dirichlet", alpha=1.0, seed=0), k)
    dir_hard = _skew(partition(x, y, 8, scheme="dirichlet", alpha=0.1, seed=0), k)
    shards = _skew(partition(x, y, 8, scheme="shards", seed=0), k)
    assert iid < 0.15
    assert dir_hard > 0.5 and shards > 0.5
    assert iid < dir_mild < dir_hard
    # label shards: each device sees only a few classes
    h = label_histogram(partition(x, y, 8, scheme="shards", seed=0), k)
    assert np.all((h > 0).sum(1) <= 4)
    # iid sizes differ by at most one
    sizes = [len(p[1]) for p in partition(x, y, 8, scheme="iid", seed=0)]
    assert max(sizes) - min(sizes) <= 1


def test_partition_every_device_gets_a_sample() -> None:
    y = np.array([0] * 50 + [1] * 2)
    for seed in range(20):
        parts = partition_indices(y, 10, scheme="dirichlet", alpha=0.05, seed=seed)
        assert all(len(p) >= 1 for p in parts)
        assert sum(len(p) for p in parts) == 52
    one_each = partition_indices(np.arange(6) % 2, 6, scheme="iid")
    assert [len(p) for p in one_each] == [1] * 6


def test_partition_errors() -> None:
    y = np.arange(10) % 2
    x = np.zeros((10, 2))
    with pytest.raises(DataError, match="cannot give"):
        partition(x, y, 11)
    with pytest.raises(DataError, match="n_devices"):
        partition(x, y, 0)
    with pytest.raises(DataError, match="alpha"):
        partition(x, y, 2, scheme="dirichlet", alpha=0.0)
    with pytest.raises(DataError, match="shards"):
        partition(x, y, 6, scheme="shards", shards_per_device=2)
    with pytest.raises(DataError, match="scheme"):
        partition(x, y, 2, scheme="random")
    with pytest.raises(DataError, match="samples but y"):
        partition(x[:9], y, 2)


# ---- bad data policy (README "Bad data"): refused with the reason, or accepted with a warning
def test_bad_data_refused_with_the_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from tinyfed_toolchain.ml.data import DataError, load_dataset

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    for big in (1e30, 3.4e38, -3.4e38):
        x = rng.normal(size=(30, 4))
        x[5, 2] = big
        np.savez(tmp_path / "big.npz", x=x, y=y)
        with pytest.raises(DataError, match=r"beyond \+-1e\+15 .*float32 training would overflow"):
            load_dataset(str(tmp_path / "big.npz"))
        (tmp_path / "big.csv").write_text("\n".join(",".join([*(repr(float(v)) for v in r), str(int(c))]) for r, c in zip(x, y)))
        with pytest.raises(DataError, match="beyond"):
            load_dataset(str(tmp_path / "big.csv"))
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(DataError, match="is a directory, not a dataset file"):
        load_dataset(str(tmp_path / "d.npz"))
    (tmp_path / "junk.npz").write_bytes(rng.integers(0, 256, 4096).astype(np.uint8).tobytes())
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "junk.npz"))
    assert "not a .npz file" in str(e.value) and "pickle" not in str(e.value)


def test_bad_data_accepted_with_a_warning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tinyfed_toolchain.ml.data import load_dataset

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "bool.npz", x=rng.random((40, 6)) > 0.5, y=np.repeat(np.arange(4), 10))
    ds = load_dataset(str(tmp_path / "bool.npz"))
    assert any("boolean inputs, read as 0.0 / 1.0" in n for n in ds.notes)
    np.savez(tmp_path / "many.npz", x=rng.normal(size=(400, 5)), y=np.repeat(np.arange(200), 2))
    ds = load_dataset(str(tmp_path / "many.npz"))
    assert ds.num_classes == 200 and any("of 200 classes have fewer than 10 training samples" in n for n in ds.notes)
    np.savez(tmp_path / "fine.npz", x=rng.normal(size=(200, 5)), y=np.repeat(np.arange(4), 50))
    assert load_dataset(str(tmp_path / "fine.npz")).notes == []
