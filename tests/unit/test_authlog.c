/*
 * The auth log line: every field survives a round trip, names holding commas, quotes,
 * backslashes and newlines stay inside one line, and no field starts a spreadsheet
 * formula.
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
    /* A 401 that continues the exchange is neither ok nor failed. */
    e.challenge = true;
    assert_int_equal(kasa_authlog_format(ctx, &e, &line), 0);
    assert_int_equal(kasa_authlog_parse(ctx, line, f), 0);
    assert_string_equal(f[8], "challenge");
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

/* The written field i (0-based) of line, as the bytes between its quotes. */
static void written_field(const char *line, int i, char *buf, size_t len)
{
    const char *p = line;
    size_t n = 0;

    for (int k = 0; k < i; k++) { /* the test's values hold no double quote or comma */
        p = strchr(p, ',');
        assert_non_null(p);
        p++;
    }
    assert_int_equal(*p, '"');
    for (p++; *p != '"' && n + 1 < len; p++)
        buf[n++] = *p;
    buf[n] = '\0';
}

static void test_formula_neutralized(void **state)
{
    /* What a hostile ticket can carry, and what each becomes on the line. */
    static const struct {
        const char *value, *written;
    } cases[] = {
        {"=cmd|' /C calc'!A0@EVIL", "'=cmd|' /C calc'!A0@EVIL"},
        {"+HYPERLINK(1)", "'+HYPERLINK(1)"},
        {"-2+3", "'-2+3"},
        {"-1", "'-1"},
        {"@SUM(1)", "'@SUM(1)"},
        {"\t=1", "'\\x09=1"},
        {"\r=1", "'\\x0d=1"},
        {"'quoted", "''quoted"},
        {"''", "'''"},
        {"'", "''"},
        {"a=b", "a=b"}, /* only the first byte matters */
        {"HTTP/outlook.proseware.lab@PROSEWARE.LAB", "HTTP/outlook.proseware.lab@PROSEWARE.LAB"},
        {"PROSEWARE\\alice", "PROSEWARE\\\\alice"},
        {"", ""},
    };
    kasa_ctx *ctx;

    (void)state;
    assert_int_equal(kasa_ctx_new(&ctx), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kasa_auth_event e = {
            .time = 1795550400,
            .member = cases[i].value,
            .client = "::1",
            .principal = cases[i].value,
            .spn = cases[i].value,
            .mechanism = "Kerberos",
            .enctype = cases[i].value,
            .ok = true,
            .reason = cases[i].value,
        };
        static const int hostile[] = {1, 3, 4, 7, 9}; /* the fields that carry the value */
        char *line = NULL, *f[KASA_AUTHLOG_FIELDS], w[128];

        assert_int_equal(kasa_authlog_format(ctx, &e, &line), 0);
        for (size_t k = 0; k < sizeof(hostile) / sizeof(hostile[0]); k++) {
            written_field(line, hostile[k], w, sizeof(w));
            assert_string_equal(w, cases[i].written);
            assert_true(w[0] == '\0' || strchr("=+-@\t\r", w[0]) == NULL);
        }
        assert_int_equal(kasa_authlog_parse(ctx, line, f), 0);
        for (size_t k = 0; k < sizeof(hostile) / sizeof(hostile[0]); k++)
            assert_string_equal(f[hostile[k]], cases[i].value); /* exactly what was logged */
        assert_string_equal(f[0], "2026-11-24T20:00:00Z");
        assert_string_equal(f[2], "::1");
        kasa_authlog_fields_free(f);
        free(line);
    }
    kasa_ctx_free(ctx);
}

/* Legitimate values are written as they are: the time, the kvno, ok and failed. */
static void test_plain_values_untouched(void **state)
{
    kasa_ctx *ctx;
    char *line = NULL;
    kasa_auth_event e = {
        .time = 0,
        .member = "cas1",
        .client = "10.0.0.7",
        .principal = "alice@PROSEWARE.LAB",
        .spn = "HTTP/outlook.proseware.lab@PROSEWARE.LAB",
        .mechanism = "Kerberos",
        .kvno = 4294967295u,
        .enctype = "aes256-cts-hmac-sha1-96",
        .ok = true,
        .reason = "",
    };

    (void)state;
    assert_int_equal(kasa_ctx_new(&ctx), 0);
    assert_int_equal(kasa_authlog_format(ctx, &e, &line), 0);
    assert_string_equal(line,
                        "\"1970-01-01T00:00:00Z\",\"cas1\",\"10.0.0.7\",\"alice@PROSEWARE.LAB\","
                        "\"HTTP/outlook.proseware.lab@PROSEWARE.LAB\",\"Kerberos\",\"4294967295\","
                        "\"aes256-cts-hmac-sha1-96\",\"ok\",\"\"\n");
    free(line);
    e.ok = false;
    e.kvno = 0;
    assert_int_equal(kasa_authlog_format(ctx, &e, &line), 0);
    assert_non_null(strstr(line, ",\"Kerberos\",\"\",\"aes256-cts-hmac-sha1-96\",\"failed\","));
    free(line);
    kasa_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_hostile),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_formula_neutralized),
        cmocka_unit_test(test_plain_values_untouched),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
