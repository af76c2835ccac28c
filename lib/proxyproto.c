/*
 * The PROXY protocol header, versions 1 and 2 (HAProxy's doc/proxy-protocol.txt).
 * Hand-written: Debian packages PROXY protocol readers only for Go and Haskell
 * (golang-github-pires-go-proxyproto-dev, libghc-io-streams-haproxy-dev), no C library,
 * and the format is small enough that a strict reader is shorter than glue to one.
 *
 * Strict where the spec allows a choice, since these bytes name the client in the auth
 * log: exactly one space between v1 fields, ports without sign or leading zero, addresses
 * of the family the line says, v2's command, family and transport from the spec's lists
 * only, and TLVs that end where the header ends. A malformed prefix is refused as soon as
 * it is seen, not when the line or the length is complete.
 */
#include "kasa/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "private.h"

static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* Byte i of the header, 1-based, for reasons. */
#define AT(p, buf) ((size_t)((p) - (buf)) + 1)

/* A v1 port: 1 to 5 digits, no leading zero (but "0"), at most 65535. */
static int v1_port(const char *s, size_t n, unsigned *port)
{
    unsigned v = 0;

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = v;
    return 0;
}

/* A v1 address of family af (inet_pton's own strict syntax: no leading zeros in IPv4). */
static int v1_addr(int af, const char *s, size_t n, void *out)
{
    char text[INET6_ADDRSTRLEN];

    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    return inet_pton(af, text, out) == 1 ? 0 : -1;
}

/* "PROXY TCP4 src dst sport dport" (the CRLF already cut off), or UNKNOWN. */
static long v1_line(kasa_ctx *ctx, const char *line, size_t n, struct sockaddr_storage *src,
                    socklen_t *src_len)
{
    static const char *const what[4] = {"source address", "destination address", "source port",
                                        "destination port"};
    const char *f[4], *p, *end = line + n;
    size_t flen[4];
    unsigned sport, dport;
    unsigned char addr[16];
    int af;

    p = line + 6; /* "PROXY " */
    if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (end - p == 7 || p[7] == ' '))
        return 0; /* the rest of an UNKNOWN line is ignored, as the spec says */
    if ((size_t)(end - p) >= 5 && memcmp(p, "TCP4 ", 5) == 0)
        af = AF_INET;
    else if ((size_t)(end - p) >= 5 && memcmp(p, "TCP6 ", 5) == 0)
        af = AF_INET6;
    else
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the PROXY v1 header names no protocol TCP4, TCP6 or UNKNOWN");
    p += 5;
    for (int i = 0; i < 4; i++) {
        f[i] = p;
        while (p < end && *p != ' ')
            p++;
        flen[i] = (size_t)(p - f[i]);
        if (flen[i] == 0)
            return kasa_set_error(ctx, KASA_ERR_PROTO,
                                  "the PROXY v1 header has no %s (or two spaces before it, byte "
                                  "%zu)",
                                  what[i], AT(f[i], line));
        if (i < 3) {
            if (p == end)
                return kasa_set_error(ctx, KASA_ERR_PROTO, "the PROXY v1 header ends after its %s",
                                      what[i]);
            p++;
        }
    }
    if (p != end)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the PROXY v1 header has more than four fields after %s",
                              af == AF_INET ? "TCP4" : "TCP6");
    for (int i = 1; i >= 0; i--) /* the source's bytes last, in addr */
        if (v1_addr(af, f[i], flen[i], addr) != 0)
            return kasa_set_error(ctx, KASA_ERR_PROTO,
                                  "the PROXY v1 header's %s \"%.*s\" is not an %s address", what[i],
                                  (int)flen[i], f[i], af == AF_INET ? "IPv4" : "IPv6");
    if (v1_port(f[2], flen[2], &sport) != 0 || v1_port(f[3], flen[3], &dport) != 0)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the PROXY v1 header's ports \"%.*s\" \"%.*s\" are not numbers "
                              "from 0 to 65535 without leading zeros",
                              (int)flen[2], f[2], (int)flen[3], f[3]);
    memset(src, 0, sizeof(*src));
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)src;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)sport);
        memcpy(&sin->sin_addr, addr, 4);
        *src_len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)src;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)sport);
        memcpy(&sin6->sin6_addr, addr, 16);
        *src_len = sizeof(*sin6);
    }
    return 0;
}

/* Version 1: refuse a bad prefix at once, wait for CRLF within 107 bytes. */
static long v1(kasa_ctx *ctx, const unsigned char *buf, size_t len, size_t *used,
               struct sockaddr_storage *src, socklen_t *src_len)
{
    static const char *const protos[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
    size_t n = len < KASA_PROXY_V1_MAX ? len : KASA_PROXY_V1_MAX;
    size_t i, have;
    bool known = false;

    if (memcmp(buf, "PROXY ", n < 6 ? n : 6) != 0)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "not a PROXY header: it starts with neither \"PROXY \" nor the "
                              "version 2 signature");
    /* The protocol, as far as it has come. */
    have = n > 6 ? n - 6 : 0;
    for (size_t k = 0; k < 3 && !known; k++) {
        size_t plen = strlen(protos[k]);
        known = memcmp(buf + 6, protos[k], have < plen ? have : plen) == 0;
    }
    if (!known)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the PROXY v1 header names no protocol TCP4, TCP6 or UNKNOWN");
    for (i = 6; i < n; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == n)
                break; /* the LF may come next, or be past the bound */
            if (buf[i + 1] != '\n')
                return kasa_set_error(ctx, KASA_ERR_PROTO,
                                      "the PROXY v1 header has a CR without LF (byte %zu)", i + 1);
            *used = i + 2;
            return v1_line(ctx, (const char *)buf, i, src, src_len);
        }
        if (buf[i] < 0x20 || buf[i] > 0x7e)
            return kasa_set_error(ctx, KASA_ERR_PROTO,
                                  "the PROXY v1 header has byte 0x%02x (byte %zu) before its CRLF",
                                  buf[i], i + 1);
    }
    if (len >= KASA_PROXY_V1_MAX)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the PROXY v1 header has no CRLF in its first %d bytes",
                              KASA_PROXY_V1_MAX);
    return kasa_set_error(ctx, KASA_ERR_AGAIN, "the PROXY v1 header is not complete (%zu bytes)",
                          len);
}

/* Version 2's address block: the source address and port of family fam. */
static void v2_source(int fam, const unsigned char *a, struct sockaddr_storage *src,
                      socklen_t *src_len)
{
    memset(src, 0, sizeof(*src));
    if (fam == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)src;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
        memcpy(&sin->sin_port, a + 8, 2); /* both in network order */
        *src_len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)src;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a, 16);
        memcpy(&sin6->sin6_port, a + 32, 2);
        *src_len = sizeof(*sin6);
    }
}

/* Version 2: 16 fixed bytes, then the length they announce. */
static long v2(kasa_ctx *ctx, const unsigned char *buf, size_t len, size_t *used,
               struct sockaddr_storage *src, socklen_t *src_len)
{
    static const size_t block[4] = {0, 12, 36, 216}; /* UNSPEC, INET, INET6, UNIX */
    static const char *const fam_name[4] = {"unspecified", "AF_INET", "AF_INET6", "AF_UNIX"};
    unsigned ver, cmd, fam, proto;
    size_t hlen, p;

    if (memcmp(buf, v2_sig, len < 12 ? len : 12) != 0)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "not a PROXY header: the version 2 signature is wrong");
    if (len < 16)
        return kasa_set_error(ctx, KASA_ERR_AGAIN,
                              "the PROXY v2 header is not complete (%zu of 16 bytes)", len);
    ver = buf[12] >> 4;
    cmd = buf[12] & 0x0f;
    fam = buf[13] >> 4;
    proto = buf[13] & 0x0f;
    hlen = (size_t)buf[14] << 8 | buf[15];
    if (ver != 2)
        return kasa_set_error(ctx, KASA_ERR_PROTO, "the PROXY header's version is %u, not 2", ver);
    if (cmd > 1)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the PROXY v2 command is 0x%x, neither LOCAL (0) nor PROXY (1)", cmd);
    if (fam > 3 || proto > 2)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the PROXY v2 family and transport 0x%02x are not in the spec",
                              buf[13]);
    if (hlen > KASA_PROXY_V2_MAX_LEN)
        return kasa_set_error(ctx, KASA_ERR_PROTO,
                              "the PROXY v2 header announces %zu bytes after its first 16, more "
                              "than %d",
                              hlen, KASA_PROXY_V2_MAX_LEN);
    if (cmd == 1 && fam != 0) {
        if (fam == 3 || proto != 1)
            return kasa_set_error(ctx, KASA_ERR_PROTO,
                                  "the PROXY v2 header names a client that is not TCP (%s over "
                                  "%s)",
                                  fam_name[fam],
                                  proto == 1   ? "a stream"
                                  : proto == 2 ? "datagrams"
                                               : "an unspecified transport");
        if (hlen < block[fam])
            return kasa_set_error(ctx, KASA_ERR_PROTO,
                                  "the PROXY v2 header's length %zu is too short for %s "
                                  "addresses (%zu bytes)",
                                  hlen, fam_name[fam], block[fam]);
    }
    if (len < 16 + hlen)
        return kasa_set_error(ctx, KASA_ERR_AGAIN,
                              "the PROXY v2 header is not complete (%zu of %zu bytes)", len,
                              16 + hlen);
    /* TLVs after the addresses: type, 16-bit length, value; skipped, but they must fit.
     * LOCAL's block and an unspecified family's are to be ignored (the spec). */
    if (cmd == 1 && (fam == 1 || fam == 2)) {
        for (p = 16 + block[fam]; p < 16 + hlen;) {
            size_t tlen;
            if (16 + hlen - p < 3)
                return kasa_set_error(ctx, KASA_ERR_PROTO,
                                      "the PROXY v2 header ends inside a TLV's type and length "
                                      "(byte %zu)",
                                      p + 1);
            tlen = (size_t)buf[p + 1] << 8 | buf[p + 2];
            if (tlen > 16 + hlen - p - 3)
                return kasa_set_error(ctx, KASA_ERR_PROTO,
                                      "the PROXY v2 header's TLV of type 0x%02x at byte %zu runs "
                                      "%zu bytes past its end",
                                      buf[p], p + 1, tlen - (16 + hlen - p - 3));
            p += 3 + tlen;
        }
        v2_source((int)fam, buf + 16, src, src_len);
    }
    *used = 16 + hlen;
    return 0;
}

long kasa_proxy_parse(kasa_ctx *ctx, const unsigned char *buf, size_t len, size_t *used_out,
                      struct sockaddr_storage *src_out, socklen_t *src_len_out)
{
    struct sockaddr_storage src;
    socklen_t src_len = 0;
    size_t used = 0;
    long ret;

    *used_out = 0;
    *src_len_out = 0;
    if (len == 0)
        return kasa_set_error(ctx, KASA_ERR_AGAIN, "no PROXY header yet");
    if (buf[0] == 'P')
        ret = v1(ctx, buf, len, &used, &src, &src_len);
    else if (buf[0] == v2_sig[0])
        ret = v2(ctx, buf, len, &used, &src, &src_len);
    else
        ret = kasa_set_error(ctx, KASA_ERR_PROTO,
                             "not a PROXY header: it starts with byte 0x%02x, neither \"PROXY \" "
                             "nor the version 2 signature",
                             buf[0]);
    if (ret)
        return ret;
    if (src_len > 0)
        memcpy(src_out, &src, src_len);
    *src_len_out = src_len;
    *used_out = used;
    return 0;
}
