/* tinyfed — the device side of a federated round (see tfd/fl_device.h). */
#include "tfd/fl_device.h"

#include <math.h>
#include <string.h>

#include "monocypher.h" /* crypto_wipe */
#include "tfd/frame.h"   /* tfd_crc32 */

static void crypto_wipe_words_(void *p, size_t n)
{
    crypto_wipe(p, n);
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ENC_F32 vectors are copied as they lie in memory: little-endian targets only"
#endif
_Static_assert(sizeof(float) == 4, "ENC_F32 needs IEEE-754 binary32 floats");

const char *tfd_fl_stage_name(tfd_fl_stage_t stage)
{
    switch (stage) {
#define TFD_FL_STAGE_NAME_(name, value) \
    case TFD_FL_##name:                 \
        return #name;
        TFD_FL_STAGE_LIST(TFD_FL_STAGE_NAME_)
#undef TFD_FL_STAGE_NAME_
    default: return "?";
    }
}

/* ---- stage machine ------------------------------------------------------------------------ */
#define FL_BIT(s) (1u << (unsigned)TFD_FL_##s)

static const uint8_t kFlTransitions[TFD_FL_STAGE_COUNT] = {
    [TFD_FL_EMPTY] = FL_BIT(STAGING),
    [TFD_FL_STAGING] = FL_BIT(STAGING) | FL_BIT(STAGED),
    [TFD_FL_STAGED] = FL_BIT(STAGING) | FL_BIT(GLOBAL),
    [TFD_FL_GLOBAL] = FL_BIT(STAGING) | FL_BIT(TRAINED),
    [TFD_FL_TRAINED] = FL_BIT(STAGING),
};

TFD_CHECK_RESULT static tfd_status_t fl_go(tfd_fl_t *fl, tfd_fl_stage_t to)
{
    TFD_ENSURE((unsigned)to < TFD_FL_STAGE_COUNT, TFD_ERR_INTERNAL);
    TFD_ENSURE((kFlTransitions[fl->stage] & (1u << (unsigned)to)) != 0, TFD_ERR_PROTO_STATE);
    fl->stage = to;
    return TFD_OK;
}

static uint32_t fl_millis(const tfd_fl_t *fl)
{
    return fl->cfg.millis ? fl->cfg.millis() : 0u;
}

static uint32_t param_bytes(const tfd_fl_t *fl)
{
    return fl->n_params * (uint32_t)sizeof(float);
}

/* ---- init / eval ------------------------------------------------------------------------------ */
tfd_status_t tfd_fl_init(tfd_fl_t *fl, const tfd_fl_config_t *cfg)
{
    TFD_ENSURE(fl != NULL && cfg != NULL, TFD_ERR_ARG);
    TFD_ENSURE(cfg->model && cfg->plan && cfg->train_mem && cfg->buf, TFD_ERR_ARG);
    TFD_ENSURE(cfg->x != NULL && cfg->y != NULL && cfg->n > 0, TFD_ERR_ARG);
    memset(fl, 0, sizeof *fl);
    fl->cfg = *cfg;
    fl->stage = TFD_FL_EMPTY;
    fl->store_status = TFD_OK;
    TFD_TRY(tfd_trainer_init(&fl->trainer, cfg->model, cfg->plan, cfg->train_mem, cfg->train_mem_bytes));
    fl->n_params = tfd_trainer_n_params(&fl->trainer);
    TFD_ENSURE(fl->n_params > 0 && fl->n_params <= 0x3FFFFFFFu, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(fl->n_params <= cfg->buf_len, TFD_ERR_SHAPE);
    if (cfg->use_storage) {
        fl->store_status = tfd_param_store_init(&fl->store, cfg->storage_base, param_bytes(fl));
        fl->store_ok = fl->store_status == TFD_OK;
        if (fl->store_ok) {
            /* buf is free before the first round: load into it, then apply */
            fl->store_status = tfd_param_store_load(&fl->store, cfg->model->hash, fl->cfg.buf,
                                                    param_bytes(fl), &fl->restored);
            if (fl->store_status == TFD_OK && fl->restored.found) {
                TFD_TRY(tfd_trainer_set_params(&fl->trainer, fl->cfg.buf, fl->n_params));
                fl->round = fl->restored.round;
            }
        }
    }
    return TFD_OK;
}

tfd_status_t tfd_fl_eval(tfd_fl_t *fl, uint32_t max_samples, tfd_metrics_t *acc)
{
    const uint32_t n = (max_samples == 0 || max_samples > fl->cfg.n) ? fl->cfg.n : max_samples;
    memset(acc, 0, sizeof *acc);
    return tfd_trainer_eval(&fl->trainer, fl->cfg.x, fl->cfg.y, n, fl->cfg.sample_bytes, acc);
}

void tfd_fl_update_hook(tfd_fl_t *fl, float *delta, uint32_t n, float *norm, float *clip)
{
    (void)fl;
    /* Where clipping (DP), fixed-point quantization and the pairwise masks
     * of secure aggregation go.  Today: measure, change nothing. */
    double ss = 0.0;
    for (uint32_t i = 0; i < n; ++i) ss += (double)delta[i] * (double)delta[i];
    *norm = (float)sqrt(ss);
    *clip = 0.0f;
}

#if TFD_TEST_MESSAGES
#define FL_SA_VECTOR_PURPOSE(p) ((p) == TFD_PURPOSE_SA_MASKED || (p) == TFD_PURPOSE_SA_ENCODED)
#else
#define FL_SA_VECTOR_PURPOSE(p) ((p) == TFD_PURPOSE_SA_MASKED)
#endif

/* SA_MASKED bytes [offset, offset + len) of body SA_MASKED_INPUT_REPLY: its
 * fixed part (u32 round) || the masked words (TFD_REST group of SA_WORD), made
 * on demand.  Test images also serve SA_ENCODED: the same words before masking. */
enum { FL_SA_HEAD = TFD_WIRE_FIXED_SA_MASKED_INPUT_REPLY, FL_SA_WORD = TFD_WIRE_FIXED_SA_WORD };
_Static_assert(FL_SA_WORD == 4, "a masked word is one u32");
TFD_CHECK_RESULT static tfd_status_t fl_sa_read_vector(tfd_fl_t *fl, uint8_t purpose, uint32_t offset, uint8_t *out,
                                                       size_t len)
{
    TFD_ENSURE(fl->sa_init && (fl->sa.stage == TFD_SA_CLIENT_MASKED || fl->sa.stage == TFD_SA_CLIENT_CHECKED),
                   TFD_ERR_PROTO_STATE);
    const uint32_t total = FL_SA_HEAD + FL_SA_WORD * fl->sa_words;
    TFD_ENSURE(offset <= total && len <= total - offset, TFD_ERR_ARG);
    uint8_t head[FL_SA_HEAD];
    tfd_body_SA_MASKED_INPUT_REPLY_t h;
    memset(&h, 0, sizeof h);
    h.round = fl->sa.round;
    size_t head_len = 0;
    TFD_TRY(TFD_BODY_ENCODE(SA_MASKED_INPUT_REPLY, &h, head, sizeof head, &head_len));
    size_t done = 0;
    while (done < len) {
        const uint32_t pos = offset + (uint32_t)done;
        if (pos < FL_SA_HEAD) {
            out[done++] = head[pos];
            continue;
        }
        uint32_t words[16];
        const uint32_t w0 = (pos - FL_SA_HEAD) / FL_SA_WORD;
        const uint32_t nw = fl->sa_words - w0 < 16u ? fl->sa_words - w0 : 16u;
#if TFD_TEST_MESSAGES
        if (purpose == TFD_PURPOSE_SA_ENCODED) {
            TFD_TRY(tfd_sa_client_encoded_read(&fl->sa, w0, words, nw));
        } else
#endif
        {
            (void)purpose;
            TFD_TRY(tfd_sa_client_masked_read(&fl->sa, w0, words, nw));
        }
        const uint8_t *bytes = (const uint8_t *)words; /* little-endian target (checked above) */
        size_t from = (pos - FL_SA_HEAD) % FL_SA_WORD, avail = FL_SA_WORD * nw - from;
        const size_t take = avail < len - done ? avail : len - done;
        memcpy(out + done, bytes + from, take);
        done += take;
        crypto_wipe_words_(words, sizeof words);
    }
    return TFD_OK;
}

/* ---- transfers ---------------------------------------------------------------------------- */
tfd_status_t tfd_fl_xfer_begin(void *ctx, uint8_t purpose, uint32_t total_len)
{
    tfd_fl_t *fl = ctx;
    if (purpose == TFD_PURPOSE_SA_REQUEST) {
        TFD_ENSURE(total_len <= sizeof fl->sa_in, TFD_ERR_SHAPE);
        fl->sa_in_ok = 0;
        fl->sa_in_len = total_len;
        fl->sa_staged = 0;
        return TFD_OK;
    }
    TFD_ENSURE(purpose == TFD_PURPOSE_MODEL_PARAMS, TFD_ERR_ARG);
    if (fl->sa_init) tfd_sa_client_wipe(&fl->sa); /* a new round: the update is about to go */
    crypto_wipe(fl->sa_out, sizeof fl->sa_out);   /* and the last SecAgg reply (shares) with it */
    fl->sa_out_len = 0;
    TFD_ENSURE(total_len == param_bytes(fl), TFD_ERR_SHAPE);
    TFD_TRY(fl_go(fl, TFD_FL_STAGING));
    fl->staged = 0;
    return TFD_OK;
}

tfd_status_t tfd_fl_xfer_write(void *ctx, uint8_t purpose, uint32_t offset, const uint8_t *data,
                               size_t len)
{
    tfd_fl_t *fl = ctx;
    if (purpose == TFD_PURPOSE_SA_REQUEST) {
        TFD_ENSURE(offset == fl->sa_staged && len <= fl->sa_in_len - offset, TFD_ERR_OVERFLOW);
        memcpy(fl->sa_in + offset, data, len);
        fl->sa_staged += (uint32_t)len;
        return TFD_OK;
    }
    TFD_ENSURE(purpose == TFD_PURPOSE_MODEL_PARAMS && fl->stage == TFD_FL_STAGING, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(offset == fl->staged && len <= param_bytes(fl) - offset, TFD_ERR_OVERFLOW);
    memcpy((uint8_t *)fl->cfg.buf + offset, data, len);
    fl->staged += (uint32_t)len;
    return TFD_OK;
}

tfd_status_t tfd_fl_xfer_commit(void *ctx, uint8_t purpose, uint32_t total_len)
{
    tfd_fl_t *fl = ctx;
    if (purpose == TFD_PURPOSE_SA_REQUEST) {
        TFD_ENSURE(total_len == fl->sa_in_len && fl->sa_staged == total_len, TFD_ERR_SHAPE);
        fl->sa_in_ok = 1;
        return TFD_OK;
    }
    TFD_ENSURE(purpose == TFD_PURPOSE_MODEL_PARAMS, TFD_ERR_ARG);
    TFD_ENSURE(total_len == param_bytes(fl) && fl->staged == total_len, TFD_ERR_SHAPE);
    return fl_go(fl, TFD_FL_STAGED);
}

tfd_status_t tfd_fl_xfer_open(void *ctx, uint8_t purpose, uint32_t arg, uint32_t *total_len)
{
    tfd_fl_t *fl = ctx;
    if (purpose == TFD_PURPOSE_SA_REPLY) {
        TFD_ENSURE(fl->sa_init && fl->sa_out_len > 0, TFD_ERR_PROTO_STATE);
        TFD_ENSURE(arg == fl->sa_round, TFD_ERR_ARG);
        *total_len = fl->sa_out_len;
        return TFD_OK;
    }
    if (FL_SA_VECTOR_PURPOSE(purpose)) {
        TFD_ENSURE(fl->sa_init && (fl->sa.stage == TFD_SA_CLIENT_MASKED || fl->sa.stage == TFD_SA_CLIENT_CHECKED),
                   TFD_ERR_PROTO_STATE);
        TFD_ENSURE(arg == fl->sa_round && arg == fl->sa.round, TFD_ERR_ARG);
        *total_len = FL_SA_HEAD + FL_SA_WORD * fl->sa_words;
        return TFD_OK;
    }
    TFD_ENSURE(purpose == TFD_PURPOSE_MODEL_UPDATE, TFD_ERR_ARG);
    TFD_ENSURE(!TFD_FL_SECURE_ONLY && !fl->sa_masked, TFD_ERR_POLICY); /* masked once: never plain */
    TFD_ENSURE(fl->stage == TFD_FL_TRAINED, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(arg == fl->round, TFD_ERR_ARG);
    *total_len = param_bytes(fl);
    return TFD_OK;
}

tfd_status_t tfd_fl_xfer_read(void *ctx, uint8_t purpose, uint32_t offset, uint8_t *out, size_t len)
{
    tfd_fl_t *fl = ctx;
    if (purpose == TFD_PURPOSE_SA_REPLY) {
        TFD_ENSURE(fl->sa_out_len > 0, TFD_ERR_PROTO_STATE);
        TFD_ENSURE(offset <= fl->sa_out_len && len <= fl->sa_out_len - offset, TFD_ERR_ARG);
        memcpy(out, fl->sa_out + offset, len);
        return TFD_OK;
    }
    if (FL_SA_VECTOR_PURPOSE(purpose)) return fl_sa_read_vector(fl, purpose, offset, out, len);
    TFD_ENSURE(!TFD_FL_SECURE_ONLY && !fl->sa_masked, TFD_ERR_POLICY);
    TFD_ENSURE(purpose == TFD_PURPOSE_MODEL_UPDATE && fl->stage == TFD_FL_TRAINED, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(offset <= param_bytes(fl) && len <= param_bytes(fl) - offset, TFD_ERR_ARG);
    memcpy(out, (const uint8_t *)fl->cfg.buf + offset, len);
    return TFD_OK;
}

/* ---- PARAMS / TRAIN / GET_UPDATE ----------------------------------------------------------- */
tfd_status_t tfd_fl_params(void *ctx, const tfd_msg_PARAMS_t *m, uint32_t *detail)
{
    tfd_fl_t *fl = ctx;
    TFD_ENSURE(fl->stage == TFD_FL_STAGED, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(memcmp(m->model_hash, fl->cfg.model->hash, TFD_WIRE_HASH_LEN) == 0, TFD_ERR_BAD_MODEL);
    *detail = fl->n_params;
    TFD_ENSURE(m->n_params == fl->n_params, TFD_ERR_SHAPE);
    *detail = TFD_WIRE_ENC_F32;
    TFD_ENSURE(m->encoding == TFD_WIRE_ENC_F32, TFD_ERR_ARG);
    *detail = 0;
    TFD_ENSURE((m->flags & ~(uint32_t)TFD_WIRE_PARAMS_PERSIST) == 0, TFD_ERR_ARG);
    TFD_ENSURE(tfd_crc32(0, (const uint8_t *)fl->cfg.buf, param_bytes(fl)) == m->crc32, TFD_ERR_FRAME_CRC);
    for (uint32_t i = 0; i < fl->n_params; ++i) {
        TFD_ENSURE(isfinite(fl->cfg.buf[i]), TFD_ERR_OVERFLOW);
    }
    TFD_TRY(tfd_trainer_set_params(&fl->trainer, fl->cfg.buf, fl->n_params));
    TFD_TRY(fl_go(fl, TFD_FL_GLOBAL));
    fl->round = m->round;
    /* which global parameters the next update is trained from (see MASKED_INPUT) */
    crypto_blake2b(fl->params_digest, sizeof fl->params_digest, (const uint8_t *)fl->cfg.buf, param_bytes(fl));
    if (m->flags & TFD_WIRE_PARAMS_PERSIST) {
        if (fl->store_ok && fl->cfg.storage_busy) {
            fl->cfg.storage_busy(fl->cfg.storage_busy_ctx, fl->store.slot_bytes,
                                 TFD_PARAM_RECORD_HEADER + param_bytes(fl));
        }
        fl->store_status = fl->store_ok ? tfd_param_store_save(&fl->store, fl->cfg.model->hash, m->round,
                                                               fl->cfg.buf, param_bytes(fl), NULL)
                                        : TFD_ERR_STORAGE;
        TFD_TRY(fl->store_status);
    }
    return TFD_OK;
}

tfd_status_t tfd_fl_train(void *ctx, const tfd_msg_TRAIN_t *m, tfd_msg_TRAIN_RESULT_t *out, uint32_t *detail)
{
    tfd_fl_t *fl = ctx;
    *detail = fl->round;
    TFD_ENSURE(fl->stage == TFD_FL_GLOBAL, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(m->round == fl->round, TFD_ERR_ARG);
    *detail = 0;
    TFD_ENSURE(m->epochs > 0 && m->batch > 0 && m->schedule <= TFD_LR_STEP, TFD_ERR_ARG);
    TFD_ENSURE(isfinite(m->lr) && m->lr > 0.0f && isfinite(m->momentum) && m->momentum >= 0.0f &&
                   m->momentum < 1.0f && isfinite(m->weight_decay) && m->weight_decay >= 0.0f,
               TFD_ERR_ARG);
    const tfd_train_cfg_t c = {.lr = m->lr, .momentum = m->momentum, .weight_decay = m->weight_decay,
                               .epochs = m->epochs, .batch = m->batch, .seed = m->seed,
                               .schedule = m->schedule, .max_samples = m->max_samples};
    tfd_train_stats_t st;
    memset(&st, 0, sizeof st);
    const uint32_t t0 = fl_millis(fl);
    const uint64_t c0 = fl->cfg.counter ? fl->cfg.counter() : 0u;
    TFD_TRY(tfd_trainer_fit(&fl->trainer, &c, fl->cfg.x, fl->cfg.y, fl->cfg.n, fl->cfg.sample_bytes, &st));
    const uint64_t c1 = fl->cfg.counter ? fl->cfg.counter() : 0u;
    const uint32_t t1 = fl_millis(fl);

    /* local evaluation of the trained parameters on the whole shard */
    tfd_metrics_t ev;
    TFD_TRY(tfd_fl_eval(fl, 0, &ev));

    /* the update: delta = trained - global, in place in buf */
    const float *p = tfd_trainer_params(&fl->trainer);
    for (uint32_t i = 0; i < fl->n_params; ++i) fl->cfg.buf[i] = p[i] - fl->cfg.buf[i];
    tfd_fl_update_hook(fl, fl->cfg.buf, fl->n_params, &fl->norm, &fl->clip);
    const uint32_t used = (m->max_samples == 0 || m->max_samples > fl->cfg.n) ? fl->cfg.n : m->max_samples;
    fl->weight = used;
    fl->sa_masked = 0; /* a new update: it may be masked (once) */
    TFD_TRY(fl_go(fl, TFD_FL_TRAINED));

    out->samples = used;
    out->seen = st.samples;
    out->steps = st.steps;
    out->train_correct = st.correct;
    out->train_loss_sum = st.loss_sum;
    out->eval_samples = ev.samples;
    out->eval_correct = ev.correct;
    out->eval_loss_sum = ev.loss_sum;
    out->elapsed_ms = (t1 - t0) ? (t1 - t0) : 1u;
    if (fl->cfg.counter && st.samples) {
        const uint64_t per = (c1 - c0) / st.samples;
        out->insns_per_sample = per > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)per;
    }
    out->train_mem_bytes = (uint32_t)tfd_trainer_mem_bytes(fl->cfg.model, fl->cfg.plan);
    out->sram_peak = fl->cfg.sram_peak ? fl->cfg.sram_peak() : 0u;
    return TFD_OK;
}

tfd_status_t tfd_fl_update(void *ctx, const tfd_msg_GET_UPDATE_t *m, tfd_msg_UPDATE_t *out, uint32_t *detail)
{
    tfd_fl_t *fl = ctx;
    *detail = fl->round;
    TFD_ENSURE(!TFD_FL_SECURE_ONLY, TFD_ERR_POLICY); /* updates leave this image masked only */
    TFD_ENSURE(!fl->sa_masked, TFD_ERR_POLICY);       /* this update was masked: it never leaves plain */
    TFD_ENSURE(fl->stage == TFD_FL_TRAINED, TFD_ERR_PROTO_STATE);
    TFD_ENSURE(m->round == fl->round, TFD_ERR_ARG);
    *detail = TFD_WIRE_ENC_F32;
    TFD_ENSURE(m->encoding == TFD_WIRE_ENC_F32, TFD_ERR_ARG);
    *detail = 0;
    out->n_params = fl->n_params;
    out->encoding = TFD_WIRE_ENC_F32;
    out->weight = fl->weight;
    out->total_len = param_bytes(fl);
    out->crc32 = tfd_crc32(0, (const uint8_t *)fl->cfg.buf, param_bytes(fl));
    out->norm = fl->norm;
    out->clip = fl->clip;
    return TFD_OK;
}

/* ---- secure aggregation (SecAgg+) ----------------------------------------------------------- */
tfd_status_t tfd_fl_secagg(void *ctx, uint8_t msg_id, uint32_t round, uint32_t body_len, uint32_t crc32,
                           const tfd_msg_ADVERTISE_KEYS_t *adv, uint32_t *reply_len, uint32_t *detail)
{
    tfd_fl_t *fl = ctx;
    TFD_ENSURE(fl->cfg.random != NULL, TFD_ERR_BAD_MODEL);
    TFD_ENSURE(fl->sa_in_ok && body_len == fl->sa_in_len, TFD_ERR_SHAPE);
    fl->sa_in_ok = 0; /* a body is used once */
    TFD_ENSURE(tfd_crc32(0, fl->sa_in, body_len) == crc32, TFD_ERR_FRAME_CRC);
    /* the body decodes (wire table) and names the stage message's round */
    uint32_t body_round = 0;
    TFD_TRY(tfd_sa_request_round(msg_id, fl->sa_in, body_len, &body_round));
    TFD_ENSURE(body_round == round, TFD_ERR_ARG);
    *detail = (uint32_t)fl->sa.stage;
    size_t out_len = 0;
    if (fl->sa_out_len) crypto_wipe(fl->sa_out, fl->sa_out_len); /* the last reply goes with its stage */
    fl->sa_out_len = 0;
    switch (msg_id) {
    case TFD_MSG_ADVERTISE_KEYS: {
        TFD_ENSURE(adv != NULL, TFD_ERR_ARG);
        const tfd_sa_encoding_t enc = {.clip = adv->clip, .frac_bits = adv->frac_bits,
                                       .weight_max = adv->weight_max, .dp_z_milli = adv->dp_z_milli};
        if (!fl->sa_init) {
            /* first round of this boot: the client of this device's identity (none: POLICY) */
            TFD_TRY(tfd_sa_client_init(&fl->sa, fl->cfg.identity, &enc, fl->cfg.random));
            fl->sa_init = 1;
        }
        /* the encoding changes only once the whole request has been checked */
        TFD_TRY(tfd_sa_client_advertise_as(&fl->sa, &enc, fl->sa_in, body_len, fl->sa_out, sizeof fl->sa_out,
                                           &out_len));
        fl->sa_weight = adv->weight; /* checked against the samples at MASKED_INPUT */
        fl->sa_staleness = adv->staleness;
        break;
    }
    case TFD_MSG_SHARE_KEYS:
        TFD_ENSURE(fl->sa_init, TFD_ERR_PROTO_STATE);
        TFD_TRY(tfd_sa_client_share_keys(&fl->sa, fl->sa_in, body_len, fl->sa_out, sizeof fl->sa_out, &out_len));
        break;
    case TFD_MSG_MASKED_INPUT: {
        TFD_ENSURE(fl->sa_init, TFD_ERR_PROTO_STATE);
        TFD_ENSURE(fl->stage == TFD_FL_TRAINED, TFD_ERR_PROTO_STATE); /* no update to mask */
        /* One masked input per trained update, and none for an update trained from
         * global parameters whose masked update this device already helped unmask:
         * two secure sums of the same updates over different survivor sets would
         * reveal their difference (firmware/docs/SECURITY.md, "mask once"). */
        if (fl->sa_masked || (fl->unmasked_valid && crypto_verify16(fl->unmasked_digest, fl->params_digest) == 0)) {
            tfd_sa_client_wipe(&fl->sa);
            return TFD_ERR_POLICY;
        }
        /* the public weight: at most SA_WEIGHT_ONE x the samples trained on (0: those samples) */
        const uint64_t heaviest = (uint64_t)fl->weight * TFD_WIRE_SA_WEIGHT_ONE;
        const uint32_t w = fl->sa_weight ? fl->sa_weight : fl->weight;
        *detail = w;
        TFD_ENSURE(w >= 1 && (uint64_t)w <= heaviest && w <= fl->sa.enc.weight_max, TFD_ERR_ARG);
        /* ... and at least the fleet's floor x the samples (signed manifest): a host cannot weight
         * the other members down to isolate one update (more than SA_WEIGHT_ONE / floor apart; a
         * weight of 0 -- the word = the samples, 1/SA_WEIGHT_ONE per sample -- is below any floor > 1) */
        if ((uint64_t)w < (uint64_t)fl->sa.ident->weight_floor * fl->weight) {
            tfd_sa_client_wipe(&fl->sa);
            return TFD_ERR_POLICY;
        }
        tfd_sa_summed_t summed;
        memset(&summed, 0, sizeof summed);
        summed.weight = w;
        uint32_t words = 0;
        TFD_TRY(tfd_sa_client_masked_input(&fl->sa, fl->sa_in, body_len, fl->cfg.buf, fl->n_params, &summed,
                                           &words));
        fl->sa_words = words;
        fl->sa_masked = 1;
        fl->sa_round = round;
        *reply_len = FL_SA_HEAD + FL_SA_WORD * words;
        *detail = 0;
        return TFD_OK;
    }
    case TFD_MSG_SURVIVORS:
        TFD_ENSURE(fl->sa_init, TFD_ERR_PROTO_STATE);
        TFD_TRY(tfd_sa_client_survivors(&fl->sa, fl->sa_in, body_len, fl->sa_out, sizeof fl->sa_out, &out_len));
        break;
    case TFD_MSG_UNMASK:
        TFD_ENSURE(fl->sa_init, TFD_ERR_PROTO_STATE);
        TFD_TRY(tfd_sa_client_unmask(&fl->sa, fl->sa_in, body_len, fl->sa_out, sizeof fl->sa_out, &out_len));
        /* shares of this round are out: its sum may be formed, never mask an update of
         * these global parameters again */
        memcpy(fl->unmasked_digest, fl->params_digest, sizeof fl->unmasked_digest);
        fl->unmasked_valid = 1;
        break;
    default: return TFD_ERR_INTERNAL;
    }
    fl->sa_out_len = (uint32_t)out_len;
    fl->sa_round = round;
    *reply_len = (uint32_t)out_len;
    *detail = 0;
    return TFD_OK;
}

tfd_status_t tfd_fl_identity(void *ctx, tfd_msg_IDENTITY_t *out)
{
    tfd_fl_t *fl = ctx;
    const tfd_identity_t *id = fl->cfg.identity;
    if (id == NULL || !id->ok) {
        out->status = (uint16_t)(fl->cfg.identity_status != TFD_OK ? fl->cfg.identity_status : TFD_ERR_POLICY);
        return TFD_OK; /* a device without identity says so; it refuses SecAgg+ */
    }
    out->status = TFD_OK;
    out->device_id = id->device_id;
    memcpy(out->public_key, id->public_key, sizeof out->public_key);
    memcpy(out->fleet_id, id->fleet_id, sizeof out->fleet_id);
    out->manifest_version = id->manifest_version;
    out->n_devices = id->n;
    memcpy(out->manifest_digest, id->manifest_hash, sizeof out->manifest_digest);
    return TFD_OK;
}
