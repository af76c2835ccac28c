/*
 * The library context: the last error's sentence, where warnings go, and the krb5
 * context every module shares. One sentence per error, set where the error is found.
 */
#include "private.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <com_err.h>

#include "kasa/kasa_err.h"

int kasa_ctx_new(kasa_ctx **ctx_out)
{
    kasa_ctx *ctx;

    *ctx_out = NULL;
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return ENOMEM;
    initialize_kasa_error_table();
    *ctx_out = ctx;
    return 0;
}

void kasa_ctx_free(kasa_ctx *ctx)
{
    if (ctx == NULL)
        return;
    if (ctx->kctx != NULL)
        krb5_free_context(ctx->kctx);
    free(ctx->msg);
    free(ctx);
}

const char *kasa_error(kasa_ctx *ctx)
{
    return ctx->msg != NULL ? ctx->msg : "";
}

/* Replace the message with fmt/ap, plus ": tail" when tail is not NULL. */
static void set_message(kasa_ctx *ctx, long code, const char *tail, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void set_message(kasa_ctx *ctx, long code, const char *tail, const char *fmt, va_list ap)
{
    char *detail = NULL, *msg = NULL;

    if (fmt != NULL && vasprintf(&detail, fmt, ap) < 0)
        detail = NULL;
    if (detail == NULL)
        detail = strdup(error_message(code));
    if (detail != NULL && tail != NULL) {
        if (asprintf(&msg, "%s: %s", detail, tail) < 0)
            msg = NULL;
        free(detail);
    } else {
        msg = detail;
    }
    free(ctx->msg);
    ctx->msg = msg;
}

long kasa_set_error(kasa_ctx *ctx, long code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_message(ctx, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

long kasa_set_krb5_error(kasa_ctx *ctx, long code, krb5_context kctx, long kcode, const char *fmt,
                         ...)
{
    const char *kmsg;
    va_list ap;

    kmsg = krb5_get_error_message(kctx, (krb5_error_code)kcode);
    va_start(ap, fmt);
    set_message(ctx, code, kmsg, fmt, ap);
    va_end(ap);
    krb5_free_error_message(kctx, kmsg);
    return code;
}

void kasa_set_warn_fn(kasa_ctx *ctx, kasa_warn_fn fn, void *data)
{
    ctx->warn = fn;
    ctx->warn_data = data;
}

void kasa_warn(kasa_ctx *ctx, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;

    if (ctx->warn == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (msg != NULL)
        ctx->warn(ctx->warn_data, msg);
    free(msg);
}

int kasa_exit_status(long code)
{
    if (code == 0)
        return 0;
    if (code == KASA_ERR_USAGE || code == KASA_ERR_SPN_INVALID ||
        code == KASA_ERR_ACCOUNT_INVALID || code == KASA_ERR_ARRAY_INVALID)
        return 2;
    if (code == KASA_ERR_ROLL)
        return 3; /* a member failed: kasa roll's own status */
    return 1;
}

long kasa_krb5(kasa_ctx *ctx, krb5_context *out)
{
    krb5_error_code ret;

    if (ctx->kctx == NULL) {
        ret = krb5_init_context(&ctx->kctx);
        if (ret) {
            ctx->kctx = NULL;
            return kasa_set_error(ctx, KASA_ERR_CONFIG,
                                  "cannot read the Kerberos configuration: %s", error_message(ret));
        }
    }
    *out = ctx->kctx;
    return 0;
}

void kasa_test_point(const char *point)
{
    const char *at = getenv("KASA_TEST_KILL_AT"), *hold = getenv("KASA_TEST_HOLD_AT");

    if (at != NULL && strcmp(at, point) == 0)
        raise(SIGKILL);
    /* Stay a moment at point, so a test can make another run meet this one there; with
     * $KASA_TEST_HOLD_FILE, until the test removes that file (at most a minute). */
    if (hold != NULL && strcmp(hold, point) == 0) {
        const char *file = getenv("KASA_TEST_HOLD_FILE");
        if (file == NULL) {
            nanosleep(&(struct timespec){1, 500000000}, NULL);
            return;
        }
        for (int i = 0; i < 1200 && access(file, F_OK) == 0; i++)
            nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
}

long kasa_reason(long code, char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && why_len > 0) {
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

void kasa_zap(void *p, size_t len)
{
    if (p != NULL && len > 0)
        explicit_bzero(p, len);
}

/* Whether f is the journal's stream: systemd sets $JOURNAL_STREAM to the device and inode
 * of the stderr it gives a service (systemd.exec(5)). */
static bool to_journal(FILE *f)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    return js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(fileno(f), &st) == 0 &&
           (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void kasa_log_line(FILE *f, const char *who, const char *fmt, va_list ap)
{
    kasa_log_line_at(f, who, KASA_LOG_INFO, fmt, ap);
}

void kasa_log_line_at(FILE *f, const char *who, int level, const char *fmt, va_list ap)
{
    char when[32];
    time_t t = time(NULL);
    struct tm tm;

    if (to_journal(f)) {
        /* The journal stamps the time and the identifier itself, and reads the level
         * from a "<N>" prefix (sd-daemon(3)). */
        fprintf(f, "<%d>", level);
        vfprintf(f, fmt, ap);
        fputc('\n', f);
        fflush(f);
        return;
    }
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(f, "%s %s[%d]: ", when, who, (int)getpid());
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
}

const char *kasa_version(void)
{
    return KASA_VERSION;
}
