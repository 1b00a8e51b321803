/* tinyfed boards — STM32F4 / STM32F7 clock bring-up with a consistent
 * fallback (shared by boards/stm32f405 and boards/stm32f746g-disco).
 *
 * The real path: HSE crystal -> main PLL -> SYSCLK at the target frequency
 * (F405: 168 MHz, F746: 216 MHz with the over-drive regulator), flash wait
 * states raised BEFORE the switch, APB prescalers set, the switch checked in
 * RCC_CFGR.SWS.  PLLQ gives the 48 MHz clock the RNG (and USB) need.
 *
 * Any step that does not complete within its bounded wait (HSE not starting,
 * PLL not locking, over-drive not ready, wait states not taking, the switch
 * not happening) undoes what was done: SYSCLK back on HSI 16 MHz, prescalers
 * /1, PLL, HSE and over-drive off, wait states for 16 MHz; then the PLL is
 * started from HSI for the 48 MHz domain only.  The function returns the
 * clocks that are REALLY running (read back from RCC, never the target), so
 * SysTick, the USART baud divider and the RNG use the same truth:
 * tests/test_stm32_clock.py runs this file on the host against a model of
 * RCC / PWR / FLASH that fails each step in turn.
 *
 * Register access goes through tfd_stm32_rd / tfd_stm32_wr so the host test
 * can supply the model (-DTFD_STM32_REG_MODEL); on the target they are plain
 * volatile accesses. */
#ifndef TFD_STM32_CLOCK_H
#define TFD_STM32_CLOCK_H

#include <stdint.h>

#define TFD_STM32_HSI_HZ 16000000u

/* Which step of the real path failed (TFD_STM32_CLOCK_OK: none). */
#define TFD_STM32_CLOCK_FAILURES(X)                                   \
    X(OK, 0, "none")                                                  \
    X(NO_HSE, 1, "no HSE crystal configured")                         \
    X(HSE, 2, "HSE did not start")                                    \
    X(PLL, 3, "PLL did not lock")                                     \
    X(OVERDRIVE, 4, "over-drive not ready")                           \
    X(OVERDRIVE_SWITCH, 5, "over-drive switch not ready")             \
    X(LATENCY, 6, "flash wait states not taken")                      \
    X(SWITCH, 7, "SYSCLK did not switch to the PLL")

typedef enum {
#define TFD_STM32_CLOCK_ENUM_(name, value, text) TFD_STM32_CLOCK_##name = (value),
    TFD_STM32_CLOCK_FAILURES(TFD_STM32_CLOCK_ENUM_)
#undef TFD_STM32_CLOCK_ENUM_
} tfd_stm32_clock_failure_t;

const char *tfd_stm32_clock_failure_str(tfd_stm32_clock_failure_t f);

typedef struct {
    uint32_t hse_hz;     /* crystal on the board; 0: none (stay on HSI) */
    uint32_t sysclk_hz;  /* target SYSCLK = HCLK (AHB /1) */
    uint8_t apb1_div;    /* 1, 2, 4, 8 or 16 */
    uint8_t apb2_div;
    uint8_t overdrive;   /* 1: STM32F7 over-drive (needed above 180 MHz) */
    uint8_t f4_vos;      /* 1: STM32F4 VOS is one bit in PWR_CR (else the F7's two) */
    uint8_t f4_art;      /* 1: F4 ART (ICEN/DCEN) else F7 ART (ARTEN) */
} tfd_stm32_clock_cfg_t;

typedef struct {
    uint32_t sysclk_hz;                /* what the core runs at */
    uint32_t apb1_hz;
    uint32_t apb2_hz;                  /* USART1's kernel clock */
    uint8_t on_pll;                    /* 1: the real path worked */
    uint8_t ck48_ok;                   /* 1: the 48 MHz domain (RNG) is running */
    tfd_stm32_clock_failure_t failure; /* why the real path was left */
} tfd_stm32_clocks_t;

/* Bring the clocks up as described above; never fails (worst case: HSI). */
void tfd_stm32_clock_init(const tfd_stm32_clock_cfg_t *cfg, tfd_stm32_clocks_t *out);

/* PLL factors for cfg (VCO input 2 MHz where the crystal allows, else 1 MHz;
 * P = 2; Q such that PLLQ = 48 MHz).  0 if the target cannot be made. */
int tfd_stm32_pll_factors(uint32_t in_hz, uint32_t sysclk_hz, uint32_t *m, uint32_t *n, uint32_t *q);

/* Flash wait states for HCLK at 2.7-3.6 V (both families: one per 30 MHz). */
uint32_t tfd_stm32_flash_latency(uint32_t hclk_hz);

/* ---- register access (the host test links a model instead) ----------------------------- */
#ifdef TFD_STM32_REG_MODEL
uint32_t tfd_stm32_rd(uint32_t addr);
void tfd_stm32_wr(uint32_t addr, uint32_t value);
#else
static inline uint32_t tfd_stm32_rd(uint32_t addr)
{
    return *(volatile uint32_t *)(uintptr_t)addr;
}
static inline void tfd_stm32_wr(uint32_t addr, uint32_t value)
{
    *(volatile uint32_t *)(uintptr_t)addr = value;
}
#endif

#endif /* TFD_STM32_CLOCK_H */
