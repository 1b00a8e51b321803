/* tinyfed — the device application: the model, its private shard, and the
 * protocol, fed from the UART.
 *
 * Built by toolchain/image/firmware.py (build_image(..., app="main")) with the
 * generated model directory on the include path (model_data.h, the model
 * tables and shard_data.c) and the board folder (board_common.h).  Define
 * TFD_TEST_MESSAGES=1 for test images (INFER_TEST, TEST transfer purposes).
 *
 * Main loop: read whatever the UART has, feed it to the protocol (which
 * writes its replies through tfd_port_uart_write), otherwise sleep in
 * tfd_port_idle() until the next interrupt.  No allocation anywhere: the
 * arena and the protocol state are static.
 *
 * Federated training is linked in when the generated training plan
 * (train_data.h / train_data.c from toolchain/training/emit.py) is in the model
 * directory: then PARAMS / TRAIN / GET_UPDATE and the MODEL_* transfers work
 * (src/fl/fl_device.c), EVAL evaluates the current (trained) parameters, and
 * the parameters of the last round are kept in persistent storage (A/B slots)
 * and restored at boot.  Without it the image answers those requests with
 * ERROR BAD_MODEL and EVAL runs the int8 model.
 */
#include <string.h>

#include "bench_counter.h"
#include "board_common.h"
#include "model_data.h"
#include "stack_mark.h"
#include "tfd/port.h"
#include "tfd/proto.h"
#include "tfd/runtime.h"
#include "tfd/shard.h"
#include "uart_link.h"

#if defined(__has_include)
#if __has_include("train_data.h")
#define TFD_APP_TRAINING 1
#endif
#endif
#ifndef TFD_APP_TRAINING
#define TFD_APP_TRAINING 0
#endif

#if TFD_APP_TRAINING
#include "tfd/fl_device.h"
#include "train_data.h"
#endif

#ifndef TFD_FW_VERSION
#define TFD_FW_VERSION "0.1.0"
#endif

static uint8_t g_arena[TFD_MODEL_ARENA_BYTES] __attribute__((aligned(16)));
static tfd_proto_t g_proto;
static tfd_status_t g_model_status = TFD_ERR_INTERNAL;

#if TFD_APP_TRAINING
static uint8_t g_train_mem[TFD_TRAIN_MEM_BYTES] __attribute__((aligned(16)));
static float g_fl_buf[TFD_TRAIN_N_PARAMS];
static tfd_fl_t g_fl;
static tfd_status_t g_train_status = TFD_ERR_INTERNAL;
#endif

#if TFD_APP_TRAINING
/* ---- stack high-water mark: the stack below the boot frame is painted ---------------------- */
#define STACK_MARGIN 256u /* bytes below the boot frame left unpainted */

/* Static RAM (.data + .bss) plus the stack high-water mark. */
static uint32_t sram_peak(void)
{
    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    return mem.ram_used - mem.stack_size + tfd_stack_peak();
}

static uint64_t insn_counter(void)
{
    return tfd_bench_icount();
}

static uint32_t fl_millis(void)
{
    return tfd_port_millis();
}

/* Before a save: tell the host how long the flash will keep us deaf (BUSY). */
static void app_storage_busy(void *ctx, uint32_t erase_bytes, uint32_t write_bytes)
{
    tfd_proto_busy((tfd_proto_t *)ctx, tfd_port_storage_busy_ms(erase_bytes, write_bytes));
}
#endif

static void app_info(void *ctx, tfd_msg_INFO_t *info)
{
    (void)ctx;
    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    tfd_wire_set_str(info->board, sizeof info->board, tfd_port_board_name());
    tfd_wire_set_str(info->fw_version, sizeof info->fw_version, TFD_FW_VERSION);
    tfd_wire_set_str(info->model_name, sizeof info->model_name, tfd_model.name);
    memcpy(info->model_hash, tfd_model.hash, sizeof info->model_hash);
    info->flash_used = mem.flash_used;
    info->sram_used = mem.ram_used;
    info->arena_bytes = tfd_model.arena_bytes;
    info->shard_size = tfd_shard_n;
    info->num_classes = (uint16_t)TFD_MODEL_OUTPUT_ELEMS;
    info->input_bytes = (uint16_t)TFD_MODEL_INPUT_BYTES;
    info->output_bytes = (uint16_t)TFD_MODEL_OUTPUT_BYTES;
    if (g_model_status == TFD_OK) info->caps |= TFD_CAP_MODEL;
#if TFD_APP_TRAINING
    if (g_train_status == TFD_OK) info->caps |= TFD_WIRE_CAP_TRAINING;
    if (g_train_status == TFD_OK && g_fl.store_ok) info->caps |= TFD_WIRE_CAP_PERSIST;
    if (TFD_FL_SECURE_ONLY) info->caps |= TFD_WIRE_CAP_SECURE_ONLY;
#endif
}

static tfd_status_t app_eval(void *ctx, uint32_t max_samples, tfd_msg_EVAL_RESULT_t *out)
{
    (void)ctx;
    TFD_TRY(g_model_status);
    tfd_metrics_t acc = {0, 0, 0.0f};
#if TFD_APP_TRAINING
    if (g_train_status == TFD_OK) {
        TFD_TRY(tfd_fl_eval(&g_fl, max_samples, &acc)); /* the current (trained) parameters */
    } else
#endif
    {
        TFD_TRY(tfd_metrics_eval_model(&tfd_model, g_arena, tfd_shard_x, tfd_shard_y, tfd_shard_n,
                                       tfd_shard_sample_bytes, max_samples, &acc));
    }
    out->samples = acc.samples;
    out->correct = acc.correct;
    out->loss_sum = acc.loss_sum;
    return TFD_OK;
}

#if TFD_TEST_MESSAGES
static tfd_status_t app_infer(void *ctx, const int8_t *input, size_t in_len, int8_t *out,
                              size_t cap, size_t *out_len)
{
    (void)ctx;
    TFD_TRY(g_model_status);
    TFD_ENSURE(in_len == TFD_MODEL_INPUT_BYTES, TFD_ERR_SHAPE);
    TFD_ENSURE(cap >= TFD_MODEL_OUTPUT_BYTES, TFD_ERR_SHAPE);
    memcpy(tfd_input_ptr(&tfd_model, g_arena, 0), input, in_len);
    TFD_TRY(tfd_invoke(&tfd_model, g_arena, NULL));
    memcpy(out, tfd_output_ptr(&tfd_model, g_arena, 0), TFD_MODEL_OUTPUT_BYTES);
    *out_len = TFD_MODEL_OUTPUT_BYTES;
    return TFD_OK;
}
#endif

static const tfd_app_t kApp = {
    .info = app_info,
    .eval = app_eval,
#if TFD_TEST_MESSAGES
    .infer = app_infer,
#endif
    .millis = tfd_uart_link_millis,
#if TFD_APP_TRAINING
    .xfer_begin = tfd_fl_xfer_begin,
    .xfer_write = tfd_fl_xfer_write,
    .xfer_commit = tfd_fl_xfer_commit,
    .xfer_open = tfd_fl_xfer_open,
    .xfer_read = tfd_fl_xfer_read,
    .params = tfd_fl_params,
    .train = tfd_fl_train,
    .update = tfd_fl_update,
    .secagg = tfd_fl_secagg,
    .identity = tfd_fl_identity,
#endif
};

#if TFD_APP_TRAINING
static tfd_identity_t g_identity; /* from the record linked into this image (identity_data.c) */

static void training_init(void)
{
    /* the device key and the fleet manifest, checked (signature included) before use */
    const tfd_status_t id_status = tfd_identity_init(&g_identity, tfd_identity_blob, tfd_identity_blob_len);
    if (id_status != TFD_OK) {
        tfd_port_log("no device identity (secure aggregation refused): ");
        tfd_port_log(tfd_status_str(id_status));
    }
    const tfd_fl_config_t cfg = {
        .model = &tfd_model, .plan = &tfd_train_plan,
        .train_mem = g_train_mem, .train_mem_bytes = sizeof g_train_mem,
        .buf = g_fl_buf, .buf_len = sizeof g_fl_buf / sizeof g_fl_buf[0],
        .x = tfd_shard_x, .y = tfd_shard_y, .n = tfd_shard_n, .sample_bytes = tfd_shard_sample_bytes,
        .use_storage = 1, .storage_base = 0,
        .counter = tfd_bench_icount_shift() >= 0 ? insn_counter : NULL,
        .sram_peak = sram_peak, .millis = fl_millis, .random = tfd_port_random,
        .storage_busy = app_storage_busy, .storage_busy_ctx = &g_proto,
        .identity = &g_identity, .identity_status = id_status,
    };
    g_train_status = tfd_fl_init(&g_fl, &cfg);
    if (g_train_status != TFD_OK) {
        tfd_port_log("training disabled: ");
        tfd_port_log(tfd_status_str(g_train_status));
    } else if (g_fl.store_status != TFD_OK) {
        tfd_port_log("parameter store: ");
        tfd_port_log(tfd_status_str(g_fl.store_status));
    } else if (g_fl.restored.found) {
        tfd_port_log("restored trained parameters from storage\n");
    }
}
#endif

int main(void)
{
#if TFD_APP_TRAINING
    tfd_stack_paint(STACK_MARGIN);
#endif
    tfd_port_init();
#if TFD_APP_TRAINING
    if (tfd_bench_icount_shift() >= 0) tfd_bench_counter_init(); /* QEMU -icount: count instructions */
#endif
    g_model_status = tfd_model_check(&tfd_model, sizeof g_arena);
    if (g_model_status == TFD_OK && tfd_shard_sample_bytes != TFD_MODEL_INPUT_BYTES) {
        g_model_status = TFD_ERR_SHAPE;
    }
    if (g_model_status != TFD_OK) tfd_port_log(tfd_status_str(g_model_status));
#if TFD_APP_TRAINING
    if (g_model_status == TFD_OK) training_init();
    tfd_proto_init(&g_proto, &kApp, &g_fl, tfd_uart_link_write, NULL);
#else
    tfd_proto_init(&g_proto, &kApp, NULL, tfd_uart_link_write, NULL);
#endif
    tfd_uart_link_serve(&g_proto);
}
