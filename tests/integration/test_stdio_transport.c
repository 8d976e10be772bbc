/* The stdio transport on its own, with small shell children: message round trip through
 * `cat`, skipped non-JSON lines, the line cap with the id of the discarded answer, stderr
 * capture, env overlay and cwd, exit and EOF detection, and the shutdown ladder (stdin close,
 * SIGTERM, SIGKILL) with every child reaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "mcp/transport.h"
#include "mcp_harness.h"

typedef struct rec {
    int messages;
    json_t *last;
    int bad_json, too_long, has_id;
    json_int_t id;
    int closed, closed_code;
    char detail[256];
} rec_t;

static void on_message(void *user, json_t *msg)
{
    rec_t *r = user;
    r->messages++;
    json_decref(r->last);
    r->last = json_incref(msg);
}

static void on_bad(void *user, int code, int has_id, json_int_t id, const char *detail)
{
    (void)detail;
    rec_t *r = user;
    if (code == CGW_EJSON) {
        r->bad_json++;
    } else if (code == CGW_ELINETOOLONG) {
        r->too_long++;
        r->has_id = has_id;
        r->id = id;
    }
}

static void on_closed(void *user, int code, const char *detail)
{
    rec_t *r = user;
    r->closed++;
    r->closed_code = code;
    snprintf(r->detail, sizeof(r->detail), "%s", detail);
}

static cgw__mcp_transport_t *spawn(cgw_ctx_t *ctx, rec_t *r, const char *script,
                                   const char *const *env, const char *cwd, size_t max_line,
                                   int grace_ms)
{
    const char *args[] = {"-c", script, NULL};
    cgw__stdio_params_t p = {"t", "sh", args, env, cwd, max_line, 64, grace_ms};
    cgw__mcp_transport_cbs_t cbs = {on_message, on_bad, on_closed, r};
    cgw__mcp_transport_t *t = NULL;
    assert_int_equal(cgw__stdio_transport_new(ctx, &p, &cbs, &t, NULL), CGW_OK);
    return t;
}

static int wait_for(cgw_ctx_t *ctx, const int *counter, int want, int ms)
{
    for (int i = 0; i < ms && *counter < want; i += 5) {
        int never = 0;
        cgw_test_run_until(ctx, &never, 5);
    }
    return *counter >= want;
}

static void send_str(cgw__mcp_transport_t *t, const char *s)
{
    assert_int_equal(t->vt->send(t, s, strlen(s)), CGW_OK);
}

static void test_round_trip_garbage_and_cap(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    rec_t r = {0};
    cgw__mcp_transport_t *t = spawn(ctx, &r, "echo starting >&2; exec cat", NULL, NULL, 80, 0);
    assert_true(t->vt->pid(t) > 0);
    send_str(t, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n");
    assert_true(wait_for(ctx, &r.messages, 1, 3000));
    assert_int_equal(json_integer_value(json_object_get(r.last, "id")), 1);
    send_str(t, "not json at all\n");
    assert_true(wait_for(ctx, &r.bad_json, 1, 3000));
    char big[300];
    snprintf(big, sizeof(big), "{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"text\":\"%0200d\"}}\n",
             0);
    send_str(t, big);
    send_str(t, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n");
    assert_true(wait_for(ctx, &r.messages, 2, 3000));
    assert_int_equal(r.too_long, 1);
    assert_true(r.has_id);
    assert_int_equal(r.id, 42);
    assert_int_equal(json_integer_value(json_object_get(r.last, "id")), 2);
    assert_non_null(strstr(t->vt->diag(t), "starting"));
    t->vt->free(t); /* cat exits on stdin EOF */
    json_decref(r.last);
    assert_int_equal(r.closed, 0); /* no callbacks after free */
    cgw_ctx_free(ctx);
    assert_int_equal(mcp_h_child_count(), 0);
}

static void test_env_cwd_and_exit(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    rec_t r = {0};
    const char *env[] = {"CGW_T_A=from-config", "HOME=/overridden", NULL};
    cgw__mcp_transport_t *t =
        spawn(ctx, &r,
              "printf '{\"a\":\"%s\",\"home\":\"%s\",\"cwd\":\"%s\",\"path\":%d}\\n' \"$CGW_T_A\" "
              "\"$HOME\" \"$PWD\" ${#PATH}; exit 7",
              env, "/tmp", 0, 0);
    assert_true(wait_for(ctx, &r.closed, 1, 3000));
    assert_int_equal(r.messages, 1); /* the last line is read before the exit is reported */
    assert_string_equal(json_string_value(json_object_get(r.last, "a")), "from-config");
    assert_string_equal(json_string_value(json_object_get(r.last, "home")), "/overridden");
    assert_string_equal(json_string_value(json_object_get(r.last, "cwd")), "/tmp");
    assert_true(json_integer_value(json_object_get(r.last, "path")) > 0); /* inherited */
    assert_int_equal(r.closed_code, CGW_ESERVERDIED);
    assert_non_null(strstr(r.detail, "exited with status 7"));
    assert_int_equal(t->vt->send(t, "{}\n", 3), CGW_ECLOSED);
    t->vt->free(t);
    json_decref(r.last);
    cgw_ctx_free(ctx);
    assert_int_equal(mcp_h_child_count(), 0);
}

/* The command is looked up as posix_spawnp would: a relative one from the entry's cwd, where
 * the child runs it, not from ours; a name on PATH skipping what cannot be executed. */
static void test_command_lookup(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    rec_t r = {0};
    const char *args[] = {"-c", "echo '{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}'", NULL};
    cgw__stdio_params_t p = {"rel", "./sh", args, NULL, "/bin", 0, 64, 0};
    cgw__mcp_transport_cbs_t cbs = {on_message, on_bad, on_closed, &r};
    cgw__mcp_transport_t *t = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw__stdio_transport_new(ctx, &p, &cbs, &t, &err), CGW_OK);
    assert_true(wait_for(ctx, &r.messages, 1, 3000));
    assert_int_equal(json_integer_value(json_object_get(r.last, "id")), 5);
    t->vt->free(t);
    json_decref(r.last);
    r.last = NULL;
    p.cwd = "/no/such/dir";
    assert_int_equal(cgw__stdio_transport_new(ctx, &p, &cbs, &t, &err), CGW_ENOENT);
    assert_null(t);
    /* A directory named like the command earlier on PATH is passed over, as posix_spawnp does. */
    char dir[] = "/tmp/cgw-stdio-path-XXXXXX", sub[64], path[8192];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/sh", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    const char *old = getenv("PATH");
    char *saved = strdup(old != NULL ? old : "/usr/bin:/bin");
    snprintf(path, sizeof(path), "%s:%s", dir, saved);
    setenv("PATH", path, 1);
    p.command = "sh";
    p.cwd = NULL;
    r.messages = 0;
    int rc = cgw__stdio_transport_new(ctx, &p, &cbs, &t, &err);
    setenv("PATH", saved, 1);
    free(saved);
    rmdir(sub);
    rmdir(dir);
    assert_int_equal(rc, CGW_OK);
    assert_true(wait_for(ctx, &r.messages, 1, 3000));
    assert_int_equal(json_integer_value(json_object_get(r.last, "id")), 5);
    t->vt->free(t);
    json_decref(r.last);
    cgw_ctx_free(ctx);
    assert_int_equal(mcp_h_child_count(), 0);
}

/* A child that is gone before the loop ever runs: its stderr must still be captured. */
static void test_instant_exit_keeps_stderr(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        cgw_ctx_t *ctx = cgw_test_ctx_new();
        rec_t r = {0};
        cgw__mcp_transport_t *t =
            spawn(ctx, &r, "echo 'fatal: no key' >&2; exit 3", NULL, NULL, 0, 0);
        send_str(t, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}\n");
        assert_true(wait_for(ctx, &r.closed, 1, 3000));
        assert_non_null(strstr(r.detail, "exited with status 3"));
        assert_string_equal(t->vt->diag(t), "fatal: no key\n");
        t->vt->free(t);
        cgw_ctx_free(ctx);
    }
    assert_int_equal(mcp_h_child_count(), 0);
}

/* stderr is kept as a bounded tail (the tests spawn with a 64-byte cap). */
static void test_stderr_ring_is_bounded(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    rec_t r = {0};
    cgw__mcp_transport_t *t = spawn(
        ctx, &r, "i=0; while [ $i -lt 40 ]; do echo \"line $i\" >&2; i=$((i+1)); done; exit 0",
        NULL, NULL, 0, 0);
    assert_true(wait_for(ctx, &r.closed, 1, 3000));
    const char *tail = t->vt->diag(t);
    assert_true(strlen(tail) <= 64);
    assert_non_null(strstr(tail, "line 39\n"));
    assert_null(strstr(tail, "line 1\n"));
    t->vt->free(t);
    cgw_ctx_free(ctx);
    assert_int_equal(mcp_h_child_count(), 0);
}

static void test_spawn_failures(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    rec_t r = {0};
    cgw__stdio_params_t p = {"x", "/no/such/binary", NULL, NULL, NULL, 0, 0, 0};
    cgw__mcp_transport_cbs_t cbs = {on_message, on_bad, on_closed, &r};
    cgw__mcp_transport_t *t = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw__stdio_transport_new(ctx, &p, &cbs, &t, &err), CGW_ENOENT);
    assert_null(t);
    assert_non_null(strstr(err.message, "/no/such/binary"));
    p.command = "sh";
    p.cwd = "/no/such/dir";
    assert_int_equal(cgw__stdio_transport_new(ctx, &p, &cbs, &t, &err), CGW_ENOENT);
    assert_non_null(strstr(err.message, "/no/such/dir"));
    p.command = "";
    assert_int_equal(cgw__stdio_transport_new(ctx, &p, &cbs, &t, &err), CGW_EINVAL);
    cgw_ctx_free(ctx);
    assert_int_equal(mcp_h_child_count(), 0);
}

static double elapsed_ms(struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1000.0 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

static void test_shutdown_ladder(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    rec_t r = {0};
    /* Ignores stdin EOF and SIGTERM (an ignored signal stays ignored across exec): only
     * SIGKILL ends it, after two grace periods. */
    cgw__mcp_transport_t *t = spawn(ctx, &r, "trap '' TERM; exec sleep 30", NULL, NULL, 0, 100);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    t->vt->free(t);
    double ms = elapsed_ms(&t0);
    assert_true(ms >= 190 && ms < 2000);
    assert_int_equal(mcp_h_child_count(), 0);
    /* Detached close on the loop: the same ladder, asynchronously. */
    t = spawn(ctx, &r, "trap '' TERM; exec sleep 30", NULL, NULL, 0, 50);
    t->vt->close(t);
    for (int i = 0; i < 200 && mcp_h_child_count() > 0; i++) {
        int never = 0;
        cgw_test_run_until(ctx, &never, 10);
    }
    assert_int_equal(mcp_h_child_count(), 0);
    /* Detached, then the context goes away before the child is gone: reaped by ctx free. */
    t = spawn(ctx, &r, "trap '' TERM; exec sleep 30", NULL, NULL, 0, 50);
    t->vt->close(t);
    cgw_ctx_free(ctx);
    assert_int_equal(mcp_h_child_count(), 0);
    assert_int_equal(r.closed, 0);
}

static void test_stdout_closed_while_alive(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    rec_t r = {0};
    cgw__mcp_transport_t *t = spawn(ctx, &r, "exec 1>&-; exec sleep 30", NULL, NULL, 0, 100);
    assert_true(wait_for(ctx, &r.closed, 1, 3000));
    assert_int_equal(r.closed_code, CGW_EPIPE);
    assert_non_null(strstr(r.detail, "closed its stdout"));
    /* It is being terminated in the background; free finishes the job. */
    t->vt->free(t);
    cgw_ctx_free(ctx);
    assert_int_equal(mcp_h_child_count(), 0);
}

/* 1 when `pid` still runs (a zombie waiting for its new parent does not count). */
static int alive(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp != NULL && rp[2] != 'Z' && rp[2] != 'X';
}

/* What a server starts in the background (npx and uvx wrappers do) dies with it. */
static void test_grandchildren_killed(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    rec_t r = {0};
    cgw__mcp_transport_t *t =
        spawn(ctx, &r, "sleep 30 & printf '{\"bg\":%d}\\n' $!; exec cat", NULL, NULL, 0, 0);
    assert_true(wait_for(ctx, &r.messages, 1, 3000));
    long bg = (long)json_integer_value(json_object_get(r.last, "bg"));
    assert_true(bg > 0 && alive(bg));
    t->vt->free(t); /* cat exits on EOF; the group is killed when the leader is reaped */
    for (int i = 0; i < 100 && alive(bg); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_false(alive(bg));
    json_decref(r.last);
    cgw_ctx_free(ctx);
    assert_int_equal(mcp_h_child_count(), 0);
}

static void test_env_overlay(void **state)
{
    (void)state;
    const char *base[] = {"A=1", "B=2", "PATH=/bin", NULL};
    const char *over[] = {"B=3", "C=4", "C=5", NULL};
    char **e = cgw__env_overlay(base, over);
    assert_string_equal(e[0], "A=1");
    assert_string_equal(e[1], "PATH=/bin");
    assert_string_equal(e[2], "B=3");
    assert_string_equal(e[3], "C=5");
    assert_null(e[4]);
    cgw_free(e);
    e = cgw__env_overlay(base, NULL);
    assert_string_equal(e[2], "PATH=/bin");
    assert_null(e[3]);
    cgw_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_garbage_and_cap),
        cmocka_unit_test(test_env_cwd_and_exit),
        cmocka_unit_test(test_command_lookup),
        cmocka_unit_test(test_instant_exit_keeps_stderr),
        cmocka_unit_test(test_stderr_ring_is_bounded),
        cmocka_unit_test(test_spawn_failures),
        cmocka_unit_test(test_shutdown_ladder),
        cmocka_unit_test(test_stdout_closed_while_alive),
        cmocka_unit_test(test_grandchildren_killed),
        cmocka_unit_test(test_env_overlay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
