/*
 * Messages API stream parsing cost: SSE framing + JSON decoding + accumulation, per event.
 *
 *   1. text: N content_block_delta events carrying 150-byte text_delta payloads, fed through
 *      cgw_sse_parser_t -> cgw_msg_accum_t in 16 KiB reads (as from a socket), with an
 *      increment callback attached as the agent loop would. Reported: ns per delta. Baseline
 *      in the same run: a bare json_loadb + json_decref of each delta's data payload, i.e. the
 *      least any JSON-decoding client must pay; the ratio says what framing and accumulation
 *      add on top of that.
 *   2. tool input: input_json_delta fragments (48 bytes of JSON each) building one ~1 MiB
 *      tool input, parsed at content_block_stop. Reported: MB/s of input JSON and of wire
 *      bytes; baseline: the same bare json_loadb per event plus one json_loadb of the final
 *      1 MiB input.
 *
 *   1b. the same deltas with their fields in another order, which the fast path declines: the
 *      cost of the general path, i.e. of any event shape the API does not usually send.
 *
 * Usage: bench_msg_accum [text_deltas] [repeats]   (defaults 200000 and 5; best run kept)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "proto/msg_accum.h"
#include "proto/sse_parser.h"

#define READ_SIZE 16384

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_msg_accum: %s failed: %s\n", what, cgw_strerror(rc));
    exit(1);
}

static const char MSG_START[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\","
    "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],"
    "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
    "\"output_tokens\":1}}}\n\n";
static const char MSG_END[] =
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":999}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/* Builds the stream; `payloads` receives each delta's data line (for the baseline). With
 * `reordered`, "index" comes after "delta": valid, but not the API's exact shape, so every
 * delta takes the general jansson path instead of the fast one. */
static void build_text_stream(size_t n, bool reordered, cgw_buf_t *sse, cgw_buf_t *payloads,
                              size_t *plen)
{
    /* 150 bytes of text with an escaped newline and quote, like real model output */
    static const char text[] = "The quick brown fox jumps over the lazy dog, then \\\"rests\\\" "
                               "by the river bank.\\nIt watches the water flow past the old "
                               "mill until the sun set.";
    cgw_buf_append_str(sse, MSG_START);
    cgw_buf_append_str(sse, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                            "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for (size_t i = 0; i < n; i++) {
        size_t before = payloads->len;
        if (reordered) {
            cgw_buf_appendf(payloads,
                            "{\"type\":\"content_block_delta\",\"delta\":{\"type\":"
                            "\"text_delta\",\"text\":\"%s\"},\"index\":0}",
                            text);
        } else {
            cgw_buf_appendf(payloads,
                            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                            "{\"type\":\"text_delta\",\"text\":\"%s\"}}",
                            text);
        }
        *plen = payloads->len - before;
        cgw_buf_append_str(sse, "event: content_block_delta\ndata: ");
        cgw_buf_append(sse, payloads->data + before, *plen);
        cgw_buf_append_str(sse, "\n\n");
    }
    cgw_buf_append_str(sse, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                            "\"index\":0}\n\n");
    cgw_buf_append_str(sse, MSG_END);
}

static int on_increment(void *user, const cgw_msg_ev_t *ev, cgw_error_t *err)
{
    (void)err;
    *(size_t *)user += ev->text.len; /* what a forwarder would touch */
    return CGW_OK;
}

/* One full run of parser + accumulator over `sse`; returns seconds. */
static double run_stream(const cgw_buf_t *sse, size_t *forwarded)
{
    cgw_msg_accum_options_t ao;
    cgw_msg_accum_options_init(&ao);
    ao.on_event = on_increment;
    ao.user = forwarded;
    cgw_msg_accum_t *a;
    cgw_sse_parser_t *p;
    cgw_sse_parser_options_t po;
    cgw_sse_parser_options_init(&po);
    po.on_event = cgw_msg_accum_sse_cb;
    int rc = cgw_msg_accum_new(&ao, &a);
    po.user = a;
    if (rc != CGW_OK || (rc = cgw_sse_parser_new(&po, &p)) != CGW_OK) {
        die("setup", rc);
    }
    cgw_error_t e;
    double t0 = now_s();
    for (size_t at = 0; at < sse->len; at += READ_SIZE) {
        size_t n = sse->len - at < READ_SIZE ? sse->len - at : READ_SIZE;
        if ((rc = cgw_sse_parser_feed(p, sse->data + at, n, &e)) != CGW_OK) {
            fprintf(stderr, "%s\n", e.message);
            die("feed", rc);
        }
    }
    if ((rc = cgw_sse_parser_finish(p, &e)) != CGW_OK || (rc = cgw_msg_accum_finish(a, &e))) {
        die("finish", rc);
    }
    (void)cgw_msg_accum_message(a); /* builds the final strings */
    double t = now_s() - t0;
    cgw_sse_parser_free(p);
    cgw_msg_accum_free(a);
    return t;
}

/* Baseline: decode each payload with jansson and drop it. */
static double run_bare(const cgw_buf_t *payloads, size_t n, size_t plen)
{
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_loadb(payloads->data + i * plen, plen, 0, NULL);
        if (v == NULL) {
            die("baseline json_loadb", CGW_EJSON);
        }
        json_decref(v);
    }
    return now_s() - t0;
}

static void bench_text(size_t n, int repeats, bool reordered)
{
    cgw_buf_t sse = CGW_BUF_INIT, payloads = CGW_BUF_INIT;
    size_t plen = 0, forwarded = 0;
    build_text_stream(n, reordered, &sse, &payloads, &plen);
    double best = 1e9, base = 1e9;
    for (int r = 0; r < repeats; r++) {
        double t = run_stream(&sse, &forwarded);
        best = t < best ? t : best;
        t = run_bare(&payloads, n, plen);
        base = t < base ? t : base;
    }
    printf("text deltas%s: %zu events of %zu bytes (150 B of text), %.1f MB of SSE\n",
           reordered ? " (fields reordered: general path)" : " (API shape: fast path)", n, plen,
           (double)sse.len / 1e6);
    printf("  parse+decode+accumulate: %.3f us/delta  (%.1f MB/s of SSE)\n", best * 1e6 / (double)n,
           (double)sse.len / best / 1e6);
    printf("  baseline bare json_loadb: %.3f us/delta\n", base * 1e6 / (double)n);
    printf("  ratio: %.2fx the bare decode\n", best / base);
    cgw_buf_free(&sse);
    cgw_buf_free(&payloads);
}

static void build_tool_stream(size_t target, cgw_buf_t *sse, cgw_buf_t *payloads, size_t *nevents,
                              size_t *input_len, cgw_buf_t *input)
{
    /* a JSON object whose "content" string grows to ~target bytes, cut in 48-byte fragments */
    cgw_buf_append_str(input, "{\"path\": \"/tmp/big.txt\", \"content\": \"");
    while (input->len < target) {
        cgw_buf_append_str(input, "line of generated file content, with \\\"quotes\\\"\\n");
    }
    cgw_buf_append_str(input, "\"}");
    *input_len = input->len;
    cgw_buf_append_str(sse, MSG_START);
    cgw_buf_append_str(sse,
                       "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                       "\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_b\","
                       "\"name\":\"write_file\",\"input\":{}}}\n\n");
    json_t *frag_holder = json_object();
    for (size_t at = 0; at < input->len; at += 48) {
        size_t n = input->len - at < 48 ? input->len - at : 48;
        /* the fragment must be JSON-escaped inside partial_json */
        json_object_set_new(frag_holder, "partial_json", json_stringn(input->data + at, n));
        char *esc = json_dumps(json_object_get(frag_holder, "partial_json"), JSON_ENCODE_ANY);
        size_t before = payloads->len;
        cgw_buf_appendf(payloads,
                        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                        "{\"type\":\"input_json_delta\",\"partial_json\":%s}}",
                        esc);
        cgw_buf_append_char(payloads, '\0'); /* separator for the baseline */
        free(esc);
        cgw_buf_append_str(sse, "event: content_block_delta\ndata: ");
        cgw_buf_append(sse, payloads->data + before, payloads->len - before - 1);
        cgw_buf_append_str(sse, "\n\n");
        (*nevents)++;
    }
    json_decref(frag_holder);
    cgw_buf_append_str(sse, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                            "\"index\":0}\n\n");
    cgw_buf_append_str(sse, MSG_END);
}

static double run_bare_tool(const cgw_buf_t *payloads, const cgw_buf_t *input)
{
    double t0 = now_s();
    for (const char *s = payloads->data, *end = s + payloads->len; s < end;) {
        size_t n = strlen(s);
        json_t *v = json_loadb(s, n, 0, NULL);
        if (v == NULL) {
            die("baseline json_loadb", CGW_EJSON);
        }
        json_decref(v);
        s += n + 1;
    }
    json_t *v = json_loadb(input->data, input->len, 0, NULL);
    if (v == NULL) {
        die("baseline input json_loadb", CGW_EJSON);
    }
    json_decref(v);
    return now_s() - t0;
}

static void bench_tool(int repeats)
{
    cgw_buf_t sse = CGW_BUF_INIT, payloads = CGW_BUF_INIT, input = CGW_BUF_INIT;
    size_t nevents = 0, input_len = 0, forwarded = 0;
    build_tool_stream((size_t)1 << 20, &sse, &payloads, &nevents, &input_len, &input);
    double best = 1e9, base = 1e9;
    for (int r = 0; r < repeats; r++) {
        double t = run_stream(&sse, &forwarded);
        best = t < best ? t : best;
        t = run_bare_tool(&payloads, &input);
        base = t < base ? t : base;
    }
    printf("tool input: %.2f MB of input JSON in %zu input_json_delta events (%.1f MB of SSE)\n",
           (double)input_len / 1e6, nevents, (double)sse.len / 1e6);
    printf("  parse+decode+accumulate+final parse: %.1f MB/s of input, %.1f MB/s of SSE, "
           "%.3f us/delta\n",
           (double)input_len / best / 1e6, (double)sse.len / best / 1e6,
           best * 1e6 / (double)nevents);
    printf("  baseline bare json_loadb (events + final input): %.1f MB/s of input\n",
           (double)input_len / base / 1e6);
    printf("  ratio: %.2fx the bare decode\n", best / base);
    cgw_buf_free(&sse);
    cgw_buf_free(&payloads);
    cgw_buf_free(&input);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    int repeats = argc > 2 ? atoi(argv[2]) : 5;
    if (n == 0 || repeats <= 0) {
        fprintf(stderr, "usage: bench_msg_accum [text_deltas] [repeats]\n");
        return 2;
    }
    bench_text(n, repeats, false);
    bench_text(n, repeats, true);
    bench_tool(repeats);
    return 0;
}
