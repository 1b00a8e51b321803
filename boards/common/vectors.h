/* tinyfed boards — the handlers the vector table (startup.c) points at:
 * Reset_Handler and tfd_irq_dispatch (startup.c), the fault handlers and
 * Unexpected_Handler (faults.c), SysTick_Handler (systick.c).  One list, so
 * the table and the definitions cannot disagree on a name or a type. */
#ifndef TFD_VECTORS_H
#define TFD_VECTORS_H

void Reset_Handler(void) __attribute__((noreturn));
void NMI_Handler(void);
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);
void SecureFault_Handler(void); /* ARMv8-M only; never taken on v7-M */
void Unexpected_Handler(void);  /* SVCall, DebugMonitor, PendSV */
void SysTick_Handler(void);
void tfd_irq_dispatch(void);    /* every external interrupt -> tfd_board_irq */

#endif /* TFD_VECTORS_H */
