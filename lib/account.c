/*
 * Account names and the account record. The rules are Active Directory's (the strictest
 * directory kasa talks to), so an account made on MIT Kerberos can move to AD unchanged.
 */
#include "kasa/account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/array.h"
#include "private.h"

const char *kasa_account_kind_name(kasa_account_kind kind)
{
    return kind == KASA_ACCOUNT_COMPUTER ? "computer" : "user";
}

void kasa_account_free(kasa_account *acct)
{
    if (acct == NULL)
        return;
    kasa_account_list_free(acct, 1);
}

void kasa_account_list_free(kasa_account *accts, size_t n)
{
    if (accts == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(accts[i].name);
        free(accts[i].principal);
        free(accts[i].description);
        free(accts[i].dns_host_name);
    }
    free(accts);
}

#define bad(why, why_len, ...) kasa_reason(KASA_ERR_ACCOUNT_INVALID, why, why_len, __VA_ARGS__)

long kasa_account_name_check(const char *name, kasa_account_kind kind, char *why, size_t why_len)
{
    size_t len, body;
    bool computer = kind == KASA_ACCOUNT_COMPUTER;

    if (why != NULL && why_len > 0)
        why[0] = '\0';
    if (name == NULL || *name == '\0')
        return bad(why, why_len, "the account name is empty");
    len = strlen(name);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/')
            return bad(why, why_len,
                       "%s holds '/': that is an SPN, not an account (add it with kasa spn "
                       "add)",
                       name);
        if (c == '@')
            return bad(why, why_len, "give the account name without a realm (%.*s)", (int)i, name);
    }
    if (computer && name[len - 1] != '$')
        return bad(why, why_len, "a computer account's name ends in '$' (did you mean %s$?)", name);
    if (!computer && name[len - 1] == '$')
        return bad(why, why_len, "a user account's name does not end in '$'; use --computer for %s",
                   name);
    if (computer && len > KASA_COMPUTER_NAME_MAX)
        return bad(why, why_len,
                   "a computer account's name is at most 15 characters before the '$'");
    if (!computer && len > KASA_USER_NAME_MAX)
        return bad(why, why_len, "a user account's name is at most 20 characters");
    body = computer ? len - 1 : len;
    if (body == 0)
        return bad(why, why_len, "the account name is empty before the '$'");
    if (name[0] == '.' || name[0] == '-')
        return bad(why, why_len, "an account name may not start with '%c'", name[0]);
    for (size_t i = 0; i < body; i++) {
        unsigned char c = (unsigned char)name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
        if (!ok && (c < 0x21 || c > 0x7e))
            return bad(why, why_len, "an account name may not hold the byte 0x%02x", c);
        if (!ok)
            return bad(why, why_len,
                       "an account name may hold only letters, digits, '-', '_' and '.' (found "
                       "'%c')",
                       c);
    }
    return 0;
}

long kasa_account_check(kasa_ctx *ctx, const char *name, kasa_account_kind kind)
{
    char why[256];
    size_t len = name != NULL ? strlen(name) : 0;

    if (kind == 0)
        kind = len > 0 && name[len - 1] == '$' ? KASA_ACCOUNT_COMPUTER : KASA_ACCOUNT_USER;
    if (kasa_account_name_check(name, kind, why, sizeof(why)) != 0)
        return kasa_set_error(ctx, KASA_ERR_ACCOUNT_INVALID, "%s", why);
    return 0;
}

long kasa_description_check(kasa_ctx *ctx, const char *description)
{
    if (strlen(description) > KASA_DESCRIPTION_MAX)
        return kasa_set_error(ctx, KASA_ERR_ACCOUNT_INVALID,
                              "the description is longer than %d characters", KASA_DESCRIPTION_MAX);
    for (const unsigned char *p = (const unsigned char *)description; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return kasa_set_error(ctx, KASA_ERR_ACCOUNT_INVALID,
                                  "the description holds a control character (0x%02x)", *p);
    }
    return 0;
}

long kasa_dns_host_name_check(kasa_ctx *ctx, const char *name, kasa_account_kind kind)
{
    if (kind != KASA_ACCOUNT_COMPUTER)
        return kasa_set_error(ctx, KASA_ERR_USAGE,
                              "only a computer account has a DNS host name (dNSHostName)");
    return kasa_hostname_check(ctx, "DNS host", name);
}
