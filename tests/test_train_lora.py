"""LoRA adapters: the backward that keeps x and recomputes h = x.A (MeSP) needs
less training memory than the variant that stores h, and gives *bitwise
identical* gradients and training trajectories (0 ulp: the same tfd_lora_h()
computes h from the same kept x in both variants).  Also: training starts at
the int8 model's function (B = 0), A comes from the seed, LoRA goes only where
it can (FC, 1x1 stride-1 CONV_2D)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from test_train_grad import build_tail_model
from train_reference import make_trainer, model_plan

from tinyfed_toolchain.facts.train_config import TrainConfig
from tinyfed_toolchain.training.layers import TrainPlanError, lora_layers
from tinyfed_toolchain.training.plan import Selection, build_train_plan
from tinyfed_toolchain.training.schemes import select_lora


@pytest.fixture(scope="module")
def tail_model() -> bytes:
    return build_tail_model()


def test_recompute_h_saves_memory_and_gives_identical_gradients(tail_model: bytes, tmp_path: Path) -> None:
    mp = model_plan(tail_model)
    sel_r = select_lora(mp, rank=4)
    sel_s = select_lora(mp, rank=4, store_h=True)
    tp_r, ht_r = make_trainer(tail_model, sel_r, tmp_path / "recompute", mplan=mp)
    tp_s, ht_s = make_trainer(tail_model, sel_s, tmp_path / "store", mplan=mp)
    # memory: h is no longer held from forward to backward
    h_bytes = sum(b.size for b in tp_s.memory.buffers if b.kind == "lora_h")
    assert h_bytes > 0
    assert tp_r.memory.saved_bytes == tp_s.memory.saved_bytes - h_bytes
    assert tp_r.memory.work_bytes < tp_s.memory.work_bytes
    assert tp_r.memory.mem_bytes < tp_s.memory.mem_bytes
    assert not any(b.kind == "lora_h" for b in tp_r.memory.buffers)
    # same parameters (same seed, same layout)
    np.testing.assert_array_equal(tp_r.init_params, tp_s.init_params)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(16, 9, 9, 2), dtype=np.int8)
    y = rng.integers(0, 5, size=16)
    p = tp_r.init_params + rng.standard_normal(tp_r.n_params).astype(np.float32) * np.float32(0.05)
    ht_r.set_params(p)
    ht_s.set_params(p)
    g_r, g_s = ht_r.gradient(x, y), ht_s.gradient(x, y)
    assert np.count_nonzero(g_r) > tp_r.n_params // 2
    assert np.array_equal(g_r.view(np.uint32), g_s.view(np.uint32)), "gradients differ in some bit"
    cfg = TrainConfig(lr=0.05, momentum=0.9, epochs=2, batch=4, seed=3)
    st_r, st_s = ht_r.fit(cfg, x, y), ht_s.fit(cfg, x, y)
    assert st_r == st_s
    assert np.array_equal(ht_r.params().view(np.uint32), ht_s.params().view(np.uint32))
    assert not np.array_equal(ht_r.params(), p)


def test_lora_starts_at_the_dequantized_model(tail_model: bytes, tmp_path: Path) -> None:
    """B = 0: the LoRA plan's logits equal, bit for bit, those of a plan without
    adapters whose float tail starts at the same layer (the first 1x1 conv)."""
    mp = model_plan(tail_model)
    tp, ht = make_trainer(tail_model, select_lora(mp, rank=2), tmp_path / "lora", mplan=mp)
    tp_b, ht_b = make_trainer(tail_model, Selection("bias2", biases=frozenset({2})), tmp_path / "bias", mplan=mp)
    assert tp.first_layer == tp_b.first_layer == 2
    x = np.random.default_rng(1).integers(-128, 128, size=(6, 9, 9, 2), dtype=np.int8)
    assert np.array_equal(ht.predict(x), ht_b.predict(x))
    for s in tp.segments:
        v = tp.init_params[s.offset : s.offset + s.count]
        if s.kind == "lora_b":
            assert not v.any()
        elif s.kind == "lora_a":
            assert v.std() > 0.05  # random, not zero


def test_lora_a_comes_from_the_seed(tail_model: bytes) -> None:
    mp = model_plan(tail_model)
    a = build_train_plan(mp, select_lora(mp, rank=2, seed=1)).init_params
    b = build_train_plan(mp, select_lora(mp, rank=2, seed=1)).init_params
    c = build_train_plan(mp, select_lora(mp, rank=2, seed=2)).init_params
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_lora_only_on_fc_and_pointwise_conv(tail_model: bytes) -> None:
    mp = model_plan(tail_model)
    ops = [mp.layers[k].op for k in lora_layers(mp)]
    assert lora_layers(mp) == [2, 6, 9, 10] and ops == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    for k in (0, 1):  # 3x3 conv, depthwise
        with pytest.raises(TrainPlanError, match="LoRA needs"):
            build_train_plan(mp, Selection("bad", lora={k: 2}))
    with pytest.raises(TrainPlanError, match="cannot both train"):
        build_train_plan(mp, Selection("bad", weights={9: None}, lora={9: 2}))
