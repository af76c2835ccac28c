/*
 * The member protocol: how kasa (the controller) talks to kasad on each array member.
 *
 * On the wire, frames: a 4-byte big-endian length, then a 1-byte frame type and the
 * body. A connection starts with GSS-API context tokens (KASA_FRAME_TOKEN) until both
 * sides are mutually authenticated; after that every message is gss_wrap()ed with
 * confidentiality (KASA_FRAME_WRAPPED). Before authentication the only other frame is a
 * plain KASA_FRAME_ERROR with a reason. Inside a wrapped frame, requests and replies
 * are XDR (gssrpc's, as kadmin's own protocol uses), versioned and bounded.
 *
 * Why not JSON or gssrpc's RPC layer: the messages carry keys, which must be wiped
 * after use (a JSON library keeps copies we cannot reach), and RPC with AUTH_GSSAPI is
 * kadmind's legacy mechanism, more than this needs. Framing and the few message types
 * are written here; XDR encoding and the GSS-API are MIT's.
 */
#ifndef KASA_PROTO_H
#define KASA_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "kasa/keys.h"
#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KASA_PROTO_VERSION 1
#define KASA_PORT_DEFAULT 7460
#define KASA_FRAME_MAX (64 * 1024) /* a whole frame, length prefix excluded */
#define KASA_PROTO_MAX_SETS 32     /* kvnos in one reply */
#define KASA_PROTO_MAX_PRINCIPALS 256
#define KASA_PROTO_MAX_KEYS 8 /* enctypes in one kvno */
#define KASA_PROTO_MAX_STRING 1024
#define KASA_PROTO_MAX_KEYLEN 64
#define KASA_PROTO_NONCE 16
#define KASA_PROTO_MAX_PROOF 64
#define KASA_KEYUSAGE_PROOF 1800 /* key usage of the stage proof checksums */

enum kasa_frame_type {
    KASA_FRAME_TOKEN = 1,
    KASA_FRAME_WRAPPED = 2,
    KASA_FRAME_ERROR = 3,
};

enum kasa_op {
    KASA_OP_STATUS = 1, /* which kvnos the member holds */
    KASA_OP_STAGE = 2,  /* add keys for a kvno; prove they are on disk */
    KASA_OP_EXPORT = 3, /* the keys the member holds (for kasa copy) */
    KASA_OP_RETIRE = 4, /* a kvno was committed; drop what no ticket can need */
    KASA_OP_VERIFY = 5, /* would the array keytab accept this Kerberos token? */
    KASA_OP_PROVE = 6,  /* prove the keys held at a kvno: checksums over the nonce */
};

#define KASA_PROTO_MAX_TOKEN (16 * 1024)

enum kasa_reply_status {
    KASA_REPLY_OK = 0,
    KASA_REPLY_DENIED = 1,   /* the peer is not on the member's ACL */
    KASA_REPLY_BAD = 2,      /* malformed or unknown request */
    KASA_REPLY_FAILED = 3,   /* the member could not do it */
    KASA_REPLY_CONFLICT = 4, /* e.g. restaging a committed kvno */
};

/* One kvno as a member holds it. keys is NULL in status replies. */
typedef struct kasa_kvno_set {
    unsigned kvno;
    int64_t arrived;   /* when the member got it (seconds since the epoch) */
    int64_t committed; /* when the directory switched to it; 0 when not known */
    size_t n_principals;
    char **principals;
    kasa_keyset *keys;
} kasa_kvno_set;

/* The member's proof that it holds a key: a checksum over the nonce. */
typedef struct kasa_proof {
    int32_t enctype;
    uint32_t len;
    unsigned char bytes[KASA_PROTO_MAX_PROOF];
} kasa_proof;

typedef struct kasa_request {
    unsigned op;
    kasa_kvno_set stage; /* STAGE: the kvno, principals and keys; PROVE: no keys */
    unsigned char nonce[KASA_PROTO_NONCE];
    unsigned committed_kvno; /* RETIRE */
    int64_t committed_at;    /* RETIRE */
    uint32_t keep_seconds;   /* RETIRE: longest ticket lifetime plus clock skew */
    unsigned char *token;    /* VERIFY: a Kerberos GSS-API token (AP-REQ) */
    uint32_t token_len;
} kasa_request;

typedef struct kasa_reply {
    unsigned status; /* enum kasa_reply_status */
    char *message;   /* a sentence for people; "" when ok */
    char *member;    /* the member's principal */
    int64_t now;     /* the member's clock (seconds since the epoch), for skew checks */
    size_t n_sets;   /* STATUS, EXPORT */
    kasa_kvno_set *sets;
    size_t n_proofs; /* STAGE, PROVE */
    kasa_proof *proofs;
    size_t n_dropped; /* RETIRE */
    unsigned *dropped;
} kasa_reply;

/*
 * Encode a request or reply into a fresh buffer (wipe and free it with
 * kasa_proto_buf_free). Decoding checks every bound and never reads past len; bad
 * input gives KASA_ERR_PROTO with the reason.
 */
KASA_API long kasa_request_encode(kasa_ctx *ctx, const kasa_request *req, unsigned char **buf,
                                  size_t *len);
KASA_API long kasa_request_decode(kasa_ctx *ctx, const unsigned char *buf, size_t len,
                                  kasa_request *req);
KASA_API long kasa_reply_encode(kasa_ctx *ctx, const kasa_reply *rep, unsigned char **buf,
                                size_t *len);
KASA_API long kasa_reply_decode(kasa_ctx *ctx, const unsigned char *buf, size_t len,
                                kasa_reply *rep);
KASA_API void kasa_proto_buf_free(unsigned char *buf, size_t len);

/* Free what a request or reply holds (keys wiped); the struct itself is the caller's. */
KASA_API void kasa_request_clear(kasa_request *req);
KASA_API void kasa_reply_clear(kasa_reply *rep);
KASA_API void kasa_kvno_set_clear(kasa_kvno_set *set);

/*
 * Find one frame at the start of buf[0..avail). Returns 0 and sets *type, *body,
 * *body_len and *used when a whole frame is there; KASA_ERR_AGAIN when more bytes are
 * needed; KASA_ERR_PROTO for a frame that is too long, empty, or of an unknown type.
 */
KASA_API long kasa_frame_parse(kasa_ctx *ctx, const unsigned char *buf, size_t avail,
                               unsigned *type, const unsigned char **body, size_t *body_len,
                               size_t *used);

/* Write the frame header for a body of len bytes of the given type into hdr[5]. */
KASA_API void kasa_frame_header(unsigned type, size_t len, unsigned char hdr[5]);

#ifdef __cplusplus
}
#endif

#endif
