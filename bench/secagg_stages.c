/* tinyfed — the device's SecAgg+ client (tfd/secagg_client.h) measured per
 * stage on the target under QEMU -icount: instructions and stack depth of
 * ADVERTISE_KEYS, SHARE_KEYS, MASKED_INPUT (prepare + the whole masked vector
 * streamed TFD_SAS_CHUNK words at a time, as firmware/src/fl/fl_device.c
 * does) and UNMASK.
 *
 * One image, no model: TFD_SAS_K + 1 real clients (tfd_sa_client_t, each with
 * its own keys from tfd_port_random) in one complete neighbourhood (everyone
 * is everyone's neighbour, threshold TFD_SAS_T), ids 1, 4, 7, ... (3i + 1).
 * The measured client is index K/2 (id 7 for K = 4); the others are its
 * neighbours and run on the same core, unmeasured, so every request the
 * measured client gets is the genuine one a server would send: public keys
 * from the others' ADVERTISE_KEYS replies, sealed shares routed from their
 * SHARE_KEYS replies into MASKED_INPUT, UNMASK lists as
 * host/secagg/server.py builds them.  Two rounds:
 *   round 1 "nodrop": everybody completes;
 *   round 2 "drop":   the client with the highest id shares its keys and
 *                     then drops before MASKED_INPUT, so UNMASK asks every
 *                     survivor for one s-share (of the dropped client) and
 *                     K b-shares (the survivors', its own included): the
 *                     most expensive UNMASK a single dropout gives.
 * Only the measured client's calls are timed (bench_counter.h: INSTRUCTIONS,
 * not cycles); the stack is painted just before each measured stage and the
 * depth below the caller's stack pointer read just after (stack_mark.h).
 *
 * Self-check (the bench exits 2 and logs error=... if any fails):
 *   - every call returns TFD_OK; every reply has the length, round, sender
 *     and the receivers / owners / share kinds the protocol promises;
 *   - the server's side is done on the device too: the survivors' masked
 *     vectors are summed (mod 2^32); each survivor's seed b is rebuilt from t
 *     of the b-shares in the UNMASK replies and its self mask removed; the
 *     dropped client's mask key is rebuilt from t s-shares, must give back
 *     its advertised public key, and its pairwise masks with the survivors
 *     are removed.  What remains must equal, word for word, the sum of the
 *     survivors' plain encodings (the words the clients masked, read from
 *     their encoders before UNMASK);
 *   - that sum decodes to sum_u g_u x_u * 2^f within the stochastic-rounding
 *     error (< 1 per client per word), g_u = min(1, C/|x_u|) w_u / W computed
 *     here independently, and its weight word is exactly sum_u w_u;
 *   - the measured client's masked words differ from its plain encoding.
 *
 * Log (key=value, semihosting): <round>_<stage>_insns / _stack / _req /
 * _reply for round in {nodrop, drop}, stage in {advertise, share_keys,
 * masked_prepare, masked_stream, unmask}; <round>_encoder_init_insns (the
 * part of masked_prepare that grows with n: tfd_sa_encoder_init + the in-place
 * tfd_sa_encode_chunk on the same
 * update, timed apart); sizeof_client, max_neighbours,
 * chunk_words, k, t, n_params, frac_bits, flash_used, ram_used,
 * secagg_stages=ok.  Run: python bench/secagg_stages.py.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bench_check.h"
#include "bench_counter.h"
#include "board_common.h"
#include "monocypher.h"
#include "stack_mark.h"
#include "tfd/port.h"
#include "tfd/fleet_maker.h" /* a throwaway fleet for the k + 1 clients */
#include "tfd/secagg.h"
#include "tfd/secagg_client.h"

#ifndef TFD_SAS_K
#define TFD_SAS_K 4 /* neighbours of the measured client */
#endif
#ifndef TFD_SAS_T
#define TFD_SAS_T 3 /* Shamir threshold */
#endif
#ifndef TFD_SAS_N_PARAMS
#define TFD_SAS_N_PARAMS 1000 /* parameters of the update */
#endif
#ifndef TFD_SAS_CHUNK
#define TFD_SAS_CHUNK 16 /* masked words per tfd_sa_client_masked_read (fl_device.c reads 16) */
#endif

_Static_assert(TFD_SAS_K >= 1 && TFD_SAS_K <= TFD_SA_CLIENT_MAX_NEIGHBOURS,
               "TFD_SAS_K must be 1..TFD_SA_CLIENT_MAX_NEIGHBOURS (wire.def SA_MAX_NEIGHBOURS)");
#if TFD_SAS_T < 2 || TFD_SAS_T > TFD_SAS_K || 2 * TFD_SAS_T <= TFD_SAS_K + 1
#error "TFD_SAS_T must be 2..TFD_SAS_K (a round with one dropout needs K survivors >= t) and a strict majority of the K + 1 holders (device policy)"
#endif
#if TFD_SAS_N_PARAMS < 1 || TFD_SAS_CHUNK < 1
#error "TFD_SAS_N_PARAMS and TFD_SAS_CHUNK must be positive"
#endif

#define K ((unsigned)TFD_SAS_K)
#define T ((unsigned)TFD_SAS_T)
#define NC (K + 1u)                    /* clients */
#define NP ((uint32_t)TFD_SAS_N_PARAMS) /* parameters */
#define NW TFD_SA_WORDS(NP)            /* masked words (update || the TFD_SUMMED scalars) */
#define WEIGHT_WORD (NP + (uint32_t)TFD_SA_SUMMED_weight)
#define CHUNK ((uint32_t)TFD_SAS_CHUNK)
#define MEASURED (K / 2u)              /* index of the measured client */
#define DROPPED K                      /* index of the client that drops in round 2 */
#define CLIP 1.0f
#define WEIGHT_MAX 1000u
#define PAINT_MARGIN 16u

/* bodies are built and read through the wire table (tfd/wire.def TFD_BODY), as the host does */
#define SK_REPLY_BYTES TFD_SA_SHARE_KEYS_REPLY_BYTES(K)
#define REQ_MAX TFD_WIRE_SA_BODY_MAX
#define REPLY_MAX TFD_WIRE_SA_BODY_MAX

static tfd_sa_client_t g_cl[NC];
static tfd_identity_t g_ident[NC];
static uint8_t g_rec[NC][TFD_ID_RECORD_BYTES(NC)];
static uint8_t g_adv_sig[NC][64], g_surv_sig[NC][64];
static uint32_t g_id[NC];
static uint32_t g_weight[NC];
static uint8_t g_share_pk[NC][32], g_mask_pk[NC][32];
static uint8_t g_sk_reply[NC][SK_REPLY_BYTES];
static uint8_t g_req[REQ_MAX];
static uint8_t g_reply[REPLY_MAX];
static uint8_t g_bsh[NC][NC][32]; /* [owner][holder] b-shares from UNMASK replies */
static uint8_t g_have_b[NC][NC];
static uint8_t g_ssh[NC][32];     /* [holder] s-share of the dropped client */
static uint8_t g_have_s[NC];
static float g_x[NP];
static uint32_t g_sum_masked[NW], g_sum_plain[NW];
static uint32_t g_chunk[CHUNK], g_plain_chunk[CHUNK];
static uint64_t g_overhead;

static tfd_status_t bench_random(uint8_t *out, size_t len)
{
    return tfd_port_random(out, len);
}



/* ---- the update of client u in a round: a stateless hash, so the check can regenerate it ---- */
static uint32_t mix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

static float update_value(unsigned u, uint32_t round, uint32_t i)
{
    const uint32_t h = mix(i * 0x9E3779B1u ^ mix(g_id[u] * 0x27D4EB2Fu + round));
    return (float)((int32_t)(h >> 8) - (int32_t)(1 << 23)) * 0x1p-30f; /* |x| < 2^-7 */
}

static void make_update_into(float *x, unsigned u, uint32_t round)
{
    for (uint32_t i = 0; i < NP; ++i) x[i] = update_value(u, round, i);
}

static void make_update(unsigned u, uint32_t round)
{
    make_update_into(g_x, u, round);
}

/* g_u * 2^f of tfd/secagg.h, computed here independently of encode.c */
static double expected_scale(unsigned u, uint32_t round, unsigned frac_bits)
{
    double s = 0.0;
    for (uint32_t i = 0; i < NP; ++i) {
        const double v = (double)update_value(u, round, i);
        s += v * v;
    }
    const double norm = sqrt(s);
    const double clip = norm <= (double)CLIP ? 1.0 : (double)CLIP / norm;
    return clip * ((double)g_weight[u] / (double)WEIGHT_MAX) * ldexp(1.0, (int)frac_bits);
}

/* ---- measurement ------------------------------------------------------------------------ */
typedef struct {
    uint64_t clocks;
    uint32_t stack;       /* deepest stack below the caller's stack pointer */
    uint32_t req, reply;  /* body bytes */
    uintptr_t sp;
    uint64_t t0;
} probe_t;

static probe_t g_identity_init, g_sign, g_verify; /* identity costs, timed apart */

/* Inlined into the measuring function so tfd_stack_pointer() is its sp. */
#define STACK_BEGIN(p)                     \
    do {                                   \
        (p).sp = tfd_stack_pointer();      \
        tfd_stack_paint(PAINT_MARGIN);     \
    } while (0)
#define STACK_END(p)                                                   \
    do {                                                               \
        const uint32_t d_ = (uint32_t)((p).sp - tfd_stack_low_water()); \
        if (d_ > (p).stack) (p).stack = d_;                            \
    } while (0)
#define TIME_BEGIN(p) ((p).t0 = tfd_bench_clocks())
#define TIME_END(p)                                                       \
    do {                                                                  \
        const uint64_t c_ = tfd_bench_clocks() - (p).t0;                  \
        (p).clocks += c_ > g_overhead ? c_ - g_overhead : 0;              \
    } while (0)

/* st = call, for client u; the measured client's call is timed and its stack measured,
 * and its request / reply bytes recorded */
#define STAGE_CALL(u, p, req_len, out_len, call)  \
    do {                                          \
        if ((u) == MEASURED) {                    \
            STACK_BEGIN(*(p));                    \
            TIME_BEGIN(*(p));                     \
            st = (call);                          \
            TIME_END(*(p));                       \
            STACK_END(*(p));                      \
            (p)->req = (uint32_t)(req_len);       \
            (p)->reply = (uint32_t)(out_len);     \
        } else {                                  \
            st = (call);                          \
        }                                         \
    } while (0)

static void report(const char *round, const char *stage, const probe_t *p)
{
    static const char *const fields[4] = {"_insns", "_stack", "_req", "_reply"};
    const uint64_t values[4] = {tfd_bench_clocks_to_insns(p->clocks), p->stack, p->req, p->reply};
    for (int f = 0; f < 4; ++f) {
        char key[64];
        key[0] = '\0';
        strncat(key, round, 16);
        strncat(key, "_", 2);
        strncat(key, stage, 24);
        strncat(key, fields[f], 8);
        tfd_board_log_u64(key, values[f]);
    }
}

typedef struct {
    probe_t advertise, share_keys, masked_prepare, masked_stream, survivors, unmask;
    probe_t encoder_init; /* not a stage: the O(n) part of masked_prepare, timed apart */
} stages_t;

/* ---- the four stages, driven as host/secagg/server.py drives them -------------------------- */
static int stage_advertise(uint32_t round, probe_t *p)
{
    for (unsigned u = 0; u < NC; ++u) {
        tfd_body_SA_ADVERTISE_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = round;
        b.self_id = g_id[u];
        b.threshold = (uint16_t)T;
        b.neighbours_count = K;
        size_t len = 0;
        CHECK(TFD_BODY_ENCODE(SA_ADVERTISE_REQ, &b, g_req, sizeof g_req, &len), "ADVERTISE_KEYS body");
        unsigned e = 0;
        for (unsigned v = 0; v < NC; ++v) {
            if (v == u) continue;
            const tfd_rec_SA_ID_t id = {.id = g_id[v]};
            CHECK(tfd_body_SA_ADVERTISE_REQ_put_neighbours(g_req, sizeof g_req, &b, e++, &id), "neighbour");
        }
        size_t out_len = 0;
        tfd_status_t st;
        STAGE_CALL(u, p, len, out_len,
                   tfd_sa_client_advertise(&g_cl[u], g_req, len, g_reply, sizeof g_reply, &out_len));
        CHECK(st, "ADVERTISE_KEYS");
        tfd_body_SA_ADVERTISE_REPLY_t r;
        CHECK(TFD_BODY_DECODE(SA_ADVERTISE_REPLY, g_reply, out_len, &r), "ADVERTISE_KEYS reply body");
        ENSURE(r.round == round && r.self_id == g_id[u], "ADVERTISE_KEYS reply: round / id");
        memcpy(g_share_pk[u], r.share_pk, 32);
        memcpy(g_mask_pk[u], r.mask_pk, 32);
        memcpy(g_adv_sig[u], r.sig, 64);
        ENSURE(!tfd_sa_equal32(g_share_pk[u], g_mask_pk[u]), "ADVERTISE_KEYS reply: one key twice");
    }
    return 0;
}

static int stage_share_keys(uint32_t round, probe_t *p)
{
    for (unsigned u = 0; u < NC; ++u) {
        tfd_body_SA_SHARE_KEYS_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = round;
        b.keys_count = K;
        size_t len = 0;
        CHECK(TFD_BODY_ENCODE(SA_SHARE_KEYS_REQ, &b, g_req, sizeof g_req, &len), "SHARE_KEYS body");
        unsigned e = 0;
        for (unsigned v = 0; v < NC; ++v) {
            if (v == u) continue;
            tfd_rec_SA_PEER_KEYS_t k;
            memset(&k, 0, sizeof k);
            k.id = g_id[v];
            memcpy(k.share_pk, g_share_pk[v], 32);
            memcpy(k.mask_pk, g_mask_pk[v], 32);
            k.n_nb = K; /* everyone is everyone's neighbour */
            unsigned q = 0;
            for (unsigned w = 0; w < NC; ++w) {
                if (w != v) k.nb[q++] = g_id[w];
            }
            memcpy(k.sig, g_adv_sig[v], 64);
            CHECK(tfd_body_SA_SHARE_KEYS_REQ_put_keys(g_req, sizeof g_req, &b, e++, &k), "peer keys");
        }
        size_t out_len = 0;
        tfd_status_t st;
        STAGE_CALL(u, p, len, out_len,
                   tfd_sa_client_share_keys(&g_cl[u], g_req, len, g_sk_reply[u], sizeof g_sk_reply[u], &out_len));
        CHECK(st, "SHARE_KEYS");
        tfd_body_SA_SHARE_KEYS_REPLY_t r;
        CHECK(TFD_BODY_DECODE(SA_SHARE_KEYS_REPLY, g_sk_reply[u], out_len, &r), "SHARE_KEYS reply body");
        ENSURE(out_len == SK_REPLY_BYTES && r.round == round && r.sender == g_id[u] && r.shares_count == K,
               "SHARE_KEYS reply: length / round / sender / count");
        e = 0;
        for (unsigned v = 0; v < NC; ++v) { /* one sealed share per neighbour, in id order */
            if (v == u) continue;
            tfd_rec_SA_SEALED_OUT_t x;
            CHECK(tfd_body_SA_SHARE_KEYS_REPLY_shares(&r, e++, &x), "sealed share");
            ENSURE(x.receiver == g_id[v], "SHARE_KEYS reply: receivers");
        }
    }
    return 0;
}

/* the sealed share client `from` made for client `to`, from from's SHARE_KEYS reply */
static int sealed_for(unsigned from, unsigned to, tfd_rec_SA_SEALED_OUT_t *x)
{
    tfd_body_SA_SHARE_KEYS_REPLY_t r;
    if (TFD_BODY_DECODE(SA_SHARE_KEYS_REPLY, g_sk_reply[from], SK_REPLY_BYTES, &r) != TFD_OK) return 0;
    for (unsigned e = 0; e < r.shares_count; ++e) {
        if (tfd_body_SA_SHARE_KEYS_REPLY_shares(&r, e, x) == TFD_OK && x->receiver == g_id[to]) return 1;
    }
    return 0;
}

static int stage_masked_input(uint32_t round, int dropped, probe_t *prep, probe_t *stream, probe_t *enc_init)
{
    memset(g_sum_masked, 0, sizeof g_sum_masked);
    memset(g_sum_plain, 0, sizeof g_sum_plain);
    for (unsigned u = 0; u < NC; ++u) {
        if ((int)u == dropped) continue; /* gone after SHARE_KEYS: its shares still reach the others */
        tfd_body_SA_MASKED_INPUT_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = round;
        b.shares_count = K;
        size_t len = 0;
        CHECK(TFD_BODY_ENCODE(SA_MASKED_INPUT_REQ, &b, g_req, sizeof g_req, &len), "MASKED_INPUT body");
        unsigned e = 0;
        for (unsigned v = 0; v < NC; ++v) {
            if (v == u) continue;
            tfd_rec_SA_SEALED_OUT_t x;
            ENSURE(sealed_for(v, u, &x), "no sealed share for a neighbour");
            tfd_rec_SA_SEALED_IN_t in;
            in.sender = g_id[v];
            in.receiver = x.receiver;
            memcpy(in.nonce, x.nonce, sizeof in.nonce);
            memcpy(in.sealed, x.sealed, sizeof in.sealed);
            CHECK(tfd_body_SA_MASKED_INPUT_REQ_put_shares(g_req, sizeof g_req, &b, e++, &in), "sealed share in");
        }
        make_update(u, round);
        tfd_sa_summed_t summed;
        memset(&summed, 0, sizeof summed);
        summed.weight = g_weight[u];
        uint32_t n_words = 0;
        tfd_status_t st;
        const int measured = u == MEASURED;
        if (measured) {
            STACK_BEGIN(*prep);
            TIME_BEGIN(*prep);
            st = tfd_sa_client_masked_input(&g_cl[u], g_req, len, g_x, NP, &summed, &n_words);
            TIME_END(*prep);
            STACK_END(*prep);
            prep->req = (uint32_t)len;
            prep->reply = 0;
        } else {
            st = tfd_sa_client_masked_input(&g_cl[u], g_req, len, g_x, NP, &summed, &n_words);
        }
        CHECK(st, "MASKED_INPUT");
        ENSURE(n_words == NW, "MASKED_INPUT: word count");
        if (measured) {
            /* the part of prepare that grows with n (norm pass + rounding key), timed on its
             * own with the same update and encoding: the rest is the k agreements */
            static tfd_sa_encoder_t e;
            static const uint8_t noise_key[32] = {1};
            static float copy[NP];
            make_update_into(copy, u, round);
            /* the O(n) part of prepare on a copy: norm pass + the in-place encoding */
            TIME_BEGIN(*enc_init);
            st = tfd_sa_encoder_init(&e, copy, NP, &g_cl[u].enc, &summed, noise_key, round);
            if (st == TFD_OK) st = tfd_sa_encode_chunk(&e, (uint32_t *)(void *)copy, 0, NP);
            TIME_END(*enc_init);
            tfd_sa_encoder_wipe(&e);
            CHECK(st, "encoder init + encode");
        }

        /* the reply body: u32 round || NW masked words, made CHUNK words at a time */
        uint32_t equal = 0;
        if (measured) STACK_BEGIN(*stream);
        for (uint32_t o = 0; o < NW; o += CHUNK) {
            const uint32_t cnt = NW - o < CHUNK ? NW - o : CHUNK;
            if (measured) {
                TIME_BEGIN(*stream);
                st = tfd_sa_client_masked_read(&g_cl[u], o, g_chunk, cnt);
                TIME_END(*stream);
            } else {
                st = tfd_sa_client_masked_read(&g_cl[u], o, g_chunk, cnt);
            }
            CHECK(st, "masked read");
            /* the words it masked (harness access to the client's encoded words, not part of the protocol) */
            for (uint32_t i = 0; i < cnt; ++i) {
                const uint32_t at = o + i;
                if (at < NP) memcpy(&g_plain_chunk[i], (const uint8_t *)g_x + 4u * at, 4);
                else g_plain_chunk[i] = ((const uint32_t *)(const void *)&summed)[at - NP];
            }
            for (uint32_t i = 0; i < cnt; ++i) {
                g_sum_masked[o + i] += g_chunk[i];
                g_sum_plain[o + i] += g_plain_chunk[i];
                equal += g_chunk[i] == g_plain_chunk[i];
            }
            if (o <= WEIGHT_WORD && WEIGHT_WORD < o + cnt)
                ENSURE(g_plain_chunk[WEIGHT_WORD - o] == g_weight[u], "plain weight word");
        }
        if (measured) {
            STACK_END(*stream);
            stream->req = 0;
            stream->reply = (uint32_t)TFD_WIRE_FIXED_SA_MASKED_INPUT_REPLY + (uint32_t)TFD_WIRE_FIXED_SA_WORD * NW;
            ENSURE(equal <= 2, "masked words equal the plain encoding");
        }
    }
    crypto_wipe(g_chunk, sizeof g_chunk);
    crypto_wipe(g_plain_chunk, sizeof g_plain_chunk);
    return 0;
}

/* SURVIVORS: the survivor set (everyone but the dropped client), signed by each survivor */
static int stage_survivors(uint32_t round, int dropped, probe_t *p)
{
    uint8_t bm[(NC + 7u) / 8u];
    memset(bm, 0, sizeof bm);
    for (unsigned u = 0; u < NC; ++u) {
        if ((int)u != dropped) bm[u / 8u] |= (uint8_t)(1u << (u % 8u)); /* manifest order = g_id order */
    }
    tfd_body_SA_SURVIVORS_REQ_t b;
    memset(&b, 0, sizeof b);
    b.round = round;
    b.bitmap = bm;
    b.bitmap_count = sizeof bm;
    size_t len = 0;
    CHECK(TFD_BODY_ENCODE(SA_SURVIVORS_REQ, &b, g_req, sizeof g_req, &len), "SURVIVORS body");
    for (unsigned u = 0; u < NC; ++u) {
        if ((int)u == dropped) continue;
        size_t out_len = 0;
        tfd_status_t st;
        STAGE_CALL(u, p, len, out_len, tfd_sa_client_survivors(&g_cl[u], g_req, len, g_reply, sizeof g_reply, &out_len));
        CHECK(st, "SURVIVORS");
        tfd_body_SA_SURVIVORS_REPLY_t r;
        CHECK(TFD_BODY_DECODE(SA_SURVIVORS_REPLY, g_reply, out_len, &r), "SURVIVORS reply body");
        ENSURE(r.round == round && r.self_id == g_id[u], "SURVIVORS reply: round / id");
        memcpy(g_surv_sig[u], r.sig, 64);
    }
    return 0;
}

static int stage_unmask(uint32_t round, int dropped, probe_t *p)
{
    memset(g_have_b, 0, sizeof g_have_b);
    memset(g_have_s, 0, sizeof g_have_s);
    const unsigned nd = dropped >= 0 ? 1u : 0u, ns = NC - nd;
    for (unsigned u = 0; u < NC; ++u) {
        if ((int)u == dropped) continue;
        /* the other survivors' signatures of the survivor set */
        tfd_body_SA_UNMASK_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = round;
        b.sigs_count = ns - 1u;
        size_t len = 0;
        CHECK(TFD_BODY_ENCODE(SA_UNMASK_REQ, &b, g_req, sizeof g_req, &len), "UNMASK body");
        unsigned e = 0;
        for (unsigned v = 0; v < NC; ++v) {
            if ((int)v == dropped || v == u) continue;
            tfd_rec_SA_SIGNATURE_t g;
            g.signer = g_id[v];
            memcpy(g.sig, g_surv_sig[v], 64);
            CHECK(tfd_body_SA_UNMASK_REQ_put_sigs(g_req, sizeof g_req, &b, e++, &g), "signature");
        }
        size_t out_len = 0;
        tfd_status_t st;
        STAGE_CALL(u, p, len, out_len,
                   tfd_sa_client_unmask(&g_cl[u], g_req, len, g_reply, sizeof g_reply, &out_len));
        CHECK(st, "UNMASK");
        ENSURE(g_cl[u].stage == TFD_SA_CLIENT_DONE, "UNMASK: client not DONE");
        tfd_body_SA_UNMASK_REPLY_t r;
        CHECK(TFD_BODY_DECODE(SA_UNMASK_REPLY, g_reply, out_len, &r), "UNMASK reply body");
        ENSURE(out_len == TFD_SA_UNMASK_REPLY_BYTES(NC) && r.round == round && r.holder == g_id[u] &&
                   r.shares_count == NC,
               "UNMASK reply: length / round / holder / count (own b + every neighbour held)");
        for (unsigned i = 0; i < r.shares_count; ++i) {
            tfd_rec_SA_SHARE_t x;
            CHECK(tfd_body_SA_UNMASK_REPLY_shares(&r, i, &x), "UNMASK reply: share");
            unsigned owner = NC;
            for (unsigned v = 0; v < NC; ++v) owner = g_id[v] == x.owner ? v : owner;
            ENSURE(owner < NC, "UNMASK reply: unknown owner");
            if ((int)owner == dropped) {
                ENSURE(x.kind == TFD_SA_SHARE_KIND_S && !g_have_s[u], "UNMASK reply: s-share kind");
                memcpy(g_ssh[u], x.share, 32);
                g_have_s[u] = 1;
            } else {
                ENSURE(x.kind == TFD_SA_SHARE_KIND_B && !g_have_b[owner][u], "UNMASK reply: b-share kind");
                memcpy(g_bsh[owner][u], x.share, 32);
                g_have_b[owner][u] = 1;
            }
            crypto_wipe(&x, sizeof x);
        }
    }
    crypto_wipe(g_reply, sizeof g_reply);
    return 0;
}

/* The server's unmasking, on the device: the masks must cancel to the plain sum. */
static int check_aggregate(uint32_t round, int dropped, unsigned frac_bits)
{
    uint8_t xs[T], shares[T][32], secret[32], key[32];
    for (unsigned u = 0; u < NC; ++u) {
        if ((int)u == dropped) continue;
        unsigned m = 0; /* holder x = 1 + rank of the holder among all ids (complete graph) */
        for (unsigned h = 0; h < NC && m < T; ++h) {
            if (!g_have_b[u][h]) continue;
            xs[m] = (uint8_t)(h + 1u);
            memcpy(shares[m++], g_bsh[u][h], 32);
        }
        ENSURE(m == T, "fewer than t b-shares");
        CHECK(tfd_sa_shamir_combine(secret, xs, (const uint8_t (*)[32])shares, T), "combine b");
        CHECK(tfd_sa_kdf(key, secret, TFD_SA_LABEL_SELF_MASK, round, NULL, 0), "self-mask key");
        tfd_sa_prg_add(g_sum_masked, NW, key, 0, 1);
    }
    if (dropped >= 0) {
        unsigned m = 0;
        for (unsigned h = 0; h < NC && m < T; ++h) {
            if (!g_have_s[h]) continue;
            xs[m] = (uint8_t)(h + 1u);
            memcpy(shares[m++], g_ssh[h], 32);
        }
        ENSURE(m == T, "fewer than t s-shares");
        CHECK(tfd_sa_shamir_combine(secret, xs, (const uint8_t (*)[32])shares, T), "combine s");
        uint8_t sk[32], pk[32];
        tfd_sa_keypair(sk, pk, secret);
        ENSURE(tfd_sa_equal32(pk, g_mask_pk[dropped]), "rebuilt mask key != advertised public key");
        tfd_sa_peer_t peers[NC];
        unsigned np = 0;
        for (unsigned v = 0; v < NC; ++v) {
            if ((int)v == dropped) continue;
            peers[np].id = g_id[v];
            memcpy(peers[np++].public_key, g_mask_pk[v], 32);
        }
        /* survivor v added sign(v, d) PRG(s_vd); this adds sign(d, v) PRG(s_dv) = the opposite */
        CHECK(tfd_sa_add_pair_masks(g_sum_masked, NW, 0, g_id[dropped], sk, pk, peers, np, round),
              "dropped client's pair masks");
        crypto_wipe(sk, sizeof sk);
    }
    crypto_wipe(secret, sizeof secret);
    crypto_wipe(shares, sizeof shares);
    crypto_wipe(key, sizeof key);
    for (uint32_t i = 0; i < NW; ++i) ENSURE(g_sum_masked[i] == g_sum_plain[i], "unmasked sum != sum of encodings");

    /* the plain sum decodes to sum_u g_u x_u (2^f units) within the rounding */
    double scale[NC] = {0};
    uint32_t wsum = 0;
    unsigned n_live = 0;
    for (unsigned u = 0; u < NC; ++u) {
        if ((int)u == dropped) continue;
        scale[u] = expected_scale(u, round, frac_bits);
        wsum += g_weight[u];
        ++n_live;
    }
    ENSURE(g_sum_plain[WEIGHT_WORD] == wsum, "weight word != sum of weights");
    for (uint32_t i = 0; i < NP; ++i) {
        double want = 0.0;
        for (unsigned u = 0; u < NC; ++u) {
            if ((int)u != dropped) want += (double)update_value(u, round, i) * scale[u];
        }
        ENSURE(fabs((double)(int32_t)g_sum_plain[i] - want) < (double)n_live, "sum does not decode to sum g x");
    }
    return 0;
}

static int run_round(uint32_t round, int dropped, stages_t *s)
{
    memset(s, 0, sizeof *s);
    int rc = stage_advertise(round, &s->advertise);
    if (rc == 0) rc = stage_share_keys(round, &s->share_keys);
    if (rc == 0) rc = stage_masked_input(round, dropped, &s->masked_prepare, &s->masked_stream, &s->encoder_init);
    if (rc == 0) rc = stage_survivors(round, dropped, &s->survivors);
    if (rc == 0) rc = stage_unmask(round, dropped, &s->unmask);
    return rc;
}

static void report_round(const char *tag, const stages_t *s)
{
    report(tag, "advertise", &s->advertise);
    report(tag, "share_keys", &s->share_keys);
    report(tag, "masked_prepare", &s->masked_prepare);
    report(tag, "masked_stream", &s->masked_stream);
    report(tag, "survivors", &s->survivors);
    report(tag, "unmask", &s->unmask);
    char key[40] = "";
    strncat(key, tag, 16);
    strncat(key, "_encoder_init_insns", 20);
    tfd_board_log_u64(key, tfd_bench_clocks_to_insns(s->encoder_init.clocks));
}

int main(void)
{
    tfd_port_init();
    tfd_bench_counter_init();
    tfd_board_log_str("bench_secagg_stages_board", tfd_port_board_name());
    g_overhead = tfd_bench_overhead_clocks();

    uint8_t frac_bits = 0;
    CHECK(tfd_sa_choose_fraction_bits(&frac_bits, NC, CLIP), "choose f");
    const tfd_sa_encoding_t enc = {.clip = CLIP, .frac_bits = frac_bits, .weight_max = WEIGHT_MAX};
    CHECK(tfd_sa_check_encoding(NC, &enc), "encoding");
    for (unsigned u = 0; u < NC; ++u) {
        g_id[u] = 3u * u + 1u;
        g_weight[u] = 10u + 7u * u;
    }
    /* identities: a fleet of these ids (fleet key and device keys made here, as the toolchain
     * makes them), each record checked -- its fleet signature included -- as a device does at boot */
    static const uint8_t fleet_seed[32] = {0x5e, 0xc0};
    for (unsigned u = 0; u < NC; ++u) {
        size_t rl = 0;
        CHECK(tfd_fleet_record(g_rec[u], sizeof g_rec[u], &rl, g_id, NC, u, fleet_seed, 2), "fleet record");
        if (u == MEASURED) {
            TIME_BEGIN(g_identity_init);
            CHECK(tfd_identity_init(&g_ident[u], g_rec[u], rl), "identity");
            TIME_END(g_identity_init);
        } else {
            CHECK(tfd_identity_init(&g_ident[u], g_rec[u], rl), "identity");
        }
        CHECK(tfd_sa_client_init(&g_cl[u], &g_ident[u], &enc, bench_random), "client init");
    }
    /* one signature and one verification alone, on a 32-byte digest (what every statement is) */
    {
        static const uint8_t digest[32] = {1, 2, 3};
        uint8_t sig[64];
        TIME_BEGIN(g_sign);
        tfd_identity_sign(&g_ident[MEASURED], sig, digest);
        TIME_END(g_sign);
        TIME_BEGIN(g_verify);
        const tfd_status_t vs = tfd_identity_verify(&g_ident[0], g_id[MEASURED], sig, digest);
        TIME_END(g_verify);
        CHECK(vs, "verify");
    }

    static stages_t nodrop, drop;
    int rc = run_round(1, -1, &nodrop);
    if (rc == 0) rc = check_aggregate(1, -1, frac_bits);
    if (rc == 0) rc = run_round(2, (int)DROPPED, &drop);
    if (rc == 0) rc = check_aggregate(2, (int)DROPPED, frac_bits);
    if (rc != 0) return rc;
    report_round("nodrop", &nodrop);
    report_round("drop", &drop);

    tfd_board_log_u64("k", K);
    tfd_board_log_u64("t", T);
    tfd_board_log_u64("n_params", NP);
    tfd_board_log_u64("measured_id", g_id[MEASURED]);
    tfd_board_log_u64("dropped_id", g_id[DROPPED]);
    tfd_board_log_u64("frac_bits", frac_bits);
    tfd_board_log_u64("chunk_words", CHUNK);
    tfd_board_log_u64("sizeof_client", sizeof(tfd_sa_client_t));
    tfd_board_log_u64("sizeof_identity", sizeof(tfd_identity_t));
    tfd_board_log_u64("identity_record_bytes", TFD_ID_RECORD_BYTES(NC));
    tfd_board_log_u64("identity_init_insns", tfd_bench_clocks_to_insns(g_identity_init.clocks));
    tfd_board_log_u64("sign_insns", tfd_bench_clocks_to_insns(g_sign.clocks));
    tfd_board_log_u64("verify_insns", tfd_bench_clocks_to_insns(g_verify.clocks));
    tfd_board_log_u64("max_neighbours", TFD_SA_CLIENT_MAX_NEIGHBOURS);
    tfd_board_log_u64("icount_shift", (uint64_t)(int64_t)tfd_bench_icount_shift());
    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    tfd_board_log_u64("flash_used", mem.flash_used);
    tfd_board_log_u64("ram_used", mem.ram_used);
    tfd_board_log_u64("stack_size", mem.stack_size);
    tfd_board_log_str("secagg_stages", "ok");
    return 0;
}
