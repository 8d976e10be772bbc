/*
 * cgw_gateway_t: the HTTP gateway behind `claude-gateway serve` (docs/server.md).
 *
 * An evhttp server on the context's loop that holds sessions (a conversation each, kept in a
 * cgw_store_t), runs agent turns on them with cgw_runner_t, and serves each run's EventLog as
 * Server-Sent Events (ARCHITECTURE.md §4.1/§4.2):
 *
 *   POST /v1/sessions                    201 {"session_id",...}
 *   GET  /v1/sessions/{id}               200 session state, runs, message count
 *   POST /v1/sessions/{id}/messages      202 {"run_id"}; with Accept: text/event-stream the
 *                                        run is streamed in the response
 *   GET  /v1/runs/{id}                   200 run state
 *   GET  /v1/runs/{id}/events            SSE (resume: Last-Event-ID or ?after=N)
 *   POST /v1/runs/{id}/approvals         200 {"ok":true}; 404 / 409 / 410
 *   POST /v1/runs/{id}/cancel            202 {"run_id","status"}; 409 when already over
 *   GET  /v1/tools   GET /v1/mcp/servers   GET /healthz   GET /metrics
 *
 * Errors are {"type":"error","error":{"type","message"},"request_id"} with the status.
 * Tenants: each configured bearer token (kept only as its SHA-256) belongs to a tenant, which
 * sees only its own sessions and runs (404 otherwise). With no token, every request is the
 * tenant "default", and cgw_gateway_new refuses a non-loopback listen address.
 *
 * Everything runs on the loop of the ctx and is not thread-safe.
 */
#ifndef CGW_GATEWAY_H
#define CGW_GATEWAY_H

#include "anthropic.h"
#include "common.h"
#include "ctx.h"
#include "error.h"
#include "mcp.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgw_gateway cgw_gateway_t;

/** A bearer token and the tenant it belongs to (both borrowed; the token is hashed at once). */
typedef struct cgw_gateway_token {
    const char *token;  /**< at least 16 bytes */
    const char *tenant; /**< 1..127 printable ASCII bytes */
} cgw_gateway_token_t;

typedef struct cgw_gateway_options {
    /** "HOST:PORT"; port 0 picks a free one (see cgw_gateway_address). Default
     *  "127.0.0.1:8080". Borrowed during cgw_gateway_new only. */
    const char *listen;
    /** Bearer tokens; none = no authentication (loopback only). Copied as digests. */
    const cgw_gateway_token_t *tokens;
    size_t n_tokens;
    /** Durable state (borrowed, required; outlives the gateway). */
    cgw_store_t *store;
    /** Messages API client (borrowed). NULL: every run gives the runner's stub answer. */
    cgw_anthropic_t *client;
    /** MCP tools (borrowed; NULL: none). Replace with cgw_gateway_set_mcp. */
    cgw_mcp_manager_t *mcp;
    /** Session defaults when POST /v1/sessions does not say (copied; NULL = the client's). */
    const char *model;
    const char *system_prompt;
    int max_turns;            /**< per run; 0 = unlimited */
    uint32_t tool_timeout_ms; /**< per tool call; default 120000 */
    /** Tools whose calls need an approval over HTTP (exact names; "*" = every tool; copied). */
    const char *const *approval_tools;
    size_t n_approval_tools;
    uint32_t approval_timeout_ms; /**< default 120000 */
    /* ---- limits (0 keeps the default) ---- */
    size_t max_body_bytes;          /**< 413 above; default 1 MiB */
    size_t max_header_bytes;        /**< 431 above (evhttp refuses twice that); 16 KiB */
    size_t max_sessions_per_tenant; /**< 429 above; default 1000 */
    size_t max_loaded_sessions;     /**< sessions kept in memory (settings, approvals); past it
                                         idle ones are unloaded and read back from the store
                                         when used; default 10000 */
    size_t max_concurrent_runs;     /**< across all tenants; 429 above; default 64 */
    size_t max_streams_per_client;  /**< open SSE streams per peer address; 429; default 32 */
    size_t stream_buffer_bytes;     /**< output cap per stream: a stream writes only while its
                                         unsent output is under half of it (default 1 MiB) */
    uint32_t stream_stall_ms;       /**< a stream whose output stays over half the cap this
                                         long is cut off (the client resumes with
                                         Last-Event-ID); default 30000 */
    uint32_t ping_interval_ms;      /**< ": ping" comments; default 15000 */
    uint32_t shutdown_grace_ms;     /**< how long cgw_gateway_shutdown waits for streams to
                                         drain; default 5000 */
    /** Stop a run when the client that streams it in the POST response goes away (default
     *  false: the run goes on and can be resumed with GET .../events). */
    bool cancel_on_disconnect;
    /** The runner's stub delay (no credential), default 50 ms. */
    uint32_t stub_delay_ms;
} cgw_gateway_options_t;

/** Fills the defaults above. */
CGW_EXTERN void cgw_gateway_options_init(cgw_gateway_options_t *opts);

/** Creates the gateway and starts listening. Runs left `running` in the store by a gateway
 *  that died are ended first with the error event "the gateway stopped before this run
 *  ended" (code "interrupted"). On success *out owns the gateway (free with cgw_gateway_free).
 *  `err` may be NULL. Returns CGW_OK; CGW_EINVAL (no store; bad options; err says
 *  which); CGW_EACCES (no token configured and a non-loopback listen address: err says why);
 *  CGW_EIO (cannot bind); CGW_ESTORE / CGW_ECORRUPT (recovery failed); CGW_ENOMEM. */
CGW_EXTERN int cgw_gateway_new(cgw_ctx_t *ctx, const cgw_gateway_options_t *opts,
                               cgw_gateway_t **out, cgw_error_t *err);

/** The bound address "host:port" (port 0 resolved). Borrowed; valid while the gateway
 *  lives. */
CGW_EXTERN const char *cgw_gateway_address(const cgw_gateway_t *gw);

/** Replaces the MCP manager (borrowed; NULL = none) for runs started from now on; runs in
 *  progress keep the one they started with, which must stay alive until they end (see
 *  cgw_gateway_mcp_in_use). Used for SIGHUP reloads. */
CGW_EXTERN void cgw_gateway_set_mcp(cgw_gateway_t *gw, cgw_mcp_manager_t *mcp);

/** True while a run started with `mcp` is still in progress. */
CGW_EXTERN bool cgw_gateway_mcp_in_use(const cgw_gateway_t *gw, const cgw_mcp_manager_t *mcp);

typedef void (*cgw_gateway_stopped_cb)(cgw_gateway_t *gw, void *user);

/** Graceful stop: closes the listening sockets, ends every run in progress with the error
 *  event "the gateway is shutting down" (code "shutdown"; the run is stored as interrupted),
 *  lets open streams deliver it and end, then calls `done` on the loop (after at most
 *  shutdown_grace_ms; streams still open then are closed). New connections are refused at
 *  once; requests on connections already open get 503. Calling it twice is a no-op. */
CGW_EXTERN void cgw_gateway_shutdown(cgw_gateway_t *gw, cgw_gateway_stopped_cb done, void *user);

/** Frees the gateway (NULL is fine): open streams are closed, runs are cancelled. */
CGW_EXTERN void cgw_gateway_free(cgw_gateway_t *gw);

/** Counts for logs and tests. */
typedef struct cgw_gateway_stats {
    size_t sessions_loaded; /**< sessions held in memory */
    size_t active_runs;
    size_t open_streams;
    uint64_t events;      /**< events appended since start */
    uint64_t streams_cut; /**< streams cut off for reading too slowly */
} cgw_gateway_stats_t;

CGW_EXTERN void cgw_gateway_stats(const cgw_gateway_t *gw, cgw_gateway_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
