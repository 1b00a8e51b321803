/* tinyfed — port for the nRF52840 (nRF52840 DK), Cortex-M4F at 64 MHz.
 *
 * Real board: compiled and linked here, never run here (QEMU 7.2 has no nRF52
 * machine; a Renode script is provided).  Registers from the nRF52840 Product
 * Specification v1.7.
 *
 * UART: UARTE0 (EasyDMA) on the DK's virtual COM port, TX P0.06 / RX P0.08,
 *   115200 8N1.  RX: two 1-byte DMA buffers with the ENDRX->STARTRX short; the
 *   ENDRX interrupt moves each byte into the lock-free ring, RXSTARTED points
 *   the DMA at the other buffer.  TX: copied into a RAM buffer (EasyDMA cannot
 *   read flash), sleeps until ENDTX.
 * Clock: HFXO started for UART accuracy; LFCLK from the internal RC.
 * Ticks: RTC1 at 32768 Hz (24-bit counter + overflow interrupt): keeps running
 *   in WFI sleep, unlike SysTick on this chip.
 * Random: the RNG peripheral with bias correction (TRNG).
 * Storage: the last 16 KiB of flash, NVMC page erase (4 KiB) and word writes.
 * Log: ITM port 0 if a debugger enabled it.  Exit: logs the code and halts.
 * UART read / idle, storage read and argument checks, log and exit are the
 * real boards' shared code (boards/common/real_board). */
#include <string.h>

#include "board_common.h"
#include "cortex_m.h"
#include "nrf52840_regs.h"
#include "real_board.h"
#include "tfd/port.h"

#define TX_PIN 6u
#define RX_PIN 8u

static volatile uint8_t s_rx_dma[2];
static uint8_t s_rx_end;     /* buffer the next ENDRX completes */
static uint8_t s_rx_next;    /* buffer RXD.PTR points at for the next start */
static uint8_t s_tx_buf[64]; /* EasyDMA source must be RAM */
static volatile uint32_t s_tx_done;
static volatile uint32_t s_rtc_overflows;
static int s_initialised;

static void wait_event(volatile uint32_t *event)
{
    for (uint32_t spin = 0; *event == 0u && spin < 10000000u; ++spin) {
    }
}

void tfd_port_init(void)
{
    if (s_initialised) return;
    s_initialised = 1;

    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1;
    wait_event(&CLOCK_EVENTS_HFCLKSTARTED);
    CLOCK_LFCLKSRC = 0; /* internal RC oscillator */
    CLOCK_EVENTS_LFCLKSTARTED = 0;
    CLOCK_TASKS_LFCLKSTART = 1;
    wait_event(&CLOCK_EVENTS_LFCLKSTARTED);

    /* UARTE0: TX idles high; RX input with pull-up. */
    P0_OUTSET = 1u << TX_PIN;
    P0_DIRSET = 1u << TX_PIN;
    P0_PIN_CNF(RX_PIN) = 3u << 2; /* input, buffer connected, pull-up */
    UARTE_PSEL_TXD = TX_PIN;
    UARTE_PSEL_RXD = RX_PIN;
    UARTE_PSEL_RTS = UARTE_PSEL_DISCONNECTED;
    UARTE_PSEL_CTS = UARTE_PSEL_DISCONNECTED;
    UARTE_BAUDRATE = UARTE_BAUD_115200;
    UARTE_CONFIG = 0; /* 8N1, no flow control */
    UARTE_ENABLE = UARTE_ENABLE_ON;
    UARTE_RXD_PTR = (uint32_t)(uintptr_t)&s_rx_dma[0];
    UARTE_RXD_MAXCNT = 1;
    s_rx_end = 0;
    s_rx_next = 0;
    UARTE_SHORTS = UARTE_SHORTS_ENDRX_STARTRX;
    UARTE_INTENSET = UARTE_INT_ENDRX | UARTE_INT_RXSTARTED | UARTE_INT_ENDTX | UARTE_INT_ERROR;
    tfd_nvic_enable(UARTE0_IRQ);
    UARTE_TASKS_STARTRX = 1;

    /* RTC1: 32768 Hz, overflow every 512 s extends the count. */
    RTC_PRESCALER = 0;
    RTC_TASKS_CLEAR = 1;
    RTC_INTENSET = RTC_INT_OVRFLW;
    tfd_nvic_enable(RTC1_IRQ);
    RTC_TASKS_START = 1;

    RNG_CONFIG = 1; /* bias correction */
}

static void uarte_isr(void)
{
    if (UARTE_EVENTS_ENDRX) {
        UARTE_EVENTS_ENDRX = 0;
        (void)tfd_ring_put(&tfd_real_uart_rx, s_rx_dma[s_rx_end]);
        s_rx_end ^= 1u;
    }
    if (UARTE_EVENTS_RXSTARTED) {
        /* The DMA latched RXD.PTR; point it at the other buffer for the next
         * byte (restarted by the ENDRX->STARTRX short). */
        UARTE_EVENTS_RXSTARTED = 0;
        s_rx_next ^= 1u;
        UARTE_RXD_PTR = (uint32_t)(uintptr_t)&s_rx_dma[s_rx_next];
    }
    if (UARTE_EVENTS_ERROR) {
        UARTE_EVENTS_ERROR = 0;
        UARTE_ERRORSRC = UARTE_ERRORSRC; /* write 1s to clear */
    }
    if (UARTE_EVENTS_ENDTX) {
        UARTE_EVENTS_ENDTX = 0;
        s_tx_done = 1;
    }
}

static void rtc1_isr(void)
{
    if (RTC_EVENTS_OVRFLW) {
        RTC_EVENTS_OVRFLW = 0;
        s_rtc_overflows++;
    }
}

int tfd_board_irq(unsigned irq)
{
    if (irq == UARTE0_IRQ) {
        uarte_isr();
        return 1;
    }
    if (irq == RTC1_IRQ) {
        rtc1_isr();
        return 1;
    }
    return 0;
}

void tfd_port_uart_write(const uint8_t *data, size_t len)
{
    while (len > 0) {
        const size_t n = len < sizeof s_tx_buf ? len : sizeof s_tx_buf;
        memcpy(s_tx_buf, data, n);
        s_tx_done = 0;
        UARTE_TXD_PTR = (uint32_t)(uintptr_t)s_tx_buf;
        UARTE_TXD_MAXCNT = (uint32_t)n;
        UARTE_TASKS_STARTTX = 1;
        for (;;) {
            const uint32_t primask = tfd_irq_save();
            const uint32_t done = s_tx_done;
            if (!done) tfd_wfi();
            tfd_irq_restore(primask);
            if (done) break;
        }
        data += n;
        len -= n;
    }
}

uint32_t tfd_port_millis(void)
{
    const uint32_t primask = tfd_irq_save();
    uint32_t counter = RTC_COUNTER;
    uint64_t overflows = s_rtc_overflows;
    if (RTC_EVENTS_OVRFLW) { /* wrapped, interrupt not served yet */
        counter = RTC_COUNTER;
        overflows++;
    }
    tfd_irq_restore(primask);
    const uint64_t ticks = (overflows << 24) | counter;
    return (uint32_t)((ticks * 1000u) >> 15);
}

tfd_status_t tfd_port_random(uint8_t *out, size_t len)
{
    TFD_ENSURE(out != NULL || len == 0, TFD_ERR_ARG);
    RNG_EVENTS_VALRDY = 0;
    RNG_TASKS_START = 1;
    tfd_status_t status = TFD_OK;
    for (size_t i = 0; i < len; ++i) {
        uint32_t spin = 0;
        while (RNG_EVENTS_VALRDY == 0u) {
            if (++spin > 1000000u) {
                status = TFD_ERR_INTERNAL;
                break;
            }
        }
        if (status != TFD_OK) break;
        RNG_EVENTS_VALRDY = 0;
        out[i] = (uint8_t)RNG_VALUE;
    }
    RNG_TASKS_STOP = 1;
    return status;
}

/* ---- storage: NVMC ---------------------------------------------------------- */

size_t tfd_port_storage_size(void)
{
    return (size_t)(uintptr_t)__tfd_storage_size;
}

#ifdef TFD_BOARD_STORAGE_ERASE_BYTES /* board.json "storage_erase_bytes": the toolchain sizes the store with it */
_Static_assert(TFD_BOARD_STORAGE_ERASE_BYTES == NVMC_PAGE_SIZE, "board.json storage_erase_bytes disagrees with the port");
#endif

size_t tfd_port_storage_erase_unit(void)
{
    return NVMC_PAGE_SIZE; /* 4 KiB flash page */
}

static void nvmc_wait(void)
{
    while (NVMC_READY == 0u) {
    }
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    TFD_TRY(tfd_real_storage_check_erase(offset, len));
    for (size_t done = 0; done < len; done += NVMC_PAGE_SIZE) {
        NVMC_CONFIG = 2; /* erase enable */
        nvmc_wait();
        NVMC_ERASEPAGE = (uint32_t)(uintptr_t)(__tfd_storage_start + offset + done);
        nvmc_wait();
        NVMC_CONFIG = 0;
        nvmc_wait();
    }
    for (size_t i = 0; i < len; ++i) {
        TFD_ENSURE(__tfd_storage_start[offset + i] == 0xFFu, TFD_ERR_STORAGE);
    }
    return TFD_OK;
}

tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_TRY(tfd_real_storage_check_write(offset, data, len));
    const uint8_t *src = data;
    const uint8_t *dst = __tfd_storage_start + offset;
    /* NVMC writes whole aligned words; bytes outside the range are written as
     * 0xFF, which leaves them unchanged (programming only clears bits). */
    uint32_t pos = offset;
    const uint32_t end = offset + (uint32_t)len;
    NVMC_CONFIG = 1; /* write enable */
    nvmc_wait();
    while (pos < end) {
        const uint32_t word_off = pos & ~3u;
        uint32_t word = 0xFFFFFFFFu;
        for (uint32_t b = 0; b < 4u; ++b) {
            const uint32_t p = word_off + b;
            if (p >= pos && p < end) {
                word &= ~(0xFFu << (8u * b));
                word |= (uint32_t)src[p - offset] << (8u * b);
            }
        }
        *(volatile uint32_t *)(uintptr_t)(__tfd_storage_start + word_off) = word;
        nvmc_wait();
        pos = word_off + 4u;
    }
    NVMC_CONFIG = 0;
    nvmc_wait();
    TFD_ENSURE(memcmp(dst, src, len) == 0, TFD_ERR_STORAGE);
    return TFD_OK;
}

const char *tfd_port_board_name(void)
{
    return TFD_BOARD_NAME;
}
