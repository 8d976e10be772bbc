/* Allocation failure in the MCP configuration, naming and result code: every allocation is
 * made to fail in turn (through cgw_set_allocator, which jansson shares), and each operation
 * must then report CGW_ENOMEM (or, where jansson's parser hides it, CGW_EJSON), leave its
 * object usable and unchanged, and leak nothing (checked by the ASan run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "mcp/mcp_result.h"
#include "testutil.h"

static long fail_countdown = -1; /* -1 = never fail */
static long allocations;
static long current_k; /* the allocation made to fail; handy in a debugger */
static long refused;   /* allocations that returned NULL in this run */

/* Counts down to the allocation that must fail; from then on every allocation fails. */
static bool refuse(void)
{
    allocations++;
    if (fail_countdown == 0) {
        refused++;
        return true;
    }
    if (fail_countdown > 0) {
        fail_countdown--;
    }
    return false;
}

static void *failing_malloc(size_t n)
{
    return refuse() ? NULL : malloc(n);
}

static void *failing_realloc(void *p, size_t n)
{
    return refuse() ? NULL : realloc(p, n);
}

/* Runs op with the k-th allocation failing, for k = 0, 1, ... until op succeeds without
 * reaching the failure. Returns how many failure points were exercised. */
static long sweep(int (*op)(void *), void *arg, const int *allowed, size_t n_allowed)
{
    for (long k = 0;; k++) {
        allocations = 0;
        refused = 0;
        current_k = k;
        fail_countdown = k;
        int rc = op(arg);
        bool hit = refused > 0;
        fail_countdown = -1;
        if (!hit) {
            assert_int_equal(rc, CGW_OK);
            return k;
        }
        bool ok = rc == CGW_ENOMEM;
        for (size_t i = 0; i < n_allowed; i++) {
            ok = ok || rc == allowed[i];
        }
        if (!ok) {
            fail_msg("allocation %ld failed: got %s", k, cgw_err_name(rc));
        }
    }
}

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static const char *fake_getenv(const char *name, void *user)
{
    (void)user;
    return strcmp(name, "TOKEN") == 0 ? "tok" : NULL;
}

static int op_load(void *arg)
{
    (void)arg;
    char claude[128], proj[128];
    snprintf(claude, sizeof(claude), "%s/claude.json", dir);
    snprintf(proj, sizeof(proj), "%s", dir);
    const char *allow[] = {"a", "b", "h", "bad", "c"};
    cgw_mcp_timeout_override_t over[] = {{"a", 1000}};
    cgw_mcp_config_options_t o;
    cgw_mcp_config_options_init(&o);
    o.claude_json_path = claude;
    o.project_dir = proj;
    o.getenv_fn = fake_getenv;
    o.allowed_servers = allow;
    o.n_allowed_servers = 5;
    o.timeout_overrides = over;
    o.n_timeout_overrides = 1;
    cgw_mcp_config_t *c = NULL;
    int rc = cgw_mcp_config_load(&o, &c, NULL);
    if (rc != CGW_OK) {
        assert_null(c);
        return rc;
    }
    /* the merge of an inline document must leave `c` unchanged when it fails */
    const char *doc = "{\"mcpServers\":{\"a\":{\"command\":\"inline\",\"args\":[\"${TOKEN}\"]},"
                      "\"c\":{\"command\":\"c\",\"env\":{\"K\":\"v\"}}}}";
    rc = cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, doc, strlen(doc), "inline", NULL);
    if (rc == CGW_OK) {
        assert_int_equal(cgw_mcp_config_count(c), 5);
        assert_string_equal(cgw_mcp_config_find(c, "a")->command, "inline");
    } else {
        assert_int_equal(cgw_mcp_config_count(c), 4);
        assert_string_equal(cgw_mcp_config_find(c, "a")->command, "local");
    }
    cgw_mcp_config_free(c);
    return rc;
}

static void test_config_oom(void **state)
{
    (void)state;
    fail_countdown = -1;
    char claude[1024];
    snprintf(claude, sizeof(claude),
             "{\"mcpServers\":{\"a\":{\"command\":\"a\",\"args\":[\"x\",1,\"${TOKEN}\"],"
             "\"env\":{\"A\":\"${TOKEN}\",\"B\":2.5},\"cwd\":\"/\"},"
             "\"h\":{\"type\":\"http\",\"url\":\"https://${TOKEN}\",\"headers\":{\"X\":\"y\"}},"
             "\"bad\":{\"command\":\"${NOPE}\"}},"
             "\"projects\":{\"%s\":{\"mcpServers\":{\"a\":{\"command\":\"local\"}}}}}",
             dir);
    write_file("claude.json", claude);
    write_file(".mcp.json", "{\"mcpServers\":{\"b\":{\"command\":\"b\"}}}");
    const int also[] = {CGW_EJSON};
    long points = sweep(op_load, NULL, also, 1);
    assert_true(points > 50);
}

static int op_toolmap(void *arg)
{
    cgw_mcp_naming_t naming = *(cgw_mcp_naming_t *)arg;
    const char *builtins[] = {"echo", "x"};
    cgw_mcp_toolmap_options_t o;
    cgw_mcp_toolmap_options_init(&o);
    o.naming = naming;
    o.builtin_names = builtins;
    o.n_builtin_names = 2;
    cgw_mcp_toolmap_t *m = NULL;
    int rc = cgw_mcp_toolmap_new(&o, &m);
    if (rc != CGW_OK) {
        return rc;
    }
    /* long names (shortened), and in the second half the same tools on a server whose name
     * sanitizes alike (prefixed: clash and rehash; plain: duplicates) */
    char tool[128];
    for (int i = 0; i < 40 && rc == CGW_OK; i++) {
        snprintf(tool, sizeof(tool), "tool.%d_%060d", i % 20, i % 20);
        const char *server = i < 20 ? "server.one" : "server_one";
        size_t before = cgw_mcp_toolmap_count(m);
        rc = cgw_mcp_toolmap_add(m, server, tool, NULL, NULL);
        if (rc != CGW_OK) {
            assert_int_equal(cgw_mcp_toolmap_count(m), before); /* unchanged */
            assert_null(cgw_mcp_toolmap_lookup(m, server, tool));
        }
    }
    if (rc == CGW_OK) {
        assert_int_equal(cgw_mcp_toolmap_count(m), naming == CGW_MCP_NAMING_PLAIN ? 20 : 40);
        for (size_t i = 0; i < cgw_mcp_toolmap_count(m); i++) {
            const cgw_mcp_tool_ref_t *r = cgw_mcp_toolmap_at(m, i);
            assert_ptr_equal(cgw_mcp_toolmap_find(m, r->exposed), r);
            assert_ptr_equal(cgw_mcp_toolmap_lookup(m, r->server, r->tool), r);
        }
    }
    cgw_mcp_toolmap_free(m);
    return rc;
}

static void test_toolmap_oom(void **state)
{
    (void)state;
    fail_countdown = -1;
    cgw_mcp_naming_t namings[] = {CGW_MCP_NAMING_PLAIN, CGW_MCP_NAMING_PREFIXED};
    for (size_t i = 0; i < 2; i++) {
        assert_true(sweep(op_toolmap, &namings[i], NULL, 0) > 20);
    }
}

#define PNG                                                                                        \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+"                                \
    "M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

static int op_result(void *arg)
{
    const json_t *in = arg;
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    int rc = cgw__mcp_outcome_from_result(in, "t", &o);
    if (rc != CGW_OK) {
        assert_null(o.result);
        assert_null(o.error);
        assert_null(o.content);
        return rc;
    }
    cgw__mcp_outcome_clear(&o);
    rc = cgw__mcp_outcome_from_rpc_error(json_object_get(in, "rpc"), &o);
    cgw__mcp_outcome_clear(&o);
    if (rc == CGW_OK) {
        rc = cgw__mcp_outcome_from_failure(CGW_ETIMEDOUT, NULL, &o);
        cgw__mcp_outcome_clear(&o);
    }
    return rc;
}

static void test_result_oom(void **state)
{
    (void)state;
    fail_countdown = -1;
    const char *docs[] = {
        "{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":[1,2,{\\\"b\\\":3}]}\"},"
        "{\"type\":\"image\",\"data\":\"" PNG "\",\"mimeType\":\"image/png\"},"
        "{\"type\":\"image\",\"data\":\"QUJD\",\"mimeType\":\"image/tiff\"},"
        "{\"type\":\"audio\",\"data\":\"QUJD\",\"mimeType\":\"audio/wav\"},"
        "{\"type\":\"resource\",\"resource\":{\"uri\":\"u\",\"text\":\"t\"}},"
        "{\"type\":\"resource\",\"resource\":{\"uri\":\"u\",\"mimeType\":\"application/pdf\","
        "\"blob\":\"QUJD\"}},"
        "{\"type\":\"resource\",\"resource\":{\"uri\":\"u\",\"mimeType\":\"text/plain\","
        "\"blob\":\"QUJD\"}},"
        "{\"type\":\"resource_link\",\"uri\":\"u\",\"name\":\"n\"}],"
        "\"rpc\":{\"code\":-32000,\"message\":\"Connection closed\",\"data\":[1]}}",
        "{\"content\":[{\"type\":\"text\",\"text\":\"not json\"}]}",
        "{\"content\":[],\"structuredContent\":{\"a\":{\"b\":[1,2,3]}}}",
        "{\"isError\":true,\"structuredContent\":{\"caf\\u00e9\":[1]}}",
        "{\"isError\":true,\"content\":[{\"type\":\"text\",\"text\":\"File not found\"}]}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *in = NULL;
        assert_int_equal(cgw_json_parse(docs[i], strlen(docs[i]), &in, NULL), CGW_OK);
        assert_true(sweep(op_result, in, NULL, 0) > 2);
        json_decref(in);
    }
}

int main(void)
{
    /* Must come before the library allocates anything. */
    if (cgw_set_allocator(failing_malloc, failing_realloc, free) != CGW_OK) {
        return 1;
    }
    snprintf(dir, sizeof(dir), "/tmp/cgw_mcpoom_XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_oom),
        cmocka_unit_test(test_toolmap_oom),
        cmocka_unit_test(test_result_oom),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/claude.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/.mcp.json", dir);
    unlink(path);
    rmdir(dir);
    return rc;
}
