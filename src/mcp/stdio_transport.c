/*
 * stdio transport: one MCP server as a child process.
 *
 * Spawn: posix_spawnp with three pipe2(O_CLOEXEC) pipes, so no other child ever inherits
 * them; the child gets its own process group (npx/uvx wrappers spawn grandchildren, and a
 * signal to the group reaches them too), default signal dispositions, the parent's
 * environment overlaid with the entry's env, and the entry's cwd.
 *
 * Loop wiring: stdin, stdout and stderr are bufferevents on the ctx loop; exit is seen through
 * a pidfd registered for EV_READ, so there is no SIGCHLD handler and the child is always
 * reaped by us (waitpid on a pid whose pidfd became readable never blocks).
 *
 * Exit detection: when the pidfd fires, whatever the child wrote before dying is drained from
 * its stdout first (answers are not lost), then on_closed reports the exit status. When
 * stdout reaches EOF while the process lives, we wait briefly for the exit so the report can
 * carry the status, then treat the server as gone and terminate it.
 *
 * Shutdown (close or free): close stdin, wait, SIGTERM to the group, wait, SIGKILL; a group
 * SIGKILL also follows the leader's exit so nothing it started outlives it.
 *
 * If we die without a shutdown (kill -9, a crash), the children must not live on as orphans:
 * some servers (server-everything among them) do not exit when their stdin closes. The kernel's
 * parent-death signal does it, but posix_spawn cannot set it, so when util-linux's setpriv is
 * installed the server is started through `setpriv --pdeathsig TERM -- <command>` (setpriv
 * execs the command in place: same pid, and the setting survives the exec). The command is
 * resolved on PATH first so that a missing command is still a spawn error, not an exit.
 *
 * Re-entrancy: the owner may free or close the transport from inside any callback; the
 * request is deferred until the callback's caller unwinds (depth counter).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/alloc.h"
#include "core/ctx_int.h"
#include "mcp/transport.h"
#include "proto/jsonrpc.h"
#include "proto/ndjson.h"

extern char **environ;

#define STDERR_DEFAULT_CAP 8192
#define STDERR_LINE_LOG_MAX 1024
#define GRACE_DEFAULT_MS 2000
#define EOF_WAIT_MS 200
#define RBUF_SIZE 65536
#define OUTQ_MAX ((size_t)64 * 1024 * 1024) /* queued for a server that does not read */

enum stage { RUNNING, STDIN_CLOSED, TERM_SENT, KILL_SENT };
enum pending_op { OP_NONE, OP_CLOSE, OP_FREE };

typedef struct stdio_transport {
    cgw__mcp_transport_t base;
    cgw_ctx_t *ctx;
    char *name;
    pid_t pid;
    int pidfd;
    struct bufferevent *in, *err;
    struct event *out_ev; /* stdout is read by hand: see read_stdout */
    char *rbuf;
    int fd_in, fd_out, fd_err; /* closed by us: bufferevent_free defers closing to the loop */
    struct event *pid_ev;
    struct event *timer;
    cgw__ndjson_t nd;
    cgw_buf_t err_ring; /* the last err_cap bytes of stderr */
    cgw_buf_t err_line; /* an incomplete stderr line, for logging */
    size_t err_cap;
    int grace_ms;
    enum stage stage;
    int exited, status;
    int stdout_eof;
    int closed_reported;
    int detached; /* owner let go (close): no callbacks, free self when reaped */
    int depth;    /* > 0 while one of our callbacks is running */
    enum pending_op pending;
    struct stdio_transport *next_detached;
} stdio_t;

static void reap(stdio_t *t);
static void arm_timer(stdio_t *t, int ms);
static void do_free(stdio_t *t);
static int start_close(stdio_t *t);

/* ---- detached transports: reaped on ctx free if still alive ------------------------------ */

typedef struct registry {
    stdio_t *head;
} registry_t;

static void registry_at_free(void *arg)
{
    cgw_ctx_t *ctx = arg;
    registry_t *r = *cgw__ctx_slot(ctx, CGW_CTX_SLOT_MCP);
    while (r != NULL && r->head != NULL) {
        stdio_t *t = r->head;
        r->head = t->next_detached;
        t->detached = 0;
        t->grace_ms = t->grace_ms < 500 ? t->grace_ms : 500;
        do_free(t);
    }
    cgw_free(r);
    *cgw__ctx_slot(ctx, CGW_CTX_SLOT_MCP) = NULL;
}

static int registry_add(stdio_t *t)
{
    void **slot = cgw__ctx_slot(t->ctx, CGW_CTX_SLOT_MCP);
    if (*slot == NULL) {
        registry_t *r = cgw__calloc(1, sizeof(*r));
        if (r == NULL || cgw__ctx_at_free(t->ctx, registry_at_free, t->ctx) != CGW_OK) {
            cgw_free(r);
            return CGW_ENOMEM;
        }
        *slot = r;
    }
    registry_t *r = *slot;
    t->next_detached = r->head;
    r->head = t;
    return CGW_OK;
}

static void registry_remove(stdio_t *t)
{
    registry_t *r = *cgw__ctx_slot(t->ctx, CGW_CTX_SLOT_MCP);
    for (stdio_t **p = r != NULL ? &r->head : NULL; p != NULL && *p != NULL;
         p = &(*p)->next_detached) {
        if (*p == t) {
            *p = t->next_detached;
            return;
        }
    }
}

/* ---- re-entrancy guard --------------------------------------------------------------------- */

static void enter(stdio_t *t)
{
    t->depth++;
}

/* Returns 1 when `t` was freed and must not be touched. */
static int leave(stdio_t *t)
{
    if (--t->depth > 0 || t->pending == OP_NONE) {
        return 0;
    }
    enum pending_op op = t->pending;
    t->pending = OP_NONE;
    if (op == OP_FREE) {
        do_free(t);
        return 1;
    }
    return start_close(t);
}

static int silent(const stdio_t *t)
{
    return t->detached || t->pending != OP_NONE;
}

/* ---- environment --------------------------------------------------------------------------- */

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq != NULL ? (size_t)(eq - kv) : strlen(kv);
}

static int in_overlay(const char *kv, const char *const *overlay)
{
    size_t k = key_len(kv);
    for (size_t i = 0; overlay != NULL && overlay[i] != NULL; i++) {
        if (key_len(overlay[i]) == k && strncmp(kv, overlay[i], k) == 0) {
            return 1;
        }
    }
    return 0;
}

char **cgw__env_overlay(const char *const *base, const char *const *overlay)
{
    size_t n = 0;
    for (size_t i = 0; base != NULL && base[i] != NULL; i++) {
        n++;
    }
    for (size_t i = 0; overlay != NULL && overlay[i] != NULL; i++) {
        n++;
    }
    char **envp = cgw__calloc(n + 1, sizeof(char *));
    if (envp == NULL) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; base != NULL && base[i] != NULL; i++) {
        if (!in_overlay(base[i], overlay)) {
            envp[k++] = (char *)base[i];
        }
    }
    for (size_t i = 0; overlay != NULL && overlay[i] != NULL; i++) {
        /* A key repeated in the overlay: the last one wins. */
        int later = 0;
        for (size_t j = i + 1; overlay[j] != NULL && !later; j++) {
            later = key_len(overlay[j]) == key_len(overlay[i]) &&
                    strncmp(overlay[i], overlay[j], key_len(overlay[i])) == 0;
        }
        if (!later) {
            envp[k++] = (char *)overlay[i];
        }
    }
    envp[k] = NULL;
    return envp;
}

/* ---- stdout: messages ---------------------------------------------------------------------- */

static void on_line(void *user, const char *line, size_t len)
{
    stdio_t *t = user;
    if (silent(t)) {
        return;
    }
    json_error_t jerr;
    json_t *msg = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
    if (msg == NULL) {
        /* Servers do leak log lines to stdout; skip them instead of dropping the session. */
        CGW_WARN(t->ctx, "mcp", "server '%s': skipped a non-JSON stdout line (%zu bytes): %.*s",
                 t->name, len, (int)(len < 200 ? len : 200), line);
        if (t->base.cbs.on_bad_message != NULL) {
            t->base.cbs.on_bad_message(t->base.cbs.user, CGW_EJSON, 0, 0, jerr.text);
        }
        return;
    }
    if (t->base.cbs.on_message != NULL) {
        t->base.cbs.on_message(t->base.cbs.user, msg);
    }
    json_decref(msg);
}

static void on_oversize(void *user, int code, const cgw__ndjson_oversize_t *info)
{
    stdio_t *t = user;
    if (silent(t)) {
        return;
    }
    json_int_t id = 0;
    int has_id = cgw__rpc_sniff_id(info->head, info->head_len, info->tail, info->tail_len, &id);
    char detail[160];
    snprintf(detail, sizeof(detail), "a message of %zu bytes exceeds the line limit of %zu bytes",
             info->total, t->nd.max_line);
    CGW_WARN(t->ctx, "mcp", "server '%s': %s; discarded", t->name, detail);
    if (t->base.cbs.on_bad_message != NULL) {
        t->base.cbs.on_bad_message(t->base.cbs.user, code, has_id, id, detail);
    }
}

/* Reads stdout straight into one buffer and frames it in place. A bufferevent would cost an
 * ioctl(FIONREAD) and a copy into an evbuffer per read; this is the hot path of every tool
 * call. With `drain`, reads until the pipe is empty (the writer is known to be gone). */
static void read_stdout(stdio_t *t, int drain)
{
    while (t->fd_out >= 0 && !t->stdout_eof) {
        ssize_t n = read(t->fd_out, t->rbuf, RBUF_SIZE);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            t->stdout_eof = 1;
            event_del(t->out_ev);
            if (!t->exited && t->stage == RUNNING) {
                arm_timer(t, EOF_WAIT_MS); /* the pidfd normally fires within microseconds */
            }
            return;
        }
        if (!silent(t)) {
            cgw__ndjson_feed(&t->nd, t->rbuf, (size_t)n);
        }
        if (!drain && (size_t)n < RBUF_SIZE) {
            return; /* the pipe is empty: skip the read that would say EAGAIN */
        }
    }
}

static void out_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stdio_t *t = arg;
    enter(t);
    read_stdout(t, 0);
    leave(t);
}

/* ---- stderr: bounded ring + log ------------------------------------------------------------ */

static void log_stderr_lines(stdio_t *t)
{
    char *nl;
    while ((nl = memchr(t->err_line.data, '\n', t->err_line.len)) != NULL) {
        size_t n = (size_t)(nl - t->err_line.data);
        if (n > 0) {
            CGW_INFO(t->ctx, "mcp", "server '%s' stderr: %.*s", t->name,
                     (int)(n < STDERR_LINE_LOG_MAX ? n : STDERR_LINE_LOG_MAX), t->err_line.data);
        }
        cgw_buf_consume(&t->err_line, n + 1);
    }
    if (t->err_line.len > STDERR_LINE_LOG_MAX) {
        CGW_INFO(t->ctx, "mcp", "server '%s' stderr: %.*s…", t->name, STDERR_LINE_LOG_MAX,
                 t->err_line.data);
        cgw_buf_reset(&t->err_line);
    }
}

static void stderr_bytes(stdio_t *t, const char *p, size_t n)
{
    if (cgw_buf_append(&t->err_ring, p, n) == CGW_OK && t->err_ring.len > t->err_cap) {
        cgw_buf_consume(&t->err_ring, t->err_ring.len - t->err_cap);
    }
    if (cgw_buf_append(&t->err_line, p, n) == CGW_OK) {
        log_stderr_lines(t);
    }
}

static void take_stderr(stdio_t *t, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    while (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
        size_t n = v.iov_len;
        stderr_bytes(t, v.iov_base, n);
        evbuffer_drain(in, n);
    }
}

static void err_read_cb(struct bufferevent *bev, void *arg)
{
    take_stderr(arg, bufferevent_get_input(bev));
}

/* ---- exit and end of stream ---------------------------------------------------------------- */

static void describe_exit(const stdio_t *t, char *buf, size_t cap)
{
    if (!t->exited) {
        snprintf(buf, cap, "server '%s' closed its stdout", t->name);
    } else if (WIFSIGNALED(t->status)) {
        snprintf(buf, cap, "server '%s' was killed by signal %d", t->name, WTERMSIG(t->status));
    } else {
        snprintf(buf, cap, "server '%s' exited with status %d", t->name,
                 WIFEXITED(t->status) ? WEXITSTATUS(t->status) : -1);
    }
}

static void report_closed(stdio_t *t)
{
    if (t->closed_reported) {
        return;
    }
    t->closed_reported = 1;
    char detail[200];
    describe_exit(t, detail, sizeof(detail));
    CGW_INFO(t->ctx, "mcp", "%s", detail);
    if (!silent(t) && t->base.cbs.on_closed != NULL) {
        t->base.cbs.on_closed(t->base.cbs.user, t->exited ? CGW_ESERVERDIED : CGW_EPIPE, detail);
    }
}

/* Reads what is left on stderr once the child is gone, without waiting. The bufferevent's
 * own input buffer cannot be filled from outside (libevent keeps it frozen), so this reads
 * the fd directly. */
static void drain_stderr(stdio_t *t)
{
    if (t->err != NULL) {
        take_stderr(t, bufferevent_get_input(t->err));
    }
    char buf[4096];
    ssize_t n;
    while (t->fd_err >= 0 && (n = read(t->fd_err, buf, sizeof(buf))) > 0) {
        stderr_bytes(t, buf, (size_t)n);
    }
}

static void reap(stdio_t *t)
{
    if (t->exited) {
        return;
    }
    /* The leader is a zombie until waitpid: its group id cannot be reused yet, so this reaches
     * exactly what it left behind. */
    kill(-t->pid, SIGKILL);
    int status = 0;
    while (waitpid(t->pid, &status, 0) < 0 && errno == EINTR) {
    }
    t->exited = 1;
    t->status = status;
    if (t->pid_ev != NULL) {
        event_del(t->pid_ev);
    }
}

static void pid_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stdio_t *t = arg;
    enter(t);
    reap(t);
    if (t->timer != NULL) {
        event_del(t->timer);
    }
    read_stdout(t, 1);
    drain_stderr(t);
    report_closed(t);
    if (leave(t)) {
        return;
    }
    if (t->detached) {
        registry_remove(t);
        do_free(t);
    }
}

static void signal_group(stdio_t *t, int sig)
{
    if (t->exited) {
        return;
    }
    kill(-t->pid, sig);
    syscall(SYS_pidfd_send_signal, t->pidfd, sig, NULL, 0);
}

static void arm_timer(stdio_t *t, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(t->timer, &tv);
}

/* Frees a bufferevent and closes its fd now. libevent's own close-on-free runs from a
 * deferred finalizer in the loop, too late for a synchronous shutdown that waits for the
 * child to see EOF; disabling first takes the fd out of epoll before it is closed. */
static void drop_bev(struct bufferevent **bev, int *fd)
{
    if (*bev != NULL) {
        bufferevent_disable(*bev, EV_READ | EV_WRITE);
        bufferevent_free(*bev);
        *bev = NULL;
    }
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void close_stdin(stdio_t *t)
{
    drop_bev(&t->in, &t->fd_in); /* the child sees EOF */
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stdio_t *t = arg;
    enter(t);
    switch (t->stage) {
    case RUNNING: /* stdout ended but the process lives on: it is no server any more */
        report_closed(t);
        t->stage = STDIN_CLOSED;
        close_stdin(t);
        arm_timer(t, t->grace_ms);
        break;
    case STDIN_CLOSED:
        CGW_WARN(t->ctx, "mcp", "server '%s' still running after stdin closed: SIGTERM", t->name);
        signal_group(t, SIGTERM);
        t->stage = TERM_SENT;
        arm_timer(t, t->grace_ms);
        break;
    case TERM_SENT:
        CGW_WARN(t->ctx, "mcp", "server '%s' ignored SIGTERM: SIGKILL", t->name);
        signal_group(t, SIGKILL);
        t->stage = KILL_SENT;
        break;
    case KILL_SENT:
        break;
    }
    leave(t);
}

static void err_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_disable(bev, EV_READ);
    }
}

static void in_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    stdio_t *t = arg;
    if (what & BEV_EVENT_ERROR) {
        /* EPIPE: the child stopped reading; the exit (or EOF) is reported by the other side. */
        CGW_DEBUG(t->ctx, "mcp", "server '%s': stdin write failed: %s", t->name,
                  strerror(EVUTIL_SOCKET_ERROR()));
        bufferevent_disable(bev, EV_WRITE);
    }
}

/* ---- shutdown ------------------------------------------------------------------------------ */

/* Returns 1 when `t` was freed. */
static int start_close(stdio_t *t)
{
    t->detached = 1;
    t->base.cbs = (cgw__mcp_transport_cbs_t){0};
    if (t->exited || registry_add(t) != CGW_OK) {
        do_free(t); /* already reaped, or cannot be tracked: finish synchronously */
        return 1;
    }
    if (t->stage == RUNNING) {
        t->stage = STDIN_CLOSED;
        close_stdin(t);
        arm_timer(t, t->grace_ms);
    }
    return 0;
}

/* Waits up to `ms` for the pidfd to become readable. */
static int wait_exit(stdio_t *t, int ms)
{
    struct pollfd p = {t->pidfd, POLLIN, 0};
    int rc;
    while ((rc = poll(&p, 1, ms)) < 0 && errno == EINTR) {
    }
    return rc > 0;
}

static void sync_shutdown(stdio_t *t)
{
    if (t->exited || t->pid <= 0) {
        return;
    }
    close_stdin(t);
    if (!wait_exit(t, t->grace_ms)) {
        signal_group(t, SIGTERM);
        if (!wait_exit(t, t->grace_ms)) {
            signal_group(t, SIGKILL);
        }
    }
    reap(t);
}

static void do_free(stdio_t *t)
{
    if (t->depth > 0) {
        t->pending = OP_FREE;
        return;
    }
    sync_shutdown(t);
    close_stdin(t);
    if (t->out_ev != NULL) {
        event_free(t->out_ev);
    }
    if (t->fd_out >= 0) {
        close(t->fd_out);
    }
    cgw_free(t->rbuf);
    drop_bev(&t->err, &t->fd_err);
    if (t->pid_ev != NULL) {
        event_free(t->pid_ev);
    }
    if (t->timer != NULL) {
        event_free(t->timer);
    }
    if (t->pidfd >= 0) {
        close(t->pidfd);
    }
    cgw__ndjson_free(&t->nd);
    cgw_buf_free(&t->err_ring);
    cgw_buf_free(&t->err_line);
    cgw_free(t->name);
    cgw_free(t);
}

/* ---- vtable -------------------------------------------------------------------------------- */

static int vt_send(cgw__mcp_transport_t *base, const char *data, size_t len)
{
    stdio_t *t = (stdio_t *)base;
    if (t->in == NULL || t->exited || t->closed_reported || silent(t)) {
        return CGW_ECLOSED;
    }
    /* Write straight to the pipe when nothing is queued: a request then costs one write()
     * instead of arming EV_WRITE and waiting for the next loop turn (the round trip is on
     * every tool call's critical path). Whatever the pipe does not take is queued. */
    if (evbuffer_get_length(bufferevent_get_output(t->in)) == 0) {
        ssize_t n;
        while ((n = write(t->fd_in, data, len)) < 0 && errno == EINTR) {
        }
        if (n < 0 && errno == EPIPE) {
            /* The child stopped reading (usually: it is exiting). Its exit or EOF is reported
             * through on_closed, which fails this request with the real reason (exit status,
             * stderr) instead of a bare "broken pipe" here. */
            CGW_DEBUG(t->ctx, "mcp", "server '%s': stdin closed by the server", t->name);
            return CGW_OK;
        }
        if (n < 0 && errno != EAGAIN) {
            return -errno;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
        if (len == 0) {
            return CGW_OK;
        }
    }
    if (evbuffer_get_length(bufferevent_get_output(t->in)) + len > OUTQ_MAX) {
        CGW_WARN(t->ctx, "mcp", "server '%s' is not reading its stdin: message refused", t->name);
        return CGW_E2BIG;
    }
    return bufferevent_write(t->in, data, len) == 0 ? CGW_OK : CGW_ENOMEM;
}

static void vt_close(cgw__mcp_transport_t *base)
{
    stdio_t *t = (stdio_t *)base;
    if (t->depth > 0) {
        t->base.cbs = (cgw__mcp_transport_cbs_t){0};
        if (t->pending == OP_NONE) {
            t->pending = OP_CLOSE;
        }
        return;
    }
    start_close(t);
}

static void vt_free(cgw__mcp_transport_t *base)
{
    stdio_t *t = (stdio_t *)base;
    t->base.cbs = (cgw__mcp_transport_cbs_t){0};
    if (t->depth > 0) {
        t->pending = OP_FREE;
        return;
    }
    do_free(t);
}

static const char *vt_diag(cgw__mcp_transport_t *base)
{
    stdio_t *t = (stdio_t *)base;
    return t->err_ring.data != NULL ? t->err_ring.data : "";
}

static int vt_pid(cgw__mcp_transport_t *base)
{
    return (int)((stdio_t *)base)->pid;
}

static const cgw__mcp_transport_vt_t stdio_vt = {vt_send, vt_close, vt_free, vt_diag, vt_pid};

/* ---- spawn --------------------------------------------------------------------------------- */

static void ignore_sigpipe_once(void)
{
    /* Writing to a pipe whose reader died raises SIGPIPE, which would kill the whole process.
     * Only a default disposition is changed; an application's own handler is respected. The
     * child gets the default back through POSIX_SPAWN_SETSIGDEF. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
    }
}

#define SETPRIV_PATH "/usr/bin/setpriv"

/* 0 when `path` names something the child can execute, else an errno value. The child
 * changes to `cwd` before it execs, so a relative path is looked up from there. */
static int can_exec(const char *path, const char *cwd)
{
    char buf[4096];
    if (path[0] != '/' && cwd != NULL && *cwd) {
        if (snprintf(buf, sizeof(buf), "%s/%s", cwd, path) >= (int)sizeof(buf)) {
            return ENAMETOOLONG;
        }
        path = buf;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        return errno;
    }
    /* execve refuses a directory with EACCES and posix_spawnp goes on to the next PATH entry */
    return S_ISDIR(st.st_mode) ? EACCES : access(path, X_OK) == 0 ? 0 : errno;
}

/* Resolves `cmd` the way posix_spawnp would: on the parent's PATH (glibc's posix_spawnp does
 * not read the child's envp, so an entry's `env.PATH` does not apply), relative names from the
 * child's `cwd`. Returns a new string, or NULL with *rc set to an errno value (ENOENT when no
 * PATH directory has it). */
static char *resolve_command(const char *cmd, const char *cwd, int *rc)
{
    if (strchr(cmd, '/') != NULL) {
        *rc = can_exec(cmd, cwd);
        return *rc == 0 ? cgw__strdup(cmd) : NULL;
    }
    const char *path = getenv("PATH");
    path = path != NULL && *path ? path : "/usr/local/bin:/usr/bin:/bin";
    *rc = ENOENT;
    for (const char *dir = path; *dir;) {
        size_t n = strcspn(dir, ":");
        char cand[4096];
        if (snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, n ? dir : ".", cmd) <
                (int)sizeof(cand) &&
            can_exec(cand, cwd) == 0) {
            char *out = cgw__strdup(cand);
            *rc = out != NULL ? 0 : ENOMEM;
            return out;
        }
        dir += n + (dir[n] == ':');
    }
    return NULL;
}

/* When setpriv is available, *out becomes {setpriv, --pdeathsig, TERM, --, <resolved
 * command>, args..., NULL} (the resolved command is out[4], caller frees it and the array);
 * otherwise *out stays NULL. Returns 0 or an errno value (the command cannot be run). */
static int with_pdeathsig(const char *cmd, const char *cwd, char **argv, size_t argc,
                          char ***out)
{
    *out = NULL;
    if (access(SETPRIV_PATH, X_OK) != 0) {
        return 0;
    }
    int rc;
    char *resolved = resolve_command(cmd, cwd, &rc);
    if (resolved == NULL) {
        return rc;
    }
    char **w = cgw__calloc(argc + 5, sizeof(char *));
    if (w == NULL) {
        cgw_free(resolved);
        return ENOMEM;
    }
    w[0] = (char *)SETPRIV_PATH;
    w[1] = (char *)"--pdeathsig";
    w[2] = (char *)"TERM";
    w[3] = (char *)"--";
    w[4] = resolved;
    for (size_t i = 1; i < argc; i++) {
        w[4 + i] = argv[i];
    }
    *out = w;
    return 0;
}

static int spawn_child(stdio_t *t, const cgw__stdio_params_t *p, int fds[3][2], cgw_error_t *err)
{
    size_t nargs = 0;
    while (p->args != NULL && p->args[nargs] != NULL) {
        nargs++;
    }
    char **argv = cgw__calloc(nargs + 2, sizeof(char *));
    char **envp = cgw__env_overlay((const char *const *)environ, p->env);
    if (argv == NULL || envp == NULL) {
        cgw_free(argv);
        cgw_free(envp);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    argv[0] = (char *)p->command;
    for (size_t i = 0; i < nargs; i++) {
        argv[i + 1] = (char *)p->args[i];
    }
    char **wrapped = NULL;
    int rc = with_pdeathsig(p->command, p->cwd, argv, nargs + 1, &wrapped);
    if (rc != 0) {
        cgw_free(argv);
        cgw_free(envp);
        return cgw_error_set(err, -rc, "cannot start '%s': %s", p->command, strerror(rc));
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0][0], 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1][1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[2][1], 2);
    if (p->cwd != NULL && *p->cwd) {
        posix_spawn_file_actions_addchdir_np(&fa, p->cwd);
    }
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    rc = wrapped != NULL ? posix_spawn(&t->pid, wrapped[0], &fa, &at, wrapped, envp)
                         : posix_spawnp(&t->pid, p->command, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (wrapped != NULL) {
        cgw_free(wrapped[4]);
        cgw_free(wrapped);
    }
    cgw_free(argv);
    cgw_free(envp);
    if (rc != 0) {
        t->pid = 0;
        return cgw_error_set(err, -rc, "cannot start '%s'%s%s: %s", p->command,
                             p->cwd != NULL ? " in " : "", p->cwd != NULL ? p->cwd : "",
                             strerror(rc));
    }
    return CGW_OK;
}

static struct bufferevent *wrap(stdio_t *t, int *fd, int *slot, bufferevent_data_cb rd,
                                bufferevent_event_cb ev)
{
    *slot = *fd;
    *fd = -1;
    evutil_make_socket_nonblocking(*slot);
    struct bufferevent *b = bufferevent_socket_new(cgw_ctx_base(t->ctx), *slot, 0);
    if (b != NULL) {
        bufferevent_setcb(b, rd, NULL, ev, t);
    }
    return b;
}

static int wire(stdio_t *t, int fds[3][2])
{
    t->in = wrap(t, &fds[0][1], &t->fd_in, NULL, in_event_cb);
    t->fd_out = fds[1][0];
    fds[1][0] = -1;
    evutil_make_socket_nonblocking(t->fd_out);
    t->out_ev = event_new(cgw_ctx_base(t->ctx), t->fd_out, EV_READ | EV_PERSIST, out_cb, t);
    t->rbuf = cgw__malloc(RBUF_SIZE);
    t->err = wrap(t, &fds[2][0], &t->fd_err, err_read_cb, err_event_cb);
    t->pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
    if (t->in == NULL || t->out_ev == NULL || t->rbuf == NULL || t->err == NULL || t->pidfd < 0) {
        return CGW_EIO;
    }
    t->pid_ev = event_new(cgw_ctx_base(t->ctx), t->pidfd, EV_READ, pid_cb, t);
    t->timer = evtimer_new(cgw_ctx_base(t->ctx), timer_cb, t);
    if (t->pid_ev == NULL || t->timer == NULL || event_add(t->pid_ev, NULL) != 0) {
        return CGW_EIO;
    }
    bufferevent_enable(t->in, EV_WRITE);
    event_add(t->out_ev, NULL);
    bufferevent_enable(t->err, EV_READ);
    return CGW_OK;
}

static void close_fds(int fds[3][2])
{
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 2; j++) {
            if (fds[i][j] >= 0) {
                close(fds[i][j]);
                fds[i][j] = -1;
            }
        }
    }
}

int cgw__stdio_transport_new(cgw_ctx_t *ctx, const cgw__stdio_params_t *p,
                             const cgw__mcp_transport_cbs_t *cbs, cgw__mcp_transport_t **out,
                             cgw_error_t *err)
{
    *out = NULL;
    if (p == NULL || p->command == NULL || *p->command == '\0') {
        return cgw_error_set(err, CGW_EINVAL, "no command given");
    }
    ignore_sigpipe_once();
    stdio_t *t = cgw__calloc(1, sizeof(*t));
    if (t == NULL || (t->name = cgw__strdup(p->name != NULL ? p->name : p->command)) == NULL) {
        cgw_free(t);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    t->base.vt = &stdio_vt;
    t->base.cbs = *cbs;
    t->ctx = ctx;
    t->pidfd = -1;
    t->fd_in = t->fd_out = t->fd_err = -1;
    t->err_cap = p->stderr_cap ? p->stderr_cap : STDERR_DEFAULT_CAP;
    t->grace_ms = p->term_grace_ms > 0 ? p->term_grace_ms : GRACE_DEFAULT_MS;
    cgw__ndjson_init(&t->nd, p->max_line, on_line, on_oversize, t);
    int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int rc = CGW_OK;
    for (int i = 0; i < 3 && rc == CGW_OK; i++) {
        if (pipe2(fds[i], O_CLOEXEC) != 0) {
            rc = cgw_error_set(err, -errno, "pipe2: %s", strerror(errno));
        }
    }
    if (rc == CGW_OK) {
        rc = spawn_child(t, p, fds, err);
    }
    if (rc == CGW_OK) {
        /* The child's ends belong to the child now. */
        close(fds[0][0]);
        close(fds[1][1]);
        close(fds[2][1]);
        fds[0][0] = fds[1][1] = fds[2][1] = -1;
        rc = wire(t, fds);
        if (rc != CGW_OK) {
            cgw_error_set(err, rc, "cannot watch server '%s' on the loop", t->name);
        }
    }
    close_fds(fds);
    if (rc != CGW_OK) {
        t->grace_ms = 200;
        do_free(t);
        return rc;
    }
    CGW_DEBUG(ctx, "mcp", "server '%s' started: pid %d", t->name, (int)t->pid);
    *out = &t->base;
    return CGW_OK;
}
