/*
 * kasa roll, kasa copy and kasa status: the seed's RollAlternateServiceAccountPassword.ps1
 * (-ToArrayMembers, -ToSpecificServers, -CopyFrom) and Get-ClientAccessServer
 * -IncludeAlternateServiceAccountCredentialStatus.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "kasa/array.h"
#include "kasa/roll.h"

/* Split a comma-separated list in place into *out (which points into s). */
static int split_list(struct cli *cli, char *s, const char ***out, size_t *n, const char *what)
{
    const char **list = calloc(strlen(s) / 2 + 2, sizeof(*list));
    char *tok, *save = NULL;

    *n = 0;
    if (list == NULL)
        return cli_fail(cli, kasa_set_error(cli->ctx, KASA_ERR_NOMEM, NULL));
    for (tok = strtok_r(s, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
        list[(*n)++] = tok;
    if (*n == 0) {
        free(list);
        return cli_usage(cli, "%s is an empty list", what);
    }
    *out = list;
    return 0;
}

static void print_progress(void *data, const char *member, const char *step, const char *detail)
{
    (void)data;
    printf("  %-24s %-8s %s\n", member, step, detail);
    fflush(stdout);
}

static void print_result(const kasa_roll_result *r)
{
    struct table *t;

    if (r->n == 0)
        return;
    t = table_new(3, "MEMBER", "RESULT", "REASON");
    for (size_t i = 0; i < r->n; i++)
        table_add(t, r->members[i].host, r->members[i].code ? "FAILED" : "ok",
                  r->members[i].code ? r->members[i].message : "");
    table_print(t, stdout);
    table_free(t);
}

static int parse_timeout(struct cli *cli, const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < 100 || v > 600000)
        return cli_usage(cli, "--timeout takes milliseconds from 100 to 600000");
    *out = (int)v;
    return 0;
}

/* A duration: whole seconds, or a number with s, m, h or d after it; at least 1 s. */
static int parse_duration(struct cli *cli, const char *opt, const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    int64_t unit = *end == 'd' ? 86400 : *end == 'h' ? 3600 : *end == 'm' ? 60 : 1;

    if (*s < '0' || *s > '9' || (*end != '\0' && end[1] != '\0') ||
        (*end != '\0' && strchr("smhd", *end) == NULL) || v < 1 || v > 36500LL * 86400 / unit)
        return cli_usage(cli, "%s takes a duration: seconds, or a number with s, m, h or d", opt);
    *out = (int64_t)v * unit;
    return 0;
}

/* A duration in words: 29d, 5h, 12m, 40s (its largest unit, rounded down). */
static const char *duration_words(int64_t s, char *buf, size_t len)
{
    if (s >= 86400)
        snprintf(buf, len, "%lldd", (long long)(s / 86400));
    else if (s >= 3600)
        snprintf(buf, len, "%lldh", (long long)(s / 3600));
    else if (s >= 60)
        snprintf(buf, len, "%lldm", (long long)(s / 60));
    else
        snprintf(buf, len, "%llds", (long long)(s > 0 ? s : 0));
    return buf;
}

/*
 * --if-older-than: whether the array's last commit is younger than max_age (then nothing is
 * rolled). Only a commit kasa recorded counts: an array never rolled, or with a roll left
 * interrupted, is rolled (and the roll itself says what to do about the latter).
 */
static int young_enough(struct cli *cli, const char *fqdn, int64_t max_age, bool *young)
{
    kasa_array *a = NULL;
    char when[32], age[32], limit[32];
    int64_t now = (int64_t)time(NULL);
    long ret;

    *young = false;
    ret = kasa_array_get(cli->dir, fqdn, &a);
    if (ret)
        return cli_fail(cli, ret);
    if (a->committed_at > 0 && a->roll_kvno == 0 && now - a->committed_at < max_age) {
        printf("%s: kvno %u was committed %s ago (%s), younger than %s: nothing to roll\n", fqdn,
               a->committed_kvno, duration_words(now - a->committed_at, age, sizeof(age)),
               cli_time(a->committed_at, when, sizeof(when)),
               duration_words(max_age, limit, sizeof(limit)));
        *young = true;
    }
    kasa_array_free(a);
    return EXIT_OK;
}

int cmd_roll(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"members", required_argument, NULL, 'm'},
        {"dry-run", no_argument, NULL, 'n'},
        {"force", no_argument, NULL, 'F'},
        {"resume", no_argument, NULL, 'R'},
        {"verbose", no_argument, NULL, 'v'},
        {"timeout", required_argument, NULL, 't'},
        {"if-older-than", required_argument, NULL, 'O'},
        {NULL, 0, NULL, 0},
    };
    kasa_roll_opts o = {0};
    kasa_roll_result r;
    const char **members = NULL;
    char *member_arg = NULL;
    bool verbose = cli->verbose, young = false;
    int64_t max_age = 0;
    int c, st;
    long ret;

    snprintf(cli->cmd, sizeof(cli->cmd), "roll");
    optind = 0;
    while ((c = cli_getopt(cli, argc, argv, "m:nvt:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs("usage: kasa roll ARRAY [--members H1,H2] [--dry-run] [--force] [-v]\n"
                  "                 [--if-older-than DURATION]\n"
                  "       kasa roll --resume ARRAY\n"
                  "\n"
                  "Give the array's ASA fresh keys: stage them on every member (or those\n"
                  "named), and only when all hold them, switch the directory to them.\n"
                  "  -m, --members H1,H2   only these members (-ToSpecificServers)\n"
                  "  -n, --dry-run         plan and check the members; change nothing\n"
                  "      --force           commit even if members failed; mark them stale\n"
                  "      --resume          finish an interrupted roll\n"
                  "  -v, --verbose         each step for each member as it happens\n"
                  "      --timeout MS      per member (default 10000)\n"
                  "      --if-older-than DURATION\n"
                  "                        only when the last commit is older (30d, 12h,\n"
                  "                        90m, or seconds): for a timer; exit 0 otherwise\n"
                  "Exit status 3 when a member failed (the directory is unchanged).\n",
                  stdout);
            return EXIT_OK;
        case 'm':
            member_arg = optarg;
            break;
        case 'n':
            o.dry_run = true;
            break;
        case 'F':
            o.force = true;
            break;
        case 'R':
            o.resume = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 't':
            if ((st = parse_timeout(cli, optarg, &o.timeout_ms)) != 0)
                return st;
            break;
        case 'O':
            if ((st = parse_duration(cli, "--if-older-than", optarg, &max_age)) != 0)
                return st;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    st = cli_operands(cli, argc - optind, 1, 1, "ARRAY");
    if (!st)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st && o.resume && (o.dry_run || member_arg != NULL))
        st = cli_usage(cli, "--resume takes no --dry-run or --members");
    if (!st && o.resume && max_age > 0)
        st = cli_usage(cli, "--resume finishes a roll whatever its age: no --if-older-than");
    if (!st && member_arg != NULL) {
        st = split_list(cli, member_arg, &members, &o.n_members, "--members");
        o.members = members;
    }
    if (!st)
        st = cli_open_dir(cli);
    if (!st && max_age > 0)
        st = young_enough(cli, argv[optind], max_age, &young);
    if (st || young) {
        free(members);
        return st;
    }
    if (verbose) {
        o.progress = print_progress;
        printf("%s %s:\n", o.resume ? "resuming the roll of" : "rolling", argv[optind]);
    }
    ret = kasa_roll(cli->dir, cli->cfg, argv[optind], &o, &r);
    if (o.dry_run && !ret)
        printf("dry run: would roll %s from kvno %u to kvno %u on %zu member%s; nothing changed\n",
               argv[optind], r.from_kvno, r.to_kvno, r.n, r.n == 1 ? "" : "s");
    else if (!ret && o.resume && !r.committed)
        printf("no roll of %s was in progress; the members know kvno %u is committed\n",
               argv[optind], r.to_kvno);
    else if (!ret)
        printf("rolled %s from kvno %u to kvno %u: %zu member%s staged, directory committed\n",
               argv[optind], r.from_kvno, r.to_kvno, r.n, r.n == 1 ? "" : "s");
    if (ret || verbose)
        print_result(&r);
    st = ret ? cli_fail(cli, ret) : EXIT_OK;
    kasa_roll_result_clear(&r);
    free(members);
    return st;
}

int cmd_copy(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"timeout", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    kasa_roll_opts o = {0};
    kasa_roll_result r;
    const char *from = NULL, **to = NULL;
    char *to_arg = NULL;
    size_t n_to = 0;
    int c, st;
    long ret;

    snprintf(cli->cmd, sizeof(cli->cmd), "copy");
    optind = 0;
    while ((c = cli_getopt(cli, argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs("usage: kasa copy ARRAY --from HOST --to HOST[,HOST] [--timeout MS] [-v]\n"
                  "\n"
                  "Copy the keys HOST holds to other members, for a new or rebuilt member;\n"
                  "the directory is not touched (-CopyFrom ... -ToSpecificServers).\n"
                  "      --timeout MS  per member (default 10000)\n"
                  "  -v, --verbose     each step for each member as it happens\n",
                  stdout);
            return EXIT_OK;
        case 'f':
            from = optarg;
            break;
        case 't':
            to_arg = optarg;
            break;
        case 'v':
            o.progress = print_progress;
            break;
        case 'T':
            if ((st = parse_timeout(cli, optarg, &o.timeout_ms)) != 0)
                return st;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    st = cli_operands(cli, argc - optind, 1, 1, "ARRAY");
    if (!st && (from == NULL || to_arg == NULL))
        st = cli_usage(cli, "name the source with --from and the targets with --to");
    if (!st)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st)
        st = split_list(cli, to_arg, &to, &n_to, "--to");
    for (size_t i = 0; !st && i < n_to; i++) {
        if (strcasecmp(to[i], from) == 0)
            st = cli_usage(cli, "%s is both the source and a target", from);
    }
    if (!st)
        st = cli_open_dir(cli);
    if (st) {
        free(to);
        return st;
    }
    if (cli->verbose)
        o.progress = print_progress;
    ret = kasa_copy(cli->dir, cli->cfg, argv[optind], from, to, n_to, &o, &r);
    if (!ret)
        printf("copied the keys of %s to %zu member%s of %s\n", from, n_to, n_to == 1 ? "" : "s",
               argv[optind]);
    print_result(&r);
    st = ret ? cli_fail(cli, ret) : EXIT_OK;
    kasa_roll_result_clear(&r);
    free(to);
    return st;
}

/* Whether set is staged: newer than the directory's kvno (only known when it was asked). */
static bool is_staged(const kasa_array_status *st, const kasa_kvno_set *set)
{
    return !st->dir_unreachable && set->kvno > st->dir_kvno;
}

/* The set that is from_newest committed (not staged) kvnos from the newest, or NULL. */
static const kasa_kvno_set *committed_set(const kasa_array_status *st, const kasa_member_status *m,
                                          size_t from_newest, const kasa_kvno_set **successor)
{
    const kasa_kvno_set *next = NULL;

    for (size_t s = m->reply.n_sets; s-- > 0;) {
        const kasa_kvno_set *set = &m->reply.sets[s];
        if (is_staged(st, set))
            continue;
        if (from_newest-- == 0) {
            if (successor != NULL)
                *successor = next;
            return set;
        }
        next = set;
    }
    return NULL;
}

/* When a kept kvno may go: its successor's commit plus the keep window; 0 when unknown. */
static int64_t retire_after(const kasa_array_status *st, const kasa_kvno_set *successor)
{
    return successor != NULL && successor->committed != 0 && st->keep_seconds > 0
               ? successor->committed + st->keep_seconds
               : 0;
}

/* Every kvno m holds, newest first, each with when it may be retired: "kvno 7 (latest),
 * kvno 6 until 2026-12-01T13:05:00Z, kvno 5 until ..."; a staged one says so. */
static void kvnos_held(const kasa_array_status *st, const kasa_member_status *m, char *buf,
                       size_t len)
{
    size_t used = 0, rank = 0;
    char when[32];

    buf[0] = '\0';
    for (size_t s = m->reply.n_sets; s-- > 0 && used < len;) {
        const kasa_kvno_set *set = &m->reply.sets[s], *next = NULL;
        const char *sep = used ? ", " : "";
        int64_t until;
        if (is_staged(st, set)) {
            used += (size_t)snprintf(buf + used, len - used, "%skvno %u (staged, not committed)",
                                     sep, set->kvno);
            continue;
        }
        (void)committed_set(st, m, rank, &next);
        until = rank == 0 ? 0 : retire_after(st, next);
        if (rank == 0)
            used += (size_t)snprintf(buf + used, len - used, "%skvno %u (latest)", sep, set->kvno);
        else if (until != 0)
            used += (size_t)snprintf(buf + used, len - used, "%skvno %u until %s", sep, set->kvno,
                                     cli_time(until, when, sizeof(when)));
        else
            used += (size_t)snprintf(buf + used, len - used, "%skvno %u (kept)", sep, set->kvno);
        rank++;
    }
}

/* Why a member is not OK; "" when nothing is wrong. */
static const char *member_note(const kasa_member_status *m)
{
    return m->error != NULL       ? m->error
           : m->wrong_key != NULL ? m->wrong_key
           : m->foreign != NULL   ? m->foreign
                                  : "";
}

static json_object *status_json(const kasa_array_status *st)
{
    json_object *o = json_object_new_object(), *ms = json_object_new_array();
    char when[32];

    json_object_object_add(o, "array", cli_json_str(st->array->fqdn));
    json_object_object_add(o, "asa", cli_json_str(st->array->asa));
    json_object_object_add(o, "directory_kvno",
                           st->dir_unreachable ? NULL : json_object_new_int64(st->dir_kvno));
    json_object_object_add(o, "directory_error", cli_json_str(st->dir_error));
    json_object_object_add(o, "keep_seconds", json_object_new_int64(st->keep_seconds));
    json_object_object_add(o, "keep_source", cli_json_str(st->keep_source));
    json_object_object_add(o, "roll", cli_json_str(st->roll_note));
    json_object_object_add(o, "roll_interrupted", json_object_new_boolean(st->roll_interrupted));
    json_object_object_add(o, "keys_changed_outside_kasa", cli_json_str(st->foreign_change));
    json_object_object_add(o, "keys_unchecked", cli_json_str(st->keys_unchecked));
    for (size_t i = 0; i < st->n; i++) {
        const kasa_member_status *m = &st->members[i];
        json_object *j = json_object_new_object(), *ks = json_object_new_array();
        size_t rank = 0;
        json_object_object_add(j, "host", cli_json_str(m->host));
        json_object_object_add(j, "port", json_object_new_int(m->port));
        json_object_object_add(j, "verdict", cli_json_str(kasa_verdict_name(m->verdict)));
        json_object_object_add(j, "reachable",
                               json_object_new_boolean(m->verdict != KASA_VERDICT_UNREACHABLE));
        json_object_object_add(j, "error", cli_json_str(m->error));
        json_object_object_add(j, "foreign", cli_json_str(m->foreign));
        json_object_object_add(j, "wrong_key", cli_json_str(m->wrong_key));
        for (size_t s = m->reply.n_sets; s-- > 0;) {
            const kasa_kvno_set *set = &m->reply.sets[s], *next = NULL;
            json_object *k = json_object_new_object();
            bool staged = is_staged(st, set);
            int64_t until = 0;
            if (!staged) {
                (void)committed_set(st, m, rank, &next);
                until = rank == 0 ? 0 : retire_after(st, next);
            }
            json_object_object_add(k, "kvno", json_object_new_int64(set->kvno));
            json_object_object_add(k, "arrived",
                                   cli_json_str(cli_time(set->arrived, when, sizeof(when))));
            json_object_object_add(k, "principals",
                                   json_object_new_int64((int64_t)set->n_principals));
            json_object_object_add(k, "role",
                                   cli_json_str(staged      ? "staged"
                                                : rank == 0 ? "latest"
                                                : rank == 1 ? "previous"
                                                            : "older"));
            json_object_object_add(k, "retire_after",
                                   until != 0 ? cli_json_str(cli_time(until, when, sizeof(when)))
                                              : NULL);
            json_object_array_add(ks, k);
            if (!staged)
                rank++;
        }
        json_object_object_add(j, "kvnos", ks);
        json_object_array_add(ms, j);
    }
    json_object_object_add(o, "members", ms);
    return o;
}

/* The array, then a row per member (its verdict, why not OK) with, indented under it,
 * every kvno it holds: one line each, however many members and kvnos. */
static void status_print(const kasa_array_status *st)
{
    int wh = (int)strlen("MEMBER"), wv = (int)strlen("VERDICT");
    char span[32];

    if (st->dir_unreachable)
        printf("array %s: ASA %s; the directory could not be asked (%s): what each member "
               "holds, not compared with it\n",
               st->array->fqdn, st->array->asa, st->dir_error != NULL ? st->dir_error : "");
    else
        printf("array %s: ASA %s, directory kvno %u; superseded kvnos are kept %s%s%s%s\n",
               st->array->fqdn, st->array->asa, st->dir_kvno,
               cli_duration(st->keep_seconds, span, sizeof(span)),
               st->keep_source != NULL ? " (" : "", st->keep_source != NULL ? st->keep_source : "",
               st->keep_source != NULL ? ")" : "");
    if (st->roll_note != NULL)
        printf("%s: %s\n", st->roll_interrupted ? "INTERRUPTED" : "in progress", st->roll_note);
    if (st->foreign_change != NULL)
        printf("CHANGED OUTSIDE KASA: %s\n", st->foreign_change);
    if (st->keys_unchecked != NULL)
        printf("KEYS NOT CHECKED: %s; the verdicts compare kvnos only, so status exits 1\n",
               st->keys_unchecked);
    for (size_t i = 0; i < st->n; i++) {
        int h = (int)strlen(st->members[i].host),
            v = (int)strlen(kasa_verdict_name(st->members[i].verdict));
        wh = h > wh ? h : wh;
        wv = v > wv ? v : wv;
    }
    printf("%-*s  %-*s  NOTE\n", wh, "MEMBER", wv, "VERDICT");
    for (size_t i = 0; i < st->n; i++) {
        const kasa_member_status *m = &st->members[i];
        char kvnos[2048];
        printf("%-*s  %-*s  %s\n", wh, m->host, wv, kasa_verdict_name(m->verdict), member_note(m));
        kvnos_held(st, m, kvnos, sizeof(kvnos));
        if (kvnos[0] != '\0')
            printf("    %s\n", kvnos);
    }
}

/* Every array this host remembers ([array] cache_dir), for when the directory is down. */
static long cached_arrays(struct cli *cli, char ***names, size_t *n)
{
    DIR *d = opendir(cli->cfg->cache_dir);
    struct dirent *e;

    *names = NULL;
    *n = 0;
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char **more;
        if (strncmp(e->d_name, "array-", 6) != 0 || strstr(e->d_name, ".tmp.") != NULL)
            continue;
        more = realloc(*names, (*n + 1) * sizeof(**names));
        if (more == NULL)
            break;
        *names = more;
        (*names)[(*n)++] = strdup(e->d_name + 6);
    }
    closedir(d);
    return 0;
}

/* Every member OK, its keys checked, no roll interrupted, no key changed behind kasa's
 * back. */
static bool status_healthy(const kasa_array_status *s)
{
    bool ok = s->n > 0 && !s->roll_interrupted && s->foreign_change == NULL &&
              s->keys_unchecked == NULL && !s->dir_unreachable;

    for (size_t m = 0; m < s->n; m++)
        ok = ok && s->members[m].verdict == KASA_VERDICT_OK;
    return ok;
}

/* kasa status with the directory down: the arrays as this host last read them, and what
 * their members hold; always a failure, since nothing could be compared. */
static int status_offline(struct cli *cli, const char *fqdn, int timeout, bool json)
{
    char **names = NULL, *why = strdup(kasa_error(cli->ctx));
    size_t n = 0, shown = 0;
    kasa_array_status *sts;
    json_object *all = json ? json_object_new_array() : NULL;

    if (fqdn != NULL) {
        names = calloc(1, sizeof(*names));
        if (names != NULL && (names[0] = strdup(fqdn)) != NULL)
            n = 1;
    } else {
        (void)cached_arrays(cli, &names, &n);
    }
    sts = calloc(n + 1, sizeof(*sts));
    for (size_t i = 0; sts != NULL && i < n; i++) {
        if (kasa_status_cached(cli->ctx, cli->cfg, names[i], why, timeout, &sts[shown]) == 0)
            shown++;
    }
    /* One line: what failed, and whether there is anything to show instead. */
    if (shown == 0)
        cli_say(cli, "%s; and %s", why != NULL ? why : "",
                fqdn != NULL ? "this host never read that array, so its members are unknown"
                             : "this host remembers no array to ask the members of");
    else
        cli_say(cli, "%s; showing what the members hold", why != NULL ? why : "");
    for (size_t i = 0; i < shown; i++) {
        if (json) {
            json_object_array_add(all, status_json(&sts[i]));
        } else {
            if (i > 0)
                putchar('\n');
            status_print(&sts[i]);
        }
        kasa_array_status_clear(&sts[i]);
    }
    if (json) {
        if (shown > 0)
            cli_json_print(fqdn != NULL ? json_object_get(json_object_array_get_idx(all, 0))
                                        : json_object_get(all));
        json_object_put(all);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(sts);
    free(why);
    return EXIT_FAILED;
}

/*
 * kasa status --nagios: one line and the monitoring plugins' exit status (0 OK, 1 WARNING,
 * 2 CRITICAL, 3 UNKNOWN), the way Nagios, Icinga and their kin run checks: CRITICAL for a
 * member not OK, an interrupted roll or keys changed outside kasa; WARNING for a roll in
 * progress or keys not checked; UNKNOWN when the directory or the array cannot be read.
 */
enum { NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN };

static int status_nagios(struct cli *cli, const char *fqdn, int timeout)
{
    static const char *const words[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
    kasa_array *arrays = NULL;
    char text[2048] = "", perf[512] = "";
    size_t n = 0, used = 0, pused = 0;
    int worst = NAGIOS_OK;
    long ret;

    if (cli_try_open_dir(cli, &ret) != 0) {
        printf("KASA UNKNOWN - cannot ask the directory: %s\n", kasa_error(cli->ctx));
        return NAGIOS_UNKNOWN;
    }
    ret = fqdn != NULL ? kasa_array_get(cli->dir, fqdn, &arrays)
                       : kasa_array_list(cli->dir, &arrays, &n);
    if (fqdn != NULL && ret == 0)
        n = 1;
    if (ret || n == 0) {
        printf("KASA UNKNOWN - %s\n", ret ? kasa_error(cli->ctx) : "no arrays");
        kasa_array_list_free(arrays, n);
        return NAGIOS_UNKNOWN;
    }
    for (size_t i = 0; i < n; i++) {
        kasa_array_status s;
        size_t ok = 0;
        int level = NAGIOS_OK;
        if (kasa_status(cli->dir, cli->cfg, arrays[i].fqdn, timeout, &s) != 0) {
            used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s: %s", used ? "; " : "",
                                     arrays[i].fqdn, kasa_error(cli->ctx));
            worst = NAGIOS_UNKNOWN;
            continue;
        }
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s:", used ? "; " : "",
                                 arrays[i].fqdn);
        for (size_t m = 0; m < s.n && used < sizeof(text); m++) {
            if (s.members[m].verdict == KASA_VERDICT_OK) {
                ok++;
                continue;
            }
            level = NAGIOS_CRITICAL;
            used += (size_t)snprintf(text + used, sizeof(text) - used, " %s %s", s.members[m].host,
                                     kasa_verdict_name(s.members[m].verdict));
        }
        if (used < sizeof(text) && s.roll_interrupted) {
            level = NAGIOS_CRITICAL;
            used +=
                (size_t)snprintf(text + used, sizeof(text) - used,
                                 " a roll was interrupted (kasa roll --resume %s)", arrays[i].fqdn);
        } else if (used < sizeof(text) && s.roll_note != NULL && level < NAGIOS_WARNING) {
            level = NAGIOS_WARNING;
            used += (size_t)snprintf(text + used, sizeof(text) - used, " a roll is in progress");
        }
        if (used < sizeof(text) && s.foreign_change != NULL) {
            level = NAGIOS_CRITICAL;
            used += (size_t)snprintf(text + used, sizeof(text) - used,
                                     " keys changed outside kasa (kasa roll %s)", arrays[i].fqdn);
        }
        if (used < sizeof(text) && s.keys_unchecked != NULL && level < NAGIOS_WARNING) {
            level = NAGIOS_WARNING;
            used += (size_t)snprintf(text + used, sizeof(text) - used, " keys not checked (%s)",
                                     s.keys_unchecked);
        }
        if (s.n == 0)
            level = NAGIOS_CRITICAL;
        if (used < sizeof(text))
            used += (size_t)snprintf(text + used, sizeof(text) - used,
                                     " %zu of %zu members OK at kvno %u", ok, s.n, s.dir_kvno);
        if (pused < sizeof(perf))
            pused += (size_t)snprintf(perf + pused, sizeof(perf) - pused,
                                      "%s'%s_ok'=%zu;;;0;%zu '%s_kvno'=%u", pused ? " " : "",
                                      arrays[i].fqdn, ok, s.n, arrays[i].fqdn, s.dir_kvno);
        if (level > worst)
            worst = level;
        kasa_array_status_clear(&s);
    }
    printf("KASA %s - %s | %s\n", words[worst], text, perf);
    kasa_array_list_free(arrays, n);
    return worst;
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"nagios", no_argument, NULL, 'N'},
        {NULL, 0, NULL, 0},
    };
    kasa_array *arrays = NULL;
    json_object *all = NULL;
    size_t n = 0;
    bool json = false, healthy = true, nagios = false;
    int c, st, timeout = 0;
    long ret;

    snprintf(cli->cmd, sizeof(cli->cmd), "status");
    optind = 0;
    while ((c = cli_getopt(cli, argc, argv, "", opts, &json)) != -1) {
        if (c == 'h') {
            fputs("usage: kasa status [ARRAY] [--json | --nagios] [--timeout MS]\n"
                  "\n"
                  "For each member: every kvno it holds (and until when each is kept),\n"
                  "against the directory's kvno and key: OK, STALE, MISSING, UNREACHABLE,\n"
                  "FOREIGN (holds a principal or kvno the array does not own) or WRONG-KEY\n"
                  "(the right kvno, not the directory's key). Also a roll in progress or\n"
                  "interrupted, and keys changed outside kasa. With the directory down, what\n"
                  "each member holds (UNCHECKED). Exit 0 only when all is well.\n"
                  "  --nagios   one line, and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n"
                  "             (for Nagios, Icinga and other monitoring plugins' runners)\n",
                  stdout);
            return EXIT_OK;
        }
        if (c == 't') {
            if ((st = parse_timeout(cli, optarg, &timeout)) != 0)
                return st;
        } else if (c == 'N') {
            nagios = true;
        } else if (c != 'j') {
            return EXIT_USAGE;
        }
    }
    st = cli_operands(cli, argc - optind, 0, 1, "at most ARRAY");
    if (!st && argc - optind == 1)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st && nagios && json)
        st = cli_usage(cli, "give --json or --nagios, not both");
    if (st)
        return st;
    if (nagios)
        return status_nagios(cli, argc - optind == 1 ? argv[optind] : NULL, timeout);
    if (cli_try_open_dir(cli, &ret) != 0) {
        if (cli->cfg == NULL)
            return cli_fail(cli, ret);
        return status_offline(cli, argc - optind == 1 ? argv[optind] : NULL, timeout, json);
    }
    if (argc - optind == 1) {
        ret = kasa_array_get(cli->dir, argv[optind], &arrays);
        n = ret ? 0 : 1;
    } else {
        ret = kasa_array_list(cli->dir, &arrays, &n);
    }
    if (ret)
        return cli_fail(cli, ret);
    if (json)
        all = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        kasa_array_status s;
        ret = kasa_status(cli->dir, cli->cfg, arrays[i].fqdn, timeout, &s);
        if (ret) {
            st = cli_fail(cli, ret);
            healthy = false;
            continue;
        }
        healthy = healthy && status_healthy(&s);
        if (json)
            json_object_array_add(all, status_json(&s));
        else {
            if (i > 0)
                putchar('\n');
            status_print(&s);
        }
        kasa_array_status_clear(&s);
    }
    if (json)
        cli_json_print(argc - optind == 1 && json_object_array_length(all) == 1
                           ? json_object_get(json_object_array_get_idx(all, 0))
                           : json_object_get(all));
    if (all != NULL)
        json_object_put(all);
    if (n == 0 && !json)
        printf("no arrays; create one with kasa array create\n");
    kasa_array_list_free(arrays, n);
    return st ? st : healthy ? EXIT_OK : EXIT_FAILED;
}

int cmd_verify(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"as", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    kasa_verify_result r;
    const char *as = NULL;
    bool json = false, all = true;
    int c, st, timeout = 0;
    long ret;

    snprintf(cli->cmd, sizeof(cli->cmd), "verify");
    optind = 0;
    while ((c = cli_getopt(cli, argc, argv, "", opts, &json)) != -1) {
        if (c == 'h') {
            fputs("usage: kasa verify ARRAY [--as PRINCIPAL] [--json] [--timeout MS]\n"
                  "\n"
                  "For every SPN of the array, get a service ticket and present it to every\n"
                  "member directly (not through the balancer): to kasad, which asks the\n"
                  "member's keytab, and to the member's HTTP endpoint. Accepted or rejected,\n"
                  "with the reason. Exit 0 only when everything is accepted.\n"
                  "  --as PRINCIPAL   a test principal whose tickets are in the credential cache\n"
                  "                   (default: kasa's own principal, from its keytab)\n",
                  stdout);
            return EXIT_OK;
        }
        if (c == 'a')
            as = optarg;
        else if (c == 't') {
            if ((st = parse_timeout(cli, optarg, &timeout)) != 0)
                return st;
        } else if (c != 'j')
            return EXIT_USAGE;
    }
    st = cli_operands(cli, argc - optind, 1, 1, "ARRAY");
    if (!st)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_verify(cli->dir, cli->cfg, argv[optind], as, timeout, &r);
    if (ret)
        return cli_fail(cli, ret);
    for (size_t i = 0; i < r.n; i++)
        all = all && r.checks[i].accepted;
    if (json) {
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        for (size_t i = 0; i < r.n; i++) {
            json_object *k = json_object_new_object();
            json_object_object_add(k, "member", cli_json_str(r.checks[i].member));
            json_object_object_add(k, "spn", cli_json_str(r.checks[i].spn));
            json_object_object_add(k, "via", cli_json_str(r.checks[i].via));
            json_object_object_add(
                k, "kvno", r.checks[i].kvno ? json_object_new_int64(r.checks[i].kvno) : NULL);
            json_object_object_add(k, "accepted", json_object_new_boolean(r.checks[i].accepted));
            json_object_object_add(k, "reason", cli_json_str(r.checks[i].reason));
            json_object_array_add(a, k);
        }
        json_object_object_add(o, "array", cli_json_str(argv[optind]));
        json_object_object_add(o, "all_accepted", json_object_new_boolean(all));
        json_object_object_add(o, "checks", a);
        cli_json_print(o);
    } else {
        struct table *t = table_new(6, "MEMBER", "SPN", "VIA", "KVNO", "RESULT", "REASON");
        for (size_t i = 0; i < r.n; i++) {
            char kvno[16] = "-";
            if (r.checks[i].kvno)
                snprintf(kvno, sizeof(kvno), "%u", r.checks[i].kvno);
            table_add(t, r.checks[i].member, r.checks[i].spn, r.checks[i].via, kvno,
                      r.checks[i].accepted ? "accepted" : "REJECTED",
                      r.checks[i].reason != NULL ? r.checks[i].reason : "");
        }
        table_print(t, stdout);
        table_free(t);
    }
    kasa_verify_result_clear(&r);
    return all ? EXIT_OK : EXIT_FAILED;
}

/*
 * Heal one array: copy the keys of a healthy member (OK) to each member that is STALE or
 * MISSING and answers, as kasa copy does, never touching the directory's keys. Says what
 * it did and what it left (a roll to resume, keys changed outside kasa, members it cannot
 * heal: unreachable, foreign, wrong key); true when every member is OK at the end.
 */
static bool heal_array(struct cli *cli, const char *fqdn, const kasa_roll_opts *o)
{
    kasa_array_status s;
    kasa_roll_result r;
    const char **to = NULL, *from = NULL;
    size_t n_to = 0, left = 0;
    bool healthy;
    long ret;

    ret = kasa_status(cli->dir, cli->cfg, fqdn, o->timeout_ms, &s);
    if (ret) {
        cli_fail(cli, ret);
        return false;
    }
    if (s.roll_note != NULL || s.foreign_change != NULL) {
        /* The directory itself is not where the members think it is: a copy between
         * members cannot fix that, a roll can. */
        printf("%s: %s; heal copies between members and leaves this to kasa roll\n", fqdn,
               s.roll_note != NULL ? s.roll_note : s.foreign_change);
        kasa_array_status_clear(&s);
        return false;
    }
    to = calloc(s.n + 1, sizeof(*to));
    for (size_t i = 0; to != NULL && i < s.n; i++) {
        const kasa_member_status *m = &s.members[i];
        if (m->verdict == KASA_VERDICT_OK && from == NULL)
            from = m->host;
        else if (m->verdict == KASA_VERDICT_STALE || m->verdict == KASA_VERDICT_MISSING)
            to[n_to++] = m->host;
        else if (m->verdict != KASA_VERDICT_OK) {
            printf("%s: %s is %s, which heal does not fix%s%s\n", fqdn, m->host,
                   kasa_verdict_name(m->verdict), m->error != NULL ? ": " : "",
                   m->error != NULL ? m->error : "");
            left++;
        }
    }
    healthy = to != NULL && left == 0;
    if (to == NULL) {
        cli_fail(cli, kasa_set_error(cli->ctx, KASA_ERR_NOMEM, NULL));
    } else if (n_to == 0) {
        if (left == 0)
            printf("%s: every member holds kvno %u; nothing to heal\n", fqdn, s.dir_kvno);
    } else if (from == NULL) {
        printf("%s: no member holds kvno %u to copy from; kasa roll %s gives every member new "
               "keys\n",
               fqdn, s.dir_kvno, fqdn);
        healthy = false;
    } else {
        ret = kasa_copy(cli->dir, cli->cfg, fqdn, from, to, n_to, o, &r);
        for (size_t i = 0; i < r.n; i++) {
            if (r.members[i].code == 0)
                printf("%s: healed %s: copied kvno %u from %s\n", fqdn, r.members[i].host,
                       s.dir_kvno, from);
            else
                printf("%s: cannot heal %s: %s\n", fqdn, r.members[i].host,
                       r.members[i].message != NULL ? r.members[i].message : "failed");
        }
        if (ret) {
            cli_fail(cli, ret);
            healthy = false;
        }
        kasa_roll_result_clear(&r);
    }
    free(to);
    kasa_array_status_clear(&s);
    return healthy;
}

int cmd_heal(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    kasa_roll_opts o = {0};
    kasa_array *arrays = NULL;
    size_t n = 0;
    bool healthy = true;
    int c, st;
    long ret;

    snprintf(cli->cmd, sizeof(cli->cmd), "heal");
    optind = 0;
    while ((c = cli_getopt(cli, argc, argv, "vt:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs("usage: kasa heal [ARRAY] [-v] [-t|--timeout MS]\n"
                  "\n"
                  "Give every member that is STALE or MISSING and answers again the keys a\n"
                  "healthy member holds (as kasa copy does), in one array or all of them;\n"
                  "the directory is not touched. For a timer, beside kasa roll\n"
                  "--if-older-than. Exit 0 only when every member is OK at the end.\n",
                  stdout);
            return EXIT_OK;
        case 'v':
            o.progress = print_progress;
            break;
        case 't':
            if ((st = parse_timeout(cli, optarg, &o.timeout_ms)) != 0)
                return st;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    st = cli_operands(cli, argc - optind, 0, 1, "at most ARRAY");
    if (!st && argc - optind == 1)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    if (cli->verbose)
        o.progress = print_progress;
    if (argc - optind == 1) {
        ret = kasa_array_get(cli->dir, argv[optind], &arrays);
        n = ret ? 0 : 1;
    } else {
        ret = kasa_array_list(cli->dir, &arrays, &n);
    }
    if (ret)
        return cli_fail(cli, ret);
    for (size_t i = 0; i < n; i++)
        healthy = heal_array(cli, arrays[i].fqdn, &o) && healthy;
    if (n == 0)
        printf("no arrays; create one with kasa array create\n");
    kasa_array_list_free(arrays, n);
    return healthy ? EXIT_OK : EXIT_FAILED;
}
