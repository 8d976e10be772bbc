/*
 * Cost of building one Messages API request body for a long conversation:
 *   baseline: the whole request as one jansson tree, dumped compactly (what a naive client
 *             does every turn);
 *   spliced:  cgw_anthropic_build_body, which serializes only the small head and splices
 *             the conversation's stored message bytes.
 * Prints both per-body times and the ratio. Usage: bench_request_body [messages] [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cgw.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A conversation shaped like a tool loop: assistant turns with thinking + tool_use, user turns
 * with tool_result text of a few hundred bytes. */
static json_t *make_message(int i)
{
    char text[600];
    for (size_t k = 0; k < sizeof(text) - 1; k++) {
        text[k] = (char)('a' + (k * 7 + (size_t)i) % 26);
    }
    text[sizeof(text) - 1] = '\0';
    if (i % 2 == 0) {
        return json_pack("{s:s, s:[{s:s, s:s, s:i}]}", "role", "user", "content", "type",
                         "tool_result", "content", text, "index", i);
    }
    return json_pack("{s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s, s:{s:s, s:i}}]}", "role",
                     "assistant", "content", "type", "thinking", "thinking", text, "signature",
                     "EqQBCkYIARgCKkBsignaturebytes+/==", "type", "tool_use", "id", "toolu_01",
                     "name", "search", "input", "q", "term", "n", i);
}

int main(int argc, char **argv)
{
    int nmsg = argc > 1 ? atoi(argv[1]) : 160;
    int iters = argc > 2 ? atoi(argv[2]) : 300;
    cgw_ctx_t *ctx = NULL;
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = CGW_LOG_OFF;
    cgw_anthropic_options_t o;
    cgw_anthropic_options_init(&o);
    o.api_key = "sk-bench-0123456789";
    o.base_url = "http://127.0.0.1:1";
    cgw_anthropic_t *client = NULL;
    cgw_conversation_t *conv = NULL;
    if (cgw_ctx_new(&co, &ctx) != CGW_OK || cgw_anthropic_new(ctx, &o, &client, NULL) != CGW_OK ||
        cgw_conversation_new(&conv) != CGW_OK) {
        return 1;
    }
    json_t *tree = json_pack("{s:s, s:i, s:b, s:{s:s}, s:[], s:[]}", "model", "claude-sonnet-4-6",
                             "max_tokens", 16000, "stream", 1, "thinking", "type", "adaptive",
                             "tools", "messages");
    json_t *msgs = json_object_get(tree, "messages");
    for (int i = 0; i < nmsg; i++) {
        json_t *m = make_message(i);
        cgw_conversation_append(conv, m);
        json_array_append_new(msgs, m);
    }
    cgw_anthropic_request_t req = {.conversation = conv};
    size_t len = 0, tree_len = 0;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        char *s = json_dumps(tree, JSON_COMPACT);
        tree_len = strlen(s);
        free(s);
    }
    double t_tree = (now_s() - t0) / iters;
    t0 = now_s();
    for (int i = 0; i < iters; i++) {
        char *body = NULL;
        cgw_anthropic_build_body(client, &req, &body, &len, NULL);
        cgw_free(body);
    }
    double t_splice = (now_s() - t0) / iters;
    printf("request body, %d messages, %zu bytes (tree dump %zu bytes)\n", nmsg, len, tree_len);
    printf("  baseline json_dumps(tree): %8.1f us/body  %6.0f MB/s\n", t_tree * 1e6,
           (double)tree_len / t_tree / 1e6);
    printf("  spliced build_body:        %8.1f us/body  %6.0f MB/s\n", t_splice * 1e6,
           (double)len / t_splice / 1e6);
    printf("  ratio baseline/spliced:    %8.1fx\n", t_tree / t_splice);
    json_decref(tree);
    cgw_conversation_free(conv);
    cgw_anthropic_free(client);
    cgw_ctx_free(ctx);
    return 0;
}
