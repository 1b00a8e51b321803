/* tinyfed boards — seeded random source for emulated boards (see emu_random.h:
 * NOT a secure RNG).  Hashing is Monocypher's BLAKE2b (keyed, RFC 7693): no
 * hand-written primitive here. */
#include "emu_random.h"

#include <string.h>

#include "monocypher.h"
#include "semihosting.h"
#include "systick.h"

static uint8_t s_key[32];
static uint32_t s_counter;
static int s_ready;
static int s_boot_seed;

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void absorb_u32(crypto_blake2b_ctx *h, uint32_t v)
{
    const uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    crypto_blake2b_update(h, b, sizeof b);
}

static void absorb_u64(crypto_blake2b_ctx *h, uint64_t v)
{
    absorb_u32(h, (uint32_t)v);
    absorb_u32(h, (uint32_t)(v >> 32));
}

void tfd_emu_random_init(void)
{
    crypto_blake2b_ctx h;
    crypto_blake2b_keyed_init(&h, sizeof s_key, tfd_image_seed, 32);
    static const char label[] = "tinyfed emulated rng v2";
    crypto_blake2b_update(&h, (const uint8_t *)label, sizeof label);

    char hex[72];
    uint8_t boot[32];
    s_boot_seed = 0;
    if (tfd_sh_cmdline_value("seed", hex, sizeof hex) == 64) {
        s_boot_seed = 1;
        for (int i = 0; i < 32; ++i) {
            const int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                s_boot_seed = 0;
                break;
            }
            boot[i] = (uint8_t)(hi << 4 | lo);
        }
        if (s_boot_seed) crypto_blake2b_update(&h, boot, sizeof boot);
    }
    absorb_u64(&h, tfd_systick_count());
    crypto_blake2b_final(&h, s_key); /* final wipes the context */
    crypto_wipe(boot, sizeof boot);
    crypto_wipe(hex, sizeof hex);
    s_counter = 0;
    s_ready = 1;
}

int tfd_emu_random_has_boot_seed(void)
{
    return s_boot_seed;
}

tfd_status_t tfd_emu_random(uint8_t *out, size_t len)
{
    TFD_ENSURE(out != NULL || len == 0, TFD_ERR_ARG);
    if (!s_ready) tfd_emu_random_init();
    uint8_t block[64];
    crypto_blake2b_ctx h;
    while (len > 0) {
        crypto_blake2b_keyed_init(&h, sizeof block, s_key, sizeof s_key);
        crypto_blake2b_update(&h, (const uint8_t *)"out", 3);
        absorb_u32(&h, s_counter);
        absorb_u64(&h, tfd_systick_count());
        crypto_blake2b_final(&h, block);
        s_counter++;
        const size_t n = len < sizeof block ? len : sizeof block;
        memcpy(out, block, n);
        out += n;
        len -= n;
    }
    /* Ratchet: earlier outputs cannot be recomputed from a later key. */
    crypto_blake2b_keyed_init(&h, sizeof s_key, s_key, sizeof s_key);
    crypto_blake2b_update(&h, (const uint8_t *)"next", 4);
    absorb_u32(&h, s_counter);
    crypto_blake2b_final(&h, s_key);
    crypto_wipe(block, sizeof block);
    return TFD_OK;
}
