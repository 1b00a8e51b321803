/* tinyfed boards — Cortex-M core registers (ARMv7-M / ARMv8-M mainline).
 *
 * Our own definitions from the Architecture Reference Manuals; no CMSIS.
 * Only what the board code uses. */
#ifndef TFD_CORTEX_M_H
#define TFD_CORTEX_M_H

#include <stdint.h>

#define TFD_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* System Control Block */
#define SCB_ICSR TFD_REG32(0xE000ED04u)
#define SCB_VTOR TFD_REG32(0xE000ED08u)
#define SCB_AIRCR TFD_REG32(0xE000ED0Cu)
#define SCB_SHCSR TFD_REG32(0xE000ED24u)
#define SCB_CFSR TFD_REG32(0xE000ED28u)
#define SCB_HFSR TFD_REG32(0xE000ED2Cu)
#define SCB_MMFAR TFD_REG32(0xE000ED34u)
#define SCB_BFAR TFD_REG32(0xE000ED38u)
#define SCB_CPACR TFD_REG32(0xE000ED88u)

#define SCB_ICSR_PENDSTSET (1u << 26)
#define SCB_AIRCR_VECTKEY (0x05FAu << 16)
#define SCB_AIRCR_SYSRESETREQ (1u << 2)
#define SCB_SHCSR_MEMFAULTENA (1u << 16)
#define SCB_SHCSR_BUSFAULTENA (1u << 17)
#define SCB_SHCSR_USGFAULTENA (1u << 18)

/* MPU (ARMv7-M PMSAv7) */
#define MPU_TYPE TFD_REG32(0xE000ED90u)
#define MPU_CTRL TFD_REG32(0xE000ED94u)
#define MPU_RNR TFD_REG32(0xE000ED98u)
#define MPU_RBAR TFD_REG32(0xE000ED9Cu)
#define MPU_RASR TFD_REG32(0xE000EDA0u)
#define MPU_CTRL_ENABLE (1u << 0)
#define MPU_CTRL_PRIVDEFENA (1u << 2)

/* SysTick */
#define SYST_CSR TFD_REG32(0xE000E010u)
#define SYST_RVR TFD_REG32(0xE000E014u)
#define SYST_CVR TFD_REG32(0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2) /* 1 = processor clock */
#define SYST_CSR_COUNTFLAG (1u << 16)
#define SYST_RELOAD_MAX 0x00FFFFFFu

/* NVIC */
#define NVIC_ISER(n) TFD_REG32(0xE000E100u + 4u * (n))
#define NVIC_ICER(n) TFD_REG32(0xE000E180u + 4u * (n))
#define NVIC_ICPR(n) TFD_REG32(0xE000E280u + 4u * (n))
#define NVIC_IPR_BYTE(irq) (*(volatile uint8_t *)(uintptr_t)(0xE000E400u + (irq)))

/* ITM (debug trace; only live when a debugger enabled it) */
#define ITM_STIM0 TFD_REG32(0xE0000000u)
#define ITM_TER TFD_REG32(0xE0000E00u)
#define ITM_TCR TFD_REG32(0xE0000E80u)

static inline void tfd_nvic_enable(unsigned irq)
{
    NVIC_ICPR(irq >> 5) = 1u << (irq & 31u);
    NVIC_ISER(irq >> 5) = 1u << (irq & 31u);
}

static inline void tfd_nvic_disable(unsigned irq)
{
    NVIC_ICER(irq >> 5) = 1u << (irq & 31u);
}

static inline void tfd_dsb(void) { __asm volatile("dsb 0xF" ::: "memory"); }
static inline void tfd_isb(void) { __asm volatile("isb 0xF" ::: "memory"); }
static inline void tfd_wfi(void) { __asm volatile("wfi" ::: "memory"); }

/* Mask interrupts, returning the previous PRIMASK for tfd_irq_restore. */
static inline uint32_t tfd_irq_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void tfd_irq_restore(uint32_t primask)
{
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
}

static inline uint32_t tfd_ipsr(void)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    return ipsr;
}

#endif /* TFD_CORTEX_M_H */
