/*
 * The PROXY protocol in front of libmicrohttpd. With --proxy-from, kasa-httpd accepts
 * connections itself (libmicrohttpd runs without a listening socket) on one thread:
 *
 *   - from a balancer's address, the connection must begin with a PROXY header (v1 or
 *     v2, libkasa's proxyproto.h); it waits, with the others, until its header is whole
 *     or its deadline passes, then goes to libmicrohttpd as coming from the client the
 *     header names. No header, a bad one, or too slow: closed, and said in the log (at a
 *     bounded rate: a broken balancer must not flood it).
 *   - from any other address, it goes to libmicrohttpd at once, as itself: a PROXY
 *     header it sends is only a bad HTTP request (400), so no one else can forge the
 *     address the auth log names.
 *
 * The header is taken from the socket byte for byte and nothing after it (peek, parse,
 * then read exactly the header), so a TLS ClientHello behind it is left for GnuTLS.
 * Waiting connections are polled together, at most PENDING_MAX of them: one slow
 * balancer connection delays no other.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kasa/proxyproto.h"

#define FROM_MAX 64      /* addresses in --proxy-from */
#define PENDING_MAX 64   /* balancer connections waiting for their header */
#define DEADLINE_MS 3000 /* for a whole header; HAProxy sends it at once */
#define ACCEPT_BURST 64  /* connections accepted before the waiting ones are served */

/* One --proxy-from entry: an address and how many leading bits of it must match. */
struct net {
    int af;
    unsigned char addr[16];
    unsigned bits;
};

/* A balancer's connection until its header is whole. */
struct pending {
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int64_t deadline; /* ms, CLOCK_MONOTONIC */
    size_t have;      /* header bytes already read */
    unsigned char buf[KASA_PROXY_MAX];
};

static struct {
    struct MHD_Daemon *d;
    proxy_say_fn say;
    proxy_say_fn fatal; /* why it cannot start */
    kasa_ctx *ctx;
    int lfd, wake[2];
    pthread_t thread;
    bool running;
    struct net from[FROM_MAX];
    size_t n_from;
    struct pending pend[PENDING_MAX];
    size_t n_pend;
    int64_t accept_paused_until; /* out of descriptors: accept again then */
} px = {.lfd = -1, .wake = {-1, -1}};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tell(const char *fmt, ...) KASA_PRINTF(1, 2);

/* A message about a refused connection: at most five every ten seconds, then a count. */
static void tell(const char *fmt, ...)
{
    static time_t window;
    static unsigned said, dropped;
    time_t now = time(NULL);
    char msg[512];
    va_list ap;

    if (now - window >= 10) {
        if (dropped > 0)
            px.say("PROXY protocol: %u more messages in the last ten seconds not shown", dropped);
        window = now;
        said = dropped = 0;
    }
    if (said >= 5) {
        dropped++;
        return;
    }
    said++;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    px.say("%s", msg);
}

/* "192.0.2.7 port 52314" for a peer. */
static const char *peer_name(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t n)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(buf, n, "?");
    else
        snprintf(buf, n, "%s port %s", host, serv);
    return buf;
}

/* One --proxy-from entry: ADDR or ADDR/BITS. */
static int parse_net(const char *text, struct net *net)
{
    char addr[INET6_ADDRSTRLEN + 8], *slash, *end;
    unsigned long bits;

    if (strlen(text) >= sizeof(addr))
        return -1;
    strcpy(addr, text);
    slash = strchr(addr, '/');
    if (slash != NULL)
        *slash++ = '\0';
    if (inet_pton(AF_INET, addr, net->addr) == 1)
        net->af = AF_INET;
    else if (inet_pton(AF_INET6, addr, net->addr) == 1)
        net->af = AF_INET6;
    else
        return -1;
    net->bits = net->af == AF_INET ? 32 : 128;
    if (slash != NULL) {
        errno = 0;
        bits = strtoul(slash, &end, 10);
        if (errno != 0 || end == slash || *end != '\0' || *slash < '0' || *slash > '9' ||
            bits > net->bits)
            return -1;
        net->bits = (unsigned)bits;
    }
    return 0;
}

/* The comma separated list into px.from; says which entry is wrong. */
static int parse_from(const char *list)
{
    char *copy = strdup(list), *save = NULL, *tok;
    int st = 0;

    if (copy == NULL)
        return 1;
    for (tok = strtok_r(copy, ", ", &save); tok != NULL && st == 0;
         tok = strtok_r(NULL, ", ", &save)) {
        if (px.n_from == FROM_MAX) {
            fprintf(stderr, "kasa-httpd: --proxy-from: more than %d addresses\n", FROM_MAX);
            st = 2;
        } else if (parse_net(tok, &px.from[px.n_from]) != 0) {
            fprintf(stderr,
                    "kasa-httpd: --proxy-from: %s is not an IPv4 or IPv6 address (optionally "
                    "/prefix length); see kasa-httpd --help\n",
                    tok);
            st = 2;
        } else {
            px.n_from++;
        }
    }
    if (st == 0 && px.n_from == 0) {
        fprintf(stderr, "kasa-httpd: --proxy-from names no address; see kasa-httpd --help\n");
        st = 2;
    }
    free(copy);
    return st;
}

/* Whether a peer is one of the balancers (an IPv4-mapped IPv6 peer counts as IPv4). */
static bool from_balancer(const struct sockaddr_storage *ss)
{
    const unsigned char *a;
    int af = ss->ss_family;

    if (af == AF_INET) {
        a = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
    } else if (af == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        a = in6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            a += 12;
            af = AF_INET;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < px.n_from; i++) {
        const struct net *n = &px.from[i];
        unsigned whole = n->bits / 8, rest = n->bits % 8;
        if (n->af != af || memcmp(a, n->addr, whole) != 0)
            continue;
        if (rest == 0 || ((a[whole] ^ n->addr[whole]) & (0xff00u >> rest) & 0xff) == 0)
            return true;
    }
    return false;
}

/* To libmicrohttpd, as coming from addr; it closes fd if it cannot take it. */
static void hand_over(int fd, const struct sockaddr_storage *addr, socklen_t len)
{
    char name[NI_MAXHOST + 16];

    if (MHD_add_connection(px.d, fd, (const struct sockaddr *)addr, len) != MHD_YES)
        tell("PROXY protocol: libmicrohttpd did not take the connection of %s: %s",
             peer_name(addr, len, name, sizeof(name)), strerror(errno));
}

static void drop(size_t i)
{
    close(px.pend[i].fd);
    px.pend[i].fd = -1;
}

/* Read what the waiting connection i has sent; hand it over once its header is whole. */
static void step(size_t i)
{
    struct pending *p = &px.pend[i];
    struct sockaddr_storage src;
    socklen_t src_len;
    size_t used;
    ssize_t n;
    long ret;
    char name[NI_MAXHOST + 16];

    n = recv(p->fd, p->buf + p->have, sizeof(p->buf) - p->have, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* A health check closes without a byte: nothing to say. */
        if (n < 0 || p->have > 0)
            tell("PROXY protocol: %s closed the connection before its header ended%s%s",
                 peer_name(&p->peer, p->peer_len, name, sizeof(name)), n < 0 ? ": " : "",
                 n < 0 ? strerror(errno) : "");
        drop(i);
        return;
    }
    ret = kasa_proxy_parse(px.ctx, p->buf, p->have + (size_t)n, &used, &src, &src_len);
    if (ret == KASA_ERR_AGAIN)
        used = p->have + (size_t)n; /* all of it is header: take it, wait for the rest */
    else if (ret != 0) {
        tell("PROXY protocol: closed the connection of %s: %s",
             peer_name(&p->peer, p->peer_len, name, sizeof(name)), kasa_error(px.ctx));
        drop(i);
        return;
    }
    /* The peeked bytes are there: this reads exactly the header's, no more. */
    if (recv(p->fd, p->buf + p->have, used - p->have, 0) != (ssize_t)(used - p->have)) {
        tell("PROXY protocol: cannot read the header of %s: %s",
             peer_name(&p->peer, p->peer_len, name, sizeof(name)), strerror(errno));
        drop(i);
        return;
    }
    p->have = used;
    if (ret == KASA_ERR_AGAIN)
        return;
    if (src_len == 0) /* LOCAL or UNKNOWN: the balancer speaks for itself */
        hand_over(p->fd, &p->peer, p->peer_len);
    else
        hand_over(p->fd, &src, src_len);
    p->fd = -1;
}

/* The one waiting longest, to make room. */
static size_t oldest(void)
{
    size_t o = 0;

    for (size_t i = 1; i < px.n_pend; i++)
        if (px.pend[i].deadline < px.pend[o].deadline)
            o = i;
    return o;
}

/* Forget the waiting connections that were handed over or closed. */
static void compact(void)
{
    size_t j = 0;

    for (size_t i = 0; i < px.n_pend; i++)
        if (px.pend[i].fd >= 0) {
            if (i != j)
                px.pend[j] = px.pend[i];
            j++;
        }
    px.n_pend = j;
}

/* Accept what the listener holds: balancers' connections wait, the others go. */
static void accept_some(void)
{
    struct sockaddr_storage peer;
    socklen_t len;
    char name[NI_MAXHOST + 16];
    int fd;

    for (int k = 0; k < ACCEPT_BURST; k++) {
        len = sizeof(peer);
        fd = accept4(px.lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: free one if a balancer's connection waits, else
                 * pause rather than spin on a listener that stays readable. */
                tell("PROXY protocol: cannot accept: %s", strerror(errno));
                if (px.n_pend > 0) {
                    drop(oldest());
                    compact();
                } else {
                    px.accept_paused_until = now_ms() + 100;
                }
            }
            return; /* EAGAIN, or an error of that one connection */
        }
        if (!from_balancer(&peer)) {
            hand_over(fd, &peer, len);
            continue;
        }
        if (px.n_pend == PENDING_MAX) {
            size_t o = oldest();
            tell("PROXY protocol: %d balancer connections wait for their header; closed the "
                 "oldest, from %s",
                 PENDING_MAX, peer_name(&px.pend[o].peer, px.pend[o].peer_len, name, sizeof(name)));
            drop(o);
            compact();
        }
        px.pend[px.n_pend] = (struct pending){
            .fd = fd, .peer = peer, .peer_len = len, .deadline = now_ms() + DEADLINE_MS};
        px.n_pend++;
    }
}

static void *run(void *arg)
{
    struct pollfd fds[2 + PENDING_MAX];
    char name[NI_MAXHOST + 16];

    (void)arg;
    for (;;) {
        int64_t now = now_ms(), wait = -1;
        bool listening = now >= px.accept_paused_until;
        size_t nfds = 0, first;

        fds[nfds++] = (struct pollfd){.fd = px.wake[0], .events = POLLIN};
        fds[nfds++] = (struct pollfd){.fd = listening ? px.lfd : -1, .events = POLLIN};
        if (!listening)
            wait = px.accept_paused_until - now;
        first = nfds;
        for (size_t i = 0; i < px.n_pend; i++) {
            int64_t left = px.pend[i].deadline - now;
            fds[nfds++] = (struct pollfd){.fd = px.pend[i].fd, .events = POLLIN};
            if (wait < 0 || left < wait)
                wait = left < 0 ? 0 : left;
        }
        if (poll(fds, nfds, (int)wait) < 0) {
            if (errno == EINTR)
                continue;
            tell("PROXY protocol: poll: %s", strerror(errno));
            sleep(1);
            continue;
        }
        if (fds[0].revents != 0)
            break;
        now = now_ms();
        for (size_t i = 0; i < px.n_pend; i++) {
            if (fds[first + i].revents != 0)
                step(i);
            if (px.pend[i].fd >= 0 && px.pend[i].deadline <= now) {
                tell("PROXY protocol: closed the connection of %s: no whole PROXY header "
                     "within %d ms",
                     peer_name(&px.pend[i].peer, px.pend[i].peer_len, name, sizeof(name)),
                     DEADLINE_MS);
                drop(i);
            }
        }
        compact();
        if (fds[1].revents != 0)
            accept_some();
    }
    return NULL;
}

/* A listening socket as libmicrohttpd makes one: address reused, IPv6 only on IPv6. */
static int listen_on(const struct sockaddr *addr)
{
    socklen_t len =
        addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    char name[NI_MAXHOST + 16];
    int fd, on = 1;

    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (addr->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
        bind(fd, addr, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        px.fatal("cannot listen on %s: %s",
                 peer_name((const struct sockaddr_storage *)addr, len, name, sizeof(name)),
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int proxy_check(const char *from)
{
    int st = parse_from(from);

    px.n_from = 0;
    return st;
}

int proxy_start(struct MHD_Daemon *d, const struct sockaddr *addr, const char *from,
                proxy_say_fn say, proxy_say_fn fatal)
{
    sigset_t all, old;
    int st;

    px.d = d;
    px.say = say;
    px.fatal = fatal;
    st = parse_from(from);
    if (st != 0)
        goto cleanup;
    st = 1;
    if (kasa_ctx_new(&px.ctx) != 0 || pipe2(px.wake, O_CLOEXEC) != 0) {
        fatal("cannot start the PROXY protocol listener: %s", strerror(errno));
        goto cleanup;
    }
    px.lfd = listen_on(addr);
    if (px.lfd < 0)
        goto cleanup;
    /* Signals are the main thread's. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    st = pthread_create(&px.thread, NULL, run, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (st != 0) {
        fatal("cannot start the PROXY protocol listener: %s", strerror(st));
        st = 1;
        goto cleanup;
    }
    px.running = true;
    say("PROXY protocol: required from %s; from anyone else a PROXY header is a bad request", from);
    return 0;

cleanup:
    proxy_stop();
    return st;
}

void proxy_stop(void)
{
    if (px.running) {
        (void)!write(px.wake[1], "", 1);
        pthread_join(px.thread, NULL);
        px.running = false;
    }
    for (size_t i = 0; i < px.n_pend; i++)
        close(px.pend[i].fd);
    px.n_pend = 0;
    if (px.lfd >= 0)
        close(px.lfd);
    for (int i = 0; i < 2; i++)
        if (px.wake[i] >= 0)
            close(px.wake[i]);
    px.lfd = px.wake[0] = px.wake[1] = -1;
    kasa_ctx_free(px.ctx);
    px.ctx = NULL;
}
