/* tinyfed boards — debug log over ITM stimulus port 0 (SWO), for real boards.
 * Writes only if a debugger enabled ITM and port 0; otherwise drops the text,
 * so logging never blocks or faults on a board with no probe attached. */
#ifndef TFD_ITM_H
#define TFD_ITM_H

#include "cortex_m.h"

static inline void tfd_itm_write(const char *text)
{
    if (!(ITM_TCR & 1u) || !(ITM_TER & 1u)) return;
    for (; *text; ++text) {
        for (int spin = 0; ITM_STIM0 == 0u; ++spin) { /* FIFO full */
            if (spin > 100000) return;
        }
        *(volatile uint8_t *)&ITM_STIM0 = (uint8_t)*text;
    }
}

/* Stop for good: interrupts off, sleep forever (a real board has no host to
 * return a status to; the code was logged before). */
static inline void tfd_halt(void) __attribute__((noreturn));
static inline void tfd_halt(void)
{
    __asm volatile("cpsid i" ::: "memory");
    for (;;) tfd_wfi();
}

#endif /* TFD_ITM_H */
