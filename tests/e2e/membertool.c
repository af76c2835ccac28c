/*
 * A test driver for kasad: well-formed requests through the real client code, and
 * hostile bytes through a raw socket, to show that kasad refuses them and keeps serving.
 *
 *   membertool status HOST ADDR PORT      a status request as kasa.conf's principal
 *   membertool export HOST ADDR PORT      an export request (prints only how many kvnos)
 *   membertool stage HOST ADDR PORT KVNO PRINCIPAL...   stage fresh random keys
 *   membertool raw ADDR PORT garbage|oversized|truncated|silent|badtoken|wrapped-first|
 *                            ntlm|spnego-ntlm
 *   membertool replay HOST ADDR PORT      one wrapped status request sent twice
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <unistd.h>

#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "kasa/config.h"
#include "kasa/member.h"
#include "kasa/proto.h"

/* An NTLMSSP NEGOTIATE message (MS-NLMP 2.2.1.1): no domain, no workstation. */
static const unsigned char ntlm_negotiate[32] = {
    'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 1, 0, 0, 0, 0x07, 0x82, 0x08, 0xa2,
};

/* DER: tag, length (short or one-byte long form), content; returns the bytes written. */
static size_t tlv(unsigned char *out, unsigned tag, const unsigned char *content, size_t len)
{
    size_t n = 0;

    out[n++] = (unsigned char)tag;
    if (len >= 128)
        out[n++] = 0x81;
    out[n++] = (unsigned char)len;
    memmove(out + n, content, len);
    return n + len;
}

/* The NTLMSSP NEGOTIATE inside an SPNEGO NegTokenInit (RFC 4178), as a browser sends it. */
static size_t spnego_ntlm(unsigned char *out)
{
    static const unsigned char spnego[] = {0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
    static const unsigned char ntlm_oid[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                             0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};
    unsigned char a[200], b[200], c[200];
    size_t na, nb, nc;

    na = tlv(a, 0x30, ntlm_oid, sizeof(ntlm_oid)); /* MechTypeList */
    nb = tlv(b, 0xa0, a, na);                      /* [0] mechTypes */
    na = tlv(a, 0x04, ntlm_negotiate, sizeof(ntlm_negotiate));
    nc = tlv(c, 0xa2, a, na); /* [2] mechToken */
    memcpy(b + nb, c, nc);
    na = tlv(a, 0x30, b, nb + nc); /* NegTokenInit */
    nb = tlv(b, 0xa0, a, na);      /* [0] negTokenInit */
    memcpy(c, spnego, sizeof(spnego));
    memcpy(c + sizeof(spnego), b, nb);
    return tlv(out, 0x60, c, sizeof(spnego) + nb);
}

static int raw(const char *addr, int port, const char *how)
{
    struct sockaddr_in sin;
    unsigned char buf[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        perror("connect");
        return 1;
    }
    if (strcmp(how, "garbage") == 0) {
        (void)!write(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    } else if (strcmp(how, "oversized") == 0) {
        static const unsigned char hdr[] = {0x7f, 0xff, 0xff, 0xff, 1};
        (void)!write(fd, hdr, sizeof(hdr));
    } else if (strcmp(how, "truncated") == 0) {
        static const unsigned char hdr[] = {0, 0, 0, 100, 1, 'a', 'b'};
        (void)!write(fd, hdr, sizeof(hdr));
    } else if (strcmp(how, "badtoken") == 0) {
        unsigned char frame[5 + 64];
        kasa_frame_header(KASA_FRAME_TOKEN, 64, frame);
        memset(frame + 5, 0x60, 64);
        (void)!write(fd, frame, sizeof(frame));
    } else if (strcmp(how, "wrapped-first") == 0) {
        unsigned char frame[5 + 8];
        kasa_frame_header(KASA_FRAME_WRAPPED, 8, frame);
        memset(frame + 5, 1, 8);
        (void)!write(fd, frame, sizeof(frame));
    } else if (strcmp(how, "ntlm") == 0 || strcmp(how, "spnego-ntlm") == 0) {
        unsigned char frame[5 + 256];
        size_t len = sizeof(ntlm_negotiate);
        if (how[0] == 's')
            len = spnego_ntlm(frame + 5);
        else
            memcpy(frame + 5, ntlm_negotiate, len);
        kasa_frame_header(KASA_FRAME_TOKEN, len, frame);
        (void)!write(fd, frame, 5 + len);
    } else if (strcmp(how, "silent") != 0) {
        fprintf(stderr, "membertool: unknown raw kind %s\n", how);
        return 2;
    }
    /* Print what comes back: a plain error frame, or nothing before the close. */
    n = read(fd, buf, sizeof(buf) - 1);
    if (n >= 5 && buf[4] == KASA_FRAME_ERROR) {
        buf[n] = '\0';
        printf("error frame: %s\n", (char *)buf + 5);
    } else {
        printf("closed after %zd bytes\n", n < 0 ? (ssize_t)0 : n);
    }
    close(fd);
    return 0;
}

/* Establish a context with kasad as cfg's principal; 0 when done. */
static int establish(kasa_ctx *ctx, const kasa_config *cfg, int fd, const char *host,
                     gss_ctx_id_t *gctx)
{
    gss_key_value_element_desc elems[2] = {{"client_keytab", cfg->keytab},
                                           {"ccache", "MEMORY:membertool"}};
    gss_key_value_set_desc store = {2, elems};
    gss_buffer_desc nb = {strlen(cfg->principal), cfg->principal}, in = GSS_C_EMPTY_BUFFER;
    gss_name_t me = GSS_C_NO_NAME, target = GSS_C_NO_NAME;
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    OM_uint32 major, minor;
    unsigned char *body = NULL;
    size_t blen = 0;
    unsigned type;
    char service[300];
    int st = 1;

    snprintf(service, sizeof(service), "host@%s", host);
    if (GSS_ERROR(gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &me)) ||
        GSS_ERROR(gss_acquire_cred_from(&minor, me, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                        GSS_C_INITIATE, &store, &cred, NULL, NULL)))
        goto done;
    nb.value = service;
    nb.length = strlen(service);
    if (GSS_ERROR(gss_import_name(&minor, &nb, GSS_C_NT_HOSTBASED_SERVICE, &target)))
        goto done;
    for (;;) {
        gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
        major = gss_init_sec_context(&minor, cred, gctx, target, (gss_OID)gss_mech_krb5,
                                     GSS_C_MUTUAL_FLAG | GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG |
                                         GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG,
                                     0, GSS_C_NO_CHANNEL_BINDINGS, &in, NULL, &out, NULL, NULL);
        free(body);
        body = NULL;
        if (out.length > 0 &&
            kasa_frame_send(ctx, fd, KASA_FRAME_TOKEN, out.value, out.length, 5000) != 0)
            major = GSS_S_FAILURE;
        gss_release_buffer(&minor, &out);
        if (GSS_ERROR(major))
            goto done;
        if (!(major & GSS_S_CONTINUE_NEEDED))
            break;
        if (kasa_frame_recv(ctx, fd, 5000, &type, &body, &blen) != 0 || type != KASA_FRAME_TOKEN)
            goto done;
        in.value = body;
        in.length = blen;
    }
    st = 0;
done:
    free(body);
    gss_release_name(&minor, &me);
    gss_release_name(&minor, &target);
    gss_release_cred(&minor, &cred);
    return st;
}

/* Send one wrapped status request twice on one connection: the second must be refused. */
static int replay(kasa_ctx *ctx, const kasa_config *cfg, const char *host, const char *addr,
                  int port)
{
    struct sockaddr_in sin;
    gss_ctx_id_t gctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in, wrapped = GSS_C_EMPTY_BUFFER;
    kasa_request req;
    unsigned char *msg = NULL;
    size_t len = 0;
    OM_uint32 minor;
    int fd = socket(AF_INET, SOCK_STREAM, 0), conf = 0;

    memset(&req, 0, sizeof(req));
    req.op = KASA_OP_STATUS;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        establish(ctx, cfg, fd, host, &gctx) != 0 || kasa_request_encode(ctx, &req, &msg, &len)) {
        printf("failed: cannot set up the exchange\n");
        return 1;
    }
    in.value = msg;
    in.length = len;
    if (GSS_ERROR(gss_wrap(&minor, gctx, 1, GSS_C_QOP_DEFAULT, &in, &conf, &wrapped)))
        return 1;
    for (int round = 1; round <= 2; round++) {
        unsigned char *body = NULL;
        size_t blen = 0;
        unsigned type;
        gss_buffer_desc rin, rout = GSS_C_EMPTY_BUFFER;
        kasa_reply rep;
        if (kasa_frame_send(ctx, fd, KASA_FRAME_WRAPPED, wrapped.value, wrapped.length, 5000) ||
            kasa_frame_recv(ctx, fd, 5000, &type, &body, &blen)) {
            printf("%s: no answer (%s)\n", round == 1 ? "first" : "second", kasa_error(ctx));
            continue;
        }
        rin.value = body;
        rin.length = blen;
        if (type != KASA_FRAME_WRAPPED ||
            GSS_ERROR(gss_unwrap(&minor, gctx, &rin, &rout, NULL, NULL)) ||
            kasa_reply_decode(ctx, rout.value, rout.length, &rep) != 0) {
            printf("%s: an answer that does not unwrap\n", round == 1 ? "first" : "second");
        } else {
            printf("%s: %s %s\n", round == 1 ? "first" : "second",
                   rep.status == KASA_REPLY_OK ? "accepted" : "refused", rep.message);
            kasa_reply_clear(&rep);
        }
        gss_release_buffer(&minor, &rout);
        free(body);
    }
    gss_release_buffer(&minor, &wrapped);
    gss_delete_sec_context(&minor, &gctx, GSS_C_NO_BUFFER);
    kasa_proto_buf_free(msg, len);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    kasa_ctx *ctx = NULL;
    kasa_config *cfg = NULL;
    kasa_request req;
    kasa_reply rep;
    kasa_member_addr addr;
    long ret;
    int status;

    if (argc >= 5 && strcmp(argv[1], "raw") == 0)
        return raw(argv[2], atoi(argv[3]), argv[4]);
    if (argc < 5 || kasa_ctx_new(&ctx) != 0) {
        fprintf(stderr, "usage: see the comment at the top of membertool.c\n");
        return 2;
    }
    memset(&req, 0, sizeof(req));
    memset(&addr, 0, sizeof(addr));
    addr.host = argv[2];
    addr.address = argv[3];
    addr.port = atoi(argv[4]);
    addr.timeout_ms = 5000;
    ret = kasa_config_load(ctx, NULL, &cfg);
    if (!ret && strcmp(argv[1], "replay") == 0) {
        status = replay(ctx, cfg, argv[2], argv[3], atoi(argv[4]));
        kasa_config_free(cfg);
        kasa_ctx_free(ctx);
        return status;
    }
    if (!ret && strcmp(argv[1], "status") == 0) {
        req.op = KASA_OP_STATUS;
    } else if (!ret && strcmp(argv[1], "export") == 0) {
        req.op = KASA_OP_EXPORT;
    } else if (!ret && strcmp(argv[1], "stage") == 0 && argc >= 7) {
        req.op = KASA_OP_STAGE;
        req.stage.kvno = (unsigned)atoi(argv[5]);
        req.stage.n_principals = (size_t)(argc - 6);
        req.stage.principals = calloc((size_t)argc, sizeof(char *));
        for (int i = 6; i < argc; i++)
            req.stage.principals[i - 6] = strdup(argv[i]);
        ret = kasa_keyset_generate(ctx, req.stage.kvno, cfg->enctypes, cfg->n_enctypes,
                                   &req.stage.keys);
        if (getrandom(req.nonce, sizeof(req.nonce), 0) < 0)
            ret = 1;
    } else if (!ret) {
        fprintf(stderr, "membertool: bad usage\n");
        return 2;
    }
    if (!ret)
        ret = kasa_member_call(ctx, cfg, &addr, &req, &rep);
    if (ret) {
        printf("failed: %s\n", kasa_error(ctx));
        status = 1;
    } else {
        printf("ok: %s holds %zu kvno%s\n", rep.member, rep.n_sets, rep.n_sets == 1 ? "" : "s");
        status = 0;
    }
    kasa_reply_clear(&rep);
    kasa_request_clear(&req);
    kasa_config_free(cfg);
    kasa_ctx_free(ctx);
    return status;
}
