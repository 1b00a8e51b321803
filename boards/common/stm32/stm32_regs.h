/* tinyfed boards — STM32F4 / STM32F7 registers that are the same on both
 * families (RM0090 for the STM32F405/407, RM0385 for the STM32F746): RCC,
 * PWR, flash interface, GPIO and RNG sit at the same addresses with the same
 * layout; where a field exists on one family only, the name says so (F7_*).
 * The USARTs differ (F4: SR/DR, F7: ISR/RDR/TDR) and stay in each board's
 * folder.  Our own definitions; no ST/CMSIS headers. */
#ifndef TFD_STM32_REGS_H
#define TFD_STM32_REGS_H

#include <stdint.h>

#define STM32_REG(base, off) (*(volatile uint32_t *)(uintptr_t)((base) + (off)))

/* ---- RCC (RM0090 7.3, RM0385 5.3) ---------------------------------------------------- */
#define RCC_BASE 0x40023800u
#define RCC_CR_OFF 0x00u
#define RCC_PLLCFGR_OFF 0x04u
#define RCC_CFGR_OFF 0x08u
#define RCC_CR STM32_REG(RCC_BASE, RCC_CR_OFF)
#define RCC_PLLCFGR STM32_REG(RCC_BASE, RCC_PLLCFGR_OFF)
#define RCC_CFGR STM32_REG(RCC_BASE, RCC_CFGR_OFF)
#define RCC_AHB1ENR STM32_REG(RCC_BASE, 0x30)
#define RCC_AHB2ENR STM32_REG(RCC_BASE, 0x34)
#define RCC_APB1ENR STM32_REG(RCC_BASE, 0x40)
#define RCC_APB2ENR STM32_REG(RCC_BASE, 0x44)
#define RCC_F7_DCKCFGR2 STM32_REG(RCC_BASE, 0x90)
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
/* PLLCFGR: M [5:0], N [14:6], P [17:16] (0 = /2), SRC bit 22, Q [27:24].
 * Bits 31:28 (the F7's PLLR field is on F76x/F77x only), 23 and 21:18 are
 * reserved: written back as read (bit 29 is set at reset). */
#define RCC_PLLCFGR_FIELDS 0x0F437FFFu
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
/* CFGR: SW [1:0], SWS [3:2], HPRE [7:4], PPRE1 [12:10], PPRE2 [15:13]. */
#define RCC_CFGR_SW_MASK 3u
#define RCC_CFGR_SW_HSI 0u
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_SWS_SHIFT 2
#define RCC_CFGR_PRESCALERS (0xFFu << 4 | 0x3Fu << 10)
#define RCC_CFGR_PPRE1_DIV4 (5u << 10)
#define RCC_CFGR_PPRE2_DIV2 (4u << 13)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_AHB1ENR_GPIOBEN (1u << 1)
#define RCC_AHB2ENR_RNGEN (1u << 6)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_APB2ENR_USART1EN (1u << 4)

/* ---- PWR (RM0090 5.4: PWR_CR / PWR_CSR; RM0385 4.4: PWR_CR1 / PWR_CSR1) --------------- */
#define PWR_BASE 0x40007000u
#define PWR_CR_OFF 0x00u
#define PWR_CSR_OFF 0x04u
#define PWR_CR STM32_REG(PWR_BASE, PWR_CR_OFF)
#define PWR_CSR STM32_REG(PWR_BASE, PWR_CSR_OFF)
#define PWR_F4_CR_VOS_SCALE1 (1u << 14)     /* F405/407: 1 bit, 1 = scale 1 */
#define PWR_F7_CR1_VOS_SCALE1 (3u << 14)    /* F7: 2 bits, 11 = scale 1 */
#define PWR_F7_CR1_ODEN (1u << 16)
#define PWR_F7_CR1_ODSWEN (1u << 17)
#define PWR_F7_CSR1_ODRDY (1u << 16)
#define PWR_F7_CSR1_ODSWRDY (1u << 17)

/* ---- flash interface (RM0090 3.9, RM0385 3.7) --------------------------------------- */
#define FLASH_R_BASE 0x40023C00u
#define FLASH_ACR_OFF 0x00u
#define FLASH_ACR STM32_REG(FLASH_R_BASE, FLASH_ACR_OFF)
#define FLASH_KEYR STM32_REG(FLASH_R_BASE, 0x04)
#define FLASH_SR STM32_REG(FLASH_R_BASE, 0x0C)
#define FLASH_CR STM32_REG(FLASH_R_BASE, 0x10)
#define FLASH_KEY1 0x45670123u
#define FLASH_KEY2 0xCDEF89ABu
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_F4_ICEN (1u << 9)   /* F4 ART: instruction cache */
#define FLASH_ACR_F4_DCEN (1u << 10)  /* F4 ART: data cache (flash literals/constants) */
#define FLASH_ACR_F4_ICRST (1u << 11)
#define FLASH_ACR_F4_DCRST (1u << 12)
#define FLASH_ACR_F7_ARTEN (1u << 9)  /* F7 ART on the ITCM path (instructions) */
#define FLASH_ACR_F7_ARTRST (1u << 11)
#define FLASH_SR_EOP (1u << 0)
#define FLASH_SR_OPERR (1u << 1)
#define FLASH_SR_WRPERR (1u << 4)
#define FLASH_SR_PGAERR (1u << 5)
#define FLASH_SR_PGPERR (1u << 6)
#define FLASH_SR_PGSERR (1u << 7) /* F7: ERSERR, same bit */
#define FLASH_SR_BSY (1u << 16)
#define FLASH_SR_ERRORS (FLASH_SR_OPERR | FLASH_SR_WRPERR | FLASH_SR_PGAERR | FLASH_SR_PGPERR | FLASH_SR_PGSERR)
#define FLASH_CR_PG (1u << 0)
#define FLASH_CR_SER (1u << 1)
#define FLASH_CR_SNB_SHIFT 3
#define FLASH_CR_PSIZE_X8 (0u << 8)
#define FLASH_CR_PSIZE_X32 (2u << 8)
#define FLASH_CR_STRT (1u << 16)
#define FLASH_CR_LOCK (1u << 31) /* set at reset on silicon */

/* ---- GPIO (RM0090 8.4, RM0385 6.4) ---------------------------------------------------- */
#define GPIOA_BASE 0x40020000u
#define GPIOB_BASE 0x40020400u
#define GPIO_MODER(b) STM32_REG(b, 0x00)
#define GPIO_OSPEEDR(b) STM32_REG(b, 0x08)
#define GPIO_PUPDR(b) STM32_REG(b, 0x0C)
#define GPIO_AFRL(b) STM32_REG(b, 0x20)
#define GPIO_AFRH(b) STM32_REG(b, 0x24)

/* ---- RNG (RM0090 24.4, RM0385 22.8) --------------------------------------------------- */
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

#endif /* TFD_STM32_REGS_H */
