#include "cfg_check.h"
#include "cfg.h"
#include "cfg_arena.h"
#include "cfg_diag.h"
#include "cfg_node.h"
#include "cfg_value.h"

#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct ck {
    struct cfg *cfg;
    const struct cfg_node *root;
    struct cfg_diag *diag;
};

static void err_at(struct ck *ck, const struct cfg_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* fmt starts with the key path, then ": ", then the problem. */
static void
err_at(struct ck *ck, const struct cfg_node *node, const char *fmt, ...)
{
    char what[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cfg_diag_add(ck->diag, ck->cfg->file, node->line, node->col, NULL, "%s", what);
}

static const struct cfg_node *
nth(const struct cfg_node *seq, size_t i)
{
    const struct cfg_item *it;

    if (seq == NULL || seq->type != CFG_NODE_SEQ) {
        return NULL;
    }
    for (it = seq->items; it != NULL && i > 0; it = it->next) {
        i--;
    }
    return it != NULL ? it->val : NULL;
}

/* The node of list[i].key, falling back to list[i], then the root. */
static const struct cfg_node *
at(struct ck *ck, const char *list, size_t i, const char *key)
{
    const struct cfg_node *elem = nth(cfg_node_get(ck->root, list), i);
    const struct cfg_node *n;

    if (elem == NULL) {
        return ck->root;
    }
    n = key != NULL ? cfg_node_get(elem, key) : NULL;
    return n != NULL ? n : elem;
}

static const struct cfg_node *
under(const struct cfg_node *node, const char *key)
{
    const struct cfg_node *n = cfg_node_get(node, key);

    return n != NULL ? n : node;
}

/* Names of n structs of stride bytes from array, each with its name at name_off. */
static void
unique_names(struct ck *ck, const char *list, const char *what, const void *array, size_t n,
             size_t stride, size_t name_off)
{
    const char *base = array;
    size_t i, j;

    for (i = 0; i < n; i++) {
        const char *a = *(char *const *)(base + i * stride + name_off);

        for (j = 0; j < i && a != NULL; j++) {
            const char *b = *(char *const *)(base + j * stride + name_off);

            if (b != NULL && strcmp(a, b) == 0) {
                err_at(ck, at(ck, list, i, "name"),
                       "%s[%zu].name: duplicate %s name '%s'; first used by %s[%zu] at line %u",
                       list, i, what, a, list, j, at(ck, list, j, "name")->line);
                break;
            }
        }
    }
}

static struct cfg_cluster *
find_cluster(struct cfg *cfg, const char *name)
{
    size_t i;

    for (i = 0; i < cfg->nclusters; i++) {
        if (cfg->clusters[i].name != NULL && strcmp(cfg->clusters[i].name, name) == 0) {
            return &cfg->clusters[i];
        }
    }
    return NULL;
}

static void
resolve_cluster(struct ck *ck, const char *list, size_t i, const char *name,
                struct cfg_cluster **out)
{
    struct cfg *cfg = ck->cfg;
    const char *best = NULL;
    size_t j, best_d = 3;

    if (name == NULL) {
        return; /* already reported */
    }
    *out = find_cluster(cfg, name);
    if (*out != NULL) {
        return;
    }
    for (j = 0; j < cfg->nclusters; j++) {
        size_t d;

        if (cfg->clusters[j].name == NULL) {
            continue;
        }
        d = cfg_edit_distance(name, cfg->clusters[j].name);

        if (d < best_d && d < strlen(name)) {
            best = cfg->clusters[j].name;
            best_d = d;
        }
    }
    if (best != NULL) {
        err_at(ck, at(ck, list, i, "cluster"),
               "%s[%zu].cluster: unknown cluster '%s'; did you mean '%s'?", list, i, name, best);
    } else if (cfg->nclusters == 0) {
        err_at(ck, at(ck, list, i, "cluster"),
               "%s[%zu].cluster: unknown cluster '%s'; no clusters are defined", list, i, name);
    } else {
        err_at(ck, at(ck, list, i, "cluster"),
               "%s[%zu].cluster: unknown cluster '%s'; expected the name of an entry in clusters",
               list, i, name);
    }
}

static bool
is_wildcard(const struct cfg_addr *a)
{
    return a->kind == CFG_ADDR_ANY || strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0;
}

/* Two binds conflict on one port when they are the same host or either takes every address. */
static bool
binds_conflict(const struct cfg_addr *a, const struct cfg_addr *b)
{
    if (a->text == NULL || b->text == NULL || a->port != b->port) {
        return false;
    }
    return is_wildcard(a) || is_wildcard(b) || strcmp(a->host, b->host) == 0;
}

static void
check_binds(struct ck *ck)
{
    struct cfg *cfg = ck->cfg;
    size_t i, j;

    for (i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_addr *a = &cfg->listeners[i].bind;

        for (j = 0; j < i; j++) {
            if (binds_conflict(a, &cfg->listeners[j].bind)) {
                err_at(ck, at(ck, "listeners", i, "bind"),
                       "listeners[%zu].bind: %s overlaps listeners[%zu] (%s, line %u); each "
                       "listener needs an address of its own",
                       i, a->text, j, cfg->listeners[j].bind.text,
                       at(ck, "listeners", j, "bind")->line);
                break;
            }
        }
        if (j == i && binds_conflict(a, &cfg->admin.bind)) {
            err_at(ck, at(ck, "listeners", i, "bind"),
                   "listeners[%zu].bind: %s overlaps the admin endpoint (admin.bind %s)", i,
                   a->text, cfg->admin.bind.text);
        }
    }
    for (i = 0; i < cfg->nudp; i++) {
        for (j = 0; j < i; j++) {
            if (binds_conflict(&cfg->udp[i].bind, &cfg->udp[j].bind)) {
                err_at(ck, at(ck, "udp", i, "bind"),
                       "udp[%zu].bind: %s overlaps udp[%zu] (%s, line %u)", i,
                       cfg->udp[i].bind.text, j, cfg->udp[j].bind.text,
                       at(ck, "udp", j, "bind")->line);
                break;
            }
        }
    }
}

static bool
reframable(enum cfg_codec_type a, enum cfg_codec_type b)
{
    return a == b || ((a == CFG_CODEC_LINE || a == CFG_CODEC_LENGTH) &&
                      (b == CFG_CODEC_LINE || b == CFG_CODEC_LENGTH));
}

/*
 * A cluster's upstream framing: its own codec, which each listener's must be
 * able to re-frame into, or the one codec all its listeners share.
 */
static void
check_codecs(struct ck *ck)
{
    struct cfg *cfg = ck->cfg;
    size_t i, j;

    for (i = 0; i < cfg->nclusters; i++) {
        struct cfg_cluster *c = &cfg->clusters[i];
        const struct cfg_listener *first = NULL;
        size_t first_idx = 0;

        for (j = 0; j < cfg->nlisteners; j++) {
            const struct cfg_listener *l = &cfg->listeners[j];

            if (l->cluster != c || !l->codec.set) {
                continue;
            }
            if (c->codec.set) {
                if (!reframable(l->codec.type, c->codec.type)) {
                    err_at(ck, at(ck, "listeners", j, "codec"),
                           "listeners[%zu].codec: %s cannot be re-framed into cluster '%s' "
                           "codec %s (line %u); only line and length re-frame into each other",
                           j, cfg_codec_name(l->codec.type), c->name, cfg_codec_name(c->codec.type),
                           at(ck, "clusters", i, "codec")->line);
                }
                continue;
            }
            if (first == NULL) {
                first = l;
                first_idx = j;
            } else if (!cfg_codec_equal(&first->codec, &l->codec)) {
                err_at(
                    ck, at(ck, "clusters", i, "name"),
                    "clusters[%zu]: used by listeners with different codecs, %s (listeners[%zu]) "
                    "and %s (listeners[%zu]); give the cluster a codec of its own",
                    i, cfg_codec_name(first->codec.type), first_idx, cfg_codec_name(l->codec.type),
                    j);
                first = NULL;
                break;
            }
        }
        if (!c->codec.set && first != NULL) {
            c->codec = first->codec; /* inherited: the upstream frames like the listeners */
        }
    }
}

/* "200" or "200-399": fill min and max; -1 if it is neither. */
static int
parse_status(const struct cfg_bytes *b, uint32_t *min, uint32_t *max)
{
    unsigned lo, hi;
    int used = 0;

    if (b->len == 3 && sscanf(b->ptr, "%3u%n", &lo, &used) == 1 && used == 3) {
        hi = lo;
    } else if (b->len != 7 || sscanf(b->ptr, "%3u-%3u%n", &lo, &hi, &used) != 2 || used != 7) {
        return -1;
    }
    if (lo < 100 || hi > 599 || lo > hi) {
        return -1;
    }
    *min = lo;
    *max = hi;
    return 0;
}

static void
check_active(struct ck *ck, size_t i, const struct cfg_node *node)
{
    struct cfg_health_active *a = &ck->cfg->clusters[i].health.active;
    struct cfg_health_http *h = &a->http;
    size_t k;

    if (a->expect.ptr != NULL && a->expect_regex.ptr != NULL) {
        err_at(ck, under(node, "expect_regex"),
               "clusters[%zu].health.active.expect_regex: give expect or expect_regex, not both",
               i);
    }
    if (a->expect_regex.ptr != NULL) {
        regex_t re;
        int rc = strlen(a->expect_regex.ptr) != a->expect_regex.len
                     ? REG_BADPAT
                     : regcomp(&re, a->expect_regex.ptr, REG_EXTENDED | REG_NOSUB);

        if (rc != 0) {
            char why[256] = "it holds a NUL byte";

            if (rc != REG_BADPAT || strlen(a->expect_regex.ptr) == a->expect_regex.len) {
                regerror(rc, NULL, why, sizeof(why));
            }
            err_at(ck, under(node, "expect_regex"),
                   "clusters[%zu].health.active.expect_regex: not a regular expression: %s", i,
                   why);
        } else {
            regfree(&re);
        }
    }
    if (!h->enabled) {
        return;
    }
    if (a->send.ptr != NULL || a->expect.ptr != NULL || a->expect_regex.ptr != NULL) {
        err_at(ck, under(node, "http"),
               "clusters[%zu].health.active.http: an http check sends its own request; drop "
               "send, expect and expect_regex",
               i);
    }
    if (h->path.len == 0 || h->path.ptr[0] != '/') {
        err_at(ck, under(under(node, "http"), "path"),
               "clusters[%zu].health.active.http.path: must start with /", i);
    } else {
        for (k = 0; k < h->path.len; k++) {
            unsigned char ch = (unsigned char)h->path.ptr[k];

            if (ch <= ' ' || ch == 0x7f) {
                err_at(ck, under(under(node, "http"), "path"),
                       "clusters[%zu].health.active.http.path: holds a space or control byte at "
                       "offset %zu",
                       i, k);
                break;
            }
        }
    }
    if (parse_status(&h->status, &h->status_min, &h->status_max) == -1) {
        err_at(ck, under(under(node, "http"), "status"),
               "clusters[%zu].health.active.http.status: '%s' is not a status or a range; "
               "expected such as \"200\" or \"200-399\" (100 to 599)",
               i, h->status.ptr != NULL ? h->status.ptr : "");
    }
}

static void
check_cluster(struct ck *ck, size_t i)
{
    struct cfg_cluster *c = &ck->cfg->clusters[i];
    const struct cfg_node *node = at(ck, "clusters", i, NULL);
    size_t s, t;

    if (c->pool.min_idle > c->pool.max_connections) {
        err_at(ck, under(under(node, "pool"), "min_idle"),
               "clusters[%zu].pool.min_idle: %u is more than max_connections (%u)", i,
               c->pool.min_idle, c->pool.max_connections);
    }
    if (c->health.active.enabled && c->health.active.timeout_ms > c->health.active.interval_ms) {
        err_at(ck, under(under(under(node, "health"), "active"), "timeout"),
               "clusters[%zu].health.active.timeout: longer than interval; a check must end "
               "before the next starts",
               i);
    }
    if (c->health.active.enabled) {
        check_active(ck, i, under(under(node, "health"), "active"));
    }
    if (c->health.passive.enabled && c->health.passive.max_eject_ms < c->health.passive.eject_ms) {
        err_at(ck, under(under(under(node, "health"), "passive"), "max_eject"),
               "clusters[%zu].health.passive.max_eject: shorter than eject", i);
    }
    for (s = 0; s < c->nservers; s++) {
        for (t = 0; t < s && c->servers[s].address.text != NULL; t++) {
            if (c->servers[t].address.text != NULL &&
                strcmp(c->servers[s].address.text, c->servers[t].address.text) == 0) {
                const struct cfg_node *srv = nth(cfg_node_get(node, "servers"), s);

                err_at(ck, under(srv != NULL ? srv : node, "address"),
                       "clusters[%zu].servers[%zu].address: %s is listed twice (also "
                       "servers[%zu]); use weight to give a server more traffic",
                       i, s, c->servers[s].address.text, t);
                break;
            }
        }
        for (t = 0; t < s && c->servers[s].name != NULL; t++) {
            if (c->servers[t].name != NULL && strcmp(c->servers[s].name, c->servers[t].name) == 0) {
                const struct cfg_node *srv = nth(cfg_node_get(node, "servers"), s);

                err_at(ck, under(srv != NULL ? srv : node, "name"),
                       "clusters[%zu].servers[%zu].name: '%s' is taken by servers[%zu]", i, s,
                       c->servers[s].name, t);
                break;
            }
        }
    }
}

/* Read a secret from path into out (one trailing newline dropped); complain at node. */
static void
read_secret(struct ck *ck, const struct cfg_node *node, const char *what, const char *path,
            struct cfg_bytes *out)
{
    char buf[4096];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        err_at(ck, node, "%s: cannot read '%s': %s", what, path, strerror(errno));
        return;
    }
    n = fread(buf, 1, sizeof(buf), f);
    if (ferror(f) || !feof(f)) {
        err_at(ck, node, "%s: '%s' is unreadable or longer than %zu bytes", what, path,
               sizeof(buf) - 1);
        fclose(f);
        return;
    }
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    if (n == 0) {
        err_at(ck, node, "%s: '%s' is empty", what, path);
        return;
    }
    out->ptr = cfg_arena_strndup(ck->cfg->arena, buf, n);
    out->len = n;
}

/* password xor password_file; the file's contents become the password. */
static void
check_password(struct ck *ck, const struct cfg_node *node, const char *path, const char *username,
               struct cfg_bytes *password, const char *password_file, bool required)
{
    char what[128];

    snprintf(what, sizeof(what), "%s.password_file", path);
    if (password->ptr != NULL && password_file != NULL) {
        err_at(ck, under(node, "password_file"), "%s: give password or password_file, not both",
               what);
        return;
    }
    if (password_file != NULL) {
        read_secret(ck, under(node, "password_file"), what, password_file, password);
        return;
    }
    if (password->ptr != NULL && password->len == 0) {
        err_at(ck, under(node, "password"), "%s.password: empty", path);
    } else if (password->ptr == NULL && (required || username != NULL)) {
        err_at(ck, node, "%s: expected password or password_file%s", path,
               username != NULL ? " with username" : "");
    }
}

static const char *const hash_only_keys[] = {"hash", "distribution", "hash_tag"};

/* The resp blocks belong to resp codecs; balance hash needs keys, which only resp has. */
static void
check_resp(struct ck *ck)
{
    struct cfg *cfg = ck->cfg;
    char path[64];
    size_t i, k;

    for (i = 0; i < cfg->nlisteners; i++) {
        struct cfg_listener *l = &cfg->listeners[i];
        const struct cfg_node *node = at(ck, "listeners", i, "resp");

        if (!l->resp.enabled) {
            continue;
        }
        if (l->codec.type != CFG_CODEC_RESP) {
            err_at(ck, node, "listeners[%zu].resp: only for codec resp (this listener is %s)", i,
                   cfg_codec_name(l->codec.type));
        }
        if (l->resp.auth.enabled) {
            snprintf(path, sizeof(path), "listeners[%zu].resp.auth", i);
            check_password(ck, under(node, "auth"), path, l->resp.auth.username,
                           &l->resp.auth.password, l->resp.auth.password_file, true);
        }
    }
    for (i = 0; i < cfg->nclusters; i++) {
        struct cfg_cluster *c = &cfg->clusters[i];
        const struct cfg_node *node = at(ck, "clusters", i, NULL);
        bool resp = c->codec.set && c->codec.type == CFG_CODEC_RESP;

        if (c->resp.enabled) {
            if (!resp && c->codec.set) {
                err_at(ck, under(node, "resp"),
                       "clusters[%zu].resp: only for codec resp (this "
                       "cluster is %s)",
                       i, cfg_codec_name(c->codec.type));
            }
            snprintf(path, sizeof(path), "clusters[%zu].resp", i);
            check_password(ck, under(node, "resp"), path, c->resp.username, &c->resp.password,
                           c->resp.password_file, false);
        }
        for (k = 0; k < sizeof(hash_only_keys) / sizeof(hash_only_keys[0]); k++) {
            const struct cfg_node *key = cfg_node_get(node, hash_only_keys[k]);

            if (key != NULL && c->balance != CFG_BALANCE_HASH) {
                err_at(ck, key, "clusters[%zu].%s: only used with balance: hash (balance is %s)", i,
                       hash_only_keys[k], cfg_balance_name(c->balance));
            }
        }
        if (c->hash_tag.ptr != NULL && c->hash_tag.len != 2) {
            err_at(ck, under(node, "hash_tag"),
                   "clusters[%zu].hash_tag: expected two characters, such as \"{}\"", i);
        }
        if (c->balance == CFG_BALANCE_HASH && c->codec.set && !resp) {
            err_at(ck, under(node, "balance"),
                   "clusters[%zu].balance: hash needs keys, which only codec resp finds (this "
                   "cluster is %s)",
                   i, cfg_codec_name(c->codec.type));
        }
    }
}

struct unbuilt {
    unsigned line;
    unsigned col;
    char *msg; /* in the config's arena */
};

/*
 * list[i].key (key NULL: list[i] itself) asks for feature, which this
 * version does not have; name is the entry's.
 */
static void
unbuilt_at(struct ck *ck, struct unbuilt *u, const char *list, size_t i, const char *key,
           const char *feature, const char *name)
{
    const struct cfg_node *node = at(ck, list, i, key);
    const char *kind = strcmp(list, "listeners") == 0  ? "listener"
                       : strcmp(list, "clusters") == 0 ? "cluster"
                                                       : "udp relay";

    if (key != NULL && strcmp(key, "codec") == 0) {
        node = under(node, "type");
    }
    u->line = node->line;
    u->col = node->col;
    u->msg = cfg_arena_printf(
        ck->cfg->arena, "%s:%u:%u: %s[%zu]%s%s: %s is not available in this version yet (%s '%s')",
        ck->cfg->file, node->line, node->col, list, i, key != NULL ? "." : "",
        key != NULL ? key : "", feature, kind, name != NULL ? name : "");
}

static int
by_position(const void *a, const void *b)
{
    const struct unbuilt *x = a, *y = b;

    if (x->line != y->line) {
        return x->line < y->line ? -1 : 1;
    }
    return (x->col > y->col) - (x->col < y->col);
}

/*
 * The keys of codec http, tls and udp are parsed and checked so that configs
 * written today keep working once they are built; until then, note where the
 * file asks for them (cfg->unbuilt, in file order).
 */
static void
check_unbuilt(struct ck *ck)
{
    struct cfg *cfg = ck->cfg;
    struct unbuilt *u =
        cfg_xmalloc((2 * cfg->nlisteners + cfg->nclusters + cfg->nudp + 1) * sizeof(*u));
    size_t i, n = 0;

    for (i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];

        if (l->codec.type == CFG_CODEC_HTTP) {
            unbuilt_at(ck, &u[n++], "listeners", i, "codec", "codec http", l->name);
        }
        if (l->tls.enabled) {
            unbuilt_at(ck, &u[n++], "listeners", i, "tls", "tls", l->name);
        }
    }
    for (i = 0; i < cfg->nclusters; i++) {
        if (cfg->clusters[i].tls.enabled) {
            unbuilt_at(ck, &u[n++], "clusters", i, "tls", "tls", cfg->clusters[i].name);
        }
    }
    for (i = 0; i < cfg->nudp; i++) {
        unbuilt_at(ck, &u[n++], "udp", i, NULL, "a udp relay", cfg->udp[i].name);
    }
    qsort(u, n, sizeof(*u), by_position);
    cfg->unbuilt = cfg_arena_alloc(cfg->arena, (n + 1) * sizeof(*cfg->unbuilt));
    for (i = 0; i < n; i++) {
        cfg->unbuilt[i] = u[i].msg;
    }
    cfg->nunbuilt = n;
    free(u);
}

static bool
absent_or_empty(const struct cfg_node *node)
{
    return node == NULL || (node->type == CFG_NODE_SEQ && node->nitems == 0);
}

void
cfg_check(struct cfg *cfg, const struct cfg_node *root, struct cfg_diag *diag)
{
    struct ck ck = {cfg, root, diag};
    size_t i;

    if (absent_or_empty(cfg_node_get(root, "listeners")) &&
        absent_or_empty(cfg_node_get(root, "udp"))) {
        err_at(&ck, root,
               "listeners: nothing to serve; expected at least one entry in listeners or udp");
    }
    unique_names(&ck, "listeners", "listener", cfg->listeners, cfg->nlisteners,
                 sizeof(*cfg->listeners), offsetof(struct cfg_listener, name));
    unique_names(&ck, "clusters", "cluster", cfg->clusters, cfg->nclusters, sizeof(*cfg->clusters),
                 offsetof(struct cfg_cluster, name));
    unique_names(&ck, "udp", "udp relay", cfg->udp, cfg->nudp, sizeof(*cfg->udp),
                 offsetof(struct cfg_udp, name));
    for (i = 0; i < cfg->nlisteners; i++) {
        resolve_cluster(&ck, "listeners", i, cfg->listeners[i].cluster_name,
                        &cfg->listeners[i].cluster);
    }
    for (i = 0; i < cfg->nudp; i++) {
        resolve_cluster(&ck, "udp", i, cfg->udp[i].cluster_name, &cfg->udp[i].cluster);
    }
    check_binds(&ck);
    if (cfg->admin.token_file != NULL) {
        const struct cfg_node *admin = cfg_node_get(root, "admin");

        read_secret(&ck, admin != NULL ? under(admin, "token_file") : root, "admin.token_file",
                    cfg->admin.token_file, &cfg->admin.token);
    }
    check_codecs(&ck);
    check_resp(&ck);
    for (i = 0; i < cfg->nclusters; i++) {
        check_cluster(&ck, i);
    }
    check_unbuilt(&ck);
    for (i = 0; i < cfg->nresolvers; i++) {
        const struct cfg_addr *a = &cfg->resolvers[i].address;

        if (a->kind == CFG_ADDR_NAME) {
            const struct cfg_node *n = nth(cfg_node_get(root, "resolvers"), i);

            err_at(&ck, n != NULL ? under(n, "address") : root,
                   "resolvers[%zu]: %s is a hostname; a resolver is given by IP address", i,
                   a->text);
        }
    }
}
