/*
 * The config loader: cfg_load_buffer()/cfg_load_file() on inline YAML. Valid files check the
 * model (every default from cfg_schema.c included); invalid ones check the exact
 * "t.yaml:LINE:COL: path.to.key: " prefix of each message. Each YAML line is one string literal,
 * so line N of a file is its Nth literal.
 */
#include "cfg_test_util.h"

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

/* What a reload keeps: sections equal key by key, defaults and secret file contents included. */
static void
test_sections_same_for_reload(void **state)
{
    char pw1[256], tok[256], text[1024];
    struct cfg *a, *b, *c, *d;
    FILE *f;

    (void)state;
    make_file(pw1, sizeof(pw1), "pw", "one\n");
    make_file(tok, sizeof(tok), "token", "t0ken\n");
    a = load_ok(LISTENER_A CLUSTER_C "    pool: { max_connections: 4 }\n");
    b = load_ok(LISTENER_A CLUSTER_C "    pool: { max_connections: 4, min_idle: 1 }\n"
                                     "    balance: round_robin\n"); /* the defaults, written */
    c = load_ok(LISTENER_A CLUSTER_C "    pool: { max_connections: 5 }\n"
                                     "shutdown: { drain_timeout: 250ms }\n");
    assert_true(cfg_cluster_same(&a->clusters[0], &b->clusters[0]));
    assert_false(cfg_cluster_same(&a->clusters[0], &c->clusters[0]));
    assert_true(cfg_listener_same(&a->listeners[0], &c->listeners[0]));
    assert_int_equal(a->shutdown.drain_timeout_ms, 10000);
    assert_int_equal(c->shutdown.drain_timeout_ms, 250);
    assert_null(a->admin.token_file);
    cfg_free(b);
    cfg_free(c);

    /* The same password_file path with other contents is a change. */
    snprintf(text, sizeof(text),
             "admin: { token_file: %s }\n"
             "listeners:\n  - { name: a, bind: 127.0.0.1:7000, codec: resp, cluster: c }\n"
             "clusters:\n  - name: c\n    servers: [{ address: 127.0.0.1:7001 }]\n"
             "    resp: { password_file: %s }\n",
             tok, pw1);
    b = load_ok(text);
    d = load_ok(text);
    assert_int_equal(b->admin.token.len, 5);
    assert_memory_equal(b->admin.token.ptr, "t0ken", 5);
    assert_true(cfg_cluster_same(&b->clusters[0], &d->clusters[0]));
    cfg_free(d);
    f = fopen(pw1, "w"); /* the same path, a new password */
    assert_non_null(f);
    assert_int_equal(fputs("two\n", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    d = load_ok(text);
    assert_false(cfg_cluster_same(&b->clusters[0], &d->clusters[0]));
    cfg_free(a);
    cfg_free(b);
    cfg_free(d);
    unlink(pw1);
    unlink(tok);
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
             "    resp: { stateful: reject, auth: { username: bob, password: s3 } }\n"
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
             "    balance: hash\n"
             "    hash: murmur\n"
             "    distribution: modula\n"
             "    hash_tag: \"{}\"\n"
             "    resp: { username: app, password: \"p w\", db: 3 }\n"
             "    retries: 3\n"
             "    servers:\n"
             "      - { address: 10.0.0.1:6379, weight: 5, name: shard-1 }\n"
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
             "    balance: least_request\n"
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
        cmocka_unit_test(test_sections_same_for_reload),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_dump_round_trip_non_ascii),
    };
    int failed = cmocka_run_group_tests_name("valid files", tests, NULL, NULL);

    return failed +
           _cmocka_run_group_tests("errors", cfg_error_tests, cfg_error_tests_count, NULL, NULL);
}
