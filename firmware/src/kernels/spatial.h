/* tinyfed — private helpers shared by the spatial kernels (conv, depthwise conv,
 * pooling): which filter taps of a window fall inside the input.
 *
 * TFLM's reference kernels test every tap ("is_point_inside_image") and skip
 * the padded ones; computing the valid tap range once per output row/column
 * visits exactly the same taps in the same order, so results are identical. */
#ifndef TFD_KERNELS_SPATIAL_H
#define TFD_KERNELS_SPATIAL_H

#include <stdint.h>

/* Taps k in [*first, *end) are those with 0 <= origin + k * dilation < size
 * (dilation >= 1).  *first == *end when no tap is inside. */
static inline void tfd_tap_range(int32_t origin, int32_t dilation, int32_t size, int32_t taps,
                                 int32_t *first, int32_t *end)
{
    int32_t lo = origin >= 0 ? 0 : (dilation - 1 - origin) / dilation;
    const int32_t room = size - origin; /* need k * dilation < room */
    int32_t hi = room <= 0 ? 0 : (room + dilation - 1) / dilation;
    if (hi > taps) hi = taps;
    if (lo > hi) lo = hi;
    *first = lo;
    *end = hi;
}

/* Keep a hot loop in its own function: inlined into a large kernel body it
 * competes for registers and GCC spills inside the loop (measured on -Os M4). */
#if defined(__GNUC__) || defined(__clang__)
#define TFD_NOINLINE __attribute__((noinline))
#else
#define TFD_NOINLINE
#endif

#endif /* TFD_KERNELS_SPATIAL_H */
