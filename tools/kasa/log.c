/*
 * kasa log summary: read kasa-httpd auth logs and count, per member and per hour,
 * Kerberos and NTLM authentications and failures by reason (the seed's "check the
 * Address Book log for Kerberos", for a whole array at once).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kasa/authlog.h"

#define MAX_REASONS 8

struct bucket {
    char member[128];
    char hour[16]; /* 2026-11-24T20 */
    unsigned long kerberos, ntlm, other, failed;
    char reasons[MAX_REASONS][128];
    unsigned long reason_count[MAX_REASONS];
};

static struct bucket *find(struct bucket **b, size_t *n, size_t *cap, const char *member,
                           const char *hour)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*b)[i].member, member) == 0 && strncmp((*b)[i].hour, hour, 13) == 0)
            return &(*b)[i];
    }
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct bucket *p = realloc(*b, ncap * sizeof(*p));
        if (p == NULL)
            return NULL;
        *b = p;
        *cap = ncap;
    }
    memset(&(*b)[*n], 0, sizeof(**b));
    snprintf((*b)[*n].member, sizeof((*b)[*n].member), "%s", member);
    snprintf((*b)[*n].hour, sizeof((*b)[*n].hour), "%.13s", hour);
    return &(*b)[(*n)++];
}

static void count_reason(struct bucket *b, const char *reason)
{
    for (int i = 0; i < MAX_REASONS; i++) {
        if (b->reasons[i][0] == '\0')
            snprintf(b->reasons[i], sizeof(b->reasons[i]), "%s", reason);
        if (strncmp(b->reasons[i], reason, sizeof(b->reasons[i]) - 1) == 0) {
            b->reason_count[i]++;
            return;
        }
    }
}

static int bucket_cmp(const void *x, const void *y)
{
    const struct bucket *a = x, *b = y;
    int c = strcmp(a->member, b->member);

    return c != 0 ? c : strcmp(a->hour, b->hour);
}

static const char summary_help[] =
    "usage: kasa log summary FILE... [--json]\n"
    "\n"
    "Reads kasa-httpd auth logs (one CSV line per attempt, kasa-httpd --auth-log) and\n"
    "prints, per member and per hour (UTC): Kerberos and NTLM authentications, failures,\n"
    "and the failures by reason. Many Kerberos failures or much NTLM for a name that\n"
    "should use Kerberos is the sign to run kasa diagnose.\n"
    "\n"
    "  FILE...     auth logs, one per member or several; - reads standard input. An\n"
    "              empty file counts nothing; a file with lines but no auth-log line is\n"
    "              an error; other lines that are not auth-log lines are skipped with a\n"
    "              warning\n"
    "  --json      the same counts as a JSON array, one object per member and hour\n"
    "  -h, --help  this help\n"
    "\n"
    "exit status: 0 counted, 1 a file cannot be read or holds no auth-log line,\n"
    "2 bad usage. See kasa(1), THE AUTH LOG.\n";

int cmd_log(struct cli *cli, int argc, char **argv)
{
    struct bucket *b = NULL;
    size_t n = 0, cap = 0;
    unsigned long bad_lines = 0;
    bool json = false;
    int st;

    snprintf(cli->cmd, sizeof(cli->cmd), "log");
    if (argc < 2 || strcmp(argv[1], "summary") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(summary_help, stdout);
            return EXIT_OK;
        }
        return cli_usage(cli, "the log command is: kasa log summary FILE...");
    }
    snprintf(cli->cmd, sizeof(cli->cmd), "log summary");
    argc--;
    argv++;
    optind = 0;
    st = cli_simple_opts(cli, argc, argv, &json, summary_help);
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 1, 4096, "FILE...");
    if (st)
        return st;
    for (int f = optind; f < argc; f++) {
        FILE *fp = strcmp(argv[f], "-") == 0 ? stdin : fopen(argv[f], "r");
        char *line = NULL;
        size_t len = 0;
        unsigned long lines = 0, good = 0;
        if (fp == NULL) {
            cli_say(cli, "cannot read %s: %s", argv[f], strerror(errno));
            free(b);
            return EXIT_FAILED;
        }
        while (getline(&line, &len, fp) > 0) {
            char *fields[KASA_AUTHLOG_FIELDS];
            struct bucket *k;
            lines++;
            if (kasa_authlog_parse(cli->ctx, line, fields) != 0) {
                bad_lines++;
                continue;
            }
            good++;
            /* A challenge is a leg of an exchange whose own line follows: no count. */
            k = strcmp(fields[8], "challenge") == 0 ? NULL
                                                    : find(&b, &n, &cap, fields[1], fields[0]);
            if (k != NULL) {
                if (strcmp(fields[8], "ok") != 0) {
                    k->failed++;
                    count_reason(k, fields[9]);
                } else if (strcmp(fields[5], "Kerberos") == 0) {
                    k->kerberos++;
                } else if (strcmp(fields[5], "NTLM") == 0) {
                    k->ntlm++;
                } else {
                    k->other++;
                }
            }
            kasa_authlog_fields_free(fields);
        }
        free(line);
        if (fp != stdin)
            fclose(fp);
        /* An empty log is a member nobody has used yet; lines that are all something else
         * mean the wrong file was given, which counting nothing would hide. */
        if (lines > 0 && good == 0) {
            cli_say(cli, "%s holds no kasa-httpd auth-log line",
                    fp == stdin ? "standard input" : argv[f]);
            free(b);
            return EXIT_FAILED;
        }
    }
    if (n > 1)
        qsort(b, n, sizeof(*b), bucket_cmp);
    if (json) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *o = json_object_new_object(), *r = json_object_new_object();
            json_object_object_add(o, "member", cli_json_str(b[i].member));
            json_object_object_add(o, "hour", cli_json_str(b[i].hour));
            json_object_object_add(o, "kerberos", json_object_new_int64((int64_t)b[i].kerberos));
            json_object_object_add(o, "ntlm", json_object_new_int64((int64_t)b[i].ntlm));
            json_object_object_add(o, "failed", json_object_new_int64((int64_t)b[i].failed));
            for (int k = 0; k < MAX_REASONS && b[i].reasons[k][0]; k++)
                json_object_object_add(r, b[i].reasons[k],
                                       json_object_new_int64((int64_t)b[i].reason_count[k]));
            json_object_object_add(o, "failures", r);
            json_object_array_add(a, o);
        }
        cli_json_print(a);
    } else {
        struct table *t = table_new(6, "MEMBER", "HOUR (UTC)", "KERBEROS", "NTLM", "FAILED",
                                    "FAILURES BY REASON");
        for (size_t i = 0; i < n; i++) {
            char kc[24], nc[24], fc[24], reasons[1024] = "";
            snprintf(kc, sizeof(kc), "%lu", b[i].kerberos);
            snprintf(nc, sizeof(nc), "%lu", b[i].ntlm);
            snprintf(fc, sizeof(fc), "%lu", b[i].failed);
            for (int k = 0; k < MAX_REASONS && b[i].reasons[k][0]; k++)
                snprintf(reasons + strlen(reasons), sizeof(reasons) - strlen(reasons), "%s%lu %s",
                         k ? "; " : "", b[i].reason_count[k], b[i].reasons[k]);
            table_add(t, b[i].member, b[i].hour, kc, nc, fc, reasons);
        }
        table_print(t, stdout);
        table_free(t);
    }
    if (bad_lines > 0)
        cli_say(cli, "warning: skipped %lu line%s that are not auth log lines", bad_lines,
                bad_lines == 1 ? "" : "s");
    free(b);
    return EXIT_OK;
}
