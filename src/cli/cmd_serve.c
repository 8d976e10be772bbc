/* claude-gateway serve: the HTTP gateway (include/cgw/gateway.h, docs/server.md).
 *
 * Settings: config file < environment < flags. The first line on stdout is
 * "listening on HOST:PORT" (port 0 resolved) so scripts and tests can find the gateway.
 * SIGTERM / SIGINT stop it gracefully (a second one stops at once); SIGHUP reloads the MCP
 * configuration: a new manager is started and used for new runs, the old one is stopped once
 * no run uses it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "cgw.h"
#include "cli/cli.h"
#include "cli/cli_mcp.h"
#include "cli/serve_config.h"

typedef struct serve {
    serve_config_t cfg;
    cgw_ctx_t *ctx;
    cgw_store_t *store;
    cgw_anthropic_t *client;
    cgw_mcp_config_t *mcp_cfg;
    cgw_mcp_manager_t *mcp;
    cgw_mcp_config_t *old_cfg[8]; /* managers replaced by SIGHUP, freed when unused */
    cgw_mcp_manager_t *old_mcp[8];
    size_t n_old;
    cgw_gateway_t *gw;
    struct event *sig[3];
    struct event *reaper;
    int signals;
} serve_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: claude-gateway serve [--listen ADDR:PORT] [--config FILE] [--data-dir DIR]\n"
            "                            [--memory] [--log-level L] [--set KEY=VALUE]...\n\n"
            "The HTTP gateway: sessions, runs as Server-Sent Events, approvals, metrics.\n\n"
            "  --listen ADDR:PORT  default 127.0.0.1:8080 (port 0: a free one); the first line\n"
            "                      on stdout is 'listening on ADDR:PORT'\n"
            "  --config FILE       JSON settings (keys in docs/server.md)\n"
            "  --data-dir DIR      SQLite store folder (default ./data)\n"
            "  --memory            keep everything in memory (nothing survives a restart)\n"
            "  --log-level L       trace, debug, info (default), warn, error, off\n"
            "  --set KEY=VALUE     any setting of docs/server.md\n\n"
            "Precedence: flags > environment (CGW_<KEY>, ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN,\n"
            "ANTHROPIC_BASE_URL) > config file. Without a credential every run answers with a\n"
            "stub text. Without a bearer token (CGW_TOKENS=tenant:token,...) only loopback\n"
            "addresses are allowed.\n");
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(serve_t *s, int argc, char **argv)
{
    char why[256];
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        }
    }
    if (config != NULL && serve_config_file(&s->cfg, config, why, sizeof(why)) != 0) {
        fprintf(stderr, "serve: %s\n", why);
        return 2;
    }
    if (serve_config_env(&s->cfg, why, sizeof(why)) != 0) {
        fprintf(stderr, "serve: %s\n", why);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--memory") == 0) {
            if (serve_config_set(&s->cfg, "store", "memory", why, sizeof(why)) != 0) {
                fprintf(stderr, "serve: %s\n", why);
                return 2;
            }
            continue;
        } else if (v == NULL) {
            fprintf(stderr, "serve: %s '%s'\n", a[0] == '-' ? "missing value for" : "unexpected",
                    a);
            return 2;
        } else if (strcmp(a, "--config") == 0) {
            /* read first */
        } else if (strcmp(a, "--listen") == 0 || strcmp(a, "--data-dir") == 0 ||
                   strcmp(a, "--log-level") == 0) {
            char key[32];
            snprintf(key, sizeof(key), "%s", a + 2);
            for (char *p = key; *p != '\0'; p++) {
                *p = *p == '-' ? '_' : *p;
            }
            rc = serve_config_set(&s->cfg, key, v, why, sizeof(why));
        } else if (strcmp(a, "--set") == 0 && strchr(v, '=') != NULL) {
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)(strchr(v, '=') - v), v);
            rc = serve_config_set(&s->cfg, key, strchr(v, '=') + 1, why, sizeof(why));
        } else {
            fprintf(stderr, "serve: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (rc != 0) {
            fprintf(stderr, "serve: %s\n", why);
            return 2;
        }
    }
    return -1;
}

/* ---- pieces ------------------------------------------------------------------------------ */

static int open_ctx(serve_t *s)
{
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    if (s->cfg.log_level != NULL && cgw_log_level_parse(s->cfg.log_level, &co.log_level) != 0) {
        fprintf(stderr, "serve: unknown log level '%s'\n", s->cfg.log_level);
        return -1;
    }
    /* One JSON object per line for log collectors; text when a person watches a terminal. */
    co.log_json =
        s->cfg.log_format != NULL ? strcmp(s->cfg.log_format, "json") == 0 : !isatty(STDERR_FILENO);
    if (cgw_ctx_new(&co, &s->ctx) != CGW_OK) {
        fprintf(stderr, "serve: cannot create the event loop\n");
        return -1;
    }
    return 0;
}

static int open_store(serve_t *s, cgw_error_t *err)
{
    if (strcmp(s->cfg.store, "memory") == 0) {
        return cgw_store_open_memory(s->ctx, &s->store);
    }
    if (strcmp(s->cfg.store, "sqlite") != 0) {
        return cgw_error_set(err, CGW_EINVAL, "store must be 'sqlite' or 'memory'");
    }
    cgw_store_sqlite_options_t o;
    cgw_store_sqlite_options_init(&o);
    o.data_dir = s->cfg.data_dir;
    /* One gateway per data folder: a second one fails at start instead of sharing it. */
    o.exclusive = true;
    o.busy_timeout_ms = 200;
    return cgw_store_open_sqlite(s->ctx, &o, &s->store, err);
}

static int open_client(serve_t *s, cgw_error_t *err)
{
    cgw_anthropic_options_t o;
    cgw_anthropic_options_init(&o);
    o.api_key = s->cfg.api_key;
    o.auth_token = s->cfg.auth_token;
    o.base_url = s->cfg.base_url;
    o.model = s->cfg.model;
    if (s->cfg.max_tokens > 0) {
        o.max_tokens = (int)s->cfg.max_tokens;
    }
    o.auth_mode =
        cgw_auth_mode_parse(s->cfg.auth_mode != NULL                              ? s->cfg.auth_mode
                            : s->cfg.auth_token != NULL && s->cfg.api_key == NULL ? "oauth"
                                                                                  : "api");
    int rc = cgw_anthropic_new(s->ctx, &o, &s->client, err);
    if (rc == CGW_ENOCRED) {
        cgw_ctx_log(s->ctx, CGW_LOG_WARN, "serve",
                    "no Anthropic credential (ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN): runs "
                    "answer with a stub text");
        s->client = NULL;
        return CGW_OK;
    }
    return rc;
}

static int load_mcp(serve_t *s, cgw_mcp_config_t **cfg, cgw_mcp_manager_t **mgr, cgw_error_t *err)
{
    cgw__cli_mcp_sel_t sel = {s->cfg.mcp_config,
                              s->cfg.strict_mcp_config,
                              s->cfg.claude_json,
                              s->cfg.project,
                              (const char *const *)s->cfg.allowed_servers,
                              s->cfg.n_allowed_servers,
                              s->cfg.has_allowed_servers};
    int rc = cgw__cli_mcp_config_load(&sel, cfg, err);
    if (rc != CGW_OK) {
        return rc;
    }
    cgw_mcp_manager_options_t mo;
    cgw_mcp_manager_options_init(&mo);
    mo.config = *cfg;
    rc = cgw_mcp_manager_new(s->ctx, &mo, mgr, err);
    if (rc == CGW_OK) {
        rc = cgw_mcp_manager_start(*mgr, NULL, NULL);
    }
    if (rc != CGW_OK) {
        cgw_mcp_manager_free(*mgr);
        cgw_mcp_config_free(*cfg);
        *mgr = NULL;
        *cfg = NULL;
    }
    return rc;
}

static int open_gateway(serve_t *s, cgw_error_t *err)
{
    const serve_config_t *c = &s->cfg;
    cgw_gateway_token_t toks[SERVE_MAX_TOKENS];
    for (size_t i = 0; i < c->n_tokens; i++) {
        toks[i].token = c->token_value[i];
        toks[i].tenant = c->token_tenant[i];
    }
    cgw_gateway_options_t o;
    cgw_gateway_options_init(&o);
    o.listen = c->listen;
    o.tokens = toks;
    o.n_tokens = c->n_tokens;
    o.store = s->store;
    o.client = s->client;
    o.mcp = s->mcp;
    o.model = c->model;
    o.system_prompt = c->system_prompt;
    o.max_turns = (int)c->max_turns;
    o.tool_timeout_ms = (uint32_t)c->tool_timeout_ms;
    o.approval_tools = (const char *const *)c->approval_tools;
    o.n_approval_tools = c->n_approval_tools;
    o.approval_timeout_ms = (uint32_t)c->approval_timeout_ms;
    o.max_body_bytes = c->max_body_bytes;
    o.max_header_bytes = c->max_header_bytes;
    o.max_sessions_per_tenant = c->max_sessions_per_tenant;
    o.max_concurrent_runs = c->max_concurrent_runs;
    o.max_loaded_sessions = c->max_loaded_sessions;
    o.max_streams_per_client = c->max_streams_per_client;
    o.stream_buffer_bytes = c->stream_buffer_bytes;
    o.stream_stall_ms = (uint32_t)c->stream_stall_ms;
    o.ping_interval_ms = (uint32_t)c->ping_interval_ms;
    o.shutdown_grace_ms = (uint32_t)c->shutdown_grace_ms;
    o.cancel_on_disconnect = c->cancel_on_disconnect;
    o.stub_delay_ms = (uint32_t)c->stub_delay_ms;
    return cgw_gateway_new(s->ctx, &o, &s->gw, err);
}

/* ---- signals ----------------------------------------------------------------------------- */

static void on_stopped(cgw_gateway_t *gw, void *user)
{
    (void)gw;
    cgw_ctx_stop(user);
}

static void reap_old(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    serve_t *s = arg;
    for (size_t i = 0; i < s->n_old;) {
        if (cgw_gateway_mcp_in_use(s->gw, s->old_mcp[i])) {
            i++;
            continue;
        }
        cgw_mcp_manager_free(s->old_mcp[i]);
        cgw_mcp_config_free(s->old_cfg[i]);
        s->n_old--;
        s->old_mcp[i] = s->old_mcp[s->n_old];
        s->old_cfg[i] = s->old_cfg[s->n_old];
    }
}

static void reload_mcp(serve_t *s)
{
    cgw_mcp_config_t *cfg = NULL;
    cgw_mcp_manager_t *mgr = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    if (s->n_old == sizeof(s->old_mcp) / sizeof(s->old_mcp[0])) {
        cgw_ctx_log(s->ctx, CGW_LOG_WARN, "serve", "SIGHUP ignored: too many reloads pending");
        return;
    }
    if (load_mcp(s, &cfg, &mgr, &err) != CGW_OK) {
        cgw_ctx_log(s->ctx, CGW_LOG_ERROR, "serve", "SIGHUP: MCP configuration not reloaded: %s",
                    err.message);
        return;
    }
    s->old_mcp[s->n_old] = s->mcp;
    s->old_cfg[s->n_old++] = s->mcp_cfg;
    s->mcp = mgr;
    s->mcp_cfg = cfg;
    cgw_gateway_set_mcp(s->gw, mgr);
    cgw_ctx_log(s->ctx, CGW_LOG_INFO, "serve", "SIGHUP: MCP configuration reloaded (%zu servers)",
                cgw_mcp_config_count(cfg));
    reap_old(-1, 0, s);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    serve_t *s = arg;
    if (sig == SIGHUP) {
        reload_mcp(s);
        return;
    }
    if (s->signals++ > 0) {
        cgw_ctx_log(s->ctx, CGW_LOG_WARN, "serve", "second signal: stopping now");
        cgw_ctx_stop(s->ctx);
        return;
    }
    cgw_gateway_shutdown(s->gw, on_stopped, s->ctx);
}

static void teardown(serve_t *s)
{
    for (size_t i = 0; i < 3; i++) {
        if (s->sig[i] != NULL) {
            event_free(s->sig[i]);
        }
    }
    if (s->reaper != NULL) {
        event_free(s->reaper);
    }
    cgw_gateway_free(s->gw);
    for (size_t i = 0; i < s->n_old; i++) {
        cgw_mcp_manager_free(s->old_mcp[i]);
        cgw_mcp_config_free(s->old_cfg[i]);
    }
    cgw_mcp_manager_free(s->mcp);
    cgw_mcp_config_free(s->mcp_cfg);
    cgw_anthropic_free(s->client);
    cgw_store_free(s->store);
    cgw_ctx_free(s->ctx);
    serve_config_free(&s->cfg);
}

static int run(serve_t *s)
{
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = open_store(s, &err);
    if (rc == CGW_OK) {
        rc = open_client(s, &err);
    }
    if (rc == CGW_OK) {
        rc = load_mcp(s, &s->mcp_cfg, &s->mcp, &err);
    }
    if (rc == CGW_OK) {
        rc = open_gateway(s, &err);
    }
    if (rc != CGW_OK) {
        cgw_ctx_log(s->ctx, CGW_LOG_ERROR, "serve", "%s",
                    err.message[0] ? err.message : cgw_strerror(rc));
        return 1;
    }
    static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < 3; i++) {
        s->sig[i] = evsignal_new(cgw_ctx_base(s->ctx), sigs[i], on_signal, s);
        event_add(s->sig[i], NULL);
    }
    s->reaper = event_new(cgw_ctx_base(s->ctx), -1, EV_PERSIST, reap_old, s);
    struct timeval tv = {1, 0};
    event_add(s->reaper, &tv);
    printf("listening on %s\n", cgw_gateway_address(s->gw));
    fflush(stdout);
    return cgw_ctx_run(s->ctx) == CGW_OK ? 0 : 1;
}

int cgw__cmd_serve(int argc, char **argv)
{
    serve_t s;
    memset(&s, 0, sizeof(s));
    serve_config_init(&s.cfg);
    int status = parse_args(&s, argc, argv);
    if (status >= 0) {
        serve_config_free(&s.cfg);
        return status;
    }
    signal(SIGPIPE, SIG_IGN); /* a client that goes away must not kill the gateway */
    /* One descriptor per stream: take every descriptor the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (open_ctx(&s) != 0) {
        serve_config_free(&s.cfg);
        return 1;
    }
    status = run(&s);
    teardown(&s);
    return status;
}
