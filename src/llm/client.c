/*
 * cgw_anthropic_t: options, credentials, headers and request bodies.
 *
 * The body is assembled from bytes: a small head object (model, max_tokens, stream, system,
 * thinking, extra fields) is serialized, its closing brace dropped, and the tools array and
 * the conversation's stored messages are spliced after it. Only the head is ever serialized
 * per request.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cgw/anthropic.h"
#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"
#include "llm/llm_int.h"

void cgw_anthropic_options_init(cgw_anthropic_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->auth_mode = CGW_AUTH_API;
    opts->max_tokens = CGW_DEFAULT_MAX_TOKENS;
    opts->thinking = CGW_THINKING_AUTO;
    opts->max_retries = 2;
    opts->stall_timeout_ms = 60000;
    opts->connect_timeout_ms = 5000;
}

cgw_auth_mode_t cgw_auth_mode_parse(const char *s)
{
    if (s == NULL) {
        return CGW_AUTH_API;
    }
    while (isspace((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    return n == 5 && strncasecmp(s, "oauth", 5) == 0 ? CGW_AUTH_OAUTH : CGW_AUTH_API;
}

cgw_thinking_t cgw_anthropic_thinking_for(const char *model, int max_tokens)
{
    if (model == NULL || max_tokens < 2048) {
        return CGW_THINKING_OFF;
    }
    if (strstr(model, "sonnet-4-6") || strstr(model, "opus-4-6") || strstr(model, "opus-4-7")) {
        return CGW_THINKING_ADAPTIVE;
    }
    if (strstr(model, "sonnet-4-5") || strstr(model, "opus-4-5") || strstr(model, "sonnet-4")) {
        return CGW_THINKING_ENABLED;
    }
    return CGW_THINKING_OFF;
}

/* ---- betas --------------------------------------------------------------------------------- */

static bool has_token(const cgw_buf_t *out, const char *tok, size_t n)
{
    const char *p = out->data;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, tok, n) == 0) {
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

int cgw__beta_merge(cgw_buf_t *out, const char *list)
{
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        const char *stop = end ? end : p + strlen(p);
        while (p < stop && isspace((unsigned char)*p)) {
            p++;
        }
        const char *q = stop;
        while (q > p && isspace((unsigned char)q[-1])) {
            q--;
        }
        size_t n = (size_t)(q - p);
        if (n > 0 && !has_token(out, p, n)) {
            int rc = (out->len > 0 ? cgw_buf_append_char(out, ',') : CGW_OK);
            if (rc == CGW_OK) {
                rc = cgw_buf_append(out, p, n);
            }
            if (rc != CGW_OK) {
                return rc;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return CGW_OK;
}

/* ---- extra headers ------------------------------------------------------------------------- */

static bool header_is(const char *line, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/* Checks one "Name: value" line; beta values are merged into `beta` instead of kept. */
static int take_header(cgw_anthropic_t *c, const char *line, cgw_buf_t *beta, cgw_error_t *err)
{
    const char *colon = strchr(line, ':');
    size_t n = colon ? (size_t)(colon - line) : 0;
    if (n == 0 || strpbrk(line, "\r\n") != NULL) {
        return cgw_error_set(err, CGW_EINVAL, "extra header must be one \"Name: value\" line");
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)line[i]) && strchr("-_!#$%&'*+.^`|~", line[i]) == NULL) {
            return cgw_error_set(err, CGW_EINVAL, "extra header has an invalid name");
        }
    }
    static const char *const owned[] = {"x-api-key", "authorization", "anthropic-version",
                                        "content-type", "content-length"};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
        if (header_is(line, n, owned[i])) {
            return cgw_error_set(err, CGW_EINVAL, "extra header %s is set by the client", owned[i]);
        }
    }
    if (header_is(line, n, "anthropic-beta")) {
        return cgw__beta_merge(beta, colon + 1);
    }
    char *copy = cgw__strdup(line);
    if (copy == NULL) {
        return CGW_ENOMEM;
    }
    c->headers[c->nheaders++] = copy;
    return CGW_OK;
}

static int setup_headers(cgw_anthropic_t *c, const cgw_anthropic_options_t *o, cgw_error_t *err)
{
    cgw_buf_t beta = CGW_BUF_INIT;
    int rc = c->auth_mode == CGW_AUTH_OAUTH ? cgw__beta_merge(&beta, CGW_OAUTH_BETA) : CGW_OK;
    for (size_t i = 0; rc == CGW_OK && i < o->nbetas; i++) {
        rc = o->betas[i] ? cgw__beta_merge(&beta, o->betas[i]) : CGW_OK;
    }
    if (rc == CGW_OK && o->nheaders > 0) {
        c->headers = cgw__calloc(o->nheaders, sizeof(char *));
        rc = c->headers ? CGW_OK : CGW_ENOMEM;
    }
    for (size_t i = 0; rc == CGW_OK && i < o->nheaders; i++) {
        rc = o->headers[i] ? take_header(c, o->headers[i], &beta, err) : CGW_OK;
    }
    if (rc == CGW_OK && beta.len > 0) {
        c->beta = cgw_buf_steal(&beta, NULL);
    }
    cgw_buf_free(&beta);
    return rc;
}

/* ---- construction -------------------------------------------------------------------------- */

static const char *opt_or_env(const char *v, const char *env)
{
    return v != NULL ? v : getenv(env);
}

static int setup_credential(cgw_anthropic_t *c, const cgw_anthropic_options_t *o, cgw_error_t *err)
{
    bool oauth = c->auth_mode == CGW_AUTH_OAUTH;
    const char *cred = oauth ? opt_or_env(o->auth_token, "ANTHROPIC_AUTH_TOKEN")
                             : opt_or_env(o->api_key, "ANTHROPIC_API_KEY");
    if (cred == NULL || *cred == '\0') {
        return cgw_error_set(err, CGW_ENOCRED, "no %s configured",
                             oauth ? "auth token (oauth mode)" : "API key");
    }
    if (strpbrk(cred, "\r\n") != NULL) {
        return cgw_error_set(err, CGW_EINVAL, "the credential contains a line break");
    }
    /* Short test keys cannot be registered (EINVAL); anything real is 8+ bytes. */
    int rc = cgw_ctx_add_secret(c->ctx, cred);
    if (rc == CGW_ENOMEM) {
        return rc;
    }
    cgw_buf_t line = CGW_BUF_INIT;
    rc = cgw_buf_appendf(&line, oauth ? "Authorization: Bearer %s" : "x-api-key: %s", cred);
    if (rc != CGW_OK) {
        cgw_buf_free(&line);
        return rc;
    }
    c->auth_line = cgw_buf_steal(&line, NULL);
    return CGW_OK;
}

static int setup_extra_body(cgw_anthropic_t *c, const char *extra, cgw_error_t *err)
{
    json_t *v = NULL;
    if (extra == NULL) {
        return CGW_OK;
    }
    int rc = cgw_json_parse(extra, strlen(extra), &v, err);
    if (rc != CGW_OK) {
        return rc;
    }
    c->extra_body = v;
    if (!json_is_object(v)) {
        return cgw_error_set(err, CGW_EJSON, "extra_body must be a JSON object");
    }
    static const char *const refused[] = {"messages", "tools", "stream"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (json_object_get(v, refused[i]) != NULL) {
            return cgw_error_set(err, CGW_EINVAL, "extra_body may not set \"%s\"", refused[i]);
        }
    }
    return CGW_OK;
}

static int setup_url(cgw_anthropic_t *c, const char *base, cgw_error_t *err)
{
    base = opt_or_env(base, "ANTHROPIC_BASE_URL");
    if (base == NULL || *base == '\0') {
        base = CGW_ANTHROPIC_DEFAULT_URL;
    }
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        return cgw_error_set(err, CGW_EINVAL, "base URL must start with http:// or https://");
    }
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    cgw_buf_t url = CGW_BUF_INIT;
    int rc = cgw_buf_appendf(&url, "%.*s/v1/messages", (int)n, base);
    if (rc != CGW_OK) {
        cgw_buf_free(&url);
        return rc;
    }
    c->url = cgw_buf_steal(&url, NULL);
    return CGW_OK;
}

static int check_numbers(const cgw_anthropic_options_t *o, cgw_error_t *err)
{
    if (o->max_tokens <= 0 || o->thinking_budget < 0 || o->max_retries < -1 ||
        o->max_retries > 100 || o->stall_timeout_ms < 0 || o->turn_timeout_ms < 0 ||
        o->connect_timeout_ms < 0 || (int)o->thinking > CGW_THINKING_ENABLED) {
        return cgw_error_set(err, CGW_EINVAL, "an anthropic client option is out of range");
    }
    return CGW_OK;
}

int cgw_anthropic_new(cgw_ctx_t *ctx, const cgw_anthropic_options_t *opts, cgw_anthropic_t **out,
                      cgw_error_t *err)
{
    cgw_anthropic_options_t defaults;
    if (ctx == NULL || out == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "no context or no output");
    }
    *out = NULL;
    if (opts == NULL) {
        cgw_anthropic_options_init(&defaults);
        opts = &defaults;
    }
    int rc = check_numbers(opts, err);
    if (rc != CGW_OK) {
        return rc;
    }
    cgw_anthropic_t *c = cgw__calloc(1, sizeof(*c));
    if (c == NULL) {
        return CGW_ENOMEM;
    }
    c->ctx = ctx;
    c->auth_mode = opts->auth_mode == CGW_AUTH_OAUTH ? CGW_AUTH_OAUTH : CGW_AUTH_API;
    c->max_tokens = opts->max_tokens;
    c->thinking = opts->thinking;
    c->thinking_budget = opts->thinking_budget;
    c->max_retries = opts->max_retries < 0 ? 2 : opts->max_retries;
    c->stall_timeout_ms = opts->stall_timeout_ms;
    c->turn_timeout_ms = opts->turn_timeout_ms;
    c->connect_timeout_ms = opts->connect_timeout_ms;
    c->model = cgw__strdup(opts->model != NULL ? opts->model : CGW_DEFAULT_MODEL);
    rc = c->model != NULL ? CGW_OK : CGW_ENOMEM;
    if (rc == CGW_OK) {
        rc = setup_url(c, opts->base_url, err);
    }
    if (rc == CGW_OK) {
        rc = setup_credential(c, opts, err);
    }
    if (rc == CGW_OK) {
        rc = setup_headers(c, opts, err);
    }
    if (rc == CGW_OK) {
        rc = setup_extra_body(c, opts->extra_body, err);
    }
    if (rc != CGW_OK) {
        cgw_anthropic_free(c);
        return err != NULL && err->code == rc ? rc : cgw_error_set(err, rc, "%s", cgw_strerror(rc));
    }
    CGW_DEBUG(ctx, "llm", "client for %s (%s auth, model %s)", c->url,
              c->auth_mode == CGW_AUTH_OAUTH ? "oauth" : "api", c->model);
    *out = c;
    return CGW_OK;
}

void cgw_anthropic_free(cgw_anthropic_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->auth_line != NULL) {
        memset(c->auth_line, 0, strlen(c->auth_line));
    }
    cgw_free(c->auth_line);
    cgw_free(c->url);
    cgw_free(c->model);
    cgw_free(c->beta);
    for (size_t i = 0; i < c->nheaders; i++) {
        cgw_free(c->headers[i]);
    }
    cgw_free(c->headers);
    json_decref(c->extra_body);
    cgw_free(c);
}

const char *cgw_anthropic_model(const cgw_anthropic_t *c)
{
    return c->model;
}

const char *cgw_anthropic_beta_header(const cgw_anthropic_t *c)
{
    return c->beta;
}

/* ---- request bodies ------------------------------------------------------------------------ */

static json_t *thinking_json(const cgw_anthropic_t *c, const char *model, int max_tokens)
{
    cgw_thinking_t t = c->thinking;
    if (t == CGW_THINKING_AUTO) {
        t = cgw_anthropic_thinking_for(model, max_tokens);
    }
    if (t == CGW_THINKING_ADAPTIVE) {
        return json_pack("{s:s}", "type", "adaptive");
    }
    if (t != CGW_THINKING_ENABLED) {
        return NULL;
    }
    int budget = c->thinking_budget;
    if (budget == 0) {
        budget = max_tokens - 1024 < 10000 ? max_tokens - 1024 : 10000;
    }
    if (c->thinking == CGW_THINKING_AUTO && budget < 1024) {
        return NULL;
    }
    return json_pack("{s:s, s:i}", "type", "enabled", "budget_tokens", budget);
}

/* The head object: everything except system_json, tools and messages. */
static json_t *build_head(const cgw_anthropic_t *c, const cgw_anthropic_request_t *req)
{
    const char *model = req->model != NULL ? req->model : c->model;
    int max_tokens = req->max_tokens > 0 ? req->max_tokens : c->max_tokens;
    json_t *head =
        json_pack("{s:s, s:i, s:b}", "model", model, "max_tokens", max_tokens, "stream", 1);
    if (head == NULL) {
        return NULL;
    }
    int bad = 0;
    if (req->system_json == NULL && req->system != NULL && *req->system != '\0') {
        json_t *sys = json_pack("[{s:s, s:s, s:{s:s}}]", "type", "text", "text", req->system,
                                "cache_control", "type", "ephemeral");
        bad |= sys == NULL || json_object_set_new(head, "system", sys) != 0;
    }
    json_t *thinking = thinking_json(c, model, max_tokens);
    if (thinking != NULL) {
        bad |= json_object_set_new(head, "thinking", thinking) != 0;
    }
    if (c->extra_body != NULL) {
        bad |= json_object_update(head, c->extra_body) != 0;
    }
    if (req->system_json != NULL) {
        json_object_del(head, "system");
    }
    if (bad) {
        json_decref(head);
        return NULL;
    }
    return head;
}

int cgw_anthropic_build_body(const cgw_anthropic_t *c, const cgw_anthropic_request_t *req,
                             char **body, size_t *len, cgw_error_t *err)
{
    if (c == NULL || req == NULL || req->conversation == NULL || body == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "a request needs a conversation");
    }
    *body = NULL;
    json_t *head = build_head(c, req);
    if (head == NULL) {
        /* json_pack refuses invalid UTF-8 in the system prompt or model name. */
        return cgw_error_set(err, CGW_EINVAL, "model or system prompt is not valid UTF-8");
    }
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_json_dump_buf(head, &b);
    json_decref(head);
    if (rc == CGW_OK) {
        b.len--; /* drop the closing brace; the head is never empty (model is set) */
        if (req->system_json != NULL) {
            rc = cgw_buf_appendf(&b, ",\"system\":%s", req->system_json);
        }
    }
    if (rc == CGW_OK) {
        rc = cgw_buf_appendf(
            &b, ",\"tools\":%s,\"messages\":", req->tools_json != NULL ? req->tools_json : "[]");
    }
    if (rc == CGW_OK) {
        rc = cgw__conversation_splice(req->conversation, &b);
    }
    if (rc == CGW_OK) {
        rc = cgw_buf_append_char(&b, '}');
    }
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        return cgw_error_set(err, rc, "building the request body failed");
    }
    *body = cgw_buf_steal(&b, len);
    return CGW_OK;
}
