/* tinyfed — the SecAgg+ PRG's keystream in the host builds that run many virtual devices
 * (tfd_sa_prg_add, tfd/secagg.h); a device image uses firmware/src/crypto/keystream.c.
 *
 * The same ChaCha20-IETF words (RFC 8439: nonce 0, block counter word_offset / 16, 32 bits,
 * wrapping as the device's).  Four blocks at a time when four or more are wanted: the 16 state
 * words of four consecutive blocks in 4-lane vectors (GCC vector extensions: SSE2 on x86-64,
 * NEON on arm64), the rounds run once for four blocks; fewer (the device reads its masked
 * vector 16 words at a time: one block per key per read) in plain 32-bit words.  The working
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

/* one block: the same rounds on 32-bit words */
static void chacha20_block(uint32_t out[16], const uint32_t key[8], uint32_t ctr)
{
    uint32_t s[16] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u};
    memcpy(s + 4, key, 32);
    s[12] = ctr; /* s[13..15]: the zero nonce */
    uint32_t x[16];
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
    for (int i = 0; i < 16; ++i) out[i] = x[i] + s[i];
    explicit_bzero(x, sizeof x);
    explicit_bzero(s, sizeof s);
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
