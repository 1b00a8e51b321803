/* tinyfed boards — stack high-water mark by painting (see stack_mark.h). */
#include "stack_mark.h"

#include "board_common.h"

void tfd_stack_paint(uint32_t margin)
{
    volatile uint8_t *lo = (volatile uint8_t *)(uintptr_t)__tfd_stack_bottom;
    volatile uint8_t *hi = (volatile uint8_t *)__builtin_frame_address(0) - margin;
    for (volatile uint8_t *q = lo; q < hi; ++q) *q = TFD_STACK_PAINT;
}

uintptr_t tfd_stack_low_water(void)
{
    const volatile uint8_t *q = (const volatile uint8_t *)(uintptr_t)__tfd_stack_bottom;
    const volatile uint8_t *top = (const volatile uint8_t *)(uintptr_t)__tfd_stack_top;
    while (q < top && *q == TFD_STACK_PAINT) ++q;
    return (uintptr_t)q;
}

uint32_t tfd_stack_peak(void)
{
    return (uint32_t)((uintptr_t)__tfd_stack_top - tfd_stack_low_water());
}
