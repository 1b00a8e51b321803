/* tinyfed — the device side of the host<->device protocol.
 *
 * Bytes from the link go in through tfd_proto_feed(); replies go out through
 * the write callback given to tfd_proto_init() (tfd_port_uart_write on a
 * board, a pipe or socket in host builds).  The device is a pure responder:
 * every request frame gets exactly one reply frame with the same sequence
 * number, so the host drives every exchange, its timeouts and its retries.
 * A request that repeats the previous one (same seq, same frame CRC) is
 * answered from the reply cache without running its handler again
 * (idempotent retransmission).
 *
 * The protocol is an explicit state machine (ARCHITECTURE.md rule 8): stages are
 * the constants of TFD_STAGE_LIST, all state lives in tfd_proto_t, each
 * message has one handler and a set of stages it is valid in, and every stage
 * change goes through a checked transition table (src/proto/proto.c).
 *
 * What the firmware application plugs in is tfd_app_t: identity, evaluation
 * on the private shard, test inference, transfer sinks/sources, and the
 * federated-training steps (PARAMS / TRAIN / GET_UPDATE).
 *
 * Memory: tfd_proto_t holds every buffer (decoder, payload scratch, reply
 * cache): about 3 x TFD_MAX_FRAME bytes; the caller allocates it statically.
 */
#ifndef TFD_PROTO_H
#define TFD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/frame.h"
#include "tfd/status.h"
#include "tfd/wire.h"

/* ---- stages -------------------------------------------------------------------- */
#define TFD_STAGE_LIST(X)                                                     \
    X(IDLE, 0)    /* no session: only HELLO and PING */                       \
    X(READY, 1)   /* session open: INFO, EVAL, INFER_TEST, transfers start */ \
    X(XFER_RX, 2) /* receiving a host->device transfer */                     \
    X(XFER_TX, 3) /* sending a device->host transfer */

typedef enum {
#define TFD_STAGE_ENUM_(name, value) TFD_STAGE_##name = (value),
    TFD_STAGE_LIST(TFD_STAGE_ENUM_)
#undef TFD_STAGE_ENUM_
    TFD_STAGE_COUNT
} tfd_stage_t;

const char *tfd_stage_name(tfd_stage_t stage);

/* ---- the application interface ----------------------------------------------------- */
typedef struct tfd_app {
    /* Identity and budget: board, fw_version, model_name, model_hash,
     * flash_used, sram_used, arena_bytes, shard_size, num_classes,
     * input_bytes, output_bytes and TFD_CAP_MODEL.  The protocol fills the
     * rest (nonce, versions, table CRC, max_payload, TFD_CAP_TEST_MESSAGES). */
    void (*info)(void *ctx, tfd_msg_INFO_t *info);

    /* Evaluate on the private shard (first max_samples samples, 0 = all):
     * fill samples, correct, loss_sum.  NULL: no model linked. */
    TFD_CHECK_RESULT tfd_status_t (*eval)(void *ctx, uint32_t max_samples,
                                          tfd_msg_EVAL_RESULT_t *out);

    /* Test inference (only called when TFD_TEST_MESSAGES): one int8 input of
     * in_len bytes -> output written to out[cap], *out_len bytes. */
    TFD_CHECK_RESULT tfd_status_t (*infer)(void *ctx, const int8_t *input, size_t in_len,
                                           int8_t *out, size_t cap, size_t *out_len);

    /* Host->device transfer sink for purposes the protocol does not handle
     * itself (NULL: none).  Chunks arrive in order, exactly once (the
     * protocol takes only the new part of a chunk that overlaps what it has);
     * xfer_commit is called after the whole-payload CRC matched. */
    TFD_CHECK_RESULT tfd_status_t (*xfer_begin)(void *ctx, uint8_t purpose, uint32_t total_len);
    TFD_CHECK_RESULT tfd_status_t (*xfer_write)(void *ctx, uint8_t purpose, uint32_t offset,
                                                const uint8_t *data, size_t len);
    TFD_CHECK_RESULT tfd_status_t (*xfer_commit)(void *ctx, uint8_t purpose, uint32_t total_len);

    /* Device->host transfer source (NULL: none).  xfer_read may be called
     * for any offset, any number of times (the host re-reads on errors). */
    TFD_CHECK_RESULT tfd_status_t (*xfer_open)(void *ctx, uint8_t purpose, uint32_t arg,
                                               uint32_t *total_len);
    TFD_CHECK_RESULT tfd_status_t (*xfer_read)(void *ctx, uint8_t purpose, uint32_t offset,
                                               uint8_t *out, size_t len);

    /* Milliseconds (for uptime and elapsed times); NULL: reported as 0. */
    uint32_t (*millis)(void *ctx);

    /* Federated training (src/proto/train_handlers.c; NULL: the requests
     * answer ERROR BAD_MODEL).  The MODEL_PARAMS / MODEL_UPDATE payloads go
     * through the transfer callbacks above.  `detail` (preset to 0) becomes
     * ERROR.detail when the callback fails (e.g. the device's n_params).
     *   params: commit the staged MODEL_PARAMS payload (checks hash, size,
     *           encoding, CRC; persists with TFD_WIRE_PARAMS_PERSIST).
     *   train:  local training from the committed parameters; fill `out`
     *           (round and elapsed_ms are filled by the protocol).
     *   update: describe the update of `m->round` (fills `out`). */
    TFD_CHECK_RESULT tfd_status_t (*params)(void *ctx, const tfd_msg_PARAMS_t *m, uint32_t *detail);
    TFD_CHECK_RESULT tfd_status_t (*train)(void *ctx, const tfd_msg_TRAIN_t *m,
                                           tfd_msg_TRAIN_RESULT_t *out, uint32_t *detail);
    TFD_CHECK_RESULT tfd_status_t (*update)(void *ctx, const tfd_msg_GET_UPDATE_t *m,
                                            tfd_msg_UPDATE_t *out, uint32_t *detail);

    /* Secure aggregation (wire.def "secure aggregation"; NULL: ERROR
     * BAD_MODEL).  Run SecAgg+ stage `msg_id` (TFD_MSG_ADVERTISE_KEYS ..
     * TFD_MSG_UNMASK) of `round` on the staged SA_REQUEST body (body_len
     * bytes, CRC-32 crc32); `adv` is the decoded ADVERTISE_KEYS (encoding
     * parameters) for that stage, else NULL.  Set *reply_len to the bytes of
     * the reply the host then pulls (SA_REPLY, or SA_MASKED after
     * MASKED_INPUT). */
    TFD_CHECK_RESULT tfd_status_t (*secagg)(void *ctx, uint8_t msg_id, uint32_t round, uint32_t body_len,
                                            uint32_t crc32, const tfd_msg_ADVERTISE_KEYS_t *adv,
                                            uint32_t *reply_len, uint32_t *detail);

    /* GET_IDENTITY (NULL: ERROR BAD_MODEL): fill the IDENTITY reply (all but the
     * nonce) -- which manifest entry this device is (tfd/identity.h). */
    TFD_CHECK_RESULT tfd_status_t (*identity)(void *ctx, tfd_msg_IDENTITY_t *out);
} tfd_app_t;

/* Where reply bytes go. */
typedef void (*tfd_proto_write_fn)(void *ctx, const uint8_t *data, size_t len);

/* ---- counters ------------------------------------------------------------------------- */
typedef struct {
    uint32_t bytes_out;
    uint32_t requests;    /* valid request frames handled */
    uint32_t replays;     /* repeated requests answered from the reply cache */
    uint32_t errors_sent; /* ERROR replies */
    uint32_t nacks_sent;  /* NACK replies and unsolicited NACKs for dropped frames */
    uint32_t unknown;     /* unknown (or compiled-out) message ids */
    uint32_t not_request; /* device-to-host ids or REPLY flag received */
    uint32_t bad_length;  /* payload length not allowed by the table */
    uint32_t bad_state;   /* message not valid in the current stage */
} tfd_proto_stats_t;

/* ---- state ------------------------------------------------------------------------------ */
typedef struct {
    uint16_t id;
    uint8_t purpose;
    uint8_t builtin; /* handled by the protocol (TEST purposes), not the app */
    uint32_t total;
    uint32_t next;   /* RX: next expected offset */
    uint32_t crc;    /* RX: running CRC of bytes [0, next) */
    uint32_t expect; /* RX: CRC announced in XFER_BEGIN */
    uint32_t arg;    /* TX: XFER_PULL argument */
} tfd_xfer_state_t;

typedef struct tfd_proto {
    tfd_stage_t stage;
    const tfd_app_t *app;
    void *app_ctx;
    tfd_proto_write_fn write;
    void *write_ctx;
    uint32_t table_crc;
    tfd_xfer_state_t xfer;
    /* reply cache: the last request's seq and frame CRC, and the encoded reply */
    uint8_t have_last;
    uint16_t last_seq;
    uint32_t last_crc;
    size_t last_len;
    uint8_t last_reply[TFD_MAX_WIRE_FRAME];
    uint8_t payload[TFD_WIRE_MAX_PAYLOAD]; /* reply payload scratch */
    uint8_t small[32];                     /* unsolicited NACK and BUSY frames */
    const tfd_frame_t *current;            /* the request being handled (NULL between requests) */
    tfd_proto_stats_t stats;
    tfd_frame_decoder_t dec;
} tfd_proto_t;

void tfd_proto_init(tfd_proto_t *p, const tfd_app_t *app, void *app_ctx,
                    tfd_proto_write_fn write, void *write_ctx);

/* Feed bytes received from the link; replies are written before it returns. */
void tfd_proto_feed(tfd_proto_t *p, const uint8_t *data, size_t len);

/* Called by the application while it handles a request, right before work
 * that keeps the device from listening for up to max_ms (a flash erase or
 * program stalls the CPU on the real chips): sends BUSY (wire.def) for the
 * current request, so the host waits for the reply instead of sending.
 * Nothing is sent between requests or when max_ms is 0. */
void tfd_proto_busy(tfd_proto_t *p, uint32_t max_ms);

/* Fill a STATS message from the decoder and protocol counters. */
void tfd_proto_get_stats(const tfd_proto_t *p, tfd_msg_STATS_t *out);

/* Deterministic test pattern of the TEST_PATTERN purpose: byte i of a payload
 * of `len` bytes (the host checks the same formula). */
static inline uint8_t tfd_test_pattern_byte(uint32_t i, uint32_t len)
{
    return (uint8_t)((i * 7u + len) & 0xFFu);
}

#endif /* TFD_PROTO_H */
