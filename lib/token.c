/*
 * Negotiate tokens, read with libtasn1. See kasa/token.h.
 */
#include "kasa/token.h"

#include <gnutls/crypto.h>
#include <libtasn1.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

#define OID_SPNEGO "1.3.6.1.5.5.2"
#define OID_KRB5 "1.2.840.113554.1.2.2"
#define OID_KRB5_OLD "1.2.840.48018.1.2.2" /* Microsoft's misspelt Kerberos OID */
#define OID_NTLM "1.3.6.1.4.1.311.2.2.10"

extern const asn1_static_node kasa_tokens_asn1_tab[];

static asn1_node definitions;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load_definitions(void)
{
    char err[ASN1_MAX_ERROR_DESCRIPTION_SIZE];

    if (asn1_array2tree(kasa_tokens_asn1_tab, &definitions, err) != ASN1_SUCCESS)
        definitions = NULL;
}

const char *kasa_mech_name(const char *oid)
{
    if (strcmp(oid, OID_KRB5) == 0 || strcmp(oid, OID_KRB5_OLD) == 0)
        return "Kerberos";
    if (strcmp(oid, OID_NTLM) == 0)
        return "NTLM";
    if (strcmp(oid, OID_SPNEGO) == 0)
        return "SPNEGO";
    return oid;
}

/* Decode der as type into a fresh element; the whole input must be used. */
static long decode(kasa_ctx *ctx, const char *type, const unsigned char *der, size_t len,
                   asn1_node *out)
{
    char err[ASN1_MAX_ERROR_DESCRIPTION_SIZE] = "";
    int used = (int)len, r;

    *out = NULL;
    pthread_once(&once, load_definitions);
    if (definitions == NULL)
        return kasa_set_error(ctx, KASA_ERR_INTERNAL, "the ASN.1 definitions did not load");
    if (len == 0 || len > 65536)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a %s of %zu bytes", type + 12, len);
    if (asn1_create_element(definitions, type, out) != ASN1_SUCCESS)
        return kasa_set_error(ctx, KASA_ERR_INTERNAL, "no ASN.1 type %s", type);
    r = asn1_der_decoding2(out, der, &used, ASN1_DECODE_FLAG_STRICT_DER, err);
    if (r != ASN1_SUCCESS || used != (int)len) {
        asn1_delete_structure(out);
        return kasa_set_error(ctx, KASA_ERR_PROTO, "not a valid %s: %s", type + 12,
                              r != ASN1_SUCCESS ? asn1_strerror(r) : "trailing bytes");
    }
    return 0;
}

/* Read a value as a NUL-terminated string into buf. libtasn1 counts the NUL of OIDs and
 * CHOICE names, not of GeneralStrings; a NUL inside a string is refused. */
static bool read_str(asn1_node n, const char *name, char *buf, size_t size)
{
    int len = (int)size - 1;

    if (asn1_read_value(n, name, buf, &len) != ASN1_SUCCESS || len < 0 || (size_t)len >= size)
        return false;
    if (len > 0 && buf[len - 1] == '\0')
        len--;
    buf[len] = '\0';
    return strlen(buf) == (size_t)len;
}

/* Read a small DER INTEGER (two's complement, big-endian). */
static bool read_int(asn1_node n, const char *name, long *out)
{
    unsigned char b[8];
    int len = sizeof(b);
    long v;

    if (asn1_read_value(n, name, b, &len) != ASN1_SUCCESS || len < 1 || len > 4)
        return false;
    v = (b[0] & 0x80) ? -1 : 0;
    for (int i = 0; i < len; i++)
        v = (long)((unsigned long)v << 8) | b[i];
    *out = v;
    return true;
}

static long decode_ap_req(kasa_ctx *ctx, const unsigned char *der, size_t len, kasa_token_info *t)
{
    asn1_node ap = NULL;
    char part[256];
    long v;
    int n = 0;
    long ret;

    ret = decode(ctx, "KASA-TOKENS.AP-REQ", der, len, &ap);
    if (ret)
        return ret;
    if (!read_str(ap, "ticket.realm", t->realm, sizeof(t->realm)) ||
        !read_int(ap, "ticket.enc-part.etype", &v) ||
        asn1_number_of_elements(ap, "ticket.sname.name-string", &n) != ASN1_SUCCESS || n < 1) {
        asn1_delete_structure(&ap);
        return kasa_set_error(ctx, KASA_ERR_PROTO, "an AP-REQ without a realm, enctype or name");
    }
    t->etype = (int)v;
    t->sname[0] = '\0';
    for (int i = 1; i <= n && i <= 8; i++) {
        char name[64];
        snprintf(name, sizeof(name), "ticket.sname.name-string.?%d", i);
        if (!read_str(ap, name, part, sizeof(part)) ||
            strlen(t->sname) + strlen(part) + 2 > sizeof(t->sname)) {
            asn1_delete_structure(&ap);
            return kasa_set_error(ctx, KASA_ERR_PROTO, "an AP-REQ with a bad service name");
        }
        if (i > 1)
            strcat(t->sname, "/");
        strcat(t->sname, part);
    }
    {
        unsigned char opts[8];
        int bits = (int)sizeof(opts) * 8;
        if (asn1_read_value(ap, "ap-options", opts, &bits) == ASN1_SUCCESS && bits >= 3) {
            t->use_session_key = (opts[0] & 0x40) != 0;
            t->mutual_required = (opts[0] & 0x20) != 0;
        }
    }
    if (read_int(ap, "ticket.enc-part.kvno", &v) && v >= 0) {
        t->has_kvno = true;
        t->kvno = (unsigned)v;
    }
    {
        int clen = 0;
        unsigned char *cipher = NULL;
        if (asn1_read_value(ap, "authenticator.cipher", NULL, &clen) == ASN1_MEM_ERROR &&
            clen > 0 && (size_t)clen <= len && (cipher = malloc((size_t)clen)) != NULL &&
            asn1_read_value(ap, "authenticator.cipher", cipher, &clen) == ASN1_SUCCESS &&
            gnutls_hash_fast(GNUTLS_DIG_SHA256, cipher, (size_t)clen, t->auth_digest) == 0)
            t->has_auth_digest = true;
        free(cipher);
    }
    t->has_ap_req = true;
    asn1_delete_structure(&ap);
    return 0;
}

/* A GSS-API initial token: [APPLICATION 0] length OID inner. */
static long gss_frame(kasa_ctx *ctx, const unsigned char *buf, size_t len, char *oid,
                      size_t oid_size, const unsigned char **inner, size_t *inner_len)
{
    long body;
    int len_len, oid_len, used;

    if (len < 2 || buf[0] != 0x60)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "not a GSS-API initial token");
    body = asn1_get_length_der(buf + 1, (int)(len - 1), &len_len);
    if (body < 0 || (size_t)body != len - 1 - (size_t)len_len)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a GSS-API token whose length is wrong");
    buf += 1 + len_len;
    len -= 1 + (size_t)len_len;
    if (len < 2 || buf[0] != 0x06)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a GSS-API token without a mechanism OID");
    oid_len = (int)asn1_get_length_der(buf + 1, (int)(len - 1), &len_len);
    if (oid_len <= 0 || (size_t)(1 + len_len + oid_len) > len ||
        asn1_get_object_id_der(buf + 1, (int)(len - 1), &used, oid, (int)oid_size) != ASN1_SUCCESS)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a GSS-API token with a bad OID");
    *inner = buf + 1 + len_len + oid_len;
    *inner_len = len - 1 - (size_t)len_len - (size_t)oid_len;
    return 0;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Copy an NTLMSSP security buffer (length 2, max 2, offset 4, at field) as printable text:
 * UTF-16LE when the message is Unicode, else OEM; anything outside printable ASCII
 * becomes '?', so a name can never carry control bytes to a terminal or a log.
 */
static bool ntlm_string(const unsigned char *msg, size_t len, size_t field, bool unicode, char *out,
                        size_t size)
{
    size_t n, off, o = 0;

    out[0] = '\0';
    if (field + 8 > len)
        return false;
    n = (size_t)(msg[field] | msg[field + 1] << 8);
    off = le32(msg + field + 4);
    if (n == 0)
        return true;
    if (off > len || n > len - off || (unicode && n % 2 != 0))
        return false;
    for (size_t i = 0; i < n && o + 1 < size; i += unicode ? 2 : 1) {
        unsigned c = unicode ? (unsigned)(msg[off + i] | msg[off + i + 1] << 8) : msg[off + i];
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[o] = '\0';
    return true;
}

/*
 * An NTLMSSP message (MS-NLMP 2.2.1): type, flags, and the names it carries. Nothing
 * here decrypts or checks anything. Written by hand: no Debian library exposes an
 * NTLMSSP message parser (gss-ntlmssp keeps its own private).
 */
static long decode_ntlm(kasa_ctx *ctx, const unsigned char *buf, size_t len, kasa_token_info *t)
{
    static const size_t flags_at[] = {0, 12, 20, 60};
    static const size_t version_at[] = {0, 32, 48, 64};
    bool unicode, ok = true;

    t->inner = "NTLM";
    t->ntlm_type = (int)le32(buf + 8);
    if (t->ntlm_type < 1 || t->ntlm_type > 3)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "an NTLMSSP message of unknown type");
    if (len < flags_at[t->ntlm_type] + 4)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "an NTLMSSP message cut short");
    t->ntlm_flags = le32(buf + flags_at[t->ntlm_type]);
    unicode = (t->ntlm_flags & 0x00000001u) != 0;
    switch (t->ntlm_type) {
    case 1: /* NEGOTIATE: names in OEM, when supplied */
        ok = len < 32 ||
             (ntlm_string(buf, len, 16, false, t->ntlm_domain, sizeof(t->ntlm_domain)) &&
              ntlm_string(buf, len, 24, false, t->ntlm_workstation, sizeof(t->ntlm_workstation)));
        break;
    case 2: /* CHALLENGE: the target's name */
        ok =
            len >= 48 && ntlm_string(buf, len, 12, unicode, t->ntlm_domain, sizeof(t->ntlm_domain));
        break;
    case 3: /* AUTHENTICATE: who */
        ok = len >= 64 &&
             ntlm_string(buf, len, 28, unicode, t->ntlm_domain, sizeof(t->ntlm_domain)) &&
             ntlm_string(buf, len, 36, unicode, t->ntlm_user, sizeof(t->ntlm_user)) &&
             ntlm_string(buf, len, 44, unicode, t->ntlm_workstation, sizeof(t->ntlm_workstation));
        break;
    }
    if (!ok)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "an NTLMSSP message whose fields point outside it");
    if ((t->ntlm_flags & 0x02000000u) && len >= version_at[t->ntlm_type] + 8) {
        const unsigned char *v = buf + version_at[t->ntlm_type];
        t->ntlm_has_version = true;
        t->ntlm_major = v[0];
        t->ntlm_minor = v[1];
        t->ntlm_build = (unsigned)(v[2] | v[3] << 8);
    }
    return 0;
}

/* A mechanism token: Kerberos (framed or not) or NTLMSSP. */
static long decode_mech_token(kasa_ctx *ctx, const unsigned char *buf, size_t len,
                              kasa_token_info *t)
{
    char oid[64];
    const unsigned char *inner;
    size_t inner_len;
    long ret;

    t->mech_token = buf;
    t->mech_token_len = len;
    if (len >= 12 && memcmp(buf, "NTLMSSP\0", 8) == 0)
        return decode_ntlm(ctx, buf, len, t);
    ret = gss_frame(ctx, buf, len, oid, sizeof(oid), &inner, &inner_len);
    if (ret)
        return ret;
    if (strcmp(kasa_mech_name(oid), "Kerberos") != 0)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a mechanism token for %s", oid);
    t->inner = "Kerberos";
    /* RFC 4121: a two-byte TOK_ID (01 00 for an AP-REQ) before the message. */
    if (inner_len < 2 || inner[0] != 0x01 || inner[1] != 0x00)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a Kerberos token that is not an AP-REQ");
    return decode_ap_req(ctx, inner + 2, inner_len - 2, t);
}

static long decode_spnego(kasa_ctx *ctx, const unsigned char *der, size_t len, kasa_token_info *t)
{
    asn1_node nt = NULL;
    char choice[32];
    int n = 0, mlen = 0;
    long ret;

    ret = decode(ctx, "KASA-TOKENS.NegotiationToken", der, len, &nt);
    if (ret)
        return ret;
    if (!read_str(nt, "", choice, sizeof(choice))) {
        asn1_delete_structure(&nt);
        return kasa_set_error(ctx, KASA_ERR_PROTO, "a SPNEGO token of neither kind");
    }
    if (strcmp(choice, "negTokenInit") == 0) {
        t->kind = KASA_TOKEN_SPNEGO_INIT;
        if (asn1_number_of_elements(nt, "negTokenInit.mechTypes", &n) != ASN1_SUCCESS || n < 1)
            n = 0;
        for (int i = 1; i <= n && t->n_mechs < KASA_TOKEN_MAX_MECHS; i++) {
            char name[48];
            snprintf(name, sizeof(name), "negTokenInit.mechTypes.?%d", i);
            if (read_str(nt, name, t->mechs[t->n_mechs], sizeof(t->mechs[0])))
                t->n_mechs++;
        }
        if (t->n_mechs == 0) {
            asn1_delete_structure(&nt);
            return kasa_set_error(ctx, KASA_ERR_PROTO, "a SPNEGO offer with no mechanism");
        }
        t->inner = kasa_mech_name(t->mechs[0]);
        ret = asn1_read_value(nt, "negTokenInit.mechToken", NULL, &mlen);
    } else {
        t->kind = KASA_TOKEN_SPNEGO_RESP;
        ret = asn1_read_value(nt, "negTokenResp.responseToken", NULL, &mlen);
    }
    if (ret == ASN1_MEM_ERROR && mlen > 0) {
        /* The OCTET STRING's content is the last mlen bytes of its element. */
        const char *name = t->kind == KASA_TOKEN_SPNEGO_INIT ? "negTokenInit.mechToken"
                                                             : "negTokenResp.responseToken";
        int start = 0, end = -1;
        if (asn1_der_decoding_startEnd(nt, der, (int)len, name, &start, &end) != ASN1_SUCCESS ||
            end < start || (size_t)end >= len || end + 1 - start < mlen)
            ret = kasa_set_error(ctx, KASA_ERR_PROTO, "a SPNEGO token whose inner token is lost");
        else
            ret = decode_mech_token(ctx, der + end + 1 - mlen, (size_t)mlen, t);
    } else {
        ret = 0; /* no mechanism token: an offer only, or the last leg */
    }
    asn1_delete_structure(&nt);
    return ret;
}

long kasa_token_decode(kasa_ctx *ctx, const unsigned char *buf, size_t len, kasa_token_info *t)
{
    char oid[64];
    const unsigned char *inner;
    size_t inner_len;
    long ret;

    memset(t, 0, sizeof(*t));
    t->inner = "";
    if (buf == NULL || len == 0)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "an empty token");
    if (len >= 8 && memcmp(buf, "NTLMSSP\0", 8) == 0) {
        t->kind = KASA_TOKEN_NTLM;
        return decode_mech_token(ctx, buf, len, t);
    }
    if (buf[0] == 0xa1)
        return decode_spnego(ctx, buf, len, t);
    ret = gss_frame(ctx, buf, len, oid, sizeof(oid), &inner, &inner_len);
    if (ret)
        return ret;
    if (strcmp(oid, OID_SPNEGO) == 0)
        return decode_spnego(ctx, inner, inner_len, t);
    if (strcmp(kasa_mech_name(oid), "Kerberos") == 0) {
        t->kind = KASA_TOKEN_KRB5;
        return decode_mech_token(ctx, buf, len, t);
    }
    return kasa_set_error(ctx, KASA_ERR_PROTO, "a token for an unknown mechanism %s", oid);
}
