/*
 * cgw_runner_t: the agent loop. Streams a turn from the Messages API, runs the tools the model
 * asked for through a cgw_dispatcher_t, feeds the results back and repeats, appending every
 * step to an EventLog as it happens (event names and fields: ARCHITECTURE.md §4.1):
 *
 *   text_delta{text}  thinking_delta{text}                      (non-empty deltas only)
 *   tool_use{tool_call_id,tool_name,tool_input,call_index,server}
 *   tool_approval_request{tool_call_id,tool_name,tool_input,nonce,expires_at}
 *   tool_progress{tool_call_id,progress,total,message}
 *   tool_result{tool_call_id,tool_name,result,error,is_error,duration_ms,server}
 *   stream_retry{attempt,error,discard_from_seq}  (events with seq >= discard_from_seq belong
 *                                                  to the failed attempt)
 *   usage{input_tokens,output_tokens,cache_creation_input_tokens,cache_read_input_tokens,
 *         estimated_cost_usd,model}                (once per successful model call)
 *   stream_complete{stop_reason,turns,usage{input_tokens,output_tokens,
 *         cache_creation_input_tokens,cache_read_input_tokens,estimated_cost_usd}}
 *   error{error,code}                              (code: "cancelled", "timeout",
 *                                                  "api_error", "http_error",
 *                                                  "retries_exhausted", "stream_stalled",
 *                                                  "connection_error", "protocol_error",
 *                                                  "internal_error", "closed")
 *
 * tool_use is logged when a call starts running (calls beyond max_parallel_tools wait, and are
 * logged when they start); tool_result when it ends, so tool_results come in completion order
 * while the results sent to the model keep the model's order.
 * A sub-agent's events carry "agent_id" and "parent_tool_call_id" and go into the parent's log;
 * its stream_complete / error are not terminal there. A consumer applying discard_from_seq
 * drops the deltas of the same agent_id only (other agents' events interleave).
 * The stub answer ends with stream_complete{stop_reason:"end_turn",turns:0,usage:{}}.
 *
 * Behaviour of the original kept: the tool_result content rules (content = the JSON text of the
 * result, or of {"error":{...}}; is_error on errors and on soft errors: an object result with
 * success == false or status == "error"), max_turns (N model calls, then the text_delta
 * "\n\n[Sub-agent reached maximum turn limit]" and completion), the stub answer when no
 * credential is configured, the hooks.
 * Better than the original: every tool call of a turn runs concurrently (max_parallel_tools at
 * once), results go back in the model's order; the assistant turn goes back byte-exact
 * (thinking, redacted_thinking), empty text blocks are never sent; a tool_use cut by max_tokens
 * is not executed; the cost estimate prices uncached input, cache writes and cache reads per
 * model; cancel is clean.
 *
 * Everything belongs to the loop of the ctx; callbacks run on that loop, never from inside the
 * call that started the run.
 */
#ifndef CGW_RUNNER_H
#define CGW_RUNNER_H

#include <jansson.h>

#include "anthropic.h"
#include "common.h"
#include "ctx.h"
#include "dispatcher.h"
#include "error.h"
#include "eventlog.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- usage and cost --------------------------------------------------------------------- */

/** Token counts as the API reports them: input_tokens EXCLUDES cached tokens. */
typedef struct cgw_usage {
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_creation_input_tokens; /**< cache writes (5-minute and 1-hour together) */
    int64_t cache_creation_1h_tokens;    /**< the 1-hour part of the writes, when reported */
    int64_t cache_read_input_tokens;
    double estimated_cost_usd;
} cgw_usage_t;

/** Prices of one model family in USD per million tokens. */
typedef struct cgw_model_price {
    const char *match; /**< substring of the model id, e.g. "sonnet-4"; the longest wins */
    double input;      /**< uncached input */
    double output;
    double cache_write_5m; /**< usually 1.25 x input */
    double cache_write_1h; /**< usually 2 x input */
    double cache_read;     /**< usually 0.1 x input */
} cgw_model_price_t;

typedef struct cgw_price_table {
    const cgw_model_price_t *entries;
    size_t count;
    /** Used when no entry matches (NULL: the built-in table's Sonnet prices). */
    const cgw_model_price_t *fallback;
} cgw_price_table_t;

/** The built-in table (static storage): Opus 4 / 4.1, Opus 4.5+, Sonnet 3.7 / 4.x, Haiku 3.5,
 *  Haiku 4.5 at the published list prices. */
CGW_EXTERN const cgw_price_table_t *cgw_price_table_default(void);

/** The price entry for `model` (longest matching substring; else fallback). `table` NULL = the
 *  built-in one. Never NULL. */
CGW_EXTERN const cgw_model_price_t *cgw_price_for(const cgw_price_table_t *table,
                                                  const char *model);

/** Cost in USD of one model call's usage (not rounded):
 *  (input*in + (cache_write - 1h)*w5m + 1h*w1h + cache_read*r + output*out) / 1e6. */
CGW_EXTERN double cgw_usage_cost(const cgw_price_table_t *table, const char *model,
                                 const cgw_usage_t *usage);

/* ---- hooks ------------------------------------------------------------------------------ */

/** What on_tool_result sees. Borrowed for the callback. */
typedef struct cgw_tool_result_ctx {
    const char *session_id;
    const char *agent_id; /**< NULL for the top-level run */
    const char *tool_call_id;
    const char *tool_name;
    const json_t *tool_input;
    const json_t *result; /**< the raw result before annotation, or NULL */
    const json_t *error;  /**< {code,message[,sub_code]} or NULL */
    const char *server;   /**< MCP server or NULL */
    int64_t duration_ms;
    /** The tool_result block that will be sent ({"type":"tool_result","tool_use_id",
     *  "content","is_error"?}); the hook may change it in place. */
    json_t *result_block;
    /** An empty array: blocks appended here are sent right after the result block. */
    json_t *extra_blocks;
} cgw_tool_result_ctx_t;

/** The on_usage payload (once per completed run, not after an error or for the stub). */
typedef struct cgw_usage_report {
    const char *session_id;
    const char *agent_id; /**< NULL for the top-level run */
    int turns;
    cgw_usage_t usage; /**< totals; estimated_cost_usd rounded to 6 places */
} cgw_usage_report_t;

/** Hooks run synchronously on the loop, inside the runner; they must not free or cancel the
 *  runner (do that from a deferred event or the done callback). */
typedef struct cgw_runner_hooks {
    /** Once per tool, after its tool_result event and on_tool_timing, before the results go
     *  back to the model. */
    void (*on_tool_result)(cgw_tool_result_ctx_t *ctx, void *user);
    /** Once per completed run (also after max_turns), before stream_complete; never after an
     *  error or cancel, nor for the stub. Sub-agents report their own (agent_id set). */
    void (*on_usage)(const cgw_usage_report_t *report, void *user);
    /** Once per tool, even on error or cancel. result_bytes: length of the result's JSON text,
     *  0 on error. */
    void (*on_tool_timing)(const char *session_id, const char *tool_name, const char *server,
                           int64_t duration_ms, bool is_error, size_t result_bytes, void *user);
    void *user;
} cgw_runner_hooks_t;

/* ---- sub-agents ------------------------------------------------------------------------- */

/** With this set on a runner, the model gets a built-in tool `run_agent` ({"task": string}) that
 *  runs a sub-agent: its own runner, conversation [{"role":"user","content":task}], limits,
 *  system prompt and model, on the same client and dispatcher minus excluded_tools (run_agent is
 *  always excluded: a sub-agent never starts another). Several run_agent calls of one turn run
 *  in parallel. The result for the model is {"response","tools_used","usage"[,"warning"]}.
 *  Strings copied by cgw_runner_new. */
typedef struct cgw_sub_agent_config {
    const char *const *excluded_tools;
    size_t n_excluded_tools;
    const char *system_prompt; /**< NULL: none */
    const char *model;         /**< NULL: the parent's */
    int max_turns;             /**< default 15; honoured */
    int max_tokens;            /**< 0: the parent's */
    uint32_t timeout_ms;       /**< whole sub-agent run; default 300000 */
} cgw_sub_agent_config_t;

/** Fills the defaults above. */
CGW_EXTERN void cgw_sub_agent_config_init(cgw_sub_agent_config_t *cfg);

/* ---- the runner ------------------------------------------------------------------------- */

typedef struct cgw_runner cgw_runner_t;

/** How a run ended. Borrowed for the callback. */
typedef struct cgw_run_result {
    /** CGW_OK (stream_complete appended), CGW_ECANCELED (cancelled; error "cancelled"
     *  appended), CGW_ECLOSED (the log was closed by its owner during the run: the run stops
     *  at the next stream event or turn), or the failure (error event appended): CGW_EAPI,
     *  CGW_EHTTP, CGW_ERETRIES,
     *  CGW_ETIMEDOUT, CGW_ESTALL, CGW_EIO, CGW_ENOMEM... */
    int code;
    const char *stop_reason; /**< "end_turn", "max_turns", "max_tokens", ...; NULL on failure */
    const char *error;       /**< the error event's message on failure, else NULL */
    int turns;               /**< model calls made */
    cgw_usage_t usage;       /**< totals, sub-agents included */
    bool stub;               /**< the no-credential stub answered */
} cgw_run_result_t;

typedef void (*cgw_run_done_cb)(cgw_runner_t *runner, const cgw_run_result_t *result, void *user);

typedef struct cgw_runner_options {
    /** The Messages API client (borrowed; outlives the runner). NULL: every run gives the stub
     *  answer "Stub response (no Anthropic credential configured). You asked: <last user
     *  text>", one text_delta per word, 50 ms apart (stub_delay_ms), then stream_complete. */
    cgw_anthropic_t *client;
    /** Tools (borrowed; outlives the runner). NULL: no tools. */
    cgw_dispatcher_t *dispatcher;
    /** The run's log (borrowed; outlives the runner). Required. */
    cgw_eventlog_t *log;
    const char *session_id;    /**< copied; default "no-session" */
    const char *system_prompt; /**< copied; NULL: none */
    const char *model;         /**< copied; NULL: the client's */
    int max_tokens;            /**< 0: the client's */
    int max_turns;             /**< model calls allowed per run; 0 = unlimited (the default) */
    int max_parallel_tools;    /**< tool calls running at once; default 8 */
    uint32_t tool_timeout_ms;  /**< per tool call once approved; 0 = none; default 120000 */
    const char *const *excluded_tools; /**< names the model may not use (copied) */
    size_t n_excluded_tools;
    const cgw_price_table_t *prices;         /**< borrowed; NULL = cgw_price_table_default() */
    const cgw_sub_agent_config_t *sub_agent; /**< copied; NULL: no run_agent tool */
    cgw_runner_hooks_t hooks;
    uint32_t stub_delay_ms; /**< default 50 */
} cgw_runner_options_t;

/** Fills the defaults above. */
CGW_EXTERN void cgw_runner_options_init(cgw_runner_options_t *opts);

/** Creates a runner. CGW_OK, CGW_EINVAL (no log, bad numbers), CGW_ENOMEM. */
CGW_EXTERN int cgw_runner_new(cgw_ctx_t *ctx, const cgw_runner_options_t *opts, cgw_runner_t **out,
                              cgw_error_t *err);

/** Frees it (NULL is fine). A run in progress is cancelled first (as cgw_runner_cancel, but
 *  the done callback does not run). */
CGW_EXTERN void cgw_runner_free(cgw_runner_t *runner);

/** Starts a run on `conv` (borrowed; must outlive the run), whose last message is the user's.
 *  The runner appends to it as it goes: each assistant turn byte-exact, each user turn of
 *  tool results, and, on success, the final assistant turn, so the caller continues the
 *  session by appending the next user message and calling cgw_runner_run again. On failure
 *  or cancel, `conv` is cut back to its length at the start of the run.
 *  `done` (may be NULL) runs once on the loop when the run is over; the runner may be freed
 *  or run again from inside it.
 *  Returns CGW_OK; CGW_EBUSY (a run is in progress); CGW_EINVAL (empty conversation);
 *  CGW_ECLOSED (the log is closed); CGW_ENOMEM. */
CGW_EXTERN int cgw_runner_run(cgw_runner_t *runner, cgw_conversation_t *conv, cgw_run_done_cb done,
                              void *user);

/** Cancels the run in progress: the stream is aborted, MCP calls in flight get
 *  notifications/cancelled, each tool in flight gets a tool_result with error
 *  {"code":"cancelled","message":"Task was cancelled"}, sub-agents are cancelled, and the log
 *  ends with {"type":"error","error":"Run cancelled","code":"cancelled"}. `done` runs on the
 *  loop afterwards with CGW_ECANCELED. Returns CGW_OK or CGW_ESTATE (no run in progress). */
CGW_EXTERN int cgw_runner_cancel(cgw_runner_t *runner);

/** Points the runner at another log for its next run (a session's runs each have their own
 *  log, since stream_complete closes one). `log` is borrowed. CGW_OK, CGW_EINVAL, CGW_EBUSY
 *  (a run is in progress). */
CGW_EXTERN int cgw_runner_set_log(cgw_runner_t *runner, cgw_eventlog_t *log);

/** True while a run is in progress. */
CGW_EXTERN bool cgw_runner_running(const cgw_runner_t *runner);

/** The session id (borrowed). */
CGW_EXTERN const char *cgw_runner_session_id(const cgw_runner_t *runner);

/** The built-in run_agent tool definition (a new reference). */
CGW_EXTERN json_t *cgw_run_agent_tool_definition(void);

/* ---- pure helpers (exposed for tests and for servers that build tool results) ----------- */

/** The tool_result block for an outcome, as the original builds it: content is the JSON text
 *  of `result` (or of {"error":{code,message[,sub_code]}}), is_error true on error and on a soft
 *  error (an object result with success == false or status == "error"); *is_error (may be
 *  NULL) gets the same flag. `error` wins when both are given; with neither, the error
 *  defaults {"code":"tool_error","message":"Tool failed"} are used. Returns a new reference or
 *  NULL on ENOMEM. */
CGW_EXTERN json_t *cgw_tool_result_block(const char *tool_use_id, const json_t *result,
                                         const json_t *error, bool *is_error);

#ifdef __cplusplus
}
#endif
#endif
