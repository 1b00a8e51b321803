/* tinyfed bench — C glue for the TFLM benchmark image (see tflm_glue.h).
 * Compiled like every tinyfed board source (C11, -Wall -Wextra -Werror). */
#include "tflm_glue.h"

#include <string.h>

#include "bench_counter.h"
#include "board_common.h"
#include "tfd/port.h"

void tfb_init(void)
{
    tfd_port_init();
    tfd_bench_counter_init();
}

uint64_t tfb_clocks(void) { return tfd_bench_clocks(); }

uint64_t tfb_overhead_clocks(void) { return tfd_bench_overhead_clocks(); }

uint64_t tfb_clocks_to_insns(uint64_t clocks) { return tfd_bench_clocks_to_insns(clocks); }

int tfb_icount_shift(void) { return tfd_bench_icount_shift(); }

void tfb_log_text(const char *text) { tfd_port_log(text); }

void tfb_log_str(const char *key, const char *value)
{
    tfd_port_log(key);
    tfd_port_log("=");
    tfd_port_log(value);
    tfd_port_log("\n");
}

void tfb_log_u64(const char *key, uint64_t value)
{
    char digits[21];
    const size_t n = tfd_board_u64_dec(value, digits);
    digits[n] = '\0';
    tfb_log_str(key, digits);
}

void tfb_log_hex(const char *key, const uint8_t *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char chunk[65];
    tfd_port_log(key);
    tfd_port_log("=");
    size_t k = 0;
    for (size_t i = 0; i < len; ++i) {
        chunk[k++] = hex[data[i] >> 4];
        chunk[k++] = hex[data[i] & 0xFu];
        if (k == sizeof chunk - 1u) {
            chunk[k] = '\0';
            tfd_port_log(chunk);
            k = 0;
        }
    }
    chunk[k] = '\0';
    tfd_port_log(chunk);
    tfd_port_log("\n");
}

const char *tfb_board_name(void) { return tfd_port_board_name(); }

void tfb_log_memory(void)
{
    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    tfb_log_u64("flash_used", mem.flash_used);
    tfb_log_u64("flash_size", mem.flash_size);
    tfb_log_u64("ram_used", mem.ram_used);
    tfb_log_u64("ram_size", mem.ram_size);
}

void tfb_exit(int code) { tfd_port_exit(code); }
