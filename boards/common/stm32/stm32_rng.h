/* tinyfed boards — the STM32F4 / STM32F7 RNG peripheral (a true RNG; RM0090
 * 24, RM0385 22): needs the 48 MHz clock (PLLQ; tfd_stm32_clocks_t.ck48_ok). */
#ifndef TFD_STM32_RNG_H
#define TFD_STM32_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

/* Clock the RNG (AHB2) and start it. */
void tfd_stm32_rng_start(void);

/* Fill out[len]; recovers from seed errors (discarding the output, RM0385
 * 22.3.7), TFD_ERR_INTERNAL on a clock error that persists, a stuck output or
 * no data within a bounded wait. */
TFD_CHECK_RESULT tfd_status_t tfd_stm32_rng_read(uint8_t *out, size_t len);

#endif /* TFD_STM32_RNG_H */
