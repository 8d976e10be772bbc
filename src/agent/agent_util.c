/* Small helpers shared by the dispatcher, the runner and sub-agents. */
#include <ctype.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/alloc.h"

int cgw__emit(cgw_eventlog_t *log, json_t *ev, const char *agent_id,
              const char *parent_tool_call_id, uint64_t *seq)
{
    if (ev == NULL) {
        return CGW_ENOMEM;
    }
    if (log == NULL) {
        json_decref(ev);
        return CGW_OK;
    }
    if (agent_id != NULL) {
        json_object_set_new(ev, "agent_id", json_string(agent_id));
        json_object_set_new(ev, "parent_tool_call_id",
                            parent_tool_call_id ? json_string(parent_tool_call_id) : json_null());
    }
    int rc = cgw_eventlog_append(log, ev, seq);
    json_decref(ev);
    return rc;
}

json_t *cgw__tool_error(const char *code, const char *sub_code, const char *message)
{
    json_t *e = json_pack("{s:s, s:s}", "code", code ? code : "tool_error", "message",
                          message ? message : "Tool failed");
    if (e != NULL && sub_code != NULL &&
        json_object_set_new(e, "sub_code", json_string(sub_code))) {
        json_decref(e);
        return NULL;
    }
    return e;
}

struct event *cgw__defer_new(cgw_ctx_t *ctx, event_callback_fn cb, void *arg)
{
    return event_new(cgw_ctx_base(ctx), -1, 0, cb, arg);
}

void cgw__defer_fire(struct event *ev)
{
    /* A zero timer rather than event_active: it runs on the next loop iteration, after I/O,
     * so a chain of deferred steps cannot starve the loop. */
    static const struct timeval now = {0, 0};
    event_add(ev, &now);
}

static int text_cb(const char *buffer, size_t size, void *data)
{
    return cgw_buf_append((cgw_buf_t *)data, buffer, size) == CGW_OK ? 0 : -1;
}

char *cgw__json_text(const json_t *v, size_t *len)
{
    /* jansson without JSON_COMPACT writes ", " and ": ", like Python's json.dumps defaults. */
    cgw_buf_t b = CGW_BUF_INIT;
    if (json_dump_callback(v, text_cb, &b, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) != 0 ||
        b.data == NULL) {
        cgw_buf_free(&b);
        return NULL;
    }
    /* Python writes \u00e9, jansson \u00E9: lower-case the hex digits of every escape. */
    for (size_t i = 0; i + 1 < b.len; i++) {
        if (b.data[i] != '\\') {
            continue;
        }
        if (b.data[i + 1] == 'u') {
            for (size_t k = i + 2; k < i + 6 && k < b.len; k++) {
                b.data[k] = (char)tolower((unsigned char)b.data[k]);
            }
        }
        i++; /* skip the escaped character (so "\\u" is not taken for an escape) */
    }
    return cgw_buf_steal(&b, len);
}
