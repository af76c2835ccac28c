/*
 * Keys as Active Directory derives them from a password: AD's salt for computer and user
 * accounts (MS-KILE 3.1.1.2), and the keys themselves against vectors made independently
 * with MIT's ktutil (addent -password -s SALT, read back with klist -kK). The e2e test
 * ad_roll.sh proves the same against Samba's KDC. Also the random password's shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kasa/keys.h"

static kasa_ctx *ctx;

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

static void salt_is(const char *realm, const char *name, kasa_account_kind kind, const char *want)
{
    char *salt = NULL;

    assert_int_equal(kasa_ad_salt(ctx, realm, name, kind, &salt), 0);
    assert_string_equal(salt, want);
    free(salt);
}

static void test_salt_computer(void **state)
{
    (void)state;
    salt_is("PROSEWARE.LAB", "CASARRAY-ASA$", KASA_ACCOUNT_COMPUTER,
            "PROSEWARE.LABhostcasarray-asa.proseware.lab");
    /* The realm as written in any case; a name given without its '$'. */
    salt_is("proseware.lab", "CasArray-ASA", KASA_ACCOUNT_COMPUTER,
            "PROSEWARE.LABhostcasarray-asa.proseware.lab");
}

static void test_salt_user(void **state)
{
    (void)state;
    /* A user's name keeps its case; the realm is upper case. */
    salt_is("PROSEWARE.LAB", "SvcArray", KASA_ACCOUNT_USER, "PROSEWARE.LABSvcArray");
    salt_is("Proseware.Lab", "svc.array-1", KASA_ACCOUNT_USER, "PROSEWARE.LABsvc.array-1");
}

static void hex_is(const krb5_keyblock *k, const char *want)
{
    char got[2 * 64 + 1] = "";

    assert_true(k->length * 2 < sizeof(got));
    for (unsigned i = 0; i < k->length; i++)
        snprintf(got + 2 * i, 3, "%02x", k->contents[i]);
    assert_string_equal(got, want);
}

static void test_keys_computer(void **state)
{
    const int32_t ets[] = {ENCTYPE_AES256_CTS_HMAC_SHA1_96, ENCTYPE_AES128_CTS_HMAC_SHA1_96};
    kasa_keyset *ks = NULL;

    (void)state;
    assert_int_equal(kasa_keyset_from_password(ctx, "kasa-Vector-1!", "PROSEWARE.LAB",
                                               "CASARRAY-ASA$", KASA_ACCOUNT_COMPUTER, 2, ets, 2,
                                               &ks),
                     0);
    assert_int_equal(ks->kvno, 2);
    assert_int_equal(ks->n, 2);
    assert_int_equal(ks->keys[0].enctype, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
    hex_is(&ks->keys[0], "f192c4ceb149f1517aa4c3213d62f0148aadaeb48d21122aa906031a22b89028");
    assert_int_equal(ks->keys[1].enctype, ENCTYPE_AES128_CTS_HMAC_SHA1_96);
    hex_is(&ks->keys[1], "c20f3761926835dd220fe765b270125b");
    kasa_keyset_free(ks);
}

static void test_keys_user(void **state)
{
    const int32_t ets[] = {ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    kasa_keyset *ks = NULL;

    (void)state;
    assert_int_equal(kasa_keyset_from_password(ctx, "kasa-Vector-1!", "PROSEWARE.LAB", "SvcArray",
                                               KASA_ACCOUNT_USER, 3, ets, 1, &ks),
                     0);
    assert_int_equal(ks->kvno, 3);
    hex_is(&ks->keys[0], "9207aeac653924a4032360c51c63822dd4e6ba974b957fdd702b00016f0ce49f");
    kasa_keyset_free(ks);
    /* The same name in lower case is another salt, so other keys: case matters. */
    assert_int_equal(kasa_keyset_from_password(ctx, "kasa-Vector-1!", "PROSEWARE.LAB", "svcarray",
                                               KASA_ACCOUNT_USER, 3, ets, 1, &ks),
                     0);
    hex_is(&ks->keys[0], "5f1250b39620134060a6cb67592c714c2d39b460fd05ad7b914fe0df3f985cec");
    kasa_keyset_free(ks);
}

static void test_password(void **state)
{
    char *a = NULL, *b = NULL;
    bool upper = false, lower = false, digit = false, punct = false;

    (void)state;
    assert_int_equal(kasa_password_generate(ctx, &a), 0);
    assert_int_equal(kasa_password_generate(ctx, &b), 0);
    assert_int_equal(strlen(a), KASA_PASSWORD_LEN);
    assert_string_not_equal(a, b);
    for (const char *p = a; *p; p++) {
        upper |= *p >= 'A' && *p <= 'Z';
        lower |= *p >= 'a' && *p <= 'z';
        digit |= *p >= '0' && *p <= '9';
        punct |= strchr("-_.+!#%@", *p) != NULL;
    }
    assert_true(upper && lower && digit && punct);
    kasa_password_free(a);
    kasa_password_free(b);
    kasa_password_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_salt_computer), cmocka_unit_test(test_salt_user),
        cmocka_unit_test(test_keys_computer), cmocka_unit_test(test_keys_user),
        cmocka_unit_test(test_password),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
