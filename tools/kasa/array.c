/*
 * kasa array: the load-balanced name, its alternate service account and its members,
 * kept in the directory (the seed's Get-ClientAccessArray).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kasa/array.h"
#include "kasa/proto.h"

static const char help_group[] =
    "usage: kasa array create FQDN --asa ACCOUNT [--short-name NAME]\n"
    "       kasa array add-member FQDN HOST[:PORT] [--address ADDR] [--http-port P]\n"
    "       kasa array remove-member FQDN HOST\n"
    "       kasa array show [FQDN] [--json]\n"
    "       kasa array list [--json]\n"
    "       kasa array delete FQDN\n"
    "\n"
    "An array is the name clients use (outlook.proseware.lab), the account that owns its\n"
    "SPNs, and the members behind the balancer, each running kasad. See kasa(1).\n";

static int array_create(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"asa", required_argument, NULL, 'a'},
        {"short-name", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *asa = NULL, *short_name = NULL;
    int c, st;
    long ret;

    while ((c = cli_getopt(cli, argc, argv, "a:s:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs("usage: kasa array create FQDN --asa ACCOUNT [--short-name NAME]\n"
                  "\n"
                  "Create the array FQDN whose SPNs ACCOUNT owns.\n"
                  "  -a, --asa ACCOUNT        the alternate service account (must exist)\n"
                  "  -s, --short-name NAME    the short (NetBIOS) name clients may use\n",
                  stdout);
            return EXIT_OK;
        case 'a':
            asa = optarg;
            break;
        case 's':
            short_name = optarg;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    st = cli_operands(cli, argc - optind, 1, 1, "FQDN");
    if (st)
        return st;
    if (asa == NULL)
        return cli_usage(cli, "name the alternate service account with --asa");
    st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st)
        st = cli_check(cli, kasa_account_check(cli->ctx, asa, 0));
    if (!st && short_name != NULL)
        st = cli_check(cli, kasa_short_name_check(cli->ctx, short_name));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_array_create(cli->dir, argv[optind], asa, short_name);
    if (ret)
        return cli_fail(cli, ret);
    printf("created array %s; its SPNs belong to %s\n", argv[optind], asa);
    return EXIT_OK;
}

static int array_add_member(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"address", required_argument, NULL, 'A'},
        {"http-port", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    const char *address = NULL;
    int http_port = 0;
    kasa_member m = {0}; /* freed below even when usage stops before it is parsed */
    int c, st;
    long ret;

    while ((c = cli_getopt(cli, argc, argv, "", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs("usage: kasa array add-member FQDN HOST[:PORT] [--address ADDR] [--http-port P]\n"
                  "\n"
                  "Add a member: HOST is its name (kasad runs as host/HOST), PORT kasad's\n"
                  "port (default 7460). --address connects to ADDR instead of HOST;\n"
                  "--http-port names its Negotiate HTTP endpoint, for kasa verify.\n",
                  stdout);
            return EXIT_OK;
        }
        if (c == 'H') {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 65535)
                return cli_usage(cli, "--http-port takes a port from 1 to 65535");
            http_port = (int)v;
            continue;
        }
        if (c != 'A')
            return EXIT_USAGE;
        address = optarg;
    }
    st = cli_operands(cli, argc - optind, 2, 2, "FQDN HOST[:PORT]");
    if (!st)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st)
        st = cli_check(cli, kasa_member_parse(cli->ctx, argv[optind + 1], &m));
    if (!st && address != NULL && (*address == '\0' || strpbrk(address, " =") != NULL))
        st = cli_usage(cli, "--address takes a host name or an IP address");
    if (!st)
        st = cli_open_dir(cli);
    if (!st) {
        ret = kasa_array_add_member(cli->dir, argv[optind], m.host, m.port, http_port, address);
        st = ret ? cli_fail(cli, ret) : EXIT_OK;
        if (!ret)
            printf("%s port %d is a member of %s\n", m.host, m.port, argv[optind]);
    }
    free(m.host);
    return st;
}

static int array_remove_member(struct cli *cli, int argc, char **argv)
{
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, NULL,
                         "usage: kasa array remove-member FQDN HOST\n"
                         "\n"
                         "Take HOST out of the array (its kasad and keytab stay as they are).\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 2, 2, "FQDN HOST");
    if (!st)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_array_remove_member(cli->dir, argv[optind], argv[optind + 1]);
    if (ret)
        return cli_fail(cli, ret);
    printf("%s is no longer a member of %s\n", argv[optind + 1], argv[optind]);
    return EXIT_OK;
}

static json_object *array_json(const kasa_array *a)
{
    json_object *o = json_object_new_object(), *ms = json_object_new_array();

    json_object_object_add(o, "fqdn", cli_json_str(a->fqdn));
    json_object_object_add(o, "short_name", cli_json_str(a->short_name));
    json_object_object_add(o, "asa", cli_json_str(a->asa));
    for (size_t i = 0; i < a->n_members; i++) {
        json_object *m = json_object_new_object();
        json_object_object_add(m, "host", cli_json_str(a->members[i].host));
        json_object_object_add(m, "port", json_object_new_int(a->members[i].port));
        json_object_object_add(m, "address", cli_json_str(a->members[i].address));
        json_object_object_add(
            m, "http_port",
            a->members[i].http_port ? json_object_new_int(a->members[i].http_port) : NULL);
        json_object_object_add(m, "stale", json_object_new_boolean(a->members[i].stale));
        json_object_array_add(ms, m);
    }
    json_object_object_add(o, "members", ms);
    json_object_object_add(o, "roll_in_progress",
                           a->roll_kvno ? json_object_new_int64(a->roll_kvno) : NULL);
    json_object_object_add(o, "committed_kvno",
                           a->committed_kvno ? json_object_new_int64(a->committed_kvno) : NULL);
    return o;
}

static void array_print(const kasa_array *a)
{
    char when[32];

    printf("Array:        %s\n", a->fqdn);
    printf("Short name:   %s\n", a->short_name != NULL ? a->short_name : "-");
    printf("ASA:          %s\n", a->asa);
    if (a->committed_kvno)
        printf("Last roll:    kvno %u at %s\n", a->committed_kvno,
               cli_time(a->committed_at, when, sizeof(when)));
    if (a->roll_kvno)
        printf("In progress:  a roll to kvno %u (kasa roll --resume %s)\n", a->roll_kvno, a->fqdn);
    printf("Members:      %zu\n", a->n_members);
    for (size_t i = 0; i < a->n_members; i++)
        printf("  %s:%d%s%s%s\n", a->members[i].host, a->members[i].port,
               a->members[i].address ? " at " : "",
               a->members[i].address ? a->members[i].address : "",
               a->members[i].stale ? " (stale)" : "");
}

static int array_show(struct cli *cli, int argc, char **argv)
{
    kasa_array *arrays = NULL;
    size_t n = 0;
    bool json = false, one;
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, &json,
                         "usage: kasa array show [FQDN] [--json]\n"
                         "\n"
                         "Show an array (every array without FQDN): its ASA and members\n"
                         "(Get-ClientAccessArray).\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 0, 1, "at most FQDN");
    one = argc - optind == 1;
    if (!st && one)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    if (one) {
        n = 1;
        ret = kasa_array_get(cli->dir, argv[optind], &arrays);
    } else {
        ret = kasa_array_list(cli->dir, &arrays, &n);
    }
    if (ret)
        return cli_fail(cli, ret);
    if (json) {
        if (one) {
            cli_json_print(array_json(&arrays[0]));
        } else {
            json_object *a = json_object_new_array();
            for (size_t i = 0; i < n; i++)
                json_object_array_add(a, array_json(&arrays[i]));
            cli_json_print(a);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                putchar('\n');
            array_print(&arrays[i]);
        }
        if (n == 0)
            printf("no arrays; create one with kasa array create\n");
    }
    kasa_array_list_free(arrays, n);
    return EXIT_OK;
}

static int array_list_cmd(struct cli *cli, int argc, char **argv)
{
    kasa_array *arrays = NULL;
    size_t n = 0;
    bool json = false;
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, &json,
                         "usage: kasa array list [--json]\n\nThe arrays in the directory.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 0, 0, "no arguments");
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_array_list(cli->dir, &arrays, &n);
    if (ret)
        return cli_fail(cli, ret);
    if (json) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
            json_object_array_add(a, array_json(&arrays[i]));
        cli_json_print(a);
    } else {
        struct table *t = table_new(4, "ARRAY", "SHORT", "ASA", "MEMBERS");
        for (size_t i = 0; i < n; i++) {
            char members[16];
            snprintf(members, sizeof(members), "%zu", arrays[i].n_members);
            table_add(t, arrays[i].fqdn, arrays[i].short_name, arrays[i].asa, members);
        }
        table_print(t, stdout);
        table_free(t);
    }
    kasa_array_list_free(arrays, n);
    return EXIT_OK;
}

static int array_delete(struct cli *cli, int argc, char **argv)
{
    int st;
    long ret;

    st = cli_simple_opts(cli, argc, argv, NULL,
                         "usage: kasa array delete FQDN\n"
                         "\n"
                         "Delete the array's record. The ASA, its SPNs and the members' keytabs\n"
                         "stay.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 1, 1, "FQDN");
    if (!st)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "array", argv[optind]));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    ret = kasa_array_delete(cli->dir, argv[optind]);
    if (ret)
        return cli_fail(cli, ret);
    printf("deleted array %s\n", argv[optind]);
    return EXIT_OK;
}

int cmd_array(struct cli *cli, int argc, char **argv)
{
    static const struct cli_verb verbs[] = {
        {"create", array_create},
        {"add-member", array_add_member},
        {"remove-member", array_remove_member},
        {"show", array_show},
        {"list", array_list_cmd},
        {"delete", array_delete},
        {NULL, NULL},
    };

    return cli_dispatch(cli, "array", verbs, help_group, argc, argv);
}
