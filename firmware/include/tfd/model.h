/* tinyfed — the model ABI: what the toolchain emits and the runtime interprets.
 *
 * A model is data, not code (ARCHITECTURE.md rule 1): constant tensor descriptors,
 * a layer list, per-layer parameter structs with every quantization multiplier
 * precomputed, a static memory plan (arena offsets) and the kernel table: one
 * entry per op the model uses, so an image links only those kernels.  The
 * runtime (tfd/runtime.h) walks the layer list and calls the op's kernel.
 *
 * Bump TFD_MODEL_ABI whenever a struct below or the op list changes (4: SUB,
 * LEAKY_RELU, HARD_SWISH, MAXIMUM, MINIMUM, STRIDED_SLICE,
 * RESIZE_NEAREST_NEIGHBOR added as ops 18..24; 5: the model's kernel table,
 * FULLY_CONNECTED's folded acc_init, conv scratch; 6: ADD/SUB scratch);
 * generated files carry
 *   #if TFD_MODEL_ABI != <n>  #error regenerate  #endif
 */
#ifndef TFD_MODEL_H
#define TFD_MODEL_H

#include <stdint.h>

#include "tfd/status.h"

#define TFD_MODEL_ABI 6
#define TFD_MAX_DIMS 4
#define TFD_MODEL_HASH_BYTES 16

/* The op list: (ENUM suffix, numeric id, kernel name).  Numeric ids are part of
 * the ABI; the toolchain reads this list (tinyfed_toolchain.cabi). */
#define TFD_OP_LIST(X)                          \
    X(FULLY_CONNECTED, 0, fully_connected)      \
    X(CONV_2D, 1, conv_2d)                      \
    X(DEPTHWISE_CONV_2D, 2, depthwise_conv_2d)  \
    X(MAX_POOL_2D, 3, max_pool_2d)              \
    X(AVERAGE_POOL_2D, 4, average_pool_2d)      \
    X(MEAN, 5, mean)                            \
    X(ADD, 6, add)                              \
    X(MUL, 7, mul)                              \
    X(RESHAPE, 8, reshape)                      \
    X(SOFTMAX, 9, softmax)                      \
    X(LOGISTIC, 10, logistic)                   \
    X(TANH, 11, tanh)                           \
    X(RELU, 12, relu)                           \
    X(RELU6, 13, relu6)                         \
    X(PAD, 14, pad)                             \
    X(CONCATENATION, 15, concatenation)         \
    X(QUANTIZE, 16, quantize)                   \
    X(DEQUANTIZE, 17, dequantize)               \
    X(SUB, 18, sub)                             \
    X(LEAKY_RELU, 19, leaky_relu)               \
    X(HARD_SWISH, 20, hard_swish)               \
    X(MAXIMUM, 21, maximum)                     \
    X(MINIMUM, 22, minimum)                     \
    X(STRIDED_SLICE, 23, strided_slice)         \
    X(RESIZE_NEAREST_NEIGHBOR, 24, resize_nearest_neighbor)

typedef enum {
#define TFD_OP_ENUM_(name, id, fn) TFD_OP_##name = id,
    TFD_OP_LIST(TFD_OP_ENUM_)
#undef TFD_OP_ENUM_
    TFD_OP_COUNT
} tfd_op_t;

typedef enum {
    TFD_TYPE_INT8 = 0,
    TFD_TYPE_INT16 = 1,
    TFD_TYPE_INT32 = 2,
    TFD_TYPE_FLOAT32 = 3
} tfd_type_t;

/* A tensor descriptor.  Shapes are stored right-aligned in 4 dims (NHWC for
 * images; [1,1,batch,depth] for a 2-D tensor), with `rank` the original rank. */
typedef struct {
    const void *data;        /* constant data in flash, or NULL: lives in the arena */
    uint32_t arena_offset;   /* byte offset in the arena when data == NULL */
    uint32_t bytes;          /* element count x element size */
    int32_t dims[TFD_MAX_DIMS];
    uint8_t rank;
    uint8_t type;            /* tfd_type_t */
    int32_t zero_point;      /* per-tensor (per-channel params live in the op params) */
    float scale;
} tfd_tensor_t;

typedef struct {
    uint8_t op;              /* tfd_op_t */
    uint8_t n_inputs;
    int16_t output;          /* tensor index */
    const int16_t *inputs;   /* tensor indices; -1 = optional input absent (e.g. bias) */
    const void *params;      /* op-specific struct from tfd/params_*.h, or NULL */
} tfd_layer_t;

struct tfd_model;

/* A kernel: reads its inputs and writes its output through the model tables
 * and the arena (tfd/kernels.h declares them all). */
typedef tfd_status_t (*tfd_kernel_fn)(const struct tfd_model *model, const tfd_layer_t *layer,
                                      uint8_t *arena);

typedef struct tfd_model {
    uint32_t abi;            /* TFD_MODEL_ABI at generation time */
    const char *name;
    uint8_t hash[TFD_MODEL_HASH_BYTES]; /* BLAKE2b-128 of the source .tflite */
    const tfd_tensor_t *tensors;
    uint16_t n_tensors;
    const tfd_layer_t *layers;
    uint16_t n_layers;
    const int16_t *inputs;
    uint8_t n_inputs;
    const int16_t *outputs;
    uint8_t n_outputs;
    uint32_t arena_bytes;    /* static memory plan: bytes the caller must provide */
    /* TFD_OP_COUNT entries indexed by op id: the kernel of every op the model
     * uses, NULL for the others (emitted by the toolchain, so an image links
     * only the kernels its model needs). */
    const tfd_kernel_fn *kernels;
} tfd_model_t;

#include "tfd/params_nn.h"
#include "tfd/params_elementwise.h"

#endif /* TFD_MODEL_H */
