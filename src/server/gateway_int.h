/* Internals of the HTTP gateway (include/cgw/gateway.h), shared by its files:
 *   gateway.c      lifecycle, routing, auth, limits, small endpoints
 *   gw_session.c   sessions and their conversations, runs, approvals, cancel
 *   gw_stream.c    SSE streams: live from a run's EventLog or replayed from the store
 *   gw_metrics.c   counters, histograms and the Prometheus text
 *
 * Object graph: the gateway owns loaded sessions (map by id); a session owns its conversation,
 * its approvals and at most one active run; a run owns its EventLog and runner. A stream
 * borrows a run's log through a subscription, or reads a finished run from the store. */
#ifndef CGW_SERVER_GATEWAY_INT_H
#define CGW_SERVER_GATEWAY_INT_H

#include <event2/http.h>

#include "cgw.h"
#include "core/sha256.h"
#include "store/map.h"

typedef struct gw_session gw_session_t;
typedef struct gw_run gw_run_t;
typedef struct gw_stream gw_stream_t;

/* Histogram with fixed bucket bounds in seconds. */
#define GW_HIST_BUCKETS 12
typedef struct gw_hist {
    uint64_t counts[GW_HIST_BUCKETS + 1]; /* last = +Inf */
    double sum;
    uint64_t n;
} gw_hist_t;

/* A labelled counter: a small list of (label values, count). */
typedef struct gw_counter_row {
    char a[64], b[32];
    uint64_t value;
} gw_counter_row_t;

#define GW_COUNTER_ROWS 128
typedef struct gw_counter {
    gw_counter_row_t rows[GW_COUNTER_ROWS];
    size_t n;
} gw_counter_t;

typedef struct gw_metrics {
    uint64_t http_requests;
    gw_counter_t http_by_status; /* a = status */
    uint64_t events;
    gw_counter_t events_by_type; /* a = type */
    uint64_t runs_started;
    gw_counter_t runs_by_status; /* a = final status */
    uint64_t sessions_created;
    gw_counter_t tokens;     /* a = kind (input, output, cache_read, cache_creation) */
    gw_counter_t tool_calls; /* a = server ("local" for local tools), b = outcome */
    gw_hist_t model_turn_seconds;
    gw_hist_t tool_call_seconds;
    uint64_t streams_cut;
    uint64_t streams_total;
} gw_metrics_t;

typedef struct gw_token {
    uint8_t digest[CGW_SHA256_LEN];
    char tenant[CGW_STORE_TENANT_MAX];
} gw_token_t;

/* A peer address and how many streams it has open (limit per client). */
typedef struct gw_peer {
    char addr[64];
    size_t streams;
} gw_peer_t;

struct gw_run {
    char id[CGW_STORE_ID_MAX];
    char tenant[CGW_STORE_TENANT_MAX];
    gw_session_t *session;
    cgw_gateway_t *gw;
    cgw_eventlog_t *log;
    cgw_runner_t *runner;
    cgw_dispatcher_t *dispatcher;
    cgw_mcp_manager_t *mcp; /* the manager this run started with */
    size_t conv_start;      /* conversation length with the run's user message */
    uint64_t started_ms;
    uint64_t turn_started_ms; /* for the model-turn histogram */
    struct event *release_ev; /* frees the run once it is done and unwatched */
    json_t *excluded_defs;    /* tool definitions while the runner is being made */
    json_t *approval_names;   /* {tool_call_id: tool_name} of its approval requests */
    size_t watchers;          /* streams reading this run's log */
    bool done;                /* the runner reported its end */
    bool store_failed;        /* an event could not be stored (logged once) */
    cgw_run_status_t final_status;
};

struct gw_session {
    char id[CGW_STORE_ID_MAX];
    char tenant[CGW_STORE_TENANT_MAX];
    cgw_gateway_t *gw;
    cgw_conversation_t *conv;
    uint64_t stored_messages; /* conversation messages already in the store */
    cgw_approvals_t *approvals;
    json_t *settings; /* {system, model, max_turns, allowed_tools} */
    gw_run_t *run;    /* the active run, or NULL */
    size_t runs_held; /* run objects (active or still streamed) that point here */
    uint64_t used_ms; /* last use, for unloading idle sessions */
};

struct cgw_gateway {
    cgw_ctx_t *ctx;
    cgw_store_t *store;
    cgw_anthropic_t *client;
    cgw_mcp_manager_t *mcp;
    struct evhttp *http;
    char address[96];
    gw_token_t *tokens;
    size_t n_tokens;
    char *model;
    char *system_prompt;
    int max_turns;
    uint32_t tool_timeout_ms;
    char **approval_tools;
    size_t n_approval_tools;
    uint32_t approval_timeout_ms;
    size_t max_body;
    size_t max_headers;
    size_t max_sessions;
    size_t max_loaded;
    size_t max_runs;
    size_t max_streams_per_client;
    size_t stream_cap;
    uint64_t stall_ms;
    uint32_t ping_ms;
    uint32_t grace_ms;
    bool cancel_on_disconnect;
    uint32_t stub_delay_ms;
    cgw_map_t sessions; /* id -> gw_session_t, loaded sessions */
    cgw_map_t runs;     /* id -> gw_run_t, active runs */
    size_t active_runs;
    gw_stream_t *streams; /* doubly linked */
    size_t n_streams;
    gw_peer_t *peers;
    size_t n_peers, cap_peers;
    struct event *ping_timer;
    struct event *shutdown_timer;
    bool stopping;
    uint64_t shutdown_deadline_ms;
    cgw_gateway_stopped_cb stopped_cb;
    void *stopped_user;
    gw_metrics_t metrics;
};

/* ---- gateway.c: replies ------------------------------------------------------------------ */

/* Sends {"type":"error","error":{"type","message"},"request_id"} with `status` and counts it. */
void cgw__gw_error(cgw_gateway_t *gw, struct evhttp_request *req, int status, const char *type,
                   const char *fmt, ...) CGW_PRINTF(5, 6);
/* Sends `body` (borrowed) as JSON with `status` and counts it. */
void cgw__gw_json(cgw_gateway_t *gw, struct evhttp_request *req, int status, const json_t *body);
/* The request body parsed as a JSON object; on failure replies 400 and returns NULL. An empty
 * body gives {} when `empty_ok`. */
json_t *cgw__gw_body_object(cgw_gateway_t *gw, struct evhttp_request *req, bool empty_ok);
/* Replies 500 or 503 for a store error `rc` (message from err, never a secret). */
void cgw__gw_store_error(cgw_gateway_t *gw, struct evhttp_request *req, int rc,
                         const cgw_error_t *err);

/* ---- gw_session.c ------------------------------------------------------------------------- */

void cgw__gw_sessions_create(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant);
void cgw__gw_session_get(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                         const char *id);
void cgw__gw_session_message(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                             const char *id);
void cgw__gw_run_get(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                     const char *id);
void cgw__gw_run_approval(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                          const char *id);
void cgw__gw_run_cancel(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                        const char *id);
/* The active run `id` of `tenant`, or NULL. */
gw_run_t *cgw__gw_run_find(cgw_gateway_t *gw, const char *tenant, const char *id);
/* Ends every active run with the terminal error `message`/`code` (shutdown). */
void cgw__gw_runs_abort(cgw_gateway_t *gw, const char *message, const char *code);
/* Frees `run` soon (on the loop) if it is over and no stream reads its log. */
void cgw__gw_run_release_check(gw_run_t *run);
/* Frees every loaded session and run (gateway teardown). */
void cgw__gw_sessions_free_all(cgw_gateway_t *gw);

/* ---- gw_stream.c -------------------------------------------------------------------------- */

/* GET /v1/runs/{id}/events: checks the run and the resume position, then streams. */
void cgw__gw_events(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                    const char *run_id);
/* False (429 sent) when the request's client already has max_streams_per_client streams. */
bool cgw__gw_stream_allowed(cgw_gateway_t *gw, struct evhttp_request *req);
/* Streams `run` (active, just started) in the response to `req` from seq 1. */
void cgw__gw_stream_run(cgw_gateway_t *gw, struct evhttp_request *req, gw_run_t *run);
/* Closes every open stream now (gateway teardown). */
void cgw__gw_streams_close_all(cgw_gateway_t *gw);
/* Sends a ping to every stream (the ping timer). */
void cgw__gw_streams_ping(cgw_gateway_t *gw);
/* A run's log is going away: streams on it are detached from the subscription. */
void cgw__gw_streams_run_gone(cgw_gateway_t *gw, gw_run_t *run);

/* ---- gw_metrics.c ------------------------------------------------------------------------- */

void cgw__gw_count(gw_counter_t *c, const char *a, const char *b, uint64_t by);
void cgw__gw_observe(gw_hist_t *h, double seconds);
/* GET /metrics. */
void cgw__gw_metrics_reply(cgw_gateway_t *gw, struct evhttp_request *req);

#endif
