/*
 * kasa.conf parsing: defaults, every setting, and the errors an administrator can make,
 * each with a message that names the file and the setting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <krb5/krb5.h>

#include "kasa/config.h"

struct fixture {
    kasa_ctx *ctx;
    char path[64];
    char warnings[1024];
};

static void collect(void *data, const char *msg)
{
    struct fixture *f = data;

    strncat(f->warnings, msg, sizeof(f->warnings) - strlen(f->warnings) - 2);
    strcat(f->warnings, "\n");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int fd;

    if (f == NULL || kasa_ctx_new(&f->ctx) != 0)
        return -1;
    kasa_set_warn_fn(f->ctx, collect, f);
    strcpy(f->path, "/tmp/kasa-test-conf-XXXXXX");
    fd = mkstemp(f->path);
    if (fd < 0)
        return -1;
    close(fd);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    unlink(f->path);
    kasa_ctx_free(f->ctx);
    free(f);
    return 0;
}

static void write_conf(struct fixture *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Load text; return the code, leaving the config in *cfg (NULL on error). */
static long load(struct fixture *f, const char *text, kasa_config **cfg)
{
    write_conf(f, text);
    f->warnings[0] = '\0';
    return kasa_config_load(f->ctx, f->path, cfg);
}

static void test_full(void **state)
{
    struct fixture *f = *state;
    kasa_config *cfg = NULL;

    assert_int_equal(load(f,
                          "# a comment\n"
                          "[directory]\n"
                          "\tbackend = mit\n"
                          "\trealm = PROSEWARE.LAB\n"
                          "\tadmin_server = 127.0.0.1:7749\n"
                          "\tprincipal = kasa/admin@PROSEWARE.LAB\n"
                          "\tkeytab = /etc/kasa/admin.keytab\n"
                          "\tenctypes = aes128-cts-hmac-sha1-96, aes256-cts-hmac-sha384-192\n",
                          &cfg),
                     0);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, f->path);
    assert_string_equal(cfg->backend, "mit");
    assert_string_equal(cfg->realm, "PROSEWARE.LAB");
    assert_string_equal(cfg->admin_server, "127.0.0.1:7749");
    assert_string_equal(cfg->principal, "kasa/admin@PROSEWARE.LAB");
    assert_string_equal(cfg->keytab, "/etc/kasa/admin.keytab");
    assert_null(cfg->ccache);
    assert_int_equal(cfg->n_enctypes, 2);
    assert_int_equal(cfg->enctypes[0], ENCTYPE_AES128_CTS_HMAC_SHA1_96);
    assert_int_equal(cfg->enctypes[1], ENCTYPE_AES256_CTS_HMAC_SHA384_192);
    assert_string_equal(f->warnings, "");
    kasa_config_free(cfg);
}

static void test_defaults(void **state)
{
    struct fixture *f = *state;
    kasa_config *cfg = NULL;

    assert_int_equal(load(f, "[directory]\n", &cfg), 0);
    assert_string_equal(cfg->backend, "mit");
    assert_null(cfg->realm);
    assert_null(cfg->admin_server);
    assert_null(cfg->keytab);
    assert_int_equal(cfg->n_enctypes, 2);
    assert_int_equal(cfg->enctypes[0], ENCTYPE_AES256_CTS_HMAC_SHA1_96);
    assert_int_equal(cfg->enctypes[1], ENCTYPE_AES128_CTS_HMAC_SHA1_96);
    kasa_config_free(cfg);

    /* An empty file is a valid configuration too. */
    assert_int_equal(load(f, "", &cfg), 0);
    kasa_config_free(cfg);
}

static void test_path_order(void **state)
{
    (void)state;
    setenv(KASA_CONFIG_ENV, "/from/env.conf", 1);
    assert_string_equal(kasa_config_path("/given.conf"), "/given.conf");
    assert_string_equal(kasa_config_path(NULL), "/from/env.conf");
    unsetenv(KASA_CONFIG_ENV);
    assert_string_equal(kasa_config_path(NULL), KASA_CONFIG_DEFAULT);
}

static void test_unknown_key_warns(void **state)
{
    struct fixture *f = *state;
    kasa_config *cfg = NULL;

    assert_int_equal(load(f, "[directory]\n\trelam = X.LAB\n", &cfg), 0);
    assert_non_null(strstr(f->warnings, "[directory] relam is not a kasa setting"));
    kasa_config_free(cfg);
}

/* Each error: the code, a message naming the file and what to fix, no config. */
static void test_errors(void **state)
{
    struct fixture *f = *state;
    const struct {
        const char *text, *msg;
    } v[] = {
        {"[directory]\n\tbackend = ldap\n", "backend = ldap is not known"},
        {"[directory]\n\tbackend = ad\n\tbase_dn = DC=x\n",
         "backend = ad needs ldap_uri and base_dn"},
        {"[directory]\n\tenctypes = des-cbc-crc\n", "des-cbc-crc is not an enctype kasa can use"},
        {"[directory]\n\tenctypes = des3-cbc-sha1\n", "des3-cbc-sha1 is not an enctype"},
        {"[directory]\n\tenctypes = rot13\n", "rot13 is not an enctype"},
        {"[directory]\n\tenctypes = ,\n", "enctypes is empty"},
        {"[directory]\n\tkeytab = /k\n", "keytab is set but principal is not"},
        {"[directory]\n\tprincipal = a\n\tkeytab = /k\n\tccache = FILE:/c\n", "not both"},
        {"[directory\n", "Syntax error in profile section header"},
        {"[directory]\n\tjunk line\n", "Syntax error in profile relation"},
    };
    kasa_config *cfg;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        cfg = (kasa_config *)1;
        long ret = load(f, v[i].text, &cfg);
        assert_null(cfg);
        if (ret != KASA_ERR_CONFIG || strstr(kasa_error(f->ctx), v[i].msg) == NULL ||
            strstr(kasa_error(f->ctx), f->path) == NULL)
            fail_msg("config #%zu: expected \"%s\", got %ld \"%s\"", i, v[i].msg, ret,
                     kasa_error(f->ctx));
        assert_int_equal(kasa_exit_status(ret), 1);
    }
}

/* [array]: seconds with or without a unit, defaults, and refusals. */
static void test_array_section(void **state)
{
    struct fixture *f = *state;
    kasa_config *cfg = NULL;

    assert_int_equal(load(f, "[directory]\n", &cfg), 0);
    assert_int_equal(cfg->keep_window, 0); /* from the realm */
    assert_int_equal(cfg->clock_skew, 300);
    assert_int_equal(cfg->lock_timeout, 600);
    assert_string_equal(cfg->cache_dir, KASA_CACHE_DIR_DEFAULT);
    kasa_config_free(cfg);
    assert_int_equal(load(f,
                          "[array]\n keep_window = 24h\n clock_skew = 120\n lock_timeout = 2m\n"
                          " cache_dir = /tmp/x\n",
                          &cfg),
                     0);
    assert_int_equal(cfg->keep_window, 86400);
    assert_int_equal(cfg->clock_skew, 120);
    assert_int_equal(cfg->lock_timeout, 120);
    assert_string_equal(cfg->cache_dir, "/tmp/x");
    kasa_config_free(cfg);
    assert_int_equal(load(f, "[array]\n keep_window = soon\n", &cfg), KASA_ERR_CONFIG);
    assert_non_null(strstr(kasa_error(f->ctx), "keep_window = soon"));
    assert_int_equal(load(f, "[array]\n clock_skew = -5\n", &cfg), KASA_ERR_CONFIG);
    assert_int_equal(load(f, "[array]\n lock_timeout = 3x\n", &cfg), KASA_ERR_CONFIG);
    assert_int_equal(load(f, "[array]\n keep_windw = 1\n", &cfg), 0);
    assert_non_null(strstr(f->warnings, "[array] keep_windw is not a kasa setting"));
    kasa_config_free(cfg);
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;
    kasa_config *cfg = (kasa_config *)1;

    assert_int_equal(kasa_config_load(f->ctx, "/nonexistent/kasa.conf", &cfg), KASA_ERR_CONFIG);
    assert_null(cfg);
    assert_non_null(strstr(kasa_error(f->ctx), "cannot read /nonexistent/kasa.conf"));
    assert_non_null(strstr(kasa_error(f->ctx), "kasa lab env"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
