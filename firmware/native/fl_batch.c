/* tinyfed — many in-process devices, driven without the wire (the built-in
 * simulation's fast path; compiled into the in-process device library with
 * fl_device_host.c, -DFDH_LIBRARY).
 *
 * A device here is a block the library's fdh_device_init made: an
 * fdh_device_t, whose first member is its tfd_fl_t (fl_device_host.c).  The
 * functions below make the calls the protocol layer makes for a host's
 * requests -- src/proto/proto.c (transfers) and src/proto/train_handlers.c
 * (PARAMS, TRAIN, GET_UPDATE, the SecAgg+ stages) -- on the same tfd_fl_*
 * callbacks (tfd/fl_device.h), with the same arguments, but without framing
 * the bytes: a device computes exactly what it computes behind its UART,
 * the host saves the link.  What a transfer checks on the wire (CRC-32 of a
 * payload, offsets) is checked the same way here.
 *
 * fb_secagg_many runs one SecAgg+ stage for many devices on `threads`
 * POSIX threads (each device is touched by one thread only; the device
 * code keeps no global state but the CSPRNG file, opened before the threads
 * start).  Statuses are tfd_status_t (TFD_OK = 0).
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "tfd/fl_device.h"
#include "tfd/frame.h"
#include "tfd/wire.h"

#define FB_API __attribute__((visibility("default")))
#define FB_CHUNK 1024u /* bytes per xfer_write / xfer_read call, as a board's transfers move them */

FB_API int fb_model_hash(const void *dev, uint8_t out[TFD_WIRE_HASH_LEN]);
FB_API int fb_params(void *dev, const float *params, uint32_t n_params, uint32_t round,
                     const uint8_t model_hash[TFD_WIRE_HASH_LEN], uint8_t flags);
/* TRAIN: out_u = samples, seen, steps, train_correct, eval_samples, eval_correct, elapsed_ms,
 * insns_per_sample, train_mem_bytes, sram_peak; out_f = train_loss_sum, eval_loss_sum. */
FB_API int fb_train(void *dev, uint32_t round, uint16_t epochs, uint16_t batch, float lr, float momentum,
                    float weight_decay, uint32_t seed, uint8_t schedule, uint32_t max_samples, uint32_t out_u[10],
                    float out_f[2]);
/* GET_UPDATE + MODEL_UPDATE: out_u = n_params, encoding, weight, total_len, crc32; out_f = norm, clip. */
FB_API int fb_update(void *dev, uint32_t round, uint32_t out_u[5], float out_f[2], uint8_t *payload, uint32_t cap);
/* One SecAgg+ stage; ADVERTISE_KEYS also carries the encoding (clip, frac_bits, weight_max, the
 * distributed-DP noise multiplier x 1000) and the
 * device's public weight (0: its samples) and staleness, as the stage message's fields do. */
FB_API int fb_secagg(void *dev, uint8_t msg_id, const uint8_t *body, uint32_t len, float clip, uint8_t frac_bits,
                     uint32_t weight_max, uint32_t dp_z_milli, uint32_t weight, uint16_t staleness, uint8_t *out, uint32_t cap,
                     uint32_t *out_len);
/* TEST builds only (TFD_TEST_MESSAGES): the words the device masked in MASKED_INPUT, before masking
 * (transfer SA_ENCODED: u32 round || words); a release build refuses (TFD_ERR_ARG). */
FB_API int fb_encoded(void *dev, uint32_t round, uint8_t *out, uint32_t cap, uint32_t *out_len);
FB_API void fb_secagg_many(void *const *devs, uint32_t n, uint8_t msg_id, const uint8_t *bodies,
                           const uint64_t *body_off, const uint32_t *body_len, float clip, uint8_t frac_bits,
                           uint32_t weight_max, uint32_t dp_z_milli, const uint32_t *weight, const uint16_t *staleness, uint8_t *out,
                           const uint64_t *out_off, const uint32_t *out_cap, uint32_t *out_len, int32_t *status,
                           uint32_t threads);

int fb_model_hash(const void *dev, uint8_t out[TFD_WIRE_HASH_LEN])
{
    const tfd_fl_t *fl = dev;
    if (fl->cfg.model == NULL) return TFD_ERR_BAD_MODEL;
    memcpy(out, fl->cfg.model->hash, TFD_WIRE_HASH_LEN);
    return TFD_OK;
}

/* A host -> device transfer: XFER_BEGIN, the chunks, XFER_END (commit). */
TFD_CHECK_RESULT static tfd_status_t push(void *dev, uint8_t purpose, const uint8_t *data, uint32_t len)
{
    TFD_TRY(tfd_fl_xfer_begin(dev, purpose, len));
    for (uint32_t off = 0; off < len; off += FB_CHUNK) {
        const uint32_t n = len - off < FB_CHUNK ? len - off : FB_CHUNK;
        TFD_TRY(tfd_fl_xfer_write(dev, purpose, off, data + off, n));
    }
    return tfd_fl_xfer_commit(dev, purpose, len);
}

/* A device -> host transfer: XFER_PULL (open), the reads. */
TFD_CHECK_RESULT static tfd_status_t pull(void *dev, uint8_t purpose, uint32_t arg, uint8_t *out, uint32_t cap,
                                          uint32_t *len)
{
    uint32_t total = 0;
    TFD_TRY(tfd_fl_xfer_open(dev, purpose, arg, &total));
    TFD_ENSURE(total <= cap, TFD_ERR_OVERFLOW);
    for (uint32_t off = 0; off < total; off += FB_CHUNK) {
        const uint32_t n = total - off < FB_CHUNK ? total - off : FB_CHUNK;
        TFD_TRY(tfd_fl_xfer_read(dev, purpose, off, out + off, n));
    }
    *len = total;
    return TFD_OK;
}

int fb_params(void *dev, const float *params, uint32_t n_params, uint32_t round,
              const uint8_t model_hash[TFD_WIRE_HASH_LEN], uint8_t flags)
{
    const uint8_t *bytes = (const uint8_t *)params; /* ENC_F32: little-endian binary32 (the host's layout) */
    const uint32_t len = 4u * n_params;
    TFD_TRY(push(dev, TFD_PURPOSE_MODEL_PARAMS, bytes, len));
    tfd_msg_PARAMS_t m;
    memset(&m, 0, sizeof m);
    m.round = round;
    m.n_params = n_params;
    m.encoding = TFD_WIRE_ENC_F32;
    m.flags = flags;
    m.crc32 = tfd_crc32(0, bytes, len);
    memcpy(m.model_hash, model_hash, TFD_WIRE_HASH_LEN);
    uint32_t detail = 0;
    return tfd_fl_params(dev, &m, &detail);
}

int fb_train(void *dev, uint32_t round, uint16_t epochs, uint16_t batch, float lr, float momentum,
             float weight_decay, uint32_t seed, uint8_t schedule, uint32_t max_samples, uint32_t out_u[10],
             float out_f[2])
{
    tfd_msg_TRAIN_t q;
    memset(&q, 0, sizeof q);
    q.round = round;
    q.epochs = epochs;
    q.batch = batch;
    q.lr = lr;
    q.momentum = momentum;
    q.weight_decay = weight_decay;
    q.seed = seed;
    q.schedule = schedule;
    q.max_samples = max_samples;
    tfd_msg_TRAIN_RESULT_t r;
    memset(&r, 0, sizeof r);
    uint32_t detail = 0;
    TFD_TRY(tfd_fl_train(dev, &q, &r, &detail));
    const uint32_t u[10] = {r.samples, r.seen, r.steps, r.train_correct, r.eval_samples, r.eval_correct,
                            r.elapsed_ms, r.insns_per_sample, r.train_mem_bytes, r.sram_peak};
    memcpy(out_u, u, sizeof u);
    out_f[0] = r.train_loss_sum;
    out_f[1] = r.eval_loss_sum;
    return TFD_OK;
}

int fb_update(void *dev, uint32_t round, uint32_t out_u[5], float out_f[2], uint8_t *payload, uint32_t cap)
{
    tfd_msg_GET_UPDATE_t q;
    memset(&q, 0, sizeof q);
    q.round = round;
    q.encoding = TFD_WIRE_ENC_F32;
    tfd_msg_UPDATE_t u;
    memset(&u, 0, sizeof u);
    uint32_t detail = 0, len = 0;
    TFD_TRY(tfd_fl_update(dev, &q, &u, &detail));
    TFD_TRY(pull(dev, TFD_PURPOSE_MODEL_UPDATE, round, payload, cap, &len));
    TFD_ENSURE(len == u.total_len && tfd_crc32(0, payload, len) == u.crc32, TFD_ERR_FRAME_CRC);
    const uint32_t v[5] = {u.n_params, u.encoding, u.weight, u.total_len, u.crc32};
    memcpy(out_u, v, sizeof v);
    out_f[0] = u.norm;
    out_f[1] = u.clip;
    return TFD_OK;
}

int fb_secagg(void *dev, uint8_t msg_id, const uint8_t *body, uint32_t len, float clip, uint8_t frac_bits,
              uint32_t weight_max, uint32_t dp_z_milli, uint32_t weight, uint16_t staleness, uint8_t *out,
              uint32_t cap, uint32_t *out_len)
{
    TFD_ENSURE(len >= 4u, TFD_ERR_SHAPE);
    const uint32_t round = tfd_get_u32(body); /* every SecAgg+ body starts with u32 round */
    TFD_TRY(push(dev, TFD_PURPOSE_SA_REQUEST, body, len));
    tfd_msg_ADVERTISE_KEYS_t adv;
    memset(&adv, 0, sizeof adv);
    adv.round = round;
    adv.body_len = len;
    adv.clip = clip;
    adv.frac_bits = frac_bits;
    adv.weight_max = weight_max;
    adv.dp_z_milli = dp_z_milli;
    adv.weight = weight;
    adv.staleness = staleness;
    uint32_t reply_len = 0, detail = 0;
    TFD_TRY(tfd_fl_secagg(dev, msg_id, round, len, tfd_crc32(0, body, len),
                          msg_id == TFD_MSG_ADVERTISE_KEYS ? &adv : NULL, &reply_len, &detail));
    const uint8_t purpose = msg_id == TFD_MSG_MASKED_INPUT ? TFD_PURPOSE_SA_MASKED : TFD_PURPOSE_SA_REPLY;
    TFD_TRY(pull(dev, purpose, round, out, cap, out_len));
    TFD_ENSURE(*out_len == reply_len, TFD_ERR_SHAPE);
    return TFD_OK;
}

int fb_encoded(void *dev, uint32_t round, uint8_t *out, uint32_t cap, uint32_t *out_len)
{
#if defined(TFD_TEST_MESSAGES) && TFD_TEST_MESSAGES
    return pull(dev, TFD_PURPOSE_SA_ENCODED, round, out, cap, out_len);
#else
    (void)dev, (void)round, (void)out, (void)cap;
    *out_len = 0;
    return TFD_ERR_ARG;
#endif
}

typedef struct {
    void *const *devs;
    uint32_t n;
    uint8_t msg_id;
    const uint8_t *bodies;
    const uint64_t *body_off;
    const uint32_t *body_len;
    float clip;
    uint8_t frac_bits;
    uint32_t weight_max;
    uint32_t dp_z_milli;
    const uint32_t *weight;
    const uint16_t *staleness;
    uint8_t *out;
    const uint64_t *out_off;
    const uint32_t *out_cap;
    uint32_t *out_len;
    int32_t *status;
    uint32_t next; /* next device to take (under lock) */
    pthread_mutex_t lock;
} fb_job_t;

static void run_one(fb_job_t *j, uint32_t i)
{
    j->out_len[i] = 0;
    if (j->devs[i] == NULL) {
        j->status[i] = TFD_ERR_ARG;
        return;
    }
    j->status[i] = fb_secagg(j->devs[i], j->msg_id, j->bodies + j->body_off[i], j->body_len[i], j->clip, j->frac_bits,
                             j->weight_max, j->dp_z_milli, j->weight[i], j->staleness[i], j->out + j->out_off[i], j->out_cap[i],
                             &j->out_len[i]);
}

static void *worker(void *arg)
{
    fb_job_t *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        const uint32_t i = j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->n) return NULL;
        run_one(j, i);
    }
}

void fb_secagg_many(void *const *devs, uint32_t n, uint8_t msg_id, const uint8_t *bodies, const uint64_t *body_off,
                    const uint32_t *body_len, float clip, uint8_t frac_bits, uint32_t weight_max,
                    uint32_t dp_z_milli, const uint32_t *weight, const uint16_t *staleness, uint8_t *out, const uint64_t *out_off,
                    const uint32_t *out_cap, uint32_t *out_len, int32_t *status, uint32_t threads)
{
    fb_job_t j = {devs, n, msg_id, bodies, body_off, body_len, clip, frac_bits, weight_max, dp_z_milli, weight, staleness,
                  out, out_off, out_cap, out_len, status, 0, PTHREAD_MUTEX_INITIALIZER};
    if (n == 0) return;
    /* the first device in this thread: the device code's lazily opened CSPRNG is ready before any other */
    run_one(&j, 0);
    j.next = 1;
    enum { MAX_THREADS = 64 };
    pthread_t tid[MAX_THREADS];
    uint32_t started = 0;
    const uint32_t want = threads > MAX_THREADS ? MAX_THREADS : threads;
    for (uint32_t t = 1; t < want && t < n; ++t) {
        if (pthread_create(&tid[started], NULL, worker, &j) != 0) break;
        ++started;
    }
    worker(&j);
    for (uint32_t t = 0; t < started; ++t) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.lock);
}
