#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "core/json.h"
#include "server/http_util.h"

/* Splits "host:port" / "[v6]:port" into host (copied into `host`) and port. */
static int split_listen(const char *listen, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen || colon[1] == '\0') {
        return CGW_EINVAL;
    }
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']') {
            return CGW_EINVAL;
        }
        h++;
        hlen -= 2;
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535 || hlen == 0 || hlen >= cap) {
        return CGW_EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return CGW_OK;
}

int cgw__http_bind(struct evhttp *http, const char *listen, char *out, size_t cap, cgw_error_t *err)
{
    char host[256];
    int port = 0;
    if (listen == NULL || split_listen(listen, host, sizeof(host), &port) != CGW_OK) {
        return cgw_error_set(err, CGW_EINVAL, "listen address must be HOST:PORT, got '%s'",
                             listen != NULL ? listen : "(null)");
    }
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (bs == NULL) {
        return cgw_error_set(err, CGW_EIO, "cannot listen on %s", listen);
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN] = "";
    evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        return cgw_error_set(err, CGW_EIO, "getsockname failed on %s", listen);
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
        snprintf(out, cap, "[%s]:%u", addr, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
        snprintf(out, cap, "%s:%u", addr, ntohs(s4->sin_port));
    }
    return CGW_OK;
}

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {413, "Payload Too Large"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {529, "Overloaded"}, /* Anthropic's, not IANA's */
};

const char *cgw__http_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status) {
            return reasons[i].reason;
        }
    }
    return status < 400 ? "OK" : "Error";
}

void cgw__http_request_id(char out[CGW_HTTP_REQUEST_ID_LEN])
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char rnd[24];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* getrandom on Linux does not fail for 24 bytes once the pool is ready; this fallback
         * only keeps ids distinct, it need not be unpredictable. */
        static unsigned counter;
        for (size_t i = 0; i < sizeof(rnd); i++) {
            rnd[i] = (unsigned char)(++counter * 2654435761u >> 13);
        }
    }
    memcpy(out, "req_", 4);
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[4 + i] = alphabet[rnd[i] % 62];
    }
    out[4 + sizeof(rnd)] = '\0';
}

void cgw__http_path(struct evhttp_request *req, char *out, size_t cap)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    snprintf(out, cap, "%s", path != NULL ? path : "");
}

const char *cgw__http_body(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    *len = evbuffer_get_length(in);
    if (*len == 0) {
        return NULL;
    }
    return (const char *)evbuffer_pullup(in, -1);
}

void cgw__http_reply_raw(struct evhttp_request *req, int status, const char *content_type,
                         const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (content_type != NULL) {
        evhttp_remove_header(h, "Content-Type");
        evhttp_add_header(h, "Content-Type", content_type);
    }
    struct evbuffer *buf = evbuffer_new();
    if (buf != NULL && len > 0) {
        evbuffer_add(buf, body, len);
    }
    evhttp_send_reply(req, status, cgw__http_reason(status), buf);
    if (buf != NULL) {
        evbuffer_free(buf);
    }
}

void cgw__http_reply_json(struct evhttp_request *req, int status, const json_t *body)
{
    size_t len = 0;
    char *s = cgw_json_dump(body, &len);
    cgw__http_reply_raw(req, status, "application/json", s != NULL ? s : "{}", s != NULL ? len : 2);
    cgw_free(s);
}

json_t *cgw__http_error_json(const char *type, const char *message, const char *request_id)
{
    json_t *e =
        json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type", type, "message", message);
    if (e != NULL && request_id != NULL) {
        json_object_set_new(e, "request_id", json_string(request_id));
    }
    return e;
}

void cgw__http_reply_error(struct evhttp_request *req, int status, const char *type,
                           const char *message, const char *request_id)
{
    json_t *e = cgw__http_error_json(type, message, request_id);
    cgw__http_reply_json(req, status, e);
    json_decref(e);
}

static void set_header(struct evkeyvalq *out, const char *name, const json_t *value)
{
    if (name == NULL) {
        return;
    }
    evhttp_remove_header(out, name);
    if (json_is_string(value)) {
        evhttp_add_header(out, name, json_string_value(value));
    }
}

void cgw__http_set_headers(struct evhttp_request *req, const json_t *headers)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *k;
    const json_t *v;
    size_t i;
    json_object_foreach((json_t *)headers, k, v)
    {
        set_header(out, k, v);
    }
    json_array_foreach(headers, i, v)
    {
        set_header(out, json_string_value(json_array_get(v, 0)), json_array_get(v, 1));
    }
}

void cgw__http_disable_timeouts(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (bev != NULL) {
        bufferevent_set_timeouts(bev, NULL, NULL);
    }
}

size_t cgw__http_pending_output(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

void cgw__http_sse_start(struct evhttp_request *req, int status)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (evhttp_find_header(h, "Content-Type") == NULL) {
        evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    }
    if (evhttp_find_header(h, "Cache-Control") == NULL) {
        evhttp_add_header(h, "Cache-Control", "no-cache");
    }
    evhttp_send_reply_start(req, status, cgw__http_reason(status));
    cgw__http_disable_timeouts(req);
}

int cgw__http_send_chunk(struct evhttp_request *req, const char *data, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL || evbuffer_add(buf, data, len) != 0) {
        evbuffer_free(buf);
        return CGW_ENOMEM;
    }
    evhttp_send_reply_chunk(req, buf);
    evbuffer_free(buf);
    return CGW_OK;
}

int cgw__http_sse_send(struct evhttp_request *req, const char *id, const char *event,
                       const char *data, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    int ok = buf != NULL;
    if (ok && id != NULL) {
        ok = evbuffer_add_printf(buf, "id: %s\n", id) >= 0;
    }
    if (ok && event != NULL) {
        ok = evbuffer_add_printf(buf, "event: %s\n", event) >= 0;
    }
    ok = ok && evbuffer_add(buf, "data: ", 6) == 0 && evbuffer_add(buf, data, len) == 0 &&
         evbuffer_add(buf, "\n\n", 2) == 0;
    if (ok) {
        evhttp_send_reply_chunk(req, buf);
    }
    if (buf != NULL) {
        evbuffer_free(buf);
    }
    return ok ? CGW_OK : CGW_ENOMEM;
}
