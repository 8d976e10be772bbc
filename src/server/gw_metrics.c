/* Gateway metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * Counters are kept in fixed tables on the gateway (no allocation on the hot path); label sets
 * beyond a table's capacity are folded into one "other" row so a client cannot grow memory by
 * inventing label values. Nothing secret is ever a label: statuses, event types, token kinds,
 * MCP server names and tool outcomes only. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <event2/http.h>

#include "core/buf.h"
#include "server/gateway_int.h"
#include "server/http_util.h"

static const double bounds[GW_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,    2.5,   5,    10,  30};

void cgw__gw_count(gw_counter_t *c, const char *a, const char *b, uint64_t by)
{
    if (c->n >= GW_COUNTER_ROWS - 1) {
        /* Full but for the last row, which collects every label set that does not fit. */
        bool known = false;
        for (size_t i = 0; i < c->n && !known; i++) {
            known = strcmp(c->rows[i].a, a) == 0 && strcmp(c->rows[i].b, b) == 0;
        }
        if (!known) {
            a = "other";
            b = "other";
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->rows[i].a, a) == 0 && strcmp(c->rows[i].b, b) == 0) {
            c->rows[i].value += by;
            return;
        }
    }
    gw_counter_row_t *r = &c->rows[c->n++];
    snprintf(r->a, sizeof(r->a), "%s", a);
    snprintf(r->b, sizeof(r->b), "%s", b);
    r->value = by;
}

void cgw__gw_observe(gw_hist_t *h, double seconds)
{
    size_t i = 0;
    while (i < GW_HIST_BUCKETS && seconds > bounds[i]) {
        i++;
    }
    h->counts[i]++;
    h->sum += seconds;
    h->n++;
}

/* A label value with \, " and newline escaped as the format requires. */
static void label(cgw_buf_t *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"') {
            cgw_buf_append_char(b, '\\');
            cgw_buf_append_char(b, *v);
        } else if (*v == '\n') {
            cgw_buf_append_str(b, "\\n");
        } else {
            cgw_buf_append_char(b, *v);
        }
    }
}

static void head(cgw_buf_t *b, const char *name, const char *type, const char *help)
{
    cgw_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(cgw_buf_t *b, const char *name, const char *type, const char *help, uint64_t v)
{
    head(b, name, type, help);
    cgw_buf_appendf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void counter(cgw_buf_t *b, const char *name, const char *help, const gw_counter_t *c,
                    const char *la, const char *lb)
{
    head(b, name, "counter", help);
    for (size_t i = 0; i < c->n; i++) {
        cgw_buf_appendf(b, "%s{%s=\"", name, la);
        label(b, c->rows[i].a);
        if (lb != NULL) {
            cgw_buf_appendf(b, "\",%s=\"", lb);
            label(b, c->rows[i].b);
        }
        cgw_buf_appendf(b, "\"} %llu\n", (unsigned long long)c->rows[i].value);
    }
}

static void histogram(cgw_buf_t *b, const char *name, const char *help, const gw_hist_t *h)
{
    head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < GW_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        cgw_buf_appendf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[GW_HIST_BUCKETS];
    cgw_buf_appendf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                    (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->n);
}

void cgw__gw_metrics_reply(cgw_gateway_t *gw, struct evhttp_request *req)
{
    const gw_metrics_t *m = &gw->metrics;
    cgw_buf_t b = CGW_BUF_INIT;
    counter(&b, "cgw_http_requests_total", "HTTP requests answered, by status.", &m->http_by_status,
            "status", NULL);
    scalar(&b, "cgw_sessions_loaded", "gauge", "Sessions held in memory.", gw->sessions.len);
    scalar(&b, "cgw_sessions_created_total", "counter", "Sessions created.", m->sessions_created);
    scalar(&b, "cgw_runs_active", "gauge", "Runs in progress.", gw->active_runs);
    scalar(&b, "cgw_runs_started_total", "counter", "Runs started.", m->runs_started);
    counter(&b, "cgw_runs_finished_total", "Runs ended, by final status.", &m->runs_by_status,
            "status", NULL);
    scalar(&b, "cgw_events_appended_total", "counter", "Events appended to run logs.", m->events);
    counter(&b, "cgw_events_total", "Events appended, by type.", &m->events_by_type, "type", NULL);
    scalar(&b, "cgw_streams_open", "gauge", "SSE streams open.", gw->n_streams);
    scalar(&b, "cgw_streams_total", "counter", "SSE streams opened.", m->streams_total);
    scalar(&b, "cgw_streams_cut_total", "counter", "SSE streams cut off for reading too slowly.",
           m->streams_cut);
    counter(&b, "cgw_tokens_total", "Model tokens, by kind.", &m->tokens, "kind", NULL);
    counter(&b, "cgw_tool_calls_total",
            "Tool calls, by server (local for local tools) and "
            "outcome.",
            &m->tool_calls, "server", "outcome");
    histogram(&b, "cgw_model_turn_seconds", "Time from a turn's start to its usage report.",
              &m->model_turn_seconds);
    histogram(&b, "cgw_tool_call_seconds", "Tool call durations.", &m->tool_call_seconds);
    if (b.data == NULL) {
        cgw__gw_error(gw, req, 500, "api_error", "out of memory");
        return;
    }
    cgw__gw_count(&gw->metrics.http_by_status, "200", "", 1);
    cgw__http_reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    cgw_buf_free(&b);
}
