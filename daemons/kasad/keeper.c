/*
 * The keeper: the only kasad process that opens the array keytab. It takes requests
 * from the network process over a local socket, already authenticated and authorized,
 * and does one thing with each: report, stage, export or retire. It reads the keytab
 * afresh for every request, so the file on disk is the only truth.
 */
#include <errno.h>
#include <glob.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>

#include "kasa/keytab.h"
#include "kasa/token.h"
#include "kasa/proto.h"
#include "kasad.h"

static void reply_error(kasa_reply *rep, unsigned status, const char *msg)
{
    rep->status = status;
    free(rep->message);
    rep->message = strdup(msg);
}

/* Copy held's sets into the reply; keys only when with_keys. */
static long sets_to_reply(kasa_ctx *ctx, const kasa_held *held, bool with_keys, kasa_reply *rep)
{
    size_t n = held->n > KASA_PROTO_MAX_SETS ? KASA_PROTO_MAX_SETS : held->n;

    rep->sets = calloc(n + 1, sizeof(*rep->sets));
    if (rep->sets == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    /* The newest kvnos matter most: skip the oldest if there are more than fit. */
    for (size_t i = held->n - n; i < held->n; i++) {
        long ret = kasa_kvno_set_copy(ctx, &held->sets[i], &rep->sets[rep->n_sets]);
        if (ret)
            return ret;
        if (!with_keys) {
            kasa_keyset_free(rep->sets[rep->n_sets].keys);
            rep->sets[rep->n_sets].keys = NULL;
        }
        rep->n_sets++;
    }
    return 0;
}

/* Would the array keytab accept this token? The reason in Kerberos's words when not. */
static void verify(kasa_ctx *ctx, const struct kasad_opts *opts, const kasa_held *held,
                   const kasa_request *req, kasa_reply *rep)
{
    kasa_token_info info;
    char holds[160] = "", why2[600];
    gss_key_value_element_desc elem = {"keytab", opts->managed_keytab};
    gss_key_value_set_desc store = {1, &elem};
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    gss_ctx_id_t gctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in = {req->token_len, req->token}, out = GSS_C_EMPTY_BUFFER;
    OM_uint32 major, minor, m2;
    char why[300] = "";

    gss_OID_set_desc krb5_only = {1, (gss_OID)gss_mech_krb5};
    gss_name_t target = GSS_C_NO_NAME;
    char tname[800];

    /* The ticket's own principal, and only its keytab entries: with any name, MIT tries
     * every entry at that kvno, and one principal's wrong key would hide behind another
     * principal's right one (they share a key). */
    if (kasa_token_decode(ctx, req->token, req->token_len, &info) == 0 && info.has_ap_req) {
        gss_buffer_desc nb;
        snprintf(tname, sizeof(tname), "%s@%s", info.sname, info.realm);
        nb.value = tname;
        nb.length = strlen(tname);
        (void)gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &target);
    }
    /* Kerberos alone: the token is a ticket for the array, and no other mechanism
     * installed on the member (gss-ntlmssp) should parse what a peer sent. */
    major = gss_acquire_cred_from(&minor, target, GSS_C_INDEFINITE, &krb5_only, GSS_C_ACCEPT,
                                  &store, &cred, NULL, NULL);
    gss_release_name(&m2, &target);
    if (!GSS_ERROR(major))
        major = gss_accept_sec_context(&minor, &gctx, cred, &in, GSS_C_NO_CHANNEL_BINDINGS, NULL,
                                       NULL, &out, NULL, NULL, NULL);
    if (GSS_ERROR(major)) {
        krb5_context k = NULL;
        if (minor != 0 && krb5_init_context(&k) == 0) {
            const char *m = krb5_get_error_message(k, (krb5_error_code)minor);
            snprintf(why, sizeof(why), "%s", m);
            krb5_free_error_message(k, m);
            krb5_free_context(k);
        }
        /* Name the kvnos: the ticket's, and what this member holds. */
        for (size_t i = 0; i < held->n && strlen(holds) < sizeof(holds) - 16; i++)
            snprintf(holds + strlen(holds), sizeof(holds) - strlen(holds), "%s%u", i ? ", " : "",
                     held->sets[i].kvno);
        if (kasa_token_decode(ctx, req->token, req->token_len, &info) == 0 && info.has_kvno)
            snprintf(why2, sizeof(why2), "%s: the ticket is at kvno %u; this member holds %s%s",
                     why[0] ? why : "rejected", info.kvno, held->n ? "kvno " : "no key", holds);
        else
            snprintf(why2, sizeof(why2), "%s", why[0] ? why : "the keytab rejected the ticket");
        reply_error(rep, KASA_REPLY_FAILED, why2);
    }
    gss_release_buffer(&m2, &out);
    gss_delete_sec_context(&m2, &gctx, GSS_C_NO_BUFFER);
    gss_release_cred(&m2, &cred);
}

static void handle(kasa_ctx *ctx, const struct kasad_opts *opts, const kasa_request *req,
                   kasa_reply *rep)
{
    kasa_held held = {0};
    long ret;

    ret = kasa_held_load(ctx, opts->managed_keytab, &held);
    if (ret) {
        reply_error(rep, KASA_REPLY_FAILED, kasa_error(ctx));
        return;
    }
    switch (req->op) {
    case KASA_OP_VERIFY:
        verify(ctx, opts, &held, req, rep);
        kasa_held_clear(&held);
        return;
    case KASA_OP_STATUS:
    case KASA_OP_EXPORT:
        ret = sets_to_reply(ctx, &held, req->op == KASA_OP_EXPORT, rep);
        break;
    case KASA_OP_STAGE: {
        kasa_proof proofs[KASA_PROTO_MAX_KEYS];
        size_t n = 0;
        ret = kasa_held_stage(ctx, &held, &req->stage, (int64_t)time(NULL));
        if (!ret)
            ret = kasa_held_store(ctx, opts->managed_keytab, &held, opts->keytab_gid);
        if (!ret)
            ret = kasa_keytab_prove(ctx, opts->managed_keytab, &req->stage, req->nonce, proofs, &n);
        if (!ret && (rep->proofs = calloc(n, sizeof(*rep->proofs))) == NULL)
            ret = KASA_ERR_NOMEM;
        if (!ret) {
            memcpy(rep->proofs, proofs, n * sizeof(*proofs));
            rep->n_proofs = n;
            kasad_log("staged kvno %u for %zu principals, %zu keys", req->stage.kvno,
                      req->stage.n_principals, req->stage.keys->n);
        }
        break;
    }
    case KASA_OP_PROVE: { /* what it holds: no change, no key leaves */
        kasa_proof proofs[KASA_PROTO_MAX_KEYS];
        size_t n = 0;
        ret = kasa_keytab_prove(ctx, opts->managed_keytab, &req->stage, req->nonce, proofs, &n);
        if (!ret && n > 0 && (rep->proofs = calloc(n, sizeof(*rep->proofs))) == NULL)
            ret = KASA_ERR_NOMEM;
        if (!ret) {
            memcpy(rep->proofs, proofs, n * sizeof(*proofs));
            rep->n_proofs = n;
        }
        kasa_zap(proofs, sizeof(proofs));
        break;
    }
    case KASA_OP_RETIRE: {
        unsigned dropped[KASA_PROTO_MAX_SETS];
        size_t n = 0;
        ret = kasa_held_retire(ctx, &held, req->committed_kvno, req->committed_at,
                               (int64_t)req->keep_seconds, (int64_t)time(NULL), dropped, &n);
        if (!ret)
            ret = kasa_held_store(ctx, opts->managed_keytab, &held, opts->keytab_gid);
        if (!ret && n > 0 && (rep->dropped = calloc(n, sizeof(*rep->dropped))) == NULL)
            ret = KASA_ERR_NOMEM;
        if (!ret && n > 0) {
            memcpy(rep->dropped, dropped, n * sizeof(*dropped));
            rep->n_dropped = n;
            for (size_t i = 0; i < n; i++)
                kasad_log("retired kvno %u (kvno %u committed)", dropped[i], req->committed_kvno);
        }
        break;
    }
    default:
        ret = kasa_set_error(ctx, KASA_ERR_PROTO, "unknown request");
        break;
    }
    kasa_held_clear(&held);
    if (ret)
        reply_error(rep, ret == KASA_ERR_KVNO ? KASA_REPLY_CONFLICT : KASA_REPLY_FAILED,
                    kasa_error(ctx));
}

/* Temporary files a crash left behind (write-temp, fsync, rename was cut short). */
static void remove_leftovers(const char *keytab)
{
    static const char *const suffixes[] = {".tmp.*", ".state.tmp.*"};
    char pattern[4200];

    for (size_t p = 0; p < 2; p++) {
        glob_t g;
        snprintf(pattern, sizeof(pattern), "%s%s", keytab, suffixes[p]);
        if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
            continue;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            if (unlink(g.gl_pathv[i]) == 0)
                kasad_log("removed %s, left by an interrupted write", g.gl_pathv[i]);
        }
        globfree(&g);
    }
}

/* One request on fd and its reply; false when fd is closed. The metrics' socket
 * (status_only) may ask for status alone: never keys, never a change. */
static bool serve_one(kasa_ctx *ctx, const struct kasad_opts *opts, int fd, unsigned char *buf,
                      bool status_only)
{
    kasa_request req;
    kasa_reply rep;
    unsigned char *out = NULL;
    size_t out_len = 0;
    ssize_t n = recv(fd, buf, KASA_FRAME_MAX + 1, MSG_DONTWAIT);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    memset(&rep, 0, sizeof(rep));
    rep.message = strdup("");
    if (kasa_request_decode(ctx, buf, (size_t)n, &req) != 0)
        reply_error(&rep, KASA_REPLY_BAD, kasa_error(ctx));
    else if (status_only && req.op != KASA_OP_STATUS)
        reply_error(&rep, KASA_REPLY_BAD, "only status is asked here");
    else
        handle(ctx, opts, &req, &rep);
    kasa_zap(buf, (size_t)n);
    kasa_request_clear(&req);
    if (kasa_reply_encode(ctx, &rep, &out, &out_len) != 0) {
        /* Too much to say: say that instead, without the payload. */
        kasa_reply_clear(&rep);
        rep.message = strdup("");
        reply_error(&rep, KASA_REPLY_FAILED, "the reply would exceed the message limit");
        (void)kasa_reply_encode(ctx, &rep, &out, &out_len);
    }
    if (out != NULL) {
        /* The metrics' thread may have stopped waiting: never block on it. */
        (void)send(fd, out, out_len, MSG_NOSIGNAL | (status_only ? MSG_DONTWAIT : 0));
        kasa_proto_buf_free(out, KASA_FRAME_MAX);
    }
    kasa_reply_clear(&rep);
    return true;
}

int keeper_run(const struct kasad_opts *opts, int fd, int metrics_fd)
{
    unsigned char *buf = malloc(KASA_FRAME_MAX + 1);
    kasa_ctx *ctx = NULL;

    if (buf == NULL || kasa_ctx_new(&ctx) != 0)
        return 1;
    remove_leftovers(opts->managed_keytab);
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = metrics_fd, .events = POLLIN}};
        if (kasad_reopen) {
            kasad_reopen = 0;
            kasad_log_reopen();
        }
        if (poll(p, metrics_fd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        /* The network process first: a controller never waits behind two scrapes. */
        if (p[0].revents != 0 && !serve_one(ctx, opts, fd, buf, false))
            break;
        if (metrics_fd >= 0 && p[1].revents != 0 && !serve_one(ctx, opts, metrics_fd, buf, true)) {
            close(metrics_fd);
            metrics_fd = -1;
        }
    }
    kasa_zap(buf, KASA_FRAME_MAX + 1);
    free(buf);
    kasa_ctx_free(ctx);
    return 0;
}
