/* claude-gateway mock-api: runs cgw_mock_api_t until SIGTERM or SIGINT. The first line on
 * stdout is "listening on HOST:PORT" (port 0 resolved), so that scripts and tests can find it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cgw.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: claude-gateway mock-api [--listen HOST:PORT] [--script FILE | --replay FILE]\n"
            "                               [--max-body BYTES] [--api-key KEY] [--log-level L]\n\n"
            "A scripted, Anthropic-compatible Messages API server (docs/mock-api.md).\n\n"
            "  --listen HOST:PORT  address to listen on (default 127.0.0.1:0: a free port);\n"
            "                      the first stdout line is 'listening on HOST:PORT'\n"
            "  --script FILE       JSON script of turns\n"
            "  --replay FILE       serve this recording (.sse body or raw curl -D - capture)\n"
            "  --max-body BYTES    larger request bodies get 413 (default 33554432)\n"
            "  --api-key KEY       require this x-api-key / Bearer token (default: any)\n"
            "  --log-level L       trace, debug, info, warn (default), error, off\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    cgw_ctx_stop(arg);
}

struct args {
    cgw_mock_api_options_t opts;
    cgw_log_level_t level;
};

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        bool known = strcmp(arg, "--listen") == 0 || strcmp(arg, "--script") == 0 ||
                     strcmp(arg, "--replay") == 0 || strcmp(arg, "--max-body") == 0 ||
                     strcmp(arg, "--api-key") == 0 || strcmp(arg, "--log-level") == 0;
        if (!known || val == NULL) {
            fprintf(stderr, "mock-api: %s '%s'\n", known ? "missing value for" : "unknown option",
                    arg);
            usage(stderr);
            return 2;
        }
        i++;
        char *end = NULL;
        if (strcmp(arg, "--listen") == 0) {
            a->opts.listen = val;
        } else if (strcmp(arg, "--script") == 0) {
            a->opts.script_path = val;
        } else if (strcmp(arg, "--replay") == 0) {
            a->opts.replay_path = val;
        } else if (strcmp(arg, "--api-key") == 0) {
            a->opts.api_key = val;
        } else if (strcmp(arg, "--max-body") == 0) {
            unsigned long long n = strtoull(val, &end, 10);
            if (*end != '\0' || n == 0) {
                fprintf(stderr, "mock-api: --max-body wants a positive number of bytes\n");
                return 2;
            }
            a->opts.max_body_bytes = (size_t)n;
        } else if (cgw_log_level_parse(val, &a->level) != CGW_OK) {
            fprintf(stderr, "mock-api: unknown log level '%s'\n", val);
            return 2;
        }
    }
    return -1;
}

int cgw__cmd_mock_api(int argc, char **argv)
{
    struct args a;
    cgw_mock_api_options_init(&a.opts);
    a.level = CGW_LOG_WARN;
    int status = parse_args(argc, argv, &a);
    if (status >= 0) {
        return status;
    }
    signal(SIGPIPE, SIG_IGN); /* a client that goes away must not kill the server */
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = a.level;
    cgw_ctx_t *ctx = NULL;
    cgw_mock_api_t *mock = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    if (cgw_ctx_new(&co, &ctx) != CGW_OK) {
        fprintf(stderr, "mock-api: cannot create the event loop\n");
        return 1;
    }
    if (cgw_mock_api_new(ctx, &a.opts, &mock, &err) != CGW_OK) {
        fprintf(stderr, "mock-api: %s\n", err.message);
        cgw_ctx_free(ctx);
        return 1;
    }
    struct event *term = evsignal_new(cgw_ctx_base(ctx), SIGTERM, on_signal, ctx);
    struct event *intr = evsignal_new(cgw_ctx_base(ctx), SIGINT, on_signal, ctx);
    event_add(term, NULL);
    event_add(intr, NULL);
    printf("listening on %s\n", cgw_mock_api_address(mock));
    fflush(stdout);
    int rc = cgw_ctx_run(ctx);
    event_free(term);
    event_free(intr);
    cgw_mock_api_free(mock);
    cgw_ctx_free(ctx);
    return rc == CGW_OK ? 0 : 1;
}
