/* Host harness for `tinyfed verify`: runs the emitted model on inputs read from
 * stdin and writes the raw output bytes to stdout.
 *
 * stdin:  uint32 little-endian sample count N, then N × (all input tensors' bytes)
 * stdout: N × (all output tensors' bytes)
 * exit:   0 on success; on a runtime error prints the status and layer to stderr.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_data.h"
#include "tfd/runtime.h"

static uint8_t arena[TFD_MODEL_ARENA_BYTES + 16] __attribute__((aligned(16)));

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
        int layer = -1;
        st = tfd_invoke(&tfd_model, arena, &layer);
        if (st != TFD_OK) {
            fprintf(stderr, "invoke failed at layer %d: %s\n", layer, tfd_status_str(st));
            return 4;
        }
        for (int i = 0; i < tfd_model.n_outputs; ++i) {
            const tfd_tensor_t *t = &tfd_model.tensors[tfd_model.outputs[i]];
            if (fwrite(tfd_output_ptr(&tfd_model, arena, i), 1, t->bytes, stdout) != t->bytes) return 5;
        }
    }
    return fflush(stdout) == 0 ? 0 : 5;
}
