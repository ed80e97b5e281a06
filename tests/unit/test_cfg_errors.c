/* The config loader's error cases: each asserts the exact FILE:LINE:COL and key path. */
#include "cfg_test_util.h"

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
                 "log, admin, shutdown, listeners, clusters, udp");
}

static void
test_admin_token_file_unreadable(void **state)
{
    (void)state;
    expect_error_has(
        "admin: { token_file: /nonexistent/sluice-token }\n" LISTENER_A CLUSTER_C,
        "t.yaml:1:22: admin.token_file: cannot read '/nonexistent/sluice-token': ", "No such file");
    expect_error("shutdown: { drain_timeout: soon }\n" LISTENER_A CLUSTER_C,
                 "t.yaml:1:28: shutdown.drain_timeout: ");
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

/* ---- resp and hash ---- */

#define RESP_LISTENER                                                                              \
    "listeners:\n"                                                                                 \
    "  - name: r\n"                                                                                \
    "    bind: 127.0.0.1:7000\n"                                                                   \
    "    codec: resp\n"                                                                            \
    "    cluster: c\n"

static void
test_resp_block_needs_resp_codec(void **state)
{
    (void)state;
    expect_error(LISTENER_A "    resp: { stateful: reject }\n" CLUSTER_C,
                 "t.yaml:6:11: listeners[0].resp: only for codec resp (this listener is line)");
    expect_error(LISTENER_A CLUSTER_C "    resp: { db: 3 }\n",
                 "t.yaml:9:11: clusters[0].resp: only for codec resp (this cluster is line)");
}

static void
test_resp_passwords(void **state)
{
    (void)state;
    expect_error(RESP_LISTENER "    resp: { auth: { username: bob } }\n" CLUSTER_C,
                 "t.yaml:6:19: listeners[0].resp.auth: expected password or password_file "
                 "with username");
    expect_error(RESP_LISTENER CLUSTER_C "    resp: { password: \"\" }\n",
                 "t.yaml:9:23: clusters[0].resp.password: empty");
    expect_error_has(RESP_LISTENER CLUSTER_C
                     "    resp: { password: x, password_file: /etc/hostname }\n",
                     "t.yaml:9:41: clusters[0].resp.password_file: ", "not both");
}

static void
test_hash_keys_need_balance_hash(void **state)
{
    (void)state;
    expect_error(RESP_LISTENER CLUSTER_C "    distribution: modula\n",
                 "t.yaml:9:19: clusters[0].distribution: only used with balance: hash (balance "
                 "is round_robin)");
    expect_error(RESP_LISTENER CLUSTER_C "    balance: hash\n    hash_tag: \"{\"\n",
                 "t.yaml:10:15: clusters[0].hash_tag: expected two characters, such as \"{}\"");
    expect_error(LISTENER_A CLUSTER_C "    balance: hash\n",
                 "t.yaml:9:14: clusters[0].balance: hash needs keys, which only codec resp finds "
                 "(this cluster is line)");
}

static void
test_duplicate_server_name(void **state)
{
    (void)state;
    expect_error(RESP_LISTENER "clusters:\n  - name: c\n    servers:\n"
                               "      - { address: 127.0.0.1:7001, name: s1 }\n"
                               "      - { address: 127.0.0.1:7002, name: s1 }\n",
                 "t.yaml:10:42: clusters[0].servers[1].name: 's1' is taken by servers[0]");
}

const struct CMUnitTest cfg_error_tests[] = {
    cmocka_unit_test(test_yaml_syntax_error),
    cmocka_unit_test(test_second_document),
    cmocka_unit_test(test_alias_without_anchor),
    cmocka_unit_test(test_unknown_key_did_you_mean),
    cmocka_unit_test(test_unknown_key_no_match),
    cmocka_unit_test(test_admin_token_file_unreadable),
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
    cmocka_unit_test(test_resp_block_needs_resp_codec),
    cmocka_unit_test(test_resp_passwords),
    cmocka_unit_test(test_hash_keys_need_balance_hash),
    cmocka_unit_test(test_duplicate_server_name),
};
const size_t cfg_error_tests_count = sizeof(cfg_error_tests) / sizeof(cfg_error_tests[0]);
