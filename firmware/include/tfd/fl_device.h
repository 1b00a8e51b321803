/* tinyfed — the device side of a federated round: what PARAMS, TRAIN and
 * GET_UPDATE (and the MODEL_PARAMS / MODEL_UPDATE transfers) do on a device.
 *
 * It binds the training engine (tfd/train.h), the private shard and the
 * parameter store (tfd/param_store.h) to the protocol's application callbacks
 * (tfd/proto.h, tfd_app_t): an application sets
 *
 *     .xfer_begin = tfd_fl_xfer_begin, .xfer_write = tfd_fl_xfer_write,
 *     .xfer_commit = tfd_fl_xfer_commit, .xfer_open = tfd_fl_xfer_open,
 *     .xfer_read = tfd_fl_xfer_read, .params = tfd_fl_params,
 *     .train = tfd_fl_train, .update = tfd_fl_update, .secagg = tfd_fl_secagg
 *
 * with ctx = its tfd_fl_t.  firmware/src/app/main.c does on the boards,
 * firmware/native/fl_device_host.c on the build machine.
 *
 * Round state (an explicit stage machine, ARCHITECTURE.md rule 8; every change goes
 * through a checked transition table in src/fl/fl_device.c):
 *
 *   EMPTY ──MODEL_PARAMS begin──► STAGING ──commit──► STAGED ──PARAMS──► GLOBAL
 *   GLOBAL ──TRAIN──► TRAINED (update ready; GET_UPDATE / MODEL_UPDATE read it)
 *   any stage ──MODEL_PARAMS begin──► STAGING (a new round starts over)
 *
 * One buffer of n_params floats (`buf`) holds, in turn, the staged bytes, the
 * global parameters of the round and, after TRAIN, the update: the DELTA
 * trained - global.  The update hook (tfd_fl_update_hook) is where a delta
 * is clipped / quantized / masked before it leaves the device: today it only
 * measures the L2 norm and clips nothing (clip = 0).
 *
 * Persistence: with TFD_WIRE_PARAMS_PERSIST, PARAMS saves the global
 * parameters (A/B slots + CRC); tfd_fl_init loads the newest good copy for
 * this model, so a board keeps the federated model across resets.
 */
#ifndef TFD_FL_DEVICE_H
#define TFD_FL_DEVICE_H

/* TFD_FL_SECURE_ONLY=1 (`tinyfed build --secure-only`): the plain update path
 * (GET_UPDATE, transfer MODEL_UPDATE) is refused with TFD_ERR_POLICY, so an
 * update leaves the device only masked, through SecAgg+; INFO.caps carries
 * CAP_SECURE_ONLY.  0 (default): both paths (--no-secure for comparison). */
#ifndef TFD_FL_SECURE_ONLY
#define TFD_FL_SECURE_ONLY 0
#endif

#include <stddef.h>
#include <stdint.h>

#include "tfd/identity.h"
#include "tfd/param_store.h"
#include "tfd/proto.h"
#include "tfd/secagg_client.h"
#include "tfd/status.h"
#include "tfd/train.h"

#define TFD_FL_STAGE_LIST(X)                                            \
    X(EMPTY, 0)   /* no parameters from the host in this boot */        \
    X(STAGING, 1) /* MODEL_PARAMS transfer under way */                 \
    X(STAGED, 2)  /* transfer complete, CRC checked, not committed */   \
    X(GLOBAL, 3)  /* PARAMS committed: buf = trainer params = global */ \
    X(TRAINED, 4) /* TRAIN done: buf = delta, update described */

typedef enum {
#define TFD_FL_STAGE_ENUM_(name, value) TFD_FL_##name = (value),
    TFD_FL_STAGE_LIST(TFD_FL_STAGE_ENUM_)
#undef TFD_FL_STAGE_ENUM_
    TFD_FL_STAGE_COUNT
} tfd_fl_stage_t;

const char *tfd_fl_stage_name(tfd_fl_stage_t stage);

/* What the application hands over (all memory is the caller's). */
typedef struct {
    const tfd_model_t *model;
    const tfd_train_plan_t *plan;
    uint8_t *train_mem;        /* >= tfd_trainer_mem_bytes(model, plan), 16-byte aligned */
    size_t train_mem_bytes;
    float *buf;                /* buf_len >= plan->n_params floats */
    uint32_t buf_len;
    const int8_t *x;           /* the private shard */
    const uint8_t *y;
    uint32_t n;
    uint32_t sample_bytes;
    uint8_t use_storage;       /* 1: persist / restore through tfd/param_store.h */
    uint32_t storage_base;     /* where the parameter store starts (erase-unit aligned) */
    /* optional measurements (NULL: not reported) */
    uint64_t (*counter)(void);    /* instructions (QEMU -icount) or cycles since boot */
    uint32_t (*sram_peak)(void);  /* static RAM + stack high-water mark, bytes */
    uint32_t (*millis)(void);
    /* secure aggregation: random bytes (tfd_port_random on a board); NULL:
     * the SecAgg+ messages are refused (ERROR BAD_MODEL) */
    tfd_status_t (*random)(uint8_t *out, size_t len);
    /* this device's identity (tfd/identity.h; checked by the caller with
     * tfd_identity_init); NULL or not ok: SecAgg+ is refused (ERROR POLICY) */
    const tfd_identity_t *identity;
    tfd_status_t identity_status; /* why there is no usable identity (reported by GET_IDENTITY) */
    /* called right before the parameters are saved (PARAMS with PARAMS_PERSIST)
     * with the bytes that will be erased and programmed: a board whose flash
     * stalls the CPU announces it (tfd_proto_busy); NULL: nothing */
    void (*storage_busy)(void *ctx, uint32_t erase_bytes, uint32_t write_bytes);
    void *storage_busy_ctx;
} tfd_fl_config_t;

typedef struct {
    tfd_fl_config_t cfg;
    tfd_trainer_t trainer;
    tfd_fl_stage_t stage;
    uint32_t n_params;
    uint32_t round;            /* round of the committed (or restored) parameters */
    uint32_t staged;           /* bytes of the MODEL_PARAMS transfer received */
    /* the update of `round` (TRAINED) */
    uint32_t weight;           /* samples trained on */
    float norm;
    float clip;
    tfd_param_store_t store;
    uint8_t store_ok;
    tfd_param_meta_t restored; /* what tfd_fl_init loaded (found = 0: initial parameters) */
    tfd_status_t store_status; /* last storage result */
    /* secure aggregation (SecAgg+): the client and its request / reply bodies */
    tfd_sa_client_t sa;
    uint8_t sa_init;
    uint8_t sa_in_ok;          /* a complete SA_REQUEST body is staged (used once) */
    uint32_t sa_in_len, sa_staged;
    uint32_t sa_out_len;       /* SA_REPLY bytes (0: none) */
    uint32_t sa_round;         /* round of the last stage run */
    uint32_t sa_words;         /* words of the masked input (SA_MASKED) */
    uint8_t sa_masked;         /* this trained update was masked once: never again, never plain (MASKED_INPUT) */
    uint8_t unmasked_valid;    /* unmasked_digest is set */
    uint8_t params_digest[16]; /* BLAKE2b-128 of the global parameters committed by PARAMS */
    uint8_t unmasked_digest[16]; /* ... of those whose masked update this device answered UNMASK for */
    uint32_t sa_weight;        /* the cohort invitation's public weight (ADVERTISE_KEYS.weight; 0: samples) */
    uint16_t sa_staleness;     /* and the staleness it was given for */
    uint8_t sa_in[TFD_WIRE_SA_BODY_MAX];
    uint8_t sa_out[TFD_WIRE_SA_BODY_MAX];
} tfd_fl_t;

/* Bind, initialise the trainer (parameters = plan->init_params, then the
 * newest stored copy for this model if there is one). */
TFD_CHECK_RESULT tfd_status_t tfd_fl_init(tfd_fl_t *fl, const tfd_fl_config_t *cfg);

/* Evaluate the current parameters on the first max_samples samples of the
 * shard (0 = all), as EVAL does when training is linked in. */
TFD_CHECK_RESULT tfd_status_t tfd_fl_eval(tfd_fl_t *fl, uint32_t max_samples, tfd_metrics_t *acc);

/* The update hook: called once per TRAIN on the delta; sets *norm (L2 norm of
 * what is sent) and *clip (bound applied, 0 = none).  No clipping yet. */
void tfd_fl_update_hook(tfd_fl_t *fl, float *delta, uint32_t n, float *norm, float *clip);

/* tfd_app_t callbacks (ctx = tfd_fl_t *). */
TFD_CHECK_RESULT tfd_status_t tfd_fl_xfer_begin(void *ctx, uint8_t purpose, uint32_t total_len);
TFD_CHECK_RESULT tfd_status_t tfd_fl_xfer_write(void *ctx, uint8_t purpose, uint32_t offset,
                                                const uint8_t *data, size_t len);
TFD_CHECK_RESULT tfd_status_t tfd_fl_xfer_commit(void *ctx, uint8_t purpose, uint32_t total_len);
TFD_CHECK_RESULT tfd_status_t tfd_fl_xfer_open(void *ctx, uint8_t purpose, uint32_t arg,
                                               uint32_t *total_len);
TFD_CHECK_RESULT tfd_status_t tfd_fl_xfer_read(void *ctx, uint8_t purpose, uint32_t offset,
                                               uint8_t *out, size_t len);
TFD_CHECK_RESULT tfd_status_t tfd_fl_params(void *ctx, const tfd_msg_PARAMS_t *m, uint32_t *detail);
TFD_CHECK_RESULT tfd_status_t tfd_fl_train(void *ctx, const tfd_msg_TRAIN_t *m,
                                           tfd_msg_TRAIN_RESULT_t *out, uint32_t *detail);
/* The SecAgg+ stages (tfd_app_t.secagg): the update of the TRAINED round is
 * what MASKED_INPUT masks, weighted by the public weight the cohort invitation
 * (ADVERTISE_KEYS.weight) named -- at most SA_WEIGHT_ONE x the samples trained
 * on (ERROR ARG otherwise), or those samples when it named 0 -- which is also
 * the summed scalar `weight`.  SA_REQUEST / SA_REPLY / SA_MASKED go through
 * the transfer callbacks above. */
TFD_CHECK_RESULT tfd_status_t tfd_fl_secagg(void *ctx, uint8_t msg_id, uint32_t round, uint32_t body_len,
                                            uint32_t crc32, const tfd_msg_ADVERTISE_KEYS_t *adv,
                                            uint32_t *reply_len, uint32_t *detail);
TFD_CHECK_RESULT tfd_status_t tfd_fl_update(void *ctx, const tfd_msg_GET_UPDATE_t *m,
                                            tfd_msg_UPDATE_t *out, uint32_t *detail);
/* GET_IDENTITY (tfd_app_t.identity): this device's manifest entry. */
TFD_CHECK_RESULT tfd_status_t tfd_fl_identity(void *ctx, tfd_msg_IDENTITY_t *out);

#endif /* TFD_FL_DEVICE_H */
