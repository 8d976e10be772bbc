/* run_agent: a sub-agent is a child runner on its own conversation, logging into the parent's
 * log with agent_id / parent_tool_call_id, bounded by its own max_turns and an overall
 * timeout. Its outcome always goes back to the model as a result (never an error):
 * {"response","tools_used","usage"[,"warning"]}. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "agent/runner_int.h"
#include "core/alloc.h"
#include "core/json.h"

struct cgw__subagent {
    cgw__slot_t *slot;
    cgw_runner_t *child;
    cgw_conversation_t *conv;
    struct event *timer;
    bool timed_out;
};

static void sub_free(cgw__subagent_t *sa)
{
    if (sa->timer != NULL) {
        event_free(sa->timer);
    }
    cgw_runner_free(sa->child);
    cgw_conversation_free(sa->conv);
    cgw_free(sa);
}

/* The child's text, trimmed. */
static json_t *response_text(const cgw_runner_t *c)
{
    const char *p = c->text.data ? c->text.data : "";
    size_t len = c->text.len;
    while (len > 0 && isspace((unsigned char)*p)) {
        p++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)p[len - 1])) {
        len--;
    }
    return json_stringn(p, len);
}

static json_t *sub_result(const cgw__subagent_t *sa, const cgw_run_result_t *res)
{
    const cgw_runner_t *c = sa->child;
    const cgw_usage_t *u = &res->usage;
    json_t *out = json_pack("{s:o, s:O, s:{s:I, s:I, s:I, s:I, s:f}}", "response", response_text(c),
                            "tools_used", c->tools_used ? c->tools_used : json_array(), "usage",
                            "input_tokens", (json_int_t)u->input_tokens, "output_tokens",
                            (json_int_t)u->output_tokens, "cache_creation_input_tokens",
                            (json_int_t)u->cache_creation_input_tokens, "cache_read_input_tokens",
                            (json_int_t)u->cache_read_input_tokens, "estimated_cost_usd",
                            cgw__round(u->estimated_cost_usd, 6));
    char warning[1200] = "";
    if (sa->timed_out) {
        snprintf(warning, sizeof(warning),
                 "Sub-agent timed out after %gs \xe2\x80\x94 partial results returned",
                 sa->slot->r->sub.timeout_ms / 1000.0);
    } else if (res->code != CGW_OK) {
        snprintf(warning, sizeof(warning), "Sub-agent error: %s",
                 res->error ? res->error : cgw_strerror(res->code));
    }
    if (out != NULL && warning[0] != '\0') {
        json_object_set_new(out, "warning", json_string(warning));
    }
    return out;
}

/* Adds the child's tokens and cost to the parent's totals: the run's cost includes its
 * sub-agents. */
static void add_to_parent(cgw_runner_t *p, const cgw_usage_t *u)
{
    p->usage.input_tokens += u->input_tokens;
    p->usage.output_tokens += u->output_tokens;
    p->usage.cache_creation_input_tokens += u->cache_creation_input_tokens;
    p->usage.cache_creation_1h_tokens += u->cache_creation_1h_tokens;
    p->usage.cache_read_input_tokens += u->cache_read_input_tokens;
    p->usage.estimated_cost_usd += u->estimated_cost_usd;
}

static void child_done(cgw_runner_t *child, const cgw_run_result_t *res, void *user)
{
    (void)child;
    cgw__subagent_t *sa = user;
    cgw__slot_t *s = sa->slot;
    s->sub = NULL;
    add_to_parent(s->r, &res->usage);
    json_t *result = sub_result(sa, res);
    /* Freed before finishing the slot: finishing may start the parent's next turn. */
    sa->child->done = NULL;
    sub_free(sa);
    if (result == NULL) {
        json_t *e = cgw__tool_error("sub_agent_error", NULL, "Sub-agent failed");
        cgw__slot_finish(s, NULL, e, NULL, NULL);
        json_decref(e);
        return;
    }
    cgw__slot_finish(s, result, NULL, NULL, NULL);
    json_decref(result);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw__subagent_t *sa = arg;
    char msg[128];
    snprintf(msg, sizeof(msg), "Sub-agent timed out after %gs",
             sa->slot->r->sub.timeout_ms / 1000.0);
    sa->timed_out = true;
    cgw__runner_abort(sa->child, CGW_ETIMEDOUT, "timeout", msg);
}

static void fail_slot(cgw__slot_t *s, const char *message)
{
    json_t *e = cgw__tool_error("sub_agent_error", NULL, message);
    cgw__slot_finish(s, NULL, e, NULL, NULL);
    json_decref(e);
}

void cgw__subagent_start(cgw__slot_t *s)
{
    cgw_runner_t *r = s->r;
    const char *task = cgw_json_str(s->input, "task", NULL);
    if (task == NULL || task[0] == '\0') {
        fail_slot(s, "run_agent needs a non-empty string \"task\"");
        return;
    }
    cgw__subagent_t *sa = cgw__calloc(1, sizeof(*sa));
    if (sa == NULL) {
        fail_slot(s, "Sub-agent failed: out of memory");
        return;
    }
    sa->slot = s;
    int rc = cgw__runner_new_child(r, s->id, &sa->child);
    rc = rc ? rc : cgw_conversation_new(&sa->conv);
    rc = rc ? rc : cgw_conversation_append_text(sa->conv, "user", task);
    sa->timer = rc ? NULL : evtimer_new(cgw_ctx_base(r->ctx), timeout_cb, sa);
    if (sa->timer == NULL) {
        rc = rc ? rc : CGW_ENOMEM;
    } else {
        struct timeval tv = {(time_t)(r->sub.timeout_ms / 1000),
                             (suseconds_t)(r->sub.timeout_ms % 1000) * 1000};
        evtimer_add(sa->timer, &tv);
    }
    rc = rc ? rc : cgw_runner_run(sa->child, sa->conv, child_done, sa);
    if (rc != CGW_OK) {
        sub_free(sa);
        fail_slot(s, cgw_strerror(rc));
        return;
    }
    s->sub = sa;
}

void cgw__subagent_cancel(cgw__slot_t *s)
{
    cgw__subagent_t *sa = s->sub;
    if (sa == NULL) {
        return;
    }
    s->sub = NULL;
    /* The child logs its own error "cancelled"; its done callback is dropped with it. */
    cgw__runner_abort(sa->child, CGW_ECANCELED, "cancelled", "Sub-agent cancelled");
    sa->child->done = NULL;
    sub_free(sa);
    json_t *e = cgw__tool_error("cancelled", NULL, "Sub-agent was cancelled");
    cgw__slot_finish(s, NULL, e, NULL, NULL);
    json_decref(e);
}
