/*
 * The roll, copy and status: the heart of kasa (PRODUCT.md, "The roll").
 *
 * roll: plan (the ASA, its SPNs, its kvno N, the members), generate fresh keys for N+1,
 * stage them on every target member in parallel (each proves it holds them), and only
 * if every one staged, commit N+1 in the directory; then tell the members, which retire
 * what no ticket can still need. A roll interrupted anywhere is finished by resume,
 * which takes the staged keys back from a member: no key touches the controller's disk.
 */
#ifndef KASA_ROLL_H
#define KASA_ROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kasa/array.h"
#include "kasa/config.h"
#include "kasa/directory.h"
#include "kasa/kasa.h"
#include "kasa/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KASA_KEEP_SECONDS_DEFAULT (10 * 3600 + 5 * 60) /* ticket lifetime + clock skew */

/* Told about each step for each member as it happens (kasa roll -v). Called from
 * several threads, never at once. */
typedef void (*kasa_progress_fn)(void *data, const char *member, const char *step,
                                 const char *detail);

typedef struct kasa_roll_opts {
    const char *const *members; /* NULL: every member of the array */
    size_t n_members;
    bool dry_run;
    bool force;
    bool resume;
    int timeout_ms;        /* per member; 0: 10 s */
    uint32_t keep_seconds; /* 0: KASA_KEEP_SECONDS_DEFAULT */
    kasa_progress_fn progress;
    void *progress_data;
} kasa_roll_opts;

/* One member's outcome. */
typedef struct kasa_member_result {
    char *host;
    long code;     /* 0: done */
    char *message; /* why not, when code != 0 */
} kasa_member_result;

typedef struct kasa_roll_result {
    unsigned from_kvno, to_kvno;
    bool committed;
    size_t n;
    kasa_member_result *members;
} kasa_roll_result;

KASA_API void kasa_roll_result_clear(kasa_roll_result *r);

/* Roll the array's keys. KASA_ERR_ROLL when a member failed and the directory was left
 * alone (the result says which and why). */
KASA_API long kasa_roll(kasa_dir *dir, const kasa_config *cfg, const char *fqdn,
                        const kasa_roll_opts *opts, kasa_roll_result *result);

/* Copy what from holds to each of to[], without touching the directory. Refused
 * (KASA_ERR_FOREIGN, naming them) when from holds a principal that is not the array's or a
 * kvno newer than the directory's, other than the roll in progress. */
KASA_API long kasa_copy(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, const char *from,
                        const char *const *to, size_t n_to, const kasa_roll_opts *opts,
                        kasa_roll_result *result);

typedef enum kasa_verdict {
    KASA_VERDICT_OK = 0,
    KASA_VERDICT_STALE,   /* does not hold the directory's kvno */
    KASA_VERDICT_MISSING, /* holds nothing for the array */
    KASA_VERDICT_UNREACHABLE,
    KASA_VERDICT_FOREIGN,   /* holds a principal or kvno the array does not own */
    KASA_VERDICT_WRONG_KEY, /* holds the directory's kvno, but not its key */
    KASA_VERDICT_UNCHECKED, /* answered, but the directory could not be asked to compare */
} kasa_verdict;

KASA_API const char *kasa_verdict_name(kasa_verdict v);

typedef struct kasa_member_status {
    char *host;
    int port;
    kasa_verdict verdict;
    char *error;      /* why unreachable */
    char *foreign;    /* what it holds that the array does not own; NULL: nothing */
    char *wrong_key;  /* which principal's key differs from the directory's, and how */
    kasa_reply reply; /* what it holds (sets, oldest first) */
} kasa_member_status;

typedef struct kasa_array_status {
    kasa_array *array;
    unsigned dir_kvno;
    bool dir_unreachable; /* the array came from the local cache; dir_kvno is 0 */
    char *dir_error;      /* why the directory could not be asked */
    /* A roll in progress or interrupted: a sentence with its stage, owner and the fix
     * ("kasa roll --resume ARRAY"); NULL when none. */
    char *roll_note;
    bool roll_interrupted; /* no live lock holds it: someone must resume it */
    /* The principals of the array (the ASA, its SPNs) at a kvno kasa did not commit
     * (keys changed behind its back), with the fix; NULL when none. */
    char *foreign_change;
    /* Why the keys were not compared (no credentials or ticket to make the check with);
     * NULL when they were. The verdicts then compare kvnos only. */
    char *keys_unchecked;
    int64_t keep_seconds;    /* how long a superseded kvno is kept after its successor */
    const char *keep_source; /* where keep_seconds came from, for people; NULL: unknown */
    size_t n;
    kasa_member_status *members;
} kasa_array_status;

KASA_API void kasa_array_status_clear(kasa_array_status *st);

/* Ask every member of the array, in parallel, what it holds. */
KASA_API long kasa_status(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, int timeout_ms,
                          kasa_array_status *st);

/* When the directory cannot be asked: the array as this host last read it, and what
 * each member says it holds (verdicts UNREACHABLE, MISSING or UNCHECKED); why is the
 * directory's error, for dir_error. */
KASA_API long kasa_status_cached(kasa_ctx *ctx, const kasa_config *cfg, const char *fqdn,
                                 const char *why, int timeout_ms, kasa_array_status *st);

/* One check of kasa verify: a ticket for spn, presented to member via kasad or HTTP. */
typedef struct kasa_verify_check {
    char *member;
    char *spn;
    const char *via; /* "kasad" or "http" */
    unsigned kvno;   /* of the ticket presented */
    bool accepted;
    char *reason; /* why not, in Kerberos's words */
} kasa_verify_check;

typedef struct kasa_verify_result {
    size_t n;
    kasa_verify_check *checks;
} kasa_verify_result;

KASA_API void kasa_verify_result_clear(kasa_verify_result *r);

/*
 * For every SPN of the array, get a service ticket as `as` (NULL: kasa's own principal
 * from its keytab; else a principal whose tickets are in the default credential cache)
 * and present it to every member directly: to kasad, which asks the array keytab, and to
 * the member's HTTP endpoint (HTTP SPNs, members with an http port). Returns 0 when the
 * checks could be made; look at each check's accepted.
 */
KASA_API long kasa_verify(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, const char *as,
                          int timeout_ms, kasa_verify_result *result);

/* A live Negotiate request for spn (SPN@REALM) to address:port as `as` (NULL: kasa's own
 * principal). *status is the HTTP status, -1 when nothing answered. Fails (with the
 * Kerberos reason) when no ticket can be had: a client would fall back to NTLM. */
KASA_API long kasa_http_probe(kasa_ctx *ctx, const kasa_config *cfg, const char *as,
                              const char *spn, const char *address, int port, int *status);

#ifdef __cplusplus
}
#endif

#endif
