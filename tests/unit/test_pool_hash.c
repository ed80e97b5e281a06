/*
 * pool/pool_hash: twemproxy's hash functions (values from independent Python
 * references, which tests/integration/test_hash_compat.py also checks against
 * nutcracker), hash_tag, and the ketama, modula and random distributions.
 */
#include "pool/pool_hash.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define NKEYS 7

struct vector {
    enum pool_hash_fn fn;
    uint32_t want[NKEYS];
};

static const char *const vector_keys[NKEYS] = {
    "a",
    "hello",
    "123456789",
    "foo{bar}",
    "\xff\x80\x7f",
    "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
    "The quick brown fox jumps over the lazy dog",
};
static const struct vector vectors[] = {
    {POOL_HASH_ONE_AT_A_TIME,
     {0xca2e9442, 0xc8fd181b, 0xc66b58c5, 0x8b46dddc, 0xde102744, 0xfbca080a, 0x519e91f5}},
    {POOL_HASH_MD5,
     {0xb975c10c, 0x2a40415d, 0x94e7f925, 0xf8f6eb11, 0x3bf244dd, 0x667b65c3, 0x9d7d109e}},
    {POOL_HASH_CRC16,
     {0x00007c87, 0x6b4fc362, 0x869031c3, 0x1a3b8602, 0x1e925b83, 0x3c55683f, 0x22a3f0c8}},
    {POOL_HASH_CRC32,
     {0x000068b7, 0x00003610, 0x00004bf4, 0x0000127f, 0x00003ae0, 0x00000caf, 0x0000414f}},
    {POOL_HASH_CRC32A,
     {0xe8b7be43, 0x3610a686, 0xcbf43926, 0x927fae62, 0xbae01919, 0x0caf961a, 0x414fa339}},
    {POOL_HASH_FNV1_64,
     {0x8601b7be, 0xbdbdd4c7, 0x2bf916d6, 0xd88ddd12, 0x6c127fdf, 0x64997a19, 0x7de37ace}},
    {POOL_HASH_FNV1A_64,
     {0x8601ec8c, 0x80aabd0b, 0x23c6cdfc, 0x569eebb4, 0x720040af, 0xa9ad7881, 0xe7e47110}},
    {POOL_HASH_FNV1_32,
     {0x050c5d7e, 0xb6fa7167, 0x24148816, 0xbab78952, 0x30b30d1f, 0x31b3eff9, 0xe9c86c6e}},
    {POOL_HASH_FNV1A_32,
     {0xe40c292c, 0x4f9f2cab, 0xbb86b11c, 0x4a8cf894, 0x9cdced6f, 0xafd617e1, 0x048fff90}},
    {POOL_HASH_HSIEH,
     {0x93642e87, 0x13842ac5, 0xe4fc1670, 0x911f4dc9, 0xcb8cbd91, 0xfa8a713c, 0x1c19ee97}},
    {POOL_HASH_MURMUR,
     {0x4b41757c, 0x521b0bff, 0xb7760690, 0xfe21c620, 0xd95850af, 0x9ac6d2af, 0x30c79125}},
    {POOL_HASH_JENKINS,
     {0xe0a38690, 0x2e0cc8f3, 0x19777af6, 0xc3c72c79, 0x1964a2b8, 0x4b2c236f, 0x12b8163c}},
};

static void
test_vectors(void **state)
{
    size_t i, k;

    (void)state;
    assert_int_equal(sizeof(vectors) / sizeof(vectors[0]), POOL_HASH_NFN);
    for (i = 0; i < POOL_HASH_NFN; i++) {
        pool_hash_fn_t f = pool_hash_fn_get(vectors[i].fn);

        assert_non_null(f);
        for (k = 0; k < NKEYS; k++) {
            uint32_t got = f(vector_keys[k], strlen(vector_keys[k]));

            if (got != vectors[i].want[k]) {
                fail_msg("%s(\"%s\") = 0x%08x, want 0x%08x", pool_hash_fn_names[vectors[i].fn],
                         vector_keys[k], got, vectors[i].want[k]);
            }
        }
    }
}

/* Published values, independent of twemproxy. */
static void
test_published(void **state)
{
    (void)state;
    assert_int_equal(pool_hash_crc32a("123456789", 9), 0xcbf43926);
    assert_int_equal(pool_hash_crc16("123456789", 9) & 0xffff, 0x31c3); /* XMODEM */
    assert_int_equal(pool_hash_fnv1a_32("a", 1), 0xe40c292c);
    assert_int_equal(pool_hash_fnv1_32("a", 1), 0x050c5d7e);
    assert_int_equal(pool_hash_fnv1_64("a", 1), 0x8601b7be); /* 0xaf63bd4c8601b7be */
}

static void
digest_is(const char *data, const char *hex)
{
    uint8_t d[16];
    char got[33];
    int i;

    pool_hash_md5_digest(data, strlen(data), d);
    for (i = 0; i < 16; i++) {
        snprintf(got + 2 * i, 3, "%02x", d[i]);
    }
    assert_string_equal(got, hex);
}

/* RFC 1321's test suite: one block, two blocks, and more. */
static void
test_md5_digest(void **state)
{
    (void)state;
    digest_is("", "d41d8cd98f00b204e9800998ecf8427e");
    digest_is("abc", "900150983cd24fb0d6963f7d28e17f72");
    digest_is("message digest", "f96b697d7cb7938d525a2f31aaf161d0");
    digest_is("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b");
    digest_is("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
              "d174ab98d277d9f5a5611c2c9f419d9f");
    digest_is("1234567890123456789012345678901234567890"
              "1234567890123456789012345678901234567890",
              "57edf4a22be3c955ac49da2e2107b67a");
}

static void
test_empty_key(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < POOL_HASH_NFN; i++) {
        assert_int_equal(pool_hash_key((enum pool_hash_fn)i, "", 0), 0);
    }
    assert_int_equal(pool_hash_key(POOL_HASH_MURMUR, "hello", 5), pool_hash_murmur("hello", 5));
}

static void
test_names(void **state)
{
    enum pool_hash_fn fn;
    enum pool_hash_dist dist;
    int i;

    (void)state;
    for (i = 0; i < POOL_HASH_NFN; i++) {
        assert_int_equal(pool_hash_fn_parse(pool_hash_fn_names[i], &fn), 0);
        assert_int_equal(fn, i);
    }
    for (i = 0; i < POOL_HASH_NDIST; i++) {
        assert_int_equal(pool_hash_dist_parse(pool_hash_dist_names[i], &dist), 0);
        assert_int_equal(dist, i);
    }
    assert_int_equal(pool_hash_fn_parse("fnv1a", &fn), -1);
    assert_int_equal(pool_hash_dist_parse("vnode", &dist), -1);
    assert_null(pool_hash_fn_get(POOL_HASH_NFN));
}

static void
tag_is(const char *tag, const char *key, const char *want)
{
    const char *part = NULL;
    size_t len = pool_hash_tag(tag, key, strlen(key), &part);

    assert_int_equal(len, strlen(want));
    assert_memory_equal(part, want, len);
}

static void
test_hash_tag(void **state)
{
    (void)state;
    tag_is("{}", "{user1000}.following", "user1000");
    tag_is("{}", "foo{bar}baz", "bar");
    tag_is("{}", "{a}{b}", "a");
    tag_is("{}", "{{n}}", "{n");
    tag_is("{}", "a}b{c}", "c");
    tag_is("{}", "{}empty", "{}empty"); /* empty tag: the whole key */
    tag_is("{}", "x{}y{z}", "x{}y{z}"); /* only the first open counts */
    tag_is("{}", "open{only", "open{only");
    tag_is("{}", "close}only", "close}only");
    tag_is("{}", "plain", "plain");
    tag_is("{}", "", "");
    tag_is("$$", "a$bc$d", "bc");
    tag_is(NULL, "{user}", "{user}");
    tag_is("", "{user}", "{user}");
}

static void
test_server_name(void **state)
{
    char buf[32];

    (void)state;
    assert_int_equal(pool_hash_server_name(buf, sizeof(buf), "10.0.0.1", "6379"), 0);
    assert_string_equal(buf, "10.0.0.1:6379");
    assert_int_equal(pool_hash_server_name(buf, sizeof(buf), "cache-1", "11211"), 0);
    assert_string_equal(buf, "cache-1");
    assert_int_equal(pool_hash_server_name(buf, 8, "10.0.0.1", "6379"), -1);
}

static const struct pool_hash_server three[] = {
    {.name = "10.0.0.1:6379", .weight = 1},
    {.name = "10.0.0.2:6379", .weight = 1},
    {.name = "10.0.0.3:6379", .weight = 2},
};

static const char *const words[12] = {"alpha", "beta",  "gamma", "delta", "epsilon", "zeta",
                                      "eta",   "theta", "iota",  "kappa", "lambda",  "mu"};

static void
places(enum pool_hash_dist dist, enum pool_hash_fn fn, const struct pool_hash_server *s,
       const size_t want[12])
{
    struct pool_hash_ring *r = pool_hash_ring_new(dist, s, 3, NULL);
    size_t i;

    assert_non_null(r);
    for (i = 0; i < 12; i++) {
        uint32_t h = pool_hash_key(fn, words[i], strlen(words[i]));

        assert_int_equal(pool_hash_ring_pick(r, h), want[i]);
    }
    pool_hash_ring_free(r);
}

/* Placements matching nutcracker's (via tests/tools/hashplace, checked against it). */
static void
test_placement(void **state)
{
    static const struct pool_hash_server named[] = {
        {.name = "srv-c", .weight = 1},
        {.name = "srv-b", .weight = 1},
        {.name = "srv-a", .weight = 2},
    };
    static const size_t ketama_fnv[12] = {1, 2, 1, 2, 2, 0, 0, 2, 2, 0, 1, 2};
    static const size_t modula_murmur[12] = {1, 1, 0, 0, 0, 2, 2, 2, 0, 2, 1, 2};
    static const size_t ketama_md5[12] = {2, 0, 1, 1, 0, 1, 2, 2, 2, 2, 0, 1};

    (void)state;
    places(POOL_HASH_KETAMA, POOL_HASH_FNV1A_64, three, ketama_fnv);
    places(POOL_HASH_MODULA, POOL_HASH_MURMUR, three, modula_murmur);
    places(POOL_HASH_KETAMA, POOL_HASH_MD5, named, ketama_md5);
}

/* Share of 60,000 keys per server, in per mille. */
static void
shares(const struct pool_hash_ring *r, size_t n, unsigned *pm)
{
    unsigned count[8] = {0};
    char key[32];
    size_t i;

    for (i = 0; i < 60000; i++) {
        int len = snprintf(key, sizeof(key), "user:%zu:session", i * 7919);

        count[pool_hash_ring_pick(r, pool_hash_md5(key, (size_t)len))]++;
    }
    for (i = 0; i < n; i++) {
        pm[i] = count[i] / 60;
    }
}

static void
test_ketama(void **state)
{
    static const struct pool_hash_server equal[] = {{.name = "a:1", .weight = 5},
                                                    {.name = "b:1", .weight = 5},
                                                    {.name = "c:1", .weight = 5},
                                                    {.name = "d:1", .weight = 5}};
    static const struct pool_hash_server reversed[] = {three[2], three[1], three[0]};
    struct pool_hash_ring *r = pool_hash_ring_new(POOL_HASH_KETAMA, three, 3, NULL);
    struct pool_hash_ring *rev = pool_hash_ring_new(POOL_HASH_KETAMA, reversed, 3, NULL);
    struct pool_hash_ring *eq = pool_hash_ring_new(POOL_HASH_KETAMA, equal, 4, NULL);
    unsigned pm[4];
    uint32_t h;

    (void)state;
    assert_non_null(r);
    assert_non_null(rev);
    assert_non_null(eq);
    assert_int_equal(pool_hash_ring_points(eq), 4 * 160);
    assert_int_equal(pool_hash_ring_points(r), 120 + 120 + 240);
    /* the same server whatever the order servers are given in */
    for (h = 0; h < 4000000000u; h += 9999991) {
        assert_int_equal(pool_hash_ring_pick(r, h), 2 - pool_hash_ring_pick(rev, h));
    }
    assert_int_equal(pool_hash_ring_pick(r, UINT32_MAX), pool_hash_ring_pick(r, 0)); /* wraps */
    shares(r, 3, pm);
    assert_in_range(pm[0], 190, 310);
    assert_in_range(pm[1], 190, 310);
    assert_in_range(pm[2], 420, 580);
    shares(eq, 4, pm);
    assert_in_range(pm[0] + pm[1] + pm[2] + pm[3], 990, 1000);
    assert_in_range(pm[0], 180, 320);
    assert_in_range(pm[3], 180, 320);
    pool_hash_ring_free(r);
    pool_hash_ring_free(rev);
    pool_hash_ring_free(eq);
}

/* Slots by weight, in twemproxy's server order (name length, then bytes). */
static void
test_modula(void **state)
{
    static const struct pool_hash_server s[] = {
        {.name = "b", .weight = 1}, {.name = "a", .weight = 2}, {.name = "aa", .weight = 1}};
    static const size_t slots[4] = {1, 1, 0, 2};
    struct pool_hash_ring *r = pool_hash_ring_new(POOL_HASH_MODULA, s, 3, NULL);
    uint32_t h;

    (void)state;
    assert_non_null(r);
    assert_int_equal(pool_hash_ring_points(r), 4);
    for (h = 0; h < 64; h++) {
        assert_int_equal(pool_hash_ring_pick(r, h), slots[h % 4]);
    }
    assert_int_equal(pool_hash_ring_pick(r, UINT32_MAX), slots[UINT32_MAX % 4]);
    pool_hash_ring_free(r);
}

/* One slot per server whatever the weights; the caller's number picks it. */
static void
test_random(void **state)
{
    struct pool_hash_ring *r = pool_hash_ring_new(POOL_HASH_RANDOM, three, 3, NULL);
    unsigned seen[3] = {0};
    uint32_t h;

    (void)state;
    assert_non_null(r);
    assert_int_equal(pool_hash_ring_points(r), 3);
    for (h = 0; h < 300; h++) {
        seen[pool_hash_ring_pick(r, h)]++;
    }
    assert_int_equal(seen[0], 100);
    assert_int_equal(seen[1], 100);
    assert_int_equal(seen[2], 100);
    pool_hash_ring_free(r);
}

static void
test_one_server(void **state)
{
    static const struct pool_hash_server one = {.name = "only:6379", .weight = 3};
    int d;
    uint32_t h;

    (void)state;
    for (d = 0; d < POOL_HASH_NDIST; d++) {
        struct pool_hash_ring *r = pool_hash_ring_new((enum pool_hash_dist)d, &one, 1, NULL);

        assert_non_null(r);
        for (h = 0; h < 4000000000u; h += 99999989) {
            assert_int_equal(pool_hash_ring_pick(r, h), 0);
        }
        pool_hash_ring_free(r);
    }
}

static void
rejected(enum pool_hash_dist dist, const struct pool_hash_server *s, size_t n, const char *why)
{
    const char *err = NULL;

    assert_null(pool_hash_ring_new(dist, s, n, &err));
    assert_non_null(err);
    assert_string_equal(err, why);
}

static void
test_errors(void **state)
{
    static const struct pool_hash_server zero[] = {{.name = "a", .weight = 0}};
    static const struct pool_hash_server noname[] = {{.name = NULL, .weight = 1}};
    static const struct pool_hash_server dup[] = {
        {.name = "a:1", .weight = 1}, {.name = "b:1", .weight = 1}, {.name = "a:1", .weight = 2}};

    (void)state;
    rejected(POOL_HASH_KETAMA, three, 0, "no servers");
    rejected(POOL_HASH_KETAMA, zero, 1, "zero weight");
    rejected(POOL_HASH_MODULA, noname, 1, "server without a name");
    rejected(POOL_HASH_KETAMA, dup, 3, "duplicate server name");
    rejected(POOL_HASH_NDIST, three, 3, "unknown distribution");
    assert_null(pool_hash_ring_new(POOL_HASH_KETAMA, three, 0, NULL));
    pool_hash_ring_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),     cmocka_unit_test(test_published),
        cmocka_unit_test(test_md5_digest),  cmocka_unit_test(test_empty_key),
        cmocka_unit_test(test_names),       cmocka_unit_test(test_hash_tag),
        cmocka_unit_test(test_server_name), cmocka_unit_test(test_placement),
        cmocka_unit_test(test_ketama),      cmocka_unit_test(test_modula),
        cmocka_unit_test(test_random),      cmocka_unit_test(test_one_server),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
