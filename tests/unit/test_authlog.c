/*
 * The auth log line: every field survives a round trip, and names holding commas,
 * quotes, backslashes and newlines stay inside one line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kasa/authlog.h"

static void test_roundtrip_hostile(void **state)
{
    kasa_ctx *ctx;
    char *line = NULL, *f[KASA_AUTHLOG_FIELDS];
    kasa_auth_event e = {
        .time = 1795550400, /* 2026-11-24T20:00:00Z */
        .member = "cas1",
        .client = "127.0.0.1",
        .principal = "ev,il\"\nforged,line\r\\x41\x7f@PROSEWARE.LAB",
        .spn = "HTTP/outlook.proseware.lab@PROSEWARE.LAB",
        .mechanism = "Kerberos",
        .kvno = 7,
        .enctype = "aes256-cts-hmac-sha1-96",
        .ok = false,
        .reason = "Request is a replay",
    };

    (void)state;
    assert_int_equal(kasa_ctx_new(&ctx), 0);
    assert_int_equal(kasa_authlog_format(ctx, &e, &line), 0);
    /* One physical line, ending in the only newline, with no control character. */
    assert_non_null(strchr(line, '\n'));
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
    for (const char *p = line; p < line + strlen(line) - 1; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    assert_int_equal(strncmp(line, "\"2026-11-24T20:00:00Z\",\"cas1\",", 30), 0);

    assert_int_equal(kasa_authlog_parse(ctx, line, f), 0);
    assert_string_equal(f[0], "2026-11-24T20:00:00Z");
    assert_string_equal(f[3], e.principal); /* exactly what was logged, unescaped */
    assert_string_equal(f[5], "Kerberos");
    assert_string_equal(f[6], "7");
    assert_string_equal(f[8], "failed");
    assert_string_equal(f[9], "Request is a replay");
    kasa_authlog_fields_free(f);
    free(line);
    kasa_ctx_free(ctx);
}

static void test_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "not,a,log,line\n",
        "\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"\n",             /* 9 fields */
        "\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\"\n", /* 11 */
        "\"unterminated,\"b\"\n",
    };
    char *f[KASA_AUTHLOG_FIELDS];
    kasa_ctx *ctx;

    (void)state;
    assert_int_equal(kasa_ctx_new(&ctx), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(kasa_authlog_parse(ctx, bad[i], f), KASA_ERR_PROTO);
    kasa_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_hostile),
        cmocka_unit_test(test_parse_rejects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
