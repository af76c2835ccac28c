/*
 * Key sets. The only place libkasa makes key material; everything that frees a key goes
 * through kasa_keyset_free(), which wipes it first. Keys are random (MIT, where kasa sets
 * keys) or derived from a random password with Active Directory's salt (AD, which only
 * takes passwords and computes the keys itself: kasa derives the same keys to stage them).
 */
#include "kasa/keys.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

void kasa_keyset_free(kasa_keyset *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        kasa_zap(ks->keys[i].contents, ks->keys[i].length);
        free(ks->keys[i].contents);
    }
    free(ks->keys);
    free(ks);
}

long kasa_keyset_generate(kasa_ctx *ctx, unsigned kvno, const int32_t *enctypes, size_t n,
                          kasa_keyset **out)
{
    kasa_keyset *ks = NULL;
    krb5_context kctx;
    long ret;

    *out = NULL;
    ret = kasa_krb5(ctx, &kctx);
    if (ret)
        return ret;
    ks = calloc(1, sizeof(*ks));
    if (ks == NULL || (ks->keys = calloc(n, sizeof(*ks->keys))) == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    ks->kvno = kvno;
    for (size_t i = 0; i < n; i++) {
        ret = krb5_c_make_random_key(kctx, enctypes[i], &ks->keys[i]);
        if (ret) {
            ret = kasa_set_krb5_error(ctx, KASA_ERR_INTERNAL, kctx, ret,
                                      "cannot make a random key for enctype %d", enctypes[i]);
            goto cleanup;
        }
        ks->n++;
    }
    *out = ks;
    ks = NULL;

cleanup:
    kasa_keyset_free(ks);
    return ret;
}

void kasa_password_free(char *pw)
{
    if (pw == NULL)
        return;
    kasa_zap(pw, strlen(pw));
    free(pw);
}

long kasa_password_generate(kasa_ctx *ctx, char **out)
{
    /* Every class AD's complexity rules count, no look-alikes; 64 characters of a 73-letter
     * alphabet are about 390 bits, more than any key kasa makes. */
    static const char *const classes[] = {"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz",
                                          "23456789", "-_.+!#%@"};
    static const char all[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.+!#%@";
    unsigned char rnd[KASA_PASSWORD_LEN];
    krb5_data d = {0, sizeof(rnd), (char *)rnd};
    krb5_context kctx;
    char *pw;
    long ret;

    *out = NULL;
    ret = kasa_krb5(ctx, &kctx);
    if (ret)
        return ret;
    pw = calloc(1, KASA_PASSWORD_LEN + 1);
    if (pw == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    ret = krb5_c_random_make_octets(kctx, &d);
    if (ret) {
        free(pw);
        return kasa_set_krb5_error(ctx, KASA_ERR_INTERNAL, kctx, ret,
                                   "cannot make a random password");
    }
    for (size_t i = 0; i < KASA_PASSWORD_LEN; i++) {
        const char *set = i < 4 ? classes[i] : all;
        pw[i] = set[rnd[i] % strlen(set)]; /* a slight bias costs < 1 bit of 390 */
    }
    kasa_zap(rnd, sizeof(rnd));
    *out = pw;
    return 0;
}

long kasa_ad_salt(kasa_ctx *ctx, const char *realm, const char *name, kasa_account_kind kind,
                  char **out)
{
    size_t len = strlen(name);
    char *s = NULL;
    int n;

    *out = NULL;
    if (kind == KASA_ACCOUNT_COMPUTER) {
        /* MS-KILE 3.1.1.2: the computer's host principal, host/name.domain, as a salt. */
        if (len > 0 && name[len - 1] == '$')
            len--;
        n = asprintf(&s, "%shost%.*s.%s", realm, (int)len, name, realm);
        if (n >= 0) {
            size_t r = strlen(realm);
            for (char *p = s + r; *p != '\0'; p++)
                *p = (char)tolower((unsigned char)*p);
            for (size_t i = 0; i < r; i++)
                s[i] = (char)toupper((unsigned char)s[i]);
        }
    } else {
        /* A user: the realm and the name exactly as stored, case kept. */
        n = asprintf(&s, "%s%s", realm, name);
        for (char *p = s; n >= 0 && p < s + strlen(realm); p++)
            *p = (char)toupper((unsigned char)*p);
    }
    if (n < 0)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    *out = s;
    return 0;
}

long kasa_keyset_from_password(kasa_ctx *ctx, const char *password, const char *realm,
                               const char *name, kasa_account_kind kind, unsigned kvno,
                               const int32_t *enctypes, size_t n, kasa_keyset **out)
{
    kasa_keyset *ks = NULL;
    krb5_context kctx;
    krb5_data pw, salt;
    char *s = NULL;
    long ret;

    *out = NULL;
    ret = kasa_krb5(ctx, &kctx);
    if (!ret)
        ret = kasa_ad_salt(ctx, realm, name, kind, &s);
    if (ret)
        return ret;
    pw.magic = salt.magic = 0;
    pw.data = (char *)password;
    pw.length = (unsigned)strlen(password);
    salt.data = s;
    salt.length = (unsigned)strlen(s);
    ks = calloc(1, sizeof(*ks));
    if (ks == NULL || (ks->keys = calloc(n, sizeof(*ks->keys))) == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    ks->kvno = kvno;
    for (size_t i = 0; i < n; i++) {
        ret = krb5_c_string_to_key(kctx, enctypes[i], &pw, &salt, &ks->keys[i]);
        if (ret) {
            ret = kasa_set_krb5_error(ctx, KASA_ERR_INTERNAL, kctx, ret,
                                      "cannot derive a key for enctype %d from a password",
                                      enctypes[i]);
            goto cleanup;
        }
        ks->n++;
    }
    *out = ks;
    ks = NULL;

cleanup:
    free(s);
    kasa_keyset_free(ks);
    return ret;
}
