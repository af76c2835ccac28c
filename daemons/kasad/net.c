/*
 * kasad's network process: one poll() loop over every connection, so a slow or silent
 * peer holds up nobody. A connection first establishes a GSS-API context (Kerberos only:
 * kasad is the acceptor, host/MEMBER from its own keytab); the peer's principal must be
 * on the ACL; then each wrapped request goes to the keeper, and the keeper's reply goes
 * back wrapped. Malformed, truncated and oversized frames get an error and the
 * connection is closed; the loop goes on serving the others.
 *
 * Nobody unauthenticated can keep a controller out. Connections still in the handshake
 * (pending) have their own budget, a deadline for the whole handshake that bytes do not
 * extend, and a per-address share of that budget; when the budget is full the oldest
 * pending connection makes room for the new one, never the other way round. Authorized
 * peers have slots of their own. Refusals are counted and logged at a bounded rate.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "kasa/member.h"
#include "kasa/proto.h"
#include "kasad.h"
#include "metrics.h"

#define INBUF_MAX (KASA_FRAME_MAX + 16)
#define ACCEPTS_PER_TURN 64 /* drain the backlog, but serve the others in between */
#define LOG_WINDOW_MS 10000 /* refusals: at most LOG_BURST lines per window, then a count */
#define LOG_BURST 10

struct conn {
    int fd;
    char peer[64];   /* address, for the log */
    char source[64]; /* whose budget share it uses: the address, or an IPv6 /64 */
    gss_ctx_id_t gctx;
    bool established;
    bool authorized;   /* established and on the ACL: out of the pending budget */
    bool denied;       /* authenticated, but not on the ACL */
    char *client;      /* the authenticated principal */
    unsigned char *in; /* bytes read so far */
    size_t in_len;
    unsigned char *out; /* bytes still to write */
    size_t out_len, out_off;
    bool close_after_write;
    unsigned long long seq; /* accept order: the smallest is the oldest */
    long long deadline_ms;  /* the handshake's, then each read's once authorized */
};

/* Everything the loop serves. */
struct server {
    const struct kasad_opts *opts;
    kasa_ctx *ctx;
    gss_cred_id_t acceptor;
    int keeper_fd;
    const char *me;
    struct conn **conns;
    size_t n_slots;
    size_t n_pending, n_authorized;
    unsigned long long next_seq;
    long long accept_paused_until; /* out of descriptors: let a pending one time out */
};

/* Refusals of unauthenticated peers, logged at a bounded rate. */
static struct {
    long long window_start;
    unsigned logged, suppressed;
    unsigned long long timed_out, evicted, refused; /* since the window began */
} refusals;

static volatile sig_atomic_t stopping;
static bool keeper_gone;       /* kasad stops, and exits 1, so its service manager restarts it */
static long opts_clock_offset; /* --clock-offset: report the clock this far off (tests) */

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Close the window when it is over: one line says what was dropped and not logged. */
static void refusals_roll(long long now)
{
    if (now - refusals.window_start < LOG_WINDOW_MS)
        return;
    if (refusals.suppressed > 0)
        kasad_log("in the last %d s: %llu unauthenticated connections timed out, %llu dropped "
                  "for newer ones, %llu refused; %u of these not logged one by one",
                  LOG_WINDOW_MS / 1000, refusals.timed_out, refusals.evicted, refusals.refused,
                  refusals.suppressed);
    memset(&refusals, 0, sizeof(refusals));
    refusals.window_start = now;
}

static void log_refusal(const char *fmt, ...) KASA_PRINTF(1, 2);

/* One refusal: logged unless LOG_BURST were logged in this window already. */
static void log_refusal(const char *fmt, ...)
{
    char line[512];
    va_list ap;

    refusals_roll(now_ms());
    if (refusals.logged >= LOG_BURST) {
        refusals.suppressed++;
        return;
    }
    refusals.logged++;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    kasad_log_at(KASA_LOG_WARNING, "%s", line);
}

static void conn_free(struct conn *c)
{
    OM_uint32 minor;

    if (c->gctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &c->gctx, GSS_C_NO_BUFFER);
    if (c->fd >= 0)
        close(c->fd);
    free(c->client);
    if (c->in != NULL) {
        kasa_zap(c->in, INBUF_MAX);
        free(c->in);
    }
    free(c->out);
    free(c);
}

/* Queue a frame; the loop writes it when the socket can take it. */
static void queue(struct conn *c, unsigned type, const void *body, size_t len)
{
    unsigned char *p = realloc(c->out, c->out_len + 5 + len);

    if (p == NULL) {
        c->close_after_write = true;
        return;
    }
    c->out = p;
    kasa_frame_header(type, len, p + c->out_len);
    if (len > 0)
        memcpy(p + c->out_len + 5, body, len);
    c->out_len += 5 + len;
}

/* A plain error before authentication, then close; counted under reason. */
static void refuse(struct conn *c, enum metrics_refusal reason, const char *why)
{
    refusals.refused++;
    metrics_refused(reason);
    log_refusal("%s: refused: %s", c->peer, why);
    queue(c, KASA_FRAME_ERROR, why, strlen(why));
    c->close_after_write = true;
}

/* Whether principal is a line of the ACL file (read afresh: edits apply at once). */
static bool acl_allows(const char *acl, const char *principal)
{
    char line[1100];
    bool ok = false;
    FILE *f = fopen(acl, "r");

    if (f == NULL) {
        kasad_log_at(KASA_LOG_ERR, "cannot read ACL %s: %s; refusing everyone", acl,
                     strerror(errno));
        return false;
    }
    while (!ok && fgets(line, sizeof(line), f) != NULL) {
        char *s = line, *e;
        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strcspn(s, " \t\r\n#");
        *e = '\0';
        ok = *s != '\0' && strcmp(s, principal) == 0;
    }
    fclose(f);
    return ok;
}

/* Wrap a reply and queue it. */
static void send_reply(struct conn *c, kasa_ctx *ctx, const kasa_reply *rep)
{
    gss_buffer_desc in, out = GSS_C_EMPTY_BUFFER;
    unsigned char *msg = NULL;
    size_t len = 0;
    OM_uint32 major, minor;
    int conf = 0;

    if (kasa_reply_encode(ctx, rep, &msg, &len) != 0) {
        c->close_after_write = true;
        return;
    }
    in.value = msg;
    in.length = len;
    major = gss_wrap(&minor, c->gctx, 1, GSS_C_QOP_DEFAULT, &in, &conf, &out);
    kasa_proto_buf_free(msg, KASA_FRAME_MAX);
    if (GSS_ERROR(major) || !conf || out.length > KASA_FRAME_MAX) {
        c->close_after_write = true;
    } else {
        queue(c, KASA_FRAME_WRAPPED, out.value, out.length);
    }
    gss_release_buffer(&minor, &out);
}

static void send_status(struct conn *c, kasa_ctx *ctx, unsigned status, const char *msg)
{
    kasa_reply rep;

    memset(&rep, 0, sizeof(rep));
    rep.status = status;
    rep.message = (char *)msg;
    rep.member = "";
    send_reply(c, ctx, &rep);
    c->close_after_write = true;
}

/* Forward a decoded-and-checked request's bytes to the keeper; its reply comes back. */
static void ask_keeper(struct conn *c, kasa_ctx *ctx, int keeper_fd, const char *me, unsigned op,
                       const unsigned char *msg, size_t len)
{
    unsigned char *buf = malloc(KASA_FRAME_MAX + 1);
    kasa_reply rep;
    ssize_t n;

    if (buf == NULL || send(keeper_fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len ||
        (n = recv(keeper_fd, buf, KASA_FRAME_MAX + 1, 0)) <= 0 ||
        kasa_reply_decode(ctx, buf, (size_t)n, &rep) != 0) {
        kasad_log_at(KASA_LOG_ERR, "the keeper did not answer; stopping");
        free(buf);
        stopping = 1;
        keeper_gone = true;
        metrics_request(op, MRES_FAILED);
        send_status(c, ctx, KASA_REPLY_FAILED, "kasad's keeper failed");
        return;
    }
    kasa_zap(buf, (size_t)n);
    free(buf);
    free(rep.member);
    rep.member = strdup(me);
    rep.now = (int64_t)time(NULL) + opts_clock_offset;
    metrics_request(op, rep.status == KASA_REPLY_OK       ? MRES_OK
                        : rep.status == KASA_REPLY_FAILED ? MRES_FAILED
                                                          : MRES_REFUSED);
    if (rep.status != KASA_REPLY_OK)
        kasad_log_at(KASA_LOG_WARNING, "%s (%s): request failed: %s", c->peer, c->client,
                     rep.message);
    send_reply(c, ctx, &rep);
    kasa_reply_clear(&rep);
}

static const char *op_name(unsigned op)
{
    switch (op) {
    case KASA_OP_STATUS:
        return "status";
    case KASA_OP_STAGE:
        return "stage";
    case KASA_OP_EXPORT:
        return "export";
    case KASA_OP_RETIRE:
        return "retire";
    case KASA_OP_VERIFY:
        return "verify";
    case KASA_OP_PROVE:
        return "prove";
    default:
        return "unknown";
    }
}

/* A request's op, from its second XDR word (after the protocol version); 0 when short. */
static unsigned op_peek(const void *msg, size_t len)
{
    const unsigned char *p = msg;

    if (len < 8)
        return 0;
    return (unsigned)p[4] << 24 | (unsigned)p[5] << 16 | (unsigned)p[6] << 8 | (unsigned)p[7];
}

/* One wrapped request from an authenticated peer (refused when not on the ACL). */
static void on_request(struct conn *c, kasa_ctx *ctx, int keeper_fd, const char *me,
                       const unsigned char *body, size_t len)
{
    gss_buffer_desc in = {len, (void *)body}, out = GSS_C_EMPTY_BUFFER;
    OM_uint32 major, minor;
    kasa_request req;
    int conf = 0;

    major = gss_unwrap(&minor, c->gctx, &in, &out, &conf, NULL);
    if (GSS_ERROR(major) || !conf) {
        kasad_log_at(KASA_LOG_WARNING, "%s (%s): a message that does not unwrap; closing", c->peer,
                     c->client);
        metrics_refused(MREF_MALFORMED);
        c->close_after_write = true;
        gss_release_buffer(&minor, &out);
        return;
    }
    /* Not errors to GSS_ERROR(), but a replayed, reordered or missing message all the
     * same: the controller asked for replay and sequence protection. */
    if (major & (GSS_S_DUPLICATE_TOKEN | GSS_S_OLD_TOKEN | GSS_S_UNSEQ_TOKEN | GSS_S_GAP_TOKEN)) {
        kasad_log("%s (%s): a %s message; closing", c->peer, c->client,
                  major & (GSS_S_DUPLICATE_TOKEN | GSS_S_OLD_TOKEN) ? "replayed" : "reordered");
        metrics_refused(MREF_REPLAY);
        kasa_zap(out.value, out.length);
        gss_release_buffer(&minor, &out);
        send_status(c, ctx, KASA_REPLY_BAD, "a replayed or reordered message");
        return;
    }
    if (c->denied) {
        /* Never decoded: only the op's number is read, for the metrics' label. */
        metrics_request(op_peek(out.value, out.length), MRES_REFUSED);
        send_status(c, ctx, KASA_REPLY_DENIED,
                    "this principal is not on the member's ACL; add it to kasad's --acl file");
    } else if (kasa_request_decode(ctx, out.value, out.length, &req) != 0) {
        metrics_request(0, MRES_REFUSED);
        kasad_log("%s (%s): %s", c->peer, c->client, kasa_error(ctx));
        send_status(c, ctx, KASA_REPLY_BAD, kasa_error(ctx));
    } else {
        kasad_log("%s (%s): %s", c->peer, c->client, op_name(req.op));
        ask_keeper(c, ctx, keeper_fd, me, req.op, out.value, out.length);
        kasa_request_clear(&req);
    }
    kasa_zap(out.value, out.length);
    gss_release_buffer(&minor, &out);
}

/* One GSS context token from the peer. */
static void on_token(struct server *sv, struct conn *c, const unsigned char *body, size_t len)
{
    gss_buffer_desc in = {len, (void *)body}, out = GSS_C_EMPTY_BUFFER, nb;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    OM_uint32 major, minor, scratch, flags = 0;
    const OM_uint32 need = GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG | GSS_C_REPLAY_FLAG |
                           GSS_C_SEQUENCE_FLAG | GSS_C_MUTUAL_FLAG;

    major = gss_accept_sec_context(&minor, &c->gctx, sv->acceptor, &in, GSS_C_NO_CHANNEL_BINDINGS,
                                   &src, &mech, &out, &flags, NULL, NULL);
    if (out.length > 0)
        queue(c, KASA_FRAME_TOKEN, out.value, out.length);
    gss_release_buffer(&scratch, &out);
    if (GSS_ERROR(major)) {
        kasa_set_gss_error(sv->ctx, KASA_ERR_MEMBER_AUTH, major, minor, "authentication failed");
        refuse(c, minor == (OM_uint32)KRB5KRB_AP_ERR_REPEAT ? MREF_REPLAY : MREF_AUTH,
               kasa_error(sv->ctx));
        gss_release_name(&minor, &src);
        return;
    }
    if (major & GSS_S_CONTINUE_NEEDED) {
        gss_release_name(&minor, &src);
        return;
    }
    if (gss_display_name(&minor, src, &nb, NULL) == GSS_S_COMPLETE) {
        c->client = strndup(nb.value, nb.length);
        gss_release_buffer(&minor, &nb);
    }
    gss_release_name(&minor, &src);
    c->established = true;
    /* The credential allows Kerberos alone; this says so again where it matters. */
    if (mech == GSS_C_NO_OID || !gss_oid_equal(mech, gss_mech_krb5)) {
        refuse(c, MREF_AUTH, "only Kerberos is accepted");
        return;
    }
    if (c->client == NULL || (flags & need) != need) {
        refuse(c, MREF_AUTH,
               "mutual authentication, confidentiality, replay and sequence protection are "
               "required");
        return;
    }
    if (!acl_allows(sv->opts->acl, c->client)) {
        /* Answered at its first request, so the peer reads the refusal, not a reset; it
         * stays in the pending budget and under the handshake deadline until then. */
        log_refusal("%s: refused %s: not on the ACL %s", c->peer, c->client, sv->opts->acl);
        metrics_refused(MREF_ACL);
        c->denied = true;
        return;
    }
    if (sv->n_authorized >= KASAD_MAX_AUTHORIZED) {
        refuse(c, MREF_BUSY, "too many controllers are connected; try again");
        return;
    }
    c->authorized = true;
    sv->n_pending--;
    sv->n_authorized++;
    c->deadline_ms = now_ms() + sv->opts->timeout_ms;
    kasad_log("%s: authenticated %s", c->peer, c->client);
}

/* Read what is there; handle every whole frame. Returns false to drop the connection. */
static bool on_readable(struct server *sv, struct conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, INBUF_MAX - c->in_len, 0);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    c->in_len += (size_t)n;
    /* Only an authorized peer's bytes buy it time; the handshake has one deadline. */
    if (c->authorized)
        c->deadline_ms = now_ms() + sv->opts->timeout_ms;
    while (!c->close_after_write) {
        const unsigned char *body;
        size_t blen, used;
        unsigned type;
        long ret = kasa_frame_parse(sv->ctx, c->in, c->in_len, &type, &body, &blen, &used);
        if (ret == KASA_ERR_AGAIN)
            break;
        if (ret) {
            refuse(c, MREF_MALFORMED, kasa_error(sv->ctx));
            break;
        }
        if (type == KASA_FRAME_TOKEN && !c->established)
            on_token(sv, c, body, blen);
        else if (type == KASA_FRAME_WRAPPED && c->established)
            on_request(c, sv->ctx, sv->keeper_fd, sv->me, body, blen);
        else
            refuse(c, MREF_MALFORMED, "a frame out of turn");
        kasa_zap(c->in, used);
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
    }
    return true;
}

static bool on_writable(struct conn *c)
{
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        return !c->close_after_write;
    }
    return true;
}

/*
 * kasad's acceptor credential: Kerberos only. Other mechanisms installed on the member
 * (gss-ntlmssp for kasa-httpd, SPNEGO) never see a byte from kasad's peers; with every
 * mechanism, an unauthenticated NTLMSSP token reached gss-ntlmssp and crashed it.
 */
static long acceptor_cred(kasa_ctx *ctx, const struct kasad_opts *opts, gss_cred_id_t *cred,
                          char **me)
{
    gss_key_value_element_desc elem = {"keytab", opts->keytab};
    gss_key_value_set_desc store = {1, &elem};
    gss_OID_set_desc krb5_only = {1, (gss_OID)gss_mech_krb5};
    gss_name_t name = GSS_C_NO_NAME;
    OM_uint32 major, minor;

    *me = strdup(opts->principal != NULL ? opts->principal : "");
    if (opts->principal != NULL) {
        gss_buffer_desc nb = {strlen(opts->principal), (void *)opts->principal};
        major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
        if (GSS_ERROR(major))
            return kasa_set_gss_error(ctx, KASA_ERR_CONFIG, major, minor, "bad principal %s",
                                      opts->principal);
    }
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &krb5_only, GSS_C_ACCEPT,
                                  opts->keytab != NULL ? &store : NULL, cred, NULL, NULL);
    gss_release_name(&minor, &name);
    if (GSS_ERROR(major))
        return kasa_set_gss_error(ctx, KASA_ERR_CONFIG, major, minor, "cannot use keytab %s as %s",
                                  opts->keytab != NULL ? opts->keytab : "(default)",
                                  opts->principal != NULL ? opts->principal : "any principal");
    return 0;
}

static void drop(struct server *sv, size_t i)
{
    struct conn *c = sv->conns[i];

    if (c->authorized)
        sv->n_authorized--;
    else
        sv->n_pending--;
    conn_free(c);
    sv->conns[i] = NULL;
}

/* The oldest pending connection, from source when source is not NULL; -1 when none. */
static long oldest_pending(const struct server *sv, const char *source, size_t *count)
{
    long best = -1;

    *count = 0;
    for (size_t i = 0; i < sv->n_slots; i++) {
        const struct conn *c = sv->conns[i];
        if (c == NULL || c->authorized || (source != NULL && strcmp(c->source, source) != 0))
            continue;
        (*count)++;
        if (best < 0 || c->seq < sv->conns[best]->seq)
            best = (long)i;
    }
    return best;
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/*
 * The pending connection to drop when the budget is full: the oldest of the source that
 * holds the most. A controller holds one pending connection for a few milliseconds, so a
 * flood from any number of other addresses never picks it while it holds more. Counted
 * in one pass with a small open-addressing table.
 */
static long busiest_oldest(const struct server *sv)
{
    size_t cap = 1;
    long best = -1;
    size_t best_n = 0;
    struct slot {
        const char *source;
        size_t n;
        long oldest;
    } * t;

    while (cap < 2 * sv->n_slots)
        cap *= 2;
    t = calloc(cap, sizeof(*t));
    if (t == NULL) {
        size_t count;
        return oldest_pending(sv, NULL, &count);
    }
    for (size_t i = 0; i < sv->n_slots; i++) {
        const struct conn *c = sv->conns[i];
        size_t h;
        if (c == NULL || c->authorized)
            continue;
        h = hash(c->source) & (cap - 1);
        while (t[h].source != NULL && strcmp(t[h].source, c->source) != 0)
            h = (h + 1) & (cap - 1);
        if (t[h].source == NULL) {
            t[h].source = c->source;
            t[h].oldest = (long)i;
        } else if (c->seq < sv->conns[t[h].oldest]->seq) {
            t[h].oldest = (long)i;
        }
        t[h].n++;
        if (t[h].n > best_n ||
            (t[h].n == best_n && sv->conns[t[h].oldest]->seq < sv->conns[best]->seq)) {
            best_n = t[h].n;
            best = t[h].oldest;
        }
    }
    free(t);
    return best;
}

/* Make room for a new pending connection from source: its own oldest if that source has
 * its share, else, when the budget is full, the busiest source's oldest. */
static void make_room(struct server *sv, const char *source)
{
    size_t count;
    long victim = oldest_pending(sv, source, &count);

    if (count < (size_t)sv->opts->max_per_source)
        victim = sv->n_pending >= (size_t)sv->opts->max_pending ? busiest_oldest(sv) : -1;
    if (victim < 0)
        return;
    refusals.evicted++;
    metrics_refused(MREF_BUDGET);
    log_refusal("%s: dropped for a newer connection: %zu of %d unauthenticated connections in use",
                sv->conns[victim]->peer, sv->n_pending, sv->opts->max_pending);
    drop(sv, (size_t)victim);
}

/* Whose share a peer uses: its address, or for IPv6 its /64, which one host often holds
 * whole. */
static void source_of(const struct sockaddr_storage *ss, const char *peer, char *out, size_t len)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    struct in6_addr net;
    char text[INET6_ADDRSTRLEN];

    if (ss->ss_family != AF_INET6 || IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ||
        IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
        snprintf(out, len, "%s", peer);
        return;
    }
    net = s6->sin6_addr;
    memset(net.s6_addr + 8, 0, 8);
    if (inet_ntop(AF_INET6, &net, text, sizeof(text)) == NULL)
        snprintf(out, len, "%s", peer);
    else
        snprintf(out, len, "%s/64", text);
}

/* Take one connection from the backlog; false when there is none. */
static bool accept_one(struct server *sv, int listen_fd, long long now)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char peer[64], source[64];
    struct conn *c;
    size_t slot = 0;
    int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            /* Out of descriptors: free one for the next turn, or, with none pending, stop
             * polling the listener briefly rather than spin on it. */
            size_t count;
            long victim = oldest_pending(sv, NULL, &count);
            refusals.refused++;
            metrics_refused(MREF_DESCRIPTORS);
            log_refusal("accept: %s", strerror(errno));
            if (victim >= 0)
                drop(sv, (size_t)victim);
            else
                sv->accept_paused_until = now + 100;
        }
        return false;
    }
    if (getnameinfo((struct sockaddr *)&ss, sl, peer, sizeof(peer), NULL, 0, NI_NUMERICHOST) != 0)
        strcpy(peer, "?");
    source_of(&ss, peer, source, sizeof(source));
    make_room(sv, source);
    while (slot < sv->n_slots && sv->conns[slot] != NULL)
        slot++;
    c = calloc(1, sizeof(*c));
    if (slot == sv->n_slots || c == NULL || (c->in = malloc(INBUF_MAX)) == NULL) {
        free(c);
        close(fd);
        return true;
    }
    c->fd = fd;
    c->gctx = GSS_C_NO_CONTEXT;
    c->seq = sv->next_seq++;
    c->deadline_ms = now + sv->opts->handshake_ms;
    memcpy(c->peer, peer, sizeof(peer));
    memcpy(c->source, source, sizeof(source));
    sv->conns[slot] = c;
    sv->n_pending++;
    return true;
}

/* A connection whose deadline passed. */
static void expire(struct server *sv, struct conn *c)
{
    if (c->authorized) {
        kasad_log("%s (%s): no message within %d ms; closing", c->peer, c->client,
                  sv->opts->timeout_ms);
    } else {
        refusals.timed_out++;
        metrics_refused(MREF_HANDSHAKE_TIMEOUT);
        log_refusal("%s: no handshake within %d ms; closing", c->peer, sv->opts->handshake_ms);
    }
}

int net_run(const struct kasad_opts *opts, int keeper_fd, int listen_fd)
{
    struct server sv = {.opts = opts, .keeper_fd = keeper_fd, .acceptor = GSS_C_NO_CREDENTIAL};
    struct pollfd *pfd = NULL;
    char *me = NULL;
    OM_uint32 minor;
    int status = 0;

    sv.n_slots = (size_t)opts->max_pending + KASAD_MAX_AUTHORIZED;
    sv.conns = calloc(sv.n_slots, sizeof(*sv.conns));
    pfd = calloc(sv.n_slots + 2, sizeof(*pfd));
    if (sv.conns == NULL || pfd == NULL || kasa_ctx_new(&sv.ctx) != 0) {
        free(sv.conns);
        free(pfd);
        return 1;
    }
    opts_clock_offset = opts->clock_offset;
    if (acceptor_cred(sv.ctx, opts, &sv.acceptor, &me) != 0) {
        kasad_log("%s", kasa_error(sv.ctx));
        status = 1;
        goto cleanup;
    }
    sv.me = me;
    refusals.window_start = now_ms();
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    while (!stopping) {
        long long now = now_ms(), next = now + LOG_WINDOW_MS;
        nfds_t n = 0, keeper_slot;
        int r;
        pfd[n++] = (struct pollfd){.fd = listen_fd,
                                   .events = (short)(now < sv.accept_paused_until ? 0 : POLLIN)};
        if (now < sv.accept_paused_until && sv.accept_paused_until < next)
            next = sv.accept_paused_until;
        for (size_t i = 0; i < sv.n_slots; i++) {
            struct conn *c = sv.conns[i];
            if (c == NULL)
                continue;
            if (c->deadline_ms < next)
                next = c->deadline_ms;
            pfd[n++] = (struct pollfd){
                .fd = c->fd,
                .events = (short)(c->out_len > 0 ? POLLOUT : POLLIN),
            };
        }
        /* The keeper says nothing unasked: its socket readable is its end. */
        keeper_slot = n;
        pfd[n++] = (struct pollfd){.fd = keeper_fd, .events = POLLIN};
        r = poll(pfd, n, (int)(next > now ? next - now : 0));
        if (r > 0 && (pfd[keeper_slot].revents & (POLLIN | POLLHUP | POLLERR))) {
            kasad_log_at(KASA_LOG_ERR, "the keeper is gone; stopping");
            keeper_gone = true;
            break;
        }
        if (r < 0 && errno != EINTR) {
            kasad_log_at(KASA_LOG_ERR, "poll: %s", strerror(errno));
            status = 1;
            break;
        }
        if (kasad_reopen) {
            kasad_reopen = 0;
            kasad_log_reopen();
            if (kasad_keeper_pid > 0)
                kill(kasad_keeper_pid, SIGHUP);
            kasad_log("reopened the log (SIGHUP)");
        }
        now = now_ms();
        refusals_roll(now);
        /* Existing connections first, in the order they were polled. */
        for (size_t i = 0, k = 1; i < sv.n_slots; i++) {
            struct conn *c = sv.conns[i];
            bool keep = true;
            if (c == NULL)
                continue;
            /* The handshake deadline holds whatever the peer keeps sending. */
            if (!c->authorized && now >= c->deadline_ms) {
                expire(&sv, c);
                keep = false;
            } else if (r > 0 && (pfd[k].revents & (POLLERR | POLLHUP | POLLNVAL)) &&
                       !(pfd[k].revents & POLLIN))
                keep = false;
            else if (r > 0 && (pfd[k].revents & POLLOUT))
                keep = on_writable(c);
            else if (r > 0 && (pfd[k].revents & POLLIN))
                keep = on_readable(&sv, c);
            else if (now >= c->deadline_ms) {
                expire(&sv, c);
                keep = false;
            }
            if (c->close_after_write && c->out_len == 0)
                keep = false;
            k++;
            if (!keep)
                drop(&sv, i);
        }
        if (r > 0 && (pfd[0].revents & POLLIN)) {
            for (int a = 0; a < ACCEPTS_PER_TURN && accept_one(&sv, listen_fd, now); a++)
                ;
        }
    }

    /* A reply saying the keeper failed is sent before the connections close. */
    for (size_t i = 0; keeper_gone && i < sv.n_slots; i++) {
        if (sv.conns[i] != NULL && sv.conns[i]->out_len > 0)
            (void)on_writable(sv.conns[i]);
    }
    if (keeper_gone)
        status = 1;

cleanup:
    for (size_t i = 0; i < sv.n_slots; i++) {
        if (sv.conns[i] != NULL)
            conn_free(sv.conns[i]);
    }
    free(sv.conns);
    free(pfd);
    gss_release_cred(&minor, &sv.acceptor);
    free(me);
    kasa_ctx_free(sv.ctx);
    return status;
}
