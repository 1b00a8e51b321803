"""The training engine on an emulated Cortex-M4F (mps2-an386 under QEMU): the
bench_train app trains the digits student (sparse channel subset + LoRA-free
plan, so conv / depthwise / pool / FC backward all run on the target) and its
loss goes down; the image links within the chip with the plan's memory block,
and training costs more instructions per sample than inference."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from train_reference import DigitsStudent, model_plan

from tinyfed_toolchain.training.plan import Selection

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                       reason="qemu-system-arm / arm-none-eabi-gcc not installed"),
]


def test_training_on_emulated_m4() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from training import bench_scheme  # bench/training.py

    st = DigitsStudent()
    mp = model_plan(st.tflite)
    x, y = st.shard(24)
    sel = Selection("qemu_sparse", weights={2: (0, 3, 5), 3: (1, 2, 8, 9), 7: None}, biases=frozenset({0, 6, 7}))
    r = bench_scheme(mp, sel, x, y, "mps2-an386", epochs=3, batch=4, lr_milli=20, timeout=300,
                     label="test_qemu_sparse")
    assert r.plan.first_layer == 0  # the whole model runs float: every backward kernel runs on the target
    assert r.i("samples") == 3 * 24 and r.i("steps") == 3 * 6
    assert r.i("loss_after_u") < 0.9 * r.i("loss_before_u")
    assert r.i("correct_after") >= r.i("correct_before")
    assert r.i("train_mem_bytes") == r.plan.memory.mem_bytes
    assert r.image_ram >= r.plan.memory.mem_bytes and r.i("ram_used") == r.image_ram
    assert r.i("insns_train") > r.i("insns_predict") > 0 and r.i("insns_infer") > 0
    assert np.isfinite(r.i("loss_after_u"))
