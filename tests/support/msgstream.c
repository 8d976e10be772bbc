/* See msgstream.h. */
#include "msgstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "proto/msg_accum.h"
#include "proto/sse_parser.h"
#include "testutil.h"

static int new_pair(cgw_sse_parser_t **p, cgw_msg_accum_t **a)
{
    int rc = cgw_msg_accum_new(NULL, a);
    if (rc != CGW_OK) {
        return rc;
    }
    cgw_sse_parser_options_t o;
    cgw_sse_parser_options_init(&o);
    o.on_event = cgw_msg_accum_sse_cb;
    o.user = *a;
    rc = cgw_sse_parser_new(&o, p);
    if (rc != CGW_OK) {
        cgw_msg_accum_free(*a);
    }
    return rc;
}

static void hand_out(cgw_msg_accum_t *a, json_t **msg)
{
    if (msg != NULL) {
        *msg = json_incref((json_t *)cgw_msg_accum_message(a));
    }
}

int cgw_test_run_sse(const char *body, size_t len, const size_t *cuts, size_t ncuts, json_t **msg,
                     cgw_error_t *err)
{
    cgw_sse_parser_t *p;
    cgw_msg_accum_t *a;
    int rc = new_pair(&p, &a);
    if (rc != CGW_OK) {
        return rc;
    }
    size_t at = 0;
    for (size_t i = 0; i <= ncuts && rc == CGW_OK; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = cgw_sse_parser_feed(p, body + at, end - at, err);
        at = end;
    }
    if (rc == CGW_OK) {
        rc = cgw_sse_parser_finish(p, err);
    }
    if (rc == CGW_OK) {
        rc = cgw_msg_accum_finish(a, err);
    }
    hand_out(a, msg);
    cgw_sse_parser_free(p);
    cgw_msg_accum_free(a);
    return rc;
}

const char *cgw_test_http_body(const char *raw, size_t len, int *status, size_t *body_len)
{
    if (len < 12 || memcmp(raw, "HTTP/", 5) != 0) {
        return NULL;
    }
    const char *sp = memchr(raw, ' ', len);
    if (sp == NULL) {
        return NULL;
    }
    *status = atoi(sp + 1);
    for (size_t i = 0; i + 1 < len; i++) {
        size_t skip = 0;
        if (raw[i] == '\n' && raw[i + 1] == '\n') {
            skip = 2;
        } else if (i + 3 < len && memcmp(raw + i, "\r\n\r\n", 4) == 0) {
            skip = 4;
        }
        if (skip > 0) {
            *body_len = len - i - skip;
            return raw + i + skip;
        }
    }
    return NULL;
}

static int mismatch(char *where, size_t n, const char *path, const json_t *e, const json_t *a)
{
    char *es = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
    char *as = a ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    snprintf(where, n, "%s: expected %.200s, got %.200s", path[0] ? path : "(top)", es ? es : "?",
             as ? as : "(missing)");
    free(es);
    free(as);
    return 0;
}

static int subset_at(const json_t *e, const json_t *a, char *path, size_t plen, char *where,
                     size_t n)
{
    if (json_is_null(e)) {
        return 1;
    }
    if (a == NULL) {
        return mismatch(where, n, path, e, a);
    }
    size_t base = strlen(path);
    if (json_is_object(e)) {
        if (!json_is_object(a)) {
            return mismatch(where, n, path, e, a);
        }
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)e, k, v)
        {
            snprintf(path + base, plen - base, ".%s", k);
            if (!subset_at(v, json_object_get(a, k), path, plen, where, n)) {
                return 0;
            }
        }
        path[base] = '\0';
        return 1;
    }
    if (json_is_array(e)) {
        if (!json_is_array(a) || json_array_size(a) != json_array_size(e)) {
            return mismatch(where, n, path, e, a);
        }
        for (size_t i = 0; i < json_array_size(e); i++) {
            snprintf(path + base, plen - base, "[%zu]", i);
            if (!subset_at(json_array_get(e, i), json_array_get(a, i), path, plen, where, n)) {
                return 0;
            }
        }
        path[base] = '\0';
        return 1;
    }
    if (json_is_number(e) && json_is_number(a)) {
        return json_number_value(e) == json_number_value(a) ? 1 : mismatch(where, n, path, e, a);
    }
    return json_equal(e, a) ? 1 : mismatch(where, n, path, e, a);
}

int cgw_test_json_subset(const json_t *expected, const json_t *actual, char *where, size_t n)
{
    char path[1024] = "";
    return subset_at(expected, actual, path, sizeof(path), where, n);
}

/* ---- fixture checks (cmocka assertions) --------------------------------------------------- */

const char *cgw_test_fixture_path(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/fixtures/anthropic-sse/%s", cgw_test_shared_dir(), rel);
    return path;
}

char *cgw_test_read_fixture(const char *rel, size_t *len)
{
    char *s = cgw_test_read_file(cgw_test_fixture_path(rel), len);
    if (s == NULL) {
        fail_msg("cannot read fixture %s", cgw_test_fixture_path(rel));
    }
    return s;
}

void cgw_test_assert_subset(const json_t *expected, const json_t *actual, const char *what)
{
    char where[1024];
    if (!cgw_test_json_subset(expected, actual, where, sizeof(where))) {
        fail_msg("%s: %s", what, where);
    }
}

/* One run's outcome, as a string, so that runs compare with one strcmp. */
static char *outcome(int rc, const json_t *msg, const cgw_error_t *e)
{
    cgw_buf_t b = CGW_BUF_INIT;
    cgw_buf_appendf(&b, "%s|%s|", cgw_err_name(rc), rc == CGW_OK ? "" : e->message);
    if (msg != NULL) {
        cgw_json_dump_buf(msg, &b);
    }
    return cgw_buf_steal(&b, NULL);
}

static char *run_outcome(const char *body, size_t len, const size_t *cuts, size_t ncuts)
{
    json_t *msg = NULL;
    cgw_error_t e;
    cgw_error_clear(&e);
    int rc = cgw_test_run_sse(body, len, cuts, ncuts, &msg, &e);
    char *s = outcome(rc, msg, &e);
    json_decref(msg);
    return s;
}

static void same_outcome(const char *want, char *got, const char *what, size_t at)
{
    if (strcmp(want, got) != 0) {
        fail_msg("%s: split at %zu differs:\n  whole: %.300s\n  split: %.300s", what, at, want,
                 got);
    }
    cgw_free(got);
}

/* Byte boundaries: every two-way split (when `every`), byte by byte, random multi-way splits,
 * and the line ends rewritten, all compared with the whole-body run. */
void cgw_test_check_splits(const char *body, size_t len, const char *what, bool every)
{
    char *want = run_outcome(body, len, NULL, 0);
    if (every) {
        for (size_t cut = 1; cut < len; cut++) {
            same_outcome(want, run_outcome(body, len, &cut, 1), what, cut);
        }
    }
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    for (size_t i = 1; i < len; i++) {
        cuts[i - 1] = i;
    }
    same_outcome(want, run_outcome(body, len, cuts, len > 0 ? len - 1 : 0), what, 1);
    unsigned seed = (unsigned)len * 2654435761u;
    for (int round = 0; round < 20 && len > 2; round++) {
        size_t n = 0;
        for (size_t at = 0;;) {
            seed = seed * 1103515245u + 12345u;
            at += 1 + (seed >> 8) % (len / 4 + 1);
            if (at >= len) {
                break;
            }
            cuts[n++] = at;
        }
        same_outcome(want, run_outcome(body, len, cuts, n), what, n);
    }
    free(cuts);
    cgw_free(want);
}

/* The same stream with every LF turned into `eol` must give the same message. */
void cgw_test_check_line_ends(const char *body, size_t len, const char *eol, const char *what)
{
    cgw_buf_t b = CGW_BUF_INIT;
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '\n') {
            cgw_buf_append_str(&b, eol);
        } else {
            cgw_buf_append_char(&b, body[i]);
        }
    }
    char *want = run_outcome(body, len, NULL, 0);
    size_t half = b.len / 2;
    same_outcome(want, run_outcome(b.data, b.len, NULL, 0), what, 0);
    same_outcome(want, run_outcome(b.data, b.len, &half, 1), what, half);
    cgw_free(want);
    cgw_buf_free(&b);
}
