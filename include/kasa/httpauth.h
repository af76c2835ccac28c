/*
 * Reading an HTTP Authorization header value (RFC 7235 credentials) for Negotiate
 * (RFC 4559): which scheme, and the token's bytes. Pure: no network, no GSS-API, so a
 * fuzzer and unit tests can feed it anything a client might send.
 *
 *   credentials = auth-scheme 1*SP token68
 *
 * The scheme is matched without regard to case. Spaces and tabs around the whole value
 * are ignored (they are not part of a field value); between the scheme and the token
 * only spaces are allowed. The token must be standard base64 (A-Z a-z 0-9 + /) padded
 * with "=" to a multiple of four characters, and at most KASA_HTTPAUTH_MAX characters.
 */
#ifndef KASA_HTTPAUTH_H
#define KASA_HTTPAUTH_H

#include <stddef.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest base64 token accepted: 48 KiB of token, so anything Windows sends fits (its
 * MaxTokenSize is at most 48,000 bytes, 64,000 characters of base64). */
#define KASA_HTTPAUTH_MAX (64 * 1024)

typedef enum kasa_http_scheme {
    KASA_HTTP_OTHER = 0, /* a scheme kasa does not speak: Basic, Digest, ... */
    KASA_HTTP_NEGOTIATE,
    KASA_HTTP_NTLM, /* raw NTLMSSP, as Windows sends when told "WWW-Authenticate: NTLM" */
} kasa_http_scheme;

/*
 * Parse value. For Negotiate and NTLM, *token_out is the decoded token (malloc'd, free
 * it) and *len_out its length; for another well-formed scheme, *scheme_out is
 * KASA_HTTP_OTHER and *token_out NULL (its parameters are not read). A malformed value
 * gives KASA_ERR_PROTO with the reason; *scheme_out is then still set when the scheme
 * could be read, so the caller can name it.
 */
KASA_API long kasa_httpauth_parse(kasa_ctx *ctx, const char *value, kasa_http_scheme *scheme_out,
                                  unsigned char **token_out, size_t *len_out);

/* "Negotiate", "NTLM" or "another scheme". */
KASA_API const char *kasa_http_scheme_name(kasa_http_scheme scheme);

#ifdef __cplusplus
}
#endif

#endif
