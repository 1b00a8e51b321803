/* tinyfed — reference int8 kernels, one per op (DESIGN.md rule 3).
 *
 * Every kernel has the same signature: it reads its inputs and writes its
 * output through the model tables and the arena.  Kernels are the source of
 * truth and are held bit-exact to the TFLite-Micro reference kernels.  An
 * optimized variant keeps the same symbol and is chosen at build time
 * (TFD_KERNELS_OPTIMIZED), tested against the reference.
 */
#ifndef TFD_KERNELS_H
#define TFD_KERNELS_H

#include <stdint.h>

#include "tfd/model.h"
#include "tfd/status.h"

typedef tfd_status_t (*tfd_kernel_fn)(const tfd_model_t *model, const tfd_layer_t *layer,
                                      uint8_t *arena);

#define TFD_KERNEL_DECL_(name, id, fn)                                                 \
    TFD_CHECK_RESULT tfd_status_t tfd_eval_##fn(const tfd_model_t *model,              \
                                                const tfd_layer_t *layer, uint8_t *arena);
TFD_OP_LIST(TFD_KERNEL_DECL_)
#undef TFD_KERNEL_DECL_

/* Convenience accessors used by the kernels. */
#define TFD_IN_T(m, l, i) (&(m)->tensors[(l)->inputs[(i)]])
#define TFD_OUT_T(m, l) (&(m)->tensors[(l)->output])
#define TFD_IN(m, l, a, i) tfd_tensor_ptr((m), (a), (l)->inputs[(i)])
#define TFD_OUT(m, l, a) tfd_tensor_ptr((m), (a), (l)->output)

#endif /* TFD_KERNELS_H */
