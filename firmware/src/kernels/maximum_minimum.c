/* MAXIMUM and MINIMUM, int8 with 4-D broadcasting (TFLite Micro reference
 * semantics: the larger / smaller raw code; no requantization — TFLM does not
 * look at the quantization, the converter gives all three tensors the same). */
#include <stddef.h>

#include "elementwise.h"
#include "tfd/kernels.h"

static void max_row(const void *pv, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2,
                    int8_t *y, int32_t n)
{
    (void)pv;
    for (int32_t i = 0; i < n; ++i) {
        const int8_t a = x1[i * s1], b = x2[i * s2];
        y[i] = a > b ? a : b;
    }
}

static void min_row(const void *pv, const int8_t *x1, int32_t s1, const int8_t *x2, int32_t s2,
                    int8_t *y, int32_t n)
{
    (void)pv;
    for (int32_t i = 0; i < n; ++i) {
        const int8_t a = x1[i * s1], b = x2[i * s2];
        y[i] = a < b ? a : b;
    }
}

tfd_status_t tfd_eval_maximum(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    return tfd_eval_binary_i8(m, l, arena, max_row);
}

tfd_status_t tfd_eval_minimum(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    return tfd_eval_binary_i8(m, l, arena, min_row);
}
