/*
 * kasa: the administrator's command line. Parses the global options and hands the rest
 * to one command group (lab, account, spn); each group lives in its own file.
 */
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: kasa [-c FILE] [-v] COMMAND ...\n"
    "\n"
    "Kerberos for a load-balanced array of servers: one alternate service account (ASA)\n"
    "owns the array's SPNs.\n"
    "\n"
    "commands:\n"
    "  lab up|down|env|status       a throwaway MIT realm on loopback\n"
    "  account create|show|list|delete\n"
    "                               the alternate service account\n"
    "  spn add|delete|list|query|duplicates\n"
    "                               SPNs, like setspn -S/-D/-L/-Q/-X\n"
    "  array create|add-member|remove-member|show|list|delete\n"
    "                               the load-balanced name and its members\n"
    "  roll ARRAY                   new keys: staged on every member, then committed\n"
    "  copy ARRAY --from H --to H   copy a member's keys to others\n"
    "  heal [ARRAY]                 copy the keys to members that are STALE or MISSING\n"
    "  status [ARRAY]               what each member holds: OK/STALE/MISSING/UNREACHABLE/\n"
    "                               FOREIGN\n"
    "  log summary FILE...          Kerberos and NTLM counts per member and hour\n"
    "  inspect [VALUE|-]            decode a Negotiate token (Kerberos or NTLM)\n"
    "  verify ARRAY                 present a ticket for every SPN to every member\n"
    "  diagnose NAME                why a name falls back to NTLM, and the fix\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   kasa.conf to read (default: $KASA_CONFIG, then " KASA_CONFIG_DEFAULT
    ")\n"
    "  -v, --verbose       say more\n"
    "      --version       print the version\n"
    "  -h, --help          this help; kasa COMMAND --help for a command's\n"
    "\n"
    "exit status: 0 ok, 1 failed (nothing changed) or a check found a problem; a name\n"
    "not in the directory is 1; 2 bad usage or a malformed name; 3 partly done (a member\n"
    "failed during a roll or copy; the directory is unchanged).\n"
    "See kasa(1) and kasa.conf(5).\n";

static void print_warning(void *data, const char *msg)
{
    struct cli *cli = data;

    cli_say(cli, "warning: %s", msg);
}

/* argv[0] is the command: hand its arguments to the file that implements it. */
static int dispatch(struct cli *cli, int argc, char **argv)
{
    if (strcmp(argv[0], "lab") == 0)
        return cmd_lab(cli, argc - 1, argv + 1);
    if (strcmp(argv[0], "account") == 0)
        return cmd_account(cli, argc - 1, argv + 1);
    if (strcmp(argv[0], "spn") == 0)
        return cmd_spn(cli, argc - 1, argv + 1);
    if (strcmp(argv[0], "array") == 0)
        return cmd_array(cli, argc - 1, argv + 1);
    if (strcmp(argv[0], "roll") == 0)
        return cmd_roll(cli, argc, argv);
    if (strcmp(argv[0], "copy") == 0)
        return cmd_copy(cli, argc, argv);
    if (strcmp(argv[0], "heal") == 0)
        return cmd_heal(cli, argc, argv);
    if (strcmp(argv[0], "status") == 0)
        return cmd_status(cli, argc, argv);
    if (strcmp(argv[0], "log") == 0)
        return cmd_log(cli, argc, argv);
    if (strcmp(argv[0], "inspect") == 0)
        return cmd_inspect(cli, argc, argv);
    if (strcmp(argv[0], "verify") == 0)
        return cmd_verify(cli, argc, argv);
    if (strcmp(argv[0], "diagnose") == 0)
        return cmd_diagnose(cli, argc, argv);
    return cli_usage(cli, "unknown command %s", argv[0]);
}

/*
 * kasa help [COMMAND [SUB]]: the global usage, or the command's own help as kasa COMMAND
 * [SUB] --help prints it (an unknown command is bad usage there as here). Only command
 * words: an option would take --help as its value and run the command.
 */
static int help(struct cli *cli, int argc, char **argv)
{
    char *args[4] = {NULL, NULL, NULL, NULL};

    if (argc < 1 || (argc == 1 && strcmp(argv[0], "help") == 0)) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (argc > 2)
        return cli_usage(cli, "help: too many arguments (expected COMMAND [SUB])");
    if (argc == 2 && (argv[1][0] == '-' || argv[1][0] == '\0'))
        return cli_usage(cli, "help: unknown command %s %s", argv[0], argv[1]);
    args[0] = argv[0];
    args[1] = argc == 2 ? argv[1] : "--help";
    args[2] = "--help";
    return dispatch(cli, argc + 1, args);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cli cli;
    int c, status;

    /* kasa handles keys: a crash must not leave them in a core file. */
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
    /* A peer that went away (kadmind stopped mid-roll: kadm5's RPC writes to the closed
     * connection; a reader of kasa's output that exited) is an error kasa reports, not a
     * signal that kills it silently with its lock held. */
    signal(SIGPIPE, SIG_IGN);
    memset(&cli, 0, sizeof(cli));
    if (kasa_ctx_new(&cli.ctx) != 0) {
        fputs("kasa: out of memory\n", stderr);
        return EXIT_FAILED;
    }
    kasa_set_warn_fn(cli.ctx, print_warning, &cli);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cli.config_path = optarg;
            break;
        case 'v':
            cli.verbose = true;
            break;
        case 'V':
            printf("kasa %s\n", kasa_version());
            status = EXIT_OK;
            goto done;
        case 'h':
            fputs(usage, stdout);
            status = EXIT_OK;
            goto done;
        case ':':
            status = cli_usage(&cli, "option %s needs a value", argv[optind - 1]);
            goto done;
        default:
            status = cli_usage(&cli, "unknown option %s", argv[optind - 1]);
            goto done;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        fputs(usage, stderr);
        status = EXIT_USAGE;
    } else if (strcmp(argv[0], "help") == 0) {
        status = help(&cli, argc - 1, argv + 1);
    } else {
        status = dispatch(&cli, argc, argv);
    }

done:
    kasa_dir_close(cli.dir);
    kasa_config_free(cli.cfg);
    kasa_ctx_free(cli.ctx);
    return status;
}
