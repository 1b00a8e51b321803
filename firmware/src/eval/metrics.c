/* tinyfed — per-sample metrics: argmax and cross-entropy from int8 logits.
 * No runtime dependency (the host loopback device links it alone). */
#include <math.h>

#include "tfd/shard.h"

tfd_status_t tfd_metrics_add_sample(tfd_metrics_t *acc, const int8_t *logits, size_t n, float scale,
                          int32_t zero_point, uint32_t label)
{
    TFD_ENSURE(acc != NULL && logits != NULL && n > 0 && label < n, TFD_ERR_ARG);
    size_t best = 0;
    for (size_t i = 1; i < n; ++i) {
        if (logits[i] > logits[best]) best = i;
    }
    const float max = scale * (float)((int32_t)logits[best] - zero_point);
    float sum = 0.0f;
    for (size_t i = 0; i < n; ++i) {
        sum += expf(scale * (float)((int32_t)logits[i] - zero_point) - max);
    }
    const float x_label = scale * (float)((int32_t)logits[label] - zero_point);
    acc->loss_sum += max + logf(sum) - x_label;
    acc->samples++;
    if (best == label) acc->correct++;
    return TFD_OK;
}
