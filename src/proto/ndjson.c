/* Newline-delimited framing; see ndjson.h for the contract. */
#include <string.h>

#include "cgw/error.h"
#include "proto/ndjson.h"

void cgw__ndjson_init(cgw__ndjson_t *nd, size_t max_line, cgw__ndjson_line_cb on_line,
                      cgw__ndjson_error_cb on_error, void *user)
{
    memset(nd, 0, sizeof(*nd));
    nd->max_line = max_line ? max_line : CGW_NDJSON_DEFAULT_MAX_LINE;
    nd->on_line = on_line;
    nd->on_error = on_error;
    nd->user = user;
}

void cgw__ndjson_free(cgw__ndjson_t *nd)
{
    cgw_buf_free(&nd->partial);
    nd->discarding = 0;
    nd->discarded = 0;
}

size_t cgw__ndjson_pending(const cgw__ndjson_t *nd)
{
    return nd->discarding ? nd->discarded : nd->partial.len;
}

static void emit(cgw__ndjson_t *nd, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    if (len > 0 && nd->on_line != NULL) {
        nd->on_line(nd->user, line, len);
    }
}

/* Remembers the bytes of an oversize line for the report: the first CGW_NDJSON_SNIP in head,
 * the most recent ones in the tail ring. */
static void track(cgw__ndjson_t *nd, const char *p, size_t n)
{
    if (nd->head_len < CGW_NDJSON_SNIP) {
        size_t k = CGW_NDJSON_SNIP - nd->head_len;
        k = k < n ? k : n;
        memcpy(nd->head + nd->head_len, p, k);
        nd->head_len += k;
    }
    if (n > CGW_NDJSON_SNIP) {
        p += n - CGW_NDJSON_SNIP;
        n = CGW_NDJSON_SNIP;
    }
    for (size_t i = 0; i < n; i++) {
        nd->tail[nd->tail_pos++ % CGW_NDJSON_SNIP] = p[i];
    }
    nd->discarded += n; /* corrected by the caller for skipped middles */
}

static void start_discard(cgw__ndjson_t *nd)
{
    nd->discarding = 1;
    nd->discarded = 0;
    nd->head_len = 0;
    nd->tail_pos = 0;
    track(nd, nd->partial.data != NULL ? nd->partial.data : "", nd->partial.len);
    nd->discarded = nd->partial.len;
    cgw_buf_reset(&nd->partial);
}

static void discard_bytes(cgw__ndjson_t *nd, const char *p, size_t n)
{
    size_t before = nd->discarded;
    track(nd, p, n);
    nd->discarded = before + n;
}

static void finish_discard(cgw__ndjson_t *nd)
{
    char tail[CGW_NDJSON_SNIP];
    size_t tail_len = 0;
    size_t total = nd->discarded;
    if (total > nd->head_len) {
        /* Unroll the ring so the tail reads oldest-to-newest. */
        size_t avail = nd->tail_pos < CGW_NDJSON_SNIP ? nd->tail_pos : CGW_NDJSON_SNIP;
        size_t beyond_head = total - nd->head_len;
        tail_len = avail < beyond_head ? avail : beyond_head;
        for (size_t i = 0; i < tail_len; i++) {
            tail[i] = nd->tail[(nd->tail_pos - tail_len + i) % CGW_NDJSON_SNIP];
        }
    }
    nd->discarding = 0;
    nd->discarded = 0;
    if (nd->on_error != NULL) {
        cgw__ndjson_oversize_t info = {total, nd->head, nd->head_len, tail, tail_len};
        nd->on_error(nd->user, CGW_ELINETOOLONG, &info);
    }
}

/* Handles the bytes of one segment that ends at a newline (with_nl) or at the chunk's end. */
static int segment(cgw__ndjson_t *nd, const char *p, size_t n, int with_nl)
{
    if (nd->discarding) {
        discard_bytes(nd, p, n);
        if (with_nl) {
            finish_discard(nd);
        }
        return CGW_OK;
    }
    if (nd->partial.len + n > nd->max_line) {
        start_discard(nd);
        discard_bytes(nd, p, n);
        if (with_nl) {
            finish_discard(nd);
        }
        return CGW_OK;
    }
    if (with_nl && nd->partial.len == 0) {
        emit(nd, p, n); /* the common case: a whole line inside one chunk, no copy */
        return CGW_OK;
    }
    int rc = cgw_buf_append(&nd->partial, p, n);
    if (rc != CGW_OK) {
        start_discard(nd);
        discard_bytes(nd, p, n);
        if (with_nl) {
            finish_discard(nd);
        }
        return rc;
    }
    if (with_nl) {
        /* Copy out before emitting: the callback may feed more data re-entrantly. */
        cgw_buf_t line = nd->partial;
        nd->partial = (cgw_buf_t)CGW_BUF_INIT;
        emit(nd, line.data, line.len);
        cgw_buf_reset(&line);
        if (nd->partial.data == NULL) {
            nd->partial = line; /* keep the memory for the next split line */
        } else {
            cgw_buf_free(&line);
        }
    }
    return CGW_OK;
}

int cgw__ndjson_feed(cgw__ndjson_t *nd, const char *data, size_t len)
{
    int rc = CGW_OK;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl != NULL ? (size_t)(nl - data) : len;
        int r = segment(nd, data, n, nl != NULL);
        if (r != CGW_OK) {
            rc = r;
        }
        if (nl == NULL) {
            break;
        }
        data += n + 1;
        len -= n + 1;
    }
    return rc;
}
