/* EventLog under allocation failure: every failing allocation gives CGW_ENOMEM and leaves the
 * log exactly as it was; close() that cannot append its terminal entry still closes the log
 * and ends the subscriptions with CGW_ENOMEM. The library's allocator hooks (which jansson
 * shares) fail on demand; they are installed before anything else allocates. */
#include <event2/event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Allocation number `fail_at` from now fails (and every later one when `fail_all`). */
static long alloc_count, fail_at = -1;
static bool fail_all;

static void *failing_malloc(size_t n)
{
    long k = alloc_count++;
    if (fail_all || (fail_at >= 0 && k == fail_at)) {
        return NULL;
    }
    return malloc(n);
}

static void *failing_realloc(void *p, size_t n)
{
    long k = alloc_count++;
    if (fail_all || (fail_at >= 0 && k == fail_at)) {
        return NULL;
    }
    return realloc(p, n);
}

static void arm(long nth)
{
    alloc_count = 0;
    fail_at = nth;
}

static void disarm(void)
{
    fail_at = -1;
    fail_all = false;
}

struct final {
    int entries, finals, status;
};

static void final_cb(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *e, int status, void *user)
{
    (void)sub;
    struct final *f = user;
    if (e != NULL) {
        f->entries++;
    } else {
        f->finals++;
        f->status = status;
    }
}

static void drain(cgw_ctx_t *ctx)
{
    for (int i = 0; i < 100; i++) {
        event_base_loop(cgw_ctx_base(ctx), EVLOOP_NONBLOCK);
    }
}

static void test_new_fails_cleanly(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_eventlog_options_t o;
    cgw_eventlog_options_init(&o);
    o.session_id = "s";
    int ok = 0;
    for (long k = 0; k < 20 && !ok; k++) {
        cgw_eventlog_t *log = NULL;
        arm(k);
        int rc = cgw_eventlog_new(ctx, &o, &log);
        disarm();
        if (rc == CGW_OK) {
            ok = 1;
            cgw_eventlog_free(log);
        } else {
            assert_int_equal(rc, CGW_ENOMEM);
            assert_null(log);
        }
    }
    assert_true(ok);
    cgw_ctx_free(ctx);
}

static void test_append_and_subscribe_fail_cleanly(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_eventlog_t *log = NULL;
    assert_int_equal(cgw_eventlog_new(ctx, NULL, &log), CGW_OK);
    struct final f = {0};
    cgw_eventlog_sub_t *sub = NULL;
    assert_int_equal(cgw_eventlog_subscribe(log, 0, final_cb, &f, &sub), CGW_OK);
    /* Big enough that the scratch buffer has to grow; appended 100 times so the ring grows. */
    char text[2000];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    json_t *ev = json_pack("{s:s,s:s}", "type", "text_delta", "text", text);
    int failures = 0;
    for (int i = 0; i < 100; i++) {
        for (long k = 0;; k++) {
            uint64_t before = cgw_eventlog_last_seq(log);
            size_t count = cgw_eventlog_count(log), bytes = cgw_eventlog_bytes(log);
            arm(k);
            int rc = cgw_eventlog_append(log, ev, NULL);
            disarm();
            if (rc == CGW_OK) {
                assert_int_equal(cgw_eventlog_last_seq(log), before + 1);
                break;
            }
            failures++;
            assert_int_equal(rc, CGW_ENOMEM);
            assert_int_equal(cgw_eventlog_last_seq(log), before);
            assert_int_equal(cgw_eventlog_count(log), count);
            assert_int_equal(cgw_eventlog_bytes(log), bytes);
        }
    }
    assert_true(failures >= 100); /* at least the record itself failed once per event */
    json_decref(ev);
    drain(ctx);
    assert_int_equal(f.entries, 100);

    cgw_eventlog_sub_t *sub2 = NULL;
    arm(0);
    assert_int_equal(cgw_eventlog_subscribe(log, 0, final_cb, &f, &sub2), CGW_ENOMEM);
    disarm();
    assert_int_equal(cgw_eventlog_sub_count(log), 1);
    cgw_eventlog_free(log);
    assert_int_equal(f.status, CGW_ECANCELED);
    cgw_ctx_free(ctx);
}

static void test_close_without_memory(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_eventlog_t *log = NULL;
    assert_int_equal(cgw_eventlog_new(ctx, NULL, &log), CGW_OK);
    json_t *ev = json_pack("{s:s,s:s}", "type", "text_delta", "text", "x");
    assert_int_equal(cgw_eventlog_append(log, ev, NULL), CGW_OK);
    struct final f = {0};
    cgw_eventlog_sub_t *sub = NULL;
    assert_int_equal(cgw_eventlog_subscribe(log, 0, final_cb, &f, &sub), CGW_OK);
    drain(ctx);
    assert_int_equal(f.entries, 1);

    fail_all = true;
    int rc = cgw_eventlog_close(log, "boom");
    disarm();
    assert_int_equal(rc, CGW_ENOMEM);
    /* Closed anyway, with no terminal entry; nothing gets in afterwards. */
    assert_true(cgw_eventlog_closed(log));
    assert_int_equal(cgw_eventlog_last_seq(log), 1);
    assert_int_equal(cgw_eventlog_append(log, ev, NULL), CGW_ECLOSED);
    assert_int_equal(cgw_eventlog_close(log, NULL), CGW_OK);
    drain(ctx);
    assert_int_equal(f.finals, 1);
    assert_int_equal(f.status, CGW_ENOMEM);

    /* A late subscriber at the end of such a log gets the same final status. */
    struct final g = {0};
    assert_int_equal(cgw_eventlog_subscribe(log, 1, final_cb, &g, &sub), CGW_OK);
    drain(ctx);
    assert_int_equal(g.entries, 0);
    assert_int_equal(g.status, CGW_ENOMEM);
    json_decref(ev);
    cgw_eventlog_free(log);
    cgw_ctx_free(ctx);
}

int main(void)
{
    if (cgw_set_allocator(failing_malloc, failing_realloc, free) != CGW_OK) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_fails_cleanly),
        cmocka_unit_test(test_append_and_subscribe_fail_cleanly),
        cmocka_unit_test(test_close_without_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
