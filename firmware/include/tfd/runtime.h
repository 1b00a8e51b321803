/* tinyfed — the inference runtime: interprets a tfd_model_t over a caller-owned arena. */
#ifndef TFD_RUNTIME_H
#define TFD_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/model.h"
#include "tfd/status.h"

/* Check the model tables once (ABI, tensor indices, arena bounds).  O(model). */
TFD_CHECK_RESULT tfd_status_t tfd_model_check(const tfd_model_t *model, size_t arena_bytes);

/* Run every layer.  Inputs must already be written into their arena slots
 * (tfd_input_ptr); outputs are read from tfd_output_ptr afterwards.  On failure
 * *failed_layer (if non-NULL) names the layer index. */
TFD_CHECK_RESULT tfd_status_t tfd_invoke(const tfd_model_t *model, uint8_t *arena,
                                         int *failed_layer);

/* Run layers [first, last) only (used by the training engine's forward). */
TFD_CHECK_RESULT tfd_status_t tfd_invoke_range(const tfd_model_t *model, uint8_t *arena,
                                               int first, int last, int *failed_layer);

/* Where tensor `index` lives: constant data in flash, or its arena slot. */
static inline void *tfd_tensor_ptr(const tfd_model_t *model, uint8_t *arena, int index)
{
    const tfd_tensor_t *t = &model->tensors[index];
    return t->data ? (void *)(uintptr_t)t->data : (void *)(arena + t->arena_offset);
}

static inline void *tfd_input_ptr(const tfd_model_t *model, uint8_t *arena, int i)
{
    return tfd_tensor_ptr(model, arena, model->inputs[i]);
}

static inline void *tfd_output_ptr(const tfd_model_t *model, uint8_t *arena, int i)
{
    return tfd_tensor_ptr(model, arena, model->outputs[i]);
}

/* Number of elements of a tensor. */
static inline int32_t tfd_tensor_elems(const tfd_tensor_t *t)
{
    return t->dims[0] * t->dims[1] * t->dims[2] * t->dims[3];
}

#endif /* TFD_RUNTIME_H */
