/* tinyfed — the device's SecAgg+ client stage machine (tfd/secagg_client.h). */
#include <string.h>

#include "monocypher.h"
#include "sa_internal.h"
#include "tfd/secagg_client.h"
#include "tfd/secagg_dp.h"

#define SA_BIT(s) (1u << (unsigned)TFD_SA_CLIENT_##s)

/* allowed transitions: from -> set of to (a refusal always goes to IDLE via wipe) */
static const uint8_t kSaTransitions[TFD_SA_CLIENT_STAGE_COUNT] = {
    [TFD_SA_CLIENT_IDLE] = SA_BIT(ADVERTISED),
    [TFD_SA_CLIENT_ADVERTISED] = SA_BIT(ADVERTISED) | SA_BIT(SHARED),
    [TFD_SA_CLIENT_SHARED] = SA_BIT(ADVERTISED) | SA_BIT(MASKED),
    [TFD_SA_CLIENT_MASKED] = SA_BIT(ADVERTISED) | SA_BIT(CHECKED),
    [TFD_SA_CLIENT_CHECKED] = SA_BIT(ADVERTISED) | SA_BIT(DONE),
    [TFD_SA_CLIENT_DONE] = SA_BIT(ADVERTISED),
};

const char *tfd_sa_client_stage_name(tfd_sa_client_stage_t stage)
{
    switch (stage) {
#define TFD_SA_CLIENT_STAGE_NAME_(name, value) \
    case TFD_SA_CLIENT_##name:                 \
        return #name;
        TFD_SA_CLIENT_STAGE_LIST(TFD_SA_CLIENT_STAGE_NAME_)
#undef TFD_SA_CLIENT_STAGE_NAME_
    default: return "?";
    }
}

TFD_CHECK_RESULT static tfd_status_t sa_go(tfd_sa_client_t *c, tfd_sa_client_stage_t to)
{
    TFD_ENSURE((unsigned)to < TFD_SA_CLIENT_STAGE_COUNT && (unsigned)c->stage < TFD_SA_CLIENT_STAGE_COUNT,
               TFD_ERR_INTERNAL);
    TFD_ENSURE((kSaTransitions[c->stage] & (1u << (unsigned)to)) != 0, TFD_ERR_PROTO_STATE);
    c->stage = to;
    return TFD_OK;
}

/* the request is for the current round and stage: else refused, nothing changes */
TFD_CHECK_RESULT static tfd_status_t sa_expect(const tfd_sa_client_t *c, tfd_sa_client_stage_t stage, uint32_t round)
{
    TFD_ENSURE(c->has_round && round == c->round, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(c->stage == stage, TFD_ERR_PROTO_STATE);
    return TFD_OK;
}

tfd_status_t tfd_sa_request_round(uint8_t msg_id, const uint8_t *req, size_t len, uint32_t *round)
{
    union {
        tfd_body_SA_ADVERTISE_REQ_t adv;
        tfd_body_SA_SHARE_KEYS_REQ_t sk;
        tfd_body_SA_MASKED_INPUT_REQ_t mi;
        tfd_body_SA_SURVIVORS_REQ_t sv;
        tfd_body_SA_UNMASK_REQ_t un;
    } b;
    const tfd_wire_struct_t *d = tfd_wire_find_body(msg_id, TFD_DIR_H2D);
    TFD_ENSURE(d != NULL && round != NULL, TFD_ERR_ARG);
    TFD_ENSURE(d->native_size <= sizeof b, TFD_ERR_INTERNAL);
    TFD_TRY(tfd_wire_body_decode(d, req, len, &b, d->native_size));
    memcpy(round, &b, sizeof *round); /* every body starts with u32 round (tfd/wire.h asserts it) */
    return TFD_OK;
}

/* RFC 1982 serial-number order on round ids: r is after l iff 0 < r - l < 2^31 (mod 2^32) */
static int sa_round_after(uint32_t r, uint32_t l)
{
    const uint32_t d = r - l;
    return d != 0 && d < UINT32_C(0x80000000);
}

void tfd_sa_client_wipe(tfd_sa_client_t *c)
{
    if (c->vec != NULL) crypto_wipe(c->vec, (size_t)c->n_params * 4u); /* the encoded update */
    const uint32_t id = c->id, round = c->round;
    const uint8_t has_round = c->has_round;
    const tfd_sa_encoding_t enc = c->enc;
    const tfd_sa_random_fn random = c->random;
    const tfd_identity_t *ident = c->ident;
    crypto_wipe(c, sizeof *c);
    c->ident = ident;
    c->id = id;
    c->round = round;
    c->has_round = has_round;
    c->enc = enc;
    c->random = random;
    c->stage = TFD_SA_CLIENT_IDLE;
}

/* a content refusal abandons the round */
TFD_CHECK_RESULT static tfd_status_t sa_refuse(tfd_sa_client_t *c, tfd_status_t st)
{
    tfd_sa_client_wipe(c);
    return st;
}

#define SA_REFUSE_IF(cond, code)                          \
    do {                                                  \
        if (cond) return sa_refuse(c, (code));            \
    } while (0)
#define SA_TRY_OR_REFUSE(expr)                            \
    do {                                                  \
        const tfd_status_t sa_st_ = (expr);               \
        if (sa_st_ != TFD_OK) return sa_refuse(c, sa_st_); \
    } while (0)

tfd_status_t tfd_sa_client_init(tfd_sa_client_t *c, const tfd_identity_t *ident, const tfd_sa_encoding_t *enc,
                                tfd_sa_random_fn random)
{
    TFD_ENSURE(c != NULL && enc != NULL && random != NULL, TFD_ERR_ARG);
    TFD_ENSURE(ident != NULL && ident->ok && ident->device_id != 0, TFD_ERR_POLICY); /* no identity: no SecAgg+ */
    TFD_TRY(tfd_sa_check_encoding(1, enc));
    memset(c, 0, sizeof *c);
    c->ident = ident;
    c->id = ident->device_id;
    c->enc = *enc;
    c->random = random;
    c->stage = TFD_SA_CLIENT_IDLE;
    return TFD_OK;
}

/* the smallest neighbourhood this fleet accepts */
static unsigned sa_min_neighbours(const tfd_sa_client_t *c)
{
    const unsigned fleet = c->ident->min_neighbours;
    return fleet > TFD_WIRE_SA_MIN_NEIGHBOURS ? fleet : (unsigned)TFD_WIRE_SA_MIN_NEIGHBOURS;
}

static void sa_put32(crypto_blake2b_ctx *h, uint32_t v)
{
    uint8_t b[4];
    tfd_sa_store32_le(b, v);
    crypto_blake2b_update(h, b, 4);
}

static void sa_put16(crypto_blake2b_ctx *h, unsigned v)
{
    const uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    crypto_blake2b_update(h, b, 2);
}

/* H_adv (tfd/secagg_client.h): what a device signs in ADVERTISE_KEYS */
static void sa_adv_digest(uint8_t out[32], const tfd_sa_client_t *c, uint32_t id, const uint32_t *nb, unsigned k,
                          const uint8_t share_pk[32], const uint8_t mask_pk[32])
{
    crypto_blake2b_ctx h;
    crypto_blake2b_init(&h, 32);
    crypto_blake2b_update(&h, (const uint8_t *)TFD_SA_DOMAIN_ADV, sizeof TFD_SA_DOMAIN_ADV - 1u);
    crypto_blake2b_update(&h, c->ident->fleet_id, sizeof c->ident->fleet_id);
    sa_put32(&h, c->round);
    sa_put32(&h, id);
    sa_put16(&h, c->threshold);
    sa_put16(&h, k);
    sa_put32(&h, c->enc.dp_z_milli);
    for (unsigned i = 0; i < k; ++i) sa_put32(&h, nb[i]);
    crypto_blake2b_update(&h, share_pk, 32);
    crypto_blake2b_update(&h, mask_pk, 32);
    crypto_blake2b_final(&h, out);
}

/* H_surv (tfd/secagg_client.h): what a device signs in SURVIVORS */
static void sa_survivors_digest(uint8_t out[32], const tfd_sa_client_t *c, const uint8_t *bitmap, unsigned len)
{
    crypto_blake2b_ctx h;
    crypto_blake2b_init(&h, 32);
    crypto_blake2b_update(&h, (const uint8_t *)TFD_SA_DOMAIN_SURVIVORS, sizeof TFD_SA_DOMAIN_SURVIVORS - 1u);
    crypto_blake2b_update(&h, c->ident->fleet_id, sizeof c->ident->fleet_id);
    sa_put32(&h, c->round);
    sa_put16(&h, len);
    crypto_blake2b_update(&h, bitmap, len);
    crypto_blake2b_final(&h, out);
}

/* bit of device `id` in a survivor bitmap over the manifest (0 if not in the manifest) */
static int sa_bit(const tfd_sa_client_t *c, const uint8_t *bitmap, unsigned len, uint32_t id)
{
    const int i = tfd_identity_find(c->ident, id);
    if (i < 0 || (unsigned)i / 8u >= len) return 0;
    return (bitmap[(unsigned)i / 8u] >> ((unsigned)i % 8u)) & 1u;
}

/* CHECKED: `id` is one of the holders we count (ourselves, a neighbour, a neighbour's
 * neighbour) and was in the survivor set we signed */
static int sa_counted_survivor(const tfd_sa_client_t *c, uint32_t id)
{
    if (id == c->id) return 1;
    for (unsigned j = 0; j < c->n_neighbours; ++j) {
        const tfd_sa_neighbour_t *v = &c->nb[j];
        if (v->id == id) return v->survived;
        for (unsigned q = 0; q < v->n_nb; ++q) {
            if (v->nb[q] == id) return (v->nb_in >> q) & 1u;
        }
    }
    return 0;
}

/* index of neighbour id, or -1 */
static int sa_find(const tfd_sa_client_t *c, uint32_t id)
{
    for (unsigned i = 0; i < c->n_neighbours; ++i) {
        if (c->nb[i].id == id) return (int)i;
    }
    return -1;
}

/* Shamir x of holder `holder` of our secrets: 1 + rank in sorted(neighbours + self) */
static unsigned sa_holder_x(const tfd_sa_client_t *c, uint32_t holder)
{
    unsigned x = 1u + (c->id < holder ? 1u : 0u);
    for (unsigned i = 0; i < c->n_neighbours; ++i) x += c->nb[i].id < holder ? 1u : 0u;
    return x;
}

/* ---- ADVERTISE_KEYS --------------------------------------------------------------------- */
/* enc != NULL: also adopt enc as the encoding (after every check) */
TFD_CHECK_RESULT static tfd_status_t sa_advertise(tfd_sa_client_t *c, const tfd_sa_encoding_t *enc,
                                                  const uint8_t *req, size_t len, uint8_t *out, size_t cap,
                                                  size_t *out_len)
{
    TFD_ENSURE(c != NULL && out != NULL && out_len != NULL, TFD_ERR_ARG);
    tfd_body_SA_ADVERTISE_REQ_t b;
    TFD_TRY(TFD_BODY_DECODE(SA_ADVERTISE_REQ, req, len, &b));
    TFD_ENSURE(!c->has_round || sa_round_after(b.round, c->round), TFD_ERR_PROTO_STATE); /* replay / older */
    TFD_ENSURE(cap >= TFD_SA_ADVERTISE_REPLY_BYTES, TFD_ERR_OVERFLOW);
    TFD_ENSURE(c->ident != NULL && c->ident->ok, TFD_ERR_POLICY);
    if (enc != NULL) TFD_TRY(tfd_sa_check_encoding(1, enc));
    TFD_ENSURE(b.self_id == c->id, TFD_ERR_ARG); /* our id is the manifest's, not the host's */
    /* the fleet's DP floor: a host cannot switch the device's noise off or turn it down */
    TFD_ENSURE((enc != NULL ? enc : &c->enc)->dp_z_milli >= c->ident->dp_min_z_milli, TFD_ERR_POLICY);
    const unsigned k = b.neighbours_count, t = b.threshold;
    /* policy: a neighbourhood big enough, and a threshold that two disjoint sets of
     * holders (k + 1 with ourselves) can never both reach */
    TFD_ENSURE(k >= sa_min_neighbours(c) && 2u * t > k + 1u && t <= k + 1u, TFD_ERR_POLICY);
    uint32_t prev = 0;
    for (unsigned i = 0; i < k; ++i) {
        tfd_rec_SA_ID_t v;
        TFD_TRY(tfd_body_SA_ADVERTISE_REQ_neighbours(&b, i, &v));
        TFD_ENSURE(v.id > prev && v.id != c->id, TFD_ERR_ARG);       /* sorted, distinct, nonzero, not us */
        TFD_ENSURE(tfd_identity_find(c->ident, v.id) >= 0, TFD_ERR_ARG); /* a device of the fleet */
        prev = v.id;
    }
    /* a new round: whatever was left of the previous one goes */
    tfd_sa_client_wipe(c);
    if (enc != NULL) c->enc = *enc;
    c->round = b.round;
    c->has_round = 1;
    c->threshold = (uint8_t)t;
    c->n_neighbours = (uint8_t)k;
    for (unsigned i = 0; i < k; ++i) {
        tfd_rec_SA_ID_t v;
        SA_TRY_OR_REFUSE(tfd_body_SA_ADVERTISE_REQ_neighbours(&b, i, &v));
        c->nb[i].id = v.id;
    }
    uint8_t rnd[32];
    tfd_status_t st = c->random(rnd, sizeof rnd);
    if (st == TFD_OK) {
        tfd_sa_keypair(c->share_sk, c->share_pk, rnd);
        st = c->random(rnd, sizeof rnd);
    }
    if (st == TFD_OK) tfd_sa_keypair(c->mask_sk, c->mask_pk, rnd);
    crypto_wipe(rnd, sizeof rnd);
    if (st != TFD_OK) return sa_refuse(c, st);
    SA_TRY_OR_REFUSE(sa_go(c, TFD_SA_CLIENT_ADVERTISED));
    tfd_body_SA_ADVERTISE_REPLY_t r;
    memset(&r, 0, sizeof r);
    r.round = c->round;
    r.self_id = c->id;
    memcpy(r.share_pk, c->share_pk, sizeof r.share_pk);
    memcpy(r.mask_pk, c->mask_pk, sizeof r.mask_pk);
    uint32_t ids[TFD_SA_CLIENT_MAX_NEIGHBOURS];
    for (unsigned i = 0; i < k; ++i) ids[i] = c->nb[i].id;
    uint8_t h[32];
    sa_adv_digest(h, c, c->id, ids, k, c->share_pk, c->mask_pk);
    tfd_identity_sign(c->ident, r.sig, h);
    SA_TRY_OR_REFUSE(TFD_BODY_ENCODE(SA_ADVERTISE_REPLY, &r, out, cap, out_len));
    return TFD_OK;
}

tfd_status_t tfd_sa_client_advertise(tfd_sa_client_t *c, const uint8_t *req, size_t len, uint8_t *out, size_t cap,
                                     size_t *out_len)
{
    return sa_advertise(c, NULL, req, len, out, cap, out_len);
}

tfd_status_t tfd_sa_client_advertise_as(tfd_sa_client_t *c, const tfd_sa_encoding_t *enc, const uint8_t *req,
                                        size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    TFD_ENSURE(enc != NULL, TFD_ERR_ARG);
    return sa_advertise(c, enc, req, len, out, cap, out_len);
}

/* ---- SHARE_KEYS --------------------------------------------------------------------------- */
tfd_status_t tfd_sa_client_share_keys(tfd_sa_client_t *c, const uint8_t *req, size_t len, uint8_t *out,
                                      size_t cap, size_t *out_len)
{
    TFD_ENSURE(c != NULL && out != NULL && out_len != NULL, TFD_ERR_ARG);
    tfd_body_SA_SHARE_KEYS_REQ_t b;
    TFD_TRY(TFD_BODY_DECODE(SA_SHARE_KEYS_REQ, req, len, &b));
    TFD_TRY(sa_expect(c, TFD_SA_CLIENT_ADVERTISED, b.round));
    const unsigned m = b.keys_count;
    SA_REFUSE_IF(m > c->n_neighbours, TFD_ERR_ARG); /* more keys than neighbours */
    SA_REFUSE_IF(cap < TFD_SA_SHARE_KEYS_REPLY_BYTES(m), TFD_ERR_OVERFLOW);
    for (unsigned i = 0; i < m; ++i) {
        tfd_rec_SA_PEER_KEYS_t e;
        SA_TRY_OR_REFUSE(tfd_body_SA_SHARE_KEYS_REQ_keys(&b, i, &e));
        const int j = sa_find(c, e.id);
        SA_REFUSE_IF(j < 0 || c->nb[j].live, TFD_ERR_ARG); /* outside the neighbourhood / twice */
        /* its neighbourhood as it signed it: canonical, symmetric (contains us) */
        const unsigned kv = e.n_nb;
        SA_REFUSE_IF(kv < 1 || kv > TFD_SA_CLIENT_MAX_NEIGHBOURS, TFD_ERR_ARG);
        uint32_t prev = 0;
        int has_us = 0;
        for (unsigned q = 0; q < TFD_SA_CLIENT_MAX_NEIGHBOURS; ++q) {
            if (q < kv) {
                SA_REFUSE_IF(e.nb[q] <= prev || e.nb[q] == e.id, TFD_ERR_ARG);
                prev = e.nb[q];
                has_us |= e.nb[q] == c->id;
            } else {
                SA_REFUSE_IF(e.nb[q] != 0, TFD_ERR_ARG);
            }
        }
        SA_REFUSE_IF(!has_us, TFD_ERR_ARG); /* a graph it cannot have been given honestly */
        SA_REFUSE_IF(kv < sa_min_neighbours(c) || 2u * c->threshold <= kv + 1u, TFD_ERR_POLICY);
        /* its keys, signed by its device key for this round and threshold */
        uint8_t h[32];
        sa_adv_digest(h, c, e.id, e.nb, kv, e.share_pk, e.mask_pk);
        SA_TRY_OR_REFUSE(tfd_identity_verify(c->ident, e.id, e.sig, h));
        c->nb[j].live = 1;
        memcpy(c->nb[j].share_pk, e.share_pk, 32);
        memcpy(c->nb[j].mask_pk, e.mask_pk, 32);
        c->nb[j].n_nb = (uint8_t)kv;
        memcpy(c->nb[j].nb, e.nb, sizeof c->nb[j].nb);
    }
    SA_REFUSE_IF(m + 1 < c->threshold, TFD_ERR_ARG); /* too few live holders */

    const unsigned t = c->threshold, k = c->n_neighbours + 1u;
    uint8_t coeff[32 * TFD_SA_CLIENT_MAX_NEIGHBOURS];
    uint8_t b_sh[TFD_SA_CLIENT_MAX_NEIGHBOURS + 1][32];
    uint8_t s_sh[TFD_SA_CLIENT_MAX_NEIGHBOURS + 1][32];
    uint8_t plain[TFD_SA_SHARE_PLAIN_BYTES];
    tfd_body_SA_SHARE_KEYS_REPLY_t h;
    memset(&h, 0, sizeof h);
    h.round = c->round;
    h.sender = c->id;
    h.shares_count = m; /* records written below, in place */
    size_t o = 0;
    tfd_status_t st = TFD_BODY_ENCODE(SA_SHARE_KEYS_REPLY, &h, out, cap, &o);
    if (st == TFD_OK) st = c->random(c->seed, 32);
    if (st == TFD_OK) st = c->random(coeff, 32u * (t - 1u));
    if (st == TFD_OK) st = tfd_sa_shamir_split(b_sh, c->seed, t, k, coeff, 32u * (t - 1u));
    if (st == TFD_OK) st = c->random(coeff, 32u * (t - 1u));
    if (st == TFD_OK) st = tfd_sa_shamir_split(s_sh, c->mask_sk, t, k, coeff, 32u * (t - 1u));
    uint32_t r = 0;
    for (unsigned i = 0; st == TFD_OK && i < c->n_neighbours; ++i) { /* nb[] is sorted by id */
        const tfd_sa_neighbour_t *v = &c->nb[i];
        if (!v->live) continue;
        const unsigned x = sa_holder_x(c, v->id);
        tfd_rec_SA_SEALED_OUT_t e;
        memset(&e, 0, sizeof e);
        e.receiver = v->id;
        st = tfd_sa_agree(c->nb[i].share_key, c->share_sk, c->share_pk, v->share_pk, TFD_SA_LABEL_SHARE_KEY,
                          c->round);
        if (st == TFD_OK) st = c->random(e.nonce, TFD_SA_NONCE_BYTES);
        if (st != TFD_OK) break;
        memcpy(plain, b_sh[x - 1], 32);
        memcpy(plain + 32, s_sh[x - 1], 32);
        tfd_sa_seal(e.sealed, e.sealed + TFD_SA_SHARE_PLAIN_BYTES, v->share_key, e.nonce, c->id, v->id, c->round,
                    plain, sizeof plain);
        st = tfd_body_SA_SHARE_KEYS_REPLY_put_shares(out, cap, &h, r++, &e);
    }
    if (st == TFD_OK) memcpy(c->own_b_share, b_sh[sa_holder_x(c, c->id) - 1], 32);
    crypto_wipe(coeff, sizeof coeff);
    crypto_wipe(b_sh, sizeof b_sh);
    crypto_wipe(s_sh, sizeof s_sh);
    crypto_wipe(plain, sizeof plain);
    /* the share keys with the live neighbours are derived: the X25519 secret is done */
    crypto_wipe(c->share_sk, sizeof c->share_sk);
    if (st != TFD_OK) {
        crypto_wipe(out, o);
        return sa_refuse(c, st);
    }
    SA_TRY_OR_REFUSE(sa_go(c, TFD_SA_CLIENT_SHARED));
    *out_len = o;
    return TFD_OK;
}

/* ---- MASKED_INPUT ------------------------------------------------------------------------- */
/* distributed DP (tfd/secagg_dp.h): the noise of the t - 1 other holders of the fewest
 * survivors carries multiplier z; each noised word stays within 2^31 - 1 */
TFD_CHECK_RESULT static tfd_status_t sa_add_dp_noise(const tfd_sa_client_t *c, uint32_t *words, uint32_t n,
                                                     const uint8_t key[32])
{
    uint64_t delta, s2, bound;
    tfd_dp_gauss_t g;
    TFD_TRY(tfd_dp_sensitivity(&delta, c->enc.clip, c->enc.frac_bits, n));
    TFD_TRY(tfd_dp_sigma_sq(&s2, c->enc.dp_z_milli, delta, c->threshold));
    TFD_TRY(tfd_dp_gauss_init(&g, s2));
    TFD_TRY(tfd_dp_word_bound(&bound, c->enc.clip, c->enc.frac_bits, &g));
    tfd_dp_add_noise(words, n, &g, key);
    return TFD_OK;
}

tfd_status_t tfd_sa_client_masked_input(tfd_sa_client_t *c, const uint8_t *req, size_t len, float *x, uint32_t n,
                                        const tfd_sa_summed_t *summed, uint32_t *n_words)
{
    TFD_ENSURE(c != NULL && x != NULL && summed != NULL && n_words != NULL, TFD_ERR_ARG);
    tfd_body_SA_MASKED_INPUT_REQ_t b;
    TFD_TRY(TFD_BODY_DECODE(SA_MASKED_INPUT_REQ, req, len, &b));
    TFD_TRY(sa_expect(c, TFD_SA_CLIENT_SHARED, b.round));
    const unsigned m = b.shares_count;
    SA_REFUSE_IF(m > c->n_neighbours, TFD_ERR_ARG);
    for (unsigned i = 0; i < m; ++i) {
        tfd_rec_SA_SEALED_IN_t e;
        SA_TRY_OR_REFUSE(tfd_body_SA_MASKED_INPUT_REQ_shares(&b, i, &e));
        const int j = sa_find(c, e.sender);
        SA_REFUSE_IF(e.receiver != c->id, TFD_ERR_ARG);                      /* not addressed to us */
        SA_REFUSE_IF(j < 0 || !c->nb[j].live || c->nb[j].held, TFD_ERR_ARG); /* unknown sender / twice */
        c->nb[j].held = 1;
        memcpy(c->nb[j].nonce, e.nonce, TFD_SA_NONCE_BYTES);
        memcpy(c->nb[j].sealed, e.sealed, TFD_SA_SEALED_BYTES);
    }
    SA_REFUSE_IF(m + 1 < c->threshold, TFD_ERR_ARG);
    SA_REFUSE_IF(n == 0 || n > TFD_WIRE_SA_WORDS_MAX - (uint32_t)TFD_SA_SUMMED_COUNT, TFD_ERR_ARG);

    /* encode once, in place of the update: from here the buffer holds its words; then
     * the distributed-DP noise (fresh device randomness, never the host's) */
    uint8_t noise_key[32], dp_key[32];
    tfd_sa_encoder_t enc;
    tfd_status_t st = c->random(noise_key, sizeof noise_key);
    if (st == TFD_OK) st = tfd_sa_kdf(dp_key, noise_key, TFD_SA_LABEL_DP_NOISE, c->round, NULL, 0);
    if (st == TFD_OK) st = tfd_sa_encoder_init(&enc, x, n, &c->enc, summed, noise_key, c->round);
    crypto_wipe(noise_key, sizeof noise_key); /* on every path, a failed random fill included */
    if (st == TFD_OK) {
        c->vec = (uint8_t *)(void *)x; /* the client owns (and wipes) the buffer from now on */
        c->n_params = n;
        c->summed = *summed;
        st = tfd_sa_encode_chunk(&enc, (uint32_t *)(void *)x, 0, n);
    }
    tfd_sa_encoder_wipe(&enc);
    if (st == TFD_OK && c->enc.dp_z_milli != 0) st = sa_add_dp_noise(c, (uint32_t *)(void *)x, n, dp_key);
    crypto_wipe(dp_key, sizeof dp_key);
    if (st == TFD_OK) st = tfd_sa_kdf(c->self_key, c->seed, TFD_SA_LABEL_SELF_MASK, c->round, NULL, 0);
    c->n_pairs = 0;
    /* the neighbours that sent us shares are exactly those that shared keys in
     * time: mask with them (the server removes a dropped one's masks) */
    for (unsigned i = 0; st == TFD_OK && i < c->n_neighbours; ++i) {
        if (!c->nb[i].held) continue;
        st = tfd_sa_agree(c->pair_key[c->n_pairs], c->mask_sk, c->mask_pk, c->nb[i].mask_pk,
                          TFD_SA_LABEL_PAIR_MASK, c->round);
        c->pair_negate[c->n_pairs] = tfd_sa_pair_sign(c->id, c->nb[i].id) < 0 ? 1u : 0u;
        c->n_pairs++;
    }
    /* b and s_sk have done their work: only their shares (held by others) remain */
    crypto_wipe(c->seed, sizeof c->seed);
    crypto_wipe(c->mask_sk, sizeof c->mask_sk);
    if (st != TFD_OK) return sa_refuse(c, st);
    SA_TRY_OR_REFUSE(sa_go(c, TFD_SA_CLIENT_MASKED));
    c->n_words = TFD_SA_WORDS(n);
    *n_words = c->n_words;
    return TFD_OK;
}

/* words[i] = the encoded word (offset + i): from the buffer, or a summed scalar */
static void sa_encoded_words(const tfd_sa_client_t *c, uint32_t offset, uint32_t *words, uint32_t count)
{
    const uint32_t *summed = (const uint32_t *)(const void *)&c->summed;
    for (uint32_t i = 0; i < count; ++i) {
        const uint32_t at = offset + i;
        if (at < c->n_params) {
            memcpy(&words[i], c->vec + 4u * (size_t)at, sizeof words[i]);
        } else {
            words[i] = summed[at - c->n_params];
        }
    }
}

tfd_status_t tfd_sa_client_masked_read(const tfd_sa_client_t *c, uint32_t offset, uint32_t *words, uint32_t count)
{
    TFD_ENSURE((c->stage == TFD_SA_CLIENT_MASKED || c->stage == TFD_SA_CLIENT_CHECKED) && c->vec != NULL,
               TFD_ERR_PROTO_STATE);
    TFD_ENSURE(words != NULL && offset <= c->n_words && count <= c->n_words - offset, TFD_ERR_ARG);
    sa_encoded_words(c, offset, words, count);
    tfd_sa_prg_add(words, count, c->self_key, offset, 0);
    for (unsigned i = 0; i < c->n_pairs; ++i) tfd_sa_prg_add(words, count, c->pair_key[i], offset, c->pair_negate[i]);
    return TFD_OK;
}

#if defined(TFD_TEST_MESSAGES) && TFD_TEST_MESSAGES
tfd_status_t tfd_sa_client_encoded_read(const tfd_sa_client_t *c, uint32_t offset, uint32_t *words, uint32_t count)
{
    TFD_ENSURE((c->stage == TFD_SA_CLIENT_MASKED || c->stage == TFD_SA_CLIENT_CHECKED) && c->vec != NULL,
               TFD_ERR_PROTO_STATE);
    TFD_ENSURE(words != NULL && offset <= c->n_words && count <= c->n_words - offset, TFD_ERR_ARG);
    sa_encoded_words(c, offset, words, count);
    return TFD_OK;
}
#endif

/* ---- SURVIVORS (the consistency check) ------------------------------------------------------ */
tfd_status_t tfd_sa_client_survivors(tfd_sa_client_t *c, const uint8_t *req, size_t len, uint8_t *out, size_t cap,
                                     size_t *out_len)
{
    TFD_ENSURE(c != NULL && out != NULL && out_len != NULL, TFD_ERR_ARG);
    tfd_body_SA_SURVIVORS_REQ_t b;
    TFD_TRY(TFD_BODY_DECODE(SA_SURVIVORS_REQ, req, len, &b));
    TFD_TRY(sa_expect(c, TFD_SA_CLIENT_MASKED, b.round));
    SA_REFUSE_IF(cap < TFD_SA_SURVIVORS_REPLY_BYTES, TFD_ERR_OVERFLOW);
    const unsigned n = c->ident->n, nbytes = (n + 7u) / 8u;
    SA_REFUSE_IF(b.bitmap_count != nbytes, TFD_ERR_ARG); /* one bit per manifest device */
    const uint8_t *bm = b.bitmap; /* SA_BYTE records: the bitmap's bytes, in place in the request */
    if (n % 8u) SA_REFUSE_IF((bm[nbytes - 1u] >> (n % 8u)) != 0, TFD_ERR_ARG); /* no bit past the fleet */
    /* the set must agree with what we saw: we are in it (our input is in the sum),
     * and a neighbour in it must have shared keys with us and sent us its share
     * (we masked with it; its mask cancels ours only if it is in the sum) */
    SA_REFUSE_IF(!sa_bit(c, bm, nbytes, c->id), TFD_ERR_ARG);
    for (unsigned j = 0; j < c->n_neighbours; ++j) {
        tfd_sa_neighbour_t *v = &c->nb[j];
        const int in = sa_bit(c, bm, nbytes, v->id);
        SA_REFUSE_IF(in && !v->held, TFD_ERR_ARG);
        v->survived = (uint8_t)in;
        v->nb_in = 0; /* who of its holders is in the set: the signatures UNMASK may count */
        for (unsigned q = 0; q < v->n_nb; ++q) v->nb_in |= (uint16_t)(sa_bit(c, bm, nbytes, v->nb[q]) << q);
    }
    sa_survivors_digest(c->view, c, bm, nbytes);
    tfd_body_SA_SURVIVORS_REPLY_t r;
    memset(&r, 0, sizeof r);
    r.round = c->round;
    r.self_id = c->id;
    tfd_identity_sign(c->ident, r.sig, c->view); /* the one survivor set we sign this round */
    SA_TRY_OR_REFUSE(sa_go(c, TFD_SA_CLIENT_CHECKED));
    SA_TRY_OR_REFUSE(TFD_BODY_ENCODE(SA_SURVIVORS_REPLY, &r, out, cap, out_len));
    return TFD_OK;
}

/* ---- UNMASK ----------------------------------------------------------------------------- */
/* signers of our view among the holders of `owner`'s secrets ({owner} + its neighbourhood) */
static unsigned sa_count_holders(const uint32_t *signers, unsigned n_signers, uint32_t owner, const uint32_t *nb,
                                 unsigned k)
{
    unsigned count = 0;
    for (unsigned s = 0; s < n_signers; ++s) {
        int holder = signers[s] == owner;
        for (unsigned q = 0; q < k && !holder; ++q) holder = signers[s] == nb[q];
        count += holder ? 1u : 0u;
    }
    return count;
}

tfd_status_t tfd_sa_client_unmask(tfd_sa_client_t *c, const uint8_t *req, size_t len, uint8_t *out, size_t cap,
                                  size_t *out_len)
{
    TFD_ENSURE(c != NULL && out != NULL && out_len != NULL, TFD_ERR_ARG);
    tfd_body_SA_UNMASK_REQ_t b;
    TFD_TRY(TFD_BODY_DECODE(SA_UNMASK_REQ, req, len, &b));
    TFD_TRY(sa_expect(c, TFD_SA_CLIENT_CHECKED, b.round));
    /* the masking keys and the encoded update are no longer needed whatever the outcome */
    crypto_wipe(c->self_key, sizeof c->self_key);
    crypto_wipe(c->pair_key, sizeof c->pair_key);
    if (c->vec != NULL) crypto_wipe(c->vec, (size_t)c->n_params * 4u);
    /* who signed the survivor set WE signed: ourselves, and every valid signature of a
     * holder we count that is in that set (invalid, foreign or irrelevant signatures are
     * not counted) */
    uint32_t signers[TFD_WIRE_SA_MAX_SIGNERS + 1];
    unsigned n_signers = 0;
    signers[n_signers++] = c->id;
    for (unsigned i = 0; i < b.sigs_count; ++i) {
        tfd_rec_SA_SIGNATURE_t g;
        SA_TRY_OR_REFUSE(tfd_body_SA_UNMASK_REQ_sigs(&b, i, &g));
        int seen = 0;
        for (unsigned s = 0; s < n_signers; ++s) seen |= signers[s] == g.signer;
        if (seen || !sa_counted_survivor(c, g.signer)) continue;
        if (tfd_identity_verify(c->ident, g.signer, g.sig, c->view) != TFD_OK) continue;
        signers[n_signers++] = g.signer;
    }
    /* every secret we would reveal a share of: t of its holders saw the same set */
    uint32_t own_nb[TFD_SA_CLIENT_MAX_NEIGHBOURS];
    for (unsigned j = 0; j < c->n_neighbours; ++j) own_nb[j] = c->nb[j].id;
    SA_REFUSE_IF(sa_count_holders(signers, n_signers, c->id, own_nb, c->n_neighbours) < c->threshold,
                 TFD_ERR_POLICY);
    unsigned n_shares = 1;
    for (unsigned j = 0; j < c->n_neighbours; ++j) {
        if (!c->nb[j].held) continue;
        SA_REFUSE_IF(sa_count_holders(signers, n_signers, c->nb[j].id, c->nb[j].nb, c->nb[j].n_nb) < c->threshold,
                     TFD_ERR_POLICY);
        ++n_shares;
    }
    SA_REFUSE_IF(cap < TFD_SA_UNMASK_REPLY_BYTES(n_shares), TFD_ERR_OVERFLOW);
    tfd_body_SA_UNMASK_REPLY_t h;
    memset(&h, 0, sizeof h);
    h.round = c->round;
    h.holder = c->id;
    h.shares_count = n_shares; /* records written below, in place */
    size_t o = 0;
    tfd_status_t st = TFD_BODY_ENCODE(SA_UNMASK_REPLY, &h, out, cap, &o);
    uint8_t plain[TFD_SA_SHARE_PLAIN_BYTES];
    tfd_rec_SA_SHARE_t e;
    memset(&e, 0, sizeof e);
    /* our own b-share (we survived), then per neighbour we hold a share of: its b-share
     * if it is in the set we signed, its s-share if it dropped after sharing keys */
    e.owner = c->id;
    e.kind = TFD_SA_SHARE_KIND_B;
    memcpy(e.share, c->own_b_share, 32);
    if (st == TFD_OK) st = tfd_body_SA_UNMASK_REPLY_put_shares(out, cap, &h, 0, &e);
    unsigned r = 1;
    for (unsigned j = 0; st == TFD_OK && j < c->n_neighbours; ++j) {
        const tfd_sa_neighbour_t *v = &c->nb[j];
        if (!v->held) continue;
        st = tfd_sa_open(plain, v->share_key, v->nonce, v->id, c->id, c->round, v->sealed,
                         v->sealed + TFD_SA_SHARE_PLAIN_BYTES, TFD_SA_SHARE_PLAIN_BYTES);
        if (st != TFD_OK) break;
        e.owner = v->id;
        e.kind = v->survived ? TFD_SA_SHARE_KIND_B : TFD_SA_SHARE_KIND_S;
        memcpy(e.share, v->survived ? plain : plain + 32, 32);
        st = tfd_body_SA_UNMASK_REPLY_put_shares(out, cap, &h, r++, &e);
    }
    crypto_wipe(plain, sizeof plain);
    crypto_wipe(&e, sizeof e);
    if (st != TFD_OK) {
        crypto_wipe(out, o);
        return sa_refuse(c, st);
    }
    *out_len = o;
    /* the round is over for us: every secret goes */
    tfd_sa_client_wipe(c);
    c->stage = TFD_SA_CLIENT_CHECKED; /* wipe() set IDLE; record the checked transition */
    return sa_go(c, TFD_SA_CLIENT_DONE);
}
