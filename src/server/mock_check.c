/* Request checks of mock-api.
 *
 * The API merges consecutive messages of the same role before checking them, so positions in
 * its messages refer to the merged list: in the recorded 400 of the fixtures (a user text
 * message followed by a user tool_result message) the culprit is "messages.0.content.1". We do
 * the same. Field errors use the API's "<path>: <problem>" wording; the tool_use/tool_result
 * messages are the API's, as recorded in the fixtures and reported in public issues. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "server/mock_check.h"

static int reject(cgw__mock_reject_t *rej, const char *fmt, ...) CGW_PRINTF(2, 3);

static int reject(cgw__mock_reject_t *rej, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rej->status = 400;
    rej->type = "invalid_request_error";
    vsnprintf(rej->message, sizeof(rej->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int check_fields(const json_t *b, cgw__mock_reject_t *rej)
{
    const json_t *model = json_object_get(b, "model");
    const json_t *max = json_object_get(b, "max_tokens");
    const json_t *msgs = json_object_get(b, "messages");
    const json_t *stream = json_object_get(b, "stream");
    if (model == NULL) {
        return reject(rej, "model: Field required");
    }
    if (!json_is_string(model)) {
        return reject(rej, "model: Input should be a valid string");
    }
    if (max == NULL) {
        return reject(rej, "max_tokens: Field required");
    }
    if (!json_is_integer(max)) {
        return reject(rej, "max_tokens: Input should be a valid integer");
    }
    if (json_integer_value(max) < 1) {
        return reject(rej, "max_tokens: Input should be greater than or equal to 1");
    }
    if (msgs == NULL) {
        return reject(rej, "messages: Field required");
    }
    if (!json_is_array(msgs)) {
        return reject(rej, "messages: Input should be a valid list");
    }
    if (json_array_size(msgs) == 0) {
        return reject(rej, "messages: at least one message is required");
    }
    if (stream != NULL && !json_is_boolean(stream)) {
        return reject(rej, "stream: Input should be a valid boolean");
    }
    return 0;
}

static int check_message(const json_t *m, size_t i, cgw__mock_reject_t *rej)
{
    const char *role = cgw_json_str(m, "role", NULL);
    const json_t *content = json_object_get(m, "content");
    if (!json_is_object(m)) {
        return reject(rej, "messages.%zu: Input should be a valid dictionary", i);
    }
    if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
        return reject(rej, "messages.%zu.role: Input should be 'user' or 'assistant'", i);
    }
    if (content == NULL) {
        return reject(rej, "messages.%zu.content: Field required", i);
    }
    if (!json_is_string(content) && !json_is_array(content)) {
        return reject(rej, "messages.%zu.content: Input should be a valid list", i);
    }
    size_t j;
    const json_t *blk;
    json_array_foreach(content, j, blk)
    {
        if (cgw_json_str(blk, "type", NULL) == NULL) {
            return reject(rej, "messages.%zu.content.%zu.type: Field required", i, j);
        }
    }
    return 0;
}

/* The messages with consecutive same-role ones merged: [{role, content:[blocks]}]. */
static json_t *merge_roles(const json_t *msgs)
{
    json_t *merged = json_array();
    json_t *cur = NULL;
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = cgw_json_str(m, "role", "");
        if (cur == NULL || strcmp(cgw_json_str(cur, "role", ""), role) != 0) {
            cur = json_pack("{s:s,s:[]}", "role", role, "content");
            json_array_append_new(merged, cur);
        }
        json_t *blocks = json_object_get(cur, "content");
        const json_t *content = json_object_get(m, "content");
        if (json_is_string(content)) {
            json_array_append_new(blocks, json_pack("{s:s,s:O}", "type", "text", "text", content));
        } else {
            json_array_extend(blocks, (json_t *)content);
        }
    }
    return merged;
}

/* Whether `msg` holds a block of type `type` whose `key` equals `id`. */
static bool has_block(const json_t *msg, const char *type, const char *key, const char *id)
{
    size_t j;
    const json_t *blk;
    json_array_foreach(json_object_get(msg, "content"), j, blk)
    {
        if (strcmp(cgw_json_str(blk, "type", ""), type) == 0 &&
            strcmp(cgw_json_str(blk, key, ""), id) == 0) {
            return true;
        }
    }
    return false;
}

/* An assistant message's tool_use blocks must all be answered in the next message (a last
 * assistant message is a prefill and needs no answer yet). */
static int check_answered(const json_t *merged, size_t k, cgw__mock_reject_t *rej)
{
    const json_t *next = json_array_get(merged, k + 1);
    if (next == NULL) {
        return 0;
    }
    cgw_buf_t missing = CGW_BUF_INIT;
    size_t j;
    const json_t *blk;
    json_array_foreach(json_object_get(json_array_get(merged, k), "content"), j, blk)
    {
        const char *id = cgw_json_str(blk, "id", "");
        if (strcmp(cgw_json_str(blk, "type", ""), "tool_use") == 0 &&
            !has_block(next, "tool_result", "tool_use_id", id)) {
            cgw_buf_appendf(&missing, "%s%s", missing.len > 0 ? ", " : "", id);
        }
    }
    int rc = 0;
    if (missing.len > 0) {
        rc = reject(rej,
                    "messages.%zu: `tool_use` ids were found without `tool_result` blocks "
                    "immediately after: %s. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message.",
                    k, missing.data);
    }
    cgw_buf_free(&missing);
    return rc;
}

static int check_tool_results(const json_t *merged, size_t k, cgw__mock_reject_t *rej)
{
    const json_t *prev = k > 0 ? json_array_get(merged, k - 1) : NULL;
    size_t j;
    const json_t *blk;
    json_array_foreach(json_object_get(json_array_get(merged, k), "content"), j, blk)
    {
        if (strcmp(cgw_json_str(blk, "type", ""), "tool_result") != 0) {
            continue;
        }
        const char *id = cgw_json_str(blk, "tool_use_id", "");
        if (prev == NULL || !has_block(prev, "tool_use", "id", id)) {
            return reject(rej,
                          "messages.%zu.content.%zu: unexpected `tool_use_id` found in "
                          "`tool_result` blocks: %s. Each `tool_result` block must have a "
                          "corresponding `tool_use` block in the previous message.",
                          k, j, id);
        }
    }
    return 0;
}

static int check_thinking(const json_t *msg, size_t k, const json_t *issued,
                          cgw__mock_reject_t *rej)
{
    size_t j;
    const json_t *blk;
    json_array_foreach(json_object_get(msg, "content"), j, blk)
    {
        const char *type = cgw_json_str(blk, "type", "");
        if (strcmp(type, "thinking") == 0) {
            const json_t *want = json_object_get(issued, cgw_json_str(blk, "signature", ""));
            const json_t *got = json_object_get(blk, "thinking");
            if (want == NULL || !json_equal(want, got)) {
                return reject(rej,
                              "messages.%zu.content.%zu: Invalid `signature` in `thinking` "
                              "block",
                              k, j);
            }
        } else if (strcmp(type, "redacted_thinking") == 0) {
            cgw_buf_t key = CGW_BUF_INIT;
            bool ok =
                cgw_buf_appendf(&key, "redacted:%s", cgw_json_str(blk, "data", "")) == CGW_OK &&
                json_object_get(issued, key.data) != NULL;
            cgw_buf_free(&key);
            if (!ok) {
                return reject(rej,
                              "messages.%zu.content.%zu: Invalid `data` in "
                              "`redacted_thinking` block",
                              k, j);
            }
        }
    }
    return 0;
}

static int check_conversation(const json_t *msgs, const json_t *issued, cgw__mock_reject_t *rej)
{
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        if (check_message(json_array_get(msgs, i), i, rej) != 0) {
            return -1;
        }
    }
    json_t *merged = merge_roles(msgs);
    int rc = merged != NULL ? 0 : reject(rej, "out of memory");
    for (size_t k = 0; rc == 0 && k < json_array_size(merged); k++) {
        const json_t *m = json_array_get(merged, k);
        if (strcmp(cgw_json_str(m, "role", ""), "user") == 0) {
            rc = check_tool_results(merged, k, rej);
        } else {
            rc = check_thinking(m, k, issued, rej);
            rc = rc == 0 ? check_answered(merged, k, rej) : rc;
        }
    }
    json_decref(merged);
    return rc;
}

/* Whether the comma-separated header `betas` holds exactly the token `flag`. */
static bool has_beta(const char *betas, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = betas; p != NULL && *p != '\0';) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (len == n && strncmp(p, flag, n) == 0) {
            return true;
        }
        p += strcspn(p, ",");
    }
    return false;
}

static int check_thinking_config(const json_t *b, const char *betas, cgw__mock_reject_t *rej)
{
    const json_t *th = json_object_get(b, "thinking");
    const char *type = cgw_json_str(th, "type", NULL);
    if (th == NULL) {
        return 0;
    }
    if (type == NULL || (strcmp(type, "enabled") != 0 && strcmp(type, "disabled") != 0 &&
                         strcmp(type, "adaptive") != 0)) {
        return reject(rej, "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'");
    }
    if (strcmp(type, "enabled") != 0) {
        return 0;
    }
    const json_t *budget = json_object_get(th, "budget_tokens");
    if (budget == NULL) {
        return reject(rej, "thinking.enabled.budget_tokens: Field required");
    }
    if (!json_is_integer(budget)) {
        return reject(rej, "thinking.enabled.budget_tokens: Input should be a valid integer");
    }
    if (json_integer_value(budget) < 1024) {
        return reject(rej, "thinking.enabled.budget_tokens: Input should be greater than or "
                           "equal to 1024");
    }
    /* With interleaved thinking the budget may exceed max_tokens (anthropic-protocol.md §2.5). */
    if (json_integer_value(budget) >= cgw_json_int(b, "max_tokens", 0) &&
        !has_beta(betas, "interleaved-thinking-2025-05-14")) {
        return reject(rej, "`max_tokens` must be greater than `thinking.budget_tokens`. Please "
                           "consult our documentation at https://docs.claude.com/en/docs/"
                           "build-with-claude/extended-thinking#max-tokens-and-context-window-"
                           "size");
    }
    return 0;
}

int cgw__mock_check_body(const char *body, size_t len, const json_t *issued, const char *betas,
                         json_t **parsed, cgw__mock_reject_t *rej)
{
    json_error_t jerr;
    *parsed = NULL;
    json_t *b = json_loadb(body != NULL ? body : "", len, 0, &jerr);
    if (b == NULL) {
        return reject(rej, "The request body is not valid JSON: %s: line %d column %d (char %d)",
                      jerr.text, jerr.line, jerr.column, jerr.position);
    }
    int rc = json_is_object(b) ? check_fields(b, rej)
                               : reject(rej, "The request body is not valid JSON: expected an "
                                             "object: line 1 column 1 (char 0)");
    rc = rc == 0 ? check_thinking_config(b, betas, rej) : rc;
    if (rc == 0) {
        rc = check_conversation(json_object_get(b, "messages"), issued, rej);
    }
    if (rc != 0) {
        json_decref(b);
        return -1;
    }
    *parsed = b;
    return 0;
}

static void append_text_of(cgw_buf_t *out, const json_t *content)
{
    if (json_is_string(content)) {
        cgw_buf_append(out, json_string_value(content), json_string_length(content));
        cgw_buf_append_char(out, '\n');
        return;
    }
    size_t j;
    const json_t *blk;
    json_array_foreach(content, j, blk)
    {
        const char *type = cgw_json_str(blk, "type", "");
        if (strcmp(type, "text") == 0) {
            append_text_of(out, json_object_get(blk, "text"));
        } else if (strcmp(type, "tool_result") == 0) {
            append_text_of(out, json_object_get(blk, "content"));
        }
    }
}

char *cgw__mock_last_user_text(const json_t *body)
{
    const json_t *msgs = json_object_get(body, "messages");
    cgw_buf_t out = CGW_BUF_INIT;
    for (size_t i = json_array_size(msgs); i > 0; i--) {
        const json_t *m = json_array_get(msgs, i - 1);
        if (strcmp(cgw_json_str(m, "role", ""), "user") == 0) {
            append_text_of(&out, json_object_get(m, "content"));
            break;
        }
    }
    return cgw_buf_steal(&out, NULL);
}
