"""STM32F4 / STM32F7 clock bring-up (boards/common/stm32/stm32_clock.c, shared
by the stm32f405 and stm32f746g-disco ports) run on the host against a model
of RCC / PWR / FLASH (tests/c/stm32_clock_model.c) that fails each step in
turn: the crystal does not start, the PLL does not lock, over-drive or its
switch is not ready, the wait states do not take, the switch to the PLL does
not happen.

Every failure must fall back CONSISTENTLY: the core back on HSI 16 MHz with
APB /1, PLL / HSE / over-drive off, the 48 MHz domain (RNG) from a PLL fed by
HSI, and what the function reports (the numbers SysTick, the USART divider and
the RNG use) equal to what the model says really runs.  The model also counts
what silicon would not forgive (PLLCFGR written with the PLL on, reserved bits
changed, too few wait states for the clock, APB over its maximum, 216 MHz
without over-drive, ODSWEN before ODRDY ...): there must be none.

QEMU's netduinoplus2 has no RCC model, so this is where the real path and
its fallbacks are exercised (the QEMU run of the F405 image exercises the
"HSE did not start" fallback on the ARM core itself: tests/test_new_boards_qemu.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinyfed_toolchain.image.native_cc import compile_native

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ROOT / "boards"


@pytest.fixture(scope="module")
def model() -> Path:
    return compile_native(
        [BOARDS / "common" / "stm32" / "stm32_clock.c", ROOT / "tests" / "c" / "stm32_clock_model.c"],
        [BOARDS / "common" / "stm32", BOARDS / "stm32f405", BOARDS / "stm32f746g-disco"],
        "stm32_clock_model", extra_flags=["-DTFD_STM32_REG_MODEL"])


def run(model: Path, family: str, hse: int, step: str) -> dict[str, str]:
    out = subprocess.run([str(model), family, str(hse), step], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return dict(kv.split("=", 1) for kv in out.rstrip("\n").split("\t"))


@pytest.mark.parametrize("family,hse,sysclk,apb1,apb2", [
    ("f4", 25_000_000, 168_000_000, 42_000_000, 84_000_000),   # Netduino Plus 2
    ("f4", 12_000_000, 168_000_000, 42_000_000, 84_000_000),   # Feather STM32F405
    ("f4", 8_000_000, 168_000_000, 42_000_000, 84_000_000),    # STM32F4-Discovery (F407)
    ("f7", 25_000_000, 216_000_000, 54_000_000, 108_000_000),  # STM32F746G-DISCO
])
def test_real_path_reaches_the_target(model: Path, family: str, hse: int, sysclk: int, apb1: int,
                                      apb2: int) -> None:
    r = run(model, family, hse, "none")
    assert r["violations"] == "0", r["why"]
    assert r["failure"] == "none" and r["on_pll"] == "1"
    assert (int(r["actual_sysclk"]), int(r["actual_apb1"]), int(r["actual_apb2"])) == (sysclk, apb1, apb2)
    assert (r["reported_sysclk"], r["reported_apb1"], r["reported_apb2"]) == \
        (r["actual_sysclk"], r["actual_apb1"], r["actual_apb2"])
    assert r["actual_ck48"] == r["reported_ck48"] == "1"
    assert int(r["latency"]) == (sysclk - 1) // 30_000_000  # 5 WS at 168 MHz, 7 at 216 MHz
    assert r["od_on"] == ("1" if family == "f7" else "0")


FAILURES = {
    "f4": [("hse", "HSE did not start"), ("pll", "PLL did not lock"),
           ("latency", "flash wait states not taken"), ("switch", "SYSCLK did not switch to the PLL")],
    "f7": [("hse", "HSE did not start"), ("pll", "PLL did not lock"), ("od", "over-drive not ready"),
           ("odsw", "over-drive switch not ready"), ("latency", "flash wait states not taken"),
           ("switch", "SYSCLK did not switch to the PLL")],
}


@pytest.mark.parametrize("family,step,text", [(f, s, t) for f, cases in FAILURES.items() for s, t in cases])
def test_each_failure_falls_back_consistently(model: Path, family: str, step: str, text: str) -> None:
    r = run(model, family, 25_000_000, step)
    assert r["violations"] == "0", r["why"]
    assert r["failure"] == text and r["on_pll"] == "0"
    # back on HSI 16 MHz, APB /1, and the report says so (SysTick, BRR, RNG use the report)
    assert (r["actual_sysclk"], r["actual_apb1"], r["actual_apb2"]) == ("16000000",) * 3
    assert (r["reported_sysclk"], r["reported_apb1"], r["reported_apb2"]) == ("16000000",) * 3
    assert r["hse_on"] == "0" and r["od_on"] == "0"
    # the 48 MHz domain comes from the HSI PLL, unless the PLL itself is what failed
    expect_ck48 = "0" if step == "pll" else "1"
    assert r["actual_ck48"] == r["reported_ck48"] == expect_ck48
    assert r["pll_on"] == expect_ck48


def test_no_crystal_stays_on_hsi_with_the_rng_clock(model: Path) -> None:
    """The STM32F746G-DISCO's default build (no TFD_STM32F7_SYSCLK_216MHZ): HSI 16 MHz + PLLQ 48 MHz."""
    r = run(model, "f7", 0, "none")
    assert r["violations"] == "0", r["why"]
    assert r["failure"] == "no HSE crystal configured"
    assert r["reported_sysclk"] == r["actual_sysclk"] == "16000000"
    assert r["reported_ck48"] == r["actual_ck48"] == "1"


def test_the_model_can_catch_a_bad_bring_up(model: Path, tmp_path: Path) -> None:
    """The model is not a rubber stamp: the port's old F746 sequence (switch
    to the PLL although over-drive never became ready, PLLCFGR written whole)
    is flagged."""
    bad = tmp_path / "bad_clock.c"
    bad.write_text(
        '#include "stm32_clock.h"\n#include "stm32_regs.h"\n'
        "void tfd_stm32_clock_init(const tfd_stm32_clock_cfg_t *cfg, tfd_stm32_clocks_t *out) {\n"
        "  (void)cfg; tfd_stm32_wr(RCC_BASE + 0x40u, RCC_APB1ENR_PWREN);\n"
        "  tfd_stm32_wr(RCC_BASE, RCC_CR_HSION | RCC_CR_HSEON);\n"
        "  tfd_stm32_wr(RCC_BASE + 4u, 25u | (432u << 6) | RCC_PLLCFGR_SRC_HSE | (9u << 24));\n"
        "  tfd_stm32_wr(RCC_BASE, RCC_CR_HSION | RCC_CR_HSEON | RCC_CR_PLLON);\n"
        "  tfd_stm32_wr(PWR_BASE, (3u << 14) | PWR_F7_CR1_ODEN);\n"
        "  tfd_stm32_wr(FLASH_R_BASE, 7u);\n"
        "  tfd_stm32_wr(RCC_BASE + 8u, (5u << 10) | (4u << 13) | 2u);\n"
        "  out->sysclk_hz = 216000000u; out->apb1_hz = 54000000u; out->apb2_hz = 108000000u;\n"
        "  out->on_pll = 1; out->ck48_ok = 1; out->failure = TFD_STM32_CLOCK_OK; }\n"
        "const char *tfd_stm32_clock_failure_str(tfd_stm32_clock_failure_t f) { (void)f; return \"none\"; }\n")
    exe = compile_native([bad, ROOT / "tests" / "c" / "stm32_clock_model.c"],
                       [BOARDS / "common" / "stm32", BOARDS / "stm32f405", BOARDS / "stm32f746g-disco"],
                       "stm32_clock_model_bad", extra_flags=["-DTFD_STM32_REG_MODEL"], cache_dir=tmp_path)
    r = run(exe, "f7", 25_000_000, "od")
    assert int(r["violations"]) >= 2
    assert "reserved PLLCFGR bits changed" in r["why"] and "above 180 MHz without over-drive" in r["why"]
