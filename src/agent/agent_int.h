/* Internal interfaces between the agent files: approvals <-> dispatcher, runner <-> tools <->
 * sub-agents, and the small helpers they share. */
#ifndef CGW_AGENT_INT_H
#define CGW_AGENT_INT_H

#include <event2/event.h>
#include <jansson.h>

#include "cgw/dispatcher.h"
#include "cgw/runner.h"
#include "core/buf.h"

/* ---- approvals (approvals.c) ------------------------------------------------------------ */

typedef struct cgw__approval cgw__approval_t;

/* How a pending approval ended. */
typedef enum cgw__approval_outcome {
    CGW__APPROVAL_APPROVED = 0,
    CGW__APPROVAL_DENIED,
    CGW__APPROVAL_TIMEOUT
} cgw__approval_outcome_t;

/* Runs on the loop (never inside cgw_approvals_answer) once; the handle is gone afterwards. */
typedef void (*cgw__approval_cb)(void *arg, cgw__approval_outcome_t outcome, bool allow_type);

/* Registers a pending request for `tool_call_id` with `nonce` (both copied) that times out
 * after timeout_ms. CGW_OK, CGW_EEXIST (that id is already pending), CGW_ENOMEM. */
int cgw__approvals_add(cgw_approvals_t *a, const char *tool_call_id, const char *nonce,
                       uint32_t timeout_ms, cgw__approval_cb cb, void *arg, cgw__approval_t **out);

/* Withdraws a pending request without calling its callback (the dispatch was cancelled);
 * a later answer gets CGW_ESTATE. */
void cgw__approvals_drop(cgw__approval_t *p);

/* ---- shared helpers --------------------------------------------------------------------- */

/* Appends `ev` (stolen) to `log` with the sub-agent tags when agent_id is set. Returns the
 * append's code (CGW_ECLOSED and friends are not the caller's failure: they are logged and
 * ignored by most callers). *seq as in cgw_eventlog_append. */
int cgw__emit(cgw_eventlog_t *log, json_t *ev, const char *agent_id,
              const char *parent_tool_call_id, uint64_t *seq);

/* {"code":code,"message":message[,"sub_code":sub_code]}; NULL on ENOMEM. */
json_t *cgw__tool_error(const char *code, const char *sub_code, const char *message);

/* An event on ctx's loop that cgw__defer_fire schedules as a zero timer: `cb` runs on the next
 * loop iteration, after pending I/O. */
struct event *cgw__defer_new(cgw_ctx_t *ctx, event_callback_fn cb, void *arg);
void cgw__defer_fire(struct event *ev);

/* JSON text as the original's Python json.dumps(): ", " and ": " separators, key order kept,
 * non-ASCII escaped. Caller frees with cgw_free; NULL on ENOMEM. */
char *cgw__json_text(const json_t *v, size_t *len);

/* v rounded to `places` decimals. */
double cgw__round(double v, int places);

#endif
