/* tinyfed training engine — internal interfaces between the engine files.
 *
 * trainer.c   the public API (tfd/train.h): init, fit, eval, predict, gradient,
 *             SGD with momentum / weight decay / QAS, LR schedule
 * tail.c      float forward / backward of the tail, driven by the plan
 * fk_dense.c  FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D (float, fwd + bwd)
 * fk_pool.c   MAX_POOL_2D, AVERAGE_POOL_2D, MEAN (float, fwd + bwd)
 * fk_lora.c   LoRA adapters (h = x.A, y += s.h.B) and their backward
 * loss.c      softmax cross-entropy
 * shuffle.c   keyed permutation of the sample order
 *
 * All kernels are portable C on float32, no allocation; sums run in a fixed
 * order (no reassociation), so results are deterministic for a given build.
 */
#ifndef TFD_TRAIN_INTERNAL_H
#define TFD_TRAIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/model.h"
#include "tfd/status.h"
#include "tfd/train.h"

/* A 4-D NHWC shape (model tensors are right-aligned to 4 dims). */
typedef struct {
    int32_t n, h, w, c;
} tfd_shape4_t;

static inline tfd_shape4_t tfd_shape_of(const tfd_tensor_t *t)
{
    tfd_shape4_t s = {t->dims[0], t->dims[1], t->dims[2], t->dims[3]};
    return s;
}

static inline uint32_t tfd_shape_elems(tfd_shape4_t s)
{
    return (uint32_t)(s.n * s.h * s.w * s.c);
}

/* Where a filter's rows come from: the trained rows in the parameter vector,
 * or the frozen int8 filter in flash (dequantized on the fly). */
typedef struct {
    const int8_t *q;        /* frozen filter */
    const float *scale;     /* per channel: dequantization scale (also the QUANTIZED-domain unit) */
    const float *p;         /* trained rows (params + segment offset), or NULL */
    const int16_t *rows;    /* channel -> trained row, -1 = frozen; NULL = row == channel */
    uint32_t row_len;       /* taps per channel */
    uint32_t q_ch_stride;   /* distance between channels in q */
    uint32_t q_el_stride;   /* distance between taps of one channel in q */
    uint8_t quantized;      /* p is in units of scale */
} tfd_wsrc_t;

/* The bias of each output channel. */
typedef struct {
    const int32_t *q;       /* frozen int32 bias, or NULL (no bias tensor: 0) */
    const float *scale;     /* per channel */
    const float *p;         /* trained bias (params + segment offset), or NULL */
    uint8_t quantized;
} tfd_bsrc_t;

/* Trained row of channel ch, or -1. */
static inline int32_t tfd_wsrc_row(const tfd_wsrc_t *w, uint32_t ch)
{
    if (w->p == NULL) return -1;
    return w->rows ? (int32_t)w->rows[ch] : (int32_t)ch;
}

/* Write channel ch's filter taps (real units) into row[row_len]. */
void tfd_wsrc_load(const tfd_wsrc_t *w, uint32_t ch, float *row);

/* Real-unit bias of channel ch. */
float tfd_bsrc_get(const tfd_bsrc_t *b, uint32_t ch);

/* Geometry of CONV_2D / DEPTHWISE_CONV_2D / pools. */
typedef struct {
    tfd_shape4_t in, out;
    int32_t kh, kw;
    int32_t sh, sw, dh, dw;
    int32_t ph, pw;
    int32_t depth_mult; /* depthwise only */
} tfd_geom_t;

/* ---- dense kernels (fk_dense.c) ------------------------------------------- */

/* y[rows][units] = x[rows][depth] . W^T + b  (no activation). */
void tfd_fc_forward(const float *x, uint32_t rows, uint32_t depth, uint32_t units,
                    const tfd_wsrc_t *w, const tfd_bsrc_t *b, float *row, float *y);

/* Backward of FULLY_CONNECTED given dz = dL/d(pre-activation) [rows][units].
 * gw: trained-row gradients (accumulated), gb: bias gradients (accumulated),
 * dx (overwritten) -- each may be NULL.  x needed only with gw. */
void tfd_fc_backward(const float *x, const float *dz, uint32_t rows, uint32_t depth,
                     uint32_t units, const tfd_wsrc_t *w, float *gw, float *gb, float *dx,
                     float *row);

/* CONV_2D (depthwise = 0; a filter row is [kh][kw][in_c]) or
 * DEPTHWISE_CONV_2D (depthwise = 1; a row is [kh][kw]), forward and backward
 * (gw, gb, dx as for FULLY_CONNECTED). */
void tfd_conv_forward(const float *x, const tfd_geom_t *g, int depthwise, const tfd_wsrc_t *w,
                      const tfd_bsrc_t *b, float *row, float *y);
void tfd_conv_backward(const float *x, const float *dz, const tfd_geom_t *g, int depthwise,
                       const tfd_wsrc_t *w, float *gw, float *gb, float *dx, float *row);

/* ---- pooling (fk_pool.c) -------------------------------------------------- */

/* Max pool; argmax (may be NULL) receives the winning tap (ky * fw + kx) of
 * each output, as uint8 (wide = 0) or uint16 (wide = 1). */
void tfd_maxpool_forward(const float *x, const tfd_geom_t *g, float *y, void *argmax, int wide);
/* dx (overwritten) from dy, routed through the saved argmax. */
void tfd_maxpool_backward(const float *dy, const tfd_geom_t *g, const void *argmax, int wide, float *dx);

void tfd_avgpool_forward(const float *x, const tfd_geom_t *g, float *y);
void tfd_avgpool_backward(const float *dy, const tfd_geom_t *g, float *dx);

void tfd_mean_forward(const float *x, tfd_shape4_t in, uint8_t axis_mask, float *y);
void tfd_mean_backward(const float *dy, tfd_shape4_t in, uint8_t axis_mask, float *dx);

/* ---- LoRA (fk_lora.c) ----------------------------------------------------- */

/* h[rows][rank] = x[rows][depth] . A[depth][rank] */
void tfd_lora_h(const float *x, uint32_t rows, uint32_t depth, const float *a, uint32_t rank,
                float *h);
/* y[rows][units] += scale * h . B[rank][units] */
void tfd_lora_apply(const float *h, uint32_t rows, uint32_t rank, const float *bm,
                    uint32_t units, float scale, float *y);
/* Given dz [rows][units], x and h: accumulate gA [depth][rank] and gB [rank][units];
 * dh (scratch [rows][rank]) = scale * dz . B^T; dx (may be NULL) += dh . A^T. */
void tfd_lora_backward(const float *x, const float *h, const float *dz, uint32_t rows,
                       uint32_t depth, uint32_t rank, uint32_t units, const float *a,
                       const float *bm, float scale, float *ga, float *gb, float *dh,
                       float *dx);

/* ---- loss (loss.c) -------------------------------------------------------- */

/* Softmax cross-entropy of logits z[n] against `label`: returns the loss (nats),
 * writes dL/dz (may be NULL) and the argmax (first maximum). */
float tfd_softmax_xent(const float *z, uint32_t n, uint32_t label, float *dz, uint32_t *argmax);

/* ---- the tail (tail.c) ---------------------------------------------------- */

/* Check the plan against the model (ops, chain, offsets, segments). */
TFD_CHECK_RESULT tfd_status_t tfd_tail_check(const tfd_model_t *model, const tfd_train_plan_t *plan);

/* Int8 prefix + dequantize the boundary + float forward of the tail.
 * training != 0 also saves what backward needs (masks, argmax, LoRA h). */
TFD_CHECK_RESULT tfd_status_t tfd_tail_forward(tfd_trainer_t *t, const int8_t *x, int training);

/* Logits of the last forward. */
float *tfd_tail_logits(tfd_trainer_t *t);

/* Backward of the last (training) forward: dL/dlogits must be at the last
 * layer's gout_off; accumulates real-unit gradients into t->grads. */
void tfd_tail_backward(tfd_trainer_t *t);

#endif /* TFD_TRAIN_INTERNAL_H */
