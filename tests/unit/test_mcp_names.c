/* MCP tool names: builtin and first-server rules, Claude Code prefixes, the 64-character
 * limit, and a property test that many random long names stay valid, unique and findable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static cgw_mcp_toolmap_t *map_new(cgw_mcp_naming_t naming, const char *const *builtins,
                                  size_t n_builtins, size_t max_len)
{
    cgw_mcp_toolmap_options_t o;
    cgw_mcp_toolmap_options_init(&o);
    o.naming = naming;
    o.builtin_names = builtins;
    o.n_builtin_names = n_builtins;
    if (max_len != 0) {
        o.max_name_len = max_len;
    }
    cgw_mcp_toolmap_t *m = NULL;
    assert_int_equal(cgw_mcp_toolmap_new(&o, &m), CGW_OK);
    return m;
}

static const cgw_mcp_tool_ref_t *add(cgw_mcp_toolmap_t *m, const char *server, const char *tool,
                                     cgw_mcp_tool_status_t want)
{
    cgw_mcp_tool_status_t st = (cgw_mcp_tool_status_t)-1;
    const cgw_mcp_tool_ref_t *ref = NULL;
    assert_int_equal(cgw_mcp_toolmap_add(m, server, tool, &st, &ref), CGW_OK);
    if (st != want) {
        fail_msg("%s/%s: status %s, expected %s", server, tool, cgw_mcp_tool_status_name(st),
                 cgw_mcp_tool_status_name(want));
    }
    return ref;
}

/* The documented hash: 64-bit FNV-1a, folded to 32 bits, 8 lowercase hex digits. */
static unsigned doc_hash(const char *a, size_t alen, const char *b, size_t blen)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < alen; i++) {
        h = (h ^ (unsigned char)a[i]) * 0x100000001b3ULL;
    }
    for (size_t i = 0; i < blen; i++) {
        h = (h ^ (unsigned char)b[i]) * 0x100000001b3ULL;
    }
    return (unsigned)((h ^ (h >> 32)) & 0xffffffffu);
}

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(cgw_mcp_tool_name_valid("read_file-2", 64));
    assert_false(cgw_mcp_tool_name_valid("", 64));
    assert_false(cgw_mcp_tool_name_valid(NULL, 64));
    assert_false(cgw_mcp_tool_name_valid("read.file", 64));
    assert_false(cgw_mcp_tool_name_valid("a b", 64));
    assert_false(cgw_mcp_tool_name_valid("caf\xc3\xa9", 64));
    char n[66];
    memset(n, 'a', 65);
    n[65] = '\0';
    assert_false(cgw_mcp_tool_name_valid(n, 64));
    n[64] = '\0';
    assert_true(cgw_mcp_tool_name_valid(n, 64));
    assert_string_equal(cgw_mcp_tool_status_name(CGW_MCP_TOOL_SKIPPED_DUPLICATE), "duplicate");
    assert_string_equal(cgw_mcp_tool_status_name(CGW_MCP_TOOL_ADDED), "added");
    assert_string_equal(cgw_mcp_tool_status_name(CGW_MCP_TOOL_SKIPPED_BUILTIN), "builtin");
    assert_string_equal(cgw_mcp_tool_status_name(CGW_MCP_TOOL_SKIPPED_INVALID), "invalid");
}

static void test_bad_arguments(void **state)
{
    (void)state;
    cgw_mcp_toolmap_options_t o;
    cgw_mcp_toolmap_options_init(&o);
    assert_int_equal(o.naming, CGW_MCP_NAMING_PLAIN);
    assert_int_equal(o.max_name_len, 64);
    cgw_mcp_toolmap_t *m = NULL;
    o.max_name_len = 31;
    assert_int_equal(cgw_mcp_toolmap_new(&o, &m), CGW_EINVAL);
    o.max_name_len = 129;
    assert_int_equal(cgw_mcp_toolmap_new(&o, &m), CGW_EINVAL);
    o.max_name_len = 64;
    o.naming = (cgw_mcp_naming_t)7;
    assert_int_equal(cgw_mcp_toolmap_new(&o, &m), CGW_EINVAL);
    o.naming = CGW_MCP_NAMING_PLAIN;
    o.n_builtin_names = 1;
    assert_int_equal(cgw_mcp_toolmap_new(&o, &m), CGW_EINVAL);
    const char *nulls[] = {"ok", NULL};
    o.builtin_names = nulls;
    o.n_builtin_names = 2;
    assert_int_equal(cgw_mcp_toolmap_new(&o, &m), CGW_EINVAL);
    assert_null(m);
    assert_int_equal(cgw_mcp_toolmap_new(NULL, &m), CGW_OK);
    assert_int_equal(cgw_mcp_toolmap_add(m, NULL, "t", NULL, NULL), CGW_EINVAL);
    assert_int_equal(cgw_mcp_toolmap_add(m, "s", NULL, NULL, NULL), CGW_EINVAL);
    assert_int_equal(cgw_mcp_toolmap_add(NULL, "s", "t", NULL, NULL), CGW_EINVAL);
    add(m, "s", "", CGW_MCP_TOOL_SKIPPED_INVALID);
    add(m, "", "t", CGW_MCP_TOOL_SKIPPED_INVALID);
    assert_int_equal(cgw_mcp_toolmap_count(m), 0);
    assert_null(cgw_mcp_toolmap_at(m, 0));
    assert_null(cgw_mcp_toolmap_find(m, NULL));
    assert_null(cgw_mcp_toolmap_lookup(m, "s", NULL));
    cgw_mcp_toolmap_free(m);
    cgw_mcp_toolmap_free(NULL);
    assert_int_equal(cgw_mcp_toolmap_count(NULL), 0);
}

/* The original's rules: builtin names are skipped, then the first server wins. */
static void test_plain_rules(void **state)
{
    (void)state;
    const char *builtins[] = {"run_agent", "read_file"};
    cgw_mcp_toolmap_t *m = map_new(CGW_MCP_NAMING_PLAIN, builtins, 2, 0);
    const cgw_mcp_tool_ref_t *echo = add(m, "everything", "echo", CGW_MCP_TOOL_ADDED);
    assert_string_equal(echo->exposed, "echo");
    assert_string_equal(echo->server, "everything");
    assert_string_equal(echo->tool, "echo");
    assert_false(echo->renamed);
    add(m, "everything", "run_agent", CGW_MCP_TOOL_SKIPPED_BUILTIN);
    add(m, "filesystem", "read_file", CGW_MCP_TOOL_SKIPPED_BUILTIN);
    const cgw_mcp_tool_ref_t *list = add(m, "filesystem", "list_directory", CGW_MCP_TOOL_ADDED);
    /* a later server offering the same tool loses; the winner is reported */
    const cgw_mcp_tool_ref_t *dup = add(m, "other", "echo", CGW_MCP_TOOL_SKIPPED_DUPLICATE);
    assert_ptr_equal(dup, echo);
    add(m, "everything", "echo", CGW_MCP_TOOL_SKIPPED_DUPLICATE);
    assert_int_equal(cgw_mcp_toolmap_count(m), 2);
    assert_ptr_equal(cgw_mcp_toolmap_at(m, 0), echo);
    assert_ptr_equal(cgw_mcp_toolmap_at(m, 1), list);
    assert_ptr_equal(cgw_mcp_toolmap_find(m, "echo"), echo);
    assert_ptr_equal(cgw_mcp_toolmap_lookup(m, "everything", "echo"), echo);
    assert_null(cgw_mcp_toolmap_lookup(m, "other", "echo"));
    assert_null(cgw_mcp_toolmap_find(m, "run_agent"));
    assert_null(cgw_mcp_toolmap_find(m, "ech"));
    cgw_mcp_toolmap_free(m);
}

/* A name the API would refuse is sanitized; names that then clash get a hash. */
static void test_plain_sanitize_and_clash(void **state)
{
    (void)state;
    const char *builtins[] = {"get_time"};
    cgw_mcp_toolmap_t *m = map_new(CGW_MCP_NAMING_PLAIN, builtins, 1, 0);
    const cgw_mcp_tool_ref_t *a = add(m, "s1", "read.file", CGW_MCP_TOOL_ADDED);
    assert_string_equal(a->exposed, "read_file");
    assert_true(a->renamed);
    assert_string_equal(a->tool, "read.file");
    /* "read_file" is a different raw name, so it is added, under a hashed name */
    const cgw_mcp_tool_ref_t *b = add(m, "s2", "read_file", CGW_MCP_TOOL_ADDED);
    char want[64];
    snprintf(want, sizeof(want), "read_file_%08x",
             doc_hash("read_file", 9,
                      "\0"
                      "1",
                      2));
    assert_string_equal(b->exposed, want);
    assert_true(b->renamed);
    /* sanitizing into a builtin's name renames too (the builtin keeps its name) */
    const cgw_mcp_tool_ref_t *c = add(m, "s3", "get.time", CGW_MCP_TOOL_ADDED);
    assert_string_not_equal(c->exposed, "get_time");
    assert_true(cgw_mcp_tool_name_valid(c->exposed, 64));
    assert_ptr_equal(cgw_mcp_toolmap_find(m, "read_file"), a);
    assert_ptr_equal(cgw_mcp_toolmap_find(m, want), b);
    assert_ptr_equal(cgw_mcp_toolmap_find(m, c->exposed), c);
    cgw_mcp_toolmap_free(m);
}

static void test_plain_long_name(void **state)
{
    (void)state;
    char tool[101];
    memset(tool, 't', 100);
    tool[100] = '\0';
    cgw_mcp_toolmap_t *m = map_new(CGW_MCP_NAMING_PLAIN, NULL, 0, 0);
    const cgw_mcp_tool_ref_t *r = add(m, "s", tool, CGW_MCP_TOOL_ADDED);
    char want[65];
    snprintf(want, sizeof(want), "%.55s_%08x", tool, doc_hash(tool, 100, "", 0));
    assert_string_equal(r->exposed, want);
    assert_int_equal(strlen(r->exposed), 64);
    cgw_mcp_toolmap_free(m);
}

/* Claude Code style: mcp__<server>__<tool>; the same tool name on two servers is fine. */
static void test_prefixed(void **state)
{
    (void)state;
    const char *builtins[] = {"mcp__fs__read", "echo"};
    cgw_mcp_toolmap_t *m = map_new(CGW_MCP_NAMING_PREFIXED, builtins, 2, 0);
    const cgw_mcp_tool_ref_t *a = add(m, "everything", "echo", CGW_MCP_TOOL_ADDED);
    assert_string_equal(a->exposed, "mcp__everything__echo");
    assert_true(a->renamed);
    const cgw_mcp_tool_ref_t *b = add(m, "other", "echo", CGW_MCP_TOOL_ADDED);
    assert_string_equal(b->exposed, "mcp__other__echo");
    add(m, "everything", "echo", CGW_MCP_TOOL_SKIPPED_DUPLICATE);
    add(m, "fs", "read", CGW_MCP_TOOL_SKIPPED_BUILTIN);
    /* server and tool characters outside [A-Za-z0-9_-] become '_' */
    const cgw_mcp_tool_ref_t *c = add(m, "my.server", "get/thing v2", CGW_MCP_TOOL_ADDED);
    assert_string_equal(c->exposed, "mcp__my_server__get_thing_v2");
    /* ... and a pair that sanitizes to the same name gets a hashed one */
    const cgw_mcp_tool_ref_t *d = add(m, "my_server", "get/thing_v2", CGW_MCP_TOOL_ADDED);
    char want[65];
    snprintf(want, sizeof(want), "mcp__my_server__get_thing_v2_%08x",
             doc_hash("my_server\0get/thing_v2", 22,
                      "\0"
                      "1",
                      2));
    assert_string_equal(d->exposed, want);
    /* "__" inside a server name: found by lookup, never by splitting */
    const cgw_mcp_tool_ref_t *e = add(m, "a__b", "c", CGW_MCP_TOOL_ADDED);
    const cgw_mcp_tool_ref_t *f = add(m, "a", "b__c", CGW_MCP_TOOL_ADDED);
    assert_string_equal(e->exposed, "mcp__a__b__c");
    assert_string_not_equal(f->exposed, e->exposed);
    assert_ptr_equal(cgw_mcp_toolmap_find(m, "mcp__a__b__c"), e);
    assert_ptr_equal(cgw_mcp_toolmap_lookup(m, "a", "b__c"), f);
    assert_ptr_equal(cgw_mcp_toolmap_lookup(m, "a__b", "c"), e);
    cgw_mcp_toolmap_free(m);
}

/* A UUID server name (anthropics/claude-code#22276) plus a long tool name: the tool part is
 * what the model needs, so it keeps the room and the server keeps 16 characters. */
static void test_prefixed_shortening(void **state)
{
    (void)state;
    const char *server = "3f2b8c1e-9d4a-4f6b-8e2d-1a7c5b9e0f3d";
    const char *tool = "search_repository_issues_by_label_and_milestone";
    cgw_mcp_toolmap_t *m = map_new(CGW_MCP_NAMING_PREFIXED, NULL, 0, 0);
    const cgw_mcp_tool_ref_t *r = add(m, server, tool, CGW_MCP_TOOL_ADDED);
    assert_int_equal(strlen(r->exposed), 64);
    char want[65];
    snprintf(want, sizeof(want), "mcp__%.16s__%.32s_%08x", server, tool,
             doc_hash(server, strlen(server) + 1, tool, strlen(tool)));
    assert_string_equal(r->exposed, want);
    /* a short tool leaves the room to the server part */
    const cgw_mcp_tool_ref_t *s = add(m, server, "get", CGW_MCP_TOOL_ADDED);
    assert_string_equal(s->exposed, "mcp__3f2b8c1e-9d4a-4f6b-8e2d-1a7c5b9e0f3d__get");
    char longsrv[80];
    memset(longsrv, 's', 79);
    longsrv[79] = '\0';
    const cgw_mcp_tool_ref_t *t = add(m, longsrv, "get", CGW_MCP_TOOL_ADDED);
    snprintf(want, sizeof(want), "mcp__%.45s__get_%08x", longsrv, doc_hash(longsrv, 80, "get", 3));
    assert_string_equal(t->exposed, want);
    cgw_mcp_toolmap_free(m);

    /* with the 128 limit the same pair fits unshortened */
    m = map_new(CGW_MCP_NAMING_PREFIXED, NULL, 0, 128);
    r = add(m, server, tool, CGW_MCP_TOOL_ADDED);
    snprintf(want, sizeof(want), "mcp__%s__", server);
    assert_memory_equal(r->exposed, want, strlen(want));
    assert_string_equal(r->exposed + strlen(want), tool);
    cgw_mcp_toolmap_free(m);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

/* Random names biased towards the hard cases: long, sharing prefixes, full of characters
 * that sanitize to '_' (so many pairs collapse onto the same candidate name). */
static void random_name(char *out, size_t max, const char *prefix)
{
    static const char alphabet[] = "ab_-.:/ \xc3\xa9Z9";
    size_t n = 1 + rnd() % max;
    size_t p = strlen(prefix) < n && rnd() % 2 ? strlen(prefix) : 0;
    memcpy(out, prefix, p);
    for (size_t i = p; i < n; i++) {
        out[i] = alphabet[rnd() % (sizeof(alphabet) - 1)];
    }
    out[n] = '\0';
}

static int strcmp_ptrs(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void check_property(cgw_mcp_naming_t naming, size_t max_len, size_t pairs)
{
    const char *builtins[] = {"ab", "mcp__ab__ab", "a_b"};
    cgw_mcp_toolmap_t *m = map_new(naming, builtins, 3, max_len);
    cgw_mcp_toolmap_t *again = map_new(naming, builtins, 3, max_len);
    char server[96], tool[160];
    const char *long_prefix = "a_very_long_shared_prefix_that_goes_past_the_sixty_four_limit_"
                              "for_sure_and_then_some";
    size_t added = 0;
    for (size_t i = 0; i < pairs; i++) {
        random_name(server, 8 + rnd() % 80, "server-");
        random_name(tool, 1 + rnd() % 150, long_prefix);
        cgw_mcp_tool_status_t st1, st2;
        const cgw_mcp_tool_ref_t *r1 = NULL, *r2 = NULL;
        assert_int_equal(cgw_mcp_toolmap_add(m, server, tool, &st1, &r1), CGW_OK);
        assert_int_equal(cgw_mcp_toolmap_add(again, server, tool, &st2, &r2), CGW_OK);
        assert_int_equal(st1, st2);
        if (st1 != CGW_MCP_TOOL_ADDED) {
            continue;
        }
        added++;
        /* deterministic: the same sequence gives the same names */
        assert_string_equal(r1->exposed, r2->exposed);
        if (!cgw_mcp_tool_name_valid(r1->exposed, max_len)) {
            fail_msg("invalid exposed name \"%s\" (len %zu)", r1->exposed, strlen(r1->exposed));
        }
        assert_ptr_equal(cgw_mcp_toolmap_find(m, r1->exposed), r1);
        assert_ptr_equal(cgw_mcp_toolmap_lookup(m, server, tool), r1);
        assert_string_equal(r1->server, server);
        assert_string_equal(r1->tool, tool);
        assert_true(strcmp(r1->exposed, "ab") != 0 && strcmp(r1->exposed, "a_b") != 0 &&
                    strcmp(r1->exposed, "mcp__ab__ab") != 0);
    }
    assert_true(added > pairs / 2);
    assert_int_equal(cgw_mcp_toolmap_count(m), added);
    /* uniqueness over the whole map, by sorting the names */
    const char **names = calloc(added, sizeof(*names));
    for (size_t i = 0; i < added; i++) {
        names[i] = cgw_mcp_toolmap_at(m, i)->exposed;
    }
    qsort(names, added, sizeof(*names), strcmp_ptrs);
    for (size_t i = 1; i < added; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            fail_msg("exposed name \"%s\" given twice", names[i]);
        }
    }
    free(names);
    cgw_mcp_toolmap_free(m);
    cgw_mcp_toolmap_free(again);
}

static void test_property_random_names(void **state)
{
    (void)state;
    check_property(CGW_MCP_NAMING_PREFIXED, 64, 4000);
    check_property(CGW_MCP_NAMING_PLAIN, 64, 4000);
    check_property(CGW_MCP_NAMING_PREFIXED, 32, 2000);
    check_property(CGW_MCP_NAMING_PREFIXED, 128, 2000);
}

/* Hundreds of tools that share a 100-character prefix differ only after the cut: all must
 * still get distinct names (through the hash). */
static void test_shared_prefix(void **state)
{
    (void)state;
    cgw_mcp_toolmap_t *m = map_new(CGW_MCP_NAMING_PREFIXED, NULL, 0, 0);
    char tool[160];
    for (int i = 0; i < 500; i++) {
        snprintf(tool, sizeof(tool), "%0100d_%d", 0, i);
        const cgw_mcp_tool_ref_t *r = add(m, "server", tool, CGW_MCP_TOOL_ADDED);
        assert_int_equal(strlen(r->exposed), 64);
    }
    for (int i = 0; i < 500; i++) {
        snprintf(tool, sizeof(tool), "%0100d_%d", 0, i);
        const cgw_mcp_tool_ref_t *r = cgw_mcp_toolmap_lookup(m, "server", tool);
        assert_non_null(r);
        assert_ptr_equal(cgw_mcp_toolmap_find(m, r->exposed), r);
    }
    cgw_mcp_toolmap_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_valid),          cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_plain_rules),         cmocka_unit_test(test_plain_sanitize_and_clash),
        cmocka_unit_test(test_plain_long_name),     cmocka_unit_test(test_prefixed),
        cmocka_unit_test(test_prefixed_shortening), cmocka_unit_test(test_property_random_names),
        cmocka_unit_test(test_shared_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
