/* tinyfed — the SecAgg+ PRG's keystream in the host builds that run many virtual devices
 * (tfd_sa_prg_add, tfd/secagg.h); a device image uses firmware/src/crypto/keystream.c.
 *
 * The same ChaCha20-IETF words (RFC 8439: nonce 0, block counter word_offset / 16, 32 bits,
 * wrapping as the device's).  Four blocks at a time when four or more are wanted: the 16 state
 * words of four consecutive blocks in 4-lane vectors (GCC vector extensions: SSE2 on x86-64,
 * NEON on arm64), the rounds run once for four blocks; fewer (the device reads its masked
 * vector 16 words at a time: one block per key per read) one block with its four rows in
 * vectors.  The working
 * state is wiped with explicit_bzero (Monocypher's byte-wise crypto_wipe cost more than the
 * keystream).  tests/test_pk_host.py: equal to the device's function on random keys, offsets,
 * lengths and signs, and to the host's Python reference.
 */
#define _DEFAULT_SOURCE /* explicit_bzero */

#include <string.h>

#include "tfd/secagg.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "keystream words are the state words as they lie in memory: little-endian hosts only"
#endif

typedef uint32_t v4 __attribute__((vector_size(16)));

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define QR(a, b, c, d)                 \
    do {                               \
        a += b, d ^= a, d = ROTL(d, 16); \
        c += d, b ^= c, b = ROTL(b, 12); \
        a += b, d ^= a, d = ROTL(d, 8);  \
        c += d, b ^= c, b = ROTL(b, 7);  \
    } while (0)

/* words of blocks ctr .. ctr + 3: out[16 * lane + i] = word i of block ctr + lane */
static void chacha20_4blocks(uint32_t out[64], const uint32_t key[8], uint32_t ctr)
{
    v4 s[16];
    static const uint32_t sigma[4] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u}; /* "expand 32-byte k" */
    for (int i = 0; i < 4; ++i) s[i] = (v4){sigma[i], sigma[i], sigma[i], sigma[i]};
    for (int i = 0; i < 8; ++i) s[4 + i] = (v4){key[i], key[i], key[i], key[i]};
    s[12] = (v4){ctr, ctr + 1u, ctr + 2u, ctr + 3u};
    s[13] = s[14] = s[15] = (v4){0, 0, 0, 0}; /* nonce: 12 zero bytes */
    v4 x[16];
    memcpy(x, s, sizeof x);
    for (int r = 0; r < 10; ++r) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; ++i) {
        const v4 w = x[i] + s[i];
        for (int lane = 0; lane < 4; ++lane) out[16 * lane + i] = w[lane];
    }
    explicit_bzero(x, sizeof x);
    explicit_bzero(s, sizeof s);
}

/* one block: the state as four rows of four words (a, b, c, d), a column round on the rows,
 * then the diagonal round on the rows rotated so that each diagonal lies in one lane */
#if defined(__clang__)
#define ROT_LANES(v, k) __builtin_shufflevector((v), (v), (k) & 3, ((k) + 1) & 3, ((k) + 2) & 3, ((k) + 3) & 3)
#else
#define ROT_LANES(v, k) __builtin_shuffle((v), (v4){(k) & 3, ((k) + 1) & 3, ((k) + 2) & 3, ((k) + 3) & 3})
#endif

static void chacha20_block(uint32_t out[16], const uint32_t key[8], uint32_t ctr)
{
    const v4 a0 = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u}; /* "expand 32-byte k" */
    const v4 b0 = {key[0], key[1], key[2], key[3]}, c0 = {key[4], key[5], key[6], key[7]};
    const v4 d0 = {ctr, 0, 0, 0}; /* the zero nonce */
    v4 a = a0, b = b0, c = c0, d = d0;
    for (int r = 0; r < 10; ++r) {
        QR(a, b, c, d); /* columns */
        b = ROT_LANES(b, 1), c = ROT_LANES(c, 2), d = ROT_LANES(d, 3);
        QR(a, b, c, d); /* diagonals */
        b = ROT_LANES(b, 3), c = ROT_LANES(c, 2), d = ROT_LANES(d, 1);
    }
    a += a0, b += b0, c += c0, d += d0;
    memcpy(out, &a, 16), memcpy(out + 4, &b, 16), memcpy(out + 8, &c, 16), memcpy(out + 12, &d, 16);
    explicit_bzero(&a, sizeof a), explicit_bzero(&b, sizeof b), explicit_bzero(&c, sizeof c);
    explicit_bzero(&d, sizeof d);
}

void tfd_sa_prg_add(uint32_t *acc, size_t n, const uint8_t key[32], uint32_t word_offset, int negate)
{
    uint32_t k[8], words[64];
    memcpy(k, key, sizeof k); /* little-endian host */
    uint32_t ctr = word_offset / 16u;
    unsigned i = word_offset % 16u;
    while (n > 0) {
        unsigned have;
        if ((i + n + 15u) / 16u >= 4u) {
            chacha20_4blocks(words, k, ctr);
            ctr += 4u, have = 64u;
        } else {
            chacha20_block(words, k, ctr);
            ctr += 1u, have = 16u;
        }
        if (negate) {
            for (; i < have && n > 0; ++i, --n, ++acc) *acc -= words[i];
        } else {
            for (; i < have && n > 0; ++i, --n, ++acc) *acc += words[i];
        }
        i = 0;
    }
    explicit_bzero(words, sizeof words);
    explicit_bzero(k, sizeof k);
}
