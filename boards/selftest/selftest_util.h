/* tinyfed board self-tests — tiny helpers (no printf: newlib-nano has no %llu). */
#ifndef TFD_SELFTEST_UTIL_H
#define TFD_SELFTEST_UTIL_H

#include <stdint.h>
#include <string.h>

#include "board_common.h"
#include "tfd/port.h"

/* Log "key=value\n" through tfd_port_log (semihosting on QEMU). */
static inline void st_log_u64(const char *key, uint64_t value)
{
    tfd_board_log_u64(key, value);
}

static inline void st_read_exact(uint8_t *out, size_t len)
{
    size_t got = 0;
    while (got < len) {
        const size_t n = tfd_port_uart_read(out + got, len - got);
        if (n == 0) tfd_port_idle();
        got += n;
    }
}

static inline void st_write_str(const char *text)
{
    tfd_port_uart_write((const uint8_t *)text, strlen(text));
}

#endif /* TFD_SELFTEST_UTIL_H */
