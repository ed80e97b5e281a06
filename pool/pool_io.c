#include "pool_io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <sys/uio.h>

ssize_t
pool_io_read(struct evbuffer *buf, int fd, size_t max)
{
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    int i, n = evbuffer_reserve_space(buf, (ev_ssize_t)max, vec, 2);
    ssize_t got;
    size_t left;

    if (n <= 0) {
        errno = ENOMEM;
        return -1;
    }
    for (i = 0; i < n; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
    }
    do {
        got = readv(fd, iov, n);
    } while (got == -1 && errno == EINTR);
    if (got <= 0) {
        int saved = errno;

        evbuffer_commit_space(buf, vec, 0);
        errno = saved;
        return got;
    }
    left = (size_t)got;
    for (i = 0; i < n && left > 0; i++) {
        size_t take = vec[i].iov_len < left ? vec[i].iov_len : left;

        vec[i].iov_len = take;
        left -= take;
    }
    if (evbuffer_commit_space(buf, vec, i) == -1) {
        errno = EIO;
        return -1;
    }
    return got;
}
