/* tinyfed — the device's private data shard, and evaluation on it.
 *
 * The shard is generated C (toolchain/image/emit_shard.py -> shard_data.c, linked
 * into one device's image): int8 inputs already quantized to the model's
 * input, and labels.  It never leaves the device: no message of the wire
 * table (tfd/wire.def) can carry samples; EVAL reports aggregates only.
 */
#ifndef TFD_SHARD_H
#define TFD_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/model.h"
#include "tfd/status.h"

extern const uint32_t tfd_shard_n;            /* samples */
extern const uint32_t tfd_shard_sample_bytes; /* bytes of one input (int8) */
extern const uint32_t tfd_shard_device_id;
extern const int8_t tfd_shard_x[];            /* tfd_shard_n x tfd_shard_sample_bytes */
extern const uint8_t tfd_shard_y[];           /* tfd_shard_n labels */

/* Running totals of an evaluation. */
typedef struct {
    uint32_t samples;
    uint32_t correct;
    float loss_sum; /* cross-entropy, nats */
} tfd_metrics_t;

/* Add one sample: dequantize the int8 logits (scale, zero_point), take the
 * argmax (first maximum on ties) and the cross-entropy -log_softmax[label]
 * computed in float as max + log(sum(exp(x - max))) - x[label]. */
TFD_CHECK_RESULT tfd_status_t tfd_metrics_add_sample(tfd_metrics_t *acc, const int8_t *logits, size_t n,
                                           float scale, int32_t zero_point, uint32_t label);

/* Run `model` over samples [0, count) of (x, y) -- count = min(max, n) or n
 * when max == 0 -- and accumulate into *acc.  The model's first input must
 * take `sample_bytes` int8 bytes and its first output be int8 logits. */
TFD_CHECK_RESULT tfd_status_t tfd_metrics_eval_model(const tfd_model_t *model, uint8_t *arena,
                                             const int8_t *x, const uint8_t *y, uint32_t n,
                                             uint32_t sample_bytes, uint32_t max,
                                             tfd_metrics_t *acc);

#endif /* TFD_SHARD_H */
