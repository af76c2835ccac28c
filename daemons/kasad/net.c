/*
 * kasad's network process: one poll() loop over every connection, so a slow or silent
 * peer holds up nobody; each read has a deadline. A connection first establishes a
 * GSS-API context (kasad is the acceptor, host/MEMBER from its own keytab); the peer's
 * principal must be on the ACL; then each wrapped request goes to the keeper, and the
 * keeper's reply goes back wrapped. Malformed, truncated and oversized frames get an
 * error and the connection is closed; the loop goes on serving the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
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

#define MAX_CONNS 64
#define INBUF_MAX (KASA_FRAME_MAX + 16)

struct conn {
    int fd;
    char peer[64]; /* address, for the log */
    gss_ctx_id_t gctx;
    bool established;
    bool denied;       /* authenticated, but not on the ACL */
    char *client;      /* the authenticated principal */
    unsigned char *in; /* bytes read so far */
    size_t in_len;
    unsigned char *out; /* bytes still to write */
    size_t out_len, out_off;
    bool close_after_write;
    long long deadline_ms;
};

static volatile sig_atomic_t stopping;
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

/* A plain error before authentication, then close. */
static void refuse(struct conn *c, const char *why)
{
    kasad_log("%s: refused: %s", c->peer, why);
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
        kasad_log("cannot read ACL %s: %s; refusing everyone", acl, strerror(errno));
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
static void ask_keeper(struct conn *c, kasa_ctx *ctx, int keeper_fd, const char *me,
                       const unsigned char *msg, size_t len)
{
    unsigned char *buf = malloc(KASA_FRAME_MAX + 1);
    kasa_reply rep;
    ssize_t n;

    if (buf == NULL || send(keeper_fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len ||
        (n = recv(keeper_fd, buf, KASA_FRAME_MAX + 1, 0)) <= 0 ||
        kasa_reply_decode(ctx, buf, (size_t)n, &rep) != 0) {
        kasad_log("the keeper did not answer; stopping");
        free(buf);
        stopping = 1;
        send_status(c, ctx, KASA_REPLY_FAILED, "kasad's keeper failed");
        return;
    }
    kasa_zap(buf, (size_t)n);
    free(buf);
    free(rep.member);
    rep.member = strdup(me);
    rep.now = (int64_t)time(NULL) + opts_clock_offset;
    if (rep.status != KASA_REPLY_OK)
        kasad_log("%s (%s): request failed: %s", c->peer, c->client, rep.message);
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
    default:
        return "unknown";
    }
}

/* One wrapped request from an authenticated, authorized peer. */
static void on_request(struct conn *c, kasa_ctx *ctx, int keeper_fd, const char *me,
                       const unsigned char *body, size_t len)
{
    gss_buffer_desc in = {len, (void *)body}, out = GSS_C_EMPTY_BUFFER;
    OM_uint32 major, minor;
    kasa_request req;
    int conf = 0;

    major = gss_unwrap(&minor, c->gctx, &in, &out, &conf, NULL);
    if (GSS_ERROR(major) || !conf) {
        kasad_log("%s (%s): a message that does not unwrap; closing", c->peer, c->client);
        c->close_after_write = true;
        gss_release_buffer(&minor, &out);
        return;
    }
    if (c->denied) {
        send_status(c, ctx, KASA_REPLY_DENIED,
                    "this principal is not on the member's ACL; add it to kasad's --acl file");
    } else if (kasa_request_decode(ctx, out.value, out.length, &req) != 0) {
        kasad_log("%s (%s): %s", c->peer, c->client, kasa_error(ctx));
        send_status(c, ctx, KASA_REPLY_BAD, kasa_error(ctx));
    } else {
        kasad_log("%s (%s): %s", c->peer, c->client, op_name(req.op));
        ask_keeper(c, ctx, keeper_fd, me, out.value, out.length);
        kasa_request_clear(&req);
    }
    kasa_zap(out.value, out.length);
    gss_release_buffer(&minor, &out);
}

/* One GSS context token from the peer. */
static void on_token(struct conn *c, kasa_ctx *ctx, gss_cred_id_t acceptor, const char *acl,
                     const unsigned char *body, size_t len)
{
    gss_buffer_desc in = {len, (void *)body}, out = GSS_C_EMPTY_BUFFER, nb;
    gss_name_t src = GSS_C_NO_NAME;
    OM_uint32 major, minor, scratch, flags = 0;

    major = gss_accept_sec_context(&minor, &c->gctx, acceptor, &in, GSS_C_NO_CHANNEL_BINDINGS, &src,
                                   NULL, &out, &flags, NULL, NULL);
    if (out.length > 0)
        queue(c, KASA_FRAME_TOKEN, out.value, out.length);
    gss_release_buffer(&scratch, &out);
    if (GSS_ERROR(major)) {
        kasa_set_gss_error(ctx, KASA_ERR_MEMBER_AUTH, major, minor, "authentication failed");
        refuse(c, kasa_error(ctx));
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
    if (c->client == NULL || !(flags & GSS_C_CONF_FLAG)) {
        refuse(c, "confidentiality is required");
        return;
    }
    if (!acl_allows(acl, c->client)) {
        /* Answered at its first request, so the peer reads the refusal, not a reset. */
        kasad_log("%s: refused %s: not on the ACL %s", c->peer, c->client, acl);
        c->denied = true;
        return;
    }
    kasad_log("%s: authenticated %s", c->peer, c->client);
}

/* Read what is there; handle every whole frame. Returns false to drop the connection. */
static bool on_readable(struct conn *c, kasa_ctx *ctx, gss_cred_id_t acceptor,
                        const struct kasad_opts *opts, int keeper_fd, const char *me)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, INBUF_MAX - c->in_len, 0);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    c->in_len += (size_t)n;
    c->deadline_ms = now_ms() + opts->timeout_ms;
    while (!c->close_after_write) {
        const unsigned char *body;
        size_t blen, used;
        unsigned type;
        long ret = kasa_frame_parse(ctx, c->in, c->in_len, &type, &body, &blen, &used);
        if (ret == KASA_ERR_AGAIN)
            break;
        if (ret) {
            refuse(c, kasa_error(ctx));
            break;
        }
        if (type == KASA_FRAME_TOKEN && !c->established)
            on_token(c, ctx, acceptor, opts->acl, body, blen);
        else if (type == KASA_FRAME_WRAPPED && c->established)
            on_request(c, ctx, keeper_fd, me, body, blen);
        else
            refuse(c, "a frame out of turn");
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

static long acceptor_cred(kasa_ctx *ctx, const struct kasad_opts *opts, gss_cred_id_t *cred,
                          char **me)
{
    gss_key_value_element_desc elem = {"keytab", opts->keytab};
    gss_key_value_set_desc store = {1, &elem};
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
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT,
                                  opts->keytab != NULL ? &store : NULL, cred, NULL, NULL);
    gss_release_name(&minor, &name);
    if (GSS_ERROR(major))
        return kasa_set_gss_error(ctx, KASA_ERR_CONFIG, major, minor, "cannot use keytab %s as %s",
                                  opts->keytab != NULL ? opts->keytab : "(default)",
                                  opts->principal != NULL ? opts->principal : "any principal");
    return 0;
}

int net_run(const struct kasad_opts *opts, int keeper_fd, int listen_fd)
{
    struct conn *conns[MAX_CONNS] = {0};
    struct pollfd pfd[MAX_CONNS + 1];
    gss_cred_id_t acceptor = GSS_C_NO_CREDENTIAL;
    kasa_ctx *ctx = NULL;
    char *me = NULL;
    OM_uint32 minor;
    int status = 0;

    if (kasa_ctx_new(&ctx) != 0)
        return 1;
    opts_clock_offset = opts->clock_offset;
    if (acceptor_cred(ctx, opts, &acceptor, &me) != 0) {
        kasad_log("%s", kasa_error(ctx));
        kasa_ctx_free(ctx);
        free(me);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    while (!stopping) {
        long long now = now_ms(), next = now + 60000;
        int n = 0, r;
        pfd[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (int i = 0; i < MAX_CONNS; i++) {
            if (conns[i] == NULL)
                continue;
            if (conns[i]->deadline_ms < next)
                next = conns[i]->deadline_ms;
            pfd[n++] = (struct pollfd){
                .fd = conns[i]->fd,
                .events = (short)(conns[i]->out_len > 0 ? POLLOUT : POLLIN),
            };
        }
        r = poll(pfd, (nfds_t)n, (int)(next > now ? next - now : 0));
        if (r < 0 && errno != EINTR) {
            kasad_log("poll: %s", strerror(errno));
            status = 1;
            break;
        }
        now = now_ms();
        /* Existing connections first, in the order they were polled. */
        for (int i = 0, k = 1; i < MAX_CONNS; i++) {
            struct conn *c = conns[i];
            bool keep = true;
            if (c == NULL)
                continue;
            if (r > 0 && (pfd[k].revents & (POLLERR | POLLHUP | POLLNVAL)) &&
                !(pfd[k].revents & POLLIN))
                keep = false;
            else if (r > 0 && (pfd[k].revents & POLLOUT))
                keep = on_writable(c);
            else if (r > 0 && (pfd[k].revents & POLLIN))
                keep = on_readable(c, ctx, acceptor, opts, keeper_fd, me);
            else if (now >= c->deadline_ms) {
                kasad_log("%s: no message within %d ms; closing", c->peer, opts->timeout_ms);
                keep = false;
            }
            if (c->close_after_write && c->out_len == 0)
                keep = false;
            k++;
            if (!keep) {
                conn_free(c);
                conns[i] = NULL;
            }
        }
        if (r > 0 && (pfd[0].revents & POLLIN)) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            int slot = -1;
            for (int i = 0; i < MAX_CONNS && slot < 0 && fd >= 0; i++)
                slot = conns[i] == NULL ? i : -1;
            if (fd >= 0 && slot < 0) {
                kasad_log("too many connections; closing a new one");
                close(fd);
            } else if (fd >= 0) {
                struct conn *c = calloc(1, sizeof(*c));
                if (c == NULL || (c->in = malloc(INBUF_MAX)) == NULL) {
                    free(c);
                    close(fd);
                    continue;
                }
                c->fd = fd;
                c->gctx = GSS_C_NO_CONTEXT;
                c->deadline_ms = now + opts->timeout_ms;
                if (getnameinfo((struct sockaddr *)&ss, sl, c->peer, sizeof(c->peer), NULL, 0,
                                NI_NUMERICHOST) != 0)
                    strcpy(c->peer, "?");
                conns[slot] = c;
            }
        }
    }
    for (int i = 0; i < MAX_CONNS; i++) {
        if (conns[i] != NULL)
            conn_free(conns[i]);
    }
    gss_release_cred(&minor, &acceptor);
    free(me);
    kasa_ctx_free(ctx);
    return status;
}
