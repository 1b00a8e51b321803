/* tinyfed — a federated-learning device compiled for the host: the same
 * protocol (src/proto), device round logic (src/fl), training engine
 * (src/train), runtime, parameter store (src/storage) and SecAgg+ client
 * (src/secagg) as a board image, with the board port replaced by host code.
 *
 * Two builds of this one file:
 *
 * 1. An executable (default) serving one device over TCP like QEMU's
 *    `-serial tcp:...,server` (host/native_device.py starts it):
 *
 *      fl_device_host --tcp PORT --shard-x FILE --shard-y FILE [--storage FILE]
 *                     [--name NAME] [--train-delay-ms MS]
 *
 *    Prints "TCP <port>" once listening and serves one connection.  Shard:
 *    FILE of n * input_bytes int8 inputs and FILE of n uint8 labels.  Storage:
 *    a host file behaving as NOR flash (erased = 0xFF, 4 KiB erase units,
 *    programming only clears bits), written through on every erase / program.
 *    --train-delay-ms makes TRAIN slower (to test the host's timeouts).
 *
 * 2. A shared library (-DFDH_LIBRARY -fPIC -shared; host/inprocess.py loads
 *    it with ctypes): any number of devices in one process, each a caller-owned
 *    block of fdh_device_size() bytes (16-byte aligned) holding the whole
 *    device state (protocol, round state machine, trainer memory, parameter
 *    buffer, SecAgg+ client).  The shard is a view: the caller keeps x / y
 *    alive for the device's lifetime.  Bytes go in with fdh_device_feed(),
 *    which runs the request to completion (TRAIN included) before it
 *    returns; the reply frames wait in the device's output buffer until
 *    fdh_device_read() takes them.  No storage (no CAP_PERSIST).
 *    Single-threaded per device; different devices may run on different
 *    threads, except that the port has one "current device" (storage), so
 *    only the executable uses storage.
 *
 * Built with the generated model directory (model_data.{c,h}) and training
 * plan (train_data.{c,h}) on the include path.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host_link.h"
#include "model_data.h"
#include "tfd/fl_device.h"
#include "tfd/port.h"
#include "tfd/proto.h"
#include "tfd/runtime.h"
#include "tfd/shard.h"
#include "train_data.h"

#define HOST_STORAGE_BYTES (256u * 1024u)
#define HOST_ERASE_UNIT 4096u
#define MAX_SHARD_BYTES (16u << 20)
#define FDH_NAME_MAX 32u
#define FDH_OUT_BYTES (8u * TFD_MAX_WIRE_FRAME) /* replies of one fed burst (a window of requests) */

#ifdef FDH_LIBRARY
#define FDH_API __attribute__((visibility("default")))
#else
#define FDH_API
#endif

/* One device: everything a board holds in RAM for federated learning. */
typedef struct fdh_device {
    tfd_fl_t fl; /* first: the tfd_fl_* callbacks get the device as their tfd_fl_t */
    tfd_proto_t proto;
    uint8_t train_mem[TFD_TRAIN_MEM_BYTES] __attribute__((aligned(16)));
    float buf[TFD_TRAIN_N_PARAMS];
    const int8_t *x;
    const uint8_t *y;
    uint32_t n;
    tfd_status_t train_status;
    long train_delay_ms;
    char name[FDH_NAME_MAX];
    /* the link: the executable writes to a socket, the library into out[] */
    int out_fd;
    uint32_t out_len;
    uint32_t out_lost; /* reply bytes that did not fit out[] (never expected) */
    uint8_t out[FDH_OUT_BYTES];
    /* storage (executable only): a file as NOR flash */
    uint8_t *flash;
    FILE *flash_file;
    /* identity (tfd/identity.h): its record is the caller's and must outlive the device */
    tfd_identity_t ident;
} fdh_device_t;

/* Give device d its identity record (tfd/identity.h) in two pieces: the head
 * (TFD_ID_HEADER_BYTES: id, seed, fleet key) and the manifest, which devices of one
 * process may share (the caller keeps both alive); returns the record's check (0: usable). */
FDH_API int fdh_device_set_identity(fdh_device_t *d, const uint8_t *head, size_t head_len, const uint8_t *manifest,
                                    size_t manifest_len);
FDH_API size_t fdh_device_size(void);
FDH_API uint32_t fdh_n_params(void);
FDH_API uint32_t fdh_sample_bytes(void);
FDH_API size_t fdh_train_mem_bytes(void);
FDH_API int fdh_device_init(fdh_device_t *d, const int8_t *x, const uint8_t *y, uint32_t n, const char *name);
FDH_API size_t fdh_device_feed(fdh_device_t *d, const uint8_t *data, size_t len);
FDH_API size_t fdh_device_read(fdh_device_t *d, uint8_t *out, size_t cap);
FDH_API uint32_t fdh_device_lost(const fdh_device_t *d);
FDH_API int fdh_device_stage(const fdh_device_t *d);
FDH_API const char *fdh_status_str(int status);

/* The port's storage functions have no context: they act on the device being served. */
static fdh_device_t *g_cur;

/* ---- storage: a file as NOR flash (executable) --------------------------------------------- */
size_t tfd_port_storage_size(void) { return g_cur && g_cur->flash ? HOST_STORAGE_BYTES : 0u; }
size_t tfd_port_storage_erase_unit(void) { return HOST_ERASE_UNIT; }

static int in_bounds(uint32_t offset, size_t len)
{
    return offset <= HOST_STORAGE_BYTES && len <= HOST_STORAGE_BYTES - offset;
}

static tfd_status_t write_through(fdh_device_t *d, uint32_t offset, size_t len)
{
    if (!d->flash_file) return TFD_OK;
    TFD_ENSURE(fseek(d->flash_file, (long)offset, SEEK_SET) == 0, TFD_ERR_STORAGE);
    TFD_ENSURE(fwrite(d->flash + offset, 1, len, d->flash_file) == len, TFD_ERR_STORAGE);
    TFD_ENSURE(fflush(d->flash_file) == 0, TFD_ERR_STORAGE);
    return TFD_OK;
}

tfd_status_t tfd_port_storage_read(uint32_t offset, void *out, size_t len)
{
    TFD_ENSURE(g_cur != NULL && g_cur->flash != NULL, TFD_ERR_STORAGE);
    TFD_ENSURE(in_bounds(offset, len) && (out != NULL || len == 0), TFD_ERR_ARG);
    memcpy(out, g_cur->flash + offset, len);
    return TFD_OK;
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    TFD_ENSURE(g_cur != NULL && g_cur->flash != NULL, TFD_ERR_STORAGE);
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    TFD_ENSURE(offset % HOST_ERASE_UNIT == 0 && len % HOST_ERASE_UNIT == 0, TFD_ERR_ARG);
    memset(g_cur->flash + offset, 0xFF, len);
    return write_through(g_cur, offset, len);
}

tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_ENSURE(g_cur != NULL && g_cur->flash != NULL, TFD_ERR_STORAGE);
    TFD_ENSURE(in_bounds(offset, len) && (data != NULL || len == 0), TFD_ERR_ARG);
    const uint8_t *src = data;
    uint8_t *flash = g_cur->flash;
    for (size_t i = 0; i < len; ++i) TFD_ENSURE((flash[offset + i] & src[i]) == src[i], TFD_ERR_STORAGE);
    memcpy(flash + offset, src, len);
    return write_through(g_cur, offset, len);
}

/* ---- the application ---------------------------------------------------------------------- */
static uint32_t app_millis(void *ctx)
{
    (void)ctx;
    return tfd_host_millis();
}

static void app_info(void *ctx, tfd_msg_INFO_t *info)
{
    const fdh_device_t *d = ctx;
    tfd_wire_set_str(info->board, sizeof info->board, d->name);
    tfd_wire_set_str(info->fw_version, sizeof info->fw_version, "0.1.0-host");
    tfd_wire_set_str(info->model_name, sizeof info->model_name, tfd_model.name);
    memcpy(info->model_hash, tfd_model.hash, sizeof info->model_hash);
    info->sram_used = (uint32_t)sizeof *d;
    info->arena_bytes = tfd_model.arena_bytes;
    info->shard_size = d->n;
    info->num_classes = (uint16_t)TFD_MODEL_OUTPUT_ELEMS;
    info->input_bytes = (uint16_t)TFD_MODEL_INPUT_BYTES;
    info->output_bytes = (uint16_t)TFD_MODEL_OUTPUT_BYTES;
    info->caps |= TFD_CAP_MODEL;
    if (d->train_status == TFD_OK) info->caps |= TFD_WIRE_CAP_TRAINING;
    if (d->train_status == TFD_OK && d->fl.store_ok) info->caps |= TFD_WIRE_CAP_PERSIST;
    if (TFD_FL_SECURE_ONLY) info->caps |= TFD_WIRE_CAP_SECURE_ONLY;
}

static tfd_status_t app_eval(void *ctx, uint32_t max_samples, tfd_msg_EVAL_RESULT_t *out)
{
    fdh_device_t *d = ctx;
    TFD_TRY(d->train_status);
    tfd_metrics_t acc;
    TFD_TRY(tfd_fl_eval(&d->fl, max_samples, &acc));
    out->samples = acc.samples;
    out->correct = acc.correct;
    out->loss_sum = acc.loss_sum;
    return TFD_OK;
}

static tfd_status_t app_train(void *ctx, const tfd_msg_TRAIN_t *m, tfd_msg_TRAIN_RESULT_t *out,
                              uint32_t *detail)
{
    const fdh_device_t *d = ctx;
    if (d->train_delay_ms > 0) {
        struct timespec ts = {d->train_delay_ms / 1000, (d->train_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return tfd_fl_train(ctx, m, out, detail);
}

static void link_write(void *ctx, const uint8_t *data, size_t len)
{
    fdh_device_t *d = ctx;
    if (d->out_fd >= 0) {
        tfd_host_write_all(d->out_fd, data, len);
        return;
    }
    const size_t room = sizeof d->out - d->out_len;
    const size_t take = len < room ? len : room;
    memcpy(d->out + d->out_len, data, take);
    d->out_len += (uint32_t)take;
    d->out_lost += (uint32_t)(len - take);
}

/* secure aggregation's randomness: the host's CSPRNG */
static tfd_status_t host_random(uint8_t *out, size_t len)
{
    static FILE *f;
    if (f == NULL) f = fopen("/dev/urandom", "rb");
    return f != NULL && fread(out, 1, len, f) == len ? TFD_OK : TFD_ERR_INTERNAL;
}

static const tfd_app_t kApp = {
    .info = app_info,
    .eval = app_eval,
    .millis = app_millis,
    .xfer_begin = tfd_fl_xfer_begin,
    .xfer_write = tfd_fl_xfer_write,
    .xfer_commit = tfd_fl_xfer_commit,
    .xfer_open = tfd_fl_xfer_open,
    .xfer_read = tfd_fl_xfer_read,
    .params = tfd_fl_params,
    .train = app_train,
    .update = tfd_fl_update,
    .secagg = tfd_fl_secagg,
    .identity = tfd_fl_identity,
};

/* Bind the device to its shard (and storage, if d->flash is set), initialise
 * the round state machine and the protocol.  Returns the training status
 * (the device still answers HELLO / INFO without training). */
static tfd_status_t device_setup(fdh_device_t *d, const int8_t *x, const uint8_t *y, uint32_t n, const char *name)
{
    d->x = x;
    d->y = y;
    d->n = n;
    d->out_len = 0;
    d->out_lost = 0;
    snprintf(d->name, sizeof d->name, "%s", name ? name : "host-device");
    g_cur = d;
    tfd_status_t st = tfd_model_check(&tfd_model, TFD_MODEL_ARENA_BYTES);
    if (st == TFD_OK) {
        const tfd_fl_config_t cfg = {
            .model = &tfd_model, .plan = &tfd_train_plan,
            .train_mem = d->train_mem, .train_mem_bytes = sizeof d->train_mem,
            .buf = d->buf, .buf_len = TFD_TRAIN_N_PARAMS,
            .x = x, .y = y, .n = n, .sample_bytes = TFD_MODEL_INPUT_BYTES,
            .use_storage = d->flash != NULL, .storage_base = 0,
            .counter = NULL, .sram_peak = NULL, .millis = tfd_host_millis, .random = host_random,
            .identity = &d->ident, .identity_status = TFD_ERR_POLICY, /* until fdh_device_set_identity */
        };
        st = tfd_fl_init(&d->fl, &cfg);
    }
    d->train_status = st;
    tfd_proto_init(&d->proto, &kApp, d, link_write, d);
    return st;
}

/* ---- the library -------------------------------------------------------------------------- */
size_t fdh_device_size(void) { return sizeof(fdh_device_t); }
uint32_t fdh_n_params(void) { return TFD_TRAIN_N_PARAMS; }
uint32_t fdh_sample_bytes(void) { return TFD_MODEL_INPUT_BYTES; }
size_t fdh_train_mem_bytes(void) { return TFD_TRAIN_MEM_BYTES; }
const char *fdh_status_str(int status) { return tfd_status_str((tfd_status_t)status); }

int fdh_device_init(fdh_device_t *d, const int8_t *x, const uint8_t *y, uint32_t n, const char *name)
{
    if (d == NULL || x == NULL || y == NULL || n == 0) return (int)TFD_ERR_ARG;
    if (((uintptr_t)d & 15u) != 0) return (int)TFD_ERR_ARG;
    memset(d, 0, sizeof *d);
    d->out_fd = -1;
    return (int)device_setup(d, x, y, n, name);
}

size_t fdh_device_feed(fdh_device_t *d, const uint8_t *data, size_t len)
{
    g_cur = d;
    tfd_proto_feed(&d->proto, data, len);
    return d->out_len;
}

size_t fdh_device_read(fdh_device_t *d, uint8_t *out, size_t cap)
{
    const size_t take = d->out_len < cap ? d->out_len : cap;
    memcpy(out, d->out, take);
    memmove(d->out, d->out + take, d->out_len - take);
    d->out_len -= (uint32_t)take;
    return take;
}

uint32_t fdh_device_lost(const fdh_device_t *d) { return d->out_lost; }

int fdh_device_set_identity(fdh_device_t *d, const uint8_t *head, size_t head_len, const uint8_t *manifest,
                            size_t manifest_len)
{
    if (d == NULL) return (int)TFD_ERR_ARG;
    tfd_sa_client_wipe(&d->fl.sa); /* a new identity: no round of the old one goes on */
    d->fl.sa_init = 0;
    const tfd_status_t st = tfd_identity_init_parts(&d->ident, head, head_len, manifest, manifest_len);
    d->fl.cfg.identity_status = st;
    return (int)st;
}

int fdh_device_stage(const fdh_device_t *d) { return (int)d->fl.stage; }

#ifndef FDH_LIBRARY
/* ---- the executable ------------------------------------------------------------------------ */
static fdh_device_t g_dev __attribute__((aligned(16)));
static uint8_t g_flash[HOST_STORAGE_BYTES];

static void storage_open(fdh_device_t *d, const char *path)
{
    d->flash = g_flash;
    memset(g_flash, 0xFF, sizeof g_flash);
    d->flash_file = fopen(path, "r+b");
    if (d->flash_file && fread(g_flash, 1, sizeof g_flash, d->flash_file) == sizeof g_flash) return;
    if (d->flash_file) fclose(d->flash_file);
    memset(g_flash, 0xFF, sizeof g_flash);
    d->flash_file = fopen(path, "w+b");
    if (d->flash_file && write_through(d, 0, sizeof g_flash) != TFD_OK) {
        fclose(d->flash_file);
        d->flash_file = NULL;
    }
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *buf = malloc(MAX_SHARD_BYTES);
    *len = buf ? fread(buf, 1, MAX_SHARD_BYTES, f) : 0;
    fclose(f);
    return buf;
}

static int serve_tcp(fdh_device_t *d, int port)
{
    const int s = tfd_host_accept_tcp(port);
    if (s < 0) return 2;
    d->out_fd = s;
    const uint8_t delimiter = 0x00;
    link_write(d, &delimiter, 1);
    uint8_t buf[512];
    for (;;) {
        const ssize_t n = read(s, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        tfd_proto_feed(&d->proto, buf, (size_t)n);
    }
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    int port = -1;
    const char *xs = NULL, *ys = NULL, *storage = NULL, *name = "host-device", *identity = NULL;
    long delay = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tcp") == 0) port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--shard-x") == 0) xs = argv[i + 1];
        else if (strcmp(argv[i], "--shard-y") == 0) ys = argv[i + 1];
        else if (strcmp(argv[i], "--storage") == 0) storage = argv[i + 1];
        else if (strcmp(argv[i], "--name") == 0) name = argv[i + 1];
        else if (strcmp(argv[i], "--train-delay-ms") == 0) delay = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--identity") == 0) identity = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port < 0 || !xs || !ys) {
        fprintf(stderr, "usage: %s --tcp PORT --shard-x FILE --shard-y FILE [--storage FILE] [--name N]\n",
                argv[0]);
        return 2;
    }
    size_t nx = 0, ny = 0;
    int8_t *x = read_file(xs, &nx);
    uint8_t *y = read_file(ys, &ny);
    if (!x || !y || ny == 0 || nx != ny * (size_t)TFD_MODEL_INPUT_BYTES) {
        fprintf(stderr, "shard: %zu input bytes for %zu labels (input %u bytes)\n", nx, ny,
                (unsigned)TFD_MODEL_INPUT_BYTES);
        return 2;
    }
    fdh_device_t *d = &g_dev;
    memset(d, 0, sizeof *d);
    d->out_fd = -1;
    d->train_delay_ms = delay;
    if (storage) storage_open(d, storage);
    const tfd_status_t st = device_setup(d, x, y, (uint32_t)ny, name);
    if (st != TFD_OK) fprintf(stderr, "training disabled: %s\n", tfd_status_str(st));
    if (d->fl.restored.found) fprintf(stderr, "restored parameters of round %u\n", (unsigned)d->fl.restored.round);
    size_t rec_len = 0;
    uint8_t *rec = identity ? read_file(identity, &rec_len) : NULL; /* kept for the device's life */
    if (identity) {
        const int ist = rec && rec_len >= TFD_ID_HEADER_BYTES
                            ? fdh_device_set_identity(d, rec, TFD_ID_HEADER_BYTES, rec + TFD_ID_HEADER_BYTES,
                                                      rec_len - TFD_ID_HEADER_BYTES)
                            : (int)TFD_ERR_MSG_LENGTH;
        if (ist != 0) fprintf(stderr, "no device identity (secure aggregation refused): %s\n",
                              tfd_status_str((tfd_status_t)ist));
    }
    const int rc = serve_tcp(d, port);
    if (d->flash_file) fclose(d->flash_file);
    tfd_identity_wipe(&d->ident);
    free(rec);
    free(x);
    free(y);
    return rc;
}
#endif /* FDH_LIBRARY */
