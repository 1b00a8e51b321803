/* tinyfed boards — STM32F4 / STM32F7 clock bring-up (see stm32_clock.h). */
#include "stm32_clock.h"

#include "stm32_regs.h"

#define RCC_CR_A (RCC_BASE + RCC_CR_OFF)
#define RCC_PLLCFGR_A (RCC_BASE + RCC_PLLCFGR_OFF)
#define RCC_CFGR_A (RCC_BASE + RCC_CFGR_OFF)
#define RCC_APB1ENR_A (RCC_BASE + 0x40u)
#define PWR_CR_A (PWR_BASE + PWR_CR_OFF)
#define PWR_CSR_A (PWR_BASE + PWR_CSR_OFF)
#define FLASH_ACR_A (FLASH_R_BASE + FLASH_ACR_OFF)

/* Bounded waits, in polling iterations (each >= ~6 core clocks, and the core
 * runs from HSI 16 MHz while they run): HSE start-up >= ~100 ms (crystals
 * take 2-10 ms), everything else >= ~25 ms (PLL lock is ~0.1-0.3 ms,
 * over-drive ~0.05 ms, a clock switch a few cycles). */
#define SPIN_HSE 400000u
#define SPIN_SHORT 100000u

/* SWS values */
#define SWS_HSI 0u
#define SWS_HSE 1u
#define SWS_PLL 2u

const char *tfd_stm32_clock_failure_str(tfd_stm32_clock_failure_t f)
{
    switch (f) {
#define TFD_STM32_CLOCK_STR_(name, value, text) \
    case TFD_STM32_CLOCK_##name:                \
        return text;
        TFD_STM32_CLOCK_FAILURES(TFD_STM32_CLOCK_STR_)
#undef TFD_STM32_CLOCK_STR_
    default: return "?";
    }
}

static void set_bits(uint32_t addr, uint32_t bits)
{
    tfd_stm32_wr(addr, tfd_stm32_rd(addr) | bits);
}

static void clear_bits(uint32_t addr, uint32_t bits)
{
    tfd_stm32_wr(addr, tfd_stm32_rd(addr) & ~bits);
}

/* Wait until (reg & mask) == want; 1 on success, 0 after `spins` polls. */
static int wait_for(uint32_t addr, uint32_t mask, uint32_t want, uint32_t spins)
{
    for (uint32_t i = 0; i < spins; ++i) {
        if ((tfd_stm32_rd(addr) & mask) == want) return 1;
    }
    return (tfd_stm32_rd(addr) & mask) == want;
}

static uint32_t sws(void)
{
    return (tfd_stm32_rd(RCC_CFGR_A) >> RCC_CFGR_SWS_SHIFT) & 3u;
}

int tfd_stm32_pll_factors(uint32_t in_hz, uint32_t sysclk_hz, uint32_t *m, uint32_t *n, uint32_t *q)
{
    /* VCO input 2 MHz (lower jitter) when the input divides evenly, else 1 MHz. */
    const uint32_t vin = in_hz % 2000000u == 0u ? 2000000u : 1000000u;
    if (in_hz == 0u || in_hz % vin != 0u || sysclk_hz == 0u) return 0;
    const uint32_t mm = in_hz / vin;
    const uint32_t vco = 2u * sysclk_hz; /* P = 2 */
    if (vco % vin != 0u || vco % 48000000u != 0u) return 0;
    const uint32_t nn = vco / vin, qq = vco / 48000000u;
    if (mm < 2u || mm > 63u || nn < 50u || nn > 432u || qq < 2u || qq > 15u) return 0;
    if (vco < 192000000u || vco > 432000000u) return 0;
    *m = mm;
    *n = nn;
    *q = qq;
    return 1;
}

uint32_t tfd_stm32_flash_latency(uint32_t hclk_hz)
{
    return hclk_hz == 0u ? 0u : (hclk_hz - 1u) / 30000000u;
}

static uint32_t apb_bits(uint8_t div)
{
    switch (div) {
    case 2: return 4u;
    case 4: return 5u;
    case 8: return 6u;
    case 16: return 7u;
    default: return 0u; /* /1 */
    }
}

static uint32_t apb_div_of(uint32_t bits)
{
    return (bits & 4u) ? 2u << (bits & 3u) : 1u;
}

/* The PLL's output frequencies from its registers (0 if it is not locked). */
static void pll_outputs(uint32_t hse_hz, uint32_t *p_hz, uint32_t *q_hz)
{
    *p_hz = *q_hz = 0;
    if (!(tfd_stm32_rd(RCC_CR_A) & RCC_CR_PLLRDY)) return;
    const uint32_t c = tfd_stm32_rd(RCC_PLLCFGR_A);
    const uint32_t in = (c & RCC_PLLCFGR_SRC_HSE) ? hse_hz : TFD_STM32_HSI_HZ;
    const uint32_t m = c & 0x3Fu, n = (c >> 6) & 0x1FFu, p = 2u * (((c >> 16) & 3u) + 1u), q = (c >> 24) & 0xFu;
    if (m < 2u || q < 2u) return;
    const uint64_t vco = (uint64_t)in / m * n;
    *p_hz = (uint32_t)(vco / p);
    *q_hz = (uint32_t)(vco / q);
}

/* What is really running, from RCC (never from the target). */
static void read_back(const tfd_stm32_clock_cfg_t *cfg, tfd_stm32_clocks_t *out)
{
    uint32_t p_hz, q_hz;
    pll_outputs(cfg->hse_hz, &p_hz, &q_hz);
    const uint32_t s = sws();
    const uint32_t sys = s == SWS_PLL ? p_hz : s == SWS_HSE ? cfg->hse_hz : TFD_STM32_HSI_HZ;
    const uint32_t cfgr = tfd_stm32_rd(RCC_CFGR_A);
    const uint32_t hpre = (cfgr >> 4) & 0xFu;
    const uint32_t hclk = (hpre & 8u) ? sys >> ((hpre & 7u) + 1u + ((hpre & 7u) >= 4u)) : sys;
    out->sysclk_hz = hclk;
    out->apb1_hz = hclk / apb_div_of((cfgr >> 10) & 7u);
    out->apb2_hz = hclk / apb_div_of((cfgr >> 13) & 7u);
    out->on_pll = s == SWS_PLL;
    out->ck48_ok = q_hz == 48000000u;
}

static void set_latency(const tfd_stm32_clock_cfg_t *cfg, uint32_t ws)
{
    const uint32_t art = cfg->f4_art ? (FLASH_ACR_F4_ICEN | FLASH_ACR_F4_DCEN) : FLASH_ACR_F7_ARTEN;
    const uint32_t acr = tfd_stm32_rd(FLASH_ACR_A);
    tfd_stm32_wr(FLASH_ACR_A, (acr & ~FLASH_ACR_LATENCY_MASK) | ws | FLASH_ACR_PRFTEN | art);
}

static void pll_configure(uint32_t m, uint32_t n, uint32_t q, int from_hse)
{
    const uint32_t fields = m | (n << 6) | (0u << 16) /* P = 2 */ | (from_hse ? RCC_PLLCFGR_SRC_HSE : 0u) | (q << 24);
    const uint32_t c = tfd_stm32_rd(RCC_PLLCFGR_A);
    tfd_stm32_wr(RCC_PLLCFGR_A, (c & ~RCC_PLLCFGR_FIELDS) | fields); /* reserved bits kept */
}

/* Back to HSI 16 MHz, everything the real path touched undone, then the PLL
 * from HSI for the 48 MHz domain. */
static void fall_back(const tfd_stm32_clock_cfg_t *cfg)
{
    const uint32_t cfgr = tfd_stm32_rd(RCC_CFGR_A);
    tfd_stm32_wr(RCC_CFGR_A, (cfgr & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_HSI);
    (void)wait_for(RCC_CFGR_A, 3u << RCC_CFGR_SWS_SHIFT, SWS_HSI << RCC_CFGR_SWS_SHIFT, SPIN_SHORT);
    if (sws() == SWS_HSI) {
        clear_bits(RCC_CFGR_A, RCC_CFGR_PRESCALERS); /* AHB, APB1, APB2 /1 */
        set_latency(cfg, tfd_stm32_flash_latency(TFD_STM32_HSI_HZ));
        if (cfg->overdrive && (tfd_stm32_rd(RCC_APB1ENR_A) & RCC_APB1ENR_PWREN)) {
            clear_bits(PWR_CR_A, PWR_F7_CR1_ODSWEN | PWR_F7_CR1_ODEN);
        }
        clear_bits(RCC_CR_A, RCC_CR_PLLON);
        (void)wait_for(RCC_CR_A, RCC_CR_PLLRDY, 0u, SPIN_SHORT);
        clear_bits(RCC_CR_A, RCC_CR_HSEON);
        if (!(tfd_stm32_rd(RCC_CR_A) & RCC_CR_PLLRDY)) {
            /* VCO in 16/16 = 1 MHz, VCO 192 MHz, P = 2 (96 MHz, unused), Q = 4: 48 MHz. */
            pll_configure(16u, 192u, 4u, 0);
            set_bits(RCC_CR_A, RCC_CR_PLLON);
            if (!wait_for(RCC_CR_A, RCC_CR_PLLRDY, RCC_CR_PLLRDY, SPIN_SHORT)) clear_bits(RCC_CR_A, RCC_CR_PLLON);
        }
    }
    /* else: the core could not be moved off the PLL; read_back reports what runs. */
}

static tfd_stm32_clock_failure_t real_path(const tfd_stm32_clock_cfg_t *cfg)
{
    uint32_t m, n, q;
    if (cfg->hse_hz == 0u) return TFD_STM32_CLOCK_NO_HSE;
    if (!tfd_stm32_pll_factors(cfg->hse_hz, cfg->sysclk_hz, &m, &n, &q)) return TFD_STM32_CLOCK_NO_HSE;

    /* Regulator scale 1 (the voltage for the top frequencies), PLL off while it changes. */
    set_bits(RCC_APB1ENR_A, RCC_APB1ENR_PWREN);
    (void)tfd_stm32_rd(RCC_APB1ENR_A); /* the enable takes effect before PWR is written */
    set_bits(PWR_CR_A, cfg->f4_vos ? PWR_F4_CR_VOS_SCALE1 : PWR_F7_CR1_VOS_SCALE1);

    set_bits(RCC_CR_A, RCC_CR_HSEON);
    if (!wait_for(RCC_CR_A, RCC_CR_HSERDY, RCC_CR_HSERDY, SPIN_HSE)) return TFD_STM32_CLOCK_HSE;

    clear_bits(RCC_CR_A, RCC_CR_PLLON);
    if (!wait_for(RCC_CR_A, RCC_CR_PLLRDY, 0u, SPIN_SHORT)) return TFD_STM32_CLOCK_PLL;
    pll_configure(m, n, q, 1);
    set_bits(RCC_CR_A, RCC_CR_PLLON);
    if (!wait_for(RCC_CR_A, RCC_CR_PLLRDY, RCC_CR_PLLRDY, SPIN_SHORT)) return TFD_STM32_CLOCK_PLL;

    if (cfg->overdrive) { /* RM0385 3.3.2 / 4.1.4: ODEN, wait ODRDY, ODSWEN, wait ODSWRDY */
        set_bits(PWR_CR_A, PWR_F7_CR1_ODEN);
        if (!wait_for(PWR_CSR_A, PWR_F7_CSR1_ODRDY, PWR_F7_CSR1_ODRDY, SPIN_SHORT)) {
            return TFD_STM32_CLOCK_OVERDRIVE;
        }
        set_bits(PWR_CR_A, PWR_F7_CR1_ODSWEN);
        if (!wait_for(PWR_CSR_A, PWR_F7_CSR1_ODSWRDY, PWR_F7_CSR1_ODSWRDY, SPIN_SHORT)) {
            return TFD_STM32_CLOCK_OVERDRIVE_SWITCH;
        }
    }

    /* Wait states up BEFORE the clock goes up; checked by reading back. */
    const uint32_t ws = tfd_stm32_flash_latency(cfg->sysclk_hz);
    set_latency(cfg, ws);
    if ((tfd_stm32_rd(FLASH_ACR_A) & FLASH_ACR_LATENCY_MASK) != ws) return TFD_STM32_CLOCK_LATENCY;

    const uint32_t cfgr = tfd_stm32_rd(RCC_CFGR_A) & ~RCC_CFGR_PRESCALERS;
    tfd_stm32_wr(RCC_CFGR_A, cfgr | (apb_bits(cfg->apb1_div) << 10) | (apb_bits(cfg->apb2_div) << 13));
    const uint32_t c2 = tfd_stm32_rd(RCC_CFGR_A);
    tfd_stm32_wr(RCC_CFGR_A, (c2 & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL);
    if (!wait_for(RCC_CFGR_A, 3u << RCC_CFGR_SWS_SHIFT, SWS_PLL << RCC_CFGR_SWS_SHIFT, SPIN_SHORT)) {
        return TFD_STM32_CLOCK_SWITCH;
    }
    return TFD_STM32_CLOCK_OK;
}

void tfd_stm32_clock_init(const tfd_stm32_clock_cfg_t *cfg, tfd_stm32_clocks_t *out)
{
    /* Reset state: the core runs on HSI (HSION, HSIRDY set). */
    const tfd_stm32_clock_failure_t f = real_path(cfg);
    if (f != TFD_STM32_CLOCK_OK) fall_back(cfg);
    read_back(cfg, out);
    out->failure = f;
}
