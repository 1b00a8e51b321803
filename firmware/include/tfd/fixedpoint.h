/* tinyfed — Q-format fixed-point transcendental functions with the exact
 * rounding of gemmlowp's fixedpoint library, as TFLite Micro's int8 SOFTMAX,
 * LOGISTIC and TANH kernels use them.
 *
 * A "Qn" value is a raw int32 r with n integer bits (not counting the sign):
 * it stands for r / 2^(31 - n).  Multiplying a Qa by a Qb gives a Q(a+b) with
 * the same raw operation (tfd_srdhm).  Integer-bit counts are run-time
 * arguments here (gemmlowp makes them template parameters); the callers pass
 * constants, so the compiler folds them.
 *
 * Written from the published definitions of the algorithms (Taylor series of
 * exp around -1/8 plus a barrel shifter of exp(-2^k) constants; Newton-Raphson
 * division with the 48/17, 32/17 initial estimate).  The constants are the
 * correctly rounded Q0 / Q2 representations of the named real numbers.
 */
#ifndef TFD_FIXEDPOINT_H
#define TFD_FIXEDPOINT_H

#include <stdint.h>

#include "tfd/qmath.h"

/* Q0 "one" (the largest value below 1.0). */
#define TFD_FP_Q0_ONE INT32_MAX

/* Wrapping int32 add/sub (gemmlowp's plain int32 Add/Sub; never UB in C). */
static inline int32_t tfd_fp_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t tfd_fp_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* x * 2^exponent: saturating left shift for exponent > 0, rounding right
 * shift (half away from zero) for exponent < 0.  |exponent| <= 31. */
static inline int32_t tfd_fp_mul_pot(int32_t x, int exponent)
{
    if (exponent > 0) {
        const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
        if (x > threshold) return INT32_MAX;
        if (x < -threshold) return INT32_MIN;
        return (int32_t)((uint32_t)x << exponent);
    }
    if (exponent < 0) return tfd_rdivpot(x, -exponent);
    return x;
}

/* Change a value from Q(src_bits) to Q(dst_bits) (gemmlowp Rescale). */
static inline int32_t tfd_fp_rescale(int32_t x, int src_bits, int dst_bits)
{
    return tfd_fp_mul_pot(x, src_bits - dst_bits);
}

/* (a + b) / 2 rounded half away from zero (VRHADD). */
static inline int32_t tfd_fp_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* exp(a) for a Q0 value a in [-1/4, 0): Taylor expansion around -1/8. */
static inline int32_t tfd_fp_exp_on_interval_neg_quarter_0(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* Q0 exp(-1/8) */
    const int32_t one_third = 715827883;             /* Q0 1/3 */
    const int32_t x = tfd_fp_add(a, 1 << 28);        /* a + 1/8 */
    const int32_t x2 = tfd_srdhm(x, x);
    const int32_t x3 = tfd_srdhm(x2, x);
    const int32_t x4 = tfd_srdhm(x2, x2);
    const int32_t x4_over_4 = tfd_rdivpot(x4, 2);
    const int32_t poly = tfd_rdivpot(tfd_fp_add(tfd_srdhm(tfd_fp_add(x4_over_4, x3), one_third), x2), 1);
    return tfd_fp_add(exp_minus_one_eighth, tfd_srdhm(exp_minus_one_eighth, tfd_fp_add(x, poly)));
}

/* exp(a) for a value a <= 0 in Q(integer_bits), 1 <= integer_bits <= 6;
 * result in Q0 (exp(0) gives TFD_FP_Q0_ONE). */
static inline int32_t tfd_fp_exp_on_negative_values(int32_t a, int integer_bits)
{
    /* Q0 exp(-2^k) for k = -2 .. 4. */
    static const int32_t kExpNegPot[7] = {1672461947, 1302514674, 790015084, 290630308,
                                          39332535,   720401,     242};
    const int frac_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = tfd_fp_sub(a & (one_quarter - 1), one_quarter);
    int32_t result =
        tfd_fp_exp_on_interval_neg_quarter_0(tfd_fp_rescale(a_mod_quarter_minus_quarter, integer_bits, 0));
    const int32_t remainder = tfd_fp_sub(a_mod_quarter_minus_quarter, a);
    for (int k = -2; k <= 4; ++k) {
        if (integer_bits > k && (remainder & ((int32_t)1 << (frac_bits + k))) != 0) {
            result = tfd_srdhm(result, kExpNegPot[k + 2]);
        }
    }
    if (integer_bits > 5) {
        /* Below -32 the result is 0. */
        const int32_t clamp = -((int32_t)1 << (36 - integer_bits));
        if (a < clamp) result = 0;
    }
    return a == 0 ? TFD_FP_Q0_ONE : result;
}

/* Newton-Raphson iterations shared by 1/(1+x) and (1-x)/(1+x); returns the Q2
 * estimate of 1 / half_denominator. */
static inline int32_t tfd_fp_nr_reciprocal_q2(int32_t half_denominator)
{
    const int32_t c48_over_17 = 1515870810;      /* Q2 48/17 */
    const int32_t cneg32_over_17 = -1010580540;  /* Q2 -32/17 */
    const int32_t q2_one = 1 << 29;
    int32_t x = tfd_fp_add(c48_over_17, tfd_srdhm(half_denominator, cneg32_over_17));
    for (int i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = tfd_srdhm(half_denominator, x);
        const int32_t one_minus = tfd_fp_sub(q2_one, half_denominator_times_x);
        x = tfd_fp_add(x, tfd_fp_rescale(tfd_srdhm(x, one_minus), 4, 2));
    }
    return x;
}

/* 1 / (1 + a) for a Q0 value a in [0, 1); result Q0. */
static inline int32_t tfd_fp_one_over_one_plus_x(int32_t a)
{
    const int32_t x = tfd_fp_nr_reciprocal_q2(tfd_fp_rounding_half_sum(a, TFD_FP_Q0_ONE));
    /* x / 2 as a Q1 value (exact), then rescaled to Q0. */
    return tfd_fp_rescale(x, 1, 0);
}

/* (1 - a) / (1 + a) for a Q0 value a in [0, 1); result Q0. */
static inline int32_t tfd_fp_one_minus_x_over_one_plus_x(int32_t a)
{
    const int32_t x = tfd_fp_nr_reciprocal_q2(tfd_fp_rounding_half_sum(a, TFD_FP_Q0_ONE));
    return tfd_fp_rescale(tfd_fp_sub(x, 1 << 29), 2, 0);
}

/* logistic(a) = 1 / (1 + exp(-a)) for a in Q(integer_bits); result Q0. */
static inline int32_t tfd_fp_logistic(int32_t a, int integer_bits)
{
    if (a == 0) return 1 << 30; /* 0.5 */
    const int32_t abs_a = a > 0 ? a : -a;
    const int32_t positive = tfd_fp_one_over_one_plus_x(tfd_fp_exp_on_negative_values(-abs_a, integer_bits));
    return a > 0 ? positive : tfd_fp_sub(TFD_FP_Q0_ONE, positive);
}

/* tanh(a) for a in Q(integer_bits); result Q0. */
static inline int32_t tfd_fp_tanh(int32_t a, int integer_bits)
{
    if (a == 0) return 0;
    const int32_t neg_abs = a < 0 ? a : -a;
    /* exp(2 * neg_abs): the same raw value read with one more integer bit. */
    const int32_t t = tfd_fp_one_minus_x_over_one_plus_x(tfd_fp_exp_on_negative_values(neg_abs, integer_bits + 1));
    return a < 0 ? -t : t;
}

/* Count leading zeros of a nonzero 32-bit value. */
static inline int tfd_clz32(uint32_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return x ? __builtin_clz(x) : 32;
#else
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

/* Reciprocal of a positive Q(integer_bits) value x: returns the Q0 value s
 * and *bits_over_unit = b such that 1/x ~= s * 2^-b. */
static inline int32_t tfd_fp_reciprocal(int32_t x, int integer_bits, int *bits_over_unit)
{
    const int headroom_plus_one = tfd_clz32((uint32_t)x);
    *bits_over_unit = integer_bits - headroom_plus_one;
    const int32_t shifted_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - (1u << 31));
    return tfd_fp_one_over_one_plus_x(shifted_minus_one);
}

#endif /* TFD_FIXEDPOINT_H */
