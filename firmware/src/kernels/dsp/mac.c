/* tinyfed — multiply-accumulate micro-kernels (see mac.h).
 *
 * Per 4 columns of 4 rows (16 MACs) tfd_dsp_dot4 issues: one load of x and
 * two SXTB16 (bytes 0,2 and 1,3 as halfword pairs), then for each row one
 * load, two SXTB16 and two SMLAD: 23 instructions, 24 with the loop (two
 * blocks per iteration), against ~12 per MAC for the reference loop.  GCC at
 * -Os spills a C version of this loop (13 live values), so the loop body is
 * written out for the core. */
#include "mac.h"

#include "tfd/kernels.h"
#include "requant.h"
#include "simd.h"

#if TFD_KERNELS_DSP

#if TFD_SIMD_NATIVE
/* One block of tfd_dsp_dot4: 4 input bytes against 4 bytes of each of the 4
 * rows (w0, w0 + s, w2, w2 + s), 23 instructions for 16 MACs. */
#define TFD_DOT4_BLOCK                               \
    "ldr %[xo], [%[x]], #4\n\t"                      \
    "sxtb16 %[xe], %[xo]\n\t"                        \
    "sxtb16 %[xo], %[xo], ror #8\n\t"                \
    "ldr %[wv], [%[w0], %[s]]\n\t"                   \
    "sxtb16 %[wt], %[wv]\n\t"                        \
    "sxtb16 %[wv], %[wv], ror #8\n\t"                \
    "smlad %[a1], %[wt], %[xe], %[a1]\n\t"           \
    "smlad %[a1], %[wv], %[xo], %[a1]\n\t"           \
    "ldr %[wv], [%[w0]], #4\n\t"                     \
    "sxtb16 %[wt], %[wv]\n\t"                        \
    "sxtb16 %[wv], %[wv], ror #8\n\t"                \
    "smlad %[a0], %[wt], %[xe], %[a0]\n\t"           \
    "smlad %[a0], %[wv], %[xo], %[a0]\n\t"           \
    "ldr %[wv], [%[w2], %[s]]\n\t"                   \
    "sxtb16 %[wt], %[wv]\n\t"                        \
    "sxtb16 %[wv], %[wv], ror #8\n\t"                \
    "smlad %[a3], %[wt], %[xe], %[a3]\n\t"           \
    "smlad %[a3], %[wv], %[xo], %[a3]\n\t"           \
    "ldr %[wv], [%[w2]], #4\n\t"                     \
    "sxtb16 %[wt], %[wv]\n\t"                        \
    "sxtb16 %[wv], %[wv], ror #8\n\t"                \
    "smlad %[a2], %[wt], %[xe], %[a2]\n\t"           \
    "smlad %[a2], %[wv], %[xo], %[a2]\n\t"

/* TFD_DOT4_BLOCK in tfd_dsp_fc_rows' registers. */
#define TFD_FC_BLOCK                                 \
    "ldr r9, [r0], #4\n\t"                           \
    "sxtb16 r8, r9\n\t"                              \
    "sxtb16 r9, r9, ror #8\n\t"                      \
    "ldr r10, [r1, r12]\n\t"                         \
    "sxtb16 r11, r10\n\t"                            \
    "sxtb16 r10, r10, ror #8\n\t"                    \
    "smlad r5, r11, r8, r5\n\t"                      \
    "smlad r5, r10, r9, r5\n\t"                      \
    "ldr r10, [r1], #4\n\t"                          \
    "sxtb16 r11, r10\n\t"                            \
    "sxtb16 r10, r10, ror #8\n\t"                    \
    "smlad r4, r11, r8, r4\n\t"                      \
    "smlad r4, r10, r9, r4\n\t"                      \
    "ldr r10, [r2, r12]\n\t"                         \
    "sxtb16 r11, r10\n\t"                            \
    "sxtb16 r10, r10, ror #8\n\t"                    \
    "smlad r7, r11, r8, r7\n\t"                      \
    "smlad r7, r10, r9, r7\n\t"                      \
    "ldr r10, [r2], #4\n\t"                          \
    "sxtb16 r11, r10\n\t"                            \
    "sxtb16 r10, r10, ror #8\n\t"                    \
    "smlad r6, r11, r8, r6\n\t"                      \
    "smlad r6, r10, r9, r6\n\t"
#endif

void tfd_dsp_dot4(const int8_t *x, const int8_t *w, int32_t n, int32_t stride, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t *w0 = w;
    const int8_t *w2 = w + 2 * stride;
    int32_t blocks = n >> 2;
#if TFD_SIMD_NATIVE
    if (blocks > 0) {
        uint32_t xe, xo, wv, wt;
        /* an odd block once, then two blocks per iteration (48 instructions
         * per 32 MACs with the loop) */
        __asm__ volatile(
            "lsrs %[n], %[n], #1\n\t"
            "bcc 2f\n\t"
            TFD_DOT4_BLOCK
            "cmp %[n], #0\n\t"
            "beq 3f\n"
            "2:\n\t"
            TFD_DOT4_BLOCK
            TFD_DOT4_BLOCK
            "subs %[n], %[n], #1\n\t"
            "bne 2b\n"
            "3:"
            : [x] "+r"(x), [w0] "+r"(w0), [w2] "+r"(w2), [n] "+r"(blocks), [a0] "+r"(a0), [a1] "+r"(a1),
              [a2] "+r"(a2), [a3] "+r"(a3), [xe] "=&r"(xe), [xo] "=&r"(xo), [wv] "=&r"(wv), [wt] "=&r"(wt)
            : [s] "r"(stride)
            : "cc", "memory");
    }
#else
    for (; blocks > 0; --blocks) {
        const uint32_t xv = tfd_load4_inc(&x);
        const uint32_t xe = tfd_sxtb16(xv), xo = tfd_sxtb16_ror8(xv);
        uint32_t wv = tfd_load4(w0 + stride);
        a1 = tfd_smlad(tfd_sxtb16_ror8(wv), xo, tfd_smlad(tfd_sxtb16(wv), xe, a1));
        wv = tfd_load4_inc(&w0);
        a0 = tfd_smlad(tfd_sxtb16_ror8(wv), xo, tfd_smlad(tfd_sxtb16(wv), xe, a0));
        wv = tfd_load4(w2 + stride);
        a3 = tfd_smlad(tfd_sxtb16_ror8(wv), xo, tfd_smlad(tfd_sxtb16(wv), xe, a3));
        wv = tfd_load4_inc(&w2);
        a2 = tfd_smlad(tfd_sxtb16_ror8(wv), xo, tfd_smlad(tfd_sxtb16(wv), xe, a2));
    }
#endif
    for (int32_t k = 0; k < (n & 3); ++k) {
        const int32_t xv = x[k];
        a0 += w0[k] * xv;
        a1 += w0[stride + k] * xv;
        a2 += w2[k] * xv;
        a3 += w2[stride + k] * xv;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

#if TFD_SIMD_NATIVE
/* One step of a 1x4 block product, shared by tfd_dsp_mm_1x4 and tfd_dsp_conv_rows:
 * 4 weight bytes at r1 (post-incremented, sign-extended to lr / r12) against 8 column
 * words at r0 (post-incremented) into the 4 accumulators r4-r7; clobbers r8-r12, lr. */
#define TFD_MM_1X4_STEP                              \
    "ldr r12, [r1], #4\n\t"                          \
    "sxtb16 lr, r12\n\t"                             \
    "sxtb16 r12, r12, ror #8\n\t"                    \
    "ldmia r0!, {r8-r11}\n\t"                        \
    "smlad r4, lr, r8, r4\n\t"                       \
    "smlad r4, r12, r9, r4\n\t"                      \
    "smlad r5, lr, r10, r5\n\t"                      \
    "smlad r5, r12, r11, r5\n\t"                     \
    "ldmia r0!, {r8-r11}\n\t"                        \
    "smlad r6, lr, r8, r6\n\t"                       \
    "smlad r6, r12, r9, r6\n\t"                      \
    "smlad r7, lr, r10, r7\n\t"                      \
    "smlad r7, r12, r11, r7\n\t"

#define TFD_ASM_ARG __attribute__((unused)) /* a naked function reads its arguments in registers */

/* r0 = cols, r1 = w, r2 = blocks, r3 = acc.  Per block: one weight word as
 * two halfword pairs (r12: taps 0,2; lr: taps 1,3), two LDMs of 4 column
 * words, 8 SMLAD: 15 instructions per 16 MACs with the loop. */
__attribute__((naked)) void tfd_dsp_mm_1x4(TFD_ASM_ARG const uint32_t *cols, TFD_ASM_ARG const int8_t *w,
                                           TFD_ASM_ARG int32_t blocks, TFD_ASM_ARG int32_t acc[4])
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "ldm r3, {r4-r7}\n"
        "1:\n\t"
        TFD_MM_1X4_STEP
        "subs r2, r2, #1\n\t"
        "bne 1b\n\t"
        "stm r3, {r4-r7}\n\t"
        "pop {r4-r11, pc}");
}
#else
void tfd_dsp_mm_1x4(const uint32_t *cols, const int8_t *w, int32_t blocks, int32_t acc[4])
{
    for (; blocks > 0; --blocks, cols += 8) {
        const uint32_t wv = tfd_load4_inc(&w);
        const uint32_t we = tfd_sxtb16(wv), wo = tfd_sxtb16_ror8(wv);
        for (int s = 0; s < 4; ++s) acc[s] = tfd_smlad(wo, cols[2 * s + 1], tfd_smlad(we, cols[2 * s], acc[s]));
    }
}
#endif

#if TFD_SIMD_NATIVE
/* Registers in the tap loop: r2 x, r3 w, r4 rows left, r5 x_col, r6 off2,
 * r7..r10 the 4 accumulators, r0 taps left in the row, r1/r11/r12/lr
 * temporaries; the job, cols, x_row - cols * x_col and w_row - 2 * cols (bytes)
 * live on the stack.  Per tap: 11 instructions for 4 MACs; then 10 per
 * output to requantize (TFD_DW_RQ) and 4 byte stores. */
#define TFD_DW_RQ(r)                                                                     \
    "ldr r4, [r1], #4\n\t"                                                              \
    "ldr r5, [r2], #4\n\t"                                                              \
    "rsb r5, r5, #0\n\t"                                                                \
    "smull r6, r11, " r ", r4\n\t"                                                       \
    "lsrs r6, r6, #31\n\t"                                                               \
    "adc " r ", r6, r11, lsl #1\n\t"                                                     \
    "add " r ", " r ", " r ", asr #31\n\t"                                               \
    "asrs " r ", " r ", r5\n\t"                                                          \
    "adc " r ", " r ", r3\n\t"                                                           \
    "ssat " r ", #8, " r "\n\t"
#define TFD_DW_CLAMP(r)                                                                  \
    "cmp " r ", r4\n\t"                                                                  \
    "it lt\n\t"                                                                          \
    "movlt " r ", r4\n\t"                                                                \
    "cmp " r ", r5\n\t"                                                                  \
    "it gt\n\t"                                                                          \
    "movgt " r ", r5\n\t"

__attribute__((naked)) void tfd_dsp_dw4(TFD_ASM_ARG const tfd_dsp_dw_job_t *job)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "ldr r2, [r0, #0]\n\t"        /* x */
        "ldr r3, [r0, #4]\n\t"        /* w */
        "ldr r4, [r0, #8]\n\t"        /* rows */
        "ldr r12, [r0, #12]\n\t"      /* cols */
        "ldr r5, [r0, #16]\n\t"       /* x_col */
        "ldr r11, [r0, #20]\n\t"      /* x_row */
        "ldr lr, [r0, #24]\n\t"       /* w_row (words) */
        "ldr r6, [r0, #28]\n\t"       /* off2 */
        "ldr r1, [r0, #32]\n\t"       /* bias */
        "mls r11, r12, r5, r11\n\t"   /* x_row - cols * x_col */
        "sub lr, lr, r12, lsl #1\n\t" /* w_row - 2 * cols (words) */
        "lsl lr, lr, #2\n\t"          /* ... in bytes */
        "push {r0, r11, r12, lr}\n\t" /* sp: job, x_adj, cols, w_adj */
        "cbz r1, 6f\n\t"
        "ldm r1, {r7-r10}\n\t"
        "b 1f\n"
        "6:\n\t"
        "movs r7, #0\n\t"
        "movs r8, #0\n\t"
        "movs r9, #0\n\t"
        "movs r10, #0\n"
        "1:\n\t"
        "ldr r0, [sp, #8]\n"           /* taps in this row */
        "2:\n\t"
        "ldr r1, [r2]\n\t"
        "add r2, r2, r5\n\t"
        "ldrd r11, r12, [r3], #8\n\t"
        "sxtab16 lr, r6, r1, ror #8\n\t"
        "sxtab16 r1, r6, r1\n\t"
        "smlabb r7, r1, r11, r7\n\t"
        "smlatt r9, r1, r11, r9\n\t"
        "smlabb r8, lr, r12, r8\n\t"
        "smlatt r10, lr, r12, r10\n\t"
        "subs r0, r0, #1\n\t"
        "bne 2b\n\t"
        "ldr r1, [sp, #4]\n\t"
        "add r2, r2, r1\n\t"
        "ldr r1, [sp, #12]\n\t"
        "add r3, r3, r1\n\t"
        "subs r4, r4, #1\n\t"
        "bne 1b\n\t"
        "pop {r0, r11, r12, lr}\n\t"
        "ldr r1, [r0, #36]\n\t"       /* mult */
        "ldr r2, [r0, #40]\n\t"       /* shift */
        "ldr r3, [r0, #48]\n\t"       /* out_offset */
        TFD_DW_RQ("r7") TFD_DW_RQ("r8") TFD_DW_RQ("r9") TFD_DW_RQ("r10")
        "ldr r1, [r0, #60]\n\t"
        "cbz r1, 7f\n\t"
        "ldr r4, [r0, #52]\n\t"
        "ldr r5, [r0, #56]\n\t"
        TFD_DW_CLAMP("r7") TFD_DW_CLAMP("r8") TFD_DW_CLAMP("r9") TFD_DW_CLAMP("r10")
        "7:\n\t"
        "ldr r1, [r0, #44]\n\t"
        "strb r7, [r1]\n\t"
        "strb r8, [r1, #1]\n\t"
        "strb r9, [r1, #2]\n\t"
        "strb r10, [r1, #3]\n\t"
        "pop {r4-r11, pc}");
}
#else
void tfd_dsp_dw4(const tfd_dsp_dw_job_t *job)
{
    int32_t acc[4] = {0, 0, 0, 0};
    if (job->bias) {
        for (int k = 0; k < 4; ++k) acc[k] = job->bias[k];
    }
    const int8_t *x = job->x;
    const uint32_t *w = job->w;
    for (int32_t r = 0; r < job->rows; ++r, x += job->x_row, w += job->w_row) {
        const int8_t *xp = x;
        const uint32_t *wp = w;
        for (int32_t k = 0; k < job->cols; ++k, xp += job->x_col, wp += 2) {
            const uint32_t v = tfd_load4(xp);
            const uint32_t xe = tfd_sxtab16(job->off2, v), xo = tfd_sxtab16_ror8(job->off2, v);
            acc[0] = tfd_smlabb(xe, wp[0], acc[0]);
            acc[2] = tfd_smlatt(xe, wp[0], acc[2]);
            acc[1] = tfd_smlabb(xo, wp[1], acc[1]);
            acc[3] = tfd_smlatt(xo, wp[1], acc[3]);
        }
    }
    for (int k = 0; k < 4; ++k) {
        int32_t v = tfd_dsp_requant_s8(acc[k], job->mult[k], -job->shift[k], job->out_offset);
        if (job->clamp) v = tfd_dsp_clamp(v, job->act_min, job->act_max);
        job->y[k] = (int8_t)v;
    }
}
#endif

#if TFD_SIMD_NATIVE
/* r3 = the job throughout.  Per row: accumulators r4..r7 from *acc_init, the
 * MAC loop of tfd_dsp_mm_1x4, then requantization in registers (r9 mult,
 * r10 shift / right shift, r11 offset; r8/r12 temporaries) and 4 byte stores. */
#define TFD_RQ(r)                                                                        \
    "smull r8, r12, " r ", r9\n\t"                                                       \
    "lsrs r8, r8, #31\n\t"                                                               \
    "adc " r ", r8, r12, lsl #1\n\t"                                                     \
    "add " r ", " r ", " r ", asr #31\n\t"                                               \
    "asrs " r ", " r ", r10\n\t"                                                         \
    "adc " r ", " r ", r11\n\t"                                                          \
    "ssat " r ", #8, " r "\n\t"
#define TFD_LQ(r)                                                                        \
    "lsl " r ", " r ", r10\n\t"                                                          \
    "smull r8, r12, " r ", r9\n\t"                                                       \
    "lsrs r8, r8, #31\n\t"                                                               \
    "adc " r ", r8, r12, lsl #1\n\t"                                                     \
    "add " r ", " r ", r11\n\t"                                                          \
    "ssat " r ", #8, " r "\n\t"
#define TFD_CLAMP(r)                                                                     \
    "cmp " r ", r8\n\t"                                                                  \
    "it lt\n\t"                                                                          \
    "movlt " r ", r8\n\t"                                                                \
    "cmp " r ", r12\n\t"                                                                 \
    "it gt\n\t"                                                                          \
    "movgt " r ", r12\n\t"

__attribute__((naked)) void tfd_dsp_conv_rows(TFD_ASM_ARG tfd_dsp_conv_job_t *job)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "mov r3, r0\n\t"
        "ldr r1, [r3, #4]\n"
        "1:\n\t" /* one output channel */
        "ldr r0, [r3, #0]\n\t"
        "ldr r2, [r3, #8]\n\t"
        "ldr r4, [r3, #20]\n\t"
        "ldr r5, [r4], #4\n\t"
        "str r4, [r3, #20]\n\t"
        "mov r4, r5\n\t"
        "mov r6, r5\n\t"
        "mov r7, r5\n"
        "2:\n\t"
        TFD_MM_1X4_STEP
        "subs r2, r2, #1\n\t"
        "bne 2b\n\t"
        "ldr r8, [r3, #16]\n\t"
        "add r1, r1, r8\n\t"
        "ldr r8, [r3, #24]\n\t"
        "ldr r9, [r8], #4\n\t"
        "str r8, [r3, #24]\n\t"
        "ldr r8, [r3, #28]\n\t"
        "ldr r10, [r8], #4\n\t"
        "str r8, [r3, #28]\n\t"
        "ldr r11, [r3, #40]\n\t"
        "cmp r10, #0\n\t"
        "bge 3f\n\t"
        "rsb r10, r10, #0\n\t"
        TFD_RQ("r4") TFD_RQ("r5") TFD_RQ("r6") TFD_RQ("r7")
        "b 4f\n"
        "3:\n\t"
        TFD_LQ("r4") TFD_LQ("r5") TFD_LQ("r6") TFD_LQ("r7")
        "4:\n\t"
        "ldr r8, [r3, #52]\n\t"
        "cmp r8, #0\n\t"
        "beq 5f\n\t"
        "ldr r8, [r3, #44]\n\t"
        "ldr r12, [r3, #48]\n\t"
        TFD_CLAMP("r4") TFD_CLAMP("r5") TFD_CLAMP("r6") TFD_CLAMP("r7")
        "5:\n\t"
        "ldr r8, [r3, #32]\n\t"
        "ldr r12, [r3, #36]\n\t"
        "strb r4, [r8]\n\t"
        "strb r5, [r8, r12]\n\t"
        "add r9, r8, r12, lsl #1\n\t"
        "strb r6, [r9]\n\t"
        "strb r7, [r9, r12]\n\t"
        "add r8, r8, #1\n\t"
        "str r8, [r3, #32]\n\t"
        "ldr r8, [r3, #12]\n\t"
        "subs r8, r8, #1\n\t"
        "str r8, [r3, #12]\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}");
}
#else
void tfd_dsp_conv_rows(tfd_dsp_conv_job_t *job)
{
    for (; job->rows > 0; --job->rows) {
        const int32_t a0 = *job->acc_init++;
        int32_t acc[4] = {a0, a0, a0, a0};
        tfd_dsp_mm_1x4(job->cols, job->w, job->blocks, acc);
        job->w += 4 * job->blocks + job->w_skip;
        const int32_t m = *job->mult++, shift = *job->shift++;
        for (int32_t s = 0; s < 4; ++s) {
            int32_t v = shift < 0 ? tfd_dsp_rdivpot(tfd_dsp_srdhm(acc[s], m), -shift)
                                  : tfd_dsp_srdhm((int32_t)((uint32_t)acc[s] << shift), m);
            v += job->out_offset;
            v = v < -128 ? -128 : (v > 127 ? 127 : v);
            if (job->clamp) v = v < job->act_min ? job->act_min : (v > job->act_max ? job->act_max : v);
            job->y[s * job->y_stride] = (int8_t)v;
        }
        ++job->y;
    }
}
#endif

#if TFD_SIMD_NATIVE
/* Registers: lr the job; in the MAC loop r0 x, r1 / r2 rows 0 and 2 (rows 1
 * and 3 at + r12 = depth), r3 blocks, r4..r7 the accumulators, r8..r11
 * temporaries (TFD_DOT4_BLOCK's operands); then r10 / r11 the mult / shift
 * pointers, r3 their step, r12 the output offset, r0 r1 r8 r9 temporaries.
 * Per unit: 15 instructions to requantize and store (TFD_FC_RQ). */
#define TFD_FC_RQ(r)                                                                     \
    "ldr r9, [r10]\n\t"                                                                  \
    "add r10, r10, r3, lsl #2\n\t"                                                       \
    "ldr r8, [r11]\n\t"                                                                  \
    "add r11, r11, r3, lsl #2\n\t"                                                       \
    "cmp r8, #0\n\t"                                                                     \
    "bge 8f\n\t"                                                                         \
    "rsb r8, r8, #0\n\t"                                                                 \
    "smull r0, r1, " r ", r9\n\t"                                                        \
    "lsrs r0, r0, #31\n\t"                                                               \
    "adc " r ", r0, r1, lsl #1\n\t"                                                      \
    "add " r ", " r ", " r ", asr #31\n\t"                                               \
    "asrs " r ", " r ", r8\n\t"                                                          \
    "adc " r ", " r ", r12\n\t"                                                          \
    "b 9f\n"                                                                             \
    "8:\n\t"                                                                             \
    "lsl " r ", " r ", r8\n\t"                                                           \
    "smull r0, r1, " r ", r9\n\t"                                                        \
    "lsrs r0, r0, #31\n\t"                                                               \
    "adc " r ", r0, r1, lsl #1\n\t"                                                      \
    "add " r ", " r ", r12\n"                                                            \
    "9:\n\t"                                                                             \
    "ssat " r ", #8, " r "\n\t"
#define TFD_FC_CLAMP(r)                                                                  \
    "cmp " r ", r8\n\t"                                                                  \
    "it lt\n\t"                                                                          \
    "movlt " r ", r8\n\t"                                                                \
    "cmp " r ", r9\n\t"                                                                  \
    "it gt\n\t"                                                                          \
    "movgt " r ", r9\n\t"

__attribute__((naked)) void tfd_dsp_fc_rows(TFD_ASM_ARG tfd_dsp_fc_job_t *job)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "mov lr, r0\n"
        "1:\n\t" /* a group of 4 units */
        "ldr r8, [lr, #16]\n\t"
        "ldm r8!, {r4-r7}\n\t"
        "str r8, [lr, #16]\n\t"
        "ldr r0, [lr, #0]\n\t"
        "ldr r1, [lr, #4]\n\t"
        "ldr r12, [lr, #8]\n\t"
        "add r2, r1, r12, lsl #1\n\t"
        "lsrs r3, r12, #2\n\t"
        "beq 4f\n\t"
        "lsrs r3, r3, #1\n\t"
        "bcc 2f\n\t"
        TFD_FC_BLOCK
        "cmp r3, #0\n\t"
        "beq 4f\n"
        "2:\n\t"
        TFD_FC_BLOCK
        TFD_FC_BLOCK
        "subs r3, r3, #1\n\t"
        "bne 2b\n"
        "4:\n\t" /* the last depth % 4 bytes */
        "ands r3, r12, #3\n\t"
        "beq 5f\n"
        "3:\n\t"
        "ldrsb r8, [r0], #1\n\t"
        "ldrsb r9, [r1, r12]\n\t"
        "mla r5, r9, r8, r5\n\t"
        "ldrsb r9, [r1], #1\n\t"
        "mla r4, r9, r8, r4\n\t"
        "ldrsb r9, [r2, r12]\n\t"
        "mla r7, r9, r8, r7\n\t"
        "ldrsb r9, [r2], #1\n\t"
        "mla r6, r9, r8, r6\n\t"
        "subs r3, r3, #1\n\t"
        "bne 3b\n"
        "5:\n\t"
        "add r2, r2, r12\n\t" /* the next group's first row */
        "str r2, [lr, #4]\n\t"
        "ldr r10, [lr, #20]\n\t"
        "ldr r11, [lr, #24]\n\t"
        "ldr r3, [lr, #28]\n\t"
        "ldr r12, [lr, #36]\n\t"
        TFD_FC_RQ("r4") TFD_FC_RQ("r5") TFD_FC_RQ("r6") TFD_FC_RQ("r7")
        "str r10, [lr, #20]\n\t"
        "str r11, [lr, #24]\n\t"
        "ldr r8, [lr, #48]\n\t"
        "cmp r8, #0\n\t"
        "beq 6f\n\t"
        "ldr r8, [lr, #40]\n\t"
        "ldr r9, [lr, #44]\n\t"
        TFD_FC_CLAMP("r4") TFD_FC_CLAMP("r5") TFD_FC_CLAMP("r6") TFD_FC_CLAMP("r7")
        "6:\n\t"
        "ldr r8, [lr, #32]\n\t"
        "strb r4, [r8]\n\t"
        "strb r5, [r8, #1]\n\t"
        "strb r6, [r8, #2]\n\t"
        "strb r7, [r8, #3]\n\t"
        "add r8, r8, #4\n\t"
        "str r8, [lr, #32]\n\t"
        "ldr r8, [lr, #12]\n\t"
        "subs r8, r8, #1\n\t"
        "str r8, [lr, #12]\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}");
}
#else
void tfd_dsp_fc_rows(tfd_dsp_fc_job_t *job)
{
    for (; job->groups > 0; --job->groups) {
        int32_t acc[4] = {job->acc_init[0], job->acc_init[1], job->acc_init[2], job->acc_init[3]};
        job->acc_init += 4;
        tfd_dsp_dot4(job->x, job->w, job->depth, job->depth, acc);
        job->w += 4 * job->depth;
        for (int32_t k = 0; k < 4; ++k, job->mult += job->step, job->shift += job->step) {
            int32_t v = tfd_dsp_requant(acc[k], *job->mult, *job->shift) + job->out_offset;
            v = v < -128 ? -128 : (v > 127 ? 127 : v);
            if (job->clamp) v = v < job->act_min ? job->act_min : (v > job->act_max ? job->act_max : v);
            job->y[k] = (int8_t)v;
        }
        job->y += 4;
    }
}
#endif

int32_t tfd_dsp_dot1(const int8_t *x, const int8_t *w, int32_t n)
{
    int32_t acc = 0;
    for (; n >= 4; n -= 4) {
        const uint32_t xv = tfd_load4_inc(&x);
        const uint32_t wv = tfd_load4_inc(&w);
        acc = tfd_smlad(tfd_sxtb16(wv), tfd_sxtb16(xv), acc);
        acc = tfd_smlad(tfd_sxtb16_ror8(wv), tfd_sxtb16_ror8(xv), acc);
    }
    for (; n > 0; --n) acc += (int32_t)*w++ * *x++;
    return acc;
}

#endif /* TFD_KERNELS_DSP */
