/* tinyfed boards — BLAKE2s (RFC 7693), used only as the mixing function of the
 * emulated boards' seeded random source (emu_random.c).  Verified against
 * Python's hashlib.blake2s by tests/test_boards.py. */
#ifndef TFD_BLAKE2S_H
#define TFD_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint32_t t[2];
    uint8_t buf[64];
    size_t buflen;
    size_t outlen;
} tfd_blake2s_t;

/* outlen 1..32, keylen 0..32 (key may be NULL when keylen == 0). */
void tfd_blake2s_init(tfd_blake2s_t *s, size_t outlen, const uint8_t *key, size_t keylen);
void tfd_blake2s_update(tfd_blake2s_t *s, const void *data, size_t len);
void tfd_blake2s_final(tfd_blake2s_t *s, uint8_t *out);

#endif /* TFD_BLAKE2S_H */
