/*
 * The accept path's keys in memory (lib/acceptor.c): a keytab that appears is loaded,
 * with a credential per principal found in any case; a change is loaded as a new whole
 * set while a set already held stays usable; garbage, a truncated file and a keytab with
 * no keys are refused with the reason, said once, and the last good keys stay; an
 * unchanged file is not read again; the watch thread sees a file renamed over the keytab.
 * Keytabs are written with MIT's own FILE keytab code, keys from krb5's random keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <krb5/krb5.h>

#include "kasa/acceptor.h"
#include "kasa/kasa_err.h"

static kasa_ctx *ctx;
static char dir[] = "/tmp/kasa-test-acceptor.XXXXXX";
static char path[256];
static char said[8][512];
static int n_said;

static void on_log(void *data, int level, const char *msg)
{
    (void)data;
    (void)level;
    if (n_said < 8)
        snprintf(said[n_said++], sizeof(said[0]), "%s", msg);
}

static int setup(void **state)
{
    char conf[300];
    FILE *f;

    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(conf, sizeof(conf), "%s/krb5.conf", dir);
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fputs("[libdefaults]\n default_realm = PROSEWARE.LAB\n", f);
    fclose(f);
    setenv("KRB5_CONFIG", conf, 1);
    snprintf(path, sizeof(path), "%s/array.keytab", dir);
    return kasa_ctx_new(&ctx);
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    kasa_ctx_free(ctx);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write a keytab with the given principals at kvnos 1..kvnos (aes256 and aes128 each),
 * as kasad does: a new file renamed over the old. */
static void write_keytab(const char *const *princs, size_t n, unsigned kvnos)
{
    krb5_context kc;
    krb5_keytab kt;
    char tmp[300], name[310];

    snprintf(tmp, sizeof(tmp), "%s/array.keytab.new", dir);
    unlink(tmp);
    snprintf(name, sizeof(name), "FILE:%s", tmp);
    assert_int_equal(krb5_init_context(&kc), 0);
    assert_int_equal(krb5_kt_resolve(kc, name, &kt), 0);
    for (unsigned v = 1; v <= kvnos; v++) {
        krb5_enctype et[2] = {ENCTYPE_AES256_CTS_HMAC_SHA1_96, ENCTYPE_AES128_CTS_HMAC_SHA1_96};
        for (size_t e = 0; e < 2; e++) {
            krb5_keyblock key;
            assert_int_equal(krb5_c_make_random_key(kc, et[e], &key), 0);
            for (size_t i = 0; i < n; i++) {
                krb5_keytab_entry ent;
                memset(&ent, 0, sizeof(ent));
                assert_int_equal(krb5_parse_name(kc, princs[i], &ent.principal), 0);
                ent.vno = v;
                ent.key = key;
                assert_int_equal(krb5_kt_add_entry(kc, kt, &ent), 0);
                krb5_free_principal(kc, ent.principal);
            }
            krb5_free_keyblock_contents(kc, &key);
        }
    }
    krb5_kt_close(kc, kt);
    krb5_free_context(kc);
    assert_int_equal(rename(tmp, path), 0);
}

/* Replace the keytab with bytes (the first len of src, or of a literal). */
static void write_bytes(const void *bytes, size_t len)
{
    char tmp[300];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/array.keytab.new", dir);
    f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static size_t read_file(unsigned char *buf, size_t max)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, max, f);
    fclose(f);
    return n;
}

static const char *const seed_princs[] = {
    "HTTP/outlook.proseware.lab@PROSEWARE.LAB",
    "http/autodiscover.proseware.lab@PROSEWARE.LAB",
    "CASARRAY-ASA$@PROSEWARE.LAB",
};

static void load_reload_and_keep(void **state)
{
    kasa_acceptor *a = NULL;
    kasa_accept_info info;
    kasa_accept_keys *held, *k;
    unsigned char good[8192];
    size_t good_len;
    OM_uint32 minor, life = 0;

    (void)state;
    unlink(path);
    n_said = 0;
    /* No keytab yet: no keys, no error. */
    assert_int_equal(kasa_acceptor_open(ctx, path, 0, 2, on_log, NULL, &a), 0);
    kasa_acceptor_info(a, &info);
    assert_int_equal(info.entries, 0);
    assert_int_equal(info.generation, 0);
    k = kasa_acceptor_hold(a);
    assert_true(kasa_accept_keys_cred(k, seed_princs[0]) == GSS_C_NO_CREDENTIAL);
    kasa_acceptor_release(a, k);

    /* The keytab appears: 3 principals x 2 enctypes x 2 kvnos. */
    write_keytab(seed_princs, 3, 2);
    assert_int_equal(kasa_acceptor_check(ctx, a, false), 0);
    kasa_acceptor_info(a, &info);
    assert_int_equal(info.entries, 12);
    assert_int_equal(info.principals, 3);
    assert_int_equal(info.max_kvno, 2);
    assert_int_equal(info.generation, 1);
    held = kasa_acceptor_hold(a);
    assert_true(kasa_accept_keys_cred(held, seed_princs[0]) != GSS_C_NO_CREDENTIAL);
    /* Another case of the same SPN (Active Directory) is the same principal. */
    assert_true(kasa_accept_keys_cred(held, "HTTP/autodiscover.proseware.lab@PROSEWARE.LAB") ==
                kasa_accept_keys_cred(held, seed_princs[1]));
    assert_true(kasa_accept_keys_cred(held, "HTTP/autodiscover.proseware.lab@PROSEWARE.LAB") !=
                GSS_C_NO_CREDENTIAL);
    assert_true(kasa_accept_keys_cred(held, "HTTP/evil.proseware.lab@PROSEWARE.LAB") ==
                GSS_C_NO_CREDENTIAL);
    assert_true(kasa_accept_keys_cred(held, NULL) == GSS_C_NO_CREDENTIAL);

    /* Unchanged: not read again. */
    assert_int_equal(kasa_acceptor_check(ctx, a, false), 0);
    kasa_acceptor_info(a, &info);
    assert_int_equal(info.generation, 1);
    assert_int_equal(info.reloads, 1);

    good_len = read_file(good, sizeof(good));
    assert_true(good_len > 100);

    /* Garbage: refused, said once with the reason, the last good keys stay. */
    n_said = 0;
    write_bytes("this is not a keytab at all\n", 28);
    assert_int_equal(kasa_acceptor_check(ctx, a, false), KASA_ERR_KEYTAB);
    assert_non_null(strstr(kasa_error(ctx), "not a keytab"));
    assert_int_equal(kasa_acceptor_check(ctx, a, false), 0); /* the same file: not again */
    assert_int_equal(n_said, 1);
    assert_non_null(strstr(said[0], "keeping the last good keys"));
    kasa_acceptor_info(a, &info);
    assert_int_equal(info.generation, 1);
    assert_int_equal(info.entries, 12);
    assert_int_equal(info.refused, 1);

    /* Truncated inside an entry, at every length from the header on. (Cut exactly between
     * two entries, a keytab is whole and shorter; no reader can tell.) */
    for (size_t cut = 3; cut < good_len; cut += 7) {
        size_t at = 2;
        while (at < cut)
            at += 4 + ((size_t)good[at] << 24 | (size_t)good[at + 1] << 16 |
                       (size_t)good[at + 2] << 8 | good[at + 3]);
        if (at == cut)
            continue;
        write_bytes(good, cut);
        assert_int_equal(kasa_acceptor_check(ctx, a, false), KASA_ERR_KEYTAB);
    }
    kasa_acceptor_info(a, &info);
    assert_int_equal(info.generation, 1);
    /* Only the version: no keys. */
    write_bytes("\x05\x02", 2);
    assert_int_equal(kasa_acceptor_check(ctx, a, false), KASA_ERR_KEYTAB);
    assert_non_null(strstr(kasa_error(ctx), "holds no keys"));
    /* Empty. */
    write_bytes("", 0);
    assert_int_equal(kasa_acceptor_check(ctx, a, false), KASA_ERR_KEYTAB);
    k = kasa_acceptor_hold(a);
    assert_true(k == held);
    kasa_acceptor_release(a, k);

    /* A roll: kvno 3 too. A new whole set; the one held is still whole and usable. */
    write_keytab(seed_princs, 2, 3);
    if (kasa_acceptor_check(ctx, a, false) != 0)
        fail_msg("%s", kasa_error(ctx));
    kasa_acceptor_info(a, &info);
    assert_int_equal(info.generation, 2);
    assert_int_equal(info.entries, 12);
    assert_int_equal(info.principals, 2);
    assert_int_equal(info.max_kvno, 3);
    k = kasa_acceptor_hold(a);
    assert_true(k != held);
    assert_true(kasa_accept_keys_cred(k, seed_princs[2]) == GSS_C_NO_CREDENTIAL);
    kasa_acceptor_release(a, k);
    assert_false(GSS_ERROR(gss_inquire_cred(&minor, kasa_accept_keys_cred(held, seed_princs[2]),
                                            NULL, &life, NULL, NULL)));
    kasa_acceptor_release(a, held);

    /* The file gone: the keys stay. */
    unlink(path);
    assert_int_equal(kasa_acceptor_check(ctx, a, false), 0);
    kasa_acceptor_info(a, &info);
    assert_int_equal(info.entries, 12);
    kasa_acceptor_close(a);
}

static void watch_sees_rename(void **state)
{
    kasa_acceptor *a = NULL;
    kasa_accept_info info;
    struct timespec ts = {0, 20 * 1000 * 1000};

    (void)state;
    write_keytab(seed_princs, 1, 1);
    assert_int_equal(kasa_acceptor_open(ctx, path, KASA_ACCEPTOR_WATCH, 1, NULL, NULL, &a), 0);
    kasa_acceptor_info(a, &info);
    assert_int_equal(info.generation, 1);
    write_keytab(seed_princs, 3, 4);
    for (int i = 0; i < 250; i++) { /* inotify: well under the 5 s check */
        kasa_acceptor_info(a, &info);
        if (info.generation == 2)
            break;
        nanosleep(&ts, NULL);
    }
    assert_int_equal(info.generation, 2);
    assert_int_equal(info.max_kvno, 4);
    assert_int_equal(info.principals, 3);
    kasa_acceptor_close(a);
}

static void bad_arguments(void **state)
{
    kasa_acceptor *a = (kasa_acceptor *)1;

    (void)state;
    assert_int_equal(kasa_acceptor_open(ctx, "", 0, 1, NULL, NULL, &a), KASA_ERR_USAGE);
    assert_null(a);
    assert_int_equal(kasa_acceptor_open(ctx, path, 0, 0, NULL, NULL, &a), KASA_ERR_USAGE);
    assert_int_equal(kasa_acceptor_open(ctx, path, 0, 257, NULL, NULL, &a), KASA_ERR_USAGE);
    assert_null(a);
    assert_true(kasa_accept_keys_cred(NULL, "x") == GSS_C_NO_CREDENTIAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_reload_and_keep),
        cmocka_unit_test(watch_sees_rename),
        cmocka_unit_test(bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
