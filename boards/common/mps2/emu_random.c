/* tinyfed boards — seeded random source for emulated boards (see emu_random.h:
 * NOT a secure RNG). */
#include "emu_random.h"

#include <string.h>

#include "blake2s.h"
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

void tfd_emu_random_init(void)
{
    tfd_blake2s_t h;
    tfd_blake2s_init(&h, 32, tfd_image_seed, 32);
    static const char label[] = "tinyfed emulated rng v1";
    tfd_blake2s_update(&h, label, sizeof label);

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
        if (s_boot_seed) tfd_blake2s_update(&h, boot, sizeof boot);
        memset(boot, 0, sizeof boot);
    }
    const uint64_t now = tfd_systick_count();
    tfd_blake2s_update(&h, &now, sizeof now);
    tfd_blake2s_final(&h, s_key);
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
    uint8_t block[32];
    while (len > 0) {
        tfd_blake2s_t h;
        const uint64_t now = tfd_systick_count();
        tfd_blake2s_init(&h, 32, s_key, sizeof s_key);
        tfd_blake2s_update(&h, "out", 3);
        tfd_blake2s_update(&h, &s_counter, sizeof s_counter);
        tfd_blake2s_update(&h, &now, sizeof now);
        tfd_blake2s_final(&h, block);
        s_counter++;
        const size_t n = len < sizeof block ? len : sizeof block;
        memcpy(out, block, n);
        out += n;
        len -= n;
    }
    /* Ratchet: earlier outputs cannot be recomputed from a later key. */
    tfd_blake2s_t h;
    tfd_blake2s_init(&h, 32, s_key, sizeof s_key);
    tfd_blake2s_update(&h, "next", 4);
    tfd_blake2s_update(&h, &s_counter, sizeof s_counter);
    tfd_blake2s_final(&h, s_key);
    memset(block, 0, sizeof block);
    return TFD_OK;
}
