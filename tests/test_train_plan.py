"""The training memory plan and its emission: placement is sound (no two
buffers live at the same step share a byte, the int8 boundary is not
overwritten while it is read), the C engine agrees with the toolchain on the
memory size, what is kept for backward follows what trains, the tables compile
for the host and for Cortex-M4 with -Werror, and the generated
_Static_asserts / run-time checks catch tables that do not belong to the model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_train_grad import build_tail_model
from train_reference import make_trainer, model_plan

from tinyfed_toolchain.compile.emit_c import emit_model
from tinyfed_toolchain.training.emit import emit_train
from tinyfed_toolchain.facts.paths import FIRMWARE, FIRMWARE_INCLUDE
from tinyfed_toolchain.training.native_trainer import TrainError
from tinyfed_toolchain.training.layers import TrainPlanError
from tinyfed_toolchain.training.plan import Selection, TrainOptions, TrainPlan, build_train_plan
from tinyfed_toolchain.facts.c_headers import train_abi
from tinyfed_toolchain.training.schemes import select_all, select_biases, select_last_k, select_lora

ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-Os",
             "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion"]


@pytest.fixture(scope="module")
def tail_model() -> bytes:
    return build_tail_model()


def _plans(tfl: bytes) -> dict[str, TrainPlan]:
    mp = model_plan(tfl)
    sels = {
        "last1": select_last_k(mp, 1), "last3": select_last_k(mp, 3), "all": select_all(mp),
        "bias": select_biases(mp), "lora": select_lora(mp, 3), "lora_store": select_lora(mp, 3, store_h=True),
        "sparse": Selection("sparse", weights={1: (0, 5), 9: (2, 3)}, biases=frozenset({6})),
    }
    return {k: build_train_plan(mp, s) for k, s in sels.items()}


def test_placement_is_sound(tail_model: bytes) -> None:
    for name, tp in _plans(tail_model).items():
        mem = tp.memory
        bufs = mem.buffers
        for i, a in enumerate(bufs):
            if a.kind != "boundary":
                assert a.offset % 16 == 0 and a.offset + a.size <= mem.work_bytes, (name, a)
            for b in bufs[i + 1 :]:
                if a.overlaps(b):
                    disjoint = a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
                    assert disjoint, f"{name}: {a.name} and {b.name} share bytes while both live"
        assert mem.region_bytes >= max(mem.work_bytes, mem.arena_bytes) and mem.region_bytes % 16 == 0
        assert mem.mem_bytes == mem.region_bytes + (3 if mem.has_momentum else 2) * mem.param_bytes
        assert mem.param_bytes >= 4 * tp.n_params
        for t in tp.tail:  # every tail buffer the engine touches lies in the work area
            for off in (t.in_off, t.out_off, t.gout_off):
                assert 0 <= off < mem.work_bytes


def test_what_is_kept_follows_what_trains(tail_model: bytes) -> None:
    p = _plans(tail_model)
    # bias-only keeps no float activation for backward: only 1-bit masks and pool routes
    kinds = p["bias"].memory.bytes_by_kind()
    assert kinds["saved"] == 0 and kinds["mask"] > 0 and kinds["argmax"] > 0
    assert p["bias"].memory.saved_bytes < p["all"].memory.saved_bytes / 10
    # training more of the network keeps more
    assert p["last1"].memory.saved_bytes < p["last3"].memory.saved_bytes < p["all"].memory.saved_bytes
    assert p["last1"].memory.mem_bytes < p["last3"].memory.mem_bytes < p["all"].memory.mem_bytes
    # last-1: a single FC with its input kept; no gradient flows further
    assert [t.op for t in p["last1"].tail] == ["FULLY_CONNECTED"]
    assert p["last1"].memory.bytes_by_kind()["gradient"] == 4 * 5
    # the int8 arena and the float work area share storage: the region is their max, not their sum
    m = p["last1"].memory
    assert m.region_bytes == max(m.arena_bytes, m.work_bytes) < m.arena_bytes + m.work_bytes


def test_memory_report(tail_model: bytes) -> None:
    tp = _plans(tail_model)["all"]
    text = tp.memory.report()
    assert f"{tp.memory.arena_bytes:,} B" in text and f"{tp.memory.mem_bytes:,} B" in text
    for label in ("inference SRAM", "training SRAM", "activations saved for backward", "activation gradients",
                  "parameters", "momentum"):
        assert label in text
    assert "momentum" not in build_train_plan(tp.model_plan, tp.selection,
                                              TrainOptions(momentum=False)).memory.report()


def test_emitted_tables(tail_model: bytes, tmp_path: Path) -> None:
    mp = model_plan(tail_model)
    tp, ht = make_trainer(tail_model, select_lora(mp, 2, biases=True), tmp_path, mplan=mp)
    h = (tmp_path / "train_data.h").read_text()
    c = (tmp_path / "train_data.c").read_text()
    assert "do not edit" in h and f"#if TFD_TRAIN_ABI != {train_abi()}" in h
    assert f"#define TFD_TRAIN_MEM_BYTES {tp.memory.mem_bytes}u" in h
    assert f"#define TFD_TRAIN_N_PARAMS {tp.n_params}u" in h
    assert "extern const tfd_train_plan_t tfd_train_plan;" in h
    assert c.count("_Static_assert") >= 7
    # the C side computes the same block size (NativeTrainer checks it at load) and works in it
    assert ht.mem_bytes == tp.memory.mem_bytes
    info = json.loads((tmp_path / "train_info.json").read_text())
    assert info["n_params"] == tp.n_params and info["memory"]["mem_bytes"] == tp.memory.mem_bytes
    assert [s["offset"] for s in info["segments"]] == [s.offset for s in tp.segments]
    assert sum(s["count"] for s in info["segments"]) == tp.n_params
    # deterministic: emitting again gives the same bytes
    emit_train(build_train_plan(mp, select_lora(mp, 2, biases=True)), tmp_path / "again")
    assert (tmp_path / "again" / "train_data.c").read_text() == c


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_engine_and_tables_compile_for_cortex_m4(tail_model: bytes, tmp_path: Path) -> None:
    mp = model_plan(tail_model)
    emit_model(mp, tmp_path)
    emit_train(build_train_plan(mp, select_all(mp)), tmp_path)
    srcs = sorted((FIRMWARE / "src" / "train").glob("*.c")) + [tmp_path / "train_data.c", tmp_path / "model_data.c"]
    for src in srcs:
        proc = subprocess.run(["arm-none-eabi-gcc", *ARM_FLAGS, f"-I{FIRMWARE_INCLUDE}", f"-I{tmp_path}",
                               "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name}:\n{proc.stderr}"


def test_tables_of_another_model_do_not_compile(tail_model: bytes, tmp_path: Path) -> None:
    """train_data.c asserts the model arena it was planned for at compile time."""
    import keras

    from quantized_models import to_int8_tflite

    mp = model_plan(tail_model)
    emit_train(build_train_plan(mp, select_last_k(mp, 1)), tmp_path)
    keras.utils.set_random_seed(0)
    inp = keras.Input((30,), batch_size=1)
    other = to_int8_tflite(keras.Model(inp, keras.layers.Dense(5)(keras.layers.Dense(40)(inp))), [(30,)])
    emit_model(model_plan(other), tmp_path)  # overwrite model_data.{c,h}
    proc = subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{FIRMWARE_INCLUDE}",
                           f"-I{tmp_path}", "-c", str(tmp_path / "train_data.c"), "-o", str(tmp_path / "t.o")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "planned for another model" in proc.stderr


def test_engine_refuses_tables_of_another_model(tail_model: bytes, tmp_path: Path) -> None:
    """Same sizes but a different model hash: tfd_trainer_init says TFD_ERR_ABI."""
    mp = model_plan(tail_model)
    emit_model(mp, tmp_path)
    tp = build_train_plan(mp, select_last_k(mp, 1))
    mp.model_hash = bytes(16)  # as if planned for another .tflite
    emit_train(tp, tmp_path)
    from tinyfed_toolchain.training.native_trainer import NativeTrainer

    with pytest.raises(TrainError, match="ABI") as err:
        NativeTrainer(tmp_path)
    assert err.value.status == 1


def test_selection_errors(tail_model: bytes) -> None:
    mp = model_plan(tail_model)
    with pytest.raises(TrainPlanError, match="trains nothing"):
        build_train_plan(mp, Selection("none"))
    with pytest.raises(TrainPlanError, match="no weights"):
        build_train_plan(mp, Selection("pool", biases=frozenset({3})))
    with pytest.raises(TrainPlanError, match="ascending"):
        build_train_plan(mp, Selection("bad", weights={9: (3, 1)}))
    with pytest.raises(TrainPlanError, match="k=12"):
        select_last_k(mp, 12)


def test_quantized_domain_init_is_the_int8_codes(tail_model: bytes) -> None:
    mp = model_plan(tail_model)
    tp = build_train_plan(mp, select_last_k(mp, 1), TrainOptions(domain="quantized"))
    w, b = tp.segments
    g = mp.graph
    layer = mp.layers[w.layer]
    np.testing.assert_array_equal(tp.init_params[w.offset : w.offset + w.count],
                                  np.asarray(g.tensor(layer.inputs[1]).data, np.float32).reshape(-1))
    np.testing.assert_array_equal(tp.init_params[b.offset : b.offset + b.count],
                                  np.asarray(g.tensor(layer.inputs[2]).data, np.float32))
    assert w.qscale is not None and b.qscale is not None


def test_select_scheme(tail_model: bytes) -> None:
    from tinyfed_toolchain.training.schemes import select_scheme

    mp = model_plan(tail_model)
    assert select_scheme(mp, "last2") == select_last_k(mp, 2)
    assert select_scheme(mp, "bias") == select_biases(mp)
    assert select_scheme(mp, "bias1").biases == frozenset({10})
    lora = select_scheme(mp, "lora3-store-h-bias")
    assert set(lora.lora.values()) == {3} and lora.lora_store_h and lora.biases
    for bad in ("foo", "sparse", "sparse16k"):  # sparse needs samples for the contribution analysis
        with pytest.raises(TrainPlanError):
            select_scheme(mp, bad)
