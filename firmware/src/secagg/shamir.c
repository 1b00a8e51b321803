/* tinyfed — Shamir secret sharing of 32-byte secrets over GF(2^8) (tfd/secagg.h).
 *
 * Field: GF(2)[x] / (x^8 + x^4 + x^3 + x + 1) (0x11B, AES).  Multiplication
 * is bit-serial with all-ones/all-zeros masks: the same instructions run for
 * every operand value (no tables indexed by secrets, no secret branches). */
#include <string.h>

#include "monocypher.h"
#include "tfd/secagg.h"

static uint8_t gf_mul(uint8_t a, uint8_t b)
{
    uint8_t p = 0;
    for (int i = 0; i < 8; ++i) {
        p ^= (uint8_t)(-(b & 1u) & a);
        const uint8_t carry = (uint8_t)-(a >> 7);
        a = (uint8_t)((a << 1) ^ (carry & 0x1Bu));
        b >>= 1;
    }
    return p;
}

/* a^254 = a^-1 for a != 0 (fixed square-and-multiply chain). */
static uint8_t gf_inv(uint8_t a)
{
    uint8_t r = 1, sq = a;
    for (int i = 1; i < 8; ++i) {
        sq = gf_mul(sq, sq); /* a^(2^i) */
        r = gf_mul(r, sq);
    }
    return r;
}

tfd_status_t tfd_sa_shamir_split(uint8_t (*shares)[32], const uint8_t secret[32], unsigned t, unsigned k,
                                 const uint8_t *rand, size_t rand_len)
{
    TFD_ENSURE(shares != NULL && secret != NULL, TFD_ERR_ARG);
    TFD_ENSURE(t >= 1 && t <= k && k <= TFD_SA_MAX_HOLDERS, TFD_ERR_ARG);
    TFD_ENSURE(rand_len == (size_t)32 * (t - 1) && (rand != NULL || t == 1), TFD_ERR_ARG);
    for (unsigned h = 1; h <= k; ++h) {
        const uint8_t x = (uint8_t)h;
        for (unsigned j = 0; j < 32; ++j) {
            uint8_t y = 0; /* Horner: ((a_{t-1} x + a_{t-2}) x + ...) x + a_0 */
            for (unsigned c = t - 1; c >= 1; --c) y = gf_mul((uint8_t)(y ^ rand[32 * (c - 1) + j]), x);
            shares[h - 1][j] = (uint8_t)(y ^ secret[j]);
        }
    }
    return TFD_OK;
}

tfd_status_t tfd_sa_shamir_combine(uint8_t secret[32], const uint8_t *xs, const uint8_t (*shares)[32],
                                   unsigned m)
{
    TFD_ENSURE(secret != NULL && xs != NULL && shares != NULL, TFD_ERR_ARG);
    TFD_ENSURE(m >= 1 && m <= TFD_SA_MAX_HOLDERS, TFD_ERR_ARG);
    for (unsigned i = 0; i < m; ++i) {
        TFD_ENSURE(xs[i] != 0, TFD_ERR_ARG);
        for (unsigned j = i + 1; j < m; ++j) TFD_ENSURE(xs[i] != xs[j], TFD_ERR_ARG);
    }
    uint8_t acc[32] = {0};
    for (unsigned i = 0; i < m; ++i) {
        /* L_i(0) = prod_{j != i} x_j / (x_j - x_i); "-" is XOR. */
        uint8_t num = 1, den = 1;
        for (unsigned j = 0; j < m; ++j) {
            if (j == i) continue;
            num = gf_mul(num, xs[j]);
            den = gf_mul(den, (uint8_t)(xs[j] ^ xs[i]));
        }
        const uint8_t li = gf_mul(num, gf_inv(den));
        for (unsigned b = 0; b < 32; ++b) acc[b] ^= gf_mul(li, shares[i][b]);
    }
    memcpy(secret, acc, sizeof acc);
    crypto_wipe(acc, sizeof acc);
    return TFD_OK;
}
