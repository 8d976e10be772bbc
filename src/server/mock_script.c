/* Parsing of mock-api scripts (format: docs/mock-api.md).
 *
 * A turn is normalized at load time into blocks that already hold every delta string, so that
 * serving a request only has to wrap them into events. Errors name the turn and the field,
 * because scripts are written by hand. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/json.h"
#include "server/mock_script.h"

#define SIG_PREFIX "redacted:"

struct parse {
    cgw_error_t *err;
    const char *base_dir;
    size_t turn_no; /* 1-based, for messages and default names/ids */
};

static int bad(struct parse *p, const char *what)
{
    return cgw_error_set(p->err, CGW_ECONFIG, "script turn %zu: %s", p->turn_no, what);
}

/* Splits `len` bytes of UTF-8 into `n` pieces of about equal numbers of characters, never
 * inside a character. */
static json_t *split_utf8(const char *s, size_t len, long n)
{
    json_t *arr = json_array();
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) {
        chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    if (arr == NULL || len == 0) {
        return arr;
    }
    if (n < 1) {
        n = 1;
    }
    if ((size_t)n > chars) {
        n = (long)chars;
    }
    size_t start = 0, seen = 0, piece = 1;
    for (size_t i = 0; i <= len; i++) {
        bool boundary = i == len || ((unsigned char)s[i] & 0xC0) != 0x80;
        if (boundary && i > start && seen >= piece * chars / (size_t)n) {
            json_array_append_new(arr, json_stringn(s + start, i - start));
            start = i;
            piece++;
        }
        if (i < len && boundary) {
            seen++;
        }
    }
    return arr;
}

/* Concatenates an array of strings; NULL if an element is not a string. */
static json_t *join_strings(const json_t *arr)
{
    cgw_buf_t b = CGW_BUF_INIT;
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) ||
            cgw_buf_append(&b, json_string_value(v), json_string_length(v)) != CGW_OK) {
            cgw_buf_free(&b);
            return NULL;
        }
    }
    json_t *s = json_stringn(b.data != NULL ? b.data : "", b.len);
    cgw_buf_free(&b);
    return s;
}

/* Reads the streamed text of a block: either `key` (split into `chunks` pieces) or `deltas`.
 * Sets *whole (new reference) and blk->deltas. */
static int read_pieces(struct parse *p, const json_t *spec, const char *key, cgw__mock_block_t *blk,
                       json_t **whole)
{
    const json_t *text = json_object_get(spec, key);
    const json_t *deltas = json_object_get(spec, "deltas");
    if (deltas != NULL) {
        if (text != NULL || !json_is_array(deltas) || (*whole = join_strings(deltas)) == NULL) {
            return bad(p, "'deltas' must be an array of strings and excludes the whole text");
        }
        blk->deltas = json_deep_copy(deltas);
        return CGW_OK;
    }
    if (text == NULL) {
        text = json_string("");
    } else if (!json_is_string(text)) {
        return bad(p, "block text must be a string");
    } else {
        json_incref((json_t *)text);
    }
    *whole = (json_t *)text;
    blk->deltas = split_utf8(json_string_value(text), json_string_length(text),
                             (long)cgw_json_int(spec, "chunks", 1));
    return CGW_OK;
}

static void default_signature(const char *s, size_t len, char out[40])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: stable, so a script's signatures are too */
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    }
    snprintf(out, 40, "mock-sig-%016llx", (unsigned long long)h);
}

static int parse_text(struct parse *p, const json_t *spec, cgw__mock_block_t *blk)
{
    json_t *whole = NULL;
    int rc = read_pieces(p, spec, "text", blk, &whole);
    if (rc != CGW_OK) {
        return rc;
    }
    const json_t *cites = json_object_get(spec, "citations");
    if (cites != NULL && !json_is_array(cites)) {
        json_decref(whole);
        return bad(p, "'citations' must be an array of citation objects");
    }
    blk->final = json_pack("{s:s,s:o}", "type", "text", "text", whole);
    blk->start = json_pack("{s:s,s:s}", "type", "text", "text", "");
    if (cites != NULL && json_array_size(cites) > 0) {
        blk->citations = json_deep_copy(cites);
        json_object_set(blk->final, "citations", blk->citations);
    }
    blk->delta_type = "text_delta";
    blk->delta_key = "text";
    return CGW_OK;
}

static int parse_thinking(struct parse *p, const json_t *spec, cgw__mock_block_t *blk,
                          json_t *issued)
{
    json_t *whole = NULL;
    int rc = read_pieces(p, spec, "thinking", blk, &whole);
    if (rc != CGW_OK) {
        return rc;
    }
    char sig[40];
    const char *signature = cgw_json_str(spec, "signature", NULL);
    if (signature == NULL) {
        default_signature(json_string_value(whole), json_string_length(whole), sig);
        signature = sig;
    }
    json_object_set(issued, signature, whole);
    blk->final =
        json_pack("{s:s,s:o,s:s}", "type", "thinking", "thinking", whole, "signature", signature);
    blk->start = json_pack("{s:s,s:s,s:s}", "type", "thinking", "thinking", "", "signature", "");
    blk->delta_type = "thinking_delta";
    blk->delta_key = "thinking";
    return CGW_OK;
}

static int parse_redacted(struct parse *p, const json_t *spec, cgw__mock_block_t *blk,
                          json_t *issued)
{
    const char *data = cgw_json_str(spec, "data", NULL);
    if (data == NULL) {
        return bad(p, "redacted_thinking needs a string 'data'");
    }
    char *key = cgw__malloc(strlen(data) + sizeof(SIG_PREFIX));
    if (key == NULL) {
        return CGW_ENOMEM;
    }
    strcpy(key, SIG_PREFIX);
    strcat(key, data);
    json_object_set_new(issued, key, json_string(""));
    cgw_free(key);
    blk->final = json_pack("{s:s,s:s}", "type", "redacted_thinking", "data", data);
    blk->start = json_incref(blk->final);
    blk->deltas = json_array();
    return CGW_OK;
}

static int parse_tool_use(struct parse *p, const json_t *spec, size_t index, cgw__mock_block_t *blk)
{
    const char *name = cgw_json_str(spec, "name", NULL);
    const json_t *input = json_object_get(spec, "input");
    const json_t *pieces = json_object_get(spec, "input_deltas");
    if (name == NULL) {
        return bad(p, "tool_use needs a string 'name'");
    }
    json_t *final_input = NULL;
    if (pieces != NULL) {
        json_t *joined = join_strings(pieces);
        if (input != NULL || joined == NULL) {
            json_decref(joined);
            return bad(p, "'input_deltas' must be an array of strings and excludes 'input'");
        }
        /* Deliberately invalid pieces (a truncated input) are allowed: the Message then
         * carries {} like the API's accumulator would have nothing complete to parse. */
        final_input = json_loadb(json_string_value(joined), json_string_length(joined), 0, NULL);
        json_decref(joined);
        blk->deltas = json_deep_copy(pieces);
    } else {
        if (input != NULL && !json_is_object(input)) {
            return bad(p, "tool_use 'input' must be an object");
        }
        final_input = input != NULL ? json_deep_copy(input) : json_object();
        char *s = cgw_json_dump(final_input, NULL);
        blk->deltas =
            split_utf8(s, s != NULL ? strlen(s) : 0, (long)cgw_json_int(spec, "chunks", 1));
        cgw_free(s);
    }
    if (!json_is_object(final_input)) {
        json_decref(final_input);
        final_input = json_object();
    }
    char idbuf[64];
    const char *id = cgw_json_str(spec, "id", NULL);
    if (id == NULL) {
        snprintf(idbuf, sizeof(idbuf), "toolu_mock_%zu_%zu", p->turn_no, index);
        id = idbuf;
    }
    blk->final = json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id", id, "name", name, "input",
                           final_input);
    blk->start =
        json_pack("{s:s,s:s,s:s,s:{}}", "type", "tool_use", "id", id, "name", name, "input");
    blk->delta_type = "input_json_delta";
    blk->delta_key = "partial_json";
    return CGW_OK;
}

/* Any other block type (server tool results, fallback, ...) is sent whole in
 * content_block_start, with no deltas, as the API does for complete blocks. */
static int parse_other(const json_t *spec, cgw__mock_block_t *blk)
{
    blk->final = json_deep_copy(spec);
    json_object_del(blk->final, "delay_ms");
    blk->start = json_incref(blk->final);
    blk->deltas = json_array();
    return CGW_OK;
}

static int parse_block(struct parse *p, const json_t *spec, size_t index, cgw__mock_turn_t *t)
{
    cgw__mock_block_t *blk = &t->blocks[index];
    blk->delay_ms = (int)cgw_json_int(spec, "delay_ms", -1);
    const char *type = cgw_json_str(spec, "type", NULL);
    if (!json_is_object(spec) || type == NULL) {
        return bad(p, "each content block must be an object with a string 'type'");
    }
    int rc;
    if (strcmp(type, "text") == 0) {
        rc = parse_text(p, spec, blk);
    } else if (strcmp(type, "thinking") == 0) {
        rc = parse_thinking(p, spec, blk, t->issued);
    } else if (strcmp(type, "redacted_thinking") == 0) {
        rc = parse_redacted(p, spec, blk, t->issued);
    } else if (strcmp(type, "tool_use") == 0) {
        rc = parse_tool_use(p, spec, index, blk);
    } else {
        rc = parse_other(spec, blk);
    }
    if (rc == CGW_OK && (blk->final == NULL || blk->start == NULL || blk->deltas == NULL)) {
        rc = CGW_ENOMEM;
    }
    return rc;
}

static int parse_content(struct parse *p, const json_t *spec, cgw__mock_turn_t *t)
{
    const json_t *content = json_object_get(spec, "content");
    json_t *shorthand = NULL;
    if (content == NULL && json_object_get(spec, "text") != NULL) {
        /* {"text": "...", "chunks": N} is a turn with one text block. */
        shorthand =
            json_pack("[{s:s,s:O,s:O*}]", "type", "text", "text", json_object_get(spec, "text"),
                      "chunks", json_object_get(spec, "chunks"));
        content = shorthand;
    }
    if (content == NULL) {
        return CGW_OK;
    }
    int rc = CGW_OK;
    if (!json_is_array(content)) {
        rc = bad(p, "'content' must be an array of blocks");
    } else if (json_array_size(content) > 0) {
        t->blocks = cgw__calloc(json_array_size(content), sizeof(*t->blocks));
        rc = t->blocks == NULL ? CGW_ENOMEM : CGW_OK;
        for (size_t i = 0; rc == CGW_OK && i < json_array_size(content); i++) {
            t->nblocks = i + 1;
            rc = parse_block(p, json_array_get(content, i), i, t);
        }
    }
    json_decref(shorthand);
    return rc;
}

/* A fault position: true | "request" | "headers" | N | {"after": <one of those>}. */
static int parse_at(struct parse *p, const json_t *v, bool allow_request, cgw__mock_at_t *at)
{
    if (v == NULL || json_is_false(v) || json_is_null(v)) {
        return CGW_OK;
    }
    if (json_is_object(v)) {
        v = json_object_get(v, "after");
        if (v == NULL) {
            v = json_true();
        }
    }
    if (json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "headers") == 0)) {
        at->kind = CGW_MOCK_AT_HEADERS;
    } else if (allow_request && json_is_string(v) && strcmp(json_string_value(v), "request") == 0) {
        at->kind = CGW_MOCK_AT_REQUEST;
    } else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
               json_integer_value(v) < 1000000) {
        at->kind = CGW_MOCK_AT_DELTAS;
        at->deltas = (int)json_integer_value(v);
    } else {
        return bad(p, "a fault position is true, \"headers\", \"request\" (hang and cut only) "
                      "or a number of deltas");
    }
    return CGW_OK;
}

static int parse_faults(struct parse *p, const json_t *spec, cgw__mock_turn_t *t)
{
    const json_t *ev = json_object_get(spec, "error_event");
    int rc = parse_at(p, ev, false, &t->error_at);
    rc = rc == CGW_OK ? parse_at(p, json_object_get(spec, "hang"), true, &t->hang_at) : rc;
    rc = rc == CGW_OK ? parse_at(p, json_object_get(spec, "cut"), true, &t->cut_at) : rc;
    if (rc != CGW_OK) {
        return rc;
    }
    int n = (t->error_at.kind != 0) + (t->hang_at.kind != 0) + (t->cut_at.kind != 0);
    if (n > 1) {
        return bad(p, "'error_event', 'hang' and 'cut' exclude each other");
    }
    if (t->error_at.kind != CGW_MOCK_AT_NONE) {
        const char *type = cgw_json_str(ev, "type", "overloaded_error");
        t->error_type = cgw__strdup(type);
        t->error_message = cgw__strdup(cgw_json_str(
            ev, "message", cgw__mock_default_error_message(cgw__mock_error_status(type))));
    }
    return CGW_OK;
}

static int parse_headers(struct parse *p, const json_t *spec, cgw__mock_turn_t *t)
{
    const json_t *h = json_object_get(spec, "headers");
    t->headers = json_object();
    if (t->headers == NULL) {
        return CGW_ENOMEM;
    }
    if (h == NULL) {
        return CGW_OK;
    }
    if (!json_is_object(h)) {
        return bad(p, "'headers' must be an object");
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)h, k, v)
    {
        char num[32];
        if (json_is_string(v) || json_is_null(v)) {
            json_object_set(t->headers, k, (json_t *)v);
        } else if (json_is_number(v)) {
            snprintf(num, sizeof(num), "%.17g", json_number_value(v));
            json_object_set_new(t->headers, k, json_string(num));
        } else {
            return bad(p, "header values are strings, numbers or null");
        }
    }
    return CGW_OK;
}

static int parse_error_turn(struct parse *p, const json_t *spec, cgw__mock_turn_t *t)
{
    const json_t *e = json_object_get(spec, "error");
    if (e != NULL && !json_is_object(e)) {
        return bad(p, "'error' must be an object {type, message}");
    }
    t->error_type = cgw__strdup(cgw_json_str(e, "type", cgw__mock_default_error_type(t->status)));
    t->error_message =
        cgw__strdup(cgw_json_str(e, "message", cgw__mock_default_error_message(t->status)));
    const json_t *body = json_object_get(spec, "body");
    if (body != NULL) {
        if (!json_is_string(body)) {
            return bad(p, "'body' must be a string");
        }
        t->raw_body = cgw__strdup(json_string_value(body));
    }
    return t->error_type != NULL && t->error_message != NULL ? CGW_OK : CGW_ENOMEM;
}

static int read_replay(struct parse *p, const char *path, cgw__mock_turn_t *t)
{
    char full[4096];
    if (path[0] != '/' && p->base_dir != NULL) {
        snprintf(full, sizeof(full), "%s/%s", p->base_dir, path);
    } else {
        snprintf(full, sizeof(full), "%s", path);
    }
    size_t len = 0;
    char *data = NULL;
    int rc = cgw__mock_read_file(full, &data, &len, p->err);
    if (rc == CGW_OK) {
        rc = cgw__mock_capture_parse(data, len, &t->replay, p->err);
    }
    if (rc == CGW_OK) {
        cgw__mock_sse_harvest(t->replay->body, t->replay->body_len, t->issued);
    }
    cgw_free(data);
    return rc;
}

static json_t *default_usage(const cgw__mock_turn_t *t)
{
    size_t bytes = 0;
    for (size_t i = 0; i < t->nblocks; i++) {
        size_t j;
        const json_t *d;
        json_array_foreach(t->blocks[i].deltas, j, d)
        {
            bytes += json_string_length(d);
        }
    }
    json_int_t out = (json_int_t)((bytes + 3) / 4);
    return json_pack("{s:i,s:i,s:i,s:I}", "input_tokens", 10, "cache_creation_input_tokens", 0,
                     "cache_read_input_tokens", 0, "output_tokens", out > 0 ? out : 1);
}

static int parse_answer(struct parse *p, const json_t *spec, cgw__mock_turn_t *t)
{
    int rc = parse_content(p, spec, t);
    rc = rc == CGW_OK ? parse_faults(p, spec, t) : rc;
    if (rc != CGW_OK) {
        return rc;
    }
    bool tools = false;
    for (size_t i = 0; i < t->nblocks; i++) {
        tools |= strcmp(cgw_json_str(t->blocks[i].final, "type", ""), "tool_use") == 0;
    }
    const char *stop = cgw_json_str(spec, "stop_reason", tools ? "tool_use" : "end_turn");
    t->stop_reason = json_string(stop);
    const json_t *seq = json_object_get(spec, "stop_sequence");
    t->stop_sequence = json_is_string(seq) ? json_incref((json_t *)seq) : json_null();
    const json_t *details = json_object_get(spec, "stop_details");
    if (details != NULL && !json_is_object(details) && !json_is_null(details)) {
        return bad(p, "'stop_details' must be an object or null");
    }
    t->stop_details = details != NULL ? json_deep_copy(details) : NULL;
    t->usage = default_usage(t);
    const json_t *u = json_object_get(spec, "usage");
    if (u != NULL && !json_is_object(u)) {
        return bad(p, "'usage' must be an object");
    }
    if (t->usage == NULL || (u != NULL && json_object_update(t->usage, (json_t *)u) != 0)) {
        return CGW_ENOMEM;
    }
    return CGW_OK;
}

static int parse_turn(struct parse *p, const json_t *spec, cgw__mock_turn_t *t)
{
    char name[32];
    snprintf(name, sizeof(name), "turn-%zu", p->turn_no);
    if (!json_is_object(spec)) {
        return bad(p, "a turn must be an object");
    }
    t->name = cgw__strdup(cgw_json_str(spec, "name", name));
    t->match = cgw__strdup(cgw_json_str(spec, "match", NULL));
    t->model = cgw__strdup(cgw_json_str(spec, "model", NULL));
    t->id = cgw__strdup(cgw_json_str(spec, "id", NULL));
    t->status = (int)cgw_json_int(spec, "status", 200);
    t->delay_ms = (int)cgw_json_int(spec, "delay_ms", 0);
    t->ping = cgw_json_bool(spec, "ping", 1);
    t->issued = json_object();
    if (t->name == NULL || t->issued == NULL) {
        return CGW_ENOMEM;
    }
    if (t->status < 200 || t->status > 599 || t->delay_ms < 0) {
        return bad(p, "'status' must be 200..599 and 'delay_ms' not negative");
    }
    int rc = parse_headers(p, spec, t);
    if (rc != CGW_OK) {
        return rc;
    }
    const char *replay = cgw_json_str(spec, "replay", NULL);
    if (replay != NULL) {
        return read_replay(p, replay, t);
    }
    const json_t *resp = json_object_get(spec, "response");
    if (resp != NULL) {
        cgw_error_t why;
        cgw_error_clear(&why);
        rc = cgw__mock_capture_from_json(resp, &t->replay, &why);
        if (rc == CGW_ECONFIG) {
            return bad(p, why.message);
        }
        if (rc == CGW_OK) {
            cgw__mock_sse_harvest(t->replay->body, t->replay->body_len, t->issued);
        }
        return rc;
    }
    if (t->status != 200) {
        return parse_error_turn(p, spec, t);
    }
    return parse_answer(p, spec, t);
}

static void turn_clear(cgw__mock_turn_t *t)
{
    cgw_free(t->name);
    cgw_free(t->match);
    cgw_free(t->model);
    cgw_free(t->id);
    cgw_free(t->error_type);
    cgw_free(t->error_message);
    cgw_free(t->raw_body);
    for (size_t i = 0; i < t->nblocks; i++) {
        json_decref(t->blocks[i].final);
        json_decref(t->blocks[i].start);
        json_decref(t->blocks[i].deltas);
        json_decref(t->blocks[i].citations);
    }
    cgw_free(t->blocks);
    json_decref(t->headers);
    json_decref(t->stop_reason);
    json_decref(t->stop_sequence);
    json_decref(t->stop_details);
    json_decref(t->usage);
    json_decref(t->issued);
    cgw__mock_capture_free(t->replay);
}

void cgw__mock_script_free(cgw__mock_script_t *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nturns; i++) {
        turn_clear(&s->turns[i]);
    }
    cgw_free(s->turns);
    cgw_free(s);
}

static int parse_exhausted(struct parse *p, const json_t *doc, cgw__mock_script_t *s)
{
    const char *w = cgw_json_str(doc, "when_exhausted", "error");
    if (strcmp(w, "error") == 0) {
        s->when_exhausted = CGW_MOCK_EXHAUSTED_ERROR;
    } else if (strcmp(w, "repeat_last") == 0) {
        s->when_exhausted = CGW_MOCK_EXHAUSTED_REPEAT_LAST;
    } else if (strcmp(w, "cycle") == 0) {
        s->when_exhausted = CGW_MOCK_EXHAUSTED_CYCLE;
    } else {
        return cgw_error_set(p->err, CGW_ECONFIG,
                             "script: 'when_exhausted' is \"error\", \"repeat_last\" or \"cycle\"");
    }
    return CGW_OK;
}

/* Number of turn slots the specs need ("repeat": N serves a turn N times in a row). */
static int count_slots(struct parse *p, const json_t *turns, size_t *n)
{
    size_t i;
    const json_t *spec;
    *n = 0;
    json_array_foreach(turns, i, spec)
    {
        json_int_t r = cgw_json_int(spec, "repeat", 1);
        if (r < 1 || r > 10000) {
            p->turn_no = i + 1;
            return bad(p, "'repeat' must be 1..10000");
        }
        *n += (size_t)r;
    }
    return CGW_OK;
}

int cgw__mock_script_parse(const json_t *doc, const char *base_dir, cgw__mock_script_t **out,
                           cgw_error_t *err)
{
    struct parse p = {err, base_dir, 0};
    const json_t *turns = json_is_array(doc) ? doc : json_object_get(doc, "turns");
    size_t n = 0;
    if (!json_is_array(turns)) {
        return cgw_error_set(err, CGW_ECONFIG,
                             "script: expected an array of turns or {\"turns\": [...]}");
    }
    int rc = count_slots(&p, turns, &n);
    cgw__mock_script_t *s = rc == CGW_OK ? cgw__calloc(1, sizeof(*s)) : NULL;
    if (rc != CGW_OK || s == NULL ||
        (n > 0 && (s->turns = cgw__calloc(n, sizeof(*s->turns))) == NULL)) {
        cgw_free(s);
        return rc != CGW_OK ? rc : cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    rc = json_is_object(doc) ? parse_exhausted(&p, doc, s) : CGW_OK;
    for (size_t i = 0; rc == CGW_OK && i < json_array_size(turns); i++) {
        const json_t *spec = json_array_get(turns, i);
        p.turn_no = i + 1;
        for (json_int_t r = cgw_json_int(spec, "repeat", 1); rc == CGW_OK && r > 0; r--) {
            rc = parse_turn(&p, spec, &s->turns[s->nturns++]);
        }
    }
    if (rc != CGW_OK) {
        if (rc == CGW_ENOMEM) {
            cgw_error_set(err, CGW_ENOMEM, "out of memory");
        }
        cgw__mock_script_free(s);
        return rc;
    }
    *out = s;
    return CGW_OK;
}

int cgw__mock_script_load(const char *path, cgw__mock_script_t **out, cgw_error_t *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = cgw__mock_read_file(path, &data, &len, err);
    if (rc != CGW_OK) {
        return rc;
    }
    json_t *doc = NULL;
    rc = cgw_json_parse(data, len, &doc, err);
    cgw_free(data);
    if (rc != CGW_OK) {
        return rc;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    rc = cgw__mock_script_parse(doc, slash != NULL ? dir : NULL, out, err);
    json_decref(doc);
    return rc;
}

static int script_of(json_t *doc, cgw__mock_script_t **out, cgw_error_t *err)
{
    if (doc == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    int rc = cgw__mock_script_parse(doc, NULL, out, err);
    json_decref(doc);
    return rc;
}

int cgw__mock_script_replay(const char *path, cgw__mock_script_t **out, cgw_error_t *err)
{
    /* A JSON list of recorded exchanges is served exchange by exchange; anything else is one
     * recorded response. */
    char *data = NULL;
    size_t len = 0;
    int rc = cgw__mock_read_file(path, &data, &len, err);
    if (rc != CGW_OK) {
        return rc;
    }
    json_t *doc = json_loadb(data, len, 0, NULL);
    json_t *script = cgw__mock_exchanges_script(doc);
    json_decref(doc);
    cgw_free(data);
    if (script != NULL) {
        return script_of(script, out, err);
    }
    return script_of(json_pack("{s:s,s:[{s:s,s:s}]}", "when_exhausted", "cycle", "turns", "name",
                               "replay", "replay", path),
                     out, err);
}

int cgw__mock_script_default(cgw__mock_script_t **out, cgw_error_t *err)
{
    return script_of(json_pack("{s:s,s:[{s:s,s:s,s:i}]}", "when_exhausted", "cycle", "turns",
                               "name", "default", "text", "Hello from claude-gateway mock-api.",
                               "chunks", 3),
                     out, err);
}
