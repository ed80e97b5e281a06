#ifndef PX_DNS_H
#define PX_DNS_H

/*
 * Servers named by DNS: libevent's asynchronous resolver (evdns) on the main
 * thread's event base, looking each name up at start and every interval
 * after. It never blocks a loop. The system's resolver config
 * (/etc/resolv.conf and /etc/hosts) is honoured, or the config's own
 * resolvers are asked instead (the hosts file is still read first).
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cfg;
struct event_base;
struct px_dns;
struct px_dns_watch;

/*
 * An answer for a watched name: every IPv4 and IPv6 address it has, with the
 * watch's port, sorted and without duplicates; or, when the lookup failed
 * (no such name, no address, timeout), n == 0 and err says why.
 */
typedef void (*px_dns_fn)(void *arg, const struct sockaddr_storage *addrs, size_t n,
                          const char *err);

/* A resolver from cfg->resolvers, or the system's when there are none. NULL after logging why. */
struct px_dns *px_dns_new(struct event_base *base, const struct cfg *cfg);
/*
 * Look host up now, and again every interval_ms after each answer; fn gets
 * every answer, success or failure. NULL on failure to start.
 */
struct px_dns_watch *px_dns_watch(struct px_dns *d, const char *host, uint16_t port,
                                  uint64_t interval_ms, px_dns_fn fn, void *arg);
/* Watches whose first answer has not come yet. */
size_t px_dns_pending(const struct px_dns *d);
/* Lookups done and failed, for the stats line. */
uint64_t px_dns_lookups(const struct px_dns *d);
uint64_t px_dns_failures(const struct px_dns *d);
/* Cancel every watch (no callback after this) and free. */
void px_dns_free(struct px_dns *d);

#endif
