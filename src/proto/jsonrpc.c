/* JSON-RPC 2.0 classification and building; see jsonrpc.h. */
#include <ctype.h>
#include <string.h>

#include "core/json.h"
#include "proto/jsonrpc.h"

int cgw__rpc_id_valid(const json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

int cgw__rpc_id_int(const json_t *id, json_int_t *out)
{
    if (!json_is_integer(id)) {
        return 0;
    }
    *out = json_integer_value(id);
    return 1;
}

static int invalid(cgw__rpc_msg_t *out, cgw_error_t *err, const char *why)
{
    out->kind = CGW_RPC_INVALID;
    return cgw_error_set(err, CGW_EPROTO, "invalid JSON-RPC message: %s", why);
}

static int classify_response(json_t *msg, cgw__rpc_msg_t *out, cgw_error_t *err)
{
    json_t *result = json_object_get(msg, "result");
    json_t *error = json_object_get(msg, "error");
    if (result != NULL && error != NULL) {
        return invalid(out, err, "both result and error");
    }
    if (result != NULL) {
        if (!cgw__rpc_id_valid(out->id)) {
            return invalid(out, err, "response id is not a string or integer");
        }
        out->kind = CGW_RPC_RESULT;
        out->result = result;
        return CGW_OK;
    }
    /* An error response may carry id null (the peer could not read our id). */
    if (json_is_null(out->id)) {
        out->id = NULL;
    } else if (!cgw__rpc_id_valid(out->id)) {
        return invalid(out, err, "error id is not a string, integer or null");
    }
    json_t *code = json_object_get(error, "code");
    if (!json_is_object(error) || !json_is_integer(code)) {
        return invalid(out, err, "error object without integer code");
    }
    out->kind = CGW_RPC_ERROR;
    out->err_code = json_integer_value(code);
    out->err_message = cgw_json_str(error, "message", "");
    out->err_data = json_object_get(error, "data");
    return CGW_OK;
}

int cgw__rpc_classify(json_t *msg, cgw__rpc_msg_t *out, cgw_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(msg)) {
        return invalid(out, err,
                       json_is_array(msg) ? "batches are not supported" : "not an object");
    }
    const char *version = cgw_json_str(msg, "jsonrpc", NULL);
    if (version == NULL || strcmp(version, "2.0") != 0) {
        return invalid(out, err, "jsonrpc is not \"2.0\"");
    }
    out->id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    if (method == NULL) {
        if (out->id == NULL) {
            return invalid(out, err, "no method and no id");
        }
        return classify_response(msg, out, err);
    }
    if (!json_is_string(method) || json_string_length(method) == 0) {
        return invalid(out, err, "method is not a non-empty string");
    }
    out->method = json_string_value(method);
    out->params = json_object_get(msg, "params");
    if (out->params != NULL && !json_is_object(out->params) && !json_is_array(out->params)) {
        return invalid(out, err, "params is not an object or array");
    }
    if (out->id == NULL) {
        out->kind = CGW_RPC_NOTIFICATION;
        return CGW_OK;
    }
    if (!cgw__rpc_id_valid(out->id)) {
        return invalid(out, err, "request id is not a string or integer");
    }
    out->kind = CGW_RPC_REQUEST;
    return CGW_OK;
}

/* The writers print the envelope by hand and splice the compact JSON of the payload, so a
 * message costs one serialization of its payload and no temporary json_t. They sit on the
 * path of every tool call, hence no printf. */
static int write_tail(cgw_buf_t *b, const char *key, const json_t *v)
{
    int rc = CGW_OK;
    if (v != NULL) {
        rc = cgw_buf_append(b, ",\"", 2);
        rc = rc == CGW_OK ? cgw_buf_append_str(b, key) : rc;
        rc = rc == CGW_OK ? cgw_buf_append(b, "\":", 2) : rc;
        rc = rc == CGW_OK ? cgw_json_dump_buf(v, b) : rc;
    }
    return rc != CGW_OK ? rc : cgw_buf_append(b, "}\n", 2);
}

/* True when `s` can go between quotes as it is (our method names always can). */
static int plain_string(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || (unsigned char)*s >= 0x80) {
            return 0;
        }
    }
    return 1;
}

int cgw__rpc_append_string(cgw_buf_t *b, const char *s)
{
    if (plain_string(s)) {
        int rc = cgw_buf_append_char(b, '"');
        rc = rc == CGW_OK ? cgw_buf_append_str(b, s) : rc;
        return rc == CGW_OK ? cgw_buf_append_char(b, '"') : rc;
    }
    json_t *m = json_string(s);
    if (m == NULL) {
        return CGW_EINVAL; /* not UTF-8 */
    }
    int rc = cgw_json_dump_buf(m, b);
    json_decref(m);
    return rc;
}

static int write_method(cgw_buf_t *b, const char *method)
{
    int rc = cgw_buf_append_str(b, ",\"method\":");
    return rc == CGW_OK ? cgw__rpc_append_string(b, method) : rc;
}

int cgw__rpc_append_int(cgw_buf_t *b, json_int_t v)
{
    char tmp[24];
    size_t n = sizeof(tmp);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        tmp[--n] = '-';
    }
    return cgw_buf_append(b, tmp + n, sizeof(tmp) - n);
}

int cgw__rpc_write_request(cgw_buf_t *b, json_int_t id, const char *method, const json_t *params)
{
    int rc = cgw_buf_append_str(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    rc = rc == CGW_OK ? cgw__rpc_append_int(b, id) : rc;
    if (rc == CGW_OK) {
        rc = write_method(b, method);
    }
    return rc != CGW_OK ? rc : write_tail(b, "params", params);
}

int cgw__rpc_write_request_head(cgw_buf_t *b, json_int_t id, const char *method)
{
    int rc = cgw_buf_append_str(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    rc = rc == CGW_OK ? cgw__rpc_append_int(b, id) : rc;
    rc = rc == CGW_OK ? write_method(b, method) : rc;
    return rc == CGW_OK ? cgw_buf_append_str(b, ",\"params\":") : rc;
}

int cgw__rpc_write_notification(cgw_buf_t *b, const char *method, const json_t *params)
{
    int rc = cgw_buf_append_str(b, "{\"jsonrpc\":\"2.0\"");
    if (rc == CGW_OK) {
        rc = write_method(b, method);
    }
    return rc != CGW_OK ? rc : write_tail(b, "params", params);
}

static int write_id(cgw_buf_t *b, const json_t *id)
{
    int rc = cgw_buf_append_str(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    if (rc != CGW_OK) {
        return rc;
    }
    if (id == NULL) {
        return cgw_buf_append_str(b, "null");
    }
    return cgw_json_dump_buf(id, b);
}

int cgw__rpc_write_result(cgw_buf_t *b, const json_t *id, const json_t *result)
{
    int rc = write_id(b, id);
    if (rc != CGW_OK) {
        return rc;
    }
    json_t *empty = NULL;
    if (result == NULL) {
        empty = json_object();
        result = empty;
    }
    rc = write_tail(b, "result", result);
    json_decref(empty);
    return rc;
}

int cgw__rpc_write_error(cgw_buf_t *b, const json_t *id, json_int_t code, const char *message)
{
    int rc = write_id(b, id);
    json_t *error =
        json_pack("{s:I,s:s}", "code", (json_int_t)code, "message", message != NULL ? message : "");
    if (error == NULL) {
        return CGW_ENOMEM;
    }
    if (rc == CGW_OK) {
        rc = write_tail(b, "error", error);
    }
    json_decref(error);
    return rc;
}

/* ---- id sniffing for oversize lines ------------------------------------------------------ */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && isspace((unsigned char)*p)) {
        p++;
    }
    return p;
}

static const char *match(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    p = skip_ws(p, end);
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0) {
        return NULL;
    }
    return p + n;
}

/* Parses an optionally negative decimal integer; returns the end or NULL. */
static const char *parse_int(const char *p, const char *end, json_int_t *out)
{
    p = skip_ws(p, end);
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    const char *start = p;
    json_int_t v = 0;
    while (p < end && isdigit((unsigned char)*p) && p - start < 18) {
        v = v * 10 + (*p - '0');
        p++;
    }
    if (p == start || (p < end && isdigit((unsigned char)*p))) {
        return NULL;
    }
    *out = neg ? -v : v;
    return p;
}

static int sniff_head(const char *p, const char *end, json_int_t *out)
{
    p = match(p, end, "{");
    if (p == NULL) {
        return 0;
    }
    const char *after_version = match(p, end, "\"jsonrpc\"");
    if (after_version != NULL) {
        p = match(after_version, end, ":");
        p = p != NULL ? match(p, end, "\"2.0\"") : NULL;
        p = p != NULL ? match(p, end, ",") : NULL;
        if (p == NULL) {
            return 0;
        }
    }
    p = match(p, end, "\"id\"");
    p = p != NULL ? match(p, end, ":") : NULL;
    p = p != NULL ? parse_int(p, end, out) : NULL;
    return p != NULL && (p = match(p, end, ",")) != NULL;
}

static int sniff_tail(const char *s, const char *end, json_int_t *out)
{
    const char *last = NULL;
    for (const char *p = s; p + 4 <= end; p++) {
        if (memcmp(p, "\"id\"", 4) == 0) {
            last = p;
        }
    }
    if (last == NULL || last == s || (last[-1] != ',' && !isspace((unsigned char)last[-1]))) {
        return 0;
    }
    const char *p = match(last + 4, end, ":");
    p = p != NULL ? parse_int(p, end, out) : NULL;
    p = p != NULL ? match(p, end, "}") : NULL;
    return p != NULL && skip_ws(p, end) == end;
}

int cgw__rpc_sniff_id(const char *head, size_t head_len, const char *tail, size_t tail_len,
                      json_int_t *out)
{
    if (head != NULL && sniff_head(head, head + head_len, out)) {
        return 1;
    }
    if (tail != NULL && tail_len > 0 && sniff_tail(tail, tail + tail_len, out)) {
        return 1;
    }
    /* A short oversize line (tiny cap) fits entirely in head. */
    return head != NULL && tail_len == 0 && sniff_tail(head, head + head_len, out);
}
