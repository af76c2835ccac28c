/*
 * kasa-httpd: a Negotiate (SPNEGO, RFC 4559) HTTP endpoint on an array member. Kerberos
 * through the member's array keytab (read-only: kasad owns it), whose keys are held in
 * memory and reloaded when kasad replaces it (kasa/acceptor.h), NTLM through gss-ntlmssp when the
 * client cannot do Kerberos (multi-leg, bound to the TCP connection), Basic never. Every attempt
 * becomes one line of the auth log, naming the inner mechanism. Serves the seed's Autodiscover and
 * EWS paths, /whoami, and an auth_request mode for nginx or HAProxy.
 *
 * HTTP is libmicrohttpd's; the Authorization header is read by libkasa (httpauth.h);
 * GSS-API, Kerberos, SPNEGO and NTLM are MIT's and gss-ntlmssp's. What is here is the
 * glue and the log.
 *
 * Requests run on a pool of threads (libmicrohttpd's, one epoll each). What a request
 * needs lives on its stack (what its token says); what a connection needs (its kasa_ctx
 * too) lives in its struct conn, which only the thread owning the connection touches;
 * the rest is read-only once serving starts, except the two logs and gss_words()'s krb5
 * context, which are locked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#include "kasa/acceptor.h"
#include "kasa/authlog.h"
#include "kasa/config.h"
#include "kasa/httpauth.h"
#include "kasa/kasa.h"
#include "kasa/replay.h"
#include "kasa/token.h"
#include "deadline.h"
#include "metrics.h"
#include "proxy.h"
#include "ntlmcompat.h"
#include "tlsbind.h"

/* A number setting: from the command line (which wins) or the config file. */
struct num_opt {
    const char *key; /* in [kasa-httpd]; the flag is the same with - for _ */
    unsigned min, max;
    unsigned value;
    bool given; /* on the command line */
};

enum {
    N_PORT,
    N_THREADS,
    N_PER_IP,
    N_CONN_LIMIT,
    N_TIMEOUT,
    N_HEADER_TIMEOUT,
    N_MAX_BODY,
    N_METRICS_PORT,
    N_NUMS
};

/* Extended Protection for Authentication, as IIS names its levels. */
enum cb_level { CB_OFF, CB_ACCEPT, CB_REQUIRE };

struct opts {
    const char *listen;
    const char *keytab;
    const char *member;
    const char *auth_log;
    const char *log;
    const char *pidfile;
    bool auth_request;
    const char *tls_cert, *tls_key;
    const char *schemes;              /* "negotiate,ntlm": offered in this order, accepted */
    const char *channel_binding;      /* off, accept, require */
    const char *proxy_from;           /* balancers whose PROXY header names the client */
    const char *metrics_listen;       /* /metrics, when a metrics port is set */
    const char *replay_cache;         /* local (default) or redis://...: kasa/replay.h */
    const char *replay_cache_failure; /* refuse (default) or local, when Redis is away */
    bool replay_fallback;             /* replay_cache_failure = local */
    bool offer_negotiate, offer_ntlm;
    enum cb_level cb;
    struct num_opt num[N_NUMS];
};

/* Per TCP connection, touched only by the thread that owns the connection: an exchange
 * in progress (NTLM's CHALLENGE leg), or who NTLM authenticated on it. */
struct conn {
    gss_ctx_id_t gctx;
    char *principal; /* authenticated by NTLM on this connection (never in auth_request) */
    kasa_ctx *kctx;  /* its requests' last error: one thread at a time serves a connection */
    size_t body;     /* bytes of the current request's body, read and dropped */
};

/* libmicrohttpd 0.9.75's timeout counts idleness, and each byte restarts it, so a client
 * trickling bytes would keep a connection open; header_timeout, a deadline for the whole
 * request head, is kasa-httpd's own (deadline.c), since libmicrohttpd has none. */
static struct opts o = {
    .listen = "0.0.0.0",
    .num =
        {
            [N_PORT] = {"port", 1, 65535, 80, false},
            [N_THREADS] = {"threads", 0, 256, 0, false}, /* 0: one per core */
            [N_PER_IP] = {"per_ip_limit", 0, 1000000, 1000, false},
            [N_CONN_LIMIT] = {"connection_limit", 16, 1000000, 10000, false},
            [N_TIMEOUT] = {"connection_timeout", 1, 3600, 10, false},
            [N_HEADER_TIMEOUT] = {"header_timeout", 0, 3600, 30, false}, /* 0: none */
            [N_MAX_BODY] = {"max_body", 0, 1U << 30, 10U << 20, false},
            [N_METRICS_PORT] = {"metrics_port", 1, 65535, 0, false}, /* 0: no metrics */
        },
};
static char *config_strings[16];
static size_t n_config_strings;
static kasa_acceptor *acceptor; /* the array keytab's keys, in memory */
/* This server's TLS channel binding; GSS_C_NO_CHANNEL_BINDINGS without TLS. */
static gss_channel_bindings_t tls_bindings = GSS_C_NO_CHANNEL_BINDINGS;
static FILE *auth_log, *log_file;
/* Authenticators already accepted, by this member or (Redis) by any member of the array.
 * Each is remembered for twice the clock skew Kerberos allows (5 minutes): a replay of it
 * is accepted by GSS-API only within that. */
static kasa_replay *replay;
#define REPLAY_TTL_S 600
/* NTLM logins go to the domain through winbindd (gss-ntlmssp does that when NTLM_USER_FILE
 * is not set, as on a member joined to Active Directory), not to a local user file. */
static bool ntlm_by_domain;
static volatile sig_atomic_t stopping;

/* gss_words()'s krb5 context: a krb5_context is not for two threads at once. */
static pthread_mutex_t words_lock = PTHREAD_MUTEX_INITIALIZER;
static krb5_context words_kctx;

static const gss_OID_desc ntlm_oid = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};

static void say(const char *fmt, ...) KASA_PRINTF(1, 2);
static void say_at(int level, const char *fmt, ...) KASA_PRINTF(2, 3);
static void say_fatal(const char *fmt, ...) KASA_PRINTF(1, 2);

/* A message-log line at a level (KASA_LOG_*), which the journal keeps. */
static void say_at(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    flockfile(log_file);
    kasa_log_line_at(log_file, "kasa-httpd", level, fmt, ap);
    funlockfile(log_file);
    va_end(ap);
}

/* One line of the message log; flockfile keeps lines from several threads whole. */
static void say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    flockfile(log_file);
    kasa_log_line(log_file, "kasa-httpd", fmt, ap);
    funlockfile(log_file);
    va_end(ap);
}

/* Why kasa-httpd cannot start, once the message log is open: there, and on stderr for
 * whoever started it (once when the log is stderr). */
static void say_fatal(const char *fmt, ...)
{
    va_list ap;
    char msg[1024];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_file != stderr)
        say_at(KASA_LOG_ERR, "%s", msg);
    fprintf(stderr, "kasa-httpd: %s\n", msg);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) KASA_PRINTF(2, 0);

/* libmicrohttpd's messages, at most a few every ten seconds: a flood of refused
 * connections must not become a flood of log lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static time_t window;
    static unsigned said, dropped;
    time_t now = time(NULL);
    unsigned before = 0;
    bool speak;
    char msg[512];
    size_t n;

    (void)cls;
    pthread_mutex_lock(&lock);
    if (now - window >= 10) {
        before = dropped;
        window = now;
        said = dropped = 0;
    }
    speak = said < 5;
    if (speak)
        said++;
    else
        dropped++;
    pthread_mutex_unlock(&lock);
    if (before > 0)
        say("libmicrohttpd: %u more messages in the last ten seconds not shown", before);
    if (!speak)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    say("libmicrohttpd: %s", msg);
}

/* One auth log line, and its count in the metrics. seen is what the token itself says (no
 * key needed): the SPN, kvno and enctype of a Kerberos ticket, the mechanism of a token
 * that failed. why is the reason's class, for the metrics. */
/* One auth-log line; a challenge (a 401 that continues the exchange) is counted nowhere
 * else: its exchange's last leg is. */
static void log_line(kasa_ctx *kctx, const char *client, const kasa_token_info *seen,
                     const char *principal, const char *spn, const char *mech, bool ok,
                     bool challenge, enum metrics_reason why, const char *reason)
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
        .challenge = challenge,
        .reason = reason != NULL ? reason : "",
    };
    char enctype[64] = "", sname[800];
    char *line = NULL;

    if (seen != NULL && seen->has_ap_req) {
        snprintf(sname, sizeof(sname), "%s@%s", seen->sname, seen->realm);
        e.spn = sname; /* the ticket's own name: several SPNs may share one key */
        e.kvno = seen->has_kvno ? seen->kvno : 0;
        if (krb5_enctype_to_name(seen->etype, FALSE, enctype, sizeof(enctype)) != 0)
            snprintf(enctype, sizeof(enctype), "%d", seen->etype);
        e.enctype = enctype;
    }
    if (seen != NULL && *e.mechanism == '\0')
        e.mechanism = seen->inner;
    if (!challenge)
        metrics_count(e.mechanism, ok, why);
    if (kasa_authlog_format(kctx, &e, &line) == 0) {
        flockfile(auth_log); /* one whole line at a time from the worker threads */
        fputs(line, auth_log);
        fflush(auth_log);
        funlockfile(auth_log);
    }
    free(line);
}

static void log_event(kasa_ctx *kctx, const char *client, const kasa_token_info *seen,
                      const char *principal, const char *spn, const char *mech, bool ok,
                      enum metrics_reason why, const char *reason)
{
    log_line(kctx, client, seen, principal, spn, mech, ok, false, why, reason);
}

/* GSS-API's words for a failure, the mechanism's first: Kerberos minor codes are com_err
 * codes ("Request is a replay"), which SPNEGO passes up unchanged. */
static void gss_words(OM_uint32 major, OM_uint32 minor, char *buf, size_t len)
{
    OM_uint32 m, mctx = 0;
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;

    buf[0] = '\0';
    /* Kerberos minor codes are krb5 error codes; krb5 knows their words. */
    if (minor != 0 && words_kctx != NULL) {
        const char *km;
        pthread_mutex_lock(&words_lock);
        km = krb5_get_error_message(words_kctx, (krb5_error_code)minor);
        if (km != NULL && strncmp(km, "Unknown code", 12) != 0)
            snprintf(buf, len, "%s", km);
        krb5_free_error_message(words_kctx, km);
        pthread_mutex_unlock(&words_lock);
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

/* Offer the configured schemes, each alone, in the configured order (as IIS does). */
static void offer_schemes(struct MHD_Response *r)
{
    const char *first = o.offer_negotiate ? "Negotiate" : "NTLM";

    if (o.offer_negotiate && o.offer_ntlm && strncasecmp(o.schemes, "ntlm", 4) == 0)
        first = "NTLM";
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, first);
    if (o.offer_negotiate && o.offer_ntlm)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                strcmp(first, "NTLM") == 0 ? "Negotiate" : "NTLM");
}

/*
 * Queue a response. A 401 without a token offers every configured scheme; a token (the
 * NTLM challenge, a Kerberos mutual-authentication reply) goes back under the scheme the
 * client used. X-Remote-User and X-Auth-Method are for a front end's auth_request only.
 */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *scheme, const char *token, const char *user,
                             const char *mech)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    char *hdr = NULL;

    r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    if (token != NULL && *token != '\0') {
        if (asprintf(&hdr, "%s %s", scheme, token) < 0)
            hdr = NULL;
        if (hdr != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, hdr);
        free(hdr);
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        offer_schemes(r);
    }
    if (user != NULL && o.auth_request) {
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
                             const char *mech, const char *scheme, const char *mutual)
{
    char body[2048];

    if (o.auth_request)
        return reply(c, MHD_HTTP_OK, "", scheme, mutual, principal, mech);
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
        return reply(c, MHD_HTTP_NOT_FOUND, "not found\n", scheme, mutual, NULL, NULL);
    }
    return reply(c, MHD_HTTP_OK, body, scheme, mutual, principal, mech);
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

/* A new Authorization header: whatever the connection proved before no longer counts.
 * A token that starts an exchange also ends one left half-done; only a later leg (a
 * SPNEGO NegTokenResp, an NTLM AUTHENTICATE) continues the context in progress. */
static void conn_reset(struct conn *st, const kasa_token_info *seen)
{
    OM_uint32 minor;
    bool later_leg = seen != NULL && (seen->kind == KASA_TOKEN_SPNEGO_RESP ||
                                      (seen->kind == KASA_TOKEN_NTLM && seen->ntlm_type == 3));

    free(st->principal);
    st->principal = NULL;
    if (!later_leg && st->gctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &st->gctx, GSS_C_NO_BUFFER);
}

/*
 * The credential for a Kerberos AP-REQ: the keys in memory for the principal the ticket
 * names (its key found by kvno and enctype, no replay cache of MIT's: ours checks it
 * after), or, for a ticket to a principal the keys do not hold, the default credential,
 * MIT reading the keytab file with its own words for what is wrong. Everything else
 * (NTLM, a SPNEGO leg with no AP-REQ) takes the default credential too.
 */
static gss_cred_id_t cred_for(const kasa_accept_keys *keys, const kasa_token_info *seen,
                              const char **name_out)
{
    char principal[800];

    *name_out = NULL;
    if (keys == NULL || seen == NULL || !seen->has_ap_req || !seen->has_auth_digest)
        return GSS_C_NO_CREDENTIAL;
    snprintf(principal, sizeof(principal), "%s@%s", seen->sname, seen->realm);
    return kasa_accept_keys_find(keys, principal, name_out);
}

static OM_uint32 accept_with(struct conn *st, gss_cred_id_t cred, const unsigned char *tok,
                             size_t len, const kasa_token_info *seen, gss_name_t *src,
                             gss_OID *mech, gss_buffer_t out, OM_uint32 *flags, OM_uint32 *minor)
{
    gss_buffer_desc in = {len, (void *)tok};
    gss_channel_bindings_t cb = o.cb != CB_OFF ? tls_bindings : GSS_C_NO_CHANNEL_BINDINGS;
    OM_uint32 major;

    major =
        gss_accept_sec_context(minor, &st->gctx, cred, &in, cb, src, mech, out, flags, NULL, NULL);
    if (GSS_ERROR(major) && seen != NULL && strcmp(seen->inner, "Kerberos") == 0 &&
        seen->mech_token != NULL) {
        /* SPNEGO keeps the Kerberos reason to itself: ask Kerberos directly. */
        gss_ctx_id_t probe = GSS_C_NO_CONTEXT;
        gss_buffer_desc inner = {seen->mech_token_len, (void *)seen->mech_token};
        gss_buffer_desc pout = GSS_C_EMPTY_BUFFER;
        OM_uint32 pmajor, pminor, m2;
        pmajor = gss_accept_sec_context(&pminor, &probe, cred, &inner, cb, NULL, NULL, &pout, NULL,
                                        NULL, NULL);
        if (GSS_ERROR(pmajor)) {
            major = pmajor;
            *minor = pminor;
        }
        gss_release_buffer(&m2, &pout);
        gss_delete_sec_context(&m2, &probe, GSS_C_NO_BUFFER);
    }
    return major;
}

/* The accept itself, with Kerberos's own reason when SPNEGO hides it. A ticket the keys in
 * memory cannot decrypt is tried once more after a look at the keytab file: kasad may
 * have replaced it a moment ago (a roll's new kvno), before the watch reloaded it. With
 * the keys in memory, *spn_out is the principal whose key was used (asking the GSS
 * context for it would cost a krb5 context or two each time). */
static OM_uint32 accept_token(kasa_ctx *kctx, struct conn *st, const unsigned char *tok, size_t len,
                              const kasa_token_info *seen, gss_name_t *src, gss_OID *mech,
                              gss_buffer_t out, OM_uint32 *flags, OM_uint32 *minor, char **spn_out)
{
    kasa_accept_keys *keys = kasa_acceptor_hold(acceptor);
    const char *name = NULL;
    gss_cred_id_t cred = cred_for(keys, seen, &name);
    bool fresh = st->gctx == GSS_C_NO_CONTEXT;
    kasa_accept_info before, after;
    OM_uint32 major, m2;

    major = accept_with(st, cred, tok, len, seen, src, mech, out, flags, minor);
    if (GSS_ERROR(major) && cred != GSS_C_NO_CREDENTIAL && fresh) {
        kasa_acceptor_info(acceptor, &before);
        (void)kasa_acceptor_check(kctx, acceptor, false);
        kasa_acceptor_info(acceptor, &after);
        if (after.generation != before.generation) {
            kasa_acceptor_release(acceptor, keys);
            keys = kasa_acceptor_hold(acceptor);
            gss_delete_sec_context(&m2, &st->gctx, GSS_C_NO_BUFFER);
            gss_release_buffer(&m2, out);
            gss_release_name(&m2, src);
            cred = cred_for(keys, seen, &name);
            major = accept_with(st, cred, tok, len, seen, src, mech, out, flags, minor);
        }
    }
    *spn_out = !GSS_ERROR(major) && name != NULL ? strdup(name) : NULL;
    kasa_acceptor_release(acceptor, keys);
    return major;
}

/* "DOMAIN\user" from an NTLM AUTHENTICATE the client sent (in clear), or NULL. */
static const char *ntlm_user(const kasa_token_info *seen, char *buf, size_t len)
{
    if (seen == NULL || seen->ntlm_type != 3 || seen->ntlm_user[0] == '\0')
        return NULL;
    snprintf(buf, len, "%s%s%s", seen->ntlm_domain, seen->ntlm_domain[0] ? "\\" : "",
             seen->ntlm_user);
    return buf;
}

/*
 * An NTLM AUTHENTICATE bound to another TLS channel. gss-ntlmssp 1.2 refuses a channel
 * binding that does not match ours as EACCES with GSS_S_DEFECTIVE_TOKEN, the codes of a
 * MIC that does not match too (not GSS_S_BAD_BINDINGS, as Kerberos does); it is the
 * binding when we passed one and the message carries one.
 */
static bool ntlm_binding_mismatch(OM_uint32 major, OM_uint32 minor, const kasa_token_info *seen)
{
    return o.cb != CB_OFF && tls_bindings != GSS_C_NO_CHANNEL_BINDINGS && seen != NULL &&
           seen->ntlm_type == 3 && minor == EACCES &&
           GSS_ROUTINE_ERROR(major) == GSS_S_DEFECTIVE_TOKEN && seen->mech_token != NULL &&
           tlsbind_ntlm_bound(seen->mech_token, seen->mech_token_len);
}

/*
 * A failure in words an administrator can act on. gss-ntlmssp 1.2 reports an NTLM
 * response that does not match the password as EINVAL ("Invalid argument"), a user its
 * user file does not know as EACCES or ENOENT ("Permission denied"), and a channel
 * binding or MIC that does not match as EACCES too, with GSS_S_DEFECTIVE_TOKEN; Kerberos's
 * own words are already good.
 */
static void failure_words(OM_uint32 major, OM_uint32 minor, const char *mech,
                          const kasa_token_info *seen, char *buf, size_t len)
{
    if (strcmp(mech, "NTLM") == 0 && seen != NULL && seen->ntlm_type == 3) {
        if (minor == EINVAL) {
            snprintf(buf, len, "NTLM: wrong password (the response does not match the user's)");
            return;
        }
        if (ntlm_binding_mismatch(major, minor, seen)) {
            snprintf(buf, len,
                     "NTLM: channel binding mismatch: the client bound its response to another "
                     "TLS channel (a relay, or a TLS-intercepting proxy)");
            return;
        }
        if (minor == EACCES && GSS_ROUTINE_ERROR(major) == GSS_S_DEFECTIVE_TOKEN) {
            snprintf(buf, len,
                     "NTLM: the message integrity code (MIC) does not match: the messages "
                     "were altered on the way");
            return;
        }
        if ((minor == EACCES || minor == ENOENT) && ntlm_by_domain) {
            /* gss-ntlmssp gives EACCES for whatever winbindd answered (its reason is not
             * passed on): wrong password, unknown user, disabled account, or no winbindd. */
            snprintf(buf, len,
                     "NTLM: refused by the domain through winbindd (wrong password, unknown "
                     "or disabled user, or winbindd unreachable; the DC's log says which)");
            return;
        }
        if (minor == EACCES || minor == ENOENT) {
            snprintf(buf, len, "NTLM: unknown user (not in the member's NTLM user database)");
            return;
        }
    }
    gss_words(major, minor, buf, len);
    if (strcmp(mech, "NTLM") == 0 && strncmp(buf, "NTLM", 4) != 0) {
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "NTLM: %s", buf);
        snprintf(buf, len, "%s", tmp);
    }
}

/* A failed accept's class, for the metrics: from the codes, not from the words. */
static enum metrics_reason failure_class(OM_uint32 major, OM_uint32 minor, const char *mech,
                                         const kasa_token_info *seen)
{
    if (GSS_ROUTINE_ERROR(major) == GSS_S_BAD_BINDINGS ||
        (strcmp(mech, "NTLM") == 0 && ntlm_binding_mismatch(major, minor, seen)))
        return MR_CHANNEL_BINDING;
    if (strcmp(mech, "NTLM") == 0)
        return MR_NTLM_REFUSED;
    switch ((krb5_error_code)minor) {
    case KRB5KRB_AP_ERR_REPEAT:
        return MR_REPLAY;
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5KRB_AP_ERR_NOKEY:
    case KRB5_KT_NOTFOUND:
    case KRB5_KT_KVNONOTFOUND:
    case KRB5_BAD_ENCTYPE:
    case KRB5_KT_END:
    case ENOENT: /* no keytab yet */
        return MR_WRONG_KEY;
    default:
        return MR_OTHER;
    }
}

/*
 * The array's replay cache, after Kerberos accepted the authenticator (so only real ones
 * are kept): true, with why, when it must be refused. A Redis that cannot be asked is
 * said at most once a minute, and then either refuses (replay_cache_failure = refuse, the
 * default: a replay to another member could not be told apart) or falls back to this
 * member's own cache (local).
 */
static bool replay_refused(kasa_ctx *kctx, const kasa_token_info *seen, char *why, size_t len)
{
    static _Atomic long long said;
    long long now = (long long)time(NULL), last = atomic_load(&said);
    long r = kasa_replay_check(kctx, replay, seen->auth_digest);
    bool own = !kasa_replay_shared(replay); /* whose cache answered */

    if (r == KASA_ERR_REPLAY_STORE) {
        if (now - last >= 60 && atomic_compare_exchange_strong(&said, &last, now))
            say_at(KASA_LOG_ERR, "the array's replay cache cannot be reached (%s): %s",
                   kasa_error(kctx),
                   o.replay_fallback ? "checking this member's own cache only, until it is back"
                                     : "refusing Kerberos logins until it is back "
                                       "(replay_cache_failure = refuse)");
        if (!o.replay_fallback) {
            snprintf(why, len,
                     "the array's replay cache cannot be reached; refused "
                     "(replay_cache_failure = refuse)");
            return true;
        }
        r = kasa_replay_check_local(kctx, replay, seen->auth_digest);
        own = true;
    }
    if (r == KASA_ERR_REPLAY) {
        snprintf(why, len, "Request is a replay (%s)",
                 own ? "seen by this member before"
                     : "the array's replay cache: seen by a member before");
        return true;
    }
    return false;
}

/* A request that carries an Authorization header: one leg of an exchange. */
static enum MHD_Result authenticate(struct MHD_Connection *c, kasa_ctx *kctx, struct conn *st,
                                    const char *client, const char *url, const char *auth)
{
    kasa_http_scheme scheme;
    kasa_token_info tinfo;
    const kasa_token_info *seen = NULL;
    unsigned char *tok = NULL;
    size_t len = 0;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER, nb = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME, targ = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    gnutls_datum_t enc = {NULL, 0};
    OM_uint32 major, minor, scratch, flags = 0;
    char *principal = NULL, *spn = NULL, *mutual = NULL, why[256], user[300];
    const char *mname, *sname;
    enum MHD_Result ret;

    if (kasa_httpauth_parse(kctx, auth, &scheme, &tok, &len) != 0) {
        conn_reset(st, NULL);
        log_event(kctx, client, NULL, NULL, NULL, NULL, false, MR_MALFORMED, kasa_error(kctx));
        ret = reply(c, MHD_HTTP_BAD_REQUEST, "malformed Authorization header\n", NULL, NULL, NULL,
                    NULL);
        goto cleanup;
    }
    sname = kasa_http_scheme_name(scheme);
    if (scheme == KASA_HTTP_OTHER || (scheme == KASA_HTTP_NEGOTIATE && !o.offer_negotiate) ||
        (scheme == KASA_HTTP_NTLM && !o.offer_ntlm)) {
        conn_reset(st, NULL);
        snprintf(why, sizeof(why), "the %s scheme is not accepted here (schemes: %s)", sname,
                 o.schemes);
        log_event(kctx, client, NULL, NULL, NULL, scheme == KASA_HTTP_NTLM ? "NTLM" : NULL, false,
                  MR_SCHEME_REFUSED, why);
        ret = reply(c, MHD_HTTP_UNAUTHORIZED, "scheme not accepted\n", NULL, NULL, NULL, NULL);
        goto cleanup;
    }
    if (kasa_token_decode(kctx, tok, len, &tinfo) == 0)
        seen = &tinfo;
    if (scheme == KASA_HTTP_NTLM) {
        unsigned char *fixed = ntlm_compat(tok, &len);
        if (fixed != tok) { /* seen pointed into the old buffer */
            tok = fixed;
            seen = kasa_token_decode(kctx, tok, len, &tinfo) == 0 ? &tinfo : NULL;
        }
    }
    conn_reset(st, seen);
    /* A raw NTLMSSP token (the NTLM scheme) goes to gss-ntlmssp: MIT's mechglue knows it
     * by its "NTLMSSP" signature. */
    major = accept_token(kctx, st, tok, len, seen, &src, &mech, &out, &flags, &minor, &spn);
    mname = mech_name(mech);
    if (*mname == '\0' && seen != NULL)
        mname = seen->inner;
    if (out.length > 0) {
        gnutls_datum_t d = {out.value, (unsigned)out.length};
        if (gnutls_base64_encode2(&d, &enc) == 0)
            mutual = strndup((char *)enc.data, enc.size);
        gnutls_free(enc.data);
    }
    gss_release_buffer(&scratch, &out); /* minor keeps the reason */
    if (!GSS_ERROR(major) && !(major & GSS_S_CONTINUE_NEEDED) && o.cb == CB_REQUIRE &&
        tls_bindings != GSS_C_NO_CHANNEL_BINDINGS && !(flags & GSS_C_CHANNEL_BOUND_FLAG)) {
        /* Extended Protection required: a token not bound to this TLS channel could have
         * been relayed from another. */
        gss_delete_sec_context(&scratch, &st->gctx, GSS_C_NO_BUFFER);
        log_event(kctx, client, seen, ntlm_user(seen, user, sizeof(user)), NULL, mname, false,
                  MR_CHANNEL_BINDING,
                  "no channel binding: the client did not bind its token to this TLS channel, "
                  "and channel_binding is require");
        ret = reply(c, MHD_HTTP_UNAUTHORIZED, "authentication failed\n", NULL, NULL, NULL, NULL);
        goto cleanup;
    }
    if (GSS_ERROR(major)) {
        failure_words(major, minor, mname, seen, why, sizeof(why));
        gss_delete_sec_context(&scratch, &st->gctx, GSS_C_NO_BUFFER);
        log_event(kctx, client, seen, ntlm_user(seen, user, sizeof(user)), NULL, mname, false,
                  failure_class(major, minor, mname, seen), why);
        ret = reply(c, MHD_HTTP_UNAUTHORIZED, "authentication failed\n", NULL, NULL, NULL, NULL);
        goto cleanup;
    }
    if (major & GSS_S_CONTINUE_NEEDED) { /* NTLM: the challenge, on this connection */
        log_line(kctx, client, seen, NULL, NULL, mname, false, true, MR_NONE,
                 strcmp(mname, "NTLM") == 0
                     ? "NTLM CHALLENGE sent: the client is to answer with its AUTHENTICATE"
                     : "the exchange continues: the client is to answer the server's token");
        ret = reply(c, MHD_HTTP_UNAUTHORIZED, "continue\n", sname, mutual, NULL, NULL);
        goto cleanup;
    }
    if (strcmp(mname, "Kerberos") == 0 && seen != NULL && seen->has_auth_digest &&
        replay_refused(kctx, seen, why, sizeof(why))) {
        gss_delete_sec_context(&scratch, &st->gctx, GSS_C_NO_BUFFER);
        log_event(kctx, client, seen, NULL, NULL, mname, false, MR_REPLAY, why);
        ret = reply(c, MHD_HTTP_UNAUTHORIZED, "authentication failed\n", NULL, NULL, NULL, NULL);
        goto cleanup;
    }
    if (gss_display_name(&minor, src, &nb, NULL) == GSS_S_COMPLETE)
        principal = strndup(nb.value, nb.length);
    gss_release_buffer(&minor, &nb);
    /* Only for Kerberos: gss-ntlmssp 1.2 crashes (strdup(NULL)) when asked for the target
     * of an NTLM context, which has none. */
    if (strcmp(mname, "Kerberos") == 0 && spn == NULL &&
        gss_inquire_context(&minor, st->gctx, NULL, &targ, NULL, NULL, NULL, NULL, NULL) ==
            GSS_S_COMPLETE &&
        gss_display_name(&minor, targ, &nb, NULL) == GSS_S_COMPLETE)
        spn = strndup(nb.value, nb.length);
    gss_release_buffer(&minor, &nb);
    gss_delete_sec_context(&minor, &st->gctx, GSS_C_NO_BUFFER);

    log_event(kctx, client, seen, principal, spn, mname, true, MR_NONE, "");
    /* NTLM authenticates the connection (as IIS does, header-less requests that follow on
     * it are that user's), except for auth_request: there a balancer's connection
     * carries many users' subrequests, so each must bring its own header. */
    if (!o.auth_request && strcmp(mname, "NTLM") == 0 && principal != NULL)
        st->principal = strdup(principal);
    ret = serve(c, url, principal != NULL ? principal : "?", mname, sname, mutual);

cleanup:
    gss_release_name(&minor, &targ);
    gss_release_name(&minor, &src);
    free(tok);
    free(principal);
    free(spn);
    free(mutual);
    return ret;
}

/* How far past max_body a chunked body is read (and dropped) to answer it with a 413. */
#define DRAIN_OVER (64U << 20)

/* 413 for a body over max_body; said in the auth log's neighbour, the message log. */
static enum MHD_Result too_large(struct MHD_Connection *c, const char *client, size_t n)
{
    say_at(KASA_LOG_WARNING, "%s: a request body of %zu bytes or more is over max_body (%u); 413",
           client, n, o.num[N_MAX_BODY].value);
    return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n", NULL, NULL, NULL, NULL);
}

/*
 * libmicrohttpd calls this once when the head is in, once per piece of the body, and once
 * more when the request is whole: only then is the answer queued (a response queued while
 * a body is still arriving is refused, and the connection dropped). The body is counted
 * and dropped; nothing here reads it.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    const union MHD_ConnectionInfo *ci;
    struct conn *st;
    const char *auth, *cl;
    char client[64];

    (void)cls;
    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) /* the first call: the head is complete */
        deadline_head_done(c);
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    st = ci != NULL ? ci->socket_context : NULL;
    if (st == NULL)
        return MHD_NO;
    client_address(c, client, sizeof(client));
    if (*req_cls == NULL) { /* the head: refuse what cannot be served before any body */
        *req_cls = (void *)1;
        st->body = 0;
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
            strcmp(method, "POST") != 0)
            return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", NULL, NULL, NULL,
                         NULL);
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > o.num[N_MAX_BODY].value)
            return too_large(c, client, (size_t)strtoull(cl, NULL, 10));
        return MHD_YES;
    }
    if (*upload_size > 0) { /* a piece of the body */
        st->body += *upload_size;
        *upload_size = 0;
        /* Only a chunked body gets here over the limit. libmicrohttpd cannot answer before
         * the body ends, so the rest is dropped as it comes and the 413 sent then; a body
         * that goes on far past the limit has its connection closed instead. */
        if (st->body > (size_t)o.num[N_MAX_BODY].value + DRAIN_OVER) {
            say_at(KASA_LOG_WARNING,
                   "%s: a chunked request body more than %u bytes over max_body (%u); "
                   "connection closed",
                   client, DRAIN_OVER, o.num[N_MAX_BODY].value);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (st->body > o.num[N_MAX_BODY].value) /* a chunked body, dropped to its end */
        return too_large(c, client, st->body);
    auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth == NULL) {
        if (st->principal != NULL) /* NTLM authenticated this connection (not auth_request) */
            return serve(c, url, st->principal, "NTLM", "NTLM", NULL);
        log_event(st->kctx, client, NULL, NULL, NULL, NULL, false, MR_NO_TOKEN,
                  "no token: the client was asked to authenticate");
        return reply(c, MHD_HTTP_UNAUTHORIZED, "Negotiate, please\n", NULL, NULL, NULL, NULL);
    }
    return authenticate(c, st->kctx, st, client, url, auth);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct conn *st = *socket_context;
    OM_uint32 minor;

    (void)cls;
    deadline_connection(c, code);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        st = calloc(1, sizeof(struct conn));
        if (st != NULL && kasa_ctx_new(&st->kctx) != 0) {
            free(st);
            st = NULL;
        }
        *socket_context = st; /* NULL: its requests are refused */
    } else if (st != NULL) {
        if (st->gctx != GSS_C_NO_CONTEXT)
            gss_delete_sec_context(&minor, &st->gctx, GSS_C_NO_BUFFER);
        free(st->principal);
        kasa_ctx_free(st->kctx);
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
        say_fatal("cannot read %s: %s", path, strerror(errno));
        if (f != NULL)
            fclose(f);
        return 1;
    }
    n = fread(buf, 1, 65536, f);
    fclose(f);
    if (n == 0 || n == 65536) {
        say_fatal("%s is empty or too large", path);
        free(buf);
        return 1;
    }
    *out = buf;
    return 0;
}

/* A number for setting n from text; says what is wrong and where: the config file
 * named by from, or the command line when from is NULL. */
static int parse_num(struct num_opt *n, const char *text, const char *from)
{
    char *end, flag[32];
    unsigned long v;

    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < n->min || v > n->max) {
        if (from != NULL) {
            fprintf(stderr, "kasa-httpd: %s: %s = %s is not a number from %u to %u\n", from, n->key,
                    text, n->min, n->max);
            return 1;
        }
        snprintf(flag, sizeof(flag), "%s", n->key);
        for (char *p = flag; *p != '\0'; p++)
            *p = *p == '_' ? '-' : *p;
        fprintf(stderr,
                "kasa-httpd: --%s %s is not a number from %u to %u; see kasa-httpd --help\n", flag,
                text, n->min, n->max);
        return 1;
    }
    n->value = (unsigned)v;
    return 0;
}

/* Settings the command line did not give, from FILE's [kasa-httpd] section (krb5.conf
 * syntax, read with MIT's profile library). The strings live as long as the process. */
static int read_config(const char *path, bool listen_set)
{
    static const char *const keys[] = {"keytab",
                                       "member",
                                       "auth_log",
                                       "listen",
                                       "pidfile",
                                       "log",
                                       "tls_cert",
                                       "tls_key",
                                       "schemes",
                                       "channel_binding",
                                       "proxy_from",
                                       "metrics_listen",
                                       "replay_cache",
                                       "replay_cache_failure",
                                       NULL};
    const char **fields[] = {&o.keytab,       &o.member,
                             &o.auth_log,     &o.listen,
                             &o.pidfile,      &o.log,
                             &o.tls_cert,     &o.tls_key,
                             &o.schemes,      &o.channel_binding,
                             &o.proxy_from,   &o.metrics_listen,
                             &o.replay_cache, &o.replay_cache_failure};
    profile_t prof = NULL;
    long ret = profile_init_path(path, &prof);
    char *v = NULL;
    int st = 0;

    if (ret) {
        unsigned line = kasa_config_syntax_line(path);
        if (line != 0)
            fprintf(stderr, "kasa-httpd: %s:%u: %s\n", path, line, error_message(ret));
        else
            fprintf(stderr, "kasa-httpd: %s: %s\n", path, error_message(ret));
        return 1;
    }
    for (size_t k = 0; keys[k] != NULL; k++) {
        if (profile_get_string(prof, "kasa-httpd", keys[k], NULL, NULL, &v) != 0 || v == NULL)
            continue;
        if ((fields[k] == &o.listen ? !listen_set : *fields[k] == NULL) &&
            n_config_strings < sizeof(config_strings) / sizeof(config_strings[0]))
            *fields[k] = config_strings[n_config_strings++] = strdup(v);
        profile_release_string(v);
        v = NULL;
    }
    for (size_t k = 0; k < N_NUMS && st == 0; k++) {
        if (o.num[k].given ||
            profile_get_string(prof, "kasa-httpd", o.num[k].key, NULL, NULL, &v) != 0 || v == NULL)
            continue;
        st = parse_num(&o.num[k], v, path);
        profile_release_string(v);
        v = NULL;
    }
    if (st == 0 && profile_get_string(prof, "kasa-httpd", "auth_request", NULL, NULL, &v) == 0 &&
        v != NULL)
        o.auth_request = o.auth_request || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0;
    profile_release_string(v);
    profile_release(prof);
    return st;
}

/* Room for the connection limit in the descriptor limit: raise the soft limit, and the
 * hard one when allowed; if neither reaches, serve fewer connections and say so. */
static void fit_descriptors(unsigned threads)
{
    /* Beyond connections: the listener, an epoll and a wakeup pipe per thread, logs,
     * keytab, replay cache, krb5.conf, the NTLM user file. */
    rlim_t reserve = 64 + 4 * (rlim_t)threads;
    rlim_t want = (rlim_t)o.num[N_CONN_LIMIT].value + reserve;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        struct rlimit raised = {want, want};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            return;
    } else {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur > reserve + 16) {
        say_at(KASA_LOG_ERR,
               "cannot raise the open file limit to %llu (it is %llu, hard %llu): serving at most "
               "%llu connections instead of %u; raise the hard limit (ulimit -Hn, LimitNOFILE=)",
               (unsigned long long)want, (unsigned long long)rl.rlim_cur,
               (unsigned long long)rl.rlim_max, (unsigned long long)(rl.rlim_cur - reserve),
               o.num[N_CONN_LIMIT].value);
        o.num[N_CONN_LIMIT].value = (unsigned)(rl.rlim_cur - reserve);
    } else {
        say_at(KASA_LOG_ERR,
               "cannot raise the open file limit to %llu (it is %llu): serving at most 16 "
               "connections; raise the hard limit (ulimit -Hn, LimitNOFILE=)",
               (unsigned long long)want, (unsigned long long)rl.rlim_cur);
        o.num[N_CONN_LIMIT].value = 16;
    }
}

/* --schemes and --channel-binding, from their words. */
static int parse_policies(void)
{
    char list[64], *save = NULL;

    if (o.schemes == NULL)
        o.schemes = "negotiate,ntlm";
    if (o.channel_binding == NULL)
        o.channel_binding = "accept";
    snprintf(list, sizeof(list), "%s", o.schemes);
    for (char *w = strtok_r(list, ", ", &save); w != NULL; w = strtok_r(NULL, ", ", &save)) {
        if (strcasecmp(w, "negotiate") == 0) {
            o.offer_negotiate = true;
        } else if (strcasecmp(w, "ntlm") == 0) {
            o.offer_ntlm = true;
        } else {
            fprintf(stderr,
                    "kasa-httpd: schemes %s: %s is not negotiate or ntlm; see kasa-httpd --help\n",
                    o.schemes, w);
            return 2;
        }
    }
    if (strlen(o.schemes) >= sizeof(list) || (!o.offer_negotiate && !o.offer_ntlm)) {
        fprintf(stderr,
                "kasa-httpd: schemes '%.40s' names neither negotiate nor ntlm; see "
                "kasa-httpd --help\n",
                o.schemes);
        return 2;
    }
    if (o.replay_cache_failure == NULL || strcmp(o.replay_cache_failure, "refuse") == 0) {
        o.replay_fallback = false;
    } else if (strcmp(o.replay_cache_failure, "local") == 0) {
        o.replay_fallback = true;
    } else {
        fprintf(stderr,
                "kasa-httpd: replay_cache_failure '%.40s' is not refuse or local; see "
                "kasa-httpd --help\n",
                o.replay_cache_failure);
        return 2;
    }
    if (strcmp(o.channel_binding, "off") == 0) {
        o.cb = CB_OFF;
    } else if (strcmp(o.channel_binding, "accept") == 0) {
        o.cb = CB_ACCEPT;
    } else if (strcmp(o.channel_binding, "require") == 0) {
        o.cb = CB_REQUIRE;
    } else {
        fprintf(stderr,
                "kasa-httpd: channel binding '%.40s' is not off, accept or require; see "
                "kasa-httpd --help\n",
                o.channel_binding);
        return 2;
    }
    return 0;
}

static void tls_say(const char *fmt, ...) KASA_PRINTF(1, 2);

/* GnuTLS's lines, under libmicrohttpd's limit: any peer can make GnuTLS complain. */
static void tls_say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mhd_log(NULL, fmt, ap);
    va_end(ap);
}

static void tls_audit(gnutls_session_t session, const char *msg)
{
    size_t n = strlen(msg);

    (void)session;
    while (n > 0 && msg[n - 1] == '\n')
        n--;
    tls_say("GnuTLS: %.*s", (int)n, msg);
}

/* GnuTLS's own log at level 1, its few warnings: from level 2 on it tells every handshake. */
#define TLS_LOG_LEVEL 1
static void tls_log(int level, const char *msg)
{
    size_t n = strlen(msg);

    (void)level;
    while (n > 0 && msg[n - 1] == '\n')
        n--;
    tls_say("GnuTLS: %.*s", (int)n, msg);
}

static volatile sig_atomic_t reopen_logs;

/* What the in-memory keys did (a reload, a file refused), in our log. */
static void acceptor_log(void *data, int level, const char *msg)
{
    (void)data;
    say_at(level, "%s", msg);
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reopen_logs = 1;
    else
        stopping = 1;
}

/* A stop lets the requests in flight end (a balancer sends new ones elsewhere once the
 * listening socket is closed): no new connection, then at most DRAIN_MS for the open ones
 * to finish. */
#define DRAIN_MS 2000
static void drain(struct MHD_Daemon *d)
{
    struct timespec tick = {0, 20 * 1000 * 1000};
    MHD_socket lfd = MHD_quiesce_daemon(d);

    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    for (int waited = 0; waited < DRAIN_MS; waited += 20) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (info == NULL || info->num_connections == 0)
            return;
        nanosleep(&tick, NULL);
    }
}

/* SIGHUP: reopen the logs at their paths (after logrotate moved them). The new file takes
 * the old stream's descriptor under its lock, so a worker thread writing a line never
 * sees a closed stream. */
static void reopen_log(FILE *f, const char *path)
{
    int fd;

    if (path == NULL)
        return;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        say_at(KASA_LOG_ERR, "cannot reopen %s: %s; still writing to the old file", path,
               strerror(errno));
        return;
    }
    flockfile(f);
    fflush(f);
    dup2(fd, fileno(f));
    funlockfile(f);
    close(fd);
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
    "      --threads N         worker threads (default: one per core)\n"
    "      --per-ip-limit N    connections from one address (default 1000; 0: no limit)\n"
    "      --connection-limit N  connections in all (default 10000)\n"
    "      --connection-timeout S  close a connection idle this long (default 10)\n"
    "      --header-timeout S  close a connection whose request head is not complete\n"
    "                          this long after it opened or after its last response\n"
    "                          (default 30; 0: never)\n"
    "      --max-body BYTES    largest request body (default 10485760; 413 beyond)\n"
    "      --schemes LIST      offered and accepted, in order (default negotiate,ntlm)\n"
    "      --channel-binding off|accept|require  TLS channel binding (Extended\n"
    "                          Protection; default accept)\n"
    "      --proxy-from ADDRS  balancer addresses that send a PROXY protocol header\n"
    "      --metrics-port PORT serve Prometheus metrics at /metrics on this port ...\n"
    "      --metrics-listen ADDR  ... and address (default 127.0.0.1; no authentication)\n"
    "      --replay-cache local|redis://[:PASSWORD@]HOST[:PORT]\n"
    "                          where authenticators already seen are kept: this process,\n"
    "                          or a Redis the array's members share (default local)\n"
    "      --replay-cache-failure refuse|local\n"
    "                          with Redis unreachable: refuse Kerberos logins (default),\n"
    "                          or check this member's own cache and say so\n"
    "      --pidfile FILE      written once listening\n"
    "  -c, --config FILE       settings from FILE's [kasa-httpd] section (krb5.conf syntax)\n"
    "      --log FILE          messages (default: stderr)\n"
    "      --version           print the version\n"
    "  -h, --help              this help\n"
    "See kasa-httpd(8).\n";

int main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"keytab", required_argument, NULL, 'k'},
        {"member", required_argument, NULL, 'M'},
        {"auth-log", required_argument, NULL, 'A'},
        {"listen", required_argument, NULL, 'l'},
        {"port", required_argument, NULL, 'p'},
        {"auth-request", no_argument, NULL, 'R'},
        {"pidfile", required_argument, NULL, 'P'},
        {"log", required_argument, NULL, 'L'},
        {"foreground", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"config", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 0x100 + N_THREADS},
        {"per-ip-limit", required_argument, NULL, 0x100 + N_PER_IP},
        {"connection-limit", required_argument, NULL, 0x100 + N_CONN_LIMIT},
        {"connection-timeout", required_argument, NULL, 0x100 + N_TIMEOUT},
        {"header-timeout", required_argument, NULL, 0x100 + N_HEADER_TIMEOUT},
        {"max-body", required_argument, NULL, 0x100 + N_MAX_BODY},
        {"schemes", required_argument, NULL, 'S'},
        {"channel-binding", required_argument, NULL, 'B'},
        {"proxy-from", required_argument, NULL, 'X'},
        {"metrics-listen", required_argument, NULL, 'm'},
        {"replay-cache", required_argument, NULL, 0x200},
        {"replay-cache-failure", required_argument, NULL, 0x201},
        {"metrics-port", required_argument, NULL, 0x100 + N_METRICS_PORT},
        {NULL, 0, NULL, 0},
    };
    struct sockaddr_storage ss;
    struct addrinfo hints, *res = NULL;
    struct MHD_Daemon *d;
    struct MHD_OptionItem ops[16];
    size_t n_ops = 0;
    char hostname[256], portstr[16], header_words[16], *cert_pem = NULL, *key_pem = NULL;
    const char *config = NULL;
    bool listen_set = false;
    unsigned threads;
    long cores;
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
        case 0x100 + N_THREADS:
        case 0x100 + N_PER_IP:
        case 0x100 + N_CONN_LIMIT:
        case 0x100 + N_TIMEOUT:
        case 0x100 + N_HEADER_TIMEOUT:
        case 0x100 + N_MAX_BODY:
        case 0x100 + N_METRICS_PORT: {
            struct num_opt *n = &o.num[c == 'p' ? N_PORT : c - 0x100];
            if (parse_num(n, optarg, NULL) != 0)
                return 2;
            n->given = true;
            break;
        }
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
        case 'S':
            o.schemes = optarg;
            break;
        case 'B':
            o.channel_binding = optarg;
            break;
        case 'X':
            o.proxy_from = optarg;
            break;
        case 'm':
            o.metrics_listen = optarg;
            break;
        case 0x200:
            o.replay_cache = optarg;
            break;
        case 0x201:
            o.replay_cache_failure = optarg;
            break;
        case 'V':
            printf("kasa-httpd %s\n", kasa_version());
            return 0;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fprintf(stderr, "kasa-httpd: bad option %s; see kasa-httpd --help\n", argv[optind - 1]);
            return 2;
        }
    }
    if (config != NULL && read_config(config, listen_set) != 0)
        return 1;
    if (parse_policies() != 0 || (o.proxy_from != NULL && proxy_check(o.proxy_from) != 0))
        return 2;
    {
        kasa_ctx *rctx = NULL;
        if (kasa_ctx_new(&rctx) != 0 ||
            kasa_replay_open(rctx, o.replay_cache, REPLAY_TTL_S, &replay) != 0) {
            fprintf(stderr, "kasa-httpd: %s; see kasa-httpd --help\n",
                    rctx != NULL ? kasa_error(rctx) : "out of memory");
            kasa_ctx_free(rctx);
            return 2;
        }
        kasa_ctx_free(rctx);
    }
    if (o.keytab == NULL || optind < argc) {
        fprintf(stderr, "kasa-httpd: --keytab is required; see kasa-httpd --help\n");
        return 2;
    }
    /* The keytab need not exist yet (kasad writes it at the first roll), but it must be a
     * path a file can have. */
    if (o.keytab[0] == '\0' || strlen(o.keytab) >= PATH_MAX) {
        fprintf(stderr, "kasa-httpd: --keytab %s is not a file name; see kasa-httpd --help\n",
                o.keytab[0] == '\0' ? "''" : "(too long)");
        return 2;
    }
    if (o.metrics_listen != NULL && o.num[N_METRICS_PORT].value == 0) {
        fprintf(stderr,
                "kasa-httpd: metrics listen address %s given without a metrics port; "
                "see kasa-httpd --help\n",
                o.metrics_listen);
        return 2;
    }
    if (o.num[N_METRICS_PORT].value != 0) {
        if (o.metrics_listen == NULL)
            o.metrics_listen = "127.0.0.1";
        memset(&hints, 0, sizeof(hints));
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(o.metrics_listen, NULL, &hints, &res) != 0) {
            fprintf(stderr,
                    "kasa-httpd: metrics listen address %.60s is not a numeric IPv4 or IPv6 "
                    "address; see kasa-httpd --help\n",
                    o.metrics_listen);
            return 2;
        }
        freeaddrinfo(res);
        res = NULL;
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
    if (krb5_init_context(&words_kctx) != 0)
        words_kctx = NULL; /* gss_words() then falls back to GSS-API's words */
    /* epoll, not select(): no FD_SETSIZE ceiling; a thread per core this process may run
     * on (its CPU affinity, as nproc(1) counts them: a container's cpuset), so one slow
     * accept (a replay cache on a slow disk) does not stall everyone. */
    {
        cpu_set_t cpus;
        cores = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus)
                                                               : sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (cores < 1)
        cores = 1;
    else if (cores > 256)
        cores = 256;
    threads = o.num[N_THREADS].value != 0 ? o.num[N_THREADS].value : (unsigned)cores;
    fit_descriptors(threads);
    if (threads > o.num[N_CONN_LIMIT].value / 2)
        threads = o.num[N_CONN_LIMIT].value / 2;
    /* The array keytab's keys in memory, reloaded when kasad replaces the file (a roll);
     * kasa-httpd can start before the member holds any key. The file is also the default
     * keytab, for a ticket to a principal the keys do not hold: MIT then says why. NTLM's
     * acceptor reads NTLM_USER_FILE, or, without one, asks the domain through winbindd. */
    {
        char ktname[4200];
        kasa_ctx *actx = NULL;
        snprintf(ktname, sizeof(ktname), "FILE:%s", o.keytab);
        setenv("KRB5_KTNAME", ktname, 1);
        /* A credential per serving thread: MIT locks one through each accept. */
        if (kasa_ctx_new(&actx) != 0 ||
            kasa_acceptor_open(actx, o.keytab, KASA_ACCEPTOR_WATCH,
                               threads > 1 ? (threads > 256 ? 256 : threads) : 1, acceptor_log,
                               NULL, &acceptor) != 0) {
            say_fatal("%s", actx != NULL ? kasa_error(actx) : "out of memory");
            kasa_ctx_free(actx);
            return 1;
        }
        kasa_ctx_free(actx);
        metrics_set_acceptor(acceptor);
    }
    ntlm_by_domain = getenv("NTLM_USER_FILE") == NULL || *getenv("NTLM_USER_FILE") == '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%u", o.num[N_PORT].value);
    if (getaddrinfo(o.listen, portstr, &hints, &res) != 0) {
        say_fatal("cannot listen on %s", o.listen);
        return 1;
    }
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if ((o.tls_cert == NULL) != (o.tls_key == NULL)) {
        say_fatal("give --tls-cert and --tls-key together");
        return 2;
    }
    if (o.tls_cert != NULL &&
        (read_pem(o.tls_cert, &cert_pem) != 0 || read_pem(o.tls_key, &key_pem) != 0))
        return 1;
    if (cert_pem != NULL && o.cb != CB_OFF) {
        char why[200];
        tls_bindings = tlsbind_server_end_point(cert_pem, why, sizeof(why));
        if (tls_bindings == NULL) {
            say_fatal("%s: %s", o.tls_cert, why);
            return 1;
        }
    }
    /* GnuTLS's own complaints go where ours go. */
    gnutls_global_set_audit_log_function(tls_audit);
    gnutls_global_set_log_function(tls_log);
    gnutls_global_set_log_level(TLS_LOG_LEVEL);

    /* The logger first, or libmicrohttpd says so on stderr. */
    ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL};
    if (o.proxy_from == NULL) /* else proxy.c listens, and hands connections over */
        ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    ops[n_ops++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, NULL};
    ops[n_ops++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)deadline_completed, NULL};
    ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                           (intptr_t)o.num[N_TIMEOUT].value, NULL};
    ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                           (intptr_t)o.num[N_CONN_LIMIT].value, NULL};
    ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                           (intptr_t)o.num[N_PER_IP].value, NULL};
    ops[n_ops++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)(128 * 1024), NULL};
    if (threads > 1)
        ops[n_ops++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL};
    if (cert_pem != NULL) {
        ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert_pem};
        ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key_pem};
    }
    ops[n_ops] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if ((c = deadline_start(o.num[N_HEADER_TIMEOUT].value, say)) != 0) {
        say_fatal("cannot start the header timeout's thread: %s", strerror(c));
        return 1;
    }
    /* MHD_USE_ITC: so that a stop can quiesce the daemon and let requests in flight end. */
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC |
                             (cert_pem != NULL ? MHD_USE_TLS : 0) |
                             (o.proxy_from != NULL ? MHD_USE_NO_LISTEN_SOCKET : 0),
                         (uint16_t)o.num[N_PORT].value, NULL, NULL, on_request, NULL,
                         MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (d == NULL) {
        say_fatal("cannot listen on %s port %u%s", o.listen, o.num[N_PORT].value,
                  cert_pem != NULL ? ", or cannot use the TLS certificate and key" : "");
        return 1;
    }
    if (o.proxy_from != NULL &&
        (c = proxy_start(d, (struct sockaddr *)&ss, o.proxy_from, say, say_fatal)) != 0) {
        MHD_stop_daemon(d);
        return c;
    }
    if (o.num[N_METRICS_PORT].value != 0 &&
        metrics_start(o.metrics_listen, o.num[N_METRICS_PORT].value, o.keytab, mhd_log) != 0) {
        proxy_stop();
        MHD_stop_daemon(d);
        return 1;
    }
    if (o.pidfile != NULL) {
        FILE *f = fopen(o.pidfile, "w");
        if (f != NULL) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    snprintf(header_words, sizeof(header_words), "%u s", o.num[N_HEADER_TIMEOUT].value);
    say("listening on %s port %u as %s; keytab %s; %u threads, %u connections (%u per address), "
        "%u s idle timeout, %s header timeout",
        o.listen, o.num[N_PORT].value, o.member, o.keytab, threads > 1 ? threads : 1,
        o.num[N_CONN_LIMIT].value, o.num[N_PER_IP].value, o.num[N_TIMEOUT].value,
        o.num[N_HEADER_TIMEOUT].value != 0 ? header_words : "no");
    if (o.num[N_METRICS_PORT].value != 0)
        say("metrics at http://%s%s%s:%u/metrics (no authentication)",
            strchr(o.metrics_listen, ':') != NULL ? "[" : "", o.metrics_listen,
            strchr(o.metrics_listen, ':') != NULL ? "]" : "", o.num[N_METRICS_PORT].value);
    if (o.offer_ntlm && ntlm_by_domain)
        say("NTLM logins are checked by the domain through winbindd");
    else if (o.offer_ntlm)
        say("NTLM logins are checked against NTLM_USER_FILE %s", getenv("NTLM_USER_FILE"));
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    kasa_notify("READY=1");
    while (!stopping) {
        pause();
        if (reopen_logs) {
            reopen_logs = 0;
            reopen_log(log_file, o.log);
            reopen_log(auth_log, o.auth_log);
            say("reopened the logs (SIGHUP)");
            {
                kasa_ctx *hctx = NULL;
                if (kasa_ctx_new(&hctx) == 0)
                    (void)kasa_acceptor_check(hctx, acceptor, true); /* says what it did */
                kasa_ctx_free(hctx);
            }
        }
    }
    kasa_notify("STOPPING=1");
    metrics_stop();
    proxy_stop();
    drain(d);
    MHD_stop_daemon(d);
    deadline_stop();
    free(cert_pem);
    if (key_pem != NULL) {
        kasa_zap(key_pem, strlen(key_pem));
        free(key_pem);
    }
    kasa_acceptor_close(acceptor);
    if (tls_bindings != GSS_C_NO_CHANNEL_BINDINGS)
        tlsbind_free(tls_bindings);
    if (o.pidfile != NULL)
        unlink(o.pidfile);
    say("stopped");
    for (size_t i = 0; i < n_config_strings; i++)
        free(config_strings[i]);
    if (words_kctx != NULL)
        krb5_free_context(words_kctx);
    return 0;
}
