/* tinyfed boards — STM32F4 / STM32F7 flash interface: sector erase and
 * programming (RM0090 3.6, RM0385 3.3.x; the register layouts are the same).
 *
 * Both stall the core when it fetches from the flash being written (the whole
 * single-bank flash on the F405 and F746): the caller announces the time with
 * tfd_port_storage_busy_ms before it starts.  After an erase or program the
 * caller must drop what caches hold of the range (F4: the ART data cache,
 * tfd_stm32_f4_art_flush; F7: the L1 D-cache, tfd_dcache_invalidate) before
 * reading it back through the memory map.
 *
 * Parallelism: erase x32, program x32 for whole aligned words and x8 for the
 * rest (both need VDD 2.7-3.6 V, which the supported boards have). */
#ifndef TFD_STM32_FLASH_H
#define TFD_STM32_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

/* 1: the flash interface is there (FLASH_CR.LOCK is set from reset until the
 * unlock sequence); 0: it reads as zero, i.e. an emulator without a model of it
 * (QEMU's netduinoplus2, Renode's STM32F7 platform).  Call before any unlock. */
int tfd_stm32_flash_present(void);

/* Erase sector `sector` (its number in the chip's sector map). */
TFD_CHECK_RESULT tfd_status_t tfd_stm32_flash_erase_sector(uint32_t sector);

/* Program src[len] at dst (in flash, erased where bits go 0 -> 1), then read
 * it back byte by byte; TFD_ERR_STORAGE on an error flag or a mismatch.  Call
 * the cache maintenance above between programming and reading back: `before_verify`
 * (may be NULL) is called with the range first. */
TFD_CHECK_RESULT tfd_status_t tfd_stm32_flash_program(volatile uint8_t *dst, const uint8_t *src, size_t len,
                                                      void (*before_verify)(const volatile void *, size_t));

/* STM32F4: reset the ART accelerator's instruction and data caches (they can
 * hold flash contents from before an erase or program; RM0090 3.5.2). */
void tfd_stm32_f4_art_flush(void);

#endif /* TFD_STM32_FLASH_H */
