#include "pool_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#define STAGE_MAX (64u << 10)

/*
 * Read into a per-thread staging area, then append what came. Reserving the
 * whole read size in the evbuffer instead costs a large chain allocation on
 * nearly every read, since a drained buffer frees its chains; appending a
 * small read reuses the buffer's last chain or takes a small one that
 * malloc's thread cache serves. The extra copy is of bytes just read, still
 * in cache.
 */
ssize_t
pool_io_read(struct evbuffer *buf, int fd, size_t max)
{
    static __thread char stage[STAGE_MAX];
    ssize_t got;

    if (max > sizeof(stage)) {
        max = sizeof(stage);
    }
    do {
        got = read(fd, stage, max);
    } while (got == -1 && errno == EINTR);
    if (got > 0 && evbuffer_add(buf, stage, (size_t)got) == -1) {
        errno = ENOMEM;
        return -1;
    }
    return got;
}

int
pool_addr_text(const struct sockaddr_storage *ss, bool with_port, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    bool v6 = ss->ss_family == AF_INET6;
    const void *raw = v6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                         : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    unsigned port = ntohs(v6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                             : ((const struct sockaddr_in *)ss)->sin_port);
    int n;

    if ((ss->ss_family != AF_INET && !v6) ||
        inet_ntop(ss->ss_family, raw, ip, sizeof(ip)) == NULL) {
        snprintf(buf, size, "?");
        return -1;
    }
    n = with_port ? snprintf(buf, size, v6 ? "[%s]:%u" : "%s:%u", ip, port)
                  : snprintf(buf, size, v6 ? "[%s]" : "%s", ip);
    if (n < 0 || (size_t)n >= size) {
        snprintf(buf, size, "?");
        return -1;
    }
    return 0;
}
