/* tinyfed — a federated-learning device compiled for the host: the same
 * protocol (src/proto), device round logic (src/fl), training engine
 * (src/train), runtime and parameter store (src/storage) as a board image,
 * with the board port replaced by host code, served over TCP like QEMU's
 * `-serial tcp:...,server` (host/hostdevice.py starts it).
 *
 *   fl_device_host --tcp PORT --shard-x FILE --shard-y FILE [--storage FILE]
 *                  [--name NAME] [--train-delay-ms MS]
 *
 * Prints "TCP <port>" once listening and serves one connection.
 * Shard: FILE of n * input_bytes int8 inputs and FILE of n uint8 labels (the
 * private shard stays on this "device"; only aggregates and deltas leave).
 * Storage: a host file behaving as NOR flash (erased = 0xFF, 4 KiB erase
 * units, programming only clears bits), created on first use, written
 * through on every erase / program.  --train-delay-ms makes TRAIN slower
 * (to test the host's timeouts).
 *
 * Built with the generated model directory (model_data.{c,h}, train_data.{c,h})
 * on the include path.
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

static uint8_t g_arena[TFD_MODEL_ARENA_BYTES] __attribute__((aligned(16)));
static uint8_t g_train_mem[TFD_TRAIN_MEM_BYTES] __attribute__((aligned(16)));
static float g_buf[TFD_TRAIN_N_PARAMS];
static tfd_fl_t g_fl;
static tfd_proto_t g_proto;
static int g_out_fd = -1;
static const char *g_name = "host-device";
static int8_t *g_x;
static uint8_t *g_y;
static uint32_t g_n;
static long g_train_delay_ms;
static tfd_status_t g_train_status = TFD_ERR_INTERNAL;

/* ---- storage: a file as NOR flash --------------------------------------------------------- */
static uint8_t g_flash[HOST_STORAGE_BYTES];
static FILE *g_flash_file;

size_t tfd_port_storage_size(void) { return HOST_STORAGE_BYTES; }
size_t tfd_port_storage_erase_unit(void) { return HOST_ERASE_UNIT; }

static int in_bounds(uint32_t offset, size_t len)
{
    return offset <= HOST_STORAGE_BYTES && len <= HOST_STORAGE_BYTES - offset;
}

static tfd_status_t write_through(uint32_t offset, size_t len)
{
    if (!g_flash_file) return TFD_OK;
    TFD_ENSURE(fseek(g_flash_file, (long)offset, SEEK_SET) == 0, TFD_ERR_STORAGE);
    TFD_ENSURE(fwrite(g_flash + offset, 1, len, g_flash_file) == len, TFD_ERR_STORAGE);
    TFD_ENSURE(fflush(g_flash_file) == 0, TFD_ERR_STORAGE);
    return TFD_OK;
}

tfd_status_t tfd_port_storage_read(uint32_t offset, void *out, size_t len)
{
    TFD_ENSURE(in_bounds(offset, len) && (out != NULL || len == 0), TFD_ERR_ARG);
    memcpy(out, g_flash + offset, len);
    return TFD_OK;
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    TFD_ENSURE(offset % HOST_ERASE_UNIT == 0 && len % HOST_ERASE_UNIT == 0, TFD_ERR_ARG);
    memset(g_flash + offset, 0xFF, len);
    return write_through(offset, len);
}

tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_ENSURE(in_bounds(offset, len) && (data != NULL || len == 0), TFD_ERR_ARG);
    const uint8_t *src = data;
    for (size_t i = 0; i < len; ++i) TFD_ENSURE((g_flash[offset + i] & src[i]) == src[i], TFD_ERR_STORAGE);
    memcpy(g_flash + offset, src, len);
    return write_through(offset, len);
}

static void storage_open(const char *path)
{
    memset(g_flash, 0xFF, sizeof g_flash);
    if (!path) return;
    g_flash_file = fopen(path, "r+b");
    if (g_flash_file && fread(g_flash, 1, sizeof g_flash, g_flash_file) == sizeof g_flash) return;
    if (g_flash_file) fclose(g_flash_file);
    memset(g_flash, 0xFF, sizeof g_flash);
    g_flash_file = fopen(path, "w+b");
    if (g_flash_file && write_through(0, sizeof g_flash) != TFD_OK) {
        fclose(g_flash_file);
        g_flash_file = NULL;
    }
}

/* ---- the application ---------------------------------------------------------------------- */
static uint32_t app_millis(void *ctx)
{
    (void)ctx;
    return tfd_host_millis();
}

static void app_info(void *ctx, tfd_msg_INFO_t *info)
{
    (void)ctx;
    tfd_wire_set_str(info->board, sizeof info->board, g_name);
    tfd_wire_set_str(info->fw_version, sizeof info->fw_version, "0.1.0-host");
    tfd_wire_set_str(info->model_name, sizeof info->model_name, tfd_model.name);
    memcpy(info->model_hash, tfd_model.hash, sizeof info->model_hash);
    info->sram_used = (uint32_t)(sizeof g_arena + sizeof g_train_mem + sizeof g_buf + sizeof g_proto);
    info->arena_bytes = tfd_model.arena_bytes;
    info->shard_size = g_n;
    info->num_classes = (uint16_t)TFD_MODEL_OUTPUT_ELEMS;
    info->input_bytes = (uint16_t)TFD_MODEL_INPUT_BYTES;
    info->output_bytes = (uint16_t)TFD_MODEL_OUTPUT_BYTES;
    info->caps |= TFD_CAP_MODEL;
    if (g_train_status == TFD_OK) info->caps |= TFD_WIRE_CAP_TRAINING;
    if (g_train_status == TFD_OK && g_fl.store_ok) info->caps |= TFD_WIRE_CAP_PERSIST;
    if (TFD_FL_SECURE_ONLY) info->caps |= TFD_WIRE_CAP_SECURE_ONLY;
}

static tfd_status_t app_eval(void *ctx, uint32_t max_samples, tfd_msg_EVAL_RESULT_t *out)
{
    (void)ctx;
    TFD_TRY(g_train_status);
    tfd_metrics_t acc;
    TFD_TRY(tfd_fl_eval(&g_fl, max_samples, &acc));
    out->samples = acc.samples;
    out->correct = acc.correct;
    out->loss_sum = acc.loss_sum;
    return TFD_OK;
}

static tfd_status_t app_train(void *ctx, const tfd_msg_TRAIN_t *m, tfd_msg_TRAIN_RESULT_t *out,
                              uint32_t *detail)
{
    if (g_train_delay_ms > 0) {
        struct timespec ts = {g_train_delay_ms / 1000, (g_train_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return tfd_fl_train(ctx, m, out, detail);
}

static void link_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    tfd_host_write_all(g_out_fd, data, len);
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
};

/* ---- main ---------------------------------------------------------------------------------- */
static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *buf = malloc(MAX_SHARD_BYTES);
    *len = buf ? fread(buf, 1, MAX_SHARD_BYTES, f) : 0;
    fclose(f);
    return buf;
}

static int serve_tcp(int port)
{
    const int s = tfd_host_accept_tcp(port);
    if (s < 0) return 2;
    g_out_fd = s;
    const uint8_t delimiter = 0x00;
    link_write(NULL, &delimiter, 1);
    uint8_t buf[512];
    for (;;) {
        const ssize_t n = read(s, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        tfd_proto_feed(&g_proto, buf, (size_t)n);
    }
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    int port = -1;
    const char *xs = NULL, *ys = NULL, *storage = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tcp") == 0) port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--shard-x") == 0) xs = argv[i + 1];
        else if (strcmp(argv[i], "--shard-y") == 0) ys = argv[i + 1];
        else if (strcmp(argv[i], "--storage") == 0) storage = argv[i + 1];
        else if (strcmp(argv[i], "--name") == 0) g_name = argv[i + 1];
        else if (strcmp(argv[i], "--train-delay-ms") == 0) g_train_delay_ms = atol(argv[i + 1]);
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
    g_x = read_file(xs, &nx);
    g_y = read_file(ys, &ny);
    if (!g_x || !g_y || ny == 0 || nx != ny * (size_t)TFD_MODEL_INPUT_BYTES) {
        fprintf(stderr, "shard: %zu input bytes for %zu labels (input %u bytes)\n", nx, ny,
                (unsigned)TFD_MODEL_INPUT_BYTES);
        return 2;
    }
    g_n = (uint32_t)ny;
    storage_open(storage);
    tfd_status_t st = tfd_model_check(&tfd_model, sizeof g_arena);
    if (st == TFD_OK) {
        const tfd_fl_config_t cfg = {
            .model = &tfd_model, .plan = &tfd_train_plan,
            .train_mem = g_train_mem, .train_mem_bytes = sizeof g_train_mem,
            .buf = g_buf, .buf_len = TFD_TRAIN_N_PARAMS,
            .x = g_x, .y = g_y, .n = g_n, .sample_bytes = TFD_MODEL_INPUT_BYTES,
            .use_storage = storage != NULL, .storage_base = 0,
            .counter = NULL, .sram_peak = NULL, .millis = tfd_host_millis, .random = host_random,
        };
        st = tfd_fl_init(&g_fl, &cfg);
    }
    g_train_status = st;
    if (st != TFD_OK) fprintf(stderr, "training disabled: %s\n", tfd_status_str(st));
    if (g_fl.restored.found) fprintf(stderr, "restored parameters of round %u\n", (unsigned)g_fl.restored.round);
    tfd_proto_init(&g_proto, &kApp, &g_fl, link_write, NULL);
    const int rc = serve_tcp(port);
    if (g_flash_file) fclose(g_flash_file);
    free(g_x);
    free(g_y);
    return rc;
}
