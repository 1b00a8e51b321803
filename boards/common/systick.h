/* tinyfed boards — SysTick as a 64-bit processor-clock counter + millisecond tick.
 *
 * The interrupt fires every reload+1 clocks and only adds to a 64-bit base;
 * tfd_systick_count() = base + (reload - SYST_CVR), corrected for a wrap whose
 * interrupt is still pending.  Under QEMU -icount the count is deterministic
 * (boards/common/bench_counter.h turns it into instructions). */
#ifndef TFD_SYSTICK_H
#define TFD_SYSTICK_H

#include <stdint.h>

/* Start SysTick on the processor clock with a period of cpu_hz / tick_hz clocks. */
void tfd_systick_start(uint32_t cpu_hz, uint32_t tick_hz);

/* Change the period (clocks per interrupt, 1..2^24) without losing counts. */
void tfd_systick_set_period(uint32_t clocks);

/* 1 once a period set by tfd_systick_set_period is in force (it starts at
 * the next wrap). */
int tfd_systick_period_settled(void);

/* Processor clocks since tfd_systick_start (monotonic). */
uint64_t tfd_systick_count(void);

/* Milliseconds since tfd_systick_start (from the count, any period). */
uint32_t tfd_systick_millis(void);

/* Processor clock the counter was started with. */
uint32_t tfd_systick_hz(void);

#endif /* TFD_SYSTICK_H */
