/* tinyfed — device protocol: the federated-training requests (PARAMS, TRAIN,
 * GET_UPDATE; wire.def "federated training") and the SecAgg+ stage messages
 * (ADVERTISE_KEYS, SHARE_KEYS, MASKED_INPUT, SURVIVORS, UNMASK; "secure aggregation")
 * and GET_IDENTITY.  The protocol only routes and
 * replies; what the steps do (stage the parameters, train, build the update)
 * is the application's (tfd_app_t.params / train / update), so this file
 * links without the training engine (host loopback, protocol-only images). */
#include <string.h>

#include "proto_internal.h"

tfd_status_t tfd_proto_on_params(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    TFD_ENSURE(p->app && p->app->params, TFD_ERR_BAD_MODEL);
    const tfd_msg_PARAMS_t *q = &m->m_PARAMS;
    TFD_TRY(p->app->params(p->app_ctx, q, &req->detail));
    return tfd_proto_reply_ack(p, req, 0, q->round);
}

tfd_status_t tfd_proto_on_train(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    TFD_ENSURE(p->app && p->app->train, TFD_ERR_BAD_MODEL);
    const tfd_msg_TRAIN_t *q = &m->m_TRAIN;
    tfd_msg_TRAIN_RESULT_t r;
    memset(&r, 0, sizeof r);
    const uint32_t t0 = tfd_proto_millis(p);
    TFD_TRY(p->app->train(p->app_ctx, q, &r, &req->detail));
    r.round = q->round;
    if (r.elapsed_ms == 0) r.elapsed_ms = tfd_proto_millis(p) - t0;
    return tfd_proto_reply(p, req, TFD_MSG_TRAIN_RESULT, &r, sizeof r);
}

tfd_status_t tfd_proto_on_get_update(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    TFD_ENSURE(p->app && p->app->update, TFD_ERR_BAD_MODEL);
    const tfd_msg_GET_UPDATE_t *q = &m->m_GET_UPDATE;
    tfd_msg_UPDATE_t u;
    memset(&u, 0, sizeof u);
    TFD_TRY(p->app->update(p->app_ctx, q, &u, &req->detail));
    u.round = q->round;
    return tfd_proto_reply(p, req, TFD_MSG_UPDATE, &u, sizeof u);
}

tfd_status_t tfd_proto_on_secagg(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    TFD_ENSURE(p->app && p->app->secagg, TFD_ERR_BAD_MODEL);
    const uint8_t id = req->frame->hdr.msg_id;
    uint32_t reply_len = 0;
    uint32_t round, body_len, crc;
    const tfd_msg_ADVERTISE_KEYS_t *adv = NULL;
    switch (id) {
#define SA_FIELDS_(NAME)                \
    case TFD_MSG_##NAME:                \
        round = m->m_##NAME.round;       \
        body_len = m->m_##NAME.body_len; \
        crc = m->m_##NAME.crc32;         \
        break;
        SA_FIELDS_(ADVERTISE_KEYS)
        SA_FIELDS_(SHARE_KEYS)
        SA_FIELDS_(MASKED_INPUT)
        SA_FIELDS_(SURVIVORS)
        SA_FIELDS_(UNMASK)
#undef SA_FIELDS_
    default: return TFD_ERR_INTERNAL;
    }
    if (id == TFD_MSG_ADVERTISE_KEYS) adv = &m->m_ADVERTISE_KEYS;
    TFD_TRY(p->app->secagg(p->app_ctx, id, round, body_len, crc, adv, &reply_len, &req->detail));
    return tfd_proto_reply_ack(p, req, 0, reply_len);
}

tfd_status_t tfd_proto_on_get_identity(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m)
{
    TFD_ENSURE(p->app && p->app->identity, TFD_ERR_BAD_MODEL);
    tfd_msg_IDENTITY_t r;
    memset(&r, 0, sizeof r);
    TFD_TRY(p->app->identity(p->app_ctx, &r));
    r.nonce = m->m_GET_IDENTITY.nonce;
    return tfd_proto_reply(p, req, TFD_MSG_IDENTITY, &r, sizeof r);
}
