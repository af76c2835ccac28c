/*
 * kasa account: create, show, list and delete the alternate service account, the one
 * account that owns every SPN of an array (the seed's CASARRAY-ASA$).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help_group[] =
    "usage: kasa account create NAME (--computer | --user) [--description TEXT]\n"
    "       kasa account show NAME [--json]\n"
    "       kasa account list [--json]\n"
    "       kasa account delete NAME [--force]\n"
    "\n"
    "The alternate service account (ASA) owns an array's SPNs. A computer account's\n"
    "name ends in '$' (CASARRAY-ASA$). See kasa(1).\n";

static int account_create(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"computer", no_argument, NULL, 'C'},
        {"user", no_argument, NULL, 'U'},
        {"description", required_argument, NULL, 'd'},
        {"dns-host-name", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    const char *description = "", *dns_host_name = NULL;
    kasa_account_kind kind = 0;
    int c, st;
    long ret;

    while ((c = cli_getopt(cli, argc, argv, "d:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs("usage: kasa account create NAME (--computer | --user) [--description TEXT]\n"
                  "                          [--dns-host-name HOST]\n"
                  "\n"
                  "Create the account, with fresh random keys at kvno 1.\n"
                  "  --computer          a computer account; NAME ends in '$' (CASARRAY-ASA$)\n"
                  "  --user              a user account\n"
                  "  -d, --description TEXT\n"
                  "                      say what it is for, so nobody deletes it\n"
                  "  --dns-host-name HOST\n"
                  "                      a computer account's dNSHostName (Active Directory)\n",
                  stdout);
            return EXIT_OK;
        case 'C':
        case 'U':
            if (kind != 0 && kind != (c == 'C' ? KASA_ACCOUNT_COMPUTER : KASA_ACCOUNT_USER))
                return cli_usage(cli, "give --computer or --user, not both");
            kind = c == 'C' ? KASA_ACCOUNT_COMPUTER : KASA_ACCOUNT_USER;
            break;
        case 'd':
            description = optarg;
            break;
        case 'H':
            dns_host_name = optarg;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    st = cli_operands(cli, argc - optind, 1, 1, "NAME");
    if (st)
        return st;
    if (kind == 0)
        return cli_usage(cli, "say what kind of account %s is: --computer or --user", argv[optind]);
    st = cli_check(cli, kasa_account_check(cli->ctx, argv[optind], kind));
    if (!st)
        st = cli_check(cli, kasa_description_check(cli->ctx, description));
    if (!st && dns_host_name != NULL)
        st = cli_check(cli, kasa_dns_host_name_check(cli->ctx, dns_host_name, kind));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_account_create(cli->dir, argv[optind], kind, description, dns_host_name);
    if (ret)
        return cli_fail(cli, ret);
    printf("created %s account %s@%s\n", kasa_account_kind_name(kind), argv[optind],
           kasa_dir_realm(cli->dir));
    return EXIT_OK;
}

/* AD's msDS-SupportedEncryptionTypes in words. */
static const char *etypes_words(long v, char *buf, size_t len)
{
    char names[64] = "";

    if (v < 0) {
        snprintf(buf, len, "not set: AD issues RC4 tickets (kasa's keys are AES)");
        return buf;
    }
    if (v & KASA_AD_ETYPE_AES256)
        strcat(names, " AES256");
    if (v & KASA_AD_ETYPE_AES128)
        strcat(names, " AES128");
    if (v & 0x04)
        strcat(names, " RC4");
    snprintf(buf, len, "%s (msDS-SupportedEncryptionTypes %ld)",
             names[0] != '\0' ? names + 1 : "none", v);
    return buf;
}

static int account_show(struct cli *cli, int argc, char **argv)
{
    kasa_account *acct = NULL;
    char **spns = NULL;
    size_t n = 0;
    bool json = false;
    char when[32], etw[96];
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, &json,
                         "usage: kasa account show NAME [--json]\n"
                         "\n"
                         "Show the account: kind, principal, description, key version, SPNs.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 1, 1, "NAME");
    if (!st)
        st = cli_check(cli, kasa_account_check(cli->ctx, argv[optind], 0));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_account_get(cli->dir, argv[optind], &acct);
    if (!ret)
        ret = kasa_spn_list(cli->dir, argv[optind], &spns, &n);
    if (ret) {
        st = cli_fail(cli, ret);
        goto cleanup;
    }
    if (json) {
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        json_object_object_add(o, "name", cli_json_str(acct->name));
        json_object_object_add(o, "kind", cli_json_str(kasa_account_kind_name(acct->kind)));
        json_object_object_add(o, "principal", cli_json_str(acct->principal));
        json_object_object_add(o, "description", cli_json_str(acct->description));
        json_object_object_add(o, "kvno", json_object_new_int64(acct->kvno));
        json_object_object_add(o, "dns_host_name", cli_json_str(acct->dns_host_name));
        if (acct->supported_etypes != 0)
            json_object_object_add(o, "supported_enctypes",
                                   json_object_new_int64(acct->supported_etypes));
        json_object_object_add(
            o, "created",
            acct->created > 0 ? cli_json_str(cli_time(acct->created, when, sizeof(when))) : NULL);
        for (size_t i = 0; i < n; i++)
            json_object_array_add(a, cli_json_str(spns[i]));
        json_object_object_add(o, "spns", a);
        cli_json_print(o);
    } else {
        printf("Name:         %s\n", acct->name);
        printf("Kind:         %s\n", kasa_account_kind_name(acct->kind));
        printf("Principal:    %s\n", acct->principal);
        printf("Description:  %s\n", acct->description);
        printf("Key version:  %u\n", acct->kvno);
        if (acct->dns_host_name != NULL)
            printf("DNS name:     %s\n", acct->dns_host_name);
        if (acct->supported_etypes != 0)
            printf("Encryption:   %s\n", etypes_words(acct->supported_etypes, etw, sizeof(etw)));
        printf("Created:      %s\n", cli_time(acct->created, when, sizeof(when)));
        printf("SPNs:         %zu\n", n);
        for (size_t i = 0; i < n; i++)
            printf("  %s\n", spns[i]);
    }
    st = EXIT_OK;

cleanup:
    kasa_spn_list_free(spns, n);
    kasa_account_free(acct);
    return st;
}

static int account_list(struct cli *cli, int argc, char **argv)
{
    kasa_account *accts = NULL;
    size_t n = 0;
    bool json = false;
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, &json,
                         "usage: kasa account list [--json]\n"
                         "\n"
                         "List the accounts kasa manages in the directory.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 0, 0, "no arguments");
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_account_list(cli->dir, &accts, &n);
    if (ret)
        return cli_fail(cli, ret);
    if (json) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", cli_json_str(accts[i].name));
            json_object_object_add(o, "kind", cli_json_str(kasa_account_kind_name(accts[i].kind)));
            json_object_object_add(o, "principal", cli_json_str(accts[i].principal));
            json_object_object_add(o, "kvno", json_object_new_int64(accts[i].kvno));
            json_object_object_add(o, "description", cli_json_str(accts[i].description));
            json_object_array_add(a, o);
        }
        cli_json_print(a);
    } else if (n == 0) {
        printf("no accounts in %s; create one with kasa account create\n",
               kasa_dir_realm(cli->dir));
    } else {
        struct table *t = table_new(4, "NAME", "KIND", "KVNO", "DESCRIPTION");
        for (size_t i = 0; i < n; i++) {
            char kvno[16];
            snprintf(kvno, sizeof(kvno), "%u", accts[i].kvno);
            table_add(t, accts[i].name, kasa_account_kind_name(accts[i].kind), kvno,
                      accts[i].description);
        }
        table_print(t, stdout);
        table_free(t);
    }
    kasa_account_list_free(accts, n);
    return EXIT_OK;
}

static int account_delete(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    bool force = false;
    int c, st;
    long ret;

    while ((c = cli_getopt(cli, argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs("usage: kasa account delete NAME [--force]\n"
                  "\n"
                  "Delete the account. Refused while it owns SPNs, unless --force, which\n"
                  "deletes its SPNs with it.\n",
                  stdout);
            return EXIT_OK;
        }
        if (c != 'f')
            return EXIT_USAGE;
        force = true;
    }
    st = cli_operands(cli, argc - optind, 1, 1, "NAME");
    if (!st)
        st = cli_check(cli, kasa_account_check(cli->ctx, argv[optind], 0));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_account_delete(cli->dir, argv[optind], force);
    if (ret)
        return cli_fail(cli, ret);
    printf("deleted account %s\n", argv[optind]);
    return EXIT_OK;
}

int cmd_account(struct cli *cli, int argc, char **argv)
{
    static const struct cli_verb verbs[] = {
        {"create", account_create}, {"show", account_show}, {"list", account_list},
        {"delete", account_delete}, {NULL, NULL},
    };

    return cli_dispatch(cli, "account", verbs, help_group, argc, argv);
}
