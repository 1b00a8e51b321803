/* tinyfed — distributed differential privacy: the integer noise a device adds
 * to its encoded update before masking (tfd/secagg.h), so that the sum the
 * host unmasks already carries the noise and the host never sees an exact sum.
 *
 * Sampler: the exact discrete Gaussian N_Z(0, s2) of Canonne, Kamath & Steinke
 * (NeurIPS 2020, arXiv:2004.00010, Algorithms 1-3), integer arithmetic only
 * (no float, no allocation; 128-bit products as two uint64), on a sigma^2 = s2
 * that is an integer, TRUNCATED to |Y| <= L = 16 tt (tt = floor(sqrt(s2)) + 1 >
 * sigma): a proposal outside is rejected and sampling restarts, so a draw is
 * N_Z(0, s2) conditioned on |Y| <= L (total variation to the untruncated law
 * <= P(|Y| > 16 sigma) <= 2 exp(-128), sub-Gaussian tail of CKS20).
 *
 * Bits: the stream of uint32 words of PRG(key) = ChaCha20 (tfd_sa_prg, words
 * 0, 1, 2, ...).  bits(k) = the next ceil(k/32) words w_0.. combined little
 * endian (sum w_i 2^(32 i)), keeping the low k bits.  uniform(m), m >= 1:
 * k = bitlen(m - 1); k = 0 -> 0 (no word used); else draw bits(k) until < m.
 *   bern(n, d)        = uniform(d) < n                       (0 <= n <= d)
 *   bexp1(n, d)       = Bernoulli(exp(-n/d)), 0 <= n <= d:
 *                       K = 1; loop { if !bern(n, d) break; if uniform(K) != 0 break; K++ }; K odd
 *                       (Bernoulli(gamma/K) drawn as bern(gamma) AND Bernoulli(1/K))
 *   bexp(n, d)        = while n > d { if !bexp1(1, 1) return 0; n -= d }; bexp1(n, d)
 *   dlap(tt)          = loop { U = uniform(tt); if !bexp1(U, tt) continue;
 *                              V = 0; while bexp1(1, 1) { V++; if V > 16 break }; if V > 16 continue;
 *                              X = U + tt V; B = bits(1); if B && X == 0 continue; return B ? -X : X }
 *   sample            = loop { Y = dlap(tt); if |Y| > L continue;
 *                              if bexp((|Y| tt - s2)^2, 2 s2 tt^2) return Y }
 * host/secagg/dp_device.py is the Python mirror (same words, same samples);
 * tests/test_secagg_dp_device.py and bench/secagg_primitives.c (on the M4)
 * hold the two together.
 *
 * Calibration (the device computes it; host/secagg/dp_device.py the same):
 *   Delta = ceil(C 2^f) + ceil(C 2^f (d + 8) / 2^53) + ceil(sqrt(d))
 *       >= C 2^f (1 + (d + 8) 2^-53) + sqrt(d) >= ||q||_2 of one encoded
 *       update (host/secagg/dp.py: clip in double, stochastic rounding);
 *   s   = ceil(z_milli Delta / 1000)            (z = z_milli / 1000, < 2^32)
 *   s2  = ceil(s^2 / (m - 1))                   (m >= 2: the fewest survivors)
 * so that the noise of any m - 1 OTHER devices has variance >= (z Delta)^2:
 * for a device u, its own noise is independent of its data (post-processing),
 * and the remaining m - 1 noises sum to a distributed discrete Gaussian
 * (Kairouz, Liu & Steinke, ICML 2021) with noise multiplier >= z.
 * No wrap: each noised word is within B' + L, B' = Delta(d = 1) >= B =
 * floor(C 2^f) + 1, which must be <= 2^31 - 1 (TFD_ERR_OVERFLOW otherwise); the
 * host chooses f so that n_max (B' + L) <= 2^31 - 1 for the sum.
 */
#ifndef TFD_SECAGG_DP_H
#define TFD_SECAGG_DP_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

#define TFD_DP_TAIL 16u               /* L = TFD_DP_TAIL x tt */
#define TFD_DP_MAX_TT (UINT32_C(1) << 26) /* tt above this is refused (L < 2^31) */

/* The random words: ChaCha20 keystream of key, consumed in order. */
typedef struct {
    uint8_t key[32];
    uint32_t block;    /* next keystream block */
    uint32_t buf[16];
    uint8_t pos;       /* next unused word of buf (16: empty) */
    uint32_t words;    /* words consumed (for tests and the bench) */
} tfd_dp_rng_t;

/* One sampler: sigma^2 = s2 (an integer >= 1), tt = floor(sqrt(s2)) + 1, L = 16 tt. */
typedef struct {
    uint64_t s2;
    uint32_t tt;
    uint32_t limit;
} tfd_dp_gauss_t;

void tfd_dp_rng_init(tfd_dp_rng_t *r, const uint8_t key[32]);
void tfd_dp_rng_wipe(tfd_dp_rng_t *r);

/* TFD_ERR_ARG: s2 == 0; TFD_ERR_OVERFLOW: tt > TFD_DP_MAX_TT. */
TFD_CHECK_RESULT tfd_status_t tfd_dp_gauss_init(tfd_dp_gauss_t *g, uint64_t s2);

/* One draw (see the top of this file). */
int32_t tfd_dp_gauss_sample(const tfd_dp_gauss_t *g, tfd_dp_rng_t *r);

/* Delta (see the top of this file) for clip C > 0 finite, f <= 30, d >= 1. */
TFD_CHECK_RESULT tfd_status_t tfd_dp_sensitivity(uint64_t *delta, float clip, unsigned frac_bits, uint32_t d);

/* s2 for target noise multiplier z_milli / 1000 (>= 1) over m - 1 other
 * devices (m >= 2) and sensitivity delta: TFD_ERR_ARG for z_milli == 0 or
 * m < 2, TFD_ERR_OVERFLOW if s >= 2^32. */
TFD_CHECK_RESULT tfd_status_t tfd_dp_sigma_sq(uint64_t *s2, uint32_t z_milli, uint64_t delta, uint32_t m);

/* The largest |word| of one noised encoding, B + L; TFD_ERR_OVERFLOW if > 2^31 - 1. */
TFD_CHECK_RESULT tfd_status_t tfd_dp_word_bound(uint64_t *bound, float clip, unsigned frac_bits,
                                                const tfd_dp_gauss_t *g);

/* words[i] += one draw each (mod 2^32, in order i = 0..n-1) from the stream of key. */
void tfd_dp_add_noise(uint32_t *words, uint32_t n, const tfd_dp_gauss_t *g, const uint8_t key[32]);

#endif /* TFD_SECAGG_DP_H */
