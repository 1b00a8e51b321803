/* Parameter structs for the elementwise / activation / data-movement kernels:
 * ADD, SUB, MUL, SOFTMAX, LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, HARD_SWISH,
 * PAD, CONCATENATION, QUANTIZE, DEQUANTIZE, RESHAPE, STRIDED_SLICE,
 * RESIZE_NEAREST_NEIGHBOR (MAXIMUM and MINIMUM take none).  Filled in by
 * toolchain/compile/ops/{elementwise,activations,gather}.py with TFLite-Micro semantics
 * (Prepare-time math done by the toolchain); multipliers are Q31 with TFLM's
 * shift convention (positive = left) unless a field says otherwise. */
#ifndef TFD_PARAMS_ELEMENTWISE_H
#define TFD_PARAMS_ELEMENTWISE_H

#include <stdint.h>

/* ADD and SUB (int8, with 4-D broadcasting).  TFLM semantics: both inputs
 * are shifted left by `left_shift` (20), scaled to a common scale with
 * input{1,2}_mult/shift (<= 0), added (ADD) or subtracted (SUB: input 1 minus
 * input 2), then scaled to the output. */
typedef struct {
    int32_t input1_offset, input2_offset; /* -input zero points */
    int32_t output_offset;                /* output zero point */
    int32_t left_shift;
    int32_t input1_mult, input1_shift;
    int32_t input2_mult, input2_shift;
    int32_t output_mult, output_shift;
    int32_t act_min, act_max;
    /* Arena scratch for the optimized kernel (kernels/dsp/elementwise_dsp.c):
     * each input's rescaled value of all 256 codes, two int32 tables, which it
     * builds once per call instead of rescaling every element.  Planned by the
     * toolchain when the output has at least TFD_ADD_DSP_MIN_ELEMS elements
     * (fewer: the tables would cost more than they save); 0 = none.  The
     * reference kernel does not use it. */
    uint32_t scratch_offset;
    uint32_t scratch_bytes;
} tfd_add_params_t;

#define TFD_ADD_DSP_SCRATCH_BYTES 2048u
#define TFD_ADD_DSP_MIN_ELEMS 512

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

/* LEAKY_RELU (int8): v = in - input_offset;
 * out = clamp(output_offset + (v >= 0 ? MBQM(v, mult_identity, shift_identity)
 *                                     : sign * MBQM(v, mult_alpha, shift_alpha)))
 * where mult_alpha = |TFLM's alpha multiplier| and sign = -1 if alpha < 0. */
typedef struct {
    int32_t input_offset;    /* input zero point */
    int32_t output_offset;   /* output zero point */
    int32_t mult_identity, shift_identity;
    int32_t mult_alpha, shift_alpha;
    int32_t alpha_negative;  /* 1: negate the scaled negative branch */
} tfd_leaky_relu_params_t;

/* HARD_SWISH (int8), TFLM's 16-bit fixed-point recipe: the multipliers are Q15
 * (QuantizeMultiplier rounded to 16 bits); output_exponent in [-31, 0] is a
 * rounding right shift, reluish_exponent in [-31, 31] a shift either way
 * (int16 semantics: see firmware/src/kernels/hard_swish.c). */
typedef struct {
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t output_mult_q15;      /* input_scale / 128 / output_scale */
    int32_t output_exponent;
    int32_t reluish_mult_q15;     /* (input_scale / 128) / (3 / 32768) */
    int32_t reluish_exponent;
} tfd_hard_swish_params_t;

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

/* STRIDED_SLICE (int8), resolved at generation time to the right-aligned 4-D
 * input: output element (i0..i3) = input[begin[d] + i[d] * stride[d]] for
 * 0 <= i[d] < count[d] (shrunk axes have count 1; strides may be negative). */
typedef struct {
    int32_t begin[4];
    int32_t stride[4];
    int32_t count[4];
} tfd_strided_slice_params_t;

/* RESIZE_NEAREST_NEIGHBOR (int8, NHWC): the source row / column of every
 * output row / column, computed at generation time with TFLM's float32
 * GetNearestNeighbor (align_corners, half_pixel_centers). */
typedef struct {
    const int16_t *in_y;     /* [output height] */
    const int16_t *in_x;     /* [output width] */
} tfd_resize_nn_params_t;

#endif /* TFD_PARAMS_ELEMENTWISE_H */
