/* tinyfed training engine — the float tail: int8 prefix, dequantization of
 * the boundary, forward and backward of layers [first_layer, first_layer +
 * n_tail), all buffers at the offsets the toolchain planned.
 *
 * Order of the backward (the plan's lifetimes assume exactly this):
 *   loss            writes dL/dlogits at tail[T-1].gout_off, then applies
 *                   tail[T-1]'s activation derivative to it;
 *   layer i = T-1..0  reads dz at gout_off (already through layer i's
 *                   activation), accumulates parameter gradients, writes
 *                   dL/dinput at gin_off (TFD_TL_NEED_DX), then applies layer
 *                   i-1's activation derivative to it.
 * An activation derivative comes from the layer's output when the plan keeps
 * that output alive until then (TFD_TL_MASK_OUTPUT), else from the bit mask
 * saved in forward (TFD_TL_MASK_BITS). */
#include <string.h>

#include "tfd/kernels.h"
#include "tfd/runtime.h"
#include "train_internal.h"

static inline float *fptr(const tfd_trainer_t *t, uint32_t off)
{
    return (float *)(void *)(t->region + off);
}

static const tfd_layer_t *model_layer(const tfd_trainer_t *t, const tfd_train_layer_t *tl)
{
    return &t->model->layers[tl->layer];
}

static int is_weight_op(uint8_t op)
{
    return op == TFD_OP_FULLY_CONNECTED || op == TFD_OP_CONV_2D || op == TFD_OP_DEPTHWISE_CONV_2D;
}

static int is_identity_op(uint8_t op)
{
    return op == TFD_OP_RESHAPE || op == TFD_OP_QUANTIZE || op == TFD_OP_DEQUANTIZE;
}

static int has_backward(uint8_t op)
{
    switch (op) {
    case TFD_OP_FULLY_CONNECTED:
    case TFD_OP_CONV_2D:
    case TFD_OP_DEPTHWISE_CONV_2D:
    case TFD_OP_MAX_POOL_2D:
    case TFD_OP_AVERAGE_POOL_2D:
    case TFD_OP_MEAN:
    case TFD_OP_RESHAPE:
    case TFD_OP_RELU:
    case TFD_OP_RELU6:
    case TFD_OP_QUANTIZE:
    case TFD_OP_DEQUANTIZE:
        return 1;
    default:
        return 0;
    }
}

static uint32_t elems_of(const tfd_model_t *m, int16_t tensor)
{
    return (uint32_t)tfd_tensor_elems(&m->tensors[tensor]);
}

/* Row length of a weight layer's filter (taps per output channel) and channel count. */
static void filter_rows(const tfd_model_t *m, const tfd_layer_t *l, uint32_t *row_len,
                        uint32_t *channels)
{
    const tfd_tensor_t *f = &m->tensors[l->inputs[1]];
    switch (l->op) {
    case TFD_OP_FULLY_CONNECTED: /* [units, depth] right-aligned */
        *row_len = (uint32_t)f->dims[3];
        *channels = (uint32_t)f->dims[2];
        break;
    case TFD_OP_CONV_2D: /* OHWI */
        *row_len = (uint32_t)(f->dims[1] * f->dims[2] * f->dims[3]);
        *channels = (uint32_t)f->dims[0];
        break;
    default: /* DEPTHWISE 1HW(C) */
        *row_len = (uint32_t)(f->dims[1] * f->dims[2]);
        *channels = (uint32_t)f->dims[3];
        break;
    }
}

static void geom_of(const tfd_model_t *m, const tfd_layer_t *l, tfd_geom_t *g)
{
    memset(g, 0, sizeof *g);
    g->in = tfd_shape_of(&m->tensors[l->inputs[0]]);
    g->out = tfd_shape_of(&m->tensors[l->output]);
    g->dh = g->dw = 1;
    g->depth_mult = 1;
    if (l->op == TFD_OP_CONV_2D || l->op == TFD_OP_DEPTHWISE_CONV_2D) {
        const tfd_conv_params_t *p = (const tfd_conv_params_t *)l->params;
        const tfd_tensor_t *f = &m->tensors[l->inputs[1]];
        g->kh = f->dims[1];
        g->kw = f->dims[2];
        g->sh = p->stride_h;
        g->sw = p->stride_w;
        g->dh = p->dilation_h;
        g->dw = p->dilation_w;
        g->ph = p->pad_h;
        g->pw = p->pad_w;
        g->depth_mult = p->depth_multiplier > 0 ? p->depth_multiplier : 1;
    } else if (l->op == TFD_OP_MAX_POOL_2D || l->op == TFD_OP_AVERAGE_POOL_2D) {
        const tfd_pool_params_t *p = (const tfd_pool_params_t *)l->params;
        g->kh = p->filter_h;
        g->kw = p->filter_w;
        g->sh = p->stride_h;
        g->sw = p->stride_w;
        g->ph = p->pad_h;
        g->pw = p->pad_w;
    }
}

static void wsrc_of(const tfd_trainer_t *t, const tfd_train_layer_t *tl, tfd_wsrc_t *w)
{
    const tfd_layer_t *l = model_layer(t, tl);
    const tfd_tensor_t *f = &t->model->tensors[l->inputs[1]];
    uint32_t row_len, channels;
    filter_rows(t->model, l, &row_len, &channels);
    w->q = (const int8_t *)f->data;
    w->scale = tl->w_scale;
    w->row_len = row_len;
    w->q_ch_stride = l->op == TFD_OP_DEPTHWISE_CONV_2D ? 1u : row_len;
    w->q_el_stride = l->op == TFD_OP_DEPTHWISE_CONV_2D ? channels : 1u;
    w->p = tl->seg_w >= 0 ? t->params + t->plan->segments[tl->seg_w].offset : NULL;
    w->rows = tl->w_rows;
    w->quantized = t->plan->domain == TFD_TRAIN_QUANTIZED;
}

static void bsrc_of(const tfd_trainer_t *t, const tfd_train_layer_t *tl, tfd_bsrc_t *b)
{
    const tfd_layer_t *l = model_layer(t, tl);
    const int has_bias = l->n_inputs > 2 && l->inputs[2] >= 0;
    b->q = has_bias ? (const int32_t *)t->model->tensors[l->inputs[2]].data : NULL;
    b->scale = tl->b_scale;
    b->p = tl->seg_b >= 0 ? t->params + t->plan->segments[tl->seg_b].offset : NULL;
    b->quantized = t->plan->domain == TFD_TRAIN_QUANTIZED;
}

static float *seg_grad(const tfd_trainer_t *t, int16_t seg)
{
    return seg >= 0 ? t->grads + t->plan->segments[seg].offset : NULL;
}

static const float *seg_param(const tfd_trainer_t *t, int16_t seg)
{
    return t->params + t->plan->segments[seg].offset;
}

/* LoRA geometry: rows (positions), depth, units. */
static void lora_dims(const tfd_trainer_t *t, const tfd_layer_t *l, uint32_t *rows,
                      uint32_t *depth, uint32_t *units)
{
    uint32_t row_len, channels;
    filter_rows(t->model, l, &row_len, &channels);
    *depth = row_len; /* FC depth, or in_c of a 1x1 conv */
    *units = channels;
    *rows = elems_of(t->model, l->inputs[0]) / row_len;
}

/* ---- activations ------------------------------------------------------------ */

static int act_passes(uint8_t act, float y)
{
    switch (act) {
    case TFD_TACT_RELU: return y > 0.0f;
    case TFD_TACT_RELU6: return y > 0.0f && y < 6.0f;
    case TFD_TACT_RELU_N1_TO_1: return y > -1.0f && y < 1.0f;
    default: return 1;
    }
}

static float act_apply(uint8_t act, float v)
{
    switch (act) {
    case TFD_TACT_RELU: return v > 0.0f ? v : 0.0f;
    case TFD_TACT_RELU6: return v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
    case TFD_TACT_RELU_N1_TO_1: return v > -1.0f ? (v < 1.0f ? v : 1.0f) : -1.0f;
    default: return v;
    }
}

static void act_forward(const tfd_trainer_t *t, const tfd_train_layer_t *tl, uint32_t n,
                        int training)
{
    if (tl->act == TFD_TACT_NONE) return;
    float *y = fptr(t, tl->out_off);
    uint8_t *bits = (training && (tl->flags & TFD_TL_MASK_BITS)) ? t->region + tl->mask_off : NULL;
    if (bits != NULL) memset(bits, 0, (n + 7u) / 8u);
    for (uint32_t e = 0; e < n; ++e) {
        y[e] = act_apply(tl->act, y[e]);
        if (bits != NULL && act_passes(tl->act, y[e])) bits[e >> 3] |= (uint8_t)(1u << (e & 7u));
    }
}

/* Multiply the gradient at layer j's output by its activation derivative. */
static void act_backward(const tfd_trainer_t *t, uint16_t j)
{
    const tfd_train_layer_t *tl = &t->plan->tail[j];
    if (tl->act == TFD_TACT_NONE) return;
    const uint32_t n = elems_of(t->model, model_layer(t, tl)->output);
    float *g = fptr(t, tl->gout_off);
    if (tl->flags & TFD_TL_MASK_OUTPUT) {
        const float *y = fptr(t, tl->out_off);
        for (uint32_t e = 0; e < n; ++e) {
            if (!act_passes(tl->act, y[e])) g[e] = 0.0f;
        }
    } else {
        const uint8_t *bits = t->region + tl->mask_off;
        for (uint32_t e = 0; e < n; ++e) {
            if (!(bits[e >> 3] & (1u << (e & 7u)))) g[e] = 0.0f;
        }
    }
}

/* ---- forward ---------------------------------------------------------------- */

static void layer_forward(tfd_trainer_t *t, const tfd_train_layer_t *tl, int training)
{
    const tfd_layer_t *l = model_layer(t, tl);
    const float *x = fptr(t, tl->in_off);
    float *y = fptr(t, tl->out_off);
    float *row = fptr(t, t->plan->row_off);
    tfd_geom_t g;
    tfd_wsrc_t w;
    tfd_bsrc_t b;
    const uint32_t out_n = elems_of(t->model, l->output);
    switch (l->op) {
    case TFD_OP_FULLY_CONNECTED:
    case TFD_OP_CONV_2D:
    case TFD_OP_DEPTHWISE_CONV_2D: {
        wsrc_of(t, tl, &w);
        bsrc_of(t, tl, &b);
        if (l->op == TFD_OP_FULLY_CONNECTED) {
            uint32_t rows, depth, units;
            lora_dims(t, l, &rows, &depth, &units);
            tfd_fc_forward(x, rows, depth, units, &w, &b, row, y);
        } else {
            geom_of(t->model, l, &g);
            tfd_conv_forward(x, &g, l->op == TFD_OP_DEPTHWISE_CONV_2D, &w, &b, row, y);
        }
        if (tl->lora_rank > 0) {
            uint32_t rows, depth, units;
            lora_dims(t, l, &rows, &depth, &units);
            float *h = fptr(t, tl->h_off);
            tfd_lora_h(x, rows, depth, seg_param(t, tl->seg_la), tl->lora_rank, h);
            tfd_lora_apply(h, rows, tl->lora_rank, seg_param(t, tl->seg_lb), units, tl->lora_scale, y);
        }
        break;
    }
    case TFD_OP_MAX_POOL_2D: {
        geom_of(t->model, l, &g);
        const int keep = training && (tl->flags & TFD_TL_ARGMAX);
        tfd_maxpool_forward(x, &g, y, keep ? (void *)(t->region + tl->aux_off) : NULL,
                            (tl->flags & TFD_TL_ARGMAX_WIDE) != 0);
        break;
    }
    case TFD_OP_AVERAGE_POOL_2D:
        geom_of(t->model, l, &g);
        tfd_avgpool_forward(x, &g, y);
        break;
    case TFD_OP_MEAN:
        tfd_mean_forward(x, tfd_shape_of(&t->model->tensors[l->inputs[0]]),
                         ((const tfd_mean_params_t *)l->params)->axis_mask, y);
        break;
    default: /* identity ops, RELU / RELU6 (their clamp is tl->act) */
        if (tl->out_off != tl->in_off) memmove(y, x, (size_t)out_n * sizeof(float));
        break;
    }
    act_forward(t, tl, out_n, training);
}

tfd_status_t tfd_tail_forward(tfd_trainer_t *t, const int8_t *x, int training)
{
    const tfd_model_t *m = t->model;
    const tfd_train_plan_t *p = t->plan;
    const tfd_tensor_t *in = &m->tensors[m->inputs[0]];
    memcpy(tfd_input_ptr(m, t->region, 0), x, in->bytes);
    TFD_TRY(tfd_invoke_range(m, t->region, 0, (int)p->first_layer, NULL));
    const tfd_tensor_t *bt = &m->tensors[p->boundary_tensor];
    const int8_t *q = (const int8_t *)tfd_tensor_ptr(m, t->region, p->boundary_tensor);
    float *a0 = fptr(t, p->tail[0].in_off);
    const int32_t n = tfd_tensor_elems(bt);
    const float scale = bt->scale; /* locals: the float stores could alias *bt */
    const int32_t zero_point = bt->zero_point;
    for (int32_t e = 0; e < n; ++e) a0[e] = scale * (float)((int32_t)q[e] - zero_point);
    for (uint16_t i = 0; i < p->n_tail; ++i) layer_forward(t, &p->tail[i], training);
    return TFD_OK;
}

float *tfd_tail_logits(tfd_trainer_t *t)
{
    return fptr(t, t->plan->tail[t->plan->n_tail - 1].out_off);
}

/* ---- backward --------------------------------------------------------------- */

static void layer_backward(tfd_trainer_t *t, const tfd_train_layer_t *tl)
{
    const tfd_layer_t *l = model_layer(t, tl);
    const float *dz = fptr(t, tl->gout_off);
    float *dx = (tl->flags & TFD_TL_NEED_DX) ? fptr(t, tl->gin_off) : NULL;
    const float *x = (tl->flags & TFD_TL_KEEP_INPUT) ? fptr(t, tl->in_off) : NULL;
    float *row = fptr(t, t->plan->row_off);
    tfd_geom_t g;
    tfd_wsrc_t w;
    switch (l->op) {
    case TFD_OP_FULLY_CONNECTED:
    case TFD_OP_CONV_2D:
    case TFD_OP_DEPTHWISE_CONV_2D: {
        wsrc_of(t, tl, &w);
        float *gw = seg_grad(t, tl->seg_w);
        float *gb = seg_grad(t, tl->seg_b);
        if (l->op == TFD_OP_FULLY_CONNECTED) {
            uint32_t rows, depth, units;
            lora_dims(t, l, &rows, &depth, &units);
            tfd_fc_backward(x, dz, rows, depth, units, &w, gw, gb, dx, row);
        } else {
            geom_of(t->model, l, &g);
            tfd_conv_backward(x, dz, &g, l->op == TFD_OP_DEPTHWISE_CONV_2D, &w, gw, gb, dx, row);
        }
        if (tl->lora_rank > 0) {
            uint32_t rows, depth, units;
            lora_dims(t, l, &rows, &depth, &units);
            const float *a = seg_param(t, tl->seg_la);
            float *h = fptr(t, tl->h_off);
            if (!(tl->flags & TFD_TL_LORA_STORE_H)) tfd_lora_h(x, rows, depth, a, tl->lora_rank, h);
            tfd_lora_backward(x, h, dz, rows, depth, tl->lora_rank, units, a,
                              seg_param(t, tl->seg_lb), tl->lora_scale, seg_grad(t, tl->seg_la),
                              seg_grad(t, tl->seg_lb), fptr(t, tl->dh_off), dx);
        }
        break;
    }
    case TFD_OP_MAX_POOL_2D:
        geom_of(t->model, l, &g);
        tfd_maxpool_backward(dz, &g, t->region + tl->aux_off, (tl->flags & TFD_TL_ARGMAX_WIDE) != 0, dx);
        break;
    case TFD_OP_AVERAGE_POOL_2D:
        geom_of(t->model, l, &g);
        tfd_avgpool_backward(dz, &g, dx);
        break;
    case TFD_OP_MEAN:
        tfd_mean_backward(dz, tfd_shape_of(&t->model->tensors[l->inputs[0]]),
                          ((const tfd_mean_params_t *)l->params)->axis_mask, dx);
        break;
    default: /* identity (the activation derivative was applied to dz already) */
        if (tl->gin_off != tl->gout_off) {
            memmove(dx, dz, (size_t)elems_of(t->model, l->output) * sizeof(float));
        }
        break;
    }
}

void tfd_tail_backward(tfd_trainer_t *t)
{
    const tfd_train_plan_t *p = t->plan;
    act_backward(t, (uint16_t)(p->n_tail - 1));
    for (int i = (int)p->n_tail - 1; i >= 0; --i) {
        const tfd_train_layer_t *tl = &p->tail[i];
        layer_backward(t, tl);
        if ((tl->flags & TFD_TL_NEED_DX) && i > 0) act_backward(t, (uint16_t)(i - 1));
    }
}

/* ---- plan check ------------------------------------------------------------- */

static int fits(uint32_t off, uint64_t bytes, uint32_t limit)
{
    return (off & 3u) == 0 && (uint64_t)off + bytes <= limit;
}

static tfd_status_t check_segment(const tfd_train_plan_t *p, int16_t seg, uint8_t kind,
                                  uint16_t layer, uint32_t rows, uint32_t row_len)
{
    if (seg < 0) return TFD_OK;
    TFD_ENSURE(seg < (int16_t)p->n_segments, TFD_ERR_BAD_MODEL);
    const tfd_train_segment_t *s = &p->segments[seg];
    TFD_ENSURE(s->kind == kind && s->layer == layer, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(s->row_len == row_len && (rows == 0 || s->rows == rows), TFD_ERR_BAD_MODEL);
    TFD_ENSURE((uint64_t)s->offset + (uint64_t)s->rows * s->row_len <= p->n_params, TFD_ERR_BAD_MODEL);
    return TFD_OK;
}

static tfd_status_t check_layer(const tfd_model_t *m, const tfd_train_plan_t *p, uint16_t i)
{
    const tfd_train_layer_t *tl = &p->tail[i];
    const uint32_t W = p->work_bytes;
    TFD_ENSURE(tl->layer == p->first_layer + i, TFD_ERR_BAD_MODEL);
    const tfd_layer_t *l = &m->layers[tl->layer];
    TFD_ENSURE(tl->op == l->op, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(has_backward(l->op), TFD_ERR_UNSUPPORTED_OP);
    TFD_ENSURE(tl->act <= TFD_TACT_RELU_N1_TO_1, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(l->n_inputs >= 1 && l->inputs[0] >= 0, TFD_ERR_BAD_MODEL);
    if (i > 0) TFD_ENSURE(l->inputs[0] == m->layers[tl->layer - 1].output, TFD_ERR_BAD_MODEL);
    const uint32_t in_n = elems_of(m, l->inputs[0]);
    const uint32_t out_n = elems_of(m, l->output);
    TFD_ENSURE(fits(tl->in_off, 4ull * in_n, W) && fits(tl->out_off, 4ull * out_n, W), TFD_ERR_BAD_MODEL);
    TFD_ENSURE(fits(tl->gout_off, 4ull * out_n, W), TFD_ERR_BAD_MODEL);
    if (tl->flags & TFD_TL_NEED_DX) TFD_ENSURE(i > 0 && fits(tl->gin_off, 4ull * in_n, W), TFD_ERR_BAD_MODEL);
    else TFD_ENSURE(i == 0, TFD_ERR_BAD_MODEL); /* every later layer must pass the gradient on */
    if (i > 0) {
        TFD_ENSURE(tl->in_off == p->tail[i - 1].out_off, TFD_ERR_BAD_MODEL);
        TFD_ENSURE(tl->gin_off == p->tail[i - 1].gout_off, TFD_ERR_BAD_MODEL);
    }
    if (tl->flags & TFD_TL_MASK_BITS) TFD_ENSURE(fits(tl->mask_off, (out_n + 7u) / 8u, W), TFD_ERR_BAD_MODEL);
    if (tl->act != TFD_TACT_NONE) {
        TFD_ENSURE((tl->flags & (TFD_TL_MASK_BITS | TFD_TL_MASK_OUTPUT)) != 0, TFD_ERR_BAD_MODEL);
    }
    if (is_weight_op(l->op)) {
        TFD_ENSURE(l->n_inputs >= 2 && l->inputs[1] >= 0, TFD_ERR_BAD_MODEL);
        const tfd_tensor_t *f = &m->tensors[l->inputs[1]];
        TFD_ENSURE(f->data != NULL && f->type == TFD_TYPE_INT8 && tl->w_scale != NULL, TFD_ERR_BAD_MODEL);
        const int has_bias = l->n_inputs > 2 && l->inputs[2] >= 0;
        if (has_bias) {
            const tfd_tensor_t *b = &m->tensors[l->inputs[2]];
            TFD_ENSURE(b->data != NULL && b->type == TFD_TYPE_INT32 && tl->b_scale != NULL, TFD_ERR_BAD_MODEL);
        }
        uint32_t row_len, channels;
        filter_rows(m, l, &row_len, &channels);
        TFD_ENSURE(row_len <= p->row_floats, TFD_ERR_BAD_MODEL);
        TFD_TRY(check_segment(p, tl->seg_w, TFD_TSEG_WEIGHT, tl->layer, tl->w_rows ? 0u : channels, row_len));
        if (tl->w_rows != NULL) {
            TFD_ENSURE(tl->seg_w >= 0, TFD_ERR_BAD_MODEL);
            for (uint32_t c = 0; c < channels; ++c) {
                TFD_ENSURE(tl->w_rows[c] < (int32_t)p->segments[tl->seg_w].rows, TFD_ERR_BAD_MODEL);
            }
        }
        TFD_ENSURE(tl->seg_b < 0 || has_bias, TFD_ERR_BAD_MODEL);
        TFD_TRY(check_segment(p, tl->seg_b, TFD_TSEG_BIAS, tl->layer, channels, 1));
        if (tl->flags & TFD_TL_KEEP_INPUT) TFD_ENSURE(tl->seg_w >= 0 || tl->lora_rank > 0, TFD_ERR_BAD_MODEL);
        if (tl->seg_w >= 0 || tl->lora_rank > 0) TFD_ENSURE(tl->flags & TFD_TL_KEEP_INPUT, TFD_ERR_BAD_MODEL);
        if (tl->lora_rank > 0) {
            uint32_t rows = in_n / row_len;
            TFD_ENSURE(l->op != TFD_OP_DEPTHWISE_CONV_2D && tl->seg_w < 0, TFD_ERR_BAD_MODEL);
            if (l->op == TFD_OP_CONV_2D) {
                tfd_geom_t g;
                geom_of(m, l, &g);
                TFD_ENSURE(g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0,
                           TFD_ERR_BAD_MODEL);
            }
            TFD_TRY(check_segment(p, tl->seg_la, TFD_TSEG_LORA_A, tl->layer, row_len, tl->lora_rank));
            TFD_TRY(check_segment(p, tl->seg_lb, TFD_TSEG_LORA_B, tl->layer, tl->lora_rank, channels));
            TFD_ENSURE(tl->seg_la >= 0 && tl->seg_lb >= 0, TFD_ERR_BAD_MODEL);
            TFD_ENSURE(fits(tl->h_off, 4ull * rows * tl->lora_rank, W), TFD_ERR_BAD_MODEL);
            TFD_ENSURE(fits(tl->dh_off, 4ull * rows * tl->lora_rank, W), TFD_ERR_BAD_MODEL);
        }
    } else {
        TFD_ENSURE(tl->seg_w < 0 && tl->seg_b < 0 && tl->lora_rank == 0, TFD_ERR_BAD_MODEL);
        TFD_ENSURE(!(tl->flags & TFD_TL_KEEP_INPUT), TFD_ERR_BAD_MODEL);
    }
    if (l->op == TFD_OP_MAX_POOL_2D) {
        const tfd_pool_params_t *pp = (const tfd_pool_params_t *)l->params;
        const uint32_t taps = (uint32_t)pp->filter_h * pp->filter_w;
        const int wide = (tl->flags & TFD_TL_ARGMAX_WIDE) != 0;
        TFD_ENSURE((tl->flags & TFD_TL_ARGMAX) && (wide || taps <= 256u), TFD_ERR_BAD_MODEL);
        TFD_ENSURE(fits(tl->aux_off, (wide ? 2ull : 1ull) * out_n, W), TFD_ERR_BAD_MODEL);
    }
    if (is_identity_op(l->op) || (tl->flags & TFD_TL_ALIAS)) {
        TFD_ENSURE(in_n == out_n, TFD_ERR_BAD_MODEL);
    }
    if (l->op == TFD_OP_RELU || l->op == TFD_OP_RELU6) TFD_ENSURE(in_n == out_n, TFD_ERR_BAD_MODEL);
    return TFD_OK;
}

tfd_status_t tfd_tail_check(const tfd_model_t *m, const tfd_train_plan_t *p)
{
    TFD_ENSURE(p->n_tail >= 1 && p->tail != NULL, TFD_ERR_BAD_MODEL);
    TFD_ENSURE((uint32_t)p->first_layer + p->n_tail <= m->n_layers, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(memcmp(p->model_hash, m->hash, TFD_MODEL_HASH_BYTES) == 0, TFD_ERR_ABI);
    TFD_ENSURE(p->domain <= TFD_TRAIN_QUANTIZED, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(p->n_params == 0 || p->init_params != NULL, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(m->n_inputs >= 1, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(m->tensors[m->inputs[0]].type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(p->boundary_tensor >= 0 && p->boundary_tensor < (int16_t)m->n_tensors, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(m->layers[p->first_layer].inputs[0] == p->boundary_tensor, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(m->tensors[p->boundary_tensor].type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(p->work_bytes <= p->region_bytes && m->arena_bytes <= p->region_bytes, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(fits(p->row_off, 4ull * p->row_floats, p->work_bytes), TFD_ERR_BAD_MODEL);
    for (uint16_t s = 0; s < p->n_segments; ++s) {
        const tfd_train_segment_t *seg = &p->segments[s];
        TFD_ENSURE((uint64_t)seg->offset + (uint64_t)seg->rows * seg->row_len <= p->n_params, TFD_ERR_BAD_MODEL);
        TFD_ENSURE(seg->kind <= TFD_TSEG_LORA_B, TFD_ERR_BAD_MODEL);
    }
    for (uint16_t i = 0; i < p->n_tail; ++i) TFD_TRY(check_layer(m, p, i));
    const tfd_train_layer_t *last = &p->tail[p->n_tail - 1];
    TFD_ENSURE(p->n_logits >= 2 && p->n_logits == elems_of(m, m->layers[last->layer].output),
               TFD_ERR_BAD_MODEL);
    return TFD_OK;
}
