/*
 * The roll, copy and status. Members are contacted in parallel, one thread each with
 * its own library context; the directory changes only after every target proved it
 * holds the new keys. Keys live in memory only and are wiped when freed.
 */
#include "kasa/roll.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "directory.h"
#include "kasa/keytab.h"
#include "kasa/member.h"
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
    static const char *const names[] = {"OK", "STALE", "MISSING", "UNREACHABLE"};

    return (unsigned)v < 4 ? names[v] : "?";
}

void kasa_array_status_clear(kasa_array_status *st)
{
    for (size_t i = 0; i < st->n; i++) {
        free(st->members[i].host);
        free(st->members[i].error);
        kasa_reply_clear(&st->members[i].reply);
    }
    free(st->members);
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

/* Run every job at once and wait for all. */
static void run_all(struct job *jobs, size_t n)
{
    pthread_t *t = calloc(n + 1, sizeof(*t));
    bool *started = calloc(n + 1, sizeof(*started));

    for (size_t i = 0; i < n; i++) {
        started[i] = t != NULL && pthread_create(&t[i], NULL, run_job, &jobs[i]) == 0;
        if (!started[i])
            run_job(&jobs[i]); /* no thread: do it here */
    }
    for (size_t i = 0; i < n; i++) {
        if (started[i])
            pthread_join(t[i], NULL);
    }
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
        return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID,
                              "array %s has no members; add them with kasa array add-member",
                              a->fqdn);
    t = calloc(count, sizeof(*t));
    if (t == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; i < count; i++) {
        t[i] = names != NULL ? kasa_array_member(a, names[i]) : &a->members[i];
        if (t[i] == NULL) {
            free(t);
            return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID, "%s is not a member of %s", names[i],
                                  a->fqdn);
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

/* Tell members kvno was committed, so they can retire what no ticket can need. */
static void retire_all(const kasa_config *cfg, const kasa_roll_opts *opts, const kasa_member **t,
                       size_t n, unsigned kvno, int64_t at)
{
    struct job *jobs = calloc(n + 1, sizeof(*jobs));

    if (jobs == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        job_init(&jobs[i], cfg, opts, t[i], KASA_OP_RETIRE, "retire");
        jobs[i].req.committed_kvno = kvno;
        jobs[i].req.committed_at = at;
        jobs[i].req.keep_seconds =
            opts != NULL && opts->keep_seconds > 0 ? opts->keep_seconds : KASA_KEEP_SECONDS_DEFAULT;
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

long kasa_roll(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, const kasa_roll_opts *opts,
               kasa_roll_result *r)
{
    kasa_ctx *ctx = dir->ctx;
    kasa_array *a = NULL;
    kasa_account *acct = NULL;
    const kasa_member **t = NULL;
    kasa_kvno_set set;
    struct job *jobs = NULL;
    size_t n = 0, failed = 0;
    unsigned char nonce[KASA_PROTO_NONCE];
    long ret;

    memset(r, 0, sizeof(*r));
    memset(&set, 0, sizeof(set));
    /* plan */
    ret = kasa_array_get(dir, fqdn, &a);
    if (!ret)
        ret = kasa_account_get(dir, a->asa, &acct);
    if (!ret)
        ret = targets(ctx, a, opts->members, opts->n_members, &t, &n);
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
            retire_all(cfg, opts, t, n, a->committed_kvno, a->committed_at);
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
    if (opts->resume && a->roll_kvno == 0) {
        /* Nothing staged is pending; the members may still need to hear of the commit. */
        progress(opts, "directory", "resume", "no roll in progress; kvno %u is committed",
                 acct->kvno);
        if (a->committed_kvno != 0)
            retire_all(cfg, opts, t, n, a->committed_kvno, a->committed_at);
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

    /* generate, or for a resume, take the staged keys back from a member */
    if (opts->resume) {
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
        ret = kasa_keyset_generate(ctx, set.kvno, cfg->enctypes, cfg->n_enctypes, &set.keys);
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
    ret = kasa_key_set(dir, a->asa, set.keys);
    if (ret) {
        progress(opts, "directory", "commit", "failed: %s", kasa_error(ctx));
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
            retire_all(cfg, opts, ok, k, a->committed_kvno, a->committed_at);
        free(ok);
    }
    if (failed > 0)
        ret = kasa_set_error(ctx, KASA_ERR_ROLL,
                             "committed kvno %u with --force; %zu member%s marked stale", set.kvno,
                             failed, failed == 1 ? "" : "s");

cleanup:
    for (size_t i = 0; jobs != NULL && i < n; i++)
        memset(&jobs[i].req.stage, 0, sizeof(jobs[i].req.stage)); /* borrowed from set */
    jobs_free(jobs, n);
    kasa_kvno_set_clear(&set);
    kasa_zap(nonce, sizeof(nonce));
    free(t);
    kasa_account_free(acct);
    kasa_array_free(a);
    return ret;
}

long kasa_copy(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, const char *from,
               const char *const *to, size_t n_to, const kasa_roll_opts *opts, kasa_roll_result *r)
{
    kasa_ctx *ctx = dir->ctx;
    kasa_array *a = NULL;
    const kasa_member **src = NULL, **dst = NULL;
    struct job exp, *jobs = NULL;
    size_t n_src = 0, n_dst = 0, failed = 0;
    unsigned char nonce[KASA_PROTO_NONCE];
    long ret;

    memset(r, 0, sizeof(*r));
    memset(&exp, 0, sizeof(exp));
    ret = kasa_array_get(dir, fqdn, &a);
    if (!ret)
        ret = targets(ctx, a, &from, 1, &src, &n_src);
    if (!ret)
        ret = targets(ctx, a, to, n_to, &dst, &n_dst);
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
            retire_all(cfg, opts, ok, k, a->committed_kvno, a->committed_at);
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
    jobs_free(jobs, n_dst);
    kasa_reply_clear(&exp.reply);
    free(exp.message);
    kasa_zap(nonce, sizeof(nonce));
    free(src);
    free(dst);
    kasa_array_free(a);
    return ret;
}

long kasa_status(kasa_dir *dir, const kasa_config *cfg, const char *fqdn, int timeout_ms,
                 kasa_array_status *st)
{
    kasa_roll_opts opts = {.timeout_ms = timeout_ms};
    struct job *jobs = NULL;
    unsigned kvno = 0;
    long ret;

    memset(st, 0, sizeof(*st));
    ret = kasa_array_get(dir, fqdn, &st->array);
    if (!ret)
        ret = kasa_key_kvno(dir, st->array->asa, &kvno);
    if (ret)
        return ret;
    st->dir_kvno = kvno;
    st->members = calloc(st->array->n_members + 1, sizeof(*st->members));
    jobs = calloc(st->array->n_members + 1, sizeof(*jobs));
    if (st->members == NULL || jobs == NULL) {
        free(jobs);
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
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
    }
    jobs_free(jobs, st->array->n_members);
    return 0;
}
