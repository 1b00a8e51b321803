/* tinyfed boards — CMSDK APB UART driver (ARM DDI0479C, "APB UART"). */
#include "cmsdk_uart.h"

#include "cortex_m.h"
#include "ringbuf.h"
#include "systick.h"

typedef struct {
    volatile uint32_t data;      /* 0x00 */
    volatile uint32_t state;     /* 0x04: bit0 TX full, bit1 RX full, bit2/3 overrun (W1C) */
    volatile uint32_t ctrl;      /* 0x08 */
    volatile uint32_t intstatus; /* 0x0C: read status / write 1 to clear */
    volatile uint32_t bauddiv;   /* 0x10: >= 16 */
} cmsdk_uart_regs_t;

#define STATE_TXFULL (1u << 0)
#define STATE_RXFULL (1u << 1)
#define STATE_OVERRUNS (3u << 2)
#define CTRL_TX_EN (1u << 0)
#define CTRL_RX_EN (1u << 1)
#define CTRL_TX_INTEN (1u << 2)
#define CTRL_RX_INTEN (1u << 3)
#define INT_TX (1u << 0)
#define INT_RX (1u << 1)
#define INT_OVERRUNS (3u << 2)

static cmsdk_uart_regs_t *s_uart;
static tfd_ring_t s_rx;
static volatile int s_deaf;           /* emulated flash stall: received bytes are lost */
static volatile uint32_t s_deaf_lost; /* bytes dropped while deaf */

void tfd_cmsdk_uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baud, unsigned rx_irq,
                         unsigned tx_irq)
{
    s_uart = (cmsdk_uart_regs_t *)base;
    s_uart->ctrl = 0;
    s_uart->intstatus = INT_TX | INT_RX | INT_OVERRUNS;
    s_uart->state = STATE_OVERRUNS;
    uint32_t div = pclk_hz / baud;
    s_uart->bauddiv = div < 16u ? 16u : div;
    s_uart->ctrl = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INTEN;
    tfd_nvic_enable(rx_irq);
    tfd_nvic_enable(tx_irq);
}

/* Move received bytes into the ring.  When the ring is full the byte stays in
 * the UART and RX interrupts pause: QEMU then stops delivering (its socket
 * buffers the rest), so nothing is lost; tfd_cmsdk_uart_read resumes. */
static void drain_rx(void)
{
    while (s_deaf && (s_uart->state & STATE_RXFULL)) {
        (void)s_uart->data; /* what a stalled core misses */
        s_deaf_lost++;
    }
    while (s_uart->state & STATE_RXFULL) {
        if (s_rx.head - s_rx.tail >= TFD_UART_RX_RING_BYTES) {
            s_uart->ctrl &= ~CTRL_RX_INTEN;
            return;
        }
        (void)tfd_ring_put(&s_rx, (uint8_t)s_uart->data);
    }
}

void tfd_cmsdk_uart_rx_isr(void)
{
    /* Clear first, then drain: a byte landing after the drain re-raises it. */
    s_uart->intstatus = INT_RX | INT_OVERRUNS;
    drain_rx();
}

void tfd_cmsdk_uart_tx_isr(void)
{
    s_uart->intstatus = INT_TX;
    s_uart->ctrl &= ~CTRL_TX_INTEN; /* thread mode re-arms while it waits */
}

void tfd_cmsdk_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (s_uart->state & STATE_TXFULL) {
            /* The host is not draining: sleep until TX-empty raises the TX
             * interrupt.  Masked check + WFI: no lost wake-up. */
            const uint32_t primask = tfd_irq_save();
            s_uart->ctrl |= CTRL_TX_INTEN;
            if (s_uart->state & STATE_TXFULL) tfd_wfi();
            tfd_irq_restore(primask);
        }
        s_uart->data = data[i];
    }
}

size_t tfd_cmsdk_uart_read(uint8_t *out, size_t cap)
{
    const size_t n = tfd_ring_get(&s_rx, out, cap);
    if (!(s_uart->ctrl & CTRL_RX_INTEN)) {
        /* RX was paused by a full ring: take what waits in the UART, re-arm. */
        const uint32_t primask = tfd_irq_save();
        s_uart->intstatus = INT_RX | INT_OVERRUNS;
        s_uart->ctrl |= CTRL_RX_INTEN;
        drain_rx();
        tfd_irq_restore(primask);
    }
    return n;
}

uint32_t tfd_cmsdk_uart_stall(uint32_t ms)
{
    s_deaf_lost = 0;
    s_deaf = 1;
    const uint32_t t0 = tfd_systick_millis();
    while (tfd_systick_millis() - t0 < ms) tfd_wfi(); /* SysTick wakes us every ms */
    s_deaf = 0;
    return s_deaf_lost;
}

int tfd_cmsdk_uart_rx_empty(void)
{
    return tfd_ring_empty(&s_rx);
}

uint32_t tfd_cmsdk_uart_dropped(void)
{
    return s_rx.dropped;
}
