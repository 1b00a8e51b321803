/* Host build of the training engine as a shared library (toolchain/training/native_trainer.py).
 *
 * Flat C functions over plain types for ctypes; the caller (Python) owns the
 * trainer struct and the memory block, so one library serves any number of
 * independent trainers (virtual devices) of the same model + plan.  Every
 * function returns a tfd_status_t code (0 = ok) unless it cannot fail. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model_data.h"
#include "tfd/train.h"
#include "train_data.h"

#define TH_API __attribute__((visibility("default")))

TH_API size_t th_trainer_size(void);
TH_API size_t th_mem_bytes(void);
TH_API size_t th_mem_bytes_computed(void);
TH_API uint32_t th_n_logits(void);
TH_API uint32_t th_sample_bytes(void);
TH_API int th_init(tfd_trainer_t *t, uint8_t *mem, size_t mem_bytes);
TH_API uint32_t th_n_params(const tfd_trainer_t *t);
TH_API int th_get_params(const tfd_trainer_t *t, float *out, uint32_t n);
TH_API int th_set_params(tfd_trainer_t *t, const float *p, uint32_t n);
TH_API int th_fit(tfd_trainer_t *t, float lr, float momentum, float weight_decay, uint32_t epochs,
                  uint32_t batch, uint32_t seed, uint32_t schedule, uint32_t max_samples,
                  const int8_t *x, const uint8_t *y, uint32_t n, uint32_t sample_bytes,
                  uint32_t *out4, float *loss_sum);
TH_API int th_eval(tfd_trainer_t *t, const int8_t *x, const uint8_t *y, uint32_t n,
                   uint32_t sample_bytes, uint32_t *samples, uint32_t *correct, float *loss_sum);
TH_API int th_predict(tfd_trainer_t *t, const int8_t *x, uint32_t n, uint32_t sample_bytes,
                      float *logits);
TH_API int th_gradient(tfd_trainer_t *t, const int8_t *x, const uint8_t *y, uint32_t n,
                       uint32_t sample_bytes, float *grad, float *loss_sum);
TH_API uint32_t th_shuffle_index(uint32_t seed, uint32_t epoch, uint32_t n, uint32_t i);
TH_API float th_lr_at(float lr, uint32_t schedule, uint32_t step, uint32_t total);
TH_API const char *th_status_str(int status);

size_t th_trainer_size(void) { return sizeof(tfd_trainer_t); }
size_t th_mem_bytes(void) { return TFD_TRAIN_MEM_BYTES; }
size_t th_mem_bytes_computed(void) { return tfd_trainer_mem_bytes(&tfd_model, &tfd_train_plan); }
uint32_t th_n_logits(void) { return TFD_TRAIN_N_LOGITS; }
uint32_t th_sample_bytes(void) { return TFD_MODEL_INPUT_BYTES; }

int th_init(tfd_trainer_t *t, uint8_t *mem, size_t mem_bytes)
{
    return (int)tfd_trainer_init(t, &tfd_model, &tfd_train_plan, mem, mem_bytes);
}

uint32_t th_n_params(const tfd_trainer_t *t) { return tfd_trainer_n_params(t); }

int th_get_params(const tfd_trainer_t *t, float *out, uint32_t n)
{
    const float *p = tfd_trainer_params(t);
    if (p == NULL || out == NULL || n != tfd_trainer_n_params(t)) return (int)TFD_ERR_ARG;
    memcpy(out, p, (size_t)n * sizeof(float));
    return (int)TFD_OK;
}

int th_set_params(tfd_trainer_t *t, const float *p, uint32_t n)
{
    return (int)tfd_trainer_set_params(t, p, n);
}

int th_fit(tfd_trainer_t *t, float lr, float momentum, float weight_decay, uint32_t epochs,
           uint32_t batch, uint32_t seed, uint32_t schedule, uint32_t max_samples,
           const int8_t *x, const uint8_t *y, uint32_t n, uint32_t sample_bytes,
           uint32_t *out4, float *loss_sum)
{
    if (epochs > 0xFFFFu || batch > 0xFFFFu || schedule > 0xFFu) return (int)TFD_ERR_ARG;
    tfd_train_cfg_t cfg = {
        .lr = lr,
        .momentum = momentum,
        .weight_decay = weight_decay,
        .epochs = (uint16_t)epochs,
        .batch = (uint16_t)batch,
        .seed = seed,
        .schedule = (uint8_t)schedule,
        .max_samples = max_samples,
    };
    tfd_train_stats_t st;
    const tfd_status_t s = tfd_trainer_fit(t, &cfg, x, y, n, sample_bytes, &st);
    if (s == TFD_OK) {
        out4[0] = st.samples;
        out4[1] = st.steps;
        out4[2] = st.correct;
        out4[3] = 0;
        *loss_sum = st.loss_sum;
    }
    return (int)s;
}

int th_eval(tfd_trainer_t *t, const int8_t *x, const uint8_t *y, uint32_t n,
            uint32_t sample_bytes, uint32_t *samples, uint32_t *correct, float *loss_sum)
{
    tfd_eval_acc_t acc = {0};
    const tfd_status_t s = tfd_trainer_eval(t, x, y, n, sample_bytes, &acc);
    if (s == TFD_OK) {
        *samples = acc.samples;
        *correct = acc.correct;
        *loss_sum = acc.loss_sum;
    }
    return (int)s;
}

int th_predict(tfd_trainer_t *t, const int8_t *x, uint32_t n, uint32_t sample_bytes, float *logits)
{
    if (sample_bytes != TFD_MODEL_INPUT_BYTES) return (int)TFD_ERR_SHAPE;
    for (uint32_t i = 0; i < n; ++i) {
        const tfd_status_t s = tfd_trainer_predict(t, x + (size_t)i * sample_bytes,
                                                   logits + (size_t)i * TFD_TRAIN_N_LOGITS,
                                                   TFD_TRAIN_N_LOGITS);
        if (s != TFD_OK) return (int)s;
    }
    return (int)TFD_OK;
}

int th_gradient(tfd_trainer_t *t, const int8_t *x, const uint8_t *y, uint32_t n,
                uint32_t sample_bytes, float *grad, float *loss_sum)
{
    return (int)tfd_trainer_gradient(t, x, y, n, sample_bytes, grad, loss_sum);
}

uint32_t th_shuffle_index(uint32_t seed, uint32_t epoch, uint32_t n, uint32_t i)
{
    return tfd_train_shuffle_index(seed, epoch, n, i);
}

float th_lr_at(float lr, uint32_t schedule, uint32_t step, uint32_t total)
{
    tfd_train_cfg_t cfg = {.lr = lr, .schedule = (uint8_t)schedule};
    return tfd_train_lr_at(&cfg, step, total);
}

const char *th_status_str(int status) { return tfd_status_str((tfd_status_t)status); }
