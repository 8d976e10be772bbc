/* cgw_buf_t: a growable byte buffer, always NUL-terminated after `len` (so it can be handed to
 * C-string APIs), with an optional hard cap that turns growth past it into CGW_E2BIG. */
#ifndef CGW_CORE_BUF_H
#define CGW_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "cgw/common.h"

typedef struct cgw_buf {
    char *data;   /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t limit; /* 0 = no limit */
} cgw_buf_t;

#define CGW_BUF_INIT {NULL, 0, 0, 0}

/* Makes room for `extra` more bytes (+ NUL). CGW_OK, CGW_ENOMEM or CGW_E2BIG. */
int cgw_buf_reserve(cgw_buf_t *b, size_t extra);
int cgw_buf_append(cgw_buf_t *b, const void *data, size_t len);
int cgw_buf_append_str(cgw_buf_t *b, const char *s);
int cgw_buf_append_char(cgw_buf_t *b, char c);
int cgw_buf_appendf(cgw_buf_t *b, const char *fmt, ...) CGW_PRINTF(2, 3);
int cgw_buf_appendv(cgw_buf_t *b, const char *fmt, va_list ap) CGW_PRINTF(2, 0);
/* Removes the first n bytes (memmove); n >= len empties the buffer. */
void cgw_buf_consume(cgw_buf_t *b, size_t n);
/* Empties the buffer and keeps its memory. */
void cgw_buf_reset(cgw_buf_t *b);
/* Releases the memory and resets to CGW_BUF_INIT (the limit is kept). */
void cgw_buf_free(cgw_buf_t *b);
/* Hands the bytes to the caller (free with cgw_free; "" if nothing was appended) and resets. */
char *cgw_buf_steal(cgw_buf_t *b, size_t *len);

#endif
