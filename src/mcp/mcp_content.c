/* MCP content items -> Anthropic tool_result content blocks, for everything that is not
 * plain text (rules in mcp_result.h, user-facing description in docs/mcp.md).
 *
 * The Messages API rejects a whole request over one bad block (an image type it does not
 * take, invalid base64), so anything we cannot pass on safely becomes a short text block
 * that tells the model what was there instead of being sent raw or dropped silently. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "mcp/mcp_result.h"

static json_t *text_block(const char *fmt, ...) CGW_PRINTF(1, 2);

static json_t *text_block(const char *fmt, ...)
{
    cgw_buf_t b = CGW_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int rc = cgw_buf_appendv(&b, fmt, ap);
    va_end(ap);
    json_t *block = rc == CGW_OK ? json_pack("{s:s, s:s}", "type", "text", "text", b.data) : NULL;
    cgw_buf_free(&b);
    return block;
}

static bool for_assistant(const json_t *item)
{
    const json_t *aud = json_object_get(json_object_get(item, "annotations"), "audience");
    if (!json_is_array(aud)) {
        return true;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), "assistant") == 0) {
            return true;
        }
    }
    return false;
}

static bool api_image_type(const char *mime)
{
    static const char *const ok[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};
    for (size_t i = 0; mime != NULL && i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (strcmp(mime, ok[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Standard padded base64, as the API requires. *bytes gets the decoded size. */
static bool base64_ok(const char *s, size_t *bytes)
{
    size_t len = strlen(s), pad = 0;
    if (len == 0 || len % 4 != 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (c == '=' && i >= len - 2) {
            pad++;
        } else if (pad > 0 || !(alnum || c == '+' || c == '/')) {
            return false;
        }
    }
    *bytes = len / 4 * 3 - pad;
    return true;
}

static json_t *image_block(const char *mime, const char *data)
{
    return json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "image", "source", "type", "base64",
                     "media_type", mime, "data", data);
}

/* An "image" item, or a blob resource with an image type (`what` says which, for the
 * message). */
static json_t *from_image(const char *what, const char *mime, const char *data)
{
    size_t bytes = 0;
    if (data == NULL || !base64_ok(data, &bytes)) {
        return text_block("[%s omitted: its data is not valid base64]", what);
    }
    if (!api_image_type(mime)) {
        return text_block("[%s omitted: type %s (%zu bytes) cannot be shown to the model]", what,
                          mime != NULL ? mime : "unknown", bytes);
    }
    return image_block(mime, data);
}

static json_t *from_audio(const json_t *item)
{
    const char *mime = cgw_json_str(item, "mimeType", "audio");
    const char *data = cgw_json_str(item, "data", NULL);
    size_t bytes = 0;
    if (data == NULL || !base64_ok(data, &bytes)) {
        return text_block("[audio %s omitted: its data is not valid base64]", mime);
    }
    return text_block("[audio %s, %zu bytes, not shown: the model cannot take audio]", mime, bytes);
}

/* Types whose blob is really text (server-everything sends text/plain blobs). */
static bool text_mime(const char *mime)
{
    static const char *const exact[] = {"application/json",       "application/xml",
                                        "application/javascript", "application/yaml",
                                        "application/x-yaml",     "application/toml"};
    if (mime == NULL) {
        return false;
    }
    if (strncmp(mime, "text/", 5) == 0) {
        return true;
    }
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        if (strcmp(mime, exact[i]) == 0) {
            return true;
        }
    }
    size_t n = strlen(mime);
    return n > 5 && (strcmp(mime + n - 5, "+json") == 0 || strcmp(mime + n - 4, "+xml") == 0);
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : 0; /* '=' padding decodes as 0 and is cut */
}

/* Decodes base64 that base64_ok() accepted into `bytes` bytes (+ NUL). NULL = no memory. */
static char *b64_decode(const char *s, size_t bytes)
{
    char *out = cgw__malloc(bytes + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0'; i += 4) {
        uint32_t v = (uint32_t)b64_value(s[i]) << 18 | (uint32_t)b64_value(s[i + 1]) << 12 |
                     (uint32_t)b64_value(s[i + 2]) << 6 | (uint32_t)b64_value(s[i + 3]);
        for (int k = 2; k >= 0 && o < bytes; k--) {
            out[o++] = (char)(v >> (8 * k) & 0xff);
        }
    }
    out[bytes] = '\0';
    return out;
}

/* Well-formed UTF-8 without NUL (what a text document block can carry). */
static bool utf8_text(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (c == 0 || len == 0 || i + len > n) {
            return false;
        }
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates and values past U+10FFFF */
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return false;
        }
        i += len;
    }
    return true;
}

static json_t *text_document(const char *uri, const char *text, size_t len)
{
    if (len == 0) {
        return text_block("[resource %s: empty]", uri);
    }
    return json_pack("{s:s, s:{s:s, s:s, s:s%}, s:s}", "type", "document", "source", "type", "text",
                     "media_type", "text/plain", "data", text, len, "title", uri);
}

static json_t *from_blob(const char *uri, const char *mime, const char *blob)
{
    size_t bytes = 0;
    if (!base64_ok(blob, &bytes)) {
        return text_block("[resource %s omitted: its blob is not valid base64]", uri);
    }
    if (mime != NULL && strcmp(mime, "application/pdf") == 0) {
        return json_pack("{s:s, s:{s:s, s:s, s:s}, s:s}", "type", "document", "source", "type",
                         "base64", "media_type", mime, "data", blob, "title", uri);
    }
    if (mime != NULL && strncmp(mime, "image/", 6) == 0) {
        char what[512];
        snprintf(what, sizeof(what), "resource %s", uri);
        return from_image(what, mime, blob);
    }
    if (text_mime(mime)) {
        char *text = b64_decode(blob, bytes);
        if (text == NULL) {
            return NULL;
        }
        json_t *doc = utf8_text((const unsigned char *)text, bytes)
                          ? text_document(uri, text, bytes)
                          : text_block("[resource %s (%s, %zu bytes) omitted: it is not valid "
                                       "UTF-8 text]",
                                       uri, mime, bytes);
        cgw_free(text);
        return doc;
    }
    return text_block("[resource %s (%s, %zu bytes) omitted: binary content of this type "
                      "cannot be shown to the model]",
                      uri, mime != NULL ? mime : "unknown type", bytes);
}

static json_t *from_resource(const json_t *item)
{
    const json_t *res = json_object_get(item, "resource");
    const char *uri = cgw_json_str(res, "uri", "(no uri)");
    const char *text = cgw_json_str(res, "text", NULL);
    const char *blob = cgw_json_str(res, "blob", NULL);
    if (text != NULL) {
        return text_document(uri, text, strlen(text));
    }
    if (blob != NULL) {
        return from_blob(uri, cgw_json_str(res, "mimeType", NULL), blob);
    }
    return text_block("[resource %s omitted: it has neither text nor blob]", uri);
}

static json_t *from_link(const json_t *item)
{
    const char *uri = cgw_json_str(item, "uri", "(no uri)");
    const char *name = cgw_json_str(item, "name", uri);
    const char *mime = cgw_json_str(item, "mimeType", NULL);
    const char *desc = cgw_json_str(item, "description", NULL);
    return text_block("[resource link] %s: %s%s%s%s%s%s", name, uri, mime ? " (" : "",
                      mime ? mime : "", mime ? ")" : "", desc ? " - " : "", desc ? desc : "");
}

/* The block for one item; *none is set when the item needs no block. NULL = out of memory. */
static json_t *convert(const json_t *item, bool *none)
{
    const char *type = cgw_json_str(item, "type", NULL);
    *none = false;
    if (type == NULL && json_is_string(json_object_get(item, "text"))) {
        type = "text";
    }
    if ((type != NULL && strcmp(type, "text") == 0) || !for_assistant(item)) {
        *none = true; /* text already went into the result, or not meant for the model */
        return NULL;
    }
    if (type == NULL) {
        return text_block("[unsupported MCP content item without a type]");
    }
    if (strcmp(type, "image") == 0) {
        return from_image("image", cgw_json_str(item, "mimeType", NULL),
                          cgw_json_str(item, "data", NULL));
    }
    if (strcmp(type, "audio") == 0) {
        return from_audio(item);
    }
    if (strcmp(type, "resource") == 0) {
        return from_resource(item);
    }
    if (strcmp(type, "resource_link") == 0) {
        return from_link(item);
    }
    return text_block("[unsupported MCP content type '%s']", type);
}

int cgw__mcp_content_blocks(const json_t *content, json_t **blocks)
{
    *blocks = NULL;
    json_t *arr = NULL;
    size_t i;
    const json_t *item;
    json_array_foreach(content, i, item)
    {
        bool none = false;
        json_t *b = convert(item, &none);
        if (none) {
            continue;
        }
        if (b != NULL && arr == NULL && (arr = json_array()) == NULL) {
            json_decref(b);
            b = NULL;
        }
        /* json_array_append_new releases `b` even when it fails. */
        if (b == NULL || json_array_append_new(arr, b) != 0) {
            json_decref(arr);
            return CGW_ENOMEM;
        }
    }
    *blocks = arr;
    return CGW_OK;
}
