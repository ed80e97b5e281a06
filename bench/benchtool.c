/*
 * benchtool: the traffic side of bench/run.sh, one small epoll program.
 *
 *   benchtool server PORT MODE STATSFILE LIFETIME_S
 *       MODE echo: write every byte back as it comes (frames stay intact).
 *       MODE sink: read and discard; on EOF answer the byte count (8 bytes) and close.
 *       Keeps STATSFILE up to date: "accepted=N open=N max_open=N bytes=N".
 *       Exits on SIGTERM/SIGINT or after LIFETIME_S.
 *   benchtool source HOST PORT BYTES TIMEOUT_S
 *       One connection: write BYTES as fast as possible, half-close, wait for
 *       the sink's count (through the proxy) and check it.
 *       Prints "bytes=N seconds=S mb_per_s=X".
 *   benchtool load HOST PORT CLIENTS PER_CLIENT DEPTH PAYLOAD TIMEOUT_S PAUSE
 *       CLIENTS connections speaking 4-byte big-endian length-prefixed frames.
 *       Each first sends 2*DEPTH warm-up requests (not measured), DEPTH at a
 *       time; then each keeps DEPTH requests
 *       in flight until it has PER_CLIENT replies, checking every reply is its
 *       own request, in order. PAUSE=1: print "warm" after the warm-up and
 *       wait for a line on stdin before the measured phase; print the result,
 *       then "done" and wait for another line before closing.
 *       Prints "requests=N errors=N clients=N seconds=S req_per_s=X p50_ms=X p99_ms=X max_ms=X".
 *   benchtool idle HOST PORT N TIMEOUT_S
 *       Open N connections that send nothing; print "open N"; close them all
 *       when stdin reaches EOF or a line arrives, or after TIMEOUT_S.
 *
 * Every loop is bounded by TIMEOUT_S / LIFETIME_S.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BIG (1u << 20)

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    fprintf(stderr, "benchtool: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL) {
        fprintf(stderr, "benchtool: out of memory\n");
        exit(1);
    }
    return p;
}

static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static struct sockaddr_in
addr_of(const char *host, int port)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "benchtool: bad IPv4 address %s\n", host);
        exit(2);
    }
    return sin;
}

static int
nb_connect(const struct sockaddr_in *sin)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd == -1) {
        die("socket");
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) == -1 && errno != EINPROGRESS) {
        die("connect");
    }
    return fd;
}

/* ------------------------------------------------------------------ server */

struct sconn {
    int fd;
    uint64_t bytes;
    char *pend; /* echo: bytes not yet written back */
    size_t npend, offpend;
};

struct server {
    int mode_echo;
    uint64_t accepted, open, max_open, bytes;
    const char *stats;
};

static void
save_stats(const struct server *sv)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", sv->stats);
    f = fopen(tmp, "w");
    if (f == NULL) {
        return;
    }
    fprintf(f, "accepted=%llu open=%llu max_open=%llu bytes=%llu\n",
            (unsigned long long)sv->accepted, (unsigned long long)sv->open,
            (unsigned long long)sv->max_open, (unsigned long long)sv->bytes);
    fclose(f);
    rename(tmp, sv->stats);
}

static void
sconn_close(int ep, struct server *sv, struct sconn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
    sv->open--;
}

/* Echo what is pending; return 1 if all of it went out, 0 if some waits, -1 on error. */
static int
echo_flush(struct sconn *c)
{
    while (c->offpend < c->npend) {
        ssize_t n = write(c->fd, c->pend + c->offpend, c->npend - c->offpend);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? 0 : -1;
        }
        c->offpend += (size_t)n;
    }
    c->npend = c->offpend = 0;
    return 1;
}

static void
server_io(int ep, struct server *sv, struct sconn *c, uint32_t ev, char *buf)
{
    struct epoll_event e;

    if (c->npend > 0) { /* echo backlog: finish it before reading more */
        int rc = echo_flush(c);

        if (rc == -1) {
            sconn_close(ep, sv, c);
            return;
        }
        if (rc == 0) {
            return;
        }
        e.events = EPOLLIN;
        e.data.ptr = c;
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    }
    if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        return;
    }
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(c->fd, buf, BIG);

        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
            if (n == 0 && !sv->mode_echo) {
                uint64_t count = c->bytes;
                /* the socket is idle: an 8-byte write goes out whole */
                if (write(c->fd, &count, sizeof(count)) != (ssize_t)sizeof(count)) {
                    fprintf(stderr, "benchtool: sink could not send its count\n");
                }
            }
            sconn_close(ep, sv, c);
            return;
        }
        if (n == -1) {
            return;
        }
        c->bytes += (uint64_t)n;
        sv->bytes += (uint64_t)n;
        if (sv->mode_echo) {
            size_t off = 0;

            while (off < (size_t)n) {
                ssize_t w = write(c->fd, buf + off, (size_t)n - off);

                if (w == -1 && errno == EINTR) {
                    continue;
                }
                if (w == -1 && errno != EAGAIN) {
                    sconn_close(ep, sv, c);
                    return;
                }
                if (w == -1) {
                    break;
                }
                off += (size_t)w;
            }
            if (off < (size_t)n) { /* the peer is slow: keep the rest, stop reading */
                free(c->pend);
                c->pend = malloc((size_t)n - off);
                if (c->pend == NULL) {
                    sconn_close(ep, sv, c);
                    return;
                }
                memcpy(c->pend, buf + off, (size_t)n - off);
                c->npend = (size_t)n - off;
                c->offpend = 0;
                e.events = EPOLLOUT;
                e.data.ptr = c;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                return;
            }
        }
        if ((size_t)n < BIG) {
            return;
        }
    }
}

static int
cmd_server(int argc, char **argv)
{
    struct server sv;
    struct sockaddr_in sin;
    struct epoll_event e, evs[256];
    int lfd, ep, one = 1;
    double deadline, last_save = 0;
    uint64_t saved_acc = (uint64_t)-1, saved_open = (uint64_t)-1;
    char *buf = xcalloc(1, BIG);

    if (argc != 6) {
        fprintf(stderr, "usage: benchtool server PORT echo|sink STATSFILE LIFETIME_S\n");
        return 2;
    }
    memset(&sv, 0, sizeof(sv));
    sv.mode_echo = strcmp(argv[3], "echo") == 0;
    sv.stats = argv[4];
    deadline = now_s() + atof(argv[5]);
    raise_nofile();
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    sin = addr_of("127.0.0.1", atoi(argv[2]));
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd == -1 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(lfd, 4096) == -1) {
        die("listen");
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    e.events = EPOLLIN;
    e.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    save_stats(&sv);
    printf("ready %s\n", argv[2]);
    fflush(stdout);
    while (!stop_flag && now_s() < deadline) {
        int n = epoll_wait(ep, evs, 256, 100);

        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                for (int k = 0; k < 256; k++) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    struct sconn *c;

                    if (fd == -1) {
                        break;
                    }
                    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    c = xcalloc(1, sizeof(*c));
                    c->fd = fd;
                    e.events = EPOLLIN;
                    e.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                    sv.accepted++;
                    sv.open++;
                    if (sv.open > sv.max_open) {
                        sv.max_open = sv.open;
                    }
                }
                continue;
            }
            server_io(ep, &sv, evs[i].data.ptr, evs[i].events, buf);
        }
        if ((sv.accepted != saved_acc || sv.open != saved_open) && now_s() - last_save > 0.05) {
            save_stats(&sv);
            saved_acc = sv.accepted;
            saved_open = sv.open;
            last_save = now_s();
        }
    }
    save_stats(&sv);
    return 0;
}

/* ------------------------------------------------------------------ source */

static int
cmd_source(int argc, char **argv)
{
    struct sockaddr_in sin;
    uint64_t total, sent = 0, count = 0;
    size_t got = 0;
    double t0, t1;
    char *buf;
    int fd, one = 1;

    if (argc != 6) {
        fprintf(stderr, "usage: benchtool source HOST PORT BYTES TIMEOUT_S\n");
        return 2;
    }
    sin = addr_of(argv[2], atoi(argv[3]));
    total = strtoull(argv[4], NULL, 10);
    alarm((unsigned)atoi(argv[5]));
    buf = xcalloc(1, BIG);
    memset(buf, 'x', BIG);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    t0 = now_s();
    if (fd == -1 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
        die("connect");
    }
    while (sent < total) {
        size_t want = total - sent < BIG ? (size_t)(total - sent) : BIG;
        ssize_t n = write(fd, buf, want);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            die("write");
        }
        sent += (uint64_t)n;
    }
    if (shutdown(fd, SHUT_WR) == -1) {
        die("shutdown");
    }
    while (got < sizeof(count)) {
        ssize_t n = read(fd, (char *)&count + got, sizeof(count) - got);

        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fprintf(stderr, "benchtool: source: no count from the sink (%s)\n",
                    n == 0 ? "EOF" : strerror(errno));
            return 1;
        }
        got += (size_t)n;
    }
    t1 = now_s();
    close(fd);
    if (count != total) {
        fprintf(stderr, "benchtool: source: sent %llu bytes, sink counted %llu\n",
                (unsigned long long)total, (unsigned long long)count);
        return 1;
    }
    printf("bytes=%llu seconds=%.3f mb_per_s=%.1f\n", (unsigned long long)total, t1 - t0,
           (double)total / 1e6 / (t1 - t0));
    return 0;
}

/* ------------------------------------------------------------------ load */

struct lclient {
    int fd;
    uint32_t id;
    int connected;
    int dead;
    uint32_t target;    /* replies wanted by the end of the current phase */
    uint32_t sent;      /* requests written (or buffered to write) */
    uint32_t recv;      /* replies checked */
    double *t;          /* ring of DEPTH send times */
    unsigned char *out; /* bytes to write */
    size_t nout, offout;
    unsigned char *in;
    size_t nin;
};

struct load {
    int ep;
    unsigned clients, depth, payload, frame;
    size_t cap_in, cap_out;
    struct lclient *cl;
    int measuring;
    double *lat;
    size_t nlat, maxlat;
    unsigned errors;
    unsigned active; /* clients not finished with the phase */
    char firsterr[256];
};

static void
lerr(struct load *ld, struct lclient *c, const char *what)
{
    ld->errors++;
    if (ld->firsterr[0] == '\0') {
        snprintf(ld->firsterr, sizeof(ld->firsterr), "client %u: %s after %u replies", c->id, what,
                 c->recv);
    }
    if (!c->dead) {
        c->dead = 1;
        epoll_ctl(ld->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (c->recv < c->target) {
            ld->active--;
        }
    }
}

static void
make_frame(const struct load *ld, uint32_t id, uint32_t seq, unsigned char *p)
{
    uint32_t len = htonl(ld->payload);
    uint32_t nid = htonl(id), nseq = htonl(seq);

    memcpy(p, &len, 4);
    memcpy(p + 4, &nid, 4);
    memcpy(p + 8, &nseq, 4);
    for (unsigned i = 8; i < ld->payload; i++) {
        p[4 + i] = (unsigned char)(id * 7 + seq + i);
    }
}

static void
want_out(struct load *ld, struct lclient *c, int on)
{
    struct epoll_event e;

    e.events = EPOLLIN | (on ? EPOLLOUT : 0);
    e.data.ptr = c;
    epoll_ctl(ld->ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Queue requests up to the pipeline depth and write what can go. */
static void
pump_out(struct load *ld, struct lclient *c)
{
    double t = now_s();
    int had = c->nout > c->offout;

    while (c->sent < c->target && c->sent - c->recv < ld->depth) {
        if (c->nout + ld->frame > ld->cap_out) {
            memmove(c->out, c->out + c->offout, c->nout - c->offout);
            c->nout -= c->offout;
            c->offout = 0;
        }
        make_frame(ld, c->id, c->sent, c->out + c->nout);
        c->nout += ld->frame;
        c->t[c->sent % ld->depth] = t;
        c->sent++;
    }
    while (c->offout < c->nout) {
        ssize_t n = write(c->fd, c->out + c->offout, c->nout - c->offout);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (!had) {
                    want_out(ld, c, 1);
                }
                return;
            }
            lerr(ld, c, strerror(errno));
            return;
        }
        c->offout += (size_t)n;
    }
    c->nout = c->offout = 0;
    if (had) {
        want_out(ld, c, 0);
    }
}

static void
on_replies(struct load *ld, struct lclient *c)
{
    unsigned char *want = alloca(ld->frame);
    size_t off = 0;
    double t = now_s();

    while (c->nin - off >= ld->frame) {
        if (c->recv >= c->sent) {
            lerr(ld, c, "reply with no request");
            return;
        }
        make_frame(ld, c->id, c->recv, want);
        if (memcmp(c->in + off, want, ld->frame) != 0) {
            lerr(ld, c, "reply is not its request");
            return;
        }
        if (ld->measuring && ld->nlat < ld->maxlat) {
            ld->lat[ld->nlat++] = t - c->t[c->recv % ld->depth];
        }
        c->recv++;
        off += ld->frame;
        if (c->recv == c->target) {
            ld->active--;
        }
    }
    memmove(c->in, c->in + off, c->nin - off);
    c->nin -= off;
}

static void
load_io(struct load *ld, struct lclient *c, uint32_t ev)
{
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof(err);

        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            errno = err;
            lerr(ld, c, strerror(err));
            return;
        }
        c->connected = 1;
        want_out(ld, c, 0);
        pump_out(ld, c);
        return;
    }
    if (ev & EPOLLOUT) {
        pump_out(ld, c);
        if (c->dead) {
            return;
        }
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            ssize_t n = read(c->fd, c->in + c->nin, ld->cap_in - c->nin);

            if (n == 0) {
                lerr(ld, c, "connection closed by the proxy");
                return;
            }
            if (n == -1) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno != EAGAIN) {
                    lerr(ld, c, strerror(errno));
                }
                break;
            }
            c->nin += (size_t)n;
            on_replies(ld, c);
            if (c->dead) {
                return;
            }
            if (c->nin == ld->cap_in) {
                lerr(ld, c, "more reply bytes than requests");
                return;
            }
        }
        pump_out(ld, c);
    }
}

/* Run until every live client has its target replies, or the deadline. Return 0 or -1 (timeout). */
static int
run_phase(struct load *ld, double deadline)
{
    struct epoll_event evs[512];

    for (unsigned i = 0; i < ld->clients; i++) {
        struct lclient *c = &ld->cl[i];

        if (!c->dead && c->connected) {
            pump_out(ld, c);
        }
    }
    while (ld->active > 0) {
        int n;

        if (now_s() > deadline) {
            return -1;
        }
        n = epoll_wait(ld->ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            struct lclient *c = evs[i].data.ptr;

            if (!c->dead) {
                load_io(ld, c, evs[i].events);
            }
        }
    }
    return 0;
}

static void
set_targets(struct load *ld, uint32_t more)
{
    ld->active = 0;
    for (unsigned i = 0; i < ld->clients; i++) {
        if (!ld->cl[i].dead) {
            ld->cl[i].target += more;
            ld->active++;
        }
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void
wait_line(void)
{
    char line[64];

    fflush(stdout);
    if (fgets(line, sizeof(line), stdin) == NULL) {
        return;
    }
}

static int
cmd_load(int argc, char **argv)
{
    struct load ld;
    struct sockaddr_in sin;
    struct epoll_event e;
    unsigned per, pause_mode;
    double deadline, t0, t1;
    int timed_out;

    if (argc != 10) {
        fprintf(stderr, "usage: benchtool load HOST PORT CLIENTS PER_CLIENT DEPTH PAYLOAD "
                        "TIMEOUT_S PAUSE\n");
        return 2;
    }
    memset(&ld, 0, sizeof(ld));
    sin = addr_of(argv[2], atoi(argv[3]));
    ld.clients = (unsigned)atoi(argv[4]);
    per = (unsigned)atoi(argv[5]);
    ld.depth = (unsigned)atoi(argv[6]);
    ld.payload = (unsigned)atoi(argv[7]);
    deadline = now_s() + atof(argv[8]);
    pause_mode = (unsigned)atoi(argv[9]);
    if (ld.clients == 0 || ld.depth == 0 || ld.payload < 8 || ld.payload > 65536) {
        fprintf(stderr, "benchtool: load: need clients>0, depth>0, 8<=payload<=65536\n");
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    ld.frame = 4 + ld.payload;
    ld.cap_out = (size_t)ld.frame * (ld.depth + 1);
    ld.cap_in = (size_t)ld.frame * (ld.depth + 2);
    ld.cl = xcalloc(ld.clients, sizeof(*ld.cl));
    ld.maxlat = (size_t)ld.clients * per;
    ld.lat = xcalloc(ld.maxlat + 1, sizeof(double));
    ld.ep = epoll_create1(EPOLL_CLOEXEC);
    set_targets(&ld, 2 * ld.depth); /* warm-up: two pipelines' worth, so caches and heaps grow */
    for (unsigned i = 0; i < ld.clients; i++) {
        struct lclient *c = &ld.cl[i];

        c->id = i;
        c->t = xcalloc(ld.depth, sizeof(double));
        c->out = xcalloc(1, ld.cap_out);
        c->in = xcalloc(1, ld.cap_in);
        c->fd = nb_connect(&sin);
        e.events = EPOLLOUT;
        e.data.ptr = c;
        epoll_ctl(ld.ep, EPOLL_CTL_ADD, c->fd, &e);
    }
    if (run_phase(&ld, deadline) == -1) {
        printf("requests=0 errors=%u clients=%u seconds=0 req_per_s=0 p50_ms=0 p99_ms=0 "
               "max_ms=0\n",
               ld.errors + ld.active, ld.clients);
        fprintf(stderr, "error: warm-up timed out with %u clients unanswered\n", ld.active);
        return 1;
    }
    if (pause_mode) {
        printf("warm\n");
        wait_line();
    }
    ld.measuring = 1;
    set_targets(&ld, per);
    t0 = now_s();
    timed_out = run_phase(&ld, deadline) == -1;
    t1 = now_s();
    qsort(ld.lat, ld.nlat, sizeof(double), cmp_double);
#define PCT(q) (ld.nlat ? ld.lat[(size_t)((q) * (double)(ld.nlat - 1))] * 1000 : 0.0)
    printf("requests=%zu errors=%u clients=%u seconds=%.3f req_per_s=%.0f p50_ms=%.3f "
           "p99_ms=%.3f max_ms=%.3f\n",
           ld.nlat, ld.errors + (timed_out ? ld.active : 0), ld.clients, t1 - t0,
           (double)ld.nlat / (t1 - t0), PCT(0.5), PCT(0.99), PCT(1.0));
    if (ld.firsterr[0] != '\0') {
        fprintf(stderr, "error: %s\n", ld.firsterr);
    }
    if (timed_out) {
        fprintf(stderr, "error: timed out with %u clients unfinished\n", ld.active);
    }
    if (pause_mode) {
        printf("done\n");
        wait_line();
    }
    for (unsigned i = 0; i < ld.clients; i++) {
        if (!ld.cl[i].dead) {
            close(ld.cl[i].fd);
        }
    }
    return ld.errors || timed_out ? 1 : 0;
}

/* ------------------------------------------------------------------ idle */

static int
cmd_idle(int argc, char **argv)
{
    struct sockaddr_in sin;
    struct pollfd *pfd;
    unsigned n, done = 0, batch = 200;
    double deadline;
    int *fds;

    if (argc != 6) {
        fprintf(stderr, "usage: benchtool idle HOST PORT N TIMEOUT_S\n");
        return 2;
    }
    sin = addr_of(argv[2], atoi(argv[3]));
    n = (unsigned)atoi(argv[4]);
    deadline = now_s() + atof(argv[5]);
    raise_nofile();
    fds = xcalloc(n, sizeof(int));
    pfd = xcalloc(batch, sizeof(*pfd));
    while (done < n) {
        unsigned k = n - done < batch ? n - done : batch, ok = 0;

        for (unsigned i = 0; i < k; i++) {
            fds[done + i] = nb_connect(&sin);
            pfd[i].fd = fds[done + i];
            pfd[i].events = POLLOUT;
        }
        while (ok < k) {
            if (now_s() > deadline) {
                fprintf(stderr, "benchtool: idle: timed out connecting (%u open)\n", done + ok);
                return 1;
            }
            if (poll(pfd, k, 100) == -1 && errno != EINTR) {
                die("poll");
            }
            ok = 0;
            for (unsigned i = 0; i < k; i++) {
                if (pfd[i].revents & (POLLERR | POLLHUP)) {
                    fprintf(stderr, "benchtool: idle: connection %u failed\n", done + i);
                    return 1;
                }
                if (pfd[i].revents & POLLOUT) {
                    pfd[i].events = 0;
                    pfd[i].fd = -1;
                }
                ok += pfd[i].fd == -1;
            }
        }
        done += k;
        usleep(5000); /* let the proxy accept this batch before the next SYNs */
    }
    printf("open %u\n", n);
    fflush(stdout);
    {
        struct pollfd in = {.fd = 0, .events = POLLIN};
        int ms = (int)((deadline - now_s()) * 1000);

        (void)poll(&in, 1, ms > 0 ? ms : 0);
    }
    for (unsigned i = 0; i < n; i++) {
        close(fds[i]);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "server") == 0) {
        return cmd_server(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "source") == 0) {
        return cmd_source(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "load") == 0) {
        return cmd_load(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "idle") == 0) {
        return cmd_idle(argc, argv);
    }
    fprintf(stderr, "usage: benchtool server|source|load|idle ...\n");
    return 2;
}
