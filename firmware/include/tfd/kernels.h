/* tinyfed — int8 kernels, one per op (ARCHITECTURE.md rule 3).
 *
 * Every kernel has the same signature (tfd_kernel_fn): it reads its inputs and
 * writes its output through the model tables and the arena.  The reference
 * kernels (firmware/src/kernels/<op>.c) are the source of truth, held bit-exact
 * to the TFLite-Micro reference kernels.
 *
 * Optimized kernels (firmware/src/kernels/dsp/, for cores with the DSP
 * extension: Cortex-M4/M7/M33/M55) are built when TFD_KERNELS_DSP is 1 (board.json
 * "kernels": "dsp").  An op with an optimized variant then has two symbols:
 *   tfd_eval_<op>      the optimized kernel (what the model's kernel table names)
 *   tfd_ref_eval_<op>  its reference kernel: the fallback for the cases the
 *                      optimized one does not specialise, and the truth it is
 *                      tested against byte for byte (tests/test_kernels_dsp.py).
 * Without TFD_KERNELS_DSP only tfd_eval_<op> exists, the reference.
 */
#ifndef TFD_KERNELS_H
#define TFD_KERNELS_H

#include <stdint.h>

#include "tfd/model.h"
#include "tfd/status.h"

#define TFD_KERNEL_DECL_(name, id, fn)                                                 \
    TFD_CHECK_RESULT tfd_status_t tfd_eval_##fn(const tfd_model_t *model,              \
                                                const tfd_layer_t *layer, uint8_t *arena); \
    TFD_CHECK_RESULT tfd_status_t tfd_ref_eval_##fn(const tfd_model_t *model,          \
                                                    const tfd_layer_t *layer, uint8_t *arena);
TFD_OP_LIST(TFD_KERNEL_DECL_)
#undef TFD_KERNEL_DECL_

#ifndef TFD_KERNELS_DSP
#define TFD_KERNELS_DSP 0
#endif

/* The ops with an optimized (DSP) variant: (op name, kernel name).  Their
 * reference kernels use TFD_REFERENCE_KERNEL below. */
#define TFD_DSP_OP_LIST(X)                  \
    X(FULLY_CONNECTED, fully_connected)     \
    X(CONV_2D, conv_2d)                     \
    X(DEPTHWISE_CONV_2D, depthwise_conv_2d) \
    X(MAX_POOL_2D, max_pool_2d)             \
    X(AVERAGE_POOL_2D, average_pool_2d)     \
    X(ADD, add)                             \
    X(SUB, sub)                             \
    X(MUL, mul)                             \
    X(SOFTMAX, softmax)

/* The name a reference kernel defines: tfd_ref_eval_<fn> when an optimized
 * variant takes tfd_eval_<fn> (reference files of ops in TFD_DSP_OP_LIST use it). */
#if TFD_KERNELS_DSP
#define TFD_REFERENCE_KERNEL(fn) tfd_ref_eval_##fn
#else
#define TFD_REFERENCE_KERNEL(fn) tfd_eval_##fn
#endif

/* Convenience accessors used by the kernels. */
#define TFD_IN_T(m, l, i) (&(m)->tensors[(l)->inputs[(i)]])
#define TFD_OUT_T(m, l) (&(m)->tensors[(l)->output])
#define TFD_IN(m, l, a, i) tfd_tensor_ptr((m), (a), (l)->inputs[(i)])
#define TFD_OUT(m, l, a) tfd_tensor_ptr((m), (a), (l)->output)

#endif /* TFD_KERNELS_H */
