#include "pool_io.h"

#include <errno.h>
#include <event2/buffer.h>
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
