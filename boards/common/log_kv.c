/* "key=value\n" lines through tfd_port_log (semihosting on QEMU): the format the
 * benchmarks and self-tests print and the host parses (bench/icount.py parse_kv).
 * No printf: newlib-nano has no %llu. */
#include <string.h>

#include "board_common.h"
#include "tfd/port.h"

void tfd_board_log_u64(const char *key, uint64_t value)
{
    char line[96];
    size_t n = strlen(key);
    if (n > 60) n = 60;
    memcpy(line, key, n);
    line[n++] = '=';
    n += tfd_board_u64_dec(value, line + n);
    line[n++] = '\n';
    line[n] = '\0';
    tfd_port_log(line);
}

void tfd_board_log_str(const char *key, const char *value)
{
    tfd_port_log(key);
    tfd_port_log("=");
    tfd_port_log(value);
    tfd_port_log("\n");
}
