/* tinyfed — the device's SecAgg+ client stage machine (tfd/secagg_client.h). */
#include <string.h>

#include "monocypher.h"
#include "sa_internal.h"
#include "tfd/secagg_client.h"

#define SA_BIT(s) (1u << (unsigned)TFD_SA_CLIENT_##s)

/* allowed transitions: from -> set of to (a refusal always goes to IDLE via wipe) */
static const uint8_t kSaTransitions[TFD_SA_CLIENT_STAGE_COUNT] = {
    [TFD_SA_CLIENT_IDLE] = SA_BIT(ADVERTISED),
    [TFD_SA_CLIENT_ADVERTISED] = SA_BIT(ADVERTISED) | SA_BIT(SHARED),
    [TFD_SA_CLIENT_SHARED] = SA_BIT(ADVERTISED) | SA_BIT(MASKED),
    [TFD_SA_CLIENT_MASKED] = SA_BIT(ADVERTISED) | SA_BIT(DONE),
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
TFD_CHECK_RESULT static tfd_status_t sa_expect(const tfd_sa_client_t *c, tfd_sa_client_stage_t stage,
                                               const uint8_t *req, size_t len)
{
    TFD_ENSURE(req != NULL && len >= 4, TFD_ERR_MSG_LENGTH);
    TFD_ENSURE(c->has_round && tfd_sa_load32_le(req) == c->round, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(c->stage == stage, TFD_ERR_PROTO_STATE);
    return TFD_OK;
}

void tfd_sa_client_wipe(tfd_sa_client_t *c)
{
    const uint32_t id = c->id, round = c->round;
    const uint8_t has_round = c->has_round;
    const tfd_sa_encoding_t enc = c->enc;
    const tfd_sa_random_fn random = c->random;
    crypto_wipe(c, sizeof *c);
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

tfd_status_t tfd_sa_client_init(tfd_sa_client_t *c, uint32_t id, const tfd_sa_encoding_t *enc,
                                tfd_sa_random_fn random)
{
    TFD_ENSURE(c != NULL && enc != NULL && random != NULL && id != 0, TFD_ERR_ARG);
    TFD_TRY(tfd_sa_check_encoding(1, enc));
    memset(c, 0, sizeof *c);
    c->id = id;
    c->enc = *enc;
    c->random = random;
    c->stage = TFD_SA_CLIENT_IDLE;
    return TFD_OK;
}

tfd_status_t tfd_sa_client_configure(tfd_sa_client_t *c, uint32_t id, const tfd_sa_encoding_t *enc)
{
    TFD_ENSURE(c != NULL && enc != NULL && id != 0, TFD_ERR_ARG);
    TFD_TRY(tfd_sa_check_encoding(1, enc));
    tfd_sa_client_wipe(c); /* whatever round was under way is over */
    c->id = id;
    c->enc = *enc;
    return TFD_OK;
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
tfd_status_t tfd_sa_client_advertise(tfd_sa_client_t *c, const uint8_t *req, size_t len, uint8_t *out,
                                     size_t cap, size_t *out_len)
{
    TFD_ENSURE(req != NULL && len >= 12 && out != NULL && out_len != NULL, TFD_ERR_MSG_LENGTH);
    const uint32_t round = tfd_sa_load32_le(req);
    TFD_ENSURE(!c->has_round || round > c->round, TFD_ERR_PROTO_STATE); /* replay / older round */
    TFD_ENSURE(cap >= TFD_SA_ADVERTISE_REPLY_BYTES, TFD_ERR_OVERFLOW);
    const uint32_t self_id = tfd_sa_load32_le(req + 4);
    const unsigned t = (unsigned)req[8] | (unsigned)req[9] << 8;
    const unsigned k = (unsigned)req[10] | (unsigned)req[11] << 8;
    TFD_ENSURE(self_id == c->id, TFD_ERR_ARG);
    TFD_ENSURE(k >= 1 && k <= TFD_SA_CLIENT_MAX_NEIGHBOURS && len == 12u + 4u * k, TFD_ERR_MSG_LENGTH);
    TFD_ENSURE(t >= 2 && t <= k + 1, TFD_ERR_ARG);
    uint32_t prev = 0;
    for (unsigned i = 0; i < k; ++i) {
        const uint32_t v = tfd_sa_load32_le(req + 12 + 4 * i);
        TFD_ENSURE(v > prev && v != c->id, TFD_ERR_ARG); /* sorted, distinct, nonzero, not us */
        prev = v;
    }
    /* a new round: whatever was left of the previous one goes */
    tfd_sa_client_wipe(c);
    c->round = round;
    c->has_round = 1;
    c->threshold = (uint8_t)t;
    c->n_neighbours = (uint8_t)k;
    for (unsigned i = 0; i < k; ++i) c->nb[i].id = tfd_sa_load32_le(req + 12 + 4 * i);
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
    tfd_sa_store32_le(out, c->round);
    tfd_sa_store32_le(out + 4, c->id);
    memcpy(out + 8, c->share_pk, 32);
    memcpy(out + 40, c->mask_pk, 32);
    *out_len = TFD_SA_ADVERTISE_REPLY_BYTES;
    return TFD_OK;
}

/* ---- SHARE_KEYS --------------------------------------------------------------------------- */
tfd_status_t tfd_sa_client_share_keys(tfd_sa_client_t *c, const uint8_t *req, size_t len, uint8_t *out,
                                      size_t cap, size_t *out_len)
{
    TFD_TRY(sa_expect(c, TFD_SA_CLIENT_ADVERTISED, req, len));
    TFD_ENSURE(len >= 6 && out != NULL && out_len != NULL, TFD_ERR_MSG_LENGTH);
    const unsigned m = (unsigned)req[4] | (unsigned)req[5] << 8;
    SA_REFUSE_IF(m > c->n_neighbours || len != 6u + 68u * m, TFD_ERR_MSG_LENGTH);
    SA_REFUSE_IF(cap < TFD_SA_SHARE_KEYS_REPLY_BYTES(m), TFD_ERR_OVERFLOW);
    for (unsigned i = 0; i < m; ++i) {
        const uint8_t *e = req + 6 + 68 * i;
        const int j = sa_find(c, tfd_sa_load32_le(e));
        SA_REFUSE_IF(j < 0 || c->nb[j].live, TFD_ERR_ARG); /* outside the neighbourhood / twice */
        c->nb[j].live = 1;
        memcpy(c->nb[j].share_pk, e + 4, 32);
        memcpy(c->nb[j].mask_pk, e + 36, 32);
    }
    SA_REFUSE_IF(m + 1 < c->threshold, TFD_ERR_ARG); /* too few live holders */

    const unsigned t = c->threshold, k = c->n_neighbours + 1u;
    uint8_t coeff[32 * TFD_SA_CLIENT_MAX_NEIGHBOURS];
    uint8_t b_sh[TFD_SA_CLIENT_MAX_NEIGHBOURS + 1][32];
    uint8_t s_sh[TFD_SA_CLIENT_MAX_NEIGHBOURS + 1][32];
    uint8_t plain[TFD_SA_SHARE_PLAIN_BYTES];
    tfd_status_t st = c->random(c->seed, 32);
    if (st == TFD_OK) st = c->random(coeff, 32u * (t - 1u));
    if (st == TFD_OK) st = tfd_sa_shamir_split(b_sh, c->seed, t, k, coeff, 32u * (t - 1u));
    if (st == TFD_OK) st = c->random(coeff, 32u * (t - 1u));
    if (st == TFD_OK) st = tfd_sa_shamir_split(s_sh, c->mask_sk, t, k, coeff, 32u * (t - 1u));
    size_t o = 10;
    for (unsigned i = 0; st == TFD_OK && i < c->n_neighbours; ++i) { /* nb[] is sorted by id */
        const tfd_sa_neighbour_t *v = &c->nb[i];
        if (!v->live) continue;
        const unsigned x = sa_holder_x(c, v->id);
        st = tfd_sa_agree(c->nb[i].share_key, c->share_sk, c->share_pk, v->share_pk, TFD_SA_LABEL_SHARE_KEY,
                          c->round);
        if (st == TFD_OK) st = c->random(out + o + 4, TFD_SA_NONCE_BYTES);
        if (st != TFD_OK) break;
        memcpy(plain, b_sh[x - 1], 32);
        memcpy(plain + 32, s_sh[x - 1], 32);
        tfd_sa_store32_le(out + o, v->id);
        tfd_sa_seal(out + o + 28, out + o + 28 + TFD_SA_SHARE_PLAIN_BYTES, v->share_key, out + o + 4, c->id, v->id,
                    c->round, plain, sizeof plain);
        o += 108;
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
    tfd_sa_store32_le(out, c->round);
    tfd_sa_store32_le(out + 4, c->id);
    out[8] = (uint8_t)m;
    out[9] = (uint8_t)(m >> 8);
    *out_len = o;
    return TFD_OK;
}

/* ---- MASKED_INPUT ------------------------------------------------------------------------- */
tfd_status_t tfd_sa_client_masked_input(tfd_sa_client_t *c, const uint8_t *req, size_t len, const float *x,
                                        uint32_t n, uint32_t weight, uint32_t *n_words)
{
    TFD_TRY(sa_expect(c, TFD_SA_CLIENT_SHARED, req, len));
    TFD_ENSURE(len >= 6 && x != NULL && n_words != NULL, TFD_ERR_MSG_LENGTH);
    const unsigned m = (unsigned)req[4] | (unsigned)req[5] << 8;
    SA_REFUSE_IF(m > c->n_neighbours || len != 6u + 112u * m, TFD_ERR_MSG_LENGTH);
    for (unsigned i = 0; i < m; ++i) {
        const uint8_t *e = req + 6 + 112 * i;
        const int j = sa_find(c, tfd_sa_load32_le(e));
        SA_REFUSE_IF(tfd_sa_load32_le(e + 4) != c->id, TFD_ERR_ARG);      /* not addressed to us */
        SA_REFUSE_IF(j < 0 || !c->nb[j].live || c->nb[j].held, TFD_ERR_ARG); /* unknown sender / twice */
        c->nb[j].held = 1;
        memcpy(c->nb[j].nonce, e + 8, TFD_SA_NONCE_BYTES);
        memcpy(c->nb[j].sealed, e + 32, TFD_SA_SEALED_BYTES);
    }
    SA_REFUSE_IF(m + 1 < c->threshold, TFD_ERR_ARG);
    SA_REFUSE_IF(n == 0 || n == UINT32_MAX, TFD_ERR_ARG);

    uint8_t noise_key[32];
    SA_TRY_OR_REFUSE(c->random(noise_key, sizeof noise_key));
    tfd_status_t st = tfd_sa_encoder_init(&c->encoder, x, n, &c->enc, weight, noise_key, c->round);
    crypto_wipe(noise_key, sizeof noise_key);
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
    c->n_words = n + 1u;
    *n_words = c->n_words;
    return TFD_OK;
}

tfd_status_t tfd_sa_client_masked_read(const tfd_sa_client_t *c, uint32_t offset, uint32_t *words, uint32_t count)
{
    TFD_ENSURE(c->stage == TFD_SA_CLIENT_MASKED, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(words != NULL && offset <= c->n_words && count <= c->n_words - offset, TFD_ERR_ARG);
    TFD_TRY(tfd_sa_encode_chunk(&c->encoder, words, offset, count));
    tfd_sa_prg_add(words, count, c->self_key, offset, 0);
    for (unsigned i = 0; i < c->n_pairs; ++i) tfd_sa_prg_add(words, count, c->pair_key[i], offset, c->pair_negate[i]);
    return TFD_OK;
}

#if defined(TFD_TEST_MESSAGES) && TFD_TEST_MESSAGES
tfd_status_t tfd_sa_client_encoded_read(const tfd_sa_client_t *c, uint32_t offset, uint32_t *words, uint32_t count)
{
    TFD_ENSURE(c->stage == TFD_SA_CLIENT_MASKED, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(words != NULL && offset <= c->n_words && count <= c->n_words - offset, TFD_ERR_ARG);
    return tfd_sa_encode_chunk(&c->encoder, words, offset, count);
}
#endif

/* ---- UNMASK ----------------------------------------------------------------------------- */
tfd_status_t tfd_sa_client_unmask(tfd_sa_client_t *c, const uint8_t *req, size_t len, uint8_t *out, size_t cap,
                                  size_t *out_len)
{
    TFD_TRY(sa_expect(c, TFD_SA_CLIENT_MASKED, req, len));
    TFD_ENSURE(len >= 8 && out != NULL && out_len != NULL, TFD_ERR_MSG_LENGTH);
    /* the masking keys are no longer needed whatever the outcome */
    crypto_wipe(c->self_key, sizeof c->self_key);
    crypto_wipe(c->pair_key, sizeof c->pair_key);
    tfd_sa_encoder_wipe(&c->encoder);
    const unsigned nd = (unsigned)req[4] | (unsigned)req[5] << 8;
    const unsigned ns = (unsigned)req[6] | (unsigned)req[7] << 8;
    SA_REFUSE_IF(nd + ns > 2u * (c->n_neighbours + 1u) || len != 8u + 4u * (nd + ns), TFD_ERR_MSG_LENGTH);
    SA_REFUSE_IF(cap < TFD_SA_UNMASK_REPLY_BYTES(nd + ns), TFD_ERR_OVERFLOW);
    /* every id once; never one id in both lists (that would unmask its input) */
    uint8_t asked[TFD_SA_CLIENT_MAX_NEIGHBOURS + 1];
    memset(asked, 0, sizeof asked);
    for (unsigned i = 0; i < nd + ns; ++i) {
        const uint32_t id = tfd_sa_load32_le(req + 8 + 4 * i);
        const int j = sa_find(c, id);
        const unsigned slot = id == c->id ? TFD_SA_CLIENT_MAX_NEIGHBOURS : (unsigned)j;
        SA_REFUSE_IF(id == c->id && i < nd, TFD_ERR_ARG);               /* we are not dropped */
        SA_REFUSE_IF(id != c->id && (j < 0 || !c->nb[j].held), TFD_ERR_ARG); /* no share of it */
        SA_REFUSE_IF(asked[slot], TFD_ERR_ARG);                          /* twice, or in both lists */
        asked[slot] = 1;
    }
    uint8_t plain[TFD_SA_SHARE_PLAIN_BYTES];
    tfd_status_t st = TFD_OK;
    size_t o = 10;
    for (unsigned i = 0; st == TFD_OK && i < nd + ns; ++i) {
        const uint32_t id = tfd_sa_load32_le(req + 8 + 4 * i);
        const int dropped = i < nd;
        tfd_sa_store32_le(out + o, id);
        out[o + 4] = dropped ? (uint8_t)TFD_SA_SHARE_KIND_S : (uint8_t)TFD_SA_SHARE_KIND_B;
        if (id == c->id) {
            memcpy(out + o + 5, c->own_b_share, 32);
        } else {
            const tfd_sa_neighbour_t *v = &c->nb[sa_find(c, id)];
            st = tfd_sa_open(plain, v->share_key, v->nonce, id, c->id, c->round, v->sealed,
                             v->sealed + TFD_SA_SHARE_PLAIN_BYTES, TFD_SA_SHARE_PLAIN_BYTES);
            if (st == TFD_OK) memcpy(out + o + 5, dropped ? plain + 32 : plain, 32);
        }
        o += 37;
    }
    crypto_wipe(plain, sizeof plain);
    if (st != TFD_OK) {
        crypto_wipe(out, o);
        return sa_refuse(c, st);
    }
    tfd_sa_store32_le(out, c->round);
    tfd_sa_store32_le(out + 4, c->id);
    out[8] = (uint8_t)(nd + ns);
    out[9] = (uint8_t)((nd + ns) >> 8);
    *out_len = o;
    /* the round is over for us: every secret goes */
    tfd_sa_client_wipe(c);
    c->stage = TFD_SA_CLIENT_MASKED; /* wipe() set IDLE; record the checked transition */
    return sa_go(c, TFD_SA_CLIENT_DONE);
}
