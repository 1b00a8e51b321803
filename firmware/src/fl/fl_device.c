/* tinyfed — the device side of a federated round (see tfd/fl_device.h). */
#include "tfd/fl_device.h"

#include <math.h>
#include <string.h>

#include "monocypher.h" /* crypto_wipe */
#include "tfd/frame.h"   /* tfd_crc32 */

static uint32_t tfd_sa_load32_le_(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

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

/* SA_MASKED bytes [offset, offset + len): u32 round || the masked words, made
 * on demand.  Test images also serve SA_ENCODED: the same words before masking. */
TFD_CHECK_RESULT static tfd_status_t fl_sa_read_vector(tfd_fl_t *fl, uint8_t purpose, uint32_t offset, uint8_t *out,
                                                       size_t len)
{
    TFD_ENSURE(fl->sa_init && fl->sa.stage == TFD_SA_CLIENT_MASKED, TFD_ERR_PROTO_STATE);
    const uint32_t total = 4u + 4u * fl->sa_words;
    TFD_ENSURE(offset <= total && len <= total - offset, TFD_ERR_ARG);
    uint8_t head[4];
    head[0] = (uint8_t)fl->sa.round;
    head[1] = (uint8_t)(fl->sa.round >> 8);
    head[2] = (uint8_t)(fl->sa.round >> 16);
    head[3] = (uint8_t)(fl->sa.round >> 24);
    size_t done = 0;
    while (done < len) {
        const uint32_t pos = offset + (uint32_t)done;
        if (pos < 4) {
            out[done++] = head[pos];
            continue;
        }
        uint32_t words[16];
        const uint32_t w0 = (pos - 4u) / 4u;
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
        size_t from = (pos - 4u) % 4u, avail = 4u * nw - from;
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
        TFD_ENSURE(total_len >= 4 && total_len <= sizeof fl->sa_in, TFD_ERR_SHAPE);
        fl->sa_in_ok = 0;
        fl->sa_in_len = total_len;
        fl->sa_staged = 0;
        return TFD_OK;
    }
    TFD_ENSURE(purpose == TFD_PURPOSE_MODEL_PARAMS, TFD_ERR_ARG);
    if (fl->sa_init) tfd_sa_client_wipe(&fl->sa); /* a new round: the update is about to go */
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
        TFD_ENSURE(fl->sa_init && fl->sa.stage == TFD_SA_CLIENT_MASKED, TFD_ERR_PROTO_STATE);
        TFD_ENSURE(arg == fl->sa_round && arg == fl->sa.round, TFD_ERR_ARG);
        *total_len = 4u + 4u * fl->sa_words;
        return TFD_OK;
    }
    TFD_ENSURE(purpose == TFD_PURPOSE_MODEL_UPDATE, TFD_ERR_ARG);
    TFD_ENSURE(!TFD_FL_SECURE_ONLY, TFD_ERR_POLICY);
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
    TFD_ENSURE(!TFD_FL_SECURE_ONLY, TFD_ERR_POLICY);
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
    if (m->flags & TFD_WIRE_PARAMS_PERSIST) {
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
    TFD_ENSURE(body_len >= 4 && tfd_sa_load32_le_(fl->sa_in) == round, TFD_ERR_ARG);
    *detail = (uint32_t)fl->sa.stage;
    size_t out_len = 0;
    fl->sa_out_len = 0;
    switch (msg_id) {
    case TFD_MSG_ADVERTISE_KEYS: {
        TFD_ENSURE(adv != NULL && body_len >= 8, TFD_ERR_ARG);
        const tfd_sa_encoding_t enc = {.clip = adv->clip, .frac_bits = adv->frac_bits,
                                       .weight_max = adv->weight_max};
        const uint32_t id = tfd_sa_load32_le_(fl->sa_in + 4);
        if (!fl->sa_init) {
            TFD_TRY(tfd_sa_client_init(&fl->sa, id, &enc, fl->cfg.random));
            fl->sa_init = 1;
        } else if (fl->sa.has_round && round <= fl->sa.round) {
            return TFD_ERR_PROTO_STATE; /* replay / older round: change nothing */
        } else {
            TFD_TRY(tfd_sa_client_configure(&fl->sa, id, &enc));
        }
        TFD_TRY(tfd_sa_client_advertise(&fl->sa, fl->sa_in, body_len, fl->sa_out, sizeof fl->sa_out, &out_len));
        break;
    }
    case TFD_MSG_SHARE_KEYS:
        TFD_ENSURE(fl->sa_init, TFD_ERR_PROTO_STATE);
        TFD_TRY(tfd_sa_client_share_keys(&fl->sa, fl->sa_in, body_len, fl->sa_out, sizeof fl->sa_out, &out_len));
        break;
    case TFD_MSG_MASKED_INPUT: {
        TFD_ENSURE(fl->sa_init, TFD_ERR_PROTO_STATE);
        TFD_ENSURE(fl->stage == TFD_FL_TRAINED, TFD_ERR_PROTO_STATE); /* no update to mask */
        /* One masked input per trained update: two secure sums of the same updates
         * over different survivor sets would reveal their difference. */
        if (fl->sa_masked) {
            tfd_sa_client_wipe(&fl->sa);
            return TFD_ERR_POLICY;
        }
        uint32_t words = 0;
        TFD_TRY(tfd_sa_client_masked_input(&fl->sa, fl->sa_in, body_len, fl->cfg.buf, fl->n_params, fl->weight,
                                           &words));
        fl->sa_words = words;
        fl->sa_masked = 1;
        fl->sa_round = round;
        *reply_len = 4u + 4u * words;
        *detail = 0;
        return TFD_OK;
    }
    case TFD_MSG_UNMASK:
        TFD_ENSURE(fl->sa_init, TFD_ERR_PROTO_STATE);
        TFD_TRY(tfd_sa_client_unmask(&fl->sa, fl->sa_in, body_len, fl->sa_out, sizeof fl->sa_out, &out_len));
        break;
    default: return TFD_ERR_INTERNAL;
    }
    fl->sa_out_len = (uint32_t)out_len;
    fl->sa_round = round;
    *reply_len = (uint32_t)out_len;
    *detail = 0;
    return TFD_OK;
}
