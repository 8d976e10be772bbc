/* Rendering a mock turn into what goes on the wire: the SSE frames of a streamed answer (with
 * the pause before each one and where a fault cuts it short), or the Message JSON of a
 * non-streamed one. The event shapes are those of anthropic-protocol.md §4.3. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "server/http_util.h"
#include "server/mock_script.h"

static const struct {
    int status;
    const char *type;
    const char *message;
} error_defaults[] = {
    {400, "invalid_request_error", "Invalid request"},
    {401, "authentication_error", "invalid x-api-key"},
    {402, "billing_error", "Your credit balance is too low to access the Anthropic API."},
    {403, "permission_error",
     "Your API key does not have permission to use the specified "
     "resource."},
    {404, "not_found_error", "Not found"},
    {408, "timeout_error", "Request timed out"},
    {409, "conflict_error", "Conflict"},
    {413, "request_too_large", "Request exceeds the maximum allowed number of bytes."},
    {429, "rate_limit_error",
     "This request would exceed the rate limit for your organization. "
     "Please try again later."},
    {500, "api_error", "Internal server error"},
    {504, "timeout_error", "Request timed out"},
    {529, "overloaded_error", "Overloaded"},
};

#define NDEFAULTS (sizeof(error_defaults) / sizeof(error_defaults[0]))

const char *cgw__mock_default_error_type(int status)
{
    for (size_t i = 0; i < NDEFAULTS; i++) {
        if (error_defaults[i].status == status) {
            return error_defaults[i].type;
        }
    }
    return status >= 500 ? "api_error" : "invalid_request_error";
}

const char *cgw__mock_default_error_message(int status)
{
    for (size_t i = 0; i < NDEFAULTS; i++) {
        if (error_defaults[i].status == status) {
            return error_defaults[i].message;
        }
    }
    return status >= 500 ? "Internal server error" : "Invalid request";
}

int cgw__mock_error_status(const char *type)
{
    /* 500 maps back to api_error and 504 is the only other timeout, so the first match wins. */
    for (size_t i = 0; i < NDEFAULTS; i++) {
        if (strcmp(error_defaults[i].type, type) == 0 && error_defaults[i].status != 408) {
            return error_defaults[i].status;
        }
    }
    return 500;
}

/* ---- streamed answers -------------------------------------------------------------------- */

struct planner {
    cgw__mock_plan_t *plan;
    size_t cap;
    int deltas;  /* content_block_delta frames so far */
    long cutoff; /* frames to keep when a fault fires, -1 while unknown */
    cgw__mock_at_t at;
};

/* Called after each content_block_delta frame: marks where a fault "after N deltas" cuts. */
static void count_delta(struct planner *pl)
{
    if (++pl->deltas == pl->at.deltas && pl->at.kind == CGW_MOCK_AT_DELTAS && pl->cutoff < 0) {
        pl->cutoff = (long)pl->plan->nframes;
    }
}

/* Appends the finished frame in `b` (taken) to the plan. */
static int push_frame(struct planner *pl, cgw_buf_t *b, int delay_ms)
{
    cgw__mock_plan_t *p = pl->plan;
    if (p->nframes == pl->cap) {
        size_t ncap = pl->cap ? 2 * pl->cap : 16;
        cgw__mock_frame_t *nf = cgw__realloc(p->frames, ncap * sizeof(*nf));
        if (nf == NULL) {
            cgw_buf_free(b);
            return CGW_ENOMEM;
        }
        p->frames = nf;
        pl->cap = ncap;
    }
    cgw__mock_frame_t *f = &p->frames[p->nframes++];
    f->len = b->len;
    f->bytes = cgw_buf_steal(b, NULL);
    f->delay_ms = delay_ms;
    f->stamp_at = -1;
    return f->bytes != NULL ? CGW_OK : CGW_ENOMEM;
}

static int add_frame(struct planner *pl, const char *event, const json_t *data, int delay_ms)
{
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_buf_appendf(&b, "event: %s\ndata: ", event);
    rc = rc == CGW_OK ? cgw_json_dump_buf(data, &b) : rc;
    rc = rc == CGW_OK ? cgw_buf_append(&b, "\n\n", 2) : rc;
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        return rc;
    }
    return push_frame(pl, &b, delay_ms);
}

/* Adds a frame and steals `data`. */
static int add_new(struct planner *pl, const char *event, json_t *data, int delay_ms)
{
    int rc = data != NULL ? add_frame(pl, event, data, delay_ms) : CGW_ENOMEM;
    json_decref(data);
    return rc;
}

/* The escape of byte c inside a JSON string, as jansson's dump writes it, or NULL. */
static const char *json_escape(unsigned char c, char u[7])
{
    static const char hex[] = "0123456789ABCDEF";
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    default:
        if (c >= 0x20) {
            return NULL;
        }
        snprintf(u, 7, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
        return u;
    }
}

/* Appends `len` bytes of UTF-8 as a JSON string escaped exactly as jansson's compact dump does,
 * so that the frame is byte-identical to the one add_frame would build. */
static int append_json_string(cgw_buf_t *b, const char *s, size_t len)
{
    int rc = cgw_buf_append_char(b, '"');
    size_t run = 0; /* start of the pending bytes that need no escape */
    for (size_t i = 0; rc == CGW_OK && i < len; i++) {
        char u[7];
        const char *esc = json_escape((unsigned char)s[i], u);
        if (esc != NULL) {
            rc = cgw_buf_append(b, s + run, i - run);
            rc = rc == CGW_OK ? cgw_buf_append_str(b, esc) : rc;
            run = i + 1;
        }
    }
    rc = rc == CGW_OK ? cgw_buf_append(b, s + run, len - run) : rc;
    return rc == CGW_OK ? cgw_buf_append_char(b, '"') : rc;
}

/* A content_block_delta frame, rendered without building a JSON value: deltas are nearly all
 * of a stream, and going through jansson cost about ten times more per delta. */
static int add_delta(struct planner *pl, size_t index, const char *type, const char *key,
                     const char *s, size_t len, int delay_ms)
{
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_buf_appendf(&b,
                             "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                             "\"index\":%zu,\"delta\":{\"type\":\"%s\",\"%s\":",
                             index, type, key);
    rc = rc == CGW_OK ? append_json_string(&b, s, len) : rc;
    rc = rc == CGW_OK ? cgw_buf_append(&b, "}}\n\n", 4) : rc;
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        return rc;
    }
    rc = push_frame(pl, &b, delay_ms);
    if (rc == CGW_OK && memmem(s, len, CGW_MOCK_STAMP, strlen(CGW_MOCK_STAMP)) != NULL) {
        cgw__mock_frame_t *f = &pl->plan->frames[pl->plan->nframes - 1];
        const char *m = memmem(f->bytes, f->len, CGW_MOCK_STAMP, strlen(CGW_MOCK_STAMP));
        f->stamp_at = m != NULL ? (long)(m - f->bytes) : -1;
    }
    count_delta(pl);
    return rc;
}

static int add_block(struct planner *pl, const cgw__mock_turn_t *t, size_t index)
{
    const cgw__mock_block_t *b = &t->blocks[index];
    int delay = b->delay_ms >= 0 ? b->delay_ms : t->delay_ms;
    int rc = add_new(pl, "content_block_start",
                     json_pack("{s:s,s:I,s:O}", "type", "content_block_start", "index",
                               (json_int_t)index, "content_block", b->start),
                     0);
    size_t i;
    const json_t *piece;
    json_array_foreach(b->deltas, i, piece)
    {
        if (rc == CGW_OK) {
            rc = add_delta(pl, index, b->delta_type, b->delta_key, json_string_value(piece),
                           json_string_length(piece), delay);
        }
    }
    const json_t *cite;
    json_array_foreach(b->citations, i, cite)
    {
        if (rc == CGW_OK) {
            rc = add_new(pl, "content_block_delta",
                         json_pack("{s:s,s:I,s:{s:s,s:O}}", "type", "content_block_delta", "index",
                                   (json_int_t)index, "delta", "type", "citations_delta",
                                   "citation", cite),
                         delay);
            count_delta(pl);
        }
    }
    const char *sig = cgw_json_str(b->final, "signature", NULL);
    if (rc == CGW_OK && sig != NULL && strcmp(b->delta_type, "thinking_delta") == 0) {
        rc = add_delta(pl, index, "signature_delta", "signature", sig, strlen(sig), delay);
    }
    if (rc == CGW_OK) {
        rc = add_new(
            pl, "content_block_stop",
            json_pack("{s:s,s:I}", "type", "content_block_stop", "index", (json_int_t)index), 0);
    }
    return rc;
}

static json_t *start_usage(const json_t *usage)
{
    json_t *u = json_deep_copy(usage);
    if (u != NULL) {
        json_object_set_new(u, "output_tokens", json_integer(1));
    }
    return u;
}

static int plan_message(struct planner *pl, const cgw__mock_turn_t *t, const char *model,
                        const char *msg_id)
{
    int rc = add_new(pl, "message_start",
                     json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:o}}", "type",
                               "message_start", "message", "id", t->id != NULL ? t->id : msg_id,
                               "type", "message", "role", "assistant", "model",
                               t->model != NULL ? t->model : model, "content", "stop_reason",
                               "stop_sequence", "usage", start_usage(t->usage)),
                     0);
    if (rc == CGW_OK && t->ping) {
        rc = add_new(pl, "ping", json_pack("{s:s}", "type", "ping"), 0);
    }
    if (pl->at.kind == CGW_MOCK_AT_DELTAS && pl->at.deltas == 0) {
        pl->cutoff = (long)pl->plan->nframes;
    }
    for (size_t i = 0; rc == CGW_OK && i < t->nblocks; i++) {
        rc = add_block(pl, t, i);
    }
    if (pl->at.kind == CGW_MOCK_AT_DELTAS && pl->cutoff < 0) {
        pl->cutoff = (long)pl->plan->nframes; /* more deltas asked than the turn has */
    }
    if (rc == CGW_OK) {
        rc = add_new(pl, "message_delta",
                     json_pack("{s:s,s:{s:O,s:O,s:O*},s:O}", "type", "message_delta", "delta",
                               "stop_reason", t->stop_reason, "stop_sequence", t->stop_sequence,
                               "stop_details", t->stop_details, "usage", t->usage),
                     0);
    }
    return rc == CGW_OK ? add_new(pl, "message_stop", json_pack("{s:s}", "type", "message_stop"), 0)
                        : rc;
}

static int plan_replay(struct planner *pl, const cgw__mock_turn_t *t)
{
    const cgw__mock_capture_t *c = t->replay;
    size_t *ends = NULL;
    long n = cgw__mock_sse_frames(c->body, c->body_len, &ends);
    cgw__mock_plan_t *p = pl->plan;
    if (n < 0 || (n > 0 && (p->frames = cgw__calloc((size_t)n, sizeof(*p->frames))) == NULL)) {
        cgw_free(ends);
        return CGW_ENOMEM;
    }
    pl->cap = (size_t)n;
    size_t start = 0;
    for (long i = 0; i < n; i++) {
        cgw__mock_frame_t *f = &p->frames[p->nframes];
        f->len = ends[i] - start;
        f->bytes = cgw__memdup(c->body + start, f->len);
        f->delay_ms = i > 0 ? t->delay_ms : 0;
        f->stamp_at = -1;
        if (f->bytes == NULL) {
            cgw_free(ends);
            return CGW_ENOMEM;
        }
        p->nframes++;
        start = ends[i];
    }
    cgw_free(ends);
    if (c->status != 0) {
        p->status = c->status;
        json_array_extend(p->headers, c->headers);
    }
    return CGW_OK;
}

static void apply_fault(struct planner *pl, const cgw__mock_turn_t *t, int *rc)
{
    cgw__mock_plan_t *p = pl->plan;
    if (pl->at.kind == CGW_MOCK_AT_NONE || *rc != CGW_OK) {
        return;
    }
    size_t keep = pl->at.kind == CGW_MOCK_AT_DELTAS ? (size_t)pl->cutoff : 0;
    p->before_headers = pl->at.kind == CGW_MOCK_AT_REQUEST;
    for (size_t i = keep; i < p->nframes; i++) {
        cgw_free(p->frames[i].bytes);
    }
    p->nframes = keep < p->nframes ? keep : p->nframes;
    if (t->error_at.kind != CGW_MOCK_AT_NONE) {
        /* The API's mid-stream error; the reply then ends normally. */
        *rc = add_new(pl, "error", cgw__http_error_json(t->error_type, t->error_message, NULL),
                      t->delay_ms);
    } else {
        p->end = t->hang_at.kind != CGW_MOCK_AT_NONE ? CGW_MOCK_END_HANG : CGW_MOCK_END_CUT;
    }
}

int cgw__mock_plan_stream(const cgw__mock_turn_t *t, const char *model, const char *msg_id,
                          cgw__mock_plan_t **out)
{
    cgw__mock_plan_t *p = cgw__calloc(1, sizeof(*p));
    if (p == NULL || (p->headers = json_array()) == NULL) {
        cgw_free(p);
        return CGW_ENOMEM;
    }
    p->status = 200;
    struct planner pl = {p, 0, 0, -1, {CGW_MOCK_AT_NONE, 0}};
    pl.at = t->error_at.kind ? t->error_at : t->hang_at.kind ? t->hang_at : t->cut_at;
    int rc = t->replay != NULL ? plan_replay(&pl, t) : plan_message(&pl, t, model, msg_id);
    apply_fault(&pl, t, &rc);
    const char *k;
    json_t *v;
    json_object_foreach(t->headers, k, v)
    {
        if (rc == CGW_OK && json_is_string(v)) {
            rc = json_array_append_new(p->headers, json_pack("[s,O]", k, v)) == 0 ? CGW_OK
                                                                                  : CGW_ENOMEM;
        }
    }
    if (rc != CGW_OK) {
        cgw__mock_plan_free(p);
        return rc;
    }
    *out = p;
    return CGW_OK;
}

void cgw__mock_plan_free(cgw__mock_plan_t *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->nframes; i++) {
        cgw_free(p->frames[i].bytes);
    }
    cgw_free(p->frames);
    json_decref(p->headers);
    cgw_free(p);
}

json_t *cgw__mock_turn_message(const cgw__mock_turn_t *t, const char *model, const char *msg_id)
{
    json_t *content = json_array();
    for (size_t i = 0; content != NULL && i < t->nblocks; i++) {
        json_array_append(content, t->blocks[i].final);
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:O,s:O,s:O*,s:O}", "id", t->id != NULL ? t->id : msg_id,
                     "type", "message", "role", "assistant", "model",
                     t->model != NULL ? t->model : model, "content", content, "stop_reason",
                     t->stop_reason, "stop_sequence", t->stop_sequence, "stop_details",
                     t->stop_details, "usage", t->usage);
}
