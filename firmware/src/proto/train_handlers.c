/* tinyfed — device protocol: the federated-training requests (PARAMS, TRAIN,
 * GET_UPDATE; wire.def "federated training").  The protocol only routes and
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
