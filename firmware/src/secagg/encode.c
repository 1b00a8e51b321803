/* tinyfed — fixed-point encoding of a model update into Z_{2^32} for secure
 * aggregation: L2 clip, FedAvg weight, stochastic rounding (tfd/secagg.h has
 * the exact arithmetic and the no-wrap bound).
 *
 * Float work is IEEE double, one rounding per operation, in the order
 * written: the norm, the scale and v_i = x_i * scale; the host reference
 * (host/secagg/encoding.py, numpy float64) reproduces each of them.  The
 * rounding itself is integer arithmetic on the bits of v_i:
 *     q_i = floor((floor(v_i * 2^32) + r_i) / 2^32)   (= floor(v_i + r_i 2^-32))
 * v_i * 2^32 is exact (a power of two) and |v_i| < 2^31 (the bound below), so
 * floor(v_i * 2^32) is an exact int64.  No multiply-add may be fused,
 * whatever the build's -std: contraction is switched off for this file. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <string.h>

#include "monocypher.h"
#include "sa_internal.h"
#include "tfd/secagg.h"

#define INT32_MAX_D 2147483647.0

static tfd_status_t check_params(const tfd_sa_encoding_t *enc)
{
    TFD_ENSURE(enc != NULL, TFD_ERR_ARG);
    TFD_ENSURE(isfinite(enc->clip) && enc->clip > 0.0f, TFD_ERR_ARG);
    TFD_ENSURE(enc->frac_bits <= TFD_SA_MAX_FRAC_BITS, TFD_ERR_ARG);
    TFD_ENSURE(enc->weight_max >= 1, TFD_ERR_ARG);
    return TFD_OK;
}

/* B = floor(C * 2^f) + 1: the largest |word| one encoding can hold. */
static double word_bound(float clip, unsigned frac_bits)
{
    return floor((double)clip * (double)(UINT32_C(1) << frac_bits)) + 1.0;
}

tfd_status_t tfd_sa_check_encoding(uint32_t n_max, const tfd_sa_encoding_t *enc)
{
    TFD_TRY(check_params(enc));
    TFD_ENSURE(n_max >= 1, TFD_ERR_ARG);
    if ((double)n_max * word_bound(enc->clip, enc->frac_bits) > INT32_MAX_D) return TFD_ERR_OVERFLOW;
    if ((uint64_t)n_max * enc->weight_max > UINT32_MAX) return TFD_ERR_OVERFLOW;
    return TFD_OK;
}

tfd_status_t tfd_sa_choose_fraction_bits(uint8_t *frac_bits, uint32_t n_max, float clip)
{
    TFD_ENSURE(frac_bits != NULL, TFD_ERR_ARG);
    tfd_sa_encoding_t enc = {.clip = clip, .frac_bits = 0, .weight_max = 1};
    TFD_TRY(check_params(&enc));
    TFD_ENSURE(n_max >= 1, TFD_ERR_ARG);
    for (int f = (int)TFD_SA_MAX_FRAC_BITS; f >= 0; --f) {
        if ((double)n_max * word_bound(clip, (unsigned)f) <= INT32_MAX_D) {
            *frac_bits = (uint8_t)f;
            return TFD_OK;
        }
    }
    return TFD_ERR_OVERFLOW;
}

tfd_status_t tfd_sa_encoder_init(tfd_sa_encoder_t *e, const float *x, uint32_t n, const tfd_sa_encoding_t *enc,
                                 const tfd_sa_summed_t *summed, const uint8_t noise_key[32], uint32_t round)
{
    TFD_ENSURE(e != NULL && (x != NULL || n == 0) && noise_key != NULL && summed != NULL, TFD_ERR_ARG);
    TFD_TRY(check_params(enc));
    TFD_ENSURE(n <= UINT32_MAX - (uint32_t)TFD_SA_SUMMED_COUNT, TFD_ERR_ARG);
    const uint32_t weight = summed->weight;
    TFD_ENSURE(weight >= 1 && weight <= enc->weight_max, TFD_ERR_ARG);
    const double bound = word_bound(enc->clip, enc->frac_bits);
    TFD_ENSURE(bound <= INT32_MAX_D, TFD_ERR_OVERFLOW); /* one update must fit: |v| < 2^31 */

    double sumsq = 0.0;
    for (uint32_t i = 0; i < n; ++i) {
        TFD_ENSURE(isfinite(x[i]), TFD_ERR_ARG);
        const double d = (double)x[i];
        sumsq += d * d;
    }
    const double norm = sqrt(sumsq);
    const double clip = (double)enc->clip;
    const double g_clip = norm <= clip ? 1.0 : clip / norm;
    const double g = g_clip * ((double)weight / (double)enc->weight_max);

    e->x = x;
    e->n = n;
    e->summed = *summed;
    e->scale = g * (double)(UINT32_C(1) << enc->frac_bits);
    e->bound = (int64_t)bound;
    const tfd_status_t st = tfd_sa_kdf(e->noise_key, noise_key, TFD_SA_LABEL_ROUNDING, round, NULL, 0);
    if (st != TFD_OK) tfd_sa_encoder_wipe(e);
    return st;
}

int64_t tfd_sa_floor_times_2_32(double v, int *huge)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    const int neg = (int)(bits >> 63);
    const int e = (int)((bits >> 52) & 0x7FFu);
    uint64_t m = bits & ((UINT64_C(1) << 52) - 1u);
    *huge = e >= 1023 + 31;
    if (*huge) return 0;
    if (e == 0) return neg && m != 0 ? -1 : 0; /* +-0 or subnormal: |v| 2^32 < 1 */
    m |= UINT64_C(1) << 52;
    const int shift = e - 1075 + 32; /* v * 2^32 = +-m * 2^shift, shift <= 9 here */
    uint64_t ip;
    int rest = 0;
    if (shift >= 0) {
        ip = m << shift;
    } else if (shift > -64) {
        ip = m >> -shift;
        rest = (m & ((UINT64_C(1) << -shift) - 1u)) != 0;
    } else {
        ip = 0;
        rest = 1;
    }
    return neg ? -(int64_t)ip - rest : (int64_t)ip;
}

tfd_status_t tfd_sa_encode_chunk(const tfd_sa_encoder_t *e, uint32_t *words, uint32_t offset, uint32_t len)
{
    TFD_ENSURE(e != NULL && (words != NULL || len == 0), TFD_ERR_ARG);
    TFD_ENSURE((uint64_t)offset + len <= (uint64_t)e->n + TFD_SA_SUMMED_COUNT, TFD_ERR_ARG);
    const uint32_t n_params = offset >= e->n ? 0 : (len < e->n - offset ? len : e->n - offset);
    /* words may alias x + offset (in-place encoding): each x_i is read before word i
     * is written, both through memcpy (no type punning), and the rounding randomness
     * r_i goes through a block buffer of its own. */
    const uint8_t *xb = (const uint8_t *)(const void *)e->x;
    uint8_t *wb = (uint8_t *)(void *)words;
    uint32_t r[16];
    for (uint32_t b = 0; b < n_params; b += 16u) {
        const uint32_t m = n_params - b < 16u ? n_params - b : 16u;
        tfd_sa_prg(r, m, e->noise_key, offset + b);
        for (uint32_t j = 0; j < m; ++j) {
            float xi;
            memcpy(&xi, xb + 4u * ((size_t)offset + b + j), sizeof xi);
            const double v = (double)xi * e->scale;
            int huge;
            const int64_t s = tfd_sa_floor_times_2_32(v, &huge) + (int64_t)r[j];
            int64_t q = s >= 0 ? s / INT64_C(4294967296) : ~(~s / INT64_C(4294967296)); /* floor(s / 2^32) */
            if (huge) q = v > 0 ? e->bound : -e->bound; /* unreachable while |v| < B <= 2^31 - 1 */
            if (q > e->bound) q = e->bound;
            if (q < -e->bound) q = -e->bound;
            const uint32_t w = (uint32_t)q; /* two's complement mod 2^32 */
            memcpy(wb + 4u * ((size_t)b + j), &w, sizeof w);
        }
    }
    crypto_wipe(r, sizeof r);
    const uint32_t *summed = (const uint32_t *)(const void *)&e->summed; /* one u32 per TFD_SUMMED, in order */
    for (uint32_t i = n_params; i < len; ++i) words[i] = summed[offset + i - e->n]; /* words n.. */
    return TFD_OK;
}

void tfd_sa_encoder_wipe(tfd_sa_encoder_t *e)
{
    if (e != NULL) crypto_wipe(e, sizeof *e);
}

tfd_status_t tfd_sa_encode(uint32_t *words, const float *x, uint32_t n, const tfd_sa_encoding_t *enc,
                           const tfd_sa_summed_t *summed, const uint8_t noise_key[32], uint32_t round)
{
    TFD_ENSURE(words != NULL, TFD_ERR_ARG);
    tfd_sa_encoder_t e;
    TFD_TRY(tfd_sa_encoder_init(&e, x, n, enc, summed, noise_key, round));
    const tfd_status_t st = tfd_sa_encode_chunk(&e, words, 0, TFD_SA_WORDS(n));
    tfd_sa_encoder_wipe(&e);
    return st;
}
