/* tinyfed — one error style for all C code.
 *
 * Functions that can fail return tfd_status_t and are marked TFD_CHECK_RESULT;
 * functions that cannot fail return void.  Codes and their strings come from the
 * single X-macro list below; the Python side reads the same list
 * (tinyfed_toolchain.cabi.status_codes()).
 */
#ifndef TFD_STATUS_H
#define TFD_STATUS_H

#define TFD_STATUS_LIST(X)                                                        \
    X(TFD_OK, 0, "ok")                                                            \
    X(TFD_ERR_ABI, 1, "model ABI mismatch: regenerate the model tables")          \
    X(TFD_ERR_BAD_MODEL, 2, "malformed model tables")                             \
    X(TFD_ERR_UNSUPPORTED_OP, 3, "unsupported op")                                \
    X(TFD_ERR_UNSUPPORTED_TYPE, 4, "unsupported tensor type")                     \
    X(TFD_ERR_SHAPE, 5, "tensor shape mismatch")                                  \
    X(TFD_ERR_ARENA, 6, "arena too small")                                        \
    X(TFD_ERR_ARG, 7, "invalid argument")                                         \
    X(TFD_ERR_FRAME_CRC, 8, "frame CRC mismatch")                                 \
    X(TFD_ERR_FRAME_SIZE, 9, "frame too large")                                   \
    X(TFD_ERR_FRAME_DECODE, 10, "malformed frame")                                \
    X(TFD_ERR_MSG_UNKNOWN, 11, "unknown message type")                            \
    X(TFD_ERR_MSG_LENGTH, 12, "message length does not match its type")           \
    X(TFD_ERR_PROTO_VERSION, 13, "protocol version mismatch")                     \
    X(TFD_ERR_PROTO_STATE, 14, "message not valid in the current state")          \
    X(TFD_ERR_SEQ, 15, "unexpected sequence number")                              \
    X(TFD_ERR_TIMEOUT, 16, "timeout")                                             \
    X(TFD_ERR_STORAGE, 17, "persistent storage failure")                          \
    X(TFD_ERR_CRYPTO, 18, "cryptographic check failed")                           \
    X(TFD_ERR_OVERFLOW, 19, "value out of range")                                 \
    X(TFD_ERR_INTERNAL, 20, "internal error")                                    \
    X(TFD_ERR_POLICY, 21, "refused by this image's policy")

typedef enum {
#define TFD_STATUS_ENUM_(name, code, text) name = code,
    TFD_STATUS_LIST(TFD_STATUS_ENUM_)
#undef TFD_STATUS_ENUM_
} tfd_status_t;

#if defined(__GNUC__) || defined(__clang__)
#define TFD_CHECK_RESULT __attribute__((warn_unused_result))
#else
#define TFD_CHECK_RESULT
#endif

/* Propagate a failure to the caller. */
#define TFD_TRY(expr)                                                             \
    do {                                                                          \
        tfd_status_t tfd_try_status_ = (expr);                                    \
        if (tfd_try_status_ != TFD_OK) return tfd_try_status_;                    \
    } while (0)

/* Fail with `code` unless `cond` holds. */
#define TFD_ENSURE(cond, code)                                                    \
    do {                                                                          \
        if (!(cond)) return (code);                                               \
    } while (0)

/* Human-readable text for a status code (never NULL). */
const char *tfd_status_str(tfd_status_t status);

#endif /* TFD_STATUS_H */
