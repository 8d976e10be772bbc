/* claude-gateway tools: start the configured MCP servers, print the merged tool list with each
 * tool's server, and report every server that failed (non-zero exit). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cgw.h"
#include "cli/cli.h"
#include "cli/cli_mcp.h"
#include "core/alloc.h"
#include "core/json.h"

typedef struct tools_args {
    const char *mcp_config;
    const char *claude_json;
    const char *project;
    char *allowed_copy;
    const char *allowed[64];
    size_t n_allowed;
    int has_allowed;
    int strict;
    int json;
    int prefixed;
    int settle_ms;
    const char *log_level;
} tools_args_t;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: claude-gateway tools [options]\n\n"
        "Starts the configured MCP servers and lists their tools.\n"
        "Servers come from ~/.claude.json (top-level and projects[<dir>]) and <dir>/.mcp.json,\n"
        "as Claude Code writes them.\n\n"
        "  --mcp-config FILE        also read the \"mcpServers\" of FILE (highest precedence)\n"
        "  --strict-mcp-config      read only --mcp-config FILE\n"
        "  --claude-json PATH       instead of ~/.claude.json\n"
        "  --project DIR            project directory (default: the current directory)\n"
        "  --allowed-servers a,b    start only these servers\n"
        "  --prefixed               show tools as mcp__<server>__<tool>\n"
        "  --settle MS              after start-up, wait MS for tool list changes\n"
        "  --json                   print JSON instead of a table\n"
        "  --log-level LEVEL        trace, debug, info, warn, error, off (default off)\n\n"
        "Exit status: 0 when every server started, 1 when one failed (reasons are printed),\n"
        "2 on a usage or configuration error.\n");
}

static int split_allowed(tools_args_t *a, const char *list)
{
    a->has_allowed = 1;
    return cgw__cli_split_list(list, &a->allowed_copy, a->allowed,
                               sizeof(a->allowed) / sizeof(a->allowed[0]), &a->n_allowed) == CGW_OK
               ? 0
               : -1;
}

static int parse_args(int argc, char **argv, tools_args_t *a)
{
    enum { O_CFG = 256, O_STRICT, O_CJ, O_PROJ, O_ALLOW, O_PREF, O_SETTLE, O_JSON, O_LOG };
    static const struct option longs[] = {
        {"mcp-config", required_argument, NULL, O_CFG},
        {"strict-mcp-config", no_argument, NULL, O_STRICT},
        {"claude-json", required_argument, NULL, O_CJ},
        {"project", required_argument, NULL, O_PROJ},
        {"allowed-servers", required_argument, NULL, O_ALLOW},
        {"prefixed", no_argument, NULL, O_PREF},
        {"settle", required_argument, NULL, O_SETTLE},
        {"json", no_argument, NULL, O_JSON},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case O_CFG:
            a->mcp_config = optarg;
            break;
        case O_STRICT:
            a->strict = 1;
            break;
        case O_CJ:
            a->claude_json = optarg;
            break;
        case O_PROJ:
            a->project = optarg;
            break;
        case O_ALLOW:
            if (split_allowed(a, optarg) != 0) {
                fprintf(stderr, "claude-gateway tools: too many allowed servers\n");
                return 2;
            }
            break;
        case O_PREF:
            a->prefixed = 1;
            break;
        case O_SETTLE:
            a->settle_ms = atoi(optarg);
            break;
        case O_JSON:
            a->json = 1;
            break;
        case O_LOG:
            a->log_level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || (a->strict && a->mcp_config == NULL)) {
        usage(stderr);
        return 2;
    }
    return -1;
}

static int load_config(const tools_args_t *a, cgw_mcp_config_t **cfg)
{
    cgw__cli_mcp_sel_t sel = {a->mcp_config, a->strict != 0, a->claude_json, a->project,
                              a->allowed,    a->n_allowed,  a->has_allowed != 0};
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw__cli_mcp_config_load(&sel, cfg, &err);
    if (rc != CGW_OK) {
        fprintf(stderr, "claude-gateway tools: %s\n",
                err.message[0] ? err.message : cgw_strerror(rc));
    }
    return rc;
}

typedef struct run_state {
    int started;
    cgw_ctx_t *ctx;
} run_state_t;

static void on_started(cgw_mcp_manager_t *mgr, size_t ready, size_t failed, void *user)
{
    (void)mgr;
    (void)ready;
    (void)failed;
    run_state_t *st = user;
    st->started = 1;
    cgw_ctx_stop(st->ctx);
}

static void settle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_ctx_stop(arg);
}

static json_t *servers_json(const cgw_mcp_manager_t *mgr, size_t *failed)
{
    json_t *list = json_array();
    *failed = 0;
    for (size_t i = 0; i < cgw_mcp_manager_server_count(mgr); i++) {
        cgw_mcp_server_status_t st;
        cgw_mcp_manager_server_status(mgr, i, &st);
        *failed += st.state != CGW_MCP_SERVER_READY;
        json_t *s = json_pack("{s:s,s:s,s:I,s:s}", "name", st.name, "state",
                              cgw_mcp_server_state_name(st.state), "tool_count",
                              (json_int_t)st.tool_count, "protocol_version", st.protocol_version);
        if (st.state != CGW_MCP_SERVER_READY) {
            json_object_set_new(s, "reason", json_string(st.reason));
            json_object_set_new(s, "stderr", json_string(st.stderr_tail));
        }
        json_array_append_new(list, s);
    }
    return list;
}

static json_t *tools_json(const cgw_mcp_manager_t *mgr)
{
    const cgw_mcp_toolmap_t *map = cgw_mcp_manager_toolmap(mgr);
    json_t *defs = cgw_mcp_manager_tool_definitions(mgr);
    for (size_t i = 0; i < cgw_mcp_toolmap_count(map); i++) {
        const cgw_mcp_tool_ref_t *ref = cgw_mcp_toolmap_at(map, i);
        json_t *d = json_array_get(defs, i);
        json_object_set_new(d, "server", json_string(ref->server));
        json_object_set_new(d, "tool", json_string(ref->tool));
    }
    return defs;
}

/* The last few lines of a stderr tail, indented, for the table output. */
static void print_tail(const char *tail)
{
    const char *p = tail + strlen(tail);
    int lines = 0;
    while (p > tail && lines < 5) {
        p--;
        if (*p == '\n' && p[1] != '\0') {
            lines++;
        }
    }
    if (*p == '\n') {
        p++;
    }
    while (*p) {
        const char *nl = strchr(p, '\n');
        int n = nl != NULL ? (int)(nl - p) : (int)strlen(p);
        fprintf(stderr, "    stderr: %.*s\n", n, p);
        p += n + (nl != NULL);
    }
}

static void print_table(const cgw_mcp_manager_t *mgr, json_t *tools, json_t *servers)
{
    size_t w_tool = 4, w_srv = 6, i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        size_t a = strlen(cgw_json_str(t, "name", "")), b = strlen(cgw_json_str(t, "server", ""));
        w_tool = a > w_tool ? a : w_tool;
        w_srv = b > w_srv ? b : w_srv;
    }
    printf("%-*s  %-*s  %s\n", (int)w_tool, "TOOL", (int)w_srv, "SERVER", "DESCRIPTION");
    json_array_foreach(tools, i, t)
    {
        const char *d = cgw_json_str(t, "description", "");
        size_t n = strcspn(d, "\n");
        printf("%-*s  %-*s  %.*s%s\n", (int)w_tool, cgw_json_str(t, "name", ""), (int)w_srv,
               cgw_json_str(t, "server", ""), (int)(n > 70 ? 70 : n), d, n > 70 ? "…" : "");
    }
    printf("\n%zu tools from %zu servers\n", json_array_size(tools),
           cgw_mcp_manager_server_count(mgr));
    json_array_foreach(servers, i, t)
    {
        const char *state = cgw_json_str(t, "state", "");
        if (strcmp(state, "ready") == 0) {
            printf("  %s: ready, %lld tools, protocol %s\n", cgw_json_str(t, "name", ""),
                   (long long)cgw_json_int(t, "tool_count", 0),
                   cgw_json_str(t, "protocol_version", ""));
        } else {
            fprintf(stderr, "  %s: %s: %s\n", cgw_json_str(t, "name", ""), state,
                    cgw_json_str(t, "reason", ""));
            print_tail(cgw_json_str(t, "stderr", ""));
        }
    }
}

static int run(const tools_args_t *a, cgw_mcp_config_t *cfg)
{
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = CGW_LOG_OFF;
    if (a->log_level != NULL && cgw_log_level_parse(a->log_level, &co.log_level) != CGW_OK) {
        fprintf(stderr, "claude-gateway tools: unknown log level '%s'\n", a->log_level);
        return 2;
    }
    cgw_ctx_t *ctx = NULL;
    if (cgw_ctx_new(&co, &ctx) != CGW_OK) {
        return 2;
    }
    cgw_mcp_manager_options_t mo;
    cgw_mcp_manager_options_init(&mo);
    mo.config = cfg;
    mo.restart = false;
    mo.term_grace_ms = 500; /* a one-shot listing need not wait the full 2 s for slow exits */
    mo.naming.naming = a->prefixed ? CGW_MCP_NAMING_PREFIXED : CGW_MCP_NAMING_PLAIN;
    cgw_mcp_manager_t *mgr = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    run_state_t st = {0, ctx};
    int rc = cgw_mcp_manager_new(ctx, &mo, &mgr, &err);
    if (rc == CGW_OK) {
        rc = cgw_mcp_manager_start(mgr, on_started, &st);
    }
    while (rc == CGW_OK && !st.started) {
        cgw_ctx_run(ctx);
    }
    if (rc == CGW_OK && a->settle_ms > 0) {
        struct event *ev = evtimer_new(cgw_ctx_base(ctx), settle_cb, ctx);
        struct timeval tv = {a->settle_ms / 1000, (a->settle_ms % 1000) * 1000};
        event_add(ev, &tv);
        cgw_ctx_run(ctx);
        event_free(ev);
    }
    int status = 2;
    if (rc == CGW_OK) {
        size_t failed = 0;
        json_t *servers = servers_json(mgr, &failed);
        json_t *tools = tools_json(mgr);
        if (a->json) {
            json_t *doc = json_pack("{s:o,s:o}", "tools", tools, "servers", servers);
            char *s = cgw_json_dump(doc, NULL);
            printf("%s\n", s);
            cgw_free(s);
            json_decref(doc);
        } else {
            print_table(mgr, tools, servers);
            json_decref(tools);
            json_decref(servers);
        }
        status = failed > 0 ? 1 : 0;
    } else {
        fprintf(stderr, "claude-gateway tools: %s\n",
                err.message[0] ? err.message : cgw_strerror(rc));
    }
    cgw_mcp_manager_free(mgr);
    cgw_ctx_free(ctx);
    return status;
}

int cgw__cmd_tools(int argc, char **argv)
{
    tools_args_t a;
    memset(&a, 0, sizeof(a));
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) {
        cgw_free(a.allowed_copy);
        return rc;
    }
    cgw_mcp_config_t *cfg = NULL;
    if (load_config(&a, &cfg) != CGW_OK) {
        cgw_free(a.allowed_copy);
        return 2;
    }
    rc = run(&a, cfg);
    cgw_mcp_config_free(cfg);
    cgw_free(a.allowed_copy);
    return rc;
}
