/*
 * The roll lock: see lock.h.
 *
 * A lock is written whole before it is taken: the record is made under a name of this
 * run's own (kasa-lock/FQDN/TOKEN), its owner, operation and times are set there, and
 * one rename to kasa-lock/FQDN takes the lock. The directory refuses a rename onto a
 * name that exists, so of two runs exactly one takes it, and nobody ever reads a lock
 * without its owner or expiry (a controller killed between the create and the rename
 * leaves only its own record, which the next holder removes).
 *
 * Taking over an expired lock is also one rename: the lock is moved aside to
 * FQDN/gone-ID, ID being that lock's own token, which only one run can do; the mover
 * then renames its own record into place. A second run that read the same expired lock
 * finds the aside name taken and is told that another run took over first, or, if it
 * comes later, finds the new holder's live lock. The records moved aside are kept an
 * hour, longer than any such race, and then removed by the next run to take the lock.
 */
#include "lock.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "private.h"

#define RECORD "lock"
#define GONE_KEEP_SECONDS 3600 /* how long a lock moved aside is kept */
#define TAKE_TRIES 4

void kasa_lock_clear(kasa_lock *lock)
{
    free(lock->owner);
    free(lock->operation);
    free(lock->id);
    free(lock->record);
    memset(lock, 0, sizeof(*lock));
}

static long lock_read(kasa_dir *dir, const char *name, kasa_lock *out)
{
    kasa_attr *attrs = NULL;
    size_t n = 0;
    long ret;

    memset(out, 0, sizeof(*out));
    ret = dir->ops->record_get(dir, RECORD, name, &attrs, &n);
    if (ret)
        return ret;
    for (size_t i = 0; i < n; i++) {
        const char *k = attrs[i].key, *v = attrs[i].value;
        if (strcmp(k, "kasa.owner") == 0 && out->owner == NULL)
            out->owner = strdup(v);
        else if (strcmp(k, "kasa.operation") == 0 && out->operation == NULL)
            out->operation = strdup(v);
        else if (strcmp(k, "kasa.id") == 0 && out->id == NULL)
            out->id = strdup(v);
        else if (strcmp(k, "kasa.taken") == 0)
            out->taken = strtoll(v, NULL, 10);
        else if (strcmp(k, "kasa.expires") == 0)
            out->expires = strtoll(v, NULL, 10);
        else if (strcmp(k, "kasa.gone") == 0)
            out->gone = strtoll(v, NULL, 10);
        else if (strcmp(k, "kasa.from_kvno") == 0)
            out->from_kvno = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(k, "kasa.resumed") == 0)
            out->resumed = strtoll(v, NULL, 10);
    }
    kasa_attrs_free(attrs, n);
    out->record = strdup(name);
    /* A lock kasa before 0.9 wrote field by field, cut short: nobody known, no expiry. */
    if (out->owner == NULL)
        out->owner = strdup("an unknown host");
    if (out->operation == NULL)
        out->operation = strdup("roll");
    if (out->owner == NULL || out->operation == NULL || out->record == NULL) {
        kasa_lock_clear(out);
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    return 0;
}

long kasa_lock_get(kasa_dir *dir, const char *fqdn, kasa_lock *out)
{
    return lock_read(dir, fqdn, out);
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
    return lock->expires > (int64_t)time(NULL) && !holder_gone(lock);
}

static const char *utc(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* Why a lock that is not live stopped counting, in words. */
static const char *why_not_live(const kasa_lock *held, char *buf, size_t len)
{
    char when[32];

    if (held->expires == 0)
        snprintf(buf, len, "its lock has no expiry");
    else if (holder_gone(held))
        snprintf(buf, len, "its process is gone");
    else
        snprintf(buf, len, "its lock expired at %s", utc(held->expires, when, sizeof(when)));
    return buf;
}

/* Make this run's lock whole under FQDN/TOKEN; its name into name. */
static long write_candidate(kasa_dir *dir, const char *fqdn, const char *operation, int64_t ttl,
                            char *name, size_t len)
{
    unsigned char rnd[5];
    char id[16], taken[32], expires[32], *owner = NULL;
    int64_t now = (int64_t)time(NULL);
    long ret;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return kasa_set_error(dir->ctx, KASA_ERR_INTERNAL, "cannot read random bytes: %s",
                              strerror(errno));
    snprintf(id, sizeof(id), "%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4]);
    snprintf(name, len, "%s/%s", fqdn, id);
    snprintf(taken, sizeof(taken), "%lld", (long long)now);
    snprintf(expires, sizeof(expires), "%lld", (long long)(now + ttl));
    owner = me();
    if (owner == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    /* The expiry first: tidy() leaves a candidate without one alone (being written). */
    ret = dir->ops->record_create(dir, RECORD, name);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, name, "kasa.expires", expires);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, name, "kasa.owner", owner);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, name, "kasa.operation", operation);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, name, "kasa.id", id);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, name, "kasa.taken", taken);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, name, "kasa.array", fqdn);
    if (ret && ret != KASA_ERR_ARRAY_EXISTS) {
        char *why = strdup(kasa_error(dir->ctx));
        (void)dir->ops->record_delete(dir, RECORD, name);
        if (why != NULL && ret == KASA_ERR_DIR_DENIED)
            /* A realm set up for kasa before 0.9 gave it kasa-lock/FQDN alone. */
            kasa_set_error(dir->ctx, ret,
                           "%s (the roll lock is written as kasa-lock/%s/ID first: kadmind's ACL "
                           "must give kasa admi on kasa-lock/%s/* too; see kasa(1))",
                           why, fqdn, fqdn);
        else if (why != NULL)
            kasa_set_error(dir->ctx, ret, "%s", why);
        free(why);
    }
    free(owner);
    return ret;
}

/* Walk the records of fqdn's lock other than the lock itself: candidates (FQDN/ID) and
 * locks moved aside (FQDN/gone-ID); fn sees each, read. */
static long each_other(kasa_dir *dir, const char *fqdn,
                       void (*fn)(kasa_dir *dir, const char *name, bool gone, kasa_lock *l,
                                  void *arg),
                       void *arg)
{
    char **names = NULL;
    size_t n = 0, flen = strlen(fqdn);
    long ret;

    ret = dir->ops->record_list(dir, RECORD, &names, &n);
    if (ret)
        return ret;
    for (size_t i = 0; i < n; i++) {
        kasa_lock l;

        if (strncmp(names[i], fqdn, flen) != 0 || names[i][flen] != '/' ||
            lock_read(dir, names[i], &l) != 0)
            continue;
        fn(dir, names[i], strncmp(names[i] + flen + 1, "gone-", 5) == 0, &l, arg);
        kasa_lock_clear(&l);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return 0;
}

/* Remove candidates whose run died before its rename (expired), and locks moved aside more
 * than an hour ago. */
static void tidy_one(kasa_dir *dir, const char *name, bool gone, kasa_lock *l, void *arg)
{
    int64_t now = (int64_t)time(NULL);
    /* An aside whose mover died before it noted when: its lock's own expiry will do. */
    int64_t since = gone ? (l->gone != 0 ? l->gone : l->expires) : 0;
    bool stale =
        gone ? since != 0 && since + GONE_KEEP_SECONDS < now : l->expires != 0 && l->expires < now;

    (void)arg;
    if (stale)
        (void)dir->ops->record_delete(dir, RECORD, name);
}

static void newest_gone(kasa_dir *dir, const char *name, bool gone, kasa_lock *l, void *arg)
{
    kasa_lock *best = arg;

    (void)dir;
    (void)name;
    if (gone && (best->owner == NULL || l->taken > best->taken)) {
        kasa_lock_clear(best);
        *best = *l;
        memset(l, 0, sizeof(*l));
    }
}

long kasa_lock_last_gone(kasa_dir *dir, const char *fqdn, kasa_lock *out)
{
    long ret;

    memset(out, 0, sizeof(*out));
    ret = each_other(dir, fqdn, newest_gone, out);
    /* Only the newest counts: an older one was the roll some later lock took over. */
    if (!ret && out->resumed != 0)
        kasa_lock_clear(out);
    return ret;
}

/* Move the expired lock held aside, as only one run can. 0: moved; KASA_ERR_BUSY: another
 * run moved it first; KASA_ERR_ARRAY_NOT_FOUND: it is gone already. */
static long move_aside(kasa_dir *dir, const char *fqdn, kasa_lock *held)
{
    char aside[1100], now[32], why[96];
    long ret;

    if (held->id != NULL)
        snprintf(aside, sizeof(aside), "%s/gone-%s", fqdn, held->id);
    else /* an older kasa's lock: its time will do */
        snprintf(aside, sizeof(aside), "%s/gone-t%lld", fqdn, (long long)held->taken);
    ret = dir->ops->record_rename(dir, RECORD, fqdn, aside);
    if (ret == KASA_ERR_ARRAY_EXISTS)
        return kasa_set_error(dir->ctx, KASA_ERR_BUSY, "another run took over the lock of %s first",
                              fqdn);
    if (ret)
        return ret;
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    (void)dir->ops->record_set(dir, RECORD, aside, "kasa.gone", now);
    free(held->record);
    held->record = strdup(aside);
    kasa_warn(dir->ctx, "took over the lock of %s left by %s (%s)", fqdn, held->owner,
              why_not_live(held, why, sizeof(why)));
    return 0;
}

long kasa_lock_take(kasa_dir *dir, const char *fqdn, const char *operation, int64_t ttl,
                    bool take_expired, kasa_lock *taken_over)
{
    char mine[1100], when[32], why[96];
    long ret;

    if (taken_over != NULL)
        memset(taken_over, 0, sizeof(*taken_over));
    ret = write_candidate(dir, fqdn, operation, ttl, mine, sizeof(mine));
    if (ret)
        return ret;
    for (int tries = 0; tries < TAKE_TRIES; tries++) {
        kasa_lock held;

        ret = dir->ops->record_rename(dir, RECORD, mine, fqdn);
        if (ret == 0) {
            (void)each_other(dir, fqdn, tidy_one, NULL);
            return 0;
        }
        if (ret != KASA_ERR_ARRAY_EXISTS)
            break;
        /* Held: by whom, and is its time up? */
        ret = lock_read(dir, fqdn, &held);
        if (ret == KASA_ERR_ARRAY_NOT_FOUND) /* released meanwhile: try again */
            continue;
        if (ret)
            break;
        if (kasa_lock_live(&held)) {
            ret = kasa_set_error(
                dir->ctx, KASA_ERR_BUSY, "a %s of %s is running on %s since %s; wait for it to end",
                held.operation, fqdn, held.owner, utc(held.taken, when, sizeof(when)));
        } else if (!take_expired) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_BUSY,
                                 "a %s of %s on %s since %s stopped before it ended (%s); "
                                 "finish it with kasa roll --resume %s",
                                 held.operation, fqdn, held.owner,
                                 utc(held.taken, when, sizeof(when)),
                                 why_not_live(&held, why, sizeof(why)), fqdn);
        } else {
            ret = move_aside(dir, fqdn, &held);
            if (ret == KASA_ERR_ARRAY_NOT_FOUND)
                ret = 0;
            if (ret == 0 && taken_over != NULL && taken_over->owner == NULL) {
                *taken_over = held;
                memset(&held, 0, sizeof(held));
            }
        }
        kasa_lock_clear(&held);
        if (ret)
            break;
    }
    /* Still taken at the last try, released each time before it could be read, or moved
     * aside at the last try with no try left to take it: not held, whatever ret says. */
    if (ret == 0 || ret == KASA_ERR_ARRAY_EXISTS || ret == KASA_ERR_ARRAY_NOT_FOUND)
        ret = kasa_set_error(dir->ctx, KASA_ERR_BUSY,
                             "the lock of %s changed hands %d times while this run tried to "
                             "take it; try again",
                             fqdn, TAKE_TRIES);
    {
        char *keep = strdup(kasa_error(dir->ctx));
        (void)dir->ops->record_delete(dir, RECORD, mine);
        if (keep != NULL)
            kasa_set_error(dir->ctx, ret, "%s", keep);
        free(keep);
    }
    if (taken_over != NULL)
        kasa_lock_clear(taken_over);
    return ret;
}

bool kasa_lock_mine(kasa_dir *dir, const char *fqdn)
{
    kasa_lock held;
    char *mine = me();
    bool yes = false;

    if (mine != NULL && lock_read(dir, fqdn, &held) == 0) {
        yes = strcmp(held.owner, mine) == 0;
        kasa_lock_clear(&held);
    }
    free(mine);
    return yes;
}

long kasa_lock_mark_resumed(kasa_dir *dir, const kasa_lock *dead)
{
    char v[32];

    if (dead->record == NULL)
        return 0;
    snprintf(v, sizeof(v), "%lld", (long long)time(NULL));
    return dir->ops->record_set(dir, RECORD, dead->record, "kasa.resumed", v);
}

long kasa_lock_note_kvno(kasa_dir *dir, const char *fqdn, unsigned kvno)
{
    char v[16];

    snprintf(v, sizeof(v), "%u", kvno);
    return dir->ops->record_set(dir, RECORD, fqdn, "kasa.from_kvno", v);
}

void kasa_lock_release(kasa_dir *dir, const char *fqdn)
{
    /* Not someone else's that took over an expired one of ours. */
    if (kasa_lock_mine(dir, fqdn))
        (void)dir->ops->record_delete(dir, RECORD, fqdn);
}
