/*
 * benchtool: the fast loopback backends and the TCP bulk client used by bench/run.sh.
 *
 *   benchtool http PORT BODY          single-threaded epoll HTTP/1.1 server: every request
 *                                     (GET/HEAD, no body) gets "200 OK" with the 2-byte BODY;
 *                                     keep-alive and pipelining; "Connection: close" honoured.
 *   benchtool source PORT             TCP source: each accepted connection gets an endless
 *                                     stream of zeros (one thread per connection, 256 KiB writes)
 *                                     until the peer closes.
 *   benchtool bulk HOST PORT SECS N   TCP bulk client: N connections read for SECS seconds;
 *                                     prints "bytes=B seconds=S mbps=M" (M = 10^6 bytes/s).
 *
 * Deliberately tiny so the backends cost far less CPU than the proxies under test.
 * Build: cc -O2 -pthread -o benchtool benchtool.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in a = {0};
    if (fd < 0) { perror("socket"); exit(1); }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
    if (listen(fd, 4096) < 0) { perror("listen"); exit(1); }
    return fd;
}

/* ---------------------------------------------------------------- http */

#define INBUF 16384
struct conn {
    int fd;
    size_t inlen;
    char *out;      /* pending output (only when a write was short) */
    size_t outlen, outcap;
    int closing;    /* close once output is flushed */
    char in[INBUF];
};

static char resp_ka[256], resp_close[256];
static size_t resp_ka_len, resp_close_len;

static void conn_free(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

static int append_out(struct conn *c, const char *p, size_t n) {
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap * 2 : 4096;
        while (cap < c->outlen + n) cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o) return -1;
        c->out = o;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    return 0;
}

/* Flush pending output; returns -1 on error, 0 if all written, 1 if would block. */
static int flush_out(struct conn *c) {
    size_t off = 0;
    while (off < c->outlen) {
        ssize_t w = send(c->fd, c->out + off, c->outlen - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            return -1;
        }
        off += (size_t)w;
    }
    memmove(c->out, c->out + off, c->outlen - off);
    c->outlen -= off;
    return c->outlen ? 1 : 0;
}

/* Case-insensitive search for "connection: close" inside [p, p+n). */
static int wants_close(const char *p, size_t n) {
    static const char needle[] = "\r\nconnection: close";
    size_t k = sizeof needle - 1;
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(p + i, needle, k) == 0) return 1;
    return 0;
}

static void handle_readable(int ep, struct conn *c) {
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->inlen, INBUF - c->inlen, 0);
        if (r == 0) { conn_free(ep, c); return; }
        if (r < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            conn_free(ep, c);
            return;
        }
        c->inlen += (size_t)r;
        /* Answer every complete request head in the buffer (pipelining). */
        size_t start = 0;
        for (;;) {
            char *end = memmem(c->in + start, c->inlen - start, "\r\n\r\n", 4);
            if (!end) break;
            size_t head = (size_t)(end - (c->in + start)) + 4;
            int close_it = wants_close(c->in + start, head);
            if (close_it) {
                append_out(c, resp_close, resp_close_len);
                c->closing = 1;
            } else {
                append_out(c, resp_ka, resp_ka_len);
            }
            start += head;
            if (close_it) break;
        }
        memmove(c->in, c->in + start, c->inlen - start);
        c->inlen -= start;
        if (c->inlen == INBUF) { conn_free(ep, c); return; } /* oversized head */
        if (c->outlen) {
            int f = flush_out(c);
            if (f < 0) { conn_free(ep, c); return; }
            if (f == 1) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                return;
            }
        }
        if (c->closing) { conn_free(ep, c); return; }
        if ((size_t)r < INBUF) break; /* likely drained; epoll is level-triggered */
    }
}

static int run_http(int port, const char *body) {
    size_t blen = strlen(body);
    resp_ka_len = (size_t)snprintf(resp_ka, sizeof resp_ka,
        "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n\r\n%s", blen, body);
    resp_close_len = (size_t)snprintf(resp_close, sizeof resp_close,
        "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n%s",
        blen, body);
    int lfd = listen_on(port);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    if (!nc) { close(fd); continue; }
                    nc->fd = fd;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                int f = flush_out(c);
                if (f < 0) { conn_free(ep, c); continue; }
                if (f == 0) {
                    if (c->closing) { conn_free(ep, c); continue; }
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) handle_readable(ep, c);
        }
    }
}

/* ---------------------------------------------------------------- source */

#define CHUNK (256 * 1024)
static char zeros[CHUNK];

static void *source_conn(void *arg) {
    int fd = (int)(long)arg;
    for (;;) {
        ssize_t w = send(fd, zeros, CHUNK, MSG_NOSIGNAL);
        if (w < 0 && errno != EINTR) break;
    }
    close(fd);
    return NULL;
}

static int run_source(int port) {
    int lfd = listen_on(port);
    /* The listener is non-blocking: wait for it with epoll, accept until EAGAIN. */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, -1) < 1) continue;
        for (;;) {
            int fd = accept4(lfd, NULL, NULL, 0);
            if (fd < 0) break;
            pthread_t t;
            pthread_attr_t at;
            pthread_attr_init(&at);
            pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
            pthread_attr_setstacksize(&at, 64 * 1024);
            if (pthread_create(&t, &at, source_conn, (void *)(long)fd) != 0) close(fd);
            pthread_attr_destroy(&at);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- bulk client */

struct bulk_arg {
    const char *host;
    int port;
    double secs;
    _Atomic unsigned long long *total;
    int failed;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *bulk_conn(void *p) {
    struct bulk_arg *a = p;
    char *buf = malloc(CHUNK); /* not __thread: static TLS would grow every thread's stack */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(a->port);
    inet_pton(AF_INET, a->host, &sa.sin_addr);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { a->failed = 1; close(fd); free(buf); return NULL; }
    double end = now_s() + a->secs;
    unsigned long long got = 0;
    while (now_s() < end) {
        ssize_t r = recv(fd, buf, CHUNK, 0);
        if (r <= 0) { if (r < 0 && errno == EINTR) continue; a->failed = 1; break; }
        got += (unsigned long long)r;
    }
    atomic_fetch_add(a->total, got);
    close(fd);
    free(buf);
    return NULL;
}

static int run_bulk(const char *host, int port, double secs, int n) {
    _Atomic unsigned long long total = 0;
    pthread_t *ts = calloc((size_t)n, sizeof *ts);
    struct bulk_arg *as = calloc((size_t)n, sizeof *as);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        as[i] = (struct bulk_arg){host, port, secs, &total, 0};
        pthread_create(&ts[i], NULL, bulk_conn, &as[i]);
    }
    int failed = 0;
    for (int i = 0; i < n; i++) { pthread_join(ts[i], NULL); failed += as[i].failed; }
    double el = now_s() - t0;
    printf("bytes=%llu seconds=%.3f mbps=%.1f failed=%d\n", (unsigned long long)total, el,
           (double)total / el / 1e6, failed);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && strcmp(argv[1], "http") == 0) return run_http(atoi(argv[2]), argv[3]);
    if (argc == 3 && strcmp(argv[1], "source") == 0) return run_source(atoi(argv[2]));
    if (argc == 6 && strcmp(argv[1], "bulk") == 0)
        return run_bulk(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: benchtool http PORT BODY | source PORT | bulk HOST PORT SECS N\n");
    return 2;
}
