/* MCP configuration: every scope, the override order, ${VAR} expansion, per-server errors,
 * http/sse entries, allow-list and timeouts, against real files in a temporary folder. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

typedef struct fx {
    char dir[128];     /* temp root, also used as HOME */
    char claude[192];  /* <dir>/.claude.json */
    char proj[192];    /* <dir>/proj */
    char mcpjson[224]; /* <dir>/proj/.mcp.json */
} fx_t;

/* A fake environment for the getenv_fn hook. */
static const char *const fake_env[][2] = {
    {"HOME", NULL}, /* filled per fixture */
    {"TOKEN", "s3cret-token"},
    {"EMPTY", ""},
    {"BIN", "/usr/bin/node"},
    {"NL", "a\nb"},
    {"MCP_TIMEOUT", "45000"},
    {"MCP_TOOL_TIMEOUT", "90000"},
};

static const char *fake_getenv(const char *name, void *user)
{
    fx_t *f = user;
    if (strcmp(name, "HOME") == 0) {
        return f->dir;
    }
    for (size_t i = 1; i < sizeof(fake_env) / sizeof(fake_env[0]); i++) {
        if (strcmp(name, fake_env[i][0]) == 0) {
            return fake_env[i][1];
        }
    }
    return NULL;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cgw_mcpcfg_XXXXXX");
    if (f == NULL || mkdtemp(f->dir) == NULL) {
        return -1;
    }
    snprintf(f->claude, sizeof(f->claude), "%s/.claude.json", f->dir);
    snprintf(f->proj, sizeof(f->proj), "%s/proj", f->dir);
    snprintf(f->mcpjson, sizeof(f->mcpjson), "%s/.mcp.json", f->proj);
    mkdir(f->proj, 0700);
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Options reading the fixture's files through the fake environment. */
static cgw_mcp_config_options_t opts_for(fx_t *f)
{
    cgw_mcp_config_options_t o;
    cgw_mcp_config_options_init(&o);
    o.claude_json_path = f->claude;
    o.project_dir = f->proj;
    o.getenv_fn = fake_getenv;
    o.getenv_user = f;
    return o;
}

static cgw_mcp_config_t *load_ok(const cgw_mcp_config_options_t *o)
{
    cgw_mcp_config_t *c = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw_mcp_config_load(o, &c, &err);
    if (rc != CGW_OK) {
        fail_msg("load failed: %s (%s)", cgw_err_name(rc), err.message);
    }
    return c;
}

static const cgw_mcp_server_config_t *must_find(const cgw_mcp_config_t *c, const char *name)
{
    const cgw_mcp_server_config_t *s = cgw_mcp_config_find(c, name);
    if (s == NULL) {
        fail_msg("server %s not found", name);
    }
    return s;
}

static void test_defaults(void **state)
{
    (void)state;
    cgw_mcp_config_options_t o;
    cgw_mcp_config_options_init(&o);
    assert_int_equal(o.scopes, CGW_MCP_SCOPE_USER | CGW_MCP_SCOPE_PROJECT | CGW_MCP_SCOPE_LOCAL);
    assert_int_equal(o.startup_timeout_ms, 15000);
    assert_int_equal(o.tool_timeout_ms, 30000);
    assert_null(o.allowed_servers);
    assert_null(o.claude_json_path);
    assert_string_equal(cgw_mcp_scope_name(CGW_MCP_SCOPE_LOCAL), "local");
    assert_string_equal(cgw_mcp_scope_name(CGW_MCP_SCOPE_EXPLICIT), "explicit");
    assert_string_equal(cgw_mcp_scope_name((cgw_mcp_scope_t)0), "?");
    assert_string_equal(cgw_mcp_transport_name(CGW_MCP_TRANSPORT_SSE), "sse");
    assert_string_equal(cgw_mcp_transport_name(CGW_MCP_TRANSPORT_UNKNOWN), "unknown");
}

/* The user scope as Claude Code writes it, with the state file's other keys around it. */
static void test_user_scope_fields(void **state)
{
    fx_t *f = *state;
    write_file(f->claude,
               "{\"numStartups\": 12, \"tipsHistory\": {\"x\": 1},\n"
               " \"mcpServers\": {\n"
               "  \"files\": {\"type\": \"stdio\", \"command\": \"npx\",\n"
               "            \"args\": [\"-y\", \"@modelcontextprotocol/server-filesystem\", 7, "
               "1.5, true],\n"
               "            \"env\": {\"DEBUG\": \"1\", \"SKIP\": null, \"N\": 3},\n"
               "            \"cwd\": \"/tmp\", \"alwaysLoad\": true},\n"
               "  \"bare\": {\"command\": \"  /bin/cat  \"}\n"
               " }}\n");
    cgw_mcp_config_options_t o = opts_for(f);
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 2);
    const cgw_mcp_server_config_t *s = cgw_mcp_config_at(c, 0);
    assert_string_equal(s->name, "files");
    assert_int_equal(s->transport, CGW_MCP_TRANSPORT_STDIO);
    assert_string_equal(s->type, "stdio");
    assert_string_equal(s->command, "npx");
    assert_int_equal(s->n_args, 5);
    const char *want_args[] = {"-y", "@modelcontextprotocol/server-filesystem", "7", "1.5", "true"};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(s->args[i], want_args[i]);
        assert_string_equal(s->argv[i + 1], want_args[i]);
    }
    assert_null(s->args[5]);
    assert_string_equal(s->argv[0], "npx");
    assert_null(s->argv[6]);
    assert_int_equal(s->n_env, 2);
    assert_string_equal(s->env[0], "DEBUG=1");
    assert_string_equal(s->env[1], "N=3");
    assert_null(s->env[2]);
    assert_string_equal(s->cwd, "/tmp");
    assert_null(s->url);
    assert_int_equal(s->n_headers, 0);
    assert_non_null(s->headers);
    assert_int_equal(s->startup_timeout_ms, 15000);
    assert_int_equal(s->tool_timeout_ms, 30000);
    assert_int_equal(s->scope, CGW_MCP_SCOPE_USER);
    assert_int_equal(s->shadowed, 0);
    assert_string_equal(s->source, f->claude);
    assert_int_equal(s->error_code, CGW_OK);
    assert_null(s->error);

    s = cgw_mcp_config_at(c, 1);
    assert_string_equal(s->name, "bare");
    assert_null(s->type);
    assert_string_equal(s->command, "/bin/cat"); /* trimmed like the original */
    assert_int_equal(s->n_args, 0);
    assert_null(s->args[0]);
    assert_null(s->argv[1]);
    assert_null(s->cwd);
    assert_null(cgw_mcp_config_at(c, 2));
    assert_null(cgw_mcp_config_find(c, "nope"));
    cgw_mcp_config_free(c);
}

/* user < project (.mcp.json) < local (projects[dir]) < explicit < inline, and the list keeps
 * the position where each name first appeared. */
static void test_scopes_override_order(void **state)
{
    fx_t *f = *state;
    char claude[1024];
    snprintf(claude, sizeof(claude),
             "{\"mcpServers\": {\"a\": {\"command\": \"user-a\"}, \"b\": {\"command\": "
             "\"user-b\"},\n"
             "                 \"c\": {\"command\": \"user-c\"}},\n"
             " \"projects\": {\"/elsewhere\": {\"mcpServers\": {\"z\": {\"command\": \"z\"}}},\n"
             "   \"%s\": {\"hasTrustDialogAccepted\": true, \"mcpServers\": {\n"
             "     \"c\": {\"command\": \"local-c\"}, \"e\": {\"command\": \"local-e\"},\n"
             "     \"b\": {\"command\": \"local-b\"}}}}}",
             f->proj);
    write_file(f->claude, claude);
    write_file(f->mcpjson, "{\"mcpServers\": {\"b\": {\"command\": \"project-b\"},\n"
                           "                 \"d\": {\"command\": \"project-d\"}}}");
    char explicit_path[256];
    snprintf(explicit_path, sizeof(explicit_path), "%s/explicit.json", f->dir);
    write_file(explicit_path, "{\"mcpServers\": {\"a\": {\"command\": \"explicit-a\"}}}");

    cgw_mcp_config_options_t o = opts_for(f);
    o.scopes |= CGW_MCP_SCOPE_EXPLICIT;
    o.explicit_path = explicit_path;
    cgw_mcp_config_t *c = load_ok(&o);
    const char *names[] = {"a", "b", "c", "d", "e"};
    const char *cmds[] = {"explicit-a", "local-b", "local-c", "project-d", "local-e"};
    cgw_mcp_scope_t scopes[] = {CGW_MCP_SCOPE_EXPLICIT, CGW_MCP_SCOPE_LOCAL, CGW_MCP_SCOPE_LOCAL,
                                CGW_MCP_SCOPE_PROJECT, CGW_MCP_SCOPE_LOCAL};
    assert_int_equal(cgw_mcp_config_count(c), 5);
    for (size_t i = 0; i < 5; i++) {
        const cgw_mcp_server_config_t *s = cgw_mcp_config_at(c, i);
        assert_string_equal(s->name, names[i]);
        assert_string_equal(s->command, cmds[i]);
        assert_int_equal(s->scope, scopes[i]);
    }
    assert_int_equal(must_find(c, "b")->shadowed, CGW_MCP_SCOPE_USER | CGW_MCP_SCOPE_PROJECT);
    assert_int_equal(must_find(c, "a")->shadowed, CGW_MCP_SCOPE_USER);
    assert_string_equal(must_find(c, "a")->source, explicit_path);
    assert_string_equal(must_find(c, "d")->source, f->mcpjson);
    assert_string_equal(must_find(c, "e")->source, f->claude);
    assert_null(cgw_mcp_config_find(c, "z"));

    /* inline documents go above everything and keep the position too */
    const char *doc = "{\"mcpServers\": {\"c\": {\"command\": \"inline-c\"}, \"f\": "
                      "{\"command\": \"inline-f\"}}}";
    assert_int_equal(
        cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, doc, strlen(doc), "test", NULL), CGW_OK);
    assert_int_equal(cgw_mcp_config_count(c), 6);
    assert_string_equal(cgw_mcp_config_at(c, 2)->command, "inline-c");
    assert_int_equal(cgw_mcp_config_at(c, 2)->shadowed, CGW_MCP_SCOPE_USER | CGW_MCP_SCOPE_LOCAL);
    assert_string_equal(cgw_mcp_config_at(c, 2)->source, "test");
    assert_string_equal(cgw_mcp_config_at(c, 5)->name, "f");
    cgw_mcp_config_free(c);

    /* each scope can be switched off */
    o.scopes = CGW_MCP_SCOPE_PROJECT;
    c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 2);
    assert_string_equal(cgw_mcp_config_at(c, 0)->command, "project-b");
    cgw_mcp_config_free(c);
    o.scopes = CGW_MCP_SCOPE_LOCAL;
    c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 3);
    assert_string_equal(cgw_mcp_config_at(c, 0)->name, "c");
    cgw_mcp_config_free(c);
    o.scopes = CGW_MCP_SCOPE_USER;
    c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 3);
    assert_string_equal(cgw_mcp_config_at(c, 1)->command, "user-b");
    cgw_mcp_config_free(c);
}

/* projects[] is keyed by the absolute directory; a symlinked or slash-terminated
 * project_dir still finds it. */
static void test_local_scope_lookup(void **state)
{
    fx_t *f = *state;
    char claude[512];
    snprintf(claude, sizeof(claude),
             "{\"projects\": {\"%s\": {\"mcpServers\": {\"l\": {\"command\": \"x\"}}}}}", f->proj);
    write_file(f->claude, claude);
    char link[256], slashed[256];
    snprintf(link, sizeof(link), "%s/link", f->dir);
    assert_int_equal(symlink(f->proj, link), 0);
    snprintf(slashed, sizeof(slashed), "%s/", f->proj);
    const char *dirs[] = {f->proj, link, slashed};
    for (size_t i = 0; i < 3; i++) {
        cgw_mcp_config_options_t o = opts_for(f);
        o.project_dir = dirs[i];
        cgw_mcp_config_t *c = load_ok(&o);
        assert_int_equal(cgw_mcp_config_count(c), 1);
        assert_int_equal(cgw_mcp_config_at(c, 0)->scope, CGW_MCP_SCOPE_LOCAL);
        cgw_mcp_config_free(c);
    }
    /* the default project dir is the working directory */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->proj), 0);
    cgw_mcp_config_options_t o = opts_for(f);
    o.project_dir = NULL;
    write_file(f->mcpjson, "{\"mcpServers\": {\"p\": {\"command\": \"y\"}}}");
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(cgw_mcp_config_count(c), 2);
    assert_string_equal(cgw_mcp_config_at(c, 0)->name, "p");
    assert_string_equal(cgw_mcp_config_at(c, 1)->name, "l");
    cgw_mcp_config_free(c);
}

static void test_missing_files(void **state)
{
    fx_t *f = *state;
    cgw_mcp_config_options_t o = opts_for(f);
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 0);
    cgw_mcp_config_free(c);

    /* a project dir that does not exist is also just "nothing there" */
    o.project_dir = "/nonexistent/cgw/project";
    c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 0);
    cgw_mcp_config_free(c);

    /* the explicit file is required */
    o.scopes = CGW_MCP_SCOPE_EXPLICIT;
    o.explicit_path = "/nonexistent/cgw/mcp.json";
    cgw_error_t err;
    cgw_error_clear(&err);
    c = NULL;
    assert_int_equal(cgw_mcp_config_load(&o, &c, &err), CGW_ENOENT);
    assert_null(c);
    assert_non_null(strstr(err.message, "/nonexistent/cgw/mcp.json"));
}

/* The default ~/.claude.json comes from HOME (through the lookup function); no HOME means no
 * user or local scope. Also checks the process-environment default lookup. */
static void test_home_default(void **state)
{
    fx_t *f = *state;
    write_file(f->claude, "{\"mcpServers\": {\"h\": {\"command\": \"home\"}}}");
    cgw_mcp_config_options_t o = opts_for(f);
    o.claude_json_path = NULL;
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 1);
    assert_string_equal(cgw_mcp_config_at(c, 0)->source, f->claude);
    cgw_mcp_config_free(c);

    char *old_home = getenv("HOME") != NULL ? strdup(getenv("HOME")) : NULL;
    o.getenv_fn = NULL;
    setenv("HOME", f->dir, 1);
    c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 1);
    cgw_mcp_config_free(c);
    unsetenv("HOME");
    c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 0);
    cgw_mcp_config_free(c);
    if (old_home != NULL) {
        setenv("HOME", old_home, 1);
        free(old_home);
    }
}

static void expect_load_error(const cgw_mcp_config_options_t *o, int code, int line,
                              const char *in_message)
{
    cgw_mcp_config_t *c = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw_mcp_config_load(o, &c, &err), code);
    assert_null(c);
    assert_int_equal(err.code, code);
    if (line > 0) {
        assert_int_equal(err.line, line);
        assert_true(err.column > 0);
    }
    if (strstr(err.message, in_message) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", err.message, in_message);
    }
}

static void test_file_errors(void **state)
{
    fx_t *f = *state;
    cgw_mcp_config_options_t o = opts_for(f);
    write_file(f->claude, "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\",}\n  }\n}\n");
    expect_load_error(&o, CGW_EJSON, 3, f->claude);
    write_file(f->claude, "[1, 2]");
    expect_load_error(&o, CGW_ECONFIG, 0, "not a JSON object");
    write_file(f->claude, "{\"mcpServers\": \"nope\"}");
    expect_load_error(&o, CGW_ECONFIG, 0, "\"mcpServers\"");
    write_file(f->claude, "{\"projects\": []}");
    expect_load_error(&o, CGW_ECONFIG, 0, "\"projects\"");
    char claude[512];
    snprintf(claude, sizeof(claude), "{\"projects\": {\"%s\": 5}}", f->proj);
    write_file(f->claude, claude);
    expect_load_error(&o, CGW_ECONFIG, 0, "projects[");
    snprintf(claude, sizeof(claude), "{\"projects\": {\"%s\": {\"mcpServers\": [1]}}}", f->proj);
    write_file(f->claude, claude);
    expect_load_error(&o, CGW_ECONFIG, 0, "\"mcpServers\"");
    write_file(f->claude, "{}");
    write_file(f->mcpjson, "{\"mcpServers\": {\"a\": \n\n");
    expect_load_error(&o, CGW_EJSON, 0, f->mcpjson);
    write_file(f->mcpjson, "");
    expect_load_error(&o, CGW_EJSON, 0, ".mcp.json");
    /* a folder where a file should be is refused, not read */
    remove(f->mcpjson);
    mkdir(f->mcpjson, 0700);
    expect_load_error(&o, CGW_EINVAL, 0, "regular file");
    rmdir(f->mcpjson);
    /* an unreadable file is an error, not "missing" (root can read anything: skip then) */
    write_file(f->mcpjson, "{}");
    chmod(f->mcpjson, 0);
    if (geteuid() != 0) {
        expect_load_error(&o, CGW_EACCES, 0, f->mcpjson);
    }
}

static void test_bad_options(void **state)
{
    fx_t *f = *state;
    cgw_mcp_config_t *c = NULL;
    cgw_mcp_config_options_t o = opts_for(f);
    o.scopes |= CGW_MCP_SCOPE_EXPLICIT; /* without explicit_path */
    assert_int_equal(cgw_mcp_config_load(&o, &c, NULL), CGW_EINVAL);
    o = opts_for(f);
    o.tool_timeout_ms = 0;
    assert_int_equal(cgw_mcp_config_load(&o, &c, NULL), CGW_EINVAL);
    o = opts_for(f);
    o.scopes = 1u << 20;
    assert_int_equal(cgw_mcp_config_new(&o, &c), CGW_EINVAL);
    o = opts_for(f);
    o.n_allowed_servers = 2;
    assert_int_equal(cgw_mcp_config_new(&o, &c), CGW_EINVAL);
    cgw_mcp_timeout_override_t bad = {NULL, 5};
    o = opts_for(f);
    o.timeout_overrides = &bad;
    o.n_timeout_overrides = 1;
    assert_int_equal(cgw_mcp_config_new(&o, &c), CGW_EINVAL);
    assert_null(c);
    assert_int_equal(cgw_mcp_config_load(&o, NULL, NULL), CGW_EINVAL);
    assert_int_equal(cgw_mcp_config_add_json(NULL, CGW_MCP_SCOPE_INLINE, "{}", 2, NULL, NULL),
                     CGW_EINVAL);
    /* NULL options = defaults; an empty config answers queries */
    assert_int_equal(cgw_mcp_config_new(NULL, &c), CGW_OK);
    assert_int_equal(cgw_mcp_config_count(c), 0);
    assert_null(cgw_mcp_config_find(c, NULL));
    cgw_mcp_config_free(c);
    cgw_mcp_config_free(NULL);
    assert_int_equal(cgw_mcp_config_count(NULL), 0);
}

static void test_expansion(void **state)
{
    fx_t *f = *state;
    write_file(f->claude,
               "{\"mcpServers\": {\n"
               " \"s\": {\"command\": \"${BIN}\",\n"
               "       \"args\": [\"${HOME}/src\", \"--t=${TOKEN}\", \"${UNSET:-fallback}\",\n"
               "                \"[${EMPTY:-notused}]\", \"$TOKEN\", \"${TOKEN\", \"$${TOKEN}\",\n"
               "                \"${UNSET:-}\", \"${UNSET:-a:-b}\", \"x${BIN}y${TOKEN}z\"],\n"
               "       \"env\": {\"K\": \"${TOKEN}\", \"D\": \"${DEBUG:-false}\"},\n"
               "       \"cwd\": \"${HOME}\"},\n"
               " \"h\": {\"type\": \"http\", \"url\": \"https://${UNSET:-example.com}/mcp\",\n"
               "       \"headers\": {\"Authorization\": \"Bearer ${TOKEN}\"}}}}");
    cgw_mcp_config_options_t o = opts_for(f);
    cgw_mcp_config_t *c = load_ok(&o);
    const cgw_mcp_server_config_t *s = must_find(c, "s");
    assert_int_equal(s->error_code, CGW_OK);
    assert_string_equal(s->command, "/usr/bin/node");
    char home_src[256];
    snprintf(home_src, sizeof(home_src), "%s/src", f->dir);
    const char *want[] = {
        home_src,  "--t=s3cret-token", "fallback", "[]",   "$TOKEN",
        "${TOKEN", "$s3cret-token",    "",         "a:-b", "x/usr/bin/nodeys3cret-tokenz"};
    assert_int_equal(s->n_args, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_string_equal(s->args[i], want[i]);
    }
    assert_string_equal(s->env[0], "K=s3cret-token");
    assert_string_equal(s->env[1], "D=false");
    assert_string_equal(s->cwd, "${HOME}"); /* cwd is not expanded (nor by Claude Code) */
    const cgw_mcp_server_config_t *h = must_find(c, "h");
    assert_string_equal(h->url, "https://example.com/mcp");
    assert_int_equal(h->n_headers, 1);
    assert_string_equal(h->headers[0].name, "Authorization");
    assert_string_equal(h->headers[0].value, "Bearer s3cret-token");
    cgw_mcp_config_free(c);
}

/* Expansion through the real process environment (getenv_fn = NULL). */
static void test_expansion_environ(void **state)
{
    fx_t *f = *state;
    write_file(f->mcpjson, "{\"mcpServers\": {\"e\": {\"command\": \"${CGW_TEST_MCP_CMD}\", "
                           "\"args\": [\"${CGW_TEST_MCP_UNSET:-d}\"]}}}");
    setenv("CGW_TEST_MCP_CMD", "/bin/true", 1);
    unsetenv("CGW_TEST_MCP_UNSET");
    cgw_mcp_config_options_t o = opts_for(f);
    o.getenv_fn = NULL;
    cgw_mcp_config_t *c = load_ok(&o);
    assert_string_equal(must_find(c, "e")->command, "/bin/true");
    assert_string_equal(must_find(c, "e")->args[0], "d");
    cgw_mcp_config_free(c);

    char *out = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw_mcp_expand_vars("a ${CGW_TEST_MCP_CMD} b", NULL, NULL, &out, &err),
                     CGW_OK);
    assert_string_equal(out, "a /bin/true b");
    cgw_free(out);
    unsetenv("CGW_TEST_MCP_CMD");
    out = NULL;
    assert_int_equal(cgw_mcp_expand_vars("ab${CGW_TEST_MCP_CMD}", NULL, NULL, &out, &err),
                     CGW_ECONFIG);
    assert_null(out);
    assert_int_equal(err.column, 3);
    assert_non_null(strstr(err.message, "CGW_TEST_MCP_CMD is not set"));
}

static void test_expand_direct(void **state)
{
    fx_t *f = *state;
    struct {
        const char *in, *out;
        int rc;
    } cases[] = {
        {"", "", CGW_OK},
        {"plain", "plain", CGW_OK},
        {"${TOKEN}${TOKEN}", "s3cret-tokens3cret-token", CGW_OK},
        {"${EMPTY}", "", CGW_OK},
        {"${EMPTY:-x}", "", CGW_OK},
        {"${MISSING:-${TOKEN}}", "${TOKEN}", CGW_OK}, /* no nesting: default ends at '}' */
        {"$", "$", CGW_OK},
        {"${", "${", CGW_OK},
        {"}${TOKEN}{", "}s3cret-token{", CGW_OK},
        {"${}", NULL, CGW_ECONFIG},
        {"${1ABC}", NULL, CGW_ECONFIG},
        {"${A B}", NULL, CGW_ECONFIG},
        {"${:-x}", NULL, CGW_ECONFIG},
        {"x${MISSING}", NULL, CGW_ECONFIG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        cgw_error_t err;
        cgw_error_clear(&err);
        int rc = cgw_mcp_expand_vars(cases[i].in, fake_getenv, f, &out, &err);
        if (rc != cases[i].rc) {
            fail_msg("case %zu \"%s\": rc %d", i, cases[i].in, rc);
        }
        if (rc == CGW_OK) {
            assert_string_equal(out, cases[i].out);
        } else {
            assert_null(out);
            assert_int_equal(err.code, CGW_ECONFIG);
            assert_true(err.column >= 1);
        }
        cgw_free(out);
    }
    char *out = NULL;
    assert_int_equal(cgw_mcp_expand_vars(NULL, NULL, NULL, &out, NULL), CGW_EINVAL);
}

/* One broken server never takes the others down; each error names the server and field. */
static void test_per_server_errors(void **state)
{
    fx_t *f = *state;
    write_file(
        f->claude,
        "{\"mcpServers\": {\n"
        " \"ok1\": {\"command\": \"a\"},\n"
        " \"unset\": {\"command\": \"a\", \"args\": [\"--key=${NOT_SET_ANYWHERE}\"]},\n"
        " \"badname\": {\"command\": \"${9x}\"},\n"
        " \"nocmd\": {\"args\": [\"x\"]},\n"
        " \"emptycmd\": {\"command\": \"   \"},\n"
        " \"numcmd\": {\"command\": 5},\n"
        " \"argsobj\": {\"command\": \"a\", \"args\": {\"x\": 1}},\n"
        " \"argnested\": {\"command\": \"a\", \"args\": [\"ok\", [1]]},\n"
        " \"argnull\": {\"command\": \"a\", \"args\": [null]},\n"
        " \"envarr\": {\"command\": \"a\", \"env\": [\"A=1\"]},\n"
        " \"envobj\": {\"command\": \"a\", \"env\": {\"A\": {\"b\": 1}}},\n"
        " \"envkey\": {\"command\": \"a\", \"env\": {\"A=B\": \"1\"}},\n"
        " \"envunset\": {\"command\": \"a\", \"env\": {\"A\": \"${NOPE}\"}},\n"
        " \"cwdnum\": {\"command\": \"a\", \"cwd\": 1},\n"
        " \"typenum\": {\"type\": 1, \"command\": \"a\"},\n"
        " \"notobj\": \"npx server\",\n"
        " \"hdrs\": {\"type\": \"http\", \"url\": \"u\", \"headers\": [\"A: b\"]},\n"
        " \"hdrname\": {\"type\": \"http\", \"url\": \"u\", \"headers\": {\"A b\": \"c\"}},\n"
        " \"hdrnl\": {\"type\": \"http\", \"url\": \"u\", \"headers\": {\"X\": \"${NL}\"}},\n"
        " \"hdrunset\": {\"type\": \"sse\", \"url\": \"u\", \"headers\": {\"X\": "
        "\"${NOPE}\"}},\n"
        " \"urlunset\": {\"type\": \"http\", \"url\": \"https://${NOPE}/\"},\n"
        " \"nourl\": {\"type\": \"sse\"},\n"
        " \"ok2\": {\"command\": \"b\"}}}");
    cgw_mcp_config_options_t o = opts_for(f);
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 23);
    struct {
        const char *name, *needle;
    } bad[] = {
        {"unset", "\"args[0]\": environment variable NOT_SET_ANYWHERE is not set"},
        {"badname", "invalid variable name \"${9x}\""},
        {"nocmd", "has no \"command\""},
        {"emptycmd", "\"command\" is empty"},
        {"numcmd", "\"command\" must be a string"},
        {"argsobj", "\"args\" must be an array"},
        {"argnested", "\"args[1]\" must be a string"},
        {"argnull", "\"args[0]\" must be a string"},
        {"envarr", "\"env\" must be an object"},
        {"envobj", "\"env.A\" must be a string"},
        {"envkey", "invalid variable name \"A=B\""},
        {"envunset", "\"env.A\": environment variable NOPE"},
        {"cwdnum", "\"cwd\" must be a string"},
        {"typenum", "\"type\" must be a string"},
        {"notobj", "must be a JSON object"},
        {"hdrs", "\"headers\" must be an object"},
        {"hdrname", "invalid header name \"A b\""},
        {"hdrnl", "\"headers.X\" contains a line break"},
        {"hdrunset", "\"headers.X\": environment variable NOPE"},
        {"urlunset", "\"url\": environment variable NOPE"},
        {"nourl", "has no \"url\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const cgw_mcp_server_config_t *s = must_find(c, bad[i].name);
        assert_int_equal(s->error_code, CGW_ECONFIG);
        assert_non_null(s->error);
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "MCP server \"%s\": ", bad[i].name);
        assert_memory_equal(s->error, prefix, strlen(prefix));
        if (strstr(s->error, bad[i].needle) == NULL) {
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].name, s->error, bad[i].needle);
        }
        /* secrets never reach error messages */
        assert_null(strstr(s->error, "s3cret"));
        assert_non_null(s->args);
        assert_non_null(s->env);
        assert_non_null(s->headers);
    }
    assert_null(must_find(c, "nocmd")->argv);
    assert_int_equal(must_find(c, "ok1")->error_code, CGW_OK);
    assert_int_equal(must_find(c, "ok2")->error_code, CGW_OK);
    assert_string_equal(cgw_mcp_config_at(c, 22)->name, "ok2");
    cgw_mcp_config_free(c);
}

/* http and sse entries are kept, parsed and marked "not supported yet". */
static void test_remote_entries(void **state)
{
    fx_t *f = *state;
    write_file(
        f->mcpjson,
        "{\"mcpServers\": {\n"
        " \"remote\": {\"type\": \"http\", \"url\": \"https://example.com/mcp\",\n"
        "   \"headers\": {\"Authorization\": \"Bearer ${TOKEN}\", \"X-N\": 2, \"Z\": null}},\n"
        " \"streamable\": {\"type\": \"Streamable-HTTP\", \"url\": \"https://e/mcp\"},\n"
        " \"old\": {\"type\": \"sse\", \"url\": \"https://example.com/sse\"},\n"
        " \"urlonly\": {\"url\": \"https://u/mcp\"},\n"
        " \"ws\": {\"type\": \"ws\", \"url\": \"wss://x\"},\n"
        " \"upper\": {\"type\": \" STDIO \", \"command\": \"c\"}}}");
    cgw_mcp_config_options_t o = opts_for(f);
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 6);
    const cgw_mcp_server_config_t *s = must_find(c, "remote");
    assert_int_equal(s->transport, CGW_MCP_TRANSPORT_HTTP);
    assert_int_equal(s->error_code, CGW_ENOTSUP);
    assert_string_equal(s->error, "MCP server \"remote\": transport \"http\" is not supported yet");
    assert_string_equal(s->url, "https://example.com/mcp");
    assert_int_equal(s->n_headers, 2);
    assert_string_equal(s->headers[0].value, "Bearer s3cret-token");
    assert_string_equal(s->headers[1].name, "X-N");
    assert_string_equal(s->headers[1].value, "2");
    assert_null(s->command);
    assert_null(s->argv);
    assert_int_equal(s->scope, CGW_MCP_SCOPE_PROJECT);
    s = must_find(c, "streamable");
    assert_int_equal(s->transport, CGW_MCP_TRANSPORT_HTTP);
    assert_string_equal(s->type, "Streamable-HTTP");
    s = must_find(c, "old");
    assert_int_equal(s->transport, CGW_MCP_TRANSPORT_SSE);
    assert_int_equal(s->error_code, CGW_ENOTSUP);
    assert_non_null(strstr(s->error, "\"sse\" is not supported yet"));
    s = must_find(c, "urlonly");
    assert_int_equal(s->transport, CGW_MCP_TRANSPORT_HTTP);
    assert_null(s->type);
    assert_int_equal(s->error_code, CGW_ENOTSUP);
    s = must_find(c, "ws");
    assert_int_equal(s->transport, CGW_MCP_TRANSPORT_UNKNOWN);
    assert_int_equal(s->error_code, CGW_ENOTSUP);
    assert_non_null(strstr(s->error, "unknown transport type \"ws\""));
    s = must_find(c, "upper");
    assert_int_equal(s->transport, CGW_MCP_TRANSPORT_STDIO);
    assert_int_equal(s->error_code, CGW_OK);
    cgw_mcp_config_free(c);
}

static void test_allow_list_and_timeouts(void **state)
{
    fx_t *f = *state;
    write_file(f->claude, "{\"mcpServers\": {\"a\": {\"command\": \"a\"}, \"b\": {\"command\": "
                          "\"b\"}, \"c\": {\"command\": \"c\"}, \"bad\": 1}}");
    const char *allow[] = {"c", "a", "not-configured"};
    cgw_mcp_timeout_override_t over[] = {{"c", 120000}, {"zzz", 1}};
    cgw_mcp_config_options_t o = opts_for(f);
    o.allowed_servers = allow;
    o.n_allowed_servers = 3;
    o.timeout_overrides = over;
    o.n_timeout_overrides = 2;
    o.startup_timeout_ms = 5000;
    o.tool_timeout_ms = 7000;
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 2);
    const cgw_mcp_server_config_t *a = cgw_mcp_config_at(c, 0), *cc = cgw_mcp_config_at(c, 1);
    assert_string_equal(a->name, "a"); /* config order, not allow-list order */
    assert_string_equal(cc->name, "c");
    assert_int_equal(a->tool_timeout_ms, 7000);
    assert_int_equal(a->startup_timeout_ms, 5000);
    assert_int_equal(cc->tool_timeout_ms, 120000);
    assert_int_equal(cc->startup_timeout_ms, 5000);
    /* later documents obey the allow-list too */
    const char *doc = "{\"mcpServers\": {\"b\": {\"command\": \"b\"}, \"c\": {\"command\": "
                      "\"c2\"}}}";
    assert_int_equal(cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, doc, strlen(doc), NULL, NULL),
                     CGW_OK);
    assert_int_equal(cgw_mcp_config_count(c), 2);
    assert_string_equal(must_find(c, "c")->command, "c2");
    assert_string_equal(must_find(c, "c")->source, "inline");
    assert_int_equal(must_find(c, "c")->tool_timeout_ms, 120000);
    cgw_mcp_config_free(c);

    /* an empty (non-NULL) allow-list allows nothing */
    o.n_allowed_servers = 0;
    c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 0);
    cgw_mcp_config_free(c);
}

static const char *bad_timeout_env(const char *name, void *user)
{
    (void)user;
    return strcmp(name, "MCP_TOOL_TIMEOUT") == 0 ? (const char *)"30s" : NULL;
}

/* Claude Code's MCP_TIMEOUT / MCP_TOOL_TIMEOUT, only when asked for. */
static void test_claude_env_timeouts(void **state)
{
    fx_t *f = *state;
    write_file(f->claude, "{\"mcpServers\": {\"a\": {\"command\": \"a\"}, \"b\": {\"command\": "
                          "\"b\"}}}");
    cgw_mcp_timeout_override_t over[] = {{"b", 1234}};
    cgw_mcp_config_options_t o = opts_for(f);
    o.timeout_overrides = over;
    o.n_timeout_overrides = 1;
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(must_find(c, "a")->startup_timeout_ms, 15000); /* off by default */
    assert_int_equal(must_find(c, "a")->tool_timeout_ms, 30000);
    cgw_mcp_config_free(c);
    o.claude_env_timeouts = true;
    c = load_ok(&o);
    assert_int_equal(must_find(c, "a")->startup_timeout_ms, 45000);
    assert_int_equal(must_find(c, "a")->tool_timeout_ms, 90000);
    assert_int_equal(must_find(c, "b")->tool_timeout_ms, 1234); /* overrides still win */
    cgw_mcp_config_free(c);
    o.getenv_fn = bad_timeout_env;
    expect_load_error(&o, CGW_ECONFIG, 0, "MCP_TOOL_TIMEOUT");
}

/* A UTF-8 byte order mark in front of the JSON (Windows editors) is skipped. */
static void test_bom(void **state)
{
    fx_t *f = *state;
    write_file(f->mcpjson, "\xEF\xBB\xBF{\"mcpServers\": {\"w\": {\"command\": \"x\"}}}");
    cgw_mcp_config_options_t o = opts_for(f);
    cgw_mcp_config_t *c = load_ok(&o);
    assert_int_equal(cgw_mcp_config_count(c), 1);
    cgw_mcp_config_free(c);
    write_file(f->mcpjson, "\xEF\xBB");
    expect_load_error(&o, CGW_EJSON, 0, ".mcp.json");
}

static void test_add_json_errors(void **state)
{
    fx_t *f = *state;
    cgw_mcp_config_options_t o = opts_for(f);
    cgw_mcp_config_t *c = NULL;
    assert_int_equal(cgw_mcp_config_new(&o, &c), CGW_OK);
    const char *good = "{\"mcpServers\": {\"a\": {\"command\": \"a\"}}}";
    assert_int_equal(
        cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, good, strlen(good), "g", NULL), CGW_OK);
    cgw_error_t err;
    cgw_error_clear(&err);
    const char *bad = "{\"mcpServers\": {\"a\": {\"command\": \"b\"}}";
    assert_int_equal(cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, bad, strlen(bad), "b", &err),
                     CGW_EJSON);
    assert_int_equal(err.line, 1);
    const char *notobj = "{\"mcpServers\": 3}";
    assert_int_equal(
        cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, notobj, strlen(notobj), "n", &err),
        CGW_ECONFIG);
    assert_int_equal(cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, "7", 1, "n", &err),
                     CGW_ECONFIG);
    /* nothing changed */
    assert_int_equal(cgw_mcp_config_count(c), 1);
    assert_string_equal(cgw_mcp_config_at(c, 0)->command, "a");
    /* a document without mcpServers adds nothing */
    assert_int_equal(cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, "{}", 2, NULL, NULL), CGW_OK);
    assert_int_equal(cgw_mcp_config_count(c), 1);
    cgw_mcp_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_user_scope_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scopes_override_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_scope_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_home_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expansion_environ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expand_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_server_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allow_list_and_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_json_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claude_env_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bom, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
