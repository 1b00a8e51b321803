/* tinyfed — the host builds' crypto (firmware/native/pk_host.c, keystream_host.c) against
 * Monocypher, which a device image uses (tests/test_pk_host.py drives this).
 *
 *   pk_check x25519        stdin: lines "SK_HEX U_HEX"; stdout: "HOST_HEX MONOCYPHER_HEX" per line
 *   pk_check random N SEED N random (scalar, u) pairs of every kind: any 32 bytes (top bit
 *                          set or not), u in [p, 2^255) (non-canonical), small u; also the
 *                          public keys; prints "x25519 ok N" or the first difference
 *   pk_check memo [N]      the memoized EdDSA check (and N random signers, default 3000):
 *                          equal answers to Monocypher's, hits on
 *                          exact repeats only, an invalid signature refused every time
 *   pk_check threads T N   T threads checking N valid and N invalid signatures each (shared table)
 *   pk_check iterate N     RFC 7748's iterated X25519 (k, u <- X25519(k, u), k from k = u = 9), both
 *                          implementations in step; prints k after N iterations or the first difference
 *   pk_check prg N SEED    the host keystream (firmware/native/keystream_host.c) against the device's
 *                          algorithm (firmware/src/crypto/keystream.c, restated below) on N random
 *                          keys, word offsets, lengths, signs: "prg ok N" or the first difference
 *   pk_check prgout KEY_HEX N OFFSET   N keystream words from OFFSET, hex, one per line
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monocypher.h"
#include "tfd/pk.h"
#include "tfd/secagg.h"

void tfd_pk_host_memo_stats(uint64_t out[2]);

static uint64_t g_rng;

static uint64_t rnd64(void)
{
    /* splitmix64: reproducible test inputs */
    uint64_t z = (g_rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void rnd_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; ++i) p[i] = (uint8_t)rnd64();
}

static void hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; ++i) printf("%02x", p[i]);
}

static int unhex(uint8_t *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return 0;
        out[i] = (uint8_t)v;
    }
    return 1;
}

static int run_stdin(void)
{
    char a[128], b[128];
    while (scanf("%127s %127s", a, b) == 2) {
        uint8_t sk[32], u[32], h[32], m[32];
        if (strlen(a) != 64 || strlen(b) != 64 || !unhex(sk, a, 32) || !unhex(u, b, 32)) return 2;
        tfd_pk_x25519(h, sk, u);
        crypto_x25519(m, sk, u);
        hex(h, 32);
        printf(" ");
        hex(m, 32);
        printf("\n");
    }
    return 0;
}

/* u = 2^255 - 19 + d (non-canonical for d in [0, 19)), top bit as given */
static void u_above_p(uint8_t u[32], unsigned d, int top)
{
    memset(u, 0xff, 32);
    u[0] = (uint8_t)(0xed + d); /* 0xed = 2^8 - 19 */
    u[31] = top ? 0xff : 0x7f;
}

static int run_random(long n)
{
    for (long i = 0; i < n; ++i) {
        uint8_t sk[32], u[32], h[32], m[32];
        rnd_bytes(sk, 32);
        rnd_bytes(u, 32);
        switch (i % 8) {
        case 0: u[31] |= 0x80; break;                                  /* top bit set: ignored */
        case 1: u[31] &= 0x7f; break;
        case 2: u_above_p(u, (unsigned)(rnd64() % 19u), (int)(i & 16)); break; /* in [p, 2^255) */
        case 3: memset(u, 0, 32); u[0] = (uint8_t)(rnd64() % 10u); break;     /* 0, 1, ... 9 */
        case 4: memset(u + 8, 0, 24); break;                                   /* small */
        default: break;
        }
        tfd_pk_x25519(h, sk, u);
        crypto_x25519(m, sk, u);
        if (memcmp(h, m, 32) != 0) {
            printf("x25519 differs at %ld: sk ", i);
            hex(sk, 32);
            printf(" u ");
            hex(u, 32);
            printf("\n");
            return 1;
        }
        tfd_pk_x25519_public_key(h, sk);
        crypto_x25519_public_key(m, sk);
        if (memcmp(h, m, 32) != 0) {
            printf("public key differs at %ld\n", i);
            return 1;
        }
    }
    printf("x25519 ok %ld\n", n);
    return 0;
}

static uint64_t hits(void)
{
    uint64_t s[2];
    tfd_pk_host_memo_stats(s);
    return s[1];
}

#define EXPECT(cond)                                                   \
    do {                                                               \
        if (!(cond)) {                                                 \
            printf("memo: failed at line %d: %s\n", __LINE__, #cond); \
            return 1;                                                  \
        }                                                              \
    } while (0)

static int run_memo(int signers)
{
    uint8_t seed[32], sk[64], pk[32], msg[100], sig[64], bad[64];
    rnd_bytes(seed, 32);
    crypto_eddsa_key_pair(sk, pk, seed);
    rnd_bytes(msg, sizeof msg);
    crypto_eddsa_sign(sig, sk, msg, 32);
    /* an invalid signature first: refused, and again (never stored) */
    memcpy(bad, sig, 64);
    bad[40] ^= 1;
    uint64_t h0 = hits();
    EXPECT(tfd_pk_eddsa_check(bad, pk, msg, 32) == -1 && tfd_pk_eddsa_check(bad, pk, msg, 32) == -1);
    EXPECT(hits() == h0);
    /* the valid one: checked (a miss), then answered from the table */
    EXPECT(tfd_pk_eddsa_check(sig, pk, msg, 32) == 0);
    EXPECT(hits() == h0);
    EXPECT(tfd_pk_eddsa_check(sig, pk, msg, 32) == 0);
    EXPECT(hits() == h0 + 1);
    /* with the valid triple stored, every single-bit change of any input is refused, every time */
    long refused = 0;
    for (unsigned bit = 0; bit < 8u * (64 + 32 + 32); ++bit) {
        uint8_t s2[64], p2[32], m2[32];
        memcpy(s2, sig, 64), memcpy(p2, pk, 32), memcpy(m2, msg, 32);
        uint8_t *p = bit < 512 ? s2 + bit / 8 : bit < 768 ? p2 + (bit - 512) / 8 : m2 + (bit - 768) / 8;
        *p ^= (uint8_t)(1u << (bit % 8));
        const int want = crypto_eddsa_check(s2, p2, m2, 32);
        for (int rep = 0; rep < 2; ++rep) EXPECT(tfd_pk_eddsa_check(s2, p2, m2, 32) == want);
        refused += want != 0;
    }
    EXPECT(refused >= 8 * (64 + 32 + 32) - 8); /* (a flipped bit of the public key's sign may stay valid) */
    EXPECT(tfd_pk_eddsa_check(sig, pk, msg, 31) == -1); /* a prefix of the message is another message */
    /* a message too long for the table: checked every time, right both ways */
    uint8_t sig_long[64];
    crypto_eddsa_sign(sig_long, sk, msg, sizeof msg);
    const uint64_t h1 = hits();
    EXPECT(tfd_pk_eddsa_check(sig_long, pk, msg, sizeof msg) == 0 && tfd_pk_eddsa_check(sig_long, pk, msg, sizeof msg) == 0);
    EXPECT(hits() == h1);
    msg[99] ^= 1;
    EXPECT(tfd_pk_eddsa_check(sig_long, pk, msg, sizeof msg) == -1);
    /* the empty message */
    uint8_t sig0[64];
    crypto_eddsa_sign(sig0, sk, NULL, 0);
    EXPECT(tfd_pk_eddsa_check(sig0, pk, NULL, 0) == 0 && tfd_pk_eddsa_check(sig0, pk, NULL, 0) == 0);
    EXPECT(hits() == h1 + 1);
    /* many signers, every third signature broken: every answer still Monocypher's */
    for (int i = 0; i < signers; ++i) {
        uint8_t m[32], s[64];
        rnd_bytes(seed, 32);
        crypto_eddsa_key_pair(sk, pk, seed);
        rnd_bytes(m, 32);
        crypto_eddsa_sign(s, sk, m, 32);
        if (i % 3 == 0) s[i % 64] ^= 0x10;
        const int want = crypto_eddsa_check(s, pk, m, 32);
        EXPECT(tfd_pk_eddsa_check(s, pk, m, 32) == want && tfd_pk_eddsa_check(s, pk, m, 32) == want);
    }
    printf("memo ok\n");
    return 0;
}

typedef struct {
    const uint8_t (*sigs)[64];
    const uint8_t (*pks)[32];
    const uint8_t (*msgs)[32];
    int n;
    int wrong;
} thread_job_t;

static void *check_all(void *arg)
{
    thread_job_t *j = arg;
    for (int rep = 0; rep < 3; ++rep) {
        for (int i = 0; i < j->n; ++i) {
            uint8_t s[64];
            memcpy(s, j->sigs[i], 64);
            j->wrong += tfd_pk_eddsa_check(s, j->pks[i], j->msgs[i], 32) != 0;
            s[63 - i % 32] ^= 0x01; /* S, the last bytes: still below L, a wrong signature */
            j->wrong += tfd_pk_eddsa_check(s, j->pks[i], j->msgs[i], 32) != -1;
        }
    }
    return NULL;
}

static int run_threads(int t, int n)
{
    uint8_t(*sigs)[64] = calloc((size_t)n, 64);
    uint8_t(*pks)[32] = calloc((size_t)n, 32);
    uint8_t(*msgs)[32] = calloc((size_t)n, 32);
    if (!sigs || !pks || !msgs || t < 1 || t > 16) return 2;
    for (int i = 0; i < n; ++i) {
        uint8_t seed[32], sk[64];
        rnd_bytes(seed, 32);
        crypto_eddsa_key_pair(sk, pks[i], seed);
        rnd_bytes(msgs[i], 32);
        crypto_eddsa_sign(sigs[i], sk, msgs[i], 32);
    }
    pthread_t tid[16];
    thread_job_t jobs[16];
    for (int k = 0; k < t; ++k) {
        jobs[k] = (thread_job_t){(const uint8_t(*)[64])sigs, (const uint8_t(*)[32])pks, (const uint8_t(*)[32])msgs, n, 0};
        if (pthread_create(&tid[k], NULL, check_all, &jobs[k]) != 0) return 2;
    }
    int wrong = 0;
    for (int k = 0; k < t; ++k) {
        pthread_join(tid[k], NULL);
        wrong += jobs[k].wrong;
    }
    uint64_t s[2];
    tfd_pk_host_memo_stats(s);
    printf("threads wrong %d checks %llu hits %llu\n", wrong, (unsigned long long)s[0], (unsigned long long)s[1]);
    free(sigs), free(pks), free(msgs);
    return wrong != 0;
}

/* the device's tfd_sa_prg_add (firmware/src/crypto/keystream.c), one Monocypher block at a time */
static void device_prg_add(uint32_t *acc, size_t n, const uint8_t key[32], uint32_t word_offset, int negate)
{
    static const uint8_t nonce[12] = {0};
    uint8_t block[64];
    uint32_t ctr = word_offset / 16u;
    unsigned i = word_offset % 16u;
    while (n > 0) {
        crypto_chacha20_ietf(block, NULL, sizeof block, key, nonce, ctr++);
        for (; i < 16u && n > 0; ++i, --n, ++acc) {
            const uint32_t w = (uint32_t)block[4 * i] | (uint32_t)block[4 * i + 1] << 8 |
                               (uint32_t)block[4 * i + 2] << 16 | (uint32_t)block[4 * i + 3] << 24;
            *acc = negate ? *acc - w : *acc + w;
        }
        i = 0;
    }
}

static int run_prg(long n)
{
    static uint32_t a[5000], b[5000];
    for (long t = 0; t < n; ++t) {
        uint8_t key[32];
        rnd_bytes(key, 32);
        const uint32_t offset = t % 5 == 0 ? (uint32_t)(UINT32_C(0xFFFFFFFF) - rnd64() % 200u) * 16u /* high offsets */
                                           : (uint32_t)(rnd64() % 3000u);
        const size_t len = (size_t)(rnd64() % (t % 3 == 0 ? 5000u : 200u));
        const int negate = (int)(rnd64() & 1u);
        for (size_t i = 0; i < len; ++i) a[i] = b[i] = (uint32_t)rnd64();
        tfd_sa_prg_add(a, len, key, offset, negate);
        device_prg_add(b, len, key, offset, negate);
        if (memcmp(a, b, 4 * len) != 0) {
            printf("prg differs at %ld (offset %u, %zu words, negate %d)\n", t, offset, len, negate);
            return 1;
        }
    }
    printf("prg ok %ld\n", n);
    return 0;
}

static int run_prgout(const char *key_hex, long n, uint32_t offset)
{
    uint8_t key[32];
    if (strlen(key_hex) != 64 || !unhex(key, key_hex, 32) || n < 0 || n > 100000) return 2;
    uint32_t *w = calloc((size_t)n + 1, 4);
    if (w == NULL) return 2;
    tfd_sa_prg_add(w, (size_t)n, key, offset, 0);
    for (long i = 0; i < n; ++i) printf("%08x\n", w[i]);
    free(w);
    return 0;
}

static int run_iterate(long n)
{
    uint8_t k[32] = {9}, u[32] = {9}, h[32], m[32];
    for (long i = 0; i < n; ++i) {
        tfd_pk_x25519(h, k, u);
        crypto_x25519(m, k, u);
        if (memcmp(h, m, 32) != 0) {
            printf("iteration %ld differs\n", i);
            return 1;
        }
        memcpy(u, k, 32);
        memcpy(k, h, 32);
    }
    hex(k, 32);
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "iterate")) return run_iterate(strtol(argv[2], NULL, 10));
    if (argc >= 4 && !strcmp(argv[1], "prg")) {
        g_rng = strtoull(argv[3], NULL, 10);
        return run_prg(strtol(argv[2], NULL, 10));
    }
    if (argc >= 5 && !strcmp(argv[1], "prgout")) {
        return run_prgout(argv[2], strtol(argv[3], NULL, 10), (uint32_t)strtoul(argv[4], NULL, 10));
    }
    if (argc >= 2 && !strcmp(argv[1], "x25519")) return run_stdin();
    if (argc >= 4 && !strcmp(argv[1], "random")) {
        g_rng = strtoull(argv[3], NULL, 10);
        return run_random(strtol(argv[2], NULL, 10));
    }
    if (argc >= 2 && !strcmp(argv[1], "memo")) {
        g_rng = 7;
        return run_memo(argc >= 3 ? atoi(argv[2]) : 3000);
    }
    if (argc >= 4 && !strcmp(argv[1], "threads")) {
        g_rng = 11;
        return run_threads(atoi(argv[2]), atoi(argv[3]));
    }
    fprintf(stderr, "usage: pk_check x25519 | random N SEED | memo | threads T N\n");
    return 2;
}
