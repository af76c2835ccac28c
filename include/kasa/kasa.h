/*
 * libkasa: Kerberos for a load-balanced array of servers.
 *
 * Every call takes a context. Functions return 0 or a com_err code (kasa_err.h, or a
 * krb5/kadm5 code); kasa_error() then gives the one-line sentence that says what went
 * wrong and what to do. The layout of the context is private.
 */
#ifndef KASA_KASA_H
#define KASA_KASA_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "kasa/kasa_err.h"

#if defined(__GNUC__)
#define KASA_API __attribute__((visibility("default")))
#define KASA_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KASA_API
#define KASA_PRINTF(f, a)
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kasa_ctx kasa_ctx;

/* Receives warnings: things that worked but that the administrator should know. */
typedef void (*kasa_warn_fn)(void *data, const char *message);

/* Make a context; on failure returns an errno value and *ctx_out is NULL. */
KASA_API int kasa_ctx_new(kasa_ctx **ctx_out);
KASA_API void kasa_ctx_free(kasa_ctx *ctx);

/* The sentence describing the last error set on ctx ("" when none). */
KASA_API const char *kasa_error(kasa_ctx *ctx);

/* Set the last error: the detail sentence is formatted; code is returned for chaining. */
KASA_API long kasa_set_error(kasa_ctx *ctx, long code, const char *fmt, ...) KASA_PRINTF(3, 4);

/* Where warnings go (default: nowhere). */
KASA_API void kasa_set_warn_fn(kasa_ctx *ctx, kasa_warn_fn fn, void *data);

/* Emit a warning through the context's handler. */
KASA_API void kasa_warn(kasa_ctx *ctx, const char *fmt, ...) KASA_PRINTF(2, 3);

/* The exit status a command should return for code: 0 ok, 2 bad input, 1 otherwise. */
KASA_API int kasa_exit_status(long code);

/* Wipe a secret; the compiler may not drop it. */
KASA_API void kasa_zap(void *p, size_t len);

/* One log line for a daemon: "2026-11-24T20:00:00Z who[pid]: message", flushed. */
KASA_API void kasa_log_line(FILE *f, const char *who, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* The same at a syslog level (KASA_LOG_*): to the journal (when f is the stream systemd's
 * $JOURNAL_STREAM names) as "<LEVEL>message", with no time or name, which it adds. */
#define KASA_LOG_ERR 3
#define KASA_LOG_WARNING 4
#define KASA_LOG_INFO 6
KASA_API void kasa_log_line_at(FILE *f, const char *who, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* The library's version string. */
KASA_API const char *kasa_version(void);

/* Tell a service manager how the daemon stands ("READY=1", "STOPPING=1"): sd_notify(3)'s
 * protocol, one datagram to $NOTIFY_SOCKET; nothing when it is not set. */
KASA_API void kasa_notify(const char *state);

#ifdef __cplusplus
}
#endif

#endif
