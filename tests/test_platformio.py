"""PlatformIO, offline: `pio run -e mps2-an386` builds through the local
platform (boards/platformio) the same image as toolchain/image/firmware.py, the real
boards build through their *-local envs, and `pio test` boots the on-target
test image in QEMU (mps2-an386, and the STM32F405 port on netduinoplus2).

Needs the offline core that `.ci/setup_platformio.sh` installs in .pio-core
(CI's .ci/setup runs it); skipped with that reason otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / ".pio-core"

pytestmark = [
    pytest.mark.skipif(
        not (CORE / "packages" / "tool-scons" / "scons.py").is_file()
        or not (CORE / "local" / "toolchain-gccarmnoneeabi" / "bin" / "arm-none-eabi-gcc").exists(),
        reason="PlatformIO offline core not set up: run `bash .ci/setup_platformio.sh`",
    ),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc"),
]
STATEMENT = re.compile(r"^(mps2-an386|mps3-an547|stm32f405|stm32f746g-disco|nrf52840|nano33ble): flash (\d+) / \d+ B .*SRAM (\d+) / \d+ B",
                       re.M)


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_icount", REPO / "bench" / "icount.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_icount"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bench_module().write_smoke_model(tmp_path_factory.mktemp("model"))


def pio(args: list[str], build_dir: Path, model_dir: Path | None = None,
        app: str = "bench_infer", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(PLATFORMIO_CORE_DIR=str(CORE), PLATFORMIO_BUILD_DIR=str(build_dir),
               TINYFED_APP=app, PLATFORMIO_NO_ANSI="1", PLATFORMIO_DISABLE_PROGRESSBAR="true")
    if model_dir is not None:
        env["TINYFED_MODEL_DIR"] = str(model_dir)
    return subprocess.run([sys.executable, "-m", "platformio", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_pio_run_builds_offline_same_image_as_firmware_py(smoke_model: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = pio(["run", "-e", "mps2-an386"], tmp_path / "pio", smoke_model)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SUCCESS" in proc.stdout
    elf = tmp_path / "pio" / "mps2-an386" / "firmware.elf"
    assert elf.is_file()
    m = STATEMENT.search(proc.stdout)
    assert m, proc.stdout[-2000:]
    print(f"pio run -e mps2-an386 (clean): {took:.1f} s")

    from tinyfed_toolchain.image.firmware import build_image

    info = build_image("mps2-an386", smoke_model, tmp_path / "py", app="bench_infer", quiet=True)
    # Same sources, flags and linker script: the same flash and SRAM use.
    assert (int(m.group(2)), int(m.group(3))) == (info.flash_used, info.ram_used)

    if shutil.which("qemu-system-arm"):
        from tinyfed_host.emulator import run_to_exit

        code, log = run_to_exit(elf, "mps2-an386", icount_shift=6, timeout=60)
        assert code == 0, log
        assert "model=smoke" in log and re.search(r"insns_mean=\d+", log)


def test_pio_local_envs_build_real_boards_offline(smoke_model: Path, tmp_path: Path) -> None:
    envs = ("stm32f746g-disco-local", "nrf52840-local")  # nano33ble-local: the same env shape
    proc = pio(["run", *(a for e in envs for a in ("-e", e))], tmp_path / "pio", smoke_model)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    boards = {m.group(1) for m in STATEMENT.finditer(proc.stdout)}
    assert boards == {"stm32f746g-disco", "nrf52840"}
    for env in envs:
        assert (tmp_path / "pio" / env / "firmware.bin").stat().st_size > 1000


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="no qemu-system-arm")
@pytest.mark.parametrize("env", ["mps2-an386", "stm32f405"])  # stm32f405: the real chip's port, on netduinoplus2
def test_pio_test_boots_on_target_test_in_qemu(env: str, tmp_path: Path) -> None:
    proc = pio(["test", "-e", env], tmp_path / "pio")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    m = re.search(r"(\d+) test cases: (\d+) succeeded", out)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 7, out[-2000:]
