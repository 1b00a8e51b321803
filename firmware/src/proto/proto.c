/* tinyfed — device protocol: dispatcher, stage machine, handlers.
 *
 * Each request frame goes through handle_frame():
 *   1. REPLY/UNSOLICITED frames are not requests: counted, dropped silently
 *      (never answered, so two talking devices cannot ping-pong).
 *   2. The same seq + frame CRC as the last request: replay the cached reply.
 *   3. Look the id up in the wire table and the route table; decode the
 *      payload (length checked against the table before any field is read);
 *      check the current stage is one the route allows.
 *   4. Run the handler; it sends exactly one reply or returns a status that
 *      becomes an ERROR reply.  Stage changes go through go().
 */
#include <string.h>

#include "tfd/proto.h"
#include "proto_internal.h"

#define STAGE_BIT(s) (1u << (unsigned)TFD_STAGE_##s)
#define ANY_STAGE (STAGE_BIT(IDLE) | STAGE_BIT(READY) | STAGE_BIT(XFER_RX) | STAGE_BIT(XFER_TX))
#define SESSION (STAGE_BIT(READY) | STAGE_BIT(XFER_RX) | STAGE_BIT(XFER_TX))

/* Largest TEST_PATTERN payload the device agrees to produce. */
#define TFD_TEST_PATTERN_MAX (1u << 20)

const char *tfd_stage_name(tfd_stage_t stage)
{
    switch (stage) {
#define TFD_STAGE_NAME_(name, value) \
    case TFD_STAGE_##name:           \
        return #name;
        TFD_STAGE_LIST(TFD_STAGE_NAME_)
#undef TFD_STAGE_NAME_
    default: return "?";
    }
}

/* ---- transitions ---------------------------------------------------------------------- */
static const uint8_t kTransitions[TFD_STAGE_COUNT] = {
    [TFD_STAGE_IDLE] = STAGE_BIT(IDLE) | STAGE_BIT(READY),
    [TFD_STAGE_READY] = STAGE_BIT(IDLE) | STAGE_BIT(READY) | STAGE_BIT(XFER_RX) | STAGE_BIT(XFER_TX),
    [TFD_STAGE_XFER_RX] = STAGE_BIT(IDLE) | STAGE_BIT(READY) | STAGE_BIT(XFER_RX),
    [TFD_STAGE_XFER_TX] = STAGE_BIT(IDLE) | STAGE_BIT(READY) | STAGE_BIT(XFER_TX),
};

TFD_CHECK_RESULT static tfd_status_t go(tfd_proto_t *p, tfd_stage_t to)
{
    TFD_ENSURE((unsigned)to < TFD_STAGE_COUNT, TFD_ERR_INTERNAL);
    TFD_ENSURE((kTransitions[p->stage] & (1u << (unsigned)to)) != 0, TFD_ERR_INTERNAL);
    p->stage = to;
    return TFD_OK;
}

/* ---- output ------------------------------------------------------------------------------ */
static void emit(tfd_proto_t *p, const uint8_t *data, size_t len)
{
    p->stats.bytes_out += (uint32_t)len;
    if (p->write) p->write(p->write_ctx, data, len);
}

/* Frame the encoded reply in p->payload[0..n) as message `id` answering req,
 * keep it for a replayed request (same seq and CRC) and send it. */
TFD_CHECK_RESULT static tfd_status_t send_reply(tfd_proto_t *p, tfd_req_t *req, uint8_t id, size_t n)
{
    tfd_frame_hdr_t hdr = {
        .version = TFD_WIRE_FRAME_VERSION, .msg_id = id, .flags = TFD_FLAG_REPLY,
        .seq = req->frame->hdr.seq, .length = 0,
    };
    size_t wire_len = 0;
    TFD_TRY(tfd_frame_encode(&hdr, p->payload, n, p->last_reply, sizeof p->last_reply, &wire_len));
    p->have_last = 1;
    p->last_seq = req->frame->hdr.seq;
    p->last_crc = req->frame->crc;
    p->last_len = wire_len;
    req->replied = 1;
    emit(p, p->last_reply, wire_len);
    return TFD_OK;
}

tfd_status_t tfd_proto_reply(tfd_proto_t *p, tfd_req_t *req, uint8_t id, const void *msg,
                             size_t msg_size)
{
    TFD_ENSURE(!req->replied, TFD_ERR_INTERNAL);
    size_t n = 0;
    TFD_TRY(tfd_wire_encode(id, msg, msg_size, p->payload, sizeof p->payload, &n));
    return send_reply(p, req, id, n);
}

static void reply_error(tfd_proto_t *p, tfd_req_t *req, tfd_status_t code, uint32_t detail)
{
    const char *text = tfd_status_str(code);
    tfd_msg_ERROR_t e = {.code = (uint16_t)code, .ref_id = req->frame->hdr.msg_id, .detail = detail,
                         .text = text, .text_len = 0};
    size_t len = strlen(text);
    e.text_len = (uint16_t)(len < TFD_WIRE_TEXT_MAX ? len : TFD_WIRE_TEXT_MAX);
    p->stats.errors_sent++;
    /* An ERROR that cannot be encoded or framed is not sent (the host times out). */
    if (TFD_WIRE_ENCODE(ERROR, &e, p->payload, sizeof p->payload, &len) != TFD_OK) return;
    if (send_reply(p, req, TFD_MSG_ERROR, len) != TFD_OK) return;
}

tfd_status_t tfd_proto_reply_ack(tfd_proto_t *p, tfd_req_t *req, uint16_t xfer_id, uint32_t value)
{
    const tfd_msg_ACK_t a = {.ref_id = req->frame->hdr.msg_id, .xfer_id = xfer_id, .value = value};
    return tfd_proto_reply(p, req, TFD_MSG_ACK, &a, sizeof a);
}

TFD_CHECK_RESULT static tfd_status_t reply_nack(tfd_proto_t *p, tfd_req_t *req, uint16_t xfer_id,
                                                tfd_status_t code, uint32_t value)
{
    const tfd_msg_NACK_t n = {.ref_id = req->frame->hdr.msg_id, .xfer_id = xfer_id,
                              .code = (uint16_t)code, .value = value};
    p->stats.nacks_sent++;
    return tfd_proto_reply(p, req, TFD_MSG_NACK, &n, sizeof n);
}

/* A frame was dropped: tell the host at once (it resends instead of timing out). */
static void nack_dropped(tfd_proto_t *p, tfd_status_t why)
{
    const tfd_msg_NACK_t n = {.ref_id = 0, .xfer_id = 0, .code = (uint16_t)why, .value = 0};
    uint8_t payload[TFD_WIRE_FIXED_NACK];
    size_t len = 0;
    if (TFD_WIRE_ENCODE(NACK, &n, payload, sizeof payload, &len) != TFD_OK) return;
    tfd_frame_hdr_t hdr = {.version = TFD_WIRE_FRAME_VERSION, .msg_id = TFD_MSG_NACK,
                           .flags = TFD_FLAG_UNSOLICITED, .seq = 0, .length = 0};
    size_t wire_len = 0;
    if (tfd_frame_encode(&hdr, payload, len, p->small, sizeof p->small, &wire_len) != TFD_OK) return;
    p->stats.nacks_sent++;
    emit(p, p->small, wire_len);
}

void tfd_proto_busy(tfd_proto_t *p, uint32_t max_ms)
{
    if (p == NULL || p->current == NULL || max_ms == 0u) return;
    const tfd_msg_BUSY_t b = {.ref_id = p->current->hdr.msg_id, .max_ms = max_ms};
    uint8_t payload[TFD_WIRE_FIXED_BUSY];
    size_t len = 0;
    if (TFD_WIRE_ENCODE(BUSY, &b, payload, sizeof payload, &len) != TFD_OK) return;
    tfd_frame_hdr_t hdr = {.version = TFD_WIRE_FRAME_VERSION, .msg_id = TFD_MSG_BUSY,
                           .flags = TFD_FLAG_REPLY, .seq = p->current->hdr.seq, .length = 0};
    size_t wire_len = 0;
    if (tfd_frame_encode(&hdr, payload, len, p->small, sizeof p->small, &wire_len) != TFD_OK) return;
    emit(p, p->small, wire_len);
}

uint32_t tfd_proto_millis(const tfd_proto_t *p)
{
    return p->app && p->app->millis ? p->app->millis(p->app_ctx) : 0u;
}

/* ---- transfers: purposes ------------------------------------------------------------------ */
static int is_builtin(uint8_t purpose)
{
#if TFD_TEST_MESSAGES
    return purpose == TFD_PURPOSE_TEST_SINK || purpose == TFD_PURPOSE_TEST_PATTERN;
#else
    (void)purpose;
    return 0;
#endif
}

TFD_CHECK_RESULT static tfd_status_t purpose_check(tfd_proto_t *p, tfd_req_t *req, uint8_t purpose,
                                                   uint8_t dir)
{
    const tfd_wire_purpose_t *d = tfd_wire_find_purpose(purpose);
    req->detail = purpose;
    TFD_ENSURE(d != NULL && (d->dir & dir) != 0, TFD_ERR_ARG);
    if (!is_builtin(purpose)) {
        const tfd_app_t *a = p->app;
        if (dir == TFD_DIR_H2D) {
            TFD_ENSURE(a && a->xfer_begin && a->xfer_write && a->xfer_commit, TFD_ERR_ARG);
        } else {
            TFD_ENSURE(a && a->xfer_open && a->xfer_read, TFD_ERR_ARG);
        }
    }
    return TFD_OK;
}

TFD_CHECK_RESULT static tfd_status_t source_read(tfd_proto_t *p, uint32_t offset, uint8_t *out,
                                                 size_t len)
{
    const tfd_xfer_state_t *x = &p->xfer;
    TFD_ENSURE(offset <= x->total && len <= x->total - offset, TFD_ERR_ARG);
    if (is_builtin(x->purpose)) {
        for (size_t i = 0; i < len; ++i) out[i] = tfd_test_pattern_byte(offset + (uint32_t)i, x->total);
        return TFD_OK;
    }
    return p->app->xfer_read(p->app_ctx, x->purpose, offset, out, len);
}

/* ---- handlers ---------------------------------------------------------------------------- */

static tfd_status_t send_info(tfd_proto_t *p, tfd_req_t *req, uint32_t nonce)
{
    tfd_msg_INFO_t info;
    memset(&info, 0, sizeof info);
    if (p->app && p->app->info) p->app->info(p->app_ctx, &info);
    info.nonce = nonce;
    info.proto_version = TFD_WIRE_PROTO_VERSION;
    info.table_crc = p->table_crc;
    info.max_payload = TFD_WIRE_MAX_PAYLOAD;
    info.caps &= ~TFD_CAP_TEST_MESSAGES;
    if (TFD_TEST_MESSAGES) info.caps |= TFD_CAP_TEST_MESSAGES;
    return tfd_proto_reply(p, req, TFD_MSG_INFO, &info, sizeof info);
}

static tfd_status_t on_hello(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    const tfd_msg_HELLO_t *h = &m->m_HELLO;
    /* A new session aborts whatever was under way. */
    memset(&p->xfer, 0, sizeof p->xfer);
    if (h->proto_version != TFD_WIRE_PROTO_VERSION) {
        TFD_TRY(go(p, TFD_STAGE_IDLE));
        req->detail = TFD_WIRE_PROTO_VERSION;
        return TFD_ERR_PROTO_VERSION;
    }
    if (h->table_crc != p->table_crc) {
        TFD_TRY(go(p, TFD_STAGE_IDLE));
        req->detail = p->table_crc;
        return TFD_ERR_PROTO_VERSION;
    }
    TFD_TRY(go(p, TFD_STAGE_READY));
    return send_info(p, req, h->nonce);
}

static tfd_status_t on_get_info(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    return send_info(p, req, m->m_GET_INFO.nonce);
}

static tfd_status_t on_ping(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    const tfd_msg_PONG_t pong = {.token = m->m_PING.token, .uptime_ms = tfd_proto_millis(p)};
    return tfd_proto_reply(p, req, TFD_MSG_PONG, &pong, sizeof pong);
}

static tfd_status_t on_get_stats(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    tfd_msg_STATS_t s;
    tfd_proto_get_stats(p, &s);
    if (m->m_GET_STATS.reset) {
        memset(&p->stats, 0, sizeof p->stats);
        memset(&p->dec.stats, 0, sizeof p->dec.stats);
    }
    return tfd_proto_reply(p, req, TFD_MSG_STATS, &s, sizeof s);
}

static tfd_status_t on_eval(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    TFD_ENSURE(p->app && p->app->eval, TFD_ERR_BAD_MODEL);
    tfd_msg_EVAL_RESULT_t r;
    memset(&r, 0, sizeof r);
    const uint32_t t0 = tfd_proto_millis(p);
    TFD_TRY(p->app->eval(p->app_ctx, m->m_EVAL.max_samples, &r));
    r.elapsed_ms = tfd_proto_millis(p) - t0;
    return tfd_proto_reply(p, req, TFD_MSG_EVAL_RESULT, &r, sizeof r);
}

#if TFD_TEST_MESSAGES
static tfd_status_t on_infer_test(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    TFD_ENSURE(p->app && p->app->infer, TFD_ERR_BAD_MODEL);
    const tfd_msg_INFER_TEST_t *in = &m->m_INFER_TEST;
    /* The output is written where the encoder will put INFER_RESULT's tail. */
    int8_t *out = (int8_t *)(p->payload + TFD_WIRE_FIXED_INFER_RESULT);
    size_t n = 0;
    const uint32_t t0 = tfd_proto_millis(p);
    /* The input points into the decoder buffer, which stays untouched until
     * this function returns (replies use p->payload and p->last_reply). */
    TFD_TRY(p->app->infer(p->app_ctx, in->input, in->input_len, out, TFD_WIRE_INFER_MAX, &n));
    TFD_ENSURE(n <= TFD_WIRE_INFER_MAX, TFD_ERR_INTERNAL);
    const tfd_msg_INFER_RESULT_t r = {.elapsed_ms = tfd_proto_millis(p) - t0, .output = out,
                                      .output_len = (uint16_t)n};
    return tfd_proto_reply(p, req, TFD_MSG_INFER_RESULT, &r, sizeof r);
}
#endif

static tfd_status_t on_xfer_begin(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    const tfd_msg_XFER_BEGIN_t *b = &m->m_XFER_BEGIN;
    TFD_TRY(purpose_check(p, req, b->purpose, TFD_DIR_H2D));
    if (!is_builtin(b->purpose)) {
        TFD_TRY(p->app->xfer_begin(p->app_ctx, b->purpose, b->total_len));
    }
    p->xfer = (tfd_xfer_state_t){.id = b->xfer_id, .purpose = b->purpose,
                                 .builtin = (uint8_t)is_builtin(b->purpose), .total = b->total_len,
                                 .next = 0, .crc = 0, .expect = b->crc32, .arg = 0};
    TFD_TRY(go(p, TFD_STAGE_XFER_RX));
    return tfd_proto_reply_ack(p, req, b->xfer_id, 0);
}

static tfd_status_t on_xfer_chunk(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    const tfd_msg_XFER_CHUNK_t *c = &m->m_XFER_CHUNK;
    tfd_xfer_state_t *x = &p->xfer;
    if (c->xfer_id != x->id) return reply_nack(p, req, c->xfer_id, TFD_ERR_ARG, x->next);
    if (c->offset > x->next) return reply_nack(p, req, x->id, TFD_ERR_SEQ, x->next);
    /* A chunk that starts before next (resent after a lost acknowledgement, or cut
     * differently when the host changed its chunk size) gives its new part, if any. */
    const uint32_t skip = x->next - c->offset; /* bytes of it the device already has */
    if (skip > 0 && skip >= c->data_len) return tfd_proto_reply_ack(p, req, x->id, x->next);
    const uint8_t *data = c->data + skip;
    const uint32_t len = c->data_len - skip;
    if (len > x->total - x->next) {
        req->detail = x->total;
        return TFD_ERR_OVERFLOW;
    }
    if (!x->builtin && len) {
        TFD_TRY(p->app->xfer_write(p->app_ctx, x->purpose, x->next, data, len));
    }
    x->crc = tfd_crc32(x->crc, data, len);
    x->next += len;
    TFD_TRY(go(p, TFD_STAGE_XFER_RX));
    return tfd_proto_reply_ack(p, req, x->id, x->next);
}

static tfd_status_t on_xfer_end(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    const tfd_msg_XFER_END_t *e = &m->m_XFER_END;
    tfd_xfer_state_t *x = &p->xfer;
    if (e->xfer_id != x->id) return reply_nack(p, req, e->xfer_id, TFD_ERR_ARG, x->next);
    if (e->abort || p->stage == TFD_STAGE_XFER_TX) {
        const uint32_t done = p->stage == TFD_STAGE_XFER_TX ? x->total : x->next;
        TFD_TRY(go(p, TFD_STAGE_READY));
        return tfd_proto_reply_ack(p, req, x->id, done);
    }
    if (x->next != x->total) return reply_nack(p, req, x->id, TFD_ERR_SEQ, x->next);
    if (x->crc != x->expect) {
        /* Corrupted although every frame CRC passed (or a sender bug): start over. */
        x->next = 0;
        x->crc = 0;
        if (!x->builtin) TFD_TRY(p->app->xfer_begin(p->app_ctx, x->purpose, x->total));
        return reply_nack(p, req, x->id, TFD_ERR_FRAME_CRC, 0);
    }
    if (!x->builtin) TFD_TRY(p->app->xfer_commit(p->app_ctx, x->purpose, x->total));
    TFD_TRY(go(p, TFD_STAGE_READY));
    return tfd_proto_reply_ack(p, req, x->id, x->total);
}

static tfd_status_t on_xfer_pull(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    const tfd_msg_XFER_PULL_t *q = &m->m_XFER_PULL;
    TFD_TRY(purpose_check(p, req, q->purpose, TFD_DIR_D2H));
    uint32_t total = 0;
    if (is_builtin(q->purpose)) {
        req->detail = TFD_TEST_PATTERN_MAX;
        TFD_ENSURE(q->arg <= TFD_TEST_PATTERN_MAX, TFD_ERR_OVERFLOW);
        total = q->arg;
    } else {
        TFD_TRY(p->app->xfer_open(p->app_ctx, q->purpose, q->arg, &total));
    }
    p->xfer = (tfd_xfer_state_t){.id = q->xfer_id, .purpose = q->purpose,
                                 .builtin = (uint8_t)is_builtin(q->purpose), .total = total,
                                 .next = 0, .crc = 0, .expect = 0, .arg = q->arg};
    /* The whole-payload CRC goes first, so read the payload once now. */
    uint32_t crc = 0;
    for (uint32_t off = 0; off < total;) {
        const uint32_t n = total - off < TFD_WIRE_CHUNK_MAX ? total - off : TFD_WIRE_CHUNK_MAX;
        TFD_TRY(source_read(p, off, p->payload, n));
        crc = tfd_crc32(crc, p->payload, n);
        off += n;
    }
    p->xfer.expect = crc;
    TFD_TRY(go(p, TFD_STAGE_XFER_TX));
    const tfd_msg_XFER_BEGIN_t b = {.xfer_id = q->xfer_id, .purpose = q->purpose, .total_len = total,
                                    .crc32 = crc, .chunk_max = TFD_WIRE_CHUNK_MAX};
    return tfd_proto_reply(p, req, TFD_MSG_XFER_BEGIN, &b, sizeof b);
}

static tfd_status_t on_xfer_read(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    const tfd_msg_XFER_READ_t *r = &m->m_XFER_READ;
    tfd_xfer_state_t *x = &p->xfer;
    if (r->xfer_id != x->id) return reply_nack(p, req, r->xfer_id, TFD_ERR_ARG, 0);
    req->detail = x->total;
    TFD_ENSURE(r->offset <= x->total && r->length <= TFD_WIRE_CHUNK_MAX, TFD_ERR_ARG);
    const uint32_t n = r->length < x->total - r->offset ? r->length : x->total - r->offset;
    uint8_t *data = p->payload + TFD_WIRE_FIXED_XFER_CHUNK;
    TFD_TRY(source_read(p, r->offset, data, n));
    const tfd_msg_XFER_CHUNK_t c = {.xfer_id = x->id, .offset = r->offset, .data = data,
                                    .data_len = (uint16_t)n};
    TFD_TRY(go(p, TFD_STAGE_XFER_TX));
    return tfd_proto_reply(p, req, TFD_MSG_XFER_CHUNK, &c, sizeof c);
}

/* ---- routes: message -> (stages where it is valid, handler) ------------------------------- */
typedef struct {
    uint8_t id;
    uint8_t stages;
    tfd_handler_fn fn;
} tfd_route_t;

static const tfd_route_t kRoutes[] = {
    {TFD_MSG_HELLO, ANY_STAGE, on_hello},
    {TFD_MSG_PING, ANY_STAGE, on_ping},
    {TFD_MSG_GET_STATS, ANY_STAGE, on_get_stats},
    {TFD_MSG_GET_INFO, SESSION, on_get_info},
    {TFD_MSG_EVAL, STAGE_BIT(READY), on_eval},
    {TFD_MSG_XFER_BEGIN, STAGE_BIT(READY) | STAGE_BIT(XFER_RX), on_xfer_begin},
    {TFD_MSG_XFER_CHUNK, STAGE_BIT(XFER_RX), on_xfer_chunk},
    {TFD_MSG_XFER_END, STAGE_BIT(XFER_RX) | STAGE_BIT(XFER_TX), on_xfer_end},
    {TFD_MSG_XFER_PULL, STAGE_BIT(READY), on_xfer_pull},
    {TFD_MSG_XFER_READ, STAGE_BIT(XFER_TX), on_xfer_read},
    {TFD_MSG_PARAMS, STAGE_BIT(READY), tfd_proto_on_params},
    {TFD_MSG_TRAIN, STAGE_BIT(READY), tfd_proto_on_train},
    {TFD_MSG_GET_UPDATE, STAGE_BIT(READY), tfd_proto_on_get_update},
    {TFD_MSG_ADVERTISE_KEYS, STAGE_BIT(READY), tfd_proto_on_secagg},
    {TFD_MSG_SHARE_KEYS, STAGE_BIT(READY), tfd_proto_on_secagg},
    {TFD_MSG_MASKED_INPUT, STAGE_BIT(READY), tfd_proto_on_secagg},
    {TFD_MSG_SURVIVORS, STAGE_BIT(READY), tfd_proto_on_secagg},
    {TFD_MSG_UNMASK, STAGE_BIT(READY), tfd_proto_on_secagg},
    {TFD_MSG_GET_IDENTITY, STAGE_BIT(READY), tfd_proto_on_get_identity},
#if TFD_TEST_MESSAGES
    {TFD_MSG_INFER_TEST, STAGE_BIT(READY), on_infer_test},
#endif
};

static const tfd_route_t *find_route(uint8_t id)
{
    for (size_t i = 0; i < sizeof kRoutes / sizeof kRoutes[0]; ++i) {
        if (kRoutes[i].id == id) return &kRoutes[i];
    }
    return NULL;
}

static void handle_frame(tfd_proto_t *p, const tfd_frame_t *f)
{
    if (f->hdr.flags & (TFD_FLAG_REPLY | TFD_FLAG_UNSOLICITED)) {
        p->stats.not_request++;
        return;
    }
    if (p->have_last && f->hdr.seq == p->last_seq && f->crc == p->last_crc) {
        p->stats.replays++;
        emit(p, p->last_reply, p->last_len);
        return;
    }
    tfd_req_t req = {.frame = f, .detail = 0, .replied = 0};
    const tfd_wire_msg_t *desc = tfd_wire_find(f->hdr.msg_id);
    const tfd_route_t *route = find_route(f->hdr.msg_id);
    if (desc == NULL || route == NULL) {
        /* Unknown, compiled out, planned-but-absent, or a device-to-host id. */
        if (desc != NULL && desc->dir == TFD_DIR_D2H) {
            p->stats.not_request++;
        } else {
            p->stats.unknown++;
        }
        reply_error(p, &req, TFD_ERR_MSG_UNKNOWN, f->hdr.msg_id);
        return;
    }
    tfd_any_msg_t m;
    tfd_status_t st = tfd_wire_decode(f->hdr.msg_id, f->payload, f->len, &m, desc->native_size);
    if (st != TFD_OK) {
        p->stats.bad_length++;
        reply_error(p, &req, st, desc->fixed_bytes);
        return;
    }
    if ((route->stages & (1u << (unsigned)p->stage)) == 0) {
        p->stats.bad_state++;
        reply_error(p, &req, TFD_ERR_PROTO_STATE, (uint32_t)p->stage);
        return;
    }
    p->stats.requests++;
    p->current = f;
    st = route->fn(p, &req, &m);
    p->current = NULL;
    if (req.replied) return; /* exactly one reply per request */
    reply_error(p, &req, st != TFD_OK ? st : TFD_ERR_INTERNAL, req.detail);
}

/* ---- public API ------------------------------------------------------------------------------ */
void tfd_proto_init(tfd_proto_t *p, const tfd_app_t *app, void *app_ctx, tfd_proto_write_fn write,
                    void *write_ctx)
{
    memset(p, 0, sizeof *p);
    p->stage = TFD_STAGE_IDLE;
    p->app = app;
    p->app_ctx = app_ctx;
    p->write = write;
    p->write_ctx = write_ctx;
    p->table_crc = tfd_wire_table_crc();
    tfd_frame_decoder_init(&p->dec);
}

void tfd_proto_feed(tfd_proto_t *p, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        tfd_frame_t f;
        tfd_status_t why = TFD_OK;
        switch (tfd_frame_feed(&p->dec, data[i], &f, &why)) {
        case TFD_FRAME_READY: handle_frame(p, &f); break;
        case TFD_FRAME_DROPPED: nack_dropped(p, why); break;
        case TFD_FRAME_NONE: break;
        }
    }
}

void tfd_proto_get_stats(const tfd_proto_t *p, tfd_msg_STATS_t *out)
{
    const tfd_frame_stats_t *d = &p->dec.stats;
    memset(out, 0, sizeof *out);
    out->bytes_in = d->bytes;
    out->bytes_out = p->stats.bytes_out;
    out->frames_ok = d->frames_ok;
    out->crc_errors = d->crc_errors;
    out->cobs_errors = d->cobs_errors;
    out->oversize = d->oversize;
    out->runts = d->runts;
    out->bad_header = d->bad_header;
    out->replays = p->stats.replays;
    out->errors_sent = p->stats.errors_sent;
    out->nacks_sent = p->stats.nacks_sent;
}
