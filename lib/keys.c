/*
 * Key sets. The only place libkasa makes key material; everything that frees a key goes
 * through kasa_keyset_free(), which wipes it first.
 */
#include "kasa/keys.h"

#include <stdlib.h>

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
