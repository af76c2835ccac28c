/*
 * SPN rules. An SPN is service/host[:port][/name] (RFC 4120 host-based names as Active
 * Directory writes them). The checks refuse what would make a principal no client can
 * ask for: a missing part, a realm suffix, bytes outside printable ASCII, a port out of
 * range. Why not krb5_parse_name(): it accepts almost anything (any component, escapes,
 * a realm), and says nothing about which part is wrong; these rules need the reason.
 */
#include "kasa/spn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "private.h"

/* The service classes the KDC itself uses; an account must never own them. */
static const char *const reserved_classes[] = {"krbtgt", "kadmin", "kiprop", "K", NULL};

#define invalid(why, why_len, ...) kasa_reason(KASA_ERR_SPN_INVALID, why, why_len, __VA_ARGS__)

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_class_char(char c)
{
    return is_alnum(c) || c == '-' || c == '_';
}

static int is_host_char(char c)
{
    return is_alnum(c) || c == '-' || c == '_';
}

/* Check a dotted host-like name of len bytes; what is "host name" or "name". */
static long check_dotted(const char *s, size_t len, const char *what, char *why, size_t why_len)
{
    size_t label = 0;

    if (len > KASA_SPN_HOST_MAX)
        return invalid(why, why_len, "the %s is longer than 253 characters", what);
    if (s[len - 1] == '.')
        return invalid(why, why_len, "the %s ends with '.'; drop the trailing dot", what);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return invalid(why, why_len, "the %s has an empty label (\"..\" or a leading '.')",
                               what);
            if (s[i - 1] == '-')
                return invalid(why, why_len, "a label of the %s ends with '-'", what);
            label = 0;
            continue;
        }
        if (!is_host_char(c))
            return invalid(why, why_len,
                           "the %s may hold only letters, digits, '-', '_' and '.' (found '%c')",
                           what, c);
        if (label == 0 && c == '-')
            return invalid(why, why_len, "a label of the %s starts with '-'", what);
        if (++label > KASA_SPN_LABEL_MAX)
            return invalid(why, why_len, "a label of the %s is longer than 63 characters", what);
    }
    if (s[len - 1] == '-')
        return invalid(why, why_len, "a label of the %s ends with '-'", what);
    return 0;
}

/* Bytes no SPN may hold, whatever the part: checked first so the reason names the byte. */
static long check_bytes(const char *text, size_t len, char *why, size_t why_len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x80)
            return invalid(why, why_len,
                           "it holds a non-ASCII byte (0x%02x); write international host names "
                           "in their xn-- form",
                           c);
        if (c < 0x20 || c == 0x7f)
            return invalid(why, why_len, "it holds a control character (0x%02x)", c);
        if (c == ' ')
            return invalid(why, why_len, "it holds a space");
        if (c == '\\')
            return invalid(why, why_len, "it holds a backslash");
    }
    /* Only now is the text known to be printable, so it may be quoted in the reason. */
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '@')
            return invalid(why, why_len,
                           "it has a realm suffix ('@%s'); give the SPN without the realm",
                           text + i + 1);
    }
    return 0;
}

static long parse_port(const char *s, size_t len, unsigned *port, char *why, size_t why_len)
{
    unsigned long v = 0;

    if (len == 0)
        return invalid(why, why_len, "there is no port after the ':'");
    if (len > 1 && s[0] == '0')
        return invalid(why, why_len, "the port has a leading zero");
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return invalid(why, why_len, "the port must be a number from 1 to 65535");
        if (v <= 65535)
            v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return invalid(why, why_len, "the port is out of range (1-65535)");
    *port = (unsigned)v;
    return 0;
}

long kasa_spn_parse(const char *text, kasa_spn *out, char *why, size_t why_len)
{
    kasa_spn spn;
    const char *slash, *rest, *slash2, *colon, *host_end;
    size_t len, class_len, host_len;
    long ret;

    memset(&spn, 0, sizeof(spn));
    if (why != NULL && why_len > 0)
        why[0] = '\0';
    if (text == NULL || *text == '\0')
        return invalid(why, why_len, "the SPN is empty");
    len = strnlen(text, KASA_SPN_MAX + 1);
    if (len > KASA_SPN_MAX)
        return invalid(why, why_len, "it is longer than 512 characters");
    ret = check_bytes(text, len, why, why_len);
    if (ret)
        return ret;

    slash = strchr(text, '/');
    if (slash == NULL)
        return invalid(why, why_len,
                       "no '/' between the service class and the host (an SPN looks like "
                       "service/host, e.g. http/%s)",
                       text);
    class_len = (size_t)(slash - text);
    if (class_len == 0)
        return invalid(why, why_len, "no service class before the '/'");
    if (class_len > KASA_SPN_CLASS_MAX)
        return invalid(why, why_len, "the service class is longer than 64 characters");
    for (size_t i = 0; i < class_len; i++) {
        if (!is_class_char(text[i]))
            return invalid(why, why_len,
                           "the service class may hold only letters, digits, '-' and '_'");
    }
    memcpy(spn.service, text, class_len);
    /* kasa-TYPE/NAME principals hold kasa's own records (arrays). */
    for (size_t i = 0; reserved_classes[i] != NULL; i++) {
        if (strcasecmp(spn.service, reserved_classes[i]) == 0 ||
            strncasecmp(spn.service, "kasa-", 5) == 0)
            return invalid(why, why_len,
                           "the service class %s is reserved for the KDC or for kasa itself",
                           spn.service);
    }

    rest = slash + 1;
    if (*rest == '\0' || *rest == '/')
        return invalid(why, why_len, "no host after the service class");
    slash2 = strchr(rest, '/');
    host_end = slash2 != NULL ? slash2 : rest + strlen(rest);
    if (*rest == '[')
        return invalid(why, why_len,
                       "IPv6 address literals are not supported as SPN hosts; use the host's "
                       "DNS name");
    colon = memchr(rest, ':', (size_t)(host_end - rest));
    host_len = (size_t)((colon != NULL ? colon : host_end) - rest);
    if (host_len == 0)
        return invalid(why, why_len, "no host before the ':'");
    ret = check_dotted(rest, host_len, "host name", why, why_len);
    if (ret)
        return ret;
    memcpy(spn.host, rest, host_len);
    if (colon != NULL) {
        const char *p = colon + 1;
        if (memchr(p, ':', (size_t)(host_end - p)) != NULL)
            return invalid(why, why_len, "more than one ':' after the host");
        ret = parse_port(p, (size_t)(host_end - p), &spn.port, why, why_len);
        if (ret)
            return ret;
    }
    if (slash2 != NULL) {
        const char *name = slash2 + 1;
        size_t name_len = strlen(name);
        if (name_len == 0)
            return invalid(why, why_len, "nothing after the last '/'; drop the trailing '/'");
        if (strchr(name, '/') != NULL)
            return invalid(why, why_len,
                           "too many '/' parts; an SPN is at most service/host[:port]/name");
        if (strchr(name, ':') != NULL)
            return invalid(why, why_len, "the name after the host may not hold ':'");
        ret = check_dotted(name, name_len, "service name", why, why_len);
        if (ret)
            return ret;
        memcpy(spn.name, name, name_len);
    }
    if (out != NULL)
        *out = spn;
    return 0;
}

void kasa_spn_format(const kasa_spn *spn, char *buf, size_t len)
{
    char port[16] = "";

    if (spn->port != 0)
        snprintf(port, sizeof(port), ":%u", spn->port);
    snprintf(buf, len, "%s/%s%s%s%s", spn->service, spn->host, port, spn->name[0] ? "/" : "",
             spn->name);
}

bool kasa_spn_equal_nocase(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

long kasa_spn_check(kasa_ctx *ctx, const char *spn)
{
    char why[256];
    bool printable = true;

    if (kasa_spn_parse(spn, NULL, why, sizeof(why)) == 0)
        return 0;
    /* Quote the SPN only when it is short and printable: the message stays one line. */
    for (const unsigned char *p = (const unsigned char *)spn; p != NULL && *p; p++)
        printable = printable && *p >= 0x20 && *p < 0x7f;
    if (spn == NULL || !printable || strlen(spn) > 80)
        return kasa_set_error(ctx, KASA_ERR_SPN_INVALID, "not a valid SPN: %s", why);
    return kasa_set_error(ctx, KASA_ERR_SPN_INVALID, "%s is not a valid SPN: %s", spn, why);
}
