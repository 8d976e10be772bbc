#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "testutil.h"

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && *v ? v : def;
}

const char *cgw_test_shared_dir(void)
{
    return env_or("CGW_SHARED_DIR", CGW_TEST_SHARED_DIR);
}

const char *cgw_test_source_dir(void)
{
    return env_or("CGW_SOURCE_DIR", CGW_TEST_SOURCE_DIR);
}

const char *cgw_test_binary_dir(void)
{
    return env_or("CGW_BINARY_DIR", CGW_TEST_BINARY_DIR);
}

const char *cgw_test_gateway_bin(void)
{
    return env_or("CGW_GATEWAY_BIN", CGW_TEST_GATEWAY_BIN);
}

const char *cgw_test_npm_dir(void)
{
    return env_or("CGW_NPM_DIR", CGW_TEST_NPM_DIR);
}

char *cgw_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0) {
            break;
        }
        n += r;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

struct until_state {
    cgw_ctx_t *ctx;
    const int *flag;
    int timed_out;
};

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct until_state *st = arg;
    if (*st->flag) {
        cgw_ctx_stop(st->ctx);
    }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct until_state *st = arg;
    st->timed_out = 1;
    cgw_ctx_stop(st->ctx);
}

int cgw_test_run_until(cgw_ctx_t *ctx, const int *flag, int timeout_ms)
{
    struct event_base *base = cgw_ctx_base(ctx);
    struct until_state st = {ctx, flag, 0};
    struct timeval tick = {0, 1000};
    struct timeval deadline = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct event *poll = event_new(base, -1, EV_PERSIST, poll_cb, &st);
    struct event *dl = evtimer_new(base, deadline_cb, &st);
    event_add(poll, &tick);
    event_add(dl, &deadline);
    while (!*flag && !st.timed_out) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(poll);
    event_free(dl);
    return *flag ? 1 : 0;
}

int cgw_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

cgw_ctx_t *cgw_test_ctx_new(void)
{
    cgw_ctx_options_t o;
    cgw_ctx_options_init(&o);
    o.log_level = CGW_LOG_WARN;
    const char *lvl = getenv("CGW_TEST_LOG");
    if (lvl != NULL) {
        cgw_log_level_parse(lvl, &o.log_level);
    }
    cgw_ctx_t *ctx = NULL;
    if (cgw_ctx_new(&o, &ctx) != CGW_OK) {
        return NULL;
    }
    return ctx;
}
