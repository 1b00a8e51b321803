/* tinyfed — STM32F405/407 specifics used by the port, from RM0090 (rev 19)
 * and the STM32F405xx datasheet (DS8626).  What the F4 and F7 share (RCC,
 * PWR, flash interface, GPIO, RNG) is in boards/common/stm32/stm32_regs.h.
 * Our own definitions; no ST/CMSIS headers. */
#ifndef TFD_STM32F405_REGS_H
#define TFD_STM32F405_REGS_H

#include "stm32_regs.h"

/* USART1 (RM0090 30.6: the F2/F4 USART, SR/DR layout, not the F7's ISR/RDR/TDR) */
#define USART1_BASE 0x40011000u
#define USART_SR(b) STM32_REG(b, 0x00)
#define USART_DR(b) STM32_REG(b, 0x04)
#define USART_BRR(b) STM32_REG(b, 0x08)
#define USART_CR1(b) STM32_REG(b, 0x0C)
#define USART_CR2(b) STM32_REG(b, 0x10)
#define USART_CR3(b) STM32_REG(b, 0x14)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_TXEIE (1u << 7)
#define USART_CR1_UE (1u << 13)
#define USART1_IRQ 37u /* RM0090 table 61, position 37 */

/* Flash sectors (RM0090 table 5, 1 MiB parts): 0-3 16 KiB, 4 64 KiB, 5-11 128 KiB. */
#define F405_SECTOR_BYTES_SMALL (16u * 1024u)
#define F405_STORAGE_FIRST_SECTOR 1u /* storage = sectors 1 and 2 */

/* The clocks (DS8626 table 14/17): 168 MHz max, APB1 <= 42 MHz, APB2 <= 84 MHz. */
#define TFD_STM32F405_CLOCK_CFG(hse)                                                             \
    {.hse_hz = (hse), .sysclk_hz = 168000000u, .apb1_div = 4, .apb2_div = 2, .overdrive = 0, \
     .f4_vos = 1, .f4_art = 1}

#endif /* TFD_STM32F405_REGS_H */
