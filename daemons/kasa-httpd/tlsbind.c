/*
 * tls-server-end-point (RFC 5929): what both ends can compute from the server's
 * certificate alone, which is why browsers use it for Negotiate over HTTPS. The
 * certificate is parsed and hashed by GnuTLS, the TLS library libmicrohttpd already uses.
 */
#include "tlsbind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define PREFIX "tls-server-end-point:"

gss_channel_bindings_t tlsbind_server_end_point(const char *cert_pem, char *err, size_t errlen)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t pem = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t der = {NULL, 0};
    gnutls_digest_algorithm_t dig;
    gss_channel_bindings_t cb = NULL;
    unsigned char *data = NULL;
    size_t hlen;
    int sign, rc;

    rc = gnutls_x509_crt_init(&crt);
    if (rc == 0)
        rc = gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM);
    if (rc == 0)
        rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read the certificate: %s", gnutls_strerror(rc));
        goto cleanup;
    }
    sign = gnutls_x509_crt_get_signature_algorithm(crt);
    dig = sign < 0 ? GNUTLS_DIG_UNKNOWN
                   : gnutls_sign_get_hash_algorithm((gnutls_sign_algorithm_t)sign);
    if (dig == GNUTLS_DIG_UNKNOWN || dig == GNUTLS_DIG_MD5 || dig == GNUTLS_DIG_SHA1)
        dig = GNUTLS_DIG_SHA256;
    hlen = gnutls_hash_get_len(dig);
    cb = calloc(1, sizeof(*cb));
    data = malloc(sizeof(PREFIX) - 1 + hlen);
    if (cb == NULL || data == NULL || hlen == 0) {
        snprintf(err, errlen, "out of memory");
        free(cb);
        free(data);
        cb = NULL;
        goto cleanup;
    }
    memcpy(data, PREFIX, sizeof(PREFIX) - 1);
    if (gnutls_hash_fast(dig, der.data, der.size, data + sizeof(PREFIX) - 1) != 0) {
        snprintf(err, errlen, "cannot hash the certificate");
        free(cb);
        free(data);
        cb = NULL;
        goto cleanup;
    }
    /* No addresses (type unspecified), as browsers and SSPI send it: the checksum the
     * client makes covers the address types too. */
    cb->initiator_addrtype = GSS_C_AF_UNSPEC;
    cb->acceptor_addrtype = GSS_C_AF_UNSPEC;
    cb->application_data.value = data;
    cb->application_data.length = sizeof(PREFIX) - 1 + hlen;

cleanup:
    gnutls_free(der.data);
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    return cb;
}

void tlsbind_free(gss_channel_bindings_t cb)
{
    if (cb == NULL)
        return;
    free(cb->application_data.value);
    free(cb);
}

static unsigned le16(const unsigned char *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

bool tlsbind_ntlm_bound(const unsigned char *msg, size_t len)
{
    /* NtChallengeResponseFields at 20: length, room, offset. An NTLMv2 response is the
     * NTProofStr (16 bytes), then a client challenge whose AV pairs start at 28. */
    size_t nt_len, at, end;
    static const unsigned char zero[16];

    if (len < 28 || memcmp(msg, "NTLMSSP\0\3\0\0\0", 12) != 0)
        return false;
    nt_len = le16(msg + 20);
    at = (size_t)msg[24] | (size_t)msg[25] << 8 | (size_t)msg[26] << 16 | (size_t)msg[27] << 24;
    if (nt_len <= 24 || at > len || nt_len > len - at) /* NTLMv1, or out of the message */
        return false;
    end = at + nt_len;
    for (at += 16 + 28; at + 4 <= end;) {
        unsigned id = le16(msg + at), n = le16(msg + at + 2);
        if (id == 0 || n > end - at - 4) /* MsvAvEOL, or past the response */
            return false;
        if (id == 0x000A) /* MsvAvChannelBindings */
            return n == 16 && memcmp(msg + at + 4, zero, 16) != 0;
        at += 4 + n;
    }
    return false;
}
