/*
 * Negotiate tokens against tokens captured in the lab from curl: a SPNEGO offer carrying
 * a Kerberos AP-REQ, and one carrying an NTLMSSP NEGOTIATE. Then every truncation of
 * them and other hostile bytes: refused with KASA_ERR_PROTO, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "kasa/token.h"

static kasa_ctx *ctx;

/* Read tests/unit/vectors/NAME (base64) into raw bytes. */
static gnutls_datum_t vector(const char *name)
{
    char path[512], text[8192];
    gnutls_datum_t b64, raw = {NULL, 0};
    const char *dir = getenv("VECTORS");
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : "vectors", name);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    text[n] = '\0';
    b64.data = (unsigned char *)text;
    b64.size = (unsigned)n;
    assert_int_equal(gnutls_base64_decode2(&b64, &raw), 0);
    return raw;
}

static void test_kerberos(void **state)
{
    gnutls_datum_t raw = vector("spnego-krb5-apreq.b64");
    kasa_token_info t;

    (void)state;
    assert_int_equal(kasa_token_decode(ctx, raw.data, raw.size, &t), 0);
    assert_int_equal(t.kind, KASA_TOKEN_SPNEGO_INIT);
    assert_true(t.n_mechs >= 1);
    assert_string_equal(kasa_mech_name(t.mechs[0]), "Kerberos");
    assert_string_equal(t.inner, "Kerberos");
    assert_true(t.has_ap_req);
    assert_string_equal(t.realm, "PROSEWARE.LAB");
    assert_string_equal(t.sname, "HTTP/outlook.proseware.lab");
    assert_int_equal(t.etype, 18);
    assert_true(t.has_kvno);
    assert_int_equal(t.kvno, 2);
    assert_non_null(t.mech_token);
    assert_true(t.mech_token > raw.data && t.mech_token + t.mech_token_len <= raw.data + raw.size);
    assert_int_equal(t.mech_token[0], 0x60);
    gnutls_free(raw.data);
}

static void test_ntlm(void **state)
{
    gnutls_datum_t raw = vector("spnego-ntlm-negotiate.b64");
    kasa_token_info t;

    (void)state;
    assert_int_equal(kasa_token_decode(ctx, raw.data, raw.size, &t), 0);
    assert_int_equal(t.kind, KASA_TOKEN_SPNEGO_INIT);
    assert_string_equal(kasa_mech_name(t.mechs[0]), "NTLM");
    assert_string_equal(t.inner, "NTLM");
    assert_int_equal(t.ntlm_type, 1);
    assert_false(t.has_ap_req);
    gnutls_free(raw.data);
}

static void test_hostile(void **state)
{
    static const char *const b64[] = {
        "YA0GCSqGSIb3EgECAgEA", /* Kerberos OID, TOK_ID only */
        "YAoGCCqGSIb3DQEBAQ==", /* an unknown mechanism */
        "oQQwAqAA",             /* NegTokenResp: negState with nothing in it */
        "YAYGBCsGAQU=",         /* SPNEGO OID cut short */
        "YIIFAAYGKwYBBQUC",     /* a length far past the end */
        "TlRMTVNTUAAJAAAA",     /* NTLMSSP of type 9 */
        "oAA=",                 /* a NegTokenInit-like tag alone */
        "MAA=",                 /* a bare SEQUENCE */
        "AAAAAAAAAAAA",         /* zeros */
        "YIAGBisGAQUFAqAAAAA=", /* indefinite length (BER, not DER) */
    };
    unsigned char junk[512];
    kasa_token_info t;
    size_t refused = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
        gnutls_datum_t in = {(unsigned char *)b64[i], (unsigned)strlen(b64[i])}, raw;
        assert_int_equal(gnutls_base64_decode2(&in, &raw), 0);
        if (kasa_token_decode(ctx, raw.data, raw.size, &t) != KASA_ERR_PROTO)
            fail_msg("hostile token %zu (%s) was accepted", i, b64[i]);
        refused++;
        gnutls_free(raw.data);
    }
    /* Every truncation of the real tokens. */
    for (int v = 0; v < 2; v++) {
        gnutls_datum_t raw = vector(v == 0 ? "spnego-krb5-apreq.b64" : "spnego-ntlm-negotiate.b64");
        for (unsigned cut = 0; cut < raw.size; cut++) {
            unsigned char *copy = malloc(cut + 1);
            memcpy(copy, raw.data, cut);
            assert_int_equal(kasa_token_decode(ctx, copy, cut, &t), KASA_ERR_PROTO);
            refused++;
            free(copy);
        }
        gnutls_free(raw.data);
    }
    /* Pseudo-random bytes, with and without a plausible first byte. */
    srand(7);
    for (int i = 0; i < 200; i++) {
        size_t len = 1 + (size_t)(rand() % (int)sizeof(junk));
        for (size_t k = 0; k < len; k++)
            junk[k] = (unsigned char)rand();
        junk[0] = (unsigned char[]){0x60, 0xa1, 0x4e, 0x00}[i % 4];
        (void)kasa_token_decode(ctx, junk, len, &t);
    }
    assert_true(refused >= 20);
    assert_int_equal(kasa_token_decode(ctx, NULL, 0, &t), KASA_ERR_PROTO);
}

static int setup(void **state)
{
    (void)state;
    return kasa_ctx_new(&ctx);
}

static int teardown(void **state)
{
    (void)state;
    kasa_ctx_free(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kerberos),
        cmocka_unit_test(test_ntlm),
        cmocka_unit_test(test_hostile),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
