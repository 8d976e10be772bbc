/* The tool calls of one turn: all of them run concurrently (at most max_parallel at once),
 * each reported as tool_use when it starts and tool_result when it ends; when the last one
 * ends, the results go back to the model in the order of its tool_use blocks. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/runner_int.h"
#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"

static void pump(cgw_runner_t *r);

void cgw__tools_clear(cgw_runner_t *r)
{
    for (size_t i = 0; i < r->nslots; i++) {
        cgw__slot_t *s = &r->slots[i];
        cgw_free(s->id);
        cgw_free(s->name);
        cgw_free(s->server);
        json_decref(s->input);
        json_decref(s->block);
        json_decref(s->extra);
    }
    cgw_free(r->slots);
    r->slots = NULL;
    r->nslots = r->next_slot = r->nrunning = r->nfinished = 0;
}

/* True when the streamed input of block `index` did not form a JSON object: max_tokens cut
 * it (the accumulator, told to be lenient, put {} in its place). */
static bool input_truncated(const cgw_runner_t *r, size_t index, const char *stop)
{
    if (strcmp(stop, "max_tokens") != 0 || index >= r->nfrags || r->frags[index].len == 0) {
        return false;
    }
    json_t *v = json_loadb(r->frags[index].data, r->frags[index].len, 0, NULL);
    bool bad = !json_is_object(v);
    json_decref(v);
    return bad;
}

/* Annotations of the original on successful object results (on a copy). */
static json_t *annotate(const cgw__slot_t *s, const json_t *result)
{
    if (!json_is_object(result)) {
        return json_incref((json_t *)result);
    }
    cgw_buf_t w = CGW_BUF_INIT;
    const json_t *low = json_object_get(result, "low_match_warning");
    if (low != NULL && !json_is_false(low) && !json_is_null(low)) {
        char *t = json_is_string(low) ? NULL : cgw__json_text(low, NULL);
        cgw_buf_appendf(&w, "Low match rate detected: %s", t ? t : json_string_value(low));
        cgw_free(t);
    }
    const char *warning = cgw_json_str(result, "warning", NULL);
    if (warning != NULL && strcmp(s->name, CGW__RUN_AGENT) == 0) {
        cgw_buf_appendf(&w, "%sSub-agent warning: %s", w.len ? " | " : "", warning);
    }
    json_t *copy = json_copy((json_t *)result);
    if (copy != NULL && w.len > 0) {
        json_object_set_new(copy, "_runner_warning", json_stringn(w.data, w.len));
    }
    cgw_buf_free(&w);
    return copy;
}

/* The tool_result block, with MCP's extra content (images, resources) after the JSON text. */
static json_t *result_block(const cgw__slot_t *s, const json_t *result, const json_t *error,
                            const json_t *content, bool *is_error)
{
    json_t *block = cgw_tool_result_block(s->id, result, error, is_error);
    if (block == NULL || json_array_size(content) == 0) {
        return block;
    }
    json_t *parts =
        json_pack("[{s:s, s:O}]", "type", "text", "text", json_object_get(block, "content"));
    if (parts == NULL || json_array_extend(parts, (json_t *)content) != 0 ||
        json_object_set_new(block, "content", parts) != 0) {
        json_decref(block);
        return NULL;
    }
    return block;
}

void cgw__slot_finish(cgw__slot_t *s, const json_t *result, const json_t *error,
                      const json_t *content, const char *server)
{
    cgw_runner_t *r = s->r;
    if (s->finished) {
        return;
    }
    s->finished = true;
    s->dispatch = NULL;
    int64_t ms = (int64_t)(cgw__now_ms() - s->start_ms);
    if (server != NULL && s->server == NULL) {
        s->server = cgw__strdup(server);
    }
    json_t *shown = result ? annotate(s, result) : NULL;
    bool is_error = true;
    s->block = result_block(s, error ? NULL : shown, error, content, &is_error);
    cgw__runner_emit(r, json_pack("{s:s, s:s, s:s, s:O?, s:O?, s:b, s:I, s:s?}", "type",
                                  "tool_result", "tool_call_id", s->id, "tool_name", s->name,
                                  "result", error ? NULL : result, "error", error, "is_error",
                                  is_error, "duration_ms", (json_int_t)ms, "server", s->server));
    if (r->hooks.on_tool_timing != NULL) {
        size_t bytes = 0;
        char *t = !error && result ? cgw__json_text(result, &bytes) : NULL;
        cgw_free(t);
        r->hooks.on_tool_timing(r->session_id, s->name, s->server, ms, error != NULL, bytes,
                                r->hooks.user);
    }
    s->extra = json_array();
    if (r->hooks.on_tool_result != NULL && s->block != NULL && s->extra != NULL) {
        cgw_tool_result_ctx_t c = {
            r->session_id, r->agent_id, s->id, s->name,  s->input, error ? NULL : result,
            error,         s->server,   ms,    s->block, s->extra};
        r->hooks.on_tool_result(&c, r->hooks.user);
    }
    json_decref(shown);
    r->nrunning--;
    r->nfinished++;
    if (!r->pumping) {
        pump(r);
    }
}

static void slot_error(cgw__slot_t *s, const char *code, const char *fmt, ...) CGW_PRINTF(3, 4);

static void slot_error(cgw__slot_t *s, const char *code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = cgw__tool_error(code, NULL, msg);
    cgw__slot_finish(s, NULL, e, NULL, NULL);
    json_decref(e);
}

static void dispatch_done(const cgw_tool_outcome_t *o, void *user)
{
    cgw__slot_t *s = user;
    s->dispatch = NULL;
    cgw__slot_finish(s, o->result, o->error, o->content, o->server);
}

static void start_dispatch(cgw__slot_t *s)
{
    cgw_runner_t *r = s->r;
    if (r->disp == NULL) {
        slot_error(s, "unknown_tool", "Unknown tool: %s", s->name);
        return;
    }
    cgw_tool_call_t call = {.tool_call_id = s->id,
                            .tool_name = s->name,
                            .input = s->input,
                            .call_index = s->index,
                            .log = r->log,
                            .agent_id = r->agent_id,
                            .parent_tool_call_id = r->parent_id,
                            .session_id = r->session_id,
                            .timeout_ms = r->tool_timeout_ms};
    if (cgw_dispatcher_dispatch(r->disp, &call, dispatch_done, s, &s->dispatch) != CGW_OK) {
        s->dispatch = NULL;
        slot_error(s, "internal_error", "could not dispatch '%s'", s->name);
    }
}

static void start_slot(cgw__slot_t *s)
{
    cgw_runner_t *r = s->r;
    s->started = true;
    s->start_ms = cgw__now_ms();
    r->nrunning++;
    bool local = r->disp && cgw_dispatcher_has_local(r->disp, s->name);
    const char *server = r->disp && !local ? cgw_dispatcher_server_for(r->disp, s->name) : NULL;
    s->server = server ? cgw__strdup(server) : NULL;
    json_array_append_new(r->tools_used, json_string(s->name));
    cgw__runner_emit(r, json_pack("{s:s, s:s, s:s, s:O, s:i, s:s?}", "type", "tool_use",
                                  "tool_call_id", s->id, "tool_name", s->name, "tool_input",
                                  s->input, "call_index", s->index, "server", s->server));
    if (s->truncated) {
        slot_error(s, "tool_input_truncated",
                   "The input of tool '%s' was cut off by max_tokens, so the call was not run. "
                   "Call it again with a shorter input, or raise max_tokens.",
                   s->name);
    } else if (json_object_get(r->excluded, s->name) != NULL) {
        slot_error(s, "tool_excluded", "Tool '%s' is not available in this context", s->name);
    } else if (r->has_sub && strcmp(s->name, CGW__RUN_AGENT) == 0) {
        cgw__subagent_start(s);
    } else {
        start_dispatch(s);
    }
}

/* The user turn of results, in the model's order, and the next step of the loop. */
static void tools_done(cgw_runner_t *r)
{
    json_t *content = json_array();
    for (size_t i = 0; content != NULL && i < r->nslots; i++) {
        if (r->slots[i].block == NULL || json_array_append(content, r->slots[i].block) != 0 ||
            json_array_extend(content, r->slots[i].extra) != 0) {
            json_decref(content);
            content = NULL;
        }
    }
    json_t *msg = content ? json_pack("{s:s, s:o}", "role", "user", "content", content) : NULL;
    int rc = msg ? cgw_conversation_append(r->conv, msg) : CGW_ENOMEM;
    json_decref(msg);
    if (rc != CGW_OK) {
        cgw__runner_fail(r, rc, "internal_error", "could not record the tool results");
        return;
    }
    if (strcmp(r->turn_stop, "end_turn") == 0) {
        cgw__runner_complete(r, "end_turn"); /* the original stops here, results recorded */
    } else {
        cgw__runner_next_turn(r);
    }
}

static void pump(cgw_runner_t *r)
{
    if (r->cancelling || r->finishing) {
        return;
    }
    r->pumping = true;
    while (r->next_slot < r->nslots && r->nrunning < (size_t)r->max_parallel && !r->cancelling) {
        start_slot(&r->slots[r->next_slot++]);
    }
    r->pumping = false;
    if (!r->cancelling && r->nfinished == r->nslots) {
        tools_done(r);
    }
}

void cgw__tools_start(cgw_runner_t *r, const json_t *content, const char *stop_reason)
{
    cgw__tools_clear(r);
    cgw_free(r->turn_stop);
    r->turn_stop = cgw__strdup(stop_reason);
    size_t n = 0, i;
    const json_t *b;
    json_array_foreach(content, i, b)
    {
        n += strcmp(cgw_json_str(b, "type", ""), "tool_use") == 0;
    }
    r->slots = cgw__calloc(n, sizeof(*r->slots));
    if (r->slots == NULL || r->turn_stop == NULL) {
        cgw__runner_fail(r, CGW_ENOMEM, "internal_error", "out of memory");
        return;
    }
    /* `content` is the message as streamed, so array index i is the stream's block index. */
    json_array_foreach(content, i, b)
    {
        if (strcmp(cgw_json_str(b, "type", ""), "tool_use") != 0) {
            continue;
        }
        cgw__slot_t *s = &r->slots[r->nslots];
        s->r = r;
        s->index = (int)r->nslots;
        s->id = cgw__strdup(cgw_json_str(b, "id", ""));
        s->name = cgw__strdup(cgw_json_str(b, "name", "tool"));
        const json_t *input = json_object_get(b, "input");
        s->input = json_is_object(input) ? json_deep_copy(input) : json_object();
        s->truncated = input_truncated(r, i, stop_reason);
        r->nslots++;
        if (s->id == NULL || s->name == NULL || s->input == NULL) {
            cgw__runner_fail(r, CGW_ENOMEM, "internal_error", "out of memory");
            return;
        }
    }
    pump(r);
}

void cgw__tools_cancel(cgw_runner_t *r)
{
    for (size_t i = 0; i < r->nslots; i++) {
        cgw__slot_t *s = &r->slots[i];
        if (!s->started || s->finished) {
            continue;
        }
        if (s->dispatch != NULL) {
            cgw_dispatch_cancel(s->dispatch); /* dispatch_done finishes the slot */
        } else if (s->sub != NULL) {
            cgw__subagent_cancel(s);
        } else {
            json_t *e = cgw__tool_error("cancelled", NULL, "Task was cancelled");
            cgw__slot_finish(s, NULL, e, NULL, NULL);
            json_decref(e);
        }
    }
}
