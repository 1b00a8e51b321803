/* tinyfed boards — STM32F4 / STM32F7 flash erase and program (see stm32_flash.h). */
#include "stm32_flash.h"

#include "cortex_m.h"
#include "stm32_regs.h"

/* Polls of BSY: a 128 KiB F4 sector erases in <= 4 s (x32), an F7 256 KiB
 * sector in <= 4 s; a poll is >= 4 core clocks at >= 16 MHz, so 2^26 polls
 * outlast both. */
#define BSY_SPINS (1u << 26)

int tfd_stm32_flash_present(void)
{
    return (FLASH_CR & FLASH_CR_LOCK) != 0u;
}

static tfd_status_t wait_idle(void)
{
    for (uint32_t spin = 0; FLASH_SR & FLASH_SR_BSY; ++spin) {
        TFD_ENSURE(spin < BSY_SPINS, TFD_ERR_STORAGE);
    }
    const uint32_t errors = FLASH_SR & FLASH_SR_ERRORS;
    FLASH_SR = errors | FLASH_SR_EOP; /* write 1 to clear */
    TFD_ENSURE(errors == 0u, TFD_ERR_STORAGE);
    return TFD_OK;
}

static void unlock(void)
{
    if (FLASH_CR & FLASH_CR_LOCK) {
        FLASH_KEYR = FLASH_KEY1;
        FLASH_KEYR = FLASH_KEY2;
    }
}

static void lock(void)
{
    FLASH_CR = FLASH_CR_LOCK;
}

tfd_status_t tfd_stm32_flash_erase_sector(uint32_t sector)
{
    unlock();
    tfd_status_t status = wait_idle();
    if (status == TFD_OK) {
        FLASH_CR = FLASH_CR_SER | (sector << FLASH_CR_SNB_SHIFT) | FLASH_CR_PSIZE_X32;
        FLASH_CR |= FLASH_CR_STRT;
        tfd_dsb();
        status = wait_idle();
    }
    lock();
    return status;
}

tfd_status_t tfd_stm32_flash_program(volatile uint8_t *dst, const uint8_t *src, size_t len,
                                     void (*before_verify)(const volatile void *, size_t))
{
    unlock();
    tfd_status_t status = wait_idle();
    size_t i = 0;
    while (i < len && status == TFD_OK) {
        const uintptr_t at = (uintptr_t)(dst + i);
        if ((at & 3u) == 0u && len - i >= 4u) {
            const uint32_t word = (uint32_t)src[i] | (uint32_t)src[i + 1] << 8 | (uint32_t)src[i + 2] << 16 |
                                  (uint32_t)src[i + 3] << 24;
            FLASH_CR = FLASH_CR_PG | FLASH_CR_PSIZE_X32;
            *(volatile uint32_t *)at = word;
            i += 4u;
        } else {
            FLASH_CR = FLASH_CR_PG | FLASH_CR_PSIZE_X8;
            dst[i] = src[i];
            i += 1u;
        }
        tfd_dsb();
        status = wait_idle();
    }
    lock();
    if (before_verify) before_verify(dst, len);
    for (size_t k = 0; k < len && status == TFD_OK; ++k) {
        if (dst[k] != src[k]) status = TFD_ERR_STORAGE;
    }
    return status;
}

void tfd_stm32_f4_art_flush(void)
{
    const uint32_t acr = FLASH_ACR;
    const uint32_t caches = acr & (FLASH_ACR_F4_ICEN | FLASH_ACR_F4_DCEN);
    FLASH_ACR = acr & ~caches;                                          /* caches off */
    FLASH_ACR = (acr & ~caches) | FLASH_ACR_F4_ICRST | FLASH_ACR_F4_DCRST; /* reset them */
    FLASH_ACR = acr & ~caches;
    FLASH_ACR = acr;                                                    /* back on */
    tfd_dsb();
    tfd_isb();
}
