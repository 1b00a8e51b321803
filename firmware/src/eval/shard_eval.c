/* tinyfed — accuracy and cross-entropy of the model on the private shard. */
#include <string.h>

#include "tfd/runtime.h"
#include "tfd/shard.h"

tfd_status_t tfd_metrics_eval_model(const tfd_model_t *model, uint8_t *arena, const int8_t *x,
                            const uint8_t *y, uint32_t n, uint32_t sample_bytes, uint32_t max,
                            tfd_metrics_t *acc)
{
    TFD_ENSURE(model != NULL && arena != NULL && acc != NULL, TFD_ERR_ARG);
    TFD_ENSURE(model->n_inputs >= 1 && model->n_outputs >= 1, TFD_ERR_BAD_MODEL);
    const tfd_tensor_t *in = &model->tensors[model->inputs[0]];
    const tfd_tensor_t *out = &model->tensors[model->outputs[0]];
    TFD_ENSURE(in->type == TFD_TYPE_INT8 && out->type == TFD_TYPE_INT8, TFD_ERR_UNSUPPORTED_TYPE);
    TFD_ENSURE(in->bytes == sample_bytes, TFD_ERR_SHAPE);
    const uint32_t count = (max == 0 || max > n) ? n : max;
    for (uint32_t i = 0; i < count; ++i) {
        memcpy(tfd_input_ptr(model, arena, 0), x + (size_t)i * sample_bytes, sample_bytes);
        TFD_TRY(tfd_invoke(model, arena, NULL));
        const int8_t *logits = (const int8_t *)tfd_output_ptr(model, arena, 0);
        TFD_TRY(tfd_metrics_add_sample(acc, logits, out->bytes, out->scale, out->zero_point, y[i]));
    }
    return TFD_OK;
}
