/* tinyfed — secure-aggregation primitives: helpers shared by the files of firmware/src/secagg. */
#ifndef TFD_SA_INTERNAL_H
#define TFD_SA_INTERNAL_H

#include <stdint.h>

static inline void tfd_sa_store32_le(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)v;
    out[1] = (uint8_t)(v >> 8);
    out[2] = (uint8_t)(v >> 16);
    out[3] = (uint8_t)(v >> 24);
}

static inline uint32_t tfd_sa_load32_le(const uint8_t in[4])
{
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

/* floor(v * 2^32) exactly, from the bits of v (encode.c); *huge = 1 (and
 * the result 0) if |v| >= 2^31. */
int64_t tfd_sa_floor_times_2_32(double v, int *huge);

#endif /* TFD_SA_INTERNAL_H */
