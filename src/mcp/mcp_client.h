/*
 * One MCP session with one server (internal; the public face is cgw_mcp_manager_t).
 *
 * Lifecycle (2025-11-25, negotiating down to 2024-11-05):
 *   transport up -> initialize (our version; the server may answer with an older one we
 *   speak, any other answer fails the start) -> notifications/initialized -> tools/list,
 *   following nextCursor -> ready. From the moment initialized is sent the client answers
 *   server requests (servers send roots/list within milliseconds of it).
 *
 * Requests we send get integer ids from 1; the server's own requests (their id space starts
 * at 0) are answered, never confused with ours. Every request has a timeout; a timed-out or
 * cancelled request sends notifications/cancelled and completes with CGW_ETIMEDOUT /
 * CGW_ECANCELED; an answer that arrives later (or twice) is dropped. Progress notifications
 * are routed by progressToken, which is the request id.
 *
 * notifications/tools/list_changed re-runs tools/list after a short quiet period, so a burst
 * (server-everything sends five within 2 ms) costs one refresh; on_tools_changed follows.
 *
 * Loop-affine, not thread-safe. Callbacks run on the ctx loop, never from inside a call of
 * this API except where noted; the owner may free the client from inside any callback.
 */
#ifndef CGW_MCP_CLIENT_H
#define CGW_MCP_CLIENT_H

#include <jansson.h>

#include "cgw/mcp.h"
#include "mcp/transport.h"

typedef struct cgw__mcp_client cgw__mcp_client_t;
typedef struct cgw__mcp_req cgw__mcp_req_t;

/* Completion of a request. rc CGW_OK: `result` is the JSON-RPC result (borrowed). CGW_ERPC:
 * `rpc_error` is the error object (borrowed). Anything else (CGW_ETIMEDOUT, CGW_ECANCELED,
 * CGW_ESERVERDIED, CGW_ELINETOOLONG, ...): both NULL, `detail` says what happened. */
typedef void (*cgw__mcp_reply_cb)(void *user, int rc, const json_t *result, const json_t *rpc_error,
                                  const char *detail);

typedef struct cgw__mcp_client_cbs {
    /* Start finished: rc CGW_OK (tools listed) or the failure; fires once. */
    void (*on_ready)(void *user, int rc, const char *detail);
    /* The tool list was refreshed after list_changed (cgw__mcp_client_tools is new). */
    void (*on_tools_changed)(void *user);
    /* The connection ended after a successful start (pending requests already failed). */
    void (*on_closed)(void *user, int code, const char *detail);
    void *user;
} cgw__mcp_client_cbs_t;

typedef struct cgw__mcp_client_params {
    const char *name;
    const cgw__stdio_params_t *stdio;
    uint32_t startup_timeout_ms;            /* initialize and each tools/list page */
    const char *const *roots;               /* file:// URIs answered to roots/list; NULL = cwd */
    cgw_mcp_request_handler_cb sampling;    /* NULL = not declared, -32601 */
    cgw_mcp_request_handler_cb elicitation; /* NULL = not declared, -32601 */
    void *handler_user;
    uint32_t list_changed_delay_ms; /* quiet period before re-listing; 0 = 20 ms */
} cgw__mcp_client_params_t;

/* Spawns and starts the session; on_ready follows on the loop. *out is owned by the caller
 * (cgw__mcp_client_free). Errors from the spawn are returned directly (-errno, CGW_ENOMEM)
 * with err filled; on_ready then never fires. */
int cgw__mcp_client_new(cgw_ctx_t *ctx, const cgw__mcp_client_params_t *p,
                        const cgw__mcp_client_cbs_t *cbs, cgw__mcp_client_t **out,
                        cgw_error_t *err);

/* Frees the client: pending requests complete with CGW_ECANCELED first (synchronously), the
 * server is asked to exit and reaped (detached: close stdin, SIGTERM, SIGKILL in the
 * background when `detach`, else now with a bounded wait). NULL is fine. */
void cgw__mcp_client_free(cgw__mcp_client_t *c, int detach);

typedef struct cgw__mcp_req_opts {
    uint32_t timeout_ms;          /* 0 = no timeout */
    uint32_t max_total_ms;        /* hard cap when progress resets the timeout; 0 = 10x */
    cgw_mcp_progress_cb progress; /* non-NULL: a progressToken is sent */
    void *progress_user;
} cgw__mcp_req_opts_t;

/* Sends a request. `params` is borrowed (NULL = omitted). `reply` runs once, on the loop,
 * never from inside this call. *handle (may be NULL) is valid until `reply` runs. Returns
 * CGW_OK, CGW_ENOTREADY/CGW_ECLOSED (connection gone) or CGW_ENOMEM. */
int cgw__mcp_client_request(cgw__mcp_client_t *c, const char *method, json_t *params,
                            const cgw__mcp_req_opts_t *opts, cgw__mcp_reply_cb reply, void *user,
                            cgw__mcp_req_t **handle);

/* tools/call of `tool` with `input` (a JSON object, borrowed; NULL = {}), the same contract
 * as cgw__mcp_client_request; the line is written without building a params object. */
int cgw__mcp_client_call_tool(cgw__mcp_client_t *c, const char *tool, const json_t *input,
                              const cgw__mcp_req_opts_t *opts, cgw__mcp_reply_cb reply, void *user,
                              cgw__mcp_req_t **handle);

/* Cancels a pending request: notifications/cancelled goes out with `reason`, and reply runs
 * now (synchronously, from inside this call) with CGW_ECANCELED. */
void cgw__mcp_client_cancel(cgw__mcp_client_t *c, cgw__mcp_req_t *req, const char *reason);

/* Fails every pending request now with `code` and `detail` (the owner decided the server is
 * dead, e.g. it stopped answering pings). Replies run from inside this call. */
void cgw__mcp_client_fail_pending(cgw__mcp_client_t *c, int code, const char *detail);

/* Tools of the last completed tools/list (array, borrowed until the next refresh). */
const json_t *cgw__mcp_client_tools(const cgw__mcp_client_t *c);
/* The negotiated protocol version ("" before initialize answered). */
const char *cgw__mcp_client_version(const cgw__mcp_client_t *c);
/* The server's stderr tail (borrowed), the child's pid. */
const char *cgw__mcp_client_stderr(const cgw__mcp_client_t *c);
int cgw__mcp_client_pid(const cgw__mcp_client_t *c);

/* Protocol versions, newest first; the first is what we ask for. */
extern const char *const cgw__mcp_versions[];

#endif
