/* tinyfed training engine — the public API (tfd/train.h).
 *
 * Memory block (no malloc; plan->mem_bytes == TFD_TRAIN_MEM_BYTES):
 *     [ region: inference arena | float work area ][ params ][ grads ][ momentum ]
 * Optimizer: SGD with momentum (v = mu v + g; p -= lr v), L2 weight decay on
 * weights (g += wd p; not on biases), gradient accumulation over `batch`
 * samples (g = mean of the per-sample gradients), LR schedule per step.  In
 * the QUANTIZED parameter domain the gradient w.r.t. a parameter is s * G
 * (G = real-unit gradient, s = its quantization scale); QAS multiplies it by
 * s^-2 (see tfd/train_plan.h for why the REAL domain needs no QAS). */
#include <math.h>
#include <string.h>

#include "tfd/runtime.h"
#include "train_internal.h"

static size_t align16(size_t n)
{
    return (n + 15u) & ~(size_t)15u;
}

size_t tfd_trainer_mem_bytes(const tfd_model_t *model, const tfd_train_plan_t *plan)
{
    if (model == NULL || plan == NULL) return 0;
    const size_t work = plan->work_bytes > model->arena_bytes ? plan->work_bytes : model->arena_bytes;
    const size_t pbytes = align16((size_t)plan->n_params * sizeof(float));
    return align16(work) + pbytes * (plan->has_momentum ? 3u : 2u);
}

tfd_status_t tfd_trainer_init(tfd_trainer_t *t, const tfd_model_t *model,
                              const tfd_train_plan_t *plan, uint8_t *mem, size_t mem_bytes)
{
    TFD_ENSURE(t != NULL && model != NULL && plan != NULL && mem != NULL, TFD_ERR_ARG);
    memset(t, 0, sizeof *t);
    TFD_ENSURE(((uintptr_t)mem & 15u) == 0, TFD_ERR_ARG);
    TFD_ENSURE(plan->abi == TFD_TRAIN_ABI, TFD_ERR_ABI);
    TFD_TRY(tfd_model_check(model, model->arena_bytes));
    TFD_TRY(tfd_tail_check(model, plan));
    const size_t need = tfd_trainer_mem_bytes(model, plan);
    const size_t work = plan->work_bytes > model->arena_bytes ? plan->work_bytes : model->arena_bytes;
    TFD_ENSURE(need == plan->mem_bytes && plan->region_bytes == align16(work), TFD_ERR_BAD_MODEL);
    TFD_ENSURE(mem_bytes >= need, TFD_ERR_ARENA);
    const size_t pbytes = align16((size_t)plan->n_params * sizeof(float));
    t->model = model;
    t->plan = plan;
    t->region = mem;
    t->params = (float *)(void *)(mem + plan->region_bytes);
    t->grads = (float *)(void *)(mem + plan->region_bytes + pbytes);
    t->momentum = plan->has_momentum ? (float *)(void *)(mem + plan->region_bytes + 2u * pbytes) : NULL;
    t->n_params = plan->n_params;
    if (plan->n_params > 0) memcpy(t->params, plan->init_params, (size_t)plan->n_params * sizeof(float));
    memset(t->grads, 0, pbytes);
    if (t->momentum != NULL) memset(t->momentum, 0, pbytes);
    t->ready = 1;
    return TFD_OK;
}

uint32_t tfd_trainer_n_params(const tfd_trainer_t *t)
{
    return (t != NULL && t->ready) ? t->n_params : 0u;
}

const float *tfd_trainer_params(const tfd_trainer_t *t)
{
    return (t != NULL && t->ready) ? t->params : NULL;
}

tfd_status_t tfd_trainer_set_params(tfd_trainer_t *t, const float *params, uint32_t n)
{
    TFD_ENSURE(t != NULL && t->ready && (params != NULL || n == 0), TFD_ERR_ARG);
    TFD_ENSURE(n == t->n_params, TFD_ERR_SHAPE);
    for (uint32_t i = 0; i < n; ++i) TFD_ENSURE(isfinite(params[i]), TFD_ERR_OVERFLOW);
    if (n > 0) memcpy(t->params, params, (size_t)n * sizeof(float));
    if (t->momentum != NULL) memset(t->momentum, 0, (size_t)n * sizeof(float));
    return TFD_OK;
}

float tfd_train_lr_at(const tfd_train_cfg_t *cfg, uint32_t step, uint32_t total_steps)
{
    const float pi = 3.14159265358979f;
    switch (cfg->schedule) {
    case TFD_LR_COSINE:
        if (total_steps == 0) return cfg->lr;
        return cfg->lr * 0.5f * (1.0f + cosf(pi * (float)step / (float)total_steps));
    case TFD_LR_STEP: {
        float lr = cfg->lr;
        if ((uint64_t)2u * step >= total_steps) lr *= 0.1f;
        if ((uint64_t)4u * step >= (uint64_t)3u * total_steps) lr *= 0.1f;
        return lr;
    }
    default:
        return cfg->lr;
    }
}

/* Factor from the accumulated real-unit gradient of row `row` of segment s to
 * the gradient the optimizer (qas = plan QAS) or the caller (qas = 0) sees. */
static float grad_factor(const tfd_train_plan_t *p, const tfd_train_segment_t *s, uint32_t row, int for_optimizer)
{
    if (p->domain != TFD_TRAIN_QUANTIZED || s->qscale == NULL) return 1.0f;
    const float q = s->qscale[row];
    return (for_optimizer && p->qas) ? 1.0f / q : q;
}

static void sgd_step(tfd_trainer_t *t, const tfd_train_cfg_t *cfg, float lr, uint32_t count)
{
    const tfd_train_plan_t *p = t->plan;
    const float inv = 1.0f / (float)count;
    for (uint16_t si = 0; si < p->n_segments; ++si) {
        const tfd_train_segment_t *s = &p->segments[si];
        const float wd = s->decay ? cfg->weight_decay : 0.0f;
        for (uint32_t r = 0; r < s->rows; ++r) {
            const float f = grad_factor(p, s, r, 1) * inv;
            const size_t base = (size_t)s->offset + (size_t)r * s->row_len;
            for (uint32_t k = 0; k < s->row_len; ++k) {
                const size_t i = base + k;
                float g = t->grads[i] * f + wd * t->params[i];
                if (t->momentum != NULL) {
                    t->momentum[i] = cfg->momentum * t->momentum[i] + g;
                    g = t->momentum[i];
                }
                t->params[i] -= lr * g;
            }
        }
    }
}

static tfd_status_t check_data(const tfd_trainer_t *t, const int8_t *x, const uint8_t *y, uint32_t n,
                               uint32_t sample_bytes)
{
    TFD_ENSURE(t != NULL && t->ready, TFD_ERR_ARG);
    TFD_ENSURE(n == 0 || (x != NULL && y != NULL), TFD_ERR_ARG);
    TFD_ENSURE(sample_bytes == t->model->tensors[t->model->inputs[0]].bytes, TFD_ERR_SHAPE);
    for (uint32_t i = 0; i < n; ++i) TFD_ENSURE(y[i] < t->plan->n_logits, TFD_ERR_ARG);
    return TFD_OK;
}

/* Forward + loss (+ backward when training) of one sample. */
static tfd_status_t sample_step(tfd_trainer_t *t, const int8_t *x, uint8_t label, int backward,
                                float *loss, uint32_t *argmax)
{
    TFD_TRY(tfd_tail_forward(t, x, backward));
    const tfd_train_layer_t *last = &t->plan->tail[t->plan->n_tail - 1];
    float *dz = backward ? (float *)(void *)(t->region + last->gout_off) : NULL;
    *loss = tfd_softmax_xent(tfd_tail_logits(t), t->plan->n_logits, label, dz, argmax);
    if (backward) tfd_tail_backward(t);
    return TFD_OK;
}

tfd_status_t tfd_trainer_fit(tfd_trainer_t *t, const tfd_train_cfg_t *cfg, const int8_t *x,
                             const uint8_t *y, uint32_t n, uint32_t sample_bytes,
                             tfd_train_stats_t *stats)
{
    TFD_ENSURE(cfg != NULL && stats != NULL, TFD_ERR_ARG);
    TFD_TRY(check_data(t, x, y, n, sample_bytes));
    TFD_ENSURE(isfinite(cfg->lr) && cfg->lr >= 0.0f, TFD_ERR_ARG);
    TFD_ENSURE(isfinite(cfg->momentum) && cfg->momentum >= 0.0f && cfg->momentum < 1.0f, TFD_ERR_ARG);
    TFD_ENSURE(t->momentum != NULL || cfg->momentum == 0.0f, TFD_ERR_ARG);
    TFD_ENSURE(isfinite(cfg->weight_decay) && cfg->weight_decay >= 0.0f, TFD_ERR_ARG);
    TFD_ENSURE(cfg->batch >= 1 && cfg->schedule <= TFD_LR_STEP, TFD_ERR_ARG);
    memset(stats, 0, sizeof *stats);
    const uint32_t used = (cfg->max_samples != 0 && cfg->max_samples < n) ? cfg->max_samples : n;
    if (used == 0) return TFD_OK;
    const uint32_t steps_per_epoch = (used + cfg->batch - 1u) / cfg->batch;
    const uint32_t total = steps_per_epoch * cfg->epochs;
    const size_t gbytes = (size_t)t->n_params * sizeof(float);
    uint32_t step = 0;
    for (uint32_t e = 0; e < cfg->epochs; ++e) {
        for (uint32_t start = 0; start < used; start += cfg->batch) {
            const uint32_t count = (used - start < cfg->batch) ? used - start : cfg->batch;
            if (gbytes > 0) memset(t->grads, 0, gbytes);
            for (uint32_t s = 0; s < count; ++s) {
                const uint32_t idx = tfd_train_shuffle_index(cfg->seed, e, n, start + s);
                float loss;
                uint32_t pred;
                TFD_TRY(sample_step(t, x + (size_t)idx * sample_bytes, y[idx], 1, &loss, &pred));
                stats->loss_sum += loss;
                stats->correct += pred == y[idx];
                stats->samples++;
            }
            sgd_step(t, cfg, tfd_train_lr_at(cfg, step, total), count);
            ++step;
            stats->steps++;
        }
    }
    for (uint32_t i = 0; i < t->n_params; ++i) TFD_ENSURE(isfinite(t->params[i]), TFD_ERR_OVERFLOW);
    return TFD_OK;
}

tfd_status_t tfd_trainer_predict(tfd_trainer_t *t, const int8_t *x, float *logits, uint32_t n_logits)
{
    TFD_ENSURE(t != NULL && t->ready && x != NULL && logits != NULL, TFD_ERR_ARG);
    TFD_ENSURE(n_logits == t->plan->n_logits, TFD_ERR_SHAPE);
    TFD_TRY(tfd_tail_forward(t, x, 0));
    memcpy(logits, tfd_tail_logits(t), (size_t)n_logits * sizeof(float));
    return TFD_OK;
}

tfd_status_t tfd_trainer_eval(tfd_trainer_t *t, const int8_t *x, const uint8_t *y, uint32_t n,
                              uint32_t sample_bytes, tfd_eval_acc_t *acc)
{
    TFD_ENSURE(acc != NULL, TFD_ERR_ARG);
    TFD_TRY(check_data(t, x, y, n, sample_bytes));
    for (uint32_t i = 0; i < n; ++i) {
        float loss;
        uint32_t pred;
        TFD_TRY(sample_step(t, x + (size_t)i * sample_bytes, y[i], 0, &loss, &pred));
        acc->loss_sum += loss;
        acc->correct += pred == y[i];
        acc->samples++;
    }
    return TFD_OK;
}

tfd_status_t tfd_trainer_gradient(tfd_trainer_t *t, const int8_t *x, const uint8_t *y, uint32_t n,
                                  uint32_t sample_bytes, float *grad, float *loss_sum)
{
    TFD_TRY(check_data(t, x, y, n, sample_bytes));
    TFD_ENSURE(n >= 1 && (grad != NULL || t->n_params == 0), TFD_ERR_ARG);
    const tfd_train_plan_t *p = t->plan;
    if (t->n_params > 0) memset(t->grads, 0, (size_t)t->n_params * sizeof(float));
    float total = 0.0f;
    for (uint32_t i = 0; i < n; ++i) {
        float loss;
        uint32_t pred;
        TFD_TRY(sample_step(t, x + (size_t)i * sample_bytes, y[i], 1, &loss, &pred));
        total += loss;
    }
    const float inv = 1.0f / (float)n;
    for (uint16_t si = 0; si < p->n_segments; ++si) {
        const tfd_train_segment_t *s = &p->segments[si];
        for (uint32_t r = 0; r < s->rows; ++r) {
            const float f = grad_factor(p, s, r, 0);
            const size_t base = (size_t)s->offset + (size_t)r * s->row_len;
            for (uint32_t k = 0; k < s->row_len; ++k) grad[base + k] = t->grads[base + k] * inv * f;
        }
    }
    if (loss_sum != NULL) *loss_sum = total;
    return TFD_OK;
}
