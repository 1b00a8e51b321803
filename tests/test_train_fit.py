"""On-device training on a real dataset shard (host build of the engine):
sklearn digits, a small int8 student built here (tests/train_reference.py
DigitsStudent, not the full build pipeline), fine-tuned on samples it was not
trained on.  Every scheme lowers the loss; QAS makes the quantized-unit
parameters follow the real-unit trajectory; the optimizer (SGD, momentum,
weight decay, cosine schedule, gradient accumulation) matches a numpy
re-computation from the engine's own gradients; shuffling is a seeded
permutation; the sparse-update selection respects its memory budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from train_reference import DigitsStudent, TFReference, assert_grads_close, make_trainer, model_plan

from tinyfed_toolchain.compile.plan import Plan
from tinyfed_toolchain.facts.train_config import TrainConfig
from tinyfed_toolchain.training.native_trainer import NativeTrainer, TrainError
from tinyfed_toolchain.training.layers import TrainPlanError
from tinyfed_toolchain.training.plan import Selection, TrainOptions, TrainPlan
from tinyfed_toolchain.training.schemes import select_biases, select_last_k, select_lora
from tinyfed_toolchain.training.sparse import ContributionScores, contribution_scores, select_sparse

Shard = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def student() -> DigitsStudent:
    return DigitsStudent()


@pytest.fixture(scope="module")
def mplan(student: DigitsStudent) -> Plan:
    return model_plan(student.tflite)


@pytest.fixture(scope="module")
def shard(student: DigitsStudent) -> Shard:
    return student.shard(300)


@pytest.fixture(scope="module")
def scores(mplan: Plan, shard: Shard, tmp_path_factory: pytest.TempPathFactory) -> ContributionScores:
    x, y = shard
    return contribution_scores(mplan, x[:128], y[:128], tmp_path_factory.mktemp("contrib"))


def _mean_loss(ht: NativeTrainer, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    correct, loss, n = ht.eval(x, y)
    return loss / n, correct / n


# scheme -> (selection, config, required relative drop of the shard loss)
def _case(name: str, mp: Plan, scores: ContributionScores) -> tuple[Selection, TrainConfig, float]:
    if name == "last1":
        return select_last_k(mp, 1), TrainConfig(lr=0.05, momentum=0.9, epochs=3, batch=8, schedule="cosine"), 0.25
    if name == "bias":
        return select_biases(mp), TrainConfig(lr=0.01, momentum=0.9, epochs=3, batch=8, schedule="cosine"), 0.05
    if name == "lora":
        return select_lora(mp, 4), TrainConfig(lr=0.1, momentum=0.9, epochs=3, batch=8, schedule="cosine"), 0.3
    sel, _ = select_sparse(mp, np.zeros(0), np.zeros(0), 16 * 1024, Path("unused"), scores=scores)
    return sel, TrainConfig(lr=0.02, momentum=0.9, epochs=3, batch=8, schedule="cosine"), 0.3


@pytest.mark.parametrize("scheme", ["last1", "bias", "sparse", "lora"])
def test_training_decreases_the_loss(student: DigitsStudent, mplan: Plan, shard: Shard,
                                     scores: ContributionScores, scheme: str, tmp_path: Path) -> None:
    x, y = shard
    sel, cfg, drop = _case(scheme, mplan, scores)
    tp, ht = make_trainer(student.tflite, sel, tmp_path, mplan=mplan)
    loss0, acc0 = _mean_loss(ht, x, y)
    test_loss0, _ = _mean_loss(ht, student.x_test, student.y_test)
    stats = ht.fit(cfg, x, y)
    loss1, acc1 = _mean_loss(ht, x, y)
    test_loss1, _ = _mean_loss(ht, student.x_test, student.y_test)
    assert stats.samples == 3 * len(y) and stats.steps == 3 * ((len(y) + 7) // 8)
    assert np.isfinite(stats.loss_sum) and 0 < stats.correct <= stats.samples
    assert loss1 < (1.0 - drop) * loss0, f"{scheme}: shard loss {loss0:.3f} -> {loss1:.3f}"
    assert acc1 > acc0
    assert test_loss1 < test_loss0  # and it generalises to held-out digits


def test_qas_quantized_domain_follows_the_real_trajectory(student: DigitsStudent, mplan: Plan, shard: Shard,
                                                          tmp_path: Path) -> None:
    x, y = shard
    sel = select_last_k(mplan, 1)
    cfg = TrainConfig(lr=0.05, momentum=0.9, weight_decay=1e-3, epochs=2, batch=8)
    tp_r, ht_r = make_trainer(student.tflite, sel, tmp_path / "real", mplan=mplan)
    tp_q, ht_q = make_trainer(student.tflite, sel, tmp_path / "qas", TrainOptions(domain="quantized"), mplan)
    tp_n, ht_n = make_trainer(student.tflite, sel, tmp_path / "noqas", TrainOptions(domain="quantized", qas=False), mplan)
    l0, _ = _mean_loss(ht_r, x, y)
    for ht in (ht_r, ht_q, ht_n):
        ht.fit(cfg, x, y)

    def real_units(tp: TrainPlan, p: np.ndarray) -> np.ndarray:
        out = p.copy()
        for s in tp.segments:
            if s.qscale is not None:
                out[s.offset : s.offset + s.count] *= np.repeat(s.qscale, s.row_len)
        return out

    p_r = ht_r.params()
    p_q = real_units(tp_q, ht_q.params())
    moved = np.abs(p_r - tp_r.init_params).max()
    assert moved > 0.01
    assert np.abs(p_q - p_r).max() < 1e-3 * moved  # same trajectory up to float rounding
    l_r, l_q, l_n = _mean_loss(ht_r, x, y)[0], _mean_loss(ht_q, x, y)[0], _mean_loss(ht_n, x, y)[0]
    assert abs(l_q - l_r) < 1e-3 and l_r < 0.8 * l0
    assert abs(l_n - l0) < 0.05 * (l0 - l_r)  # without QAS the quantized-unit steps are ~s^2 too small


def test_optimizer_matches_numpy(student: DigitsStudent, mplan: Plan, shard: Shard, tmp_path: Path) -> None:
    """Two full-batch steps (2 epochs, batch = n) with momentum, weight decay on
    weights only, cosine schedule (lr, lr/2), from the engine's own gradients."""
    x, y = shard
    x, y = x[:40], y[:40]
    lr, mu, wd = 0.1, 0.9, 0.01
    sel = select_last_k(mplan, 2)
    tp, ht = make_trainer(student.tflite, sel, tmp_path, mplan=mplan)
    probe = NativeTrainer(tmp_path)  # a second, independent trainer of the same plan
    decay = np.zeros(tp.n_params, np.float32)
    for s in tp.segments:
        decay[s.offset : s.offset + s.count] = 1.0 if s.decay else 0.0
    p0 = tp.init_params.astype(np.float64)
    g0 = probe.gradient(x, y).astype(np.float64) + wd * decay * p0
    v = g0
    p1 = p0 - lr * v
    probe.set_params(p1.astype(np.float32))
    g1 = probe.gradient(x, y).astype(np.float64) + wd * decay * p1
    v = mu * v + g1
    p2 = p1 - lr * 0.5 * v
    stats = ht.fit(TrainConfig(lr=lr, momentum=mu, weight_decay=wd, epochs=2, batch=len(y), schedule="cosine"), x, y)
    assert stats.steps == 2 and stats.samples == 80
    assert ht.lr_at(lr, "cosine", 1, 2) == pytest.approx(lr / 2)
    np.testing.assert_allclose(ht.params(), p2, rtol=1e-4, atol=1e-6 * np.abs(p2).max())
    assert not np.allclose(p2, p0)


def test_schedules(student: DigitsStudent, mplan: Plan, tmp_path: Path) -> None:
    _, ht = make_trainer(student.tflite, select_last_k(mplan, 1), tmp_path, mplan=mplan)
    assert [ht.lr_at(1.0, "step", s, 8) for s in (0, 3, 4, 5, 6, 7)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert [ht.lr_at(1.0, "cosine", s, 4) for s in range(4)] == pytest.approx(
        [0.5 * (1 + np.cos(np.pi * s / 4)) for s in range(4)])
    assert ht.lr_at(0.3, "constant", 5, 9) == pytest.approx(0.3)


def test_shuffling_and_determinism(student: DigitsStudent, mplan: Plan, shard: Shard, tmp_path: Path) -> None:
    x, y = shard
    tp, a = make_trainer(student.tflite, select_last_k(mplan, 1), tmp_path, mplan=mplan)
    b, c = NativeTrainer(tmp_path), NativeTrainer(tmp_path)
    for n in (1, 2, 7, 100, 300, 1000):
        for seed, epoch in ((0, 0), (5, 3)):
            assert sorted(a.shuffle_order(seed, epoch, n)) == list(range(n))
    o = a.shuffle_order(1, 0, 300)
    assert not np.array_equal(o, np.arange(300))
    assert not np.array_equal(o, a.shuffle_order(2, 0, 300))
    assert not np.array_equal(o, a.shuffle_order(1, 1, 300))
    cfg = TrainConfig(lr=0.05, epochs=2, batch=4, seed=1)
    sa, sb = a.fit(cfg, x, y), b.fit(cfg, x, y)
    sc = c.fit(TrainConfig(lr=0.05, epochs=2, batch=4, seed=2), x, y)
    assert sa == sb and np.array_equal(a.params(), b.params())
    assert not np.array_equal(a.params(), c.params()) and sc.samples == sa.samples
    # max_samples: the first max_samples of each epoch's order
    d = NativeTrainer(tmp_path)
    st = d.fit(TrainConfig(lr=0.05, epochs=3, batch=8, max_samples=50), x, y)
    assert st.samples == 150 and st.steps == 3 * 7


def test_eval_and_predict(student: DigitsStudent, mplan: Plan, shard: Shard, tmp_path: Path) -> None:
    x, y = shard
    x, y = x[:64], y[:64]
    _, ht = make_trainer(student.tflite, select_last_k(mplan, 2), tmp_path, mplan=mplan)
    z = ht.predict(x).astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    ce = (m[:, 0] + np.log(np.exp(z - m).sum(axis=1))) - z[np.arange(len(y)), y]
    correct, loss, n = ht.eval(x, y)
    assert n == 64 and correct == int((z.argmax(axis=1) == y).sum())
    assert loss == pytest.approx(ce.sum(), rel=1e-5)
    # the float tail at init agrees with the int8 model's decisions on nearly all digits
    from tinyfed_toolchain.compile.tflm import run_tflm

    q = run_tflm(student.tflite, x)[0].reshape(len(x), -1)
    assert (q.argmax(axis=1) == z.argmax(axis=1)).mean() >= 0.9


def test_parameter_errors(student: DigitsStudent, mplan: Plan, shard: Shard, tmp_path: Path) -> None:
    x, y = shard
    tp, ht = make_trainer(student.tflite, select_last_k(mplan, 1), tmp_path, TrainOptions(momentum=False), mplan)
    with pytest.raises(TrainError, match="shape"):
        ht.set_params(np.zeros(tp.n_params + 1, np.float32))
    bad = tp.init_params.copy()
    bad[3] = np.nan
    with pytest.raises(TrainError, match="out of range"):
        ht.set_params(bad)
    with pytest.raises(TrainError, match="invalid argument"):  # no momentum buffer in this plan
        ht.fit(TrainConfig(momentum=0.9), x, y)
    with pytest.raises(TrainError, match="invalid argument"):
        ht.fit(TrainConfig(momentum=0.0, batch=0), x, y)
    assert ht.fit(TrainConfig(momentum=0.0, epochs=1), x, y).samples == len(y)
    with pytest.raises(ValueError, match="labels"):
        ht.eval(x[:2], np.array([0, 10]))


# ---- sparse update -------------------------------------------------------------------


def test_sparse_selection_respects_the_budget(mplan: Plan, scores: ContributionScores, tmp_path: Path) -> None:
    kept = []
    for kib in (6, 10, 16, 32):
        sel, rep = select_sparse(mplan, np.zeros(0), np.zeros(0), kib * 1024, tmp_path, scores=scores)
        assert sel.scheme == "sparse" and sel.layers
        assert rep.mem_bytes <= kib * 1024
        kept.append(rep.score_kept)
    assert kept == sorted(kept) and kept[0] < kept[-1]
    with pytest.raises(TrainPlanError, match="cheapest"):  # below the inference arena itself
        select_sparse(mplan, np.zeros(0), np.zeros(0), mplan.arena_bytes, tmp_path, scores=scores)


def test_sparse_scores_come_from_the_gradients(mplan: Plan, scores: ContributionScores) -> None:
    """Every weight layer is scored per output channel, every bias; scores are
    non-negative and not all equal."""
    assert set(scores.rows) == {0, 2, 3, 6, 7}
    for k, v in scores.rows.items():
        assert v.shape == (mplan.graph.tensor(mplan.layers[k].inputs[1]).shape[0 if k != 2 else 3],)
        assert (v >= 0).all()
    assert len({round(float(v.sum()), 12) for v in scores.rows.values()}) > 1
    assert all(b is not None and b > 0 for b in scores.bias.values())


def test_sparse_gradient_parity_on_digits(student: DigitsStudent, mplan: Plan, shard: Shard,
                                          scores: ContributionScores, tmp_path: Path) -> None:
    """The selection the contribution analysis picks (channel subsets) also
    matches TF autodiff, on real digits."""
    x, y = shard
    sel, _ = select_sparse(mplan, np.zeros(0), np.zeros(0), 10 * 1024, tmp_path / "s", scores=scores)
    assert any(ch is not None for ch in sel.weights.values())  # some layer trains a channel subset
    tp, ht = make_trainer(student.tflite, sel, tmp_path, mplan=mplan)
    got = ht.gradient(x[:24], y[:24])
    _, ref, _ = TFReference(student.tflite, tp).run(x[:24], y[:24], tp.init_params)
    assert_grads_close(got, ref, tp)
