#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "mcp_harness.h"

const char *mcp_h_npm_entry(const char *server)
{
    static char path[3][1024];
    static int next;
    char *p = path[next++ % 3];
    snprintf(p, sizeof(path[0]), "%s/node_modules/@modelcontextprotocol/server-%s/dist/index.js",
             cgw_test_npm_dir(), server);
    return p;
}

static void on_started(cgw_mcp_manager_t *mgr, size_t ready, size_t failed, void *user)
{
    (void)mgr;
    mcp_h_t *h = user;
    h->started = 1;
    h->n_ready = ready;
    h->n_failed = failed;
}

static void on_tools(cgw_mcp_manager_t *mgr, void *user)
{
    (void)mgr;
    ((mcp_h_t *)user)->tools_changed++;
}

static void on_state(cgw_mcp_manager_t *mgr, size_t i, const cgw_mcp_server_status_t *st,
                     void *user)
{
    (void)i;
    mcp_h_t *h = user;
    if (st->state == CGW_MCP_SERVER_RESTARTING && !h->restarting_seen) {
        h->restarting_seen = 1;
        h->tools_while_restarting = cgw_mcp_toolmap_count(cgw_mcp_manager_toolmap(mgr));
    }
}

void mcp_h_options(mcp_h_t *h, cgw_mcp_manager_options_t *opts)
{
    cgw_mcp_manager_options_init(opts);
    opts->restart_initial_ms = 50;
    opts->restart_max_ms = 400;
    opts->term_grace_ms = 500;
    opts->user = h;
}

int mcp_h_start(mcp_h_t *h, const char *config_json, cgw_mcp_manager_options_t *opts,
                int timeout_ms)
{
    return mcp_h_start_cfg(h, config_json, opts, NULL, timeout_ms);
}

int mcp_h_start_cfg(mcp_h_t *h, const char *config_json, cgw_mcp_manager_options_t *opts,
                    const cgw_mcp_config_options_t *cfg_opts, int timeout_ms)
{
    memset(h, 0, sizeof(*h));
    h->ctx = cgw_test_ctx_new();
    cgw_mcp_config_options_t co;
    if (cfg_opts != NULL) {
        co = *cfg_opts;
    } else {
        cgw_mcp_config_options_init(&co);
    }
    co.scopes = 0;
    cgw_error_t err;
    if (cgw_mcp_config_new(&co, &h->cfg) != CGW_OK ||
        cgw_mcp_config_add_json(h->cfg, CGW_MCP_SCOPE_INLINE, config_json, strlen(config_json),
                                "test", &err) != CGW_OK) {
        return 0;
    }
    cgw_mcp_manager_options_t local;
    if (opts == NULL) {
        mcp_h_options(h, &local);
        opts = &local;
    }
    opts->config = h->cfg;
    opts->user = h;
    opts->on_tools_changed = on_tools;
    opts->on_server_state = on_state;
    if (cgw_mcp_manager_new(h->ctx, opts, &h->mgr, &err) != CGW_OK ||
        cgw_mcp_manager_start(h->mgr, on_started, h) != CGW_OK) {
        return 0;
    }
    return cgw_test_run_until(h->ctx, &h->started, timeout_ms);
}

static json_t *copy(const json_t *v)
{
    return v != NULL ? json_deep_copy(v) : NULL;
}

static void on_done(const cgw_mcp_call_result_t *r, void *user)
{
    mcp_h_call_t *c = user;
    c->status = r->status;
    c->result = copy(r->result);
    c->error = copy(r->error);
    c->content = copy(r->content);
    c->raw = copy(r->raw);
    snprintf(c->server, sizeof(c->server), "%s", r->server != NULL ? r->server : "");
    c->duration_us = r->duration_us;
    c->done = 1;
}

void mcp_h_count_progress(const cgw_mcp_progress_t *p, void *user)
{
    mcp_h_call_t *c = user;
    c->progress_count++;
    c->last_progress = p->progress;
}

int mcp_h_call_async(mcp_h_t *h, const char *tool, const char *input_json,
                     const cgw_mcp_call_options_t *opts, mcp_h_call_t *out, cgw_mcp_call_t **handle)
{
    memset(out, 0, sizeof(*out));
    json_t *input = input_json != NULL ? json_loads(input_json, 0, NULL) : NULL;
    cgw_mcp_call_options_t o = {0};
    if (opts != NULL) {
        o = *opts;
    }
    if (o.progress == mcp_h_count_progress) {
        o.progress_user = out;
    }
    int rc = cgw_mcp_manager_call(h->mgr, tool, input, &o, on_done, out, handle);
    json_decref(input);
    return rc;
}

int mcp_h_call(mcp_h_t *h, const char *tool, const char *input_json,
               const cgw_mcp_call_options_t *opts, mcp_h_call_t *out, int timeout_ms)
{
    if (mcp_h_call_async(h, tool, input_json, opts, out, NULL) != CGW_OK) {
        return 0;
    }
    return cgw_test_run_until(h->ctx, &out->done, timeout_ms);
}

void mcp_h_call_clear(mcp_h_call_t *c)
{
    json_decref(c->result);
    json_decref(c->error);
    json_decref(c->content);
    json_decref(c->raw);
    memset(c, 0, sizeof(*c));
}

const char *mcp_h_text(const mcp_h_call_t *c)
{
    const char *s = json_string_value(json_object_get(c->result, "text"));
    return s != NULL ? s : "";
}

json_t *mcp_h_find_def(const json_t *defs, const char *name)
{
    json_t *d;
    size_t i;
    json_array_foreach(defs, i, d)
    {
        const char *n = json_string_value(json_object_get(d, "name"));
        if (n != NULL && strcmp(n, name) == 0) {
            return d;
        }
    }
    return NULL;
}

void mcp_h_spin(mcp_h_t *h, int ms)
{
    int never = 0;
    cgw_test_run_until(h->ctx, &never, ms);
}

int mcp_h_wait_state(mcp_h_t *h, size_t i, cgw_mcp_server_state_t state, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        cgw_mcp_server_status_t st;
        if (cgw_mcp_manager_server_status(h->mgr, i, &st) == CGW_OK && st.state == state) {
            return 1;
        }
        mcp_h_spin(h, 10);
    }
    return 0;
}

void mcp_h_stop(mcp_h_t *h)
{
    cgw_mcp_manager_free(h->mgr);
    cgw_mcp_config_free(h->cfg);
    cgw_ctx_free(h->ctx);
    memset(h, 0, sizeof(*h));
}

int mcp_h_teardown(mcp_h_t *h, const char *dir)
{
    mcp_h_stop(h);
    int rc = 0;
    if (dir != NULL && *dir) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        rc = system(cmd) == 0 ? 0 : -1;
    }
    return rc == 0 && mcp_h_child_count() == 0 ? 0 : -1;
}

int mcp_h_child_count(void)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *de;
    pid_t self = getpid();
    while (d != NULL && (de = readdir(d)) != NULL) {
        char path[300], buf[512];
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'. */
        char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (rp != NULL && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == self) {
            n++;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}
