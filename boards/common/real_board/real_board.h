/* tinyfed boards — the part of the port contract (tfd/port.h) that the real
 * (non-emulated) boards implement the same way.  A board gets it by listing
 * "common/real_board" in its board.json source_dirs; real_board.c then defines
 *   tfd_port_uart_read, tfd_port_idle   drain tfd_real_uart_rx, the ring the
 *                                       board's UART receive interrupt fills;
 *   tfd_port_storage_read               straight from the memory-mapped storage
 *                                       (tfd_real_storage_base(): the flash
 *                                       reserve __tfd_storage_start, or where an
 *                                       emulator keeps it);
 *   tfd_port_log, tfd_port_exit         over ITM stimulus port 0 (if a debugger
 *                                       enabled it), exit then halts; through
 *                                       semihosting when tfd_board_semihosting()
 *                                       says the image runs under QEMU.
 * The board's port.c keeps the rest: init, interrupts, UART write, ticks,
 * random, storage size / erase unit / erase / write / busy time (using the
 * helpers below). */
#ifndef TFD_REAL_BOARD_H
#define TFD_REAL_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "ringbuf.h"
#include "tfd/status.h"

/* Received UART bytes: the board's RX interrupt puts, tfd_port_uart_read gets. */
extern tfd_ring_t tfd_real_uart_rx;

/* Where the storage bytes are readable (memory mapped); provided by the board. */
uint8_t *tfd_real_storage_base(void);

/* Worst-case stall of erasing erase_bytes and programming write_bytes, from the
 * board.json defines TFD_BOARD_STORAGE_ERASE_MS (per erase unit) and
 * TFD_BOARD_STORAGE_PROGRAM_US (per 32-bit word): tfd_port_storage_busy_ms. */
uint32_t tfd_real_storage_busy_ms(size_t erase_bytes, size_t write_bytes);

/* [offset, offset + len) lies inside the storage reserve (tfd_port_storage_size()). */
int tfd_real_storage_in_bounds(uint32_t offset, size_t len);

/* Arguments of tfd_port_storage_erase: inside the reserve, whole erase units. */
TFD_CHECK_RESULT tfd_status_t tfd_real_storage_check_erase(uint32_t offset, size_t len);

/* Arguments of tfd_port_storage_write: inside the reserve, and the bytes can be
 * programmed over what flash holds (programming only clears bits; else
 * TFD_ERR_STORAGE: an erase is needed first). */
TFD_CHECK_RESULT tfd_status_t tfd_real_storage_check_write(uint32_t offset, const void *data, size_t len);

#endif /* TFD_REAL_BOARD_H */
