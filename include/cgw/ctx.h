/*
 * cgw_ctx_t: the root object. It owns the libevent event_base every other object runs on, the
 * logger and the library's settings. There is no global mutable state: two contexts in one
 * process are fully independent. A context and everything created from it belong to the
 * thread that runs its loop; none of it is thread-safe.
 */
#ifndef CGW_CTX_H
#define CGW_CTX_H

#include <stdarg.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef struct cgw_ctx cgw_ctx_t;

typedef enum cgw_log_level {
    CGW_LOG_TRACE = 0,
    CGW_LOG_DEBUG,
    CGW_LOG_INFO,
    CGW_LOG_WARN,
    CGW_LOG_ERROR,
    CGW_LOG_OFF
} cgw_log_level_t;

/** A log sink. `component` ("mcp", "llm", ...) and `msg` are valid only during the call, and
 *  `msg` has already been through cgw_ctx_redact. Runs on the thread that logged (the
 *  loop's). */
typedef void (*cgw_log_cb)(cgw_log_level_t level, const char *component, const char *msg,
                           void *user);

typedef struct cgw_ctx_options {
    /** Loop to run on, borrowed (must outlive the context). NULL: the context creates and
     *  owns one. */
    struct event_base *base;
    /** Messages below this level are dropped. Default CGW_LOG_INFO. */
    cgw_log_level_t log_level;
    /** Default sink (stderr) format: false = text, true = one JSON object per line. */
    bool log_json;
    /** Custom sink instead of stderr; NULL for the default. */
    cgw_log_cb log_cb;
    void *log_user;
} cgw_ctx_options_t;

/** Fills `opts` with the defaults. */
CGW_EXTERN void cgw_ctx_options_init(cgw_ctx_options_t *opts);

/** Creates a context. `opts` is borrowed (NULL = defaults). On success *out owns a new
 *  context, freed with cgw_ctx_free. Returns CGW_OK, CGW_ENOMEM or CGW_EIO (libevent or curl
 *  could not start). */
CGW_EXTERN int cgw_ctx_new(const cgw_ctx_options_t *opts, cgw_ctx_t **out);

/** Frees the context (NULL is fine). Every object created from it must be freed first. An
 *  owned event_base is freed; a borrowed one is left alone. */
CGW_EXTERN void cgw_ctx_free(cgw_ctx_t *ctx);

/** The loop (borrowed; valid while the context lives). */
CGW_EXTERN struct event_base *cgw_ctx_base(cgw_ctx_t *ctx);

/** Runs the loop until there is nothing left to do or cgw_ctx_stop is called.
 *  Returns CGW_OK or CGW_EIO. */
CGW_EXTERN int cgw_ctx_run(cgw_ctx_t *ctx);

/** Makes cgw_ctx_run return after the current callback. Safe from any callback. */
CGW_EXTERN void cgw_ctx_stop(cgw_ctx_t *ctx);

/** Changes the log level at run time. */
CGW_EXTERN void cgw_ctx_set_log_level(cgw_ctx_t *ctx, cgw_log_level_t level);
CGW_EXTERN cgw_log_level_t cgw_ctx_log_level(const cgw_ctx_t *ctx);

/** Registers a secret (an API key, a bearer token) that must never be printed: every log line
 *  and every string passed through cgw_ctx_redact has it replaced by "[REDACTED]". The string
 *  is copied. Secrets shorter than 8 bytes are refused with CGW_EINVAL, because redacting
 *  short strings would mangle ordinary text. Returns CGW_OK, CGW_EINVAL or CGW_ENOMEM. */
CGW_EXTERN int cgw_ctx_add_secret(cgw_ctx_t *ctx, const char *secret);

/** Copies `in` into `out` (capacity `cap`, always NUL-terminated when cap > 0) with every
 *  registered secret, and anything shaped like an Anthropic key ("sk-ant-" and the key
 *  characters after it), replaced by "[REDACTED]". `ctx` may be NULL (then only the key shape
 *  is caught). A line too long for `out` is cut, never in the middle of "[REDACTED]". Returns
 *  the length written. */
CGW_EXTERN size_t cgw_ctx_redact(const cgw_ctx_t *ctx, const char *in, char *out, size_t cap);

/** Logs one line through the context's sink, after redaction. `component` may be NULL. */
CGW_EXTERN void cgw_ctx_log(cgw_ctx_t *ctx, cgw_log_level_t level, const char *component,
                            const char *fmt, ...) CGW_PRINTF(4, 5);
CGW_EXTERN void cgw_ctx_logv(cgw_ctx_t *ctx, cgw_log_level_t level, const char *component,
                             const char *fmt, va_list ap) CGW_PRINTF(4, 0);

/** Parses "trace", "debug", "info", "warn", "error", "off" (case-insensitive).
 *  Returns CGW_OK or CGW_EINVAL. */
CGW_EXTERN int cgw_log_level_parse(const char *name, cgw_log_level_t *out);

#ifdef __cplusplus
}
#endif
#endif
