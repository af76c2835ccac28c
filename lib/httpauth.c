/*
 * Reading an Authorization header value: the scheme, then the base64 token. The checks
 * are strict and come before GnuTLS decodes, so a refusal names what is wrong (which
 * byte, which padding) instead of "not base64", and no decoder leniency (whitespace,
 * missing padding) lets two spellings of one token through.
 */
#include "kasa/httpauth.h"

#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "private.h"

/* RFC 7230 tchar: what an auth-scheme is made of. */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_b64(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

const char *kasa_http_scheme_name(kasa_http_scheme scheme)
{
    switch (scheme) {
    case KASA_HTTP_NEGOTIATE:
        return "Negotiate";
    case KASA_HTTP_NTLM:
        return "NTLM";
    default:
        return "another scheme";
    }
}

/* Check that b64[0..len) is padded standard base64; say why not. */
static long check_b64(kasa_ctx *ctx, const char *name, const char *b64, size_t len)
{
    size_t pad = 0;

    if (len > KASA_HTTPAUTH_MAX)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the %s token is too long (%zu characters, at most %d)", name, len,
                              KASA_HTTPAUTH_MAX);
    while (pad < len && b64[len - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++) {
        unsigned char c = (unsigned char)b64[i];
        if (c == '=')
            return kasa_set_error(ctx, KASA_ERR_PROTO,
                                  "the %s token is not base64: \"=\" before its end (byte %zu)",
                                  name, i + 1);
        if (c == ' ' || c == '\t')
            return kasa_set_error(ctx, KASA_ERR_PROTO,
                                  "the %s token is not base64: white space inside it (byte %zu)",
                                  name, i + 1);
        if (!is_b64(c))
            return kasa_set_error(ctx, KASA_ERR_PROTO,
                                  "the %s token is not base64: byte %zu is 0x%02x", name, i + 1, c);
    }
    if (len % 4 != 0 || pad > 2 || len == pad)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the %s token is not base64: %zu characters with %zu \"=\" is not "
                              "padded to a multiple of four",
                              name, len, pad);
    return 0;
}

long kasa_httpauth_parse(kasa_ctx *ctx, const char *value, kasa_http_scheme *scheme_out,
                         unsigned char **token_out, size_t *len_out)
{
    const char *p = value, *end, *scheme, *b64;
    size_t scheme_len, b64_len;
    kasa_http_scheme which = KASA_HTTP_OTHER;
    gnutls_datum_t in, raw = {NULL, 0};
    unsigned char *token = NULL;
    const char *name;
    long ret;

    *scheme_out = KASA_HTTP_OTHER;
    *token_out = NULL;
    *len_out = 0;
    if (value == NULL)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "no Authorization header");
    /* Optional white space around a field value is not part of it. */
    end = p + strlen(p);
    while (*p == ' ' || *p == '\t')
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "the Authorization header is empty");

    scheme = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    scheme_len = (size_t)(p - scheme);
    if (scheme_len == 0 || (p < end && *p != ' '))
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the Authorization header does not start with a scheme and a "
                              "space (byte %zu is 0x%02x)",
                              (size_t)(p - value) + 1, (unsigned char)*p);
    if (scheme_len == 9 && strncasecmp(scheme, "Negotiate", 9) == 0)
        which = KASA_HTTP_NEGOTIATE;
    else if (scheme_len == 4 && strncasecmp(scheme, "NTLM", 4) == 0)
        which = KASA_HTTP_NTLM;
    *scheme_out = which;
    if (which == KASA_HTTP_OTHER)
        return 0;
    name = kasa_http_scheme_name(which);

    while (p < end && *p == ' ')
        p++;
    b64 = p;
    b64_len = (size_t)(end - p);
    if (b64_len == 0)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "no token after %s", name);
    ret = check_b64(ctx, name, b64, b64_len);
    if (ret)
        return ret;

    in.data = (unsigned char *)b64;
    in.size = (unsigned)b64_len;
    if (gnutls_base64_decode2(&in, &raw) < 0 || raw.size == 0)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "the %s token is not base64", name);
    /* The caller frees with free(), not gnutls_free(). */
    token = malloc(raw.size);
    if (token == NULL) {
        gnutls_free(raw.data);
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    }
    memcpy(token, raw.data, raw.size);
    gnutls_free(raw.data);
    *len_out = raw.size;
    *token_out = token;
    return 0;
}
