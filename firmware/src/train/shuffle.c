/* tinyfed training engine — deterministic sample order without memory.
 *
 * Epoch e of a run with seed s visits sample perm(i) at position i, where perm
 * is a keyed bijection on [0, n): a few rounds of (add key, multiply by an odd
 * key, xor-shift) on the smallest power-of-two domain >= n -- each round is a
 * bijection modulo 2^k -- with cycle walking back into [0, n).  The same
 * (seed, epoch, n) gives the same order on every build. */
#include "tfd/train.h"

static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

uint32_t tfd_train_shuffle_index(uint32_t seed, uint32_t epoch, uint32_t n, uint32_t i)
{
    if (n <= 1) return 0;
    uint32_t bits = 1;
    while (bits < 32 && (1u << bits) < n) ++bits;
    const uint32_t mask = bits >= 32 ? 0xffffffffu : (1u << bits) - 1u;
    const uint32_t shift = bits / 2 + 1;
    uint32_t key = mix32(seed ^ mix32(epoch + 0x9e3779b9u));
    uint32_t k[6];
    for (int r = 0; r < 6; ++r) {
        key = mix32(key + 0x6a09e667u);
        k[r] = key;
    }
    uint32_t v = i;
    do {
        for (int r = 0; r < 3; ++r) {
            v = (v + k[2 * r]) & mask;
            v = (v * (k[2 * r + 1] | 1u)) & mask;
            v ^= v >> shift;
        }
    } while (v >= n);
    return v;
}
