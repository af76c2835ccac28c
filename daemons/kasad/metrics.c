/*
 * Prometheus metrics for kasad (text exposition format 0.0.4), served by a libmicrohttpd
 * daemon of one thread inside the network process, with no authentication: it belongs on
 * loopback or a management network.
 *
 * The network loop never waits for it: the counters are relaxed atomics it bumps, and
 * nothing here takes a lock the loop holds. What the array keytab holds comes from the
 * keeper, which stays the only process that opens the keytab: a status request (no keys
 * in the reply) over a socket of the metrics' own, at most once a second, with a bounded
 * wait; a controller's request waits behind at most one such keytab read. Label values
 * come from small fixed sets, except principal names, which are escaped; no key, and no
 * peer-chosen text, is ever printed.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "kasa/promtext.h"
#include "kasa/proto.h"
#include "kasad.h"
#include "metrics.h"
#include "../promserve.h"

/* Ops by their wire number; 0 collects any other. */
enum { OP_LABELS = 7 };
static const char *const op_label[OP_LABELS] = {"unknown", "status", "stage", "export",
                                                "retire",  "verify", "prove"};
static const char *const result_label[MRES_COUNT] = {"ok", "refused", "failed"};
static const char *const refusal_label[MREF_COUNT] = {
    "acl", "auth", "malformed", "handshake_timeout", "budget", "busy", "replay", "descriptors"};

static atomic_ullong requests[OP_LABELS][MRES_COUNT];
static atomic_ullong refusals[MREF_COUNT];
static atomic_ullong replays;
static time_t started;
static struct MHD_Daemon *daemon_;

/* The keeper's last status reply, kept for a second; touched by the metrics thread only
 * (the mutex is for clarity should libmicrohttpd ever run more than one). */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static int keeper;
static kasa_ctx *kctx;
static unsigned char *keeper_buf; /* KASA_FRAME_MAX + 1 */
static kasa_reply held;
static bool held_ok;
static long long held_at_ms = -1000000;

/* The longest a scrape waits for the keeper, the least time between two asks of it, the
 * largest request body read (and dropped), and the most principals listed. */
enum { KEEPER_WAIT_MS = 2000, KEEPER_EVERY_MS = 1000, MAX_BODY = 65536, MAX_PRINCIPALS = 1000 };

void metrics_request(unsigned op, enum metrics_result result)
{
    if (op >= OP_LABELS)
        op = 0;
    if ((unsigned)result >= MRES_COUNT)
        result = MRES_FAILED;
    atomic_fetch_add_explicit(&requests[op][result], 1, memory_order_relaxed);
}

void metrics_refused(enum metrics_refusal why)
{
    if ((unsigned)why >= MREF_COUNT)
        return;
    atomic_fetch_add_explicit(&refusals[why], 1, memory_order_relaxed);
    if (why == MREF_REPLAY)
        atomic_fetch_add_explicit(&replays, 1, memory_order_relaxed);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Ask the keeper what it holds, into held; false when it does not answer in time. A reply
 * that comes late is read and dropped at the next ask. */
static bool ask_keeper(void)
{
    kasa_request req;
    unsigned char *msg = NULL;
    size_t len = 0;
    struct pollfd p = {.fd = keeper, .events = POLLIN};
    ssize_t n;
    bool ok = false;

    memset(&req, 0, sizeof(req));
    req.op = KASA_OP_STATUS;
    if (kasa_request_encode(kctx, &req, &msg, &len) != 0)
        return false;
    while (recv(keeper, keeper_buf, KASA_FRAME_MAX + 1, MSG_DONTWAIT) > 0)
        ;
    if (send(keeper, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len &&
        poll(&p, 1, KEEPER_WAIT_MS) == 1 &&
        (n = recv(keeper, keeper_buf, KASA_FRAME_MAX + 1, MSG_DONTWAIT)) > 0) {
        kasa_reply_clear(&held);
        ok = kasa_reply_decode(kctx, keeper_buf, (size_t)n, &held) == 0 &&
             held.status == KASA_REPLY_OK;
    }
    kasa_proto_buf_free(msg, len);
    return ok;
}

/* The keeper's view, asked afresh when the last is over a second old. */
static void refresh(void)
{
    long long now = now_ms();

    if (now - held_at_ms < KEEPER_EVERY_MS)
        return;
    held_at_ms = now;
    held_ok = ask_keeper();
    if (!held_ok)
        kasa_reply_clear(&held);
}

/* What the keytab holds: the highest kvno of each principal, and when each kvno arrived
 * and was committed (the state file next to the keytab). */
static void put_keytab(FILE *f)
{
    struct kvno_of {
        const char *principal;
        unsigned kvno;
    } *seen = NULL;
    size_t n = 0;

    pthread_mutex_lock(&held_lock);
    refresh();
    kasa_prom_family(f, "kasad_keytab_readable", "gauge",
                     "1 when kasad's keeper could read the array keytab at the last scrape.");
    fprintf(f, "kasad_keytab_readable %d\n", held_ok ? 1 : 0);
    if (!held_ok)
        goto cleanup;
    if ((seen = calloc(MAX_PRINCIPALS, sizeof(*seen))) == NULL)
        goto cleanup;
    for (size_t s = 0; s < held.n_sets; s++) {
        for (size_t p = 0; p < held.sets[s].n_principals; p++) {
            const char *name = held.sets[s].principals[p];
            size_t i = 0;
            while (i < n && strcmp(seen[i].principal, name) != 0)
                i++;
            if (i < n && held.sets[s].kvno > seen[i].kvno)
                seen[i].kvno = held.sets[s].kvno;
            else if (i == n && n < MAX_PRINCIPALS)
                seen[n++] = (struct kvno_of){name, held.sets[s].kvno};
        }
    }
    kasa_prom_family(f, "kasad_keytab_kvno", "gauge",
                     "The highest key version the array keytab holds for the principal.");
    for (size_t i = 0; i < n; i++) {
        fputs("kasad_keytab_kvno{principal=\"", f);
        kasa_prom_label(f, seen[i].principal);
        fprintf(f, "\"} %u\n", seen[i].kvno);
    }
    kasa_prom_family(f, "kasad_keytab_kvno_arrival_seconds", "gauge",
                     "When the member got the key version, in seconds since the epoch.");
    for (size_t s = 0; s < held.n_sets; s++)
        fprintf(f, "kasad_keytab_kvno_arrival_seconds{kvno=\"%u\"} %lld\n", held.sets[s].kvno,
                (long long)held.sets[s].arrived);
    kasa_prom_family(f, "kasad_keytab_kvno_committed_seconds", "gauge",
                     "When the directory switched to the key version (kasa roll's commit), in "
                     "seconds since the epoch; absent until the member is told.");
    for (size_t s = 0; s < held.n_sets; s++) {
        if (held.sets[s].committed > 0)
            fprintf(f, "kasad_keytab_kvno_committed_seconds{kvno=\"%u\"} %lld\n", held.sets[s].kvno,
                    (long long)held.sets[s].committed);
    }

cleanup:
    pthread_mutex_unlock(&held_lock);
    free(seen);
}

/* The whole exposition, in a malloc'd string. */
static char *exposition(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);

    if (f == NULL)
        return NULL;
    kasa_prom_family(f, "kasad_requests_total", "counter",
                     "Requests from authenticated peers, by operation and result.");
    for (int op = 1; op <= OP_LABELS; op++) {
        for (int r = 0; r < MRES_COUNT; r++)
            fprintf(f, "kasad_requests_total{op=\"%s\",result=\"%s\"} %llu\n",
                    op_label[op % OP_LABELS], result_label[r],
                    atomic_load_explicit(&requests[op % OP_LABELS][r], memory_order_relaxed));
    }
    kasa_prom_family(f, "kasad_connections_refused_total", "counter",
                     "Connections refused or dropped before or instead of being served, by "
                     "class of reason.");
    for (int r = 0; r < MREF_COUNT; r++)
        fprintf(f, "kasad_connections_refused_total{reason=\"%s\"} %llu\n", refusal_label[r],
                atomic_load_explicit(&refusals[r], memory_order_relaxed));
    kasa_prom_family(f, "kasad_replays_total", "counter",
                     "Replayed Kerberos authenticators and replayed or reordered messages "
                     "refused.");
    fprintf(f, "kasad_replays_total %llu\n", atomic_load_explicit(&replays, memory_order_relaxed));
    put_keytab(f);
    kasa_prom_family(f, "kasad_start_time_seconds", "gauge",
                     "When kasad started, in seconds since the epoch.");
    fprintf(f, "kasad_start_time_seconds %lld\n", (long long)started);
    kasa_prom_family(f, "kasad_build_info", "gauge", "The kasa version kasad was built from.");
    fputs("kasad_build_info{version=\"", f);
    kasa_prom_label(f, kasa_version());
    fputs("\"} 1\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) KASA_PRINTF(2, 0);

/* libmicrohttpd's messages, at most five every ten seconds: a flood of connections to the
 * metrics port must not become a flood of log lines. Called on its one thread. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    static time_t window;
    static unsigned said;
    time_t now = time(NULL);
    char line[256];

    (void)cls;
    if (now - window >= 10) {
        window = now;
        said = 0;
    }
    if (said++ >= 5)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    kasad_log("metrics: %s", line);
}

int metrics_start(const char *listen, unsigned port, int keeper_fd)
{
    started = time(NULL);
    keeper = keeper_fd;
    if (kasa_ctx_new(&kctx) != 0 || (keeper_buf = malloc(KASA_FRAME_MAX + 1)) == NULL) {
        fprintf(stderr, "kasad: out of memory for metrics\n");
        return 1;
    }
    daemon_ = promserve_start("kasad", listen, port, exposition, on_mhd_log);
    if (daemon_ == NULL)
        return 1;
    return 0;
}

void metrics_stop(void)
{
    promserve_stop(daemon_);
    daemon_ = NULL;
    kasa_reply_clear(&held);
    free(keeper_buf);
    keeper_buf = NULL;
    kasa_ctx_free(kctx);
    kctx = NULL;
}
