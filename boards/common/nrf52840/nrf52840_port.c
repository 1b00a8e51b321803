/* tinyfed — the nRF52840 port (boards nrf52840 = nRF52840 DK, nano33ble =
 * Arduino Nano 33 BLE), Cortex-M4F at 64 MHz.  Registers from the nRF52840
 * Product Specification v1.7 (v1.8 for APPROTECT).  The board folder's
 * board.json gives the UART pins (TFD_NRF_UART_TX / _RX: port and pin) and
 * whether the debug port is kept open (TFD_NRF_APPROTECT_OPEN).
 *
 * Real boards: compiled, linked and size-checked here, never run here (QEMU
 * 7.2 has no nRF52 machine; a Renode script is provided).
 *
 * Debug port: build code F silicon (FICR INFO.VARIANT 'AAF0' and later) locks
 *   the access port after every reset unless UICR.APPROTECT = HwDisabled AND
 *   firmware writes APPROTECT.DISABLE = SwDisable at boot; otherwise every
 *   reflash needs a full chip erase (nrfjprog --recover), losing the stored
 *   parameters.  With TFD_NRF_APPROTECT_OPEN=1 the port programs
 *   UICR.APPROTECT = HwDisabled once if it is erased (then resets so it takes
 *   effect) and writes DISABLE at every boot.  A UICR that says "enabled"
 *   (0x00, written on purpose) is left alone.
 * Clocks: HFXO (64 MHz crystal, the UART's accuracy), checked in HFCLKSTAT.
 *   LFCLK from the 32.768 kHz crystal (the DK's X2; the Nano's NINA-B306-00B
 *   module has one too); if it does not start, the internal RC, calibrated
 *   against the HFXO (one calibration at boot: +-500 ppm instead of +-2 %),
 *   checked in LFCLKSTAT.
 * UART: UARTE0 (EasyDMA), 115200 8N1 (the UARTE's BAUDRATE value).  RX: a
 *   1-byte DMA buffer; the ENDRX interrupt moves the byte into the lock-free
 *   ring and triggers STARTRX again (no ENDRX->STARTRX short: it is the
 *   interrupt that restarts reception, which works on silicon, where bytes
 *   arriving meanwhile wait in the UARTE's RX FIFO, and under Renode, which
 *   does not implement the short).  TX: copied into a RAM buffer (EasyDMA
 *   cannot read flash), sleeps until ENDTX.
 * Ticks: RTC1 at 32768 Hz (24-bit counter + overflow interrupt): keeps running
 *   in WFI sleep, unlike SysTick on this chip.
 * Random: the RNG peripheral with bias correction (TRNG).
 * Storage: the last 16 KiB of flash, NVMC page erase (4 KiB, <= 85 ms each,
 *   the CPU stalls) and word writes (<= 41 us each); every wait on NVMC READY
 *   is bounded.  An erase that leaves the page not blank is followed by
 *   programming 0xFFFFFFFF words over it and checked again: on silicon that
 *   changes nothing (programming cannot set bits) and the erase fails
 *   (TFD_ERR_STORAGE); under Renode, which maps flash as plain memory and
 *   has no NVMC model, it is what makes storage work.
 * Log: ITM port 0 if a debugger enabled it.  Exit: logs the code and halts.
 * UART read / idle, storage read and argument checks, log and exit are the
 * real boards' shared code (boards/common/real_board). */
#include <string.h>

#include "board_common.h"
#include "cortex_m.h"
#include "nrf52840_regs.h"
#include "real_board.h"
#include "tfd/port.h"

#if !defined(TFD_NRF_UART_TX_PORT) || !defined(TFD_NRF_UART_TX_PIN) || !defined(TFD_NRF_UART_RX_PORT) || \
    !defined(TFD_NRF_UART_RX_PIN)
#error "board.json defines TFD_NRF_UART_TX_PORT / _TX_PIN / _RX_PORT / _RX_PIN"
#endif
#ifndef TFD_NRF_APPROTECT_OPEN
#define TFD_NRF_APPROTECT_OPEN 1
#endif

#define CLOCK_SPINS 16000000u /* >= 1 s at 64 MHz: the LFXO starts in ~0.25 s */
#define NVMC_SPINS 4000000u   /* >= 85 ms page erase, many times over */

static volatile uint8_t s_rx_dma; /* EasyDMA target: RAM */
static uint8_t s_tx_buf[64];      /* EasyDMA source must be RAM */
static volatile uint32_t s_tx_done;
static volatile uint32_t s_rtc_overflows;
static int s_initialised;
static int s_hfxo_ok, s_lfxo_ok;

static int wait_event(volatile uint32_t *event, uint32_t spins)
{
    for (uint32_t spin = 0; *event == 0u && spin < spins; ++spin) {
    }
    return *event != 0u;
}

static void approtect_keep_open(void)
{
#if TFD_NRF_APPROTECT_OPEN
    if (((FICR_INFO_VARIANT >> 8) & 0xFFu) < 'F') return; /* older build codes: no lock after reset */
    if (UICR_APPROTECT == 0xFFFFFFFFu) {                   /* erased: program HwDisabled, then reset */
        NVMC_CONFIG = 1;
        for (uint32_t i = 0; NVMC_READY == 0u && i < NVMC_SPINS; ++i) {
        }
        UICR_APPROTECT = UICR_APPROTECT_HW_DISABLED;
        for (uint32_t i = 0; NVMC_READY == 0u && i < NVMC_SPINS; ++i) {
        }
        NVMC_CONFIG = 0;
        if ((UICR_APPROTECT & 0xFFu) == UICR_APPROTECT_HW_DISABLED) {
            tfd_dsb();
            SCB_AIRCR = SCB_AIRCR_VECTKEY | SCB_AIRCR_SYSRESETREQ; /* UICR takes effect at reset */
            for (;;) tfd_wfi();
        }
    }
    if ((UICR_APPROTECT & 0xFFu) == UICR_APPROTECT_HW_DISABLED) APPROTECT_DISABLE = APPROTECT_DISABLE_SW;
#endif
}

static void clocks_init(void)
{
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1;
    (void)wait_event(&CLOCK_EVENTS_HFCLKSTARTED, CLOCK_SPINS);
    s_hfxo_ok = (CLOCK_HFCLKSTAT & (CLOCK_STAT_RUNNING | 1u)) == (CLOCK_STAT_RUNNING | CLOCK_SRC_XTAL);

    CLOCK_LFCLKSRC = CLOCK_SRC_XTAL;
    CLOCK_EVENTS_LFCLKSTARTED = 0;
    CLOCK_TASKS_LFCLKSTART = 1;
    (void)wait_event(&CLOCK_EVENTS_LFCLKSTARTED, CLOCK_SPINS);
    s_lfxo_ok = (CLOCK_LFCLKSTAT & (CLOCK_STAT_RUNNING | 3u)) == (CLOCK_STAT_RUNNING | CLOCK_SRC_XTAL);
    if (!s_lfxo_ok) {
        /* No crystal (or it does not oscillate): the RC, calibrated against the HFXO. */
        CLOCK_TASKS_LFCLKSTOP = 1;
        CLOCK_LFCLKSRC = CLOCK_SRC_RC;
        CLOCK_EVENTS_LFCLKSTARTED = 0;
        CLOCK_TASKS_LFCLKSTART = 1;
        (void)wait_event(&CLOCK_EVENTS_LFCLKSTARTED, CLOCK_SPINS);
        if (s_hfxo_ok) {
            CLOCK_EVENTS_DONE = 0;
            CLOCK_TASKS_CAL = 1;
            (void)wait_event(&CLOCK_EVENTS_DONE, CLOCK_SPINS);
        }
    }
}

void tfd_port_init(void)
{
    if (s_initialised) return;
    s_initialised = 1;
    approtect_keep_open();
    clocks_init();

    /* UARTE0: TX idles high; RX input with pull-up. */
    GPIO_OUTSET(TFD_NRF_UART_TX_PORT) = 1u << TFD_NRF_UART_TX_PIN;
    GPIO_DIRSET(TFD_NRF_UART_TX_PORT) = 1u << TFD_NRF_UART_TX_PIN;
    GPIO_PIN_CNF(TFD_NRF_UART_RX_PORT, TFD_NRF_UART_RX_PIN) = 3u << 2; /* input, buffer connected, pull-up */
    UARTE_PSEL_TXD = UARTE_PSEL(TFD_NRF_UART_TX_PORT, TFD_NRF_UART_TX_PIN);
    UARTE_PSEL_RXD = UARTE_PSEL(TFD_NRF_UART_RX_PORT, TFD_NRF_UART_RX_PIN);
    UARTE_PSEL_RTS = UARTE_PSEL_DISCONNECTED;
    UARTE_PSEL_CTS = UARTE_PSEL_DISCONNECTED;
    UARTE_BAUDRATE = UARTE_BAUD_115200;
    UARTE_CONFIG = 0; /* 8N1, no flow control */
    UARTE_ENABLE = UARTE_ENABLE_ON;
    UARTE_SHORTS = 0;
    UARTE_RXD_PTR = (uint32_t)(uintptr_t)&s_rx_dma;
    UARTE_RXD_MAXCNT = 1;
    UARTE_EVENTS_ENDRX = 0;
    UARTE_INTENSET = UARTE_INT_ENDRX | UARTE_INT_ENDTX | UARTE_INT_ERROR;
    tfd_nvic_enable(UARTE0_IRQ);
    UARTE_TASKS_STARTRX = 1;

    /* RTC1: 32768 Hz, overflow every 512 s extends the count. */
    RTC_PRESCALER = 0;
    RTC_TASKS_CLEAR = 1;
    RTC_INTENSET = RTC_INT_OVRFLW;
    tfd_nvic_enable(RTC1_IRQ);
    RTC_TASKS_START = 1;

    RNG_CONFIG = 1; /* bias correction */
    tfd_board_log_u64("clock_hfxo", (uint64_t)s_hfxo_ok);
    tfd_board_log_u64("clock_lfxo", (uint64_t)s_lfxo_ok);
}

static void uarte_isr(void)
{
    /* A loop: an emulator may complete the next byte inside the STARTRX write. */
    while (UARTE_EVENTS_ENDRX) {
        UARTE_EVENTS_ENDRX = 0;
        if (UARTE_RXD_AMOUNT == 1u) (void)tfd_ring_put(&tfd_real_uart_rx, s_rx_dma);
        UARTE_TASKS_STARTRX = 1; /* the next byte (the RX FIFO holds what arrived meanwhile) */
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

uint8_t *tfd_real_storage_base(void)
{
    return __tfd_storage_start;
}

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

uint32_t tfd_port_storage_busy_ms(size_t erase_bytes, size_t write_bytes)
{
    return tfd_real_storage_busy_ms(erase_bytes, write_bytes);
}

static tfd_status_t nvmc_wait(void)
{
    for (uint32_t spin = 0; NVMC_READY == 0u; ++spin) {
        TFD_ENSURE(spin < NVMC_SPINS, TFD_ERR_STORAGE);
    }
    return TFD_OK;
}

static int blank(uint32_t offset, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        if (__tfd_storage_start[offset + i] != 0xFFu) return 0;
    }
    return 1;
}

/* Program whole words [offset, offset + len) (both multiples of 4). */
static tfd_status_t program_words(uint32_t offset, const uint32_t *words, size_t count)
{
    tfd_status_t status = TFD_OK;
    NVMC_CONFIG = 1; /* write enable */
    status = nvmc_wait();
    for (size_t i = 0; i < count && status == TFD_OK; ++i) {
        *(volatile uint32_t *)(uintptr_t)(__tfd_storage_start + offset + 4u * i) = words[i];
        status = nvmc_wait();
    }
    NVMC_CONFIG = 0;
    const tfd_status_t back = nvmc_wait();
    return status != TFD_OK ? status : back;
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    TFD_TRY(tfd_real_storage_check_erase(offset, len));
    for (size_t done = 0; done < len; done += NVMC_PAGE_SIZE) {
        NVMC_CONFIG = 2; /* erase enable */
        tfd_status_t status = nvmc_wait();
        if (status == TFD_OK) {
            NVMC_ERASEPAGE = (uint32_t)(uintptr_t)(__tfd_storage_start + offset + done);
            status = nvmc_wait();
        }
        NVMC_CONFIG = 0;
        TFD_TRY(status);
        TFD_TRY(nvmc_wait());
        if (!blank(offset + (uint32_t)done, NVMC_PAGE_SIZE)) {
            /* Renode: flash is plain memory and nothing erased it (see the top). */
            static const uint32_t kOnes[16] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu,
                                               0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu,
                                               0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu,
                                               0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
            for (uint32_t at = 0; at < NVMC_PAGE_SIZE; at += sizeof kOnes) {
                TFD_TRY(program_words(offset + (uint32_t)done + at, kOnes, 16));
            }
            TFD_ENSURE(blank(offset + (uint32_t)done, NVMC_PAGE_SIZE), TFD_ERR_STORAGE);
        }
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
        TFD_TRY(program_words(word_off, &word, 1));
        pos = word_off + 4u;
    }
    TFD_ENSURE(memcmp(dst, src, len) == 0, TFD_ERR_STORAGE);
    return TFD_OK;
}
