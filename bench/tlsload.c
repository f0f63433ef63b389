/*
 * tlsload: an HTTPS load client that controls TLS session resumption, for bench/run.sh.
 *
 *   tlsload HOST PORT SECS CONNS full|resume [SNI]
 *
 * CONNS threads, each with one connection at a time for SECS seconds: connect, TLS handshake,
 * "GET / HTTP/1.1" with "Connection: close", read the answer to the end, close_notify, close.
 * "full": every handshake is a full one (no session cache, no tickets kept, no session
 * offered). "resume": each thread offers the session (TLS 1.3 ticket) of its previous
 * connection. It prints wrk's summary lines (so lib/report.py reads it like wrk) and
 * "handshakes: F full, R resumed", counted with SSL_session_reused() on each connection, which
 * is how bench/run.sh checks what each scenario really measured.
 *
 * wrk cannot do full handshakes: it resumes whenever the server issues tickets. OpenSSL on the
 * client side, as in wrk, so the client's cost is the same for every proxy under test.
 * Build: cc -O2 -pthread -o tlsload tlsload.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 400000 /* latency samples kept per thread; later ones are counted only */

static struct sockaddr_in target;
static const char *sni;
static int resume;
static double deadline;
static SSL_CTX *ctx;
static char request[256];

struct worker {
    pthread_t thread;
    long done, full, resumed, connect_errors, read_errors, write_errors, timeouts, bad_status;
    long bytes;
    long n_samples;
    double *samples; /* seconds per request, handshake included */
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* One request on a new connection; offers *session when resuming and replaces it after. */
static void one(struct worker *w, SSL_SESSION **session) {
    double start = now();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    SSL *ssl = NULL;
    char buf[4096], head[12];
    long got = 0;
    int n, ok = 0;

    if (fd < 0) { w->connect_errors++; return; }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&target, sizeof target) != 0) {
        w->connect_errors++;
        close(fd);
        return;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (sni) SSL_set_tlsext_host_name(ssl, sni);
    if (resume && *session) SSL_set_session(ssl, *session);
    if (SSL_connect(ssl) != 1) {
        w->connect_errors++;
        goto out;
    }
    if (SSL_session_reused(ssl)) w->resumed++; else w->full++;
    if (SSL_write(ssl, request, (int)strlen(request)) <= 0) {
        w->write_errors++;
        goto out;
    }
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) {
        if (got < 12) memcpy(head + got, buf, (size_t)(n < 12 - got ? n : 12 - got));
        got += n;
    }
    ok = got >= 12 && memcmp(head, "HTTP/1.1 200", 12) == 0;
    if (got == 0) {
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL) w->read_errors++; else w->timeouts++;
        goto out;
    }
    if (!ok) { w->bad_status++; goto out; }
    w->bytes += got;
    if (w->n_samples < MAX_SAMPLES) w->samples[w->n_samples++] = now() - start;
    w->done++;
    if (resume) {
        SSL_SESSION *s = SSL_get1_session(ssl); /* the newest ticket, received with the answer */
        if (s) {
            if (*session) SSL_SESSION_free(*session);
            *session = s;
        }
    }
    SSL_shutdown(ssl); /* close_notify, as wrk sends; the peer has closed already */
out:
    SSL_free(ssl);
    close(fd);
}

static void *run(void *arg) {
    struct worker *w = arg;
    SSL_SESSION *session = NULL;
    while (now() < deadline) one(w, &session);
    if (session) SSL_SESSION_free(session);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 6 || (strcmp(argv[5], "full") && strcmp(argv[5], "resume"))) {
        fprintf(stderr, "usage: tlsload HOST PORT SECS CONNS full|resume [SNI]\n");
        return 2;
    }
    int secs = atoi(argv[3]), conns = atoi(argv[4]);
    if (secs <= 0 || secs > 600 || conns <= 0 || conns > 1024) {
        fprintf(stderr, "tlsload: SECS must be 1-600 and CONNS 1-1024\n");
        return 2;
    }
    resume = strcmp(argv[5], "resume") == 0;
    sni = argc > 6 ? argv[6] : NULL;
    target.sin_family = AF_INET;
    target.sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) {
        fprintf(stderr, "tlsload: HOST must be an IPv4 address\n");
        return 2;
    }
    snprintf(request, sizeof request, "GET / HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n",
             sni ? sni : argv[1], argv[2]);

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* as wrk: the handshake, not PKI, is measured */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!resume) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

    struct worker *ws = calloc(conns, sizeof *ws);
    double start = now();
    deadline = start + secs;
    for (int i = 0; i < conns; i++) {
        ws[i].samples = malloc(MAX_SAMPLES * sizeof(double));
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&ws[i].thread, &attr, run, &ws[i]) != 0) {
            fprintf(stderr, "tlsload: cannot start thread %d\n", i);
            return 1;
        }
    }
    struct worker t = {0};
    long n_samples = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(ws[i].thread, NULL);
        t.done += ws[i].done; t.full += ws[i].full; t.resumed += ws[i].resumed;
        t.connect_errors += ws[i].connect_errors; t.read_errors += ws[i].read_errors;
        t.write_errors += ws[i].write_errors; t.timeouts += ws[i].timeouts;
        t.bad_status += ws[i].bad_status; t.bytes += ws[i].bytes;
        n_samples += ws[i].n_samples;
    }
    double elapsed = now() - start;
    double *all = malloc((n_samples ? n_samples : 1) * sizeof(double));
    long k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(all + k, ws[i].samples, ws[i].n_samples * sizeof(double));
        k += ws[i].n_samples;
    }
    qsort(all, n_samples, sizeof(double), cmp);
    printf("tlsload %s, %d connections, %s:%s%s%s\n", resume ? "resume" : "full", conns, argv[1], argv[2],
           sni ? " SNI " : "", sni ? sni : "");
    printf("  Latency Distribution\n");
    int ps[] = {50, 75, 90, 99};
    for (int i = 0; i < 4; i++) {
        double v = n_samples ? all[(long)((n_samples - 1) * ps[i] / 100.0)] : 0;
        printf("     %d%%  %8.2fms\n", ps[i], v * 1000);
    }
    printf("  %ld requests in %.2fs, %ld bytes read\n", t.done, elapsed, t.bytes);
    if (t.connect_errors || t.read_errors || t.write_errors || t.timeouts)
        printf("  Socket errors: connect %ld, read %ld, write %ld, timeout %ld\n", t.connect_errors,
               t.read_errors, t.write_errors, t.timeouts);
    if (t.bad_status) printf("  Non-2xx or 3xx responses: %ld\n", t.bad_status);
    printf("Requests/sec: %.2f\n", t.done / elapsed);
    printf("handshakes: %ld full, %ld resumed\n", t.full, t.resumed);
    return 0;
}
