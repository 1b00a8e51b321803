/* tinyfed boards — instruction counter for benchmarks (board independent).
 *
 * QEMU does not model cycles (DWT->CYCCNT reads 0).  Under `-icount shift=N`
 * every guest instruction advances virtual time by exactly 2^N ns, and SysTick
 * counts the processor clock in virtual time, so
 *     instructions = clocks * (1e9 / cpu_hz) / 2^N.
 * tfd_bench_clocks() is the exact 64-bit SysTick count (wraps included); the
 * host passes N on the semihosting command line (--icount-shift=N, done by
 * host/emulator.py run_to_exit(icount_shift=N)).  These are INSTRUCTION counts,
 * not cycles: quote them as such.  bench/icount.py validates the method on a
 * loop of known length.
 *
 * On a real board (no -icount) the same clock count is a true cycle count
 * (SysTick on the core clock) and tfd_bench_icount_shift() returns -1. */
#ifndef TFD_BENCH_COUNTER_H
#define TFD_BENCH_COUNTER_H

#include <stdint.h>

/* Start the counter: tfd_port_init() must have run.  Lengthens the SysTick
 * period to 2^24 clocks so the tick interrupt (counted too) is negligible
 * (~15 instructions per 2^24 clocks).  tfd_port_millis() stays correct. */
void tfd_bench_counter_init(void);

/* Processor clocks since boot (monotonic, exact under -icount). */
uint64_t tfd_bench_clocks(void);

/* The -icount shift the host ran us with, or -1 if unknown. */
int tfd_bench_icount_shift(void);

/* Clocks -> instructions (rounded); needs a known shift (else returns 0). */
uint64_t tfd_bench_clocks_to_insns(uint64_t clocks);

/* Instructions since boot (0 if the shift is unknown). */
uint64_t tfd_bench_icount(void);

/* Clocks taken by a measurement with nothing inside it (one
 * tfd_bench_clocks() call's worth); subtract it from each measured region. */
uint64_t tfd_bench_overhead_clocks(void);

#endif /* TFD_BENCH_COUNTER_H */
