/* tinyfed — port for mps2-an500: Cortex-M7 (QEMU mps2-an500, ARM AN500 FPGA image).
 *
 * The port contract (firmware/include/tfd/port.h) is implemented by the MPS2
 * port shared with the other QEMU boards (boards/common/mps2/mps2_port.c);
 * this file names the board and routes its interrupts.  Addresses, IRQ numbers
 * and clock come from board.json (one source for C, Python and PlatformIO). */
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
