/*
 * One request to an array member: connect with a timeout, establish a mutually
 * authenticated GSS-API (Kerberos) context with host/MEMBER, send the request wrapped
 * with confidentiality, read the wrapped reply. Key material in requests and replies
 * lives only in buffers that are wiped before they are freed.
 */
#include "kasa/member.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "private.h"

#define TIMEOUT_DEFAULT_MS 10000

long kasa_set_gss_error(kasa_ctx *ctx, long code, OM_uint32 major, OM_uint32 minor, const char *fmt,
                        ...)
{
    char *detail = NULL, words[512] = "";
    size_t used = 0;
    krb5_context k;
    va_list ap;

    /* Kerberos minor codes are krb5 error codes, whose words krb5 knows best. */
    if (minor != 0 && kasa_krb5(ctx, &k) == 0) {
        const char *km = krb5_get_error_message(k, (krb5_error_code)minor);
        if (km != NULL && strncmp(km, "Unknown code", 12) != 0)
            used = (size_t)snprintf(words, sizeof(words), "%s", km);
        krb5_free_error_message(k, km);
        if (used > 0)
            minor = 0; /* said; GSS-API's own words for major follow */
    }
    /* Both the mechanism's words (minor) and GSS-API's (major): the minor says why. */
    for (int pass = 0; pass < 2; pass++) {
        OM_uint32 m, ctxv = 0, st = pass == 0 ? minor : major;
        int type = pass == 0 ? GSS_C_MECH_CODE : GSS_C_GSS_CODE;
        if (st == 0)
            continue;
        do {
            gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
            if (GSS_ERROR(gss_display_status(&m, st, type, GSS_C_NO_OID, &ctxv, &b)))
                break;
            used += (size_t)snprintf(words + used, sizeof(words) - used, "%s%.*s", used ? "; " : "",
                                     (int)b.length, (char *)b.value);
            gss_release_buffer(&m, &b);
        } while (ctxv != 0 && used < sizeof(words) - 1);
        if (used >= sizeof(words) - 1)
            break;
    }
    va_start(ap, fmt);
    if (vasprintf(&detail, fmt, ap) < 0)
        detail = NULL;
    va_end(ap);
    kasa_set_error(ctx, code, "%s: %s", detail != NULL ? detail : "GSS-API error",
                   words[0] ? words : "unknown GSS-API error");
    free(detail);
    return code;
}

/* Wait until fd is ready for events, at most timeout_ms. */
static long wait_fd(kasa_ctx *ctx, int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;

    do {
        n = poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return kasa_set_error(ctx, KASA_ERR_MEMBER_UNREACHABLE,
                              "the member did not answer within %d ms", timeout_ms);
    if (n < 0)
        return kasa_set_error(ctx, KASA_ERR_MEMBER_UNREACHABLE, "poll: %s", strerror(errno));
    return 0;
}

static long write_all(kasa_ctx *ctx, int fd, const unsigned char *p, size_t len, int timeout_ms)
{
    while (len > 0) {
        ssize_t w;
        long ret = wait_fd(ctx, fd, POLLOUT, timeout_ms);
        if (ret)
            return ret;
        w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return kasa_set_error(ctx, KASA_ERR_MEMBER_UNREACHABLE, "the connection broke: %s",
                                  strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static long read_all(kasa_ctx *ctx, int fd, unsigned char *p, size_t len, int timeout_ms)
{
    while (len > 0) {
        ssize_t r;
        long ret = wait_fd(ctx, fd, POLLIN, timeout_ms);
        if (ret)
            return ret;
        r = recv(fd, p, len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r == 0)
            return kasa_set_error(ctx, KASA_ERR_MEMBER_UNREACHABLE,
                                  "the member closed the connection");
        if (r < 0)
            return kasa_set_error(ctx, KASA_ERR_MEMBER_UNREACHABLE, "the connection broke: %s",
                                  strerror(errno));
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

long kasa_frame_send(kasa_ctx *ctx, int fd, unsigned type, const void *body, size_t len,
                     int timeout_ms)
{
    unsigned char hdr[5];
    long ret;

    if (len > KASA_FRAME_MAX)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a frame of %zu bytes is too long", len);
    kasa_frame_header(type, len, hdr);
    ret = write_all(ctx, fd, hdr, sizeof(hdr), timeout_ms);
    if (!ret && len > 0)
        ret = write_all(ctx, fd, body, len, timeout_ms);
    return ret;
}

long kasa_frame_recv(kasa_ctx *ctx, int fd, int timeout_ms, unsigned *type, unsigned char **body,
                     size_t *len)
{
    unsigned char hdr[5], *buf;
    const unsigned char *b;
    size_t blen, used;
    long ret;

    *body = NULL;
    *len = 0;
    ret = read_all(ctx, fd, hdr, sizeof(hdr), timeout_ms);
    if (ret)
        return ret;
    /* Check the header alone: kasa_frame_parse wants the body too, so ask for its size. */
    ret = kasa_frame_parse(ctx, hdr, sizeof(hdr), type, &b, &blen, &used);
    if (ret != KASA_ERR_AGAIN && ret != 0)
        return ret;
    blen = ((size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3]) - 1;
    if (hdr[4] < KASA_FRAME_TOKEN || hdr[4] > KASA_FRAME_ERROR)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a frame of unknown type %u", hdr[4]);
    *type = hdr[4];
    buf = malloc(blen + 1);
    if (buf == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    ret = read_all(ctx, fd, buf, blen, timeout_ms);
    if (ret) {
        kasa_proto_buf_free(buf, blen);
        return ret;
    }
    buf[blen] = '\0';
    *body = buf;
    *len = blen;
    return 0;
}

/* Connect to address:port within timeout_ms. */
static long connect_to(kasa_ctx *ctx, const char *address, int port, int timeout_ms, int *fd_out)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[16];
    long ret = KASA_ERR_MEMBER_UNREACHABLE;
    int fd = -1, gai;

    *fd_out = -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    snprintf(portstr, sizeof(portstr), "%d", port);
    gai = getaddrinfo(address, portstr, &hints, &res);
    if (gai != 0)
        return kasa_set_error(ctx, KASA_ERR_MEMBER_UNREACHABLE, "cannot resolve %s: %s", address,
                              gai_strerror(gai));
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int err = 0;
        socklen_t elen = sizeof(err);
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && wait_fd(ctx, fd, POLLOUT, timeout_ms) == 0 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)) {
            ret = 0;
            break;
        }
        kasa_set_error(ctx, KASA_ERR_MEMBER_UNREACHABLE, "cannot connect to %s port %d: %s",
                       address, port, strerror(err != 0 ? err : errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (!ret)
        *fd_out = fd;
    return ret;
}

struct kasa_member_creds {
    gss_cred_id_t cred;
    char ccache[64]; /* "" when the default ccache is used */
};

/* The controller's credentials: cfg's principal from its keytab (into the memory ccache
 * named in ccache), else the default. */
static long client_cred(kasa_ctx *ctx, const kasa_config *cfg, gss_cred_id_t *cred, char *ccache)
{
    gss_buffer_desc nb;
    gss_name_t name = GSS_C_NO_NAME;
    gss_key_value_element_desc elems[2];
    gss_key_value_set_desc store = {2, elems};
    OM_uint32 major, minor, scratch;
    static atomic_ulong serial;

    *cred = GSS_C_NO_CREDENTIAL;
    ccache[0] = '\0';
    if (cfg == NULL || cfg->keytab == NULL)
        return 0;
    nb.value = cfg->principal;
    nb.length = strlen(cfg->principal);
    major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (GSS_ERROR(major))
        return kasa_set_gss_error(ctx, KASA_ERR_CONFIG, major, minor, "bad principal %s",
                                  cfg->principal);
    /* A private memory ccache: kasa never writes tickets to disk for itself. */
    snprintf(ccache, 64, "MEMORY:kasa-%d-%lu", (int)getpid(), atomic_fetch_add(&serial, 1) + 1);
    elems[0].key = "client_keytab";
    elems[0].value = cfg->keytab;
    elems[1].key = "ccache";
    elems[1].value = ccache;
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_INITIATE,
                                  &store, cred, NULL, NULL);
    gss_release_name(&scratch, &name);
    if (GSS_ERROR(major))
        return kasa_set_gss_error(ctx, KASA_ERR_MEMBER_AUTH, major, minor,
                                  "cannot get credentials for %s from %s", cfg->principal,
                                  cfg->keytab);
    return 0;
}

/* Forget a memory ccache and its tickets. */
static void destroy_ccache(const char *name)
{
    krb5_context kc;
    krb5_ccache cc;

    if (name[0] == '\0' || krb5_init_context(&kc) != 0)
        return;
    if (krb5_cc_resolve(kc, name, &cc) == 0)
        krb5_cc_destroy(kc, cc);
    krb5_free_context(kc);
}

long kasa_member_creds_get(kasa_ctx *ctx, const kasa_config *cfg, const kasa_member_addr *addrs,
                           size_t n, kasa_member_creds **out)
{
    kasa_member_creds *c = calloc(1, sizeof(*c));
    OM_uint32 minor;
    long ret;

    *out = NULL;
    if (c == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    ret = client_cred(ctx, cfg, &c->cred, c->ccache);
    if (ret) {
        free(c);
        return ret;
    }
    /* Each member's ticket, one at a time: the context is thrown away, the ticket stays in
     * the credentials' ccache for the call. */
    for (size_t i = 0; i < n; i++) {
        char service[1100];
        gss_buffer_desc nb, tok = GSS_C_EMPTY_BUFFER;
        gss_name_t target = GSS_C_NO_NAME;
        gss_ctx_id_t g = GSS_C_NO_CONTEXT;
        snprintf(service, sizeof(service), "host@%s", addrs[i].host);
        nb.value = service;
        nb.length = strlen(service);
        if (!GSS_ERROR(gss_import_name(&minor, &nb, GSS_C_NT_HOSTBASED_SERVICE, &target)))
            (void)gss_init_sec_context(&minor, c->cred, &g, target, (gss_OID)gss_mech_krb5,
                                       GSS_C_MUTUAL_FLAG, 0, GSS_C_NO_CHANNEL_BINDINGS,
                                       GSS_C_NO_BUFFER, NULL, &tok, NULL, NULL);
        gss_release_buffer(&minor, &tok);
        gss_delete_sec_context(&minor, &g, GSS_C_NO_BUFFER);
        gss_release_name(&minor, &target);
    }
    *out = c;
    return 0;
}

void kasa_member_creds_free(kasa_member_creds *c)
{
    OM_uint32 minor;

    if (c == NULL)
        return;
    if (c->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &c->cred);
    destroy_ccache(c->ccache);
    free(c);
}

/* Establish the context with host@HOST, mutual authentication and confidentiality. */
static long handshake(kasa_ctx *ctx, int fd, gss_cred_id_t cred, const char *host, int timeout_ms,
                      gss_ctx_id_t *gctx)
{
    gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER, nb;
    gss_name_t target = GSS_C_NO_NAME;
    OM_uint32 major, minor, scratch, flags = 0;
    unsigned char *body = NULL;
    size_t blen = 0;
    char service[1100];
    unsigned type;
    long ret = 0;

    snprintf(service, sizeof(service), "host@%s", host);
    nb.value = service;
    nb.length = strlen(service);
    major = gss_import_name(&minor, &nb, GSS_C_NT_HOSTBASED_SERVICE, &target);
    if (GSS_ERROR(major))
        return kasa_set_gss_error(ctx, KASA_ERR_MEMBER_AUTH, major, minor, "bad member name %s",
                                  host);
    for (;;) {
        major = gss_init_sec_context(&minor, cred, gctx, target, (gss_OID)gss_mech_krb5,
                                     GSS_C_MUTUAL_FLAG | GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG |
                                         GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG,
                                     0, GSS_C_NO_CHANNEL_BINDINGS, &in, NULL, &out, &flags, NULL);
        kasa_proto_buf_free(body, blen);
        body = NULL;
        if (out.length > 0) {
            ret = kasa_frame_send(ctx, fd, KASA_FRAME_TOKEN, out.value, out.length, timeout_ms);
            gss_release_buffer(&scratch, &out);
            if (ret)
                break;
        }
        if (GSS_ERROR(major)) {
            ret = kasa_set_gss_error(ctx, KASA_ERR_MEMBER_AUTH, major, minor,
                                     "cannot authenticate to host/%s", host);
            break;
        }
        if (!(major & GSS_S_CONTINUE_NEEDED))
            break;
        ret = kasa_frame_recv(ctx, fd, timeout_ms, &type, &body, &blen);
        if (ret)
            break;
        if (type == KASA_FRAME_ERROR) {
            ret = kasa_set_error(ctx, KASA_ERR_MEMBER_AUTH, "the member refused: %.*s",
                                 (int)(blen > 300 ? 300 : blen), (char *)body);
            break;
        }
        if (type != KASA_FRAME_TOKEN) {
            ret = kasa_set_error(ctx, KASA_ERR_PROTO, "the member sent a frame out of turn");
            break;
        }
        in.value = body;
        in.length = blen;
    }
    kasa_proto_buf_free(body, blen);
    gss_release_name(&minor, &target);
    if (!ret && (!(flags & GSS_C_MUTUAL_FLAG) || !(flags & GSS_C_CONF_FLAG)))
        ret =
            kasa_set_error(ctx, KASA_ERR_MEMBER_AUTH,
                           "host/%s did not give mutual authentication and confidentiality", host);
    return ret;
}

long kasa_member_call(kasa_ctx *ctx, const kasa_config *cfg, const kasa_member_addr *addr,
                      const kasa_request *req, kasa_reply *rep)
{
    int timeout = addr->timeout_ms > 0 ? addr->timeout_ms : TIMEOUT_DEFAULT_MS;
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    char ccache[64] = "";
    gss_ctx_id_t gctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in, out = GSS_C_EMPTY_BUFFER;
    OM_uint32 major, minor;
    unsigned char *msg = NULL, *body = NULL;
    size_t msg_len = 0, blen = 0;
    unsigned type;
    int conf = 0, fd = -1;
    long ret;

    memset(rep, 0, sizeof(*rep));
    ret = kasa_request_encode(ctx, req, &msg, &msg_len);
    if (!ret && addr->creds != NULL)
        cred = addr->creds->cred;
    else if (!ret)
        ret = client_cred(ctx, cfg, &cred, ccache);
    if (!ret)
        ret = connect_to(ctx, addr->address != NULL ? addr->address : addr->host, addr->port,
                         timeout, &fd);
    if (!ret)
        ret = handshake(ctx, fd, cred, addr->host, timeout, &gctx);
    if (ret)
        goto cleanup;

    in.value = msg;
    in.length = msg_len;
    major = gss_wrap(&minor, gctx, 1, GSS_C_QOP_DEFAULT, &in, &conf, &out);
    if (GSS_ERROR(major) || !conf) {
        ret = kasa_set_gss_error(ctx, KASA_ERR_MEMBER_AUTH, major, minor, "cannot wrap");
        goto cleanup;
    }
    ret = kasa_frame_send(ctx, fd, KASA_FRAME_WRAPPED, out.value, out.length, timeout);
    gss_release_buffer(&minor, &out); /* ciphertext: nothing secret to wipe */
    if (!ret)
        ret = kasa_frame_recv(ctx, fd, timeout, &type, &body, &blen);
    if (ret)
        goto cleanup;
    if (type != KASA_FRAME_WRAPPED) {
        ret = kasa_set_error(ctx, KASA_ERR_PROTO, "the member answered with a %s",
                             type == KASA_FRAME_ERROR ? "plain error" : "frame out of turn");
        goto cleanup;
    }
    in.value = body;
    in.length = blen;
    major = gss_unwrap(&minor, gctx, &in, &out, &conf, NULL);
    /* A replayed or reordered reply is not the answer to this request. */
    if (!GSS_ERROR(major) &&
        (major & (GSS_S_DUPLICATE_TOKEN | GSS_S_OLD_TOKEN | GSS_S_UNSEQ_TOKEN | GSS_S_GAP_TOKEN))) {
        kasa_zap(out.value, out.length);
        gss_release_buffer(&minor, &out);
        ret = kasa_set_error(ctx, KASA_ERR_MEMBER_AUTH,
                             "the member's reply was replayed or out "
                             "of order");
        goto cleanup;
    }
    if (GSS_ERROR(major) || !conf) {
        ret = kasa_set_gss_error(ctx, KASA_ERR_MEMBER_AUTH, major, minor,
                                 "cannot unwrap the member's reply");
        goto cleanup;
    }
    ret = kasa_reply_decode(ctx, out.value, out.length, rep);
    kasa_zap(out.value, out.length);
    gss_release_buffer(&minor, &out);
    if (ret)
        goto cleanup;
    if (rep->status == KASA_REPLY_DENIED)
        ret = kasa_set_error(ctx, KASA_ERR_MEMBER_DENIED, "%s", rep->message);
    else if (rep->status != KASA_REPLY_OK)
        ret = kasa_set_error(ctx, KASA_ERR_MEMBER, "%s", rep->message);

cleanup:
    kasa_proto_buf_free(msg, KASA_FRAME_MAX);
    kasa_proto_buf_free(body, blen);
    if (gctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &gctx, GSS_C_NO_BUFFER);
    if (addr->creds == NULL) {
        if (cred != GSS_C_NO_CREDENTIAL)
            gss_release_cred(&minor, &cred);
        destroy_ccache(ccache);
    }
    if (fd >= 0)
        close(fd);
    return ret;
}
