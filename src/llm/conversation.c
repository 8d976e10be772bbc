/*
 * cgw_conversation_t: messages stored as compact JSON bytes, serialized once when appended.
 *
 * jansson re-serializes about 47 MB/s (c-stack.md §1.5), so dumping a 100 KB history every
 * turn would cost ~2 ms per turn and grow with the conversation. Keeping each message's bytes
 * and splicing them into the request body makes a turn cost O(new content).
 */
#include <string.h>

#include <jansson.h>

#include "cgw/anthropic.h"
#include "core/alloc.h"
#include "core/json.h"
#include "llm/llm_int.h"

struct cgw_conversation {
    cgw_str_t *msgs; /* each ptr is an owned, NUL-terminated allocation */
    size_t count;
    size_t cap;
    size_t bytes; /* sum of the lengths */
};

int cgw_conversation_new(cgw_conversation_t **out)
{
    if (out == NULL) {
        return CGW_EINVAL;
    }
    *out = cgw__calloc(1, sizeof(**out));
    return *out != NULL ? CGW_OK : CGW_ENOMEM;
}

void cgw_conversation_free(cgw_conversation_t *conv)
{
    if (conv == NULL) {
        return;
    }
    cgw_conversation_truncate(conv, 0);
    cgw_free(conv->msgs);
    cgw_free(conv);
}

static bool is_message(const json_t *msg)
{
    return json_is_object(msg) && json_is_string(json_object_get(msg, "role")) &&
           json_object_get(msg, "content") != NULL;
}

/* Takes ownership of `json` (freed on failure). */
static int push(cgw_conversation_t *conv, char *json, size_t len)
{
    if (conv->count == conv->cap) {
        size_t cap = conv->cap ? conv->cap * 2 : 16;
        cgw_str_t *m = cgw__realloc(conv->msgs, cap * sizeof(*m));
        if (m == NULL) {
            cgw_free(json);
            return CGW_ENOMEM;
        }
        conv->msgs = m;
        conv->cap = cap;
    }
    conv->msgs[conv->count++] = (cgw_str_t){json, len};
    conv->bytes += len;
    return CGW_OK;
}

int cgw_conversation_append(cgw_conversation_t *conv, const json_t *msg)
{
    if (conv == NULL || !is_message(msg)) {
        return CGW_EINVAL;
    }
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_json_dump_buf(msg, &b);
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        return rc; /* CGW_EINVAL when nested too deep */
    }
    size_t len = 0;
    char *json = cgw_buf_steal(&b, &len);
    return json != NULL ? push(conv, json, len) : CGW_ENOMEM;
}

int cgw_conversation_append_json(cgw_conversation_t *conv, const char *json, size_t len,
                                 cgw_error_t *err)
{
    json_t *msg = NULL;
    if (conv == NULL || json == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "no conversation or no JSON");
    }
    int rc = cgw_json_parse(json, len, &msg, err);
    if (rc != CGW_OK) {
        return rc;
    }
    if (!is_message(msg)) {
        json_decref(msg);
        return cgw_error_set(err, CGW_EINVAL,
                             "a message needs a string \"role\" and a \"content\"");
    }
    rc = cgw_conversation_append(conv, msg);
    json_decref(msg);
    return rc;
}

int cgw_conversation_append_text(cgw_conversation_t *conv, const char *role, const char *text)
{
    if (role == NULL || text == NULL) {
        return CGW_EINVAL;
    }
    json_t *msg = json_pack("{s:s, s:s}", "role", role, "content", text);
    if (msg == NULL) {
        /* json_pack also fails on invalid UTF-8, which is the caller's mistake. */
        return CGW_EINVAL;
    }
    int rc = cgw_conversation_append(conv, msg);
    json_decref(msg);
    return rc;
}

int cgw_conversation_append_reply(cgw_conversation_t *conv, const json_t *message)
{
    json_t *content = json_object_get(message, "content");
    if (!json_is_array(content)) {
        return CGW_EINVAL;
    }
    json_t *msg = json_pack("{s:s, s:O}", "role", "assistant", "content", content);
    if (msg == NULL) {
        return CGW_ENOMEM;
    }
    int rc = cgw_conversation_append(conv, msg);
    json_decref(msg);
    return rc;
}

size_t cgw_conversation_count(const cgw_conversation_t *conv)
{
    return conv != NULL ? conv->count : 0;
}

cgw_str_t cgw_conversation_get(const cgw_conversation_t *conv, size_t i)
{
    if (conv == NULL || i >= conv->count) {
        return (cgw_str_t){NULL, 0};
    }
    return conv->msgs[i];
}

void cgw_conversation_truncate(cgw_conversation_t *conv, size_t n)
{
    while (conv != NULL && conv->count > n) {
        cgw_str_t *m = &conv->msgs[--conv->count];
        conv->bytes -= m->len;
        cgw_free((void *)m->ptr);
    }
}

int cgw__conversation_splice(const cgw_conversation_t *conv, cgw_buf_t *b)
{
    int rc = cgw_buf_reserve(b, conv->bytes + conv->count + 2);
    if (rc != CGW_OK) {
        return rc;
    }
    cgw_buf_append_char(b, '[');
    for (size_t i = 0; i < conv->count; i++) {
        if (i > 0) {
            cgw_buf_append_char(b, ',');
        }
        cgw_buf_append(b, conv->msgs[i].ptr, conv->msgs[i].len);
    }
    return cgw_buf_append_char(b, ']');
}
