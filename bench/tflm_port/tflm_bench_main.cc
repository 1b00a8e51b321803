// tinyfed bench — TFLM reference-kernel benchmark image (bench/tflm_compare.py).
//
// Runs the embedded .tflite (tflm_bench_model.h, generated per model under
// build/bench-tflm/) through TFLM's MicroInterpreter with a
// MicroMutableOpResolver holding just the model's ops (TFLM's reference
// kernels), on the same inputs as tinyfed's bench_infer (bench_inputs.h, one
// generated file used by both images).  Each Invoke() is timed with the
// board's SysTick instruction counter exactly like bench_infer times
// tfd_invoke(); results go to the semihosting log as key=value lines:
//   tflm_bench_board=, model=, arena_size=, arena_used_bytes=, setup_insns=,
//   runs=, inputs=, icount_shift=, clocks_min=, clocks_max=, insns_min=,
//   insns_max=, insns_mean=, out<k>=<hex bytes>, output_checksum=, flash_used=...
// The checksum is bench_infer's (c = c * 31 + byte over every run's output).
// Exit 0 on success, 1 on any TFLM error.
#include <cstdint>
#include <cstring>

#include "bench_inputs.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tflm_bench_model.h"
#include "tflm_glue.h"

#ifndef TFD_BENCH_RUNS
#define TFD_BENCH_RUNS 8
#endif

namespace {

int fail(const char* what) {
  tfb_log_str("error", what);
  return 1;
}

int run() {
  tflite::InitializeTarget();
  tfb_log_str("tflm_bench_board", tfb_board_name());
  tfb_log_str("model", TFB_MODEL_NAME);

  const uint64_t s0 = tfb_clocks();
  const tflite::Model* model = tflite::GetModel(tfb_model_tflite);
  if (model->version() != TFLITE_SCHEMA_VERSION) return fail("schema version");

  tflite::MicroMutableOpResolver<TFB_OP_COUNT> resolver;
#define TFB_ADD_OP(name) \
  if (resolver.Add##name() != kTfLiteOk) return fail("Add" #name);
  TFB_OPS(TFB_ADD_OP)
#undef TFB_ADD_OP

  tflite::MicroInterpreter interpreter(model, resolver, tfb_arena, tfb_arena_bytes);
  if (interpreter.AllocateTensors() != kTfLiteOk) return fail("AllocateTensors");
  const uint64_t s1 = tfb_clocks();

  TfLiteTensor* input = interpreter.input(0);
  if (input == nullptr || input->bytes != TFB_INPUT_BYTES ||
      sizeof tfd_bench_inputs != TFD_BENCH_N_INPUTS * TFB_INPUT_BYTES)
    return fail("input size");
  // The rows as one flat byte array (bench_inputs.h may declare 1-D or 2-D).
  const int8_t* rows = reinterpret_cast<const int8_t*>(tfd_bench_inputs);
  if (interpreter.outputs_size() < 1 || interpreter.output(0)->bytes != TFB_OUTPUT_BYTES)
    return fail("output size");

  tfb_log_u64("arena_size", tfb_arena_bytes);
  tfb_log_u64("arena_used_bytes", interpreter.arena_used_bytes());
  tfb_log_u64("setup_insns", tfb_clocks_to_insns(s1 - s0));

  const uint64_t overhead = tfb_overhead_clocks();
  uint64_t min_clocks = UINT64_MAX, max_clocks = 0, total_clocks = 0;
  uint32_t checksum = 0;
  for (int r = 0; r < TFD_BENCH_RUNS; ++r) {
    std::memcpy(input->data.raw, rows + (r % TFD_BENCH_N_INPUTS) * TFB_INPUT_BYTES, TFB_INPUT_BYTES);
    const uint64_t c0 = tfb_clocks();
    const TfLiteStatus status = interpreter.Invoke();
    const uint64_t c1 = tfb_clocks();
    if (status != kTfLiteOk) return fail("Invoke");
    const uint64_t clocks = c1 - c0 - overhead;
    if (clocks < min_clocks) min_clocks = clocks;
    if (clocks > max_clocks) max_clocks = clocks;
    total_clocks += clocks;
    // bench_infer reads the output back after each run too; do it after the
    // timed region here as well.
    const uint8_t* out = reinterpret_cast<const uint8_t*>(interpreter.output(0)->data.raw);
    for (uint32_t i = 0; i < TFB_OUTPUT_BYTES; ++i) checksum = checksum * 31u + out[i];
    char key[16] = "out";
    int n = 3;
    if (r >= 100) key[n++] = static_cast<char>('0' + r / 100 % 10);
    if (r >= 10) key[n++] = static_cast<char>('0' + r / 10 % 10);
    key[n++] = static_cast<char>('0' + r % 10);
    key[n] = '\0';
    tfb_log_hex(key, out, TFB_OUTPUT_BYTES);
  }
  tfb_log_u64("runs", TFD_BENCH_RUNS);
  tfb_log_u64("inputs", TFD_BENCH_N_INPUTS);
  tfb_log_u64("icount_shift", static_cast<uint64_t>(static_cast<int64_t>(tfb_icount_shift())));
  tfb_log_u64("clocks_min", min_clocks);
  tfb_log_u64("clocks_max", max_clocks);
  tfb_log_u64("insns_min", tfb_clocks_to_insns(min_clocks));
  tfb_log_u64("insns_max", tfb_clocks_to_insns(max_clocks));
  tfb_log_u64("insns_mean", tfb_clocks_to_insns(total_clocks / TFD_BENCH_RUNS));
  tfb_log_u64("output_checksum", checksum);
  tfb_log_memory();
  return 0;
}

}  // namespace

int main() { return run(); }
