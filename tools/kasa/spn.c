/*
 * kasa spn: the setspn verbs. add (-S: refuses a duplicate anywhere in the directory),
 * delete (-D, the back-out), list (-L), query (-Q), duplicates (-X).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kasa/spn.h"

static const char help_group[] =
    "usage: kasa spn add SPN ACCOUNT          like setspn -S: refuses a duplicate\n"
    "       kasa spn delete SPN ACCOUNT       like setspn -D: the back-out\n"
    "       kasa spn list ACCOUNT [--json]    like setspn -L\n"
    "       kasa spn query SPN [--json]       like setspn -Q: the owner; exit 1 if none\n"
    "       kasa spn duplicates [--json]      like setspn -X: exit 1 if any\n"
    "\n"
    "An SPN is service/host[:port][/name], e.g. http/outlook.proseware.lab.\n"
    "SPNs are unique ignoring case. See kasa(1).\n";

/* add and delete: SPN ACCOUNT, checked before the directory is reached, then op. */
static int spn_change(struct cli *cli, int argc, char **argv, const char *help,
                      long (*op)(kasa_dir *, const char *, const char *))
{
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, NULL, help);
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 2, 2, "SPN ACCOUNT");
    if (!st)
        st = cli_check(cli, kasa_spn_check(cli->ctx, argv[optind]));
    if (!st)
        st = cli_check(cli, kasa_account_check(cli->ctx, argv[optind + 1], 0));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = op(cli->dir, argv[optind], argv[optind + 1]);
    if (ret)
        return cli_fail(cli, ret);
    if (op == kasa_spn_add)
        printf("%s now belongs to %s\n", argv[optind], argv[optind + 1]);
    else
        printf("deleted %s from %s\n", argv[optind], argv[optind + 1]);
    return EXIT_OK;
}

static int spn_add(struct cli *cli, int argc, char **argv)
{
    return spn_change(cli, argc, argv,
                      "usage: kasa spn add SPN ACCOUNT\n"
                      "\n"
                      "Give ACCOUNT the SPN, after searching the whole directory for it:\n"
                      "refused when any other name claims it, ignoring case (setspn -S).\n",
                      kasa_spn_add);
}

static int spn_delete(struct cli *cli, int argc, char **argv)
{
    return spn_change(cli, argc, argv,
                      "usage: kasa spn delete SPN ACCOUNT\n"
                      "\n"
                      "Take the SPN from ACCOUNT (setspn -D): the back-out.\n",
                      kasa_spn_delete);
}

static int spn_list(struct cli *cli, int argc, char **argv)
{
    char **spns = NULL;
    size_t n = 0;
    bool json = false;
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, &json,
                         "usage: kasa spn list ACCOUNT [--json]\n"
                         "\n"
                         "The SPNs ACCOUNT owns, one a line (setspn -L).\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 1, 1, "ACCOUNT");
    if (!st)
        st = cli_check(cli, kasa_account_check(cli->ctx, argv[optind], 0));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_spn_list(cli->dir, argv[optind], &spns, &n);
    if (ret)
        return cli_fail(cli, ret);
    if (json) {
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
            json_object_array_add(a, cli_json_str(spns[i]));
        json_object_object_add(o, "account", cli_json_str(argv[optind]));
        json_object_object_add(o, "spns", a);
        cli_json_print(o);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", spns[i]);
    }
    kasa_spn_list_free(spns, n);
    return EXIT_OK;
}

static json_object *claim_json(const kasa_spn_claim *c)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "spn", cli_json_str(c->spn));
    json_object_object_add(o, "owner", cli_json_str(c->owner));
    json_object_object_add(o, "principal", cli_json_str(c->holder));
    json_object_object_add(o, "managed", json_object_new_boolean(c->owner != NULL));
    return o;
}

static int spn_query(struct cli *cli, int argc, char **argv)
{
    kasa_spn_claim *claim = NULL, *variants = NULL;
    size_t n = 0;
    bool json = false;
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, &json,
                         "usage: kasa spn query SPN [--json]\n"
                         "\n"
                         "Print the account that owns SPN (setspn -Q); exit 1 when none does.\n"
                         "Names that differ only by case are mentioned.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 1, 1, "SPN");
    if (!st)
        st = cli_check(cli, kasa_spn_check(cli->ctx, argv[optind]));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_spn_query(cli->dir, argv[optind], &claim, &variants, &n);
    if (ret && ret != KASA_ERR_SPN_NOT_FOUND)
        return cli_fail(cli, ret);
    for (size_t i = 0; i < n; i++)
        cli_say(cli, "warning: %s differs only by case; it belongs to %s", variants[i].spn,
                variants[i].owner != NULL ? variants[i].owner : variants[i].holder);
    if (json) {
        json_object *o = claim != NULL ? claim_json(claim) : json_object_new_object();
        json_object *a = json_object_new_array();
        if (claim == NULL) {
            json_object_object_add(o, "spn", cli_json_str(argv[optind]));
            json_object_object_add(o, "owner", NULL);
        }
        for (size_t i = 0; i < n; i++)
            json_object_array_add(a, claim_json(&variants[i]));
        json_object_object_add(o, "case_variants", a);
        cli_json_print(o);
    } else if (claim != NULL) {
        if (claim->owner != NULL)
            printf("%s\n", claim->owner);
        else
            printf("%s (a principal kasa does not manage)\n", claim->holder);
    }
    if (claim == NULL && !json)
        cli_say(cli, "%s", kasa_error(cli->ctx));
    st = claim != NULL ? EXIT_OK : EXIT_FAILED;
    if (claim != NULL)
        kasa_spn_claims_free(claim, 1);
    kasa_spn_claims_free(variants, n);
    return st;
}

static int spn_duplicates(struct cli *cli, int argc, char **argv)
{
    kasa_spn_claim *dups = NULL;
    size_t n = 0;
    bool json = false;
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, &json,
                         "usage: kasa spn duplicates [--json]\n"
                         "\n"
                         "Every SPN that two or more names claim, ignoring case, including\n"
                         "principals made outside kasa (setspn -X). Exit 1 when there are any.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 0, 0, "no arguments");
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_spn_duplicates(cli->dir, &dups, &n);
    if (ret)
        return cli_fail(cli, ret);
    if (json) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
            json_object_array_add(a, claim_json(&dups[i]));
        cli_json_print(a);
    } else if (n == 0) {
        printf("no duplicate SPNs in %s\n", kasa_dir_realm(cli->dir));
    } else {
        struct table *t = table_new(3, "SPN", "OWNER", "PRINCIPAL");
        for (size_t i = 0; i < n; i++)
            table_add(t, dups[i].spn, dups[i].owner != NULL ? dups[i].owner : "(not kasa's)",
                      dups[i].holder);
        table_print(t, stdout);
        table_free(t);
    }
    kasa_spn_claims_free(dups, n);
    return n == 0 ? EXIT_OK : EXIT_FAILED;
}

int cmd_spn(struct cli *cli, int argc, char **argv)
{
    static const struct cli_verb verbs[] = {
        {"add", spn_add},     {"delete", spn_delete},         {"list", spn_list},
        {"query", spn_query}, {"duplicates", spn_duplicates}, {NULL, NULL},
    };

    return cli_dispatch(cli, "spn", verbs, help_group, argc, argv);
}
