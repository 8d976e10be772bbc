/*
 * claude-gateway: things every public header needs: export macro, version, string slices and
 * the allocator hooks.
 */
#ifndef CGW_COMMON_H
#define CGW_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CGW_BUILDING) && defined(__GNUC__)
#define CGW_EXTERN __attribute__((visibility("default")))
#else
#define CGW_EXTERN
#endif

#if defined(__GNUC__)
#define CGW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CGW_PRINTF(fmt, args)
#endif

#define CGW_VERSION_MAJOR 0
#define CGW_VERSION_MINOR 1
#define CGW_VERSION_PATCH 0
#define CGW_VERSION_STRING "0.1.0"

/** A borrowed, not necessarily NUL-terminated byte range. Parsers and protocol code pass
 *  these instead of C strings; the bytes belong to whoever handed out the slice. */
typedef struct cgw_str {
    const char *ptr;
    size_t len;
} cgw_str_t;

/** The library version as "MAJOR.MINOR.PATCH". Static storage; never free it. */
CGW_EXTERN const char *cgw_version(void);

/** Allocation hooks. Any may be NULL to keep the default (malloc/realloc/free).
 *  Call once, before any other cgw_ call (and before creating any cgw object), from one
 *  thread; it also routes jansson's allocations through the same hooks.
 *  Returns CGW_OK, or CGW_EBUSY if allocations were already made with other hooks. */
typedef void *(*cgw_malloc_fn)(size_t size);
typedef void *(*cgw_realloc_fn)(void *ptr, size_t size);
typedef void (*cgw_free_fn)(void *ptr);
CGW_EXTERN int cgw_set_allocator(cgw_malloc_fn m, cgw_realloc_fn r, cgw_free_fn f);

/** Frees memory the library returned as caller-owned (strings, buffers). NULL is fine. */
CGW_EXTERN void cgw_free(void *ptr);

/** Process-wide one-time setup (curl_global_init). Call once from main before starting any
 *  thread; cgw_ctx_new calls it for you if you did not. Returns CGW_OK or CGW_EIO. */
CGW_EXTERN int cgw_global_init(void);

#ifdef __cplusplus
}
#endif
#endif
