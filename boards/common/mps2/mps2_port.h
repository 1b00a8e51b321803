/* tinyfed boards — the port shared by the QEMU MPS2 machines (mps2-an386,
 * mps2-an500, mps2-an505).  Each board's port.c supplies the board name and
 * interrupt routing; the UART address/IRQs and clock come from board.json. */
#ifndef TFD_MPS2_PORT_H
#define TFD_MPS2_PORT_H

#ifndef TFD_BOARD_UART_BASE
#error "TFD_BOARD_UART_BASE is not defined (board.json uart.base)"
#endif
#ifndef TFD_BOARD_UART_RX_IRQ
#error "TFD_BOARD_UART_RX_IRQ is not defined (board.json uart.rx_irq)"
#endif
#ifndef TFD_BOARD_UART_TX_IRQ
#error "TFD_BOARD_UART_TX_IRQ is not defined (board.json uart.tx_irq)"
#endif

#define TFD_MPS2_BAUD 115200u

/* Route the UART interrupt lines; returns 1 if `irq` was one of them. */
int tfd_mps2_uart_irq(unsigned irq);

#endif /* TFD_MPS2_PORT_H */
