/* tinyfed boards — persistent storage for emulated boards.
 *
 * The linker reserves TFD_STORAGE_SIZE (default 16 KiB) at the end of the
 * 1 MiB "flash" (QEMU maps the MPS2 code memory as RAM, so it is writable).
 * It behaves like NOR flash: erased bytes read 0xFF, erase works on whole
 * 4 KiB pages (offset and length must be page aligned, else TFD_ERR_ARG), and
 * a write can only clear bits: a write that would need a 0 -> 1 transition
 * fails with TFD_ERR_STORAGE and changes nothing (as the real ports do).
 *
 * Host-file backing: if the host passes "--storage=<path>" on the semihosting
 * command line (host/emulator.py: storage=Path), the region is loaded from that
 * file at boot (created, all 0xFF, if missing or of another size) and every
 * erase/write is written through with SYS_SEEK + SYS_WRITE, so the contents
 * survive a QEMU restart.  Without it, storage starts erased at every boot. */
#ifndef TFD_EMU_STORAGE_H
#define TFD_EMU_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

#define TFD_EMU_STORAGE_PAGE 4096u

void tfd_emu_storage_init(void);
int tfd_emu_storage_file_backed(void);
size_t tfd_emu_storage_size(void);
TFD_CHECK_RESULT tfd_status_t tfd_emu_storage_read(uint32_t offset, void *out, size_t len);
TFD_CHECK_RESULT tfd_status_t tfd_emu_storage_erase(uint32_t offset, size_t len);
TFD_CHECK_RESULT tfd_status_t tfd_emu_storage_write(uint32_t offset, const void *data, size_t len);

#endif /* TFD_EMU_STORAGE_H */
