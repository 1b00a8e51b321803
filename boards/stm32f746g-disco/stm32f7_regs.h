/* tinyfed — STM32F74x/75x registers used by the port, from RM0385 (rev 8).
 * Our own definitions; no ST/CMSIS headers. */
#ifndef TFD_STM32F7_REGS_H
#define TFD_STM32F7_REGS_H

#include <stdint.h>

#define STM32_REG(base, off) (*(volatile uint32_t *)(uintptr_t)((base) + (off)))

/* RCC (RM0385 5.3) */
#define RCC_BASE 0x40023800u
#define RCC_CR STM32_REG(RCC_BASE, 0x00)
#define RCC_PLLCFGR STM32_REG(RCC_BASE, 0x04)
#define RCC_CFGR STM32_REG(RCC_BASE, 0x08)
#define RCC_AHB1ENR STM32_REG(RCC_BASE, 0x30)
#define RCC_AHB2ENR STM32_REG(RCC_BASE, 0x34)
#define RCC_APB1ENR STM32_REG(RCC_BASE, 0x40)
#define RCC_APB2ENR STM32_REG(RCC_BASE, 0x44)
#define RCC_DCKCFGR2 STM32_REG(RCC_BASE, 0x90)
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_AHB1ENR_GPIOBEN (1u << 1)
#define RCC_AHB2ENR_RNGEN (1u << 6)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_APB2ENR_USART1EN (1u << 4)

/* PWR (RM0385 4.4) */
#define PWR_BASE 0x40007000u
#define PWR_CR1 STM32_REG(PWR_BASE, 0x00)
#define PWR_CSR1 STM32_REG(PWR_BASE, 0x04)
#define PWR_CR1_ODEN (1u << 16)
#define PWR_CR1_ODSWEN (1u << 17)
#define PWR_CR1_VOS_SCALE1 (3u << 14)
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)

/* GPIO (RM0385 6.4) */
#define GPIOA_BASE 0x40020000u
#define GPIOB_BASE 0x40020400u
#define GPIO_MODER(b) STM32_REG(b, 0x00)
#define GPIO_OSPEEDR(b) STM32_REG(b, 0x08)
#define GPIO_PUPDR(b) STM32_REG(b, 0x0C)
#define GPIO_AFRL(b) STM32_REG(b, 0x20)
#define GPIO_AFRH(b) STM32_REG(b, 0x24)

/* USART1 (RM0385 34.8) */
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
#define USART_ICR_ALL 0x00121B5Fu /* PE FE NE ORE IDLE TC LBD CTS RTO EOB CM WU */
#define USART1_IRQ 37u

/* RNG (RM0385 22.8) */
#define RNG_BASE 0x50060800u
#define RNG_CR STM32_REG(RNG_BASE, 0x00)
#define RNG_SR STM32_REG(RNG_BASE, 0x04)
#define RNG_DR STM32_REG(RNG_BASE, 0x08)
#define RNG_CR_RNGEN (1u << 2)
#define RNG_SR_DRDY (1u << 0)
#define RNG_SR_CECS (1u << 1)
#define RNG_SR_SECS (1u << 2)
#define RNG_SR_CEIS (1u << 5)
#define RNG_SR_SEIS (1u << 6)

/* Flash interface (RM0385 3.7) */
#define FLASH_R_BASE 0x40023C00u
#define FLASH_ACR STM32_REG(FLASH_R_BASE, 0x00)
#define FLASH_KEYR STM32_REG(FLASH_R_BASE, 0x04)
#define FLASH_SR STM32_REG(FLASH_R_BASE, 0x0C)
#define FLASH_CR STM32_REG(FLASH_R_BASE, 0x10)
#define FLASH_KEY1 0x45670123u
#define FLASH_KEY2 0xCDEF89ABu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ARTEN (1u << 9)
#define FLASH_SR_EOP (1u << 0)
#define FLASH_SR_OPERR (1u << 1)
#define FLASH_SR_WRPERR (1u << 4)
#define FLASH_SR_PGAERR (1u << 5)
#define FLASH_SR_PGPERR (1u << 6)
#define FLASH_SR_ERSERR (1u << 7)
#define FLASH_SR_BSY (1u << 16)
#define FLASH_SR_ERRORS (FLASH_SR_OPERR | FLASH_SR_WRPERR | FLASH_SR_PGAERR | FLASH_SR_PGPERR | FLASH_SR_ERSERR)
#define FLASH_CR_PG (1u << 0)
#define FLASH_CR_SER (1u << 1)
#define FLASH_CR_SNB_SHIFT 3
#define FLASH_CR_PSIZE_X8 (0u << 8)
#define FLASH_CR_PSIZE_X32 (2u << 8)
#define FLASH_CR_STRT (1u << 16)
#define FLASH_CR_LOCK (1u << 31)
#define FLASH_STORAGE_SECTOR 1u /* first storage sector (sectors 1 and 2) */

#endif /* TFD_STM32F7_REGS_H */
