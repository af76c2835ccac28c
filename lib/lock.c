/*
 * The roll lock: see lock.h. The record's attributes are written right after it is
 * created; a reader that meets a lock without them sees one being taken this instant and
 * treats it as held.
 */
#include "lock.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "private.h"

#define RECORD "lock"

void kasa_lock_clear(kasa_lock *lock)
{
    free(lock->owner);
    free(lock->operation);
    memset(lock, 0, sizeof(*lock));
}

long kasa_lock_get(kasa_dir *dir, const char *fqdn, kasa_lock *out)
{
    kasa_attr *attrs = NULL;
    size_t n = 0;
    long ret;

    memset(out, 0, sizeof(*out));
    ret = dir->ops->record_get(dir, RECORD, fqdn, &attrs, &n);
    if (ret)
        return ret;
    for (size_t i = 0; i < n; i++) {
        const char *k = attrs[i].key, *v = attrs[i].value;
        if (strcmp(k, "kasa.owner") == 0)
            out->owner = strdup(v);
        else if (strcmp(k, "kasa.operation") == 0)
            out->operation = strdup(v);
        else if (strcmp(k, "kasa.taken") == 0)
            out->taken = strtoll(v, NULL, 10);
        else if (strcmp(k, "kasa.expires") == 0)
            out->expires = strtoll(v, NULL, 10);
    }
    kasa_attrs_free(attrs, n);
    if (out->owner == NULL)
        out->owner = strdup("a host taking it now");
    if (out->operation == NULL)
        out->operation = strdup("roll");
    return 0;
}

static char *me(void)
{
    char host[256] = "?", *s = NULL;

    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    if (asprintf(&s, "%s pid %d", host, (int)getpid()) < 0)
        s = NULL;
    return s;
}

/* Whether the lock's holder is a process of this host that no longer runs: a controller
 * killed here need not wait for the lock to expire. */
static bool holder_gone(const kasa_lock *held)
{
    char host[256] = "", mine[300];
    int pid = 0;

    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    snprintf(mine, sizeof(mine), "%s pid ", host);
    if (strncmp(held->owner, mine, strlen(mine)) != 0)
        return false;
    pid = atoi(held->owner + strlen(mine));
    return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

bool kasa_lock_live(const kasa_lock *lock)
{
    return (lock->expires == 0 || lock->expires > (int64_t)time(NULL)) && !holder_gone(lock);
}

static const char *utc(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static long write_lock(kasa_dir *dir, const char *fqdn, const char *operation, int64_t ttl)
{
    char taken[32], expires[32], *owner = me();
    int64_t now = (int64_t)time(NULL);
    long ret;

    snprintf(taken, sizeof(taken), "%lld", (long long)now);
    snprintf(expires, sizeof(expires), "%lld", (long long)(now + ttl));
    ret = owner == NULL ? kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL)
                        : dir->ops->record_set(dir, RECORD, fqdn, "kasa.owner", owner);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, fqdn, "kasa.operation", operation);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, fqdn, "kasa.taken", taken);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, fqdn, "kasa.expires", expires);
    free(owner);
    if (ret)
        (void)dir->ops->record_delete(dir, RECORD, fqdn);
    return ret;
}

long kasa_lock_take(kasa_dir *dir, const char *fqdn, const char *operation, int64_t ttl,
                    bool take_expired)
{
    kasa_lock held;
    char when[32], until[32];
    long ret;

    ret = dir->ops->record_create(dir, RECORD, fqdn);
    if (ret == 0)
        return write_lock(dir, fqdn, operation, ttl);
    if (ret != KASA_ERR_ARRAY_EXISTS)
        return ret;
    /* Held: by whom, and is its time up? */
    ret = kasa_lock_get(dir, fqdn, &held);
    if (ret == KASA_ERR_ARRAY_NOT_FOUND) /* released meanwhile: try once more */
        return kasa_lock_take(dir, fqdn, operation, ttl, false);
    if (ret)
        return ret;
    if (kasa_lock_live(&held)) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_BUSY,
                             "a %s of %s is running on %s since %s; wait for it to end",
                             held.operation, fqdn, held.owner, utc(held.taken, when, sizeof(when)));
    } else if (!take_expired) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_BUSY,
                             "a %s of %s on %s since %s stopped before it ended (its lock expired "
                             "at %s, or its process is gone); finish it with kasa roll --resume %s",
                             held.operation, fqdn, held.owner, utc(held.taken, when, sizeof(when)),
                             utc(held.expires, until, sizeof(until)), fqdn);
    } else {
        /* Take it over: delete and create again; if another resumer won the create,
         * it holds the lock and this run says so. */
        kasa_warn(dir->ctx, "taking over the lock of %s left by %s (expired at %s)", fqdn,
                  held.owner, utc(held.expires, until, sizeof(until)));
        (void)dir->ops->record_delete(dir, RECORD, fqdn);
        ret = dir->ops->record_create(dir, RECORD, fqdn);
        if (ret == KASA_ERR_ARRAY_EXISTS)
            ret = kasa_set_error(dir->ctx, KASA_ERR_BUSY,
                                 "another run took over the lock of %s first", fqdn);
        else if (ret == 0)
            ret = write_lock(dir, fqdn, operation, ttl);
    }
    kasa_lock_clear(&held);
    return ret;
}

void kasa_lock_release(kasa_dir *dir, const char *fqdn)
{
    kasa_lock held;
    char *mine = me();

    /* Not someone else's that took over an expired one of ours. */
    if (kasa_lock_get(dir, fqdn, &held) == 0) {
        if (mine != NULL && strcmp(held.owner, mine) == 0)
            (void)dir->ops->record_delete(dir, RECORD, fqdn);
        kasa_lock_clear(&held);
    }
    free(mine);
}
