/*
 * The roll, copy and status. Members are contacted in parallel, one thread each with
 * its own library context; the directory changes only after every target proved it
 * holds the new keys. Keys live in memory only and are wiped when freed.
 */
#include "kasa/roll.h"

#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <sys/random.h>
#include <time.h>

#include "directory.h"
#include "kasa/keytab.h"
#include "kasa/member.h"
#include "kasa/token.h"

#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include "lock.h"
#include "private.h"

static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;

static void progress(const kasa_roll_opts *o, const char *member, const char *step, const char *fmt,
                     ...) KASA_PRINTF(4, 5);

static void progress(const kasa_roll_opts *o, const char *member, const char *step, const char *fmt,
                     ...)
{
    char detail[512] = "";
    va_list ap;

    if (o == NULL || o->progress == NULL)
        return;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&progress_lock);
    o->progress(o->progress_data, member, step, detail);
    pthread_mutex_unlock(&progress_lock);
}

void kasa_roll_result_clear(kasa_roll_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->members[i].host);
        free(r->members[i].message);
    }
    free(r->members);
    memset(r, 0, sizeof(*r));
}

const char *kasa_verdict_name(kasa_verdict v)
{
    static const char *const names[] = {"OK",      "STALE",     "MISSING",  "UNREACHABLE",
                                        "FOREIGN", "WRONG-KEY", "UNCHECKED"};

    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}

void kasa_array_status_clear(kasa_array_status *st)
{
    for (size_t i = 0; i < st->n; i++) {
        free(st->members[i].host);
        free(st->members[i].error);
        free(st->members[i].foreign);
        free(st->members[i].wrong_key);
        kasa_reply_clear(&st->members[i].reply);
    }
    free(st->members);
    free(st->dir_error);
    free(st->roll_note);
    free(st->foreign_change);
    free(st->keys_unchecked);
    kasa_array_free(st->array);
    memset(st, 0, sizeof(*st));
}

/* One member's job, run in its own thread. */
struct job {
    const kasa_config *cfg;
    const kasa_roll_opts *opts;
    kasa_member_addr addr;
    kasa_request req;          /* borrowed pieces: never cleared here */
    const kasa_keyset *verify; /* STAGE: check the proofs against these */
    kasa_reply reply;
    long code;
    char *message;
    const char *step; /* for progress: "stage", "status", ... */
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    kasa_ctx *ctx = NULL;

    if (kasa_ctx_new(&ctx) != 0) {
        j->code = KASA_ERR_NOMEM;
        j->message = strdup("out of memory");
        return NULL;
    }
    progress(j->opts, j->addr.host, j->step, "connecting to %s port %d",
             j->addr.address != NULL ? j->addr.address : j->addr.host, j->addr.port);
    j->code = kasa_member_call(ctx, j->cfg, &j->addr, &j->req, &j->reply);
    if (!j->code && j->verify != NULL)
        j->code =
            kasa_proof_verify(ctx, j->verify, j->req.nonce, j->reply.proofs, j->reply.n_proofs);
    if (j->code) {
        j->message = strdup(kasa_error(ctx));
        progress(j->opts, j->addr.host, j->step, "failed: %s", kasa_error(ctx));
    } else {
        progress(j->opts, j->addr.host, j->step, "done");
    }
    kasa_ctx_free(ctx);
    return NULL;
}

/* Run every job at once and wait for all, with one set of the controller's credentials
 * and every member's ticket fetched first (kasa/member.h says why). */
static void run_all(struct job *jobs, size_t n)
{
    pthread_t *t = calloc(n + 1, sizeof(*t));
    bool *started = calloc(n + 1, sizeof(*started));
    kasa_member_addr *addrs = calloc(n + 1, sizeof(*addrs));
    kasa_member_creds *creds = NULL;
    kasa_ctx *ctx = NULL;

    if (n > 1 && addrs != NULL && kasa_ctx_new(&ctx) == 0) {
        for (size_t i = 0; i < n; i++)
            addrs[i] = jobs[i].addr;
        /* Failing here is no error: each call then gets its own, and says why. */
        if (kasa_member_creds_get(ctx, jobs[0].cfg, addrs, n, &creds) == 0)
            for (size_t i = 0; i < n; i++)
                jobs[i].addr.creds = creds;
    }
    kasa_ctx_free(ctx);
    free(addrs);

    for (size_t i = 0; i < n; i++) {
        started[i] = t != NULL && pthread_create(&t[i], NULL, run_job, &jobs[i]) == 0;
        if (!started[i])
            run_job(&jobs[i]); /* no thread: do it here */
    }
    for (size_t i = 0; i < n; i++) {
        if (started[i])
            pthread_join(t[i], NULL);
        jobs[i].addr.creds = NULL;
    }
    kasa_member_creds_free(creds);
    free(t);
    free(started);
}

static void jobs_free(struct job *jobs, size_t n)
{
    for (size_t i = 0; jobs != NULL && i < n; i++) {
        kasa_reply_clear(&jobs[i].reply);
        free(jobs[i].message);
    }
    free(jobs);
}

static void job_init(struct job *j, const kasa_config *cfg, const kasa_roll_opts *opts,
                     const kasa_member *m, unsigned op, const char *step)
{
    memset(j, 0, sizeof(*j));
    j->cfg = cfg;
    j->opts = opts;
    j->addr.host = m->host;
    j->addr.address = m->address;
    j->addr.port = m->port;
    j->addr.timeout_ms = opts != NULL ? opts->timeout_ms : 0;
    j->req.op = op;
    j->step = step;
}

/* Record each job's outcome in the result. */
static long collect(kasa_ctx *ctx, struct job *jobs, size_t n, kasa_roll_result *r, size_t *failed)
{
    *failed = 0;
    r->members = calloc(n + 1, sizeof(*r->members));
    if (r->members == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        r->members[i].host = strdup(jobs[i].addr.host);
        r->members[i].code = jobs[i].code;
        r->members[i].message = jobs[i].message;
        jobs[i].message = NULL;
        r->n++;
        if (jobs[i].code)
            (*failed)++;
    }
    return 0;
}

/* The targets: named members (each must be in the array), or all of them. */
static long targets(kasa_ctx *ctx, const kasa_array *a, const char *const *names, size_t n,
                    const kasa_member ***out, size_t *n_out)
{
    const kasa_member **t;
    size_t count = names != NULL ? n : a->n_members;

    *out = NULL;
    *n_out = 0;
    if (count == 0)
        return kasa_set_error(ctx, KASA_ERR_MEMBER_NOT_FOUND,
                              "array %s has no members; add them with kasa array add-member",
                              a->fqdn);
    t = calloc(count, sizeof(*t));
    if (t == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; i < count; i++) {
        t[i] = names != NULL ? kasa_array_member(a, names[i]) : &a->members[i];
        if (t[i] == NULL) {
            long ret = kasa_hostname_check(ctx, "member", names[i]);
            free(t);
            /* A malformed name is bad usage; a well-formed one the array lacks, not. */
            return ret ? ret
                       : kasa_set_error(ctx, KASA_ERR_MEMBER_NOT_FOUND, "%s is not a member of %s",
                                        names[i], a->fqdn);
        }
    }
    *out = t;
    *n_out = count;
    return 0;
}

/* Every principal the members must hold: the ASA and each of its SPNs, with the realm. */
static long principals_of(kasa_dir *dir, const char *asa, kasa_kvno_set *set)
{
    char **spns = NULL;
    size_t n = 0;
    long ret;

    ret = kasa_spn_list(dir, asa, &spns, &n);
    if (ret)
        return ret;
    set->principals = calloc(n + 1, sizeof(*set->principals));
    if (set->principals == NULL) {
        kasa_spn_list_free(spns, n);
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    for (size_t i = 0; i <= n; i++) {
        if (asprintf(&set->principals[i], "%s@%s", i == 0 ? asa : spns[i - 1],
                     kasa_dir_realm(dir)) < 0) {
            set->principals[i] = NULL;
            break;
        }
        set->n_principals++;
    }
    kasa_spn_list_free(spns, n);
    return set->n_principals == n + 1 ? 0 : kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
}

/*
 * What a member holds that the array does not own: a principal that is not the ASA or one
 * of its SPNs (want), or a kvno past the directory's next one. (The next one, N+1, is what
 * a roll stages: in progress, or left behind by a roll that stopped before the commit and
 * will be staged afresh by the next.) Returns whether there is any; *text names them
 * (malloc'd; NULL when there is none, or no memory to say it).
 */
static bool foreign_in(const kasa_reply *rep, const kasa_kvno_set *want, unsigned dir_kvno,
                       char **text)
{
    char buf[700] = "";
    size_t named = 0, more = 0;

    *text = NULL;
    for (size_t s = 0; s < rep->n_sets; s++) {
        const kasa_kvno_set *set = &rep->sets[s];
        if ((unsigned long long)set->kvno > (unsigned long long)dir_kvno + 1) {
            if (named++ < 4)
                snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
                         "%skvno %u, newer than the directory's kvno %u", buf[0] ? "; " : "",
                         set->kvno, dir_kvno);
            else
                more++;
        }
        for (size_t p = 0; p < set->n_principals; p++) {
            bool owned = false;
            for (size_t w = 0; w < want->n_principals && !owned; w++)
                owned = strcmp(set->principals[p], want->principals[w]) == 0;
            if (owned)
                continue;
            if (named++ < 4)
                snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
                         "%s%s at kvno %u, not the array's", buf[0] ? "; " : "", set->principals[p],
                         set->kvno);
            else
                more++;
        }
    }
    if (named == 0)
        return false;
    if (more > 0)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "; and %zu more", more);
    *text = strdup(buf);
    return true;
}

/*
 * How long members keep a superseded kvno after its successor's commit: [array]
 * keep_window, or the longest ticket the KDC issues for the ASA and its SPNs plus the
 * clock skew Kerberos allows, so no ticket issued before a roll is orphaned by it.
 */
static long keep_window(kasa_dir *dir, const kasa_config *cfg, const char *asa, int64_t *out)
{
    kasa_kvno_set names;
    int64_t longest = 0;
    long ret = 0;

    *out = cfg->keep_window;
    if (cfg->keep_window > 0)
        return 0;
    memset(&names, 0, sizeof(names));
    ret = principals_of(dir, asa, &names);
    for (size_t i = 0; !ret && i < names.n_principals; i++) {
        int64_t life = 0;
        char *at = strrchr(names.principals[i], '@');
        if (at != NULL)
            *at = '\0'; /* the backend names principals without the realm */
        ret = dir->ops->ticket_life(dir, names.principals[i], &life);
        if (life > longest)
            longest = life;
    }
    kasa_kvno_set_clear(&names);
    if (!ret)
        *out = longest + cfg->clock_skew;
    return ret;
}

/* Tell members kvno was committed, so they can retire what no ticket can need. */
static void retire_all(const kasa_config *cfg, const kasa_roll_opts *opts, const kasa_member **t,
                       size_t n, unsigned kvno, int64_t at, int64_t keep)
{
    struct job *jobs = calloc(n + 1, sizeof(*jobs));

    if (jobs == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        job_init(&jobs[i], cfg, opts, t[i], KASA_OP_RETIRE, "retire");
        jobs[i].req.committed_kvno = kvno;
        jobs[i].req.committed_at = at;
        jobs[i].req.keep_seconds = opts != NULL && opts->keep_seconds > 0 ? opts->keep_seconds
                                   : keep > UINT32_MAX                    ? UINT32_MAX
                                                                          : (uint32_t)keep;
    }
    run_all(jobs, n);
    jobs_free(jobs, n);
}

/* Take the keys of an uncommitted kvno back from whichever member staged them. */
static long keys_from_members(kasa_dir *dir, const kasa_config *cfg, const kasa_roll_opts *opts,
                              const kasa_array *a, unsigned kvno, kasa_kvno_set *out)
{
    struct job *jobs = calloc(a->n_members + 1, sizeof(*jobs));
    long ret = KASA_ERR_ROLL;

    if (jobs == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; i < a->n_members; i++)
        job_init(&jobs[i], cfg, opts, &a->members[i], KASA_OP_EXPORT, "export");
    run_all(jobs, a->n_members);
    for (size_t i = 0; i < a->n_members && ret; i++) {
        for (size_t s = 0; !jobs[i].code && s < jobs[i].reply.n_sets && ret; s++) {
            if (jobs[i].reply.sets[s].kvno == kvno && jobs[i].reply.sets[s].keys != NULL)
                ret = kasa_kvno_set_copy(dir->ctx, &jobs[i].reply.sets[s], out);
        }
    }
    jobs_free(jobs, a->n_members);
    return ret;
}

/*
 * AD set the new password at another kvno than the one staged (an admin reset the account
 * between stage and commit, or another DC answered): the keys are the same, only their
 * kvno differs, so stage them again at the directory's kvno on every member that staged.
 * Members keep the kvno they had before the roll until the retire, so a member that fails
 * here still holds that one; it is counted in *failed and its result says why.
 */
static long restage(kasa_dir *dir, const kasa_config *cfg, const kasa_roll_opts *opts,
                    const char *asa, const kasa_member **t, size_t n, kasa_kvno_set *set,
                    kasa_roll_result *r, const unsigned char *nonce, size_t *failed)
{
    kasa_ctx *ctx = dir->ctx;
    struct job *jobs = NULL;
    unsigned now = 0;
    long ret;

    progress(opts, "directory", "commit", "%s", kasa_error(ctx));
    /* Said without -v too: the admin must learn the account was changed behind kasa. */
    kasa_warn(ctx, "%s; the members get the same keys again at the directory's kvno",
              kasa_error(ctx));
    ret = kasa_key_kvno(dir, asa, &now);
    if (ret)
        return ret;
    progress(opts, "directory", "restage", "staging the keys again at kvno %u", now);
    set->kvno = now;
    set->keys->kvno = now;
    r->to_kvno = now;
    jobs = calloc(n + 1, sizeof(*jobs));
    if (jobs == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        job_init(&jobs[i], cfg, opts, t[i], KASA_OP_STAGE, "restage");
        jobs[i].req.stage = *set; /* borrowed */
        memcpy(jobs[i].req.nonce, nonce, KASA_PROTO_NONCE);
        jobs[i].verify = set->keys;
    }
    run_all(jobs, n);
    for (size_t i = 0; i < n; i++) {
        memset(&jobs[i].req.stage, 0, sizeof(jobs[i].req.stage));
        if (jobs[i].code && r->members[i].code == 0) {
            r->members[i].code = jobs[i].code;
            r->members[i].message = jobs[i].message;
            jobs[i].message = NULL;
            (*failed)++;
        }
    }
    jobs_free(jobs, n);
    return 0;
}

/* The roll itself, plan to retire, under the array's lock. */
/* died: for a --resume, the lock of the roll that died (NULL when none). If that roll
 * recorded nothing and committed nothing (killed right after it took the lock), there is
 * nothing staged to finish: the resume does that roll. */
static long roll_locked(kasa_dir *dir, const kasa_config *cfg, const char *fqdn,
                        const kasa_roll_opts *opts, const kasa_lock *died, kasa_roll_result *r)
{
    kasa_ctx *ctx = dir->ctx;
    kasa_array *a = NULL;
    kasa_account *acct = NULL;
    const kasa_member **t = NULL;
    kasa_kvno_set set;
    struct job *jobs = NULL;
    size_t n = 0, failed = 0;
    unsigned char nonce[KASA_PROTO_NONCE];
    char *password = NULL; /* AD: what the keys came from, until the commit */
    bool moved = false;    /* AD: the commit landed at another kvno, restaged */
    int64_t keep = 0;
    long ret;

    memset(r, 0, sizeof(*r));
    memset(&set, 0, sizeof(set));
    /* plan */
    ret = kasa_array_get(dir, fqdn, &a);
    if (!ret)
        ret = kasa_account_get(dir, a->asa, &acct);
    if (!ret)
        ret = targets(ctx, a, opts->members, opts->n_members, &t, &n);
    if (!ret)
        ret = keep_window(dir, cfg, a->asa, &keep);
    if (ret)
        goto cleanup;
    r->from_kvno = acct->kvno;
    if (a->roll_kvno != 0 && a->roll_kvno <= acct->kvno) {
        /* Committed, then interrupted before the record was cleared: finish that. */
        progress(opts, "directory", "resume", "kvno %u was already committed", a->roll_kvno);
        a->roll_kvno = 0;
        a->committed_kvno = acct->kvno;
        if (a->committed_at == 0)
            a->committed_at = (int64_t)time(NULL);
        ret = kasa_array_save_state(dir, a);
        if (ret)
            goto cleanup;
        if (opts->resume) {
            retire_all(cfg, opts, t, n, a->committed_kvno, a->committed_at, keep);
            r->to_kvno = acct->kvno;
            r->committed = true;
            goto cleanup;
        }
    }
    if (a->roll_kvno != 0 && !opts->resume) {
        ret = kasa_set_error(ctx, KASA_ERR_ROLL,
                             "a roll of %s to kvno %u was interrupted; finish it with kasa roll "
                             "--resume %s",
                             fqdn, a->roll_kvno, fqdn);
        goto cleanup;
    }
    if (!opts->dry_run) {
        ret = kasa_lock_note_kvno(dir, fqdn, acct->kvno);
        if (ret)
            goto cleanup;
    }
    if (opts->resume && a->roll_kvno == 0 && died != NULL && died->operation != NULL &&
        strcmp(died->operation, "roll") == 0 &&
        (died->from_kvno == 0 || died->from_kvno == acct->kvno)) {
        progress(opts, "directory", "resume",
                 "the interrupted roll had staged nothing; rolling from kvno %u", acct->kvno);
    } else if (opts->resume && a->roll_kvno == 0) {
        /* Nothing staged is pending; the members may still need to hear of the commit. */
        progress(opts, "directory", "resume", "no roll in progress; kvno %u is committed",
                 acct->kvno);
        if (a->committed_kvno != 0)
            retire_all(cfg, opts, t, n, a->committed_kvno, a->committed_at, keep);
        r->to_kvno = acct->kvno;
        goto cleanup;
    }
    r->to_kvno = acct->kvno + 1;
    ret = principals_of(dir, a->asa, &set);
    if (ret)
        goto cleanup;
    set.kvno = r->to_kvno;
    progress(opts, "directory", "plan", "%s: %s at kvno %u, %zu principals, %zu member%s", fqdn,
             a->asa, acct->kvno, set.n_principals, n, n == 1 ? "" : "s");
    if (opts->dry_run) {
        jobs = calloc(n + 1, sizeof(*jobs));
        if (jobs == NULL) {
            ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++)
            job_init(&jobs[i], cfg, opts, t[i], KASA_OP_STATUS, "check");
        run_all(jobs, n);
        ret = collect(ctx, jobs, n, r, &failed);
        if (!ret && failed > 0)
            ret = kasa_set_error(ctx, KASA_ERR_ROLL, "%zu of %zu members cannot be reached", failed,
                                 n);
        goto cleanup;
    }

    /* generate, or for a resume, take the staged keys back from a member. Not on AD: its
     * keys come from a password that lived only in the memory of the roll that stopped,
     * and AD takes nothing but that password, so the resume starts afresh there (a new
     * password, its keys staged over the old ones at the same kvno): nothing was committed,
     * or the branch above would have finished it. */
    if (opts->resume && !dir->ops->keys_from_password) {
        kasa_kvno_set staged;
        if (keys_from_members(dir, cfg, opts, a, a->roll_kvno, &staged) == 0) {
            progress(opts, "directory", "resume", "took kvno %u back from a member", a->roll_kvno);
            kasa_keyset_free(set.keys);
            set.keys = staged.keys;
            staged.keys = NULL;
            kasa_kvno_set_clear(&staged);
        }
    }
    if (set.keys == NULL)
        ret = kasa_key_new(dir, a->asa, set.kvno, &set.keys, &password);
    if (!ret) {
        a->roll_kvno = set.kvno;
        a->roll_started = (int64_t)time(NULL);
        ret = kasa_array_save_state(dir, a);
    }
    kasa_test_point("recorded");
    if (!ret && getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
        ret = kasa_set_error(ctx, KASA_ERR_INTERNAL, "cannot read random bytes");
    if (ret)
        goto cleanup;

    /* stage */
    jobs = calloc(n + 1, sizeof(*jobs));
    if (jobs == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        job_init(&jobs[i], cfg, opts, t[i], KASA_OP_STAGE, "stage");
        jobs[i].req.stage = set; /* borrowed */
        memcpy(jobs[i].req.nonce, nonce, sizeof(nonce));
        jobs[i].verify = set.keys;
    }
    run_all(jobs, n);
    kasa_test_point("staged");
    ret = collect(ctx, jobs, n, r, &failed);
    if (ret)
        goto cleanup;
    if (failed > 0 && !opts->force) {
        size_t first = 0;
        while (first < n && r->members[first].code == 0)
            first++;
        /* Nothing was committed: the next roll restages from scratch. */
        a->roll_kvno = 0;
        (void)kasa_array_save_state(dir, a);
        ret =
            kasa_set_error(ctx, KASA_ERR_ROLL,
                           "%zu of %zu members did not stage kvno %u (first: %s: %s); the "
                           "directory is unchanged",
                           failed, n, set.kvno, r->members[first].host, r->members[first].message);
        goto cleanup;
    }

    /* commit */
    progress(opts, "directory", "commit", "setting kvno %u for %s and its SPNs", set.kvno, a->asa);
    ret = kasa_key_set(dir, a->asa, set.keys, password);
    kasa_password_free(password);
    password = NULL;
    if (ret == KASA_ERR_KVNO) {
        moved = true;
        ret = restage(dir, cfg, opts, a->asa, t, n, &set, r, nonce, &failed);
    }
    if (ret) {
        char *why = strdup(kasa_error(ctx));
        progress(opts, "directory", "commit", "failed: %s", why != NULL ? why : "");
        /* Staged everywhere and recorded: the resume finishes it, whatever stopped it. */
        if (why != NULL)
            kasa_set_error(ctx, ret,
                           "%s; kvno %u is staged on the members, not committed for the ASA: "
                           "kasa roll --resume %s finishes the roll once the directory answers",
                           why, set.kvno, fqdn);
        free(why);
        goto cleanup;
    }
    kasa_test_point("committed");
    r->committed = true;
    a->roll_kvno = 0;
    a->committed_kvno = set.kvno;
    a->committed_at = (int64_t)time(NULL);
    for (size_t i = 0; i < n; i++) {
        kasa_member *m = kasa_array_member(a, t[i]->host);
        if (m != NULL)
            m->stale = r->members[i].code != 0;
    }
    ret = kasa_array_save_state(dir, a);
    if (ret)
        goto cleanup;
    progress(opts, "directory", "commit", "kvno %u committed", set.kvno);
    kasa_test_point("saved");

    /* retire: tell the members that staged */
    {
        const kasa_member **ok = calloc(n + 1, sizeof(*ok));
        size_t k = 0;
        for (size_t i = 0; ok != NULL && i < n; i++) {
            if (r->members[i].code == 0)
                ok[k++] = t[i];
        }
        if (ok != NULL)
            retire_all(cfg, opts, ok, k, a->committed_kvno, a->committed_at, keep);
        free(ok);
    }
    if (failed > 0 && moved)
        ret = kasa_set_error(ctx, KASA_ERR_ROLL,
                             "the directory took the new keys at kvno %u, not %u (the account "
                             "changed meanwhile); %zu member%s could not take them at kvno %u, "
                             "still hold kvno %u and are marked stale; give them the keys with "
                             "kasa copy",
                             set.kvno, r->from_kvno + 1, failed, failed == 1 ? "" : "s", set.kvno,
                             r->from_kvno);
    else if (failed > 0)
        ret = kasa_set_error(ctx, KASA_ERR_ROLL,
                             "committed kvno %u with --force; %zu member%s marked stale", set.kvno,
                             failed, failed == 1 ? "" : "s");

cleanup:
    for (size_t i = 0; jobs != NULL && i < n; i++)
        memset(&jobs[i].req.stage, 0, sizeof(jobs[i].req.stage)); /* borrowed from set */
    jobs_free(jobs, n);
    kasa_kvno_set_clear(&set);
    kasa_password_free(password);
    kasa_zap(nonce, sizeof(nonce));
    free(t);
    kasa_account_free(acct);
    kasa_array_free(a);
    return ret;
}

/* The copy itself, under the array's lock. */
/*
 * Where the directory gives keys out (MIT, the e right): the source's keys at the
 * directory's kvno must be the directory's, every enctype, or a copy would spread keys
 * altered on the source to every target. Elsewhere (AD) the source is taken at its word,
 * as status's tickets check it.
 */
static long source_keys_right(kasa_dir *dir, const kasa_array *a, const char *from,
                              const kasa_reply *exp, unsigned dir_kvno)
{
    const kasa_kvno_set *set = NULL;
    kasa_keyset *keys = NULL;
    long ret = 0;

    for (size_t s = 0; s < exp->n_sets; s++)
        if (exp->sets[s].kvno == dir_kvno)
            set = &exp->sets[s];
    if (set == NULL || set->keys == NULL || dir->ops->keys_get == NULL)
        return 0;
    if (dir->ops->keys_get(dir, a->asa, dir_kvno, &keys) != 0) {
        kasa_warn(dir->ctx, "%s's keys are copied unchecked: %s", from, kasa_error(dir->ctx));
        return 0;
    }
    for (size_t k = 0; k < keys->n && ret == 0; k++) {
        const krb5_keyblock *want = &keys->keys[k];
        bool same = false;
        for (size_t h = 0; h < set->keys->n && !same; h++) {
            const krb5_keyblock *have = &set->keys->keys[h];
            same = have->enctype == want->enctype && have->length == want->length &&
                   memcmp(have->contents, want->contents, want->length) == 0;
        }
        if (!same)
            ret = kasa_set_error(dir->ctx, KASA_ERR_MEMBER,
                                 "the enctype %d key %s holds at kvno %u is not the directory's; "
                                 "nothing was copied: copy from a member kasa status calls OK, or "
                                 "kasa roll %s",
                                 (int)want->enctype, from, dir_kvno, a->fqdn);
    }
    kasa_keyset_free(keys);
    return ret;
}

static long copy_locked(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, const char *from,
                        const char *const *to, size_t n_to, const kasa_roll_opts *opts,
                        kasa_roll_result *r)
{
    kasa_ctx *ctx = dir->ctx;
    kasa_array *a = NULL;
    const kasa_member **src = NULL, **dst = NULL;
    struct job exp, *jobs = NULL;
    size_t n_src = 0, n_dst = 0, failed = 0, copied = 0;
    unsigned char nonce[KASA_PROTO_NONCE];
    kasa_kvno_set want;
    unsigned dir_kvno = 0;
    char *foreign = NULL;
    int64_t keep = 0;
    long ret;

    memset(r, 0, sizeof(*r));
    memset(&exp, 0, sizeof(exp));
    memset(&want, 0, sizeof(want));
    ret = kasa_array_get(dir, fqdn, &a);
    if (!ret)
        ret = targets(ctx, a, &from, 1, &src, &n_src);
    if (!ret)
        ret = targets(ctx, a, to, n_to, &dst, &n_dst);
    if (!ret)
        ret = keep_window(dir, cfg, a->asa, &keep);
    if (ret)
        goto cleanup;
    job_init(&exp, cfg, opts, src[0], KASA_OP_EXPORT, "export");
    run_job(&exp);
    if (exp.code) {
        ret = kasa_set_error(ctx, KASA_ERR_MEMBER, "cannot take the keys from %s: %s", from,
                             exp.message);
        goto cleanup;
    }
    if (exp.reply.n_sets == 0) {
        ret = kasa_set_error(ctx, KASA_ERR_MEMBER, "%s holds no keys for %s; nothing to copy", from,
                             fqdn);
        goto cleanup;
    }
    /* Only what the directory says is the array's goes on: a member's keytab is no
     * authority on which principals and kvnos those are. */
    ret = principals_of(dir, a->asa, &want);
    if (!ret)
        ret = kasa_key_kvno(dir, a->asa, &dir_kvno);
    if (ret)
        goto cleanup;
    if (foreign_in(&exp.reply, &want, dir_kvno, &foreign)) {
        ret = kasa_set_error(ctx, KASA_ERR_FOREIGN,
                             "%s holds keys %s does not own (%s); nothing was copied", from, fqdn,
                             foreign != NULL ? foreign : "out of memory to name them");
        goto cleanup;
    }
    ret = source_keys_right(dir, a, from, &exp.reply, dir_kvno);
    if (ret)
        goto cleanup;
    if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce)) {
        ret = kasa_set_error(ctx, KASA_ERR_INTERNAL, "cannot read random bytes");
        goto cleanup;
    }
    /* One kvno at a time, oldest first, to every target in parallel. */
    jobs = calloc(n_dst + 1, sizeof(*jobs));
    if (jobs == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    for (size_t s = 0; s < exp.reply.n_sets && !ret; s++) {
        kasa_kvno_set *set = &exp.reply.sets[s];
        if (set->kvno > dir_kvno && set->kvno != a->roll_kvno) {
            /* Staged by a roll that stopped before the commit: the next roll stages it
             * afresh, so it is nobody's to copy. */
            progress(opts, from, "copy", "kvno %u skipped: never committed", set->kvno);
            continue;
        }
        copied++;
        for (size_t i = 0; i < n_dst; i++) {
            if (s > 0 && jobs[i].code)
                continue; /* this target already failed */
            kasa_reply_clear(&jobs[i].reply);
            free(jobs[i].message);
            job_init(&jobs[i], cfg, opts, dst[i], KASA_OP_STAGE, "copy");
            jobs[i].req.stage = *set; /* borrowed */
            memcpy(jobs[i].req.nonce, nonce, sizeof(nonce));
            jobs[i].verify = set->keys;
        }
        progress(opts, from, "copy", "kvno %u to %zu member%s", set->kvno, n_dst,
                 n_dst == 1 ? "" : "s");
        run_all(jobs, n_dst);
        for (size_t i = 0; i < n_dst; i++)
            memset(&jobs[i].req.stage, 0, sizeof(jobs[i].req.stage));
    }
    if (copied == 0) {
        ret = kasa_set_error(ctx, KASA_ERR_MEMBER,
                             "%s holds no committed keys for %s; nothing to copy", from, fqdn);
        goto cleanup;
    }
    ret = collect(ctx, jobs, n_dst, r, &failed);
    if (ret)
        goto cleanup;
    /* Tell the targets what is committed, and clear the stale mark of those that copied. */
    if (a->committed_kvno != 0) {
        const kasa_member **ok = calloc(n_dst + 1, sizeof(*ok));
        size_t k = 0;
        for (size_t i = 0; ok != NULL && i < n_dst; i++) {
            if (r->members[i].code == 0)
                ok[k++] = dst[i];
        }
        if (ok != NULL)
            retire_all(cfg, opts, ok, k, a->committed_kvno, a->committed_at, keep);
        free(ok);
    }
    for (size_t i = 0; i < n_dst; i++) {
        kasa_member *m = kasa_array_member(a, dst[i]->host);
        if (m != NULL && r->members[i].code == 0)
            m->stale = false;
    }
    ret = kasa_array_save_state(dir, a);
    if (!ret && failed > 0) {
        size_t first = 0;
        while (first < n_dst && r->members[first].code == 0)
            first++;
        ret =
            kasa_set_error(ctx, KASA_ERR_ROLL, "%zu of %zu members did not take the copy (%s: %s)",
                           failed, n_dst, r->members[first].host, r->members[first].message);
    }

cleanup:
    free(foreign);
    kasa_kvno_set_clear(&want);
    jobs_free(jobs, n_dst);
    kasa_reply_clear(&exp.reply);
    free(exp.message);
    kasa_zap(nonce, sizeof(nonce));
    free(src);
    free(dst);
    kasa_array_free(a);
    return ret;
}

/* Give the array's lock back after ret; ret's error, not the release's, is reported. */
static long unlock_after(kasa_dir *dir, const char *fqdn, long ret)
{
    if (ret) {
        char *why = strdup(kasa_error(dir->ctx));
        kasa_lock_release(dir, fqdn);
        if (why != NULL)
            kasa_set_error(dir->ctx, ret, "%s", why);
        free(why);
    } else {
        kasa_lock_release(dir, fqdn);
    }
    return ret;
}

long kasa_roll(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, const kasa_roll_opts *opts,
               kasa_roll_result *r)
{
    kasa_lock over;
    long ret;

    memset(r, 0, sizeof(*r));
    ret = kasa_hostname_check(dir->ctx, "array", fqdn);
    if (!ret && opts->dry_run) /* reads only: no lock */
        return roll_locked(dir, cfg, fqdn, opts, NULL, r);
    if (!ret)
        ret = kasa_lock_take(dir, fqdn, "roll", cfg->lock_timeout, opts->resume, &over);
    if (ret)
        return ret;
    /* The roll that died: the one this run took the lock over from, or, when another
     * resumer moved that lock aside and this run took the lock it freed, that one. */
    if (opts->resume && over.owner == NULL)
        (void)kasa_lock_last_gone(dir, fqdn, &over);
    if (over.owner != NULL && kasa_lock_mark_resumed(dir, &over) != 0)
        kasa_lock_clear(&over); /* cannot say it is taken on: another resume might too */
    kasa_test_point("locked");
    ret = unlock_after(dir, fqdn,
                       roll_locked(dir, cfg, fqdn, opts, over.owner != NULL ? &over : NULL, r));
    kasa_lock_clear(&over);
    return ret;
}

long kasa_copy(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, const char *from,
               const char *const *to, size_t n_to, const kasa_roll_opts *opts, kasa_roll_result *r)
{
    long ret;

    memset(r, 0, sizeof(*r));
    ret = kasa_hostname_check(dir->ctx, "array", fqdn);
    if (!ret)
        ret = kasa_lock_take(dir, fqdn, "copy", cfg->lock_timeout, false, NULL);
    if (ret)
        return ret;
    return unlock_after(dir, fqdn, copy_locked(dir, cfg, fqdn, from, to, n_to, opts, r));
}

static long verify_cred(kasa_ctx *ctx, const kasa_config *cfg, const char *as, gss_cred_id_t *cred);
static long mint_token(kasa_ctx *ctx, gss_cred_id_t cred, const char *principal, bool spnego,
                       gss_buffer_desc *out);

/* Ask every member what it holds (STATUS); want and kvno may be empty when the
 * directory could not be asked, and then no verdict beyond reachability is given. */
static long ask_members(kasa_ctx *ctx, const kasa_config *cfg, int timeout_ms,
                        const kasa_kvno_set *want, unsigned kvno, kasa_array_status *st)
{
    kasa_roll_opts opts = {.timeout_ms = timeout_ms};
    struct job *jobs;

    st->members = calloc(st->array->n_members + 1, sizeof(*st->members));
    jobs = calloc(st->array->n_members + 1, sizeof(*jobs));
    if (st->members == NULL || jobs == NULL) {
        free(jobs);
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    }
    for (size_t i = 0; i < st->array->n_members; i++)
        job_init(&jobs[i], cfg, &opts, &st->array->members[i], KASA_OP_STATUS, "status");
    run_all(jobs, st->array->n_members);
    for (size_t i = 0; i < st->array->n_members; i++) {
        kasa_member_status *m = &st->members[i];
        bool holds = false;
        m->host = strdup(st->array->members[i].host);
        m->port = st->array->members[i].port;
        st->n++;
        if (jobs[i].code) {
            m->verdict = KASA_VERDICT_UNREACHABLE;
            m->error = jobs[i].message;
            jobs[i].message = NULL;
            continue;
        }
        m->reply = jobs[i].reply;
        memset(&jobs[i].reply, 0, sizeof(jobs[i].reply));
        for (size_t s = 0; s < m->reply.n_sets; s++)
            holds = holds || m->reply.sets[s].kvno == kvno;
        m->verdict = m->reply.n_sets == 0                    ? KASA_VERDICT_MISSING
                     : !holds || st->array->members[i].stale ? KASA_VERDICT_STALE
                                                             : KASA_VERDICT_OK;
        if (want->n_principals > 0 && foreign_in(&m->reply, want, kvno, &m->foreign))
            m->verdict = KASA_VERDICT_FOREIGN;
    }
    jobs_free(jobs, st->array->n_members);
    return 0;
}

/* Whether rep lists principal at kvno. */
static bool holds_principal(const kasa_reply *rep, unsigned kvno, const char *principal)
{
    for (size_t s = 0; s < rep->n_sets; s++) {
        for (size_t p = 0; rep->sets[s].kvno == kvno && p < rep->sets[s].n_principals; p++) {
            if (strcmp(rep->sets[s].principals[p], principal) == 0)
                return true;
        }
    }
    return false;
}

/*
 * The keys themselves, where the directory gives them out (MIT, with the 'e' right): each
 * member that holds the directory's kvno proves, with a checksum over a fresh nonce, that
 * every principal of the array (the ASA, which no ticket names, and its SPNs) holds the
 * directory's key of every enctype, as the roll's stage proofs do; no key leaves the
 * member or the controller. A failed proof is WRONG-KEY. The tickets (check_keys) then
 * show what clients meet on every backend: the key the KDC uses for each SPN.
 */
static void check_proofs(kasa_dir *dir, const kasa_config *cfg, int timeout_ms,
                         const kasa_kvno_set *want, kasa_array_status *st)
{
    kasa_roll_opts opts = {.timeout_ms = timeout_ms};
    kasa_keyset *keys = NULL;
    struct job *jobs;
    size_t *owner, n_jobs = 0;

    if (dir->ops->keys_get == NULL || want->n_principals == 0 ||
        dir->ops->keys_get(dir, st->array->asa, st->dir_kvno, &keys) != 0)
        return; /* AD, or no right to read keys: the tickets alone tell */
    jobs = calloc(st->n + 1, sizeof(*jobs));
    owner = calloc(st->n + 1, sizeof(*owner));
    for (size_t m = 0; jobs != NULL && owner != NULL && m < st->n; m++) {
        struct job *j = &jobs[n_jobs];
        char **held;
        size_t n_held = 0;
        if (st->members[m].verdict != KASA_VERDICT_OK ||
            (held = calloc(want->n_principals + 1, sizeof(*held))) == NULL)
            continue;
        /* Those it holds at the kvno; one it lacks (an SPN added since the last roll) is
         * check_keys' to tell. The names are borrowed from want. */
        for (size_t p = 0; p < want->n_principals; p++)
            if (holds_principal(&st->members[m].reply, st->dir_kvno, want->principals[p]))
                held[n_held++] = want->principals[p];
        job_init(j, cfg, &opts, &st->array->members[m], KASA_OP_PROVE, "proof");
        /* The nonce after job_init, which clears the job: fresh for every member. */
        if (n_held == 0 ||
            getrandom(j->req.nonce, sizeof(j->req.nonce), 0) != (ssize_t)sizeof(j->req.nonce)) {
            free(held);
            continue;
        }
        j->req.stage.kvno = st->dir_kvno;
        j->req.stage.n_principals = n_held;
        j->req.stage.principals = held;
        j->verify = keys;
        owner[n_jobs++] = m;
    }
    run_all(jobs, n_jobs);
    for (size_t i = 0; i < n_jobs; i++) {
        kasa_member_status *m = &st->members[owner[i]];
        if (jobs[i].code == 0)
            continue;
        m->verdict = KASA_VERDICT_WRONG_KEY;
        free(m->wrong_key);
        if (asprintf(&m->wrong_key, "its keys at kvno %u are not the directory's: %s", st->dir_kvno,
                     jobs[i].message != NULL ? jobs[i].message : "no proof") < 0)
            m->wrong_key = NULL;
    }
    for (size_t i = 0; i < n_jobs; i++)
        free(jobs[i].req.stage.principals);
    if (jobs != NULL)
        jobs_free(jobs, n_jobs);
    free(owner);
    kasa_keyset_free(keys);
}

/*
 * The keys, not only the kvnos: a member that holds the directory's kvno is shown a fresh
 * ticket for every SPN (from the KDC, so made with the directory's current key), which
 * its keeper must decrypt from the array keytab. A ticket is the proof every backend can
 * give (the directory need not hand out keys); a rejection is WRONG-KEY. The kvno of
 * each SPN's ticket goes to kvnos[s] (0: unknown): the KDC's, which an SPN changed
 * outside kasa moves away from the ASA's. When no ticket can be had, st says the keys
 * were not checked: an OK that compared kvnos only must not pass for a checked one.
 */
static void check_keys(kasa_ctx *ctx, const kasa_config *cfg, int timeout_ms,
                       const kasa_kvno_set *want, unsigned *kvnos, kasa_array_status *st)
{
    kasa_roll_opts opts = {.timeout_ms = timeout_ms};
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    size_t n_spn = want->n_principals > 0 ? want->n_principals - 1 : 0, n_jobs = 0;
    struct job *jobs;
    size_t *owner;
    OM_uint32 minor;

    if (n_spn == 0)
        return; /* nothing to check */
    if (verify_cred(ctx, cfg, NULL, &cred) != 0) {
        if (asprintf(&st->keys_unchecked, "%s", kasa_error(ctx)) < 0)
            st->keys_unchecked = NULL;
        return;
    }
    for (size_t s = 1; s <= n_spn; s++) {
        gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
        kasa_token_info info;
        if (mint_token(ctx, cred, want->principals[s], false, &tok) != 0) {
            if (st->keys_unchecked == NULL &&
                asprintf(&st->keys_unchecked, "%s", kasa_error(ctx)) < 0)
                st->keys_unchecked = NULL;
            continue;
        }
        if (kasa_token_decode(ctx, tok.value, tok.length, &info) == 0 && info.has_kvno)
            kvnos[s] = info.kvno;
        gss_release_buffer(&minor, &tok);
    }
    jobs = calloc(st->n * n_spn + 1, sizeof(*jobs));
    owner = calloc(st->n * n_spn + 1, sizeof(*owner));
    for (size_t m = 0; jobs != NULL && owner != NULL && m < st->n; m++) {
        kasa_member_status *ms = &st->members[m];
        if (ms->verdict != KASA_VERDICT_OK)
            continue;
        for (size_t s = 1; s <= n_spn; s++) {
            gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
            struct job *j = &jobs[n_jobs];
            if (!holds_principal(&ms->reply, st->dir_kvno, want->principals[s])) {
                /* An SPN given to the ASA after the last roll: no member has its entry
                 * until the next one. */
                ms->verdict = KASA_VERDICT_STALE;
                if (ms->wrong_key == NULL &&
                    asprintf(&ms->wrong_key,
                             "holds no key for %s at kvno %u (an SPN added since the last "
                             "roll?); kasa roll %s gives it to every member",
                             want->principals[s], st->dir_kvno, st->array->fqdn) < 0)
                    ms->wrong_key = NULL;
                continue;
            }
            if (mint_token(ctx, cred, want->principals[s], false, &tok) != 0)
                continue;
            job_init(j, cfg, &opts, &st->array->members[m], KASA_OP_VERIFY, "keys");
            j->req.token = malloc(tok.length);
            if (j->req.token != NULL)
                memcpy(j->req.token, tok.value, tok.length);
            j->req.token_len = (uint32_t)tok.length;
            gss_release_buffer(&minor, &tok);
            j->step = want->principals[s]; /* borrowed: which SPN this job checks */
            owner[n_jobs++] = m;
        }
    }
    run_all(jobs, n_jobs);
    for (size_t i = 0; i < n_jobs; i++) {
        kasa_member_status *m = &st->members[owner[i]];
        if (jobs[i].code == 0 || m->wrong_key != NULL)
            continue;
        m->verdict = KASA_VERDICT_WRONG_KEY;
        if (asprintf(&m->wrong_key, "%s: %s", jobs[i].step,
                     jobs[i].message != NULL ? jobs[i].message : "rejected") < 0)
            m->wrong_key = NULL;
    }
    for (size_t i = 0; i < n_jobs; i++)
        free(jobs[i].req.token);
    if (jobs != NULL)
        jobs_free(jobs, n_jobs);
    free(owner);
    gss_release_cred(&minor, &cred);
}

static const char *utc_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* A roll in progress or interrupted, from the array's roll record and its lock. */
static void roll_state(kasa_dir *dir, unsigned kvno, kasa_array_status *st)
{
    const kasa_array *a = st->array;
    kasa_lock lock;
    bool locked = kasa_lock_get(dir, a->fqdn, &lock) == 0;
    bool live = locked && kasa_lock_live(&lock);
    char when[32], stage[160];
    size_t staged = 0;
    int n;

    if (a->roll_kvno == 0 && !locked)
        return;
    for (size_t m = 0; m < st->n; m++) {
        for (size_t s = 0; s < st->members[m].reply.n_sets; s++)
            staged += st->members[m].reply.sets[s].kvno == a->roll_kvno;
    }
    if (a->roll_kvno != 0 && a->roll_kvno <= kvno)
        snprintf(stage, sizeof(stage), "kvno %u committed in the directory, not yet recorded",
                 a->roll_kvno);
    else if (a->roll_kvno != 0)
        snprintf(stage, sizeof(stage),
                 "kvno %u staged on %zu of %zu members, not committed for the ASA (its SPNs "
                 "may be)",
                 a->roll_kvno, staged, st->n);
    else
        snprintf(stage, sizeof(stage), "no kvno staged or waiting for its commit");
    if (live)
        n = asprintf(&st->roll_note, "a %s of %s is running on %s since %s (%s)", lock.operation,
                     a->fqdn, lock.owner, utc_time(lock.taken, when, sizeof(when)), stage);
    else
        n = asprintf(&st->roll_note,
                     "a %s of %s%s%s started %s stopped before it ended (%s); finish it with kasa "
                     "roll --resume %s",
                     locked ? lock.operation : "roll", a->fqdn, locked ? " on " : "",
                     locked ? lock.owner : "",
                     utc_time(locked ? lock.taken : a->roll_started, when, sizeof(when)), stage,
                     a->fqdn);
    if (n < 0)
        st->roll_note = NULL;
    st->roll_interrupted = !live;
    if (locked)
        kasa_lock_clear(&lock);
}

/* Where keep_window() took the window from, for people. AD's Kerberos policy lives in a
 * GPO in SYSVOL, which LDAP does not show: that backend assumes AD's default. */
static const char *keep_source(kasa_dir *dir, const kasa_config *cfg)
{
    if (cfg->keep_window > 0)
        return "kasa.conf keep_window";
    if (strcmp(dir->ops->name, "ad") == 0)
        return "AD's default service ticket life + clock skew; set keep_window if the "
               "domain's policy is longer";
    return "the longest max life of the ASA and its SPNs + clock skew";
}

/*
 * Every principal of the array (want: the ASA, then its SPNs) whose kvno in the
 * directory (kvnos, 0 when unknown) is neither the one kasa last committed nor the one a
 * roll is committing: its keys were changed behind kasa's back.
 */
static void changed_outside(kasa_array_status *st, const kasa_kvno_set *want, const unsigned *kvnos)
{
    const kasa_array *a = st->array;
    char names[700] = "";
    size_t named = 0, more = 0;

    if (a->committed_kvno == 0)
        return; /* never rolled: kasa committed nothing to compare with */
    for (size_t p = 0; p < want->n_principals; p++) {
        if (kvnos[p] == 0 || kvnos[p] == a->committed_kvno || kvnos[p] == a->roll_kvno)
            continue;
        if (named++ < 4)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s at kvno %u",
                     names[0] ? ", " : "", want->principals[p], kvnos[p]);
        else
            more++;
    }
    if (named == 0)
        return;
    if (more > 0)
        snprintf(names + strlen(names), sizeof(names) - strlen(names), ", and %zu more", more);
    if (asprintf(&st->foreign_change,
                 "the directory holds %s, but kasa last committed kvno %u: keys changed outside "
                 "kasa (kadmin, a keytab's own principal); fix: kasa roll %s, which gives every "
                 "member and the directory new keys",
                 names, a->committed_kvno, a->fqdn) < 0)
        st->foreign_change = NULL;
}

long kasa_status(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, int timeout_ms,
                 kasa_array_status *st)
{
    kasa_kvno_set want;
    unsigned kvno = 0, *kvnos = NULL; /* each principal's in the directory, as want */
    long ret;

    memset(st, 0, sizeof(*st));
    memset(&want, 0, sizeof(want));
    ret = kasa_array_get(dir, fqdn, &st->array);
    if (!ret)
        ret = kasa_key_kvno(dir, st->array->asa, &kvno);
    if (!ret)
        ret = principals_of(dir, st->array->asa, &want);
    if (!ret)
        ret = keep_window(dir, cfg, st->array->asa, &st->keep_seconds);
    if (!ret)
        ret = ask_members(dir->ctx, cfg, timeout_ms, &want, kvno, st);
    if (ret) {
        kasa_kvno_set_clear(&want);
        return ret;
    }
    st->dir_kvno = kvno;
    st->keep_source = keep_source(dir, cfg);
    kvnos = calloc(want.n_principals + 1, sizeof(*kvnos));
    if (kvnos == NULL) {
        kasa_kvno_set_clear(&want);
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    kvnos[0] = kvno;
    check_proofs(dir, cfg, timeout_ms, &want, st);
    check_keys(dir->ctx, cfg, timeout_ms, &want, kvnos, st);
    roll_state(dir, kvno, st);
    changed_outside(st, &want, kvnos);
    free(kvnos);
    kasa_kvno_set_clear(&want);
    return 0;
}

long kasa_status_cached(kasa_ctx *ctx, const kasa_config *cfg, const char *fqdn, const char *why,
                        int timeout_ms, kasa_array_status *st)
{
    kasa_kvno_set none;
    long ret;

    memset(st, 0, sizeof(*st));
    memset(&none, 0, sizeof(none));
    ret = kasa_array_cached(ctx, cfg, fqdn, &st->array);
    if (!ret)
        ret = ask_members(ctx, cfg, timeout_ms, &none, 0, st);
    if (ret)
        return ret;
    st->dir_unreachable = true;
    st->dir_error = strdup(why != NULL ? why : "the directory could not be asked");
    /* No kvno to compare with: a member that holds keys is reported as it answered. */
    for (size_t i = 0; i < st->n; i++) {
        if (st->members[i].verdict == KASA_VERDICT_STALE)
            st->members[i].verdict = KASA_VERDICT_UNCHECKED;
    }
    return 0;
}

void kasa_verify_result_clear(kasa_verify_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->checks[i].member);
        free(r->checks[i].spn);
        free(r->checks[i].reason);
    }
    free(r->checks);
    memset(r, 0, sizeof(*r));
}

/* Credentials for the tickets kasa verify presents. */
static long verify_cred(kasa_ctx *ctx, const kasa_config *cfg, const char *as, gss_cred_id_t *cred)
{
    gss_key_value_element_desc elems[2];
    gss_key_value_set_desc store = {2, elems};
    gss_buffer_desc nb;
    gss_name_t name = GSS_C_NO_NAME;
    OM_uint32 major, minor, scratch;
    char ccache[64];

    *cred = GSS_C_NO_CREDENTIAL;
    nb.value = (void *)(as != NULL ? as : cfg->principal != NULL ? cfg->principal : "");
    nb.length = strlen(nb.value);
    if (nb.length > 0) {
        major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
        if (GSS_ERROR(major))
            return kasa_set_gss_error(ctx, KASA_ERR_USAGE, major, minor, "bad principal %s",
                                      (char *)nb.value);
    }
    snprintf(ccache, sizeof(ccache), "MEMORY:kasa-verify-%d", (int)getpid());
    elems[0].key = "client_keytab";
    elems[0].value = cfg->keytab;
    elems[1].key = "ccache";
    elems[1].value = ccache;
    major =
        gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_INITIATE,
                              as == NULL && cfg->keytab != NULL ? &store : NULL, cred, NULL, NULL);
    gss_release_name(&scratch, &name);
    if (GSS_ERROR(major))
        return kasa_set_gss_error(ctx, KASA_ERR_MEMBER_AUTH, major, minor,
                                  "no credentials for %s (kinit first)",
                                  as != NULL ? as : "kasa's principal");
    return 0;
}

/* A fresh token for spn@realm: raw Kerberos for kasad, SPNEGO for HTTP. */
static long mint_token(kasa_ctx *ctx, gss_cred_id_t cred, const char *principal, bool spnego,
                       gss_buffer_desc *out)
{
    static const gss_OID_desc spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
    gss_buffer_desc nb = {strlen(principal), (void *)principal};
    gss_name_t target = GSS_C_NO_NAME;
    gss_ctx_id_t gctx = GSS_C_NO_CONTEXT;
    OM_uint32 major, minor, scratch;

    major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &target);
    if (!GSS_ERROR(major))
        major = gss_init_sec_context(
            &minor, cred, &gctx, target, spnego ? (gss_OID)&spnego_oid : (gss_OID)gss_mech_krb5, 0,
            0, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, out, NULL, NULL);
    gss_release_name(&scratch, &target);
    if (gctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&scratch, &gctx, GSS_C_NO_BUFFER);
    if (GSS_ERROR(major))
        return kasa_set_gss_error(ctx, KASA_ERR_MEMBER_AUTH, major, minor,
                                  "cannot get a ticket for %s", principal);
    return 0;
}

/* GET /whoami with a Negotiate token; the HTTP status, or -1 when the member did not
 * answer. The endpoint is kasa-httpd or any Negotiate server. */
static int http_try(const char *address, int http_port, const char *host,
                    const gss_buffer_desc *tok, int timeout_ms)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    const unsigned char *p = tok->value;
    char port[16], *req, buf[512];
    size_t n = 0, len = tok->length;
    int fd = -1, status = -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

    /* Base64 here is a few lines; libkasa takes no TLS library just for it. */
    req = malloc(len * 2 + 512);
    if (req == NULL)
        return -1;
    n = (size_t)sprintf(req,
                        "GET /whoami HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                        "Authorization: Negotiate ",
                        host);
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < len ? p[i + 2] : 0);
        req[n++] = b64[v >> 18 & 63];
        req[n++] = b64[v >> 12 & 63];
        req[n++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
        req[n++] = i + 2 < len ? b64[v & 63] : '=';
    }
    n += (size_t)sprintf(req + n, "\r\n\r\n");
    snprintf(port, sizeof(port), "%d", http_port);
    if (getaddrinfo(address, port, &hints, &res) == 0 &&
        (fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
        connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
        send(fd, req, n, MSG_NOSIGNAL) == (ssize_t)n) {
        ssize_t r = recv(fd, buf, sizeof(buf) - 1, 0);
        if (r > 12 && memcmp(buf, "HTTP/1.", 7) == 0)
            status = atoi(buf + 9);
    }
    if (fd >= 0)
        close(fd);
    if (res != NULL)
        freeaddrinfo(res);
    free(req);
    return status;
}

long kasa_verify(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, const char *as,
                 int timeout_ms, kasa_verify_result *r)
{
    kasa_ctx *ctx = dir->ctx;
    kasa_roll_opts opts = {.timeout_ms = timeout_ms};
    kasa_array *a = NULL;
    kasa_kvno_set set;
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    struct job *jobs = NULL;
    kasa_verify_check **owner = NULL;
    size_t n_spn = 0, n_jobs = 0;
    OM_uint32 minor;
    long ret;

    memset(r, 0, sizeof(*r));
    memset(&set, 0, sizeof(set));
    ret = kasa_array_get(dir, fqdn, &a);
    if (!ret)
        ret = principals_of(dir, a->asa, &set); /* [0] is the ASA, the rest its SPNs */
    if (!ret)
        ret = verify_cred(ctx, cfg, as, &cred);
    if (ret)
        goto cleanup;
    n_spn = set.n_principals - 1;
    if (n_spn == 0 || a->n_members == 0) {
        ret = kasa_set_error(ctx, n_spn == 0 ? KASA_ERR_SPN_NOT_FOUND : KASA_ERR_MEMBER_NOT_FOUND,
                             "%s has no %s to verify", fqdn, n_spn == 0 ? "SPNs" : "members");
        goto cleanup;
    }
    jobs = calloc(a->n_members * n_spn + 1, sizeof(*jobs));
    owner = calloc(a->n_members * n_spn + 1, sizeof(*owner));
    r->checks = calloc(a->n_members * n_spn * 2 + 1, sizeof(*r->checks));
    if (jobs == NULL || owner == NULL || r->checks == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    /* kasad: every member x SPN, each with a fresh token, all at once. */
    for (size_t m = 0; m < a->n_members; m++) {
        for (size_t s = 1; s <= n_spn; s++) {
            struct job *j = &jobs[n_jobs];
            gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
            kasa_token_info info;
            kasa_verify_check *c = &r->checks[r->n++];
            job_init(j, cfg, &opts, &a->members[m], KASA_OP_VERIFY, "verify");
            c->member = strdup(a->members[m].host);
            c->spn = strdup(set.principals[s]);
            c->via = "kasad";
            if (mint_token(ctx, cred, set.principals[s], false, &tok) != 0) {
                c->reason = strdup(kasa_error(ctx));
                continue;
            }
            if (kasa_token_decode(ctx, tok.value, tok.length, &info) == 0 && info.has_kvno)
                c->kvno = info.kvno;
            j->req.token = malloc(tok.length);
            if (j->req.token != NULL)
                memcpy(j->req.token, tok.value, tok.length);
            j->req.token_len = (uint32_t)tok.length;
            gss_release_buffer(&minor, &tok);
            owner[n_jobs++] = c; /* the check this job answers */
        }
    }
    run_all(jobs, n_jobs);
    for (size_t i = 0; i < n_jobs; i++) {
        owner[i]->accepted = jobs[i].code == 0;
        if (jobs[i].code)
            owner[i]->reason = strdup(jobs[i].message != NULL ? jobs[i].message : "failed");
    }
    /* HTTP: the HTTP SPNs, on members that have an endpoint. */
    for (size_t m = 0; m < a->n_members; m++) {
        if (a->members[m].http_port <= 0)
            continue;
        for (size_t s = 1; s <= n_spn; s++) {
            const char *spn = set.principals[s];
            char host[300];
            gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
            kasa_token_info info;
            kasa_verify_check *c;
            int status;
            if (strncasecmp(spn, "http/", 5) != 0)
                continue;
            snprintf(host, sizeof(host), "%.*s", (int)strcspn(spn + 5, "@:/"), spn + 5);
            c = &r->checks[r->n++];
            c->member = strdup(a->members[m].host);
            c->spn = strdup(spn);
            c->via = "http";
            if (mint_token(ctx, cred, spn, true, &tok) != 0) {
                c->reason = strdup(kasa_error(ctx));
                continue;
            }
            if (kasa_token_decode(ctx, tok.value, tok.length, &info) == 0 && info.has_kvno)
                c->kvno = info.kvno;
            status =
                http_try(a->members[m].address != NULL ? a->members[m].address : a->members[m].host,
                         a->members[m].http_port, host, &tok, timeout_ms > 0 ? timeout_ms : 10000);
            gss_release_buffer(&minor, &tok);
            c->accepted = status == 200;
            if (!c->accepted) {
                char why[64];
                if (status < 0)
                    snprintf(why, sizeof(why), "no HTTP answer on port %d",
                             a->members[m].http_port);
                else
                    snprintf(why, sizeof(why), "HTTP %d", status);
                c->reason = strdup(why);
            }
        }
    }

cleanup:
    for (size_t i = 0; jobs != NULL && i < n_jobs; i++) {
        free(jobs[i].req.token);
        jobs[i].req.token = NULL;
    }
    jobs_free(jobs, n_jobs);
    free(owner);
    if (cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &cred);
    kasa_kvno_set_clear(&set);
    kasa_array_free(a);
    return ret;
}

long kasa_http_probe(kasa_ctx *ctx, const kasa_config *cfg, const char *as, const char *spn,
                     const char *address, int port, int *status)
{
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
    char host[300];
    OM_uint32 minor;
    long ret;

    *status = -1;
    snprintf(host, sizeof(host), "%.*s",
             (int)strcspn(strchr(spn, '/') ? strchr(spn, '/') + 1 : spn, "@:/"),
             strchr(spn, '/') ? strchr(spn, '/') + 1 : spn);
    ret = verify_cred(ctx, cfg, as, &cred);
    if (!ret)
        ret = mint_token(ctx, cred, spn, true, &tok);
    if (!ret)
        *status = http_try(address, port, host, &tok, 10000);
    gss_release_buffer(&minor, &tok);
    if (cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &cred);
    return ret;
}
