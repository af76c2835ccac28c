/*
 * One roll at a time per array, across admin hosts: a lock kept in the directory as a
 * record of its own, written whole under a name of the taker's own and then renamed to
 * kasa-lock/FQDN, which the directory does only when no such record exists (kadmind and
 * an AD DC both refuse a rename onto an existing name), so taking it is one atomic step,
 * not a read and a write, and a lock is never seen half written. It names its owner (host
 * and pid), the operation and when it was taken, and expires after [array] lock_timeout,
 * so a controller that died does not block the array for ever: `kasa roll --resume` takes
 * an expired lock over (again by one rename, which only one of two resumers can do), or at
 * once one whose holder was a process of this host that is gone.
 */
#ifndef KASA_LOCK_H
#define KASA_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "directory.h"

typedef struct kasa_lock {
    char *owner;     /* "HOST pid PID" */
    char *operation; /* roll, copy, ... */
    char *id;        /* its own token, NULL for a lock kasa before 0.9 wrote */
    int64_t taken;
    int64_t expires;    /* 0: none recorded (not live) */
    int64_t gone;       /* when it was moved aside by a takeover, or 0 */
    unsigned from_kvno; /* a roll's: the ASA's kvno when it began, 0 if not yet noted */
    int64_t resumed;    /* moved aside: when a resume took its roll on, or 0 */
    char *record;       /* the record it was read from (FQDN, or FQDN/gone-ID once aside) */
} kasa_lock;

void kasa_lock_clear(kasa_lock *lock);

/* The lock on fqdn, if any (KASA_ERR_ARRAY_NOT_FOUND when none). */
long kasa_lock_get(kasa_dir *dir, const char *fqdn, kasa_lock *out);

/*
 * Take the lock on fqdn for operation, valid ttl seconds. When another holds it:
 * KASA_ERR_BUSY with "a roll of FQDN is running on HOST since TIME"; when its holder's
 * time is up, it is taken over only with take_expired, else KASA_ERR_BUSY saying to
 * resume. taken_over (may be NULL) receives the lock taken over, if any (owner NULL when
 * the lock was free); clear it with kasa_lock_clear.
 */
long kasa_lock_take(kasa_dir *dir, const char *fqdn, const char *operation, int64_t ttl,
                    bool take_expired, kasa_lock *taken_over);

/* The newest of fqdn's locks that a takeover moved aside in the last hour and no resume
 * has taken on yet (owner NULL when none): a roll that died holding it. */
long kasa_lock_last_gone(kasa_dir *dir, const char *fqdn, kasa_lock *out);

/* Note on a lock moved aside that a resume has taken its roll on, so no later resume
 * takes it on again. */
long kasa_lock_mark_resumed(kasa_dir *dir, const kasa_lock *dead);

/* Whether the lock on fqdn is still this process's (not taken over meanwhile). */
bool kasa_lock_mine(kasa_dir *dir, const char *fqdn);

/* Whether its holder may still be at work: not expired, and not a process of this host
 * that is gone. */
bool kasa_lock_live(const kasa_lock *lock);

/* Note on the lock the kvno a roll starts from: a resume that takes the lock over can tell
 * whether that roll committed anything. */
long kasa_lock_note_kvno(kasa_dir *dir, const char *fqdn, unsigned kvno);

/* Give the lock back (only if it is still ours). */
void kasa_lock_release(kasa_dir *dir, const char *fqdn);

#endif
