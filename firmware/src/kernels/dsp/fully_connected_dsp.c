/* FULLY_CONNECTED, optimized for cores with the DSP extension (TFD_KERNELS_DSP).
 * Same results as the reference (firmware/src/kernels/fully_connected.c), byte
 * for byte:
 *   - the accumulator starts from params->acc_init = bias + input_offset *
 *     sum(filter row), folded by the toolchain, so the inner loop is a plain
 *     int8 dot product (needs filter_offset == 0, which int8 filters have);
 *   - four units per pass over the input, all groups of four in one
 *     assembly job (tfd_dsp_fc_rows: SXTB16 + SMLAD, the input word unpacked
 *     once for four filter rows, 24 instructions per 16 MACs; the four
 *     outputs requantized in registers, 15 instructions each);
 *   - the last units % 4 one by one (requant.h).
 * Anything else (a non-zero filter zero point, a bias computed at run time)
 * runs the reference kernel. */
#include <stddef.h>

#include "mac.h"
#include "requant.h"
#include "tfd/kernels.h"
#include "tfd/runtime.h"

#if TFD_KERNELS_DSP

tfd_status_t tfd_eval_fully_connected(const tfd_model_t *m, const tfd_layer_t *l, uint8_t *arena)
{
    TFD_ENSURE(l->n_inputs == 3 && l->params != NULL, TFD_ERR_BAD_MODEL);
    const tfd_fc_params_t *p = (const tfd_fc_params_t *)l->params;
    if (p->filter_offset != 0 || p->acc_init == NULL) return tfd_ref_eval_fully_connected(m, l, arena);
    const tfd_tensor_t *xt = TFD_IN_T(m, l, 0);
    const tfd_tensor_t *wt = TFD_IN_T(m, l, 1);
    const tfd_tensor_t *yt = TFD_OUT_T(m, l);
    TFD_ENSURE(xt->type == TFD_TYPE_INT8 && wt->type == TFD_TYPE_INT8 && yt->type == TFD_TYPE_INT8,
               TFD_ERR_UNSUPPORTED_TYPE);
    const int32_t units = wt->dims[2];
    const int32_t depth = wt->dims[3];
    const int32_t batches = tfd_tensor_elems(yt) / units;
    TFD_ENSURE(units > 0 && depth > 0 && tfd_tensor_elems(xt) == batches * depth, TFD_ERR_SHAPE);
    TFD_ENSURE(p->n_mult == 1 || p->n_mult == units, TFD_ERR_BAD_MODEL);

    const int8_t *x = (const int8_t *)TFD_IN(m, l, arena, 0);
    const int8_t *w = (const int8_t *)TFD_IN(m, l, arena, 1);
    int8_t *y = (int8_t *)TFD_OUT(m, l, arena);
    const int32_t step = p->n_mult == 1 ? 0 : 1; /* per-tensor: one multiplier for all units */
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max;

    const int32_t groups = units / 4;
    for (int32_t b = 0; b < batches; ++b, x += depth, y += units) {
        if (groups > 0) {
            tfd_dsp_fc_job_t job = {x, w, depth, groups, p->acc_init, p->mult, p->shift, step, y, off, lo, hi,
                                    lo > -128 || hi < 127};
            tfd_dsp_fc_rows(&job);
        }
        int32_t u = 4 * groups;
        const int32_t *mult = p->mult + step * u, *shift = p->shift + step * u;
        for (; u < units; ++u, mult += step, shift += step) {
            const int32_t acc = p->acc_init[u] + tfd_dsp_dot1(x, w + (size_t)u * (size_t)depth, depth);
            y[u] = tfd_dsp_out8(acc, *mult, *shift, off, lo, hi);
        }
    }
    return TFD_OK;
}

#endif /* TFD_KERNELS_DSP */
