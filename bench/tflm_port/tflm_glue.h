/* tinyfed bench — C glue between the TFLM benchmark (C++) and the board port.
 *
 * Part of bench/tflm_compare.py: the TFLM image links TFLM's micro interpreter
 * and reference kernels (from the user's tflite-micro checkout, never
 * committed) with the same board support as tinyfed's images
 * (boards/common, boards/<board>), and times Invoke() with the same SysTick
 * instruction counter (boards/common/bench_counter.h).  This header is plain C
 * with C++ guards so tflm_bench_main.cc can call it without including the
 * tinyfed headers (which are C11 only). */
#ifndef TFB_TFLM_GLUE_H
#define TFB_TFLM_GLUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* tfd_port_init() + tfd_bench_counter_init(). */
void tfb_init(void);

/* Processor clocks since boot (exact under QEMU -icount). */
uint64_t tfb_clocks(void);

/* Clocks of an empty measurement (subtract from each measured region). */
uint64_t tfb_overhead_clocks(void);

/* Clocks -> instructions with the host's -icount shift (0 if unknown). */
uint64_t tfb_clocks_to_insns(uint64_t clocks);

/* The -icount shift the host ran us with, or -1. */
int tfb_icount_shift(void);

/* key=value lines on the semihosting log (the host parses them). */
void tfb_log_str(const char *key, const char *value);
void tfb_log_u64(const char *key, uint64_t value);
/* key=<2 lowercase hex digits per byte> */
void tfb_log_hex(const char *key, const uint8_t *data, size_t len);
/* Raw text, no newline added. */
void tfb_log_text(const char *text);

/* Board name and linker-reported memory use (flash_used=, ram_used=, ...). */
const char *tfb_board_name(void);
void tfb_log_memory(void);

/* The TFLM tensor arena, defined in a generated C file (build/bench-tflm/)
 * so that trying another arena size only recompiles that file and relinks. */
extern uint8_t tfb_arena[];
extern const size_t tfb_arena_bytes;

/* Stop with a status (QEMU: semihosting exit). */
void tfb_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* TFB_TFLM_GLUE_H */
