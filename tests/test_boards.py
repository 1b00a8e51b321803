"""Boards: images link within the chip's memory, the linker refuses what does
not fit, every QEMU board boots, talks over its UART (RX interrupt path, all
256 byte values), passes its exit code out, keeps storage across restarts, and
the instruction counter is exact on loops of known length.

Self-test images (boards/selftest/*.c) are built without firmware/src so these
tests check the board layer alone.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyfed_toolchain.image.firmware import (
    BuildError,
    LinkOverflowError,
    build_image,
)
from tinyfed_toolchain.facts.boards import board_names, load_board

REPO = Path(__file__).resolve().parent.parent
SELFTEST = REPO / "boards" / "selftest"
QEMU_BOARDS = ["mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547", "stm32f405"]
REAL_BOARDS = ["stm32f746g-disco", "nrf52840", "nano33ble"]  # + stm32f405: a real chip that QEMU also runs

HAVE_ARM_GCC = shutil.which("arm-none-eabi-gcc") is not None
HAVE_QEMU = shutil.which("qemu-system-arm") is not None
needs_gcc = pytest.mark.skipif(not HAVE_ARM_GCC, reason="arm-none-eabi-gcc not installed")
needs_qemu = pytest.mark.skipif(
    not (HAVE_ARM_GCC and HAVE_QEMU), reason="qemu-system-arm / arm-none-eabi-gcc not installed"
)
STATEMENT = re.compile(
    r"^(?P<board>[\w-]+): flash (?P<f>\d+) / (?P<fs>\d+) B \(\d+\.\d%\), "
    r"SRAM (?P<r>\d+) / (?P<rs>\d+) B \(\d+\.\d%\)$"
)


def selftest_image(board: str, app: str, out: Path, **kwargs: object):
    return build_image(board, None, out / board, app=SELFTEST / f"{app}.c", runtime=False,
                       name=app, quiet=True, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("boards")


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _qemu_pids() -> set[int]:
    """QEMU processes descended from this test process (other people's QEMUs
    on the same machine are not ours to judge)."""
    out = subprocess.run(["pgrep", "-f", "qemu-system-arm"], capture_output=True, text=True)
    mine = set()
    for pid in (int(p) for p in out.stdout.split()):
        p = pid
        for _ in range(32):
            p = _ppid(p)
            if p == os.getpid():
                mine.add(pid)
                break
            if p <= 1:
                break
    return mine


@pytest.fixture(autouse=True)
def no_leaked_qemu():
    """Every QEMU a test starts must be gone when it ends."""
    before = _qemu_pids()
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_qemu_pids() - before):
        time.sleep(0.05)
    leaked = _qemu_pids() - before
    assert not leaked, f"QEMU processes left running: {leaked}"


# ---------------------------------------------------------------- board data


def test_board_folders_are_complete() -> None:
    names = board_names()
    assert set(QEMU_BOARDS + REAL_BOARDS) <= set(names)
    for name in names:
        b = load_board(name)
        assert (b.path / "port.c").is_file()
        assert (b.path / b.spec["linker_script"]).is_file()
        for key in ("core", "cpu_flags", "cpu_hz", "flash_kb", "ram_kb", "irq_count", "uart"):
            assert key in b.spec, f"{name}: board.json lacks {key}"
        if b.emulated:
            assert b.qemu_machine, f"{name}: emulated but no QEMU machine"
        if b.spec.get("renode") or not b.emulated:
            assert (b.path / b.spec["renode"]).is_file(), f"{name}: Renode script missing"
    assert load_board("stm32f746g-disco").ram_bytes == 320 * 1024
    assert load_board("nrf52840").ram_bytes == 256 * 1024
    assert load_board("stm32f405").ram_bytes == 128 * 1024 and load_board("stm32f405").qemu_machine == "netduinoplus2"
    assert load_board("mps3-an547").spec["core"] == "cortex-m55"
    assert load_board("nano33ble").flash_bytes == 960 * 1024  # what the Arduino bootloader leaves


# ---------------------------------------------------------------- linking


@needs_gcc
@pytest.mark.parametrize("board", QEMU_BOARDS + REAL_BOARDS)
def test_image_links_and_states_memory(board: str, build_root: Path, capsys) -> None:
    b = load_board(board)
    info = build_image(board, None, build_root / board, app=SELFTEST / "uart_echo.c",
                       runtime=False, name="uart_echo")
    stated = capsys.readouterr().err.strip().splitlines()[-1]
    m = STATEMENT.match(stated)
    assert m, stated
    assert m["board"] == board
    assert int(m["fs"]) == b.flash_bytes == info.flash_size
    assert int(m["rs"]) == b.ram_bytes == info.ram_size
    assert 1000 < info.flash_used < 64 * 1024
    # SRAM: the stack reserve (16 KiB) + its 512-byte guard + the RX ring.
    assert info.stack_size == b.spec["stack_kb"] * 1024
    assert info.stack_size + 512 < info.ram_used < info.stack_size + 16 * 1024
    assert info.elf.is_file() and info.bin.stat().st_size > 1000
    assert info.sections[".isr_vector"] == 4 * (16 + b.spec["irq_count"])


@needs_gcc
def test_repeated_build_is_cached(build_root: Path) -> None:
    out = build_root / "cache"
    selftest_image("mps2-an386", "uart_echo", out)
    t0 = time.monotonic()
    info = selftest_image("mps2-an386", "uart_echo", out)
    assert time.monotonic() - t0 < 2.0
    assert info.flash_used > 0


@needs_gcc
def test_linker_refuses_image_larger_than_ram(build_root: Path) -> None:
    with pytest.raises(LinkOverflowError) as err:
        selftest_image("mps2-an386", "uart_echo", build_root / "small", ram_kb=8)
    text = str(err.value)
    assert "tinyfed: SRAM overflow" in text
    assert re.search(r"region `RAM' overflowed by \d+ bytes", text)


@needs_gcc
def test_linker_refuses_static_array_over_256k(build_root: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.c"
    big.write_text(
        "#include <stdint.h>\n#include \"tfd/port.h\"\n"
        "static uint8_t big[300u * 1024u];\n"
        "int main(void) { tfd_port_init(); big[tfd_port_millis() % sizeof big] = 1;\n"
        "                 return big[12345]; }\n"
    )
    with pytest.raises(LinkOverflowError, match="SRAM overflow"):
        build_image("mps2-an386", None, build_root / "big", app=big, runtime=False, quiet=True)
    # The same image links when the chip is declared bigger: the limit is real.
    info = build_image("mps2-an386", None, build_root / "big512", app=big, runtime=False,
                       ram_kb=512, quiet=True)
    assert info.ram_size == 512 * 1024 and info.ram_used > 300 * 1024


@needs_gcc
def test_linker_refuses_image_larger_than_flash(build_root: Path) -> None:
    with pytest.raises(LinkOverflowError, match="FLASH overflow"):
        selftest_image("mps2-an386", "port_check", build_root / "tinyflash", flash_kb=20)


@needs_gcc
def test_compile_errors_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { int unused; return 0; }\n")
    with pytest.raises(BuildError, match="unused"):
        build_image("mps2-an386", None, tmp_path / "out", app=bad, runtime=False, quiet=True)


@needs_gcc
def test_stm32_216mhz_clock_option_builds(build_root: Path) -> None:
    info = selftest_image("stm32f746g-disco", "uart_echo", build_root / "216",
                          defines={"TFD_STM32F7_SYSCLK_216MHZ": 1})
    assert info.flash_used > 0


# ---------------------------------------------------------------- QEMU


# An STM32 USART drops what arrives before the firmware enables it (silicon and
# QEMU's model alike; the CMSDK UART of the mps2 boards holds it back): the
# selftest protocol has no retry, so wait for the port's boot log line, which
# it writes once the receiver is on.
BOOT_LINE = {"stm32f405": "clock_fallback="}


def _wait_booted(b, board: str, timeout: float = 20.0) -> None:
    line = BOOT_LINE.get(board)
    deadline = time.monotonic() + timeout
    while line and line not in b.log():
        assert time.monotonic() < deadline, f"{board} did not boot: {b.log()!r}"
        time.sleep(0.02)


def _echo_roundtrip(board: str, elf: Path, payload: bytes, code: int) -> tuple[bytes, bytes, int, str]:
    import serial  # pyserial

    from tinyfed_host.emulator import Emulator

    with Emulator(board) as emu:
        (b,) = emu.start(1, images=elf)
        link = serial.serial_for_url(b.url, timeout=10)
        try:
            _wait_booted(b, board)
            link.write(struct.pack("<IB", len(payload), code))
            banner = link.readline()
            link.write(payload)
            echoed = bytearray()
            while len(echoed) < len(payload):
                chunk = link.read(len(payload) - len(echoed))
                if not chunk:
                    break
                echoed += chunk
        finally:
            link.close()
        rc = b.wait(10)
        log = b.log()
    assert rc is not None, "the guest did not exit"
    return banner, bytes(echoed), rc, log


@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board,code", [("mps2-an386", 42), ("mps2-an500", 7), ("mps2-an505", 201),
                                        ("mps3-an547", 55), ("stm32f405", 4)])
def test_qemu_boot_uart_echo_and_exit_code(board: str, code: int, build_root: Path) -> None:
    elf = selftest_image(board, "uart_echo", build_root).elf
    payload = bytes(range(256)) * 8 + bytes(reversed(range(256))) * 8
    banner, echoed, rc, log = _echo_roundtrip(board, elf, payload, code)
    assert banner == f"tinyfed-selftest {board} ready\n".encode()
    assert echoed == payload  # every byte value, through the RX interrupt + ring
    assert rc == code
    assert f"echoed={len(payload)}" in log


@needs_qemu
@pytest.mark.qemu
def test_exit_code_zero_passes_through(build_root: Path) -> None:
    elf = selftest_image("mps2-an386", "uart_echo", build_root).elf
    banner, echoed, rc, _ = _echo_roundtrip("mps2-an386", elf, b"\x00\xff", 0)
    assert (echoed, rc) == (b"\x00\xff", 0)


@needs_qemu
@pytest.mark.qemu
def test_idle_guest_does_not_burn_host_cpu(build_root: Path) -> None:
    """Waiting for UART input sleeps in WFI: QEMU uses little CPU meanwhile."""
    import serial

    from tinyfed_host.emulator import Emulator

    elf = selftest_image("mps2-an386", "uart_echo", build_root).elf
    with Emulator() as emu:
        (b,) = emu.start(1, images=elf)
        link = serial.serial_for_url(b.url, timeout=5)
        try:
            time.sleep(0.3)  # boot
            ticks = os.sysconf("SC_CLK_TCK")

            def cpu_s() -> float:
                fields = Path(f"/proc/{b.pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / ticks

            c0, t0 = cpu_s(), time.monotonic()
            time.sleep(1.5)
            used = (cpu_s() - c0) / (time.monotonic() - t0)
            link.write(struct.pack("<IB", 1, 3) + b"x")
            assert link.readline().startswith(b"tinyfed-selftest")
            assert link.read(1) == b"x"
        finally:
            link.close()
        assert b.wait(10) == 3
    assert used < 0.25, f"idle guest used {used:.0%} of a host core"


@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_port_check(board: str, build_root: Path) -> None:
    from tinyfed_host.emulator import run_to_exit

    elf = selftest_image(board, "port_check", build_root).elf
    code, log = run_to_exit(elf, board, timeout=30)
    assert code == 0, log
    assert "port_check ok" in log
    kv = dict(line.split("=", 1) for line in log.splitlines() if "=" in line)
    spec = load_board(board)
    assert int(kv["ram_size"]) == spec.ram_bytes and int(kv["flash_size"]) == spec.flash_bytes
    assert int(kv["storage_size"]) == spec.spec["storage_kb"] * 1024
    assert int(kv["storage_erase_unit"]) == spec.storage_erase_bytes
    # Two boots of one image with different host seeds draw different numbers.
    code2, log2 = run_to_exit(elf, board, timeout=30)
    assert code2 == 0
    r1 = re.search(r"random=([0-9a-f]{32})", log)
    r2 = re.search(r"random=([0-9a-f]{32})", log2)
    assert r1 and r2 and r1.group(1) != r2.group(1)


@needs_qemu
@pytest.mark.qemu
def test_storage_survives_qemu_restart(build_root: Path, tmp_path: Path) -> None:
    from tinyfed_host.emulator import run_to_exit

    elf = selftest_image("mps2-an386", "port_check", build_root).elf
    store = tmp_path / "board0.storage"
    code, log = run_to_exit(elf, "mps2-an386", storage=store, args=["--storage-phase=write"])
    assert code == 0, log
    assert store.stat().st_size == 16 * 1024
    data = store.read_bytes()
    assert data[4096 + 100:4096 + 104] == bytes([0xDE, 0xAD, 0xBE, 0xEF])
    code, log = run_to_exit(elf, "mps2-an386", storage=store, args=["--storage-phase=verify"])
    assert code == 0, log
    # Without the backing file the pattern is gone: the check can fail.
    code, log = run_to_exit(elf, "mps2-an386", args=["--storage-phase=verify"])
    assert code == 41, log


@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board,fault_code", [("mps2-an386", 132), ("mps2-an505", 134), ("mps3-an547", 134),
                                              ("stm32f405", 132)])
def test_stack_overflow_faults_and_reports(board: str, fault_code: int, build_root: Path) -> None:
    from tinyfed_host.emulator import run_to_exit

    elf = selftest_image(board, "stack_overflow", build_root).elf
    code, log = run_to_exit(elf, board, timeout=30)
    assert code == fault_code, log  # MemManage (MPU guard) / UsageFault (MSPLIM)
    assert "tinyfed: fatal" in log and "NOT detected" not in log


def _load_bench_icount():
    spec = importlib.util.spec_from_file_location("bench_icount", REPO / "bench" / "icount.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_icount"] = module
    spec.loader.exec_module(module)
    return module


@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an505"])
def test_icount_method_is_exact_on_known_loops(board: str) -> None:
    icount = _load_bench_icount()
    v = icount.validate(board, shift=6)
    assert len(v.runs) == 5
    assert 0 < v.offset <= 10  # argument load, call, return around the loop
    for run, err in zip(v.runs, v.errors):
        if run.iterations <= 1_000_000:
            assert err == 0, v.report()  # exact
        else:
            assert 0 <= err <= 64, v.report()  # + the 2^24-clock tick interrupt(s)
    assert v.max_rel_error < 5e-6


@needs_qemu
@pytest.mark.qemu
def test_emulator_cleans_up_on_sigterm(tmp_path: Path, build_root: Path) -> None:
    """A host process killed with SIGTERM takes its QEMU boards with it."""
    elf = selftest_image("mps2-an386", "uart_echo", build_root).elf
    script = tmp_path / "host.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tinyfed_host.emulator import start_boards\n"
        f"boards = start_boards(2, images=[Path({str(elf)!r})])\n"
        "print(' '.join(str(b.pid) for b in boards), flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGTERM  # the default action still ran
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.05)
        assert not any(Path(f"/proc/{p}").exists() for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_qemu
@pytest.mark.qemu
def test_start_boards_ports_are_distinct_and_listening(build_root: Path) -> None:
    from tinyfed_host.emulator import Emulator

    elf = selftest_image("mps2-an386", "uart_echo", build_root).elf
    with Emulator() as emu:
        boards = emu.start(3, images=elf)
        assert len({b.port for b in boards}) == 3
        assert all(b.url == f"socket://127.0.0.1:{b.port}" and b.running() for b in boards)
        with socket.create_connection(("127.0.0.1", boards[0].port), timeout=5):
            pass
    assert all(not b.running() for b in boards)


@needs_qemu
@pytest.mark.qemu
def test_bench_infer_counts_instructions_per_inference(tmp_path: Path) -> None:
    icount = _load_bench_icount()
    model = icount.write_smoke_model(tmp_path / "model")
    kv = icount.bench_infer(model, "mps2-an386", shift=6, runs=4, timeout=60)
    macs = 64 * 32 + 32 * 10
    assert kv["model"] == "smoke" and kv["runs"] == "4" and kv["icount_shift"] == "6"
    lo, hi = int(kv["insns_min"]), int(kv["insns_max"])
    assert hi - lo <= 1  # same input every run: deterministic up to quantisation
    assert macs < lo < 100 * macs
    assert "mps2-an386: flash" in kv["memory"]
