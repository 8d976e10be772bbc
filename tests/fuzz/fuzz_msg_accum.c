/*
 * libFuzzer target for cgw_msg_accum_t fed through cgw_sse_parser_t. The input is an SSE body
 * (the seeds are the recorded streams). The stream is run whole and chunked; both runs must
 * end with the same code and the same final message. The getters and the message serialisation
 * run on every outcome, failures included. The whole input is also given to the hot-delta
 * fast path (proto/delta_scan.h), which must decline it or decode exactly what jansson does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "proto/delta_scan.h"
#include "proto/msg_accum.h"
#include "proto/sse_parser.h"

static int count_increments(void *user, const cgw_msg_ev_t *ev, cgw_error_t *err)
{
    (void)err;
    size_t *n = user;
    *n += 1 + ev->text.len;
    return CGW_OK;
}

static void run(const uint8_t *data, size_t size, size_t step, cgw_buf_t *out)
{
    size_t increments = 0;
    cgw_msg_accum_options_t ao;
    cgw_msg_accum_options_init(&ao);
    ao.on_event = count_increments;
    ao.user = &increments;
    ao.max_block_bytes = 1 << 16;
    cgw_msg_accum_t *a;
    cgw_sse_parser_t *p;
    cgw_sse_parser_options_t po;
    cgw_sse_parser_options_init(&po);
    po.on_event = cgw_msg_accum_sse_cb;
    po.max_line = 1 << 16;
    if (cgw_msg_accum_new(&ao, &a) != CGW_OK) {
        abort();
    }
    po.user = a;
    if (cgw_sse_parser_new(&po, &p) != CGW_OK) {
        abort();
    }
    int rc = CGW_OK;
    for (size_t at = 0; at < size && rc == CGW_OK; at += step) {
        rc = cgw_sse_parser_feed(p, (const char *)data + at, size - at < step ? size - at : step,
                                 NULL);
    }
    if (rc == CGW_OK) {
        rc = cgw_sse_parser_finish(p, NULL);
    }
    if (rc == CGW_OK) {
        rc = cgw_msg_accum_finish(a, NULL);
    }
    const json_t *m = cgw_msg_accum_message(a);
    cgw_buf_appendf(out, "rc=%d blocks=%zu inc=%zu started=%d stop=%s|", rc,
                    cgw_msg_accum_block_count(a), increments, cgw_msg_accum_content_started(a),
                    cgw_msg_accum_stop_reason(a) ? cgw_msg_accum_stop_reason(a) : "-");
    if (m != NULL) {
        cgw_json_dump_buf(m, out);
    }
    (void)cgw_msg_accum_usage(a);
    (void)cgw_msg_accum_stop_sequence(a);
    cgw_sse_parser_free(p);
    cgw_msg_accum_free(a);
}

static void check_delta_scan(const uint8_t *data, size_t size)
{
    cgw_buf_t scratch = CGW_BUF_INIT;
    cgw_delta_t d;
    if (cgw__delta_scan((const char *)data, size, &d, &scratch)) {
        json_t *v = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
        const char *key = d.kind == CGW_DELTA_TEXT    ? "text"
                          : d.kind == CGW_DELTA_INPUT ? "partial_json"
                                                      : "thinking";
        json_t *s = json_object_get(json_object_get(v, "delta"), key);
        if (v == NULL || json_string_length(s) != scratch.len ||
            memcmp(json_string_value(s), scratch.data ? scratch.data : "", scratch.len) != 0 ||
            json_integer_value(json_object_get(v, "index")) != (json_int_t)d.index) {
            abort(); /* the fast path disagrees with jansson */
        }
        json_decref(v);
    }
    cgw_buf_free(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_delta_scan(data, size);
    cgw_buf_t whole = CGW_BUF_INIT, chunked = CGW_BUF_INIT;
    run(data, size, size ? size : 1, &whole);
    run(data, size, 1 + size % 7, &chunked);
    if (whole.len != chunked.len || memcmp(whole.data, chunked.data, whole.len) != 0) {
        abort(); /* chunking changed the result */
    }
    cgw_buf_free(&whole);
    cgw_buf_free(&chunked);
    return 0;
}
