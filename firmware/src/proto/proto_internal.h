/* tinyfed — what the protocol's handler files share (src/proto only; not a
 * public header).  proto.c owns the dispatcher, the stage machine and the
 * route table; handler files (train_handlers.c) implement one function per
 * request with the signature tfd_handler_fn and reply through
 * tfd_proto_reply(). */
#ifndef TFD_PROTO_INTERNAL_H
#define TFD_PROTO_INTERNAL_H

#include "tfd/proto.h"

/* Per-request context: which request is being answered. */
typedef struct {
    const tfd_frame_t *frame;
    uint32_t detail; /* ERROR.detail when the handler fails */
    uint8_t replied;
} tfd_req_t;

/* Any decoded request. */
typedef union {
#define TFD_MSG(name, id, dir, cls, gate) tfd_msg_##name##_t m_##name;
#include "tfd/wire.def"
} tfd_any_msg_t;

/* A handler sends exactly one reply, or returns a status that the dispatcher
 * turns into an ERROR reply (with req->detail). */
typedef tfd_status_t (*tfd_handler_fn)(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m);

/* Encode `msg` as message `id`, frame it as the reply to the current request,
 * send it and keep it in the reply cache. */
TFD_CHECK_RESULT tfd_status_t tfd_proto_reply(tfd_proto_t *p, tfd_req_t *req, uint8_t id,
                                              const void *msg, size_t msg_size);
TFD_CHECK_RESULT tfd_status_t tfd_proto_reply_ack(tfd_proto_t *p, tfd_req_t *req,
                                                  uint16_t xfer_id, uint32_t value);
uint32_t tfd_proto_millis(const tfd_proto_t *p);

/* Federated-training requests (train_handlers.c). */
tfd_status_t tfd_proto_on_params(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m);
tfd_status_t tfd_proto_on_train(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m);
tfd_status_t tfd_proto_on_get_update(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m);
/* The four SecAgg+ stage messages (train_handlers.c). */
tfd_status_t tfd_proto_on_secagg(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m);
tfd_status_t tfd_proto_on_get_identity(tfd_proto_t *p, tfd_req_t *req, const tfd_any_msg_t *m);

#endif /* TFD_PROTO_INTERNAL_H */
