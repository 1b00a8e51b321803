/* tinyfed boards — Cortex-M startup in C: vector table, Reset_Handler, IRQ
 * dispatch.  Shared by every board; the table length comes from board.json
 * (TFD_BOARD_IRQ_COUNT). */
#include <stdint.h>
#include <stdlib.h>

#include "board_common.h"
#include "cortex_m.h"
#include "vectors.h"

extern uint32_t __tfd_data_load[], __tfd_data_start[], __tfd_data_end[];
extern uint32_t __tfd_bss_start[], __tfd_bss_end[];

extern int main(void);
extern void __libc_init_array(void);

typedef void (*tfd_vector_t)(void);

/* Vector table: initial MSP, 15 system exceptions, then every external IRQ
 * through one dispatcher that reads IPSR and calls the port's tfd_board_irq. */
_Static_assert(TFD_BOARD_IRQ_COUNT >= 1 && TFD_BOARD_IRQ_COUNT <= 480,
               "TFD_BOARD_IRQ_COUNT out of range");

__attribute__((section(".isr_vector"), used)) const tfd_vector_t tfd_vectors[16 + TFD_BOARD_IRQ_COUNT] = {
    (tfd_vector_t)(uintptr_t)__tfd_stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    SecureFault_Handler, /* ARMv8-M only; reserved (never taken) on v7-M */
    0, 0, 0,
    Unexpected_Handler, /* SVCall */
    Unexpected_Handler, /* DebugMonitor */
    0,
    Unexpected_Handler, /* PendSV */
    SysTick_Handler,
    /* GNU range designator (accepted by gcc/clang in -std=c11 mode). */
    [16 ... 15 + TFD_BOARD_IRQ_COUNT] = tfd_irq_dispatch,
};

/* With -nostartfiles there are no crti/crtn: __libc_init_array calls these. */
void _init(void) {}
void _fini(void) {}

/* Make the 512-byte guard below the stack inaccessible, so a stack overflow
 * faults (the fault handlers lift the guard and report).  ARMv8-M: the MSP
 * limit register (UsageFault STKOF).  ARMv7-M: MPU region 7 (highest
 * priority), no access, over the guard; default map for everything else. */
static void stack_guard_on(void)
{
#if defined(__ARM_ARCH_8M_MAIN__)
    __asm volatile("msr msplim, %0" ::"r"(__tfd_stack_bottom));
#elif defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
    if ((MPU_TYPE >> 8) & 0xFFu) { /* DREGION: the MPU exists */
        MPU_RNR = 7;
        MPU_RBAR = (uint32_t)(uintptr_t)__tfd_stack_guard;
        /* XN | AP=000 (no access) | SIZE = log2(512) - 1 = 8 | ENABLE */
        MPU_RASR = (1u << 28) | (8u << 1) | 1u;
        MPU_CTRL = MPU_CTRL_PRIVDEFENA | MPU_CTRL_ENABLE;
        tfd_dsb();
        tfd_isb();
    }
#endif
}

void Reset_Handler(void)
{
    /* FPU first: the compiler may use FP registers anywhere after this. */
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20; /* CP10 + CP11 full access */
    tfd_dsb();
    tfd_isb();
#endif
    SCB_VTOR = (uint32_t)(uintptr_t)tfd_vectors;
    stack_guard_on();
    /* Fault handlers get their own vectors instead of escalating to HardFault. */
    SCB_SHCSR |= SCB_SHCSR_MEMFAULTENA | SCB_SHCSR_BUSFAULTENA | SCB_SHCSR_USGFAULTENA;

    for (uint32_t *src = __tfd_data_load, *dst = __tfd_data_start; dst < __tfd_data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = __tfd_bss_start; dst < __tfd_bss_end;) *dst++ = 0;
    tfd_dsb();

    __libc_init_array();
    exit(main()); /* atexit handlers, then _exit -> tfd_port_exit */
}

void tfd_irq_dispatch(void)
{
    const unsigned irq = (unsigned)tfd_ipsr() - 16u;
    if (!tfd_board_irq(irq)) tfd_board_fatal("unexpected interrupt", TFD_EXIT_UNEXPECTED_IRQ);
}

void tfd_board_memory(tfd_board_memory_t *out)
{
    out->flash_size = (uint32_t)(uintptr_t)__tfd_flash_size;
    out->flash_used = (uint32_t)(uintptr_t)__tfd_flash_used;
    out->ram_size = (uint32_t)(uintptr_t)__tfd_ram_size;
    out->ram_used = (uint32_t)(uintptr_t)__tfd_ram_used;
    out->stack_size = (uint32_t)(uintptr_t)__tfd_stack_size;
    out->storage_size = (uint32_t)(uintptr_t)__tfd_storage_size;
}
