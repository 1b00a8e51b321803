/* Parameter structs for the elementwise / activation / data-movement kernels:
 * ADD, MUL, SOFTMAX, LOGISTIC, TANH, RELU, RELU6, PAD, CONCATENATION,
 * QUANTIZE, DEQUANTIZE, RESHAPE.  Filled in by toolchain/ops/elementwise.py
 * with TFLite-Micro semantics (Prepare-time math done by the toolchain);
 * multipliers are Q31 with TFLM's shift convention (positive = left). */
#ifndef TFD_PARAMS_ELEMENTWISE_H
#define TFD_PARAMS_ELEMENTWISE_H

#include <stdint.h>

/* ADD (int8, with 4-D broadcasting).  TFLM semantics: both inputs are
 * shifted left by `left_shift` (20), scaled to a common scale with
 * input{1,2}_mult/shift (<= 0), summed, then scaled to the output. */
typedef struct {
    int32_t input1_offset, input2_offset; /* -input zero points */
    int32_t output_offset;                /* output zero point */
    int32_t left_shift;
    int32_t input1_mult, input1_shift;
    int32_t input2_mult, input2_shift;
    int32_t output_mult, output_shift;
    int32_t act_min, act_max;
} tfd_add_params_t;

/* MUL (int8, with 4-D broadcasting):
 * out = clamp(out_off + MBQM((x1 + in1_off) * (x2 + in2_off), mult, shift)). */
typedef struct {
    int32_t input1_offset, input2_offset; /* -input zero points */
    int32_t output_offset;                /* output zero point */
    int32_t output_mult, output_shift;
    int32_t act_min, act_max;
} tfd_mul_params_t;

/* SOFTMAX over the innermost axis (int8 in; int8 out with zero point -128 and
 * scale 1/256, or int16 out with zero point -32768 and scale 1/65536).
 * input_multiplier/input_left_shift rescale beta * input_scale * (x - max) to
 * Q5.26; differences below diff_min contribute nothing. */
typedef struct {
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} tfd_softmax_params_t;

/* LOGISTIC and TANH (int8): inputs with |x - zp| >= input_range_radius
 * saturate; others are rescaled to Q4.27 by input_multiplier/input_left_shift
 * (MultiplyByQuantizedMultiplier convention). */
typedef struct {
    int32_t input_zero_point;
    int32_t input_range_radius;
    int32_t input_multiplier;
    int32_t input_left_shift;
} tfd_sigmoid_params_t;

/* RELU: out = clamp(out_off + MBQM(in - in_off, mult, shift), act_min, act_max). */
typedef struct {
    int32_t input_offset;    /* input zero point */
    int32_t output_offset;   /* output zero point */
    int32_t mult, shift;
    int32_t act_min, act_max;
} tfd_requant_params_t;

/* RELU6 (TFLM: no requantization): out = clamp(in, lo, hi) with lo = the
 * input zero point and hi = 6.0 quantized with the input's parameters. */
typedef struct {
    int32_t lo, hi;
} tfd_clamp_params_t;

/* QUANTIZE to int8.  From float32: out = clamp(round(in / output_scale) + output_offset)
 * (round half away from zero, float32 division).  From int8 (requantize):
 * out = clamp(output_offset + MBQM(in - input_offset, mult, shift)). */
typedef struct {
    float output_scale;
    int32_t output_offset;   /* output zero point */
    int32_t input_offset;    /* input zero point (int8 input only) */
    int32_t mult, shift;     /* int8 input only */
} tfd_quantize_params_t;

/* DEQUANTIZE int8 -> float32: out = scale * (in - zero_point). */
typedef struct {
    float scale;
    int32_t zero_point;
} tfd_dequantize_params_t;

/* PAD / PADV2 (int8): paddings per 4-D axis, before and after. */
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
