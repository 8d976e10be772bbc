/*
 * Messages API stream accumulator. The rules are in msg_accum.h; this file keeps them short.
 *
 * State: the message object from message_start (owned), its `content` array, and one
 * block_t per content block. A block's streamed bytes (text, thinking or input JSON) go into
 * its byte buffer; the JSON string is rebuilt from the buffer only when someone needs it (the
 * block stops, the message is read), which keeps a long stream linear and lets the bytes stay
 * exactly as decoded, NUL bytes included.
 */
#include "proto/msg_accum.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "proto/delta_scan.h"

#define ACC_DEFAULT_MAX_BLOCK ((size_t)64 << 20)

/* Which of the block's fields the byte buffer feeds. */
typedef enum { BUF_NONE, BUF_TEXT, BUF_THINKING, BUF_INPUT } buf_kind_t;

typedef struct block {
    json_t *obj; /* borrowed from the content array, which holds the reference */
    buf_kind_t kind;
    cgw_buf_t buf;
    bool open;      /* started, not stopped */
    bool dirty;     /* buf changed since the JSON field was last set */
    bool got_input; /* at least one input_json_delta arrived */
} block_t;

typedef enum { ST_INIT, ST_STARTED, ST_STOPPED } state_t;

struct cgw_msg_accum {
    cgw_msg_accum_options_t opts;
    json_t *msg;
    json_t *content; /* borrowed from msg */
    block_t *blocks;
    size_t nblocks, cap;
    state_t state;
    int failed;
    bool content_started;
    uint64_t events;
    cgw_buf_t scratch; /* decoded string of a fast-path delta */
};

/* An event being processed: its name, decoded JSON (borrowed), and the caller's error. */
typedef struct evctx {
    cgw_str_t name;
    const json_t *ev;
    cgw_error_t *err;
} evctx_t;

void cgw_msg_accum_options_init(cgw_msg_accum_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->max_block_bytes = ACC_DEFAULT_MAX_BLOCK;
}

int cgw_msg_accum_new(const cgw_msg_accum_options_t *opts, cgw_msg_accum_t **out)
{
    if (out == NULL || (opts != NULL && opts->max_block_bytes == 0)) {
        return CGW_EINVAL;
    }
    cgw_msg_accum_t *a = cgw__calloc(1, sizeof(*a));
    if (a == NULL) {
        return CGW_ENOMEM;
    }
    if (opts != NULL) {
        a->opts = *opts;
    } else {
        cgw_msg_accum_options_init(&a->opts);
    }
    *out = a;
    return CGW_OK;
}

static void clear_message(cgw_msg_accum_t *a)
{
    for (size_t i = 0; i < a->nblocks; i++) {
        cgw_buf_free(&a->blocks[i].buf);
    }
    a->nblocks = 0;
    json_decref(a->msg);
    a->msg = NULL;
    a->content = NULL;
}

void cgw_msg_accum_free(cgw_msg_accum_t *a)
{
    if (a == NULL) {
        return;
    }
    clear_message(a);
    cgw_free(a->blocks);
    cgw_buf_free(&a->scratch);
    cgw_free(a);
}

void cgw_msg_accum_reset(cgw_msg_accum_t *a)
{
    clear_message(a);
    a->state = ST_INIT;
    a->failed = 0;
    a->content_started = false;
    a->events = 0;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static bool name_is(cgw_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static int fail(cgw_msg_accum_t *a, cgw_error_t *err, int code, const char *fmt, ...)
    CGW_PRINTF(4, 5);

static int fail(cgw_msg_accum_t *a, cgw_error_t *err, int code, const char *fmt, ...)
{
    a->failed = code;
    if (err != NULL) {
        char msg[sizeof(err->message)];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        cgw_error_set(err, code, "%s", msg);
    }
    return code;
}

static int report(cgw_msg_accum_t *a, evctx_t *ec, cgw_msg_ev_t *ev)
{
    if (ev->kind != CGW_MSG_EV_MESSAGE_START && ev->kind < CGW_MSG_EV_MESSAGE_DELTA) {
        a->content_started = true;
    }
    if (a->opts.on_event == NULL) {
        return CGW_OK;
    }
    /* the three hot delta kinds may be decoded without JSON values (delta_scan.h): never
     * expose raw for them, so consumers do not depend on which path ran */
    bool hot = ev->kind == CGW_MSG_EV_TEXT_DELTA || ev->kind == CGW_MSG_EV_THINKING_DELTA ||
               ev->kind == CGW_MSG_EV_INPUT_DELTA;
    ev->raw = hot ? NULL : ec->ev;
    ev->name = ec->name;
    int rc = a->opts.on_event(a->opts.user, ev, ec->err);
    if (rc != CGW_OK) {
        a->failed = rc;
    }
    return rc;
}

static const char *block_type(const block_t *b)
{
    const char *t = json_string_value(json_object_get(b->obj, "type"));
    return t != NULL ? t : "untyped";
}

/* Writes the buffered bytes into the block's JSON field. */
static int materialize(block_t *b)
{
    if (!b->dirty || (b->kind != BUF_TEXT && b->kind != BUF_THINKING)) {
        return CGW_OK;
    }
    json_t *s = json_stringn_nocheck(b->buf.data ? b->buf.data : "", b->buf.len);
    if (s == NULL || json_object_set_new(b->obj, b->kind == BUF_TEXT ? "text" : "thinking", s)) {
        return CGW_ENOMEM;
    }
    b->dirty = false;
    return CGW_OK;
}

/* ---- message-level events ----------------------------------------------------------------- */

static int grow_blocks(cgw_msg_accum_t *a, size_t need)
{
    if (need <= a->cap) {
        return CGW_OK;
    }
    size_t cap = a->cap ? a->cap * 2 : 8;
    while (cap < need) {
        cap *= 2;
    }
    block_t *nb = cgw__realloc(a->blocks, cap * sizeof(*nb));
    if (nb == NULL) {
        return CGW_ENOMEM;
    }
    a->blocks = nb;
    a->cap = cap;
    return CGW_OK;
}

/* Blocks already present in message_start's content (never seen in practice) count as
 * complete ones, so that indexes continue after them. */
static int adopt_initial_blocks(cgw_msg_accum_t *a)
{
    size_t n = json_array_size(a->content);
    if (grow_blocks(a, n) != CGW_OK) {
        return CGW_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        block_t *b = &a->blocks[i];
        memset(b, 0, sizeof(*b));
        b->obj = json_array_get(a->content, i);
        b->buf.limit = a->opts.max_block_bytes;
    }
    a->nblocks = n;
    return CGW_OK;
}

static int on_message_start(cgw_msg_accum_t *a, evctx_t *ec)
{
    if (a->state != ST_INIT) {
        return fail(a, ec->err, CGW_EPROTO,
                    "second message_start in one stream (spliced or duplicated stream)");
    }
    json_t *m = json_object_get(ec->ev, "message");
    if (!json_is_object(m)) {
        return fail(a, ec->err, CGW_EPROTO, "message_start without a \"message\" object");
    }
    a->msg = json_deep_copy(m);
    if (a->msg == NULL) {
        return fail(a, ec->err, CGW_ENOMEM, "out of memory copying message_start");
    }
    a->content = json_object_get(a->msg, "content");
    if (!json_is_array(a->content)) {
        a->content = json_array();
        if (a->content == NULL || json_object_set_new(a->msg, "content", a->content) != 0) {
            return fail(a, ec->err, CGW_ENOMEM, "out of memory");
        }
    }
    if (adopt_initial_blocks(a) != CGW_OK) {
        return fail(a, ec->err, CGW_ENOMEM, "out of memory");
    }
    a->state = ST_STARTED;
    cgw_msg_ev_t ev = {.kind = CGW_MSG_EV_MESSAGE_START};
    return report(a, ec, &ev);
}

/* Sets every member of `src` on `dst` (replace, never add up: usage values are totals). */
static int merge_into(json_t *owner, const char *key, json_t *src)
{
    json_t *dst = json_object_get(owner, key);
    if (!json_is_object(dst)) {
        return json_object_set(owner, key, src) == 0 ? CGW_OK : CGW_ENOMEM;
    }
    return json_object_update(dst, src) == 0 ? CGW_OK : CGW_ENOMEM;
}

static int on_message_delta(cgw_msg_accum_t *a, evctx_t *ec)
{
    json_t *delta = json_object_get(ec->ev, "delta");
    json_t *usage = json_object_get(ec->ev, "usage");
    if ((delta != NULL && !json_is_object(delta)) || (usage != NULL && !json_is_object(usage))) {
        return fail(a, ec->err, CGW_EPROTO, "message_delta: \"delta\"/\"usage\" not objects");
    }
    const char *key;
    json_t *v;
    json_object_foreach(delta, key, v)
    {
        /* "content" is never a message_delta field; refusing it keeps a->content valid. */
        if (strcmp(key, "content") != 0 && json_object_set(a->msg, key, v) != 0) {
            return fail(a, ec->err, CGW_ENOMEM, "out of memory");
        }
    }
    if (usage != NULL && merge_into(a->msg, "usage", usage) != CGW_OK) {
        return fail(a, ec->err, CGW_ENOMEM, "out of memory");
    }
    cgw_msg_ev_t ev = {.kind = CGW_MSG_EV_MESSAGE_DELTA};
    return report(a, ec, &ev);
}

static int close_block(cgw_msg_accum_t *a, evctx_t *ec, size_t index, bool truncated);

static int on_message_stop(cgw_msg_accum_t *a, evctx_t *ec)
{
    for (size_t i = 0; i < a->nblocks; i++) {
        if (a->blocks[i].open) {
            int rc = close_block(a, ec, i, true);
            if (rc != CGW_OK) {
                return rc;
            }
        }
    }
    a->state = ST_STOPPED;
    cgw_msg_ev_t ev = {.kind = CGW_MSG_EV_MESSAGE_STOP};
    return report(a, ec, &ev);
}

/* An `error` event: the API's error.type and error.message go into err as they are. */
static int on_error(cgw_msg_accum_t *a, evctx_t *ec)
{
    json_t *e = json_object_get(ec->ev, "error");
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *rid = json_string_value(json_object_get(ec->ev, "request_id"));
    a->failed = CGW_EAPI;
    if (ec->err != NULL) {
        cgw_error_set(ec->err, CGW_EAPI, "%s", msg ? msg : "error event without a message");
        snprintf(ec->err->type, sizeof(ec->err->type), "%s", type ? type : "");
        if (rid != NULL) {
            snprintf(ec->err->request_id, sizeof(ec->err->request_id), "%s", rid);
        }
    }
    return CGW_EAPI;
}

/* ---- block events ------------------------------------------------------------------------- */

static int check_open(cgw_msg_accum_t *a, evctx_t *ec, const char *what, json_int_t i, size_t *out)
{
    if ((uint64_t)i >= a->nblocks || !a->blocks[i].open) {
        return fail(a, ec->err, CGW_EPROTO, "%s for index %lld, which is not an open block", what,
                    (long long)i);
    }
    *out = (size_t)i;
    return CGW_OK;
}

/* Reads "index" and checks it names an open block. */
static int open_block_index(cgw_msg_accum_t *a, evctx_t *ec, const char *what, size_t *out)
{
    json_t *ix = json_object_get(ec->ev, "index");
    if (!json_is_integer(ix) || json_integer_value(ix) < 0) {
        return fail(a, ec->err, CGW_EPROTO, "%s without a valid \"index\"", what);
    }
    return check_open(a, ec, what, json_integer_value(ix), out);
}

static buf_kind_t kind_of(const json_t *blk, const char *type)
{
    if (strcmp(type, "text") == 0) {
        return BUF_TEXT;
    }
    if (strcmp(type, "thinking") == 0) {
        return BUF_THINKING;
    }
    size_t n = strlen(type);
    bool tool = n >= 8 && strcmp(type + n - 8, "tool_use") == 0; /* tool_use, mcp_tool_use... */
    return tool || json_object_get(blk, "input") != NULL ? BUF_INPUT : BUF_NONE;
}

static int init_block(cgw_msg_accum_t *a, block_t *b, json_t *obj, const char *type)
{
    memset(b, 0, sizeof(*b));
    b->obj = obj;
    b->open = true;
    b->kind = kind_of(obj, type);
    b->buf.limit = a->opts.max_block_bytes;
    if (b->kind == BUF_TEXT || b->kind == BUF_THINKING) {
        json_t *s = json_object_get(obj, b->kind == BUF_TEXT ? "text" : "thinking");
        if (json_is_string(s)) {
            return cgw_buf_append(&b->buf, json_string_value(s), json_string_length(s));
        }
        b->dirty = true; /* null or missing: becomes "" or the streamed text */
    }
    return CGW_OK;
}

static int on_block_start(cgw_msg_accum_t *a, evctx_t *ec)
{
    json_t *ix = json_object_get(ec->ev, "index");
    json_t *cb = json_object_get(ec->ev, "content_block");
    const char *type = json_string_value(json_object_get(cb, "type"));
    if (!json_is_integer(ix) || type == NULL) {
        return fail(a, ec->err, CGW_EPROTO,
                    "content_block_start without an integer \"index\" and a typed block");
    }
    if (json_integer_value(ix) != (json_int_t)a->nblocks) {
        return fail(a, ec->err, CGW_EPROTO, "content_block_start for index %lld, expected %zu",
                    (long long)json_integer_value(ix), a->nblocks);
    }
    json_t *copy = json_deep_copy(cb);
    if (copy == NULL || grow_blocks(a, a->nblocks + 1) != CGW_OK ||
        json_array_append_new(a->content, copy) != 0) {
        return fail(a, ec->err, CGW_ENOMEM, "out of memory");
    }
    block_t *b = &a->blocks[a->nblocks++];
    if (init_block(a, b, copy, type) != CGW_OK) {
        return fail(a, ec->err, CGW_E2BIG, "content block %zu: initial text too large",
                    a->nblocks - 1);
    }
    cgw_msg_ev_t ev = {
        .kind = CGW_MSG_EV_BLOCK_START, .index = a->nblocks - 1, .block_type = type, .block = copy};
    return report(a, ec, &ev);
}

/* Parses a block's streamed input JSON; on failure the block loses its "input" so that no
 * half-built value can ever be mistaken for a tool's arguments. */
static int finish_input(cgw_msg_accum_t *a, evctx_t *ec, size_t index, bool truncated)
{
    block_t *b = &a->blocks[index];
    json_t *input;
    if (b->buf.len == 0) {
        input = json_object();
    } else {
        json_error_t je;
        input = json_loadb(b->buf.data, b->buf.len, JSON_ALLOW_NUL, &je);
        if (!truncated && a->opts.lenient_tool_input && !json_is_object(input)) {
            json_decref(input);
            input = json_object();
        }
        if (input == NULL) {
            json_object_del(b->obj, "input");
            if (truncated) {
                return fail(a, ec->err, CGW_ETRUNCATED,
                            "content block %zu (%s) was cut off before content_block_stop; "
                            "its input JSON is incomplete (%s)",
                            index, block_type(b), je.text);
            }
            return fail(a, ec->err, CGW_EJSON,
                        "content block %zu (%s): streamed input is not valid JSON: %s "
                        "(line %d, column %d)",
                        index, block_type(b), je.text, je.line, je.column);
        }
    }
    if (input != NULL && !json_is_object(input)) {
        json_decref(input);
        json_object_del(b->obj, "input");
        return fail(a, ec->err, CGW_EJSON,
                    "content block %zu (%s): streamed input is not a "
                    "JSON object",
                    index, block_type(b));
    }
    if (input == NULL || json_object_set_new(b->obj, "input", input) != 0) {
        return fail(a, ec->err, CGW_ENOMEM, "out of memory");
    }
    cgw_buf_free(&b->buf);
    return CGW_OK;
}

static int close_block(cgw_msg_accum_t *a, evctx_t *ec, size_t index, bool truncated)
{
    block_t *b = &a->blocks[index];
    int rc = CGW_OK;
    if (b->kind == BUF_INPUT && b->got_input) {
        rc = finish_input(a, ec, index, truncated);
    } else if (materialize(b) != CGW_OK) {
        rc = fail(a, ec->err, CGW_ENOMEM, "out of memory");
    }
    if (rc != CGW_OK) {
        return rc;
    }
    b->open = false;
    cgw_msg_ev_t ev = {.kind = CGW_MSG_EV_BLOCK_STOP,
                       .index = index,
                       .block_type = block_type(b),
                       .block = b->obj};
    return report(a, ec, &ev);
}

static int on_block_stop(cgw_msg_accum_t *a, evctx_t *ec)
{
    size_t index;
    int rc = open_block_index(a, ec, "content_block_stop", &index);
    return rc != CGW_OK ? rc : close_block(a, ec, index, false);
}

/* Appends decoded delta bytes to the block buffer and reports them. */
static int append_bytes(cgw_msg_accum_t *a, evctx_t *ec, size_t index, const char *p, size_t n,
                        cgw_msg_ev_kind_t kind)
{
    block_t *b = &a->blocks[index];
    int rc = cgw_buf_append(&b->buf, p, n);
    if (rc != CGW_OK) {
        return fail(a, ec->err, rc, "content block %zu: more than %zu bytes streamed", index,
                    a->opts.max_block_bytes);
    }
    b->dirty = true;
    if (kind == CGW_MSG_EV_INPUT_DELTA) {
        b->got_input = true;
    }
    cgw_msg_ev_t ev = {.kind = kind, .index = index, .block_type = block_type(b), .text = {p, n}};
    return report(a, ec, &ev);
}

/* Appends a delta's string member to the block buffer and reports it. */
static int append_delta(cgw_msg_accum_t *a, evctx_t *ec, size_t index, const json_t *delta,
                        const char *key, cgw_msg_ev_kind_t kind)
{
    json_t *s = json_object_get(delta, key);
    if (!json_is_string(s)) {
        return fail(a, ec->err, CGW_EPROTO, "content block %zu: delta without a string \"%s\"",
                    index, key);
    }
    return append_bytes(a, ec, index, json_string_value(s), json_string_length(s), kind);
}

static int set_signature(cgw_msg_accum_t *a, evctx_t *ec, size_t index, json_t *delta)
{
    block_t *b = &a->blocks[index];
    json_t *s = json_object_get(delta, "signature");
    if (!json_is_string(s)) {
        return fail(a, ec->err, CGW_EPROTO,
                    "content block %zu: signature_delta without a "
                    "string \"signature\"",
                    index);
    }
    if (json_object_set(b->obj, "signature", s) != 0) {
        return fail(a, ec->err, CGW_ENOMEM, "out of memory");
    }
    cgw_msg_ev_t ev = {.kind = CGW_MSG_EV_SIGNATURE,
                       .index = index,
                       .block_type = block_type(b),
                       .text = {json_string_value(s), json_string_length(s)}};
    return report(a, ec, &ev);
}

static int add_citation(cgw_msg_accum_t *a, evctx_t *ec, size_t index, json_t *delta)
{
    block_t *b = &a->blocks[index];
    json_t *c = json_object_get(delta, "citation");
    if (!json_is_object(c)) {
        return fail(a, ec->err, CGW_EPROTO,
                    "content block %zu: citations_delta without a "
                    "\"citation\" object",
                    index);
    }
    json_t *list = json_object_get(b->obj, "citations");
    if (!json_is_array(list)) {
        list = json_array();
        if (list == NULL || json_object_set_new(b->obj, "citations", list) != 0) {
            return fail(a, ec->err, CGW_ENOMEM, "out of memory");
        }
    }
    if (json_array_append(list, c) != 0) {
        return fail(a, ec->err, CGW_ENOMEM, "out of memory");
    }
    cgw_msg_ev_t ev = {
        .kind = CGW_MSG_EV_CITATION, .index = index, .block_type = block_type(b), .block = c};
    return report(a, ec, &ev);
}

/* compaction_delta carries the block's final fields; unknown deltas are only reported. */
static int other_delta(cgw_msg_accum_t *a, evctx_t *ec, size_t index, json_t *delta,
                       const char *dtype)
{
    block_t *b = &a->blocks[index];
    if (strcmp(dtype, "compaction_delta") == 0) {
        const char *key;
        json_t *v;
        json_object_foreach(delta, key, v)
        {
            if (strcmp(key, "type") != 0 && json_object_set(b->obj, key, v) != 0) {
                return fail(a, ec->err, CGW_ENOMEM, "out of memory");
            }
        }
    }
    cgw_msg_ev_t ev = {.kind = CGW_MSG_EV_OTHER_DELTA,
                       .index = index,
                       .block_type = block_type(b),
                       .block = delta};
    return report(a, ec, &ev);
}

/* Which block kind each known delta type needs; BUF_NONE entries need a given block type. */
static int check_fit(cgw_msg_accum_t *a, evctx_t *ec, size_t index, const char *dtype,
                     buf_kind_t need)
{
    block_t *b = &a->blocks[index];
    if (b->kind == need) {
        return CGW_OK;
    }
    return fail(a, ec->err, CGW_EPROTO, "content block %zu: %s does not fit a %s block", index,
                dtype, block_type(b));
}

static int on_block_delta(cgw_msg_accum_t *a, evctx_t *ec)
{
    size_t i;
    int rc = open_block_index(a, ec, "content_block_delta", &i);
    if (rc != CGW_OK) {
        return rc;
    }
    json_t *d = json_object_get(ec->ev, "delta");
    const char *t = json_string_value(json_object_get(d, "type"));
    if (t == NULL) {
        return fail(a, ec->err, CGW_EPROTO,
                    "content_block_delta for index %zu without a typed "
                    "\"delta\"",
                    i);
    }
    if (strcmp(t, "text_delta") == 0) {
        rc = check_fit(a, ec, i, t, BUF_TEXT);
        return rc ? rc : append_delta(a, ec, i, d, "text", CGW_MSG_EV_TEXT_DELTA);
    }
    if (strcmp(t, "input_json_delta") == 0) {
        rc = check_fit(a, ec, i, t, BUF_INPUT);
        return rc ? rc : append_delta(a, ec, i, d, "partial_json", CGW_MSG_EV_INPUT_DELTA);
    }
    if (strcmp(t, "thinking_delta") == 0) {
        rc = check_fit(a, ec, i, t, BUF_THINKING);
        return rc ? rc : append_delta(a, ec, i, d, "thinking", CGW_MSG_EV_THINKING_DELTA);
    }
    if (strcmp(t, "signature_delta") == 0) {
        rc = check_fit(a, ec, i, t, BUF_THINKING);
        return rc ? rc : set_signature(a, ec, i, d);
    }
    if (strcmp(t, "citations_delta") == 0) {
        rc = check_fit(a, ec, i, t, BUF_TEXT);
        return rc ? rc : add_citation(a, ec, i, d);
    }
    return other_delta(a, ec, i, d, t);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static int on_unknown(cgw_msg_accum_t *a, evctx_t *ec)
{
    cgw_msg_ev_t ev = {.kind = CGW_MSG_EV_UNKNOWN};
    return report(a, ec, &ev);
}

typedef int (*handler_fn)(cgw_msg_accum_t *a, evctx_t *ec);

static const struct {
    const char *name;
    handler_fn fn;
} handlers[] = {
    {"content_block_delta", on_block_delta}, {"content_block_start", on_block_start},
    {"content_block_stop", on_block_stop},   {"message_delta", on_message_delta},
    {"message_stop", on_message_stop},       {"message_start", on_message_start},
};

static int dispatch(cgw_msg_accum_t *a, evctx_t *ec)
{
    if (name_is(ec->name, "ping")) {
        return CGW_OK;
    }
    if (name_is(ec->name, "error")) {
        return on_error(a, ec);
    }
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
        if (!name_is(ec->name, handlers[i].name)) {
            continue;
        }
        if (a->state == ST_INIT && handlers[i].fn != on_message_start) {
            return fail(a, ec->err, CGW_EPROTO, "%s before message_start", handlers[i].name);
        }
        if (a->state == ST_STOPPED) {
            return fail(a, ec->err, CGW_EPROTO, "%s after message_stop", handlers[i].name);
        }
        return handlers[i].fn(a, ec);
    }
    return on_unknown(a, ec);
}

static int check_usable(cgw_msg_accum_t *a, cgw_error_t *err)
{
    if (a->failed != 0) {
        return cgw_error_set(err, a->failed, "message accumulator already failed: %s",
                             cgw_strerror(a->failed));
    }
    return CGW_OK;
}

static int feed_event(cgw_msg_accum_t *a, cgw_str_t type, const json_t *event, cgw_error_t *err)
{
    evctx_t ec = {type, event, err};
    if (type.len == 0) {
        const char *t = json_string_value(json_object_get(event, "type"));
        if (t == NULL) {
            return fail(a, err, CGW_EPROTO, "event without an event name or a \"type\" field");
        }
        ec.name.ptr = t;
        ec.name.len = json_string_length(json_object_get(event, "type"));
    }
    int rc = dispatch(a, &ec);
    if (rc == CGW_OK) {
        a->events++;
    }
    return rc;
}

int cgw_msg_accum_feed_json(cgw_msg_accum_t *a, cgw_str_t type, const json_t *event,
                            cgw_error_t *err)
{
    if (type.ptr == NULL) {
        type.ptr = "";
        type.len = 0;
    }
    int rc = check_usable(a, err);
    if (rc != CGW_OK) {
        return rc;
    }
    if (!json_is_object(event)) {
        return fail(a, err, CGW_EJSON, "event data is not a JSON object");
    }
    return feed_event(a, type, event, err);
}

static bool is_known(cgw_str_t type)
{
    if (name_is(type, "ping") || name_is(type, "error")) {
        return true;
    }
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
        if (name_is(type, handlers[i].name)) {
            return true;
        }
    }
    return false;
}

/* An event type this code does not know is ignored whatever its data holds. */
static int skip_unknown(cgw_msg_accum_t *a, cgw_str_t type, cgw_error_t *err)
{
    evctx_t ec = {type, NULL, err};
    int rc = on_unknown(a, &ec);
    a->events += rc == CGW_OK;
    return rc;
}

static int name_len(cgw_str_t type)
{
    return (int)(type.len > 64 ? 64 : type.len);
}

/* Empty data is legal only where the event carries no information. */
static int feed_empty(cgw_msg_accum_t *a, cgw_str_t type, cgw_error_t *err)
{
    if (name_is(type, "message_stop") || name_is(type, "ping")) {
        json_t *ev = json_object();
        if (ev == NULL) {
            return fail(a, err, CGW_ENOMEM, "out of memory");
        }
        int rc = feed_event(a, type, ev, err);
        json_decref(ev);
        return rc;
    }
    if (type.len == 0) {
        return fail(a, err, CGW_EJSON, "event with neither a name nor data");
    }
    if (!is_known(type)) {
        return skip_unknown(a, type, err);
    }
    if (name_is(type, "error")) {
        return fail(a, err, CGW_EAPI, "error event without data");
    }
    return fail(a, err, CGW_EJSON, "%.*s event without data", name_len(type), type.ptr);
}

/* A delta recognised by cgw__delta_scan: same checks and effects as on_block_delta. */
static int feed_fast(cgw_msg_accum_t *a, const cgw_delta_t *d, cgw_error_t *err)
{
    static const struct {
        buf_kind_t need;
        cgw_msg_ev_kind_t kind;
        const char *name;
    } map[] = {
        [CGW_DELTA_TEXT] = {BUF_TEXT, CGW_MSG_EV_TEXT_DELTA, "text_delta"},
        [CGW_DELTA_THINKING] = {BUF_THINKING, CGW_MSG_EV_THINKING_DELTA, "thinking_delta"},
        [CGW_DELTA_INPUT] = {BUF_INPUT, CGW_MSG_EV_INPUT_DELTA, "input_json_delta"},
    };
    evctx_t ec = {{"content_block_delta", 19}, NULL, err};
    size_t i = 0;
    int rc = check_open(a, &ec, "content_block_delta", (json_int_t)d->index, &i);
    if (rc == CGW_OK) {
        rc = check_fit(a, &ec, i, map[d->kind].name, map[d->kind].need);
    }
    if (rc == CGW_OK) {
        rc = append_bytes(a, &ec, i, a->scratch.data ? a->scratch.data : "", a->scratch.len,
                          map[d->kind].kind);
    }
    a->events += rc == CGW_OK;
    return rc;
}

static bool only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
            return false;
        }
    }
    return true;
}

int cgw_msg_accum_feed(cgw_msg_accum_t *a, cgw_str_t type, const char *data, size_t len,
                       cgw_error_t *err)
{
    if (type.ptr == NULL) {
        type.ptr = "";
        type.len = 0;
    }
    int rc = check_usable(a, err);
    if (rc != CGW_OK) {
        return rc;
    }
    if (len == 0 || only_space(data, len)) {
        return feed_empty(a, type, err);
    }
    if (a->state == ST_STARTED && (type.len == 0 || name_is(type, "content_block_delta"))) {
        cgw_delta_t d;
        if (cgw__delta_scan(data, len, &d, &a->scratch)) {
            return feed_fast(a, &d, err);
        }
    }
    json_error_t je;
    json_t *ev = json_loadb(data, len, JSON_ALLOW_NUL, &je);
    if (json_is_object(ev)) {
        rc = feed_event(a, type, ev, err);
        json_decref(ev);
        return rc;
    }
    json_decref(ev);
    if (type.len > 0 && !is_known(type)) {
        return skip_unknown(a, type, err);
    }
    if (name_is(type, "error")) {
        /* still the API's failure, so the retry logic sees CGW_EAPI, with the text it sent */
        return fail(a, err, CGW_EAPI, "error event with non-JSON data: %.*s",
                    (int)(len > 200 ? 200 : len), data);
    }
    rc = fail(a, err, CGW_EJSON, "%.*s event data is not a JSON object: %s", name_len(type),
              type.ptr, ev ? "another JSON value" : je.text);
    if (err != NULL && ev == NULL) {
        err->line = je.line;
        err->column = je.column;
    }
    return rc;
}

int cgw_msg_accum_sse_cb(void *user, const cgw_sse_event_t *ev, cgw_error_t *err)
{
    return cgw_msg_accum_feed(user, ev->event, ev->data.ptr, ev->data.len, err);
}

int cgw_msg_accum_finish(cgw_msg_accum_t *a, cgw_error_t *err)
{
    int rc = check_usable(a, err);
    if (rc != CGW_OK) {
        return rc;
    }
    if (a->state != ST_STOPPED) {
        return fail(a, err, CGW_ETRUNCATED, "stream ended before message_stop%s",
                    a->state == ST_INIT ? " (no message_start either)" : "");
    }
    return CGW_OK;
}

/* ---- getters ------------------------------------------------------------------------------ */

const json_t *cgw_msg_accum_message(cgw_msg_accum_t *a)
{
    for (size_t i = 0; i < a->nblocks; i++) {
        if (materialize(&a->blocks[i]) != CGW_OK) {
            return NULL;
        }
    }
    return a->msg;
}

bool cgw_msg_accum_complete(const cgw_msg_accum_t *a)
{
    return a->state == ST_STOPPED && a->failed == 0;
}

bool cgw_msg_accum_content_started(const cgw_msg_accum_t *a)
{
    return a->content_started;
}

const char *cgw_msg_accum_stop_reason(const cgw_msg_accum_t *a)
{
    return json_string_value(json_object_get(a->msg, "stop_reason"));
}

const char *cgw_msg_accum_stop_sequence(const cgw_msg_accum_t *a)
{
    return json_string_value(json_object_get(a->msg, "stop_sequence"));
}

const json_t *cgw_msg_accum_usage(const cgw_msg_accum_t *a)
{
    return json_object_get(a->msg, "usage");
}

size_t cgw_msg_accum_block_count(const cgw_msg_accum_t *a)
{
    return a->nblocks;
}

uint64_t cgw_msg_accum_event_count(const cgw_msg_accum_t *a)
{
    return a->events;
}
