/*
 * Encoding and decoding the member protocol's messages with gssrpc's XDR, and finding
 * frames in a byte stream. Everything decoded here may come from a hostile peer (the
 * frame layer before authentication) or a buggy one: every count and length is checked
 * against its bound before anything is allocated, and decoding stops at the buffer's end.
 */
#include "kasa/proto.h"

#include <stdlib.h>
#include <string.h>

#include <gssrpc/rpc.h>

#include "private.h"

void kasa_proto_buf_free(unsigned char *buf, size_t len)
{
    if (buf == NULL)
        return;
    kasa_zap(buf, len);
    free(buf);
}

void kasa_kvno_set_clear(kasa_kvno_set *set)
{
    for (size_t i = 0; i < set->n_principals; i++)
        free(set->principals[i]);
    free(set->principals);
    kasa_keyset_free(set->keys);
    memset(set, 0, sizeof(*set));
}

void kasa_request_clear(kasa_request *req)
{
    kasa_kvno_set_clear(&req->stage);
    free(req->token);
    kasa_zap(req, sizeof(*req));
}

void kasa_reply_clear(kasa_reply *rep)
{
    free(rep->message);
    free(rep->member);
    for (size_t i = 0; i < rep->n_sets; i++)
        kasa_kvno_set_clear(&rep->sets[i]);
    free(rep->sets);
    free(rep->proofs);
    free(rep->dropped);
    memset(rep, 0, sizeof(*rep));
}

/* Small wrappers: each returns false on failure, so a codec reads as a chain of &&. */
static bool x_u32(XDR *x, uint32_t *v)
{
    return xdr_u_int32(x, v);
}

static bool x_unsigned(XDR *x, unsigned *v)
{
    uint32_t u = *v;

    if (!xdr_u_int32(x, &u))
        return false;
    *v = u;
    return true;
}

static bool x_i64(XDR *x, int64_t *v)
{
    uint32_t hi = (uint32_t)((uint64_t)*v >> 32), lo = (uint32_t)((uint64_t)*v & 0xffffffffu);

    if (!xdr_u_int32(x, &hi) || !xdr_u_int32(x, &lo))
        return false;
    *v = (int64_t)(((uint64_t)hi << 32) | lo);
    return true;
}

/* A count that must not exceed max. */
static bool x_count(XDR *x, size_t *n, size_t max)
{
    uint32_t u = (uint32_t)*n;

    if (!xdr_u_int32(x, &u) || u > max)
        return false;
    *n = u;
    return true;
}

/* A string of at most max bytes, no NUL inside; decoding allocates. */
static bool x_string(XDR *x, char **s, size_t max)
{
    uint32_t len = 0;

    if (x->x_op == XDR_ENCODE) {
        size_t l = *s != NULL ? strlen(*s) : 0;
        if (l > max)
            return false;
        len = (uint32_t)l;
        return xdr_u_int32(x, &len) && (len == 0 || xdr_opaque(x, *s, len));
    }
    if (!xdr_u_int32(x, &len) || len > max)
        return false;
    *s = malloc((size_t)len + 1);
    if (*s == NULL)
        return false;
    if (len > 0 && !xdr_opaque(x, *s, len))
        return false;
    (*s)[len] = '\0';
    return strlen(*s) == len;
}

/* Opaque bytes of at most max into a caller buffer. */
static bool x_fixed_bytes(XDR *x, unsigned char *buf, uint32_t *len, uint32_t max)
{
    if (!xdr_u_int32(x, len) || *len > max)
        return false;
    return *len == 0 || xdr_opaque(x, (caddr_t)buf, *len);
}

static bool x_keyset(XDR *x, kasa_keyset **ksp, unsigned kvno)
{
    kasa_keyset *ks = *ksp;
    size_t n = ks != NULL ? ks->n : 0;

    if (!x_count(x, &n, KASA_PROTO_MAX_KEYS))
        return false;
    if (x->x_op == XDR_DECODE) {
        ks = calloc(1, sizeof(*ks));
        if (ks == NULL)
            return false;
        *ksp = ks;
        ks->kvno = kvno;
        if (n > 0 && (ks->keys = calloc(n, sizeof(*ks->keys))) == NULL)
            return false;
    }
    for (size_t i = 0; i < n; i++) {
        krb5_keyblock *k = &ks->keys[i];
        uint32_t et = (uint32_t)k->enctype, len = k->length;
        if (!xdr_u_int32(x, &et) || !xdr_u_int32(x, &len) || len == 0 ||
            len > KASA_PROTO_MAX_KEYLEN)
            return false;
        if (x->x_op == XDR_DECODE) {
            k->magic = KV5M_KEYBLOCK;
            k->enctype = (krb5_enctype)et;
            k->length = len;
            k->contents = malloc(len);
            if (k->contents == NULL)
                return false;
            ks->n++;
        }
        if (!xdr_opaque(x, (caddr_t)k->contents, len))
            return false;
    }
    return true;
}

static bool x_kvno_set(XDR *x, kasa_kvno_set *set, bool with_keys)
{
    if (!x_unsigned(x, &set->kvno) || !x_i64(x, &set->arrived) || !x_i64(x, &set->committed) ||
        !x_count(x, &set->n_principals, KASA_PROTO_MAX_PRINCIPALS))
        return false;
    if (x->x_op == XDR_DECODE && set->n_principals > 0) {
        size_t n = set->n_principals;
        set->n_principals = 0;
        set->principals = calloc(n, sizeof(*set->principals));
        if (set->principals == NULL)
            return false;
        for (size_t i = 0; i < n; i++) {
            if (!x_string(x, &set->principals[i], KASA_PROTO_MAX_STRING)) {
                set->n_principals = i + 1; /* free the partial one too */
                return false;
            }
            set->n_principals = i + 1;
        }
    } else {
        for (size_t i = 0; i < set->n_principals; i++) {
            if (!x_string(x, &set->principals[i], KASA_PROTO_MAX_STRING))
                return false;
        }
    }
    return !with_keys || x_keyset(x, &set->keys, set->kvno);
}

static bool x_request(XDR *x, kasa_request *req)
{
    uint32_t version = KASA_PROTO_VERSION, nonce_len = KASA_PROTO_NONCE;

    if (!x_u32(x, &version) || version != KASA_PROTO_VERSION || !x_unsigned(x, &req->op))
        return false;
    switch (req->op) {
    case KASA_OP_STATUS:
    case KASA_OP_EXPORT:
        return true;
    case KASA_OP_STAGE:
        return x_kvno_set(x, &req->stage, true) && req->stage.keys != NULL &&
               req->stage.keys->n > 0 && req->stage.n_principals > 0 &&
               x_fixed_bytes(x, req->nonce, &nonce_len, KASA_PROTO_NONCE) &&
               nonce_len == KASA_PROTO_NONCE;
    case KASA_OP_PROVE: /* the kvno and principals, never keys */
        return x_kvno_set(x, &req->stage, false) && req->stage.n_principals > 0 &&
               x_fixed_bytes(x, req->nonce, &nonce_len, KASA_PROTO_NONCE) &&
               nonce_len == KASA_PROTO_NONCE;
    case KASA_OP_RETIRE:
        return x_unsigned(x, &req->committed_kvno) && x_i64(x, &req->committed_at) &&
               x_u32(x, &req->keep_seconds);
    case KASA_OP_VERIFY:
        if (!xdr_u_int32(x, &req->token_len) || req->token_len == 0 ||
            req->token_len > KASA_PROTO_MAX_TOKEN)
            return false;
        if (x->x_op == XDR_DECODE && (req->token = malloc(req->token_len)) == NULL)
            return false;
        return xdr_opaque(x, (caddr_t)req->token, req->token_len);
    default:
        return false;
    }
}

static bool x_reply(XDR *x, kasa_reply *rep)
{
    uint32_t version = KASA_PROTO_VERSION;
    size_t n;

    if (!x_u32(x, &version) || version != KASA_PROTO_VERSION || !x_unsigned(x, &rep->status) ||
        !x_string(x, &rep->message, KASA_PROTO_MAX_STRING) ||
        !x_string(x, &rep->member, KASA_PROTO_MAX_STRING) || !x_i64(x, &rep->now))
        return false;

    n = rep->n_sets;
    if (!x_count(x, &n, KASA_PROTO_MAX_SETS))
        return false;
    if (x->x_op == XDR_DECODE && n > 0 && (rep->sets = calloc(n, sizeof(*rep->sets))) == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint32_t has_keys = x->x_op == XDR_ENCODE && rep->sets[i].keys != NULL;
        if (x->x_op == XDR_DECODE)
            rep->n_sets = i + 1;
        if (!xdr_u_int32(x, &has_keys) || has_keys > 1 ||
            !x_kvno_set(x, &rep->sets[i], has_keys == 1))
            return false;
    }

    n = rep->n_proofs;
    if (!x_count(x, &n, KASA_PROTO_MAX_KEYS))
        return false;
    if (x->x_op == XDR_DECODE && n > 0 && (rep->proofs = calloc(n, sizeof(*rep->proofs))) == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        kasa_proof *p = &rep->proofs[i];
        uint32_t et = (uint32_t)p->enctype;
        if (!xdr_u_int32(x, &et) || !x_fixed_bytes(x, p->bytes, &p->len, KASA_PROTO_MAX_PROOF))
            return false;
        p->enctype = (int32_t)et;
        if (x->x_op == XDR_DECODE)
            rep->n_proofs = i + 1;
    }

    n = rep->n_dropped;
    if (!x_count(x, &n, KASA_PROTO_MAX_SETS))
        return false;
    if (x->x_op == XDR_DECODE && n > 0 && (rep->dropped = calloc(n, sizeof(*rep->dropped))) == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!x_unsigned(x, &rep->dropped[i]))
            return false;
        if (x->x_op == XDR_DECODE)
            rep->n_dropped = i + 1;
    }
    return true;
}

/* Run codec over a fresh KASA_FRAME_MAX buffer and hand back the bytes it wrote. */
static long encode(kasa_ctx *ctx, bool (*codec)(XDR *, void *), void *msg, unsigned char **buf,
                   size_t *len)
{
    unsigned char *b;
    XDR x;
    long ret = 0;

    *buf = NULL;
    *len = 0;
    b = calloc(1, KASA_FRAME_MAX);
    if (b == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    xdrmem_create(&x, (caddr_t)b, KASA_FRAME_MAX, XDR_ENCODE);
    if (!codec(&x, msg)) {
        ret = kasa_set_error(ctx, KASA_ERR_PROTO, "the message is too large or out of bounds");
        kasa_proto_buf_free(b, KASA_FRAME_MAX);
    } else {
        *len = xdr_getpos(&x);
        *buf = b;
    }
    xdr_destroy(&x);
    return ret;
}

/* Decode; on failure, free what was decoded so far through clear(). */
static long decode(kasa_ctx *ctx, bool (*codec)(XDR *, void *), void *msg, void (*clear)(void *),
                   const unsigned char *buf, size_t len)
{
    XDR x;
    bool ok;

    if (len > KASA_FRAME_MAX)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "the message is longer than %d bytes",
                              KASA_FRAME_MAX);
    xdrmem_create(&x, (caddr_t)buf, (u_int)len, XDR_DECODE);
    ok = codec(&x, msg) && xdr_getpos(&x) == len;
    xdr_destroy(&x);
    if (!ok) {
        clear(msg);
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "a malformed, truncated or unknown message (protocol version %d)",
                              KASA_PROTO_VERSION);
    }
    return 0;
}

static bool request_codec(XDR *x, void *m)
{
    return x_request(x, m);
}

static bool reply_codec(XDR *x, void *m)
{
    return x_reply(x, m);
}

static void request_clear(void *m)
{
    kasa_request_clear(m);
}

static void reply_clear(void *m)
{
    kasa_reply_clear(m);
}

long kasa_request_encode(kasa_ctx *ctx, const kasa_request *req, unsigned char **buf, size_t *len)
{
    return encode(ctx, request_codec, (void *)req, buf, len);
}

long kasa_request_decode(kasa_ctx *ctx, const unsigned char *buf, size_t len, kasa_request *req)
{
    memset(req, 0, sizeof(*req));
    return decode(ctx, request_codec, req, request_clear, buf, len);
}

long kasa_reply_encode(kasa_ctx *ctx, const kasa_reply *rep, unsigned char **buf, size_t *len)
{
    return encode(ctx, reply_codec, (void *)rep, buf, len);
}

long kasa_reply_decode(kasa_ctx *ctx, const unsigned char *buf, size_t len, kasa_reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    return decode(ctx, reply_codec, rep, reply_clear, buf, len);
}

void kasa_frame_header(unsigned type, size_t len, unsigned char hdr[5])
{
    uint32_t n = (uint32_t)len + 1;

    hdr[0] = (unsigned char)(n >> 24);
    hdr[1] = (unsigned char)(n >> 16);
    hdr[2] = (unsigned char)(n >> 8);
    hdr[3] = (unsigned char)n;
    hdr[4] = (unsigned char)type;
}

long kasa_frame_parse(kasa_ctx *ctx, const unsigned char *buf, size_t avail, unsigned *type,
                      const unsigned char **body, size_t *body_len, size_t *used)
{
    uint32_t n;

    if (avail < 4)
        return KASA_ERR_AGAIN;
    n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    if (n == 0)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "an empty frame");
    if (n > KASA_FRAME_MAX + 1)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a frame of %u bytes (the limit is %d)",
                              (unsigned)n, KASA_FRAME_MAX);
    if (avail < 4 + (size_t)n)
        return KASA_ERR_AGAIN;
    if (buf[4] < KASA_FRAME_TOKEN || buf[4] > KASA_FRAME_ERROR)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a frame of unknown type %u", buf[4]);
    *type = buf[4];
    *body = buf + 5;
    *body_len = (size_t)n - 1;
    *used = 4 + (size_t)n;
    return 0;
}
