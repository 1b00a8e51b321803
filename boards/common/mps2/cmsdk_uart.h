/* tinyfed boards — ARM CMSDK APB UART driver (the UART of every MPS2 FPGA image).
 *
 * RX: interrupt-driven into a lock-free ring (boards/common/ringbuf.h); the
 * thread side never polls the hardware.  TX: blocking, but it sleeps (WFI with
 * the TX interrupt armed) while the transmit buffer is full instead of spinning. */
#ifndef TFD_CMSDK_UART_H
#define TFD_CMSDK_UART_H

#include <stddef.h>
#include <stdint.h>

void tfd_cmsdk_uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baud, unsigned rx_irq,
                         unsigned tx_irq);
void tfd_cmsdk_uart_write(const uint8_t *data, size_t len);
size_t tfd_cmsdk_uart_read(uint8_t *out, size_t cap);
int tfd_cmsdk_uart_rx_empty(void);
uint32_t tfd_cmsdk_uart_dropped(void);

/* Flash-stall emulation (emu_storage.h): for `ms` milliseconds every received
 * byte is read and thrown away, as a core stalled by a flash erase would lose
 * it; returns how many were. */
uint32_t tfd_cmsdk_uart_stall(uint32_t ms);

/* Call from the board's tfd_board_irq for the RX / TX interrupt lines. */
void tfd_cmsdk_uart_rx_isr(void);
void tfd_cmsdk_uart_tx_isr(void);

#endif /* TFD_CMSDK_UART_H */
