/* tools/call outcome -> (result, error) as the original did, plus Anthropic content blocks
 * for what the original dropped (rules in mcp_result.h).
 *
 * The text/JSON part follows claude_gateway's mcp_client.py byte for byte where it matters
 * to the model: the same text joining and stripping, the same fallbacks, the same keyword
 * sub-codes, and Python's json.dumps layout for a structured error message. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "mcp/mcp_result.h"

void cgw__mcp_outcome_clear(cgw_mcp_outcome_t *o)
{
    if (o == NULL) {
        return;
    }
    json_decref(o->result);
    json_decref(o->error);
    json_decref(o->content);
    o->result = o->error = o->content = NULL;
}

/* Python's str.isspace() for the ASCII range (what str.strip() removes). */
static bool py_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static bool blank(const char *s)
{
    for (; *s != '\0'; s++) {
        if (!py_space((unsigned char)*s)) {
            return false;
        }
    }
    return true;
}

static const char *item_type(const json_t *item)
{
    return cgw_json_str(item, "type", NULL);
}

/* The text items joined with "\n" and stripped (mcp_client.py's _extract_text). */
static int joined_text(const json_t *content, cgw_buf_t *out)
{
    size_t i;
    const json_t *item;
    bool first = true;
    json_array_foreach(content, i, item)
    {
        const char *t = item_type(item);
        const char *text = cgw_json_str(item, "text", NULL);
        if (text == NULL || (t != NULL && strcmp(t, "text") != 0) || blank(text)) {
            continue;
        }
        int rc = first ? CGW_OK : cgw_buf_append_char(out, '\n');
        rc = rc != CGW_OK ? rc : cgw_buf_append_str(out, text);
        if (rc != CGW_OK) {
            return rc;
        }
        first = false;
    }
    size_t lead = 0;
    while (lead < out->len && py_space((unsigned char)out->data[lead])) {
        lead++;
    }
    cgw_buf_consume(out, lead);
    while (out->len > 0 && py_space((unsigned char)out->data[out->len - 1])) {
        out->data[--out->len] = '\0';
    }
    return CGW_OK;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay != '\0'; hay++) {
        if (strncasecmp(hay, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

/* _classify_mcp_error of the original. */
static const char *tool_sub_code(const char *m)
{
    if (contains_ci(m, "not found") || contains_ci(m, "no filing") || contains_ci(m, "no data")) {
        return "not_found";
    }
    if (contains_ci(m, "parse") || contains_ci(m, "invalid") || contains_ci(m, "malformed")) {
        return "parse_error";
    }
    if (contains_ci(m, "timeout") || contains_ci(m, "timed out")) {
        return "timeout";
    }
    return "unknown";
}

/* _classify_exception of the original, with our own error codes deciding first. */
static const char *failure_sub_code(int code, const char *m)
{
    switch (code) {
    case CGW_ETIMEDOUT:
        return "timeout";
    case CGW_ESERVERDIED:
    case CGW_ECLOSED:
    case CGW_EPIPE:
    case CGW_ECONNRESET:
    case CGW_ECONNREFUSED:
        return "connection_error";
    default:
        break;
    }
    if (contains_ci(m, "timeout") || contains_ci(m, "timed out")) {
        return "timeout";
    }
    if (contains_ci(m, "connection") || contains_ci(m, "refused")) {
        return "connection_error";
    }
    return "unknown";
}

int cgw__mcp_outcome_error(const char *code, const char *sub_code, const char *message,
                           cgw_mcp_outcome_t *out)
{
    cgw__mcp_outcome_clear(out);
    json_t *e = json_object();
    if (e == NULL || json_object_set_new(e, "code", json_string(code)) != 0 ||
        (sub_code != NULL && json_object_set_new(e, "sub_code", json_string(sub_code)) != 0) ||
        json_object_set_new(e, "message", json_string(message)) != 0) {
        json_decref(e);
        return CGW_ENOMEM;
    }
    out->error = e;
    return CGW_OK;
}

int cgw__mcp_outcome_from_failure(int code, const char *message, cgw_mcp_outcome_t *out)
{
    const char *m = message != NULL ? message : cgw_strerror(code);
    return cgw__mcp_outcome_error("tool_error", failure_sub_code(code, m), m, out);
}

int cgw__mcp_outcome_from_rpc_error(const json_t *rpc_error, cgw_mcp_outcome_t *out)
{
    const json_t *code = json_object_get(rpc_error, "code");
    const char *msg = cgw_json_str(rpc_error, "message", NULL);
    char fallback[64];
    if (msg == NULL || msg[0] == '\0') {
        if (json_is_integer(code)) {
            snprintf(fallback, sizeof(fallback), "JSON-RPC error %" JSON_INTEGER_FORMAT,
                     json_integer_value(code));
        } else {
            snprintf(fallback, sizeof(fallback), "JSON-RPC error");
        }
        msg = fallback;
    }
    int rc = cgw__mcp_outcome_error("tool_error", failure_sub_code(CGW_ERPC, msg), msg, out);
    if (rc != CGW_OK) {
        return rc;
    }
    const json_t *data = json_object_get(rpc_error, "data");
    if ((json_is_integer(code) &&
         json_object_set_new(out->error, "rpc_code", json_integer(json_integer_value(code))) !=
             0) ||
        (data != NULL && json_object_set(out->error, "rpc_data", (json_t *)data) != 0)) {
        cgw__mcp_outcome_clear(out);
        return CGW_ENOMEM;
    }
    return CGW_OK;
}

/* json.dumps(v) with Python's defaults: ", " and ": " separators, ASCII only. jansson's
 * non-compact mode without indentation uses exactly those separators. The string comes from
 * jansson's allocator, which cgw_set_allocator points at ours, so cgw_free releases it. */
static char *python_dumps(const json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    /* Python writes \u00e9 where jansson writes \u00E9. Escapes come in pairs, so an
     * escaped backslash ("\\") is stepped over and never starts a \u sequence. */
    for (char *p = s; p != NULL && *p != '\0'; p++) {
        if (*p != '\\') {
            continue;
        }
        if (*++p == '\0') {
            break;
        }
        for (int i = 1; *p == 'u' && i <= 4 && p[i] != '\0'; i++) {
            p[i] = (char)tolower((unsigned char)p[i]);
        }
    }
    return s;
}

static int map_error(const json_t *r, const char *tool, const cgw_buf_t *text,
                     cgw_mcp_outcome_t *out)
{
    const json_t *sc = json_object_get(r, "structuredContent");
    char *dumped = NULL;
    char fallback[300];
    const char *msg = text->len > 0 ? text->data : NULL;
    if (msg == NULL && sc != NULL && !json_is_null(sc)) {
        if ((dumped = python_dumps(sc)) == NULL) {
            return CGW_ENOMEM;
        }
        msg = dumped;
    }
    int rc;
    if (msg != NULL) {
        rc = cgw__mcp_outcome_error("mcp_tool_error", tool_sub_code(msg), msg, out);
    } else {
        snprintf(fallback, sizeof(fallback), "MCP tool failed: %s", tool != NULL ? tool : "");
        rc = cgw__mcp_outcome_error("mcp_tool_error", "unknown", fallback, out);
    }
    cgw_free(dumped);
    return rc;
}

static int map_success(const json_t *r, const cgw_buf_t *text, cgw_mcp_outcome_t *out)
{
    const json_t *sc = json_object_get(r, "structuredContent");
    if (sc != NULL && !json_is_null(sc)) {
        out->result = json_deep_copy(sc);
    } else if (text->len > 0) {
        json_error_t jerr;
        out->result = json_loadb(text->data, text->len, JSON_DECODE_ANY, &jerr);
        if (out->result == NULL && json_error_code(&jerr) == json_error_out_of_memory) {
            return CGW_ENOMEM; /* not "the text is not JSON" */
        }
        if (out->result == NULL) {
            out->result = json_pack("{s:s}", "text", text->data);
        }
    } else {
        out->result = json_object();
    }
    return out->result != NULL ? CGW_OK : CGW_ENOMEM;
}

int cgw__mcp_outcome_from_result(const json_t *r, const char *tool, cgw_mcp_outcome_t *out)
{
    cgw__mcp_outcome_clear(out);
    if (!json_is_object(r)) {
        return cgw__mcp_outcome_error("tool_error", "unknown", "malformed tools/call result", out);
    }
    const json_t *content = json_object_get(r, "content");
    cgw_buf_t text = CGW_BUF_INIT;
    int rc = json_is_array(content) ? joined_text(content, &text) : CGW_OK;
    if (rc == CGW_OK) {
        rc = json_is_true(json_object_get(r, "isError")) ? map_error(r, tool, &text, out)
                                                         : map_success(r, &text, out);
    }
    cgw_buf_free(&text);
    if (rc == CGW_OK && json_is_array(content)) {
        rc = cgw__mcp_content_blocks(content, &out->content);
    }
    if (rc != CGW_OK) {
        cgw__mcp_outcome_clear(out);
    }
    return rc;
}
