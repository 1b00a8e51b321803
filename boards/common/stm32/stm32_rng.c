/* tinyfed boards — STM32F4 / STM32F7 RNG (see stm32_rng.h). */
#include "stm32_rng.h"

#include "stm32_regs.h"

void tfd_stm32_rng_start(void)
{
    RCC_AHB2ENR |= RCC_AHB2ENR_RNGEN;
    (void)RCC_AHB2ENR; /* the clock enable takes effect before RNG is written */
    RNG_CR = RNG_CR_RNGEN;
}

tfd_status_t tfd_stm32_rng_read(uint8_t *out, size_t len)
{
    TFD_ENSURE(out != NULL || len == 0, TFD_ERR_ARG);
    uint32_t last = 0;
    int have_last = 0;
    while (len > 0) {
        uint32_t spin = 0;
        for (;;) {
            const uint32_t sr = RNG_SR;
            if (sr & (RNG_SR_SECS | RNG_SR_SEIS)) {
                /* Seed error: clear, restart the RNG, discard what it gave. */
                RNG_SR = ~RNG_SR_SEIS;
                RNG_CR = 0;
                RNG_CR = RNG_CR_RNGEN;
            } else if (sr & RNG_SR_CEIS) {
                RNG_SR = ~RNG_SR_CEIS; /* clock error: the 48 MHz domain is too slow or off */
            } else if (sr & RNG_SR_DRDY) {
                break;
            }
            TFD_ENSURE(++spin < 1000000u, TFD_ERR_INTERNAL);
        }
        const uint32_t word = RNG_DR;
        /* Stuck output: zero, or the same word twice in a row (FIPS 140-2
         * continuous test). */
        TFD_ENSURE(word != 0u && !(have_last && word == last), TFD_ERR_INTERNAL);
        last = word;
        have_last = 1;
        for (int i = 0; i < 4 && len > 0; ++i, --len) *out++ = (uint8_t)(word >> (8 * i));
    }
    return TFD_OK;
}
