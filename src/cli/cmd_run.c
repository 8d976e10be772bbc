/* claude-gateway run: one prompt through the agent loop (Messages API + MCP tools + a local
 * `greet` tool), its events on stdout as they happen; --sessions N runs N independent
 * conversations at once in this one process (a load generator). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "cgw.h"
#include "cli/cli.h"
#include "cli/cli_mcp.h"
#include "cli/run_cli.h"
#include "core/alloc.h"

#define MAX_ALLOWED 64
#define MAX_SESSIONS 100000

typedef struct run_args {
    const char *prompt, *system, *model, *base_url, *mcp_config, *log_level;
    char *allowed_copy;
    const char *allowed[MAX_ALLOWED];
    size_t n_allowed;
    bool has_allowed, strict;
    int max_turns, sessions;
    cgw__run_approve_t approve;
    cgw__run_format_t format;
} run_args_t;

typedef struct run_main run_main_t;

/* One conversation: its log, tools, runner and what the renderer remembers. */
typedef struct session {
    run_main_t *m;
    cgw__run_view_t view;
    cgw_eventlog_t *log;
    cgw_dispatcher_t *dispatcher;
    cgw_conversation_t *conv;
    cgw_runner_t *runner;
} session_t;

struct run_main {
    const run_args_t *a;
    cgw_ctx_t *ctx;
    cgw_anthropic_t *client;
    cgw_mcp_config_t *mcp_cfg;
    cgw_mcp_manager_t *mcp;
    cgw__run_approver_t *approver;
    /* One approval state for every session: one person (or none) answers for the process, so
     * "always" in --approve ask holds for every conversation; it also spares each session the
     * state's own memory, which matters for --sessions in the thousands. */
    cgw_approvals_t *approvals;
    cgw__run_out_t out;
    session_t *sessions;
    int n_done, n_ok;
    struct event *stdout_lost; /* activated when writing to stdout fails */
    bool mcp_started, interrupted;
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: claude-gateway run --prompt TEXT [options]\n\n"
        "Runs the agent loop on one prompt and prints its events as they happen. The model\n"
        "gets the tools of the configured MCP servers and a local tool `greet`.\n\n"
        "  --prompt TEXT            the user message (required)\n"
        "  --system TEXT            system prompt\n"
        "  --model M                model (default claude-sonnet-4-6)\n"
        "  --max-turns N            at most N model calls per run (default: no limit)\n"
        "  --base-url URL           API root (default $ANTHROPIC_BASE_URL, else the API)\n"
        "  --mcp-config FILE        also read the \"mcpServers\" of FILE (besides ~/.claude.json\n"
        "                           and ./.mcp.json, as Claude Code does)\n"
        "  --strict-mcp-config      read only --mcp-config FILE\n"
        "  --allowed-servers a,b    start only these MCP servers\n"
        "  --approve all|none|ask   run every tool (default), deny every tool, or ask on the\n"
        "                           terminal (without a terminal on stdin: deny, with a note;\n"
        "                           \"always\" holds for every session of this process)\n"
        "  --output jsonl|text      one EventLog entry per line (default), or text for a person\n"
        "  --sessions N             run N independent conversations concurrently (default 1);\n"
        "                           jsonl lines then carry \"session\" (1..N)\n"
        "  --log-level LEVEL        trace, debug, info, warn, error, off (default warn)\n\n"
        "Credentials: $ANTHROPIC_API_KEY (x-api-key), else $ANTHROPIC_AUTH_TOKEN (Bearer).\n"
        "Without one, the run answers with the stub text of the original.\n"
        "Exit status: 0 when every run reached stream_complete, 1 otherwise, 2 on a usage or\n"
        "configuration error, 130 when interrupted.\n");
}

static int bad(const char *fmt, ...) CGW_PRINTF(1, 2);
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "claude-gateway run: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see claude-gateway run --help)\n");
    va_end(ap);
    return 2;
}

/* A whole decimal number in [lo, hi], nothing else. */
static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        return false;
    }
    *out = (int)v;
    return true;
}

static int split_allowed(run_args_t *a, const char *list)
{
    a->has_allowed = true;
    int rc = cgw__cli_split_list(list, &a->allowed_copy, a->allowed, MAX_ALLOWED, &a->n_allowed);
    if (rc == CGW_E2BIG) {
        return bad("--allowed-servers: more than %d names", MAX_ALLOWED);
    }
    return rc == CGW_OK ? -1 : bad("out of memory");
}

static int parse_choice(const char *flag, const char *v, const char *const *names, int *out)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return -1;
        }
    }
    fprintf(stderr, "claude-gateway run: %s: unknown value '%s'\n", flag, v);
    return 2;
}

/* Returns -1 to go on, else the exit status. */
static int parse_one(run_args_t *a, int c, const char *v)
{
    static const char *const approve[] = {"all", "none", "ask", NULL};
    static const char *const formats[] = {"jsonl", "text", NULL};
    int n = 0, rc = -1;
    switch (c) {
    case 'p':
        a->prompt = v;
        return -1;
    case 's':
        a->system = v;
        return -1;
    case 'm':
        a->model = v;
        return -1;
    case 'b':
        a->base_url = v;
        return -1;
    case 'c':
        a->mcp_config = v;
        return -1;
    case 'S':
        a->strict = true;
        return -1;
    case 'l':
        a->log_level = v;
        return -1;
    case 'A':
        return split_allowed(a, v);
    case 't':
        if (!parse_int(v, 1, INT_MAX, &a->max_turns)) {
            return bad("--max-turns: '%s' is not a whole number >= 1", v);
        }
        return -1;
    case 'n':
        if (!parse_int(v, 1, MAX_SESSIONS, &a->sessions)) {
            return bad("--sessions: '%s' is not a whole number from 1 to 100000", v);
        }
        return -1;
    case 'a':
        rc = parse_choice("--approve", v, approve, &n);
        a->approve = (cgw__run_approve_t)n;
        return rc;
    case 'o':
        rc = parse_choice("--output", v, formats, &n);
        a->format = (cgw__run_format_t)n;
        return rc;
    case 'h':
        usage(stdout);
        return 0;
    default:
        usage(stderr);
        return 2;
    }
}

static int parse_args(int argc, char **argv, run_args_t *a)
{
    static const struct option longs[] = {
        {"prompt", required_argument, NULL, 'p'},
        {"system", required_argument, NULL, 's'},
        {"model", required_argument, NULL, 'm'},
        {"max-turns", required_argument, NULL, 't'},
        {"base-url", required_argument, NULL, 'b'},
        {"mcp-config", required_argument, NULL, 'c'},
        {"strict-mcp-config", no_argument, NULL, 'S'},
        {"allowed-servers", required_argument, NULL, 'A'},
        {"approve", required_argument, NULL, 'a'},
        {"output", required_argument, NULL, 'o'},
        {"sessions", required_argument, NULL, 'n'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    a->sessions = 1;
    optind = 1;
    opterr = 0; /* our own messages */
    int c;
    while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        if (c == '?' || c == ':') {
            const char *opt = argv[optind - 1];
            return c == ':' ? bad("%s needs a value", opt) : bad("unknown option '%s'", opt);
        }
        int rc = parse_one(a, c, optarg);
        if (rc >= 0) {
            return rc;
        }
    }
    if (optind < argc) {
        return bad("unexpected argument '%s' (the prompt goes after --prompt)", argv[optind]);
    }
    if (a->prompt == NULL) {
        return bad("%s is required", "--prompt");
    }
    if (a->strict && a->mcp_config == NULL) {
        return bad("%s needs --mcp-config FILE", "--strict-mcp-config");
    }
    return -1;
}

/* ---- set-up ------------------------------------------------------------------------------ */

static int load_mcp_config(const run_args_t *a, cgw_mcp_config_t **cfg)
{
    cgw__cli_mcp_sel_t sel = {a->mcp_config, a->strict, NULL, NULL,
                              a->allowed, a->n_allowed, a->has_allowed};
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw__cli_mcp_config_load(&sel, cfg, &err);
    if (rc != CGW_OK) {
        fprintf(stderr, "claude-gateway run: %s\n",
                err.message[0] ? err.message : cgw_strerror(rc));
    }
    return rc;
}

static void on_mcp_started(cgw_mcp_manager_t *mgr, size_t ready, size_t failed, void *user)
{
    (void)ready;
    run_main_t *m = user;
    for (size_t i = 0; failed > 0 && i < cgw_mcp_manager_server_count(mgr); i++) {
        cgw_mcp_server_status_t st;
        if (cgw_mcp_manager_server_status(mgr, i, &st) == CGW_OK &&
            st.state != CGW_MCP_SERVER_READY) {
            fprintf(stderr, "claude-gateway run: MCP server %s: %s (its tools are left out)\n",
                    st.name, st.reason);
        }
    }
    m->mcp_started = true;
    cgw_ctx_stop(m->ctx);
}

/* Starts the MCP servers and waits until each is ready or failed. */
static int start_mcp(run_main_t *m)
{
    if (cgw_mcp_config_count(m->mcp_cfg) == 0) {
        return CGW_OK;
    }
    cgw_mcp_manager_options_t mo;
    cgw_mcp_manager_options_init(&mo);
    mo.config = m->mcp_cfg;
    /* The run is over once the servers are stopped: one that ignores the end of its stdin
     * (server-everything does, when the client declared roots) gets SIGTERM after 300 ms
     * rather than 2 s. */
    mo.term_grace_ms = 300;
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw_mcp_manager_new(m->ctx, &mo, &m->mcp, &err);
    rc = rc == CGW_OK ? cgw_mcp_manager_start(m->mcp, on_mcp_started, m) : rc;
    while (rc == CGW_OK && !m->mcp_started) {
        rc = cgw_ctx_run(m->ctx);
    }
    if (rc != CGW_OK) {
        fprintf(stderr, "claude-gateway run: MCP: %s\n",
                err.message[0] ? err.message : cgw_strerror(rc));
    }
    return rc;
}

static int make_client(run_main_t *m)
{
    cgw_anthropic_options_t o;
    cgw_anthropic_options_init(&o);
    o.base_url = m->a->base_url;
    const char *key = getenv("ANTHROPIC_API_KEY");
    if ((key == NULL || *key == '\0') && getenv("ANTHROPIC_AUTH_TOKEN") != NULL) {
        o.auth_mode = CGW_AUTH_OAUTH;
    }
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw_anthropic_new(m->ctx, &o, &m->client, &err);
    if (rc == CGW_ENOCRED) {
        fprintf(stderr, "claude-gateway run: no credential (set ANTHROPIC_API_KEY or "
                        "ANTHROPIC_AUTH_TOKEN); answering with the stub\n");
        m->client = NULL;
        return CGW_OK;
    }
    if (rc != CGW_OK) {
        fprintf(stderr, "claude-gateway run: %s\n",
                err.message[0] ? err.message : cgw_strerror(rc));
    }
    return rc;
}

/* The quick start's local tool: {"name": "Ada"} -> {"result": "Hello from Ada"}. */
static json_t *greet(const cgw_tool_call_t *call, json_t **error, void *user)
{
    (void)error;
    (void)user;
    const char *name = json_string_value(json_object_get(call->input, "name"));
    return json_pack("{s:s+}", "result", "Hello from ", name != NULL ? name : "world");
}

static void on_event(cgw_eventlog_t *log, const cgw_eventlog_entry_t *entry, const json_t *event,
                     void *user)
{
    (void)log;
    session_t *s = user;
    cgw__run_render(&s->view, entry, event);
}

static void on_run_done(cgw_runner_t *runner, const cgw_run_result_t *result, void *user)
{
    (void)runner;
    session_t *s = user;
    s->m->n_ok += result->code == CGW_OK;
    if (++s->m->n_done == s->m->a->sessions) {
        cgw_ctx_stop(s->m->ctx);
    }
}

static int session_start(run_main_t *m, session_t *s, int index)
{
    static const cgw_tool_def_t greet_def = {
        .name = "greet",
        .description = "Greet someone",
        .input_schema_json =
            "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}}",
        .sync_handler = greet,
    };
    char sid[32];
    snprintf(sid, sizeof(sid), "run-%d", index);
    s->m = m;
    s->view.out = &m->out;
    s->view.index = index;

    cgw_eventlog_options_t lo;
    cgw_eventlog_options_init(&lo);
    lo.session_id = sid;
    lo.on_event = on_event;
    lo.on_event_user = s;
    /* Every entry is written out inside its append and nothing reads the log back, so it keeps
     * only the newest one: memory stays flat however long the runs get. */
    lo.max_entries = 1;
    cgw_dispatcher_options_t dopts;
    cgw_dispatcher_options_init(&dopts);
    dopts.mcp = m->mcp;
    dopts.approvals = m->approvals;
    cgw__run_approver_setup(m->approver, &dopts);
    int rc = cgw_eventlog_new(m->ctx, &lo, &s->log);
    rc = rc == CGW_OK ? cgw_dispatcher_new(m->ctx, &dopts, &s->dispatcher) : rc;
    rc = rc == CGW_OK ? cgw_dispatcher_add_tool(s->dispatcher, &greet_def) : rc;
    rc = rc == CGW_OK ? cgw_conversation_new(&s->conv) : rc;
    rc = rc == CGW_OK ? cgw_conversation_append_text(s->conv, "user", m->a->prompt) : rc;

    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    ro.client = m->client;
    ro.dispatcher = s->dispatcher;
    ro.log = s->log;
    ro.session_id = sid;
    ro.system_prompt = m->a->system;
    ro.model = m->a->model;
    ro.max_turns = m->a->max_turns;
    cgw_error_t err;
    cgw_error_clear(&err);
    rc = rc == CGW_OK ? cgw_runner_new(m->ctx, &ro, &s->runner, &err) : rc;
    rc = rc == CGW_OK ? cgw_runner_run(s->runner, s->conv, on_run_done, s) : rc;
    if (rc != CGW_OK) {
        fprintf(stderr, "claude-gateway run: session %d: %s\n", index,
                err.message[0] ? err.message : cgw_strerror(rc));
    }
    return rc;
}

static void session_free(session_t *s)
{
    cgw_runner_free(s->runner);
    cgw_dispatcher_free(s->dispatcher);
    cgw_conversation_free(s->conv);
    cgw_eventlog_free(s->log);
    cgw__run_view_finish(&s->view);
}

static void cancel_all(run_main_t *m)
{
    for (int i = 0; i < m->a->sessions; i++) {
        if (m->sessions[i].runner != NULL && cgw_runner_running(m->sessions[i].runner)) {
            cgw_runner_cancel(m->sessions[i].runner);
        }
    }
}

/* SIGINT / SIGTERM: cancel every run; each ends with its error event and the loop stops. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    run_main_t *m = arg;
    m->interrupted = true;
    cancel_all(m);
}

/* stdout is gone (a closed pipe): nobody reads the events any more, so stop the runs (from the
 * loop, not from inside the append that noticed). */
static void on_stdout_lost(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cancel_all(arg);
}

static void stdout_lost(void *user)
{
    run_main_t *m = user;
    event_active(m->stdout_lost, EV_TIMEOUT, 0);
}

static int run_sessions(run_main_t *m)
{
    struct event_base *base = cgw_ctx_base(m->ctx);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, m);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, m);
    if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) != 0 ||
        evsignal_add(sigterm, NULL) != 0) {
        fprintf(stderr, "claude-gateway run: cannot install signal handlers\n");
    }
    int rc = CGW_OK, started = 0;
    while (started < m->a->sessions && rc == CGW_OK) {
        rc = session_start(m, &m->sessions[started], started + 1);
        started += rc == CGW_OK;
    }
    /* After a failed start the sessions already running end normally; the others count as
     * ended (and failed). */
    m->n_done += m->a->sessions - started;
    while (m->n_done < m->a->sessions && cgw_ctx_run(m->ctx) == CGW_OK) {
    }
    if (sigint != NULL) {
        event_free(sigint);
    }
    if (sigterm != NULL) {
        event_free(sigterm);
    }
    if (m->interrupted) {
        return 130;
    }
    return rc == CGW_OK && m->n_ok == m->a->sessions && !m->out.lost ? 0 : 1;
}

static int run_main(run_main_t *m)
{
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = CGW_LOG_WARN;
    if (m->a->log_level != NULL && cgw_log_level_parse(m->a->log_level, &co.log_level) != CGW_OK) {
        return bad("--log-level: unknown level '%s'", m->a->log_level);
    }
    if (load_mcp_config(m->a, &m->mcp_cfg) != CGW_OK) {
        return 2;
    }
    int status = 1;
    m->out.fp = stdout;
    m->out.format = m->a->format;
    m->out.multi = m->a->sessions > 1;
    m->out.color = isatty(STDOUT_FILENO) == 1;
    m->out.prompts = m->a->approve == CGW_RUN_APPROVE_ASK && isatty(STDIN_FILENO) == 1;
    m->out.on_lost = stdout_lost;
    m->out.on_lost_user = m;
    m->sessions = cgw__calloc((size_t)m->a->sessions, sizeof(*m->sessions));
    if (m->sessions != NULL && cgw_ctx_new(&co, &m->ctx) == CGW_OK &&
        (m->stdout_lost = event_new(cgw_ctx_base(m->ctx), -1, 0, on_stdout_lost, m)) != NULL &&
        cgw__run_approver_new(m->ctx, m->a->approve, &m->approver) == CGW_OK &&
        cgw_approvals_new(m->ctx, &m->approvals) == CGW_OK && make_client(m) == CGW_OK &&
        start_mcp(m) == CGW_OK) {
        status = run_sessions(m);
    }
    for (int i = 0; m->sessions != NULL && i < m->a->sessions; i++) {
        session_free(&m->sessions[i]);
    }
    if (m->stdout_lost != NULL) {
        event_free(m->stdout_lost);
    }
    cgw_approvals_free(m->approvals);
    cgw__run_approver_free(m->approver);
    cgw_mcp_manager_free(m->mcp);
    cgw_anthropic_free(m->client);
    cgw_ctx_free(m->ctx);
    cgw_mcp_config_free(m->mcp_cfg);
    cgw_buf_free(&m->out.tmp);
    cgw_free(m->sessions);
    fflush(stdout);
    return status;
}

int cgw__cmd_run(int argc, char **argv)
{
    /* A reader that goes away shows up as a failed write (handled: the runs are stopped and
     * the MCP servers shut down), not as a signal that would leave them running. */
    signal(SIGPIPE, SIG_IGN);
    run_args_t a;
    memset(&a, 0, sizeof(a));
    int rc = parse_args(argc, argv, &a);
    if (rc < 0) {
        run_main_t m;
        memset(&m, 0, sizeof(m));
        m.a = &a;
        rc = run_main(&m);
    }
    cgw_free(a.allowed_copy);
    return rc;
}
