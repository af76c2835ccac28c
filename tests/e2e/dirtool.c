/*
 * A test driver for the parts of libkasa's directory interface no kasa command uses
 * yet (setting keys at an explicit kvno, per-object metadata), so the end-to-end tests
 * can drive them against a real kadmind. Never prints key material.
 *
 *   dirtool kvno ACCOUNT
 *   dirtool setkey ACCOUNT KVNO
 *   dirtool meta-get OBJECT KEY
 *   dirtool meta-set OBJECT KEY VALUE
 *   dirtool newkeys ACCOUNT KEYTAB [HOOK]
 *   dirtool age ARRAY SECONDS
 *
 * newkeys is the roll's key step without members: new keys at the next kvno as the
 * directory makes them (on AD: derived from a new password), HOOK run through the shell
 * where the roll stages (a test resets the password there behind kasa's back), the
 * commit, and the keys written to KEYTAB for the account and its SPNs at the kvno the
 * directory holds, so that kvno -k KEYTAB proves them against the KDC.
 *
 * age moves the array's recorded commit SECONDS into the past, as if its last roll were
 * that old (for roll --if-older-than, without waiting).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "kasa/array.h"
#include "kasa/config.h"
#include "kasa/directory.h"
#include "kasa/keys.h"

/* Add keys for name (no realm) to the keytab. */
static long write_keys(kasa_dir *dir, const char *path, const char *name, const kasa_keyset *keys)
{
    krb5_context kctx = NULL;
    krb5_keytab kt = NULL;
    krb5_keytab_entry e;
    char *full = NULL;
    long ret;

    memset(&e, 0, sizeof(e));
    ret = krb5_init_context(&kctx);
    if (!ret && asprintf(&full, "%s@%s", name, kasa_dir_realm(dir)) < 0)
        ret = ENOMEM;
    if (!ret)
        ret = krb5_parse_name(kctx, full, &e.principal);
    if (!ret)
        ret = krb5_kt_resolve(kctx, path, &kt);
    for (size_t i = 0; !ret && i < keys->n; i++) {
        e.vno = keys->kvno;
        e.key = keys->keys[i];
        ret = krb5_kt_add_entry(kctx, kt, &e);
    }
    if (ret)
        fprintf(stderr, "dirtool: cannot write %s to %s: %s\n", full, path,
                krb5_get_error_message(kctx, (krb5_error_code)ret));
    memset(&e.key, 0, sizeof(e.key));
    if (kt != NULL)
        krb5_kt_close(kctx, kt);
    if (kctx != NULL) {
        krb5_free_principal(kctx, e.principal);
        krb5_free_context(kctx);
    }
    free(full);
    return ret ? KASA_ERR_KEYTAB : 0;
}

/* The roll's key step without members; see the top of the file. */
static long newkeys(kasa_ctx *ctx, kasa_dir *dir, const char *account, const char *path,
                    const char *hook)
{
    kasa_keyset *keys = NULL;
    char *password = NULL, **spns = NULL;
    size_t n = 0;
    unsigned kvno = 0, now = 0;
    long ret;

    ret = kasa_key_kvno(dir, account, &kvno);
    if (!ret)
        ret = kasa_key_new(dir, account, kvno + 1, &keys, &password);
    if (ret)
        goto cleanup;
    if (hook != NULL && system(hook) != 0) {
        fprintf(stderr, "dirtool: the hook failed\n");
        ret = KASA_ERR_INTERNAL;
        goto cleanup;
    }
    ret = kasa_key_set(dir, account, keys, password);
    kasa_password_free(password);
    password = NULL;
    if (ret == KASA_ERR_KVNO) {
        /* What the roll does: the same keys at the directory's kvno. */
        fprintf(stderr, "dirtool: %s\n", kasa_error(ctx));
        ret = kasa_key_kvno(dir, account, &now);
        if (ret)
            goto cleanup;
        printf("moved from %u to %u\n", keys->kvno, now);
        keys->kvno = now;
    }
    if (ret)
        goto cleanup;
    ret = kasa_spn_list(dir, account, &spns, &n);
    for (size_t i = 0; !ret && i <= n; i++)
        ret = write_keys(dir, path, i < n ? spns[i] : account, keys);
    if (!ret)
        printf("kvno %u: %zu keys for %s and %zu SPNs\n", keys->kvno, keys->n, account, n);

cleanup:
    kasa_spn_list_free(spns, n);
    kasa_password_free(password);
    kasa_keyset_free(keys);
    return ret;
}

int main(int argc, char **argv)
{
    kasa_ctx *ctx = NULL;
    kasa_config *cfg = NULL;
    kasa_dir *dir = NULL;
    kasa_keyset *keys = NULL;
    char *value = NULL;
    unsigned kvno = 0;
    long ret;
    int status = 1;

    if (argc < 3 || kasa_ctx_new(&ctx) != 0) {
        fprintf(stderr, "usage: dirtool kvno|setkey|meta-get|meta-set ...\n");
        return 2;
    }
    ret = kasa_config_load(ctx, NULL, &cfg);
    if (!ret)
        ret = kasa_dir_open(ctx, cfg, &dir);
    if (ret)
        goto done;
    if (strcmp(argv[1], "kvno") == 0) {
        ret = kasa_key_kvno(dir, argv[2], &kvno);
        if (!ret)
            printf("%u\n", kvno);
    } else if (strcmp(argv[1], "setkey") == 0 && argc == 4) {
        ret = kasa_keyset_generate(ctx, (unsigned)strtoul(argv[3], NULL, 10), cfg->enctypes,
                                   cfg->n_enctypes, &keys);
        if (!ret)
            ret = kasa_key_set(dir, argv[2], keys, NULL);
        if (!ret)
            printf("set %zu keys at kvno %u\n", keys->n, keys->kvno);
    } else if (strcmp(argv[1], "newkeys") == 0 && (argc == 4 || argc == 5)) {
        ret = newkeys(ctx, dir, argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    } else if (strcmp(argv[1], "meta-get") == 0 && argc == 4) {
        ret = kasa_meta_get(dir, argv[2], argv[3], &value);
        if (!ret && value == NULL) {
            fprintf(stderr, "dirtool: %s has no %s\n", argv[2], argv[3]);
            goto done;
        }
        if (!ret)
            printf("%s\n", value);
    } else if (strcmp(argv[1], "meta-set") == 0 && argc == 5) {
        ret = kasa_meta_set(dir, argv[2], argv[3], argv[4]);
    } else if (strcmp(argv[1], "age") == 0 && argc == 4) {
        kasa_array *a = NULL;
        ret = kasa_array_get(dir, argv[2], &a);
        if (!ret) {
            a->committed_at = (int64_t)time(NULL) - strtoll(argv[3], NULL, 10);
            ret = kasa_array_save_state(dir, a);
        }
        kasa_array_free(a);
    } else {
        fprintf(stderr, "dirtool: bad usage\n");
        status = 2;
        goto done;
    }
    status = ret ? 1 : 0;

done:
    if (ret)
        fprintf(stderr, "dirtool: %s\n", kasa_error(ctx));
    free(value);
    kasa_keyset_free(keys);
    kasa_dir_close(dir);
    kasa_config_free(cfg);
    kasa_ctx_free(ctx);
    return status;
}
