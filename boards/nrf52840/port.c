/* tinyfed — port for the nRF52840 DK (PCA10056): the nRF52840 port shared
 * with the Nano 33 BLE (boards/common/nrf52840/nrf52840_port.c) with this
 * board's wiring from board.json: UARTE0 on the J-Link virtual COM port,
 * TX P0.06 / RX P0.08; 32.768 kHz crystal X2; the image owns the whole flash
 * from 0x0 (no SoftDevice, no bootloader). */
#include "board_common.h"
#include "tfd/port.h"

const char *tfd_port_board_name(void)
{
    return TFD_BOARD_NAME;
}
