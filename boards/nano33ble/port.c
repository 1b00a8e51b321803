/* tinyfed — port for the Arduino Nano 33 BLE (u-blox NINA-B306 = nRF52840):
 * the nRF52840 port shared with the DK (boards/common/nrf52840/
 * nrf52840_port.c) with this board's wiring from board.json:
 *   - the Arduino bootloader owns flash 0x0-0xFFFF: the image is linked at
 *     0x10000 (link.ld) and uploaded by the bootloader (bossac);
 *   - the host link is UARTE0 on the header pins D1/TX = P1.03 and D0/RX =
 *     P1.10 through a 3.3 V USB-serial adapter.  The board's own USB
 *     connector is the nRF52840's USB device: a CDC-ACM serial port there
 *     needs a USB device stack, which tinyfed does not have (yet);
 *   - P0.06 is the blue LED here (it is the DK's UART TX), untouched;
 *   - the NINA-B306-00B module has the 32.768 kHz crystal (the -01B variant
 *     does not: the port then falls back to the calibrated RC). */
#include "board_common.h"
#include "tfd/port.h"

const char *tfd_port_board_name(void)
{
    return TFD_BOARD_NAME;
}
