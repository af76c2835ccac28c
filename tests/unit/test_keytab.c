/*
 * A member's keytab on disk: staging a kvno, storing atomically, reading it back with
 * MIT's keytab code, proving possession, and the retire rule.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kasa/keys.h"
#include "kasa/keytab.h"

static kasa_ctx *ctx;
static char dir[64], path[128];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/kasa-test-kt-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/array.keytab", dir);
    return kasa_ctx_new(&ctx);
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return -1;
    kasa_ctx_free(ctx);
    return 0;
}

static void make_set(kasa_kvno_set *set, unsigned kvno)
{
    const int32_t ets[] = {ENCTYPE_AES256_CTS_HMAC_SHA1_96, ENCTYPE_AES128_CTS_HMAC_SHA1_96};
    static const char *const names[] = {"CASARRAY-ASA$@PROSEWARE.LAB",
                                        "http/outlook.proseware.lab@PROSEWARE.LAB",
                                        "exchangeMDB/outlook@PROSEWARE.LAB"};

    memset(set, 0, sizeof(*set));
    set->kvno = kvno;
    set->n_principals = 3;
    set->principals = calloc(3, sizeof(char *));
    for (size_t i = 0; i < 3; i++)
        set->principals[i] = strdup(names[i]);
    assert_int_equal(kasa_keyset_generate(ctx, kvno, ets, 2, &set->keys), 0);
}

static void test_stage_store_load(void **state)
{
    kasa_held held = {0}, back = {0};
    kasa_kvno_set s1, s2;
    struct stat st;

    (void)state;
    unlink(path);
    assert_int_equal(kasa_held_load(ctx, path, &held), 0); /* no file: empty */
    assert_int_equal(held.n, 0);
    make_set(&s1, 1);
    make_set(&s2, 2);
    assert_int_equal(kasa_held_stage(ctx, &held, &s2, 200), 0);
    assert_int_equal(kasa_held_stage(ctx, &held, &s1, 100), 0);
    assert_int_equal(held.n, 2);
    assert_int_equal(held.sets[0].kvno, 1); /* sorted */
    assert_int_equal(kasa_held_store(ctx, path, &held, -1), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(kasa_held_load(ctx, path, &back), 0);
    assert_int_equal(back.n, 2);
    assert_int_equal(back.sets[1].kvno, 2);
    assert_int_equal(back.sets[1].arrived, 200);
    assert_int_equal(back.sets[1].n_principals, 3);
    assert_int_equal(back.sets[1].keys->n, 2);
    assert_memory_equal(back.sets[1].keys->keys[0].contents, s2.keys->keys[0].contents,
                        s2.keys->keys[0].length);

    /* Restaging an uncommitted kvno replaces it; a committed one is refused. */
    kasa_kvno_set again;
    make_set(&again, 2);
    assert_int_equal(kasa_held_stage(ctx, &held, &again, 300), 0);
    assert_int_equal(held.n, 2);
    assert_memory_equal(held.sets[1].keys->keys[0].contents, again.keys->keys[0].contents, 32);
    held.sets[1].committed = 301;
    assert_int_equal(kasa_held_stage(ctx, &held, &s2, 302), KASA_ERR_KVNO);
    /* The same keys again are no change, and keep the commit time. */
    assert_int_equal(kasa_held_stage(ctx, &held, &again, 303), 0);
    assert_int_equal(held.sets[1].committed, 301);
    assert_int_equal(held.sets[1].arrived, 300);
    /* A copy (it carries the commit time) of other keys replaces a committed kvno whole,
     * keeping when it arrived: kasa copy mends a member whose keys were altered. */
    s2.committed = 301;
    assert_int_equal(kasa_held_stage(ctx, &held, &s2, 304), 0);
    assert_memory_equal(held.sets[1].keys->keys[0].contents, s2.keys->keys[0].contents, 32);
    assert_int_equal(held.sets[1].arrived, 300);
    assert_int_equal(held.n, 2);

    kasa_kvno_set_clear(&again);
    kasa_kvno_set_clear(&s1);
    kasa_kvno_set_clear(&s2);
    kasa_held_clear(&held);
    kasa_held_clear(&back);
}

/* Every entry of the keytab at kvno carries timestamp want (MIT's own reader says). */
static void assert_stamped(unsigned kvno, int64_t want)
{
    krb5_context kctx;
    krb5_keytab kt;
    krb5_kt_cursor cursor;
    krb5_keytab_entry entry;
    char name[160];
    size_t seen = 0;

    snprintf(name, sizeof(name), "FILE:%s", path);
    assert_int_equal(krb5_init_context(&kctx), 0);
    assert_int_equal(krb5_kt_resolve(kctx, name, &kt), 0);
    assert_int_equal(krb5_kt_start_seq_get(kctx, kt, &cursor), 0);
    while (krb5_kt_next_entry(kctx, kt, &entry, &cursor) == 0) {
        if (entry.vno == kvno) {
            assert_int_equal((uint32_t)entry.timestamp, want);
            seen++;
        }
        krb5_free_keytab_entry_contents(kctx, &entry);
    }
    krb5_kt_end_seq_get(kctx, kt, &cursor);
    krb5_kt_close(kctx, kt);
    krb5_free_context(kctx);
    assert_int_equal(seen, 6); /* 3 principals x 2 enctypes */
}

/* Each kvno's entries keep the time it arrived however often the keytab is rewritten,
 * and that time survives the loss of the state file. */
static void test_timestamps(void **state)
{
    kasa_held held = {0}, back = {0};
    kasa_kvno_set s;
    char state_path[160];

    (void)state;
    unlink(path);
    make_set(&s, 1);
    assert_int_equal(kasa_held_stage(ctx, &held, &s, 1700000000), 0);
    kasa_kvno_set_clear(&s);
    assert_int_equal(kasa_held_store(ctx, path, &held, -1), 0);
    assert_stamped(1, 1700000000);
    /* A roll: kvno 2 arrives later, kvno 1 is rewritten with it and keeps its time. */
    make_set(&s, 300); /* above 255: the 8-bit kvno field wraps */
    assert_int_equal(kasa_held_stage(ctx, &held, &s, 1700086400), 0);
    kasa_kvno_set_clear(&s);
    assert_int_equal(kasa_held_store(ctx, path, &held, -1), 0);
    assert_stamped(1, 1700000000);
    assert_stamped(300, 1700086400);
    /* Without the state file, the keytab's timestamps say when each kvno arrived. */
    snprintf(state_path, sizeof(state_path), "%s.state", path);
    assert_int_equal(unlink(state_path), 0);
    assert_int_equal(kasa_held_load(ctx, path, &back), 0);
    assert_int_equal(back.n, 2);
    assert_int_equal(back.sets[0].arrived, 1700000000);
    assert_int_equal(back.sets[1].arrived, 1700086400);
    assert_int_equal(back.sets[1].committed, 0);
    kasa_held_clear(&back);
    kasa_held_clear(&held);
}

/* The keytab kasa writes as one image is what MIT's reader reads: every entry, with its
 * principal (one to three components), name type, kvno (one over 255 too), enctype and key,
 * found by MIT's own lookup. */
static void test_image_read_by_mit(void **state)
{
    kasa_held held = {0};
    kasa_kvno_set s1, s2;
    krb5_context kc;
    krb5_keytab kt;
    krb5_kt_cursor cur;
    krb5_keytab_entry ent;
    char name[160], *pname;
    size_t n = 0;

    (void)state;
    unlink(path);
    make_set(&s1, 1);
    make_set(&s2, 300);
    assert_int_equal(kasa_held_stage(ctx, &held, &s1, 100), 0);
    assert_int_equal(kasa_held_stage(ctx, &held, &s2, 200), 0);
    assert_int_equal(kasa_held_store(ctx, path, &held, -1), 0);
    assert_int_equal(krb5_init_context(&kc), 0);
    snprintf(name, sizeof(name), "FILE:%s", path);
    assert_int_equal(krb5_kt_resolve(kc, name, &kt), 0);
    assert_int_equal(krb5_kt_start_seq_get(kc, kt, &cur), 0);
    while (krb5_kt_next_entry(kc, kt, &ent, &cur) == 0) {
        const kasa_kvno_set *set = ent.vno == 1 ? &s1 : &s2;
        bool known = false;
        assert_true(ent.vno == 1 || ent.vno == 300);
        assert_int_equal(krb5_unparse_name(kc, ent.principal, &pname), 0);
        for (size_t i = 0; i < set->n_principals; i++)
            known = known || strcmp(pname, set->principals[i]) == 0;
        assert_true(known);
        assert_int_equal(ent.principal->type, KRB5_NT_PRINCIPAL);
        assert_int_equal(ent.timestamp, ent.vno == 1 ? 100 : 200);
        known = false;
        for (size_t k = 0; k < set->keys->n; k++)
            known = known ||
                    (ent.key.enctype == set->keys->keys[k].enctype &&
                     ent.key.length == set->keys->keys[k].length &&
                     memcmp(ent.key.contents, set->keys->keys[k].contents, ent.key.length) == 0);
        assert_true(known);
        krb5_free_unparsed_name(kc, pname);
        krb5_free_keytab_entry_contents(kc, &ent);
        n++;
    }
    krb5_kt_end_seq_get(kc, kt, &cur);
    assert_int_equal(n, 12);
    {
        krb5_principal p;
        assert_int_equal(krb5_parse_name(kc, "exchangeMDB/outlook@PROSEWARE.LAB", &p), 0);
        assert_int_equal(krb5_kt_get_entry(kc, kt, p, 300, ENCTYPE_AES128_CTS_HMAC_SHA1_96, &ent),
                         0);
        assert_memory_equal(ent.key.contents, s2.keys->keys[1].contents, 16);
        krb5_free_keytab_entry_contents(kc, &ent);
        krb5_free_principal(kc, p);
    }
    krb5_kt_close(kc, kt);
    krb5_free_context(kc);
    kasa_kvno_set_clear(&s1);
    kasa_kvno_set_clear(&s2);
    kasa_held_clear(&held);
}

/* A keytab MIT's own code wrote (as kasa did before, or ktutil) is read the same: kvnos
 * over 255, and the hole MIT leaves where it removed an entry. */
static void test_reads_mit_keytab(void **state)
{
    kasa_held back = {0};
    krb5_context kc;
    krb5_keytab kt;
    krb5_keytab_entry ent;
    krb5_keyblock keys[2];
    const krb5_enctype ets[2] = {ENCTYPE_AES256_CTS_HMAC_SHA1_96, ENCTYPE_AES128_CTS_HMAC_SHA1_96};
    const char *const names[] = {"CASARRAY-ASA$@PROSEWARE.LAB",
                                 "HTTP/outlook.proseware.lab@PROSEWARE.LAB",
                                 "gone/x@PROSEWARE.LAB"};
    const unsigned kvnos[2] = {3, 300};
    char name[160];

    (void)state;
    unlink(path);
    assert_int_equal(krb5_init_context(&kc), 0);
    snprintf(name, sizeof(name), "FILE:%s", path);
    assert_int_equal(krb5_kt_resolve(kc, name, &kt), 0);
    for (int e = 0; e < 2; e++)
        assert_int_equal(krb5_c_make_random_key(kc, ets[e], &keys[e]), 0);
    for (int v = 0; v < 2; v++)
        for (int p = 0; p < 3; p++)
            for (int e = 0; e < 2; e++) {
                memset(&ent, 0, sizeof(ent));
                assert_int_equal(krb5_parse_name(kc, names[p], &ent.principal), 0);
                ent.vno = kvnos[v];
                ent.key = keys[e];
                assert_int_equal(krb5_kt_add_entry(kc, kt, &ent), 0);
                krb5_free_principal(kc, ent.principal);
            }
    /* MIT removes an entry by leaving a hole: "gone/x" at every kvno and enctype. */
    for (int v = 0; v < 2; v++)
        for (int e = 0; e < 2; e++) {
            memset(&ent, 0, sizeof(ent));
            assert_int_equal(krb5_parse_name(kc, names[2], &ent.principal), 0);
            ent.vno = kvnos[v];
            ent.key = keys[e];
            assert_int_equal(krb5_kt_remove_entry(kc, kt, &ent), 0);
            krb5_free_principal(kc, ent.principal);
        }
    krb5_kt_close(kc, kt);
    assert_int_equal(kasa_held_load(ctx, path, &back), 0);
    assert_int_equal(back.n, 2);
    assert_int_equal(back.sets[0].kvno, 3);
    assert_int_equal(back.sets[1].kvno, 300);
    for (int v = 0; v < 2; v++) {
        assert_int_equal(back.sets[v].n_principals, 2);
        assert_int_equal(back.sets[v].keys->n, 2);
        for (int e = 0; e < 2; e++) {
            const krb5_keyblock *k = &back.sets[v].keys->keys[e];
            int want = k->enctype == ets[0] ? 0 : 1;
            assert_int_equal(k->enctype, ets[want]);
            assert_memory_equal(k->contents, keys[want].contents, keys[want].length);
        }
    }
    for (int e = 0; e < 2; e++)
        krb5_free_keyblock_contents(kc, &keys[e]);
    krb5_free_context(kc);
    kasa_held_clear(&back);
}

static void test_prove(void **state)
{
    kasa_held held = {0};
    kasa_kvno_set s, other;
    kasa_proof proofs[KASA_PROTO_MAX_KEYS];
    unsigned char nonce[KASA_PROTO_NONCE];
    size_t n;

    (void)state;
    unlink(path);
    make_set(&s, 7);
    make_set(&other, 7);
    memset(nonce, 9, sizeof(nonce));
    assert_int_equal(kasa_held_stage(ctx, &held, &s, 1), 0);
    assert_int_equal(kasa_held_store(ctx, path, &held, -1), 0);
    assert_int_equal(kasa_keytab_prove(ctx, path, &s, nonce, proofs, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(kasa_proof_verify(ctx, s.keys, nonce, proofs, n), 0);
    /* Other keys, another nonce, or a missing proof do not verify. */
    assert_int_equal(kasa_proof_verify(ctx, other.keys, nonce, proofs, n), KASA_ERR_MEMBER);
    nonce[0] ^= 1;
    assert_int_equal(kasa_proof_verify(ctx, s.keys, nonce, proofs, n), KASA_ERR_MEMBER);
    nonce[0] ^= 1;
    assert_int_equal(kasa_proof_verify(ctx, s.keys, nonce, proofs, 1), KASA_ERR_MEMBER);
    /* Without keys (PROVE), every enctype the first principal holds is proved. */
    {
        kasa_keyset *keys = s.keys;
        s.keys = NULL;
        assert_int_equal(kasa_keytab_prove(ctx, path, &s, nonce, proofs, &n), 0);
        assert_int_equal(n, 2);
        s.keys = keys;
        assert_int_equal(kasa_proof_verify(ctx, s.keys, nonce, proofs, n), 0);
        assert_int_equal(kasa_proof_verify(ctx, other.keys, nonce, proofs, n), KASA_ERR_MEMBER);
    }
    /* A kvno the keytab does not hold cannot be proved, with keys or without. */
    other.kvno = 8;
    assert_int_equal(kasa_keytab_prove(ctx, path, &other, nonce, proofs, &n), KASA_ERR_KEYTAB);
    {
        kasa_keyset *keys = other.keys;
        other.keys = NULL;
        assert_int_equal(kasa_keytab_prove(ctx, path, &other, nonce, proofs, &n), KASA_ERR_KEYTAB);
        other.keys = keys;
    }
    kasa_kvno_set_clear(&s);
    kasa_kvno_set_clear(&other);
    kasa_held_clear(&held);
}

static void test_retire(void **state)
{
    kasa_held held = {0};
    kasa_kvno_set s;
    unsigned dropped[KASA_PROTO_MAX_SETS];
    size_t n;
    const int64_t keep = 36300; /* 10 h + 5 min */

    (void)state;
    for (unsigned k = 1; k <= 3; k++) {
        make_set(&s, k);
        assert_int_equal(kasa_held_stage(ctx, &held, &s, 1000 * k), 0);
        kasa_kvno_set_clear(&s);
    }
    /* kvno 2 committed at 2000: kvno 1 stays until 2000 + keep. */
    assert_int_equal(kasa_held_retire(ctx, &held, 2, 2000, keep, 2000 + keep, dropped, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(held.n, 3);
    assert_int_equal(held.sets[1].committed, 2000);
    assert_int_equal(kasa_held_retire(ctx, &held, 2, 2000, keep, 2001 + keep, dropped, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(dropped[0], 1);
    assert_int_equal(held.n, 2);
    /* kvno 3 committed now: kvno 2 is kept (its successor was just committed), 3 too. */
    assert_int_equal(kasa_held_retire(ctx, &held, 3, 50000, keep, 50000, dropped, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(held.n, 2);
    /* Nothing at or above the committed kvno is ever dropped. */
    assert_int_equal(kasa_held_retire(ctx, &held, 3, 50000, keep, 999999999, dropped, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(dropped[0], 2);
    assert_int_equal(held.n, 1);
    assert_int_equal(held.sets[0].kvno, 3);
    kasa_held_clear(&held);
}

static void test_damaged(void **state)
{
    kasa_held held;
    FILE *f;

    (void)state;
    f = fopen(path, "w");
    fputs("\x05\x02garbage that is not a keytab entry", f);
    fclose(f);
    /* A garbled tail is damage, not the end of the file (MIT's reader would take it so). */
    assert_int_equal(kasa_held_load(ctx, path, &held), KASA_ERR_KEYTAB);
    assert_int_equal(held.n, 0);
    /* A keytab cut at every length: damaged, or (cut between entries) a shorter whole
     * one; never a read past what is there (ASan runs this too). */
    {
        kasa_held full = {0};
        kasa_kvno_set s1;
        unsigned char buf[4096];
        size_t len;
        make_set(&s1, 7);
        assert_int_equal(kasa_held_stage(ctx, &full, &s1, 100), 0);
        assert_int_equal(kasa_held_store(ctx, path, &full, -1), 0);
        f = fopen(path, "rb");
        len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        assert_true(len > 100 && len < sizeof(buf));
        for (size_t cut = 0; cut < len; cut++) {
            long r;
            f = fopen(path, "wb");
            assert_int_equal(fwrite(buf, 1, cut, f), cut);
            fclose(f);
            r = kasa_held_load(ctx, path, &held);
            assert_true(r == 0 || r == KASA_ERR_KEYTAB);
            if (r == 0)
                assert_true(held.n <= 1 && (held.n == 0 || held.sets[0].keys->n <= 2));
            kasa_held_clear(&held);
        }
        kasa_kvno_set_clear(&s1);
        kasa_held_clear(&full);
    }
    f = fopen(path, "w");
    fputs("not a keytab at all", f);
    fclose(f);
    assert_int_equal(kasa_held_load(ctx, path, &held), KASA_ERR_KEYTAB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage_store_load),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_image_read_by_mit),
        cmocka_unit_test(test_reads_mit_keytab),
        cmocka_unit_test(test_prove),
        cmocka_unit_test(test_retire),
        cmocka_unit_test(test_damaged),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
