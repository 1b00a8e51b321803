"""The new boards under QEMU, in ONE mixed fleet (one build, one boot):

* ``stm32f405`` -- the STM32F405 port (RM0090 registers) on QEMU's
  ``netduinoplus2`` (a real chip's USART/SysTick/NVIC under emulation; the
  same image is the one flashed to a Netduino Plus 2 / Feather STM32F405);
* ``mps3-an547`` -- Cortex-M55 (Armv8.1-M, Helium) on QEMU's ``mps3-an547``;
* ``mps2-an386`` -- the Cortex-M4F reference board.

Each answers HELLO/INFO over its UART; its on-device inference equals the
tflite-micro runtime byte for byte; it trains (the update it returns equals
the native engine's -- the same C compiled for x86 -- to float rounding: the
largest difference measured is 3e-8, the M55's is 0); the
three take part in ONE SecAgg+ round together (each masks with its own C
client; the secure sum equals the plain sum of what they encoded, bit for
bit).  The F405 image also shows that its emulated run took the silicon
clock path to its "HSE did not start" fallback and that its millisecond
clock then matches the emulated core's 168 MHz (time is not 10x off)."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.qemu

if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

from tinyfed_host.emulator import launch  # noqa: E402
from tinyfed_host.fl_client import ENC_F32, TrainConfig, fetch_update, send_params, train  # noqa: E402
from tinyfed_host.protocol import ClientOptions, DeviceClient  # noqa: E402
from tinyfed_toolchain.facts.wire_table import WIRE  # noqa: E402
from qemu_fleet import shut_down  # noqa: E402

FLEET = ("mps2-an386", "stm32f405", "mps3-an547")
CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=5, max_samples=40)
CAPS = WIRE.const("CAP_MODEL") | WIRE.const("CAP_TRAINING") | WIRE.const("CAP_PERSIST") | \
    WIRE.const("CAP_TEST_MESSAGES")


class Fleet:
    def __init__(self, build, tflite: bytes, boards, devs, elfs) -> None:
        self.build, self.tflite, self.boards, self.devs, self.elfs = build, tflite, boards, devs, elfs

    @property
    def model_dir(self) -> Path:
        return self.build.model_dir

    @property
    def model_hash(self) -> bytes:
        return self.build.model_hash


@pytest.fixture(scope="module")
def fleet(digits_fl_build: Path, tmp_path_factory: pytest.TempPathFactory):
    """The session's small digits build (tests/conftest.py, shared with the other
    federated-run tests): its model, training plan and device shards dev0..dev2,
    one image per board of FLEET."""
    from tinyfed_host.experiment import FlBuild
    from tinyfed_toolchain.image.firmware import build_image

    from tinyfed_host.secagg.identity import ephemeral_fleet
    from tinyfed_toolchain.image.provision import emit_identity_c

    root = tmp_path_factory.mktemp("new_boards")
    build = FlBuild.load(digits_fl_build)
    ids = ephemeral_fleet(list(range(1, len(FLEET) + 1)))  # each board's identity (SecAgg+ needs one)
    elfs = []
    for k, board in enumerate(FLEET):
        shard = digits_fl_build / "devices" / f"dev{k}" / "shard_data.c"
        ident = emit_identity_c(ids.record(k + 1), root / f"id{k}" / "identity_data.c")
        elfs.append(build_image(board, build.model_dir, root / board, extra_sources=[shard, ident],
                                defines={"TFD_TEST_MESSAGES": 1}, quiet=True).elf)
    boards, devs = [], []
    try:
        for k, (board, elf) in enumerate(zip(FLEET, elfs)):
            boards.append(launch(board, elf, index=k, log_dir=root / "logs"))
        for b in boards:
            devs.append(DeviceClient.connect(b.url, ClientOptions(timeout=3.0, retries=6)))
        yield Fleet(build, (digits_fl_build / "model.tflite").read_bytes(), boards, devs, elfs)
    finally:
        shut_down(devs, boards)


def test_hello_info_over_each_boards_uart(fleet: Fleet) -> None:
    from tinyfed_toolchain.facts.boards import load_board

    for board, dev, b in zip(FLEET, fleet.devs, fleet.boards):
        info = dev.hello()
        assert info.board == board and info.model_hash == fleet.model_hash
        assert info.caps & CAPS == CAPS, hex(info.caps)
        spec = load_board(board)
        assert 0 < info.flash_used < spec.flash_bytes and 0 < info.sram_used < spec.ram_bytes
        assert info.shard_size == len(fleet.build.shards[FLEET.index(board)][1])
        assert b.running()
    # the F405's real SRAM is 128 KiB: the linker kept the whole client inside it
    assert fleet.devs[1].device.sram_used < 128 * 1024


def test_inference_equals_tflite_micro(fleet: Fleet) -> None:
    from tinyfed_toolchain.compile.tflm import run_tflm

    x = fleet.build.test_x[:24].astype(np.int8)
    ref = run_tflm(fleet.tflite, x.reshape(len(x), 8, 8, 1))[0].reshape(len(x), -1).astype(np.int8)
    for dev in fleet.devs:
        got = np.stack([dev.infer(v) for v in x])
        assert np.array_equal(got, ref), dev.device.board


def test_training_equals_the_host_engine(fleet: Fleet) -> None:
    from tinyfed_toolchain.training.native_trainer import NativeTrainer

    init = NativeTrainer(fleet.model_dir).params()
    for k, dev in enumerate(fleet.devs):
        send_params(dev, 1, init, fleet.model_hash, persist=True)
        res = train(dev, 1, CFG, timeout=120)
        assert res.samples == 40 and res.steps == 5
        upd = fetch_update(dev, 1, encoding=ENC_F32)
        host = NativeTrainer(fleet.model_dir)
        host.set_params(init)
        x, y = fleet.build.shards[k]
        host.fit(CFG, x, y)
        want = host.params() - init
        assert np.abs(upd.delta()).max() > 0
        err = float(np.abs(upd.delta() - want).max())
        print(f"{dev.device.board}: max |device - host| = {err:.3g} of max |delta| {float(np.abs(want).max()):.3g}")
        assert np.allclose(upd.delta(), want, rtol=1e-4, atol=1e-6), (dev.device.board, err)


def test_secure_round_in_a_mixed_fleet(fleet: Fleet) -> None:
    from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits, weighted_mean
    from tinyfed_host.secagg.graph import harary_graph
    from tinyfed_host.secagg.serial import SerialEndpoint
    from tinyfed_host.secagg.server import SecAggServer
    from tinyfed_toolchain.training.native_trainer import NativeTrainer

    params = NativeTrainer(fleet.model_dir).params()
    ups = []
    for dev in fleet.devs:
        send_params(dev, 2, params, fleet.model_hash, persist=False)
        train(dev, 2, CFG, timeout=120)
        ups.append(fetch_update(dev, 2, encoding=ENC_F32))
    n = len(fleet.devs)
    clip = 2.0 * max(float(np.linalg.norm(u.delta())) for u in ups)
    enc = Encoding(clip, choose_fraction_bits(n, clip), max(u.weight for u in ups))
    ids = list(range(1, n + 1))
    encoded: dict[int, np.ndarray] = {}

    class Recording(SerialEndpoint):
        def exchange(self, message: str, payload: bytes) -> bytes:
            reply = super().exchange(message, payload)
            if message == "MASKED_INPUT":  # test images: the words this board masked, before masking
                encoded[self.id] = self.encoded(91)
            return reply

    srv = SecAggServer(harary_graph(ids, n - 1, seed=1), 2, 91, params.size + 1)
    res = srv.run([Recording(i, d, enc) for i, d in zip(ids, fleet.devs)])
    assert res.survivors == tuple(ids)
    plain = (sum(encoded[i].astype(np.uint64) for i in ids) % (1 << 32)).astype(np.uint32)
    assert np.array_equal(res.sum_words, plain)  # masks from an M4F, an STM32F405 and an M55 cancel
    assert int(res.sum_words[-1]) == sum(u.weight for u in ups)
    wsum = sum(u.weight for u in ups)
    fedavg = sum(u.weight * u.delta().astype(np.float64) for u in ups) / wsum
    bound = n * enc.weight_max / wsum * 2.0 ** -enc.frac_bits
    assert np.max(np.abs(weighted_mean(res.sum_words, enc) - fedavg)) <= bound


def test_stm32f405_clock_fallback_and_time_under_emulation(fleet: Fleet) -> None:
    """Under QEMU the F405 image ran the silicon clock path: no RCC model, so
    the crystal never reports ready and the port fell back to HSI 16 MHz with
    everything consistent; it then took the emulator's fixed 168 MHz core
    clock for SysTick, so its milliseconds are real milliseconds."""
    b, dev = fleet.boards[1], fleet.devs[1]
    log = b.log()
    assert "clock_fallback=HSE did not start" in log
    assert "clock_sysclk_hz=16000000" in log and "clock_apb2_hz=16000000" in log
    assert "emulated=qemu netduinoplus2" in log
    t0, u0 = time.monotonic(), dev.request("PING", expect=("PONG",), token=1)["uptime_ms"]
    time.sleep(1.0)
    t1, u1 = time.monotonic(), dev.request("PING", expect=("PONG",), token=2)["uptime_ms"]
    ratio = (u1 - u0) / 1000.0 / (t1 - t0)
    assert 0.5 < ratio < 1.5, ratio  # a SysTick programmed for 16 MHz would give ~10.5


def _wait_log(b, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in b.log():
        assert time.monotonic() < deadline, f"{text!r} not in the log: {b.log()[-800:]!r}"
        time.sleep(0.05)
    return b.log()


def test_save_during_traffic_loses_nothing(fleet: Fleet, tmp_path: Path) -> None:
    """A flash erase stalls the CPU on the real chips and the UART keeps one byte:
    whatever the host sends meanwhile is lost.  Under QEMU the F405 image emulates
    that stall (--storage-stall-ms: for 1.5 s every byte that arrives is dropped
    and counted), longer than the host's 1 s per-try timeout.

    With the protocol's BUSY notice the host stays quiet through the save (no
    resend, nothing lost) and the parameters are on storage after a reboot.  The
    control shows the stall is real: a host that sends during the save (as one
    that resent after its timeout would) loses those bytes."""
    from tinyfed_host.framing import encode_frame
    from tinyfed_host.fl_client import encode_f32
    from tinyfed_toolchain.training.native_trainer import NativeTrainer
    import zlib

    params = NativeTrainer(fleet.model_dir).params()
    store = tmp_path / "f405.storage"
    stall = ["--storage-stall-ms=1500"]
    b = launch("stm32f405", fleet.elfs[1], index=9, storage=store, extra_args=stall, log_dir=tmp_path)
    try:
        with DeviceClient.connect(b.url) as dev:  # default options: 1 s per try
            dev.hello()  # (its first try can fall before the USART is on: a resend)
            before = dataclasses.replace(dev.counters)
            t0 = time.monotonic()
            send_params(dev, 7, params, fleet.model_hash, persist=True)
            took = time.monotonic() - t0
            assert took >= 1.5 and dev.counters.busy == 1
            assert (dev.counters.resends, dev.counters.timeouts) == (before.resends, before.timeouts)
            assert dev.request("PING", expect=("PONG",), token=5)["token"] == 5
            log = _wait_log(b, "storage_stall_lost_bytes=")
            assert "storage_stall_ms=1500" in log and "storage_stall_lost_bytes=0\n" in log

            # control: PARAMS sent raw, then a PING during the stall, without waiting
            data = encode_f32(params)
            dev.send_payload("MODEL_PARAMS", data)
            msg = WIRE.msg("PARAMS")
            dev.link.write(encode_frame(msg.id, 0x4001, msg.encode(
                round=8, n_params=int(params.size), encoding=ENC_F32, flags=WIRE.const("PARAMS_PERSIST"),
                crc32=zlib.crc32(data), model_hash=fleet.model_hash)))
            time.sleep(0.4)  # inside the 1.5 s stall
            ping = WIRE.msg("PING")
            dev.link.write(encode_frame(ping.id, 0x4002, ping.encode(token=9)))
            log = _wait_log(b, "storage_stall_lost_bytes=", timeout=20)
            deadline = time.monotonic() + 20
            while log.count("storage_stall_lost_bytes=") < 2:
                assert time.monotonic() < deadline, log[-800:]
                time.sleep(0.05)
                log = b.log()
            lost = int(log.rsplit("storage_stall_lost_bytes=", 1)[1].split()[0])
            assert lost > 0  # the PING frame fell into the stall
        b.stop()
        # the save made with BUSY (round 7) or the later one survived the restart
        b = launch("stm32f405", fleet.elfs[1], index=10, storage=store, log_dir=tmp_path / "again")
        with DeviceClient.connect(b.url) as dev:
            assert dev.hello().board == "stm32f405"
        assert "restored trained parameters from storage" in b.log()
    finally:
        b.stop()
