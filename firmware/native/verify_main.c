/* Host harness for `tinyfed verify`: runs the emitted model on inputs read from
 * stdin and writes the raw output bytes to stdout.
 *
 * Built with TFD_KERNELS_DSP=1 it runs every sample twice, layer by layer: with
 * the model's kernel table (the optimized kernels, their SIMD instructions
 * computed in portable C: kernels/dsp/simd.h) and with the reference kernels,
 * and requires every layer's output to be byte-identical; the optimized
 * outputs are written.
 *
 * stdin:  uint32 little-endian sample count N, then N × (all input tensors' bytes)
 * stdout: N × (all output tensors' bytes)
 * exit:   0 on success; on a runtime error prints the status and layer to stderr
 *         (4); 6 if an optimized kernel's output differs from the reference's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_data.h"
#include "tfd/kernels.h"
#include "tfd/runtime.h"

static uint8_t arena[TFD_MODEL_ARENA_BYTES + 16] __attribute__((aligned(16)));

#if TFD_KERNELS_DSP
static uint8_t ref_arena[TFD_MODEL_ARENA_BYTES + 16] __attribute__((aligned(16)));
static tfd_kernel_fn ref_kernels[TFD_OP_COUNT];
static tfd_model_t ref_model;

/* The same model with the reference kernel of every op that has an optimized one. */
static void make_reference_model(void)
{
    memcpy(ref_kernels, tfd_model.kernels, sizeof ref_kernels);
#define TFD_USE_REF_(name, fn) \
    if (ref_kernels[TFD_OP_##name] != NULL) ref_kernels[TFD_OP_##name] = tfd_ref_eval_##fn;
    TFD_DSP_OP_LIST(TFD_USE_REF_)
#undef TFD_USE_REF_
    ref_model = tfd_model;
    ref_model.kernels = ref_kernels;
}

/* Run the layers with both kernel tables; 0, or 4 (runtime error) / 6 (outputs differ). */
static int invoke_checked(uint32_t sample)
{
    memcpy(ref_arena, arena, sizeof arena);
    for (int i = 0; i < (int)tfd_model.n_layers; ++i) {
        tfd_status_t st = tfd_invoke_range(&tfd_model, arena, i, i + 1, NULL);
        const tfd_status_t rst = tfd_invoke_range(&ref_model, ref_arena, i, i + 1, NULL);
        if (st != TFD_OK || rst != TFD_OK) {
            fprintf(stderr, "invoke failed at layer %d: %s (reference kernels: %s)\n", i, tfd_status_str(st),
                    tfd_status_str(rst));
            return 4;
        }
        const int out = tfd_model.layers[i].output;
        const uint8_t *a = (const uint8_t *)tfd_tensor_ptr(&tfd_model, arena, out);
        const uint8_t *b = (const uint8_t *)tfd_tensor_ptr(&ref_model, ref_arena, out);
        for (uint32_t k = 0; k < tfd_model.tensors[out].bytes; ++k) {
            if (a[k] != b[k]) {
                fprintf(stderr,
                        "optimized kernel differs from the reference: sample %u layer %d (op %d) byte %u: "
                        "%d vs %d\n",
                        (unsigned)sample, i, (int)tfd_model.layers[i].op, (unsigned)k, (int)(int8_t)a[k],
                        (int)(int8_t)b[k]);
                return 6;
            }
        }
    }
    return 0;
}
#endif

static int read_exact(void *buf, size_t len)
{
    return fread(buf, 1, len, stdin) == len ? 0 : -1;
}

int main(void)
{
    tfd_status_t st = tfd_model_check(&tfd_model, sizeof(arena));
    if (st != TFD_OK) {
        fprintf(stderr, "model check failed: %s\n", tfd_status_str(st));
        return 2;
    }
#if TFD_KERNELS_DSP
    make_reference_model();
#endif
    uint8_t hdr[4];
    if (read_exact(hdr, 4) != 0) {
        fprintf(stderr, "missing sample count\n");
        return 3;
    }
    const uint32_t n = (uint32_t)hdr[0] | ((uint32_t)hdr[1] << 8) | ((uint32_t)hdr[2] << 16) |
                       ((uint32_t)hdr[3] << 24);
    for (uint32_t s = 0; s < n; ++s) {
        for (int i = 0; i < tfd_model.n_inputs; ++i) {
            const tfd_tensor_t *t = &tfd_model.tensors[tfd_model.inputs[i]];
            if (read_exact(tfd_input_ptr(&tfd_model, arena, i), t->bytes) != 0) {
                fprintf(stderr, "short input for sample %u\n", (unsigned)s);
                return 3;
            }
        }
#if TFD_KERNELS_DSP
        const int rc = invoke_checked(s);
        if (rc != 0) return rc;
#else
        int layer = -1;
        st = tfd_invoke(&tfd_model, arena, &layer);
        if (st != TFD_OK) {
            fprintf(stderr, "invoke failed at layer %d: %s\n", layer, tfd_status_str(st));
            return 4;
        }
#endif
        for (int i = 0; i < tfd_model.n_outputs; ++i) {
            const tfd_tensor_t *t = &tfd_model.tensors[tfd_model.outputs[i]];
            if (fwrite(tfd_output_ptr(&tfd_model, arena, i), 1, t->bytes, stdout) != t->bytes) return 5;
        }
    }
    return fflush(stdout) == 0 ? 0 : 5;
}
