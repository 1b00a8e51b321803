/* tinyfed tests — boards/common/stm32/stm32_clock.c on the host, against a
 * model of the STM32F4 / STM32F7 RCC, PWR and flash interface registers that
 * can fail each step of the bring-up (tests/test_stm32_clock.py).
 *
 * The model behaves as RM0090 / RM0385 describe: HSERDY follows HSEON unless
 * the crystal is "dead", PLLRDY follows PLLON (from a ready source) unless the
 * PLL "does not lock", SWS follows SW only to a ready source (and, for the
 * PLL, unless the switch "fails"), ODRDY/ODSWRDY follow ODEN/ODSWEN unless
 * over-drive "fails", FLASH_ACR.LATENCY reads back unless the write "does not
 * take".  It also checks what silicon would not forgive: PLLCFGR written with
 * the PLL on, reserved PLLCFGR bits changed, the PLL or HSE turned off while
 * SYSCLK uses them, SYSCLK above the family's maximum or above what the wait
 * states allow, APB clocks above their maximum, over-drive switched before it
 * is ready, 216 MHz without over-drive.
 *
 * Usage: stm32_clock_model f4|f7 HSE_HZ STEP   (STEP: none hse pll od odsw latency switch)
 * Prints one line of tab-separated key=value: what stm32_clock_init reported, what the
 * model says really runs, and the number of violations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stm32_clock.h"
#include "stm32_regs.h"
#include "stm32f405_regs.h"
#undef USART1_BASE
#undef USART_CR1
#undef USART_CR2
#undef USART_CR3
#undef USART_BRR
#undef USART1_IRQ
#undef USART_CR1_UE
#undef USART_CR1_RE
#undef USART_CR1_TE
#undef USART_CR1_RXNEIE
#undef USART_CR1_TXEIE
#undef USART_ISR_ORE
#undef USART_ISR_RXNE
#undef USART_ISR_TXE
#undef USART_SR_ORE
#include "stm32f7_regs.h"

static struct {
    int f7;
    uint32_t hse_hz;
    const char *fail;
    uint32_t rcc_cr, pllcfgr, cfgr, apb1enr, pwr_cr, pwr_csr, acr;
    int violations;
    char why[512];
} M;

static void violation(const char *what)
{
    M.violations++;
    if (strlen(M.why) + strlen(what) + 2 < sizeof M.why) {
        strcat(M.why, what);
        strcat(M.why, ";");
    }
}

static int failing(const char *step)
{
    return strcmp(M.fail, step) == 0;
}

/* Frequencies the model's state produces. */
static uint32_t pll_in(void)
{
    return (M.pllcfgr & RCC_PLLCFGR_SRC_HSE) ? M.hse_hz : TFD_STM32_HSI_HZ;
}

static uint32_t pll_p(void)
{
    const uint32_t m = M.pllcfgr & 0x3Fu, n = (M.pllcfgr >> 6) & 0x1FFu, p = 2u * (((M.pllcfgr >> 16) & 3u) + 1u);
    return m ? (uint32_t)((uint64_t)pll_in() / m * n / p) : 0u;
}

static uint32_t pll_q(void)
{
    const uint32_t m = M.pllcfgr & 0x3Fu, n = (M.pllcfgr >> 6) & 0x1FFu, q = (M.pllcfgr >> 24) & 0xFu;
    return m && q ? (uint32_t)((uint64_t)pll_in() / m * n / q) : 0u;
}

static uint32_t sysclk(void)
{
    switch ((M.cfgr >> 2) & 3u) {
    case 1: return M.hse_hz;
    case 2: return pll_p();
    default: return TFD_STM32_HSI_HZ;
    }
}

static uint32_t apb(int which)
{
    const uint32_t bits = (M.cfgr >> (which == 1 ? 10 : 13)) & 7u;
    return sysclk() / ((bits & 4u) ? (2u << (bits & 3u)) : 1u);
}

static void check_clocks(void)
{
    const uint32_t sys = sysclk();
    const uint32_t max = M.f7 ? 216000000u : 168000000u;
    if (sys > max) violation("SYSCLK above the maximum");
    if (M.f7 && sys > 180000000u && !(M.pwr_csr & PWR_F7_CSR1_ODSWRDY)) violation("above 180 MHz without over-drive");
    if ((M.acr & 0xFu) < (sys - 1u) / 30000000u) violation("too few flash wait states for SYSCLK");
    if (apb(1) > (M.f7 ? 54000000u : 42000000u)) violation("APB1 above its maximum");
    if (apb(2) > (M.f7 ? 108000000u : 84000000u)) violation("APB2 above its maximum");
}

static int src_ready(uint32_t sw)
{
    switch (sw) {
    case 0: return (M.rcc_cr & RCC_CR_HSIRDY) != 0;
    case 1: return (M.rcc_cr & RCC_CR_HSERDY) != 0;
    case 2: return (M.rcc_cr & RCC_CR_PLLRDY) != 0;
    default: return 0;
    }
}

uint32_t tfd_stm32_rd(uint32_t addr)
{
    switch (addr) {
    case RCC_BASE + RCC_CR_OFF: return M.rcc_cr;
    case RCC_BASE + RCC_PLLCFGR_OFF: return M.pllcfgr;
    case RCC_BASE + RCC_CFGR_OFF: return M.cfgr;
    case RCC_BASE + 0x40u: return M.apb1enr;
    case PWR_BASE + PWR_CR_OFF: return M.pwr_cr;
    case PWR_BASE + PWR_CSR_OFF: return M.pwr_csr;
    case FLASH_R_BASE + FLASH_ACR_OFF: return M.acr;
    default: violation("read of an unmodelled register"); return 0;
    }
}

void tfd_stm32_wr(uint32_t addr, uint32_t v)
{
    const uint32_t sws = (M.cfgr >> 2) & 3u;
    switch (addr) {
    case RCC_BASE + RCC_CR_OFF: {
        const int pll_used = sws == 2u;
        const int hse_used = sws == 1u || (pll_used && (M.pllcfgr & RCC_PLLCFGR_SRC_HSE));
        if (pll_used && !(v & RCC_CR_PLLON)) violation("PLL off while SYSCLK uses it");
        if (hse_used && !(v & RCC_CR_HSEON)) violation("HSE off while SYSCLK uses it");
        if (!(v & RCC_CR_HSION)) violation("HSI off");
        M.rcc_cr = (v & (RCC_CR_HSION | RCC_CR_HSEON | RCC_CR_HSEBYP | RCC_CR_PLLON)) | RCC_CR_HSIRDY;
        if ((M.rcc_cr & RCC_CR_HSEON) && !failing("hse")) M.rcc_cr |= RCC_CR_HSERDY;
        const int src_ok = !(M.pllcfgr & RCC_PLLCFGR_SRC_HSE) || (M.rcc_cr & RCC_CR_HSERDY);
        if ((M.rcc_cr & RCC_CR_PLLON) && src_ok && !failing("pll")) M.rcc_cr |= RCC_CR_PLLRDY;
        break;
    }
    case RCC_BASE + RCC_PLLCFGR_OFF:
        if (M.rcc_cr & (RCC_CR_PLLON | RCC_CR_PLLRDY)) violation("PLLCFGR written with the PLL on");
        if ((v & ~RCC_PLLCFGR_FIELDS) != (M.pllcfgr & ~RCC_PLLCFGR_FIELDS)) violation("reserved PLLCFGR bits changed");
        M.pllcfgr = v;
        break;
    case RCC_BASE + RCC_CFGR_OFF: {
        const uint32_t sw = v & 3u;
        M.cfgr = v & ~(3u << 2);
        uint32_t new_sws = sws;
        if (src_ready(sw) && !(sw == 2u && failing("switch"))) new_sws = sw;
        M.cfgr |= new_sws << 2;
        check_clocks();
        break;
    }
    case RCC_BASE + 0x40u: M.apb1enr = v; break;
    case PWR_BASE + PWR_CR_OFF:
        if (!(M.apb1enr & RCC_APB1ENR_PWREN)) violation("PWR written with its clock off");
        if (!M.f7 && (v & (PWR_F7_CR1_ODEN | PWR_F7_CR1_ODSWEN))) violation("over-drive bits on an F4");
        if ((v & PWR_F7_CR1_ODSWEN) && !(M.pwr_csr & PWR_F7_CSR1_ODRDY)) violation("ODSWEN before ODRDY");
        M.pwr_cr = v;
        M.pwr_csr = 0;
        if ((v & PWR_F7_CR1_ODEN) && !failing("od")) M.pwr_csr |= PWR_F7_CSR1_ODRDY;
        if ((v & PWR_F7_CR1_ODSWEN) && (M.pwr_csr & PWR_F7_CSR1_ODRDY) && !failing("odsw")) {
            M.pwr_csr |= PWR_F7_CSR1_ODSWRDY;
        }
        if (((M.cfgr >> 2) & 3u) == 2u && !(M.pwr_csr & PWR_F7_CSR1_ODSWRDY) && M.f7 && sysclk() > 180000000u) {
            violation("over-drive off under 216 MHz");
        }
        break;
    case FLASH_R_BASE + FLASH_ACR_OFF:
        M.acr = failing("latency") ? (v & ~0xFu) | (M.acr & 0xFu) : v;
        check_clocks();
        break;
    default: violation("write to an unmodelled register"); break;
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s f4|f7 HSE_HZ STEP\n", argv[0]);
        return 2;
    }
    memset(&M, 0, sizeof M);
    M.f7 = strcmp(argv[1], "f7") == 0;
    M.hse_hz = (uint32_t)strtoul(argv[2], NULL, 10);
    M.fail = argv[3];
    M.rcc_cr = RCC_CR_HSION | RCC_CR_HSIRDY; /* reset values */
    M.pllcfgr = 0x24003010u;
    M.cfgr = 0;
    M.acr = 0;
    M.pwr_cr = M.f7 ? (3u << 14) : (1u << 14);

    const tfd_stm32_clock_cfg_t f4 = TFD_STM32F405_CLOCK_CFG(M.hse_hz);
    const tfd_stm32_clock_cfg_t f7 = TFD_STM32F746_CLOCK_CFG(M.hse_hz);
    tfd_stm32_clocks_t out;
    tfd_stm32_clock_init(M.f7 ? &f7 : &f4, &out);
    check_clocks();
    const uint32_t ck48 = (M.rcc_cr & RCC_CR_PLLRDY) ? pll_q() : 0u;
    printf("reported_sysclk=%u\treported_apb1=%u\treported_apb2=%u\treported_ck48=%u\ton_pll=%u\tfailure=%s\t"
           "actual_sysclk=%u\tactual_apb1=%u\tactual_apb2=%u\tactual_ck48=%u\tpll_on=%u\thse_on=%u\tod_on=%u\t"
           "latency=%u\tviolations=%d\twhy=%s\n",
           out.sysclk_hz, out.apb1_hz, out.apb2_hz, out.ck48_ok, out.on_pll, tfd_stm32_clock_failure_str(out.failure),
           sysclk(), apb(1), apb(2), ck48 == 48000000u, (M.rcc_cr & RCC_CR_PLLON) != 0,
           (M.rcc_cr & RCC_CR_HSEON) != 0, (M.pwr_cr & PWR_F7_CR1_ODEN) != 0, M.acr & 0xFu, M.violations,
           M.why[0] ? M.why : "-");
    return 0;
}
