/* tinyfed — the DSP-extension instructions the optimized kernels are written
 * with (Armv7E-M / Armv8-M Mainline DSP: Cortex-M4, M7, M33, M55).
 *
 * Each helper is one instruction on a core with __ARM_FEATURE_DSP and a
 * portable C definition of the same semantics elsewhere, so the optimized
 * kernels also build and run on the host (tests, `tinyfed verify`) and
 * compute the same bytes.  Only what the instruction does is modelled:
 * SMLAD's accumulate wraps modulo 2^32 (its Q flag is never read).
 *
 * Private to firmware/src/kernels/dsp/.
 */
#ifndef TFD_KERNELS_DSP_SIMD_H
#define TFD_KERNELS_DSP_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TFD_SIMD_NATIVE 1
#else
#define TFD_SIMD_NATIVE 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TFD_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TFD_ALWAYS_INLINE static inline
#endif

/* 4 bytes from any address (LDR: the cores allow unaligned word loads). */
TFD_ALWAYS_INLINE uint32_t tfd_load4(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

TFD_ALWAYS_INLINE void tfd_store4(void *p, uint32_t v) { memcpy(p, &v, 4); }

/* Load 4 bytes and advance the pointer (LDR with post-increment). */
TFD_ALWAYS_INLINE uint32_t tfd_load4_inc(const int8_t **p)
{
    const uint32_t v = tfd_load4(*p);
    *p += 4;
    return v;
}

#if TFD_SIMD_NATIVE

/* SXTB16: bytes 0 and 2, sign-extended into the two halfwords. */
TFD_ALWAYS_INLINE uint32_t tfd_sxtb16(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}

/* SXTB16 ..., ROR #8: bytes 1 and 3, sign-extended into the two halfwords. */
TFD_ALWAYS_INLINE uint32_t tfd_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* SMLAD: acc + a.lo * b.lo + a.hi * b.hi (signed halfwords). */
TFD_ALWAYS_INLINE int32_t tfd_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* SMLABB / SMLATT: acc + the bottom (top) halfwords' product. */
TFD_ALWAYS_INLINE int32_t tfd_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

TFD_ALWAYS_INLINE int32_t tfd_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* PKHBT a, b, LSL #16: bottom halfword of a, bottom halfword of b on top. */
TFD_ALWAYS_INLINE uint32_t tfd_pkhbt(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* PKHTB a, b, ASR #16: top halfword of a on top, top halfword of b at the bottom. */
TFD_ALWAYS_INLINE uint32_t tfd_pkhtb(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* SXTAB16 acc, x: acc's halfwords + bytes 0 and 2 of x (sign-extended). */
TFD_ALWAYS_INLINE uint32_t tfd_sxtab16(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

/* SXTAB16 acc, x, ROR #8: acc's halfwords + bytes 1 and 3 of x. */
TFD_ALWAYS_INLINE uint32_t tfd_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

/* Bytewise signed max / min of 4 int8 lanes (SSUB8 sets the GE flags, SEL picks). */
TFD_ALWAYS_INLINE uint32_t tfd_vmax_s8(uint32_t a, uint32_t b)
{
    uint32_t t, r;
    __asm__("ssub8 %0, %2, %3\n\t"
            "sel %1, %2, %3"
            : "=&r"(t), "=r"(r)
            : "r"(a), "r"(b)
            : "cc");
    return r;
}

TFD_ALWAYS_INLINE uint32_t tfd_vmin_s8(uint32_t a, uint32_t b)
{
    uint32_t t, r;
    __asm__("ssub8 %0, %2, %3\n\t"
            "sel %1, %3, %2"
            : "=&r"(t), "=r"(r)
            : "r"(a), "r"(b)
            : "cc");
    return r;
}

#else /* portable definitions, same results */

TFD_ALWAYS_INLINE uint32_t tfd_halves(int32_t lo, int32_t hi)
{
    return ((uint32_t)(uint16_t)(int16_t)lo) | ((uint32_t)(uint16_t)(int16_t)hi << 16);
}

TFD_ALWAYS_INLINE int32_t tfd_lo16(uint32_t x) { return (int16_t)(uint16_t)(x & 0xFFFFu); }
TFD_ALWAYS_INLINE int32_t tfd_hi16(uint32_t x) { return (int16_t)(uint16_t)(x >> 16); }

TFD_ALWAYS_INLINE uint32_t tfd_sxtb16(uint32_t x)
{
    return tfd_halves((int8_t)(uint8_t)(x & 0xFFu), (int8_t)(uint8_t)((x >> 16) & 0xFFu));
}

TFD_ALWAYS_INLINE uint32_t tfd_sxtb16_ror8(uint32_t x)
{
    return tfd_halves((int8_t)(uint8_t)((x >> 8) & 0xFFu), (int8_t)(uint8_t)(x >> 24));
}

TFD_ALWAYS_INLINE int32_t tfd_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    const uint32_t sum = (uint32_t)(tfd_lo16(a) * tfd_lo16(b)) + (uint32_t)(tfd_hi16(a) * tfd_hi16(b));
    return (int32_t)((uint32_t)acc + sum);
}

TFD_ALWAYS_INLINE int32_t tfd_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tfd_lo16(a) * tfd_lo16(b)));
}

TFD_ALWAYS_INLINE int32_t tfd_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tfd_hi16(a) * tfd_hi16(b)));
}

TFD_ALWAYS_INLINE uint32_t tfd_pkhbt(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }

TFD_ALWAYS_INLINE uint32_t tfd_pkhtb(uint32_t a, uint32_t b) { return (a & 0xFFFF0000u) | (b >> 16); }

TFD_ALWAYS_INLINE uint32_t tfd_sxtab16(uint32_t acc, uint32_t x)
{
    const uint32_t e = tfd_sxtb16(x);
    return tfd_halves(tfd_lo16(acc) + tfd_lo16(e), tfd_hi16(acc) + tfd_hi16(e));
}

TFD_ALWAYS_INLINE uint32_t tfd_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    const uint32_t o = tfd_sxtb16_ror8(x);
    return tfd_halves(tfd_lo16(acc) + tfd_lo16(o), tfd_hi16(acc) + tfd_hi16(o));
}

TFD_ALWAYS_INLINE uint32_t tfd_vsel_s8(uint32_t a, uint32_t b, int want_max)
{
    uint32_t r = 0;
    for (int k = 0; k < 32; k += 8) {
        const int8_t x = (int8_t)(uint8_t)(a >> k), y = (int8_t)(uint8_t)(b >> k);
        const int8_t v = want_max ? (x >= y ? x : y) : (x >= y ? y : x);
        r |= (uint32_t)(uint8_t)v << k;
    }
    return r;
}

TFD_ALWAYS_INLINE uint32_t tfd_vmax_s8(uint32_t a, uint32_t b) { return tfd_vsel_s8(a, b, 1); }
TFD_ALWAYS_INLINE uint32_t tfd_vmin_s8(uint32_t a, uint32_t b) { return tfd_vsel_s8(a, b, 0); }

#endif /* TFD_SIMD_NATIVE */

#endif /* TFD_KERNELS_DSP_SIMD_H */
