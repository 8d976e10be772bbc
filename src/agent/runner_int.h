/* The runner's insides, shared by runner.c (the loop and the stream), runner_tools.c (running
 * one turn's tool calls) and subagent.c (run_agent). */
#ifndef CGW_AGENT_RUNNER_INT_H
#define CGW_AGENT_RUNNER_INT_H

#include "agent/agent_int.h"
#include "core/buf.h"

#define CGW__RUN_AGENT "run_agent"

typedef struct cgw__subagent cgw__subagent_t;

/* One tool call of the current turn. */
typedef struct cgw__slot {
    cgw_runner_t *r;
    int index; /* call_index: position among the turn's tool_use blocks */
    char *id, *name, *server;
    json_t *input;
    bool truncated; /* max_tokens cut its input: reported, never executed */
    bool started, finished;
    uint64_t start_ms;
    cgw_dispatch_t *dispatch;
    cgw__subagent_t *sub;
    json_t *block; /* the tool_result block, once finished */
    json_t *extra; /* blocks the on_tool_result hook added */
} cgw__slot_t;

struct cgw_runner {
    cgw_ctx_t *ctx;
    /* configuration (copied) */
    cgw_anthropic_t *client;
    cgw_dispatcher_t *disp;
    cgw_eventlog_t *log;
    char *session_id, *system, *model;
    int max_tokens, max_turns, max_parallel;
    uint32_t tool_timeout_ms, stub_delay_ms;
    json_t *excluded; /* object used as a set */
    const cgw_price_table_t *prices;
    bool has_sub;
    cgw_sub_agent_config_t sub;
    json_t *sub_excluded;
    char *sub_system, *sub_model;
    cgw_runner_hooks_t hooks;
    /* identity of a sub-agent runner (NULL for top level) */
    char *agent_id, *parent_id;
    unsigned sub_counter;
    /* the run */
    bool running, finishing, cancelling;
    cgw_conversation_t *conv;
    size_t conv_start;
    cgw_run_done_cb done;
    void *done_user;
    int turns;
    cgw_usage_t usage;
    int code;
    char *stop_reason, *error;
    bool stub;
    cgw_anthropic_call_t *call;
    char *call_model;
    uint64_t attempt_first_seq;
    cgw_buf_t text;         /* every text delta of the run (a sub-agent's response) */
    size_t text_at_attempt; /* its length when the current model call started */
    cgw_buf_t *frags;       /* streamed tool input per block index of the current attempt */
    size_t nfrags;
    json_t *tools_used; /* names, in the order the calls started */
    /* the current turn's tool calls */
    cgw__slot_t *slots;
    size_t nslots, next_slot, nrunning, nfinished;
    bool pumping;
    char *turn_stop;
    /* stub */
    char **words;
    size_t nwords, next_word;
    struct event *stub_timer;
    struct event *finish_ev;
};

/* Appends `ev` (stolen) to the run's log with this runner's tags; remembers the first seq of
 * the model call attempt in progress. */
int cgw__runner_emit(cgw_runner_t *r, json_t *ev);

/* Ends the run with an error event {error: message, code: code_name} (not for cancel). */
void cgw__runner_fail(cgw_runner_t *r, int code, const char *code_name, const char *message);

/* Aborts a run in progress (cancel, sub-agent timeout): stream dropped, tools in flight
 * reported as cancelled, error event {error: message, code: code_name}, done with `code`. */
int cgw__runner_abort(cgw_runner_t *r, int code, const char *code_name, const char *message);

/* Starts the next model call (or stops at max_turns). */
void cgw__runner_next_turn(cgw_runner_t *r);

/* Completes the run: on_usage, stream_complete, done. */
void cgw__runner_complete(cgw_runner_t *r, const char *stop_reason);

/* runner_tools.c: runs the tool_use blocks of `content` (the assistant turn just appended);
 * when every call has finished, appends the user turn of results and continues the loop. */
void cgw__tools_start(cgw_runner_t *r, const json_t *content, const char *stop_reason);
/* Cancels every call in flight (each gets its tool_result with error cancelled). */
void cgw__tools_cancel(cgw_runner_t *r);
/* Frees the turn's slots. */
void cgw__tools_clear(cgw_runner_t *r);
/* Finishes a slot with an outcome (borrowed). */
void cgw__slot_finish(cgw__slot_t *s, const json_t *result, const json_t *error,
                      const json_t *content, const char *server);

/* subagent.c */
void cgw__subagent_start(cgw__slot_t *s);
void cgw__subagent_cancel(cgw__slot_t *s);

/* Makes a child runner for a sub-agent (runner.c). */
int cgw__runner_new_child(cgw_runner_t *parent, const char *parent_tool_call_id,
                          cgw_runner_t **out);

#endif
