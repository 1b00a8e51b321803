/* tinyfed boards — L1 caches (see cache.h). */
#include "cache.h"

#include "cortex_m.h"

#define SCB_CCR TFD_REG32(0xE000ED14u)
#define SCB_CTR TFD_REG32(0xE000ED7Cu)
#define SCB_CCSIDR TFD_REG32(0xE000ED80u)
#define SCB_CSSELR TFD_REG32(0xE000ED84u)
#define SCB_ICIALLU TFD_REG32(0xE000EF50u)
#define SCB_DCIMVAC TFD_REG32(0xE000EF5Cu)
#define SCB_DCISW TFD_REG32(0xE000EF60u)
#define SCB_CCR_DC (1u << 16)
#define SCB_CCR_IC (1u << 17)

static void dcache_invalidate_all(void)
{
    SCB_CSSELR = 0; /* level 1 data cache */
    tfd_dsb();
    const uint32_t ccsidr = SCB_CCSIDR;
    const uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    const uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    const uint32_t line_shift = (ccsidr & 7u) + 4u;
    const uint32_t way_shift = ways > 1u ? (uint32_t)__builtin_clz(ways - 1u) : 0u;
    for (uint32_t set = 0; set < sets; ++set) {
        for (uint32_t way = 0; way < ways; ++way) {
            SCB_DCISW = (way << way_shift) | (set << line_shift);
        }
    }
    tfd_dsb();
}

void tfd_cache_enable(void)
{
    if (!(SCB_CCR & SCB_CCR_IC)) {
        tfd_dsb();
        tfd_isb();
        SCB_ICIALLU = 0;
        tfd_dsb();
        tfd_isb();
        SCB_CCR |= SCB_CCR_IC;
        tfd_dsb();
        tfd_isb();
    }
    if (!(SCB_CCR & SCB_CCR_DC)) {
        dcache_invalidate_all();
        SCB_CCR |= SCB_CCR_DC;
        tfd_dsb();
        tfd_isb();
    }
}

void tfd_dcache_invalidate(const volatile void *addr, size_t len)
{
    if (!(SCB_CCR & SCB_CCR_DC) || len == 0) return;
    const uint32_t line = 4u << ((SCB_CTR >> 16) & 0xFu); /* DminLine, in bytes */
    uintptr_t a = (uintptr_t)addr & ~(uintptr_t)(line - 1u);
    const uintptr_t end = (uintptr_t)addr + len;
    tfd_dsb();
    for (; a < end; a += line) SCB_DCIMVAC = (uint32_t)a;
    tfd_dsb();
    tfd_isb();
}
