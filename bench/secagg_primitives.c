/* tinyfed — on-target check and instruction counts of the secure-aggregation
 * primitives (tfd/secagg.h + Monocypher) under QEMU -icount.
 *
 * 1. Vectors: fixed inputs (byte patterns, an LCG for the update) through
 *    every primitive; results logged as vec_<name>=<hex> (BLAKE2b-256 of the
 *    output for long ones).  bench/secagg_primitives.py computes the same in
 *    Python (tinyfed_host.secagg) and tests/test_secagg_vectors.py requires
 *    equality: the bytes of the Cortex-M build, not only the host build.
 *    Self-checks (agreement symmetric, Shamir reconstructs, AEAD refuses a
 *    flipped bit) exit 2 on failure.
 * 2. Bench: the minimum over TFD_SA_BENCH_REPS runs of each primitive, as
 *    insns_<name>= (instructions, not cycles: boards/common/bench_counter.h).
 * Run: python bench/secagg_primitives.py (builds with runtime=False + the
 * secagg sources; host/emulator.py run_to_exit with icount_shift). */
#include <stdint.h>
#include <string.h>

#include "bench_check.h"
#include "bench_counter.h"
#include "board_common.h"
#include "monocypher.h"
#include "tfd/port.h"
#include "tfd/secagg.h"
#include "tfd/secagg_dp.h"

#ifndef TFD_SA_BENCH_REPS
#define TFD_SA_BENCH_REPS 3
#endif
#define N_PARAMS 1000u
#define N_PEERS 4u
#define ROUND 9u
#define DP_DRAWS 200u
#define DP_Z_MILLI 1000u /* distributed DP: z = 1 over m - 1 = 2 other devices, C = 1, f = 20, d = N_PARAMS */
#define DP_M 3u
#define DP_FRAC 20u

static float g_x[N_PARAMS];
static uint32_t g_words[TFD_SA_WORDS(N_PARAMS)];
static uint32_t g_lcg = 12345u;

static uint32_t lcg(void)
{
    g_lcg = g_lcg * 1664525u + 1013904223u;
    return g_lcg;
}

static void fill(uint8_t *b, size_t n, unsigned tag)
{
    for (size_t i = 0; i < n; ++i) b[i] = (uint8_t)(tag * 31u + i * 7u + 1u);
}

static void log_hex(const char *key, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char text[2 * 64 + 1];
    if (n > 64) n = 64;
    for (size_t i = 0; i < n; ++i) {
        text[2 * i] = digits[b[i] >> 4];
        text[2 * i + 1] = digits[b[i] & 15];
    }
    text[2 * n] = '\0';
    tfd_board_log_str(key, text);
}

static void log_digest(const char *key, const void *data, size_t n)
{
    uint8_t h[32];
    crypto_blake2b(h, sizeof h, (const uint8_t *)data, n);
    log_hex(key, h, sizeof h);
}


/* Fixed inputs shared by the vectors and the bench. */
static uint8_t sk_a[32], pk_a[32], sk_b[32], pk_b[32], seed[32], noise[32], key[32], nonce[24], secret[32];
static uint8_t rand_t5[32 * 4];
static tfd_sa_peer_t peers[N_PEERS];
static const uint32_t peer_ids[N_PEERS] = {2, 9, 40, 41};
static const tfd_sa_encoding_t enc = {.clip = 1.0f, .frac_bits = 24, .weight_max = 1000};
static const tfd_sa_summed_t k_summed = {.weight = 250};
static uint8_t dp_key[32];
static tfd_dp_gauss_t dp_gauss;
static int32_t g_draws[DP_DRAWS];
#define DP_ROUND_PARAMS 2410u /* the digits demo's trained parameters */
static uint32_t g_round_words[DP_ROUND_PARAMS];

/* what a device does per round with distributed DP (protocol.c sa_add_dp_noise + the key):
 * KDF of the fresh key, calibration for d = DP_ROUND_PARAMS, one draw per parameter */
static tfd_status_t dp_round(void)
{
    uint8_t k[32];
    uint64_t delta, s2, bound;
    tfd_dp_gauss_t g;
    TFD_TRY(tfd_sa_kdf(k, noise, TFD_SA_LABEL_DP_NOISE, ROUND, NULL, 0));
    TFD_TRY(tfd_dp_sensitivity(&delta, 1.0f, DP_FRAC, DP_ROUND_PARAMS));
    TFD_TRY(tfd_dp_sigma_sq(&s2, DP_Z_MILLI, delta, DP_M));
    TFD_TRY(tfd_dp_gauss_init(&g, s2));
    TFD_TRY(tfd_dp_word_bound(&bound, 1.0f, DP_FRAC, &g));
    tfd_dp_add_noise(g_round_words, DP_ROUND_PARAMS, &g, k);
    crypto_wipe(k, sizeof k);
    return TFD_OK;
}

/* the device's calibration for the bench setting (tfd/secagg_dp.h) */
static tfd_status_t dp_setup(void)
{
    uint64_t delta, s2, bound;
    TFD_TRY(tfd_dp_sensitivity(&delta, 1.0f, DP_FRAC, N_PARAMS));
    TFD_TRY(tfd_dp_sigma_sq(&s2, DP_Z_MILLI, delta, DP_M));
    TFD_TRY(tfd_dp_gauss_init(&dp_gauss, s2));
    TFD_TRY(tfd_dp_word_bound(&bound, 1.0f, DP_FRAC, &dp_gauss));
    tfd_board_log_u64("vec_dp_delta", delta);
    tfd_board_log_u64("vec_dp_s2", s2);
    tfd_board_log_u64("vec_dp_bound", bound);
    return TFD_OK;
}

static int vectors(void)
{
    uint8_t out[64], back[64], shares[10][32], sealed[48];
    tfd_sa_keypair(sk_a, pk_a, sk_a);
    tfd_sa_keypair(sk_b, pk_b, sk_b);
    log_hex("vec_pk_a", pk_a, 32);
    CHECK(tfd_sa_agree(out, sk_a, pk_a, pk_b, TFD_SA_LABEL_PAIR_MASK, ROUND), "agree");
    CHECK(tfd_sa_agree(back, sk_b, pk_b, pk_a, TFD_SA_LABEL_PAIR_MASK, ROUND), "agree (b)");
    if (!tfd_sa_equal32(out, back)) return tfd_bench_fail("agreement not symmetric", TFD_ERR_CRYPTO);
    log_hex("vec_agree", out, 32);
    CHECK(tfd_sa_kdf(out, key, TFD_SA_LABEL_SELF_MASK, ROUND, pk_a, 32), "kdf");
    log_hex("vec_kdf", out, 32);
    tfd_sa_prg(g_words, 100, key, 5);
    log_digest("vec_prg", g_words, 100 * sizeof g_words[0]);

    CHECK(tfd_sa_shamir_split(shares, secret, 5, 10, rand_t5, sizeof rand_t5), "split");
    log_digest("vec_shares", shares, sizeof shares);
    const uint8_t xs[5] = {10, 3, 7, 1, 5};
    uint8_t pick[5][32];
    for (int i = 0; i < 5; ++i) memcpy(pick[i], shares[xs[i] - 1], 32);
    CHECK(tfd_sa_shamir_combine(out, xs, (const uint8_t (*)[32])pick, 5), "combine");
    if (!tfd_sa_equal32(out, secret)) return tfd_bench_fail("Shamir did not reconstruct", TFD_ERR_INTERNAL);
    log_hex("vec_combine", out, 32);

    tfd_sa_seal(sealed, sealed + 32, key, nonce, 3, 8, ROUND, secret, 32);
    log_hex("vec_seal", sealed, sizeof sealed);
    CHECK(tfd_sa_open(back, key, nonce, 3, 8, ROUND, sealed, sealed + 32, 32), "open");
    if (!tfd_sa_equal32(back, secret)) return tfd_bench_fail("open returned other bytes", TFD_ERR_INTERNAL);
    sealed[5] ^= 0x10;
    if (tfd_sa_open(back, key, nonce, 3, 8, ROUND, sealed, sealed + 32, 32) != TFD_ERR_CRYPTO)
        return tfd_bench_fail("a flipped bit was accepted", TFD_ERR_INTERNAL);
    if (tfd_sa_open(back, key, nonce, 3, 8, ROUND + 1, sealed, sealed + 32, 32) != TFD_ERR_CRYPTO)
        return tfd_bench_fail("a replay into another round was accepted", TFD_ERR_INTERNAL);

    uint8_t f = 0;
    CHECK(tfd_sa_choose_fraction_bits(&f, 100, enc.clip), "choose f");
    tfd_board_log_u64("vec_frac_bits", f);
    CHECK(tfd_sa_encode(g_words, g_x, N_PARAMS, &enc, &k_summed, noise, ROUND), "encode");
    log_digest("vec_encode", g_words, sizeof g_words);
    CHECK(tfd_sa_add_self_mask(g_words, TFD_SA_WORDS(N_PARAMS), 0, seed, ROUND), "self mask");
    CHECK(tfd_sa_add_pair_masks(g_words, TFD_SA_WORDS(N_PARAMS), 0, 7, sk_a, pk_a, peers, N_PEERS, ROUND), "pair masks");
    log_digest("vec_masked", g_words, sizeof g_words);

    /* distributed DP noise (tfd/secagg_dp.h): the calibration, 200 draws of the bench
     * setting's sigma^2 and of a small one, and the stream words they used */
    CHECK(dp_setup(), "dp calibration");
    tfd_dp_rng_t rng;
    tfd_dp_rng_init(&rng, dp_key);
    for (unsigned i = 0; i < DP_DRAWS; ++i) g_draws[i] = tfd_dp_gauss_sample(&dp_gauss, &rng);
    log_digest("vec_dp_draws", g_draws, sizeof g_draws);
    tfd_board_log_u64("vec_dp_words", rng.words);
    tfd_dp_gauss_t small;
    CHECK(tfd_dp_gauss_init(&small, 3), "dp small");
    for (unsigned i = 0; i < DP_DRAWS; ++i) g_draws[i] = tfd_dp_gauss_sample(&small, &rng);
    log_digest("vec_dp_draws_small", g_draws, sizeof g_draws);
    tfd_board_log_u64("vec_dp_words_total", rng.words);
    tfd_dp_rng_wipe(&rng);

    /* device identity (tfd/identity.h): Monocypher 4's EdDSA (Ed25519 curve, BLAKE2b-512) --
     * the key pair of a seed, the signature of a 32-byte statement digest (what tinyfed signs)
     * and of a longer message; the device must accept its own and refuse a flipped bit */
    uint8_t ed_seed[32], ed_sk[64], ed_pk[32], ed_sig[64], ed_msg[100];
    fill(ed_seed, sizeof ed_seed, 20);
    fill(ed_msg, sizeof ed_msg, 21);
    crypto_eddsa_key_pair(ed_sk, ed_pk, ed_seed); /* wipes ed_seed */
    log_hex("vec_eddsa_pk", ed_pk, sizeof ed_pk);
    crypto_eddsa_sign(ed_sig, ed_sk, ed_msg, 32);
    log_hex("vec_eddsa_sig32", ed_sig, sizeof ed_sig);
    if (crypto_eddsa_check(ed_sig, ed_pk, ed_msg, 32) != 0)
        return tfd_bench_fail("own signature refused", TFD_ERR_INTERNAL);
    ed_msg[7] ^= 1u;
    if (crypto_eddsa_check(ed_sig, ed_pk, ed_msg, 32) == 0)
        return tfd_bench_fail("signature of another message accepted", TFD_ERR_INTERNAL);
    ed_msg[7] ^= 1u;
    crypto_eddsa_sign(ed_sig, ed_sk, ed_msg, sizeof ed_msg);
    log_hex("vec_eddsa_sig100", ed_sig, sizeof ed_sig);
    ed_sig[40] ^= 0x20u;
    if (crypto_eddsa_check(ed_sig, ed_pk, ed_msg, sizeof ed_msg) == 0)
        return tfd_bench_fail("a flipped signature bit was accepted", TFD_ERR_INTERNAL);
    crypto_wipe(ed_sk, sizeof ed_sk);
    return 0;
}

static uint64_t g_overhead;
static uint64_t g_t0;

static void start(void)
{
    g_t0 = tfd_bench_clocks();
}

static void stop(uint64_t *best)
{
    const uint64_t c = tfd_bench_clocks() - g_t0 - g_overhead;
    if (c < *best) *best = c;
}

static void report(const char *name, uint64_t clocks)
{
    char key[64] = "insns_";
    strncat(key, name, sizeof key - 7);
    tfd_board_log_u64(key, tfd_bench_clocks_to_insns(clocks));
}

static int bench(void)
{
    uint8_t out[32], sk[32], pk[32], shares[10][32], sealed[64 + 16], plain[64];
    uint8_t pair_keys[N_PEERS][32];
    uint64_t keygen = UINT64_MAX, agree = UINT64_MAX, kdf = UINT64_MAX, chacha = UINT64_MAX;
    uint64_t split3 = UINT64_MAX, combine3 = UINT64_MAX, split5 = UINT64_MAX, combine5 = UINT64_MAX;
    uint64_t seal = UINT64_MAX, open = UINT64_MAX, encode = UINT64_MAX, self_mask = UINT64_MAX;
    uint64_t pair_mask = UINT64_MAX, masked = UINT64_MAX, dp_noise = UINT64_MAX, dp_rnd = UINT64_MAX;
    static const uint8_t xs3[3] = {1, 2, 3}, xs5[5] = {1, 2, 3, 4, 5};
    fill(plain, sizeof plain, 11);
    for (unsigned p = 0; p < N_PEERS; ++p)
        CHECK(tfd_sa_agree(pair_keys[p], sk_a, pk_a, peers[p].public_key, TFD_SA_LABEL_PAIR_MASK, ROUND), "agree");

    for (int rep = 0; rep < TFD_SA_BENCH_REPS; ++rep) {
        start();
        tfd_sa_keypair(sk, pk, sk_b);
        stop(&keygen);
        start();
        const tfd_status_t st = tfd_sa_agree(out, sk_a, pk_a, pk_b, TFD_SA_LABEL_SHARE_KEY, ROUND);
        stop(&agree);
        CHECK(st, "agree");
        start();
        const tfd_status_t st2 = tfd_sa_kdf(out, key, TFD_SA_LABEL_SELF_MASK, ROUND, pk_a, 32);
        stop(&kdf);
        CHECK(st2, "kdf");
        start();
        tfd_sa_prg(g_words, 256, key, 0); /* 1 KiB of keystream */
        stop(&chacha);

        start();
        const tfd_status_t s3 = tfd_sa_shamir_split(shares, secret, 3, 5, rand_t5, 64);
        stop(&split3);
        start();
        const tfd_status_t c3 = tfd_sa_shamir_combine(out, xs3, (const uint8_t (*)[32])shares, 3);
        stop(&combine3);
        start();
        const tfd_status_t s5 = tfd_sa_shamir_split(shares, secret, 5, 10, rand_t5, sizeof rand_t5);
        stop(&split5);
        start();
        const tfd_status_t c5 = tfd_sa_shamir_combine(out, xs5, (const uint8_t (*)[32])shares, 5);
        stop(&combine5);
        CHECK(s3 != TFD_OK ? s3 : c3 != TFD_OK ? c3 : s5 != TFD_OK ? s5 : c5, "shamir");

        start();
        tfd_sa_seal(sealed, sealed + 64, key, nonce, 3, 8, ROUND, plain, 64);
        stop(&seal);
        start();
        const tfd_status_t so = tfd_sa_open(plain, key, nonce, 3, 8, ROUND, sealed, sealed + 64, 64);
        stop(&open);
        CHECK(so, "open");

        start();
        const tfd_status_t se = tfd_sa_encode(g_words, g_x, N_PARAMS, &enc, &k_summed, noise, ROUND);
        stop(&encode);
        CHECK(se, "encode");
        start();
        const tfd_status_t sm = tfd_sa_add_self_mask(g_words, TFD_SA_WORDS(N_PARAMS), 0, seed, ROUND);
        stop(&self_mask);
        CHECK(sm, "self mask");
        start();
        tfd_sa_prg_add(g_words, TFD_SA_WORDS(N_PARAMS), pair_keys[0], 0, 0);
        stop(&pair_mask);

        /* what a device does per round once the pair keys exist: encode,
         * self mask, one PRG per neighbour */
        start();
        tfd_status_t sx = tfd_sa_encode(g_words, g_x, N_PARAMS, &enc, &k_summed, noise, ROUND);
        if (sx == TFD_OK) sx = tfd_sa_add_self_mask(g_words, TFD_SA_WORDS(N_PARAMS), 0, seed, ROUND);
        for (unsigned p = 0; p < N_PEERS; ++p)
            tfd_sa_prg_add(g_words, TFD_SA_WORDS(N_PARAMS), pair_keys[p], 0, tfd_sa_pair_sign(7, peers[p].id) < 0);
        stop(&masked);
        CHECK(sx, "masked input");

        /* distributed DP: one draw per parameter added to the encoded words */
        start();
        tfd_dp_add_noise(g_words, N_PARAMS, &dp_gauss, dp_key);
        stop(&dp_noise);
        start();
        const tfd_status_t sd = dp_round();
        stop(&dp_rnd);
        CHECK(sd, "dp round");
    }
    crypto_wipe(pair_keys, sizeof pair_keys);
    report("x25519_keygen", keygen);
    report("x25519_agree_kdf", agree);
    report("kdf_blake2b", kdf);
    report("chacha20_1kib", chacha);
    report("shamir_split_t3_k5", split3);
    report("shamir_combine_t3", combine3);
    report("shamir_split_t5_k10", split5);
    report("shamir_combine_t5", combine5);
    report("aead_seal_64b", seal);
    report("aead_open_64b", open);
    report("encode_1000", encode);
    report("self_mask_1000", self_mask);
    report("pair_mask_1000", pair_mask);
    report("masked_input_1000_k4", masked);
    report("dp_noise_1000", dp_noise);
    report("dp_noise_round_2410", dp_rnd);
    return 0;
}

int main(void)
{
    tfd_port_init();
    tfd_bench_counter_init();
    tfd_board_log_str("bench_secagg_board", tfd_port_board_name());
    fill(sk_a, 32, 1);
    fill(sk_b, 32, 2);
    fill(seed, 32, 3);
    fill(noise, 32, 4);
    fill(key, 32, 5);
    fill(nonce, 24, 6);
    fill(secret, 32, 7);
    fill(rand_t5, sizeof rand_t5, 8);
    fill(dp_key, 32, 30);
    for (unsigned p = 0; p < N_PEERS; ++p) {
        uint8_t sk[32];
        fill(sk, 32, 10 + p);
        peers[p].id = peer_ids[p];
        tfd_sa_keypair(sk, peers[p].public_key, sk);
    }
    for (unsigned i = 0; i < N_PARAMS; ++i)
        g_x[i] = (float)((int32_t)(lcg() >> 8) - (int32_t)(1 << 23)) * 0x1p-30f;

    int rc = vectors();
    if (rc != 0) return rc;
    g_overhead = tfd_bench_overhead_clocks();
    rc = bench();
    if (rc != 0) return rc;
    tfd_board_log_u64("reps", TFD_SA_BENCH_REPS);
    tfd_board_log_u64("icount_shift", (uint64_t)(int64_t)tfd_bench_icount_shift());
    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    tfd_board_log_u64("flash_used", mem.flash_used);
    tfd_board_log_u64("ram_used", mem.ram_used);
    tfd_board_log_str("secagg_bench", "ok");
    return 0;
}
