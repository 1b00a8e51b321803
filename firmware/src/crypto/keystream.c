/* tinyfed — the SecAgg+ PRG's keystream on a device (tfd_sa_prg_add, tfd/secagg.h): Monocypher's
 * ChaCha20-IETF, one 64-byte block at a time (64 bytes of stack).  The host builds that run many
 * virtual devices use firmware/native/keystream_host.c instead (the same words). */
#include "monocypher.h"
#include "tfd/secagg.h"

#define WORDS_PER_BLOCK 16u

void tfd_sa_prg_add(uint32_t *acc, size_t n, const uint8_t key[32], uint32_t word_offset, int negate)
{
    static const uint8_t nonce[12] = {0};
    uint8_t block[4 * WORDS_PER_BLOCK];
    uint32_t ctr = word_offset / WORDS_PER_BLOCK;
    unsigned i = word_offset % WORDS_PER_BLOCK;
    while (n > 0) {
        crypto_chacha20_ietf(block, NULL, sizeof block, key, nonce, ctr++);
        for (; i < WORDS_PER_BLOCK && n > 0; ++i, --n, ++acc) {
            const uint8_t *b = block + 4 * i;
            const uint32_t w = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            *acc = negate ? *acc - w : *acc + w;
        }
        i = 0;
    }
    crypto_wipe(block, sizeof block);
}
