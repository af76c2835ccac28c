/*
 * The member protocol's codec: every message type round-trips, and truncated, oversized,
 * mis-versioned or garbage bytes are refused with KASA_ERR_PROTO and nothing leaked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kasa/keys.h"
#include "kasa/proto.h"

static kasa_ctx *ctx;

static int setup(void **state)
{
    (void)state;
    return kasa_ctx_new(&ctx);
}

static int teardown(void **state)
{
    (void)state;
    kasa_ctx_free(ctx);
    return 0;
}

static char *dup(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* A STAGE request for kvno 5 of two principals with two fresh keys. */
static void make_stage(kasa_request *req)
{
    const int32_t ets[] = {ENCTYPE_AES256_CTS_HMAC_SHA1_96, ENCTYPE_AES128_CTS_HMAC_SHA1_96};

    memset(req, 0, sizeof(*req));
    req->op = KASA_OP_STAGE;
    req->stage.kvno = 5;
    req->stage.arrived = 1700000000;
    req->stage.n_principals = 2;
    req->stage.principals = calloc(2, sizeof(char *));
    req->stage.principals[0] = dup("CASARRAY-ASA$@PROSEWARE.LAB");
    req->stage.principals[1] = dup("http/outlook.proseware.lab@PROSEWARE.LAB");
    assert_int_equal(kasa_keyset_generate(ctx, 5, ets, 2, &req->stage.keys), 0);
    memset(req->nonce, 0x42, sizeof(req->nonce));
}

/* Every truncation of an encoded request is refused, never read past (ASan). */
static void refuses_every_cut(const unsigned char *buf, size_t len)
{
    for (size_t cut = 0; cut < len; cut++) {
        kasa_request part;
        unsigned char *copy = malloc(cut + 1);
        memcpy(copy, buf, cut);
        assert_int_equal(kasa_request_decode(ctx, copy, cut, &part), KASA_ERR_PROTO);
        free(copy);
    }
}

static void test_stage_roundtrip(void **state)
{
    kasa_request req, got;
    unsigned char *buf;
    size_t len;

    (void)state;
    make_stage(&req);
    assert_int_equal(kasa_request_encode(ctx, &req, &buf, &len), 0);
    assert_int_equal(kasa_request_decode(ctx, buf, len, &got), 0);
    assert_int_equal(got.op, KASA_OP_STAGE);
    assert_int_equal(got.stage.kvno, 5);
    assert_int_equal(got.stage.arrived, 1700000000);
    assert_int_equal(got.stage.n_principals, 2);
    assert_string_equal(got.stage.principals[1], "http/outlook.proseware.lab@PROSEWARE.LAB");
    assert_int_equal(got.stage.keys->n, 2);
    assert_int_equal(got.stage.keys->kvno, 5);
    assert_int_equal(got.stage.keys->keys[0].enctype, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
    assert_int_equal(got.stage.keys->keys[0].length, 32);
    assert_memory_equal(got.stage.keys->keys[0].contents, req.stage.keys->keys[0].contents, 32);
    assert_memory_equal(got.nonce, req.nonce, sizeof(req.nonce));

    refuses_every_cut(buf, len);
    /* Trailing bytes are refused too. */
    {
        unsigned char *longer = calloc(1, len + 4);
        kasa_request part;
        memcpy(longer, buf, len);
        assert_int_equal(kasa_request_decode(ctx, longer, len + 4, &part), KASA_ERR_PROTO);
        free(longer);
    }
    kasa_proto_buf_free(buf, KASA_FRAME_MAX);
    kasa_request_clear(&req);
    kasa_request_clear(&got);
}

static void test_reply_roundtrip(void **state)
{
    kasa_reply rep, got;
    kasa_kvno_set sets[2];
    kasa_proof proof;
    unsigned dropped[] = {3};
    unsigned char *buf;
    size_t len;
    char *princ = "CASARRAY-ASA$@PROSEWARE.LAB";

    (void)state;
    memset(&rep, 0, sizeof(rep));
    memset(sets, 0, sizeof(sets));
    sets[0].kvno = 4;
    sets[0].arrived = 1;
    sets[0].committed = 2;
    sets[0].n_principals = 1;
    sets[0].principals = &princ;
    sets[1].kvno = 5;
    sets[1].arrived = 3;
    memset(&proof, 0, sizeof(proof));
    proof.enctype = 18;
    proof.len = 12;
    memset(proof.bytes, 7, 12);
    rep.status = KASA_REPLY_OK;
    rep.message = "";
    rep.member = "host/cas1.proseware.lab@PROSEWARE.LAB";
    rep.n_sets = 2;
    rep.sets = sets;
    rep.n_proofs = 1;
    rep.proofs = &proof;
    rep.n_dropped = 1;
    rep.dropped = dropped;
    assert_int_equal(kasa_reply_encode(ctx, &rep, &buf, &len), 0);
    assert_int_equal(kasa_reply_decode(ctx, buf, len, &got), 0);
    assert_string_equal(got.member, rep.member);
    assert_int_equal(got.n_sets, 2);
    assert_int_equal(got.sets[0].kvno, 4);
    assert_int_equal(got.sets[0].committed, 2);
    assert_string_equal(got.sets[0].principals[0], princ);
    assert_null(got.sets[0].keys);
    assert_int_equal(got.n_proofs, 1);
    assert_int_equal(got.proofs[0].len, 12);
    assert_int_equal(got.n_dropped, 1);
    assert_int_equal(got.dropped[0], 3);
    for (size_t cut = 0; cut < len; cut++) {
        kasa_reply part;
        assert_int_equal(kasa_reply_decode(ctx, buf, cut, &part), KASA_ERR_PROTO);
    }
    kasa_proto_buf_free(buf, KASA_FRAME_MAX);
    kasa_reply_clear(&got);
}

static void test_hostile_requests(void **state)
{
    /* version, op, ... as big-endian words */
    static const unsigned char wrong_version[] = {0, 0, 0, 2, 0, 0, 0, 1};
    static const unsigned char unknown_op[] = {0, 0, 0, 1, 0, 0, 0, 99};
    static const unsigned char huge_count[] = {0,    0,    0,    1,   0, 0, 0, 2, /* STAGE */
                                               0,    0,    0,    5,               /* kvno */
                                               0,    0,    0,    0,   0, 0, 0, 0, /* arrived */
                                               0,    0,    0,    0,   0, 0, 0, 0, /* committed */
                                               0xff, 0xff, 0xff, 0xff};           /* principals */
    static const unsigned char huge_string[] = {
        0,    0,    0,    1,   0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0,
        0,    0,    0,    0,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, /* one principal */
        0x7f, 0xff, 0xff, 0xff};                                   /* of 2 GiB */
    static const unsigned char status[] = {0, 0, 0, 1, 0, 0, 0, 1};
    kasa_request req;

    (void)state;
    assert_int_equal(kasa_request_decode(ctx, wrong_version, sizeof(wrong_version), &req),
                     KASA_ERR_PROTO);
    assert_int_equal(kasa_request_decode(ctx, unknown_op, sizeof(unknown_op), &req),
                     KASA_ERR_PROTO);
    assert_int_equal(kasa_request_decode(ctx, huge_count, sizeof(huge_count), &req),
                     KASA_ERR_PROTO);
    assert_int_equal(kasa_request_decode(ctx, huge_string, sizeof(huge_string), &req),
                     KASA_ERR_PROTO);
    {
        kasa_request v, got;
        unsigned char *buf;
        size_t len;
        memset(&v, 0, sizeof(v));
        v.op = KASA_OP_VERIFY;
        v.token = (unsigned char *)dup("\x60\x01\x00");
        v.token_len = 3;
        assert_int_equal(kasa_request_encode(ctx, &v, &buf, &len), 0);
        assert_int_equal(kasa_request_decode(ctx, buf, len, &got), 0);
        assert_int_equal(got.token_len, 3);
        assert_memory_equal(got.token, "\x60\x01\x00", 3);
        kasa_proto_buf_free(buf, KASA_FRAME_MAX);
        kasa_request_clear(&got);
        kasa_request_clear(&v);
        v.op = KASA_OP_VERIFY; /* an empty token is refused */
        static const unsigned char empty[] = {0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0};
        assert_int_equal(kasa_request_decode(ctx, empty, sizeof(empty), &got), KASA_ERR_PROTO);
    }
    assert_int_equal(kasa_request_decode(ctx, status, sizeof(status), &req), 0);
    assert_int_equal(req.op, KASA_OP_STATUS);
    kasa_request_clear(&req);
}

/* PROVE carries a kvno, principals and a nonce, never keys; every cut is refused. */
static void test_prove_roundtrip(void **state)
{
    kasa_request req, got;
    unsigned char *buf;
    size_t len;
    /* PROVE with no principal: nothing to prove, refused */
    static const unsigned char none[] = {0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0, 5, /* kvno 5 */
                                         0, 0, 0, 0, 0, 0, 0, 0,             /* arrived */
                                         0, 0, 0, 0, 0, 0, 0, 0,             /* committed */
                                         0, 0, 0, 0};                        /* principals */
    kasa_request empty;

    (void)state;
    make_stage(&req);
    req.op = KASA_OP_PROVE;
    assert_int_equal(kasa_request_encode(ctx, &req, &buf, &len), 0);
    assert_int_equal(kasa_request_decode(ctx, buf, len, &got), 0);
    assert_int_equal(got.op, KASA_OP_PROVE);
    assert_int_equal(got.stage.kvno, 5);
    assert_int_equal(got.stage.n_principals, 2);
    assert_string_equal(got.stage.principals[1], "http/outlook.proseware.lab@PROSEWARE.LAB");
    assert_null(got.stage.keys); /* the keys were not sent */
    assert_memory_equal(got.nonce, req.nonce, sizeof(req.nonce));
    for (size_t i = 0; i + 32 <= len; i++) /* no key byte on the wire */
        assert_memory_not_equal(buf + i, req.stage.keys->keys[0].contents, 32);
    refuses_every_cut(buf, len);
    assert_int_equal(kasa_request_decode(ctx, none, sizeof(none), &empty), KASA_ERR_PROTO);
    kasa_proto_buf_free(buf, KASA_FRAME_MAX);
    kasa_request_clear(&req);
    kasa_request_clear(&got);
}

static void test_frames(void **state)
{
    unsigned char buf[16], hdr[5];
    const unsigned char *body;
    size_t body_len, used;
    unsigned type;

    (void)state;
    kasa_frame_header(KASA_FRAME_TOKEN, 3, hdr);
    memcpy(buf, hdr, 5);
    memcpy(buf + 5, "abc", 3);
    for (size_t avail = 0; avail < 8; avail++)
        assert_int_equal(kasa_frame_parse(ctx, buf, avail, &type, &body, &body_len, &used),
                         KASA_ERR_AGAIN);
    assert_int_equal(kasa_frame_parse(ctx, buf, 8, &type, &body, &body_len, &used), 0);
    assert_int_equal(type, KASA_FRAME_TOKEN);
    assert_int_equal(body_len, 3);
    assert_int_equal(used, 8);
    assert_memory_equal(body, "abc", 3);

    memcpy(buf, "\0\0\0\0", 4); /* empty */
    assert_int_equal(kasa_frame_parse(ctx, buf, 8, &type, &body, &body_len, &used), KASA_ERR_PROTO);
    memcpy(buf, "\x7f\0\0\0", 4); /* 2 GiB */
    assert_int_equal(kasa_frame_parse(ctx, buf, 8, &type, &body, &body_len, &used), KASA_ERR_PROTO);
    kasa_frame_header(9, 0, buf); /* unknown type */
    assert_int_equal(kasa_frame_parse(ctx, buf, 5, &type, &body, &body_len, &used), KASA_ERR_PROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage_roundtrip),  cmocka_unit_test(test_reply_roundtrip),
        cmocka_unit_test(test_hostile_requests), cmocka_unit_test(test_prove_roundtrip),
        cmocka_unit_test(test_frames),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
