#include "cfg_schema.h"
#include "cfg.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define TABLE(var, path_, keys_) const struct cfg_table var = {path_, keys_, N(keys_)}
#define FOREVER INT64_MAX

#define U32(st, key, field, def_, min_, max_, doc_)                                                \
    {                                                                                              \
        .name = key, .kind = CFG_K_U32, .off = offsetof(st, field), .def = def_, .min = min_,      \
        .max = max_, .doc = doc_                                                                   \
    }
#define DUR(st, key, field, def_, min_, doc_)                                                      \
    {                                                                                              \
        .name = key, .kind = CFG_K_DURATION, .off = offsetof(st, field), .def = def_, .min = min_, \
        .max = FOREVER, .doc = doc_                                                                \
    }
#define ENUM(st, key, field, def_, enums_, doc_)                                                   \
    {                                                                                              \
        .name = key, .kind = CFG_K_ENUM, .off = offsetof(st, field), .def = def_, .enums = enums_, \
        .doc = doc_                                                                                \
    }
#define KIND(st, key, kind_, field, flags_, doc_)                                                  \
    {                                                                                              \
        .name = key, .kind = kind_, .off = offsetof(st, field), .flags = flags_, .doc = doc_       \
    }
#define BLOCK(st, key, kind_, field, sub_, doc_)                                                   \
    {                                                                                              \
        .name = key, .kind = kind_, .off = offsetof(st, field), .sub = &sub_, .doc = doc_          \
    }
#define LIST(st, key, field, count, elem, sub_, min_, flags_, doc_)                                \
    {                                                                                              \
        .name = key, .kind = CFG_K_LIST, .off = offsetof(st, field),                               \
        .count_off = offsetof(st, count), .elem_size = sizeof(elem), .sub = &sub_, .min = min_,    \
        .flags = flags_, .doc = doc_                                                               \
    }

static const struct cfg_enum level_enum[] = {
    {"debug", CFG_LOG_DEBUG},
    {"info", CFG_LOG_INFO},
    {"warn", CFG_LOG_WARN},
    {"error", CFG_LOG_ERROR},
    {NULL, 0},
};

static const struct cfg_enum format_enum[] = {
    {"text", CFG_LOG_TEXT},
    {"json", CFG_LOG_JSON},
    {NULL, 0},
};

const struct cfg_enum cfg_codec_enum[] = {
    {"raw", CFG_CODEC_RAW},   {"line", CFG_CODEC_LINE}, {"length", CFG_CODEC_LENGTH},
    {"resp", CFG_CODEC_RESP}, {"http", CFG_CODEC_HTTP}, {NULL, 0},
};

static const struct cfg_enum order_enum[] = {
    {"big", CFG_BIG_ENDIAN},
    {"little", CFG_LITTLE_ENDIAN},
    {NULL, 0},
};

static const struct cfg_enum balance_enum[] = {
    {"round_robin", CFG_BALANCE_ROUND_ROBIN},
    {"least_request", CFG_BALANCE_LEAST_REQUEST},
    {"random", CFG_BALANCE_RANDOM},
    {"hash", CFG_BALANCE_HASH},
    {NULL, 0},
};

const struct cfg_enum cfg_hash_enum[] = {
    {"one_at_a_time", CFG_HASH_ONE_AT_A_TIME},
    {"md5", CFG_HASH_MD5},
    {"crc16", CFG_HASH_CRC16},
    {"crc32", CFG_HASH_CRC32},
    {"crc32a", CFG_HASH_CRC32A},
    {"fnv1_64", CFG_HASH_FNV1_64},
    {"fnv1a_64", CFG_HASH_FNV1A_64},
    {"fnv1_32", CFG_HASH_FNV1_32},
    {"fnv1a_32", CFG_HASH_FNV1A_32},
    {"hsieh", CFG_HASH_HSIEH},
    {"murmur", CFG_HASH_MURMUR},
    {"jenkins", CFG_HASH_JENKINS},
    {NULL, 0},
};

const struct cfg_enum cfg_distribution_enum[] = {
    {"ketama", CFG_DIST_KETAMA},
    {"modula", CFG_DIST_MODULA},
    {"random", CFG_DIST_RANDOM},
    {NULL, 0},
};

static const struct cfg_enum panic_enum[] = {
    {"fail_fast", CFG_PANIC_FAIL_FAST},
    {"route_all", CFG_PANIC_ROUTE_ALL},
    {NULL, 0},
};

static const struct cfg_enum initial_enum[] = {
    {"healthy", CFG_INITIAL_HEALTHY},
    {"unhealthy", CFG_INITIAL_UNHEALTHY},
    {NULL, 0},
};

static const struct cfg_enum stateful_enum[] = {
    {"pin", CFG_STATEFUL_PIN},
    {"reject", CFG_STATEFUL_REJECT},
    {NULL, 0},
};

/* ---- log, admin ---- */

static const struct cfg_key log_keys[] = {
    ENUM(struct cfg_log, "level", level, "info", level_enum,
         "Lowest level written: debug, info, warn or error."),
    ENUM(struct cfg_log, "format", format, "text", format_enum,
         "text (one human-readable line per event) or json (one JSON object per line)."),
    DUR(struct cfg_log, "rate_limit", rate_limit_ms, "10s", 0,
        "Warn and error lines repeated with the same text and context (a peer counts without "
        "its port) within this interval are counted, not written: one summary line per interval "
        "says how many (\"... 4812 more in the last 10 s\"). 0: every line is written."),
};
static TABLE(log_table, "log", log_keys);

static const struct cfg_key admin_keys[] = {
    {.name = "bind",
     .kind = CFG_K_BIND,
     .off = offsetof(struct cfg_admin, bind),
     .def = "127.0.0.1:9901",
     .doc = "Address of the admin endpoint (/metrics, /healthz, /readyz, /status)."},
    KIND(struct cfg_admin, "token_file", CFG_K_PATH, token_file, 0,
         "A file holding a bearer token: every request must then send \"Authorization: Bearer "
         "<token>\" (/healthz included). Read at start and on each reload."),
    U32(struct cfg_admin, "max_connections", max_connections, "64", 1, 65535,
        "Admin connections open at once; one more is closed as soon as it is accepted."),
    DUR(struct cfg_admin, "request_timeout", request_timeout_ms, "10s", 1,
        "Deadline for a whole request, from the connection's accept (or from the previous "
        "reply on a kept-alive connection) until its reply is written; past it the connection "
        "is closed, however slowly bytes trickle in. A connection with no request begun is "
        "closed quietly then."),
};
static TABLE(admin_table, "admin", admin_keys);

static const struct cfg_key shutdown_keys[] = {
    DUR(struct cfg_shutdown, "drain_timeout", drain_timeout_ms, "10s", 0,
        "On SIGTERM or SIGINT: how long clients get to receive the replies to what they sent "
        "before sluice exits anyway (a second signal exits at once)."),
};
static TABLE(shutdown_table, "shutdown", shutdown_keys);

static const struct cfg_key buffers_keys[] = {
    {.name = "max",
     .kind = CFG_K_SIZE,
     .off = offsetof(struct cfg_buffers, max),
     .def = "0",
     .min = 0,
     .max = (int64_t)1 << 50,
     .doc = "Process-wide ceiling on client request bytes held: partly received frames, and "
            "whole ones of 64KiB or more until answered. Past it, sluice stops reading the "
            "clients holding the most until it is back under; a frame "
            "that cannot fit, or waits too long, fails its client (resp: -ERR, then close). "
            "0: auto, a quarter of physical memory or of the cgroup's memory limit if lower."},
};
static TABLE(buffers_table, "buffers", buffers_keys);

/* ---- codecs ---- */

#define LINE_BIT CFG_CODEC_BIT(CFG_CODEC_LINE)
#define LENGTH_BIT CFG_CODEC_BIT(CFG_CODEC_LENGTH)
#define RESP_BIT CFG_CODEC_BIT(CFG_CODEC_RESP)
#define HTTP_BIT CFG_CODEC_BIT(CFG_CODEC_HTTP)
#define GiB ((int64_t)1 << 30)

static const struct cfg_key codec_keys[] = {
    {.name = "type",
     .kind = CFG_K_ENUM,
     .off = offsetof(struct cfg_codec, type),
     .enums = cfg_codec_enum,
     .flags = CFG_F_REQUIRED,
     .doc = "raw (no framing: one upstream connection per client), line, length, resp or http. "
            "Written alone (`codec: line`) it takes every parameter's default."},
    {.name = "max_frame",
     .kind = CFG_K_SIZE,
     .off = offsetof(struct cfg_codec, max_frame),
     .def = "64KiB",
     .min = 1,
     .max = GiB,
     .codecs = LINE_BIT,
     .doc = "Longest line, delimiter included; a longer one closes the connection."},
    {.name = "max_frame",
     .kind = CFG_K_SIZE,
     .off = offsetof(struct cfg_codec, max_frame),
     .def = "1MiB",
     .min = 1,
     .max = GiB,
     .codecs = LENGTH_BIT | HTTP_BIT,
     .doc = "Largest frame, header included; rejected as soon as the header announces it."},
    {.name = "max_frame",
     .kind = CFG_K_SIZE,
     .off = offsetof(struct cfg_codec, max_frame),
     .def = "512MiB",
     .min = 1,
     .max = GiB,
     .codecs = RESP_BIT,
     .doc = "Largest command or reply (Redis's own proto-max-bulk-len is 512MiB)."},
    {.name = "delimiter",
     .kind = CFG_K_BYTES,
     .off = offsetof(struct cfg_codec, delimiter),
     .def = "\n",
     .codecs = LINE_BIT,
     .doc = "End of a line, 1 to 8 bytes, part of the frame: \"\\n\" or \"\\r\\n\"."},
    {.name = "field_offset",
     .kind = CFG_K_U32,
     .off = offsetof(struct cfg_codec, field_offset),
     .def = "0",
     .min = 0,
     .max = 65535,
     .codecs = LENGTH_BIT,
     .doc = "Bytes before the length field (Netty lengthFieldOffset)."},
    {.name = "field_size",
     .kind = CFG_K_U32,
     .off = offsetof(struct cfg_codec, field_size),
     .def = "4",
     .min = 1,
     .max = 8,
     .codecs = LENGTH_BIT,
     .doc = "Bytes in the length field: 1, 2, 3, 4 or 8 (Netty lengthFieldLength)."},
    {.name = "byte_order",
     .kind = CFG_K_ENUM,
     .off = offsetof(struct cfg_codec, byte_order),
     .def = "big",
     .enums = order_enum,
     .codecs = LENGTH_BIT,
     .doc = "Byte order of the length field: big or little."},
    {.name = "adjust",
     .kind = CFG_K_I64,
     .off = offsetof(struct cfg_codec, adjust),
     .def = "0",
     .min = INT32_MIN,
     .max = INT32_MAX,
     .codecs = LENGTH_BIT,
     .doc = "Added to the field's value to get the bytes that follow the field (Netty "
            "lengthAdjustment); a negative or overflowing result is a malformed frame."},
};
TABLE(cfg_codec_table, "codec", codec_keys);

/* ---- listeners ---- */

static const struct cfg_key listener_timeout_keys[] = {
    DUR(struct cfg_listener_timeouts, "idle", idle_ms, "300s", 0,
        "Close a client that sends nothing and has nothing in flight this long. 0 disables."),
    DUR(struct cfg_listener_timeouts, "read", read_ms, "10s", 0,
        "Longest gap between bytes while a frame is partly received (slowloris). 0 disables."),
    DUR(struct cfg_listener_timeouts, "request", request_ms, "5s", 0,
        "Longest time from a complete request to its response. Past it the client is closed "
        "(its requests in flight are orphaned: their responses are read and dropped); a resp "
        "client gets -ERR sluice: request timeout in that request's place instead and stays, "
        "unless it is pinned. Blocking Redis commands are exempt. 0 disables."),
    DUR(struct cfg_listener_timeouts, "frame", frame_ms, "5s", 0,
        "Longest time from a frame's first byte to its last, plus what min_rate allows for its "
        "size (a client trickling bytes is cut however short its gaps). 0 disables."),
    {.name = "min_rate",
     .kind = CFG_K_SIZE,
     .off = offsetof(struct cfg_listener_timeouts, min_rate),
     .def = "64KiB",
     .min = 0,
     .max = GiB,
     .doc = "Bytes per second a large frame may be sent at: each byte received so far adds "
            "1/min_rate s to the frame's deadline. 0: no allowance, the frame deadline alone."},
};
static TABLE(listener_timeouts_table, "listeners[].timeouts", listener_timeout_keys);

static const struct cfg_key tls_server_keys[] = {
    KIND(struct cfg_tls_server, "cert", CFG_K_PATH, cert, CFG_F_REQUIRED,
         "PEM certificate chain presented to clients."),
    KIND(struct cfg_tls_server, "key", CFG_K_PATH, key, CFG_F_REQUIRED,
         "PEM private key of the certificate."),
};
static TABLE(tls_server_table, "listeners[].tls", tls_server_keys);

static const struct cfg_key resp_auth_keys[] = {
    KIND(struct cfg_resp_auth, "username", CFG_K_NAME, username, 0,
         "User clients must name in AUTH. Unset: AUTH with the password alone (or the user "
         "default)."),
    KIND(struct cfg_resp_auth, "password", CFG_K_BYTES, password, 0,
         "Password clients must give in AUTH before any other command. Exactly one of password "
         "and password_file."),
    KIND(struct cfg_resp_auth, "password_file", CFG_K_PATH, password_file, 0,
         "File holding the password (one trailing newline is ignored), read when the config "
         "loads."),
};
static TABLE(resp_auth_table, "listeners[].resp.auth", resp_auth_keys);

static const struct cfg_key resp_listener_keys[] = {
    ENUM(struct cfg_resp_listener, "stateful", stateful, "pin", stateful_enum,
         "Commands that carry connection state (SELECT to a non-zero db, AUTH, HELLO, CLIENT "
         "SETNAME/REPLY/TRACKING, MULTI, WATCH, SUBSCRIBE, MONITOR, blocking commands): pin "
         "moves the client onto an upstream connection of its own while the state lasts (RESET "
         "cleans it before it returns to the pool); reject answers them with -ERR."),
    BLOCK(struct cfg_resp_listener, "auth", CFG_K_OPTIONAL, auth, resp_auth_table,
          "Clients authenticate at sluice (optional); AUTH is answered here, not forwarded."),
};
static TABLE(resp_listener_table, "listeners[].resp", resp_listener_keys);

static const struct cfg_key listener_keys[] = {
    KIND(struct cfg_listener, "name", CFG_K_NAME, name, CFG_F_REQUIRED,
         "Unique name, used in logs and metric labels."),
    KIND(struct cfg_listener, "bind", CFG_K_BIND, bind, CFG_F_REQUIRED,
         "Address to accept clients on: host:port, [ipv6]:port or *:port."),
    KIND(struct cfg_listener, "codec", CFG_K_CODEC, codec, CFG_F_REQUIRED,
         "How client bytes are cut into frames; see the codec section."),
    KIND(struct cfg_listener, "cluster", CFG_K_NAME, cluster_name, CFG_F_REQUIRED,
         "Name of the cluster that serves this listener's requests."),
    U32(struct cfg_listener, "max_clients", max_clients, "10000", 1, 1000000,
        "Open client connections; past it new ones are closed at once and counted."),
    U32(struct cfg_listener, "max_inflight", max_inflight, "128", 1, 65536,
        "Requests one client may have in flight; past it sluice stops reading that client."),
    U32(struct cfg_listener, "backlog", backlog, "511", 1, 65535,
        "Listen backlog (the kernel caps it at net.core.somaxconn)."),
    BLOCK(struct cfg_listener, "timeouts", CFG_K_BLOCK, timeouts, listener_timeouts_table,
          "Client-side deadlines."),
    BLOCK(struct cfg_listener, "tls", CFG_K_OPTIONAL, tls, tls_server_table,
          "Terminate TLS from clients (optional)."),
    BLOCK(struct cfg_listener, "resp", CFG_K_OPTIONAL, resp, resp_listener_table,
          "Redis behaviour of a resp listener (optional; only with codec resp)."),
};
static TABLE(listener_table, "listeners[]", listener_keys);

/* ---- clusters ---- */

static const struct cfg_key server_keys[] = {
    KIND(struct cfg_server, "address", CFG_K_ADDRESS, address, CFG_F_REQUIRED,
         "host:port or [ipv6]:port; a hostname is kept and resolved later."),
    KIND(struct cfg_server, "name", CFG_K_NAME, name, 0,
         "Name under which balance hash places keys (twemproxy's server name). Unset: "
         "host:port as written, as twemproxy does."),
    U32(struct cfg_server, "weight", weight, "1", 1, 10000,
        "Relative share of requests under the weighted balancers."),
};
static TABLE(server_table, "clusters[].servers[]", server_keys);

static const struct cfg_key queue_keys[] = {
    U32(struct cfg_queue, "max", max, "10000", 0, 1000000,
        "Requests waiting for a connection; past it a request fails at once (queue full). "
        "0: never wait."),
    DUR(struct cfg_queue, "timeout", timeout_ms, "1s", 1,
        "Longest wait for a connection; then the request fails (queue timeout)."),
};
static TABLE(queue_table, "clusters[].pool.queue", queue_keys);

static const struct cfg_key pool_keys[] = {
    U32(struct cfg_pool, "min_idle", min_idle, "1", 0, 1024,
        "Warm connections opened at start and kept, per server per worker."),
    U32(struct cfg_pool, "max_connections", max_connections, "4", 1, 4096,
        "Connections per server per worker."),
    U32(struct cfg_pool, "max_pipeline", max_pipeline, "128", 1, 65536,
        "Requests in flight on one connection; 1 gives each request a connection of its own."),
    DUR(struct cfg_pool, "idle_timeout", idle_timeout_ms, "60s", 0,
        "Close a connection idle this long (down to min_idle). 0 disables."),
    DUR(struct cfg_pool, "max_lifetime", max_lifetime_ms, "10m", 0,
        "Retire a connection this old once its in-flight requests are answered. 0 disables."),
    {.name = "max_requests",
     .kind = CFG_K_U64,
     .off = offsetof(struct cfg_pool, max_requests),
     .def = "0",
     .min = 0,
     .max = FOREVER,
     .doc = "Retire a connection after this many requests. 0 disables."},
    U32(struct cfg_pool, "max_pinned", max_pinned, "64", 0, 65536,
        "Connections per server per worker that may each be pinned to one client (resp "
        "stateful commands); they do not count against max_connections. Past it such a "
        "command is answered with -ERR. 0: none."),
    BLOCK(struct cfg_pool, "queue", CFG_K_BLOCK, queue, queue_table,
          "Requests waiting when every connection is busy and no more may open."),
    DUR(struct cfg_pool, "stall", stall_ms, "10ms", 0,
        "Head-of-line guard: a connection whose oldest request in flight has waited longer "
        "(or 4 times the server's typical response time, when that is longer) takes no new "
        "requests while another connection has room or may open (up to max_connections); a "
        "client's requests still follow its earlier ones. See docs/pooling.md. 0 disables."),
};
static TABLE(pool_table, "clusters[].pool", pool_keys);

static const struct cfg_key cluster_timeout_keys[] = {
    DUR(struct cfg_cluster_timeouts, "connect", connect_ms, "1s", 1,
        "Longest time to open an upstream connection."),
    DUR(struct cfg_cluster_timeouts, "read", read_ms, "2s", 0,
        "Longest gap between bytes while a response is pending, re-armed on every read; expiry "
        "closes the connection and fails its requests. 0 disables."),
    DUR(struct cfg_cluster_timeouts, "write", write_ms, "2s", 0,
        "Longest a write to the upstream may stall. 0 disables."),
};
static TABLE(cluster_timeouts_table, "clusters[].timeouts", cluster_timeout_keys);

static const struct cfg_key http_check_keys[] = {
    {.name = "path",
     .kind = CFG_K_BYTES,
     .off = offsetof(struct cfg_health_http, path),
     .def = "/",
     .doc = "Path requested with GET; it starts with / and holds no spaces or control bytes."},
    {.name = "status",
     .kind = CFG_K_BYTES,
     .off = offsetof(struct cfg_health_http, status),
     .def = "200-399",
     .doc = "Status that passes: one code (\"204\") or a range (\"200-399\")."},
    KIND(struct cfg_health_http, "host", CFG_K_HOSTNAME, host, 0,
         "Host header. Unset: the server's address as host:port."),
};
static TABLE(http_check_table, "clusters[].health.active.http", http_check_keys);

static const struct cfg_key active_keys[] = {
    DUR(struct cfg_health_active, "interval", interval_ms, "2s", 100,
        "Time between checks of a server, varied by up to 10% either way so checks of many "
        "servers do not fall together."),
    DUR(struct cfg_health_active, "timeout", timeout_ms, "1s", 1,
        "Longest a check may take, connect included; at most interval."),
    U32(struct cfg_health_active, "rise", rise, "2", 1, 100,
        "Passing checks in a row that mark a down server up."),
    U32(struct cfg_health_active, "fall", fall, "3", 1, 100,
        "Failing checks in a row that mark an up server down."),
    ENUM(struct cfg_health_active, "initial", initial, "healthy", initial_enum,
         "State before the first checks: healthy (takes traffic at once; fall failures take it "
         "down) or unhealthy (no traffic until rise checks pass)."),
    U32(struct cfg_health_active, "port", port, "0", 0, 65535,
        "Port checked, when the health endpoint is not the service's own. 0: the server's port."),
    KIND(struct cfg_health_active, "send", CFG_K_BYTES, send, 0,
         "Bytes written after connecting (double-quoted escapes such as \"PING\\r\\n\" "
         "work); the reply is framed by the cluster's codec. Unset, with no expect: a "
         "connect-only check."),
    KIND(struct cfg_health_active, "expect", CFG_K_BYTES, expect, 0,
         "Prefix the reply must start with. Without send: the server's greeting. Unset: any "
         "reply passes."),
    KIND(struct cfg_health_active, "expect_regex", CFG_K_BYTES, expect_regex, 0,
         "POSIX extended regular expression the reply must match (instead of expect)."),
    BLOCK(struct cfg_health_active, "http", CFG_K_OPTIONAL, http, http_check_table,
          "An HTTP check instead: GET path, pass on status (optional)."),
};
static TABLE(active_table, "clusters[].health.active", active_keys);

static const struct cfg_key passive_keys[] = {
    U32(struct cfg_health_passive, "consecutive_failures", consecutive_failures, "5", 1, 1000,
        "Failures in a row seen by traffic that eject a server."),
    DUR(struct cfg_health_passive, "eject", eject_ms, "10s", 1,
        "First ejection time; it doubles on each repeat."),
    DUR(struct cfg_health_passive, "max_eject", max_eject_ms, "5m", 1,
        "Longest ejection time; at least eject."),
    U32(struct cfg_health_passive, "max_ejected_percent", max_ejected_percent, "50", 0, 100,
        "Most of a cluster's servers that may be ejected at once."),
};
static TABLE(passive_table, "clusters[].health.passive", passive_keys);

static const struct cfg_key health_keys[] = {
    BLOCK(struct cfg_health, "active", CFG_K_OPTIONAL, active, active_table,
          "Active checks on connections of their own (optional)."),
    BLOCK(struct cfg_health, "passive", CFG_K_OPTIONAL, passive, passive_table,
          "Ejection on failures seen by traffic (optional)."),
};
static TABLE(health_table, "clusters[].health", health_keys);

static const struct cfg_key tls_client_keys[] = {
    KIND(struct cfg_tls_client, "ca", CFG_K_PATH, ca, 0,
         "PEM CA bundle to verify upstreams with. Unset: the system's."),
    {.name = "verify",
     .kind = CFG_K_BOOL,
     .off = offsetof(struct cfg_tls_client, verify),
     .def = "true",
     .doc = "Verify the upstream's certificate and name."},
    KIND(struct cfg_tls_client, "sni", CFG_K_HOSTNAME, sni, 0,
         "Server name sent and verified. Unset: the server's host."),
};
static TABLE(tls_client_table, "clusters[].tls", tls_client_keys);

static const struct cfg_key resp_upstream_keys[] = {
    KIND(struct cfg_resp_upstream, "username", CFG_K_NAME, username, 0,
         "User for AUTH on every new upstream connection (Redis 6 ACL). Needs a password."),
    KIND(struct cfg_resp_upstream, "password", CFG_K_BYTES, password, 0,
         "Password for AUTH on every new upstream connection. At most one of password and "
         "password_file."),
    KIND(struct cfg_resp_upstream, "password_file", CFG_K_PATH, password_file, 0,
         "File holding that password (one trailing newline is ignored), read when the config "
         "loads."),
    U32(struct cfg_resp_upstream, "db", db, "0", 0, 1000000,
        "Database selected on every new upstream connection; clients' keys land there."),
};
static TABLE(resp_upstream_table, "clusters[].resp", resp_upstream_keys);

static const struct cfg_key cluster_keys[] = {
    KIND(struct cfg_cluster, "name", CFG_K_NAME, name, CFG_F_REQUIRED,
         "Unique name, used by listeners, logs and metric labels."),
    KIND(struct cfg_cluster, "codec", CFG_K_CODEC, codec, 0,
         "How upstream bytes are framed. Unset: the codec of the listeners that use it. A "
         "different one re-frames each payload: line and length into each other (bytes before "
         "a length field are dropped going to line and zeros coming back), or the same codec "
         "with other parameters (another delimiter, another length layout)."),
    ENUM(struct cfg_cluster, "balance", balance, "round_robin", balance_enum,
         "round_robin (smooth weighted), least_request (power of two choices), random "
         "(weighted) or hash (by key, twemproxy-compatible; resp codec)."),
    {.name = "hash",
     .kind = CFG_K_ENUM,
     .off = offsetof(struct cfg_cluster, hash),
     .def = "fnv1a_64",
     .enums = cfg_hash_enum,
     .flags = CFG_F_HASH_ONLY,
     .doc = "balance hash: the key hash, by twemproxy's names: one_at_a_time, md5, crc16, "
            "crc32, crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur or jenkins."},
    {.name = "distribution",
     .kind = CFG_K_ENUM,
     .off = offsetof(struct cfg_cluster, distribution),
     .def = "ketama",
     .enums = cfg_distribution_enum,
     .flags = CFG_F_HASH_ONLY,
     .doc = "balance hash: ketama (consistent hashing by server name and weight), modula "
            "(hash modulo the weighted servers) or random."},
    KIND(struct cfg_cluster, "hash_tag", CFG_K_BYTES, hash_tag, CFG_F_HASH_ONLY,
         "balance hash: two characters, such as \"{}\"; only the part of a key between them is "
         "hashed, so related keys stay on one server. Unset: the whole key."),
    U32(struct cfg_cluster, "retries", retries, "1", 0, 10,
        "Re-dispatches of a request never written upstream, to another server when there is "
        "one."),
    LIST(struct cfg_cluster, "servers", servers, nservers, struct cfg_server, server_table, 1,
         CFG_F_REQUIRED, "The upstream servers; at least one."),
    BLOCK(struct cfg_cluster, "pool", CFG_K_BLOCK, pool, pool_table,
          "Upstream connections, per server and per worker."),
    BLOCK(struct cfg_cluster, "timeouts", CFG_K_BLOCK, timeouts, cluster_timeouts_table,
          "Upstream deadlines."),
    BLOCK(struct cfg_cluster, "health", CFG_K_BLOCK, health, health_table,
          "Active and passive health checking."),
    ENUM(struct cfg_cluster, "panic", panic, "fail_fast", panic_enum,
         "When no server is healthy: fail_fast (requests fail at once, counted, with the "
         "codec's error reply) or route_all (ignore health and try every server)."),
    DUR(struct cfg_cluster, "slow_start", slow_start_ms, "0s", 0,
        "A server that comes back (up again, or back from ejection) ramps from 10% to its full "
        "weight over this window (round_robin, least_request, random). 0 disables."),
    DUR(struct cfg_cluster, "resolve_interval", resolve_interval_ms, "30s", 100,
        "How often servers given by hostname are looked up again (every address of a name "
        "becomes a server; a failed lookup keeps the last answer)."),
    BLOCK(struct cfg_cluster, "tls", CFG_K_OPTIONAL, tls, tls_client_table,
          "Speak TLS to the upstreams (optional)."),
    BLOCK(struct cfg_cluster, "resp", CFG_K_OPTIONAL, resp, resp_upstream_table,
          "Redis upstream login and database (optional; only with codec resp)."),
};
static TABLE(cluster_table, "clusters[]", cluster_keys);

/* ---- udp ---- */

static const struct cfg_key udp_keys[] = {
    KIND(struct cfg_udp, "name", CFG_K_NAME, name, CFG_F_REQUIRED,
         "Unique name, used in logs and metric labels."),
    KIND(struct cfg_udp, "bind", CFG_K_BIND, bind, CFG_F_REQUIRED,
         "Address to receive datagrams on."),
    KIND(struct cfg_udp, "cluster", CFG_K_NAME, cluster_name, CFG_F_REQUIRED,
         "Name of the cluster that datagrams are relayed to."),
    DUR(struct cfg_udp, "flow_idle", flow_idle_ms, "30s", 1,
        "Forget a client's flow (and its upstream socket) after this long without traffic."),
    U32(struct cfg_udp, "max_flows", max_flows, "65536", 1, 10000000,
        "Flows kept at once; past it the least recently used is evicted."),
};
static TABLE(udp_table, "udp[]", udp_keys);

static const struct cfg_key resolver_keys[] = {
    KIND(struct cfg_resolver, "address", CFG_K_ADDRESS, address, CFG_F_REQUIRED,
         "ip:port of a DNS server."),
};
static TABLE(resolver_table, "resolvers[]", resolver_keys);

/* ---- the file ---- */

static const struct cfg_key root_keys[] = {
    {.name = "workers",
     .kind = CFG_K_WORKERS,
     .off = offsetof(struct cfg, workers),
     .def = "auto",
     .min = 1,
     .max = 256,
     .doc = "Worker threads, each with its own event loop, listeners and pools: auto (one per "
            "CPU) or 1 to 256."},
    BLOCK(struct cfg, "log", CFG_K_BLOCK, log, log_table, "Logging to standard error."),
    BLOCK(struct cfg, "admin", CFG_K_BLOCK, admin, admin_table, "The admin endpoint."),
    BLOCK(struct cfg, "shutdown", CFG_K_BLOCK, shutdown, shutdown_table, "Graceful shutdown."),
    LIST(struct cfg, "listeners", listeners, nlisteners, struct cfg_listener, listener_table, 0, 0,
         "TCP listeners."),
    LIST(struct cfg, "clusters", clusters, nclusters, struct cfg_cluster, cluster_table, 0, 0,
         "Upstream clusters."),
    LIST(struct cfg, "udp", udp, nudp, struct cfg_udp, udp_table, 0, 0, "UDP relays."),
    LIST(struct cfg, "resolvers", resolvers, nresolvers, struct cfg_resolver, resolver_table, 0,
         CFG_F_SCALAR_ELEM,
         "DNS servers for servers given by hostname, each written as \"ip:port\" (or as "
         "{address: ip:port}). Empty: the system's, from /etc/resolv.conf."),
    BLOCK(struct cfg, "buffers", CFG_K_BLOCK, buffers, buffers_table, "Client buffer memory."),
};
TABLE(cfg_root_table, "", root_keys);
