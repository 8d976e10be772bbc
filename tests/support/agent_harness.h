/* Helpers for the agent tests: a `claude-gateway mock-api` process per test binary (scripts
 * and recorded requests over its control endpoints), and a bundle of ctx + client + log +
 * dispatcher + runner + conversation with synchronous "run and wait". */
#ifndef CGW_AGENT_HARNESS_H
#define CGW_AGENT_HARNESS_H

#include <jansson.h>

#include "mcp_harness.h"
#include "testutil.h"

/* ---- the mock process (one per test binary) --------------------------------------------- */

/* Spawns the mock; returns 0 or -1. */
int agent_mock_start(void);
/* SIGTERM and reap. */
void agent_mock_stop(void);
/* "http://127.0.0.1:PORT" */
const char *agent_mock_base(void);
/* Replaces the script (JSON text) and resets the mock; fails the test on error. */
void agent_mock_script(const char *json);
/* The requests the mock received (array; caller decrefs). */
json_t *agent_mock_requests(void);
/* The body of the n-th POST /v1/messages (0-based; borrowed from `reqs`), or NULL. */
const json_t *agent_mock_body(const json_t *reqs, size_t n);
/* Number of POST /v1/messages received. */
size_t agent_mock_message_count(const json_t *reqs);
/* The "content" of message `m` in the n-th POST /v1/messages (borrowed from `reqs`), or NULL. */
const json_t *agent_mock_content(const json_t *reqs, size_t n, size_t m);

/* ---- one agent -------------------------------------------------------------------------- */

typedef struct agent_h {
    cgw_ctx_t *ctx;
    mcp_h_t mcp;
    int has_mcp;
    cgw_anthropic_t *client;
    cgw_approvals_t *approvals;
    cgw_dispatcher_t *disp;
    cgw_eventlog_t *log;
    cgw_conversation_t *conv;
    cgw_runner_t *runner;
    /* the last run */
    int done;
    int code;
    int turns;
    int stub;
    cgw_usage_t usage;
    char stop_reason[64];
    char error[512];
} agent_h_t;

/* ctx (from the MCP harness when mcp_config_json is given, which starts the servers), client on
 * the mock with a test key (no client when with_client is 0: the stub), approvals, an empty
 * conversation. Fails the test on error. */
void agent_h_init(agent_h_t *h, const char *mcp_config_json, int with_client);

/* The common case: sets the mock's `script`, then agent_h_init(h, NULL, 1) and a runner with
 * default options and no dispatcher. */
void agent_h_scripted(agent_h_t *h, const char *script);

/* Creates the dispatcher from `opts` (may be NULL; mcp and approvals are filled in). */
void agent_h_dispatcher(agent_h_t *h, cgw_dispatcher_options_t *opts);

/* Creates the runner from `opts` (may be NULL; client, dispatcher, log are filled in). */
void agent_h_runner(agent_h_t *h, cgw_runner_options_t *opts);

/* A fresh log for the next run (the previous one is freed). */
void agent_h_new_log(agent_h_t *h);

/* Appends the user message `text`, starts a run and waits (timeout_ms) for it to end. Returns
 * 1 when it ended in time. */
int agent_h_run(agent_h_t *h, const char *text, int timeout_ms);

/* Starts a run without waiting; h->done is set when it ends. */
void agent_h_start(agent_h_t *h, const char *text);

/* The log's events as an array (caller decrefs). */
json_t *agent_h_events(const agent_h_t *h);

/* Events of `type` (new array, borrowed members kept alive by it). */
json_t *agent_h_filter(const json_t *events, const char *type);

/* Concatenated text of the text_delta events (without agent_id), malloc'd. */
char *agent_h_text(const json_t *events);

/* Message i of the conversation, parsed (caller decrefs). */
json_t *agent_h_message(const agent_h_t *h, size_t i);

/* Frees everything (MCP servers included). */
void agent_h_free(agent_h_t *h);

#endif
