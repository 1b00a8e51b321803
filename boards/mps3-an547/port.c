/* tinyfed — port for mps3-an547: Cortex-M55 (Armv8.1-M, Helium/MVE, FPU) in
 * Secure state (QEMU mps3-an547, ARM AN547 FPGA image = Corstone-300).
 *
 * UART0 is the CMSDK APB UART at the Secure alias 0x59303000, clocked by the
 * FPGA's 25 MHz peripheral clock (the core runs at 32 MHz); its RX line is
 * NVIC IRQ 33 and its TX line IRQ 34 (expansion IRQs 1 and 2; checked under
 * QEMU 7.2 by tests/test_boards.py's echo test).  The port
 * contract (firmware/include/tfd/port.h) is the MPS2 port shared with the
 * other QEMU boards (boards/common/mps2/mps2_port.c); this file names the
 * board and routes its interrupts.  Addresses, IRQs and clocks come from
 * board.json. */
#include "board_common.h"
#include "mps2_port.h"
#include "tfd/port.h"

const char *tfd_port_board_name(void)
{
    return TFD_BOARD_NAME;
}

int tfd_board_irq(unsigned irq)
{
    return tfd_mps2_uart_irq(irq);
}
