/* tinyfed — the public-key operations of the host builds (tfd/pk.h), for
 * simulations of thousands of devices in one process.  A device image uses
 * firmware/src/crypto/pk.c (Monocypher) instead; toolchain/facts/manifests.py
 * picks this file for the in-process device library, the host device and the
 * SecAgg+ client harness only.
 *
 * X25519 (RFC 7748): field elements mod p = 2^255 - 19 in five 51-bit limbs,
 * products in unsigned __int128 (a 64-bit host: some 4x fewer multiplies than
 * Monocypher's portable ten 25.5-bit limbs), the RFC's Montgomery ladder with
 * a constant-time swap, inversion by Fermat (z^(p-2)).  Same clamping and
 * same treatment of the peer's top bit as Monocypher; the output is the
 * canonical encoding, so the bytes are Monocypher's for every input
 * (tests/test_pk_host.py: RFC vectors and random inputs, top bit and
 * non-canonical u-coordinates included).
 *
 * EdDSA checks: Monocypher's crypto_eddsa_check, memoized.  A simulated fleet
 * checks the same signature over the same bytes many times (each of a
 * device's k neighbours checks its signed advertisement; every holder counts
 * the same survivor-set signatures; every device checks the one fleet
 * manifest), and the answer is a pure function of (signature, public key,
 * message).  A table keeps the triples found VALID, keyed by every byte of
 * them (compared in full, not by a hash); a lookup that finds the exact
 * triple returns 0 without recomputing.  Anything else -- a new triple, any
 * bit different, a message over 64 bytes -- is checked by Monocypher, and an
 * invalid signature is never stored, so it is refused every time.  The table
 * is the only state shared between the virtual devices of a process (a mutex
 * guards it: fl_batch.c runs devices on several threads); it holds only
 * public bytes.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <string.h>

#include "monocypher.h"
#include "tfd/pk.h"

#if !defined(__SIZEOF_INT128__)
#error "pk_host.c needs a 64-bit host compiler with unsigned __int128"
#endif

typedef unsigned __int128 u128;
typedef uint64_t fe[5]; /* value = sum v[i] 2^(51 i); limbs kept below about 2^53 between carries */

#define MASK51 ((UINT64_C(1) << 51) - 1u)

static uint64_t load64_le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
    return v;
}

static void store64_le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

/* bytes -> element; bit 255 ignored, values in [p, 2^255) accepted as they are (reduced on the way) */
static void fe_load(fe h, const uint8_t s[32])
{
    const uint64_t w0 = load64_le(s), w1 = load64_le(s + 8), w2 = load64_le(s + 16), w3 = load64_le(s + 24);
    h[0] = w0 & MASK51;
    h[1] = (w0 >> 51 | w1 << 13) & MASK51;
    h[2] = (w1 >> 38 | w2 << 26) & MASK51;
    h[3] = (w2 >> 25 | w3 << 39) & MASK51;
    h[4] = (w3 >> 12) & MASK51;
}

/* element -> its canonical 32 bytes (fully reduced mod p) */
static void fe_store(uint8_t s[32], const fe f)
{
    uint64_t h[5];
    memcpy(h, f, sizeof h);
    for (int pass = 0; pass < 2; ++pass) { /* every limb < 2^51 after two passes: h < 2^255 < 2p */
        for (int i = 0; i < 4; ++i) {
            h[i + 1] += h[i] >> 51;
            h[i] &= MASK51;
        }
        h[0] += 19u * (h[4] >> 51);
        h[4] &= MASK51;
    }
    /* q = 1 iff h >= p, i.e. h + 19 >= 2^255 */
    uint64_t q = (h[0] + 19u) >> 51;
    for (int i = 1; i < 5; ++i) q = (h[i] + q) >> 51;
    h[0] += 19u * q; /* h - p = h + 19 - 2^255: add 19, drop bit 255 */
    for (int i = 0; i < 4; ++i) {
        h[i + 1] += h[i] >> 51;
        h[i] &= MASK51;
    }
    h[4] &= MASK51;
    store64_le(s, h[0] | h[1] << 51);
    store64_le(s + 8, h[1] >> 13 | h[2] << 38);
    store64_le(s + 16, h[2] >> 26 | h[3] << 25);
    store64_le(s + 24, h[3] >> 39 | h[4] << 12);
}

static void fe_add(fe h, const fe f, const fe g)
{
    for (int i = 0; i < 5; ++i) h[i] = f[i] + g[i];
}

/* f - g + 2p: g's limbs are carried (< 2^51 + 2^15), so no limb goes negative */
static void fe_sub(fe h, const fe f, const fe g)
{
    h[0] = f[0] + UINT64_C(0xFFFFFFFFFFFDA) - g[0];
    for (int i = 1; i < 5; ++i) h[i] = f[i] + UINT64_C(0xFFFFFFFFFFFFE) - g[i];
}

/* five 128-bit column sums -> carried limbs (< 2^51 + 2^15) */
/* inlined: as a call, its ten 128-bit arguments cost more than the arithmetic */
static inline __attribute__((always_inline)) void fe_carry(fe h, u128 r0, u128 r1, u128 r2, u128 r3, u128 r4)
{
    r1 += r0 >> 51;
    r2 += r1 >> 51;
    r3 += r2 >> 51;
    r4 += r3 >> 51;
    const u128 c = (r4 >> 51) * 19u + ((uint64_t)r0 & MASK51);
    h[0] = (uint64_t)c & MASK51;
    h[1] = ((uint64_t)r1 & MASK51) + (uint64_t)(c >> 51);
    h[2] = (uint64_t)r2 & MASK51;
    h[3] = (uint64_t)r3 & MASK51;
    h[4] = (uint64_t)r4 & MASK51;
}

static void fe_mul(fe h, const fe f, const fe g)
{
    const uint64_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4];
    const uint64_t g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3], g4 = g[4];
    const uint64_t g1_19 = 19u * g1, g2_19 = 19u * g2, g3_19 = 19u * g3, g4_19 = 19u * g4;
    const u128 r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 + (u128)f4 * g1_19;
    const u128 r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 + (u128)f4 * g2_19;
    const u128 r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 + (u128)f4 * g3_19;
    const u128 r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
    const u128 r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
    fe_carry(h, r0, r1, r2, r3, r4);
}

static void fe_sq(fe h, const fe f)
{
    const uint64_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4];
    const uint64_t f0_2 = 2u * f0, f1_2 = 2u * f1, f3_38 = 38u * f3, f4_19 = 19u * f4, f4_38 = 38u * f4;
    const u128 r0 = (u128)f0 * f0 + (u128)f1_2 * f4_19 + (u128)f2 * (2u * f3 * 19u);
    const u128 r1 = (u128)f0_2 * f1 + (u128)f3 * (19u * f3) + (u128)f2 * f4_38;
    const u128 r2 = (u128)f0_2 * f2 + (u128)f1 * f1 + (u128)f3_38 * f4;
    const u128 r3 = (u128)f0_2 * f3 + (u128)f1_2 * f2 + (u128)f4 * f4_19;
    const u128 r4 = (u128)f0_2 * f4 + (u128)f1_2 * f3 + (u128)f2 * f2;
    fe_carry(h, r0, r1, r2, r3, r4);
}

static void fe_sq_n(fe h, const fe f, int n)
{
    fe_sq(h, f);
    while (--n > 0) fe_sq(h, h);
}

static void fe_mul_small(fe h, const fe f, uint32_t k)
{
    fe_carry(h, (u128)f[0] * k, (u128)f[1] * k, (u128)f[2] * k, (u128)f[3] * k, (u128)f[4] * k);
}

/* h = z^(p - 2) = 1 / z (0 for z = 0); p - 2 = 2^255 - 21 */
static void fe_invert(fe h, const fe z)
{
    fe z2, z9, z11, a, b, c, t;
    fe_sq(z2, z);              /* z^2 */
    fe_sq_n(t, z2, 2);         /* z^8 */
    fe_mul(z9, t, z);          /* z^9 */
    fe_mul(z11, z9, z2);       /* z^11 */
    fe_sq(t, z11);             /* z^22 */
    fe_mul(a, t, z9);          /* z^(2^5 - 1) */
    fe_sq_n(t, a, 5);
    fe_mul(a, t, a);           /* z^(2^10 - 1) */
    fe_sq_n(t, a, 10);
    fe_mul(b, t, a);           /* z^(2^20 - 1) */
    fe_sq_n(t, b, 20);
    fe_mul(t, t, b);           /* z^(2^40 - 1) */
    fe_sq_n(t, t, 10);
    fe_mul(b, t, a);           /* z^(2^50 - 1) */
    fe_sq_n(t, b, 50);
    fe_mul(c, t, b);           /* z^(2^100 - 1) */
    fe_sq_n(t, c, 100);
    fe_mul(t, t, c);           /* z^(2^200 - 1) */
    fe_sq_n(t, t, 50);
    fe_mul(t, t, b);           /* z^(2^250 - 1) */
    fe_sq_n(t, t, 5);          /* z^(2^255 - 32) */
    fe_mul(h, t, z11);         /* z^(2^255 - 21) */
}

static void fe_cswap(fe f, fe g, uint64_t bit)
{
    const uint64_t m = (uint64_t)0 - bit;
    for (int i = 0; i < 5; ++i) {
        const uint64_t x = m & (f[i] ^ g[i]);
        f[i] ^= x;
        g[i] ^= x;
    }
}

void tfd_pk_x25519(uint8_t shared[32], const uint8_t secret_key[32], const uint8_t their_public_key[32])
{
    uint8_t k[32];
    memcpy(k, secret_key, 32);
    k[0] &= 248u;
    k[31] &= 127u;
    k[31] |= 64u;
    fe x1, x2 = {1}, z2 = {0}, x3, z3 = {1}, a, aa, b, bb, e, c, d, da, cb, t;
    fe_load(x1, their_public_key);
    memcpy(x3, x1, sizeof x3);
    uint64_t swap = 0;
    for (int pos = 254; pos >= 0; --pos) {
        const uint64_t bit = (uint64_t)(k[pos >> 3] >> (pos & 7)) & 1u;
        swap ^= bit;
        fe_cswap(x2, x3, swap);
        fe_cswap(z2, z3, swap);
        swap = bit;
        fe_add(a, x2, z2);
        fe_sq(aa, a);
        fe_sub(b, x2, z2);
        fe_sq(bb, b);
        fe_sub(e, aa, bb);
        fe_add(c, x3, z3);
        fe_sub(d, x3, z3);
        fe_mul(da, d, a);
        fe_mul(cb, c, b);
        fe_add(t, da, cb);
        fe_sq(x3, t);
        fe_sub(t, da, cb);
        fe_sq(t, t);
        fe_mul(z3, x1, t);
        fe_mul(x2, aa, bb);
        fe_mul_small(t, e, 121665u);
        fe_add(t, aa, t);
        fe_mul(z2, e, t);
    }
    fe_cswap(x2, x3, swap);
    fe_cswap(z2, z3, swap);
    fe_invert(z2, z2);
    fe_mul(x2, x2, z2);
    fe_store(shared, x2);
    crypto_wipe(k, sizeof k);
    crypto_wipe(x2, sizeof x2), crypto_wipe(z2, sizeof z2), crypto_wipe(x3, sizeof x3), crypto_wipe(z3, sizeof z3);
    crypto_wipe(a, sizeof a), crypto_wipe(aa, sizeof aa), crypto_wipe(b, sizeof b), crypto_wipe(bb, sizeof bb);
    crypto_wipe(e, sizeof e), crypto_wipe(c, sizeof c), crypto_wipe(d, sizeof d), crypto_wipe(da, sizeof da);
    crypto_wipe(cb, sizeof cb), crypto_wipe(t, sizeof t);
}

void tfd_pk_x25519_public_key(uint8_t public_key[32], const uint8_t secret_key[32])
{
    static const uint8_t base_point[32] = {9};
    tfd_pk_x25519(public_key, secret_key, base_point);
}

/* ---- EdDSA checks, memoized ------------------------------------------------------------ */
#define MEMO_MSG_MAX 64u
#define MEMO_WAYS 4u
#define MEMO_SETS (1u << 15) /* 131,072 triples, about 21 MB: a round of 10,000 devices checks 20,000 */

typedef struct {
    uint8_t sig[64];
    uint8_t pk[32];
    uint8_t msg[MEMO_MSG_MAX];
    uint8_t msg_len;
    uint8_t used;
} memo_entry_t;

static memo_entry_t g_memo[MEMO_SETS][MEMO_WAYS];
static pthread_mutex_t g_memo_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_memo_hits, g_memo_checks;

static uint64_t memo_hash(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * UINT64_C(0x100000001b3); /* FNV-1a: a table index only */
    return h;
}

static int memo_match(const memo_entry_t *e, const uint8_t sig[64], const uint8_t pk[32], const uint8_t *msg,
                      size_t len)
{
    return e->used && e->msg_len == len && memcmp(e->sig, sig, 64) == 0 && memcmp(e->pk, pk, 32) == 0 &&
           (len == 0 || memcmp(e->msg, msg, len) == 0);
}

int tfd_pk_eddsa_check(const uint8_t signature[64], const uint8_t public_key[32], const uint8_t *message,
                       size_t message_size)
{
    if (message_size > MEMO_MSG_MAX || (message == NULL && message_size != 0)) {
        return crypto_eddsa_check(signature, public_key, message, message_size);
    }
    uint64_t h = memo_hash(signature, 64, UINT64_C(0xcbf29ce484222325));
    h = memo_hash(public_key, 32, h);
    if (message_size) h = memo_hash(message, message_size, h);
    memo_entry_t *set = g_memo[h % MEMO_SETS];
    pthread_mutex_lock(&g_memo_lock);
    g_memo_checks++;
    for (unsigned w = 0; w < MEMO_WAYS; ++w) {
        if (memo_match(&set[w], signature, public_key, message, message_size)) {
            g_memo_hits++;
            pthread_mutex_unlock(&g_memo_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&g_memo_lock);
    const int r = crypto_eddsa_check(signature, public_key, message, message_size);
    if (r != 0) return r; /* invalid: never stored */
    pthread_mutex_lock(&g_memo_lock);
    unsigned w = 0;
    while (w < MEMO_WAYS && set[w].used) ++w;
    if (w == MEMO_WAYS) w = (unsigned)(h >> 60) % MEMO_WAYS; /* a full set: replace one */
    memcpy(set[w].sig, signature, 64);
    memcpy(set[w].pk, public_key, 32);
    if (message_size) memcpy(set[w].msg, message, message_size);
    set[w].msg_len = (uint8_t)message_size;
    set[w].used = 1;
    pthread_mutex_unlock(&g_memo_lock);
    return 0;
}

/* checks answered so far and how many of them from the table (bench/, tests) */
__attribute__((visibility("default"))) void tfd_pk_host_memo_stats(uint64_t out[2]);
void tfd_pk_host_memo_stats(uint64_t out[2])
{
    pthread_mutex_lock(&g_memo_lock);
    out[0] = g_memo_checks;
    out[1] = g_memo_hits;
    pthread_mutex_unlock(&g_memo_lock);
}
