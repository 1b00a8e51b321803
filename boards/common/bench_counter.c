/* tinyfed boards — instruction counter for benchmarks (see bench_counter.h). */
#include "bench_counter.h"

#include "board_common.h"
#include "cortex_m.h"
#include "systick.h"

#if defined(TFD_BOARD_SEMIHOSTING)
#include "semihosting.h"
#endif

static int s_shift = -2; /* -2: not parsed yet */

void tfd_bench_counter_init(void)
{
    if (tfd_systick_hz() == 0u) tfd_systick_start(TFD_BOARD_CPU_HZ, 1000u); /* RTC-ticked ports */
    tfd_systick_set_period(SYST_RELOAD_MAX + 1u);
    /* The new period starts at the next tick (<= 1 ms): sleep until then so
     * no short-period tick interrupt lands inside a measurement. */
    while (!tfd_systick_period_settled()) tfd_wfi();
    (void)tfd_bench_icount_shift();
}

uint64_t tfd_bench_clocks(void)
{
    return tfd_systick_count();
}

int tfd_bench_icount_shift(void)
{
    if (s_shift == -2) {
        s_shift = -1;
#if defined(TFD_BOARD_SEMIHOSTING)
        char value[8];
        if (tfd_sh_cmdline_value("icount-shift", value, sizeof value) > 0) {
            int n = 0;
            for (const char *p = value; *p >= '0' && *p <= '9'; ++p) n = n * 10 + (*p - '0');
            if (n >= 0 && n <= 10) s_shift = n;
        }
#endif
    }
    return s_shift;
}

uint64_t tfd_bench_clocks_to_insns(uint64_t clocks)
{
    const int shift = tfd_bench_icount_shift();
    if (shift < 0) return 0;
    /* Virtual ns = clocks * 1e9 / f, exactly (168 MHz is not a whole number of
     * ns per clock), split so the product cannot overflow. */
    const uint64_t hz = tfd_systick_hz() ? tfd_systick_hz() : TFD_BOARD_CPU_HZ;
    const uint64_t ns = clocks / hz * 1000000000u + clocks % hz * 1000000000u / hz;
    return (ns + ((1u << shift) >> 1)) >> shift;
}

uint64_t tfd_bench_icount(void)
{
    return tfd_bench_clocks_to_insns(tfd_bench_clocks());
}

uint64_t tfd_bench_overhead_clocks(void)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 8; ++i) {
        const uint64_t a = tfd_bench_clocks();
        const uint64_t b = tfd_bench_clocks();
        if (b - a < best) best = b - a;
    }
    return best;
}
