/* The MCP manager against the real server-filesystem (reading a file the test wrote, with the
 * directory given both as argv and as the configured root) and server-memory (storing an
 * entity and reading it back), both started concurrently in one manager. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_harness.h"

static mcp_h_t H;
static char dir[256];

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cgw-mcp-fs-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    char path[400];
    snprintf(path, sizeof(path), "%s/hello.txt", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fputs("hello from the test\nsecond line\n", f);
    fclose(f);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"mcpServers\":{"
             "\"fs\":{\"type\":\"stdio\",\"command\":\"node\",\"args\":[\"%s\",\"%s\"]},"
             "\"memory\":{\"command\":\"node\",\"args\":[\"%s\"],"
             "\"env\":{\"MEMORY_FILE_PATH\":\"%s/memory.jsonl\"}}}}",
             mcp_h_npm_entry("filesystem"), dir, mcp_h_npm_entry("memory"), dir);
    static char root[400];
    snprintf(root, sizeof(root), "file://%s", dir);
    static const char *roots[2];
    roots[0] = root;
    cgw_mcp_manager_options_t o;
    mcp_h_options(&H, &o);
    o.roots = roots;
    if (!mcp_h_start(&H, cfg, &o, 20000) || H.n_ready != 2) {
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return mcp_h_teardown(&H, dir);
}

static void test_filesystem_reads_file(void **state)
{
    (void)state;
    char in[600];
    snprintf(in, sizeof(in), "{\"path\":\"%s/hello.txt\"}", dir);
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "read_text_file", in, NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_null(c.error);
    assert_string_equal(c.server, "fs");
    char *dump = json_dumps(c.result, JSON_COMPACT);
    assert_non_null(strstr(dump, "hello from the test"));
    free(dump);
    mcp_h_call_clear(&c);
    /* Outside the allowed directory: the server refuses (isError -> mcp_tool_error). */
    assert_true(mcp_h_call(&H, "read_text_file", "{\"path\":\"/etc/hostname\"}", NULL, &c, 5000));
    assert_string_equal(json_string_value(json_object_get(c.error, "code")), "mcp_tool_error");
    mcp_h_call_clear(&c);
}

static void test_memory_store_and_read_back(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "create_entities",
                           "{\"entities\":[{\"name\":\"cgw-test-entity\",\"entityType\":\"test\","
                           "\"observations\":[\"stored by the C test\"]}]}",
                           NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_null(c.error);
    assert_string_equal(c.server, "memory");
    mcp_h_call_clear(&c);
    assert_true(mcp_h_call(&H, "open_nodes", "{\"names\":[\"cgw-test-entity\"]}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    json_t *ent = json_array_get(json_object_get(c.result, "entities"), 0);
    assert_string_equal(json_string_value(json_object_get(ent, "name")), "cgw-test-entity");
    assert_string_equal(json_string_value(json_array_get(json_object_get(ent, "observations"), 0)),
                        "stored by the C test");
    mcp_h_call_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filesystem_reads_file),
        cmocka_unit_test(test_memory_store_and_read_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
