/* Helpers for the tests that drive real MCP servers through cgw_mcp_manager_t: a config from
 * a JSON string, starting and stopping with a deadline, synchronous tool calls, and a check
 * that no child process (running or zombie) is left behind. */
#ifndef CGW_MCP_HARNESS_H
#define CGW_MCP_HARNESS_H

#include "testutil.h"

typedef struct mcp_h {
    cgw_ctx_t *ctx;
    cgw_mcp_config_t *cfg;
    cgw_mcp_manager_t *mgr;
    int started;
    size_t n_ready, n_failed;
    int tools_changed;             /* on_tools_changed count */
    int restarting_seen;           /* a server went RESTARTING */
    size_t tools_while_restarting; /* advertised tools at that moment */
} mcp_h_t;

typedef struct mcp_h_call {
    int done;
    int status;
    json_t *result, *error, *content, *raw; /* deep copies, or NULL */
    char server[64];
    uint64_t duration_us;
    int progress_count;
    double last_progress;
} mcp_h_call_t;

/* The dist entry of an npm server ("everything", "filesystem", "memory"). Static buffer. */
const char *mcp_h_npm_entry(const char *server);

/* Fills opts with test defaults (fast restarts, short grace) and the harness callbacks. */
void mcp_h_options(mcp_h_t *h, cgw_mcp_manager_options_t *opts);

/* Loads `config_json` ({"mcpServers": {...}}), creates the manager with `opts` (NULL = test
 * defaults; config/user/callbacks are set by the harness) and runs the loop until started.
 * Returns 1 when started in time. */
int mcp_h_start(mcp_h_t *h, const char *config_json, cgw_mcp_manager_options_t *opts,
                int timeout_ms);

/* The same with config options (allow-list, timeouts, ...; scopes are forced to inline). */
int mcp_h_start_cfg(mcp_h_t *h, const char *config_json, cgw_mcp_manager_options_t *opts,
                    const cgw_mcp_config_options_t *cfg_opts, int timeout_ms);

/* Put this in cgw_mcp_call_options_t.progress to have the harness count progress
 * notifications into mcp_h_call_t (the harness substitutes its own callback). */
void mcp_h_count_progress(const cgw_mcp_progress_t *p, void *user);

/* Starts a call and returns; *out is filled when it completes (out->done). */
int mcp_h_call_async(mcp_h_t *h, const char *tool, const char *input_json,
                     const cgw_mcp_call_options_t *opts, mcp_h_call_t *out,
                     cgw_mcp_call_t **handle);
/* Calls and waits (timeout_ms); returns out->done. */
int mcp_h_call(mcp_h_t *h, const char *tool, const char *input_json,
               const cgw_mcp_call_options_t *opts, mcp_h_call_t *out, int timeout_ms);
void mcp_h_call_clear(mcp_h_call_t *c);
/* Text of result["text"] or "" */
const char *mcp_h_text(const mcp_h_call_t *c);

/* The entry called `name` in an array of tool definitions (borrowed), or NULL. */
json_t *mcp_h_find_def(const json_t *defs, const char *name);

/* Runs the loop for ms milliseconds. */
void mcp_h_spin(mcp_h_t *h, int ms);
/* Runs the loop until server `i` is in `state` (or the timeout). Returns 1 if reached. */
int mcp_h_wait_state(mcp_h_t *h, size_t i, cgw_mcp_server_state_t state, int timeout_ms);

/* Frees manager, config and context. */
void mcp_h_stop(mcp_h_t *h);

/* Stops `h`, removes `dir` (may be NULL) and checks that no child process is left.
 * Returns 0 when all went well, -1 otherwise (for cmocka group teardowns). */
int mcp_h_teardown(mcp_h_t *h, const char *dir);

/* Number of processes whose parent is this process (running or zombie). */
int mcp_h_child_count(void);

#endif
