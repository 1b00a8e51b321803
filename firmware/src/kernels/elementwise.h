/* tinyfed — private drivers shared by the int8 elementwise kernels, so that
 * each kernel only states its per-element arithmetic.
 *
 *  - Binary ops (ADD, SUB, MUL, MAXIMUM, MINIMUM): 4-D NumPy/TFLite
 *    broadcasting (tfd/broadcast.h); the op supplies a row function that
 *    combines n elements read with element steps step1 / step2 (0 on a
 *    broadcast innermost axis).  The per-element arithmetic does not depend on
 *    the visiting order, so this is bit-exact with TFLM's
 *    BroadcastBinaryOpSimple / flat loops.
 *  - Unary maps (RELU, RELU6, LOGISTIC, TANH, LEAKY_RELU, HARD_SWISH): the output code
 *    depends only on the input code; the op supplies that function, and for
 *    tensors of more than 256 elements the driver tabulates the 256 codes
 *    once (bit-exact by construction) instead of evaluating every element.
 */
#ifndef TFD_KERNELS_ELEMENTWISE_H
#define TFD_KERNELS_ELEMENTWISE_H

#include <stdint.h>

#include "tfd/model.h"
#include "tfd/qmath.h"
#include "tfd/status.h"

typedef void (*tfd_i8_row_fn)(const void *params, const int8_t *x1, int32_t step1,
                              const int8_t *x2, int32_t step2, int8_t *y, int32_t n);

/* Two int8 inputs, one int8 output; the layer's params (may be NULL) go to `row`. */
TFD_CHECK_RESULT tfd_status_t tfd_eval_binary_i8(const tfd_model_t *m, const tfd_layer_t *l,
                                                 uint8_t *arena, tfd_i8_row_fn row);

/* The tensors of a layer with one int8 input (further inputs, e.g. constant
 * shape operands, are not read), an int8 output and a params struct. */
TFD_CHECK_RESULT tfd_status_t tfd_unary_i8_tensors(const tfd_model_t *m, const tfd_layer_t *l,
                                                   const tfd_tensor_t **xt, const tfd_tensor_t **yt);

typedef int8_t (*tfd_i8_map_fn)(const void *params, int32_t code);

/* One int8 input, an int8 output of as many elements; the layer's params
 * (checked non-NULL) go to `fn`. */
TFD_CHECK_RESULT tfd_status_t tfd_eval_map_i8(const tfd_model_t *m, const tfd_layer_t *l,
                                              uint8_t *arena, tfd_i8_map_fn fn);

/* LOGISTIC / TANH parameters the kernels can evaluate: inside the range
 * radius the Q4.27 rescale cannot overflow; a shift > 30 implies radius 0. */
TFD_CHECK_RESULT static inline tfd_status_t tfd_sigmoid_params_check(const tfd_sigmoid_params_t *p)
{
    TFD_ENSURE(p->input_range_radius >= 0 && p->input_left_shift >= -31 &&
                   (p->input_left_shift <= 30 || p->input_range_radius == 0),
               TFD_ERR_BAD_MODEL);
    return TFD_OK;
}

/* LOGISTIC / TANH input stage: -1 / +1 for a code at or beyond the range radius
 * below / above the zero point (the output saturates); otherwise 0, with *q4 the
 * offset input rescaled to Q4.27. */
static inline int tfd_sigmoid_input(const tfd_sigmoid_params_t *p, int32_t code, int32_t *q4)
{
    const int32_t v = code - p->input_zero_point;
    if (v <= -p->input_range_radius) return -1;
    if (v >= p->input_range_radius) return 1;
    *q4 = tfd_mbqm(v, p->input_multiplier, p->input_left_shift);
    return 0;
}

#endif /* TFD_KERNELS_ELEMENTWISE_H */
