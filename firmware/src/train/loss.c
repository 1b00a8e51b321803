/* tinyfed training engine — softmax cross-entropy on float logits. */
#include <math.h>

#include "train_internal.h"

float tfd_softmax_xent(const float *z, uint32_t n, uint32_t label, float *dz, uint32_t *argmax)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; ++i) {
        if (z[i] > z[best]) best = i;
    }
    const float m = z[best];
    float sum = 0.0f;
    for (uint32_t i = 0; i < n; ++i) sum += expf(z[i] - m);
    if (dz != NULL) {
        for (uint32_t i = 0; i < n; ++i) dz[i] = expf(z[i] - m) / sum;
        dz[label] -= 1.0f;
    }
    if (argmax != NULL) *argmax = best;
    return m + logf(sum) - z[label];
}
