/*
 * A test driver for the parts of libkasa's directory interface no kasa command uses
 * yet (setting keys at an explicit kvno, per-object metadata), so the end-to-end tests
 * can drive them against a real kadmind. Never prints key material.
 *
 *   dirtool kvno ACCOUNT
 *   dirtool setkey ACCOUNT KVNO
 *   dirtool meta-get OBJECT KEY
 *   dirtool meta-set OBJECT KEY VALUE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/config.h"
#include "kasa/directory.h"
#include "kasa/keys.h"

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
            ret = kasa_key_set(dir, argv[2], keys);
        if (!ret)
            printf("set %zu keys at kvno %u\n", keys->n, keys->kvno);
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
