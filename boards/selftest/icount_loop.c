/* Self-test for the instruction counter (boards/common/bench_counter.h).
 *
 * Runs a loop of exactly 2 instructions per iteration (subs + bne) for several
 * lengths and logs "loop <iterations> clocks=<c> insns=<i>" per run, after
 * subtracting the measurement overhead.  bench/icount.py compares against the
 * known instruction count.  Run under QEMU -icount shift=N with
 * --icount-shift=N on the semihosting command line. */
#include <stdint.h>

#include "bench_counter.h"
#include "selftest_util.h"

static void __attribute__((noinline)) spin(uint32_t iterations)
{
    __asm volatile("1: subs %0, %0, #1\n\t"
                   "bne 1b\n\t"
                   : "+r"(iterations)::"cc");
}

int main(void)
{
    tfd_port_init();
    tfd_bench_counter_init();
    const uint64_t overhead = tfd_bench_overhead_clocks();
    st_log_u64("icount_shift", (uint64_t)(int64_t)tfd_bench_icount_shift());
    st_log_u64("cpu_hz", TFD_BOARD_CPU_HZ);
    st_log_u64("overhead_clocks", overhead);
    static const uint32_t kLengths[] = {1000u, 10000u, 100000u, 1000000u, 10000000u};
    for (unsigned i = 0; i < sizeof kLengths / sizeof kLengths[0]; ++i) {
        const uint64_t a = tfd_bench_clocks();
        spin(kLengths[i]);
        const uint64_t b = tfd_bench_clocks();
        const uint64_t clocks = b - a - overhead;
        char line[120] = "loop ";
        char num[21];
        tfd_board_u64_dec(kLengths[i], num);
        strcat(line, num);
        strcat(line, " clocks=");
        tfd_board_u64_dec(clocks, num);
        strcat(line, num);
        strcat(line, " insns=");
        tfd_board_u64_dec(tfd_bench_clocks_to_insns(clocks), num);
        strcat(line, num);
        strcat(line, "\n");
        tfd_port_log(line);
    }
    return 0;
}
