/* Fuzz target: NDJSON framing. The first byte picks the line cap (small caps reach the
 * oversize paths); the rest is fed in chunks whose sizes come from the data itself. Checks
 * that every delivered line is within the cap and has no newline. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ndjson.h"

static size_t cap;

static void on_line(void *user, const char *line, size_t len)
{
    (void)user;
    if (len == 0 || len > cap || memchr(line, '\n', len) != NULL) {
        abort();
    }
}

static void on_error(void *user, int code, const cgw__ndjson_oversize_t *info)
{
    (void)user;
    (void)code;
    if (info->total <= cap || info->head_len > CGW_NDJSON_SNIP ||
        info->tail_len > CGW_NDJSON_SNIP || info->head_len + info->tail_len > info->total) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    cap = (size_t)data[0] + 1;
    size_t step = (size_t)data[1] % 17 + 1;
    cgw__ndjson_t nd;
    cgw__ndjson_init(&nd, cap, on_line, on_error, NULL);
    for (size_t off = 2; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        cgw__ndjson_feed(&nd, (const char *)data + off, n);
    }
    cgw__ndjson_feed(&nd, "\n", 1);
    if (cgw__ndjson_pending(&nd) != 0) {
        abort();
    }
    cgw__ndjson_free(&nd);
    return 0;
}
