/* Parameter structs for the elementwise / activation / data-movement kernels:
 * ADD, MUL, SOFTMAX, LOGISTIC, TANH, RELU, RELU6, PAD, CONCATENATION,
 * QUANTIZE, DEQUANTIZE, RESHAPE.  Filled in by toolchain/ops/elementwise.py
 * with TFLite-Micro semantics. */
#ifndef TFD_PARAMS_ELEMENTWISE_H
#define TFD_PARAMS_ELEMENTWISE_H

#include <stdint.h>

/* ADD (int8, with 4-D broadcasting). */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_mult, input1_shift;
    int32_t input2_mult, input2_shift;
    int32_t output_mult, output_shift;
    int32_t act_min, act_max;
} tfd_add_params_t;

/* MUL (int8, with 4-D broadcasting). */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t output_mult, output_shift;
    int32_t act_min, act_max;
} tfd_mul_params_t;

/* SOFTMAX (int8 in; int8 or int16 out). */
typedef struct {
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} tfd_softmax_params_t;

/* LOGISTIC and TANH (int8). */
typedef struct {
    int32_t input_zero_point;
    int32_t input_range_radius;
    int32_t input_multiplier;
    int32_t input_left_shift;
} tfd_sigmoid_params_t;

/* RELU, RELU6 and int8->int8 QUANTIZE: out = clamp(out_off + MBQM(in - in_off)). */
typedef struct {
    int32_t input_offset;    /* input zero point */
    int32_t output_offset;   /* output zero point */
    int32_t mult, shift;
    int32_t act_min, act_max;
} tfd_requant_params_t;

/* PAD (int8): paddings per 4-D axis, before and after. */
typedef struct {
    int32_t before[4];
    int32_t after[4];
    int32_t pad_value;
} tfd_pad_params_t;

/* CONCATENATION along a 4-D axis (inputs share the output's quantization). */
typedef struct {
    int32_t axis;
} tfd_concat_params_t;

#endif /* TFD_PARAMS_ELEMENTWISE_H */
