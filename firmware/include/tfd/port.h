/* tinyfed — the port contract: the few functions a board implements
 * (boards/<board>/port.c).  Everything else in firmware/ is portable C. */
#ifndef TFD_PORT_H
#define TFD_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

/* Bring up clocks, FPU, UART (RX interrupt enabled) and the tick counter. */
void tfd_port_init(void);

/* Blocking write of `len` bytes to the host link. */
void tfd_port_uart_write(const uint8_t *data, size_t len);

/* Non-blocking read: copies up to `cap` received bytes, returns how many. */
size_t tfd_port_uart_read(uint8_t *data, size_t cap);

/* Sleep until an interrupt (UART RX or tick) arrives: WFI, never busy-poll. */
void tfd_port_idle(void);

/* Milliseconds since boot (SysTick or an RTC). */
uint32_t tfd_port_millis(void);

/* Fill `out` with random bytes from the board's hardware RNG (or a seeded
 * source on emulated boards, documented per board).  Used for keys. */
TFD_CHECK_RESULT tfd_status_t tfd_port_random(uint8_t *out, size_t len);

/* Persistent storage (internal flash or an emulated equivalent), byte
 * addressed from 0 to tfd_port_storage_size(); writes may require the
 * region to have been erased first (tfd_port_storage_erase).
 * tfd_port_storage_erase_unit() is the erase granularity in bytes (a flash
 * page or sector): erase offsets and lengths must be multiples of it, and the
 * storage size is a multiple of it.  Code that must survive a reset during a
 * write (firmware/src/storage/param_store.c: A/B slots) keeps each copy in its
 * own erase units. */
size_t tfd_port_storage_size(void);
size_t tfd_port_storage_erase_unit(void);
TFD_CHECK_RESULT tfd_status_t tfd_port_storage_read(uint32_t offset, void *out, size_t len);
TFD_CHECK_RESULT tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len);
TFD_CHECK_RESULT tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len);

/* Worst-case milliseconds that erasing `erase_bytes` and programming
 * `write_bytes` keep the core from serving the UART (on the real chips a flash
 * erase or program stalls the CPU and bytes arriving meanwhile are lost); 0 if
 * storage does not stall.  The protocol announces it to the host before the
 * operation (BUSY, wire.def) so the host sends nothing until the reply. */
uint32_t tfd_port_storage_busy_ms(size_t erase_bytes, size_t write_bytes);

/* Debug log (semihosting or a second UART; may be a no-op). */
void tfd_port_log(const char *text);

/* Board name, as reported in HELLO/INFO. */
const char *tfd_port_board_name(void);

/* Stop the program with a status (QEMU: semihosting SYS_EXIT). */
void tfd_port_exit(int code) __attribute__((noreturn));

#endif /* TFD_PORT_H */
