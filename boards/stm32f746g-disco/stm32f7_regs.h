/* tinyfed — STM32F74x/75x specifics used by the port, from RM0385 (rev 8)
 * and the STM32F746xx datasheet (DS10916).  What the F4 and F7 share (RCC,
 * PWR, flash interface, GPIO, RNG) is in boards/common/stm32/stm32_regs.h.
 * Our own definitions; no ST/CMSIS headers. */
#ifndef TFD_STM32F7_REGS_H
#define TFD_STM32F7_REGS_H

#include "stm32_regs.h"

/* RCC_DCKCFGR2 (RM0385 5.3.27): CK48MSEL bit 27 (0: PLLQ), USART1SEL [1:0] (00: APB2). */
#define RCC_F7_DCKCFGR2_CK48MSEL (1u << 27)
#define RCC_F7_DCKCFGR2_USART1SEL (3u << 0)

/* USART1 (RM0385 34.8: the F7 USART, ISR/ICR/RDR/TDR layout) */
#define USART1_BASE 0x40011000u
#define USART_CR1(b) STM32_REG(b, 0x00)
#define USART_CR2(b) STM32_REG(b, 0x04)
#define USART_CR3(b) STM32_REG(b, 0x08)
#define USART_BRR(b) STM32_REG(b, 0x0C)
#define USART_ISR(b) STM32_REG(b, 0x1C)
#define USART_ICR(b) STM32_REG(b, 0x20)
#define USART_RDR(b) STM32_REG(b, 0x24)
#define USART_TDR(b) STM32_REG(b, 0x28)
#define USART_CR1_UE (1u << 0)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_TXEIE (1u << 7)
#define USART_ISR_ORE (1u << 3)
#define USART_ISR_RXNE (1u << 5)
#define USART_ISR_TXE (1u << 7)
/* ICR clear flags the F74x has: PE FE NF ORE IDLE (0-4), TC 6, LBD 8, CTS 9,
 * RTO 11, EOB 12, CM 17 (WUCF, bit 20, exists on F76x/F77x only). */
#define USART_ICR_ALL 0x00021B5Fu
#define USART1_IRQ 37u

/* Flash sectors (RM0385 table 3): 0-3 32 KiB, 4 128 KiB, 5-7 256 KiB. */
#define F7_SECTOR_BYTES_SMALL (32u * 1024u)
#define F7_STORAGE_FIRST_SECTOR 1u /* storage = sectors 1 and 2 */

/* The clocks (DS10916 table 16/17): 216 MHz with over-drive, APB1 <= 54 MHz,
 * APB2 <= 108 MHz; hse = 0 keeps the core on HSI 16 MHz. */
#define TFD_STM32F746_CLOCK_CFG(hse)                                                             \
    {.hse_hz = (hse), .sysclk_hz = 216000000u, .apb1_div = 4, .apb2_div = 2, .overdrive = 1, \
     .f4_vos = 0, .f4_art = 0}

#endif /* TFD_STM32F7_REGS_H */
