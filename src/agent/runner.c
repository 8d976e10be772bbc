/* cgw_runner_t: the agent loop (a turn = one streamed model call, then its tool calls) and the
 * stream handling of one model call. Tool execution is in runner_tools.c, sub-agents in
 * subagent.c. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "agent/runner_int.h"
#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"

#define MAX_TURNS_NOTE "\n\n[Sub-agent reached maximum turn limit]"
#define STUB_PREFIX "Stub response (no Anthropic credential configured). You asked: "

void cgw_sub_agent_config_init(cgw_sub_agent_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_turns = 15;
    cfg->timeout_ms = 300000;
}

void cgw_runner_options_init(cgw_runner_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->max_parallel_tools = 8;
    opts->tool_timeout_ms = 120000;
    opts->stub_delay_ms = 50;
}

json_t *cgw_run_agent_tool_definition(void)
{
    return json_pack(
        "{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}}, s:[s]}}", "name", CGW__RUN_AGENT, "description",
        "Delegate a self-contained task to a sub-agent that has its own conversation and tools. "
        "Several run_agent calls in one turn run in parallel. Returns the sub-agent's final "
        "response, the tools it used and its token usage.",
        "input_schema", "type", "object", "properties", "task", "type", "string", "description",
        "The task for the sub-agent, with all the context it needs", "required", "task");
}

/* ---- construction ----------------------------------------------------------------------- */

static json_t *name_set(const char *const *names, size_t n)
{
    json_t *set = json_object();
    for (size_t i = 0; set != NULL && i < n; i++) {
        if (names[i] != NULL && json_object_set_new(set, names[i], json_true()) != 0) {
            json_decref(set);
            return NULL;
        }
    }
    return set;
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *c = s ? cgw__strdup(s) : NULL;
    *oom |= s != NULL && c == NULL;
    return c;
}

static int alloc_runner(cgw_ctx_t *ctx, cgw_runner_t **out)
{
    cgw_runner_t *r = cgw__calloc(1, sizeof(*r));
    if (r == NULL) {
        return CGW_ENOMEM;
    }
    r->ctx = ctx;
    r->finish_ev = NULL;
    *out = r;
    return CGW_OK;
}

static void finish_cb(evutil_socket_t fd, short what, void *arg);

int cgw_runner_new(cgw_ctx_t *ctx, const cgw_runner_options_t *opts, cgw_runner_t **out,
                   cgw_error_t *err)
{
    if (ctx == NULL || opts == NULL || out == NULL || opts->log == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "a runner needs a ctx, options and a log");
    }
    if (opts->max_turns < 0 || opts->max_parallel_tools < 0 || opts->max_tokens < 0 ||
        (opts->sub_agent != NULL &&
         (opts->sub_agent->max_turns < 0 || opts->sub_agent->max_tokens < 0))) {
        return cgw_error_set(err, CGW_EINVAL, "negative max_turns, max_tokens or parallelism");
    }
    cgw_runner_t *r = NULL;
    if (alloc_runner(ctx, &r) != CGW_OK) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    bool oom = false;
    r->client = opts->client;
    r->disp = opts->dispatcher;
    r->log = opts->log;
    r->session_id = dup_or_null(
        opts->session_id && opts->session_id[0] ? opts->session_id : "no-session", &oom);
    r->system = dup_or_null(opts->system_prompt, &oom);
    r->model = dup_or_null(opts->model, &oom);
    r->max_tokens = opts->max_tokens;
    r->max_turns = opts->max_turns;
    r->max_parallel = opts->max_parallel_tools > 0 ? opts->max_parallel_tools : 8;
    r->tool_timeout_ms = opts->tool_timeout_ms;
    r->stub_delay_ms = opts->stub_delay_ms;
    r->excluded = name_set(opts->excluded_tools, opts->n_excluded_tools);
    r->prices = opts->prices ? opts->prices : cgw_price_table_default();
    r->hooks = opts->hooks;
    if (opts->sub_agent != NULL) {
        r->has_sub = true;
        r->sub = *opts->sub_agent;
        r->sub_excluded =
            name_set(opts->sub_agent->excluded_tools, opts->sub_agent->n_excluded_tools);
        r->sub_system = dup_or_null(opts->sub_agent->system_prompt, &oom);
        r->sub_model = dup_or_null(opts->sub_agent->model, &oom);
        oom |= r->sub_excluded == NULL;
        if (r->sub.timeout_ms == 0) {
            r->sub.timeout_ms = 300000;
        }
    }
    r->finish_ev = cgw__defer_new(ctx, finish_cb, r);
    if (oom || r->excluded == NULL || r->finish_ev == NULL) {
        cgw_runner_free(r);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    *out = r;
    return CGW_OK;
}

int cgw__runner_new_child(cgw_runner_t *p, const char *parent_tool_call_id, cgw_runner_t **out)
{
    cgw_runner_options_t o;
    cgw_runner_options_init(&o);
    o.client = p->client;
    o.dispatcher = p->disp;
    o.log = p->log;
    o.session_id = p->session_id;
    o.system_prompt = p->sub_system;
    o.model = p->sub_model ? p->sub_model : p->model;
    o.max_tokens = p->sub.max_tokens > 0 ? p->sub.max_tokens : p->max_tokens;
    o.max_turns = p->sub.max_turns;
    o.max_parallel_tools = p->max_parallel;
    o.tool_timeout_ms = p->tool_timeout_ms;
    o.prices = p->prices;
    o.hooks = p->hooks;
    o.stub_delay_ms = p->stub_delay_ms;
    cgw_runner_t *c = NULL;
    int rc = cgw_runner_new(p->ctx, &o, &c, NULL);
    if (rc != CGW_OK) {
        return rc;
    }
    /* Excluded: the parent's, the sub-agent config's, and run_agent (never nested). */
    char id[96];
    snprintf(id, sizeof(id), "sub%u:%.12s", p->sub_counter++, p->session_id);
    c->agent_id = cgw__strdup(id);
    c->parent_id = cgw__strdup(parent_tool_call_id);
    if (c->agent_id == NULL || c->parent_id == NULL ||
        json_object_update(c->excluded, p->excluded) != 0 ||
        json_object_update(c->excluded, p->sub_excluded) != 0 ||
        json_object_set_new(c->excluded, CGW__RUN_AGENT, json_true()) != 0) {
        cgw_runner_free(c);
        return CGW_ENOMEM;
    }
    *out = c;
    return CGW_OK;
}

static void reset_run(cgw_runner_t *r)
{
    cgw__tools_clear(r);
    if (r->call != NULL) {
        cgw_anthropic_call_free(r->call);
        r->call = NULL;
    }
    if (r->stub_timer != NULL) {
        event_free(r->stub_timer);
        r->stub_timer = NULL;
    }
    for (size_t i = 0; i < r->nwords; i++) {
        cgw_free(r->words[i]);
    }
    cgw_free(r->words);
    r->words = NULL;
    r->nwords = r->next_word = 0;
    for (size_t i = 0; i < r->nfrags; i++) {
        cgw_buf_free(&r->frags[i]);
    }
    cgw_free(r->frags);
    r->frags = NULL;
    r->nfrags = 0;
    cgw_free(r->call_model);
    cgw_free(r->stop_reason);
    cgw_free(r->error);
    cgw_free(r->turn_stop);
    r->call_model = r->stop_reason = r->error = r->turn_stop = NULL;
    cgw_buf_free(&r->text);
    json_decref(r->tools_used);
    r->tools_used = NULL;
}

void cgw_runner_free(cgw_runner_t *r)
{
    if (r == NULL) {
        return;
    }
    if (r->running && !r->finishing) {
        r->done = NULL;
        cgw__runner_abort(r, CGW_ECANCELED, "cancelled", "Run cancelled");
    }
    reset_run(r);
    if (r->finish_ev != NULL) {
        event_free(r->finish_ev);
    }
    json_decref(r->excluded);
    json_decref(r->sub_excluded);
    cgw_free(r->session_id);
    cgw_free(r->system);
    cgw_free(r->model);
    cgw_free(r->sub_system);
    cgw_free(r->sub_model);
    cgw_free(r->agent_id);
    cgw_free(r->parent_id);
    cgw_free(r);
}

int cgw_runner_set_log(cgw_runner_t *r, cgw_eventlog_t *log)
{
    if (r == NULL || log == NULL) {
        return CGW_EINVAL;
    }
    if (r->running) {
        return CGW_EBUSY;
    }
    r->log = log;
    return CGW_OK;
}

bool cgw_runner_running(const cgw_runner_t *r)
{
    return r != NULL && r->running;
}

const char *cgw_runner_session_id(const cgw_runner_t *r)
{
    return r ? r->session_id : NULL;
}

/* ---- events and the end of a run ------------------------------------------------------- */

int cgw__runner_emit(cgw_runner_t *r, json_t *ev)
{
    uint64_t seq = 0;
    int rc = cgw__emit(r->log, ev, r->agent_id, r->parent_id, &seq);
    if (rc == CGW_OK && r->call != NULL && r->attempt_first_seq == 0) {
        r->attempt_first_seq = seq;
    }
    if (rc != CGW_OK && rc != CGW_ECLOSED) {
        CGW_WARN(r->ctx, "agent", "[%.12s] event not logged: %s", r->session_id, cgw_strerror(rc));
    }
    return rc;
}

static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_runner_t *r = arg;
    /* Copies: the callback may run the runner again, which resets these strings. */
    char stop[64], error[1024];
    snprintf(stop, sizeof(stop), "%s", r->stop_reason ? r->stop_reason : "");
    snprintf(error, sizeof(error), "%s", r->error ? r->error : cgw_strerror(r->code));
    cgw_run_result_t res = {r->code,
                            r->code == CGW_OK ? stop : NULL,
                            r->code == CGW_OK ? NULL : error,
                            r->turns,
                            r->usage,
                            r->stub};
    cgw_run_done_cb done = r->done;
    void *user = r->done_user;
    r->running = r->finishing = r->cancelling = false;
    r->conv = NULL;
    if (done != NULL) {
        done(r, &res, user); /* may free or rerun r: nothing after this */
    }
}

/* Marks the run over and schedules `done`. */
static void finish(cgw_runner_t *r, int code)
{
    r->code = code;
    r->finishing = true;
    if (r->call != NULL) {
        cgw_anthropic_call_free(r->call);
        r->call = NULL;
    }
    if (code != CGW_OK && r->conv != NULL) {
        cgw_conversation_truncate(r->conv, r->conv_start);
    }
    cgw__defer_fire(r->finish_ev);
}

static json_t *usage_json(const cgw_usage_t *u, bool with_cost)
{
    json_t *j = json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", (json_int_t)u->input_tokens,
                          "output_tokens", (json_int_t)u->output_tokens,
                          "cache_creation_input_tokens", (json_int_t)u->cache_creation_input_tokens,
                          "cache_read_input_tokens", (json_int_t)u->cache_read_input_tokens);
    if (j != NULL && with_cost) {
        json_object_set_new(j, "estimated_cost_usd",
                            json_real(cgw__round(u->estimated_cost_usd, 6)));
    }
    return j;
}

void cgw__runner_complete(cgw_runner_t *r, const char *stop_reason)
{
    cgw_free(r->stop_reason);
    r->stop_reason = cgw__strdup(stop_reason ? stop_reason : "end_turn");
    r->usage.estimated_cost_usd = cgw__round(r->usage.estimated_cost_usd, 6);
    if (r->hooks.on_usage != NULL) {
        cgw_usage_report_t rep = {r->session_id, r->agent_id, r->turns, r->usage};
        r->hooks.on_usage(&rep, r->hooks.user);
    }
    cgw__runner_emit(r, json_pack("{s:s, s:s, s:i, s:o}", "type", "stream_complete", "stop_reason",
                                  r->stop_reason ? r->stop_reason : "end_turn", "turns", r->turns,
                                  "usage", usage_json(&r->usage, true)));
    finish(r, CGW_OK);
}

void cgw__runner_fail(cgw_runner_t *r, int code, const char *code_name, const char *message)
{
    cgw_free(r->error);
    r->error = cgw__strdup(message);
    cgw__runner_emit(
        r, json_pack("{s:s, s:s, s:s}", "type", "error", "error", message, "code", code_name));
    finish(r, code);
}

int cgw__runner_abort(cgw_runner_t *r, int code, const char *code_name, const char *message)
{
    if (!r->running || r->finishing) {
        return CGW_ESTATE;
    }
    r->cancelling = true;
    if (r->call != NULL) {
        cgw_anthropic_call_free(r->call); /* drops the transfer at once */
        r->call = NULL;
    }
    if (r->stub_timer != NULL) {
        evtimer_del(r->stub_timer);
    }
    cgw__tools_cancel(r);
    cgw__runner_fail(r, code, code_name, message);
    return CGW_OK;
}

int cgw_runner_cancel(cgw_runner_t *r)
{
    if (r == NULL) {
        return CGW_EINVAL;
    }
    return cgw__runner_abort(r, CGW_ECANCELED, "cancelled", "Run cancelled");
}

/* ---- the stub answer -------------------------------------------------------------------- */

/* The text of the last user message: string content, or its text blocks joined. */
static char *last_user_text(const cgw_conversation_t *conv)
{
    size_t n = cgw_conversation_count(conv);
    cgw_str_t m = n ? cgw_conversation_get(conv, n - 1) : (cgw_str_t){NULL, 0};
    json_t *msg = NULL;
    cgw_buf_t b = CGW_BUF_INIT;
    if (m.ptr != NULL && cgw_json_parse(m.ptr, m.len, &msg, NULL) == CGW_OK) {
        const json_t *content = json_object_get(msg, "content");
        size_t i;
        const json_t *blk;
        if (json_is_string(content)) {
            cgw_buf_append_str(&b, json_string_value(content));
        }
        json_array_foreach(content, i, blk)
        {
            cgw_buf_append_str(&b, cgw_json_str(blk, "text", ""));
        }
    }
    json_decref(msg);
    cgw_buf_append(&b, "", 0);
    return b.data ? cgw_buf_steal(&b, NULL) : cgw__strdup("");
}

static int split_words(cgw_runner_t *r, const char *text)
{
    for (const char *p = text; *p != '\0';) {
        while (*p != '\0' && isspace((unsigned char)*p)) {
            p++;
        }
        const char *start = p;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            p++;
        }
        if (p == start) {
            break;
        }
        char **w = cgw__realloc(r->words, (r->nwords + 1) * sizeof(*w));
        if (w == NULL) {
            return CGW_ENOMEM;
        }
        r->words = w;
        size_t len = (size_t)(p - start);
        char *word = cgw__malloc(len + 2);
        if (word == NULL) {
            return CGW_ENOMEM;
        }
        memcpy(word, start, len);
        word[len] = ' ';
        word[len + 1] = '\0';
        r->words[r->nwords++] = word;
    }
    return CGW_OK;
}

static void stub_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_runner_t *r = arg;
    if (r->next_word < r->nwords) {
        const char *w = r->words[r->next_word++];
        cgw__runner_emit(r, json_pack("{s:s, s:s}", "type", "text_delta", "text", w));
        cgw_buf_append_str(&r->text, w);
        struct timeval tv = {(time_t)(r->stub_delay_ms / 1000),
                             (suseconds_t)(r->stub_delay_ms % 1000) * 1000};
        evtimer_add(r->stub_timer, &tv);
        return;
    }
    /* The stub answer is the assistant's turn, so the conversation can go on. */
    if (r->text.len > 0) {
        char *t = cgw__strndup(r->text.data, r->text.len - 1); /* without the last space */
        if (t != NULL) {
            cgw_conversation_append_text(r->conv, "assistant", t);
        }
        cgw_free(t);
    }
    cgw_free(r->stop_reason);
    r->stop_reason = cgw__strdup("end_turn");
    cgw__runner_emit(r, json_pack("{s:s, s:s, s:i, s:{}}", "type", "stream_complete", "stop_reason",
                                  "end_turn", "turns", 0, "usage"));
    finish(r, CGW_OK);
}

static int start_stub(cgw_runner_t *r)
{
    char *asked = last_user_text(r->conv);
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = asked ? cgw_buf_appendf(&b, STUB_PREFIX "%s", asked) : CGW_ENOMEM;
    cgw_free(asked);
    rc = rc ? rc : split_words(r, b.data);
    cgw_buf_free(&b);
    r->stub = true;
    r->stub_timer = rc == CGW_OK ? evtimer_new(cgw_ctx_base(r->ctx), stub_cb, r) : NULL;
    if (r->stub_timer == NULL) {
        return CGW_ENOMEM;
    }
    event_active(r->stub_timer, EV_TIMEOUT, 0);
    return CGW_OK;
}

/* ---- one model call --------------------------------------------------------------------- */

static cgw_buf_t *frag(cgw_runner_t *r, size_t index)
{
    if (index >= r->nfrags) {
        size_t n = index + 1;
        cgw_buf_t *f = cgw__realloc(r->frags, n * sizeof(*f));
        if (f == NULL) {
            return NULL;
        }
        for (size_t i = r->nfrags; i < n; i++) {
            f[i] = (cgw_buf_t)CGW_BUF_INIT;
        }
        r->frags = f;
        r->nfrags = n;
    }
    return &r->frags[index];
}

static void emit_delta(cgw_runner_t *r, const char *type, cgw_str_t text)
{
    if (text.len == 0) {
        return; /* the original emits non-empty deltas only */
    }
    cgw__runner_emit(r, json_pack("{s:s, s:s%}", "type", type, "text", text.ptr, text.len));
}

/* A log closed by its owner (the session went away) ends the run: nobody can see it. */
static bool log_gone(cgw_runner_t *r)
{
    if (!cgw_eventlog_closed(r->log)) {
        return false;
    }
    cgw__runner_abort(r, CGW_ECLOSED, "closed", "The event log was closed");
    return true;
}

static void on_llm_event(const cgw_llm_event_t *ev, void *user)
{
    cgw_runner_t *r = user;
    cgw_buf_t *f;
    if (log_gone(r)) {
        return;
    }
    switch (ev->kind) {
    case CGW_LLM_TEXT_DELTA:
        emit_delta(r, "text_delta", ev->text);
        cgw_buf_append(&r->text, ev->text.ptr, ev->text.len);
        break;
    case CGW_LLM_THINKING_DELTA:
        emit_delta(r, "thinking_delta", ev->text);
        break;
    case CGW_LLM_BLOCK_START:
        if ((f = frag(r, ev->index)) != NULL) {
            cgw_buf_reset(f);
        }
        break;
    case CGW_LLM_INPUT_DELTA:
        if ((f = frag(r, ev->index)) != NULL) {
            cgw_buf_append(f, ev->text.ptr, ev->text.len);
        }
        break;
    default:
        break;
    }
}

static void on_llm_retry(const cgw_llm_retry_t *info, void *user)
{
    cgw_runner_t *r = user;
    uint64_t discard =
        r->attempt_first_seq ? r->attempt_first_seq : cgw_eventlog_last_seq(r->log) + 1;
    r->attempt_first_seq = 0;
    r->text.len = r->text_at_attempt; /* the failed attempt's text is not the answer */
    if (r->text.data != NULL) {
        r->text.data[r->text.len] = '\0';
    }
    for (size_t i = 0; i < r->nfrags; i++) {
        cgw_buf_reset(&r->frags[i]);
    }
    json_t *ev =
        json_pack("{s:s, s:i, s:s, s:I}", "type", "stream_retry", "attempt", info->attempt, "error",
                  info->error && info->error->message[0]
                      ? info->error->message
                      : cgw_strerror(info->error ? info->error->code : CGW_EIO),
                  "discard_from_seq", (json_int_t)discard);
    /* The retry event itself is not part of the next attempt. */
    cgw__emit(r->log, ev, r->agent_id, r->parent_id, NULL);
}

static const char *code_name(int code)
{
    switch (code) {
    case CGW_EAPI:
        return "api_error";
    case CGW_EHTTP:
        return "http_error";
    case CGW_ERETRIES:
        return "retries_exhausted";
    case CGW_ETIMEDOUT:
        return "timeout";
    case CGW_ESTALL:
        return "stream_stalled";
    case CGW_ECONNREFUSED:
    case CGW_ECONNRESET:
    case CGW_EIO:
        return "connection_error";
    case CGW_EPROTO:
    case CGW_EJSON:
    case CGW_ESSE:
        return "protocol_error";
    default:
        return "internal_error";
    }
}

static void read_usage(const json_t *u, cgw_usage_t *out)
{
    out->input_tokens = cgw_json_int(u, "input_tokens", 0);
    out->output_tokens = cgw_json_int(u, "output_tokens", 0);
    out->cache_creation_input_tokens = cgw_json_int(u, "cache_creation_input_tokens", 0);
    out->cache_read_input_tokens = cgw_json_int(u, "cache_read_input_tokens", 0);
    out->cache_creation_1h_tokens =
        cgw_json_int(json_object_get(u, "cache_creation"), "ephemeral_1h_input_tokens", 0);
}

static void add_usage(cgw_runner_t *r, const json_t *u, const char *model)
{
    cgw_usage_t c = {0};
    read_usage(u, &c);
    c.estimated_cost_usd = cgw_usage_cost(r->prices, model, &c);
    r->usage.input_tokens += c.input_tokens;
    r->usage.output_tokens += c.output_tokens;
    r->usage.cache_creation_input_tokens += c.cache_creation_input_tokens;
    r->usage.cache_creation_1h_tokens += c.cache_creation_1h_tokens;
    r->usage.cache_read_input_tokens += c.cache_read_input_tokens;
    r->usage.estimated_cost_usd += c.estimated_cost_usd;
    /* "type" first, as in every other event, so that readers of the raw lines see it first. */
    json_t *ev = json_pack("{s:s,s:s}", "type", "usage", "model", model ? model : "");
    json_t *counts = usage_json(&c, true);
    if (ev != NULL && counts != NULL) {
        json_object_update(ev, counts);
    }
    json_decref(counts);
    cgw__runner_emit(r, ev);
}

/* The assistant content to send back: every block as received, minus empty text blocks (the
 * API refuses them). *has_tools says whether a tool_use block is present. */
static json_t *sendable_content(const json_t *content, bool *has_tools)
{
    json_t *out = json_array();
    size_t i;
    const json_t *b;
    *has_tools = false;
    json_array_foreach(content, i, b)
    {
        const char *type = cgw_json_str(b, "type", "");
        if (strcmp(type, "text") == 0 && cgw_json_str(b, "text", "")[0] == '\0') {
            continue;
        }
        *has_tools |= strcmp(type, "tool_use") == 0;
        json_array_append(out, (json_t *)b);
    }
    return out;
}

static int append_assistant(cgw_runner_t *r, json_t *content)
{
    if (json_array_size(content) == 0) {
        return CGW_OK; /* nothing to send back; an empty assistant turn would be refused */
    }
    json_t *msg = json_pack("{s:s, s:O}", "role", "assistant", "content", content);
    int rc = msg ? cgw_conversation_append(r->conv, msg) : CGW_ENOMEM;
    json_decref(msg);
    return rc;
}

static void turn_done(cgw_runner_t *r, const cgw_llm_result_t *res)
{
    add_usage(r, res->usage, r->call_model);
    const char *stop = res->stop_reason ? res->stop_reason : "end_turn";
    bool has_tools = false;
    json_t *content = sendable_content(json_object_get(res->message, "content"), &has_tools);
    if (content == NULL || append_assistant(r, content) != CGW_OK) {
        json_decref(content);
        cgw__runner_fail(r, CGW_ENOMEM, "internal_error", "out of memory");
        return;
    }
    if (has_tools) {
        cgw__tools_start(r, json_object_get(res->message, "content"), stop);
    } else if (strcmp(stop, "pause_turn") == 0) {
        cgw__runner_next_turn(r); /* the API paused a long turn: send it back to continue */
    } else {
        cgw__runner_complete(r, stop);
    }
    json_decref(content);
}

static void on_llm_done(const cgw_llm_result_t *res, void *user)
{
    cgw_runner_t *r = user;
    cgw_anthropic_call_free(r->call);
    r->call = NULL;
    if (res->code != CGW_OK) {
        char msg[1200];
        snprintf(msg, sizeof(msg), "%s",
                 res->error && res->error->message[0] ? res->error->message
                                                      : cgw_strerror(res->code));
        cgw__runner_fail(r, res->code, code_name(res->code), msg);
        return;
    }
    turn_done(r, res);
}

static json_t *tool_definitions(cgw_runner_t *r)
{
    json_t *all = r->disp ? cgw_dispatcher_tool_definitions(r->disp) : json_array();
    bool builtin = r->has_sub && json_object_get(r->excluded, CGW__RUN_AGENT) == NULL;
    json_t *out = json_array();
    if (out != NULL && builtin) {
        json_array_append_new(out, cgw_run_agent_tool_definition());
    }
    size_t i;
    json_t *d;
    json_array_foreach(all, i, d)
    {
        const char *name = cgw_json_str(d, "name", "");
        /* The built-in run_agent wins over a tool of that name (names must be unique). */
        if (json_object_get(r->excluded, name) == NULL &&
            !(builtin && strcmp(name, CGW__RUN_AGENT) == 0)) {
            json_array_append(out, d);
        }
    }
    json_decref(all);
    return out;
}

void cgw__runner_next_turn(cgw_runner_t *r)
{
    if (r->cancelling || r->finishing) {
        return;
    }
    cgw__tools_clear(r);
    if (log_gone(r)) {
        return;
    }
    if (r->max_turns > 0 && r->turns >= r->max_turns) {
        cgw__runner_emit(r, json_pack("{s:s, s:s}", "type", "text_delta", "text", MAX_TURNS_NOTE));
        cgw_buf_append_str(&r->text, MAX_TURNS_NOTE);
        cgw__runner_complete(r, "max_turns");
        return;
    }
    r->turns++;
    json_t *tools = tool_definitions(r);
    char *tools_json = tools ? cgw_json_dump(tools, NULL) : NULL;
    json_decref(tools);
    cgw_anthropic_request_t req = {.conversation = r->conv,
                                   .system = r->system,
                                   .tools_json = tools_json,
                                   .model = r->model,
                                   .max_tokens = r->max_tokens,
                                   .lenient_tool_input = true};
    cgw_free(r->call_model);
    r->call_model = cgw__strdup(r->model ? r->model : cgw_anthropic_model(r->client));
    r->attempt_first_seq = 0;
    r->text_at_attempt = r->text.len;
    static const cgw_anthropic_callbacks_t cbs = {on_llm_event, on_llm_retry, on_llm_done};
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = tools_json ? cgw_anthropic_call_start(r->client, &req, &cbs, r, &r->call, &err)
                        : CGW_ENOMEM;
    cgw_free(tools_json);
    if (rc != CGW_OK) {
        cgw__runner_fail(r, rc, code_name(rc), err.message[0] ? err.message : cgw_strerror(rc));
    }
}

int cgw_runner_run(cgw_runner_t *r, cgw_conversation_t *conv, cgw_run_done_cb done, void *user)
{
    if (r == NULL || conv == NULL || cgw_conversation_count(conv) == 0) {
        return CGW_EINVAL;
    }
    if (r->running) {
        return CGW_EBUSY;
    }
    if (cgw_eventlog_closed(r->log)) {
        return CGW_ECLOSED;
    }
    reset_run(r);
    r->tools_used = json_array();
    if (r->tools_used == NULL) {
        return CGW_ENOMEM;
    }
    r->conv = conv;
    r->conv_start = cgw_conversation_count(conv);
    r->done = done;
    r->done_user = user;
    r->turns = 0;
    r->code = CGW_OK;
    r->stub = false;
    memset(&r->usage, 0, sizeof(r->usage));
    r->running = true;
    if (r->client == NULL) {
        int rc = start_stub(r);
        if (rc != CGW_OK) {
            r->running = false;
            reset_run(r);
        }
        return rc;
    }
    /* The first turn starts from the loop so that done never runs inside this call. */
    cgw__runner_next_turn(r);
    return CGW_OK;
}
