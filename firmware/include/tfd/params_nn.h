/* Parameter structs for the "nn" kernels: FULLY_CONNECTED, CONV_2D,
 * DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D, MEAN.  Filled in by the toolchain
 * (toolchain/compile/ops/nn.py) with TFLite-Micro semantics; multipliers are Q31 with
 * TFLM's shift convention (positive = left shift). */
#ifndef TFD_PARAMS_NN_H
#define TFD_PARAMS_NN_H

#include <stdint.h>

/* FULLY_CONNECTED.  Inputs: input [.., depth], filter [units, depth], bias int32 [units] or -1. */
typedef struct {
    int32_t input_offset;    /* -input zero point */
    int32_t filter_offset;   /* -filter zero point */
    int32_t output_offset;   /* output zero point */
    int32_t act_min, act_max;
    uint16_t n_mult;         /* 1 = per-tensor quantization, else = units (per channel) */
    const int32_t *mult;
    const int32_t *shift;
    /* Per unit: bias + input_offset * (sum of the unit's filter row), wrapped
     * to int32 (the accumulator's arithmetic).  With filter_offset == 0 the
     * accumulator is then acc_init + sum(filter * input), the same int32 as
     * TFLM's sum(filter * (input + input_offset)) + bias; optimized kernels
     * start from it (the reference kernel does not read it). */
    const int32_t *acc_init;
} tfd_fc_params_t;

/* CONV_2D and DEPTHWISE_CONV_2D.  Inputs: input NHWC, filter (OHWI for conv,
 * 1HW(I*M) for depthwise), bias int32 [out channels] or -1. */
typedef struct {
    uint16_t stride_h, stride_w;
    uint16_t dilation_h, dilation_w;
    int16_t pad_h, pad_w;    /* top / left padding */
    int32_t input_offset;    /* -input zero point */
    int32_t output_offset;   /* output zero point */
    int32_t act_min, act_max;
    int32_t depth_multiplier; /* DEPTHWISE_CONV_2D only */
    const int32_t *mult;     /* per output channel */
    const int32_t *shift;    /* per output channel */
    /* Per output channel: bias + input_offset * (sum of the channel's filter).
     * A window entirely inside the input then needs only sum(filter * input);
     * the kernel uses it for those windows (same int32 result as TFLM's
     * sum(filter * (input + input_offset)) + bias). */
    const int32_t *acc_init;
    /* Arena bytes planned for this layer's optimized kernel while it runs
     * (CONV_2D: im2col columns, DEPTHWISE_CONV_2D: the widened filter; see
     * the *_DSP_SCRATCH_BYTES macros below); the reference kernels do not use
     * them.  scratch_bytes 0 = none. */
    uint32_t scratch_offset;
    uint32_t scratch_bytes;
} tfd_conv_params_t;

/* Scratch the optimized CONV_2D kernel needs for a filter of k = KH * KW * IC
 * taps (kernels/dsp/conv_2d_dsp.c): TFD_CONV_DSP_COLUMNS im2col columns of
 * round4(k) int16 values, plus one int8 column of round4(k) bytes.  The
 * toolchain plans exactly this much (toolchain/ops/nn.py reads these macros). */
#define TFD_CONV_DSP_COLUMNS 4
#define TFD_CONV_DSP_SCRATCH_BYTES(k) ((2u * TFD_CONV_DSP_COLUMNS + 1u) * (((uint32_t)(k) + 3u) & ~3u))

/* Scratch the optimized DEPTHWISE_CONV_2D needs (depth multiplier 1, kernels/dsp/
 * depthwise_conv_2d_dsp.c): the filter's first C & ~3 channels widened to int16,
 * KH * KW taps each.  Other depth multipliers need none. */
#define TFD_DW_DSP_SCRATCH_BYTES(taps, c) (2u * (uint32_t)(taps) * ((uint32_t)(c) & ~3u))

/* MAX_POOL_2D and AVERAGE_POOL_2D. */
typedef struct {
    uint16_t stride_h, stride_w;
    uint16_t filter_h, filter_w;
    int16_t pad_h, pad_w;
    int32_t act_min, act_max;
} tfd_pool_params_t;

/* MEAN over a set of axes (bit i set = reduce axis i of the right-aligned 4-D
 * shape).  TFLM reference_ops::QuantizedMeanOrSum: out = sat8(MBQM(sum - input_zero_point
 * * num_elements, mult, shift) + output_zero_point), where mult/shift already fold
 * 1/num_elements into in_scale/out_scale exactly as TFLM does at run time. */
typedef struct {
    uint8_t axis_mask;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t mult;            /* requantization of the sum to the output scale, incl. 1/N */
    int32_t shift;
    int32_t num_elements;    /* elements reduced per output value (N) */
} tfd_mean_params_t;

#endif /* TFD_PARAMS_NN_H */
