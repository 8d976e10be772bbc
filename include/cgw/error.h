/*
 * Error codes and error details.
 *
 * Every public function that can fail returns an int: CGW_OK (0) or a negative code from
 * enum cgw_err. Codes that mirror a system error equal -errno (libuv's rule), so a failing
 * system call passes its errno through unchanged. Richer detail (HTTP status, API error type,
 * request id, JSON position, a readable message) goes into an optional caller-owned
 * cgw_error_t, the way jansson fills a json_error_t. There is no global "last error".
 */
#ifndef CGW_ERROR_H
#define CGW_ERROR_H

#include <errno.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message). System errors first, then the library's own (from -1000). */
#define CGW_ERRNO_MAP(XX)                                                                          \
    XX(EINVAL, -EINVAL, "invalid argument")                                                        \
    XX(ENOMEM, -ENOMEM, "out of memory")                                                           \
    XX(ENOENT, -ENOENT, "no such entry")                                                           \
    XX(EEXIST, -EEXIST, "already exists")                                                          \
    XX(EBUSY, -EBUSY, "resource busy")                                                             \
    XX(EAGAIN, -EAGAIN, "try again")                                                               \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                         \
    XX(ECANCELED, -ECANCELED, "cancelled")                                                         \
    XX(EPIPE, -EPIPE, "broken pipe")                                                               \
    XX(EIO, -EIO, "input/output error")                                                            \
    XX(E2BIG, -E2BIG, "too large")                                                                 \
    XX(ERANGE, -ERANGE, "out of range")                                                            \
    XX(EPROTO, -EPROTO, "protocol error")                                                          \
    XX(ENOTSUP, -ENOTSUP, "not supported")                                                         \
    XX(EACCES, -EACCES, "permission denied")                                                       \
    XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                          \
    XX(ECONNRESET, -ECONNRESET, "connection reset")                                                \
    XX(ECHILD, -ECHILD, "no child process")

#define CGW_OWN_ERROR_MAP(XX)                                                                      \
    XX(ECLOSED, -1000, "closed")                                                                   \
    XX(ETRIMMED, -1001, "entries no longer retained")                                              \
    XX(EJSON, -1002, "malformed JSON")                                                             \
    XX(ECONFIG, -1003, "configuration error")                                                      \
    XX(ESSE, -1004, "malformed SSE stream")                                                        \
    XX(ELINETOOLONG, -1005, "line too long")                                                       \
    XX(EHTTP, -1006, "HTTP error")                                                                 \
    XX(EAPI, -1007, "API error")                                                                   \
    XX(ERETRIES, -1008, "retries exhausted")                                                       \
    XX(ESTALL, -1009, "stream stalled")                                                            \
    XX(ENOCRED, -1010, "no credential configured")                                                 \
    XX(ERPC, -1011, "JSON-RPC error")                                                              \
    XX(ESERVERDIED, -1012, "server process exited")                                                \
    XX(ENOTREADY, -1013, "not ready")                                                              \
    XX(EUNKNOWNTOOL, -1014, "unknown tool")                                                        \
    XX(EDENIED, -1015, "denied")                                                                   \
    XX(ESTATE, -1016, "invalid state for this operation")                                          \
    XX(ETRUNCATED, -1017, "input ended early")                                                     \
    XX(ESTORE, -1018, "store error")                                                               \
    XX(EINTERNAL, -1019, "internal error")                                                         \
    XX(EUSAGE, -1020, "invalid usage")                                                             \
    XX(ESEQ, -1700, "event out of sequence")                                                       \
    XX(ECORRUPT, -1701, "store corrupt or not a database")                                         \
    XX(EEXPIRED, -1800, "expired")

enum cgw_err {
    CGW_OK = 0,
#define CGW_ERR_ENUM_(name, value, msg) CGW_##name = (value),
    CGW_ERRNO_MAP(CGW_ERR_ENUM_) CGW_OWN_ERROR_MAP(CGW_ERR_ENUM_)
#undef CGW_ERR_ENUM_
};

/** A readable message for a code. Static storage; never NULL, even for unknown codes. */
CGW_EXTERN const char *cgw_strerror(int code);

/** The code's name without prefix ("EINVAL", "ECLOSED"), or "UNKNOWN". Static storage. */
CGW_EXTERN const char *cgw_err_name(int code);

/** Caller-owned detail for a failure. Functions that take a `cgw_error_t *err` fill it on
 *  failure when it is not NULL and leave it untouched on success. Fixed-size fields: long
 *  messages are truncated, never allocated. Secrets are never copied into it. */
typedef struct cgw_error {
    int code;            /**< the cgw_err that was returned */
    int http_status;     /**< HTTP status when an HTTP exchange failed, else 0 */
    int line, column;    /**< 1-based position in JSON or config input when known, else 0 */
    int64_t rpc_code;    /**< JSON-RPC error code when code == CGW_ERPC */
    char type[64];       /**< API error type such as "overloaded_error", else "" */
    char request_id[128];/**< the API's request id when it sent one, else "" */
    char message[512];   /**< one readable sentence */
} cgw_error_t;

/** Resets every field of `err` (NULL is fine). */
CGW_EXTERN void cgw_error_clear(cgw_error_t *err);

/** Sets err->code and a printf-style message (err may be NULL) and returns `code`, so that
 *  `return cgw_error_set(err, CGW_EINVAL, "bad %s", what);` reads naturally. Other fields
 *  are left as they were. */
CGW_EXTERN int cgw_error_set(cgw_error_t *err, int code, const char *fmt, ...) CGW_PRINTF(3, 4);

#ifdef __cplusplus
}
#endif
#endif
