/* tinyfed — port for the STM32F405 (RM0090), Cortex-M4F at 168 MHz: the chip
 * of the Netduino Plus 2 and the Adafruit Feather STM32F405 (the
 * STM32F4-Discovery's F407 is its sibling with the same registers).
 *
 * ONE image runs on silicon and under QEMU -M netduinoplus2 (QEMU 7.2's
 * model of this SoC: USARTs, timers, SYSCFG, EXTI, SysTick; RCC, PWR, GPIO,
 * the flash interface and the RNG are unimplemented and read as zero, flash
 * is ROM, the core clock is a fixed 168 MHz, SRAM is 192 KiB).  At boot the
 * port recognises the emulator by what cannot happen on silicon: RCC_CR
 * without HSION/HSIRDY (set while the core runs on HSI from reset) and
 * FLASH_CR without LOCK (set from reset).  Everything else is the silicon
 * path, which the emulator then exercises as far as it models the chip.
 *
 * Clock (boards/common/stm32/stm32_clock.c): HSE (board.json define
 *   TFD_STM32_HSE_HZ: 25 MHz on the Netduino Plus 2, 12 MHz on the Feather,
 *   8 MHz on the F4-Discovery) -> PLL 168 MHz, APB1 42 MHz, APB2 84 MHz, 5
 *   flash wait states, ART caches + prefetch; PLLQ 48 MHz for the RNG.  If any
 *   step fails the clocks fall back to HSI 16 MHz (the PLL then runs from HSI
 *   for the 48 MHz domain only) and SysTick and the USART divider use what
 *   really runs.  Under QEMU the real path runs and fails at "HSE did not
 *   start" (no RCC model), falls back, and the core frequency is taken as the
 *   emulator's fixed 168 MHz.
 * UART: USART1, TX PA9 / RX PA10 (AF7), 115200 8N1, RX interrupt (IRQ 37)
 *   into the lock-free ring, TX sleeps on TXE.
 * Ticks: SysTick, 1 ms.  Idle: WFI (real_board.c).
 * Random: the RNG peripheral (TRNG) on silicon; under QEMU (no RNG model)
 *   the seeded source of the emulated boards (common/emu/emu_random.c, NOT
 *   secure), as on the mps2 boards.
 * Storage: flash sectors 1-2 (0x08004000, 2 x 16 KiB), each erased as one unit
 *   (erase x32; program x32 words / x8 bytes); the ART caches are reset after
 *   every erase/program before anything is read back (RM0090 3.5.2).  Under
 *   QEMU (flash is ROM, no flash interface) the same 2 x 16 KiB layout lives
 *   in SRAM that QEMU maps above the chip's 128 KiB (0x20020000), with the
 *   emulated boards' host-file backing and erase-stall emulation.
 * Log / exit: ITM on silicon (exit halts); semihosting under QEMU. */
#include "board_common.h"
#include "cortex_m.h"
#include "emu_random.h"
#include "emu_storage.h"
#include "real_board.h"
#include "semihosting.h"
#include "stm32_clock.h"
#include "stm32_flash.h"
#include "stm32_rng.h"
#include "stm32f405_regs.h"
#include "systick.h"
#include "tfd/port.h"

#ifndef TFD_STM32_HSE_HZ
#define TFD_STM32_HSE_HZ 25000000u /* Netduino Plus 2 */
#endif
#define BAUD 115200u
#define SECTOR_BYTES F405_SECTOR_BYTES_SMALL
#define STORAGE_SIZE (2u * SECTOR_BYTES)
#define QEMU_CORE_HZ TFD_BOARD_CPU_HZ /* netduinoplus2: SYSCLK fixed at 168 MHz */

#ifdef TFD_BOARD_STORAGE_ERASE_BYTES /* board.json "storage_erase_bytes" */
_Static_assert(TFD_BOARD_STORAGE_ERASE_BYTES == SECTOR_BYTES, "board.json storage_erase_bytes disagrees with the port");
#endif
_Static_assert(QEMU_CORE_HZ == 168000000u, "board.json cpu_hz must be netduinoplus2's fixed SYSCLK");

extern uint8_t __tfd_emu_storage_shadow[]; /* link.ld: QEMU-only SRAM above the chip's */

static int s_initialised;
static int s_emulated;
static tfd_stm32_clocks_t s_clocks;
static volatile int s_deaf;
static volatile uint32_t s_deaf_lost;

int tfd_board_semihosting(void)
{
    return s_emulated;
}

static int detect_emulator(void)
{
    return (RCC_CR & (RCC_CR_HSION | RCC_CR_HSIRDY)) == 0u && !tfd_stm32_flash_present();
}

static void uart_init(uint32_t pclk_hz)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    (void)RCC_APB2ENR; /* read back: the clock enables take effect */
    /* PA9 = USART1_TX, PA10 = USART1_RX (pull-up): alternate function 7. */
    GPIO_MODER(GPIOA_BASE) = (GPIO_MODER(GPIOA_BASE) & ~(0xFu << 18)) | (0xAu << 18);
    GPIO_OSPEEDR(GPIOA_BASE) |= 2u << 18;
    GPIO_PUPDR(GPIOA_BASE) = (GPIO_PUPDR(GPIOA_BASE) & ~(3u << 20)) | (1u << 20);
    GPIO_AFRH(GPIOA_BASE) = (GPIO_AFRH(GPIOA_BASE) & ~0xFF0u) | 0x770u;

    USART_CR1(USART1_BASE) = 0;
    USART_CR2(USART1_BASE) = 0;
    USART_CR3(USART1_BASE) = 0;
    USART_BRR(USART1_BASE) = (pclk_hz + BAUD / 2u) / BAUD; /* oversampling 16: mantissa.fraction */
    USART_CR1(USART1_BASE) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    tfd_nvic_enable(USART1_IRQ);
}

static void usart1_isr(void)
{
    const uint32_t sr = USART_SR(USART1_BASE);
    if (sr & (USART_SR_RXNE | USART_SR_ORE)) {
        /* Reading DR after SR clears RXNE and ORE. */
        const uint8_t byte = (uint8_t)USART_DR(USART1_BASE);
        if (s_deaf) {
            s_deaf_lost++; /* emulated flash stall: what a stalled core misses */
        } else {
            (void)tfd_ring_put(&tfd_real_uart_rx, byte);
        }
    }
    if ((sr & USART_SR_TXE) && (USART_CR1(USART1_BASE) & USART_CR1_TXEIE)) {
        USART_CR1(USART1_BASE) &= ~USART_CR1_TXEIE; /* the writer re-arms */
    }
}

/* Erase-stall emulation under QEMU (emu_storage.h). */
static uint32_t usart_stall(uint32_t ms)
{
    s_deaf_lost = 0;
    s_deaf = 1;
    const uint32_t t0 = tfd_systick_millis();
    while (tfd_systick_millis() - t0 < ms) tfd_wfi();
    s_deaf = 0;
    return s_deaf_lost;
}

static void log_clocks(void)
{
    tfd_board_log_u64("clock_sysclk_hz", s_clocks.sysclk_hz);
    tfd_board_log_u64("clock_apb2_hz", s_clocks.apb2_hz);
    tfd_board_log_u64("clock_ck48", s_clocks.ck48_ok);
    tfd_board_log_str("clock_fallback", tfd_stm32_clock_failure_str(s_clocks.failure));
    if (s_emulated) {
        tfd_board_log_str("emulated", "qemu netduinoplus2: no RCC/flash/RNG model; core 168 MHz, RAM storage, "
                                      "seeded random (NOT secure)");
    }
}

void tfd_port_init(void)
{
    if (s_initialised) return;
    s_initialised = 1;
    s_emulated = detect_emulator();
    /* The receiver first, at the reset clock (HSI 16 MHz): a USART that is not
     * enabled drops what arrives (on silicon, and in QEMU's model), and the
     * clock bring-up can take ~100 ms when the crystal does not start. */
    uart_init(TFD_STM32_HSI_HZ);
    const tfd_stm32_clock_cfg_t cfg = TFD_STM32F405_CLOCK_CFG(TFD_STM32_HSE_HZ);
    tfd_stm32_clock_init(&cfg, &s_clocks);
    USART_BRR(USART1_BASE) = (s_clocks.apb2_hz + BAUD / 2u) / BAUD; /* the divider for what runs */
    tfd_systick_start(s_emulated ? QEMU_CORE_HZ : s_clocks.sysclk_hz, 1000u);
    if (s_emulated) {
        tfd_emu_storage_init(__tfd_emu_storage_shadow, STORAGE_SIZE, SECTOR_BYTES);
        tfd_emu_storage_set_stall(usart_stall);
        tfd_emu_random_init();
    } else {
        tfd_stm32_rng_start();
    }
    log_clocks();
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
        while (!(USART_SR(USART1_BASE) & USART_SR_TXE)) {
            const uint32_t primask = tfd_irq_save();
            USART_CR1(USART1_BASE) |= USART_CR1_TXEIE;
            if (!(USART_SR(USART1_BASE) & USART_SR_TXE)) tfd_wfi();
            tfd_irq_restore(primask);
        }
        USART_DR(USART1_BASE) = data[i];
    }
}

uint32_t tfd_port_millis(void)
{
    return tfd_systick_millis();
}

tfd_status_t tfd_port_random(uint8_t *out, size_t len)
{
    if (s_emulated) return tfd_emu_random(out, len);
    TFD_ENSURE(s_clocks.ck48_ok, TFD_ERR_INTERNAL); /* no 48 MHz clock: the RNG cannot run */
    return tfd_stm32_rng_read(out, len);
}

/* ---- storage: flash sectors 1-2 (QEMU: the SRAM shadow) --------------------------- */

uint8_t *tfd_real_storage_base(void)
{
    return s_emulated ? __tfd_emu_storage_shadow : __tfd_storage_start;
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
    if (s_emulated) return erase_bytes ? tfd_emu_storage_busy_ms() : 0u;
    return tfd_real_storage_busy_ms(erase_bytes, write_bytes);
}

static void art_flush_range(const volatile void *addr, size_t len)
{
    (void)addr;
    (void)len;
    tfd_stm32_f4_art_flush();
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    TFD_TRY(tfd_real_storage_check_erase(offset, len));
    if (s_emulated) return tfd_emu_storage_erase(offset, len);
    tfd_status_t status = TFD_OK;
    for (uint32_t done = 0; done < len && status == TFD_OK; done += SECTOR_BYTES) {
        status = tfd_stm32_flash_erase_sector(F405_STORAGE_FIRST_SECTOR + (offset + done) / SECTOR_BYTES);
    }
    tfd_stm32_f4_art_flush();
    for (size_t i = 0; i < len && status == TFD_OK; ++i) {
        if (__tfd_storage_start[offset + i] != 0xFFu) status = TFD_ERR_STORAGE;
    }
    return status;
}

tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_TRY(tfd_real_storage_check_write(offset, data, len));
    if (s_emulated) return tfd_emu_storage_write(offset, data, len);
    return tfd_stm32_flash_program(__tfd_storage_start + offset, data, len, art_flush_range);
}

const char *tfd_port_board_name(void)
{
    return TFD_BOARD_NAME;
}
