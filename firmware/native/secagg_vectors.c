/* tinyfed — host harness for the secure-aggregation primitives (tfd/secagg.h)
 * and the Monocypher functions under them: reads one command per line on
 * stdin, prints one result line per command ("OK <hex>" or "ERR <status>").
 * tests/test_secagg_vectors.py drives it with inputs generated in Python and
 * compares every byte with the Python reference (host/secagg/).
 *
 * Arguments are space separated: integers in decimal, byte strings in hex
 * ("-" = empty).  Floats travel as the hex of their little-endian float32
 * bytes.  Commands:
 *   pub SK                         X25519 public key
 *   x25519 SK PK                   raw X25519 (no zero check)
 *   x25519_iter N                  RFC 7748 5.2 iteration, k = u = 9
 *   blake2b KEY|- OUTLEN MSG       BLAKE2b, incremental in three updates
 *   chacha KEY NONCE12 CTR DATA    crypto_chacha20_ietf (RFC 8439 2.4)
 *   hchacha KEY IN16               crypto_chacha20_h
 *   aead_ietf KEY NONCE12 AD PT    ChaCha20-Poly1305 IETF: ct || tag (RFC 8439 2.8)
 *   xaead KEY NONCE24 AD PT        crypto_aead_lock: ct || mac
 *   kdf KEY LABEL ROUND CTX        tfd_sa_kdf (LABEL in hex)
 *   agree SK OWNPK PEERPK LABEL ROUND
 *   prg KEY OFFSET N               tfd_sa_prg words (LE bytes)
 *   selfmask SEED ROUND OFFSET N
 *   pairmasks ID SK PK ROUND OFFSET N NPEERS {PEERID PEERPK}...
 *   split SECRET T K RAND          k shares, concatenated
 *   combine XS SHARES              XS: one byte per share
 *   seal KEY NONCE SENDER RECEIVER ROUND PT        ct || mac
 *   open KEY NONCE SENDER RECEIVER ROUND CTMAC     plaintext
 *   check NMAX CLIP F W            tfd_sa_check_encoding status (OK <code>)
 *   choose NMAX CLIP               tfd_sa_choose_fraction_bits (OK <f>)
 *   encode CLIP F W WEIGHT NOISEKEY ROUND CHUNK X  n + 1 words (CHUNK 0 = one call)
 *   encscale CLIP F W WEIGHT X     the encoder's g * 2^f (LE float64) and B (LE int64)
 *   floor32 V                      floor(V * 2^32) (LE int64) || huge flag (1 byte); V: LE float64
 *   masked ID SEED SK PK CLIP F W WEIGHT NOISEKEY ROUND X NPEERS {PEERID PEERPK}...
 *   dpsample KEY S2 N              N distributed-DP draws (tfd/secagg_dp.h), decimal, then the words used
 *   dpcalib CLIP F D ZMILLI M      Delta, s2, tt, B + L (decimal) or ERR <status> at the first refusal
 *   dpnoise KEY S2 WORDS           tfd_dp_add_noise over the words (LE hex in and out)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/secagg/sa_internal.h"
#include "monocypher.h"
#include "tfd/secagg.h"
#include "tfd/secagg_dp.h"

#define MAX_ARGS 1024

typedef struct {
    char *argv[MAX_ARGS];
    int argc;
    int next;
    int bad;
} args_t;

static void fail(const char *why)
{
    fprintf(stderr, "secagg_vectors: %s\n", why);
    exit(2);
}

static char *arg(args_t *a)
{
    if (a->next >= a->argc) {
        a->bad = 1;
        return (char *)"";
    }
    return a->argv[a->next++];
}

static unsigned long long arg_u(args_t *a)
{
    char *end = NULL;
    const char *s = arg(a);
    const unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0') a->bad = 1;
    return v;
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode a hex argument into a fresh buffer (caller frees); *len = bytes. */
static uint8_t *arg_hex(args_t *a, size_t *len)
{
    const char *s = arg(a);
    if (strcmp(s, "-") == 0) s = "";
    const size_t n = strlen(s);
    if (n % 2) a->bad = 1;
    uint8_t *out = malloc(n / 2 + 1);
    if (!out) fail("out of memory");
    for (size_t i = 0; i < n / 2; ++i) {
        const int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) a->bad = 1;
        out[i] = (uint8_t)((hi & 15) << 4 | (lo & 15));
    }
    *len = n / 2;
    return out;
}

/* A hex argument of exactly `want` bytes into `out`. */
static void arg_fixed(args_t *a, uint8_t *out, size_t want)
{
    size_t n;
    uint8_t *b = arg_hex(a, &n);
    if (n != want) a->bad = 1;
    memcpy(out, b, n < want ? n : want);
    free(b);
}

static float arg_f32(args_t *a)
{
    uint8_t b[4];
    arg_fixed(a, b, 4);
    const uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A label argument (hex) as a NUL-terminated string in `out` (cap bytes). */
static void arg_label(args_t *a, char *out, size_t cap)
{
    size_t n;
    uint8_t *b = arg_hex(a, &n);
    if (n + 1 > cap) a->bad = 1;
    const size_t m = n + 1 > cap ? cap - 1 : n;
    memcpy(out, b, m);
    out[m] = '\0';
    free(b);
}

static void put_hex(const uint8_t *b, size_t n)
{
    fputs("OK ", stdout);
    for (size_t i = 0; i < n; ++i) printf("%02x", b[i]);
    putchar('\n');
}

static void put_words(const uint32_t *w, size_t n)
{
    fputs("OK ", stdout);
    for (size_t i = 0; i < n; ++i)
        printf("%02x%02x%02x%02x", w[i] & 0xFFu, (w[i] >> 8) & 0xFFu, (w[i] >> 16) & 0xFFu, w[i] >> 24);
    putchar('\n');
}

static void put_status(tfd_status_t st)
{
    printf("ERR %d\n", (int)st);
}

/* Floats of a hex argument (LE float32); *n = count. */
static float *arg_floats(args_t *a, uint32_t *n)
{
    size_t len;
    uint8_t *b = arg_hex(a, &len);
    if (len % 4) a->bad = 1;
    *n = (uint32_t)(len / 4);
    float *x = malloc((len / 4 + 1) * sizeof *x);
    if (!x) fail("out of memory");
    for (size_t i = 0; i < len / 4; ++i) {
        const uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                           (uint32_t)b[4 * i + 3] << 24;
        memcpy(&x[i], &u, sizeof u);
    }
    free(b);
    return x;
}

static tfd_sa_peer_t *arg_peers(args_t *a, size_t *n)
{
    *n = (size_t)arg_u(a);
    if (*n > 255) a->bad = 1;
    tfd_sa_peer_t *p = calloc(*n + 1, sizeof *p);
    if (!p) fail("out of memory");
    for (size_t i = 0; i < *n && !a->bad; ++i) {
        p[i].id = (uint32_t)arg_u(a);
        arg_fixed(a, p[i].public_key, 32);
    }
    return p;
}

static int run(args_t *a)
{
    const char *cmd = arg(a);
    uint8_t k1[32], k2[32], k3[32], out[64];
    char label[256];

    if (strcmp(cmd, "pub") == 0) {
        arg_fixed(a, k1, 32);
        if (a->bad) return 0;
        crypto_x25519_public_key(out, k1);
        put_hex(out, 32);
    } else if (strcmp(cmd, "x25519") == 0) {
        arg_fixed(a, k1, 32);
        arg_fixed(a, k2, 32);
        if (a->bad) return 0;
        crypto_x25519(out, k1, k2);
        put_hex(out, 32);
    } else if (strcmp(cmd, "x25519_iter") == 0) {
        const unsigned long long iters = arg_u(a);
        if (a->bad) return 0;
        uint8_t k[32] = {9}, u[32] = {9}, t[32];
        for (unsigned long long i = 0; i < iters; ++i) {
            crypto_x25519(t, k, u);
            memcpy(u, k, 32);
            memcpy(k, t, 32);
        }
        put_hex(k, 32);
    } else if (strcmp(cmd, "blake2b") == 0) {
        size_t klen, mlen;
        uint8_t *key = arg_hex(a, &klen);
        const size_t outlen = (size_t)arg_u(a);
        uint8_t *msg = arg_hex(a, &mlen);
        if (!a->bad && outlen >= 1 && outlen <= 64 && klen <= 64) {
            crypto_blake2b_ctx h;
            if (klen) crypto_blake2b_keyed_init(&h, outlen, key, klen);
            else crypto_blake2b_init(&h, outlen);
            crypto_blake2b_update(&h, msg, mlen / 3);
            crypto_blake2b_update(&h, msg + mlen / 3, mlen / 3);
            crypto_blake2b_update(&h, msg + 2 * (mlen / 3), mlen - 2 * (mlen / 3));
            crypto_blake2b_final(&h, out);
            put_hex(out, outlen);
        } else {
            a->bad = 1;
        }
        free(key);
        free(msg);
    } else if (strcmp(cmd, "chacha") == 0) {
        uint8_t nonce[12];
        size_t len;
        arg_fixed(a, k1, 32);
        arg_fixed(a, nonce, 12);
        const uint32_t ctr = (uint32_t)arg_u(a);
        uint8_t *data = arg_hex(a, &len);
        if (!a->bad) {
            uint8_t *ct = malloc(len + 1);
            if (!ct) fail("out of memory");
            crypto_chacha20_ietf(ct, data, len, k1, nonce, ctr);
            put_hex(ct, len);
            free(ct);
        }
        free(data);
    } else if (strcmp(cmd, "hchacha") == 0) {
        uint8_t in[16];
        arg_fixed(a, k1, 32);
        arg_fixed(a, in, 16);
        if (a->bad) return 0;
        crypto_chacha20_h(out, k1, in);
        put_hex(out, 32);
    } else if (strcmp(cmd, "aead_ietf") == 0 || strcmp(cmd, "xaead") == 0) {
        const int x = cmd[0] == 'x';
        uint8_t nonce[24];
        size_t adlen, len;
        arg_fixed(a, k1, 32);
        arg_fixed(a, nonce, x ? 24 : 12);
        uint8_t *ad = arg_hex(a, &adlen);
        uint8_t *pt = arg_hex(a, &len);
        if (!a->bad) {
            uint8_t *ct = malloc(len + 16);
            if (!ct) fail("out of memory");
            if (x) {
                crypto_aead_lock(ct, ct + len, k1, nonce, ad, adlen, pt, len);
            } else {
                crypto_aead_ctx ctx;
                crypto_aead_init_ietf(&ctx, k1, nonce);
                crypto_aead_write(&ctx, ct, ct + len, ad, adlen, pt, len);
                crypto_wipe(&ctx, sizeof ctx);
            }
            put_hex(ct, len + 16);
            free(ct);
        }
        free(ad);
        free(pt);
    } else if (strcmp(cmd, "kdf") == 0) {
        size_t clen;
        arg_fixed(a, k1, 32);
        arg_label(a, label, sizeof label);
        const uint32_t round = (uint32_t)arg_u(a);
        uint8_t *ctx = arg_hex(a, &clen);
        if (!a->bad) {
            const tfd_status_t st = tfd_sa_kdf(out, k1, label, round, clen ? ctx : NULL, clen);
            if (st == TFD_OK) put_hex(out, 32);
            else put_status(st);
        }
        free(ctx);
    } else if (strcmp(cmd, "agree") == 0) {
        arg_fixed(a, k1, 32);
        arg_fixed(a, k2, 32);
        arg_fixed(a, k3, 32);
        arg_label(a, label, sizeof label);
        const uint32_t round = (uint32_t)arg_u(a);
        if (a->bad) return 0;
        const tfd_status_t st = tfd_sa_agree(out, k1, k2, k3, label, round);
        if (st == TFD_OK) put_hex(out, 32);
        else put_status(st);
    } else if (strcmp(cmd, "prg") == 0 || strcmp(cmd, "selfmask") == 0) {
        const int self = cmd[0] == 's';
        arg_fixed(a, k1, 32);
        const uint32_t round = self ? (uint32_t)arg_u(a) : 0;
        const uint32_t offset = (uint32_t)arg_u(a);
        const size_t n = (size_t)arg_u(a);
        if (a->bad || n > (1u << 24)) return a->bad = 1, 0;
        uint32_t *w = calloc(n + 1, sizeof *w);
        if (!w) fail("out of memory");
        tfd_status_t st = TFD_OK;
        if (self) st = tfd_sa_add_self_mask(w, n, offset, k1, round);
        else tfd_sa_prg(w, n, k1, offset);
        if (st == TFD_OK) put_words(w, n);
        else put_status(st);
        free(w);
    } else if (strcmp(cmd, "pairmasks") == 0) {
        const uint32_t id = (uint32_t)arg_u(a);
        arg_fixed(a, k1, 32);
        arg_fixed(a, k2, 32);
        const uint32_t round = (uint32_t)arg_u(a);
        const uint32_t offset = (uint32_t)arg_u(a);
        const size_t n = (size_t)arg_u(a);
        size_t np;
        tfd_sa_peer_t *peers = arg_peers(a, &np);
        if (!a->bad && n <= (1u << 24)) {
            uint32_t *w = calloc(n + 1, sizeof *w);
            if (!w) fail("out of memory");
            const tfd_status_t st = tfd_sa_add_pair_masks(w, n, offset, id, k1, k2, peers, np, round);
            if (st == TFD_OK) put_words(w, n);
            else put_status(st);
            free(w);
        }
        free(peers);
    } else if (strcmp(cmd, "split") == 0) {
        size_t rlen;
        arg_fixed(a, k1, 32);
        const unsigned t = (unsigned)arg_u(a), k = (unsigned)arg_u(a);
        uint8_t *rand = arg_hex(a, &rlen);
        if (!a->bad) {
            uint8_t (*shares)[32] = calloc(k + 1, 32);
            if (!shares) fail("out of memory");
            const tfd_status_t st = tfd_sa_shamir_split(shares, k1, t, k, rlen ? rand : NULL, rlen);
            if (st == TFD_OK) put_hex(&shares[0][0], (size_t)32 * k);
            else put_status(st);
            free(shares);
        }
        free(rand);
    } else if (strcmp(cmd, "combine") == 0) {
        size_t m, slen;
        uint8_t *xs = arg_hex(a, &m);
        uint8_t *sh = arg_hex(a, &slen);
        if (slen != 32 * m) a->bad = 1;
        if (!a->bad) {
            const tfd_status_t st = tfd_sa_shamir_combine(out, xs, (const uint8_t (*)[32])sh, (unsigned)m);
            if (st == TFD_OK) put_hex(out, 32);
            else put_status(st);
        }
        free(xs);
        free(sh);
    } else if (strcmp(cmd, "seal") == 0 || strcmp(cmd, "open") == 0) {
        const int seal = cmd[0] == 's';
        uint8_t nonce[24];
        size_t len;
        arg_fixed(a, k1, 32);
        arg_fixed(a, nonce, 24);
        const uint32_t s = (uint32_t)arg_u(a), r = (uint32_t)arg_u(a), round = (uint32_t)arg_u(a);
        uint8_t *in = arg_hex(a, &len);
        if (!seal && len < 16) a->bad = 1;
        if (!a->bad) {
            uint8_t *o = malloc(len + 16);
            if (!o) fail("out of memory");
            if (seal) {
                tfd_sa_seal(o, o + len, k1, nonce, s, r, round, in, len);
                put_hex(o, len + 16);
            } else {
                const size_t ct = len - 16;
                memset(o, 0xA5, ct + 1);
                const tfd_status_t st = tfd_sa_open(o, k1, nonce, s, r, round, in, in + ct, ct);
                if (st == TFD_OK) {
                    put_hex(o, ct);
                } else {
                    for (size_t i = 0; i < ct; ++i)
                        if (o[i] != 0) fail("tfd_sa_open left plaintext bytes after a failure");
                    put_status(st);
                }
            }
            free(o);
        }
        free(in);
    } else if (strcmp(cmd, "check") == 0 || strcmp(cmd, "choose") == 0) {
        const int check = cmd[1] == 'h' && cmd[2] == 'e';
        const uint32_t n_max = (uint32_t)arg_u(a);
        tfd_sa_encoding_t enc = {.clip = arg_f32(a), .frac_bits = 0, .weight_max = 1};
        if (check) {
            enc.frac_bits = (uint8_t)arg_u(a);
            enc.weight_max = (uint32_t)arg_u(a);
        }
        if (a->bad) return 0;
        if (check) {
            printf("OK %d\n", (int)tfd_sa_check_encoding(n_max, &enc));
        } else {
            uint8_t f = 0;
            const tfd_status_t st = tfd_sa_choose_fraction_bits(&f, n_max, enc.clip);
            if (st == TFD_OK) printf("OK %u\n", (unsigned)f);
            else put_status(st);
        }
    } else if (strcmp(cmd, "floor32") == 0) {
        uint8_t vb[8];
        arg_fixed(a, vb, 8);
        if (a->bad) return 0;
        double v;
        memcpy(&v, vb, sizeof v); /* little-endian host */
        int huge = 0;
        const int64_t r = tfd_sa_floor_times_2_32(v, &huge);
        memcpy(out, &r, 8);
        out[8] = (uint8_t)huge;
        put_hex(out, 9);
    } else if (strcmp(cmd, "encscale") == 0) {
        tfd_sa_encoding_t enc;
        enc.clip = arg_f32(a);
        enc.frac_bits = (uint8_t)arg_u(a);
        enc.weight_max = (uint32_t)arg_u(a);
        const uint32_t weight = (uint32_t)arg_u(a);
        uint32_t n;
        float *x = arg_floats(a, &n);
        if (!a->bad) {
            tfd_sa_encoder_t e;
            memset(k1, 0, sizeof k1);
            tfd_sa_summed_t summed;
            memset(&summed, 0, sizeof summed);
            summed.weight = weight;
            const tfd_status_t st = tfd_sa_encoder_init(&e, x, n, &enc, &summed, k1, 0);
            if (st == TFD_OK) {
                memcpy(out, &e.scale, 8);
                memcpy(out + 8, &e.bound, 8);
                put_hex(out, 16);
            } else {
                put_status(st);
            }
            tfd_sa_encoder_wipe(&e);
        }
        free(x);
    } else if (strcmp(cmd, "encode") == 0 || strcmp(cmd, "masked") == 0) {
        const int masked = cmd[0] == 'm';
        uint32_t id = 0;
        if (masked) {
            id = (uint32_t)arg_u(a);
            arg_fixed(a, k2, 32); /* self seed */
            arg_fixed(a, k3, 32); /* mask sk */
            arg_fixed(a, out, 32); /* mask pk */
        }
        tfd_sa_encoding_t enc;
        enc.clip = arg_f32(a);
        enc.frac_bits = (uint8_t)arg_u(a);
        enc.weight_max = (uint32_t)arg_u(a);
        const uint32_t weight = (uint32_t)arg_u(a);
        arg_fixed(a, k1, 32);
        const uint32_t round = (uint32_t)arg_u(a);
        const uint32_t chunk = masked ? 0 : (uint32_t)arg_u(a);
        uint32_t n;
        float *x = arg_floats(a, &n);
        size_t np = 0;
        tfd_sa_peer_t *peers = masked ? arg_peers(a, &np) : NULL;
        if (!a->bad) {
            const size_t nw = (size_t)n + TFD_SA_SUMMED_COUNT;
            uint32_t *w = calloc(nw + 1, sizeof *w);
            if (!w) fail("out of memory");
            tfd_sa_summed_t summed;
            memset(&summed, 0, sizeof summed);
            summed.weight = weight;
            tfd_status_t st;
            if (chunk == 0) {
                st = tfd_sa_encode(w, x, n, &enc, &summed, k1, round);
            } else {
                tfd_sa_encoder_t e;
                st = tfd_sa_encoder_init(&e, x, n, &enc, &summed, k1, round);
                for (uint32_t off = 0; st == TFD_OK && off < nw; off += chunk) {
                    const uint32_t len = (uint32_t)nw - off < chunk ? (uint32_t)nw - off : chunk;
                    st = tfd_sa_encode_chunk(&e, w + off, off, len);
                }
                tfd_sa_encoder_wipe(&e);
            }
            if (st == TFD_OK && masked) st = tfd_sa_add_self_mask(w, nw, 0, k2, round);
            if (st == TFD_OK && masked)
                st = tfd_sa_add_pair_masks(w, nw, 0, id, k3, out, peers, np, round);
            if (st == TFD_OK) put_words(w, nw);
            else put_status(st);
            free(w);
        }
        free(x);
        free(peers);
    } else if (strcmp(cmd, "dpsample") == 0) {
        arg_fixed(a, k1, 32);
        const uint64_t s2 = (uint64_t)arg_u(a);
        const uint32_t n = (uint32_t)arg_u(a);
        if (!a->bad) {
            tfd_dp_gauss_t g;
            const tfd_status_t st = tfd_dp_gauss_init(&g, s2);
            if (st != TFD_OK) {
                put_status(st);
            } else {
                tfd_dp_rng_t r;
                tfd_dp_rng_init(&r, k1);
                fputs("OK", stdout);
                for (uint32_t i = 0; i < n; ++i) printf(" %ld", (long)tfd_dp_gauss_sample(&g, &r));
                printf(" words %lu\n", (unsigned long)r.words);
                tfd_dp_rng_wipe(&r);
            }
        }
    } else if (strcmp(cmd, "dpcalib") == 0) {
        const float clip = arg_f32(a);
        const unsigned f = (unsigned)arg_u(a);
        const uint32_t d = (uint32_t)arg_u(a);
        const uint32_t z = (uint32_t)arg_u(a);
        const uint32_t m = (uint32_t)arg_u(a);
        if (!a->bad) {
            uint64_t delta = 0, s2 = 0, bound = 0;
            tfd_dp_gauss_t g;
            tfd_status_t st = tfd_dp_sensitivity(&delta, clip, f, d);
            if (st == TFD_OK) st = tfd_dp_sigma_sq(&s2, z, delta, m);
            if (st == TFD_OK) st = tfd_dp_gauss_init(&g, s2);
            if (st == TFD_OK) st = tfd_dp_word_bound(&bound, clip, f, &g);
            if (st == TFD_OK)
                printf("OK %llu %llu %lu %llu\n", (unsigned long long)delta, (unsigned long long)s2,
                       (unsigned long)g.tt, (unsigned long long)bound);
            else
                put_status(st);
        }
    } else if (strcmp(cmd, "dpnoise") == 0) {
        arg_fixed(a, k1, 32);
        const uint64_t s2 = (uint64_t)arg_u(a);
        size_t nb = 0;
        uint8_t *b = arg_hex(a, &nb);
        if (nb % 4) a->bad = 1;
        if (!a->bad) {
            tfd_dp_gauss_t g;
            const tfd_status_t st = tfd_dp_gauss_init(&g, s2);
            if (st != TFD_OK) {
                put_status(st);
            } else {
                uint32_t *w = calloc(nb / 4 + 1, sizeof *w);
                if (!w) fail("out of memory");
                for (size_t i = 0; i < nb / 4; ++i) w[i] = tfd_sa_load32_le(b + 4 * i);
                tfd_dp_add_noise(w, (uint32_t)(nb / 4), &g, k1);
                put_words(w, nb / 4);
                free(w);
            }
        }
        free(b);
    } else {
        a->bad = 1;
    }
    return 0;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) > 0) {
        args_t a = {.argc = 0, .next = 0, .bad = 0};
        for (char *tok = strtok(line, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
            if (a.argc == MAX_ARGS) fail("too many arguments");
            a.argv[a.argc++] = tok;
        }
        if (a.argc == 0) continue;
        run(&a);
        if (a.bad || a.next != a.argc) {
            fprintf(stderr, "secagg_vectors: malformed command '%s'\n", a.argv[0]);
            return 2;
        }
        fflush(stdout);
    }
    free(line);
    return 0;
}
