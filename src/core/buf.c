#include <stdio.h>
#include <string.h>

#include "cgw/error.h"
#include "core/alloc.h"
#include "core/buf.h"

int cgw_buf_reserve(cgw_buf_t *b, size_t extra)
{
    if (extra > (size_t)-1 / 2 - b->len) {
        return CGW_E2BIG;
    }
    size_t need = b->len + extra + 1;
    if (b->limit != 0 && b->len + extra > b->limit) {
        return CGW_E2BIG;
    }
    if (need <= b->cap) {
        return CGW_OK;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    char *nd = cgw__realloc(b->data, cap);
    if (nd == NULL) {
        return CGW_ENOMEM;
    }
    b->data = nd;
    b->cap = cap;
    return CGW_OK;
}

int cgw_buf_append(cgw_buf_t *b, const void *data, size_t len)
{
    int rc = cgw_buf_reserve(b, len);
    if (rc != CGW_OK) {
        return rc;
    }
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return CGW_OK;
}

int cgw_buf_append_str(cgw_buf_t *b, const char *s)
{
    return cgw_buf_append(b, s, strlen(s));
}

int cgw_buf_append_char(cgw_buf_t *b, char c)
{
    return cgw_buf_append(b, &c, 1);
}

int cgw_buf_appendv(cgw_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return CGW_EINVAL;
    }
    int rc = cgw_buf_reserve(b, (size_t)n);
    if (rc != CGW_OK) {
        return rc;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return CGW_OK;
}

int cgw_buf_appendf(cgw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cgw_buf_appendv(b, fmt, ap);
    va_end(ap);
    return rc;
}

void cgw_buf_consume(cgw_buf_t *b, size_t n)
{
    if (n >= b->len) {
        cgw_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void cgw_buf_reset(cgw_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

void cgw_buf_free(cgw_buf_t *b)
{
    cgw_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

char *cgw_buf_steal(cgw_buf_t *b, size_t *len)
{
    char *d = b->data;
    if (d == NULL) {
        d = cgw__strdup("");
    }
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}
