/* Recorded responses for replay turns: raw `curl -N -D -` captures (status line, headers, blank
 * line, body) and bare .sse bodies; SSE frame splitting so a replay is sent one event per chunk;
 * harvesting of the thinking signatures a recording issues, so that a client replaying them back
 * passes the signature check. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "server/mock_script.h"

int cgw__mock_read_file(const char *path, char **data, size_t *len, cgw_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        return cgw_error_set(err, e == ENOENT ? CGW_ENOENT : CGW_EIO, "cannot open %s: %s", path,
                             strerror(e));
    }
    /* A FIFO or a device (/dev/zero) would block or never end: recordings are files. */
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return cgw_error_set(err, CGW_EIO, "%s is not a regular file", path);
    }
    cgw_buf_t b = CGW_BUF_INIT;
    char chunk[65536];
    size_t n;
    int rc = CGW_OK;
    while (rc == CGW_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = cgw_buf_append(&b, chunk, n);
    }
    if (rc == CGW_OK && ferror(f)) {
        rc = cgw_error_set(err, CGW_EIO, "cannot read %s", path);
    }
    fclose(f);
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        return rc == CGW_ENOMEM ? cgw_error_set(err, rc, "out of memory reading %s", path) : rc;
    }
    *data = cgw_buf_steal(&b, len);
    return *data != NULL ? CGW_OK : cgw_error_set(err, CGW_ENOMEM, "out of memory");
}

/* Length of the line at s (without its terminator) and of its terminator (LF, CRLF or CR). */
static size_t line_at(const char *s, size_t len, size_t *term)
{
    size_t i = 0;
    while (i < len && s[i] != '\n' && s[i] != '\r') {
        i++;
    }
    *term = i == len ? 0 : (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
    return i;
}

/* Headers that describe the recorded transfer rather than the response: evhttp sets its own. */
static bool hop_by_hop(const char *name, size_t len)
{
    static const char *const drop[] = {"content-length", "transfer-encoding", "connection",
                                       "keep-alive", "content-encoding"};
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
        if (strlen(drop[i]) == len && strncasecmp(drop[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

static int parse_header_line(const char *s, size_t len, json_t *headers)
{
    const char *colon = memchr(s, ':', len);
    if (colon == NULL || colon == s) {
        return CGW_EPROTO;
    }
    size_t nlen = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
        vlen--;
    }
    if (hop_by_hop(s, nlen)) {
        return CGW_OK;
    }
    json_t *pair = json_pack("[s#,s#]", s, (int)nlen, v, (int)vlen);
    return pair != NULL && json_array_append_new(headers, pair) == 0 ? CGW_OK : CGW_ENOMEM;
}

/* Parses one "HTTP/x status ...\r\n headers \r\n\r\n" block at data[*pos]. */
static int parse_head(const char *data, size_t len, size_t *pos, cgw__mock_capture_t *c,
                      cgw_error_t *err)
{
    size_t term, l = line_at(data + *pos, len - *pos, &term);
    const char *sp = memchr(data + *pos, ' ', l);
    if (sp == NULL || sscanf(sp, " %3d", &c->status) != 1 || c->status < 100 || c->status > 599) {
        return cgw_error_set(err, CGW_ECONFIG, "capture: malformed status line");
    }
    *pos += l + term;
    json_array_clear(c->headers);
    while (*pos < len) {
        l = line_at(data + *pos, len - *pos, &term);
        if (l == 0) {
            *pos += term;
            return CGW_OK;
        }
        int rc = parse_header_line(data + *pos, l, c->headers);
        if (rc != CGW_OK) {
            return rc == CGW_ENOMEM
                       ? rc
                       : cgw_error_set(err, CGW_ECONFIG, "capture: malformed header line");
        }
        *pos += l + term;
    }
    return CGW_OK; /* headers only, empty body */
}

static int add_header_json(json_t *headers, const json_t *name, const json_t *value)
{
    char num[32];
    if (!json_is_string(name)) {
        return CGW_ECONFIG;
    }
    if (json_is_number(value)) {
        snprintf(num, sizeof(num), "%.17g", json_number_value(value));
    } else if (!json_is_string(value)) {
        return CGW_ECONFIG;
    }
    const char *n = json_string_value(name);
    if (hop_by_hop(n, strlen(n))) {
        return CGW_OK;
    }
    json_t *pair = json_pack("[s,s]", n, json_is_string(value) ? json_string_value(value) : num);
    return pair != NULL && json_array_append_new(headers, pair) == 0 ? CGW_OK : CGW_ENOMEM;
}

/* Headers as {name: value}, [[name, value], ...] or nock's flat [name, value, ...]. */
static int headers_from_json(const json_t *h, json_t *out)
{
    const char *k;
    const json_t *v;
    size_t i;
    int rc = CGW_OK;
    if (json_is_object(h)) {
        json_object_foreach((json_t *)h, k, v)
        {
            json_t *name = json_string(k);
            rc = rc == CGW_OK ? add_header_json(out, name, v) : rc;
            json_decref(name);
        }
    } else if (json_is_array(h) && json_is_array(json_array_get(h, 0))) {
        json_array_foreach(h, i, v)
        {
            rc = rc == CGW_OK ? add_header_json(out, json_array_get(v, 0), json_array_get(v, 1))
                              : rc;
        }
    } else if (json_is_array(h)) {
        for (i = 0; rc == CGW_OK && i + 1 < json_array_size(h); i += 2) {
            rc = add_header_json(out, json_array_get(h, i), json_array_get(h, i + 1));
        }
    } else if (h != NULL) {
        rc = CGW_ECONFIG;
    }
    return rc;
}

int cgw__mock_capture_from_json(const json_t *resp, cgw__mock_capture_t **out, cgw_error_t *err)
{
    const json_t *body = json_object_get(resp, "body");
    int status = (int)cgw_json_int(resp, "status", 200);
    if (!json_is_object(resp) || status < 200 || status > 599) {
        return cgw_error_set(err, CGW_ECONFIG,
                             "'response' must be an object with a status of 200..599");
    }
    cgw__mock_capture_t *c = cgw__calloc(1, sizeof(*c));
    int rc = c != NULL && (c->headers = json_array()) != NULL ? CGW_OK : CGW_ENOMEM;
    rc = rc == CGW_OK ? headers_from_json(json_object_get(resp, "headers"), c->headers) : rc;
    if (rc == CGW_OK && json_is_string(body)) {
        c->body_len = json_string_length(body);
        c->body = cgw__memdup(json_string_value(body), c->body_len);
    } else if (rc == CGW_OK) {
        c->body = body != NULL ? cgw_json_dump(body, &c->body_len) : cgw__strdup("");
    }
    rc = rc == CGW_OK && c->body == NULL ? CGW_ENOMEM : rc;
    if (rc != CGW_OK) {
        cgw__mock_capture_free(c);
        return rc == CGW_ENOMEM ? cgw_error_set(err, rc, "out of memory")
                                : cgw_error_set(err, rc,
                                                "'response' headers: a name-value "
                                                "object or list of strings");
    }
    c->status = status;
    *out = c;
    return CGW_OK;
}

/* One exchange of the Python snapshots or of nock as a "response" turn, or NULL. */
static json_t *exchange_turn(const json_t *x, size_t i)
{
    const json_t *r = json_object_get(x, "response");
    const json_t *status = json_object_get(r, "status_code");
    json_t *resp = NULL;
    if (json_is_integer(status)) {
        resp = json_pack("{s:O,s:O*,s:O*}", "status", status, "headers",
                         json_object_get(r, "headers"), "body", json_object_get(r, "body"));
    } else if (json_is_integer(json_object_get(x, "status")) && r != NULL) {
        resp = json_pack("{s:O,s:O*,s:O}", "status", json_object_get(x, "status"), "headers",
                         json_object_get(x, "rawHeaders"), "body", r);
    }
    if (resp == NULL) {
        return NULL;
    }
    char name[32];
    snprintf(name, sizeof(name), "exchange-%zu", i + 1);
    return json_pack("{s:s,s:o}", "name", name, "response", resp);
}

json_t *cgw__mock_exchanges_script(const json_t *doc)
{
    if (!json_is_array(doc) || json_array_size(doc) == 0) {
        return NULL;
    }
    json_t *turns = json_array();
    size_t i;
    const json_t *x;
    json_array_foreach(doc, i, x)
    {
        json_t *t = exchange_turn(x, i);
        if (t == NULL) {
            json_decref(turns);
            return NULL;
        }
        json_array_append_new(turns, t);
    }
    return json_pack("{s:s,s:o}", "when_exhausted", "cycle", "turns", turns);
}

int cgw__mock_capture_parse(const char *data, size_t len, cgw__mock_capture_t **out,
                            cgw_error_t *err)
{
    cgw__mock_capture_t *c = cgw__calloc(1, sizeof(*c));
    if (c == NULL || (c->headers = json_array()) == NULL) {
        cgw_free(c);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    size_t pos = 0;
    int rc = CGW_OK;
    /* A raw capture; 1xx blocks (100 Continue) come before the real head. */
    while (rc == CGW_OK && len - pos >= 5 && memcmp(data + pos, "HTTP/", 5) == 0) {
        rc = parse_head(data, len, &pos, c, err);
        if (rc != CGW_OK || c->status >= 200) {
            break;
        }
    }
    if (rc == CGW_OK && (c->body = cgw__memdup(data + pos, len - pos)) == NULL) {
        rc = cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    if (rc != CGW_OK) {
        cgw__mock_capture_free(c);
        return rc;
    }
    c->body_len = len - pos;
    *out = c;
    return CGW_OK;
}

void cgw__mock_capture_free(cgw__mock_capture_t *c)
{
    if (c != NULL) {
        json_decref(c->headers);
        cgw_free(c->body);
        cgw_free(c);
    }
}

static int push_end(size_t **e, size_t *n, size_t *cap, size_t pos)
{
    if (*n == *cap) {
        size_t *ne = cgw__realloc(*e, 2 * *cap * sizeof(**e));
        if (ne == NULL) {
            return CGW_ENOMEM;
        }
        *e = ne;
        *cap *= 2;
    }
    (*e)[(*n)++] = pos;
    return CGW_OK;
}

long cgw__mock_sse_frames(const char *body, size_t len, size_t **ends)
{
    size_t cap = 16, n = 0, pos = 0;
    size_t *e = cgw__malloc(cap * sizeof(*e));
    bool pending = false; /* a non-blank line since the last frame end */
    int rc = e != NULL ? CGW_OK : CGW_ENOMEM;
    while (rc == CGW_OK && pos < len) {
        size_t term, l = line_at(body + pos, len - pos, &term);
        pos += l + term;
        if (l > 0) {
            pending = true;
        } else if (pending) {
            rc = push_end(&e, &n, &cap, pos);
            pending = false;
        }
    }
    /* The frames cover every byte: a last unterminated event or stray blank lines end here. */
    if (rc == CGW_OK && len > 0 && (n == 0 || e[n - 1] < len)) {
        rc = push_end(&e, &n, &cap, len);
    }
    if (rc != CGW_OK) {
        cgw_free(e);
        return -1;
    }
    *ends = e;
    return (long)n;
}

/* Per-block state while harvesting: index -> {"thinking": "...", "signature": "..."}. */
static void harvest_event(const json_t *ev, json_t *blocks, json_t *issued)
{
    char key[32];
    snprintf(key, sizeof(key), "%lld", (long long)cgw_json_int(ev, "index", -1));
    const char *type = cgw_json_str(ev, "type", "");
    const json_t *cb = json_object_get(ev, "content_block");
    const json_t *d = json_object_get(ev, "delta");
    json_t *st = json_object_get(blocks, key);
    if (strcmp(type, "content_block_start") == 0) {
        const char *bt = cgw_json_str(cb, "type", "");
        if (strcmp(bt, "thinking") == 0) {
            json_object_set_new(blocks, key,
                                json_pack("{s:s,s:s}", "thinking", cgw_json_str(cb, "thinking", ""),
                                          "signature", cgw_json_str(cb, "signature", "")));
        } else if (strcmp(bt, "redacted_thinking") == 0) {
            cgw_buf_t k = CGW_BUF_INIT;
            if (cgw_buf_appendf(&k, "redacted:%s", cgw_json_str(cb, "data", "")) == CGW_OK) {
                json_object_set_new(issued, k.data, json_string(""));
            }
            cgw_buf_free(&k);
        }
    } else if (strcmp(type, "content_block_delta") == 0 && st != NULL) {
        const char *dt = cgw_json_str(d, "type", "");
        if (strcmp(dt, "thinking_delta") == 0) {
            cgw_buf_t j = CGW_BUF_INIT;
            if (cgw_buf_appendf(&j, "%s%s", cgw_json_str(st, "thinking", ""),
                                cgw_json_str(d, "thinking", "")) == CGW_OK) {
                json_object_set_new(st, "thinking", json_string(j.data));
            }
            cgw_buf_free(&j);
        } else if (strcmp(dt, "signature_delta") == 0) {
            json_object_set(st, "signature", json_object_get(d, "signature"));
        }
    } else if (strcmp(type, "content_block_stop") == 0 && st != NULL) {
        const char *sig = cgw_json_str(st, "signature", "");
        if (*sig != '\0') {
            json_object_set(issued, sig, json_object_get(st, "thinking"));
        }
        json_object_del(blocks, key);
    }
}

/* The data of one frame ("data:" lines joined by LF), or NULL when it has none. */
static char *frame_data(const char *f, size_t len)
{
    cgw_buf_t b = CGW_BUF_INIT;
    bool any = false;
    size_t pos = 0;
    while (pos < len) {
        size_t term, l = line_at(f + pos, len - pos, &term);
        if (l >= 5 && memcmp(f + pos, "data:", 5) == 0) {
            size_t skip = l > 5 && f[pos + 5] == ' ' ? 6 : 5;
            if ((any && cgw_buf_append_char(&b, '\n') != CGW_OK) ||
                cgw_buf_append(&b, f + pos + skip, l - skip) != CGW_OK) {
                cgw_buf_free(&b);
                return NULL;
            }
            any = true;
        }
        pos += l + term;
    }
    return any ? cgw_buf_steal(&b, NULL) : NULL;
}

void cgw__mock_sse_harvest(const char *body, size_t len, json_t *issued)
{
    size_t *ends = NULL;
    long n = cgw__mock_sse_frames(body, len, &ends);
    json_t *blocks = json_object();
    size_t start = 0;
    for (long i = 0; blocks != NULL && i < n; i++) {
        char *data = frame_data(body + start, ends[i] - start);
        json_t *ev = data != NULL ? json_loads(data, 0, NULL) : NULL;
        if (ev != NULL) {
            harvest_event(ev, blocks, issued);
        }
        json_decref(ev);
        cgw_free(data);
        start = ends[i];
    }
    json_decref(blocks);
    cgw_free(ends);
}
