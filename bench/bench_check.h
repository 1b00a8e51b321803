/* tinyfed bench apps — one failure style: a failed check logs
 * error=<what> status=<status name> and main returns 2 (the .py exits 1). */
#ifndef TFD_BENCH_CHECK_H
#define TFD_BENCH_CHECK_H

#include "board_common.h"
#include "tfd/status.h"

static inline int tfd_bench_fail(const char *what, tfd_status_t st)
{
    tfd_board_log_str("error", what);
    tfd_board_log_str("status", tfd_status_str(st));
    return 2;
}

#define CHECK(expr, what)                                        \
    do {                                                         \
        const tfd_status_t st_ = (expr);                         \
        if (st_ != TFD_OK) return tfd_bench_fail((what), st_);   \
    } while (0)
#define ENSURE(cond, what)                                                \
    do {                                                                  \
        if (!(cond)) return tfd_bench_fail((what), TFD_ERR_INTERNAL);     \
    } while (0)

#endif /* TFD_BENCH_CHECK_H */
