#include "px_dns.h"
#include "config/cfg.h"
#include "config/cfg_arena.h"
#include "proxy/px_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#define HOSTS_FILE "/etc/hosts"
#define RESOLV_FILE "/etc/resolv.conf"

/*
 * Why a lookup failed, in rising precedence: when neither question got an
 * address, the answer names the stronger reason of the two.
 */
enum dns_fail {
    FAIL_NONE,
    FAIL_NO_ADDRESS, /* the name is there without an A or AAAA record */
    FAIL_ERROR,      /* a malformed, truncated or otherwise unusable reply */
    FAIL_REFUSED,
    FAIL_NOT_SENT, /* evdns would not take the question */
    FAIL_TIMEOUT,
    FAIL_NO_NAME,
};

static const char *const fail_text[] = {
    [FAIL_NONE] = "",
    [FAIL_NO_ADDRESS] = "no address",
    [FAIL_ERROR] = "bad reply",
    [FAIL_REFUSED] = "refused",
    [FAIL_NOT_SENT] = "cannot send the query",
    [FAIL_TIMEOUT] = "timeout",
    [FAIL_NO_NAME] = "no such name",
};

/* One of a lookup's two questions: A or AAAA. */
struct query {
    struct px_dns_watch *w; /* borrowed: the watch it belongs to */
    uintptr_t ticket;       /* what evdns hands back to on_answer; 0: not asked */
    bool done;
    enum dns_fail fail;
    LIST_ENTRY(query) link; /* in asked, while evdns has it */
};

/* A line of the hosts file: one name, one address. */
struct host_entry {
    char *name; /* owned */
    int family;
    unsigned char addr[16];
};

struct px_dns_watch {
    struct px_dns *d; /* borrowed: the owner */
    char *host;       /* owned */
    uint16_t port;
    uint64_t interval_ms;
    px_dns_fn fn;
    void *arg;
    struct event *timer;            /* owned: the next lookup */
    struct query q[2];              /* A, AAAA */
    struct sockaddr_storage *found; /* owned: this lookup's addresses so far */
    size_t nfound;
    size_t capfound;
    bool fixed;    /* a literal address or a hosts entry: found holds it, nothing is asked */
    bool answered; /* has had its first answer */
    LIST_ENTRY(px_dns_watch) link;
};

struct px_dns {
    struct evdns_base *evdns; /* owned */
    struct event_base *base;  /* borrowed */
    struct host_entry *hosts; /* owned: the hosts file, read once */
    size_t nhosts;
    LIST_HEAD(, px_dns_watch) watches; /* owned */
    size_t pending;                    /* watches without a first answer */
    uint64_t lookups;                  /* answers given, failed or not */
    uint64_t failures;                 /* answers without an address */
};

/*
 * Questions evdns has not answered yet, by ticket. evdns runs an answer's
 * callback from the loop a moment after it reads the reply, and freeing the
 * evdns base does not take back an answer already read; so a callback carries
 * a ticket rather than a pointer, and an answer whose ticket is gone is for a
 * freed watcher and is dropped. One list for the process, two entries per
 * lookup in flight; the lock is for loops on several threads.
 */
static pthread_mutex_t asked_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, query) asked = LIST_HEAD_INITIALIZER(asked);
static uintptr_t last_ticket;

static char *
xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;

    return memcpy(cfg_xmalloc(len), s, len);
}

/* ---- the ticket list ---- */

static void
ask(struct query *q)
{
    pthread_mutex_lock(&asked_lock);
    q->ticket = ++last_ticket;
    LIST_INSERT_HEAD(&asked, q, link);
    pthread_mutex_unlock(&asked_lock);
}

/* The query that holds ticket, taken off the list; NULL if no live query does. */
static struct query *
claim(uintptr_t ticket)
{
    struct query *q;

    pthread_mutex_lock(&asked_lock);
    LIST_FOREACH(q, &asked, link)
    {
        if (q->ticket == ticket) {
            LIST_REMOVE(q, link);
            q->ticket = 0;
            break;
        }
    }
    pthread_mutex_unlock(&asked_lock);
    return q;
}

static void
forget(struct query *q)
{
    pthread_mutex_lock(&asked_lock);
    if (q->ticket != 0) {
        LIST_REMOVE(q, link);
        q->ticket = 0;
    }
    pthread_mutex_unlock(&asked_lock);
}

/* ---- addresses ---- */

static int
parse_ip(const char *text, int *family, unsigned char addr[16])
{
    if (inet_pton(AF_INET, text, addr) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, addr) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return -1;
}

static void
add_addr(struct px_dns_watch *w, int family, const void *addr)
{
    struct sockaddr_storage *ss;

    if (w->nfound == w->capfound) {
        w->capfound *= 2;
        w->found = cfg_xrealloc(w->found, w->capfound * sizeof(*w->found));
    }
    ss = &w->found[w->nfound++];
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons(w->port);
        memcpy(&sin->sin_addr, addr, sizeof(sin->sin_addr));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(w->port);
        memcpy(&sin6->sin6_addr, addr, sizeof(sin6->sin6_addr));
    }
}

/* IPv4 before IPv6, then by address. */
static int
addr_cmp(const void *a, const void *b)
{
    const struct sockaddr_storage *x = a, *y = b;

    if (x->ss_family != y->ss_family) {
        return x->ss_family == AF_INET ? -1 : 1;
    }
    if (x->ss_family == AF_INET) {
        return memcmp(&((const struct sockaddr_in *)x)->sin_addr,
                      &((const struct sockaddr_in *)y)->sin_addr, sizeof(struct in_addr));
    }
    return memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
                  &((const struct sockaddr_in6 *)y)->sin6_addr, sizeof(struct in6_addr));
}

static void
sort_unique(struct px_dns_watch *w)
{
    size_t i, n = 0;

    if (w->nfound == 0) {
        return;
    }
    qsort(w->found, w->nfound, sizeof(*w->found), addr_cmp);
    for (i = 1; i < w->nfound; i++) {
        if (addr_cmp(&w->found[n], &w->found[i]) != 0) {
            w->found[++n] = w->found[i];
        }
    }
    w->nfound = n + 1;
}

/* ---- the hosts file ---- */

static void
add_host(struct px_dns *d, const char *name, int family, const unsigned char addr[16])
{
    struct host_entry *e;

    d->hosts = cfg_xrealloc(d->hosts, (d->nhosts + 1) * sizeof(*d->hosts));
    e = &d->hosts[d->nhosts++];
    e->name = xstrdup(name);
    e->family = family;
    memcpy(e->addr, addr, sizeof(e->addr));
}

/*
 * Read "address name [alias...]" lines, as the system's resolver does. evdns
 * keeps a hosts table too (evdns_base_load_hosts), but only its getaddrinfo
 * reads it: evdns_base_resolve_ipv4/ipv6 always ask a nameserver.
 */
static void
read_hosts(struct px_dns *d, const char *path)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;

    if (f == NULL) {
        if (errno != ENOENT) {
            px_log_warn("dns", NULL, "cannot read %s: %s; names are only asked of DNS", path,
                        strerror(errno));
        }
        return;
    }
    while (getline(&line, &cap, f) != -1) {
        static const char blank[] = " \t\r\n";
        unsigned char addr[16];
        char *save = NULL, *tok;
        int family;

        line[strcspn(line, "#")] = '\0';
        tok = strtok_r(line, blank, &save);
        if (tok == NULL || parse_ip(tok, &family, addr) == -1) {
            continue;
        }
        while ((tok = strtok_r(NULL, blank, &save)) != NULL) {
            add_host(d, tok, family, addr);
        }
    }
    if (ferror(f)) {
        px_log_warn("dns", NULL, "error reading %s; some of its names may be missing", path);
    }
    free(line);
    fclose(f);
}

/* A literal address or a name in the hosts file: found gets its addresses; false if neither. */
static bool
answer_locally(struct px_dns_watch *w)
{
    unsigned char addr[16];
    int family;
    size_t i;

    if (parse_ip(w->host, &family, addr) == 0) {
        add_addr(w, family, addr);
        return true;
    }
    for (i = 0; i < w->d->nhosts; i++) {
        if (strcasecmp(w->d->hosts[i].name, w->host) == 0) {
            add_addr(w, w->d->hosts[i].family, w->d->hosts[i].addr);
        }
    }
    sort_unique(w);
    return w->nfound > 0;
}

/* ---- lookups ---- */

static enum dns_fail
fail_of(int result)
{
    switch (result) {
    case DNS_ERR_NONE:
    case DNS_ERR_NODATA:
        return FAIL_NO_ADDRESS;
    case DNS_ERR_NOTEXIST:
        return FAIL_NO_NAME;
    case DNS_ERR_TIMEOUT:
    case DNS_ERR_SERVERFAILED: /* evdns lets these time out */
        return FAIL_TIMEOUT;
    case DNS_ERR_REFUSED:
        return FAIL_REFUSED;
    default:
        return FAIL_ERROR;
    }
}

/*
 * Both questions are answered (or the name needs none): count, set the next
 * lookup, then tell the owner, last, since fn may free the watcher.
 */
static void
finish(struct px_dns_watch *w)
{
    struct px_dns *d = w->d;
    enum dns_fail fail = w->q[0].fail > w->q[1].fail ? w->q[0].fail : w->q[1].fail;

    sort_unique(w);
    d->lookups++;
    if (w->nfound == 0) {
        d->failures++;
    }
    if (!w->answered) {
        w->answered = true;
        d->pending--;
    }
    if (!w->fixed && w->interval_ms > 0) {
        struct timeval tv = {.tv_sec = (time_t)(w->interval_ms / 1000),
                             .tv_usec = (suseconds_t)(w->interval_ms % 1000 * 1000)};

        if (evtimer_add(w->timer, &tv) == -1) {
            px_log_error("dns", NULL, "%s: cannot schedule the next lookup; the last answer stays",
                         w->host);
        }
    }
    w->fn(w->arg, w->found, w->nfound, w->nfound > 0 ? NULL : fail_text[fail]);
}

static void
on_answer(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    struct query *q = claim((uintptr_t)arg);
    struct px_dns_watch *w;
    int i;

    (void)ttl;
    if (q == NULL) {
        return; /* read before its watcher was freed */
    }
    w = q->w;
    q->done = true;
    if (result == DNS_ERR_NONE && count > 0 && (type == DNS_IPv4_A || type == DNS_IPv6_AAAA)) {
        size_t len = type == DNS_IPv4_A ? 4 : 16;

        for (i = 0; i < count; i++) {
            add_addr(w, type == DNS_IPv4_A ? AF_INET : AF_INET6,
                     (const unsigned char *)addresses + (size_t)i * len);
        }
    } else {
        q->fail = fail_of(result);
    }
    if (w->q[0].done && w->q[1].done) {
        finish(w);
    }
}

/* Ask both questions; an answer comes from the loop later, never from here. */
static void
start_lookup(struct px_dns_watch *w)
{
    struct evdns_request *req;
    int i;

    w->nfound = 0;
    for (i = 0; i < 2; i++) {
        struct query *q = &w->q[i];

        q->done = false;
        q->fail = FAIL_NONE;
        ask(q);
        if (i == 0) {
            req = evdns_base_resolve_ipv4(w->d->evdns, w->host, 0, on_answer, (void *)q->ticket);
        } else {
            req = evdns_base_resolve_ipv6(w->d->evdns, w->host, 0, on_answer, (void *)q->ticket);
        }
        if (req == NULL) {
            forget(q);
            q->done = true;
            q->fail = FAIL_NOT_SENT;
        }
    }
    if (w->q[0].done && w->q[1].done) {
        px_log_error("dns", NULL, "%s: evdns would not send the queries", w->host);
        finish(w);
    }
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct px_dns_watch *w = arg;

    (void)fd;
    (void)what;
    if (w->fixed) {
        finish(w);
    } else {
        start_lookup(w);
    }
}

struct px_dns_watch *
px_dns_watch(struct px_dns *d, const char *host, uint16_t port, uint64_t interval_ms, px_dns_fn fn,
             void *arg)
{
    struct px_dns_watch *w;
    const struct timeval now = {0, 0};

    if (host == NULL || host[0] == '\0') {
        px_log_error("dns", NULL, "cannot watch an empty name");
        return NULL;
    }
    w = cfg_xmalloc(sizeof(*w));
    memset(w, 0, sizeof(*w));
    w->d = d;
    w->host = xstrdup(host);
    w->port = port;
    w->interval_ms = interval_ms;
    w->fn = fn;
    w->arg = arg;
    w->q[0].w = w;
    w->q[1].w = w;
    w->capfound = 8; /* never NULL, even with no address: fn may memcpy n == 0 of them */
    w->found = cfg_xmalloc(w->capfound * sizeof(*w->found));
    w->fixed = answer_locally(w);
    /* The first answer, too, comes from the loop: never before this returns. */
    w->timer = evtimer_new(d->base, on_timer, w);
    if (w->timer == NULL || evtimer_add(w->timer, &now) == -1) {
        px_log_error("dns", NULL, "%s: cannot schedule a lookup", host);
        if (w->timer != NULL) {
            event_free(w->timer);
        }
        free(w->found);
        free(w->host);
        free(w);
        return NULL;
    }
    LIST_INSERT_HEAD(&d->watches, w, link);
    d->pending++;
    return w;
}

/* ---- the resolver ---- */

static void
on_evdns_log(int is_warning, const char *msg)
{
    if (is_warning) {
        px_log_warn("dns", NULL, "%s", msg);
    } else {
        px_log_debug("dns", NULL, "%s", msg);
    }
}

static int
set_options(struct px_dns *d)
{
    static const char *const options[][2] = {
        {"timeout:", "2"},        /* seconds per try */
        {"attempts:", "2"},       /* tries per nameserver */
        {"randomize-case:", "0"}, /* ask names as written, not in random case (0x20) */
    };
    size_t i;

    for (i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        if (evdns_base_set_option(d->evdns, options[i][0], options[i][1]) == -1) {
            px_log_error("dns", NULL, "cannot set evdns option %s%s", options[i][0], options[i][1]);
            return -1;
        }
    }
    return 0;
}

static int
add_resolvers(struct px_dns *d, const struct cfg *cfg)
{
    size_t i;

    for (i = 0; i < cfg->nresolvers; i++) {
        const struct cfg_addr *a = &cfg->resolvers[i].address;
        int rc = evdns_base_nameserver_sockaddr_add(d->evdns, (const struct sockaddr *)&a->sa,
                                                    a->salen, 0);

        if (rc != 0 && rc != 3) { /* 3: listed twice */
            px_log_error("dns", NULL, "cannot use resolver %s (evdns error %d)", a->text, rc);
            return -1;
        }
    }
    return 0;
}

/* The system's nameservers, search domains and options; evdns asks 127.0.0.1 when none are set. */
static int
system_resolvers(struct px_dns *d)
{
    int rc = evdns_base_resolv_conf_parse(
        d->evdns, DNS_OPTION_NAMESERVERS | DNS_OPTION_SEARCH | DNS_OPTION_MISC, RESOLV_FILE);

    if (rc != 0 && rc != 1 && rc != 6) { /* 1: no file, 6: no nameserver line */
        px_log_warn("dns", NULL, "cannot read %s (evdns error %d)", RESOLV_FILE, rc);
    }
    if (evdns_base_count_nameservers(d->evdns) == 0) {
        px_log_warn("dns", NULL, "no nameserver in %s; asking 127.0.0.1", RESOLV_FILE);
        if (evdns_base_nameserver_ip_add(d->evdns, "127.0.0.1") != 0) {
            px_log_error("dns", NULL, "cannot add nameserver 127.0.0.1");
            return -1;
        }
    }
    return 0;
}

struct px_dns *
px_dns_new(struct event_base *base, const struct cfg *cfg)
{
    struct px_dns *d = cfg_xmalloc(sizeof(*d));

    memset(d, 0, sizeof(*d));
    d->base = base;
    LIST_INIT(&d->watches);
    evdns_set_log_fn(on_evdns_log);
    d->evdns = evdns_base_new(base, 0);
    if (d->evdns == NULL) {
        px_log_error("dns", NULL, "cannot create the resolver");
        goto fail;
    }
    /* Ours first, so the system's "options" line may override them. */
    if (set_options(d) == -1) {
        goto fail;
    }
    read_hosts(d, HOSTS_FILE);
    if ((cfg->nresolvers > 0 ? add_resolvers(d, cfg) : system_resolvers(d)) == -1) {
        goto fail;
    }
    return d;
fail:
    px_dns_free(d);
    return NULL;
}

size_t
px_dns_pending(const struct px_dns *d)
{
    return d->pending;
}

uint64_t
px_dns_lookups(const struct px_dns *d)
{
    return d->lookups;
}

uint64_t
px_dns_failures(const struct px_dns *d)
{
    return d->failures;
}

void
px_dns_free(struct px_dns *d)
{
    struct px_dns_watch *w;
    size_t i;

    if (d == NULL) {
        return;
    }
    while ((w = LIST_FIRST(&d->watches)) != NULL) {
        LIST_REMOVE(w, link);
        forget(&w->q[0]); /* an answer evdns has read already now finds no query */
        forget(&w->q[1]);
        event_free(w->timer);
        free(w->found);
        free(w->host);
        free(w);
    }
    /*
     * Without fail_requests, evdns drops what is in flight silently. Canceling
     * each request (evdns_cancel_request) would instead queue a callback for
     * each on the loop, which leaks if the loop never runs again (at exit).
     */
    if (d->evdns != NULL) {
        evdns_base_free(d->evdns, 0);
    }
    for (i = 0; i < d->nhosts; i++) {
        free(d->hosts[i].name);
    }
    free(d->hosts);
    free(d);
}
