/*
 * The deadline for a whole request head (header_timeout), built by hand because
 * libmicrohttpd 0.9.75 has none: its MHD_OPTION_CONNECTION_TIMEOUT counts idleness and
 * every byte restarts it, so a client trickling a byte every few seconds would hold a
 * connection for ever, and a few addresses all the connections the limits allow.
 *
 * Each connection libmicrohttpd serves has a slot, indexed by its socket, holding when
 * its head is due (nothing while a request is being answered), under one mutex. A
 * watchdog thread looks once a second and shuts the overdue sockets down (shutdown(2));
 * libmicrohttpd then reads the end of the stream and closes the connection itself, as if
 * the client had gone. A socket is never close(2)d here: it is libmicrohttpd's.
 * libmicrohttpd calls MHD_CONNECTION_NOTIFY_CLOSED before it closes the socket (0.9.75's
 * daemon.c: MHD_cleanup_connections, and the failure path of new_connection_process_),
 * and the slot is emptied then, under the mutex the watchdog holds from looking at a slot
 * to its shutdown, so a shutdown never reaches a descriptor another connection reuses.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "deadline.h"
#include "metrics.h"

struct slot {
    struct MHD_Connection *c; /* NULL: no connection on this socket */
    int64_t due_ms;           /* CLOCK_MONOTONIC; 0: no head awaited */
};

/* Closures are said at most once per LOG_EVERY_S, counted, with the last client. */
enum { LOG_EVERY_S = 10 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static struct slot *slots; /* indexed by socket; grown to the highest one seen */
static size_t n_slots;
static int64_t timeout_ms; /* 0: no deadline; set before the daemon starts */
static bool stopping, running;
static pthread_t watchdog;
static deadline_say_fn say;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fd_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

    return ci != NULL ? ci->connect_fd : -1;
}

/* Room for socket fd; under the lock. */
static bool fit(size_t fd)
{
    size_t n = n_slots < 1024 ? 1024 : n_slots;
    struct slot *more;

    while (n <= fd)
        n *= 2;
    if (n == n_slots)
        return true;
    if ((more = realloc(slots, n * sizeof(*more))) == NULL)
        return false;
    memset(more + n_slots, 0, (n - n_slots) * sizeof(*more));
    slots = more;
    n_slots = n;
    return true;
}

/* Set when c's head is due (0: none); nothing if c has no slot. */
static void set_due(struct MHD_Connection *c, int64_t due_ms)
{
    int fd;

    if (timeout_ms == 0 || (fd = fd_of(c)) < 0)
        return;
    pthread_mutex_lock(&lock);
    if ((size_t)fd < n_slots && slots[fd].c == c)
        slots[fd].due_ms = due_ms;
    pthread_mutex_unlock(&lock);
}

void deadline_connection(struct MHD_Connection *c, enum MHD_ConnectionNotificationCode code)
{
    int fd;

    if (timeout_ms == 0 || (fd = fd_of(c)) < 0)
        return;
    pthread_mutex_lock(&lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        /* Out of memory: the connection goes without a deadline, as before there was one. */
        if (fit((size_t)fd)) {
            slots[fd].c = c;
            slots[fd].due_ms = now_ms() + timeout_ms;
        }
    } else if ((size_t)fd < n_slots && slots[fd].c == c) {
        slots[fd].c = NULL;
        slots[fd].due_ms = 0;
    }
    pthread_mutex_unlock(&lock);
}

void deadline_head_done(struct MHD_Connection *c)
{
    set_due(c, 0);
}

void deadline_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)req_cls;
    (void)toe;
    if (timeout_ms != 0)
        set_due(c, now_ms() + timeout_ms);
}

/* One line for the closures since the last one. */
static void tell(unsigned n, const struct sockaddr_storage *last, socklen_t last_len)
{
    char host[NI_MAXHOST];

    if (n == 0)
        return;
    if (last_len == 0 || getnameinfo((const struct sockaddr *)last, last_len, host, sizeof(host),
                                     NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(host, sizeof(host), "an unknown address");
    say("header timeout: closed %u connection%s whose request head was not complete %lld s "
        "after it opened or after its last response; the last from %s",
        n, n == 1 ? "" : "s", (long long)(timeout_ms / 1000), host);
}

/* Shut down the sockets whose head is overdue, under the lock; the address of the last
 * goes to *last. Returns how many. */
static unsigned cut_overdue(int64_t now, struct sockaddr_storage *last, socklen_t *last_len)
{
    unsigned cut = 0;

    for (size_t fd = 0; fd < n_slots; fd++) {
        struct slot *s = &slots[fd];
        const union MHD_ConnectionInfo *ci;

        if (s->c == NULL || s->due_ms == 0 || s->due_ms > now)
            continue;
        s->due_ms = 0; /* once: libmicrohttpd closes it at its next turn */
        if (shutdown((int)fd, SHUT_RDWR) != 0)
            continue;
        cut++;
        /* The address libmicrohttpd set when it took the connection; only read. */
        ci = MHD_get_connection_info(s->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci != NULL && ci->client_addr != NULL) {
            *last_len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                               : sizeof(struct sockaddr_in);
            memcpy(last, ci->client_addr, *last_len);
        }
    }
    return cut;
}

/* The watchdog: once a second, close the overdue; count them, and say so now and then. */
static void *watch(void *arg)
{
    struct sockaddr_storage last;
    socklen_t last_len = 0;
    unsigned unsaid = 0;
    int64_t said_ms = 0;
    struct timespec at;

    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        unsigned cut;
        int64_t now;

        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_sec += 1;
        if (pthread_cond_timedwait(&wake, &lock, &at) != ETIMEDOUT)
            continue; /* woken by deadline_stop(), or spuriously */
        now = now_ms();
        cut = cut_overdue(now, &last, &last_len);
        pthread_mutex_unlock(&lock);
        if (cut > 0)
            metrics_header_timeouts(cut);
        unsaid += cut;
        if (unsaid > 0 && (said_ms == 0 || now - said_ms >= LOG_EVERY_S * 1000)) {
            tell(unsaid, &last, last_len);
            unsaid = 0;
            said_ms = now;
        }
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    tell(unsaid, &last, last_len);
    return NULL;
}

int deadline_start(unsigned seconds, deadline_say_fn say_fn)
{
    pthread_condattr_t ca;
    int err;

    if (seconds == 0)
        return 0;
    say = say_fn;
    if ((err = pthread_condattr_init(&ca)) != 0)
        return err;
    if ((err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
        err = pthread_cond_init(&wake, &ca);
    pthread_condattr_destroy(&ca);
    if (err != 0)
        return err;
    timeout_ms = (int64_t)seconds * 1000;
    if ((err = pthread_create(&watchdog, NULL, watch, NULL)) != 0) {
        timeout_ms = 0;
        pthread_cond_destroy(&wake);
        return err;
    }
    running = true;
    return 0;
}

void deadline_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(watchdog, NULL);
    pthread_cond_destroy(&wake);
    running = false;
    pthread_mutex_lock(&lock);
    free(slots);
    slots = NULL;
    n_slots = 0;
    pthread_mutex_unlock(&lock);
}
