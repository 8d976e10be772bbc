/*
 * Tools for an agent: the session's approval state (cgw_approvals_t) and the ToolDispatcher
 * (cgw_dispatcher_t), which routes one tool call to the code that runs it.
 *
 * Routing, as in the original: approval check, then a local handler registered under the
 * exact name, then the MCP manager (when one is attached and advertises the name), else the
 * error {"code":"unknown_tool","message":"Unknown tool: <name>"}. Tool names are never
 * rewritten here.
 *
 * Approval: when needs_approval(name, input) says yes and the session has not approved the
 * tool type before, an approval request (tool_call_id, a nonce of 16 lowercase hex characters
 * from 8 random bytes, name, input, timeout) is registered in the session's cgw_approvals_t,
 * appended to the run's EventLog as
 *     {"type":"tool_approval_request","tool_call_id","tool_name","tool_input","nonce",
 *      "expires_at"}   (expires_at: Unix seconds, an integer)
 * and handed to the request_approval callback. Whoever decides answers with
 * cgw_approvals_answer (the callback itself, now or later, or an HTTP handler). Outcomes:
 *   no request_approval callback   -> {"code":"approval_required","message":"Tool '<n>' requires
 *                                      approval but no approval handler is configured"}
 *   no answer before the timeout   -> {"code":"approval_timeout","message":"User did not respond
 *                                      within timeout"}
 *   denied                         -> {"code":"user_denied","message":"User denied execution"}
 *   approved with allow_tool_type  -> the name joins the session's approved set (for every later
 *                                      call and run that uses this cgw_approvals_t)
 *
 * Everything here belongs to the loop of the cgw_ctx_t it was made with and is not
 * thread-safe. Every completion callback runs on that loop and never from inside the call that
 * started the operation.
 */
#ifndef CGW_DISPATCHER_H
#define CGW_DISPATCHER_H

#include <jansson.h>

#include "common.h"
#include "ctx.h"
#include "error.h"
#include "eventlog.h"
#include "mcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the session's approvals ------------------------------------------------------------ */

typedef struct cgw_approvals cgw_approvals_t;

/** Default time an approval request waits for its answer. */
#define CGW_APPROVAL_TIMEOUT_MS_DEFAULT 120000u

/** Creates an empty approval state (no approved tool, nothing pending) for one session. The
 *  caller owns it and passes it to every dispatcher/run of that session, so tool types approved
 *  with allow_tool_type stay approved across runs. Returns CGW_OK, CGW_EINVAL or CGW_ENOMEM. */
CGW_EXTERN int cgw_approvals_new(cgw_ctx_t *ctx, cgw_approvals_t **out);

/** Frees it (NULL is fine). Free the dispatchers that use it first (that cancels their
 *  pending requests); requests still pending here are resolved as approval_timeout, and their
 *  dispatches complete on the next loop iteration. */
CGW_EXTERN void cgw_approvals_free(cgw_approvals_t *approvals);

/** Marks `tool_name` (copied) as approved for the rest of the session. CGW_OK, CGW_EINVAL,
 *  CGW_ENOMEM. */
CGW_EXTERN int cgw_approvals_allow(cgw_approvals_t *approvals, const char *tool_name);

/** True when `tool_name` was approved for the session (allow_tool_type or cgw_approvals_allow). */
CGW_EXTERN bool cgw_approvals_is_allowed(const cgw_approvals_t *approvals, const char *tool_name);

/** Number of requests waiting for an answer. */
CGW_EXTERN size_t cgw_approvals_pending_count(const cgw_approvals_t *approvals);

/** Answers the pending request of `tool_call_id` (both strings borrowed). The dispatch waiting
 *  on it resumes on the loop (never inside this call).
 *  Returns CGW_OK; CGW_ENOENT when no request with that id is pending or was recently resolved
 *  (unknown call); CGW_ESTATE when it was already answered (or cancelled) or `nonce` does not
 *  match (the pending request stays pending on a wrong nonce); CGW_EEXPIRED when it timed out;
 *  CGW_EINVAL for NULL arguments. The last 1024 resolved requests are remembered so these
 *  cases stay distinct. */
CGW_EXTERN int cgw_approvals_answer(cgw_approvals_t *approvals, const char *tool_call_id,
                                    const char *nonce, bool approved, bool allow_tool_type);

/** Fills `out` (17 bytes) with a fresh nonce: 16 lowercase hex characters from 8 bytes of
 *  getrandom(2), NUL-terminated. Returns CGW_OK or CGW_EIO. */
CGW_EXTERN int cgw_approval_nonce(char out[17]);

/* ---- tool calls ------------------------------------------------------------------------- */

/** One tool call as the dispatcher and the handlers see it. Everything is borrowed. */
typedef struct cgw_tool_call {
    const char *tool_call_id; /**< the model's tool_use id */
    const char *tool_name;
    const json_t *input; /**< an object */
    int call_index;      /**< position of the call among the tool calls of its turn */
    /** Where tool_approval_request and tool_progress events go (NULL: nowhere). */
    cgw_eventlog_t *log;
    /** Tags added to those events for a sub-agent's calls (NULL for a top-level run). */
    const char *agent_id;
    const char *parent_tool_call_id;
    const char *session_id; /**< the run's session id ("" if none) */
    /** Time limit of the call, counted once it is routed (after any approval wait); 0 = none.
     *  On expiry the call is cancelled (MCP: notifications/cancelled; local: its cancel
     *  callback) and ends with {"code":"tool_timeout","sub_code":"timeout","message":"Tool
     *  '<name>' timed out after <N>s. The tool call was cancelled. You may retry or skip this
     *  tool."}. */
    uint32_t timeout_ms;
} cgw_tool_call_t;

/** How a dispatch ended. Everything is borrowed for the duration of the callback. Exactly one of
 *  result and error is non-NULL. */
typedef struct cgw_tool_outcome {
    const json_t *result;  /**< the handler's / MCP mapped result (any JSON value) */
    const json_t *error;   /**< {"code","message"[,"sub_code"]} */
    const json_t *content; /**< extra content blocks (MCP images, resources) or NULL */
    const char *server;    /**< MCP server name, NULL for local tools and routing errors */
} cgw_tool_outcome_t;

typedef void (*cgw_dispatch_done_cb)(const cgw_tool_outcome_t *outcome, void *user);

/* ---- local handlers --------------------------------------------------------------------- */

/** The handle a local handler answers with. It is valid until it is consumed by
 *  cgw_tool_complete / cgw_tool_fail, or until the dispatch is cancelled: then the cancel
 *  callback (cgw_tool_on_cancel) runs and the handle is gone when it returns; without a
 *  cancel callback the handle stays valid and the handler's later answer is dropped. */
typedef struct cgw_tool_completion cgw_tool_completion_t;

/** An asynchronous local tool. Runs on the loop; may answer inside the call or later. `call`
 *  is borrowed for the callback only (copy what you keep; cgw_tool_completion_call gives it
 *  back until the dispatch ends). */
typedef void (*cgw_tool_handler_cb)(const cgw_tool_call_t *call, cgw_tool_completion_t *done,
                                    void *user);

/** A local tool that answers at once: return a new reference to the result (any JSON value);
 *  to fail, return NULL and set *error to a new {"code","message"} object (NULL *error gives
 *  {"code":"tool_error","message":"Tool failed"}). */
typedef json_t *(*cgw_tool_sync_cb)(const cgw_tool_call_t *call, json_t **error, void *user);

/** Answers with `result` (borrowed; json_incref'd) and consumes `done`. CGW_OK, CGW_EINVAL
 *  (NULL done). A cancelled completion accepts and drops the answer. */
CGW_EXTERN int cgw_tool_complete(cgw_tool_completion_t *done, const json_t *result);

/** Answers with an error {code, message} (copied) and consumes `done`. `code` NULL means
 *  "tool_error", `message` NULL "Tool failed". CGW_OK, CGW_EINVAL. */
CGW_EXTERN int cgw_tool_fail(cgw_tool_completion_t *done, const char *code, const char *message);

/** Reports progress: appends {"type":"tool_progress","tool_call_id","progress","total",
 *  "message"} to the call's log (total and message null when absent). CGW_OK, CGW_EINVAL,
 *  CGW_ECANCELED (the call was cancelled). */
CGW_EXTERN int cgw_tool_progress(cgw_tool_completion_t *done, double progress, double total,
                                 bool has_total, const char *message);

/** Registers the cancel callback: it runs on the loop when the dispatch is cancelled (run
 *  cancelled, tool timeout); the completion is freed when it returns. */
CGW_EXTERN void cgw_tool_on_cancel(cgw_tool_completion_t *done, void (*cb)(void *user), void *user);

/** The call this completion answers (borrowed), or NULL once the dispatch was cancelled. */
CGW_EXTERN const cgw_tool_call_t *cgw_tool_completion_call(const cgw_tool_completion_t *done);

/** A local tool registration. Strings are copied. */
typedef struct cgw_tool_def {
    const char *name;        /**< required, exact name the model calls */
    const char *description; /**< for the model; NULL = "" */
    const char
        *input_schema_json; /**< JSON schema object; NULL = {"type":"object","properties":{}} */
    cgw_tool_handler_cb handler; /**< exactly one of handler and sync_handler */
    cgw_tool_sync_cb sync_handler;
    void *user;
} cgw_tool_def_t;

/* ---- the dispatcher --------------------------------------------------------------------- */

typedef struct cgw_dispatcher cgw_dispatcher_t;

/** The approval request handed to request_approval. Borrowed for the callback only. */
typedef struct cgw_approval_request {
    const char *tool_call_id;
    const char *nonce; /**< 16 lowercase hex characters */
    const char *tool_name;
    const json_t *tool_input;
    uint32_t timeout_ms;
    int64_t expires_at;         /**< Unix seconds */
    const char *agent_id;       /**< sub-agent id or NULL */
    cgw_approvals_t *approvals; /**< answer here with cgw_approvals_answer */
} cgw_approval_request_t;

typedef bool (*cgw_needs_approval_cb)(const char *tool_name, const json_t *input, void *user);
typedef void (*cgw_request_approval_cb)(const cgw_approval_request_t *req, void *user);

typedef struct cgw_dispatcher_options {
    /** MCP tools come from here (borrowed; may be NULL: local tools only). */
    cgw_mcp_manager_t *mcp;
    /** The session's approvals (borrowed; must outlive the dispatcher). NULL: the dispatcher
     *  makes a private one, so approvals last only as long as the dispatcher. */
    cgw_approvals_t *approvals;
    /** NULL = no tool ever needs approval. */
    cgw_needs_approval_cb needs_approval;
    /** NULL with needs_approval saying yes gives approval_required. */
    cgw_request_approval_cb request_approval;
    void *approval_user;
    /** Default CGW_APPROVAL_TIMEOUT_MS_DEFAULT (120 s). */
    uint32_t approval_timeout_ms;
    /** Timeout for MCP calls (0 = the server's own, see cgw_mcp_call_options_t). */
    uint32_t mcp_timeout_ms;
} cgw_dispatcher_options_t;

/** Fills the defaults above. */
CGW_EXTERN void cgw_dispatcher_options_init(cgw_dispatcher_options_t *opts);

/** Creates a dispatcher (opts copied; NULL = defaults). CGW_OK, CGW_EINVAL, CGW_ENOMEM. */
CGW_EXTERN int cgw_dispatcher_new(cgw_ctx_t *ctx, const cgw_dispatcher_options_t *opts,
                                  cgw_dispatcher_t **out);

/** Frees it (NULL is fine). Dispatches still running are cancelled first (their done callbacks
 *  run, with error cancelled, inside this call). */
CGW_EXTERN void cgw_dispatcher_free(cgw_dispatcher_t *d);

/** Registers a local tool. CGW_OK; CGW_EINVAL (no name, not exactly one handler, schema not a
 *  JSON object); CGW_EEXIST when the name is taken; CGW_ENOMEM. */
CGW_EXTERN int cgw_dispatcher_add_tool(cgw_dispatcher_t *d, const cgw_tool_def_t *def);

/** Shorthands for cgw_dispatcher_add_tool with no description and the default schema. */
CGW_EXTERN int cgw_dispatcher_add_handler(cgw_dispatcher_t *d, const char *name,
                                          cgw_tool_handler_cb handler, void *user);
CGW_EXTERN int cgw_dispatcher_add_sync(cgw_dispatcher_t *d, const char *name,
                                       cgw_tool_sync_cb handler, void *user);

/** True when a local tool is registered under `name`. */
CGW_EXTERN bool cgw_dispatcher_has_local(const cgw_dispatcher_t *d, const char *name);

/** The session approvals in use (borrowed). */
CGW_EXTERN cgw_approvals_t *cgw_dispatcher_approvals(const cgw_dispatcher_t *d);

/** The MCP server that would run `name` (borrowed, valid until the loop runs again), or NULL
 *  for local and unknown tools. */
CGW_EXTERN const char *cgw_dispatcher_server_for(const cgw_dispatcher_t *d, const char *name);

/** Messages API tool definitions: a new array (caller decrefs) of {"name","description",
 *  "input_schema"}: local tools in registration order, then the MCP tools whose names no local
 *  tool has. NULL on ENOMEM. */
CGW_EXTERN json_t *cgw_dispatcher_tool_definitions(const cgw_dispatcher_t *d);

/** A dispatch in flight, for cgw_dispatch_cancel. Valid until its done callback returns. */
typedef struct cgw_dispatch cgw_dispatch_t;

/** Runs one tool call (routing above). `call` is copied. `done` runs exactly once on the loop,
 *  never inside this call. *handle (may be NULL) is valid until `done` returns.
 *  Returns CGW_OK, CGW_EINVAL (no id, name or done; input not an object) or CGW_ENOMEM; every
 *  tool failure is reported through `done`. */
CGW_EXTERN int cgw_dispatcher_dispatch(cgw_dispatcher_t *d, const cgw_tool_call_t *call,
                                       cgw_dispatch_done_cb done, void *user,
                                       cgw_dispatch_t **handle);

/** Cancels a dispatch: a pending approval is dropped, an MCP call gets notifications/cancelled,
 *  a local handler its cancel callback; `done` runs before this returns with error
 *  {"code":"cancelled","message":"Task was cancelled"}. */
CGW_EXTERN void cgw_dispatch_cancel(cgw_dispatch_t *dispatch);

/** Same, but the error is {"code":code,"message":message[,"sub_code":sub_code]} (copied;
 *  for timeouts). A dispatch whose outcome was already settled but not yet delivered keeps
 *  that outcome, delivered before this returns. */
CGW_EXTERN void cgw_dispatch_cancel_with(cgw_dispatch_t *dispatch, const char *code,
                                         const char *sub_code, const char *message);

#ifdef __cplusplus
}
#endif
#endif
