/* The context: loop ownership, logging with redaction, per-context module slots. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "cgw/error.h"
#include "core/alloc.h"
#include "core/ctx_int.h"

#define CGW_MAX_SECRETS 32
#define CGW_LOG_LINE_MAX 4096
#define CGW_MIN_SECRET_LEN 8

struct at_free {
    void (*fn)(void *);
    void *arg;
    struct at_free *next;
};

struct cgw_ctx {
    struct event_base *base;
    int owns_base;
    cgw_log_level_t log_level;
    bool log_json;
    cgw_log_cb log_cb;
    void *log_user;
    char *secrets[CGW_MAX_SECRETS];
    size_t nsecrets;
    void *slots[CGW_CTX_SLOT_COUNT_];
    struct at_free *at_free;
};

static int global_inited;

int cgw_global_init(void)
{
    if (global_inited) {
        return CGW_OK;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return CGW_EIO;
    }
    global_inited = 1;
    return CGW_OK;
}

const char *cgw_version(void)
{
    return CGW_VERSION_STRING;
}

void cgw_ctx_options_init(cgw_ctx_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->log_level = CGW_LOG_INFO;
}

int cgw_ctx_new(const cgw_ctx_options_t *opts, cgw_ctx_t **out)
{
    cgw_ctx_options_t defaults;
    if (out == NULL) {
        return CGW_EINVAL;
    }
    *out = NULL;
    if (opts == NULL) {
        cgw_ctx_options_init(&defaults);
        opts = &defaults;
    }
    if (cgw_global_init() != CGW_OK) {
        return CGW_EIO;
    }
    cgw_ctx_t *ctx = cgw__calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return CGW_ENOMEM;
    }
    ctx->base = opts->base;
    if (ctx->base == NULL) {
        ctx->base = event_base_new();
        if (ctx->base == NULL) {
            cgw_free(ctx);
            return CGW_EIO;
        }
        ctx->owns_base = 1;
    }
    ctx->log_level = opts->log_level;
    ctx->log_json = opts->log_json;
    ctx->log_cb = opts->log_cb;
    ctx->log_user = opts->log_user;
    *out = ctx;
    return CGW_OK;
}

void cgw_ctx_free(cgw_ctx_t *ctx)
{
    if (ctx == NULL) {
        return;
    }
    while (ctx->at_free != NULL) {
        struct at_free *a = ctx->at_free;
        ctx->at_free = a->next;
        a->fn(a->arg);
        cgw_free(a);
    }
    for (size_t i = 0; i < ctx->nsecrets; i++) {
        /* Wipe before release so the key does not linger in freed heap memory. */
        memset(ctx->secrets[i], 0, strlen(ctx->secrets[i]));
        cgw_free(ctx->secrets[i]);
    }
    if (ctx->owns_base) {
        event_base_free(ctx->base);
    }
    cgw_free(ctx);
}

struct event_base *cgw_ctx_base(cgw_ctx_t *ctx)
{
    return ctx->base;
}

int cgw_ctx_run(cgw_ctx_t *ctx)
{
    return event_base_dispatch(ctx->base) < 0 ? CGW_EIO : CGW_OK;
}

void cgw_ctx_stop(cgw_ctx_t *ctx)
{
    event_base_loopbreak(ctx->base);
}

void cgw_ctx_set_log_level(cgw_ctx_t *ctx, cgw_log_level_t level)
{
    ctx->log_level = level;
}

cgw_log_level_t cgw_ctx_log_level(const cgw_ctx_t *ctx)
{
    return ctx->log_level;
}

void **cgw__ctx_slot(cgw_ctx_t *ctx, enum cgw_ctx_slot slot)
{
    return &ctx->slots[slot];
}

int cgw__ctx_at_free(cgw_ctx_t *ctx, void (*fn)(void *arg), void *arg)
{
    struct at_free *a = cgw__malloc(sizeof(*a));
    if (a == NULL) {
        return CGW_ENOMEM;
    }
    a->fn = fn;
    a->arg = arg;
    a->next = ctx->at_free;
    ctx->at_free = a;
    return CGW_OK;
}

int cgw_ctx_add_secret(cgw_ctx_t *ctx, const char *secret)
{
    if (secret == NULL || strlen(secret) < CGW_MIN_SECRET_LEN) {
        return CGW_EINVAL;
    }
    for (size_t i = 0; i < ctx->nsecrets; i++) {
        if (strcmp(ctx->secrets[i], secret) == 0) {
            return CGW_OK;
        }
    }
    if (ctx->nsecrets == CGW_MAX_SECRETS) {
        return CGW_ENOMEM;
    }
    char *copy = cgw__strdup(secret);
    if (copy == NULL) {
        return CGW_ENOMEM;
    }
    ctx->secrets[ctx->nsecrets++] = copy;
    return CGW_OK;
}

/* Length of a registered secret or an Anthropic-style key ("sk-ant-...") starting at `p`,
 * or 0. The pattern catches keys that reach a log line before anybody registered them. */
static size_t secret_at(const cgw_ctx_t *ctx, const char *p)
{
    for (size_t i = 0; ctx != NULL && i < ctx->nsecrets; i++) {
        size_t n = strlen(ctx->secrets[i]);
        if (strncmp(p, ctx->secrets[i], n) == 0) {
            return n;
        }
    }
    if (strncmp(p, "sk-ant-", 7) == 0) {
        size_t n = 7;
        while (isalnum((unsigned char)p[n]) || p[n] == '-' || p[n] == '_') {
            n++;
        }
        return n;
    }
    return 0;
}

size_t cgw_ctx_redact(const cgw_ctx_t *ctx, const char *in, char *out, size_t cap)
{
    static const char mark[] = "[REDACTED]";
    size_t o = 0;
    if (cap == 0) {
        return 0;
    }
    while (*in != '\0' && o + 1 < cap) {
        size_t n = secret_at(ctx, in);
        if (n > 0) {
            size_t m = sizeof(mark) - 1;
            if (o + m >= cap) {
                break;
            }
            memcpy(out + o, mark, m);
            o += m;
            in += n;
        } else {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
    return o;
}

static const char *level_names[] = {"trace", "debug", "info", "warn", "error", "off"};

int cgw_log_level_parse(const char *name, cgw_log_level_t *out)
{
    for (int i = 0; name != NULL && i <= CGW_LOG_OFF; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (cgw_log_level_t)i;
            return CGW_OK;
        }
    }
    return CGW_EINVAL;
}

/* Writes `s` as a JSON string body (without quotes). */
static void fput_json_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
}

static void log_to_stderr(const cgw_ctx_t *ctx, cgw_log_level_t level, const char *component,
                          const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    flockfile(stderr);
    if (ctx->log_json) {
        fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"", when,
                ts.tv_nsec / 1000000, level_names[level]);
        fput_json_escaped(stderr, component ? component : "");
        fputs("\",\"msg\":\"", stderr);
        fput_json_escaped(stderr, msg);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000,
                level_names[level], component ? component : "cgw", msg);
    }
    funlockfile(stderr);
}

void cgw_ctx_logv(cgw_ctx_t *ctx, cgw_log_level_t level, const char *component, const char *fmt,
                  va_list ap)
{
    char raw[CGW_LOG_LINE_MAX];
    char clean[CGW_LOG_LINE_MAX];
    if (level < ctx->log_level || level >= CGW_LOG_OFF) {
        return;
    }
    vsnprintf(raw, sizeof(raw), fmt, ap);
    cgw_ctx_redact(ctx, raw, clean, sizeof(clean));
    if (ctx->log_cb != NULL) {
        ctx->log_cb(level, component, clean, ctx->log_user);
    } else {
        log_to_stderr(ctx, level, component, clean);
    }
}

void cgw_ctx_log(cgw_ctx_t *ctx, cgw_log_level_t level, const char *component, const char *fmt,
                 ...)
{
    va_list ap;
    va_start(ap, fmt);
    cgw_ctx_logv(ctx, level, component, fmt, ap);
    va_end(ap);
}

uint64_t cgw__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double cgw__wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
