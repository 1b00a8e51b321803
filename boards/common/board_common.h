/* tinyfed boards — what boards/common provides to each board's port.c,
 * and what each port.c must provide to boards/common.
 *
 * Every board build gets these -D defines from its board.json (through
 * toolchain/image/firmware.py or the PlatformIO builder, one code path):
 *   TFD_BOARD_NAME "..."   TFD_BOARD_CPU_HZ   TFD_BOARD_IRQ_COUNT
 *   TFD_BOARD_UART_BASE    TFD_BOARD_UART_RX_IRQ   TFD_BOARD_UART_TX_IRQ
 */
#ifndef TFD_BOARD_COMMON_H
#define TFD_BOARD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifndef TFD_BOARD_NAME
#error "TFD_BOARD_NAME is not defined: build through toolchain/image/firmware.py (board.json)"
#endif
#ifndef TFD_BOARD_CPU_HZ
#error "TFD_BOARD_CPU_HZ is not defined: build through toolchain/image/firmware.py (board.json)"
#endif
#ifndef TFD_BOARD_IRQ_COUNT
#error "TFD_BOARD_IRQ_COUNT is not defined: build through toolchain/image/firmware.py (board.json)"
#endif

/* Exit codes used by the common fault handlers (tfd_port_exit(code)):
 * 128 + exception number for a fault (NMI 130, HardFault 131, MemManage 132,
 * BusFault 133, UsageFault 134, SecureFault 135), 150 for an interrupt with no
 * handler, 151 for a failed stack-limit check at boot. */
#define TFD_EXIT_FAULT_BASE 128
#define TFD_EXIT_UNEXPECTED_IRQ 150

/* ---- provided by each board's port.c -------------------------------------- */

/* Handle external interrupt `irq` (NVIC number).  Return 0 if it was not one
 * of the board's; the common dispatcher then reports it as a fault. */
int tfd_board_irq(unsigned irq);

/* ---- provided by boards/common --------------------------------------------- */

/* Report a fatal condition through tfd_port_log and stop with tfd_port_exit. */
void tfd_board_fatal(const char *what, int code) __attribute__((noreturn));

/* Format `value` as 8 hex digits + NUL into out[9]. */
void tfd_board_hex32(uint32_t value, char out[9]);

/* Format an unsigned decimal number into out (>= 21 bytes); returns length. */
size_t tfd_board_u64_dec(uint64_t value, char out[21]);

/* Log one "key=value\n" line (key cut at 60 characters) through tfd_port_log. */
void tfd_board_log_u64(const char *key, uint64_t value);
void tfd_board_log_str(const char *key, const char *value);

/* Linker-script symbols (boards/common/link/sections.ld).  Addresses, not
 * variables: use (uintptr_t)__tfd_ram_size etc.  tfd_board_memory() reads them. */
extern const uint8_t __tfd_flash_start[], __tfd_flash_size[], __tfd_flash_used[];
extern const uint8_t __tfd_ram_start[], __tfd_ram_size[], __tfd_ram_used[];
extern uint8_t __tfd_stack_guard[];
extern const uint8_t __tfd_stack_bottom[], __tfd_stack_top[], __tfd_stack_size[];
extern uint8_t __tfd_storage_start[];
extern const uint8_t __tfd_storage_size[];

typedef struct {
    uint32_t flash_size;   /* bytes the chip has (linker TFD_FLASH_SIZE) */
    uint32_t flash_used;   /* vectors + text + rodata + .data image */
    uint32_t ram_size;     /* bytes the chip has (linker TFD_RAM_SIZE) */
    uint32_t ram_used;     /* stack reserve + .data + .bss */
    uint32_t stack_size;   /* reserved main stack (plus a 512-byte guard below it) */
    uint32_t storage_size; /* persistent storage reserved at the end of flash */
} tfd_board_memory_t;

void tfd_board_memory(tfd_board_memory_t *out);

#endif /* TFD_BOARD_COMMON_H */
