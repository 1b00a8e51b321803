/* tinyfed boards — stack high-water mark by painting (board independent).
 *
 * tfd_stack_paint() fills the unused main stack, from its bottom
 * (__tfd_stack_bottom, above the guard) up to `margin` bytes below the
 * painter's own frame, with TFD_STACK_PAINT.  Later, the lowest byte that no
 * longer holds the pattern is the deepest the stack has reached since
 * (interrupt frames included: they use the same stack).  A value that
 * happens to equal the pattern can hide at most the bytes below it, so the
 * figure is a lower bound in principle and exact in practice.
 *
 *   tfd_stack_paint(256);            // once, early in main (firmware/src/app/main.c)
 *   ... ; tfd_stack_peak()           // bytes used from the stack top, ever since
 *
 *   const uintptr_t sp = tfd_stack_pointer();   // per call (bench/secagg_stages.c)
 *   tfd_stack_paint(16);
 *   f();
 *   depth = sp - tfd_stack_low_water();         // bytes f() used below its caller
 *
 * Painting runs below the painter's frame, so it must not be called with
 * live data below the current stack pointer (never the case in C). */
#ifndef TFD_STACK_MARK_H
#define TFD_STACK_MARK_H

#include <stdint.h>

#define TFD_STACK_PAINT 0xC5u

/* The caller's stack pointer (inlined into the caller). */
static inline __attribute__((always_inline)) uintptr_t tfd_stack_pointer(void)
{
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

/* Paint [stack bottom, painter's frame - margin) with TFD_STACK_PAINT. */
void tfd_stack_paint(uint32_t margin);

/* Lowest stack address written since the last paint (the stack bottom if the
 * whole painted area was used). */
uintptr_t tfd_stack_low_water(void);

/* Stack bytes in use at the deepest point since the last paint, counted from
 * the top of the stack (the whole-stack high-water mark). */
uint32_t tfd_stack_peak(void);

#endif /* TFD_STACK_MARK_H */
