/* tinyfed — benchmark app: instructions per training sample vs per inference
 * under QEMU -icount, and training SRAM, for one model + training plan.
 *
 * Needs the generated model_data.{h,c} and train_data.{h,c} in the model
 * directory, and `bench_train_data.h` there with TFD_BENCH_N samples
 * (`tfd_bench_x`, TFD_BENCH_N x TFD_MODEL_INPUT_BYTES int8) and labels
 * (`tfd_bench_y`).  Measures, with the SysTick instruction counter
 * (boards/common/bench_counter.h):
 *   insns_infer       one int8 inference (tfd_invoke, the whole model)
 *   insns_predict     one float forward of the tail with the trained parameters
 *                     (int8 prefix + dequantize + float tail)
 *   insns_train       one training sample (forward + backward + its share of
 *                     the optimizer step): tfd_trainer_fit over TFD_BENCH_EPOCHS
 *                     epochs with batch TFD_BENCH_BATCH, divided by the samples
 *   loss_before_u / loss_after_u   mean cross-entropy on the samples, in 1e-6 nats
 *   params_fnv        FNV-1a (32-bit) of the trained parameters' bytes (two
 *                     builds of the engine train the same bits iff equal)
 * and logs them over semihosting as key=value lines; exit 0 on success, 1 on a
 * failed init / inference / training.  Instruction counts, not cycles.
 * Run: bench/training.py (builds one image per plan, runs it with -icount). */
#include <stdint.h>
#include <string.h>

#include "bench_counter.h"
#include "bench_train_data.h"
#include "board_common.h"
#include "model_data.h"
#include "tfd/port.h"
#include "tfd/runtime.h"
#include "tfd/train.h"
#include "train_data.h"

#ifndef TFD_BENCH_EPOCHS
#define TFD_BENCH_EPOCHS 2
#endif
#ifndef TFD_BENCH_BATCH
#define TFD_BENCH_BATCH 8
#endif
#ifndef TFD_BENCH_LR_MILLI
#define TFD_BENCH_LR_MILLI 50
#endif

/* One block for everything: the inference arena is its first part. */
static uint8_t g_mem[TFD_TRAIN_MEM_BYTES] __attribute__((aligned(16)));
static tfd_trainer_t g_trainer;

static int fail(const char *what, tfd_status_t status)
{
    tfd_board_log_str("error_in", what);
    tfd_board_log_str("error", tfd_status_str(status));
    return 1;
}

static uint64_t loss_micro(float loss_sum, uint32_t n)
{
    const float mean = n ? loss_sum / (float)n : 0.0f;
    return mean > 0.0f ? (uint64_t)(mean * 1.0e6f) : 0u;
}

static uint32_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = (const uint8_t *)p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 16777619u;
    return h;
}

int main(void)
{
    tfd_port_init();
    tfd_bench_counter_init();
    tfd_board_log_str("bench_train_board", tfd_port_board_name());
    tfd_board_log_str("model", tfd_model.name);
    tfd_board_log_str("scheme", TFD_TRAIN_SCHEME);

    tfd_status_t st = tfd_trainer_init(&g_trainer, &tfd_model, &tfd_train_plan, g_mem, sizeof g_mem);
    if (st != TFD_OK) return fail("init", st);
    const uint64_t overhead = tfd_bench_overhead_clocks();

    /* int8 inference on the same memory (the region is the model's arena) */
    uint64_t infer = 0;
    for (uint32_t i = 0; i < TFD_BENCH_N; ++i) {
        memcpy(tfd_input_ptr(&tfd_model, g_mem, 0), tfd_bench_x[i], TFD_MODEL_INPUT_BYTES);
        const uint64_t c0 = tfd_bench_clocks();
        st = tfd_invoke(&tfd_model, g_mem, NULL);
        infer += tfd_bench_clocks() - c0 - overhead;
        if (st != TFD_OK) return fail("invoke", st);
    }

    /* float forward with the current parameters */
    static float logits[TFD_TRAIN_N_LOGITS];
    uint64_t predict = 0;
    for (uint32_t i = 0; i < TFD_BENCH_N; ++i) {
        const uint64_t c0 = tfd_bench_clocks();
        st = tfd_trainer_predict(&g_trainer, tfd_bench_x[i], logits, TFD_TRAIN_N_LOGITS);
        predict += tfd_bench_clocks() - c0 - overhead;
        if (st != TFD_OK) return fail("predict", st);
    }

    tfd_eval_acc_t before = {0};
    st = tfd_trainer_eval(&g_trainer, &tfd_bench_x[0][0], tfd_bench_y, TFD_BENCH_N, TFD_MODEL_INPUT_BYTES, &before);
    if (st != TFD_OK) return fail("eval", st);

    const tfd_train_cfg_t cfg = {
        .lr = (float)TFD_BENCH_LR_MILLI / 1000.0f,
        .momentum = 0.9f,
        .weight_decay = 0.0f,
        .epochs = TFD_BENCH_EPOCHS,
        .batch = TFD_BENCH_BATCH,
        .seed = 1,
        .schedule = TFD_LR_COSINE,
        .max_samples = 0,
    };
    tfd_train_stats_t stats;
    const uint64_t c0 = tfd_bench_clocks();
    st = tfd_trainer_fit(&g_trainer, &cfg, &tfd_bench_x[0][0], tfd_bench_y, TFD_BENCH_N,
                         TFD_MODEL_INPUT_BYTES, &stats);
    const uint64_t train = tfd_bench_clocks() - c0 - overhead;
    if (st != TFD_OK) return fail("fit", st);

    tfd_eval_acc_t after = {0};
    st = tfd_trainer_eval(&g_trainer, &tfd_bench_x[0][0], tfd_bench_y, TFD_BENCH_N, TFD_MODEL_INPUT_BYTES, &after);
    if (st != TFD_OK) return fail("eval", st);

    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    tfd_board_log_u64("icount_shift", (uint64_t)(int64_t)tfd_bench_icount_shift());
    tfd_board_log_u64("samples", stats.samples);
    tfd_board_log_u64("steps", stats.steps);
    tfd_board_log_u64("insns_infer", tfd_bench_clocks_to_insns(infer / TFD_BENCH_N));
    tfd_board_log_u64("insns_predict", tfd_bench_clocks_to_insns(predict / TFD_BENCH_N));
    tfd_board_log_u64("insns_train", tfd_bench_clocks_to_insns(train / (stats.samples ? stats.samples : 1u)));
    tfd_board_log_u64("loss_before_u", loss_micro(before.loss_sum, before.samples));
    tfd_board_log_u64("loss_after_u", loss_micro(after.loss_sum, after.samples));
    tfd_board_log_u64("params_fnv", fnv1a(tfd_trainer_params(&g_trainer),
                                           (size_t)tfd_trainer_n_params(&g_trainer) * sizeof(float)));
    tfd_board_log_u64("correct_before", before.correct);
    tfd_board_log_u64("correct_after", after.correct);
    tfd_board_log_u64("n_params", TFD_TRAIN_N_PARAMS);
    tfd_board_log_u64("train_mem_bytes", TFD_TRAIN_MEM_BYTES);
    tfd_board_log_u64("arena_bytes", TFD_MODEL_ARENA_BYTES);
    tfd_board_log_u64("flash_used", mem.flash_used);
    tfd_board_log_u64("ram_used", mem.ram_used);
    tfd_board_log_u64("ram_size", mem.ram_size);
    return 0;
}
