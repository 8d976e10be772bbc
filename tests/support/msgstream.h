/* Test helpers for the Messages API stream parsers: run a recorded SSE body through
 * cgw_sse_parser_t + cgw_msg_accum_t with chosen chunk boundaries, split raw HTTP captures, and
 * compare JSON the way the PHP SDK fixtures specify ("deep subset", expected null = wildcard). */
#ifndef CGW_TEST_MSGSTREAM_H
#define CGW_TEST_MSGSTREAM_H

#include <jansson.h>
#include <stddef.h>

#include "cgw/error.h"

/* Feeds body[0..len) split at the ascending offsets cuts[0..ncuts) (each in 1..len-1), then
 * finishes both the parser and the accumulator. On CGW_OK *msg (may be NULL) gets a new
 * reference to the final message. On failure *msg gets the partial message (or NULL), err
 * says why, and the code of the first failure is returned. */
int cgw_test_run_sse(const char *body, size_t len, const size_t *cuts, size_t ncuts,
                     json_t **msg, cgw_error_t *err);

/* Same for a stream recorded as one event JSON per line (Vercel AI SDK *.chunks.txt): each
 * non-empty line is fed to the accumulator with no event name. */
int cgw_test_run_json_lines(const char *text, size_t len, json_t **msg, cgw_error_t *err);

/* Splits a raw `curl -N -D -` capture at the first blank line (CRLF or LF). Returns a pointer
 * to the body (and its length), with *status the HTTP status of the status line, or NULL when
 * the text is not such a capture. */
const char *cgw_test_http_body(const char *raw, size_t len, int *status, size_t *body_len);

/* Deep subset: every member of expected objects must be in actual and match; arrays must have
 * the same length and match element-wise; expected null matches anything; numbers compare by
 * value. Returns 1 on match; on mismatch 0 and `where` (size n) names the first differing
 * path and both values. */
int cgw_test_json_subset(const json_t *expected, const json_t *actual, char *where, size_t n);

#endif
