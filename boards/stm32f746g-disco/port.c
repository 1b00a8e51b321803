/* tinyfed — port for the STM32F746G-DISCO (STM32F746NG, Cortex-M7).
 *
 * Real board: compiled and linked here, never run here (no STM32F7 emulator in
 * QEMU 7.2; a Renode script is provided).  Registers from RM0385.
 *
 * Clock: the core stays on HSI 16 MHz by default (reset clock, no risk); the
 *   main PLL runs from HSI only to give the RNG its 48 MHz (PLLQ).  With
 *   -DTFD_STM32F7_SYSCLK_216MHZ=1 the core runs at 216 MHz from the 25 MHz HSE
 *   (PLL M=25 N=432 P=2 Q=9, voltage scale 1 + over-drive, 7 wait states,
 *   APB1 = 54 MHz, APB2 = 108 MHz); set board.json cpu_hz to match.
 * UART: USART1 on the ST-LINK virtual COM port (TX PA9, RX PB7, AF7), 115200 8N1,
 *   RX interrupt into the lock-free ring, TX sleeps on TXE.
 * Ticks: SysTick, 1 ms.   Random: the RNG peripheral (TRNG).
 * Storage: flash sectors 1-2 (0x08008000, 2 x 32 KiB), each erased as one unit
 *   (tfd_port_storage_erase_unit() = 32 KiB, so A/B copies can live in separate
 *   sectors); programmed byte by byte (PSIZE x8).  Log: ITM port 0 if a debugger enabled it.
 * Exit: logs the code and halts (WFI with interrupts off).
 * UART read / idle, storage read and argument checks, log and exit are the
 * real boards' shared code (boards/common/real_board). */

#include "board_common.h"
#include "cortex_m.h"
#include "real_board.h"
#include "stm32f7_regs.h"
#include "systick.h"
#include "tfd/port.h"

#if defined(TFD_STM32F7_SYSCLK_216MHZ) && TFD_STM32F7_SYSCLK_216MHZ
#define SYSCLK_HZ 216000000u
#define APB2_HZ 108000000u
#else
#define SYSCLK_HZ 16000000u
#define APB2_HZ 16000000u
#endif
#define BAUD 115200u
#define STORAGE_SECTOR_BYTES (32u * 1024u)
#define STORAGE_SECTORS 2u
#define STORAGE_SIZE (STORAGE_SECTORS * STORAGE_SECTOR_BYTES)

static int s_initialised;

static int wait_set(volatile uint32_t *reg, uint32_t mask)
{
    for (uint32_t spin = 0; spin < 10000000u; ++spin) {
        if ((*reg & mask) == mask) return 1;
    }
    return 0;
}

static void clock_init(void)
{
    RCC_CR |= RCC_CR_HSION;
    (void)wait_set(&RCC_CR, RCC_CR_HSIRDY);
#if defined(TFD_STM32F7_SYSCLK_216MHZ) && TFD_STM32F7_SYSCLK_216MHZ
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    PWR_CR1 |= PWR_CR1_VOS_SCALE1;
    RCC_CR |= RCC_CR_HSEON;
    if (!wait_set(&RCC_CR, RCC_CR_HSERDY)) return; /* stay on HSI */
    RCC_CR &= ~RCC_CR_PLLON;
    RCC_PLLCFGR = 25u | (432u << 6) | (0u << 16) /* P=2 */ | RCC_PLLCFGR_SRC_HSE | (9u << 24);
    RCC_CR |= RCC_CR_PLLON;
    PWR_CR1 |= PWR_CR1_ODEN;
    (void)wait_set(&PWR_CSR1, PWR_CSR1_ODRDY);
    PWR_CR1 |= PWR_CR1_ODSWEN;
    (void)wait_set(&PWR_CSR1, PWR_CSR1_ODSWRDY);
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY)) return;
    FLASH_ACR = 7u | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN; /* 7 WS at 216 MHz, 2.7-3.6 V */
    /* AHB /1, APB1 /4 (101), APB2 /2 (100), then switch SYSCLK to the PLL. */
    RCC_CFGR = (RCC_CFGR & ~0xFCF3u) | (5u << 10) | (4u << 13) | 2u;
    for (uint32_t spin = 0; spin < 1000000u && ((RCC_CFGR >> 2) & 3u) != 2u; ++spin) {
    }
#else
    /* PLL from HSI for the 48 MHz domain only: VCO in 16/16 = 1 MHz,
     * VCO 192 MHz, P = 2 (96 MHz, unused), Q = 4 -> 48 MHz for the RNG. */
    RCC_CR &= ~RCC_CR_PLLON;
    RCC_PLLCFGR = 16u | (192u << 6) | (0u << 16) | (4u << 24);
    RCC_CR |= RCC_CR_PLLON;
    (void)wait_set(&RCC_CR, RCC_CR_PLLRDY);
#endif
    RCC_DCKCFGR2 &= ~((1u << 27) | 3u); /* CK48M = PLLQ, USART1 clock = APB2 */
}

static void uart_init(void)
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

    USART_CR1(USART1_BASE) = 0;
    USART_CR2(USART1_BASE) = 0;
    USART_CR3(USART1_BASE) = 0;
    USART_BRR(USART1_BASE) = (APB2_HZ + BAUD / 2u) / BAUD; /* oversampling 16 */
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
    clock_init();
    uart_init();
    tfd_systick_start(SYSCLK_HZ, 1000u);
    RCC_AHB2ENR |= RCC_AHB2ENR_RNGEN;
    (void)RCC_AHB2ENR;
    RNG_CR = RNG_CR_RNGEN;
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
    TFD_ENSURE(out != NULL || len == 0, TFD_ERR_ARG);
    while (len > 0) {
        uint32_t spin = 0;
        for (;;) {
            const uint32_t sr = RNG_SR;
            if (sr & (RNG_SR_SECS | RNG_SR_SEIS)) {
                /* Seed error (RM0385 22.3.7): clear, restart the RNG, discard. */
                RNG_SR = ~RNG_SR_SEIS;
                RNG_CR = 0;
                RNG_CR = RNG_CR_RNGEN;
            } else if (sr & RNG_SR_CEIS) {
                RNG_SR = ~RNG_SR_CEIS; /* clock error: 48 MHz domain not running */
            } else if (sr & RNG_SR_DRDY) {
                break;
            }
            TFD_ENSURE(++spin < 1000000u, TFD_ERR_INTERNAL);
        }
        const uint32_t word = RNG_DR;
        TFD_ENSURE(word != 0u, TFD_ERR_INTERNAL); /* a stuck-at-zero output */
        for (int i = 0; i < 4 && len > 0; ++i, --len) *out++ = (uint8_t)(word >> (8 * i));
    }
    return TFD_OK;
}

/* ---- storage: flash sectors 1-2 ---------------------------------------------- */

size_t tfd_port_storage_size(void)
{
    return STORAGE_SIZE;
}

#ifdef TFD_BOARD_STORAGE_ERASE_BYTES /* board.json "storage_erase_bytes": the toolchain sizes the store with it */
_Static_assert(TFD_BOARD_STORAGE_ERASE_BYTES == STORAGE_SECTOR_BYTES, "board.json storage_erase_bytes disagrees with the port");
#endif

size_t tfd_port_storage_erase_unit(void)
{
    return STORAGE_SECTOR_BYTES;
}

static tfd_status_t flash_wait(void)
{
    for (uint32_t spin = 0; FLASH_SR & FLASH_SR_BSY; ++spin) {
        TFD_ENSURE(spin < 50000000u, TFD_ERR_STORAGE);
    }
    const uint32_t errors = FLASH_SR & FLASH_SR_ERRORS;
    FLASH_SR = errors | FLASH_SR_EOP; /* write 1 to clear */
    TFD_ENSURE(errors == 0u, TFD_ERR_STORAGE);
    return TFD_OK;
}

static void flash_unlock(void)
{
    if (FLASH_CR & FLASH_CR_LOCK) {
        FLASH_KEYR = FLASH_KEY1;
        FLASH_KEYR = FLASH_KEY2;
    }
}

static void flash_lock(void)
{
    FLASH_CR = FLASH_CR_LOCK;
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    /* Whole 32 KiB sectors only (the erase unit). */
    TFD_TRY(tfd_real_storage_check_erase(offset, len));
    flash_unlock();
    tfd_status_t status = flash_wait();
    for (uint32_t done = 0; done < len && status == TFD_OK; done += STORAGE_SECTOR_BYTES) {
        const uint32_t sector = FLASH_STORAGE_SECTOR + (offset + done) / STORAGE_SECTOR_BYTES;
        FLASH_CR = FLASH_CR_SER | (sector << FLASH_CR_SNB_SHIFT) | FLASH_CR_PSIZE_X32;
        FLASH_CR |= FLASH_CR_STRT;
        tfd_dsb();
        status = flash_wait();
    }
    flash_lock();
    return status;
}

tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_TRY(tfd_real_storage_check_write(offset, data, len));
    const uint8_t *src = data;
    volatile uint8_t *dst = __tfd_storage_start + offset;
    flash_unlock();
    tfd_status_t status = flash_wait();
    for (size_t i = 0; i < len && status == TFD_OK; ++i) {
        if (dst[i] == src[i]) continue;
        FLASH_CR = FLASH_CR_PG | FLASH_CR_PSIZE_X8;
        dst[i] = src[i];
        tfd_dsb();
        status = flash_wait();
        if (status == TFD_OK && dst[i] != src[i]) status = TFD_ERR_STORAGE;
    }
    flash_lock();
    return status;
}

const char *tfd_port_board_name(void)
{
    return TFD_BOARD_NAME;
}
