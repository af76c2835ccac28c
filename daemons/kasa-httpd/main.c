/*
 * kasa-httpd: a Negotiate (SPNEGO, RFC 4559) HTTP endpoint on an array member. Kerberos
 * through the member's array keytab (read-only: kasad owns it; a rolled keytab is seen
 * at the next request), NTLM through gss-ntlmssp when the client cannot do Kerberos
 * (multi-leg, bound to the TCP connection), Basic never. Every attempt becomes one line
 * of the auth log, naming the inner mechanism. Serves the seed's Autodiscover and EWS
 * paths, /whoami, and an auth_request mode for nginx or HAProxy.
 *
 * HTTP is libmicrohttpd's; base64 is GnuTLS's; GSS-API, Kerberos, SPNEGO and NTLM are
 * MIT's and gss-ntlmssp's. What is here is the glue and the log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>
#include <microhttpd.h>
#include <com_err.h>
#include <profile.h>

#include "kasa/authlog.h"
#include "kasa/kasa.h"
#include "kasa/token.h"

#define TOKEN_MAX (48 * 1024) /* a base64 Negotiate value; Kerberos tokens with PACs fit */

struct opts {
    const char *listen;
    int port;
    const char *keytab;
    const char *member;
    const char *auth_log;
    const char *log;
    const char *pidfile;
    bool auth_request;
    const char *tls_cert, *tls_key;
};

/* Per TCP connection: an NTLM exchange in progress, or its result. */
struct conn {
    gss_ctx_id_t gctx;
    char *principal; /* authenticated by NTLM on this connection */
};

static struct opts o = {.listen = "0.0.0.0", .port = 80};
static char *config_strings[16];
static size_t n_config_strings;
static gss_cred_id_t acceptor = GSS_C_NO_CREDENTIAL;
static FILE *auth_log, *log_file;
static kasa_ctx *ctx;
static volatile sig_atomic_t stopping;

static const gss_OID_desc ntlm_oid = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};

static void say(const char *fmt, ...) KASA_PRINTF(1, 2);

static void say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kasa_log_line(log_file, "kasa-httpd", fmt, ap);
    va_end(ap);
}

/* What the token itself says (no key needed): the SPN, kvno and enctype of a Kerberos
 * ticket, the mechanism of a token that failed. */
static const kasa_token_info *token_seen;

static void log_event(const char *client, const char *principal, const char *spn, const char *mech,
                      bool ok, const char *reason)
{
    kasa_auth_event e = {
        .time = (int64_t)time(NULL),
        .member = o.member,
        .client = client,
        .principal = principal != NULL ? principal : "",
        .spn = spn != NULL ? spn : "",
        .mechanism = mech != NULL ? mech : "",
        .enctype = "",
        .ok = ok,
        .reason = reason != NULL ? reason : "",
    };
    const kasa_token_info *t = token_seen;
    char enctype[64] = "", sname[800];
    char *line = NULL;

    if (t != NULL && t->has_ap_req) {
        snprintf(sname, sizeof(sname), "%s@%s", t->sname, t->realm);
        e.spn = sname; /* the ticket's own name: several SPNs may share one key */
        e.kvno = t->has_kvno ? t->kvno : 0;
        if (krb5_enctype_to_name(t->etype, FALSE, enctype, sizeof(enctype)) != 0)
            snprintf(enctype, sizeof(enctype), "%d", t->etype);
        e.enctype = enctype;
    }
    if (t != NULL && *e.mechanism == '\0')
        e.mechanism = t->inner;
    if (kasa_authlog_format(ctx, &e, &line) == 0) {
        fputs(line, auth_log);
        fflush(auth_log);
    }
    free(line);
}

/* GSS-API's words for a failure, the mechanism's first: Kerberos minor codes are com_err
 * codes ("Request is a replay"), which SPNEGO passes up unchanged. */
static void gss_words(OM_uint32 major, OM_uint32 minor, char *buf, size_t len)
{
    static krb5_context kctx;
    OM_uint32 m, mctx = 0;
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;

    buf[0] = '\0';
    /* Kerberos minor codes are krb5 error codes; krb5 knows their words. */
    if (minor != 0 && (kctx != NULL || krb5_init_context(&kctx) == 0)) {
        const char *km = krb5_get_error_message(kctx, (krb5_error_code)minor);
        if (km != NULL && strncmp(km, "Unknown code", 12) != 0)
            snprintf(buf, len, "%s", km);
        krb5_free_error_message(kctx, km);
    }
    if (buf[0] == '\0' && minor != 0 &&
        !GSS_ERROR(gss_display_status(&m, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &mctx, &b)) &&
        b.length > 0 && strncmp(b.value, "Unknown", 7) != 0)
        snprintf(buf, len, "%.*s", (int)b.length, (char *)b.value);
    gss_release_buffer(&m, &b);
    mctx = 0;
    if (buf[0] == '\0' &&
        !GSS_ERROR(gss_display_status(&m, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &mctx, &b)))
        snprintf(buf, len, "%.*s", (int)b.length, (char *)b.value);
    gss_release_buffer(&m, &b);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *negotiate, const char *user, const char *mech)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    char *hdr = NULL;

    r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    if (negotiate != NULL) {
        if (asprintf(&hdr, "Negotiate%s%s", *negotiate ? " " : "", negotiate) < 0)
            hdr = NULL;
        if (hdr != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, hdr);
        free(hdr);
    }
    if (user != NULL) {
        MHD_add_response_header(r, "X-Remote-User", user);
        MHD_add_response_header(r, "X-Auth-Method", mech);
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static const char *mech_name(gss_OID mech)
{
    if (mech == GSS_C_NO_OID)
        return "";
    if (mech->length == gss_mech_krb5->length &&
        memcmp(mech->elements, gss_mech_krb5->elements, mech->length) == 0)
        return "Kerberos";
    if (mech->length == ntlm_oid.length &&
        memcmp(mech->elements, ntlm_oid.elements, mech->length) == 0)
        return "NTLM";
    return "other";
}

/* The page for url, once the client is known. */
static enum MHD_Result serve(struct MHD_Connection *c, const char *url, const char *principal,
                             const char *mech, const char *mutual)
{
    char body[2048];

    if (o.auth_request)
        return reply(c, MHD_HTTP_OK, "", mutual, principal, mech);
    if (strcasecmp(url, "/whoami") == 0) {
        snprintf(body, sizeof(body), "%s %s\n", principal, mech);
    } else if (strcasecmp(url, "/autodiscover/autodiscover.xml") == 0) {
        snprintf(body, sizeof(body),
                 "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                 "<Autodiscover><Response><User><DisplayName>%s</DisplayName></User>"
                 "<Account><Protocol><Type>EXCH</Type><Server>%s</Server>"
                 "<AuthPackage>Negotiate</AuthPackage></Protocol></Account></Response>"
                 "</Autodiscover>\n",
                 principal, o.member);
    } else if (strcasecmp(url, "/ews/exchange.asmx") == 0) {
        snprintf(body, sizeof(body), "EWS on %s: hello %s (%s)\n", o.member, principal, mech);
    } else {
        return reply(c, MHD_HTTP_NOT_FOUND, "not found\n", mutual, NULL, NULL);
    }
    return reply(c, MHD_HTTP_OK, body, mutual, principal, mech);
}

static void client_address(struct MHD_Connection *c, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    if (ci == NULL ||
        getnameinfo(ci->client_addr,
                    ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in),
                    buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(buf, len, "?");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    const union MHD_ConnectionInfo *ci;
    struct conn *st;
    const char *auth;
    char client[64], why[256];
    gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER, nb = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME, targ = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    gnutls_datum_t b64, raw = {NULL, 0}, enc = {NULL, 0};
    OM_uint32 major, minor;
    char *principal = NULL, *spn = NULL, *mutual = NULL;
    kasa_token_info tinfo;
    OM_uint32 scratch;
    enum MHD_Result ret;

    token_seen = NULL;
    (void)cls;
    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) { /* the first call only announces the request */
        *req_cls = (void *)1;
        return MHD_YES;
    }
    *upload_size = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && strcmp(method, "POST") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", NULL, NULL, NULL);
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    st = ci != NULL ? ci->socket_context : NULL;
    client_address(c, client, sizeof(client));
    auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

    if (auth == NULL) {
        if (st != NULL && st->principal != NULL) /* NTLM: the connection is authenticated */
            return serve(c, url, st->principal, "NTLM", NULL);
        return reply(c, MHD_HTTP_UNAUTHORIZED, "Negotiate, please\n", "", NULL, NULL);
    }
    if (strncasecmp(auth, "Negotiate ", 10) != 0) {
        log_event(client, NULL, NULL, NULL, false, "not a Negotiate Authorization header");
        return reply(c, MHD_HTTP_UNAUTHORIZED, "only Negotiate is accepted\n", "", NULL, NULL);
    }
    b64.data = (unsigned char *)auth + 10;
    b64.size = (unsigned)strlen(auth + 10);
    if (b64.size == 0 || b64.size > TOKEN_MAX || gnutls_base64_decode2(&b64, &raw) < 0) {
        log_event(client, NULL, NULL, NULL, false,
                  b64.size > TOKEN_MAX ? "Negotiate token too long"
                                       : "Negotiate token is not base64");
        return reply(c, MHD_HTTP_BAD_REQUEST, "malformed Negotiate token\n", NULL, NULL, NULL);
    }
    in.value = raw.data;
    in.length = raw.size;
    if (st == NULL) {
        gnutls_free(raw.data);
        return MHD_NO;
    }
    token_seen = kasa_token_decode(ctx, raw.data, raw.size, &tinfo) == 0 ? &tinfo : NULL;
    major = gss_accept_sec_context(&minor, &st->gctx, acceptor, &in, GSS_C_NO_CHANNEL_BINDINGS,
                                   &src, &mech, &out, NULL, NULL, NULL);
    if (GSS_ERROR(major) && token_seen != NULL && strcmp(tinfo.inner, "Kerberos") == 0 &&
        tinfo.mech_token != NULL) {
        /* SPNEGO keeps the Kerberos reason to itself: ask Kerberos directly. */
        gss_ctx_id_t probe = GSS_C_NO_CONTEXT;
        gss_buffer_desc inner = {tinfo.mech_token_len, (void *)tinfo.mech_token};
        gss_buffer_desc pout = GSS_C_EMPTY_BUFFER;
        OM_uint32 pmajor, pminor, m2;
        pmajor =
            gss_accept_sec_context(&pminor, &probe, acceptor, &inner, GSS_C_NO_CHANNEL_BINDINGS,
                                   NULL, NULL, &pout, NULL, NULL, NULL);
        if (GSS_ERROR(pmajor)) {
            major = pmajor;
            minor = pminor;
        }
        gss_release_buffer(&m2, &pout);
        gss_delete_sec_context(&m2, &probe, GSS_C_NO_BUFFER);
    }
    gnutls_free(raw.data);
    if (out.length > 0) {
        gnutls_datum_t d = {out.value, (unsigned)out.length};
        if (gnutls_base64_encode2(&d, &enc) == 0)
            mutual = strndup((char *)enc.data, enc.size);
        gnutls_free(enc.data);
    }
    gss_release_buffer(&scratch, &out); /* minor keeps the reason */
    if (GSS_ERROR(major)) {
        gss_words(major, minor, why, sizeof(why));
        gss_delete_sec_context(&minor, &st->gctx, GSS_C_NO_BUFFER);
        log_event(client, NULL, NULL, mech_name(mech), false, why);
        ret = reply(c, MHD_HTTP_UNAUTHORIZED, "authentication failed\n", "", NULL, NULL);
        free(mutual);
        return ret;
    }
    if (major & GSS_S_CONTINUE_NEEDED) { /* NTLM: the challenge, on this connection */
        ret =
            reply(c, MHD_HTTP_UNAUTHORIZED, "continue\n", mutual != NULL ? mutual : "", NULL, NULL);
        free(mutual);
        return ret;
    }
    if (gss_display_name(&minor, src, &nb, NULL) == GSS_S_COMPLETE)
        principal = strndup(nb.value, nb.length);
    gss_release_buffer(&minor, &nb);
    /* Only for Kerberos: gss-ntlmssp 1.2 crashes (strdup(NULL)) when asked for the target
     * of an NTLM context, which has none. */
    if (strcmp(mech_name(mech), "Kerberos") == 0 &&
        gss_inquire_context(&minor, st->gctx, NULL, &targ, NULL, NULL, NULL, NULL, NULL) ==
            GSS_S_COMPLETE &&
        gss_display_name(&minor, targ, &nb, NULL) == GSS_S_COMPLETE)
        spn = strndup(nb.value, nb.length);
    gss_release_buffer(&minor, &nb);
    gss_release_name(&minor, &targ);
    gss_release_name(&minor, &src);
    gss_delete_sec_context(&minor, &st->gctx, GSS_C_NO_BUFFER);

    log_event(client, principal, spn, mech_name(mech), true, "");
    if (strcmp(mech_name(mech), "NTLM") == 0 && principal != NULL) {
        free(st->principal);
        st->principal = strdup(principal);
    }
    ret = serve(c, url, principal != NULL ? principal : "?", mech_name(mech), mutual);
    free(principal);
    free(spn);
    free(mutual);
    return ret;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct conn *st = *socket_context;
    OM_uint32 minor;

    (void)cls;
    (void)c;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(struct conn));
    } else if (st != NULL) {
        if (st->gctx != GSS_C_NO_CONTEXT)
            gss_delete_sec_context(&minor, &st->gctx, GSS_C_NO_BUFFER);
        free(st->principal);
        free(st);
        *socket_context = NULL;
    }
}

/* Read a PEM file into a string (for libmicrohttpd's TLS, which takes them in memory). */
static int read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t n;

    if (f == NULL || (buf = calloc(1, 65537)) == NULL) {
        fprintf(stderr, "kasa-httpd: cannot read %s: %s\n", path, strerror(errno));
        if (f != NULL)
            fclose(f);
        return 1;
    }
    n = fread(buf, 1, 65536, f);
    fclose(f);
    if (n == 0 || n == 65536) {
        fprintf(stderr, "kasa-httpd: %s is empty or too large\n", path);
        free(buf);
        return 1;
    }
    *out = buf;
    return 0;
}

/* Settings the command line did not give, from FILE's [kasa-httpd] section (krb5.conf
 * syntax, read with MIT's profile library). The strings live as long as the process. */
static int read_config(const char *path, bool port_set, bool listen_set)
{
    static const char *const keys[] = {"keytab",  "member",       "auth_log", "listen",
                                       "port",    "pidfile",      "log",      "tls_cert",
                                       "tls_key", "auth_request", NULL};
    const char **fields[] = {&o.keytab,  &o.member, &o.auth_log, &o.listen,  NULL,
                             &o.pidfile, &o.log,    &o.tls_cert, &o.tls_key, NULL};
    profile_t prof = NULL;
    long ret = profile_init_path(path, &prof);

    if (ret) {
        fprintf(stderr, "kasa-httpd: %s: %s\n", path, error_message(ret));
        return 1;
    }
    for (size_t k = 0; keys[k] != NULL; k++) {
        char *v = NULL;
        if (profile_get_string(prof, "kasa-httpd", keys[k], NULL, NULL, &v) != 0 || v == NULL)
            continue;
        if (fields[k] != NULL && (k == 3 ? !listen_set : *fields[k] == NULL))
            *fields[k] = config_strings[n_config_strings++] = strdup(v);
        else if (k == 4 && !port_set)
            o.port = atoi(v);
        else if (k == 9)
            o.auth_request = strcmp(v, "true") == 0 || strcmp(v, "yes") == 0;
        profile_release_string(v);
    }
    profile_release(prof);
    return o.port < 1 || o.port > 65535;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static const char usage[] =
    "usage: kasa-httpd --keytab FILE [options]\n"
    "\n"
    "A Negotiate (Kerberos, NTLM fallback) HTTP endpoint on an array member.\n"
    "  -k, --keytab FILE       the member's array keytab (read only; kasad keeps it)\n"
    "  -M, --member NAME       this member's name, for the auth log (default: host name)\n"
    "  -A, --auth-log FILE     the auth log, one CSV line per attempt (default: stdout)\n"
    "  -l, --listen ADDR       address (default 0.0.0.0)\n"
    "  -p, --port PORT         port (default 80)\n"
    "      --auth-request      answer every path with 200 and X-Remote-User, or 401\n"
    "      --tls-cert FILE     serve HTTPS with this certificate (PEM) ...\n"
    "      --tls-key FILE      ... and this key (PEM)\n"
    "      --pidfile FILE      written once listening\n"
    "  -c, --config FILE       settings from FILE's [kasa-httpd] section (krb5.conf syntax)\n"
    "      --log FILE          messages (default: stderr)\n"
    "  -h, --help              this help\n"
    "See kasa-httpd(8).\n";

int main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"keytab", required_argument, NULL, 'k'},   {"member", required_argument, NULL, 'M'},
        {"auth-log", required_argument, NULL, 'A'}, {"listen", required_argument, NULL, 'l'},
        {"port", required_argument, NULL, 'p'},     {"auth-request", no_argument, NULL, 'R'},
        {"pidfile", required_argument, NULL, 'P'},  {"log", required_argument, NULL, 'L'},
        {"foreground", no_argument, NULL, 'f'},     {"help", no_argument, NULL, 'h'},
        {"tls-cert", required_argument, NULL, 'C'}, {"tls-key", required_argument, NULL, 'K'},
        {"config", required_argument, NULL, 'c'},   {NULL, 0, NULL, 0},
    };
    struct sockaddr_storage ss;
    struct addrinfo hints, *res = NULL;
    struct MHD_Daemon *d;
    char hostname[256], portstr[16], *end, *cert_pem = NULL, *key_pem = NULL;
    const char *config = NULL;
    bool port_set = false, listen_set = false;
    OM_uint32 minor;
    int c;

    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
    log_file = stderr;
    auth_log = stdout;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:M:A:l:p:c:fh", lopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            o.keytab = optarg;
            break;
        case 'M':
            o.member = optarg;
            break;
        case 'A':
            o.auth_log = optarg;
            break;
        case 'l':
            o.listen = optarg;
            listen_set = true;
            break;
        case 'p':
            o.port = (int)strtol(optarg, &end, 10);
            port_set = true;
            if (*end != '\0' || o.port < 1 || o.port > 65535) {
                fprintf(stderr,
                        "kasa-httpd: --port %s is not a port (1-65535); see kasa-httpd --help\n",
                        optarg);
                return 2;
            }
            break;
        case 'R':
            o.auth_request = true;
            break;
        case 'P':
            o.pidfile = optarg;
            break;
        case 'L':
            o.log = optarg;
            break;
        case 'f':
            break;
        case 'C':
            o.tls_cert = optarg;
            break;
        case 'K':
            o.tls_key = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fprintf(stderr, "kasa-httpd: bad option %s; see kasa-httpd --help\n", argv[optind - 1]);
            return 2;
        }
    }
    if (config != NULL && read_config(config, port_set, listen_set) != 0)
        return 1;
    if (o.keytab == NULL || optind < argc) {
        fprintf(stderr, "kasa-httpd: --keytab is required; see kasa-httpd --help\n");
        return 2;
    }
    if (o.member == NULL) {
        gethostname(hostname, sizeof(hostname));
        hostname[sizeof(hostname) - 1] = '\0';
        o.member = hostname;
    }
    if ((o.log != NULL && (log_file = fopen(o.log, "a")) == NULL) ||
        (o.auth_log != NULL && (auth_log = fopen(o.auth_log, "a")) == NULL)) {
        fprintf(stderr, "kasa-httpd: cannot open a log: %s\n", strerror(errno));
        return 1;
    }
    if (kasa_ctx_new(&ctx) != 0)
        return 1;
    /* The array keytab as the default keytab: each accept looks the key up afresh, so a
     * keytab kasad replaced (a roll) is used at the next request, and kasa-httpd can
     * start before the member holds any key. NTLM's acceptor reads NTLM_USER_FILE. */
    {
        char ktname[4200];
        snprintf(ktname, sizeof(ktname), "FILE:%s", o.keytab);
        setenv("KRB5_KTNAME", ktname, 1);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%d", o.port);
    if (getaddrinfo(o.listen, portstr, &hints, &res) != 0) {
        fprintf(stderr, "kasa-httpd: cannot listen on %s\n", o.listen);
        return 1;
    }
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if ((o.tls_cert == NULL) != (o.tls_key == NULL)) {
        fprintf(stderr, "kasa-httpd: give --tls-cert and --tls-key together\n");
        return 2;
    }
    if (o.tls_cert != NULL &&
        (read_pem(o.tls_cert, &cert_pem) != 0 || read_pem(o.tls_key, &key_pem) != 0))
        return 1;
    if (cert_pem != NULL)
        d = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_TLS, (uint16_t)o.port,
            NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024), MHD_OPTION_HTTPS_MEM_CERT,
            cert_pem, MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_END);
    else
        d = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)o.port, NULL, NULL,
            on_request, NULL, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024), MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "kasa-httpd: cannot listen on %s port %d\n", o.listen, o.port);
        return 1;
    }
    if (o.pidfile != NULL) {
        FILE *f = fopen(o.pidfile, "w");
        if (f != NULL) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    say("listening on %s port %d as %s; keytab %s", o.listen, o.port, o.member, o.keytab);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stopping)
        pause();
    MHD_stop_daemon(d);
    free(cert_pem);
    if (key_pem != NULL) {
        kasa_zap(key_pem, strlen(key_pem));
        free(key_pem);
    }
    gss_release_cred(&minor, &acceptor);
    if (o.pidfile != NULL)
        unlink(o.pidfile);
    say("stopped");
    for (size_t i = 0; i < n_config_strings; i++)
        free(config_strings[i]);
    kasa_ctx_free(ctx);
    return 0;
}
