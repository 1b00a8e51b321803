/* tinyfed boards — ARM semihosting (BKPT 0xAB on M-profile).
 *
 * Only for emulators/debuggers: on a real board without a debugger attached a
 * semihosting call escalates to HardFault.  So every call first asks
 * tfd_board_semihosting(): 1 on the QEMU-only boards (board.json
 * "semihosting": true), 0 on the real boards (the calls then fail: -1, and
 * tfd_sh_write0 does nothing), and the port's answer at run time on a board
 * whose one image runs both on silicon and under QEMU (board.json defines
 * TFD_BOARD_SEMIHOSTING_RUNTIME: stm32f405 answers 1 only under QEMU). */
#ifndef TFD_SEMIHOSTING_H
#define TFD_SEMIHOSTING_H

#include <stddef.h>
#include <stdint.h>

#define TFD_SH_SYS_OPEN 0x01
#define TFD_SH_SYS_CLOSE 0x02
#define TFD_SH_SYS_WRITE0 0x04
#define TFD_SH_SYS_WRITE 0x05
#define TFD_SH_SYS_READ 0x06
#define TFD_SH_SYS_SEEK 0x0A
#define TFD_SH_SYS_FLEN 0x0C
#define TFD_SH_SYS_GET_CMDLINE 0x15
#define TFD_SH_SYS_EXIT 0x18
#define TFD_SH_SYS_EXIT_EXTENDED 0x20
#define TFD_SH_ADP_STOPPED_APPLICATION_EXIT 0x20026u

/* fopen-style modes for SYS_OPEN */
#define TFD_SH_MODE_RB 1     /* "rb" */
#define TFD_SH_MODE_RPLUSB 3 /* "r+b" */
#define TFD_SH_MODE_WPLUSB 7 /* "w+b" */

/* May this image use semihosting now?  (See above; the port defines it when
 * TFD_BOARD_SEMIHOSTING_RUNTIME is set, semihosting.c otherwise.) */
int tfd_board_semihosting(void);

/* Raw call: r0 = op, r1 = arg; returns r0 (-1 without semihosting). */
int32_t tfd_sh_call(uint32_t op, const void *arg);

/* Write a NUL-terminated string to the host console (QEMU: its stdout). */
void tfd_sh_write0(const char *text);

/* Exit the emulator with `code` (SYS_EXIT_EXTENDED; the host sees the code). */
void tfd_sh_exit(int code) __attribute__((noreturn));

/* The command line the host passed (QEMU: -semihosting-config arg=...), NUL
 * terminated in buf.  Returns its length, or -1 if none/unsupported. */
int tfd_sh_cmdline(char *buf, size_t cap);

/* Find "--key=value" in the command line; copies value (NUL terminated) into
 * out.  Returns the value length, or -1 if the key is absent or too long. */
int tfd_sh_cmdline_value(const char *key, char *out, size_t cap);

/* Host file operations.  open returns a handle >= 0 or -1. */
int tfd_sh_open(const char *path, uint32_t mode);
int tfd_sh_close(int handle);
/* Return 0 on success (all bytes transferred), -1 otherwise. */
int tfd_sh_write(int handle, const void *data, size_t len);
int tfd_sh_read(int handle, void *out, size_t len);
int tfd_sh_seek(int handle, uint32_t pos);
/* File length, or -1. */
int32_t tfd_sh_flen(int handle);

#endif /* TFD_SEMIHOSTING_H */
