/* tinyfed — benchmark app: instructions per inference under QEMU -icount.
 *
 * Runs the generated model `tfd_model` (model_data.h/.c from the emitter) on
 * TFD_BENCH_RUNS inputs: the rows of a generated `bench_inputs.h` in the model
 * directory if there is one (TFD_BENCH_N_INPUTS rows of TFD_MODEL_INPUT_BYTES
 * bytes in `tfd_bench_inputs`), else an all-zero-point input.  Each inference
 * is timed with the SysTick instruction counter (boards/common/bench_counter.h)
 * and the results are logged over semihosting as key=value lines:
 *   bench_infer_board=..., model=..., runs=, insns_min=, insns_max=,
 *   insns_mean=, clocks_min=, icount_shift=, arena_bytes=, flash_used=, ...
 * Then each run once more layer by layer (tfd_invoke_range(i, i + 1), the
 * same counter around each layer, minus the cost of an empty
 * tfd_invoke_range(i, i) call: range_overhead_insns=): layers=N and per layer
 * layer<i>_op=<op id>, layer<i>_insns=<mean instructions>; the difference to
 * insns_mean is the interpreter's own work between layers.
 * Exit 0 on success, 1 if the model check or an inference fails.
 * Run: bench/icount.py infer MODEL_DIR (host/emulator.py run_to_exit with
 * icount_shift, which passes --icount-shift=N). */
#include <stdint.h>
#include <string.h>

#include "bench_counter.h"
#include "board_common.h"
#include "model_data.h"
#include "tfd/port.h"
#include "tfd/runtime.h"

#if defined(__has_include)
#if __has_include("bench_inputs.h")
#include "bench_inputs.h"
#define TFD_BENCH_HAVE_INPUTS 1
#endif
#endif

#ifndef TFD_BENCH_RUNS
#define TFD_BENCH_RUNS 8
#endif

static uint8_t g_arena[TFD_MODEL_ARENA_BYTES] __attribute__((aligned(16)));

static void fill_input(int run)
{
    int8_t *in = tfd_input_ptr(&tfd_model, g_arena, 0);
#if defined(TFD_BENCH_HAVE_INPUTS)
    memcpy(in, tfd_bench_inputs[run % TFD_BENCH_N_INPUTS], TFD_MODEL_INPUT_BYTES);
#else
    (void)run;
    memset(in, (int8_t)TFD_MODEL_INPUT_ZERO_POINT, TFD_MODEL_INPUT_BYTES);
#endif
}

int main(void)
{
    tfd_port_init();
    tfd_bench_counter_init();
    tfd_board_log_str("bench_infer_board", tfd_port_board_name());
    tfd_board_log_str("model", tfd_model.name);

    const tfd_status_t check = tfd_model_check(&tfd_model, sizeof g_arena);
    if (check != TFD_OK) {
        tfd_board_log_str("error", tfd_status_str(check));
        return 1;
    }
    const uint64_t overhead = tfd_bench_overhead_clocks();
    uint64_t min_clocks = UINT64_MAX, max_clocks = 0, total_clocks = 0;
    uint32_t checksum = 0;
    for (int run = 0; run < TFD_BENCH_RUNS; ++run) {
        fill_input(run);
        int failed_layer = -1;
        const uint64_t c0 = tfd_bench_clocks();
        const tfd_status_t status = tfd_invoke(&tfd_model, g_arena, &failed_layer);
        const uint64_t c1 = tfd_bench_clocks();
        if (status != TFD_OK) {
            tfd_board_log_str("error", tfd_status_str(status));
            tfd_board_log_u64("failed_layer", (uint64_t)failed_layer);
            return 1;
        }
        const uint64_t clocks = c1 - c0 - overhead;
        if (clocks < min_clocks) min_clocks = clocks;
        if (clocks > max_clocks) max_clocks = clocks;
        total_clocks += clocks;
        const uint8_t *out = tfd_output_ptr(&tfd_model, g_arena, 0);
        for (uint32_t i = 0; i < TFD_MODEL_OUTPUT_BYTES; ++i) checksum = checksum * 31u + out[i];
    }
    /* Per layer: the same inputs again, one layer per measured region. */
    static uint64_t layer_clocks[TFD_MODEL_NUM_LAYERS];
    uint64_t range_clocks = 0;
    for (int run = 0; run < TFD_BENCH_RUNS; ++run) {
        const uint64_t e0 = tfd_bench_clocks();
        const tfd_status_t empty = tfd_invoke_range(&tfd_model, g_arena, 0, 0, NULL);
        const uint64_t e1 = tfd_bench_clocks();
        if (empty != TFD_OK) return 1;
        range_clocks += e1 - e0 - overhead;
    }
    range_clocks /= TFD_BENCH_RUNS;
    tfd_board_log_u64("range_overhead_insns", tfd_bench_clocks_to_insns(range_clocks));
    for (int run = 0; run < TFD_BENCH_RUNS; ++run) {
        fill_input(run);
        for (int i = 0; i < (int)tfd_model.n_layers && i < TFD_MODEL_NUM_LAYERS; ++i) {
            const uint64_t c0 = tfd_bench_clocks();
            const tfd_status_t status = tfd_invoke_range(&tfd_model, g_arena, i, i + 1, NULL);
            const uint64_t c1 = tfd_bench_clocks();
            if (status != TFD_OK) {
                tfd_board_log_str("error", tfd_status_str(status));
                tfd_board_log_u64("failed_layer", (uint64_t)i);
                return 1;
            }
            const uint64_t spent = c1 - c0 - overhead;
            layer_clocks[i] += spent > range_clocks ? spent - range_clocks : 0;
        }
    }
    tfd_board_log_u64("layers", TFD_MODEL_NUM_LAYERS);
    for (int i = 0; i < TFD_MODEL_NUM_LAYERS; ++i) {
        char key[24];
        char num[21];
        const size_t n = tfd_board_u64_dec((uint64_t)i, num);
        memcpy(key, "layer", 5);
        memcpy(key + 5, num, n);
        memcpy(key + 5 + n, "_op", 4);
        tfd_board_log_u64(key, tfd_model.layers[i].op);
        memcpy(key + 5 + n, "_insns", 7);
        tfd_board_log_u64(key, tfd_bench_clocks_to_insns(layer_clocks[i] / TFD_BENCH_RUNS));
    }

    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    tfd_board_log_u64("runs", TFD_BENCH_RUNS);
#if defined(TFD_BENCH_HAVE_INPUTS)
    tfd_board_log_u64("inputs", TFD_BENCH_N_INPUTS);
#else
    tfd_board_log_u64("inputs", 0);
#endif
    tfd_board_log_u64("icount_shift", (uint64_t)(int64_t)tfd_bench_icount_shift());
    tfd_board_log_u64("clocks_min", min_clocks);
    tfd_board_log_u64("clocks_max", max_clocks);
    tfd_board_log_u64("insns_min", tfd_bench_clocks_to_insns(min_clocks));
    tfd_board_log_u64("insns_max", tfd_bench_clocks_to_insns(max_clocks));
    tfd_board_log_u64("insns_mean", tfd_bench_clocks_to_insns(total_clocks / TFD_BENCH_RUNS));
    tfd_board_log_u64("output_checksum", checksum);
    tfd_board_log_u64("arena_bytes", TFD_MODEL_ARENA_BYTES);
    tfd_board_log_u64("flash_used", mem.flash_used);
    tfd_board_log_u64("flash_size", mem.flash_size);
    tfd_board_log_u64("ram_used", mem.ram_used);
    tfd_board_log_u64("ram_size", mem.ram_size);
    return 0;
}
