/*
 * libcgw quick start: the original Python package's README example, in C.
 *
 *   1. an MCP manager that starts the servers of ~/.claude.json, limited by an allow-list;
 *   2. a dispatcher with a local tool `greet` next to the MCP tools;
 *   3. an EventLog for the run's events;
 *   4. a runner that streams the conversation and runs the tools;
 *   5. a subscriber that prints every event until stream_complete.
 *
 * Everything runs on one libevent loop owned by the cgw_ctx_t; every callback below runs on
 * it. The credential comes from ANTHROPIC_API_KEY and the endpoint from ANTHROPIC_BASE_URL
 * (e.g. a `claude-gateway mock-api`). Build: cc quickstart.c $(pkg-config --cflags --libs cgw)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cgw.h>

/* 2. The local tool: {"name": "Ada"} -> {"result": "Hello from Ada"}. */
static json_t *greet(const cgw_tool_call_t *call, json_t **error, void *user)
{
    (void)error;
    (void)user;
    const char *name = json_string_value(json_object_get(call->input, "name"));
    return json_pack("{s:s+}", "result", "Hello from ", name != NULL ? name : "world");
}

static void on_mcp_started(cgw_mcp_manager_t *mcp, size_t ready, size_t failed, void *user)
{
    (void)mcp;
    fprintf(stderr, "MCP: %zu server(s) ready, %zu failed\n", ready, failed);
    cgw_ctx_stop(user);
}

typedef struct reader {
    cgw_ctx_t *ctx;
    bool complete; /* the run ended with stream_complete (not error) */
} reader_t;

/* 5. Every entry of the log, in order; entry NULL is the end of the subscription. */
static void on_entry(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *entry, int status,
                     void *user)
{
    (void)sub;
    (void)status;
    reader_t *r = user;
    if (entry == NULL) {
        cgw_ctx_stop(r->ctx); /* after the terminal entry (stream_complete or error) */
        return;
    }
    printf("%.*s\n", (int)entry->event_json.len, entry->event_json.ptr);
    r->complete = entry->terminal && entry->type.len == strlen("stream_complete") &&
                  memcmp(entry->type.ptr, "stream_complete", entry->type.len) == 0;
}

int main(void)
{
    cgw_ctx_t *ctx = NULL;
    if (cgw_ctx_new(NULL, &ctx) != CGW_OK) {
        return 1;
    }
    cgw_error_t err;
    cgw_error_clear(&err);

    /* 1. MCP servers from ~/.claude.json (and ./.mcp.json), only those allowed. */
    const char *allowed[] = {"everything"};
    cgw_mcp_config_options_t co;
    cgw_mcp_config_options_init(&co);
    co.allowed_servers = allowed;
    co.n_allowed_servers = 1;
    cgw_mcp_config_t *config = NULL;
    cgw_mcp_manager_t *mcp = NULL;
    cgw_mcp_manager_options_t mo;
    cgw_mcp_manager_options_init(&mo);
    int rc = cgw_mcp_config_load(&co, &config, &err);
    mo.config = config;
    rc = rc == CGW_OK ? cgw_mcp_manager_new(ctx, &mo, &mcp, &err) : rc;
    rc = rc == CGW_OK ? cgw_mcp_manager_start(mcp, on_mcp_started, ctx) : rc;
    if (rc == CGW_OK) {
        cgw_ctx_run(ctx); /* until on_mcp_started */
    }

    /* 2. The dispatcher: the local greet tool, then the MCP tools. */
    cgw_dispatcher_options_t dopts;
    cgw_dispatcher_options_init(&dopts);
    dopts.mcp = mcp;
    cgw_dispatcher_t *dispatcher = NULL;
    const cgw_tool_def_t greet_def = {
        .name = "greet",
        .description = "Greet someone",
        .input_schema_json =
            "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}}",
        .sync_handler = greet,
    };
    rc = rc == CGW_OK ? cgw_dispatcher_new(ctx, &dopts, &dispatcher) : rc;
    rc = rc == CGW_OK ? cgw_dispatcher_add_tool(dispatcher, &greet_def) : rc;

    /* 3. The event log of the run. */
    cgw_eventlog_options_t lo;
    cgw_eventlog_options_init(&lo);
    lo.session_id = "session-001";
    cgw_eventlog_t *log = NULL;
    rc = rc == CGW_OK ? cgw_eventlog_new(ctx, &lo, &log) : rc;

    /* 4. The client (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL) and the runner. */
    cgw_anthropic_options_t ao;
    cgw_anthropic_options_init(&ao);
    cgw_anthropic_t *client = NULL;
    rc = rc == CGW_OK ? cgw_anthropic_new(ctx, &ao, &client, &err) : rc;
    if (rc == CGW_ENOCRED) {
        rc = CGW_OK; /* no credential: the runner answers with the original's stub text */
    }
    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    ro.client = client;
    ro.dispatcher = dispatcher;
    ro.log = log;
    ro.session_id = "session-001";
    ro.system_prompt = "You are a helpful assistant.";
    cgw_runner_t *runner = NULL;
    cgw_conversation_t *conv = NULL;
    cgw_eventlog_sub_t *sub = NULL;
    rc = rc == CGW_OK ? cgw_runner_new(ctx, &ro, &runner, &err) : rc;
    rc = rc == CGW_OK ? cgw_conversation_new(&conv) : rc;
    rc = rc == CGW_OK ? cgw_conversation_append_text(conv, "user", "Say hello") : rc;

    /* Start streaming (it fills the log), and consume the log from the beginning. */
    rc = rc == CGW_OK ? cgw_runner_run(runner, conv, NULL, NULL) : rc;
    reader_t reader = {ctx, false};
    rc = rc == CGW_OK ? cgw_eventlog_subscribe(log, 0, on_entry, &reader, &sub) : rc;
    if (rc == CGW_OK) {
        cgw_ctx_run(ctx); /* until the subscription ends */
    } else {
        fprintf(stderr, "quickstart: %s\n", err.message[0] ? err.message : cgw_strerror(rc));
    }

    cgw_runner_free(runner);
    cgw_conversation_free(conv);
    cgw_eventlog_free(log);
    cgw_dispatcher_free(dispatcher);
    cgw_anthropic_free(client);
    cgw_mcp_manager_free(mcp); /* stops the servers */
    cgw_mcp_config_free(config);
    cgw_ctx_free(ctx);
    return reader.complete ? 0 : 1;
}
