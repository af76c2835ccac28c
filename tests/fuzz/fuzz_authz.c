/*
 * libFuzzer harness for kasa-httpd's Authorization header parsing: any client sends
 * these bytes before it is authenticated. What parses must be a known scheme with a
 * token no larger than its base64 allows, and the token must decode as a Negotiate token
 * or be refused, never crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/httpauth.h"
#include "kasa/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kasa_ctx *ctx;
    kasa_http_scheme scheme;
    kasa_token_info t;
    unsigned char *tok = NULL;
    size_t len = 0;
    char *value;

    if (ctx == NULL && kasa_ctx_new(&ctx) != 0)
        return 0;
    /* A header value is a string: HTTP servers stop at NUL. */
    value = malloc(size + 1);
    if (value == NULL)
        return 0;
    memcpy(value, data, size);
    value[size] = '\0';
    if (kasa_httpauth_parse(ctx, value, &scheme, &tok, &len) == 0) {
        if (scheme != KASA_HTTP_OTHER && (tok == NULL || len == 0 || len > size))
            abort();
        if (scheme == KASA_HTTP_OTHER && tok != NULL)
            abort();
        if (tok != NULL)
            (void)kasa_token_decode(ctx, tok, len, &t);
    } else if (tok != NULL || len != 0) {
        abort();
    }
    free(tok);
    free(value);
    return 0;
}
