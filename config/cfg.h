#ifndef CFG_H
#define CFG_H

/*
 * The typed, immutable configuration model.
 *
 * Unlike the rest of sluice the model's structs are public: a config is plain
 * data that every module reads, and accessor functions for ~80 fields would
 * only hide it. It is immutable once cfg_load_*() returns; everything in it
 * (strings, arrays) lives in the config's arena and is released by cfg_free().
 *
 * Durations are milliseconds; a duration or count documented as "0 disables"
 * uses 0 for "off". The schema (names, types, defaults, ranges) is the key
 * table in cfg_schema.c; docs/configuration.md is generated from it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct cfg_arena;
struct cfg_diag;
struct cfg_cluster;

enum cfg_log_level {
    CFG_LOG_DEBUG,
    CFG_LOG_INFO,
    CFG_LOG_WARN,
    CFG_LOG_ERROR,
};

enum cfg_log_format {
    CFG_LOG_TEXT,
    CFG_LOG_JSON,
};

enum cfg_codec_type {
    CFG_CODEC_RAW,
    CFG_CODEC_LINE,
    CFG_CODEC_LENGTH,
    CFG_CODEC_RESP,
    CFG_CODEC_HTTP,
};

enum cfg_byte_order {
    CFG_BIG_ENDIAN,
    CFG_LITTLE_ENDIAN,
};

enum cfg_balance {
    CFG_BALANCE_ROUND_ROBIN,
    CFG_BALANCE_LEAST_REQUEST,
    CFG_BALANCE_RANDOM,
    CFG_BALANCE_HASH,
};

/* twemproxy's hash functions, in pool/pool_hash.h's order. */
enum cfg_hash_fn {
    CFG_HASH_ONE_AT_A_TIME,
    CFG_HASH_MD5,
    CFG_HASH_CRC16,
    CFG_HASH_CRC32,
    CFG_HASH_CRC32A,
    CFG_HASH_FNV1_64,
    CFG_HASH_FNV1A_64,
    CFG_HASH_FNV1_32,
    CFG_HASH_FNV1A_32,
    CFG_HASH_HSIEH,
    CFG_HASH_MURMUR,
    CFG_HASH_JENKINS,
};

enum cfg_distribution {
    CFG_DIST_KETAMA,
    CFG_DIST_MODULA,
    CFG_DIST_RANDOM,
};

/* What a cluster does when none of its servers is healthy. */
enum cfg_panic {
    CFG_PANIC_FAIL_FAST, /* fail requests at once */
    CFG_PANIC_ROUTE_ALL, /* ignore health: try every server (Envoy's panic mode) */
};

/* A server's health before its first active check. */
enum cfg_initial {
    CFG_INITIAL_HEALTHY,
    CFG_INITIAL_UNHEALTHY,
};

/* What a RESP listener does with commands that carry connection state. */
enum cfg_stateful {
    CFG_STATEFUL_PIN,    /* give the client an upstream connection of its own */
    CFG_STATEFUL_REJECT, /* answer -ERR */
};

enum cfg_addr_kind {
    CFG_ADDR_ANY,  /* "*": every local address, IPv4 and IPv6 */
    CFG_ADDR_IPV4, /* sa holds the parsed address */
    CFG_ADDR_IPV6, /* sa holds the parsed address */
    CFG_ADDR_NAME, /* a hostname, resolved later; sa is unset */
};

/* A byte string: may hold NUL bytes (probe payloads); ptr is NUL-terminated too. */
struct cfg_bytes {
    char *ptr; /* owned by the arena; NULL when unset */
    size_t len;
};

struct cfg_addr {
    enum cfg_addr_kind kind;
    char *host; /* "*", "127.0.0.1", "::1" (no brackets) or a hostname */
    char *text; /* as it is printed: "127.0.0.1:6379", "[::1]:6379", "*:80" */
    uint16_t port;
    struct sockaddr_storage sa; /* for IPV4 and IPV6 */
    socklen_t salen;
};

struct cfg_codec {
    enum cfg_codec_type type;
    bool set;           /* clusters: declared in the file, or inherited from the listeners */
    uint64_t max_frame; /* bytes; every codec but raw */
    struct cfg_bytes delimiter;     /* line */
    uint32_t field_offset;          /* length */
    uint32_t field_size;            /* length: 1 2 3 4 8 */
    enum cfg_byte_order byte_order; /* length */
    int64_t adjust;                 /* length: added to the field's value */
};

struct cfg_log {
    enum cfg_log_level level;
    enum cfg_log_format format;
    uint64_t rate_limit_ms; /* 0: repeated lines are not folded */
};

struct cfg_admin {
    struct cfg_addr bind;
    char *token_file;       /* NULL: no token asked */
    struct cfg_bytes token; /* the file's contents, read at load */
    uint32_t max_connections;
    uint64_t request_timeout_ms;
};

struct cfg_shutdown {
    uint64_t drain_timeout_ms;
};

/* Client bytes held in partly received frames, across the process. */
struct cfg_buffers {
    uint64_t max; /* 0: auto (a quarter of memory or of the cgroup's limit) */
};

struct cfg_listener_timeouts {
    uint64_t idle_ms;
    uint64_t read_ms;
    uint64_t request_ms;
    uint64_t frame_ms; /* a whole frame, from its first byte (plus what min_rate allows) */
    uint64_t min_rate; /* bytes per second a large frame is allowed beyond frame_ms */
};

struct cfg_tls_server {
    bool enabled;
    char *cert;
    char *key;
};

/* A password, written inline or read from a file when the config loads. */
struct cfg_resp_auth {
    bool enabled;
    char *username;            /* NULL: the default user */
    struct cfg_bytes password; /* from password or the contents of password_file */
    char *password_file;
};

/* Listener side of the resp codec (present only with codec resp). */
struct cfg_resp_listener {
    bool enabled;
    enum cfg_stateful stateful;
    struct cfg_resp_auth auth; /* clients must AUTH at sluice */
};

struct cfg_listener {
    char *name;
    struct cfg_addr bind;
    struct cfg_codec codec;
    char *cluster_name;
    struct cfg_cluster *cluster; /* borrowed: resolved from cluster_name */
    uint32_t max_clients;
    uint32_t max_inflight;
    uint32_t backlog;
    struct cfg_listener_timeouts timeouts;
    struct cfg_tls_server tls;
    struct cfg_resp_listener resp;
};

struct cfg_server {
    struct cfg_addr address;
    char *name; /* NULL: none; ketama places keys by it (twemproxy's server name) */
    uint32_t weight;
};

struct cfg_queue {
    uint32_t max;
    uint64_t timeout_ms;
};

struct cfg_pool {
    uint32_t min_idle;
    uint32_t max_connections;
    uint32_t max_pipeline;
    uint64_t idle_timeout_ms;
    uint64_t max_lifetime_ms;
    uint64_t max_requests;
    uint32_t max_pinned;
    struct cfg_queue queue;
    uint64_t stall_ms; /* a connection whose oldest request waited longer takes no new ones */
};

struct cfg_cluster_timeouts {
    uint64_t connect_ms;
    uint64_t read_ms;
    uint64_t write_ms;
};

/* An HTTP check: GET path, a status in [status_min, status_max]. */
struct cfg_health_http {
    bool enabled;
    struct cfg_bytes path;
    struct cfg_bytes status; /* "200-399" or "200", as written */
    char *host;              /* NULL: the server's address */
    uint32_t status_min;     /* parsed from status */
    uint32_t status_max;
};

/*
 * Active checks: http when http is enabled, else send/expect when send or an
 * expectation is set (a reply framed by the cluster's codec), else connect only.
 */
struct cfg_health_active {
    bool enabled;
    uint64_t interval_ms;
    uint64_t timeout_ms;
    uint32_t rise;
    uint32_t fall;
    enum cfg_initial initial;
    uint32_t port; /* 0: the server's own port */
    struct cfg_bytes send;
    struct cfg_bytes expect;       /* a prefix of the reply */
    struct cfg_bytes expect_regex; /* a POSIX extended regular expression on the reply */
    struct cfg_health_http http;
};

struct cfg_health_passive {
    bool enabled;
    uint32_t consecutive_failures;
    uint64_t eject_ms;
    uint64_t max_eject_ms;
    uint32_t max_ejected_percent;
};

struct cfg_health {
    struct cfg_health_active active;
    struct cfg_health_passive passive;
};

struct cfg_tls_client {
    bool enabled;
    char *ca;
    bool verify;
    char *sni;
};

/* Upstream side of the resp codec: sent on every new upstream connection. */
struct cfg_resp_upstream {
    bool enabled;
    char *username;            /* NULL: the default user */
    struct cfg_bytes password; /* ptr NULL: no AUTH */
    char *password_file;
    uint32_t db; /* 0: no SELECT */
};

struct cfg_cluster {
    char *name;
    struct cfg_codec codec;
    enum cfg_balance balance;
    enum cfg_hash_fn hash;              /* balance hash */
    enum cfg_distribution distribution; /* balance hash */
    struct cfg_bytes hash_tag;          /* balance hash: "" or two characters */
    uint32_t retries;
    struct cfg_server *servers;
    size_t nservers;
    struct cfg_pool pool;
    struct cfg_cluster_timeouts timeouts;
    struct cfg_health health;
    enum cfg_panic panic;
    uint64_t slow_start_ms;       /* 0: a returning server takes its full weight at once */
    uint64_t resolve_interval_ms; /* servers named by DNS are looked up again this often */
    struct cfg_tls_client tls;
    struct cfg_resp_upstream resp;
};

/* A DNS server to ask instead of the system's (/etc/resolv.conf). */
struct cfg_resolver {
    struct cfg_addr address;
};

struct cfg_udp {
    char *name;
    struct cfg_addr bind;
    char *cluster_name;
    struct cfg_cluster *cluster; /* borrowed: resolved from cluster_name */
    uint64_t flow_idle_ms;
    uint32_t max_flows;
};

struct cfg {
    char *file;       /* the file it was loaded from */
    uint32_t workers; /* 0: one per CPU ("auto") */
    struct cfg_log log;
    struct cfg_admin admin;
    struct cfg_shutdown shutdown;
    struct cfg_buffers buffers;
    struct cfg_listener *listeners;
    size_t nlisteners;
    struct cfg_cluster *clusters;
    size_t nclusters;
    struct cfg_udp *udp;
    size_t nudp;
    struct cfg_resolver *resolvers;
    size_t nresolvers;
    /* What the file asks for that is parsed and checked but not built yet (codec http, tls,
     * udp), one "FILE:LINE:COL: key: ..." line each, in file order: sluice refuses to run it. */
    char **unbuilt;
    size_t nunbuilt;
    struct cfg_arena *arena; /* owned: holds everything above */
};

/*
 * Load a configuration. On success return the config and leave diag empty.
 * On failure return NULL and fill diag with every error found, in file order,
 * each "FILE:LINE:COL: path.to.key: problem".
 */
struct cfg *cfg_load_file(const char *path, struct cfg_diag *diag);
struct cfg *cfg_load_buffer(const char *name, const char *buf, size_t len, struct cfg_diag *diag);
void cfg_free(struct cfg *cfg);

/* Print the effective config (every default filled in) as YAML that loads back to the same. */
int cfg_dump(const struct cfg *cfg, FILE *out);
/*
 * Whether two sections say the same, every default and secret file's
 * contents included (a reload keeps what did not change). A listener's
 * cluster is compared by name. False when out of memory.
 */
bool cfg_cluster_same(const struct cfg_cluster *a, const struct cfg_cluster *b);
bool cfg_listener_same(const struct cfg_listener *a, const struct cfg_listener *b);

/* Print the configuration reference (markdown) generated from the key table. */
int cfg_reference(FILE *out);

/* Same framing: type and every parameter. */
bool cfg_codec_equal(const struct cfg_codec *a, const struct cfg_codec *b);

/* Name tables for logs and dumps. */
const char *cfg_codec_name(enum cfg_codec_type type);
const char *cfg_balance_name(enum cfg_balance balance);
const char *cfg_hash_fn_name(enum cfg_hash_fn fn);
const char *cfg_distribution_name(enum cfg_distribution dist);
const char *cfg_log_level_name(enum cfg_log_level level);

/* Diagnostics: a list of error messages filled by the loader. */
struct cfg_diag *cfg_diag_new(void);
void cfg_diag_free(struct cfg_diag *diag);
size_t cfg_diag_count(const struct cfg_diag *diag);
const char *cfg_diag_message(const struct cfg_diag *diag, size_t i);

#endif
