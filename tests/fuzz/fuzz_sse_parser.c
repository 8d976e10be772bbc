/*
 * libFuzzer target for cgw_sse_parser_t. The input is an SSE byte stream; its first byte picks
 * the line limit and a chunking pattern. Two parsers read it, one whole and one in chunks, and
 * must report the same events and the same outcome: the parser is chunk-boundary independent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "proto/sse_parser.h"

static int record(void *user, const cgw_sse_event_t *ev, cgw_error_t *err)
{
    (void)err;
    cgw_buf_t *b = user;
    /* lengths first, so that two different event sequences never render the same */
    cgw_buf_appendf(b, "%zu,%zu,%zu:", ev->event.len, ev->data.len, ev->id.len);
    cgw_buf_append(b, ev->event.ptr, ev->event.len);
    cgw_buf_append(b, ev->data.ptr, ev->data.len);
    cgw_buf_append(b, ev->id.ptr, ev->id.len);
    /* stop on a "stop" event name, to exercise the callback-abort path */
    return ev->event.len == 4 && memcmp(ev->event.ptr, "stop", 4) == 0 ? CGW_ECANCELED : CGW_OK;
}

static int run(const uint8_t *data, size_t size, size_t max_line, uint8_t pattern, cgw_buf_t *out)
{
    cgw_sse_parser_options_t o;
    cgw_sse_parser_options_init(&o);
    o.on_event = record;
    o.user = out;
    o.max_line = max_line;
    o.max_event = max_line * 4;
    cgw_sse_parser_t *p;
    if (cgw_sse_parser_new(&o, &p) != CGW_OK) {
        abort();
    }
    int rc = CGW_OK;
    size_t at = 0;
    uint32_t seed = pattern;
    while (at < size && rc == CGW_OK) {
        size_t n = size - at;
        if (pattern != 0) {
            seed = seed * 1103515245u + 12345u;
            size_t step = 1 + (seed >> 16) % (pattern % 16 + 1);
            n = n < step ? n : step;
        }
        rc = cgw_sse_parser_feed(p, (const char *)data + at, n, NULL);
        at += n;
    }
    if (rc == CGW_OK) {
        rc = cgw_sse_parser_finish(p, NULL);
    }
    cgw_buf_appendf(out, "|rc=%d retry=%lld", rc, (long long)cgw_sse_parser_retry_ms(p));
    cgw_sse_parser_free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0];
    data++;
    size--;
    size_t max_line = (mode & 0x80) ? 8 + (mode & 0x3f) : 1 << 16;
    cgw_buf_t whole = CGW_BUF_INIT, chunked = CGW_BUF_INIT;
    run(data, size, max_line, 0, &whole);
    run(data, size, max_line, (uint8_t)(mode | 1), &chunked);
    if (whole.len != chunked.len || memcmp(whole.data, chunked.data, whole.len) != 0) {
        abort(); /* chunking changed the result */
    }
    cgw_buf_free(&whole);
    cgw_buf_free(&chunked);
    return 0;
}
