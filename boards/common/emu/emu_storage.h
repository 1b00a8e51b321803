/* tinyfed boards — persistent storage for emulated boards (QEMU mps2/mps3
 * "flash", the QEMU-only SRAM of stm32f405 under netduinoplus2, Renode's
 * controller-less flash on stm32f746g-disco).
 *
 * The board hands over a writable region (tfd_emu_storage_init).  It behaves
 * like NOR flash: erased bytes read 0xFF, erase works on whole erase units
 * (offset and length multiples of `erase_unit`, else TFD_ERR_ARG), and a write
 * can only clear bits: a write that would need a 0 -> 1 transition fails with
 * TFD_ERR_STORAGE and changes nothing (as the real ports do).
 *
 * Host-file backing: if the host passes "--storage=<path>" on the semihosting
 * command line (host/emulator.py: storage=Path), the region is loaded from that
 * file at boot (created, all 0xFF, if missing or of another size) and every
 * erase/write is written through with SYS_SEEK + SYS_WRITE, so the contents
 * survive a QEMU restart.  Without it, storage starts erased at every boot.
 *
 * Erase stall (flash-stall emulation): "--storage-stall-ms=N" makes every
 * erase call keep the CPU away from the UART for N ms, like a real flash
 * erase (the core stalls on its flash bus; bytes arriving meanwhile are lost):
 * the board's stall hook (tfd_emu_storage_set_stall) drops what arrives and
 * counts it, and the storage logs "storage_stall_ms=N" and
 * "storage_stall_lost_bytes=K".
 * tfd_emu_storage_busy_ms() reports N so the protocol can announce it (BUSY). */
#ifndef TFD_EMU_STORAGE_H
#define TFD_EMU_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

/* Keep the UART deaf for `ms` (bytes arriving are dropped); returns how many were. */
typedef uint32_t (*tfd_emu_stall_fn)(uint32_t ms);

void tfd_emu_storage_init(uint8_t *region, size_t size, size_t erase_unit);
void tfd_emu_storage_set_stall(tfd_emu_stall_fn stall);
int tfd_emu_storage_file_backed(void);
size_t tfd_emu_storage_size(void);
size_t tfd_emu_storage_erase_unit(void);
uint8_t *tfd_emu_storage_region(void);
uint32_t tfd_emu_storage_busy_ms(void);
TFD_CHECK_RESULT tfd_status_t tfd_emu_storage_read(uint32_t offset, void *out, size_t len);
TFD_CHECK_RESULT tfd_status_t tfd_emu_storage_erase(uint32_t offset, size_t len);
TFD_CHECK_RESULT tfd_status_t tfd_emu_storage_write(uint32_t offset, const void *data, size_t len);

#endif /* TFD_EMU_STORAGE_H */
