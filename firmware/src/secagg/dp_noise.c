/* tinyfed — the device's distributed-DP noise: an exact, truncated discrete
 * Gaussian from a ChaCha20 stream, integer arithmetic only (tfd/secagg_dp.h
 * has the algorithm, the calibration and the bounds). */
#include <string.h>

#include "monocypher.h"
#include "tfd/secagg.h"
#include "tfd/secagg_dp.h"

/* ---- 128-bit unsigned arithmetic (no __int128 on 32-bit Arm) ------------------------------ */
typedef struct {
    uint64_t hi, lo;
} u128_t;

static u128_t u128(uint64_t v)
{
    const u128_t r = {0, v};
    return r;
}

static u128_t mul64(uint64_t a, uint64_t b)
{
    const uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    u128_t r;
    r.lo = (mid << 32) | (uint32_t)p00;
    r.hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    return r;
}

static int lt(u128_t a, u128_t b)
{
    return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}

static int is_zero(u128_t a)
{
    return a.hi == 0 && a.lo == 0;
}

static u128_t sub(u128_t a, u128_t b)
{
    u128_t r;
    r.lo = a.lo - b.lo;
    r.hi = a.hi - b.hi - (a.lo < b.lo ? 1u : 0u);
    return r;
}

static u128_t dec(u128_t a)
{
    return sub(a, u128(1));
}

static unsigned bitlen64(uint64_t v)
{
#if defined(__GNUC__)
    return v ? 64u - (unsigned)__builtin_clzll(v) : 0u;
#else
    unsigned n = 0;
    while (v) {
        ++n;
        v >>= 1;
    }
    return n;
#endif
}

static unsigned bitlen(u128_t a)
{
    return a.hi ? 64u + bitlen64(a.hi) : bitlen64(a.lo);
}

/* ---- the word stream ---------------------------------------------------------------------- */
void tfd_dp_rng_init(tfd_dp_rng_t *r, const uint8_t key[32])
{
    memset(r, 0, sizeof *r);
    memcpy(r->key, key, 32);
    r->pos = 16;
}

void tfd_dp_rng_wipe(tfd_dp_rng_t *r)
{
    crypto_wipe(r, sizeof *r);
}

static uint32_t next_word(tfd_dp_rng_t *r)
{
    if (r->pos >= 16u) {
        tfd_sa_prg(r->buf, 16, r->key, 16u * r->block);
        r->block++;
        r->pos = 0;
    }
    r->words++;
    return r->buf[r->pos++];
}

/* the low k bits (1 <= k <= 128) of the next ceil(k / 32) words, little endian */
static u128_t bits(tfd_dp_rng_t *r, unsigned k)
{
    uint32_t w[4] = {0, 0, 0, 0};
    const unsigned nw = (k + 31u) / 32u;
    for (unsigned i = 0; i < nw; ++i) w[i] = next_word(r);
    u128_t v = {((uint64_t)w[3] << 32) | w[2], ((uint64_t)w[1] << 32) | w[0]};
    if (k < 64u) {
        v.hi = 0;
        v.lo &= (UINT64_C(1) << k) - 1u;
    } else if (k < 128u) {
        v.hi &= k == 64u ? 0u : (UINT64_C(1) << (k - 64u)) - 1u;
    }
    return v;
}

/* uniform in [0, m), m >= 1 */
static u128_t uniform(tfd_dp_rng_t *r, u128_t m)
{
    const unsigned k = bitlen(dec(m));
    if (k == 0) return u128(0);
    for (;;) {
        const u128_t v = bits(r, k);
        if (lt(v, m)) return v;
    }
}

/* Bernoulli(n / d), 0 <= n <= d, d >= 1 */
static int bern(tfd_dp_rng_t *r, u128_t n, u128_t d)
{
    return lt(uniform(r, d), n);
}

/* Bernoulli(exp(-n / d)), 0 <= n <= d (CKS20 Algorithm 1, gamma in [0, 1]) */
static int bexp1(tfd_dp_rng_t *r, u128_t n, u128_t d)
{
    uint64_t k = 1;
    for (;;) {
        if (!bern(r, n, d)) break;
        if (!is_zero(uniform(r, u128(k)))) break;
        ++k;
    }
    return (int)(k & 1u);
}

/* Bernoulli(exp(-n / d)), n >= 0 (CKS20 Algorithm 1) */
static int bexp(tfd_dp_rng_t *r, u128_t n, u128_t d)
{
    while (lt(d, n)) {
        if (!bexp1(r, u128(1), u128(1))) return 0;
        n = sub(n, d);
    }
    return bexp1(r, n, d);
}

/* discrete Laplace of scale tt (CKS20 Algorithm 2), |X| < 17 tt */
static int64_t dlap(tfd_dp_rng_t *r, uint32_t tt)
{
    for (;;) {
        const uint64_t u = uniform(r, u128(tt)).lo;
        if (!bexp1(r, u128(u), u128(tt))) continue;
        uint32_t v = 0;
        while (bexp1(r, u128(1), u128(1))) {
            if (++v > TFD_DP_TAIL) break;
        }
        if (v > TFD_DP_TAIL) continue; /* |X| >= 17 tt > L: rejected below anyway */
        const int64_t x = (int64_t)(u + (uint64_t)tt * v);
        const int neg = (int)bits(r, 1).lo;
        if (neg && x == 0) continue;
        return neg ? -x : x;
    }
}

/* floor(sqrt(v)), bit by bit */
static uint64_t isqrt64(uint64_t v)
{
    uint64_t root = 0, bit = UINT64_C(1) << 62;
    while (bit > v) bit >>= 2;
    while (bit) {
        if (v >= root + bit) {
            v -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

tfd_status_t tfd_dp_gauss_init(tfd_dp_gauss_t *g, uint64_t s2)
{
    TFD_ENSURE(g != NULL && s2 >= 1, TFD_ERR_ARG);
    const uint64_t root = isqrt64(s2);
    TFD_ENSURE(root + 1 <= TFD_DP_MAX_TT, TFD_ERR_OVERFLOW);
    g->s2 = s2;
    g->tt = (uint32_t)(root + 1);
    g->limit = TFD_DP_TAIL * g->tt;
    return TFD_OK;
}

int32_t tfd_dp_gauss_sample(const tfd_dp_gauss_t *g, tfd_dp_rng_t *r)
{
    const uint64_t tt = g->tt;
    const u128_t den = mul64(2u * g->s2, tt * tt); /* 2 s2 tt^2 < 2^107 */
    for (;;) {
        const int64_t y = dlap(r, g->tt);
        const uint64_t a = (uint64_t)(y < 0 ? -y : y);
        if (a > g->limit) continue;
        const uint64_t at = a * tt; /* < 2^57 */
        const uint64_t diff = at >= g->s2 ? at - g->s2 : g->s2 - at;
        if (bexp(r, mul64(diff, diff), den)) return (int32_t)y;
    }
}

/* ceil(m 2^e) for m >= 0, any e */
static uint64_t ceil_pow2(uint64_t m, int e)
{
    if (e >= 0) return m << e;
    if (e <= -64) return m != 0;
    const uint64_t q = m >> -e;
    return q + ((m & ((UINT64_C(1) << -e) - 1u)) != 0);
}

tfd_status_t tfd_dp_sensitivity(uint64_t *delta, float clip, unsigned frac_bits, uint32_t d)
{
    uint32_t bits32;
    memcpy(&bits32, &clip, sizeof bits32);
    const unsigned ef = (bits32 >> 23) & 0xFFu;
    /* a positive finite float: clip = mant 2^e exactly (IEEE binary32) */
    TFD_ENSURE(delta != NULL && (bits32 >> 31) == 0 && ef != 0xFFu && (bits32 & 0x7FFFFFFFu) != 0 &&
                   frac_bits <= TFD_SA_MAX_FRAC_BITS && d >= 1,
               TFD_ERR_ARG);
    const uint64_t mant = ef ? (bits32 & 0x7FFFFFu) | (UINT32_C(1) << 23) : (bits32 & 0x7FFFFFu);
    const int e = (ef ? (int)ef : 1) - 150 + (int)frac_bits; /* C 2^f = mant 2^e */
    TFD_ENSURE(e <= 15, TFD_ERR_OVERFLOW); /* C 2^f < 2^39: far beyond any usable encoding */
    const uint64_t root = isqrt64(d);
    const uint64_t sqrt_up = root + (root * root != d);
    *delta = ceil_pow2(mant, e) + ceil_pow2(mant * ((uint64_t)d + 8u), e - 53) + sqrt_up;
    return TFD_OK;
}

tfd_status_t tfd_dp_sigma_sq(uint64_t *s2, uint32_t z_milli, uint64_t delta, uint32_t m)
{
    TFD_ENSURE(s2 != NULL && z_milli >= 1 && m >= 2 && delta >= 1, TFD_ERR_ARG);
    TFD_ENSURE(delta <= UINT64_MAX / z_milli, TFD_ERR_OVERFLOW);
    const uint64_t p = (uint64_t)z_milli * delta;
    const uint64_t s = p / 1000u + (p % 1000u != 0);
    TFD_ENSURE(s <= UINT32_MAX, TFD_ERR_OVERFLOW);
    const uint64_t sq = s * s;
    *s2 = sq / (m - 1u) + (sq % (m - 1u) != 0);
    return TFD_OK;
}

tfd_status_t tfd_dp_word_bound(uint64_t *bound, float clip, unsigned frac_bits, const tfd_dp_gauss_t *g)
{
    uint64_t b;
    TFD_TRY(tfd_dp_sensitivity(&b, clip, frac_bits, 1)); /* = ceil(C 2^f) + 1 + 1 >= B = floor(C 2^f) + 1 */
    TFD_ENSURE(g != NULL, TFD_ERR_ARG);
    const uint64_t total = b + g->limit;
    TFD_ENSURE(total <= INT32_MAX, TFD_ERR_OVERFLOW);
    *bound = total;
    return TFD_OK;
}

void tfd_dp_add_noise(uint32_t *words, uint32_t n, const tfd_dp_gauss_t *g, const uint8_t key[32])
{
    tfd_dp_rng_t r;
    tfd_dp_rng_init(&r, key);
    for (uint32_t i = 0; i < n; ++i) words[i] += (uint32_t)tfd_dp_gauss_sample(g, &r);
    tfd_dp_rng_wipe(&r);
}
