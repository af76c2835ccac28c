/*
 * Reading a Negotiate token (RFC 4559, RFC 4178, RFC 4121, RFC 4120) without any key:
 * which mechanism the client offers and uses, and for Kerberos the ticket's realm,
 * service name, enctype and kvno, which travel in the clear. DER is decoded by libtasn1
 * from an ASN.1 module (lib/tokens.asn); only the GSS-API token framing, a tag, a length
 * and an OID, is read here.
 */
#ifndef KASA_TOKEN_H
#define KASA_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KASA_TOKEN_MAX_MECHS 8

typedef enum kasa_token_kind {
    KASA_TOKEN_SPNEGO_INIT = 1, /* NegTokenInit, inside a GSS-API initial token */
    KASA_TOKEN_SPNEGO_RESP,     /* NegTokenResp: a later leg */
    KASA_TOKEN_KRB5,            /* a bare Kerberos GSS-API token */
    KASA_TOKEN_NTLM,            /* a bare NTLMSSP message */
} kasa_token_kind;

typedef struct kasa_token_info {
    kasa_token_kind kind;
    size_t n_mechs; /* SPNEGO: the client's mechanisms, most preferred first */
    char mechs[KASA_TOKEN_MAX_MECHS][64];
    const char *inner; /* the mechanism of the token carried: "Kerberos", "NTLM", "" */
    /* Kerberos AP-REQ */
    bool has_ap_req;
    char realm[256];
    char sname[512]; /* service/host */
    int etype;
    bool has_kvno;
    unsigned kvno;
    bool mutual_required; /* AP-REQ options */
    bool use_session_key;
    /* SHA-256 of the authenticator's ciphertext: what one authenticator is, whoever sends
     * it and to whichever member (a replay carries the same bytes; other bytes do not
     * decrypt). The key of the array's replay cache (kasa/replay.h). */
    bool has_auth_digest;
    unsigned char auth_digest[32];
    /* NTLM: 1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE */
    int ntlm_type;
    unsigned ntlm_flags;
    char ntlm_domain[128]; /* the target name, for a CHALLENGE */
    char ntlm_user[128];
    char ntlm_workstation[128];
    bool ntlm_has_version;
    unsigned ntlm_major, ntlm_minor, ntlm_build;
    /* the inner mechanism's token, pointing into the input */
    const unsigned char *mech_token;
    size_t mech_token_len;
} kasa_token_info;

/* Decode a token (already base64-decoded). Hostile input gives KASA_ERR_PROTO with the
 * reason, never a crash. */
KASA_API long kasa_token_decode(kasa_ctx *ctx, const unsigned char *buf, size_t len,
                                kasa_token_info *out);

/* "Kerberos", "NTLM", "SPNEGO" or the dotted OID. */
KASA_API const char *kasa_mech_name(const char *oid);

#ifdef __cplusplus
}
#endif

#endif
