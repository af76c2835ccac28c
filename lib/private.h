/*
 * What libkasa's modules share and callers never see: the context's layout and the
 * helpers that set errors from krb5 codes.
 */
#ifndef KASA_PRIVATE_H
#define KASA_PRIVATE_H

#include <krb5/krb5.h>

#include "kasa/kasa.h"

struct kasa_ctx {
    char *msg; /* the last error's sentence, or NULL */
    kasa_warn_fn warn;
    void *warn_data;
    krb5_context kctx; /* made on first use */
};

/* The context's krb5 context, made on first use. */
long kasa_krb5(kasa_ctx *ctx, krb5_context *out);

/*
 * Set the last error to code with a detail sentence that ends in krb5's own message for
 * kcode ("...: Cannot contact any KDC for realm 'X'"). Returns code.
 */
long kasa_set_krb5_error(kasa_ctx *ctx, long code, krb5_context kctx, long kcode, const char *fmt,
                         ...) KASA_PRINTF(5, 6);

/* Write a reason phrase into why (when why_len > 0) and return code: for the pure
 * checkers, which report through a buffer rather than a context. */
long kasa_reason(long code, char *why, size_t why_len, const char *fmt, ...) KASA_PRINTF(4, 5);

/* For the end-to-end tests only: die with SIGKILL at the named point of a roll when
 * $KASA_TEST_KILL_AT names it, to show that an interrupted roll can always be resumed;
 * wait there 1.5 s when $KASA_TEST_HOLD_AT names it, so two runs meet, or, when
 * $KASA_TEST_HOLD_FILE names a file, as long as that file exists (at most 60 s), so a test
 * can act behind the roll's back at that point. */
void kasa_test_point(const char *point);

#endif
