/* tinyfed — host harness for the device's SecAgg+ client (tfd/secagg_client.h):
 * the C state machine behind a pipe, so the host server
 * (host/secagg/server.py, through host/secagg/c_client.py) drives real device
 * code.  One process = one client.
 *
 *   secagg_client_host --identity REC --clip C --frac F --wmax W --update FILE --weight w [--chunk WORDS]
 *                      [--dpz Z_MILLI]   (distributed DP: tfd_sa_encoding_t.dp_z_milli)
 *
 * REC: the device's identity record (tfd/identity.h): its id and key, the fleet manifest.
 *
 * FILE: the update, n float32 little-endian.  stdin: requests
 * "u8 op | u32 len | payload"; stdout: replies "u16 status | u32 len | payload".
 * op 1 ADVERTISE_KEYS, 2 SHARE_KEYS, 3 MASKED_INPUT (reply: u32 round || the
 * masked words, read from the client WORDS at a time), 4 UNMASK, 9 SURVIVORS, 5 (harness
 * only, for exactness tests) the plain encoding the client masked in op 3,
 * 6 the client's stage, 7 save the client (and the update), 8 restore the
 * saved client (harness only: the differential tests replay one stage many
 * times).  Randomness: /dev/urandom (a device: tfd_port_random).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfd/secagg_client.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the masked words are copied as they lie in memory: little-endian hosts only"
#endif

static FILE *g_urandom;

static tfd_status_t host_random(uint8_t *out, size_t len)
{
    return fread(out, 1, len, g_urandom) == len ? TFD_OK : TFD_ERR_INTERNAL;
}

static int read_all(void *buf, size_t n)
{
    return fread(buf, 1, n, stdin) == n;
}

static void reply(tfd_status_t st, const uint8_t *data, size_t len)
{
    uint8_t h[6];
    const uint32_t l = (uint32_t)len;
    h[0] = (uint8_t)st;
    h[1] = (uint8_t)((unsigned)st >> 8);
    for (int i = 0; i < 4; ++i) h[2 + i] = (uint8_t)(l >> (8 * i));
    fwrite(h, 1, sizeof h, stdout);
    if (len) fwrite(data, 1, len, stdout);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    uint32_t weight = 1, wmax = 1, chunk = 64, dpz = 0;
    const char *identity_path = NULL;
    unsigned frac = 16;
    float clip = 1.0f;
    const char *update_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--identity")) identity_path = argv[i + 1];
        else if (!strcmp(argv[i], "--clip")) clip = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--frac")) frac = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--wmax")) wmax = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--weight")) weight = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--dpz")) dpz = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--chunk")) chunk = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--update")) update_path = argv[i + 1];
        else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    g_urandom = fopen("/dev/urandom", "rb");
    FILE *f = update_path ? fopen(update_path, "rb") : NULL;
    if (!g_urandom || !f || chunk == 0) {
        fprintf(stderr, "need --update FILE and /dev/urandom\n");
        return 2;
    }
    static float x[1u << 20];
    const uint32_t n = (uint32_t)fread(x, sizeof(float), sizeof x / sizeof x[0], f);
    const int longer = fgetc(f) != EOF;
    fclose(f);
    if (longer) {
        fprintf(stderr, "the update has more than %u parameters (this harness's limit)\n", 1u << 20);
        return 2;
    }
    static uint32_t words[TFD_SA_WORDS(1u << 20)], plain[TFD_SA_WORDS(1u << 20)];
    /* out holds the largest reply: the masked-vector body of 2^20 parameters (op 3), which is
     * also larger than the plain encoding (op 5) and any SecAgg reply body */
    static uint8_t req[1u << 22], out[TFD_WIRE_FIXED_SA_MASKED_INPUT_REPLY + 4u * TFD_SA_WORDS(1u << 20)];
    static tfd_sa_client_t c;
    const tfd_sa_encoding_t enc = {.clip = clip, .frac_bits = (uint8_t)frac, .weight_max = wmax, .dp_z_milli = dpz};
    static uint8_t rec[TFD_ID_RECORD_BYTES(TFD_ID_MAX_DEVICES)];
    size_t rec_len = 0;
    FILE *rf = identity_path ? fopen(identity_path, "rb") : NULL;
    if (rf) {
        rec_len = fread(rec, 1, sizeof rec, rf);
        fclose(rf);
    }
    static tfd_identity_t ident;
    const tfd_status_t ist = tfd_identity_init(&ident, rec, rec_len);
    if (ist != TFD_OK) {
        fprintf(stderr, "no device identity (%s)\n", identity_path ? identity_path : "--identity missing");
        return 2;
    }
    if (tfd_sa_client_init(&c, &ident, &enc, host_random) != TFD_OK) {
        fprintf(stderr, "bad client configuration\n");
        return 2;
    }
    uint32_t plain_words = 0;
    static tfd_sa_client_t saved;
    static float saved_x[1u << 20];
    int has_saved = 0;
    for (;;) {
        uint8_t h[5];
        if (!read_all(h, sizeof h)) break;
        const uint32_t len = (uint32_t)h[1] | (uint32_t)h[2] << 8 | (uint32_t)h[3] << 16 | (uint32_t)h[4] << 24;
        if (len > sizeof req || !read_all(req, len)) break;
        size_t olen = 0;
        tfd_status_t st;
        switch (h[0]) {
        case 1: st = tfd_sa_client_advertise(&c, req, len, out, sizeof out, &olen); break;
        case 2: st = tfd_sa_client_share_keys(&c, req, len, out, sizeof out, &olen); break;
        case 3: {
            uint32_t nw = 0;
            tfd_sa_summed_t summed;
            memset(&summed, 0, sizeof summed);
            summed.weight = weight;
            st = tfd_sa_client_masked_input(&c, req, len, x, n, &summed, &nw);
            /* harness: op 5 -- the words the client masks (x now holds them, then summed) */
            if (st == TFD_OK) {
                memcpy(plain, x, 4u * (size_t)n);
                memcpy(plain + n, &summed, sizeof summed);
            }
            plain_words = st == TFD_OK ? nw : 0;
            for (uint32_t o = 0; st == TFD_OK && o < nw; o += chunk) {
                st = tfd_sa_client_masked_read(&c, o, words + o, nw - o < chunk ? nw - o : chunk);
            }
            if (st == TFD_OK) { /* body SA_MASKED_INPUT_REPLY: round || the words */
                tfd_body_SA_MASKED_INPUT_REPLY_t r;
                memset(&r, 0, sizeof r);
                r.round = c.round;
                r.words = (const uint8_t *)words; /* little-endian host */
                r.words_count = nw;
                st = TFD_BODY_ENCODE(SA_MASKED_INPUT_REPLY, &r, out, sizeof out, &olen);
            }
            break;
        }
        case 4: st = tfd_sa_client_unmask(&c, req, len, out, sizeof out, &olen); break;
        case 9: st = tfd_sa_client_survivors(&c, req, len, out, sizeof out, &olen); break;
        case 5:
            st = 4u * (size_t)plain_words <= sizeof out ? TFD_OK : TFD_ERR_OVERFLOW;
            if (st == TFD_OK) {
                memcpy(out, plain, 4u * plain_words);
                olen = 4u * plain_words;
            }
            break;
        case 6:
            st = TFD_OK;
            out[0] = (uint8_t)c.stage;
            olen = 1;
            break;
        case 7:
            saved = c;
            memcpy(saved_x, x, sizeof(float) * (size_t)n);
            has_saved = 1;
            st = TFD_OK;
            break;
        case 8:
            st = has_saved ? TFD_OK : TFD_ERR_PROTO_STATE;
            if (st == TFD_OK) {
                c = saved;
                memcpy(x, saved_x, sizeof(float) * (size_t)n);
            }
            break;
        default: st = TFD_ERR_MSG_UNKNOWN; break;
        }
        reply(st, st == TFD_OK ? out : NULL, st == TFD_OK ? olen : 0);
    }
    fclose(g_urandom);
    return 0;
}
