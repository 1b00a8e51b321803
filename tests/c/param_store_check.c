/* tinyfed — host harness for firmware/src/storage/param_store.c.
 *
 * It implements the storage part of the port contract (tfd/port.h) over a RAM
 * "NOR flash": erased bytes read 0xFF, erase works on whole units, programming
 * can only clear bits.  A power cut can be armed after K steps, where a step is
 * one erased byte or one programmed byte: at the cut, the byte being erased
 * gets a random value, the byte being programmed gets a random subset of the
 * bits it should have cleared, and from then on every storage operation fails
 * (the device is dead until "reboot" = disarming the cut).
 *
 *   param_store_check sweep UNIT SIZE LEN SEED
 *       For a save over a store that already holds two records (and, second
 *       pass, over a store that holds one), cut the power at every step
 *       k = 0 .. steps of the save; after each cut "reboot" and load: the
 *       result must be the previous record, or the new one only if every byte
 *       of it had been programmed; then a fresh save must succeed and load.
 *       Prints "sweep cuts=<n> steps=<save steps> old=<n> new=<n>".
 *   param_store_check save IMAGE UNIT SIZE ROUND LEN SEED [HASHBYTE]
 *       Save twice (rounds ROUND-1 and ROUND, payload bytes from SEED) into an
 *       erased flash and write the flash image to IMAGE.
 *   param_store_check load IMAGE UNIT LEN [HASHBYTE]
 *       Load from IMAGE; print "found=<0|1> slot= generation= round= crc=".
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfd/frame.h"
#include "tfd/param_store.h"
#include "tfd/port.h"

#define MAX_FLASH (1u << 20)

static uint8_t g_flash[MAX_FLASH];
static size_t g_size = 0;
static size_t g_unit = 0;
static long g_budget = -1; /* steps left before the cut; -1 = no cut armed */
static int g_dead = 0;
static long g_steps = 0; /* steps performed since the counter was reset */
static uint32_t g_rng = 1;

static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

/* One step; returns 0 if the power is cut at this step. */
static int step(void)
{
    if (g_dead) return 0;
    if (g_budget == 0) {
        g_dead = 1;
        return 0;
    }
    if (g_budget > 0) --g_budget;
    ++g_steps;
    return 1;
}

size_t tfd_port_storage_size(void) { return g_size; }
size_t tfd_port_storage_erase_unit(void) { return g_unit; }

static int in_bounds(uint32_t offset, size_t len)
{
    return offset <= g_size && len <= g_size - offset;
}

tfd_status_t tfd_port_storage_read(uint32_t offset, void *out, size_t len)
{
    TFD_ENSURE(!g_dead, TFD_ERR_STORAGE);
    TFD_ENSURE(in_bounds(offset, len) && (out != NULL || len == 0), TFD_ERR_ARG);
    memcpy(out, g_flash + offset, len);
    return TFD_OK;
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    TFD_ENSURE(!g_dead, TFD_ERR_STORAGE);
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    TFD_ENSURE(offset % g_unit == 0 && len % g_unit == 0, TFD_ERR_ARG);
    for (size_t i = 0; i < len; ++i) {
        if (!step()) {
            g_flash[offset + i] = (uint8_t)rnd(); /* interrupted erase: undefined */
            return TFD_ERR_STORAGE;
        }
        g_flash[offset + i] = 0xFF;
    }
    return TFD_OK;
}

tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_ENSURE(!g_dead, TFD_ERR_STORAGE);
    TFD_ENSURE(in_bounds(offset, len) && (data != NULL || len == 0), TFD_ERR_ARG);
    const uint8_t *src = data;
    for (size_t i = 0; i < len; ++i) {
        TFD_ENSURE((g_flash[offset + i] & src[i]) == src[i], TFD_ERR_STORAGE);
    }
    for (size_t i = 0; i < len; ++i) {
        if (!step()) {
            /* interrupted program: some of the bits to clear are cleared */
            g_flash[offset + i] &= (uint8_t)(src[i] | rnd());
            return TFD_ERR_STORAGE;
        }
        g_flash[offset + i] &= src[i];
    }
    return TFD_OK;
}

/* ---- helpers -------------------------------------------------------------------------- */
static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; ++i) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
}

static int fail(const char *what, long k)
{
    printf("FAIL %s (cut at step %ld)\n", what, k);
    return 1;
}

static void set_hash(uint8_t h[16], int b)
{
    for (int i = 0; i < 16; ++i) h[i] = (uint8_t)(b + 17 * i);
}

/* One sweep: `prior` records saved before the save that gets cut. */
static int sweep_pass(size_t len, int prior, uint32_t seed, long *cuts, long *steps_out, long *n_old,
                      long *n_new)
{
    static uint8_t snapshot[MAX_FLASH];
    uint8_t hash[16];
    set_hash(hash, 3);
    uint8_t *old = malloc(len + 1), *neu = malloc(len + 1), *got = malloc(len + 1);
    if (!old || !neu || !got) return fail("malloc", -1);
    tfd_param_store_t s;
    memset(g_flash, 0xFF, g_size);
    g_dead = 0;
    g_budget = -1;
    if (tfd_param_store_init(&s, 0, (uint32_t)len) != TFD_OK) return fail("init", -1);
    for (int r = 0; r < prior; ++r) {
        fill(old, len, seed + (uint32_t)r);
        if (tfd_param_store_save(&s, hash, (uint32_t)r + 1, old, len, NULL) != TFD_OK) return fail("prior save", -1);
    }
    fill(neu, len, seed + 1000u);
    memcpy(snapshot, g_flash, g_size);
    /* how many steps a complete save takes, and when its last byte is programmed */
    g_steps = 0;
    if (tfd_param_store_save(&s, hash, 100, neu, len, NULL) != TFD_OK) return fail("full save", -1);
    const long total = g_steps;
    *steps_out = total;
    for (long k = 0; k <= total; ++k) {
        memcpy(g_flash, snapshot, g_size);
        g_dead = 0;
        g_budget = k;
        g_steps = 0;
        g_rng = (uint32_t)(k * 7919 + 1);
        const tfd_status_t st = tfd_param_store_save(&s, hash, 100, neu, len, NULL);
        if (k < total && st == TFD_OK) return fail("save reported success although cut", k);
        if (k == total && st != TFD_OK) return fail("uncut save failed", k);
        /* reboot */
        g_dead = 0;
        g_budget = -1;
        tfd_param_meta_t m;
        memset(got, 0xEE, len);
        if (tfd_param_store_load(&s, hash, got, len, &m) != TFD_OK) return fail("load after cut", k);
        if (k == total) {
            if (!m.found || m.round != 100 || memcmp(got, neu, len) != 0) return fail("new copy not loaded", k);
            ++*n_new;
        } else if (m.found && m.round == 100) {
            /* only acceptable if the whole record had been programmed: the cut
             * fell in the read-back verification */
            if (memcmp(got, neu, len) != 0) return fail("torn new copy loaded", k);
            ++*n_new;
        } else if (prior == 0) {
            if (m.found) return fail("found a record that was never completed", k);
            ++*n_old;
        } else {
            if (!m.found || m.round != (uint32_t)prior || memcmp(got, old, len) != 0) {
                return fail("previous good copy lost", k);
            }
            ++*n_old;
        }
        /* the store recovers: a fresh save works and wins */
        fill(got, len, seed + 2000u + (uint32_t)k);
        if (tfd_param_store_save(&s, hash, 200, got, len, NULL) != TFD_OK) return fail("save after reboot", k);
        tfd_param_meta_t m2;
        uint8_t *again = malloc(len + 1);
        if (!again) return fail("malloc", k);
        if (tfd_param_store_load(&s, hash, again, len, &m2) != TFD_OK || !m2.found || m2.round != 200 ||
            memcmp(again, got, len) != 0) {
            free(again);
            return fail("load after recovery save", k);
        }
        free(again);
        ++*cuts;
    }
    free(old);
    free(neu);
    free(got);
    return 0;
}

static int cmd_sweep(size_t len, uint32_t seed)
{
    long cuts = 0, steps2 = 0, steps1 = 0, n_old = 0, n_new = 0;
    if (sweep_pass(len, 2, seed, &cuts, &steps2, &n_old, &n_new)) return 1;
    if (sweep_pass(len, 1, seed + 7, &cuts, &steps1, &n_old, &n_new)) return 1;
    if (sweep_pass(len, 0, seed + 9, &cuts, &steps1, &n_old, &n_new)) return 1;
    printf("sweep cuts=%ld steps=%ld old=%ld new=%ld\n", cuts, steps2, n_old, n_new);
    return 0;
}

static int write_image(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) return fail("open image", -1);
    const int ok = fwrite(g_flash, 1, g_size, f) == g_size;
    fclose(f);
    return ok ? 0 : fail("write image", -1);
}

static int read_image(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fail("open image", -1);
    g_size = fread(g_flash, 1, MAX_FLASH, f);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "sweep") == 0) {
        g_unit = strtoul(argv[2], NULL, 0);
        g_size = strtoul(argv[3], NULL, 0);
        if (g_size > MAX_FLASH) return fail("size", -1);
        return cmd_sweep(strtoul(argv[4], NULL, 0), (uint32_t)strtoul(argv[5], NULL, 0));
    }
    if (argc >= 8 && strcmp(argv[1], "save") == 0) {
        g_unit = strtoul(argv[3], NULL, 0);
        g_size = strtoul(argv[4], NULL, 0);
        if (g_size > MAX_FLASH) return fail("size", -1);
        const uint32_t round = (uint32_t)strtoul(argv[5], NULL, 0);
        const size_t len = strtoul(argv[6], NULL, 0);
        const uint32_t seed = (uint32_t)strtoul(argv[7], NULL, 0);
        uint8_t hash[16];
        set_hash(hash, argc > 8 ? atoi(argv[8]) : 3);
        memset(g_flash, 0xFF, g_size);
        tfd_param_store_t s;
        uint8_t *buf = malloc(len + 1);
        if (!buf || tfd_param_store_init(&s, 0, (uint32_t)len) != TFD_OK) return fail("init", -1);
        for (uint32_t r = round - 1; r <= round; ++r) {
            fill(buf, len, seed + r);
            if (tfd_param_store_save(&s, hash, r, buf, len, NULL) != TFD_OK) return fail("save", -1);
        }
        free(buf);
        printf("slot_bytes=%u\n", (unsigned)s.slot_bytes);
        return write_image(argv[2]);
    }
    if (argc >= 5 && strcmp(argv[1], "load") == 0) {
        if (read_image(argv[2])) return 1;
        g_unit = strtoul(argv[3], NULL, 0);
        const size_t len = strtoul(argv[4], NULL, 0);
        uint8_t hash[16];
        set_hash(hash, argc > 5 ? atoi(argv[5]) : 3);
        tfd_param_store_t s;
        uint8_t *buf = malloc(len + 1);
        if (!buf || tfd_param_store_init(&s, 0, (uint32_t)len) != TFD_OK) return fail("init", -1);
        tfd_param_meta_t m;
        if (tfd_param_store_load(&s, hash, buf, len, &m) != TFD_OK) return fail("load", -1);
        printf("found=%u slot=%u generation=%u round=%u crc=%u\n", m.found, m.slot, (unsigned)m.generation,
               (unsigned)m.round, m.found ? (unsigned)tfd_crc32(0, buf, len) : 0u);
        free(buf);
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of %s\n", __FILE__);
    return 2;
}
