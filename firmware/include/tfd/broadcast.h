/* tinyfed — 4-D broadcasting for the binary elementwise kernels (ADD, MUL).
 *
 * Shapes are the right-aligned 4-D dims of tfd_tensor_t.  Each input dim must
 * equal the output dim or be 1 (then its stride is 0), which is NumPy/TFLite
 * broadcasting; the per-element arithmetic does not depend on the iteration
 * order, so any loop that pairs the right elements is bit-exact with TFLM's
 * BroadcastBinaryOpSimple.
 */
#ifndef TFD_BROADCAST_H
#define TFD_BROADCAST_H

#include <stdint.h>

#include "tfd/model.h"
#include "tfd/status.h"

typedef struct {
    int32_t dims[4];     /* output dims */
    int32_t stride1[4];  /* element strides of input 1 (0 on broadcast axes) */
    int32_t stride2[4];  /* element strides of input 2 */
    uint8_t same_shape;  /* no broadcasting: one flat loop over dims product */
} tfd_bcast4_t;

static inline tfd_status_t tfd_bcast4_strides_(const tfd_tensor_t *in, const tfd_tensor_t *out,
                                               int32_t stride[4])
{
    int32_t s = 1;
    for (int d = 3; d >= 0; --d) {
        TFD_ENSURE(in->dims[d] == out->dims[d] || in->dims[d] == 1, TFD_ERR_SHAPE);
        stride[d] = in->dims[d] == 1 ? 0 : s;
        s *= in->dims[d];
    }
    return TFD_OK;
}

TFD_CHECK_RESULT static inline tfd_status_t tfd_bcast4_init(tfd_bcast4_t *b, const tfd_tensor_t *in1,
                                                            const tfd_tensor_t *in2,
                                                            const tfd_tensor_t *out)
{
    int same = 1;
    for (int d = 0; d < 4; ++d) {
        b->dims[d] = out->dims[d];
        same &= in1->dims[d] == out->dims[d] && in2->dims[d] == out->dims[d];
    }
    b->same_shape = (uint8_t)same;
    TFD_TRY(tfd_bcast4_strides_(in1, out, b->stride1));
    TFD_TRY(tfd_bcast4_strides_(in2, out, b->stride2));
    return TFD_OK;
}

#endif /* TFD_BROADCAST_H */
