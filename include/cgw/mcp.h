/*
 * MCP client manager: runs the configured MCP servers and calls their tools.
 *
 * A cgw_mcp_manager_t owns one session per server of a cgw_mcp_config_t (mcp_config.h):
 *   - stdio servers are spawned with posix_spawn on non-inherited pipes; exit is seen at once
 *     through a pidfd on the ctx loop; the child gets the parent environment overlaid with the
 *     entry's env, and its cwd; its stderr is kept in a bounded buffer (logs and status);
 *   - the protocol is MCP 2025-11-25 over newline-delimited JSON-RPC, negotiating down to
 *     2024-11-05; lines are capped (16 MiB by default): a longer one is discarded with an
 *     error for the call it answered and the session lives on; non-JSON lines are skipped;
 *   - all servers start concurrently (initialize + paginated tools/list, each step bounded
 *     by the server's startup timeout); results are kept in config order; a server that
 *     fails is reported with its reason and stderr tail, the others are unaffected;
 *   - tool names follow mcp_tools.h (builtin names win, then the first server; optionally
 *     mcp__<server>__<tool>); notifications/tools/list_changed refreshes a server's list
 *     (bursts coalesced) and the owner is told;
 *   - a server that dies fails its calls in flight (tool_error / connection_error) and is
 *     restarted with exponential backoff (on by default); its tools stay advertised meanwhile;
 *   - server-to-client requests: roots/list is answered from the configured roots (default:
 *     the working directory as a file:// URI), ping is answered, sampling/createMessage and
 *     elicitation/create go to a handler when one is registered (and only then are the
 *     capabilities declared), anything else gets -32601;
 *   - results are mapped like the original (mcp_result.h): structuredContent, else the text
 *     parsed as JSON, else {"text": ...}, else {}; errors {code, sub_code, message}; image,
 *     audio and resource content is kept as extra content blocks.
 *
 * Threading: everything is loop-affine (the ctx loop) and not thread-safe. Every callback
 * runs on the loop, and never from inside the API call that caused it unless said so.
 *
 * Process-wide effect: the first server spawned sets SIGPIPE to "ignore" if it was at its
 * default (a write to a server that just died must not kill the process); a handler the
 * application installed is left alone. No SIGCHLD handler is used: exits are seen through
 * pidfds, and only the manager's own children are ever waited for.
 */
#ifndef CGW_MCP_H
#define CGW_MCP_H

#include <jansson.h>

#include "common.h"
#include "ctx.h"
#include "error.h"
#include "mcp_config.h"
#include "mcp_tools.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgw_mcp_manager cgw_mcp_manager_t;
typedef struct cgw_mcp_call cgw_mcp_call_t;
typedef struct cgw_mcp_reply cgw_mcp_reply_t;

/** The protocol version asked for, and the oldest one accepted back. */
#define CGW_MCP_PROTOCOL_VERSION "2025-11-25"
#define CGW_MCP_PROTOCOL_VERSION_OLDEST "2024-11-05"

/** One notifications/progress of a call. Strings are valid only during the callback. */
typedef struct cgw_mcp_progress {
    double progress;
    double total; /**< meaningful only when has_total */
    bool has_total;
    const char *message; /**< NULL when the server sent none */
} cgw_mcp_progress_t;

/** Progress of a call in flight (runs on the loop). */
typedef void (*cgw_mcp_progress_cb)(const cgw_mcp_progress_t *progress, void *user);

/** A server-to-client request (sampling/createMessage, elicitation/create) handed to the
 *  application. `server` and `params` are borrowed for the call. The handler must answer
 *  exactly once, now or later, with cgw_mcp_reply_result or cgw_mcp_reply_error; each of
 *  them consumes `reply`. If the server goes away first the answer is silently dropped. */
typedef void (*cgw_mcp_request_handler_cb)(const char *server, const char *method,
                                           const json_t *params, cgw_mcp_reply_t *reply,
                                           void *user);

/** Answers a server request with `result` (borrowed; NULL = {}). Frees `reply`. Returns
 *  CGW_OK, CGW_ECLOSED (the server is gone or withdrew the request with
 *  notifications/cancelled; still freed), CGW_ENOMEM or CGW_EINVAL (reply NULL). */
CGW_EXTERN int cgw_mcp_reply_result(cgw_mcp_reply_t *reply, const json_t *result);

/** Answers with a JSON-RPC error (e.g. -1 "user rejected"). Frees `reply`. Same returns. */
CGW_EXTERN int cgw_mcp_reply_error(cgw_mcp_reply_t *reply, int64_t code, const char *message);

typedef enum cgw_mcp_server_state {
    CGW_MCP_SERVER_STARTING = 0, /**< spawned, initialize / tools/list in progress */
    CGW_MCP_SERVER_READY,        /**< tools listed, calls accepted */
    CGW_MCP_SERVER_RESTARTING,   /**< died after being ready; respawn pending or running */
    CGW_MCP_SERVER_FAILED        /**< never started, or gave up restarting; see reason */
} cgw_mcp_server_state_t;

/** "starting", "ready", "restarting", "failed" (static storage). */
CGW_EXTERN const char *cgw_mcp_server_state_name(cgw_mcp_server_state_t state);

/** A snapshot of one server. Strings are borrowed from the manager and valid until control
 *  returns to the loop (copy what you keep). */
typedef struct cgw_mcp_server_status {
    const char *name;
    cgw_mcp_server_state_t state;
    const char *reason;           /**< why it failed / last died, "" when nothing failed */
    const char *stderr_tail;      /**< the last bytes of its stderr, "" if none */
    const char *protocol_version; /**< negotiated, "" before initialize answered */
    int pid;                      /**< 0 when not running */
    size_t tool_count;            /**< tools this server lists (advertised or not) */
    uint64_t calls;               /**< tools/call requests sent */
    uint64_t errors;              /**< calls that ended in an error (any kind) */
    uint64_t restarts;            /**< successful respawns after a death */
} cgw_mcp_server_status_t;

/** Owner callbacks. All run on the loop; `mgr` may not be freed from inside them. */
typedef void (*cgw_mcp_started_cb)(cgw_mcp_manager_t *mgr, size_t n_ready, size_t n_failed,
                                   void *user);
typedef void (*cgw_mcp_tools_changed_cb)(cgw_mcp_manager_t *mgr, void *user);
typedef void (*cgw_mcp_server_state_cb)(cgw_mcp_manager_t *mgr, size_t index,
                                        const cgw_mcp_server_status_t *status, void *user);

typedef struct cgw_mcp_manager_options {
    /** The servers (required). Borrowed: it must outlive the manager. Entries with an error
     *  (config problem, http/sse not supported yet) are listed as FAILED with that error. */
    const cgw_mcp_config_t *config;
    /** Naming and builtin names (copied). Default: plain names, no builtins, 64 chars. */
    cgw_mcp_toolmap_options_t naming;
    /** file:// URIs answered to roots/list (copied, NULL-terminated). NULL = the working
     *  directory at cgw_mcp_manager_new. */
    const char *const *roots;
    /** Respawn servers that die (default true), with a delay from restart_initial_ms (500)
     *  doubling up to restart_max_ms (30000); after restart_max_attempts consecutive failed
     *  respawns (0 = never give up, the default) the server becomes FAILED. */
    bool restart;
    uint32_t restart_initial_ms;
    uint32_t restart_max_ms;
    uint32_t restart_max_attempts;
    /** Longest accepted message line (default 16 MiB) and stderr bytes kept (default 8 KiB). */
    size_t max_line;
    size_t stderr_cap;
    /** Wait after closing a server's stdin before SIGTERM, and after SIGTERM before SIGKILL
     *  (default 2000 ms). */
    uint32_t term_grace_ms;
    /** Liveness: a READY server is sent a ping every ping_interval_ms (default 30000; 0 =
     *  never). One that does not answer within min(interval, its startup timeout) is
     *  treated as dead: its calls fail with tool_error/connection_error and it is stopped
     *  and restarted like a server that exited. */
    uint32_t ping_interval_ms;
    /** Handlers for server requests; NULL = not declared, answered with -32601. */
    cgw_mcp_request_handler_cb sampling;
    cgw_mcp_request_handler_cb elicitation;
    void *handler_user;
    /** Told when the merged tool list changed (after list_changed or a respawn). */
    cgw_mcp_tools_changed_cb on_tools_changed;
    /** Told on every server state change. */
    cgw_mcp_server_state_cb on_server_state;
    void *user;
} cgw_mcp_manager_options_t;

/** Fills `opts` with the defaults above (config NULL). */
CGW_EXTERN void cgw_mcp_manager_options_init(cgw_mcp_manager_options_t *opts);

/** Creates a manager; nothing is spawned until cgw_mcp_manager_start. `opts` is copied
 *  (opts->config is borrowed, see above). Returns CGW_OK, CGW_EINVAL (no config, bad naming
 *  options) or CGW_ENOMEM; err (may be NULL) gets a sentence. */
CGW_EXTERN int cgw_mcp_manager_new(cgw_ctx_t *ctx, const cgw_mcp_manager_options_t *opts,
                                   cgw_mcp_manager_t **out, cgw_error_t *err);

/** Starts every server concurrently. `cb` (may be NULL) runs once on the loop when each
 *  server is READY or FAILED, never from inside this call. Returns CGW_OK or CGW_ESTATE
 *  (already started). */
CGW_EXTERN int cgw_mcp_manager_start(cgw_mcp_manager_t *mgr, cgw_mcp_started_cb cb, void *user);

/** Stops every server (close stdin, wait, SIGTERM, wait, SIGKILL; all reaped before this
 *  returns, in reverse config order) and frees the manager. Calls in flight complete first
 *  with CGW_ECANCELED. NULL is fine. Must not be called from a manager callback. */
CGW_EXTERN void cgw_mcp_manager_free(cgw_mcp_manager_t *mgr);

/** Number of configured servers (config order). */
CGW_EXTERN size_t cgw_mcp_manager_server_count(const cgw_mcp_manager_t *mgr);

/** Snapshot of server `i`. Returns CGW_OK or CGW_ERANGE. */
CGW_EXTERN int cgw_mcp_manager_server_status(const cgw_mcp_manager_t *mgr, size_t i,
                                             cgw_mcp_server_status_t *out);

/** The advertised tools (borrowed; replaced when the tool list changes, so do not keep it
 *  across loop iterations). */
CGW_EXTERN const cgw_mcp_toolmap_t *cgw_mcp_manager_toolmap(const cgw_mcp_manager_t *mgr);

/** The advertised tools as Messages API tool definitions: a new array (caller decrefs) of
 *  {"name": exposed, "description": text or "", "input_schema": schema or
 *  {"type":"object","properties":{}}}, in toolmap order. NULL on ENOMEM. */
CGW_EXTERN json_t *cgw_mcp_manager_tool_definitions(const cgw_mcp_manager_t *mgr);

/** The server's own tool object (name, description, inputSchema, outputSchema, ...) for an
 *  exposed name (borrowed, same lifetime as the toolmap), or NULL. */
CGW_EXTERN const json_t *cgw_mcp_manager_tool(const cgw_mcp_manager_t *mgr, const char *exposed);

/** Per-call options. */
typedef struct cgw_mcp_call_options {
    /** 0 = the server's tool timeout (config: timeout_overrides or 30 s). Progress resets
     *  it, up to 10 times this value in total. */
    uint32_t timeout_ms;
    /** Non-NULL: a progressToken is sent and notifications/progress arrive here. */
    cgw_mcp_progress_cb progress;
    void *progress_user;
} cgw_mcp_call_options_t;

/** How a call ended. Everything is borrowed for the duration of the callback. */
typedef struct cgw_mcp_call_result {
    /** CGW_OK when the server answered the call (also for an isError result); otherwise
     *  CGW_EUNKNOWNTOOL, CGW_ENOTREADY (server not running), CGW_ETIMEDOUT, CGW_ECANCELED,
     *  CGW_ESERVERDIED, CGW_ELINETOOLONG, CGW_ERPC (JSON-RPC error), CGW_E2BIG (server not
     *  reading its stdin) or CGW_ENOMEM. */
    int status;
    const char *tool;      /**< the exposed name called */
    const char *server;    /**< NULL for an unknown tool */
    const json_t *result;  /**< the mapped value on success, else NULL */
    const json_t *error;   /**< {"code","sub_code","message",...} on failure, else NULL:
                                code is unknown_tool, mcp_tool_error or tool_error */
    const json_t *content; /**< extra content blocks (images, resources), or NULL */
    const json_t *raw;     /**< the tools/call result as the server sent it, or NULL */
    uint64_t duration_us;  /**< from the call to its completion */
} cgw_mcp_call_result_t;

typedef void (*cgw_mcp_call_done_cb)(const cgw_mcp_call_result_t *result, void *user);

/** Calls tool `tool` (the exposed name) with `input` (borrowed JSON object; NULL = {}).
 *  `opts` may be NULL. `done` runs exactly once on the loop, never from inside this call.
 *  *handle (may be NULL) identifies the call for cgw_mcp_call_cancel until `done` runs.
 *  Returns CGW_OK, CGW_EINVAL (no tool or done, input not an object), CGW_ENOMEM or
 *  CGW_EINTERNAL (inconsistent tool map); every other failure (unknown tool, server down or
 *  not reading, timeout, ...) is reported through `done`, and then *handle is set too. */
CGW_EXTERN int cgw_mcp_manager_call(cgw_mcp_manager_t *mgr, const char *tool, const json_t *input,
                                    const cgw_mcp_call_options_t *opts, cgw_mcp_call_done_cb done,
                                    void *user, cgw_mcp_call_t **handle);

/** Cancels a call in flight: notifications/cancelled goes to the server (if the request was
 *  sent) and `done` runs before this returns with status CGW_ECANCELED and a tool_error.
 *  A late answer from the server is dropped. */
CGW_EXTERN void cgw_mcp_call_cancel(cgw_mcp_call_t *call);

#ifdef __cplusplus
}
#endif
#endif
