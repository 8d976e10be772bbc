/*
 * Incremental SSE parser. See sse_parser.h for the grammar accepted and the deviations.
 *
 * Design: bytes are scanned for line ends; a line that lies wholly inside the chunk being fed
 * is processed in place (no copy), only a line cut by the chunk end is buffered in `line`.
 * `data` accumulates the event's data lines. A CR at the end of a chunk dispatches its line at
 * once and sets `skip_lf`, so that an LF at the start of the next chunk is not read as a
 * second (blank, event-dispatching) line.
 */
#include "proto/sse_parser.h"

#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"

#define SSE_DEFAULT_MAX_LINE ((size_t)8 << 20)
#define SSE_DEFAULT_MAX_EVENT ((size_t)16 << 20)

struct cgw_sse_parser {
    cgw_sse_parser_options_t opts;
    cgw_buf_t line;    /* the unterminated tail of the previous chunk */
    cgw_buf_t data;    /* data lines of the current event, each followed by '\n' */
    cgw_buf_t event;   /* the current event's `event:` value */
    cgw_buf_t last_id; /* last event id; survives dispatch */
    int64_t retry_ms;
    uint64_t count;
    int failed;      /* sticky error code, 0 when healthy */
    bool skip_lf;    /* previous chunk ended with CR */
    bool seen_data;  /* the current event has at least one data line */
    bool seen_event; /* the current event has an event: line */
    bool started;    /* the first line was seen (BOM check done) */
    bool finished;
};

void cgw_sse_parser_options_init(cgw_sse_parser_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->max_line = SSE_DEFAULT_MAX_LINE;
    opts->max_event = SSE_DEFAULT_MAX_EVENT;
}

int cgw_sse_parser_new(const cgw_sse_parser_options_t *opts, cgw_sse_parser_t **out)
{
    if (out == NULL || opts == NULL || opts->on_event == NULL || opts->max_line == 0 ||
        opts->max_event == 0) {
        return CGW_EINVAL;
    }
    cgw_sse_parser_t *p = cgw__calloc(1, sizeof(*p));
    if (p == NULL) {
        return CGW_ENOMEM;
    }
    p->opts = *opts;
    p->retry_ms = -1;
    *out = p;
    return CGW_OK;
}

void cgw_sse_parser_free(cgw_sse_parser_t *p)
{
    if (p == NULL) {
        return;
    }
    cgw_buf_free(&p->line);
    cgw_buf_free(&p->data);
    cgw_buf_free(&p->event);
    cgw_buf_free(&p->last_id);
    cgw_free(p);
}

static void reset_event(cgw_sse_parser_t *p)
{
    cgw_buf_reset(&p->data);
    cgw_buf_reset(&p->event);
    p->seen_data = false;
    p->seen_event = false;
}

void cgw_sse_parser_reset(cgw_sse_parser_t *p)
{
    reset_event(p);
    cgw_buf_reset(&p->line);
    cgw_buf_reset(&p->last_id);
    p->retry_ms = -1;
    p->count = 0;
    p->failed = 0;
    p->skip_lf = false;
    p->started = false;
    p->finished = false;
}

int64_t cgw_sse_parser_retry_ms(const cgw_sse_parser_t *p)
{
    return p->retry_ms;
}

cgw_str_t cgw_sse_parser_last_id(const cgw_sse_parser_t *p)
{
    cgw_str_t s = {p->last_id.data ? p->last_id.data : "", p->last_id.len};
    return s;
}

uint64_t cgw_sse_parser_event_count(const cgw_sse_parser_t *p)
{
    return p->count;
}

static int fail(cgw_sse_parser_t *p, cgw_error_t *err, int code, const char *what, size_t limit)
{
    p->failed = code;
    if (code == CGW_ELINETOOLONG) {
        return cgw_error_set(err, code, "SSE %s longer than the %zu-byte limit", what, limit);
    }
    return cgw_error_set(err, code, "SSE parser: %s", what);
}

static int dispatch(cgw_sse_parser_t *p, cgw_error_t *err)
{
    if (!p->seen_data && !p->seen_event) {
        return CGW_OK; /* only id/retry/comments: nothing to deliver (spec) */
    }
    cgw_sse_event_t ev;
    ev.event.ptr = p->event.data ? p->event.data : "";
    ev.event.len = p->event.len;
    ev.data.ptr = p->data.data ? p->data.data : "";
    ev.data.len = p->data.len > 0 ? p->data.len - 1 : 0; /* drop the last '\n' */
    ev.id = cgw_sse_parser_last_id(p);
    p->count++;
    int rc = p->opts.on_event(p->opts.user, &ev, err);
    reset_event(p);
    if (rc != CGW_OK) {
        p->failed = rc;
    }
    return rc;
}

/* `retry:` is honoured only when made of ASCII digits; saturates instead of overflowing. */
static void set_retry(cgw_sse_parser_t *p, const char *v, size_t n)
{
    if (n == 0) {
        return;
    }
    int64_t ms = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return;
        }
        int d = v[i] - '0';
        ms = ms > (INT64_MAX - d) / 10 ? INT64_MAX : ms * 10 + d;
    }
    p->retry_ms = ms;
}

static int field(cgw_sse_parser_t *p, const char *name, size_t nlen, const char *v, size_t vlen,
                 cgw_error_t *err)
{
    int rc = CGW_OK;
    if (nlen == 4 && memcmp(name, "data", 4) == 0) {
        if (p->data.len + vlen + 1 > p->opts.max_event) {
            return fail(p, err, CGW_ELINETOOLONG, "event data", p->opts.max_event);
        }
        rc = cgw_buf_append(&p->data, v, vlen);
        if (rc == CGW_OK) {
            rc = cgw_buf_append_char(&p->data, '\n');
        }
        p->seen_data = true;
    } else if (nlen == 5 && memcmp(name, "event", 5) == 0) {
        cgw_buf_reset(&p->event);
        rc = cgw_buf_append(&p->event, v, vlen);
        p->seen_event = true;
    } else if (nlen == 2 && memcmp(name, "id", 2) == 0) {
        if (memchr(v, '\0', vlen) == NULL) {
            cgw_buf_reset(&p->last_id);
            rc = cgw_buf_append(&p->last_id, v, vlen);
        }
    } else if (nlen == 5 && memcmp(name, "retry", 5) == 0) {
        set_retry(p, v, vlen);
    }
    if (rc != CGW_OK) {
        return fail(p, err, rc, "out of memory", 0);
    }
    return CGW_OK;
}

/* One complete line, terminator removed. */
static int process_line(cgw_sse_parser_t *p, const char *s, size_t n, cgw_error_t *err)
{
    if (!p->started) {
        p->started = true;
        if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
    }
    if (n == 0) {
        return dispatch(p, err);
    }
    if (s[0] == ':') {
        return CGW_OK;
    }
    const char *colon = memchr(s, ':', n);
    if (colon == NULL) {
        return field(p, s, n, "", 0, err);
    }
    size_t nlen = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    if (vlen > 0 && v[0] == ' ') {
        v++;
        vlen--;
    }
    return field(p, s, nlen, v, vlen, err);
}

/* Finds the next CR or LF in [s, end). */
static const char *find_eol(const char *s, const char *end)
{
    for (; s < end; s++) {
        if (*s == '\n' || *s == '\r') {
            return s;
        }
    }
    return NULL;
}

/* Handles one line that ends at `eol` (inside the chunk), joining the buffered tail if any. */
static int complete_line(cgw_sse_parser_t *p, const char *s, const char *eol, cgw_error_t *err)
{
    size_t n = (size_t)(eol - s);
    if (p->line.len + n > p->opts.max_line) {
        return fail(p, err, CGW_ELINETOOLONG, "line", p->opts.max_line);
    }
    if (p->line.len == 0) {
        return process_line(p, s, n, err);
    }
    int rc = cgw_buf_append(&p->line, s, n);
    if (rc != CGW_OK) {
        return fail(p, err, rc, "out of memory", 0);
    }
    rc = process_line(p, p->line.data, p->line.len, err);
    cgw_buf_reset(&p->line);
    return rc;
}

int cgw_sse_parser_feed(cgw_sse_parser_t *p, const char *data, size_t len, cgw_error_t *err)
{
    if (p->failed != 0) {
        return cgw_error_set(err, p->failed, "SSE parser already failed: %s",
                             cgw_strerror(p->failed));
    }
    if (p->finished) {
        return cgw_error_set(err, CGW_ESTATE, "SSE parser: feed after finish");
    }
    if (len == 0) {
        return CGW_OK; /* keeps skip_lf: the LF of a split CRLF may still come */
    }
    const char *s = data, *end = data + len;
    if (p->skip_lf && *s == '\n') {
        s++;
    }
    p->skip_lf = false;
    while (s < end) {
        const char *eol = find_eol(s, end);
        if (eol == NULL) {
            break;
        }
        int rc = complete_line(p, s, eol, err);
        if (rc != CGW_OK) {
            return rc;
        }
        s = eol + 1;
        if (*eol == '\r') {
            if (s == end) {
                p->skip_lf = true; /* a CRLF may be split across chunks */
            } else if (*s == '\n') {
                s++;
            }
        }
    }
    size_t rest = (size_t)(end - s);
    if (rest > 0) {
        if (p->line.len + rest > p->opts.max_line) {
            return fail(p, err, CGW_ELINETOOLONG, "line", p->opts.max_line);
        }
        int rc = cgw_buf_append(&p->line, s, rest);
        if (rc != CGW_OK) {
            return fail(p, err, rc, "out of memory", 0);
        }
    }
    return CGW_OK;
}

int cgw_sse_parser_finish(cgw_sse_parser_t *p, cgw_error_t *err)
{
    if (p->failed != 0) {
        return cgw_error_set(err, p->failed, "SSE parser already failed: %s",
                             cgw_strerror(p->failed));
    }
    if (p->finished) {
        return CGW_OK;
    }
    p->finished = true;
    int rc = CGW_OK;
    if (p->line.len > 0) {
        rc = process_line(p, p->line.data, p->line.len, err);
        cgw_buf_reset(&p->line);
    }
    if (rc == CGW_OK) {
        rc = dispatch(p, err);
    }
    return rc;
}
