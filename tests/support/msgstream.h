/* Test helpers for the Messages API stream parsers: run a recorded SSE body through
 * cgw_sse_parser_t + cgw_msg_accum_t with chosen chunk boundaries, split raw HTTP captures, and
 * compare JSON the way the PHP SDK fixtures specify ("deep subset", expected null = wildcard). */
#ifndef CGW_TEST_MSGSTREAM_H
#define CGW_TEST_MSGSTREAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cgw/error.h"

/* Feeds body[0..len) split at the ascending offsets cuts[0..ncuts) (each in 1..len-1), then
 * finishes both the parser and the accumulator. On CGW_OK *msg (may be NULL) gets a new
 * reference to the final message. On failure *msg gets the partial message (or NULL), err
 * says why, and the code of the first failure is returned. */
int cgw_test_run_sse(const char *body, size_t len, const size_t *cuts, size_t ncuts, json_t **msg,
                     cgw_error_t *err);

/* Splits a raw `curl -N -D -` capture at the first blank line (CRLF or LF). Returns a pointer
 * to the body (and its length), with *status the HTTP status of the status line, or NULL when
 * the text is not such a capture. */
const char *cgw_test_http_body(const char *raw, size_t len, int *status, size_t *body_len);

/* Deep subset: every member of expected objects must be in actual and match; arrays must have
 * the same length and match element-wise; expected null matches anything; numbers compare by
 * value. Returns 1 on match; on mismatch 0 and `where` (size n) names the first differing
 * path and both values. */
int cgw_test_json_subset(const json_t *expected, const json_t *actual, char *where, size_t n);

/* ---- cmocka checks over the shared fixtures ---- */

/* The absolute path of `rel` under ../shared/fixtures/anthropic-sse/ (static buffer). */
const char *cgw_test_fixture_path(const char *rel);

/* Reads a fixture (malloc'd, free with free()); fails the test when it is missing. */
char *cgw_test_read_fixture(const char *rel, size_t *len);

/* Fails the test with the first differing path unless expected is a deep subset of actual. */
void cgw_test_assert_subset(const json_t *expected, const json_t *actual, const char *what);

/* Runs `body` whole, then split at every byte boundary (when `every`), byte by byte and at 20
 * pseudo-random sets of points; fails the test unless every run gives the same outcome (code,
 * error message and final message). */
void cgw_test_check_splits(const char *body, size_t len, const char *what, bool every);

/* Same stream with each LF rewritten to `eol` ("\r\n" or "\r"), whole and split in two, must
 * give the same outcome. */
void cgw_test_check_line_ends(const char *body, size_t len, const char *eol, const char *what);

#endif
