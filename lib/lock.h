/*
 * One roll at a time per array, across admin hosts: a lock kept in the directory as a
 * record of its own, which the directory creates only once (kadmind refuses a second
 * principal of the same name), so taking it is one atomic step, not a read and a write.
 * It names its owner (host and pid), the operation and when it was taken, and expires
 * after [array] lock_timeout, so a controller that died does not block the array for
 * ever: `kasa roll --resume` takes an expired lock over, or at once one whose holder was a
 * process of this host that is gone.
 */
#ifndef KASA_LOCK_H
#define KASA_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "directory.h"

typedef struct kasa_lock {
    char *owner;     /* "HOST pid PID" */
    char *operation; /* roll, copy, ... */
    int64_t taken;
    int64_t expires;
} kasa_lock;

void kasa_lock_clear(kasa_lock *lock);

/* The lock on fqdn, if any (KASA_ERR_ARRAY_NOT_FOUND when none). */
long kasa_lock_get(kasa_dir *dir, const char *fqdn, kasa_lock *out);

/*
 * Take the lock on fqdn for operation, valid ttl seconds. When another holds it:
 * KASA_ERR_BUSY with "a roll of FQDN is running on HOST since TIME"; when its holder's
 * time is up, it is taken over only with take_expired, else KASA_ERR_BUSY saying to
 * resume.
 */
long kasa_lock_take(kasa_dir *dir, const char *fqdn, const char *operation, int64_t ttl,
                    bool take_expired);

/* Whether its holder may still be at work: not expired, and not a process of this host
 * that is gone. */
bool kasa_lock_live(const kasa_lock *lock);

/* Give the lock back (only if it is still ours). */
void kasa_lock_release(kasa_dir *dir, const char *fqdn);

#endif
