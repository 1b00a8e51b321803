/* tinyfed — the device application: the model, its private shard, and the
 * protocol, fed from the UART.
 *
 * Built by toolchain/firmware.py (build_image(..., app="main")) with the
 * generated model directory on the include path (model_data.h, the model
 * tables and shard_data.c) and the board folder (board_common.h).  Define
 * TFD_TEST_MESSAGES=1 for test images (INFER_TEST, TEST transfer purposes).
 *
 * Main loop: read whatever the UART has, feed it to the protocol (which
 * writes its replies through tfd_port_uart_write), otherwise sleep in
 * tfd_port_idle() until the next interrupt.  No allocation anywhere: the
 * arena and the protocol state are static.
 */
#include <string.h>

#include "board_common.h"
#include "model_data.h"
#include "tfd/port.h"
#include "tfd/proto.h"
#include "tfd/runtime.h"
#include "tfd/shard.h"

#ifndef TFD_FW_VERSION
#define TFD_FW_VERSION "0.1.0"
#endif

static uint8_t g_arena[TFD_MODEL_ARENA_BYTES] __attribute__((aligned(16)));
static tfd_proto_t g_proto;
static tfd_status_t g_model_status = TFD_ERR_INTERNAL;

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
}

static tfd_status_t app_eval(void *ctx, uint32_t max_samples, tfd_msg_EVAL_RESULT_t *out)
{
    (void)ctx;
    TFD_TRY(g_model_status);
    tfd_metrics_t acc = {0, 0, 0.0f};
    TFD_TRY(tfd_metrics_eval_model(&tfd_model, g_arena, tfd_shard_x, tfd_shard_y, tfd_shard_n,
                           tfd_shard_sample_bytes, max_samples, &acc));
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

static uint32_t app_millis(void *ctx)
{
    (void)ctx;
    return tfd_port_millis();
}

static void link_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    tfd_port_uart_write(data, len);
}

static const tfd_app_t kApp = {
    .info = app_info,
    .eval = app_eval,
#if TFD_TEST_MESSAGES
    .infer = app_infer,
#endif
    .millis = app_millis,
};

int main(void)
{
    tfd_port_init();
    g_model_status = tfd_model_check(&tfd_model, sizeof g_arena);
    if (g_model_status == TFD_OK && tfd_shard_sample_bytes != TFD_MODEL_INPUT_BYTES) {
        g_model_status = TFD_ERR_SHAPE;
    }
    if (g_model_status != TFD_OK) tfd_port_log(tfd_status_str(g_model_status));
    tfd_proto_init(&g_proto, &kApp, NULL, link_write, NULL);
    /* A lone delimiter: whatever the host's decoder holds is flushed. */
    const uint8_t delimiter = 0x00;
    tfd_port_uart_write(&delimiter, 1);
    for (;;) {
        uint8_t buf[64];
        const size_t n = tfd_port_uart_read(buf, sizeof buf);
        if (n > 0) {
            tfd_proto_feed(&g_proto, buf, n);
        } else {
            tfd_port_idle();
        }
    }
}
