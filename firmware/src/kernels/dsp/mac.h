/* tinyfed — the multiply-accumulate micro-kernels of the optimized kernels
 * (firmware/src/kernels/dsp/mac.c): int8 dot products with SMLAD, hand-
 * scheduled for the DSP extension, with a portable C body of the same
 * arithmetic for other targets (the int32 sums are order independent).
 *
 * Private to firmware/src/kernels/dsp/.
 */
#ifndef TFD_KERNELS_DSP_MAC_H
#define TFD_KERNELS_DSP_MAC_H

#include <stdint.h>

/* acc[r] += sum_k w[r * stride + k] * x[k], k < n, for the 4 rows r = 0..3.
 * Any n >= 0 and alignment. */
void tfd_dsp_dot4(const int8_t *x, const int8_t *w, int32_t n, int32_t stride, int32_t acc[4]);

/* acc[s] += sum_k w[k] * column_s[k] for the 4 columns s of an interleaved
 * int16 buffer (conv_2d_dsp.c widen): per block of 4 taps k..k+3, 8 words
 * = for s = 0..3: (c_s[k] | c_s[k+2] << 16), (c_s[k+1] | c_s[k+3] << 16).
 * Reads 4 * blocks weight bytes (blocks >= 1); cols must be word aligned. */
void tfd_dsp_mm_1x4(const uint32_t *cols, const int8_t *w, int32_t blocks, int32_t acc[4]);

/* A convolution job: every output channel of 4 output pixels whose im2col
 * columns are in `cols` (the tfd_dsp_mm_1x4 layout): for each of `rows`
 * filter rows, acc = *acc_init (the 4 pixels) + row . column, requantized
 * with *mult / *shift (TFLM's MultiplyByQuantizedMultiplier), + out_offset,
 * saturated to int8 and, if clamp, clamped to [act_min, act_max]; the 4
 * bytes go to y, y + y_stride, y + 2 y_stride, y + 3 y_stride; then w moves
 * by 4 * blocks + w_skip bytes, acc_init, mult, shift by one, y by one byte.
 * The job is consumed (its pointers advance).  Field order and offsets are
 * the ABI of the assembly. */
typedef struct {
    const uint32_t *cols;     /*  0 */
    const int8_t *w;          /*  4 */
    int32_t blocks;           /*  8 */
    int32_t rows;             /* 12 */
    int32_t w_skip;           /* 16: taps - 4 * blocks */
    const int32_t *acc_init;  /* 20 */
    const int32_t *mult;      /* 24 */
    const int32_t *shift;     /* 28 */
    int8_t *y;                /* 32 */
    int32_t y_stride;         /* 36 */
    int32_t out_offset;       /* 40 */
    int32_t act_min;          /* 44 */
    int32_t act_max;          /* 48 */
    int32_t clamp;            /* 52: act range narrower than int8 */
} tfd_dsp_conv_job_t;

/* Run a convolution job (rows >= 1, blocks >= 1; shifts in [-31, 30]). */
void tfd_dsp_conv_rows(tfd_dsp_conv_job_t *job);

/* One depthwise job: 4 channels c..c+3 of one output pixel over rows x cols
 * taps, from the bias to the 4 output bytes.
 * x: the first tap's 4 input bytes; x_col: bytes from one tap to the next in a
 * row; x_row: from a row's first tap to the next row's.  w: the widened filter
 * of the 4 channels at the first tap (2 words per tap: channels (c, c+2) and
 * (c+1, c+3) as halfwords), a filter row's taps 2 words apart; w_row: words
 * from a row's first tap to the next row's.  off2: the input offset in both
 * halfwords.  acc = bias[k] (or 0 if bias is NULL) + sum over the taps of
 * w * (x + input_offset), requantized with mult[k] and shift[k] (all < 0),
 * + out_offset, saturated to int8 and, if clamp, clamped to [act_min, act_max],
 * stored at y[0..3].  Field order is the ABI of the assembly. */
typedef struct {
    const int8_t *x;        /*  0 */
    const uint32_t *w;      /*  4 */
    int32_t rows;           /*  8 */
    int32_t cols;           /* 12 */
    int32_t x_col;          /* 16 */
    int32_t x_row;          /* 20 */
    int32_t w_row;          /* 24 */
    uint32_t off2;          /* 28 */
    const int32_t *bias;    /* 32 */
    const int32_t *mult;    /* 36 */
    const int32_t *shift;   /* 40 */
    int8_t *y;              /* 44 */
    int32_t out_offset;     /* 48 */
    int32_t act_min;        /* 52 */
    int32_t act_max;        /* 56 */
    int32_t clamp;          /* 60 */
} tfd_dsp_dw_job_t;

/* Run a depthwise job (rows, cols >= 1; every shift of the 4 channels < 0). */
void tfd_dsp_dw4(const tfd_dsp_dw_job_t *job);

/* A FULLY_CONNECTED job: `groups` groups of 4 units (rows of w, `depth` bytes
 * each, consecutive) against one input row x: acc = *acc_init (per unit) +
 * row . x, requantized with *mult / *shift (TFLM's
 * MultiplyByQuantizedMultiplier, any shift in [-31, 30]), + out_offset,
 * saturated to int8 and, if clamp, clamped to [act_min, act_max], stored at
 * y[0..3]; then w moves 4 rows, acc_init and y by 4, mult and shift by
 * 4 * step (step 1 per-channel, 0 per-tensor).  The job is consumed.  Field
 * order and offsets are the ABI of the assembly. */
typedef struct {
    const int8_t *x;          /*  0 */
    const int8_t *w;          /*  4 */
    int32_t depth;            /*  8 */
    int32_t groups;           /* 12 */
    const int32_t *acc_init;  /* 16 */
    const int32_t *mult;      /* 20 */
    const int32_t *shift;     /* 24 */
    int32_t step;             /* 28 */
    int8_t *y;                /* 32 */
    int32_t out_offset;       /* 36 */
    int32_t act_min;          /* 40 */
    int32_t act_max;          /* 44 */
    int32_t clamp;            /* 48: act range narrower than int8 */
} tfd_dsp_fc_job_t;

/* Run a FULLY_CONNECTED job (groups >= 1, depth >= 1). */
void tfd_dsp_fc_rows(tfd_dsp_fc_job_t *job);

/* sum_k w[k] * x[k], k < n. */
int32_t tfd_dsp_dot1(const int8_t *x, const int8_t *w, int32_t n);

#endif /* TFD_KERNELS_DSP_MAC_H */
