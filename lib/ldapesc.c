/*
 * Escaping for the AD backend's LDAP requests: values put into search filters (RFC 4515)
 * and into DNs (RFC 4514). Every name or SPN that reaches a filter or a DN passes here,
 * so a '*' or ')' in one can neither widen a search nor name another object. Pure code,
 * so the unit tests reach it without a directory.
 */
#include <stdlib.h>
#include <string.h>

#include "directory.h"

static const char hex[] = "0123456789abcdef";

char *kasa_ldap_filter_escape(const char *in, size_t len)
{
    char *out, *p;

    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    out = malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    p = out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        /* RFC 4515 3: these must be escaped; others may, and controls are, for clarity. */
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c == 0x7f) {
            *p++ = '\\';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        } else {
            *p++ = (char)c;
        }
    }
    *p = '\0';
    return out;
}

char *kasa_ldap_dn_escape(const char *in, size_t len)
{
    char *out, *p;

    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    out = malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    p = out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f) {
            *p++ = '\\';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        } else if (strchr(",+\"\\<>;=", c) != NULL || (i == 0 && (c == '#' || c == ' ')) ||
                   (i == len - 1 && c == ' ')) {
            /* RFC 4514 2.4 */
            *p++ = '\\';
            *p++ = (char)c;
        } else {
            *p++ = (char)c;
        }
    }
    *p = '\0';
    return out;
}
