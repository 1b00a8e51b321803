/* tinyfed — the interpreter: walks the emitted layer list, one kernel per op,
 * taken from the model's own kernel table (so only those kernels are linked). */
#include "tfd/kernels.h"
#include "tfd/runtime.h"

static tfd_kernel_fn kernel_of(const tfd_model_t *model, uint8_t op)
{
    return op < TFD_OP_COUNT && model->kernels != NULL ? model->kernels[op] : NULL;
}

static int32_t type_size(uint8_t type)
{
    switch (type) {
    case TFD_TYPE_INT8: return 1;
    case TFD_TYPE_INT16: return 2;
    case TFD_TYPE_INT32: return 4;
    case TFD_TYPE_FLOAT32: return 4;
    default: return 0;
    }
}

static tfd_status_t check_tensor_index(const tfd_model_t *model, int index)
{
    TFD_ENSURE(index >= 0 && index < (int)model->n_tensors, TFD_ERR_BAD_MODEL);
    return TFD_OK;
}

tfd_status_t tfd_model_check(const tfd_model_t *model, size_t arena_bytes)
{
    TFD_ENSURE(model != NULL, TFD_ERR_ARG);
    TFD_ENSURE(model->abi == TFD_MODEL_ABI, TFD_ERR_ABI);
    TFD_ENSURE(arena_bytes >= model->arena_bytes, TFD_ERR_ARENA);
    for (uint16_t i = 0; i < model->n_tensors; ++i) {
        const tfd_tensor_t *t = &model->tensors[i];
        const int32_t size = type_size(t->type);
        TFD_ENSURE(size > 0, TFD_ERR_UNSUPPORTED_TYPE);
        TFD_ENSURE(t->rank <= TFD_MAX_DIMS, TFD_ERR_BAD_MODEL);
        int64_t elems = 1;
        for (int d = 0; d < TFD_MAX_DIMS; ++d) {
            TFD_ENSURE(t->dims[d] >= 1, TFD_ERR_BAD_MODEL);
            elems *= t->dims[d];
        }
        TFD_ENSURE((int64_t)t->bytes == elems * size, TFD_ERR_BAD_MODEL);
        if (t->data == NULL) {
            TFD_ENSURE((uint64_t)t->arena_offset + t->bytes <= model->arena_bytes,
                       TFD_ERR_BAD_MODEL);
        }
    }
    for (uint16_t i = 0; i < model->n_layers; ++i) {
        const tfd_layer_t *l = &model->layers[i];
        TFD_ENSURE(kernel_of(model, l->op) != NULL, TFD_ERR_UNSUPPORTED_OP);
        TFD_TRY(check_tensor_index(model, l->output));
        TFD_ENSURE(model->tensors[l->output].data == NULL, TFD_ERR_BAD_MODEL);
        for (uint8_t k = 0; k < l->n_inputs; ++k) {
            if (l->inputs[k] >= 0) TFD_TRY(check_tensor_index(model, l->inputs[k]));
        }
    }
    for (uint8_t i = 0; i < model->n_inputs; ++i) TFD_TRY(check_tensor_index(model, model->inputs[i]));
    for (uint8_t i = 0; i < model->n_outputs; ++i) TFD_TRY(check_tensor_index(model, model->outputs[i]));
    return TFD_OK;
}

tfd_status_t tfd_invoke_range(const tfd_model_t *model, uint8_t *arena, int first, int last,
                              int *failed_layer)
{
    TFD_ENSURE(model != NULL && arena != NULL, TFD_ERR_ARG);
    TFD_ENSURE(model->abi == TFD_MODEL_ABI, TFD_ERR_ABI);
    TFD_ENSURE(first >= 0 && first <= last && last <= (int)model->n_layers, TFD_ERR_ARG);
    for (int i = first; i < last; ++i) {
        const tfd_layer_t *l = &model->layers[i];
        const tfd_kernel_fn kernel = kernel_of(model, l->op);
        const tfd_status_t status = kernel != NULL ? kernel(model, l, arena) : TFD_ERR_UNSUPPORTED_OP;
        if (status != TFD_OK) {
            if (failed_layer) *failed_layer = i;
            return status;
        }
    }
    return TFD_OK;
}

tfd_status_t tfd_invoke(const tfd_model_t *model, uint8_t *arena, int *failed_layer)
{
    TFD_ENSURE(model != NULL, TFD_ERR_ARG);
    return tfd_invoke_range(model, arena, 0, (int)model->n_layers, failed_layer);
}
