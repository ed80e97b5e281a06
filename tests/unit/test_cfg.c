/*
 * The config loader: cfg_load_buffer()/cfg_load_file() on inline YAML. Valid files check the
 * model (every default from cfg_schema.c included); invalid ones check the exact
 * "t.yaml:LINE:COL: path.to.key: " prefix of each message. Each YAML line is one string literal,
 * so line N of a file is its Nth literal.
 */
#include "config/cfg.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define ANY_COUNT SIZE_MAX
#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* listeners[0]: 'a' on 127.0.0.1:7000, codec line, cluster c. Lines 1 to 5. */
#define LISTENER_A                                                                                 \
    "listeners:\n"                                                                                 \
    "  - name: a\n"                                                                                \
    "    bind: 127.0.0.1:7000\n"                                                                   \
    "    codec: line\n"                                                                            \
    "    cluster: c\n"

/* clusters[0]: 'c' with one server. Three lines. */
#define CLUSTER_C                                                                                  \
    "clusters:\n"                                                                                  \
    "  - name: c\n"                                                                                \
    "    servers: [{ address: 127.0.0.1:7001 }]\n"

/* ---- helpers ---- */

static void
print_diag(const struct cfg_diag *diag)
{
    size_t i;

    for (i = 0; i < cfg_diag_count(diag); i++) {
        print_error("  [%zu] %s\n", i, cfg_diag_message(diag, i));
    }
}

static struct cfg *
load_named_ok(const char *name, const char *text)
{
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg = cfg_load_buffer(name, text, strlen(text), diag);

    if (cfg == NULL || cfg_diag_count(diag) != 0) {
        print_diag(diag);
        cfg_free(cfg);
        cfg_diag_free(diag);
        fail_msg("expected this to load:\n%s", text);
    }
    cfg_diag_free(diag);
    return cfg;
}

static struct cfg *
load_ok(const char *text)
{
    return load_named_ok("t.yaml", text);
}

static bool
starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Check a failed load: count messages (unless ANY_COUNT), message i starting with prefix and,
 * when want is not NULL, containing want.
 */
static void
check_failed(struct cfg *cfg, struct cfg_diag *diag, size_t count, size_t i, const char *prefix,
             const char *want)
{
    const char *msg;

    if (cfg != NULL) {
        cfg_free(cfg);
        cfg_diag_free(diag);
        fail_msg("loaded; expected an error starting '%s'", prefix);
    }
    msg = cfg_diag_message(diag, i);
    if ((count != ANY_COUNT && cfg_diag_count(diag) != count) || !starts_with(msg, prefix) ||
        (want != NULL && strstr(msg, want) == NULL)) {
        print_diag(diag);
        cfg_diag_free(diag);
        fail_msg("expected %zu message(s), message %zu starting '%s'%s%s%s", count, i, prefix,
                 want != NULL ? " and containing '" : "", want != NULL ? want : "",
                 want != NULL ? "'" : "");
    }
}

static void
expect_error_at(const char *text, size_t count, size_t i, const char *prefix, const char *want)
{
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg = cfg_load_buffer("t.yaml", text, strlen(text), diag);

    check_failed(cfg, diag, count, i, prefix, want);
    cfg_diag_free(diag);
}

/* Exactly one error, starting with prefix. */
static void
expect_error(const char *text, const char *prefix)
{
    expect_error_at(text, 1, 0, prefix, NULL);
}

/* Exactly one error, starting with prefix and containing want. */
static void
expect_error_has(const char *text, const char *prefix, const char *want)
{
    expect_error_at(text, 1, 0, prefix, want);
}

/* Exactly n errors, in this order, starting with the n prefixes that follow. */
static void
expect_errors(const char *text, size_t n, ...)
{
    va_list ap;
    size_t i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        expect_error_at(text, n, i, va_arg(ap, const char *), NULL);
    }
    va_end(ap);
}

static const char *
tmp_dir(void)
{
    const char *dir = getenv("SLUICE_TEST_TMP");

    return dir != NULL && dir[0] != '\0' ? dir : "/tmp";
}

/* Create a readable file under tmp_dir() holding text; its path goes to path. */
static void
make_file(char *path, size_t size, const char *tag, const char *text)
{
    int fd;
    ssize_t len = (ssize_t)strlen(text);

    snprintf(path, size, "%s/sluice-test-%s-XXXXXX", tmp_dir(), tag);
    fd = mkstemp(path);
    assert_int_not_equal(fd, -1);
    assert_int_equal(write(fd, text, (size_t)len), len);
    assert_int_equal(close(fd), 0);
}

/* The effective config as text; the caller frees it. */
static char *
dump_text(const struct cfg *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    assert_int_equal(cfg_dump(cfg, f), 0);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    return buf;
}

/* A file whose only listener has the codec given as one line of YAML. */
static struct cfg *
load_with_codec(const char *codec)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "listeners:\n"
             "  - name: a\n"
             "    bind: 127.0.0.1:7000\n"
             "    codec: %s\n"
             "    cluster: c\n" CLUSTER_C,
             codec);
    return load_ok(text);
}

/* ---- valid files ---- */

static void
test_minimal(void **state)
{
    struct cfg *cfg = load_ok(LISTENER_A CLUSTER_C);

    (void)state;
    assert_string_equal(cfg->file, "t.yaml");
    assert_int_equal(cfg->nlisteners, 1);
    assert_string_equal(cfg->listeners[0].name, "a");
    assert_string_equal(cfg->listeners[0].bind.text, "127.0.0.1:7000");
    assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_LINE);
    assert_true(cfg->listeners[0].codec.set);
    assert_string_equal(cfg->listeners[0].cluster_name, "c");
    assert_ptr_equal(cfg->listeners[0].cluster, &cfg->clusters[0]);
    assert_int_equal(cfg->nclusters, 1);
    assert_string_equal(cfg->clusters[0].name, "c");
    assert_int_equal(cfg->clusters[0].nservers, 1);
    assert_string_equal(cfg->clusters[0].servers[0].address.text, "127.0.0.1:7001");
    assert_int_equal(cfg->nudp, 0);
    cfg_free(cfg);
}

static void
test_defaults(void **state)
{
    struct cfg *cfg = load_ok(LISTENER_A CLUSTER_C);
    const struct cfg_listener *l = &cfg->listeners[0];
    const struct cfg_cluster *c = &cfg->clusters[0];

    (void)state;
    assert_int_equal(cfg->workers, 0); /* auto */
    assert_int_equal(cfg->log.level, CFG_LOG_INFO);
    assert_int_equal(cfg->log.format, CFG_LOG_TEXT);
    assert_string_equal(cfg->admin.bind.text, "127.0.0.1:9901");
    assert_int_equal(cfg->admin.bind.kind, CFG_ADDR_IPV4);
    assert_int_equal(cfg->admin.bind.port, 9901);

    assert_int_equal(l->max_clients, 10000);
    assert_int_equal(l->max_inflight, 128);
    assert_int_equal(l->backlog, 511);
    assert_int_equal(l->timeouts.idle_ms, 300000);
    assert_int_equal(l->timeouts.read_ms, 10000);
    assert_int_equal(l->timeouts.request_ms, 5000);
    assert_false(l->tls.enabled);
    assert_int_equal(l->codec.max_frame, 65536);
    assert_int_equal(l->codec.delimiter.len, 1);
    assert_string_equal(l->codec.delimiter.ptr, "\n");

    assert_int_equal(c->balance, CFG_BALANCE_ROUND_ROBIN);
    assert_int_equal(c->retries, 1);
    assert_int_equal(c->servers[0].weight, 1);
    assert_int_equal(c->pool.min_idle, 1);
    assert_int_equal(c->pool.max_connections, 4);
    assert_int_equal(c->pool.max_pipeline, 128);
    assert_int_equal(c->pool.idle_timeout_ms, 60000);
    assert_int_equal(c->pool.max_lifetime_ms, 600000);
    assert_int_equal(c->pool.max_requests, 0);
    assert_int_equal(c->pool.queue.max, 10000);
    assert_int_equal(c->pool.queue.timeout_ms, 1000);
    assert_int_equal(c->timeouts.connect_ms, 1000);
    assert_int_equal(c->timeouts.read_ms, 2000);
    assert_int_equal(c->timeouts.write_ms, 2000);
    assert_false(c->health.active.enabled);
    assert_false(c->health.passive.enabled);
    assert_false(c->tls.enabled);
    cfg_free(cfg);
}

/* Optional blocks given as {} are on, with every default. */
static void
test_optional_block_defaults(void **state)
{
    struct cfg *cfg = load_ok(LISTENER_A CLUSTER_C "    health: { active: {}, passive: {} }\n"
                                                   "    tls: {}\n"
                                                   "udp:\n"
                                                   "  - name: u\n"
                                                   "    bind: 127.0.0.1:5300\n"
                                                   "    cluster: c\n");
    const struct cfg_cluster *c = &cfg->clusters[0];

    (void)state;
    assert_true(c->health.active.enabled);
    assert_int_equal(c->health.active.interval_ms, 2000);
    assert_int_equal(c->health.active.timeout_ms, 1000);
    assert_int_equal(c->health.active.rise, 2);
    assert_int_equal(c->health.active.fall, 3);
    assert_null(c->health.active.send.ptr);
    assert_null(c->health.active.expect.ptr);
    assert_true(c->health.passive.enabled);
    assert_int_equal(c->health.passive.consecutive_failures, 5);
    assert_int_equal(c->health.passive.eject_ms, 10000);
    assert_int_equal(c->health.passive.max_eject_ms, 300000);
    assert_int_equal(c->health.passive.max_ejected_percent, 50);
    assert_true(c->tls.enabled);
    assert_true(c->tls.verify);
    assert_null(c->tls.ca);
    assert_null(c->tls.sni);
    assert_int_equal(cfg->nudp, 1);
    assert_int_equal(cfg->udp[0].flow_idle_ms, 30000);
    assert_int_equal(cfg->udp[0].max_flows, 65536);
    assert_ptr_equal(cfg->udp[0].cluster, c);
    cfg_free(cfg);
}

static void
test_codec_raw(void **state)
{
    static const char *const forms[] = {"raw", "{ type: raw }"};
    size_t i;

    (void)state;
    for (i = 0; i < 2; i++) {
        struct cfg *cfg = load_with_codec(forms[i]);

        assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_RAW);
        assert_true(cfg->listeners[0].codec.set);
        assert_int_equal(cfg->listeners[0].codec.max_frame, 0);
        assert_null(cfg->listeners[0].codec.delimiter.ptr);
        assert_int_equal(cfg->clusters[0].codec.type, CFG_CODEC_RAW);
        cfg_free(cfg);
    }
}

static void
test_codec_line(void **state)
{
    struct cfg *cfg = load_with_codec("line");

    (void)state;
    assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_LINE);
    assert_int_equal(cfg->listeners[0].codec.max_frame, 64 * KiB);
    assert_int_equal(cfg->listeners[0].codec.delimiter.len, 1);
    assert_memory_equal(cfg->listeners[0].codec.delimiter.ptr, "\n", 1);
    cfg_free(cfg);

    cfg = load_with_codec("{ type: line, delimiter: \"\\r\\n\", max_frame: 1KiB }");
    assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_LINE);
    assert_int_equal(cfg->listeners[0].codec.max_frame, 1024);
    assert_int_equal(cfg->listeners[0].codec.delimiter.len, 2);
    assert_memory_equal(cfg->listeners[0].codec.delimiter.ptr, "\r\n", 2);
    assert_int_equal(cfg->clusters[0].codec.delimiter.len, 2);
    cfg_free(cfg);

    /* Just a type: the other parameters keep their defaults. */
    cfg = load_with_codec("{ type: line }");
    assert_int_equal(cfg->listeners[0].codec.max_frame, 64 * KiB);
    assert_int_equal(cfg->listeners[0].codec.delimiter.len, 1);
    cfg_free(cfg);
}

static void
test_codec_length(void **state)
{
    struct cfg *cfg = load_with_codec("length");
    const struct cfg_codec *c = &cfg->listeners[0].codec;

    (void)state;
    assert_int_equal(c->type, CFG_CODEC_LENGTH);
    assert_int_equal(c->max_frame, MiB);
    assert_int_equal(c->field_offset, 0);
    assert_int_equal(c->field_size, 4);
    assert_int_equal(c->byte_order, CFG_BIG_ENDIAN);
    assert_int_equal(c->adjust, 0);
    assert_null(c->delimiter.ptr);
    cfg_free(cfg);

    /* Every parameter, as a block mapping. */
    cfg = load_ok("listeners:\n"
                  "  - name: a\n"
                  "    bind: 127.0.0.1:7000\n"
                  "    codec:\n"
                  "      type: length\n"
                  "      field_offset: 8\n"
                  "      field_size: 2\n"
                  "      byte_order: little\n"
                  "      adjust: -4\n"
                  "      max_frame: 64KiB\n"
                  "    cluster: c\n" CLUSTER_C);
    c = &cfg->listeners[0].codec;
    assert_int_equal(c->type, CFG_CODEC_LENGTH);
    assert_int_equal(c->field_offset, 8);
    assert_int_equal(c->field_size, 2);
    assert_int_equal(c->byte_order, CFG_LITTLE_ENDIAN);
    assert_int_equal(c->adjust, -4);
    assert_int_equal(c->max_frame, 64 * KiB);
    cfg_free(cfg);

    cfg = load_with_codec("{ type: length, field_size: 8, adjust: -2147483648, max_frame: 1GiB }");
    assert_int_equal(cfg->listeners[0].codec.field_size, 8);
    assert_int_equal(cfg->listeners[0].codec.adjust, INT32_MIN);
    assert_int_equal(cfg->listeners[0].codec.max_frame, GiB);
    cfg_free(cfg);

    cfg =
        load_with_codec("{ type: length, field_size: 3, field_offset: 65535, adjust: 2147483647 }");
    assert_int_equal(cfg->listeners[0].codec.field_size, 3);
    assert_int_equal(cfg->listeners[0].codec.field_offset, 65535);
    assert_int_equal(cfg->listeners[0].codec.adjust, INT32_MAX);
    cfg_free(cfg);

    cfg = load_with_codec("{ type: length, field_size: 1, max_frame: 1 }");
    assert_int_equal(cfg->listeners[0].codec.field_size, 1);
    assert_int_equal(cfg->listeners[0].codec.max_frame, 1);
    cfg_free(cfg);
}

static void
test_codec_resp(void **state)
{
    struct cfg *cfg = load_with_codec("resp");

    (void)state;
    assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_RESP);
    assert_int_equal(cfg->listeners[0].codec.max_frame, 512 * MiB);
    assert_int_equal(cfg->clusters[0].codec.type, CFG_CODEC_RESP);
    assert_int_equal(cfg->clusters[0].codec.max_frame, 512 * MiB);
    cfg_free(cfg);

    cfg = load_with_codec("{ type: resp, max_frame: 1MiB }");
    assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_RESP);
    assert_int_equal(cfg->listeners[0].codec.max_frame, MiB);
    cfg_free(cfg);
}

static void
test_codec_http(void **state)
{
    struct cfg *cfg = load_with_codec("http");

    (void)state;
    assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_HTTP);
    assert_int_equal(cfg->listeners[0].codec.max_frame, MiB);
    cfg_free(cfg);

    cfg = load_with_codec("{ type: http, max_frame: 2MiB }");
    assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_HTTP);
    assert_int_equal(cfg->listeners[0].codec.max_frame, 2 * MiB);
    cfg_free(cfg);
}

static void
test_listener_tls(void **state)
{
    char cert[512], key[512], text[2048];
    struct cfg *cfg;

    (void)state;
    make_file(cert, sizeof(cert), "cert", "not really a certificate\n");
    make_file(key, sizeof(key), "key", "not really a key\n");
    snprintf(text, sizeof(text),
             LISTENER_A "    tls:\n"
                        "      cert: \"%s\"\n"
                        "      key: \"%s\"\n" CLUSTER_C,
             cert, key);
    cfg = load_ok(text);
    unlink(cert);
    unlink(key);
    assert_true(cfg->listeners[0].tls.enabled);
    assert_string_equal(cfg->listeners[0].tls.cert, cert);
    assert_string_equal(cfg->listeners[0].tls.key, key);
    cfg_free(cfg);
}

/* A relative path is taken from the config file's folder. */
static void
test_listener_tls_relative_path(void **state)
{
    char cert[512], name[512], text[2048];
    const char *base;
    struct cfg *cfg;

    (void)state;
    make_file(cert, sizeof(cert), "cert", "not really a certificate\n");
    base = strrchr(cert, '/') + 1;
    snprintf(name, sizeof(name), "%s/t.yaml", tmp_dir());
    snprintf(text, sizeof(text), LISTENER_A "    tls: { cert: %s, key: %s }\n" CLUSTER_C, base,
             base);
    cfg = load_named_ok(name, text);
    unlink(cert);
    assert_string_equal(cfg->listeners[0].tls.cert, cert);
    assert_string_equal(cfg->listeners[0].tls.key, cert);
    cfg_free(cfg);
}

static void
test_cluster_tls(void **state)
{
    char ca[512], text[2048];
    struct cfg *cfg;

    (void)state;
    make_file(ca, sizeof(ca), "ca", "not really a CA bundle\n");
    snprintf(text, sizeof(text),
             LISTENER_A CLUSTER_C "    tls:\n"
                                  "      ca: \"%s\"\n"
                                  "      verify: false\n"
                                  "      sni: redis.example.com\n",
             ca);
    cfg = load_ok(text);
    unlink(ca);
    assert_true(cfg->clusters[0].tls.enabled);
    assert_string_equal(cfg->clusters[0].tls.ca, ca);
    assert_false(cfg->clusters[0].tls.verify);
    assert_string_equal(cfg->clusters[0].tls.sni, "redis.example.com");
    cfg_free(cfg);
}

static void
test_health_active(void **state)
{
    struct cfg *cfg = load_ok(LISTENER_A CLUSTER_C "    health:\n"
                                                   "      active:\n"
                                                   "        interval: 5s\n"
                                                   "        timeout: 500ms\n"
                                                   "        rise: 1\n"
                                                   "        fall: 4\n"
                                                   "        send: \"PING\\r\\n\"\n"
                                                   "        expect: \"+PONG\"\n");
    const struct cfg_health_active *a = &cfg->clusters[0].health.active;

    (void)state;
    assert_true(a->enabled);
    assert_false(cfg->clusters[0].health.passive.enabled);
    assert_int_equal(a->interval_ms, 5000);
    assert_int_equal(a->timeout_ms, 500);
    assert_int_equal(a->rise, 1);
    assert_int_equal(a->fall, 4);
    assert_int_equal(a->send.len, 6);
    assert_memory_equal(a->send.ptr, "PING\r\n", 6);
    assert_int_equal(a->send.ptr[6], '\0');
    assert_int_equal(a->expect.len, 5);
    assert_string_equal(a->expect.ptr, "+PONG");
    cfg_free(cfg);
}

/* Double-quoted escapes give NUL bytes; single quotes and plain scalars keep backslashes. */
static void
test_health_active_binary(void **state)
{
    struct cfg *cfg = load_ok(LISTENER_A CLUSTER_C "    health:\n"
                                                   "      active:\n"
                                                   "        send: \"\\x00\\x01\"\n"
                                                   "        expect: \"a\\0b\"\n");
    const struct cfg_health_active *a = &cfg->clusters[0].health.active;

    (void)state;
    assert_int_equal(a->send.len, 2);
    assert_int_equal(a->send.ptr[0], 0);
    assert_int_equal(a->send.ptr[1], 1);
    assert_int_equal(a->expect.len, 3);
    assert_memory_equal(a->expect.ptr, "a\0b", 3);
    cfg_free(cfg);

    cfg = load_ok(LISTENER_A CLUSTER_C "    health:\n"
                                       "      active:\n"
                                       "        send: 'A\\n'\n"
                                       "        expect: +OK\n");
    assert_int_equal(cfg->clusters[0].health.active.send.len, 3);
    assert_memory_equal(cfg->clusters[0].health.active.send.ptr, "A\\n", 3);
    assert_string_equal(cfg->clusters[0].health.active.expect.ptr, "+OK");
    cfg_free(cfg);
}

static void
test_health_passive(void **state)
{
    struct cfg *cfg =
        load_ok(LISTENER_A CLUSTER_C "    health:\n"
                                     "      passive: { consecutive_failures: 3, eject: 30s, "
                                     "max_eject: 10m, max_ejected_percent: 0 }\n");
    const struct cfg_health_passive *p = &cfg->clusters[0].health.passive;

    (void)state;
    assert_false(cfg->clusters[0].health.active.enabled);
    assert_true(p->enabled);
    assert_int_equal(p->consecutive_failures, 3);
    assert_int_equal(p->eject_ms, 30000);
    assert_int_equal(p->max_eject_ms, 600000);
    assert_int_equal(p->max_ejected_percent, 0);
    cfg_free(cfg);
}

/* UDP relays alone are something to serve. */
static void
test_udp(void **state)
{
    struct cfg *cfg = load_ok("udp:\n"
                              "  - name: dns\n"
                              "    bind: \"[::1]:5300\"\n"
                              "    cluster: c\n"
                              "    flow_idle: 1m30s\n"
                              "    max_flows: 100\n"
                              "  - name: dns4\n"
                              "    bind: 127.0.0.1:5300\n"
                              "    cluster: c\n" CLUSTER_C);
    const struct cfg_udp *u = &cfg->udp[0];

    (void)state;
    assert_int_equal(cfg->nlisteners, 0);
    assert_int_equal(cfg->nudp, 2);
    assert_string_equal(u->name, "dns");
    assert_int_equal(u->bind.kind, CFG_ADDR_IPV6);
    assert_string_equal(u->bind.text, "[::1]:5300");
    assert_string_equal(u->cluster_name, "c");
    assert_ptr_equal(u->cluster, &cfg->clusters[0]);
    assert_int_equal(u->flow_idle_ms, 90000);
    assert_int_equal(u->max_flows, 100);
    assert_ptr_equal(cfg->udp[1].cluster, &cfg->clusters[0]);
    /* No listener uses the cluster, so it has no codec. */
    assert_false(cfg->clusters[0].codec.set);
    cfg_free(cfg);
}

static void
test_durations(void **state)
{
    struct cfg *cfg =
        load_ok(LISTENER_A "    timeouts: { idle: 1m30s, read: 250ms, request: 0 }\n" CLUSTER_C
                           "    timeouts: { connect: 1h, read: 1d, write: 2s }\n"
                           "    pool: { idle_timeout: 0s, max_lifetime: 1h1m1s1ms }\n");
    const struct cfg_cluster *c = &cfg->clusters[0];

    (void)state;
    assert_int_equal(cfg->listeners[0].timeouts.idle_ms, 90000);
    assert_int_equal(cfg->listeners[0].timeouts.read_ms, 250);
    assert_int_equal(cfg->listeners[0].timeouts.request_ms, 0);
    assert_int_equal(c->timeouts.connect_ms, 3600000);
    assert_int_equal(c->timeouts.read_ms, 86400000);
    assert_int_equal(c->timeouts.write_ms, 2000);
    assert_int_equal(c->pool.idle_timeout_ms, 0);
    assert_int_equal(c->pool.max_lifetime_ms, 3661001);
    cfg_free(cfg);
}

static void
test_sizes(void **state)
{
    struct cfg *cfg = load_with_codec("{ type: line, max_frame: 64KiB }");

    (void)state;
    assert_int_equal(cfg->listeners[0].codec.max_frame, 65536);
    cfg_free(cfg);
    cfg = load_with_codec("{ type: resp, max_frame: 512 }");
    assert_int_equal(cfg->listeners[0].codec.max_frame, 512);
    cfg_free(cfg);
    cfg = load_with_codec("{ type: http, max_frame: 3MiB }");
    assert_int_equal(cfg->listeners[0].codec.max_frame, 3 * MiB);
    cfg_free(cfg);
}

static void
test_addr_ipv4(void **state)
{
    struct cfg *cfg = load_ok(LISTENER_A CLUSTER_C);
    const struct cfg_addr *a = &cfg->listeners[0].bind;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->sa;

    (void)state;
    assert_int_equal(a->kind, CFG_ADDR_IPV4);
    assert_string_equal(a->host, "127.0.0.1");
    assert_string_equal(a->text, "127.0.0.1:7000");
    assert_int_equal(a->port, 7000);
    assert_int_equal(a->sa.ss_family, AF_INET);
    assert_int_equal(a->salen, sizeof(struct sockaddr_in));
    assert_int_equal(sin->sin_port, htons(7000));
    assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    cfg_free(cfg);
}

static void
test_addr_ipv6(void **state)
{
    struct cfg *cfg = load_ok("listeners:\n"
                              "  - name: a\n"
                              "    bind: \"[::1]:7000\"\n"
                              "    codec: line\n"
                              "    cluster: c\n"
                              "clusters:\n"
                              "  - name: c\n"
                              "    servers: [{ address: \"[2001:db8::1]:6379\" }]\n");
    const struct cfg_addr *a = &cfg->listeners[0].bind;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->sa;
    struct in6_addr want;

    (void)state;
    assert_int_equal(a->kind, CFG_ADDR_IPV6);
    assert_string_equal(a->host, "::1");
    assert_string_equal(a->text, "[::1]:7000");
    assert_int_equal(a->port, 7000);
    assert_int_equal(a->sa.ss_family, AF_INET6);
    assert_int_equal(a->salen, sizeof(struct sockaddr_in6));
    assert_int_equal(sin6->sin6_port, htons(7000));
    assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback, sizeof(struct in6_addr));

    a = &cfg->clusters[0].servers[0].address;
    sin6 = (const struct sockaddr_in6 *)&a->sa;
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &want), 1);
    assert_int_equal(a->kind, CFG_ADDR_IPV6);
    assert_string_equal(a->host, "2001:db8::1");
    assert_string_equal(a->text, "[2001:db8::1]:6379");
    assert_int_equal(a->port, 6379);
    assert_int_equal(a->sa.ss_family, AF_INET6);
    assert_memory_equal(&sin6->sin6_addr, &want, sizeof(want));
    cfg_free(cfg);
}

static void
test_addr_wildcard(void **state)
{
    struct cfg *cfg = load_ok("listeners:\n"
                              "  - name: a\n"
                              "    bind: \"*:7000\"\n"
                              "    codec: line\n"
                              "    cluster: c\n" CLUSTER_C);
    const struct cfg_addr *a = &cfg->listeners[0].bind;

    (void)state;
    assert_int_equal(a->kind, CFG_ADDR_ANY);
    assert_string_equal(a->host, "*");
    assert_string_equal(a->text, "*:7000");
    assert_int_equal(a->port, 7000);
    assert_int_equal(a->salen, 0);
    cfg_free(cfg);
}

static void
test_addr_hostname(void **state)
{
    struct cfg *cfg = load_ok("listeners:\n"
                              "  - name: a\n"
                              "    bind: localhost:7000\n"
                              "    codec: line\n"
                              "    cluster: c\n"
                              "clusters:\n"
                              "  - name: c\n"
                              "    servers: [{ address: redis-1.cache.internal:06379 }]\n");
    const struct cfg_addr *a = &cfg->clusters[0].servers[0].address;

    (void)state;
    assert_int_equal(cfg->listeners[0].bind.kind, CFG_ADDR_NAME);
    assert_string_equal(cfg->listeners[0].bind.host, "localhost");
    assert_int_equal(a->kind, CFG_ADDR_NAME);
    assert_string_equal(a->host, "redis-1.cache.internal");
    assert_int_equal(a->port, 6379);
    assert_string_equal(a->text, "redis-1.cache.internal:6379");
    assert_int_equal(a->salen, 0);
    cfg_free(cfg);
}

static void
test_anchors_and_aliases(void **state)
{
    struct cfg *cfg = load_ok("listeners:\n"
                              "  - name: a\n"
                              "    bind: 127.0.0.1:7000\n"
                              "    codec: &codec { type: length, field_size: 2 }\n"
                              "    cluster: &cl c\n"
                              "    timeouts: &slow { idle: 1h, read: 1m, request: 30s }\n"
                              "  - name: b\n"
                              "    bind: 127.0.0.1:7002\n"
                              "    codec: *codec\n"
                              "    cluster: *cl\n"
                              "    timeouts: *slow\n" CLUSTER_C);
    const struct cfg_listener *b = &cfg->listeners[1];

    (void)state;
    assert_int_equal(cfg->nlisteners, 2);
    assert_int_equal(b->codec.type, CFG_CODEC_LENGTH);
    assert_int_equal(b->codec.field_size, 2);
    assert_string_equal(b->cluster_name, "c");
    assert_ptr_equal(b->cluster, &cfg->clusters[0]);
    assert_int_equal(b->timeouts.idle_ms, 3600000);
    assert_int_equal(b->timeouts.read_ms, 60000);
    assert_int_equal(b->timeouts.request_ms, 30000);
    assert_int_equal(cfg->listeners[0].timeouts.idle_ms, 3600000);
    cfg_free(cfg);
}

/* A cluster without a codec frames like the listeners that use it. */
static void
test_cluster_inherits_codec(void **state)
{
    struct cfg *cfg = load_ok("listeners:\n"
                              "  - name: a\n"
                              "    bind: 127.0.0.1:7000\n"
                              "    codec: { type: length, field_size: 2, max_frame: 4KiB }\n"
                              "    cluster: c\n"
                              "  - name: b\n"
                              "    bind: 127.0.0.1:7002\n"
                              "    codec: { type: length, field_size: 2, max_frame: 4KiB }\n"
                              "    cluster: c\n" CLUSTER_C "  - name: unused\n"
                              "    servers: [{ address: 127.0.0.1:7003 }]\n");
    const struct cfg_codec *c = &cfg->clusters[0].codec;

    (void)state;
    assert_true(c->set);
    assert_int_equal(c->type, CFG_CODEC_LENGTH);
    assert_int_equal(c->field_size, 2);
    assert_int_equal(c->max_frame, 4 * KiB);
    assert_false(cfg->clusters[1].codec.set);
    cfg_free(cfg);
}

/* line and length re-frame into each other; a cluster codec equal to the listener's is fine. */
static void
test_reframe_line_and_length(void **state)
{
    struct cfg *cfg = load_ok("listeners:\n"
                              "  - name: a\n"
                              "    bind: 127.0.0.1:7000\n"
                              "    codec: length\n"
                              "    cluster: lines\n"
                              "  - name: b\n"
                              "    bind: 127.0.0.1:7002\n"
                              "    codec: line\n"
                              "    cluster: framed\n"
                              "  - name: c\n"
                              "    bind: 127.0.0.1:7004\n"
                              "    codec: resp\n"
                              "    cluster: redis\n"
                              "clusters:\n"
                              "  - name: lines\n"
                              "    codec: line\n"
                              "    servers: [{ address: 127.0.0.1:7001 }]\n"
                              "  - name: framed\n"
                              "    codec: { type: length, field_size: 2 }\n"
                              "    servers: [{ address: 127.0.0.1:7003 }]\n"
                              "  - name: redis\n"
                              "    codec: resp\n"
                              "    servers: [{ address: 127.0.0.1:6379 }]\n");

    (void)state;
    assert_int_equal(cfg->listeners[0].codec.type, CFG_CODEC_LENGTH);
    assert_int_equal(cfg->clusters[0].codec.type, CFG_CODEC_LINE);
    assert_int_equal(cfg->listeners[1].codec.type, CFG_CODEC_LINE);
    assert_int_equal(cfg->clusters[1].codec.type, CFG_CODEC_LENGTH);
    assert_int_equal(cfg->clusters[1].codec.field_size, 2);
    assert_int_equal(cfg->clusters[2].codec.type, CFG_CODEC_RESP);
    cfg_free(cfg);
}

static void
test_root_settings(void **state)
{
    struct cfg *cfg = load_ok("workers: 8\n"
                              "log: { level: debug, format: json }\n"
                              "admin: { bind: \"[::1]:9000\" }\n" LISTENER_A CLUSTER_C);

    (void)state;
    assert_int_equal(cfg->workers, 8);
    assert_int_equal(cfg->log.level, CFG_LOG_DEBUG);
    assert_int_equal(cfg->log.format, CFG_LOG_JSON);
    assert_int_equal(cfg->admin.bind.kind, CFG_ADDR_IPV6);
    assert_string_equal(cfg->admin.bind.text, "[::1]:9000");
    cfg_free(cfg);

    cfg = load_ok("workers: 256\n" LISTENER_A CLUSTER_C);
    assert_int_equal(cfg->workers, 256);
    cfg_free(cfg);
}

/* The same port on other hosts, and a UDP relay on a listener's address, do not conflict. */
static void
test_binds_without_conflict(void **state)
{
    struct cfg *cfg = load_ok("listeners:\n"
                              "  - name: a\n"
                              "    bind: 127.0.0.1:7000\n"
                              "    codec: line\n"
                              "    cluster: c\n"
                              "  - name: b\n"
                              "    bind: 127.0.0.2:7000\n"
                              "    codec: line\n"
                              "    cluster: c\n"
                              "  - name: c\n"
                              "    bind: \"[::1]:7000\"\n"
                              "    codec: line\n"
                              "    cluster: c\n"
                              "udp:\n"
                              "  - name: u\n"
                              "    bind: 127.0.0.1:7000\n"
                              "    cluster: c\n" CLUSTER_C);

    (void)state;
    assert_int_equal(cfg->nlisteners, 3);
    assert_int_equal(cfg->nudp, 1);
    cfg_free(cfg);
}

static void
test_load_file(void **state)
{
    char path[512];
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg;
    char prefix[600];

    (void)state;
    make_file(path, sizeof(path), "yaml", LISTENER_A CLUSTER_C);
    cfg = cfg_load_file(path, diag);
    unlink(path);
    if (cfg == NULL) {
        print_diag(diag);
    }
    assert_non_null(cfg);
    assert_int_equal(cfg_diag_count(diag), 0);
    assert_string_equal(cfg->file, path);
    assert_string_equal(cfg->listeners[0].name, "a");
    cfg_free(cfg);

    /* Messages name the file as given. */
    make_file(path, sizeof(path), "yaml", LISTENER_A "    max_clients: 0\n" CLUSTER_C);
    cfg = cfg_load_file(path, diag);
    unlink(path);
    snprintf(prefix, sizeof(prefix), "%s:6:18: listeners[0].max_clients: ", path);
    check_failed(cfg, diag, 1, 0, prefix, NULL);
    cfg_diag_free(diag);
}

/* The files shipped in config/ load. */
static void
test_shipped_files(void **state)
{
    static const char *const files[] = {"config/sluice.yaml", "config/examples/redis.yaml",
                                        "config/examples/framing.yaml"};
    static const char self[] = "tests/unit/test_cfg.c";
    const char *file = __FILE__;
    size_t flen = strlen(file), i;
    char path[1024];

    (void)state;
    if (file[0] != '/' || flen < sizeof(self) ||
        strcmp(file + flen - (sizeof(self) - 1), self) != 0) {
        skip();
    }
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct cfg_diag *diag = cfg_diag_new();
        struct cfg *cfg;

        snprintf(path, sizeof(path), "%.*s%s", (int)(flen - (sizeof(self) - 1)), file, files[i]);
        if (access(path, R_OK) == -1) {
            cfg_diag_free(diag);
            continue;
        }
        cfg = cfg_load_file(path, diag);
        if (cfg == NULL) {
            print_diag(diag);
            cfg_diag_free(diag);
            fail_msg("%s does not load", path);
        }
        assert_true(cfg->nlisteners + cfg->nudp > 0);
        cfg_free(cfg);
        cfg_diag_free(diag);
    }
}

/* A diag reused for a good load is emptied. */
static void
test_diag_reused(void **state)
{
    static const char bad[] = "log: debug\n";
    static const char good[] = LISTENER_A CLUSTER_C;
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg;

    (void)state;
    assert_null(cfg_load_buffer("t.yaml", bad, strlen(bad), diag));
    assert_int_equal(cfg_diag_count(diag), 2);
    cfg = cfg_load_buffer("t.yaml", good, strlen(good), diag);
    assert_non_null(cfg);
    assert_int_equal(cfg_diag_count(diag), 0);
    assert_null(cfg_diag_message(diag, 0));
    cfg_free(cfg);
    cfg_diag_free(diag);
}

/* Dump a rich config, load the dump, dump again: the same text after the first comment line. */
static void
test_dump_round_trip(void **state)
{
    char cert[512], key[512], ca[512], text[8192];
    struct cfg *cfg, *again;
    char *one, *two;
    const char *body1, *body2;

    (void)state;
    make_file(cert, sizeof(cert), "cert", "certificate\n");
    make_file(key, sizeof(key), "key", "key\n");
    make_file(ca, sizeof(ca), "ca", "ca\n");
    snprintf(text, sizeof(text),
             "workers: 4\n"
             "log: { level: warn, format: json }\n"
             "admin: { bind: \"[::1]:9901\" }\n"
             "listeners:\n"
             "  - name: redis\n"
             "    bind: \"*:6380\"\n"
             "    codec: resp\n"
             "    cluster: redis\n"
             "    max_clients: 500\n"
             "    max_inflight: 1\n"
             "    backlog: 65535\n"
             "    timeouts: { idle: 1m30s, read: 0, request: 250ms }\n"
             "    tls: { cert: \"%s\", key: \"%s\" }\n"
             "  - name: framed\n"
             "    bind: 127.0.0.1:9090\n"
             "    codec: { type: length, field_offset: 2, field_size: 3, byte_order: little, "
             "adjust: -7, max_frame: 3MiB }\n"
             "    cluster: lines\n"
             "  - name: web.v2\n"
             "    bind: \"[::1]:8080\"\n"
             "    codec: { type: http, max_frame: 100000 }\n"
             "    cluster: web\n"
             "  - name: pass-through\n"
             "    bind: localhost:7000\n"
             "    codec: raw\n"
             "    cluster: raw\n"
             "clusters:\n"
             "  - name: redis\n"
             "    balance: least_request\n"
             "    retries: 3\n"
             "    servers:\n"
             "      - { address: 10.0.0.1:6379, weight: 5 }\n"
             "      - { address: \"[2001:db8::1]:6379\" }\n"
             "      - { address: redis.internal:6379 }\n"
             "    pool: { min_idle: 0, max_connections: 16, max_pipeline: 1, idle_timeout: 0, "
             "max_lifetime: 1h, max_requests: 1000, queue: { max: 0, timeout: 1500ms } }\n"
             "    timeouts: { connect: 100ms, read: 0, write: 1d }\n"
             "    health:\n"
             "      active: { interval: 1s, timeout: 1s, rise: 1, fall: 1, "
             "send: \"PING\\r\\n\\0\\t\\\"q\\\"\\\\ \\x01\\x7f\", expect: \"+PONG\" }\n"
             "      passive: { consecutive_failures: 2, eject: 1s, max_eject: 1h, "
             "max_ejected_percent: 100 }\n"
             "    tls: { ca: \"%s\", verify: false, sni: redis.example.com }\n"
             "  - name: lines\n"
             "    codec: { type: line, delimiter: \"\\r\\n\", max_frame: 1KiB }\n"
             "    balance: hash\n"
             "    servers: [{ address: 127.0.0.1:9091 }]\n"
             "  - name: web\n"
             "    servers: [{ address: 127.0.0.1:8081 }]\n"
             "    health: { active: { expect: \"HTTP/1.1 200\" } }\n"
             "    tls: {}\n"
             "  - name: raw\n"
             "    servers: [{ address: 127.0.0.1:7001 }]\n"
             "  - name: idle\n"
             "    balance: random\n"
             "    servers: [{ address: 127.0.0.1:7002 }]\n"
             "udp:\n"
             "  - name: dns\n"
             "    bind: 0.0.0.0:5353\n"
             "    cluster: idle\n"
             "    flow_idle: 45s\n"
             "    max_flows: 7\n",
             cert, key, ca);
    cfg = load_ok(text);
    one = dump_text(cfg);
    again = load_ok(one);
    two = dump_text(again);
    unlink(cert);
    unlink(key);
    unlink(ca);

    assert_int_equal(again->clusters[0].health.active.send.len, 15);
    assert_memory_equal(again->clusters[0].health.active.send.ptr, "PING\r\n\0\t\"q\"\\ \x01\x7f",
                        15);
    assert_int_equal(again->listeners[1].codec.adjust, -7);
    assert_int_equal(again->listeners[2].codec.max_frame, 100000);
    assert_false(again->clusters[4].codec.set);
    assert_non_null(strstr(one, "max_inflight: 1\n"));
    assert_non_null(strstr(one, "idle: 90s\n"));
    body1 = strchr(one, '\n');
    body2 = strchr(two, '\n');
    assert_non_null(body1);
    assert_non_null(body2);
    assert_string_equal(body1, body2);
    free(one);
    free(two);
    cfg_free(cfg);
    cfg_free(again);
}

/*
 * Bytes outside ASCII survive a dump and a load. A YAML "\xNN" escape is the code point U+00NN,
 * so a dump that writes the bytes c3 a9 as "\xc3\xa9" loads back as c3 83 c2 a9.
 */
static void
test_dump_round_trip_non_ascii(void **state)
{
    struct cfg *cfg = load_ok(LISTENER_A CLUSTER_C "    health:\n"
                                                   "      active: { send: \"caf\xc3\xa9\" }\n");
    struct cfg *again;
    char *one;
    size_t len;
    bool same;

    (void)state;
    assert_int_equal(cfg->clusters[0].health.active.send.len, 5);
    one = dump_text(cfg);
    again = load_ok(one);
    len = again->clusters[0].health.active.send.len;
    same = len == 5 && memcmp(again->clusters[0].health.active.send.ptr, "caf\xc3\xa9", 5) == 0;
    free(one);
    cfg_free(cfg);
    cfg_free(again);
    if (!same) {
        fail_msg("\"caf\\xc3\\xa9\" (5 bytes) is %zu bytes after a dump and a load", len);
    }
}

/* ---- YAML-level errors ---- */

static void
test_yaml_syntax_error(void **state)
{
    (void)state;
    expect_error_has(
        "listeners:\n"
        "  - name: a: b\n",
        "t.yaml:2:12: YAML syntax error: ", "mapping values are not allowed in this context");
}

static void
test_second_document(void **state)
{
    (void)state;
    expect_error("listeners: []\n"
                 "---\n"
                 "udp: []\n",
                 "t.yaml:2:1: a second YAML document; expected one document per file");
}

static void
test_alias_without_anchor(void **state)
{
    (void)state;
    expect_error(LISTENER_A "    timeouts: *slow\n" CLUSTER_C,
                 "t.yaml:6:15: alias *slow names no anchor defined before it");
}

/* ---- keys ---- */

static void
test_unknown_key_did_you_mean(void **state)
{
    (void)state;
    expect_error(LISTENER_A "    max_client: 5\n" CLUSTER_C,
                 "t.yaml:6:5: listeners[0].max_client: unknown key 'max_client'; "
                 "did you mean 'max_clients'?");
    expect_error(LISTENER_A CLUSTER_C "    pool: { max_conections: 8 }\n",
                 "t.yaml:9:13: clusters[0].pool.max_conections: unknown key 'max_conections'; "
                 "did you mean 'max_connections'?");
}

static void
test_unknown_key_no_match(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "frobnicate: 1\n",
                 "t.yaml:9:1: frobnicate: unknown key 'frobnicate'; expected one of: workers, "
                 "log, admin, listeners, clusters, udp");
}

static void
test_unknown_codec_parameter(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: line, delimeter: \"\\n\" }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:26: listeners[0].codec.delimeter: unknown key 'delimeter'; "
                 "did you mean 'delimiter'?");
}

static void
test_duplicate_key(void **state)
{
    (void)state;
    expect_error(LISTENER_A "    bind: 127.0.0.1:7002\n" CLUSTER_C,
                 "t.yaml:6:5: listeners[0].bind: duplicate key; first given at line 3");
    expect_error(LISTENER_A CLUSTER_C "clusters: []\n",
                 "t.yaml:9:1: clusters: duplicate key; first given at line 6");
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: line, type: resp }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:26: listeners[0].codec.type: duplicate key; first given at line 4");
}

static void
test_root_not_a_mapping(void **state)
{
    (void)state;
    expect_errors("- a\n", 2, "t.yaml:1:1: expected a mapping, got a sequence",
                  "t.yaml:1:1: listeners: nothing to serve");
    expect_errors("hello\n", 2, "t.yaml:1:1: expected a mapping, got a scalar",
                  "t.yaml:1:1: listeners: nothing to serve");
}

static void
test_value_expected(void **state)
{
    (void)state;
    expect_error(LISTENER_A "    max_clients: { n: 5 }\n" CLUSTER_C,
                 "t.yaml:6:18: listeners[0].max_clients: expected a value, got a mapping");
    expect_error(LISTENER_A "    backlog: [1]\n" CLUSTER_C,
                 "t.yaml:6:14: listeners[0].backlog: expected a value, got a sequence");
    expect_error(LISTENER_A "    max_clients:\n" CLUSTER_C,
                 "t.yaml:6:17: listeners[0].max_clients: missing value");
    expect_error(LISTENER_A "    max_clients: ~\n" CLUSTER_C,
                 "t.yaml:6:18: listeners[0].max_clients: missing value");
}

static void
test_mapping_expected(void **state)
{
    (void)state;
    expect_error("log: debug\n" LISTENER_A CLUSTER_C,
                 "t.yaml:1:6: log: expected a mapping, got a scalar");
    expect_error(LISTENER_A "    timeouts: [1s]\n" CLUSTER_C,
                 "t.yaml:6:15: listeners[0].timeouts: expected a mapping, got a sequence");
    /* An optional block too: present means on, so it must be a mapping. */
    expect_error(LISTENER_A "    tls: true\n" CLUSTER_C,
                 "t.yaml:6:10: listeners[0].tls: expected a mapping, got a scalar");
    /* An empty value in a flow mapping is where the next token ('}') starts. */
    expect_error(LISTENER_A CLUSTER_C "    health: { active: }\n",
                 "t.yaml:9:23: clusters[0].health.active: expected a mapping, got null");
    /* A list element. */
    expect_error("listeners: [a]\n" CLUSTER_C,
                 "t.yaml:1:13: listeners[0]: expected a mapping, got a scalar");
}

static void
test_sequence_expected(void **state)
{
    (void)state;
    expect_error(LISTENER_A "clusters:\n"
                            "  - name: c\n"
                            "    servers: 127.0.0.1:7001\n",
                 "t.yaml:8:14: clusters[0].servers: expected a sequence, got a scalar");
    expect_error("listeners: { name: a }\n",
                 "t.yaml:1:12: listeners: expected a sequence, got a mapping");
}

static void
test_codec_not_name_or_mapping(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: [line]\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:12: listeners[0].codec: expected a codec name or a mapping with a "
                 "type, got a sequence");
}

/* ---- missing required keys: reported where the enclosing mapping starts ---- */

static void
test_missing_listener_name(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - bind: 127.0.0.1:7000\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:2:5: listeners[0].name: missing required key 'name'");
}

static void
test_missing_listener_bind(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:2:5: listeners[0].bind: missing required key 'bind'");
}

static void
test_missing_listener_codec(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:2:5: listeners[0].codec: missing required key 'codec'");
}

static void
test_missing_listener_cluster(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: line\n" CLUSTER_C,
                 "t.yaml:2:5: listeners[0].cluster: missing required key 'cluster'");
    /* In a flow mapping: at its '{'. */
    expect_error("listeners: [{ name: a, bind: 127.0.0.1:7000, codec: line }]\n" CLUSTER_C,
                 "t.yaml:1:13: listeners[0].cluster: missing required key 'cluster'");
}

static void
test_missing_listener_everything(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - max_clients: 5\n" CLUSTER_C,
                  4, "t.yaml:2:5: listeners[0].name: missing required key 'name'",
                  "t.yaml:2:5: listeners[0].bind: missing required key 'bind'",
                  "t.yaml:2:5: listeners[0].codec: missing required key 'codec'",
                  "t.yaml:2:5: listeners[0].cluster: missing required key 'cluster'");
}

static void
test_missing_server_address(void **state)
{
    (void)state;
    expect_error(LISTENER_A "clusters:\n"
                            "  - name: c\n"
                            "    servers:\n"
                            "      - weight: 2\n",
                 "t.yaml:9:9: clusters[0].servers[0].address: missing required key 'address'");
    expect_error(LISTENER_A "clusters:\n"
                            "  - name: c\n"
                            "    servers: [{ weight: 2 }]\n",
                 "t.yaml:8:15: clusters[0].servers[0].address: missing required key 'address'");
}

static void
test_missing_cluster_servers(void **state)
{
    (void)state;
    expect_error(LISTENER_A "clusters:\n"
                            "  - name: c\n",
                 "t.yaml:7:5: clusters[0].servers: missing required key 'servers'");
}

static void
test_missing_codec_type(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { max_frame: 1KiB }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:12: listeners[0].codec.type: missing required key 'type'");
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec:\n"
                 "      max_frame: 1KiB\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:5:7: listeners[0].codec.type: missing required key 'type'");
}

/* ---- scalar values ---- */

static void
test_int_out_of_range(void **state)
{
    (void)state;
    expect_error(LISTENER_A "    max_clients: 0\n" CLUSTER_C,
                 "t.yaml:6:18: listeners[0].max_clients: 0 is out of range; expected 1 to 1000000");
    expect_error(LISTENER_A "    max_clients: 1000001\n" CLUSTER_C,
                 "t.yaml:6:18: listeners[0].max_clients: 1000001 is out of range; expected 1 to "
                 "1000000");
    expect_error(LISTENER_A "    max_clients: -1\n" CLUSTER_C,
                 "t.yaml:6:18: listeners[0].max_clients: -1 is out of range");
    expect_error(LISTENER_A "    max_clients: many\n" CLUSTER_C,
                 "t.yaml:6:18: listeners[0].max_clients: expected an integer");
}

static void
test_weight_zero(void **state)
{
    (void)state;
    expect_error(LISTENER_A "clusters:\n"
                            "  - name: c\n"
                            "    servers:\n"
                            "      - address: 127.0.0.1:7001\n"
                            "        weight: 0\n",
                 "t.yaml:10:17: clusters[0].servers[0].weight: 0 is out of range; expected 1 to "
                 "10000");
}

static void
test_max_ejected_percent(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "    health:\n"
                                      "      passive:\n"
                                      "        max_ejected_percent: 101\n",
                 "t.yaml:11:30: clusters[0].health.passive.max_ejected_percent: 101 is out of "
                 "range; expected 0 to 100");
}

static void
test_adjust_out_of_range(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: length, adjust: 2147483648 }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:36: listeners[0].codec.adjust: 2147483648 is out of range; expected "
                 "-2147483648 to 2147483647");
}

static void
test_duration_without_unit(void **state)
{
    (void)state;
    expect_error(LISTENER_A "    timeouts: { idle: 30 }\n" CLUSTER_C,
                 "t.yaml:6:23: listeners[0].timeouts.idle: a duration needs a unit: ms, s, m, h "
                 "or d (for example 2s)");
}

static void
test_duration_unknown_unit(void **state)
{
    (void)state;
    expect_error(LISTENER_A "    timeouts: { idle: 30sec }\n" CLUSTER_C,
                 "t.yaml:6:23: listeners[0].timeouts.idle: unknown duration unit; expected ms, s, "
                 "m, h or d");
}

static void
test_duration_zero_not_allowed(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "    timeouts: { connect: 0 }\n",
                 "t.yaml:9:26: clusters[0].timeouts.connect: must be at least 1ms (0 is not "
                 "allowed here)");
    expect_error("udp:\n"
                 "  - name: u\n"
                 "    bind: 127.0.0.1:5300\n"
                 "    cluster: c\n"
                 "    flow_idle: 0s\n" CLUSTER_C,
                 "t.yaml:5:16: udp[0].flow_idle: must be at least 1ms");
}

static void
test_duration_below_minimum(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "    health: { active: { interval: 50ms } }\n",
                 "t.yaml:9:35: clusters[0].health.active.interval: must be at least 100ms");
}

/*
 * A duration past the table's maximum (INT64_MAX ms) is rejected, and the message must not claim
 * that it is too small.
 */
static void
test_duration_above_maximum(void **state)
{
    static const char text[] =
        LISTENER_A "    timeouts: { idle: 9223372036854775808ms }\n" CLUSTER_C;
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg = cfg_load_buffer("t.yaml", text, strlen(text), diag);
    const char *msg;

    (void)state;
    check_failed(cfg, diag, 1, 0, "t.yaml:6:23: listeners[0].timeouts.idle: ", NULL);
    msg = cfg_diag_message(diag, 0);
    if (strstr(msg, "at least") != NULL) {
        print_error("  %s\n", msg);
        cfg_diag_free(diag);
        fail_msg("a value above the maximum is reported as below the minimum");
    }
    cfg_diag_free(diag);
}

static void
test_size_ambiguous_unit(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: line, max_frame: 64KB }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:37: listeners[0].codec.max_frame: ambiguous size unit; expected KiB, "
                 "MiB or GiB (powers of 1024)");
}

static void
test_size_out_of_range(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: line, max_frame: 2GiB }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:37: listeners[0].codec.max_frame: 2GiB is out of range; expected 1 to "
                 "1GiB");
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: line, max_frame: 0 }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:37: listeners[0].codec.max_frame: 0 is out of range; expected 1 to "
                 "1GiB");
}

static void
test_addr_without_port(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:3:11: listeners[0].bind: missing port; expected host:port");
}

static void
test_addr_port_zero(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:0\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:3:11: listeners[0].bind: port must be a number from 1 to 65535");
}

static void
test_addr_port_too_large(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:70000\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:3:11: listeners[0].bind: port must be a number from 1 to 65535");
}

static void
test_addr_ipv6_without_brackets(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: \"::1:7000\"\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:3:11: listeners[0].bind: an IPv6 address needs brackets: [::1]:port");
}

static void
test_addr_wildcard_server(void **state)
{
    (void)state;
    expect_error(LISTENER_A "clusters:\n"
                            "  - name: c\n"
                            "    servers:\n"
                            "      - address: \"*:7001\"\n",
                 "t.yaml:9:18: clusters[0].servers[0].address: '*' is for bind addresses; a "
                 "server needs a host");
}

static void
test_enum_did_you_mean(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "    balance: round-robin\n",
                 "t.yaml:9:14: clusters[0].balance: unknown value 'round-robin'; did you mean "
                 "'round_robin'? expected one of: round_robin, least_request, random, hash");
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: lenght\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:12: listeners[0].codec: unknown value 'lenght'; did you mean 'length'? "
                 "expected one of: raw, line, length, resp, http");
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: lenght }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:20: listeners[0].codec.type: unknown value 'lenght'; did you mean "
                 "'length'?");
}

static void
test_enum_no_match(void **state)
{
    (void)state;
    expect_error("log: { level: verbose }\n" LISTENER_A CLUSTER_C,
                 "t.yaml:1:15: log.level: unknown value 'verbose'; expected one of: debug, info, "
                 "warn, error");
}

static void
test_bad_names(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: \"a b\"\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:2:11: listeners[0].name: 'a b' is not a valid name; expected 1 to 63 "
                 "letters, digits, '_', '-' or '.'");
    expect_error("listeners:\n"
                 "  - name: \"a\\0b\"\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:2:11: listeners[0].name: a NUL byte inside the value");
    expect_error(LISTENER_A CLUSTER_C "    tls: { sni: \"bad name\" }\n",
                 "t.yaml:9:17: clusters[0].tls.sni: 'bad name' is not a valid DNS name");
}

static void
test_workers_out_of_range(void **state)
{
    (void)state;
    expect_error("workers: 0\n" LISTENER_A CLUSTER_C,
                 "t.yaml:1:10: workers: expected auto or a number from 1 to 256");
    expect_error("workers: 257\n" LISTENER_A CLUSTER_C,
                 "t.yaml:1:10: workers: expected auto or a number from 1 to 256");
    expect_error("workers: some\n" LISTENER_A CLUSTER_C,
                 "t.yaml:1:10: workers: expected auto or a number from 1 to 256");
}

static void
test_bad_bool(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "    tls: { verify: yes }\n",
                 "t.yaml:9:20: clusters[0].tls.verify: expected true or false");
}

/* ---- codec parameters ---- */

static void
test_field_size_5(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: length, field_size: 5 }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:40: listeners[0].codec.field_size: 5 is not a field size; expected 1, "
                 "2, 3, 4 or 8");
}

static void
test_max_frame_below_field_end(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: length, field_offset: 10, field_size: 4, max_frame: 8 }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:72: listeners[0].codec.max_frame: max_frame 8 is smaller than the "
                 "length field's end (14); no frame could fit");
}

static void
test_delimiter_too_long(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: line, delimiter: \"123456789\" }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:37: listeners[0].codec.delimiter: a delimiter of 9 bytes; expected 1 "
                 "to 8 bytes");
}

static void
test_delimiter_empty(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: line, delimiter: \"\" }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:37: listeners[0].codec.delimiter: a delimiter of 0 bytes; expected 1 "
                 "to 8 bytes");
}

static void
test_parameter_of_other_codec(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: length, delimiter: \"\\n\" }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:28: listeners[0].codec.delimiter: 'delimiter' is not a parameter of "
                 "the length codec; it takes: type, max_frame, field_offset, field_size, "
                 "byte_order, adjust");
}

static void
test_raw_with_max_frame(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: raw, max_frame: 1KiB }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:25: listeners[0].codec.max_frame: 'max_frame' is not a parameter of "
                 "the raw codec; it takes: type");
}

/*
 * No line fits in a max_frame shorter than the delimiter it includes (the length codec has the
 * same check against the end of its length field).
 */
static void
test_line_max_frame_below_delimiter(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: { type: line, delimiter: \"\\r\\n\", max_frame: 1 }\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:56: listeners[0].codec.max_frame: ");
}

/* ---- cross-checks ---- */

static void
test_duplicate_listener_name(void **state)
{
    (void)state;
    expect_error(LISTENER_A "  - name: a\n"
                            "    bind: 127.0.0.1:7002\n"
                            "    codec: line\n"
                            "    cluster: c\n" CLUSTER_C,
                 "t.yaml:6:11: listeners[1].name: duplicate listener name 'a'; first used by "
                 "listeners[0] at line 2");
}

static void
test_duplicate_cluster_name(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "  - name: c\n"
                                      "    servers: [{ address: 127.0.0.1:7002 }]\n",
                 "t.yaml:9:11: clusters[1].name: duplicate cluster name 'c'; first used by "
                 "clusters[0] at line 7");
}

static void
test_duplicate_udp_name(void **state)
{
    (void)state;
    expect_error("udp:\n"
                 "  - name: u\n"
                 "    bind: 127.0.0.1:5300\n"
                 "    cluster: c\n"
                 "  - name: u\n"
                 "    bind: 127.0.0.1:5301\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:5:11: udp[1].name: duplicate udp relay name 'u'; first used by udp[0] at "
                 "line 2");
}

static void
test_unknown_cluster_did_you_mean(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: line\n"
                 "    cluster: cach\n"
                 "clusters:\n"
                 "  - name: cache\n"
                 "    servers: [{ address: 127.0.0.1:7001 }]\n",
                 "t.yaml:5:14: listeners[0].cluster: unknown cluster 'cach'; did you mean "
                 "'cache'?");
}

static void
test_unknown_cluster_no_match(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: line\n"
                 "    cluster: zzz\n"
                 "clusters:\n"
                 "  - name: cache\n"
                 "    servers: [{ address: 127.0.0.1:7001 }]\n",
                 "t.yaml:5:14: listeners[0].cluster: unknown cluster 'zzz'; expected the name of "
                 "an entry in clusters");
    expect_error("udp:\n"
                 "  - name: u\n"
                 "    bind: 127.0.0.1:5300\n"
                 "    cluster: c\n",
                 "t.yaml:4:14: udp[0].cluster: unknown cluster 'c'; no clusters are defined");
}

static void
test_same_bind(void **state)
{
    (void)state;
    expect_error(LISTENER_A "  - name: b\n"
                            "    bind: 127.0.0.1:7000\n"
                            "    codec: line\n"
                            "    cluster: c\n" CLUSTER_C,
                 "t.yaml:7:11: listeners[1].bind: 127.0.0.1:7000 overlaps listeners[0] "
                 "(127.0.0.1:7000, line 3); each listener needs an address of its own");
    expect_error("udp:\n"
                 "  - name: u\n"
                 "    bind: 127.0.0.1:5300\n"
                 "    cluster: c\n"
                 "  - name: v\n"
                 "    bind: 127.0.0.1:5300\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:6:11: udp[1].bind: 127.0.0.1:5300 overlaps udp[0] (127.0.0.1:5300, line "
                 "3)");
}

static void
test_wildcard_overlap(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: \"*:7000\"\n"
                 "    codec: line\n"
                 "    cluster: c\n"
                 "  - name: b\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:7:11: listeners[1].bind: 127.0.0.1:7000 overlaps listeners[0] (*:7000, "
                 "line 3)");
    expect_error(LISTENER_A "  - name: b\n"
                            "    bind: \"*:7000\"\n"
                            "    codec: line\n"
                            "    cluster: c\n" CLUSTER_C,
                 "t.yaml:7:11: listeners[1].bind: *:7000 overlaps listeners[0] (127.0.0.1:7000, "
                 "line 3)");
    expect_error(LISTENER_A "  - name: b\n"
                            "    bind: 0.0.0.0:7000\n"
                            "    codec: line\n"
                            "    cluster: c\n" CLUSTER_C,
                 "t.yaml:7:11: listeners[1].bind: 0.0.0.0:7000 overlaps listeners[0]");
}

static void
test_admin_overlap(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:9901\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:3:11: listeners[0].bind: 127.0.0.1:9901 overlaps the admin endpoint "
                 "(admin.bind 127.0.0.1:9901)");
    expect_error("admin: { bind: \"*:8000\" }\n"
                 "listeners:\n"
                 "  - name: a\n"
                 "    bind: 10.0.0.1:8000\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:4:11: listeners[0].bind: 10.0.0.1:8000 overlaps the admin endpoint "
                 "(admin.bind *:8000)");
}

static void
test_empty_server_list(void **state)
{
    (void)state;
    expect_error(LISTENER_A "clusters:\n"
                            "  - name: c\n"
                            "    servers: []\n",
                 "t.yaml:8:14: clusters[0].servers: empty list; expected at least 1 entry");
}

static void
test_duplicate_server(void **state)
{
    (void)state;
    expect_error(LISTENER_A "clusters:\n"
                            "  - name: c\n"
                            "    servers:\n"
                            "      - address: 127.0.0.1:7001\n"
                            "      - address: 127.0.0.1:7001\n",
                 "t.yaml:10:18: clusters[0].servers[1].address: 127.0.0.1:7001 is listed twice "
                 "(also servers[0]); use weight to give a server more traffic");
}

static void
test_min_idle_over_max_connections(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "    pool:\n"
                                      "      min_idle: 8\n"
                                      "      max_connections: 4\n",
                 "t.yaml:10:17: clusters[0].pool.min_idle: 8 is more than max_connections (4)");
    /* Against the default max_connections (4). */
    expect_error(LISTENER_A CLUSTER_C "    pool: { min_idle: 5 }\n",
                 "t.yaml:9:23: clusters[0].pool.min_idle: 5 is more than max_connections (4)");
}

static void
test_active_timeout_over_interval(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "    health:\n"
                                      "      active: { interval: 1s, timeout: 2s }\n",
                 "t.yaml:10:40: clusters[0].health.active.timeout: longer than interval; a check "
                 "must end before the next starts");
    /* The default timeout (1s): reported at the block, as there is no timeout key. */
    expect_error(LISTENER_A CLUSTER_C "    health:\n"
                                      "      active: { interval: 500ms }\n",
                 "t.yaml:10:15: clusters[0].health.active.timeout: longer than interval");
}

static void
test_passive_max_eject_below_eject(void **state)
{
    (void)state;
    expect_error(LISTENER_A CLUSTER_C "    health:\n"
                                      "      passive: { eject: 1m, max_eject: 30s }\n",
                 "t.yaml:10:40: clusters[0].health.passive.max_eject: shorter than eject");
}

static void
test_listeners_disagree_on_codec(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: resp\n"
                 "    cluster: c\n"
                 "  - name: b\n"
                 "    bind: 127.0.0.1:7002\n"
                 "    codec: line\n"
                 "    cluster: c\n" CLUSTER_C,
                 "t.yaml:11:11: clusters[0]: used by listeners with different codecs, resp "
                 "(listeners[0]) and line (listeners[1]); give the cluster a codec of its own");
}

static void
test_cannot_reframe(void **state)
{
    (void)state;
    expect_error("listeners:\n"
                 "  - name: a\n"
                 "    bind: 127.0.0.1:7000\n"
                 "    codec: resp\n"
                 "    cluster: c\n"
                 "clusters:\n"
                 "  - name: c\n"
                 "    codec: line\n"
                 "    servers: [{ address: 127.0.0.1:7001 }]\n",
                 "t.yaml:4:12: listeners[0].codec: resp cannot be re-framed into cluster 'c' codec "
                 "line (line 8); only line and length re-frame into each other");
}

static void
test_nothing_to_serve(void **state)
{
    (void)state;
    expect_error("", "t.yaml:1:1: listeners: nothing to serve; expected at least one entry in "
                     "listeners or udp");
    expect_error("# only a comment\n", "t.yaml:1:1: listeners: nothing to serve");
    expect_error("listeners: []\n"
                 "udp: []\n",
                 "t.yaml:1:1: listeners: nothing to serve");
    expect_error("# just a cluster\n" CLUSTER_C, "t.yaml:2:1: listeners: nothing to serve");
}

static void
test_unreadable_tls_files(void **state)
{
    (void)state;
    expect_errors(LISTENER_A
                  "    tls: { cert: /nonexistent/sluice.pem, key: /nonexistent/sluice.key "
                  "}\n" CLUSTER_C,
                  2, "t.yaml:6:18: listeners[0].tls.cert: cannot read '/nonexistent/sluice.pem': ",
                  "t.yaml:6:48: listeners[0].tls.key: cannot read '/nonexistent/sluice.key': ");
    expect_error_has(LISTENER_A CLUSTER_C "    tls: { ca: missing-ca.pem }\n",
                     "t.yaml:9:16: clusters[0].tls.ca: cannot read './missing-ca.pem': ",
                     "No such file or directory");
}

/*
 * A file path must name a readable file; a directory would only fail later, when TLS starts.
 */
static void
test_tls_cert_is_a_directory(void **state)
{
    char key[512], text[2048];
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg;

    (void)state;
    make_file(key, sizeof(key), "key", "not really a key\n");
    snprintf(text, sizeof(text), LISTENER_A "    tls: { cert: \"%s\", key: \"%s\" }\n" CLUSTER_C,
             tmp_dir(), key);
    cfg = cfg_load_buffer("t.yaml", text, strlen(text), diag);
    unlink(key);
    check_failed(cfg, diag, 1, 0, "t.yaml:6:18: listeners[0].tls.cert: ", NULL);
    cfg_diag_free(diag);
}

/* Every error of a file, load-time and cross-checks alike, sorted by position. */
static void
test_multiple_errors_in_file_order(void **state)
{
    (void)state;
    expect_errors("workers: 0\n"
                  "log: { level: verbose }\n"
                  "listeners:\n"
                  "  - name: a\n"
                  "    bind: 127.0.0.1:7000\n"
                  "    codec: line\n"
                  "    cluster: cach\n"
                  "    max_clients: 0\n"
                  "clusters:\n"
                  "  - name: cache\n"
                  "    servers:\n"
                  "      - address: 127.0.0.1\n"
                  "    retries: 11\n"
                  "    pool: { min_idle: 9 }\n",
                  7, "t.yaml:1:10: workers: ", "t.yaml:2:15: log.level: ",
                  "t.yaml:7:14: listeners[0].cluster: unknown cluster 'cach'",
                  "t.yaml:8:18: listeners[0].max_clients: ",
                  "t.yaml:12:18: clusters[0].servers[0].address: missing port",
                  "t.yaml:13:14: clusters[0].retries: 11 is out of range; expected 0 to 10",
                  "t.yaml:14:23: clusters[0].pool.min_idle: 9 is more than max_connections (4)");
}

/* Past 200 errors one last line says how many more there were. */
static void
test_too_many_errors(void **state)
{
    char text[8192];
    size_t used = 0, i;
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg;

    (void)state;
    for (i = 0; i < 250; i++) {
        used += (size_t)snprintf(text + used, sizeof(text) - used, "k%zu: 1\n", i);
    }
    cfg = cfg_load_buffer("t.yaml", text, used, diag);
    check_failed(cfg, diag, 201, 0, "t.yaml:1:1: k0: unknown key 'k0'", NULL);
    /* "nothing to serve" (1:1) is among the first 200 in file order, so k198 is the last shown */
    check_failed(NULL, diag, 201, 1, "t.yaml:1:1: listeners: nothing to serve", NULL);
    check_failed(NULL, diag, 201, 199, "t.yaml:199:1: k198: unknown key 'k198'", NULL);
    assert_string_equal(cfg_diag_message(diag, 200), "... and 51 more errors");
    assert_null(cfg_diag_message(diag, 201));
    cfg_diag_free(diag);
}

static void
test_load_file_missing(void **state)
{
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg = cfg_load_file("/nonexistent/sluice.yaml", diag);

    (void)state;
    check_failed(cfg, diag, 1, 0,
                 "/nonexistent/sluice.yaml:1:1: cannot open: ", "No such file or directory");
    cfg_diag_free(diag);
}

static void
test_load_file_directory(void **state)
{
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg = cfg_load_file(tmp_dir(), diag);
    char prefix[600];

    (void)state;
    snprintf(prefix, sizeof(prefix), "%s:1:1: cannot read: ", tmp_dir());
    check_failed(cfg, diag, 1, 0, prefix, "Is a directory");
    cfg_diag_free(diag);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_optional_block_defaults),
        cmocka_unit_test(test_codec_raw),
        cmocka_unit_test(test_codec_line),
        cmocka_unit_test(test_codec_length),
        cmocka_unit_test(test_codec_resp),
        cmocka_unit_test(test_codec_http),
        cmocka_unit_test(test_listener_tls),
        cmocka_unit_test(test_listener_tls_relative_path),
        cmocka_unit_test(test_cluster_tls),
        cmocka_unit_test(test_health_active),
        cmocka_unit_test(test_health_active_binary),
        cmocka_unit_test(test_health_passive),
        cmocka_unit_test(test_udp),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_addr_ipv4),
        cmocka_unit_test(test_addr_ipv6),
        cmocka_unit_test(test_addr_wildcard),
        cmocka_unit_test(test_addr_hostname),
        cmocka_unit_test(test_anchors_and_aliases),
        cmocka_unit_test(test_cluster_inherits_codec),
        cmocka_unit_test(test_reframe_line_and_length),
        cmocka_unit_test(test_root_settings),
        cmocka_unit_test(test_binds_without_conflict),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_shipped_files),
        cmocka_unit_test(test_diag_reused),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_dump_round_trip_non_ascii),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_second_document),
        cmocka_unit_test(test_alias_without_anchor),
        cmocka_unit_test(test_unknown_key_did_you_mean),
        cmocka_unit_test(test_unknown_key_no_match),
        cmocka_unit_test(test_unknown_codec_parameter),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_root_not_a_mapping),
        cmocka_unit_test(test_value_expected),
        cmocka_unit_test(test_mapping_expected),
        cmocka_unit_test(test_sequence_expected),
        cmocka_unit_test(test_codec_not_name_or_mapping),
        cmocka_unit_test(test_missing_listener_name),
        cmocka_unit_test(test_missing_listener_bind),
        cmocka_unit_test(test_missing_listener_codec),
        cmocka_unit_test(test_missing_listener_cluster),
        cmocka_unit_test(test_missing_listener_everything),
        cmocka_unit_test(test_missing_server_address),
        cmocka_unit_test(test_missing_cluster_servers),
        cmocka_unit_test(test_missing_codec_type),
        cmocka_unit_test(test_int_out_of_range),
        cmocka_unit_test(test_weight_zero),
        cmocka_unit_test(test_max_ejected_percent),
        cmocka_unit_test(test_adjust_out_of_range),
        cmocka_unit_test(test_duration_without_unit),
        cmocka_unit_test(test_duration_unknown_unit),
        cmocka_unit_test(test_duration_zero_not_allowed),
        cmocka_unit_test(test_duration_below_minimum),
        cmocka_unit_test(test_duration_above_maximum),
        cmocka_unit_test(test_size_ambiguous_unit),
        cmocka_unit_test(test_size_out_of_range),
        cmocka_unit_test(test_addr_without_port),
        cmocka_unit_test(test_addr_port_zero),
        cmocka_unit_test(test_addr_port_too_large),
        cmocka_unit_test(test_addr_ipv6_without_brackets),
        cmocka_unit_test(test_addr_wildcard_server),
        cmocka_unit_test(test_enum_did_you_mean),
        cmocka_unit_test(test_enum_no_match),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_workers_out_of_range),
        cmocka_unit_test(test_bad_bool),
        cmocka_unit_test(test_field_size_5),
        cmocka_unit_test(test_max_frame_below_field_end),
        cmocka_unit_test(test_delimiter_too_long),
        cmocka_unit_test(test_delimiter_empty),
        cmocka_unit_test(test_parameter_of_other_codec),
        cmocka_unit_test(test_raw_with_max_frame),
        cmocka_unit_test(test_line_max_frame_below_delimiter),
        cmocka_unit_test(test_duplicate_listener_name),
        cmocka_unit_test(test_duplicate_cluster_name),
        cmocka_unit_test(test_duplicate_udp_name),
        cmocka_unit_test(test_unknown_cluster_did_you_mean),
        cmocka_unit_test(test_unknown_cluster_no_match),
        cmocka_unit_test(test_same_bind),
        cmocka_unit_test(test_wildcard_overlap),
        cmocka_unit_test(test_admin_overlap),
        cmocka_unit_test(test_empty_server_list),
        cmocka_unit_test(test_duplicate_server),
        cmocka_unit_test(test_min_idle_over_max_connections),
        cmocka_unit_test(test_active_timeout_over_interval),
        cmocka_unit_test(test_passive_max_eject_below_eject),
        cmocka_unit_test(test_listeners_disagree_on_codec),
        cmocka_unit_test(test_cannot_reframe),
        cmocka_unit_test(test_nothing_to_serve),
        cmocka_unit_test(test_unreadable_tls_files),
        cmocka_unit_test(test_tls_cert_is_a_directory),
        cmocka_unit_test(test_multiple_errors_in_file_order),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_load_file_missing),
        cmocka_unit_test(test_load_file_directory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
