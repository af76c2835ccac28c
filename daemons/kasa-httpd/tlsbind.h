/*
 * The TLS channel binding kasa-httpd hands GSS-API, so a Negotiate token made for this
 * server's TLS channel cannot be relayed through another (Extended Protection), and
 * whether an NTLM message carries one.
 */
#ifndef KASA_HTTPD_TLSBIND_H
#define KASA_HTTPD_TLSBIND_H

#include <stdbool.h>
#include <stddef.h>

#include <gssapi/gssapi.h>

/*
 * The tls-server-end-point binding (RFC 5929 section 4) of the certificate in cert_pem:
 * application data "tls-server-end-point:" followed by the hash of the certificate's DER,
 * made with its signature's hash, or SHA-256 when that is MD5 or SHA-1. NULL, with a
 * sentence in err, when the certificate cannot be read. Free with tlsbind_free().
 */
gss_channel_bindings_t tlsbind_server_end_point(const char *cert_pem, char *err, size_t errlen);

void tlsbind_free(gss_channel_bindings_t cb);

/*
 * Whether an NTLM AUTHENTICATE message (msg, len bytes) carries a channel binding: an
 * NTLMv2 response whose MsvAvChannelBindings is there and not all zeros (MS-NLMP
 * 2.2.2.1). gss-ntlmssp 1.2 refuses a binding that does not match with the same codes as
 * a MIC that does not; this tells the two apart.
 */
bool tlsbind_ntlm_bound(const unsigned char *msg, size_t len);

#endif
