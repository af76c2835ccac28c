/*
 * Writes the member-protocol seeds of tests/fuzz/corpus/proto: every request and reply
 * kasa and kasad exchange, encoded by libkasa itself, bare and inside a frame, so the
 * fuzzer starts from messages that decode rather than from noise. Run it again when the
 * protocol changes: mkseeds DIR (see tests/fuzz/meson.build).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/keys.h"
#include "kasa/proto.h"

static const char *dir;

/* DIR/name holds the body, and DIR/frame-name the same body in a frame of type. */
static void save(const char *name, unsigned type, const unsigned char *body, size_t len)
{
    char path[4096];
    unsigned char hdr[5];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "wb")) == NULL || fwrite(body, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    if (type == 0)
        return;
    snprintf(path, sizeof(path), "%s/frame-%s", dir, name);
    kasa_frame_header(type, len, hdr);
    if ((f = fopen(path, "wb")) == NULL || fwrite(hdr, 1, 5, f) != 5 ||
        fwrite(body, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void save_request(kasa_ctx *ctx, const char *name, const kasa_request *req)
{
    unsigned char *buf;
    size_t len;

    if (kasa_request_encode(ctx, req, &buf, &len) != 0) {
        fprintf(stderr, "mkseeds: %s: %s\n", name, kasa_error(ctx));
        exit(1);
    }
    save(name, KASA_FRAME_WRAPPED, buf, len);
    kasa_proto_buf_free(buf, KASA_FRAME_MAX);
}

static void save_reply(kasa_ctx *ctx, const char *name, const kasa_reply *rep)
{
    unsigned char *buf;
    size_t len;

    if (kasa_reply_encode(ctx, rep, &buf, &len) != 0) {
        fprintf(stderr, "mkseeds: %s: %s\n", name, kasa_error(ctx));
        exit(1);
    }
    save(name, KASA_FRAME_WRAPPED, buf, len);
    kasa_proto_buf_free(buf, KASA_FRAME_MAX);
}

int main(int argc, char **argv)
{
    static const int32_t ets[] = {ENCTYPE_AES256_CTS_HMAC_SHA1_96, ENCTYPE_AES128_CTS_HMAC_SHA1_96};
    /* The hostile requests of tests/unit/test_proto.c. */
    static const unsigned char wrong_version[] = {0, 0, 0, 2, 0, 0, 0, 1};
    static const unsigned char huge_count[] = {
        0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0,    0,    0,    0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char huge_string[] = {0, 0, 0, 1, 0, 0, 0, 2, 0,    0,    0,    5,
                                                0, 0, 0, 0, 0, 0, 0, 0, 0,    0,    0,    0,
                                                0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff};
    static const char *const reason = "you are not on this member's ACL";
    /* A Kerberos GSS-API token's start: the shape of a VERIFY request's token. */
    static const unsigned char krb5_token[] = {0x60, 0x0f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                               0x12, 0x01, 0x02, 0x02, 0x01, 0x00, 0x6e, 0x00};
    char *princs[] = {"CASARRAY-ASA$@PROSEWARE.LAB", "http/outlook.proseware.lab@PROSEWARE.LAB"};
    kasa_ctx *ctx;
    kasa_request req;
    kasa_reply rep;
    kasa_kvno_set sets[2];
    kasa_proof proofs[2];
    unsigned dropped[] = {3, 4};
    kasa_keyset *keys = NULL;

    if (argc != 2) {
        fputs("usage: mkseeds DIR\n", stderr);
        return 2;
    }
    dir = argv[1];
    if (kasa_ctx_new(&ctx) != 0 || kasa_keyset_generate(ctx, 5, ets, 2, &keys) != 0) {
        fputs("mkseeds: cannot make keys\n", stderr);
        return 1;
    }
    /* Fixed bytes, so that running mkseeds again changes no seed. */
    for (size_t i = 0; i < keys->n; i++)
        memset(keys->keys[i].contents, 0x11 * (int)(i + 1), keys->keys[i].length);

    memset(&req, 0, sizeof(req));
    req.op = KASA_OP_STATUS;
    save_request(ctx, "req-status", &req);
    req.op = KASA_OP_EXPORT;
    save_request(ctx, "req-export", &req);
    req.op = KASA_OP_STAGE;
    req.stage.kvno = 5;
    req.stage.arrived = 1700000000;
    req.stage.n_principals = 2;
    req.stage.principals = princs;
    req.stage.keys = keys;
    memset(req.nonce, 0x42, sizeof(req.nonce));
    save_request(ctx, "req-stage", &req);
    req.op = KASA_OP_PROVE; /* the same kvno and principals, no keys */
    req.stage.keys = NULL;
    save_request(ctx, "req-prove", &req);
    memset(&req, 0, sizeof(req));
    req.op = KASA_OP_RETIRE;
    req.committed_kvno = 5;
    req.committed_at = 1700000100;
    req.keep_seconds = 36000 + 300;
    save_request(ctx, "req-retire", &req);
    memset(&req, 0, sizeof(req));
    req.op = KASA_OP_VERIFY;
    req.token = (unsigned char *)krb5_token;
    req.token_len = sizeof(krb5_token);
    save_request(ctx, "req-verify", &req);

    memset(sets, 0, sizeof(sets));
    sets[0].kvno = 4;
    sets[0].arrived = 1699990000;
    sets[0].committed = 1699990100;
    sets[0].n_principals = 2;
    sets[0].principals = princs;
    sets[1].kvno = 5;
    sets[1].arrived = 1700000000;
    sets[1].n_principals = 1;
    sets[1].principals = princs;
    memset(&rep, 0, sizeof(rep));
    rep.status = KASA_REPLY_OK;
    rep.message = "";
    rep.member = "host/cas1.proseware.lab@PROSEWARE.LAB";
    rep.now = 1700000200;
    rep.n_sets = 2;
    rep.sets = sets;
    save_reply(ctx, "rep-status", &rep);
    sets[1].keys = keys;
    save_reply(ctx, "rep-export", &rep);
    sets[1].keys = NULL;
    rep.n_sets = 0;
    memset(proofs, 0, sizeof(proofs));
    for (size_t i = 0; i < 2; i++) {
        proofs[i].enctype = ets[i];
        proofs[i].len = 12;
        memset(proofs[i].bytes, 0x07 + (int)i, 12);
    }
    rep.n_proofs = 2;
    rep.proofs = proofs;
    save_reply(ctx, "rep-stage", &rep);
    rep.n_proofs = 0;
    rep.n_dropped = 2;
    rep.dropped = dropped;
    save_reply(ctx, "rep-retire", &rep);
    rep.n_dropped = 0;
    rep.message = "kasa_verify: accepted at kvno 5";
    save_reply(ctx, "rep-verify", &rep);
    rep.status = KASA_REPLY_DENIED;
    rep.message = (char *)reason;
    save_reply(ctx, "rep-denied", &rep);
    rep.status = KASA_REPLY_CONFLICT;
    rep.message = "kvno 5 is committed; it cannot be staged again";
    save_reply(ctx, "rep-conflict", &rep);

    /* Before authentication: a context token and a plain error. */
    save("token", KASA_FRAME_TOKEN, krb5_token, sizeof(krb5_token));
    save("error", KASA_FRAME_ERROR, (const unsigned char *)reason, strlen(reason));
    save("req-wrong-version", 0, wrong_version, sizeof(wrong_version));
    save("req-huge-count", 0, huge_count, sizeof(huge_count));
    save("req-huge-string", 0, huge_string, sizeof(huge_string));

    kasa_keyset_free(keys);
    kasa_ctx_free(ctx);
    return 0;
}
