/* tinyfed boards — SysTick counter (see systick.h). */
#include "systick.h"

#include "cortex_m.h"
#include "vectors.h"

static volatile uint64_t s_base;   /* clocks in completed periods */
static volatile uint32_t s_reload; /* reload of the period in progress */
static volatile uint32_t s_next;   /* reload the next period starts with (SYST_RVR) */
static uint32_t s_hz;

void SysTick_Handler(void)
{
    s_base += (uint64_t)s_reload + 1u;
    s_reload = s_next; /* the hardware reloaded SYST_RVR at the wrap */
}

void tfd_systick_start(uint32_t cpu_hz, uint32_t tick_hz)
{
    s_hz = cpu_hz;
    SYST_CSR = 0;
    s_base = 0;
    s_reload = s_next = cpu_hz / tick_hz - 1u;
    SYST_RVR = s_reload;
    SYST_CVR = 0; /* clears the counter; it loads RVR on the next clock */
    SYST_CSR = SYST_CSR_CLKSOURCE | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
    /* Wait for that load (one clock) so the count starts at 0 and never
     * steps back; bounded in case the counter is not clocked at all. */
    for (int spin = 0; SYST_CVR == 0u && spin < 1000; ++spin) {
    }
}

/* With interrupts masked: base + elapsed in the current period. */
static uint64_t count_locked(void)
{
    uint32_t cvr = SYST_CVR;
    uint64_t base = s_base;
    uint32_t reload = s_reload;
    if (SCB_ICSR & SCB_ICSR_PENDSTSET) {
        /* A wrap happened whose interrupt has not run yet: re-read after it.
         * CVR == 0 means the counter reached zero but has not reloaded. */
        cvr = SYST_CVR;
        if (cvr != 0u) {
            base += (uint64_t)reload + 1u;
            reload = s_next;
        }
    }
    return base + (uint64_t)(reload - cvr);
}

uint64_t tfd_systick_count(void)
{
    const uint32_t primask = tfd_irq_save();
    const uint64_t count = count_locked();
    tfd_irq_restore(primask);
    return count;
}

void tfd_systick_set_period(uint32_t clocks)
{
    if (clocks < 1u || clocks > SYST_RELOAD_MAX + 1u) return;
    const uint32_t primask = tfd_irq_save();
    /* Takes effect at the next wrap (the current period runs out with the
     * old reload), so the count stays exact and monotonic. */
    s_next = clocks - 1u;
    SYST_RVR = s_next;
    tfd_irq_restore(primask);
}

int tfd_systick_period_settled(void)
{
    return s_reload == s_next;
}

uint32_t tfd_systick_millis(void)
{
    if (s_hz == 0u) return 0;
    return (uint32_t)(tfd_systick_count() / (s_hz / 1000u));
}

uint32_t tfd_systick_hz(void)
{
    return s_hz;
}
