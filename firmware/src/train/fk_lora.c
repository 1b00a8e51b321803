/* tinyfed training engine — LoRA adapters on FULLY_CONNECTED and 1x1 CONV_2D.
 *
 * W_eff = W0 + scale * A.B with A [depth][rank], B [rank][units]; W0 stays
 * int8 in flash and A.B is never formed.  Per position (row) x [depth]:
 *     h = x.A            [rank]
 *     y = x.W0^T + b + scale * h.B
 * Backward, given dz = dL/dy [rows][units] (hand-derived):
 *     dB += scale * h^T.dz          (needs h)
 *     dh  = scale * dz.B^T
 *     dA += x^T.dh                  (needs x)
 *     dx += dh.A^T                  (on top of dz.W0)
 * x is kept for dA anyway, so h can be recomputed from it in backward instead
 * of being stored (MeSP, arXiv 2602.13069): the same tfd_lora_h() produces h in
 * both places, so both variants give bit-identical gradients. */
#include "train_internal.h"

void tfd_lora_h(const float *x, uint32_t rows, uint32_t depth, const float *a, uint32_t rank,
                float *h)
{
    for (uint32_t r = 0; r < rows; ++r) {
        const float *xr = x + (size_t)r * depth;
        for (uint32_t j = 0; j < rank; ++j) {
            float acc = 0.0f;
            for (uint32_t k = 0; k < depth; ++k) acc += xr[k] * a[(size_t)k * rank + j];
            h[(size_t)r * rank + j] = acc;
        }
    }
}

void tfd_lora_apply(const float *h, uint32_t rows, uint32_t rank, const float *bm,
                    uint32_t units, float scale, float *y)
{
    for (uint32_t r = 0; r < rows; ++r) {
        const float *hr = h + (size_t)r * rank;
        for (uint32_t o = 0; o < units; ++o) {
            float acc = 0.0f;
            for (uint32_t j = 0; j < rank; ++j) acc += hr[j] * bm[(size_t)j * units + o];
            y[(size_t)r * units + o] += scale * acc;
        }
    }
}

void tfd_lora_backward(const float *x, const float *h, const float *dz, uint32_t rows,
                       uint32_t depth, uint32_t rank, uint32_t units, const float *a,
                       const float *bm, float scale, float *ga, float *gb, float *dh,
                       float *dx)
{
    for (uint32_t r = 0; r < rows; ++r) {
        const float *dzr = dz + (size_t)r * units;
        const float *hr = h + (size_t)r * rank;
        float *dhr = dh + (size_t)r * rank;
        for (uint32_t j = 0; j < rank; ++j) {
            const float hs = scale * hr[j];
            const float *bj = bm + (size_t)j * units;
            float *gbj = gb + (size_t)j * units;
            float acc = 0.0f;
            for (uint32_t o = 0; o < units; ++o) {
                gbj[o] += hs * dzr[o];
                acc += dzr[o] * bj[o];
            }
            dhr[j] = scale * acc;
        }
        const float *xr = x + (size_t)r * depth;
        for (uint32_t k = 0; k < depth; ++k) {
            float *gak = ga + (size_t)k * rank;
            const float *ak = a + (size_t)k * rank;
            float acc = 0.0f;
            for (uint32_t j = 0; j < rank; ++j) {
                gak[j] += xr[k] * dhr[j];
                acc += dhr[j] * ak[j];
            }
            if (dx != NULL) dx[(size_t)r * depth + k] += acc;
        }
    }
}
