// tinyfed bench — the platform functions TFLM asks of a target, written for
// bench/tflm_compare.py on tinyfed's boards (replaces TFLM's debug_log.cc,
// micro_time.cc and system_setup.cc, which the bench does not compile).
//
//   DebugLog / DebugVsnprintf   -> newlib vsnprintf + the board's semihosting log
//   GetCurrentTimeTicks         -> the bench SysTick clock (low 32 bits)
//   InitializeTarget            -> port init + bench counter (tflm_glue.c)
//
// Also stubs the C++ runtime hooks a bare-metal, exception-free image needs,
// so libsupc++'s verbose terminate handler is not linked.
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "tensorflow/lite/micro/debug_log.h"
#include "tensorflow/lite/micro/micro_time.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tflm_glue.h"

extern "C" void DebugLog(const char* format, va_list args) {
  char line[256];
  vsnprintf(line, sizeof line, format, args);
  tfb_log_text(line);
}

extern "C" int DebugVsnprintf(char* buffer, size_t buf_size, const char* format,
                              va_list vlist) {
  return vsnprintf(buffer, buf_size, format, vlist);
}

namespace tflite {

uint32_t ticks_per_second() { return TFD_BOARD_CPU_HZ; }

uint32_t GetCurrentTimeTicks() { return static_cast<uint32_t>(tfb_clocks()); }

void InitializeTarget() { tfb_init(); }

}  // namespace tflite

// A pure virtual call cannot happen in a correct program: stop loudly
// instead of pulling in libsupc++'s terminate machinery.
extern "C" void __cxa_pure_virtual() {
  tfb_log_text("error=pure virtual call\n");
  tfb_exit(3);
}
