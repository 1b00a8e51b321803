/* tinyfed boards — BLAKE2s, written from RFC 7693 section 3. */
#include "blake2s.h"

#include <string.h>

static const uint32_t kIv[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

static const uint8_t kSigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32u - n));
}

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void mix(uint32_t v[16], int a, int b, int c, int d, uint32_t x, uint32_t y)
{
    v[a] = v[a] + v[b] + x;
    v[d] = rotr(v[d] ^ v[a], 16);
    v[c] = v[c] + v[d];
    v[b] = rotr(v[b] ^ v[c], 12);
    v[a] = v[a] + v[b] + y;
    v[d] = rotr(v[d] ^ v[a], 8);
    v[c] = v[c] + v[d];
    v[b] = rotr(v[b] ^ v[c], 7);
}

static void compress(tfd_blake2s_t *s, int last)
{
    uint32_t v[16], m[16];
    for (int i = 0; i < 16; ++i) m[i] = load32(s->buf + 4 * i);
    for (int i = 0; i < 8; ++i) {
        v[i] = s->h[i];
        v[i + 8] = kIv[i];
    }
    v[12] ^= s->t[0];
    v[13] ^= s->t[1];
    if (last) v[14] = ~v[14];
    for (int r = 0; r < 10; ++r) {
        const uint8_t *sg = kSigma[r];
        mix(v, 0, 4, 8, 12, m[sg[0]], m[sg[1]]);
        mix(v, 1, 5, 9, 13, m[sg[2]], m[sg[3]]);
        mix(v, 2, 6, 10, 14, m[sg[4]], m[sg[5]]);
        mix(v, 3, 7, 11, 15, m[sg[6]], m[sg[7]]);
        mix(v, 0, 5, 10, 15, m[sg[8]], m[sg[9]]);
        mix(v, 1, 6, 11, 12, m[sg[10]], m[sg[11]]);
        mix(v, 2, 7, 8, 13, m[sg[12]], m[sg[13]]);
        mix(v, 3, 4, 9, 14, m[sg[14]], m[sg[15]]);
    }
    for (int i = 0; i < 8; ++i) s->h[i] ^= v[i] ^ v[i + 8];
}

void tfd_blake2s_init(tfd_blake2s_t *s, size_t outlen, const uint8_t *key, size_t keylen)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 8; ++i) s->h[i] = kIv[i];
    s->h[0] ^= 0x01010000u ^ ((uint32_t)keylen << 8) ^ (uint32_t)outlen;
    s->outlen = outlen;
    if (keylen > 0) {
        tfd_blake2s_update(s, key, keylen);
        s->buflen = 64; /* the key block is a full block */
    }
}

void tfd_blake2s_update(tfd_blake2s_t *s, const void *data, size_t len)
{
    const uint8_t *in = data;
    for (size_t i = 0; i < len; ++i) {
        if (s->buflen == 64) {
            s->t[0] += 64;
            if (s->t[0] < 64) s->t[1]++;
            compress(s, 0);
            s->buflen = 0;
        }
        s->buf[s->buflen++] = in[i];
    }
}

void tfd_blake2s_final(tfd_blake2s_t *s, uint8_t *out)
{
    s->t[0] += (uint32_t)s->buflen;
    if (s->t[0] < s->buflen) s->t[1]++;
    memset(s->buf + s->buflen, 0, 64 - s->buflen);
    compress(s, 1);
    for (size_t i = 0; i < s->outlen; ++i) out[i] = (uint8_t)(s->h[i >> 2] >> (8 * (i & 3u)));
    memset(s, 0, sizeof *s);
}
