/* tinyfed bench — stand-in for ruy's profiler header, written for
 * bench/tflm_compare.py (not ruy's code).
 *
 * TFLM's shared reference kernels include "ruy/profiler/instrumentation.h"
 * only to place profiling scope labels, which compile to nothing unless
 * RUY_PROFILER is defined.  This header provides that no-op label so a TFLM
 * build needs no ruy checkout; pass --ruy-include to use the real one. */
#ifndef TFB_SHIM_RUY_PROFILER_INSTRUMENTATION_H
#define TFB_SHIM_RUY_PROFILER_INSTRUMENTATION_H

#ifdef RUY_PROFILER
#error "the tinyfed bench ruy shim has no profiler: pass --ruy-include with a ruy checkout"
#endif

namespace ruy {
namespace profiler {

class ScopeLabel {
 public:
  template <typename... Args>
  explicit ScopeLabel(Args...) {}
};

}  // namespace profiler
}  // namespace ruy

#endif  // TFB_SHIM_RUY_PROFILER_INSTRUMENTATION_H
