/* tinyfed — the on-device training engine API (the contract between the
 * training engine, firmware/src/train/, and its users: the protocol handlers,
 * the host simulation and the tests).
 *
 * Model: layers [0, plan->first_layer) are frozen and run int8 through the
 * inference runtime (weights stay int8 in flash); their output is dequantized
 * and layers [first_layer, n_layers) run in float32 during training, with
 * backward kernels.  What trains is decided by the toolchain and emitted as a
 * table (tfd_train_plan_t, generated train_data.c): the last k layers, biases
 * only, a sparse set of layers/channels, or low-rank (LoRA) adapters.  All
 * trainable values form ONE flat float32 vector ("the parameters", length
 * plan->n_params): that vector is what the host sends (PARAMS) and what an
 * update is a delta of.
 *
 * No malloc: the caller hands the trainer one memory block of at least
 * TFD_TRAIN_MEM_BYTES (from the generated train_data.h) for the arena,
 * the kept activations, gradients, parameters and optimizer state.
 */
#ifndef TFD_TRAIN_H
#define TFD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/model.h"
#include "tfd/shard.h"
#include "tfd/status.h"

/* The plan structs (tfd_train_plan_t and friends) live in tfd/train_plan.h,
 * owned by the training engine; the generated train_data.c fills them. */
#include "tfd/train_plan.h"

typedef enum {
    TFD_LR_CONSTANT = 0,
    TFD_LR_COSINE = 1, /* cosine decay over the whole local run */
    TFD_LR_STEP = 2    /* x0.1 at 50% and 75% of the local run */
} tfd_lr_schedule_t;

typedef struct {
    float lr;
    float momentum;      /* SGD momentum (0 = plain SGD) */
    float weight_decay;  /* L2, applied to weights (not biases) */
    uint16_t epochs;     /* passes over the local shard */
    uint16_t batch;      /* samples per optimizer step (gradient accumulation) */
    uint32_t seed;       /* shuffling */
    uint8_t schedule;    /* tfd_lr_schedule_t */
    uint32_t max_samples; /* 0 = the whole shard */
} tfd_train_cfg_t;

typedef struct {
    uint32_t samples;    /* samples processed (epochs x shard) */
    uint32_t steps;      /* optimizer steps */
    uint32_t correct;    /* training accuracy numerator (forward pass before each update) */
    float loss_sum;      /* sum of per-sample cross-entropy */
} tfd_train_stats_t;

/* Opaque-ish trainer state; fields are the engine's business (struct
 * tfd_trainer is defined in tfd/train_plan.h so callers can own its storage). */
typedef struct tfd_trainer tfd_trainer_t;

/* Evaluation totals (samples, correct, loss_sum): the shard metrics struct. */
typedef tfd_metrics_t tfd_eval_acc_t;

/* Bytes of memory the trainer needs for this model + plan (== TFD_TRAIN_MEM_BYTES). */
size_t tfd_trainer_mem_bytes(const tfd_model_t *model, const tfd_train_plan_t *plan);

/* Bind model + plan to `mem`; parameters start at plan->init_params. */
TFD_CHECK_RESULT tfd_status_t tfd_trainer_init(tfd_trainer_t *t, const tfd_model_t *model,
                                               const tfd_train_plan_t *plan, uint8_t *mem,
                                               size_t mem_bytes);

uint32_t tfd_trainer_n_params(const tfd_trainer_t *t);

/* The current parameters (n_params floats, writable only through set_params). */
const float *tfd_trainer_params(const tfd_trainer_t *t);

/* Replace the parameters (e.g. the global model from the host); resets optimizer state. */
TFD_CHECK_RESULT tfd_status_t tfd_trainer_set_params(tfd_trainer_t *t, const float *params,
                                                     uint32_t n);

/* Local training on (x, y): n samples of sample_bytes int8 inputs (model-quantized).
 * Each epoch visits min(n, max_samples) samples in a seeded order; *stats is
 * overwritten.  Momentum persists across calls (set_params resets it). */
TFD_CHECK_RESULT tfd_status_t tfd_trainer_fit(tfd_trainer_t *t, const tfd_train_cfg_t *cfg,
                                              const int8_t *x, const uint8_t *y, uint32_t n,
                                              uint32_t sample_bytes, tfd_train_stats_t *stats);

/* Forward one sample with the current parameters; writes n_logits float logits
 * (n_logits must equal plan->n_logits, else TFD_ERR_SHAPE). */
TFD_CHECK_RESULT tfd_status_t tfd_trainer_predict(tfd_trainer_t *t, const int8_t *x,
                                                  float *logits, uint32_t n_logits);

/* Evaluate the current parameters on (x, y) (accuracy and cross-entropy);
 * adds to *acc like tfd_metrics_eval_model (zero it first). */
TFD_CHECK_RESULT tfd_status_t tfd_trainer_eval(tfd_trainer_t *t, const int8_t *x,
                                               const uint8_t *y, uint32_t n,
                                               uint32_t sample_bytes, tfd_eval_acc_t *acc);

/* ---- additions (not used by the protocol) ---------------------------------- */

/* Mean gradient of the cross-entropy over (x, y) w.r.t. the parameters as
 * stored (QUANTIZED domain: w.r.t. the quantized-unit values; no QAS), with
 * the current parameters; parameters and optimizer state are not changed.
 * grad: n_params floats.  loss_sum (may be NULL): summed cross-entropy. */
TFD_CHECK_RESULT tfd_status_t tfd_trainer_gradient(tfd_trainer_t *t, const int8_t *x,
                                                   const uint8_t *y, uint32_t n,
                                                   uint32_t sample_bytes, float *grad,
                                                   float *loss_sum);

/* The sample index visited at position i (< n) of epoch `epoch` by
 * tfd_trainer_fit with this seed: a keyed bijection on [0, n) (no memory). */
uint32_t tfd_train_shuffle_index(uint32_t seed, uint32_t epoch, uint32_t n, uint32_t i);

/* The learning rate of optimizer step `step` of `total_steps` (0-based). */
float tfd_train_lr_at(const tfd_train_cfg_t *cfg, uint32_t step, uint32_t total_steps);

#endif /* TFD_TRAIN_H */
