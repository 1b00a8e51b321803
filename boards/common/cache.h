/* tinyfed boards — Cortex-M7 (and Armv8.1-M) L1 caches: enable, invalidate.
 *
 * The STM32F746's core reaches flash over AXIM and SRAM over the AHB matrix;
 * without the L1 caches every access pays the bus and the flash wait states
 * (7 at 216 MHz; the ART accelerator only serves the ITCM path).  Once the
 * D-cache is on, data the CPU reads through the memory map can be stale after
 * something other than a CPU store changed the memory: a flash erase/program
 * changes flash behind the cache, so the storage range must be invalidated
 * before it is read back (tfd_dcache_invalidate).
 * Registers: ARMv7-M ARM B3.2 (CCR, CCSIDR, CSSELR, CTR, ICIALLU, DCISW,
 * DCIMVAC).  On a core without caches these registers read 0 and the
 * operations do nothing.  QEMU accepts and ignores them. */
#ifndef TFD_CACHE_H
#define TFD_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* Invalidate then enable the instruction and data caches. */
void tfd_cache_enable(void);

/* Discard the D-cache lines holding [addr, addr + len) (no write-back: for
 * memory changed behind the cache, e.g. flash after an erase or program). */
void tfd_dcache_invalidate(const volatile void *addr, size_t len);

#endif /* TFD_CACHE_H */
