/*
 * The AD backend's LDAP escaping against hostile input: filter metacharacters (RFC 4515:
 * * ( ) \ and NUL) and DN specials (RFC 4514) in names and SPNs must come out escaped, so
 * that a value can neither widen a search nor name another object. Every escaped filter
 * value is also unescaped again and compared, and checked to hold no bare metacharacter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "directory.h"

/* Undo RFC 4515 escaping; returns the length, or -1 when out holds a bare metacharacter. */
static long unescape(const char *in, char *out)
{
    size_t n = 0;

    for (const char *p = in; *p; p++) {
        if (*p == '*' || *p == '(' || *p == ')')
            return -1;
        if (*p == '\\') {
            char hex[3] = {p[1], p[2], 0};
            if (p[1] == '\0' || p[2] == '\0')
                return -1;
            out[n++] = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            out[n++] = *p;
        }
    }
    return (long)n;
}

static void check_filter(const char *in, size_t len, const char *want)
{
    char *esc = kasa_ldap_filter_escape(in, len);
    char back[256];

    assert_non_null(esc);
    if (want != NULL)
        assert_string_equal(esc, want);
    assert_int_equal(unescape(esc, back), (long)len);
    assert_memory_equal(back, in, len);
    free(esc);
}

static void test_filter_plain(void **state)
{
    (void)state;
    check_filter("http/outlook.proseware.lab", 26, "http/outlook.proseware.lab");
    check_filter("CASARRAY-ASA$", 13, "CASARRAY-ASA$");
    check_filter("", 0, "");
}

static void test_filter_hostile(void **state)
{
    (void)state;
    check_filter("*", 1, "\\2a");
    check_filter("http/*", 6, "http/\\2a");
    check_filter("x)(objectClass=*", 16, "x\\29\\28objectClass=\\2a");
    check_filter("*)(|(sAMAccountName=*))", 23, NULL);
    check_filter("a\\b", 3, "a\\5cb");
    check_filter("\\2a", 3, "\\5c2a"); /* an escape given as input stays literal */
    check_filter("a\0*", 3, "a\\00\\2a");
    check_filter("\0", 1, "\\00");
    check_filter("tab\there\n", 9, "tab\\09here\\0a");
    check_filter("caf\xc3\xa9", 5, "caf\xc3\xa9"); /* UTF-8 passes as it is */
}

static void test_filter_all_bytes(void **state)
{
    char in[255];

    (void)state;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (char)(i + 1);
    check_filter(in, sizeof(in), NULL);
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (char)"*()\\"[i % 4];
    check_filter(in, sizeof(in), NULL);
}

static void test_dn(void **state)
{
    static const struct {
        const char *in, *want;
    } v[] = {
        {"CASARRAY-ASA", "CASARRAY-ASA"},
        {"a,DC=evil", "a\\,DC\\=evil"},
        {"x+y", "x\\+y"},
        {"\"q\"", "\\\"q\\\""},
        {"<a>;b", "\\<a\\>\\;b"},
        {"back\\slash", "back\\\\slash"},
        {"#lead", "\\#lead"},
        {" both ", "\\ both\\ "},
        {"mid#dle", "mid#dle"},
    };
    char *esc;

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        esc = kasa_ldap_dn_escape(v[i].in, strlen(v[i].in));
        assert_non_null(esc);
        assert_string_equal(esc, v[i].want);
        free(esc);
    }
    esc = kasa_ldap_dn_escape("a\0b", 3);
    assert_string_equal(esc, "a\\00b");
    free(esc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_plain),
        cmocka_unit_test(test_filter_hostile),
        cmocka_unit_test(test_filter_all_bytes),
        cmocka_unit_test(test_dn),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
