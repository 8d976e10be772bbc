/* SHA-256 against the FIPS 180-4 / NIST CAVP vectors, block-boundary lengths and the
 * constant-time comparison used for bearer tokens. */
#include <string.h>

#include "core/sha256.h"
#include "testutil.h"

static void check(const char *in, size_t len, const char *hex)
{
    char out[65];
    cgw__sha256_hex(in, len, out);
    assert_string_equal(out, hex);
}

static void test_vectors(void **state)
{
    (void)state;
    check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *four = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check(four, strlen(four), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    check(a, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* 55, 56 and 64 bytes: the padding fits in one block, needs a second one, fills a block. */
static void test_padding_edges(void **state)
{
    (void)state;
    char a[64];
    memset(a, 'a', sizeof(a));
    check(a, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    check(a, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    check(a, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

static void test_digest_equal(void **state)
{
    (void)state;
    uint8_t x[CGW_SHA256_LEN], y[CGW_SHA256_LEN];
    cgw__sha256("token-one", 9, x);
    cgw__sha256("token-one", 9, y);
    assert_true(cgw__digest_equal(x, y));
    cgw__sha256("token-two", 9, y);
    assert_false(cgw__digest_equal(x, y));
    memcpy(y, x, CGW_SHA256_LEN);
    y[CGW_SHA256_LEN - 1] ^= 1; /* only the last byte differs */
    assert_false(cgw__digest_equal(x, y));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_padding_edges),
        cmocka_unit_test(test_digest_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
