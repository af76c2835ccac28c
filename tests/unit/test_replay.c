/*
 * The array's replay cache (lib/replay.c): an authenticator's digest is new once and a
 * replay until the time is up, then new again; other digests are unaffected; a flood that
 * fills a bucket evicts the entry that expires first and keeps memory bounded; the spec is
 * parsed strictly; a Redis that cannot be reached is a store error, and is not retried
 * at every request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kasa/replay.h"

static kasa_ctx *ctx;

static int setup(void **state)
{
    (void)state;
    return kasa_ctx_new(&ctx);
}

static int teardown(void **state)
{
    (void)state;
    kasa_ctx_free(ctx);
    return 0;
}

static void digest_of(unsigned n, unsigned char d[32])
{
    memset(d, 0, 32);
    memcpy(d, &n, sizeof(n));
    d[31] = (unsigned char)n;
}

static void new_then_replay_then_expired(void **state)
{
    kasa_replay *r = NULL;
    unsigned char a[32], b[32];

    (void)state;
    assert_int_equal(kasa_replay_open(ctx, "local", 600, &r), 0);
    assert_false(kasa_replay_shared(r));
    digest_of(1, a);
    digest_of(2, b);
    assert_int_equal(kasa_replay_check_local_at(ctx, r, a, 1000), 0);
    assert_int_equal(kasa_replay_check_local_at(ctx, r, a, 1001), KASA_ERR_REPLAY);
    assert_int_equal(kasa_replay_check_local_at(ctx, r, a, 1599), KASA_ERR_REPLAY);
    assert_int_equal(kasa_replay_check_local_at(ctx, r, b, 1001), 0); /* another one */
    /* Past the time a replay could be accepted: remembered no longer, new again. */
    assert_int_equal(kasa_replay_check_local_at(ctx, r, a, 1600), 0);
    assert_int_equal(kasa_replay_check_local_at(ctx, r, a, 1601), KASA_ERR_REPLAY);
    /* kasa_replay_check on a local cache is the local check, with the clock. */
    digest_of(3, a);
    assert_int_equal(kasa_replay_check(ctx, r, a), 0);
    assert_int_equal(kasa_replay_check(ctx, r, a), KASA_ERR_REPLAY);
    kasa_replay_close(r);
}

static void a_full_bucket_evicts_the_soonest_to_expire(void **state)
{
    kasa_replay *r = NULL;
    unsigned char d[32];

    (void)state;
    assert_int_equal(kasa_replay_open(ctx, NULL, 600, &r), 0);
    /* 40 digests that share their first 8 bytes (one bucket), 32 slots around it. */
    for (unsigned i = 0; i < 40; i++) {
        memset(d, 0, 32);
        d[31] = (unsigned char)i;
        assert_int_equal(kasa_replay_check_local_at(ctx, r, d, 1000 + i), 0);
    }
    /* The last one is remembered; the first, the soonest to expire, was evicted. */
    memset(d, 0, 32);
    d[31] = 39;
    assert_int_equal(kasa_replay_check_local_at(ctx, r, d, 1100), KASA_ERR_REPLAY);
    d[31] = 0;
    assert_int_equal(kasa_replay_check_local_at(ctx, r, d, 1100), 0);
    /* Many more than the table holds: no failure, memory stays what it was. */
    for (unsigned i = 0; i < 3 * KASA_REPLAY_LOCAL_MAX; i++) {
        digest_of(i + 100, d);
        assert_int_equal(kasa_replay_check_local_at(ctx, r, d, 2000), 0);
    }
    kasa_replay_close(r);
}

static void specs(void **state)
{
    static const char *const bad[] = {
        "memcache://h:1", "redis://",     "redis://:pw@", "redis://h:0", "redis://h:99999",
        "redis://h:12x",  "redis://pw@h", "redis://:@h",  "redis:/h",    "",
        "redis://h/db"};
    kasa_replay *r = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kasa_replay_open(ctx, bad[i], 600, &r), KASA_ERR_CONFIG);
        assert_null(r);
    }
    assert_int_equal(kasa_replay_open(ctx, "redis://:secret@127.0.0.1:6380", 600, &r), 0);
    assert_true(kasa_replay_shared(r));
    kasa_replay_close(r);
    assert_int_equal(kasa_replay_open(ctx, "redis://localhost", 600, &r), 0);
    kasa_replay_close(r);
}

static void an_unreachable_redis_is_a_store_error(void **state)
{
    kasa_replay *r = NULL;
    unsigned char d[32];

    (void)state;
    /* Port 1 on loopback: refused at once. */
    assert_int_equal(kasa_replay_open(ctx, "redis://127.0.0.1:1", 600, &r), 0);
    digest_of(7, d);
    assert_int_equal(kasa_replay_check(ctx, r, d), KASA_ERR_REPLAY_STORE);
    assert_non_null(strstr(kasa_error(ctx), "127.0.0.1:1"));
    /* Within the retry window nothing connects: each check fails at once, saying so. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(kasa_replay_check(ctx, r, d), KASA_ERR_REPLAY_STORE);
    assert_non_null(strstr(kasa_error(ctx), "not retried yet after a failure"));
    /* The local check still works on a shared cache. */
    assert_int_equal(kasa_replay_check_local(ctx, r, d), 0);
    assert_int_equal(kasa_replay_check_local(ctx, r, d), KASA_ERR_REPLAY);
    kasa_replay_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_then_replay_then_expired),
        cmocka_unit_test(a_full_bucket_evicts_the_soonest_to_expire),
        cmocka_unit_test(specs),
        cmocka_unit_test(an_unreachable_redis_is_a_store_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
