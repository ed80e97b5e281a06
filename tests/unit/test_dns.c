/*
 * px_dns: lookups against a DNS server in this process (libevent's own server
 * API on a UDP socket, 127.0.0.1 port 0, the same event base) that answers A
 * and AAAA records from a table the tests change, and NXDOMAIN for names it
 * does not have. Every wait is bounded by a deadline timer.
 */
#include "config/cfg.h"
#include "proxy/px_dns.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_RECORDS 16
#define MAX_HELD 8
#define TYPE_NONE 0 /* a table entry that makes a name exist without addresses */

struct record {
    const char *name;
    int type; /* EVDNS_TYPE_A, EVDNS_TYPE_AAAA or TYPE_NONE */
    unsigned char addr[16];
};

struct server {
    evutil_socket_t fd;
    struct evdns_server_port *port;
    struct sockaddr_in sin;
    struct record table[MAX_RECORDS];
    size_t nrecords;
    int questions;                               /* questions received */
    size_t hold;                                 /* 0: answer at once; n: answer n at a time */
    struct evdns_server_request *held[MAX_HELD]; /* kept unanswered */
    size_t nheld;
};

struct fixture {
    struct event_base *base;
    struct event *deadline;
    struct server srv;
    struct cfg cfg;
    struct cfg_resolver resolver;
    char resolver_text[32];
    struct px_dns *d;
};

/* What a watch's callback saw. */
struct got {
    struct fixture *f;
    int calls;
    int want; /* break the loop once calls reaches it */
    struct sockaddr_storage addrs[MAX_RECORDS];
    size_t n;
    char err[64];  /* "" when the last answer had addresses */
    bool free_dns; /* free the resolver from the callback */
    struct timespec at[4];
};

/* ---- the DNS server ---- */

static void
answer(struct server *s, struct evdns_server_request *req)
{
    bool known = false;
    int i;

    for (i = 0; i < req->nquestions; i++) {
        const struct evdns_server_question *q = req->questions[i];
        size_t r;

        for (r = 0; r < s->nrecords; r++) {
            const struct record *rec = &s->table[r];

            if (strcasecmp(rec->name, q->name) != 0) {
                continue;
            }
            known = true;
            if (rec->type == EVDNS_TYPE_A && q->type == EVDNS_TYPE_A) {
                assert_int_equal(evdns_server_request_add_a_reply(req, q->name, 1, rec->addr, 60),
                                 0);
            } else if (rec->type == EVDNS_TYPE_AAAA && q->type == EVDNS_TYPE_AAAA) {
                assert_int_equal(
                    evdns_server_request_add_aaaa_reply(req, q->name, 1, rec->addr, 60), 0);
            }
        }
    }
    assert_int_equal(evdns_server_request_respond(req, known ? DNS_ERR_NONE : DNS_ERR_NOTEXIST), 0);
}

/* Answer every question held so far. */
static void
server_release(struct server *s)
{
    size_t i;

    for (i = 0; i < s->nheld; i++) {
        answer(s, s->held[i]);
    }
    s->nheld = 0;
}

static void
on_question(struct evdns_server_request *req, void *arg)
{
    struct server *s = arg;

    s->questions += req->nquestions;
    if (s->hold == 0) {
        answer(s, req);
        return;
    }
    assert_true(s->nheld < MAX_HELD);
    s->held[s->nheld++] = req;
    if (s->nheld == s->hold) { /* all at once: the client reads them in one go */
        server_release(s);
    }
}

static void
server_start(struct server *s, struct event_base *base)
{
    socklen_t len = sizeof(s->sin);

    memset(s, 0, sizeof(*s));
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_int_not_equal(s->fd, -1);
    s->sin.sin_family = AF_INET;
    s->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&s->sin, sizeof(s->sin)), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&s->sin, &len), 0);
    s->port = evdns_add_server_port_with_base(base, s->fd, 0, on_question, s);
    assert_non_null(s->port);
}

static void
server_stop(struct server *s)
{
    size_t i;

    for (i = 0; i < s->nheld; i++) {
        evdns_server_request_drop(s->held[i]);
    }
    evdns_close_server_port(s->port); /* closes fd */
}

static void
server_set(struct server *s, const char *name, int type, const char *addr)
{
    struct record *r = &s->table[s->nrecords++];

    assert_true(s->nrecords <= MAX_RECORDS);
    r->name = name;
    r->type = type;
    if (type != TYPE_NONE) {
        assert_int_equal(inet_pton(type == EVDNS_TYPE_A ? AF_INET : AF_INET6, addr, r->addr), 1);
    }
}

/* ---- the fixture ---- */

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(arg, NULL);
}

/* A resolver that asks the test server; with_resolver false: the system's config. */
static struct fixture *
setup(bool with_resolver)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cfg_addr *a = &f->resolver.address;

    assert_non_null(f);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->deadline = evtimer_new(f->base, on_deadline, f->base);
    assert_non_null(f->deadline);
    server_start(&f->srv, f->base);
    a->kind = CFG_ADDR_IPV4;
    a->host = "127.0.0.1";
    a->port = ntohs(f->srv.sin.sin_port);
    snprintf(f->resolver_text, sizeof(f->resolver_text), "127.0.0.1:%u", a->port);
    a->text = f->resolver_text;
    memcpy(&a->sa, &f->srv.sin, sizeof(f->srv.sin));
    a->salen = sizeof(f->srv.sin);
    if (with_resolver) {
        f->cfg.resolvers = &f->resolver;
        f->cfg.nresolvers = 1;
    }
    f->d = px_dns_new(f->base, &f->cfg);
    assert_non_null(f->d);
    return f;
}

static void
teardown(struct fixture *f)
{
    px_dns_free(f->d);
    server_stop(&f->srv);
    event_free(f->deadline);
    event_base_free(f->base);
    free(f);
}

/* Run the loop until g has had want answers or ms have passed. */
static void
run_until(struct fixture *f, struct got *g, int want, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (g != NULL) {
        g->want = want;
        if (g->calls >= want) {
            return;
        }
    }
    assert_int_equal(evtimer_add(f->deadline, &tv), 0);
    assert_int_not_equal(event_base_dispatch(f->base), -1);
    assert_int_equal(event_del(f->deadline), 0);
}

static void
on_dns(void *arg, const struct sockaddr_storage *addrs, size_t n, const char *err)
{
    struct got *g = arg;

    assert_true(n <= MAX_RECORDS);
    assert_true((n == 0) == (err != NULL));
    if (g->calls < 4) {
        clock_gettime(CLOCK_MONOTONIC, &g->at[g->calls]);
    }
    g->calls++;
    assert_non_null(addrs);
    memcpy(g->addrs, addrs, n * sizeof(*addrs));
    g->n = n;
    snprintf(g->err, sizeof(g->err), "%s", err != NULL ? err : "");
    if (g->free_dns) {
        px_dns_free(g->f->d);
        g->f->d = NULL;
    }
    if (g->calls >= g->want) {
        /*
         * Not loopbreak: loopexit runs what is already queued first, such as
         * answers evdns has read; a loop left with them leaks them (libevent).
         */
        event_base_loopexit(g->f->base, NULL);
    }
}

static struct px_dns_watch *
watch(struct fixture *f, struct got *g, const char *host, uint16_t port, uint64_t interval_ms)
{
    struct px_dns_watch *w;

    memset(g, 0, sizeof(*g));
    g->f = f;
    g->want = INT_MAX;
    w = px_dns_watch(f->d, host, port, interval_ms, on_dns, g);
    assert_non_null(w);
    assert_int_equal(g->calls, 0); /* never answered before px_dns_watch returns */
    return w;
}

/* "10.0.0.1:7000" or "[::1]:7000" */
static const char *
text(const struct sockaddr_storage *ss)
{
    static char buf[INET6_ADDRSTRLEN + 16];
    char host[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(buf, sizeof(buf), "%s:%u", host, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

        assert_int_equal(ss->ss_family, AF_INET6);
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(buf, sizeof(buf), "[%s]:%u", host, ntohs(sin6->sin6_port));
    }
    return buf;
}

static void
assert_addrs(const struct got *g, size_t n, ...)
{
    va_list ap;
    size_t i;

    assert_int_equal(g->n, n);
    assert_string_equal(g->err, "");
    va_start(ap, n);
    for (i = 0; i < n; i++) {
        assert_string_equal(text(&g->addrs[i]), va_arg(ap, const char *));
    }
    va_end(ap);
}

static long
ms_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

/* ---- tests ---- */

static void
test_records_sorted_and_unique(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    server_set(&f->srv, "svc.test", EVDNS_TYPE_AAAA, "2001:db8::2");
    server_set(&f->srv, "svc.test", EVDNS_TYPE_A, "10.0.0.3");
    server_set(&f->srv, "svc.test", EVDNS_TYPE_A, "10.0.0.1");
    server_set(&f->srv, "svc.test", EVDNS_TYPE_A, "10.0.0.20");
    server_set(&f->srv, "svc.test", EVDNS_TYPE_A, "10.0.0.1");
    server_set(&f->srv, "svc.test", EVDNS_TYPE_AAAA, "2001:db8::1");
    server_set(&f->srv, "other.test", EVDNS_TYPE_A, "10.9.9.9");
    watch(f, &g, "svc.test", 7000, 60000);
    run_until(f, &g, 1, 5000);
    assert_int_equal(g.calls, 1);
    assert_addrs(&g, 5, "10.0.0.1:7000", "10.0.0.3:7000", "10.0.0.20:7000", "[2001:db8::1]:7000",
                 "[2001:db8::2]:7000");
    assert_int_equal(f->srv.questions, 2); /* A and AAAA */
    assert_int_equal(px_dns_lookups(f->d), 1);
    assert_int_equal(px_dns_failures(f->d), 0);
    teardown(f);
}

static void
test_only_ipv4(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    server_set(&f->srv, "v4.test", EVDNS_TYPE_A, "192.0.2.1");
    watch(f, &g, "V4.Test", 53, 60000); /* as written, case and all */
    run_until(f, &g, 1, 5000);
    assert_addrs(&g, 1, "192.0.2.1:53");
    teardown(f);
}

static void
test_answer_changes_at_the_next_interval(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    server_set(&f->srv, "svc.test", EVDNS_TYPE_A, "10.0.0.1");
    watch(f, &g, "svc.test", 80, 100);
    run_until(f, &g, 1, 5000);
    assert_addrs(&g, 1, "10.0.0.1:80");
    f->srv.table[0].addr[3] = 9; /* 10.0.0.9 */
    server_set(&f->srv, "svc.test", EVDNS_TYPE_AAAA, "::1");
    run_until(f, &g, 2, 5000);
    assert_addrs(&g, 2, "10.0.0.9:80", "[::1]:80");
    assert_true(ms_between(&g.at[0], &g.at[1]) >= 90);
    run_until(f, &g, 3, 5000); /* and again, unchanged */
    assert_addrs(&g, 2, "10.0.0.9:80", "[::1]:80");
    assert_int_equal(px_dns_lookups(f->d), 3);
    teardown(f);
}

static void
test_no_such_name(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    watch(f, &g, "nope.test", 80, 60000);
    run_until(f, &g, 1, 5000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.n, 0);
    assert_string_equal(g.err, "no such name");
    assert_int_equal(px_dns_lookups(f->d), 1);
    assert_int_equal(px_dns_failures(f->d), 1);
    teardown(f);
}

static void
test_name_without_address(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    server_set(&f->srv, "empty.test", TYPE_NONE, NULL);
    watch(f, &g, "empty.test", 80, 60000);
    run_until(f, &g, 1, 5000);
    assert_int_equal(g.n, 0);
    assert_string_equal(g.err, "no address");
    teardown(f);
}

static void
test_failure_then_recovery(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    watch(f, &g, "late.test", 80, 100);
    run_until(f, &g, 1, 5000);
    assert_string_equal(g.err, "no such name");
    server_set(&f->srv, "late.test", EVDNS_TYPE_A, "10.1.1.1");
    run_until(f, &g, 2, 5000);
    assert_addrs(&g, 1, "10.1.1.1:80");
    assert_int_equal(px_dns_failures(f->d), 1);
    teardown(f);
}

static void
test_timeout(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    f->srv.hold = MAX_HELD; /* never answers: 2 questions, 2 tries each */
    watch(f, &g, "slow.test", 80, 60000);
    run_until(f, &g, 1, 10000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.n, 0);
    assert_string_equal(g.err, "timeout");
    assert_int_equal(f->srv.questions, 4);
    teardown(f);
}

static void
test_literal_addresses(void **state)
{
    struct fixture *f = setup(true);
    struct got g4, g6;

    (void)state;
    watch(f, &g4, "192.0.2.7", 81, 100);
    watch(f, &g6, "2001:db8::7", 82, 100);
    assert_int_equal(px_dns_pending(f->d), 2);
    run_until(f, &g4, 1, 5000);
    run_until(f, &g6, 1, 5000);
    run_until(f, NULL, 0, 300); /* answered once: an address does not change */
    assert_int_equal(g4.calls, 1);
    assert_addrs(&g4, 1, "192.0.2.7:81");
    assert_int_equal(g6.calls, 1);
    assert_addrs(&g6, 1, "[2001:db8::7]:82");
    assert_int_equal(f->srv.questions, 0);
    assert_int_equal(px_dns_pending(f->d), 0);
    teardown(f);
}

/* A name in /etc/hosts is answered from it, as the system's resolver would. */
static void
test_hosts_file(void **state)
{
    FILE *hosts = fopen("/etc/hosts", "r");
    bool listed = false;
    char line[512];
    struct fixture *f;
    struct got g;

    (void)state;
    while (hosts != NULL && fgets(line, sizeof(line), hosts) != NULL) {
        char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);

        if (tok == NULL || strcmp(tok, "127.0.0.1") != 0) {
            continue;
        }
        while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
            listed = listed || strcmp(tok, "localhost") == 0;
        }
    }
    if (hosts != NULL) {
        fclose(hosts);
    }
    if (!listed) {
        skip(); /* no "127.0.0.1 localhost" line here */
    }
    f = setup(true);
    watch(f, &g, "localhost", 6379, 100);
    run_until(f, &g, 1, 5000);
    assert_int_equal(g.calls, 1);
    assert_true(g.n >= 1);
    assert_string_equal(text(&g.addrs[0]), "127.0.0.1:6379");
    assert_int_equal(f->srv.questions, 0);
    teardown(f);
}

static void
test_pending(void **state)
{
    struct fixture *f = setup(true);
    struct got a, b;

    (void)state;
    server_set(&f->srv, "a.test", EVDNS_TYPE_A, "10.0.0.1");
    assert_int_equal(px_dns_pending(f->d), 0);
    watch(f, &a, "a.test", 80, 100);
    watch(f, &b, "b.test", 80, 100);
    assert_int_equal(px_dns_pending(f->d), 2);
    run_until(f, &a, 1, 5000);
    run_until(f, &b, 1, 5000);
    assert_int_equal(px_dns_pending(f->d), 0);
    run_until(f, &a, 2, 5000); /* later lookups do not count again */
    assert_int_equal(px_dns_pending(f->d), 0);
    assert_string_equal(b.err, "no such name");
    teardown(f);
}

static void
test_free_with_a_lookup_in_flight(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    f->srv.hold = MAX_HELD; /* questions stay unanswered */
    server_set(&f->srv, "svc.test", EVDNS_TYPE_A, "10.0.0.1");
    watch(f, &g, "svc.test", 80, 100);
    run_until(f, NULL, 0, 200);
    assert_int_equal(f->srv.questions, 2);
    assert_int_equal(px_dns_pending(f->d), 1);
    px_dns_free(f->d);
    f->d = NULL;
    server_release(&f->srv); /* the answers reach a closed socket */
    run_until(f, NULL, 0, 300);
    assert_int_equal(g.calls, 0);
    teardown(f);
}

/*
 * The first answer's callback frees the resolver while the other watch's
 * answers are already read and queued on the loop: they must be dropped.
 */
static void
test_free_from_a_callback_with_answers_queued(void **state)
{
    struct fixture *f = setup(true);
    struct got g;

    (void)state;
    f->srv.hold = 4; /* both lookups' questions answered together */
    server_set(&f->srv, "a.test", EVDNS_TYPE_A, "10.0.0.1");
    server_set(&f->srv, "b.test", EVDNS_TYPE_A, "10.0.0.2");
    watch(f, &g, "a.test", 80, 100);
    g.free_dns = true;
    assert_non_null(px_dns_watch(f->d, "b.test", 80, 100, on_dns, &g));
    run_until(f, &g, 1, 5000);
    assert_int_equal(g.calls, 1);
    assert_null(f->d);
    run_until(f, NULL, 0, 300);
    assert_int_equal(g.calls, 1);
    teardown(f);
}

/* No resolvers in the config: the system's (resolv.conf); addresses still need no query. */
static void
test_system_config(void **state)
{
    struct fixture *f = setup(false);
    struct got g;

    (void)state;
    watch(f, &g, "127.0.0.5", 9, 60000);
    run_until(f, &g, 1, 5000);
    assert_addrs(&g, 1, "127.0.0.5:9");
    teardown(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_sorted_and_unique),
        cmocka_unit_test(test_only_ipv4),
        cmocka_unit_test(test_answer_changes_at_the_next_interval),
        cmocka_unit_test(test_no_such_name),
        cmocka_unit_test(test_name_without_address),
        cmocka_unit_test(test_failure_then_recovery),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_literal_addresses),
        cmocka_unit_test(test_hosts_file),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_free_with_a_lookup_in_flight),
        cmocka_unit_test(test_free_from_a_callback_with_answers_queued),
        cmocka_unit_test(test_system_config),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
