/*
 * Authorization header values as kasa-httpd receives them: real ones captured from curl
 * (tests/unit/vectors), then what a hostile client can send: empty, a scheme alone,
 * tabs, odd spacing, bad base64 and padding, over-long tokens, 8-bit bytes. Each is
 * either the same token bytes or KASA_ERR_PROTO with a reason, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kasa/httpauth.h"

static kasa_ctx *ctx;

/* tests/unit/vectors/NAME: one line of base64 (malloc'd, no newline). */
static char *vector(const char *name)
{
    char path[512], *text = calloc(1, 8192);
    const char *dir = getenv("VECTORS");
    FILE *f;
    size_t n;

    assert_non_null(text);
    snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : "vectors", name);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, 8191, f);
    fclose(f);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    text[n] = '\0';
    return text;
}

/* Parse value; expect KASA_ERR_PROTO and a reason holding want. */
static void refused(const char *value, const char *want)
{
    kasa_http_scheme scheme;
    unsigned char *tok = (unsigned char *)"untouched";
    size_t len = 99;

    assert_int_equal(kasa_httpauth_parse(ctx, value, &scheme, &tok, &len), KASA_ERR_PROTO);
    assert_null(tok);
    assert_int_equal(len, 0);
    if (strstr(kasa_error(ctx), want) == NULL)
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", value, kasa_error(ctx), want);
}

static void test_real_tokens(void **state)
{
    static const char *const names[] = {"spnego-krb5-apreq.b64", "spnego-ntlm-negotiate.b64"};

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        char *b64 = vector(names[i]), *value;
        unsigned char *tok, *tok2;
        size_t len, len2;
        kasa_http_scheme scheme;

        assert_true(asprintf(&value, "Negotiate %s", b64) > 0);
        assert_int_equal(kasa_httpauth_parse(ctx, value, &scheme, &tok, &len), 0);
        assert_int_equal(scheme, KASA_HTTP_NEGOTIATE);
        assert_true(len > 0 && len == (strlen(b64) / 4) * 3 - (b64[strlen(b64) - 1] == '=') -
                                          (b64[strlen(b64) - 2] == '='));
        assert_int_equal(tok[0], 0x60); /* a GSS-API initial context token */
        free(value);
        /* Case, leading and trailing white space and extra spaces change nothing. */
        assert_true(asprintf(&value, " \tnEGOTIATE   %s \t", b64) > 0);
        assert_int_equal(kasa_httpauth_parse(ctx, value, &scheme, &tok2, &len2), 0);
        assert_int_equal(scheme, KASA_HTTP_NEGOTIATE);
        assert_int_equal(len2, len);
        assert_memory_equal(tok2, tok, len);
        free(tok2);
        free(value);
        free(tok);
        free(b64);
    }
}

static void test_schemes(void **state)
{
    kasa_http_scheme scheme;
    unsigned char *tok;
    size_t len;

    (void)state;
    /* NTLM is recognised (the caller refuses it today), with its token. */
    assert_int_equal(kasa_httpauth_parse(ctx, "NTLM TlRMTVNTUAABAAAAB4IIog==", &scheme, &tok, &len),
                     0);
    assert_int_equal(scheme, KASA_HTTP_NTLM);
    assert_int_equal(len, 16);
    assert_memory_equal(tok, "NTLMSSP\0\1\0\0\0", 12);
    free(tok);
    assert_int_equal(kasa_httpauth_parse(ctx, "ntlm TlRMTVNTUAABAAAAB4IIog==", &scheme, &tok, &len),
                     0);
    assert_int_equal(scheme, KASA_HTTP_NTLM);
    free(tok);
    /* Other schemes: known to be other, their parameters not read. */
    assert_int_equal(kasa_httpauth_parse(ctx, "Basic YWxpY2U6eA==", &scheme, &tok, &len), 0);
    assert_int_equal(scheme, KASA_HTTP_OTHER);
    assert_null(tok);
    assert_int_equal(
        kasa_httpauth_parse(ctx, "Digest username=\"a\", realm=\"b\"", &scheme, &tok, &len), 0);
    assert_int_equal(scheme, KASA_HTTP_OTHER);
    assert_int_equal(kasa_httpauth_parse(ctx, "Bearer", &scheme, &tok, &len), 0);
    assert_int_equal(scheme, KASA_HTTP_OTHER);
    /* Near misses of the scheme's name are other schemes, not Negotiate. */
    assert_int_equal(kasa_httpauth_parse(ctx, "Negotiat YA==", &scheme, &tok, &len), 0);
    assert_int_equal(scheme, KASA_HTTP_OTHER);
    assert_int_equal(kasa_httpauth_parse(ctx, "NegotiateX YA==", &scheme, &tok, &len), 0);
    assert_int_equal(scheme, KASA_HTTP_OTHER);
    assert_string_equal(kasa_http_scheme_name(KASA_HTTP_NEGOTIATE), "Negotiate");
    assert_string_equal(kasa_http_scheme_name(KASA_HTTP_NTLM), "NTLM");
}

static void test_hostile(void **state)
{
    kasa_http_scheme scheme;
    unsigned char *tok;
    size_t len;
    char *big;

    (void)state;
    refused(NULL, "no Authorization header");
    refused("", "empty");
    refused("   \t ", "empty");
    refused("Negotiate", "no token after Negotiate");
    refused("Negotiate    ", "no token after Negotiate");
    refused("NTLM", "no token after NTLM");
    refused("Negotiate\tYA==", "does not start with a scheme and a space");
    refused("Negotiate\t\tYA==", "does not start with a scheme and a space");
    refused("Negotiate YAAA YAAA", "white space inside it (byte 5)");
    refused("Negotiate YA\t==", "white space inside it");
    refused(" =Negotiate YA==", "does not start with a scheme");
    refused("Negotiate:YA==", "does not start with a scheme");
    refused("\"Negotiate\" YA==", "does not start with a scheme");
    refused("Negotiate !!!not-base64!!!", "byte 1 is 0x21");
    refused("Negotiate YA-_", "byte 3 is 0x2d"); /* base64url is not base64 */
    refused("Negotiate YEgG\r\nX-Forged: 1", "byte 5 is 0x0d");
    refused("Negotiate YA\xc3\xa9=", "byte 3 is 0xc3"); /* UTF-8 */
    refused("Negotiate \xff\xfe\x80\x81", "byte 1 is 0xff");
    refused("Negotiate YA", "not padded");
    refused("Negotiate YAA", "not padded");
    refused("Negotiate YA=", "not padded");
    refused("Negotiate Y===", "not padded");
    refused("Negotiate ====", "not padded");
    refused("Negotiate YA===", "not padded");
    refused("Negotiate =YA=", "\"=\" before its end (byte 1)");
    refused("Negotiate YA=A", "\"=\" before its end (byte 3)");
    refused("Negotiate YA==YA==", "\"=\" before its end");
    /* The longest token that is allowed, and one character more; Windows' largest
     * (MaxTokenSize 48,000 bytes: 64,000 characters) is within. */
    big = malloc(KASA_HTTPAUTH_MAX + 16);
    assert_non_null(big);
    memcpy(big, "Negotiate ", 10);
    memset(big + 10, 'A', 64000);
    big[10 + 64000] = '\0';
    assert_int_equal(kasa_httpauth_parse(ctx, big, &scheme, &tok, &len), 0);
    assert_int_equal(len, 48000);
    free(tok);
    free(big);
    big = malloc(KASA_HTTPAUTH_MAX + 16);
    assert_non_null(big);
    memcpy(big, "Negotiate ", 10);
    memset(big + 10, 'A', KASA_HTTPAUTH_MAX);
    big[10 + KASA_HTTPAUTH_MAX] = '\0';
    assert_int_equal(kasa_httpauth_parse(ctx, big, &scheme, &tok, &len), 0);
    assert_int_equal(len, KASA_HTTPAUTH_MAX / 4 * 3);
    free(tok);
    memcpy(big + 10 + KASA_HTTPAUTH_MAX, "AAAA", 5);
    refused(big, "too long");
    free(big);
    /* The scheme is named even when the token is bad, so the caller can say which. */
    assert_int_equal(kasa_httpauth_parse(ctx, "NTLM !", &scheme, &tok, &len), KASA_ERR_PROTO);
    assert_int_equal(scheme, KASA_HTTP_NTLM);
    assert_non_null(strstr(kasa_error(ctx), "the NTLM token is not base64"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_tokens),
        cmocka_unit_test(test_schemes),
        cmocka_unit_test(test_hostile),
    };
    int ret;

    if (kasa_ctx_new(&ctx) != 0)
        return 1;
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    kasa_ctx_free(ctx);
    return ret;
}
