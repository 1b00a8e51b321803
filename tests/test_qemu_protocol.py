"""The protocol on emulated boards: two mps2-an386 (Cortex-M4F) boards at once,
each with the same int8 model and its own private shard; HELLO/INFO/EVAL on
both, and INFER_TEST equal to the tflite-micro runtime byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.qemu

if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

from tinyfed_host.emulator import start_boards  # noqa: E402
from tinyfed_host.protocol import ClientOptions, DeviceClient, pattern_bytes  # noqa: E402
from tinyfed_toolchain.facts.wire_table import WIRE  # noqa: E402


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    import keras

    from quantized_models import to_int8_tflite
    from tinyfed_toolchain.compile.emit_c import emit_model
    from tinyfed_toolchain.image.emit_shard import emit_shard
    from tinyfed_toolchain.image.firmware import build_image
    from tinyfed_toolchain.compile.plan import plan_model
    from tinyfed_toolchain.compile.tflite_reader import read_tflite
    from tinyfed_toolchain.compile.tflm import run_tflm

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((12,), batch_size=1), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(5)])
    tflite = to_int8_tflite(model, [(12,)])
    plan = plan_model(read_tflite(tflite), tflite)
    root = tmp_path_factory.mktemp("qemu_proto")
    rng = np.random.default_rng(0)
    shards, elfs = [], []
    for dev in range(2):
        model_dir = root / f"model{dev}"
        emit_model(plan, model_dir, name="proto_test")
        x = rng.integers(-128, 128, size=(40 + 9 * dev, 12), dtype=np.int8)
        y = rng.integers(0, 5, size=len(x))
        emit_shard(x, y, model_dir, device=dev, num_classes=5)
        info = build_image("mps2-an386", model_dir, root / f"img{dev}", app="main",
                           defines={"TFD_TEST_MESSAGES": 1}, quiet=True)
        shards.append((x, y))
        elfs.append(info.elf)
    boards = start_boards(2, "mps2-an386", elfs, log_dir=root)
    try:
        yield tflite, plan, shards, boards, run_tflm
    finally:
        for b in boards:
            b.stop()


def _reference_eval(logits: np.ndarray, y: np.ndarray, scale: float, zp: int) -> tuple[int, float]:
    x = scale * (logits.astype(np.float64) - zp)
    lse = x.max(1) + np.log(np.exp(x - x.max(1, keepdims=True)).sum(1))
    return int((logits.argmax(1) == y).sum()), float((lse - x[np.arange(len(y)), y]).sum())


def test_two_boards_hello_info_eval_infer(fleet) -> None:
    from tinyfed_toolchain.compile.tflite_reader import read_tflite

    tflite, plan, shards, boards, run_tflm = fleet
    g = read_tflite(tflite)
    out_t = g.tensor(g.outputs[0])
    clients = [DeviceClient.connect(b.url, ClientOptions(timeout=3.0, retries=4)) for b in boards]
    try:
        for c, (x, y) in zip(clients, shards):
            info = c.hello()
            assert info.board == "mps2-an386" and info.model_name == "proto_test"
            assert info.model_hash == bytes(plan.model_hash)
            assert info.shard_size == len(y) and info.num_classes == 5
            assert info.input_bytes == 12 and info.output_bytes == 5
            assert info.has_model and info.test_messages and info.table_crc == WIRE.table_crc
            assert 0 < info.flash_used < 1 << 20 and 0 < info.sram_used < 256 << 10
            assert info.arena_bytes == plan.arena_bytes
            # EVAL: the device's numbers equal the tflite-micro runtime's over the same shard
            r = c.eval()
            logits = run_tflm(tflite, x)[0].reshape(len(x), -1)
            correct, loss = _reference_eval(logits, y, float(out_t.scale), int(out_t.zero_point))
            assert (r.samples, r.correct) == (len(y), correct)
            assert r.loss_sum == pytest.approx(loss, rel=1e-4)
            assert c.eval(max_samples=7).samples == 7
            # INFER_TEST: byte for byte equal to tflite-micro
            probe = np.random.default_rng(len(y)).integers(-128, 128, size=(16, 12), dtype=np.int8)
            ref = run_tflm(tflite, probe)[0].reshape(16, -1)
            for v, want in zip(probe, ref):
                assert np.array_equal(c.infer(v), want.astype(np.int8))
            # chunked transfers both ways over the emulated UART
            c.send_payload("TEST_SINK", pattern_bytes(5000)[::-1])
            assert c.receive_payload("TEST_PATTERN", 5000) == pattern_bytes(5000)
            s = c.stats()
            assert s["crc_errors"] == 0 and s["frames_ok"] >= c.counters.frames_out
        # the two boards are different devices with different shards
        assert clients[0].device.shard_size != clients[1].device.shard_size
    finally:
        for c in clients:
            c.close()


def test_two_protocol_only_boards_in_parallel(tmp_path: Path) -> None:
    """The protocol without a model (firmware/src/app/proto_link.c): two boards
    served at once, sessions, version check, transfers both ways, counters."""
    from tinyfed_toolchain.facts.manifests import proto_sources
    from tinyfed_host.protocol import DeviceError
    from tinyfed_toolchain.image.firmware import build_image

    elf = build_image("mps2-an386", None, tmp_path / "img", app="proto_link", runtime=False,
                      extra_sources=proto_sources(), defines={"TFD_TEST_MESSAGES": 1}, quiet=True).elf
    boards = start_boards(2, "mps2-an386", [elf, elf], log_dir=tmp_path)
    try:
        clients = [DeviceClient.connect(b.url, ClientOptions(timeout=3.0, retries=4)) for b in boards]
        for i, c in enumerate(clients):
            info = c.hello()
            assert info.board == "mps2-an386" and not info.has_model and info.test_messages
            assert info.table_crc == WIRE.table_crc
            with pytest.raises(DeviceError) as e:
                c.eval()
            assert e.value.name == "TFD_ERR_BAD_MODEL"
        # interleave the two boards' transfers
        for size in (1, 3000, 20000):
            for i, c in enumerate(clients):
                c.send_payload("TEST_SINK", pattern_bytes(size + i)[::-1])
            for i, c in enumerate(clients):
                assert c.receive_payload("TEST_PATTERN", size + i) == pattern_bytes(size + i)
        for c in clients:
            s = c.stats()
            assert s["frames_ok"] == c.counters.frames_out and s["crc_errors"] == 0
            assert s["errors_sent"] == 1
            c.close()
    finally:
        for b in boards:
            b.stop()
