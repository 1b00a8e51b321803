/* TEMPORARY (development only, removed before release): weak fallbacks so the
 * runtime links while kernels are being written.  Each returns
 * TFD_ERR_UNSUPPORTED_OP; a real kernel in its own file overrides it. */
#include "tfd/kernels.h"

#define TFD_PENDING_(name, id, fn)                                                       \
    __attribute__((weak)) tfd_status_t tfd_eval_##fn(const tfd_model_t *model,           \
                                                     const tfd_layer_t *layer, uint8_t *arena) \
    {                                                                                    \
        (void)model; (void)layer; (void)arena;                                           \
        return TFD_ERR_UNSUPPORTED_OP;                                                   \
    }
TFD_OP_LIST(TFD_PENDING_)
