/* Internal view of cgw_ctx_t for the rest of the library. */
#ifndef CGW_CORE_CTX_INT_H
#define CGW_CORE_CTX_INT_H

#include "cgw/ctx.h"

/* Logging shortcuts that skip formatting when the level is filtered out. */
#define CGW_LOG_AT(ctx, lvl, comp, ...)                                                            \
    do {                                                                                           \
        if ((lvl) >= cgw_ctx_log_level(ctx)) {                                                     \
            cgw_ctx_log((ctx), (lvl), (comp), __VA_ARGS__);                                        \
        }                                                                                          \
    } while (0)
#define CGW_TRACE(ctx, comp, ...) CGW_LOG_AT(ctx, CGW_LOG_TRACE, comp, __VA_ARGS__)
#define CGW_DEBUG(ctx, comp, ...) CGW_LOG_AT(ctx, CGW_LOG_DEBUG, comp, __VA_ARGS__)
#define CGW_INFO(ctx, comp, ...) CGW_LOG_AT(ctx, CGW_LOG_INFO, comp, __VA_ARGS__)
#define CGW_WARN(ctx, comp, ...) CGW_LOG_AT(ctx, CGW_LOG_WARN, comp, __VA_ARGS__)
#define CGW_ERROR(ctx, comp, ...) CGW_LOG_AT(ctx, CGW_LOG_ERROR, comp, __VA_ARGS__)

/* Per-context singletons that other modules attach lazily (the curl multi handle, ...),
 * so that ctx.c does not need to know every module. */
enum cgw_ctx_slot {
    CGW_CTX_SLOT_CURLM = 0,
    CGW_CTX_SLOT_MCP,
    CGW_CTX_SLOT_STORE,
    CGW_CTX_SLOT_SERVER,
    CGW_CTX_SLOT_COUNT_ = 8
};

/* Address of the slot's pointer (NULL until a module stores something there). */
void **cgw__ctx_slot(cgw_ctx_t *ctx, enum cgw_ctx_slot slot);

/* Registers fn(arg) to run when the context is freed, in reverse order of registration,
 * before the event_base goes away. Returns CGW_OK or CGW_ENOMEM. */
int cgw__ctx_at_free(cgw_ctx_t *ctx, void (*fn)(void *arg), void *arg);

/* Monotonic and wall-clock time helpers. */
uint64_t cgw__now_ms(void);      /* monotonic milliseconds */
double cgw__wall_time(void);     /* Unix seconds with sub-second precision */

#endif
