/*
 * The SPN and account-name rules against fixed vectors: every form kasa accepts (the
 * seed's seven SPNs among them) and the ways an SPN can be wrong, each with the reason
 * the administrator will read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kasa/account.h"
#include "kasa/spn.h"

static void test_seed_spns(void **state)
{
    static const char *const seed[] = {
        "exchangeMDB/outlook",
        "exchangeRFR/outlook",
        "exchangeAB/outlook",
        "exchangeMDB/outlook.proseware.lab",
        "exchangeRFR/outlook.proseware.lab",
        "exchangeAB/outlook.proseware.lab",
        "http/outlook.proseware.lab",
    };
    kasa_spn spn;
    char why[256], back[KASA_SPN_MAX + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(seed) / sizeof(seed[0]); i++) {
        assert_int_equal(kasa_spn_parse(seed[i], &spn, why, sizeof(why)), 0);
        assert_string_equal(why, "");
        kasa_spn_format(&spn, back, sizeof(back));
        assert_string_equal(back, seed[i]);
    }
}

static void test_valid_forms(void **state)
{
    static const struct {
        const char *text, *service, *host, *name;
        unsigned port;
    } v[] = {
        {"HTTP/outlook.proseware.lab", "HTTP", "outlook.proseware.lab", "", 0},
        {"MSSQLSvc/sql1.proseware.lab:1433", "MSSQLSvc", "sql1.proseware.lab", "", 1433},
        {"ldap/dc1.proseware.lab/proseware.lab", "ldap", "dc1.proseware.lab", "proseware.lab", 0},
        {"ldap/dc1.proseware.lab:389/proseware.lab", "ldap", "dc1.proseware.lab", "proseware.lab",
         389},
        {"host/cas1", "host", "cas1", "", 0},
        {"http/10.0.0.1", "http", "10.0.0.1", "", 0},
        {"E3514235-4B06-11D1-AB04-00C04FC2DCD2/dc1.proseware.lab",
         "E3514235-4B06-11D1-AB04-00C04FC2DCD2", "dc1.proseware.lab", "", 0},
        {"svc_x/host_with_underscore.lab", "svc_x", "host_with_underscore.lab", "", 0},
        {"http/a:1", "http", "a", "", 1},
        {"http/a:65535", "http", "a", "", 65535},
        {"nfs/xn--bcher-kva.example", "nfs", "xn--bcher-kva.example", "", 0},
        {"WSMAN/cas1.proseware.lab", "WSMAN", "cas1.proseware.lab", "", 0},
    };
    kasa_spn spn;
    char back[KASA_SPN_MAX + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(kasa_spn_parse(v[i].text, &spn, NULL, 0), 0);
        assert_string_equal(spn.service, v[i].service);
        assert_string_equal(spn.host, v[i].host);
        assert_string_equal(spn.name, v[i].name);
        assert_int_equal(spn.port, v[i].port);
        kasa_spn_format(&spn, back, sizeof(back));
        assert_string_equal(back, v[i].text);
    }
}

/* Build a string of n copies of c after prefix into buf. */
static const char *repeat(char *buf, size_t size, const char *prefix, char c, size_t n,
                          const char *suffix)
{
    size_t len = strlen(prefix);

    assert_true(len + n + strlen(suffix) < size);
    memcpy(buf, prefix, len);
    memset(buf + len, c, n);
    strcpy(buf + len + n, suffix);
    return buf;
}

static void test_invalid(void **state)
{
    char long_spn[1024], long_host[1024], long_label[256], long_class[128], long_name[512];
    const struct {
        const char *text, *why;
    } v[] = {
        {"http/", "no host after the service class"}, /* the seed's own typo */
        {"", "the SPN is empty"},
        {"outlook.proseware.lab", "no '/' between the service class and the host"},
        {"/outlook.proseware.lab", "no service class before the '/'"},
        {"http//outlook", "no host after the service class"},
        {"http/outlook .lab", "holds a space"},
        {" http/outlook", "holds a space"},
        {"http/outlook\n", "control character (0x0a)"},
        {"http/out\tlook", "control character (0x09)"},
        {"http/outlook\x7f", "control character (0x7f)"},
        {"http/b\xc3\xbc"
         "cher.lab",
         "non-ASCII byte (0xc3)"},
        {"http/outlook.proseware.lab@PROSEWARE.LAB", "realm suffix ('@PROSEWARE.LAB')"},
        {"http/outlook@", "realm suffix"},
        {"http/out\\/look", "backslash"},
        {"http/outlook.proseware.lab.", "ends with '.'"},
        {"http/.outlook", "empty label"},
        {"http/outlook..lab", "empty label"},
        {"http/-outlook.lab", "starts with '-'"},
        {"http/outlook-.lab", "ends with '-'"},
        {"http/outlook.lab-", "ends with '-'"},
        {"http/out,look", "found ','"},
        {"http/out;look", "found ';'"},
        {"http/outlook:0", "out of range"},
        {"http/outlook:65536", "out of range"},
        {"http/outlook:99999999999999999999", "out of range"},
        {"http/outlook:", "no port after the ':'"},
        {"http/outlook:http", "port must be a number"},
        {"http/outlook:-1", "port must be a number"},
        {"http/outlook:080", "leading zero"}, /* found by the fuzzer: :080 would read as :80 */
        {"http/outlook:80:81", "more than one ':'"},
        {"http/:80", "no host before the ':'"},
        {"http/[::1]:80", "IPv6"},
        {"http/outlook/", "nothing after the last '/'"},
        {"http/outlook/a/b", "too many '/'"},
        {"http/outlook/a:1", "may not hold ':'"},
        {"ht.tp/outlook", "service class may hold only"},
        {"ht*p/outlook", "service class may hold only"},
        {"krbtgt/PROSEWARE.LAB", "reserved for the KDC"},
        {"KRBTGT/x", "reserved for the KDC"},
        {"kadmin/admin", "reserved for the KDC"},
        {"kiprop/kdc1", "reserved for the KDC"},
        {"K/M", "reserved for the KDC"},
        {"kasa-array/outlook.proseware.lab", "reserved for the KDC or for kasa"},
        {repeat(long_spn, sizeof(long_spn), "http/", 'a', 600, ""), "longer than 512"},
        {repeat(long_host, sizeof(long_host), "http/", 'a', 254, ""), "longer than 253"},
        {repeat(long_label, sizeof(long_label), "http/", 'a', 64, ".lab"), "longer than 63"},
        {repeat(long_class, sizeof(long_class), "", 'c', 65, "/host"), "longer than 64"},
        {repeat(long_name, sizeof(long_name), "ldap/dc/", 'n', 254, ""),
         "service name is longer than 253"},
        {"ldap/dc/a..b", "service name has an empty label"},
    };
    char why[256];
    kasa_spn spn;

    (void)state;
    assert_true(sizeof(v) / sizeof(v[0]) >= 30);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(&spn, 0x55, sizeof(spn));
        long ret = kasa_spn_parse(v[i].text, &spn, why, sizeof(why));
        if (ret != KASA_ERR_SPN_INVALID || strstr(why, v[i].why) == NULL)
            fail_msg("SPN #%zu: expected \"%s\", got %ld \"%s\"", i, v[i].why, ret, why);
        /* The reason is one printable line. */
        for (const char *p = why; *p; p++)
            assert_true(*p >= 0x20 && *p < 0x7f);
    }
    assert_int_equal(kasa_spn_parse(NULL, NULL, why, sizeof(why)), KASA_ERR_SPN_INVALID);
    /* A tiny reason buffer is still terminated; none at all is fine too. */
    assert_int_equal(kasa_spn_parse("http/", NULL, why, 4), KASA_ERR_SPN_INVALID);
    assert_int_equal(strlen(why), 3);
    assert_int_equal(kasa_spn_parse("http/", NULL, NULL, 0), KASA_ERR_SPN_INVALID);
}

static void test_limits(void **state)
{
    char label[80], spn[300] = "http/", host[254];

    (void)state;
    /* Exactly at each limit is accepted: a 63-character label, a 253-character host. */
    assert_int_equal(
        kasa_spn_parse(repeat(label, sizeof(label), "http/", 'a', 63, ""), NULL, NULL, 0), 0);
    memset(host, 'a', 253);
    host[253] = '\0';
    host[63] = host[127] = host[191] = '.';
    strcat(spn, host);
    assert_int_equal(kasa_spn_parse(spn, NULL, NULL, 0), 0);
}

static void test_equal_nocase(void **state)
{
    (void)state;
    assert_true(kasa_spn_equal_nocase("HTTP/Outlook.proseware.lab", "http/outlook.PROSEWARE.lab"));
    assert_false(kasa_spn_equal_nocase("http/outlook", "http/outlook2"));
}

static void test_account_names(void **state)
{
    const struct {
        const char *name;
        kasa_account_kind kind;
        const char *why; /* NULL: valid */
    } v[] = {
        {"CASARRAY-ASA$", KASA_ACCOUNT_COMPUTER, NULL},
        {"svc-outlook", KASA_ACCOUNT_USER, NULL},
        {"svc.outlook_2", KASA_ACCOUNT_USER, NULL},
        {"ABCDEFGHIJKLMNO$", KASA_ACCOUNT_COMPUTER, NULL},
        {"CASARRAY-ASA", KASA_ACCOUNT_COMPUTER, "did you mean CASARRAY-ASA$?"},
        {"CASARRAY-ASA$", KASA_ACCOUNT_USER, "use --computer"},
        {"", KASA_ACCOUNT_USER, "empty"},
        {"$", KASA_ACCOUNT_COMPUTER, "empty before the '$'"},
        {"ABCDEFGHIJKLMNOP$", KASA_ACCOUNT_COMPUTER, "at most 15 characters"},
        {"abcdefghijklmnopqrstu", KASA_ACCOUNT_USER, "at most 20 characters"},
        {"http/outlook", KASA_ACCOUNT_USER, "that is an SPN"},
        {"svc@PROSEWARE.LAB", KASA_ACCOUNT_USER, "without a realm"},
        {"svc outlook", KASA_ACCOUNT_USER, "0x20"},
        {"svc\noutlook", KASA_ACCOUNT_USER, "0x0a"},
        {"svc,x", KASA_ACCOUNT_USER, "found ','"},
        {"-svc", KASA_ACCOUNT_USER, "may not start with '-'"},
        {".svc", KASA_ACCOUNT_USER, "may not start with '.'"},
        {"caf\xc3\xa9", KASA_ACCOUNT_USER, "0xc3"},
    };
    char why[256];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        long ret = kasa_account_name_check(v[i].name, v[i].kind, why, sizeof(why));
        if (v[i].why == NULL) {
            if (ret != 0)
                fail_msg("account #%zu should be valid: %s", i, why);
        } else if (ret != KASA_ERR_ACCOUNT_INVALID || strstr(why, v[i].why) == NULL) {
            fail_msg("account #%zu: expected \"%s\", got %ld \"%s\"", i, v[i].why, ret, why);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_spns),    cmocka_unit_test(test_valid_forms),
        cmocka_unit_test(test_invalid),      cmocka_unit_test(test_limits),
        cmocka_unit_test(test_equal_nocase), cmocka_unit_test(test_account_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
