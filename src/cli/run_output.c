/* What `claude-gateway run` writes for each EventLog entry.
 *
 * jsonl: the entry's stored JSON bytes as they are (never re-serialized), one line each, with
 * "session" spliced in front when several sessions share stdout. text: the stream for a person
 * (text as it arrives, thinking dimmed on a terminal, one line per tool call and result, a last
 * line with turns, tokens and cost). Every entry is flushed at once: a consumer sees each event
 * as soon as it happened. */
#include <stdarg.h>
#include <string.h>

#include "cli/run_cli.h"
#include "core/alloc.h"
#include "core/json.h"

#define DIM "\x1b[2m"
#define RED "\x1b[31m"
#define BOLD "\x1b[1m"
#define RESET "\x1b[0m"
#define RESULT_WIDTH 100

/* Returns false when the line could not be built (out of memory): a reader must never get a
 * stream with a line silently missing, so that ends the output like a failed write. */
static bool write_jsonl(cgw__run_view_t *v, const cgw_eventlog_entry_t *e)
{
    cgw__run_out_t *o = v->out;
    if (!o->multi) {
        fwrite(e->json.ptr, 1, e->json.len, o->fp);
        fputc('\n', o->fp);
        return true;
    }
    /* {"session":K, + the entry without its opening brace: one line, one write. */
    o->tmp.len = 0;
    if (cgw_buf_appendf(&o->tmp, "{\"session\":%d,", v->index) != CGW_OK ||
        cgw_buf_append(&o->tmp, e->json.ptr + 1, e->json.len - 1) != CGW_OK ||
        cgw_buf_append(&o->tmp, "\n", 1) != CGW_OK) {
        return false;
    }
    fwrite(o->tmp.data, 1, o->tmp.len, o->fp);
    return true;
}

/* ---- text -------------------------------------------------------------------------------- */

/* Writes n bytes of the session's text. With one session they go straight out; with several,
 * whole lines go out prefixed with "[K] " so that sessions never share a line. */
static void put(cgw__run_view_t *v, const char *s, size_t n)
{
    cgw__run_out_t *o = v->out;
    if (n == 0) {
        return;
    }
    if (!o->multi) {
        fwrite(s, 1, n, o->fp);
        v->mid_line = s[n - 1] != '\n';
        return;
    }
    cgw_buf_append(&v->line, s, n);
    char *nl;
    while (v->line.data != NULL && (nl = memchr(v->line.data, '\n', v->line.len)) != NULL) {
        size_t len = (size_t)(nl - v->line.data);
        fprintf(o->fp, "[%d] %.*s%s\n", v->index, (int)len, v->line.data, o->color ? RESET : "");
        cgw_buf_consume(&v->line, len + 1);
    }
}

static void puts_(cgw__run_view_t *v, const char *s)
{
    put(v, s, strlen(s));
}

static void color(cgw__run_view_t *v, const char *code)
{
    if (v->out->color) {
        puts_(v, code);
    }
}

static void start_line(cgw__run_view_t *v)
{
    if (v->thinking) {
        color(v, RESET);
        v->thinking = false;
    }
    if (v->mid_line || v->line.len > 0) {
        puts_(v, "\n");
    }
}

/* One line of `value` as compact JSON, cut to RESULT_WIDTH bytes on a character boundary. */
static void put_short_json(cgw__run_view_t *v, const json_t *value)
{
    size_t len = 0;
    char *s = value != NULL ? cgw_json_dump(value, &len) : NULL;
    if (s == NULL) {
        puts_(v, "null");
        return;
    }
    if (len > RESULT_WIDTH) {
        len = RESULT_WIDTH;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) {
            len--;
        }
        put(v, s, len);
        puts_(v, "…");
    } else {
        put(v, s, len);
    }
    cgw_free(s);
}

static void put_fmt(cgw__run_view_t *v, const char *fmt, ...) CGW_PRINTF(2, 3);
static void put_fmt(cgw__run_view_t *v, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        put(v, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
    }
}

static const char *server_of(const json_t *ev)
{
    const char *s = cgw_json_str(ev, "server", NULL);
    return s != NULL ? s : "local";
}

static void text_delta(cgw__run_view_t *v, const json_t *ev, bool thinking)
{
    const json_t *t = json_object_get(ev, "text");
    if (thinking && !v->thinking) {
        start_line(v);
        color(v, DIM);
        puts_(v, "thinking: ");
        v->thinking = true;
    } else if (!thinking && v->thinking) {
        start_line(v);
    }
    put(v, json_string_value(t) != NULL ? json_string_value(t) : "", json_string_length(t));
}

static void tool_use(cgw__run_view_t *v, const json_t *ev)
{
    start_line(v);
    put_fmt(v, "→ %s [%s] ", cgw_json_str(ev, "tool_name", "?"), server_of(ev));
    put_short_json(v, json_object_get(ev, "tool_input"));
    puts_(v, "\n");
}

static void tool_result(cgw__run_view_t *v, const json_t *ev)
{
    const json_t *err = json_object_get(ev, "error");
    bool is_error = json_is_true(json_object_get(ev, "is_error"));
    start_line(v);
    if (is_error) {
        color(v, RED);
    }
    put_fmt(v, "%s %s [%s] %lld ms: ", is_error ? "✗" : "←", cgw_json_str(ev, "tool_name", "?"),
            server_of(ev), (long long)cgw_json_int(ev, "duration_ms", 0));
    if (json_is_object(err)) {
        put_fmt(v, "%s: %.200s", cgw_json_str(err, "code", "error"),
                cgw_json_str(err, "message", ""));
    } else {
        put_short_json(v, json_object_get(ev, "result"));
    }
    if (is_error) {
        color(v, RESET);
    }
    puts_(v, "\n");
}

static void stream_complete(cgw__run_view_t *v, const json_t *ev)
{
    const json_t *u = json_object_get(ev, "usage");
    start_line(v);
    color(v, BOLD);
    put_fmt(v,
            "— %lld turn%s, %lld input + %lld output tokens (cache: %lld read, %lld written), "
            "~$%.4f (%s)",
            (long long)cgw_json_int(ev, "turns", 0), cgw_json_int(ev, "turns", 0) == 1 ? "" : "s",
            (long long)cgw_json_int(u, "input_tokens", 0),
            (long long)cgw_json_int(u, "output_tokens", 0),
            (long long)cgw_json_int(u, "cache_read_input_tokens", 0),
            (long long)cgw_json_int(u, "cache_creation_input_tokens", 0),
            json_number_value(json_object_get(u, "estimated_cost_usd")),
            cgw_json_str(ev, "stop_reason", "done"));
    color(v, RESET);
    puts_(v, "\n");
}

static void render_text(cgw__run_view_t *v, const json_t *ev)
{
    const char *type = cgw_json_str(ev, "type", "");
    if (strcmp(type, "text_delta") == 0 || strcmp(type, "thinking_delta") == 0) {
        text_delta(v, ev, type[1] == 'h');
    } else if (strcmp(type, "tool_use") == 0) {
        tool_use(v, ev);
    } else if (strcmp(type, "tool_result") == 0) {
        tool_result(v, ev);
    } else if (strcmp(type, "tool_approval_request") == 0 && !v->out->prompts) {
        start_line(v);
        put_fmt(v, "? %s needs approval\n", cgw_json_str(ev, "tool_name", "?"));
    } else if (strcmp(type, "stream_retry") == 0) {
        start_line(v);
        put_fmt(v, "↻ retrying (attempt %lld): %.200s — text above may repeat\n",
                (long long)cgw_json_int(ev, "attempt", 0) + 1, cgw_json_str(ev, "error", ""));
    } else if (strcmp(type, "stream_complete") == 0) {
        stream_complete(v, ev);
    } else if (strcmp(type, "error") == 0) {
        start_line(v);
        color(v, RED);
        put_fmt(v, "✗ error (%s): %.400s", cgw_json_str(ev, "code", "error"),
                cgw_json_str(ev, "error", ""));
        color(v, RESET);
        puts_(v, "\n");
    }
    /* usage and tool_progress: the final line sums the usage; progress would flood. */
}

void cgw__run_render(cgw__run_view_t *v, const cgw_eventlog_entry_t *entry, const json_t *event)
{
    cgw__run_out_t *o = v->out;
    if (o->lost) {
        return;
    }
    bool ok = true;
    if (o->format == CGW_RUN_OUT_JSONL) {
        ok = write_jsonl(v, entry);
    } else {
        render_text(v, event);
    }
    if (fflush(o->fp) != 0 || ferror(o->fp) || !ok) {
        o->lost = true;
        if (o->on_lost != NULL) {
            o->on_lost(o->on_lost_user);
        }
    }
}

void cgw__run_view_finish(cgw__run_view_t *v)
{
    if (v->out != NULL && v->out->format == CGW_RUN_OUT_TEXT && !v->out->lost) {
        start_line(v);
        fflush(v->out->fp);
    }
    cgw_buf_free(&v->line);
}
