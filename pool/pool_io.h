#ifndef POOL_IO_H
#define POOL_IO_H

/*
 * Reading a socket into an evbuffer in one syscall. libevent's evbuffer_read()
 * asks the kernel how much is readable (an ioctl) before every read and caps
 * a read at 4 KiB; this reads up to max bytes (at most 64 KiB) at once into a
 * per-thread staging area and appends them (pool_io.c says why).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct evbuffer;
struct sockaddr_storage;

/* Bytes read (> 0), 0 at end of stream, or -1 with errno set. */
ssize_t pool_io_read(struct evbuffer *buf, int fd, size_t max);

/*
 * An IPv4 or IPv6 address as text into buf: "10.0.0.2" or "[::1]", with
 * ":port" after it when with_port. Return 0, or -1 (another family, or buf
 * too small) with buf holding "?".
 */
int pool_addr_text(const struct sockaddr_storage *ss, bool with_port, char *buf, size_t size);

#endif
