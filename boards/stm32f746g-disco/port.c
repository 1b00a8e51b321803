/* tinyfed — port for the STM32F746G-DISCO (STM32F746NG, Cortex-M7).
 *
 * Real board: compiled, linked and size-checked here, never run here (QEMU
 * 7.2 has no STM32F7 machine; a Renode script is provided).  The code it
 * shares with the STM32F405 port (boards/common/stm32: clock bring-up, flash
 * erase/program, RNG) runs under QEMU on the F405 image and, for the clock
 * bring-up, on the host against a register model (tests/test_stm32_clock.py).
 *
 * Clock (boards/common/stm32/stm32_clock.c): by default the core stays on HSI
 *   16 MHz and the PLL runs from HSI only to give the RNG its 48 MHz.  With
 *   -DTFD_STM32F7_SYSCLK_216MHZ=1: HSE 25 MHz -> PLL 216 MHz (M=25 N=432 P=2
 *   Q=9), voltage scale 1 + over-drive (each ready flag checked), 7 wait
 *   states raised before the switch, APB1 54 MHz, APB2 108 MHz.  If any step
 *   fails the clocks fall back to HSI 16 MHz with the 48 MHz domain from the
 *   HSI PLL, and SysTick and the USART divider use the clocks that really run.
 * Caches: L1 I-cache and D-cache on (boards/common/cache.c) besides the ART
 *   accelerator and prefetch (which serve only the ITCM path; this image runs
 *   over AXIM).
 * UART: USART1 on the ST-LINK virtual COM port (TX PA9, RX PB7, AF7), 115200
 *   8N1, RX interrupt into the lock-free ring, TX sleeps on TXE.
 * Ticks: SysTick, 1 ms.   Random: the RNG peripheral (TRNG).
 * Storage: flash sectors 1-2 (0x08008000, 2 x 32 KiB), each erased as one unit
 *   (x32); programmed x32 words / x8 bytes.  The D-cache lines of the range are
 *   invalidated after every erase and program, before anything is read back.
 *   Under Renode (whose STM32F7 platform maps flash as plain memory and has no
 *   flash interface: FLASH_CR reads without LOCK at reset) storage is emulated
 *   on those same addresses (common/emu/emu_storage.c).
 * Log: ITM port 0 if a debugger enabled it.  Exit: logs the code and halts.
 * UART read / idle, storage read and argument checks, log and exit are the
 * real boards' shared code (boards/common/real_board). */

#include "board_common.h"
#include "cache.h"
#include "cortex_m.h"
#include "emu_storage.h"
#include "real_board.h"
#include "stm32_clock.h"
#include "stm32_flash.h"
#include "stm32_rng.h"
#include "stm32f7_regs.h"
#include "systick.h"
#include "tfd/port.h"

#if defined(TFD_STM32F7_SYSCLK_216MHZ) && TFD_STM32F7_SYSCLK_216MHZ
#define HSE_HZ 25000000u /* the board's 25 MHz crystal (X2) */
#else
#define HSE_HZ 0u /* stay on HSI */
#endif
#define BAUD 115200u
#define SECTOR_BYTES F7_SECTOR_BYTES_SMALL
#define STORAGE_SIZE (2u * SECTOR_BYTES)

#ifdef TFD_BOARD_STORAGE_ERASE_BYTES /* board.json "storage_erase_bytes": the toolchain sizes the store with it */
_Static_assert(TFD_BOARD_STORAGE_ERASE_BYTES == SECTOR_BYTES, "board.json storage_erase_bytes disagrees with the port");
#endif

static int s_initialised;
static int s_flash_emulated; /* Renode: no flash interface model */
static tfd_stm32_clocks_t s_clocks;

static void uart_init(uint32_t pclk_hz)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    (void)RCC_APB2ENR; /* read back: clock enable takes effect */
    /* PA9 = USART1_TX, PB7 = USART1_RX: alternate function 7. */
    GPIO_MODER(GPIOA_BASE) = (GPIO_MODER(GPIOA_BASE) & ~(3u << 18)) | (2u << 18);
    GPIO_OSPEEDR(GPIOA_BASE) |= 2u << 18;
    GPIO_AFRH(GPIOA_BASE) = (GPIO_AFRH(GPIOA_BASE) & ~(0xFu << 4)) | (7u << 4);
    GPIO_MODER(GPIOB_BASE) = (GPIO_MODER(GPIOB_BASE) & ~(3u << 14)) | (2u << 14);
    GPIO_PUPDR(GPIOB_BASE) = (GPIO_PUPDR(GPIOB_BASE) & ~(3u << 14)) | (1u << 14);
    GPIO_AFRL(GPIOB_BASE) = (GPIO_AFRL(GPIOB_BASE) & ~(0xFu << 28)) | (7u << 28);

    /* BRR may only change while UE = 0 on this USART (RM0385 34.8.4). */
    USART_CR1(USART1_BASE) = 0;
    USART_CR2(USART1_BASE) = 0;
    USART_CR3(USART1_BASE) = 0;
    USART_BRR(USART1_BASE) = (pclk_hz + BAUD / 2u) / BAUD; /* oversampling 16 */
    USART_ICR(USART1_BASE) = USART_ICR_ALL;
    USART_CR1(USART1_BASE) = USART_CR1_UE | USART_CR1_RE | USART_CR1_TE | USART_CR1_RXNEIE;
    tfd_nvic_enable(USART1_IRQ);
}

static void usart1_isr(void)
{
    const uint32_t isr = USART_ISR(USART1_BASE);
    if (isr & USART_ISR_RXNE) (void)tfd_ring_put(&tfd_real_uart_rx, (uint8_t)USART_RDR(USART1_BASE));
    if (isr & USART_ISR_ORE) USART_ICR(USART1_BASE) = USART_ISR_ORE;
    if ((isr & USART_ISR_TXE) && (USART_CR1(USART1_BASE) & USART_CR1_TXEIE)) {
        USART_CR1(USART1_BASE) &= ~USART_CR1_TXEIE; /* the writer re-arms */
    }
}

void tfd_port_init(void)
{
    if (s_initialised) return;
    s_initialised = 1;
    s_flash_emulated = !tfd_stm32_flash_present();
    tfd_cache_enable();
    const tfd_stm32_clock_cfg_t cfg = TFD_STM32F746_CLOCK_CFG(HSE_HZ);
    tfd_stm32_clock_init(&cfg, &s_clocks);
    /* CK48M = PLLQ (the RNG's clock), USART1 kernel clock = APB2. */
    RCC_F7_DCKCFGR2 &= ~(RCC_F7_DCKCFGR2_CK48MSEL | RCC_F7_DCKCFGR2_USART1SEL);
    uart_init(s_clocks.apb2_hz);
    tfd_systick_start(s_clocks.sysclk_hz, 1000u);
    tfd_stm32_rng_start();
    if (s_flash_emulated) tfd_emu_storage_init(__tfd_storage_start, STORAGE_SIZE, SECTOR_BYTES);
}

int tfd_board_irq(unsigned irq)
{
    if (irq == USART1_IRQ) {
        usart1_isr();
        return 1;
    }
    return 0;
}

void tfd_port_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (!(USART_ISR(USART1_BASE) & USART_ISR_TXE)) {
            const uint32_t primask = tfd_irq_save();
            USART_CR1(USART1_BASE) |= USART_CR1_TXEIE;
            if (!(USART_ISR(USART1_BASE) & USART_ISR_TXE)) tfd_wfi();
            tfd_irq_restore(primask);
        }
        USART_TDR(USART1_BASE) = data[i];
    }
}

uint32_t tfd_port_millis(void)
{
    return tfd_systick_millis();
}

tfd_status_t tfd_port_random(uint8_t *out, size_t len)
{
    TFD_ENSURE(s_clocks.ck48_ok, TFD_ERR_INTERNAL); /* no 48 MHz clock: the RNG cannot run */
    return tfd_stm32_rng_read(out, len);
}

/* ---- storage: flash sectors 1-2 ---------------------------------------------- */

uint8_t *tfd_real_storage_base(void)
{
    return __tfd_storage_start;
}

size_t tfd_port_storage_size(void)
{
    return STORAGE_SIZE;
}

size_t tfd_port_storage_erase_unit(void)
{
    return SECTOR_BYTES;
}

uint32_t tfd_port_storage_busy_ms(size_t erase_bytes, size_t write_bytes)
{
    return s_flash_emulated ? 0u : tfd_real_storage_busy_ms(erase_bytes, write_bytes);
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    /* Whole 32 KiB sectors only (the erase unit). */
    TFD_TRY(tfd_real_storage_check_erase(offset, len));
    if (s_flash_emulated) return tfd_emu_storage_erase(offset, len);
    tfd_status_t status = TFD_OK;
    for (uint32_t done = 0; done < len && status == TFD_OK; done += SECTOR_BYTES) {
        status = tfd_stm32_flash_erase_sector(F7_STORAGE_FIRST_SECTOR + (offset + done) / SECTOR_BYTES);
    }
    tfd_dcache_invalidate(__tfd_storage_start + offset, len); /* flash changed behind the D-cache */
    for (size_t i = 0; i < len && status == TFD_OK; ++i) {
        if (__tfd_storage_start[offset + i] != 0xFFu) status = TFD_ERR_STORAGE;
    }
    return status;
}

tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_TRY(tfd_real_storage_check_write(offset, data, len));
    if (s_flash_emulated) return tfd_emu_storage_write(offset, data, len);
    return tfd_stm32_flash_program(__tfd_storage_start + offset, data, len, tfd_dcache_invalidate);
}

const char *tfd_port_board_name(void)
{
    return TFD_BOARD_NAME;
}
