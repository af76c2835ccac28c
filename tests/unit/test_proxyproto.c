/*
 * PROXY protocol headers as kasa-httpd receives them from a balancer: the spec's own
 * examples of version 1 and 2 for IPv4 and IPv6, LOCAL and UNKNOWN (health checks), each
 * cut at every length (more bytes needed, never a guess), followed by the bytes of a TLS
 * ClientHello that must not be taken. Then the hostile side: a wrong signature, an
 * overlong line, bad ports and addresses, a length past the limit, a family that names
 * no TCP client, TLVs that overrun.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "kasa/proxyproto.h"

static kasa_ctx *ctx;

/* What follows a header: the first bytes of a TLS ClientHello. */
static const unsigned char after[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};

/* "1.2.3.4 port 5" for src, or "none". */
static void show(const struct sockaddr_storage *src, socklen_t len, char *buf, size_t n)
{
    char a[INET6_ADDRSTRLEN];

    if (len == 0)
        snprintf(buf, n, "none");
    else if (src->ss_family == AF_INET)
        snprintf(buf, n, "%s port %u",
                 inet_ntop(AF_INET, &((const struct sockaddr_in *)src)->sin_addr, a, sizeof(a)),
                 ntohs(((const struct sockaddr_in *)src)->sin_port));
    else
        snprintf(buf, n, "%s port %u",
                 inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)src)->sin6_addr, a, sizeof(a)),
                 ntohs(((const struct sockaddr_in6 *)src)->sin6_port));
}

/* hdr parses whole, with or without bytes after it, to want ("none" for no client), and
 * every proper prefix of it asks for more. */
static void parses(const unsigned char *hdr, size_t len, const char *want)
{
    unsigned char buf[KASA_PROXY_MAX + sizeof(after)];
    struct sockaddr_storage src;
    socklen_t src_len;
    size_t used;
    char got[128];
    long ret;

    assert_true(len <= KASA_PROXY_MAX);
    memcpy(buf, hdr, len);
    memcpy(buf + len, after, sizeof(after));
    for (size_t extra = 0; extra <= sizeof(after); extra += sizeof(after)) {
        ret = kasa_proxy_parse(ctx, buf, len + extra, &used, &src, &src_len);
        if (ret != 0)
            fail_msg("%s: %s", want, kasa_error(ctx));
        assert_int_equal(used, len);
        show(&src, src_len, got, sizeof(got));
        assert_string_equal(got, want);
        if (src_len > 0)
            assert_int_equal(src_len, src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                               : sizeof(struct sockaddr_in6));
    }
    for (size_t cut = 0; cut < len; cut++) {
        used = 99;
        src_len = 99;
        ret = kasa_proxy_parse(ctx, buf, cut, &used, &src, &src_len);
        if (ret != KASA_ERR_AGAIN)
            fail_msg("%s cut at %zu: %ld %s", want, cut, ret, kasa_error(ctx));
        assert_int_equal(used, 0);
        assert_int_equal(src_len, 0);
    }
}

/* hdr is refused with a reason holding why. */
static void refused(const unsigned char *hdr, size_t len, const char *why)
{
    struct sockaddr_storage src;
    socklen_t src_len = 99;
    size_t used = 99;
    long ret = kasa_proxy_parse(ctx, hdr, len, &used, &src, &src_len);

    if (ret != KASA_ERR_PROTO)
        fail_msg("%.*s: %ld, not refused", (int)len, (const char *)hdr, ret);
    assert_int_equal(used, 0);
    assert_int_equal(src_len, 0);
    if (strstr(kasa_error(ctx), why) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", kasa_error(ctx), why);
}

static void v1_ok(const char *line, const char *want)
{
    parses((const unsigned char *)line, strlen(line), want);
}

static void v1_bad(const char *line, const char *why)
{
    refused((const unsigned char *)line, strlen(line), why);
}

#define SIG "\r\n\r\n\0\r\nQUIT\n"

/* A v2 header: signature, ver_cmd, fam, then body of n bytes (the length is n). */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *body, size_t n)
{
    memcpy(out, SIG, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(n >> 8);
    out[15] = (unsigned char)n;
    if (n > 0)
        memcpy(out + 16, body, n);
    return 16 + n;
}

static void test_v1(void **state)
{
    (void)state;
    v1_ok("PROXY TCP4 192.0.2.7 192.0.2.1 52314 443\r\n", "192.0.2.7 port 52314");
    v1_ok("PROXY TCP6 2001:db8::7 2001:db8::1 52314 443\r\n", "2001:db8::7 port 52314");
    v1_ok("PROXY TCP6 ::ffff:127.0.0.3 ::1 0 65535\r\n", "::ffff:127.0.0.3 port 0");
    v1_ok("PROXY UNKNOWN\r\n", "none");
    v1_ok("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", "none");
    /* The longest TCP6 line (104 bytes), and an UNKNOWN line of the spec's 107. */
    v1_ok("PROXY UNKNOWN 0123456789012345678901234567890123456789012345678901234567890123456789"
          "012345678901234567890\r\n",
          "none");
    v1_ok("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff port 65535");
}

static void test_v1_hostile(void **state)
{
    char line[256];

    (void)state;
    v1_bad("GET / HTTP/1.1\r\n", "not a PROXY header");
    v1_bad("PROXX", "not a PROXY header");
    v1_bad("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "not a PROXY header");
    v1_bad("PROXY TCP5", "no protocol");
    v1_bad("PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "no protocol");
    v1_bad("PROXY UNKNOWNX\r\n", "no protocol");
    v1_bad("PROXY TCP4 1.2.3.4\r\n", "ends after its source address");
    v1_bad("PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", "no destination address");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", "more than four fields");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", "more than four fields");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 \r\n", "no destination port");
    v1_bad("PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n", "source address \"1.2.3.256\" is not an IPv4");
    v1_bad("PROXY TCP4 1.2.3.04 1.2.3.4 1 2\r\n", "is not an IPv4");
    v1_bad("PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", "is not an IPv4");
    v1_bad("PROXY TCP4 1.2.3.4 host 1 2\r\n", "destination address \"host\"");
    v1_bad("PROXY TCP4 ::1 ::1 1 2\r\n", "is not an IPv4");     /* wrong family */
    v1_bad("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "is not an IPv6"); /* wrong family */
    v1_bad("PROXY TCP6 ::1%lo ::1 1 2\r\n", "is not an IPv6");  /* no scope */
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", "ports");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n", "ports");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 +80 2\r\n", "ports");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", "ports");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 0x50\r\n", "ports");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 999999\r\n", "ports");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "byte 0x0a");
    v1_bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX", "CR without LF");
    v1_bad("PROXY TCP4 1.2.3.4\t1.2.3.4 1 2\r\n", "byte 0x09");
    v1_bad("PROXY UNKNOWN \x80\r\n", "byte 0x80");
    refused((const unsigned char *)"PROXY TCP4 1\0", 13, "byte 0x00");
    /* Overlong: no CRLF within 107 bytes, whether it comes later or not at all. */
    snprintf(line, sizeof(line), "PROXY UNKNOWN %0100d\r\n", 0);
    v1_bad(line, "no CRLF in its first 107 bytes");
    line[107] = '\0';
    v1_bad(line, "no CRLF in its first 107 bytes");
    line[106] = '\r';
    v1_bad(line, "no CRLF in its first 107 bytes");
}

static void test_v2(void **state)
{
    /* Addresses, then ports, in network order; HAProxy's own, and with TLVs after. */
    static const unsigned char in4[] = {127, 0, 0, 3, 127, 0, 0, 11, 0xc3, 0x50, 0x1f, 0x90};
    static const unsigned char in4_tlv[] = {
        192,  0,    2,    7, 192, 0,   2,   1,    0xcc, 0x5a,
        0x01, 0xbb, 0x01, 0, 2,   'h', '2', 0x04, 0,    0 /* NOOP, empty */};
    unsigned char in6[36 + 7] = {0}, hdr[KASA_PROXY_MAX];
    size_t n;

    (void)state;
    n = v2(hdr, 0x21, 0x11, in4, sizeof(in4));
    parses(hdr, n, "127.0.0.3 port 50000");
    n = v2(hdr, 0x21, 0x11, in4_tlv, sizeof(in4_tlv));
    parses(hdr, n, "192.0.2.7 port 52314");
    in6[0] = 0x20, in6[1] = 0x01, in6[2] = 0x0d, in6[3] = 0xb8, in6[15] = 7; /* 2001:db8::7 */
    in6[31] = 1, in6[32] = 0xff, in6[33] = 0xff;
    in6[36] = 0xea, in6[37] = 0, in6[38] = 4, in6[39] = 1, in6[40] = 2, in6[41] = 3;
    in6[42] = 4;
    n = v2(hdr, 0x21, 0x21, in6, 36);
    parses(hdr, n, "2001:db8::7 port 65535");
    n = v2(hdr, 0x21, 0x21, in6, sizeof(in6));
    parses(hdr, n, "2001:db8::7 port 65535");
    /* LOCAL (a health check): no client, whatever the block holds. */
    n = v2(hdr, 0x20, 0x00, NULL, 0);
    parses(hdr, n, "none");
    n = v2(hdr, 0x20, 0x11, in4, sizeof(in4));
    parses(hdr, n, "none");
    n = v2(hdr, 0x20, 0x31, "\x01\x02\x03", 3);
    parses(hdr, n, "none");
    /* PROXY with an unspecified family: the spec lets the receiver use the peer. */
    n = v2(hdr, 0x21, 0x00, NULL, 0);
    parses(hdr, n, "none");
    /* The longest allowed. */
    memset(hdr + 16, 0, KASA_PROXY_V2_MAX_LEN);
    n = v2(hdr, 0x21, 0x11, in4, sizeof(in4));
    hdr[14] = KASA_PROXY_V2_MAX_LEN >> 8;
    hdr[15] = KASA_PROXY_V2_MAX_LEN & 0xff;
    hdr[16 + 12] = 0x04; /* one NOOP TLV filling the rest */
    hdr[16 + 13] = (KASA_PROXY_V2_MAX_LEN - 15) >> 8;
    hdr[16 + 14] = (KASA_PROXY_V2_MAX_LEN - 15) & 0xff;
    (void)n;
    parses(hdr, KASA_PROXY_MAX, "127.0.0.3 port 50000");
}

static void test_v2_hostile(void **state)
{
    static const unsigned char in4[] = {127, 0, 0, 3, 127, 0, 0, 11, 0xc3, 0x50, 0x1f, 0x90};
    unsigned char hdr[KASA_PROXY_MAX + 64], body[64] = {0};
    size_t n;

    (void)state;
    /* Signature: wrong at its first, middle and last byte. */
    n = v2(hdr, 0x21, 0x11, in4, sizeof(in4));
    hdr[0] = '\n';
    refused(hdr, n, "starts with byte 0x0a");
    hdr[0] = '\r';
    hdr[4] = ' ';
    refused(hdr, 5, "signature is wrong");
    hdr[4] = 0;
    hdr[11] = 'X';
    refused(hdr, n, "signature is wrong");
    /* Version, command, family, transport. */
    refused(hdr, v2(hdr, 0x11, 0x11, in4, sizeof(in4)), "version is 1, not 2");
    refused(hdr, v2(hdr, 0x31, 0x11, in4, sizeof(in4)), "version is 3, not 2");
    refused(hdr, v2(hdr, 0x22, 0x11, in4, sizeof(in4)), "command is 0x2");
    refused(hdr, v2(hdr, 0x21, 0x41, in4, sizeof(in4)), "family and transport 0x41");
    refused(hdr, v2(hdr, 0x21, 0x13, in4, sizeof(in4)), "family and transport 0x13");
    refused(hdr, v2(hdr, 0x21, 0x12, in4, sizeof(in4)), "AF_INET over datagrams");
    refused(hdr, v2(hdr, 0x21, 0x10, in4, sizeof(in4)), "AF_INET over an unspecified");
    refused(hdr, v2(hdr, 0x21, 0x31, body, sizeof(body)), "AF_UNIX over a stream");
    /* Lengths: past the limit (refused at once, from the 16 bytes alone), too short for
     * the addresses, TLVs past the end. */
    n = v2(hdr, 0x21, 0x11, in4, sizeof(in4));
    hdr[14] = (KASA_PROXY_V2_MAX_LEN + 1) >> 8;
    hdr[15] = (KASA_PROXY_V2_MAX_LEN + 1) & 0xff;
    refused(hdr, 16, "more than 1024");
    hdr[14] = hdr[15] = 0xff;
    refused(hdr, 16, "announces 65535 bytes");
    refused(hdr, v2(hdr, 0x21, 0x11, in4, 11), "too short for AF_INET addresses");
    refused(hdr, v2(hdr, 0x21, 0x21, body, 35), "too short for AF_INET6 addresses");
    memcpy(body, in4, sizeof(in4));
    body[12] = 0x01, body[13] = 0, body[14] = 3, body[15] = 'h';
    refused(hdr, v2(hdr, 0x21, 0x11, body, 16), "runs 2 bytes past its end");
    refused(hdr, v2(hdr, 0x21, 0x11, body, 14), "ends inside a TLV");
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
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v1_hostile),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_hostile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
