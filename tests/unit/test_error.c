/*
 * Errors: the last-error sentence, the com_err table's generic texts, krb5 messages
 * appended to a detail, warnings, and the exit status each code maps to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <com_err.h>
#include <krb5/krb5.h>

#include "kasa/kasa.h"
#include "private.h"

static void test_detail_message(void **state)
{
    kasa_ctx *ctx;

    (void)state;
    assert_int_equal(kasa_ctx_new(&ctx), 0);
    assert_string_equal(kasa_error(ctx), "");
    assert_int_equal(kasa_set_error(ctx, KASA_ERR_SPN_EXISTS, "SPN %s already belongs to %s",
                                    "http/outlook.proseware.lab", "CASARRAY-ASA$"),
                     KASA_ERR_SPN_EXISTS);
    assert_string_equal(kasa_error(ctx),
                        "SPN http/outlook.proseware.lab already belongs to CASARRAY-ASA$");
    /* A later error replaces the earlier one. */
    kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    assert_string_equal(kasa_error(ctx), "Out of memory");
    kasa_ctx_free(ctx);
}

static void test_table_texts(void **state)
{
    kasa_ctx *ctx;

    (void)state;
    assert_int_equal(kasa_ctx_new(&ctx), 0); /* registers the table */
    assert_non_null(strstr(error_message(KASA_ERR_SPN_INVALID), "service/host"));
    assert_non_null(strstr(error_message(KASA_ERR_ACCOUNT_HAS_SPNS), "--force"));
    assert_non_null(strstr(error_message(KASA_ERR_DIR_UNREACHABLE), "running"));
    /* Every code in the table has its own text, not com_err's "Unknown code". */
    for (long code = KASA_ERR_USAGE; code <= KASA_ERR_ROLL; code++)
        assert_null(strstr(error_message(code), "Unknown code"));
    kasa_ctx_free(ctx);
}

static void test_krb5_tail(void **state)
{
    krb5_context kctx;
    kasa_ctx *ctx;

    (void)state;
    assert_int_equal(kasa_ctx_new(&ctx), 0);
    assert_int_equal(kasa_krb5(ctx, &kctx), 0);
    assert_int_equal(kasa_set_krb5_error(ctx, KASA_ERR_DIR_UNREACHABLE, kctx, KRB5_KDC_UNREACH,
                                         "cannot reach the KDC of %s", "PROSEWARE.LAB"),
                     KASA_ERR_DIR_UNREACHABLE);
    assert_non_null(strstr(kasa_error(ctx), "cannot reach the KDC of PROSEWARE.LAB: "));
    assert_non_null(strstr(kasa_error(ctx), "KDC"));
    kasa_ctx_free(ctx);
}

static void warn_to(void *data, const char *msg)
{
    strcpy(data, msg);
}

static void test_warnings(void **state)
{
    char got[128] = "";
    kasa_ctx *ctx;

    (void)state;
    assert_int_equal(kasa_ctx_new(&ctx), 0);
    kasa_warn(ctx, "dropped %d", 1); /* no handler: nothing happens */
    kasa_set_warn_fn(ctx, warn_to, got);
    kasa_warn(ctx, "%s differs only by case", "HTTP/x");
    assert_string_equal(got, "HTTP/x differs only by case");
    kasa_ctx_free(ctx);
}

static void test_exit_status(void **state)
{
    (void)state;
    assert_int_equal(kasa_exit_status(0), 0);
    assert_int_equal(kasa_exit_status(KASA_ERR_USAGE), 2);
    assert_int_equal(kasa_exit_status(KASA_ERR_SPN_INVALID), 2);
    assert_int_equal(kasa_exit_status(KASA_ERR_ACCOUNT_INVALID), 2);
    assert_int_equal(kasa_exit_status(KASA_ERR_SPN_EXISTS), 1);
    assert_int_equal(kasa_exit_status(KASA_ERR_DIR_UNREACHABLE), 1);
    assert_int_equal(kasa_exit_status(KRB5_KDC_UNREACH), 1);
}

static void test_zap(void **state)
{
    unsigned char key[32];

    (void)state;
    memset(key, 0xa5, sizeof(key));
    kasa_zap(key, sizeof(key));
    for (size_t i = 0; i < sizeof(key); i++)
        assert_int_equal(key[i], 0);
    kasa_zap(NULL, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detail_message), cmocka_unit_test(test_table_texts),
        cmocka_unit_test(test_krb5_tail),      cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_exit_status),    cmocka_unit_test(test_zap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
