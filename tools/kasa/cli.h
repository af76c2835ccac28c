/*
 * What the command groups of the kasa CLI share: the global options, the one-line error
 * format ("kasa: spn add: ..."), the directory opened on demand, and output helpers.
 */
#ifndef KASA_CLI_H
#define KASA_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>

#include "kasa/config.h"
#include "kasa/directory.h"
#include "kasa/kasa.h"

/* Exit statuses (see kasa(1)). */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

struct cli {
    kasa_ctx *ctx;
    const char *config_path; /* -c FILE, or NULL */
    bool verbose;
    char cmd[64]; /* "spn add": the prefix of every message */
    kasa_config *cfg;
    kasa_dir *dir;
};

typedef int (*cli_fn)(struct cli *cli, int argc, char **argv);

/* One verb of a command group. */
struct cli_verb {
    const char *name;
    cli_fn fn;
};

/* Run the verb named by argv[0] from verbs; prints the group's help on --help or none. */
int cli_dispatch(struct cli *cli, const char *group, const struct cli_verb *verbs,
                 const char *group_help, int argc, char **argv);

/* Print "kasa: CMD: <the context's error>" and return the exit status for code. */
int cli_fail(struct cli *cli, long code);

/* 0 when code is 0; else print the context's error and return its exit status. */
int cli_check(struct cli *cli, long code);

/* Print "kasa: CMD: <msg>; see kasa CMD --help" and return EXIT_USAGE. */
int cli_usage(struct cli *cli, const char *fmt, ...) KASA_PRINTF(2, 3);

/* Print "kasa: CMD: <msg>" to stderr (no status). */
void cli_say(struct cli *cli, const char *fmt, ...) KASA_PRINTF(2, 3);

/* Read the configuration and connect to the directory; on error prints and returns the
 * exit status (non-zero). */
int cli_open_dir(struct cli *cli);

/* Like cli_open_dir, but says nothing: 1 with *code (the error in kasa_error()) when the
 * configuration or the directory failed; cli->cfg is set when the configuration loaded. */
int cli_try_open_dir(struct cli *cli, long *code);

/*
 * Parse the options of a verb: the long options every verb has (--help, --json) and the
 * ones in extra. Returns -1 when done (optind at the first operand), 'h' for --help,
 * 'j' for --json, '?' for a bad option (already reported), or the option's val.
 */
struct option;
int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
               const struct option *extra, bool *json);

/* Options of a verb that has only --help (and --json when json is not NULL): returns 0,
 * EXIT_USAGE, or -1 after printing help. */
int cli_simple_opts(struct cli *cli, int argc, char **argv, bool *json, const char *help);

/* Check the operand count; reports and returns EXIT_USAGE when wrong, else 0. */
int cli_operands(struct cli *cli, int argc, int min, int max, const char *what);

/* Print a JSON value on stdout, pretty, and free it. */
void cli_json_print(json_object *obj);

/* A JSON string or null. */
json_object *cli_json_str(const char *s);

/* ISO 8601 UTC of a time, into buf. */
const char *cli_time(long long t, char *buf, size_t len);

/* A span of seconds for people, into buf: "30s", "45m", "12m30s", "10h05m". */
const char *cli_duration(long long seconds, char *buf, size_t len);

/* A table for people: rows of cells, columns padded to the widest cell. */
struct table;
struct table *table_new(int cols, ...);
void table_add(struct table *t, ...);
void table_print(struct table *t, FILE *out);
void table_free(struct table *t);

int cmd_lab(struct cli *cli, int argc, char **argv);
int cmd_account(struct cli *cli, int argc, char **argv);
int cmd_spn(struct cli *cli, int argc, char **argv);
int cmd_array(struct cli *cli, int argc, char **argv);
int cmd_roll(struct cli *cli, int argc, char **argv);
int cmd_copy(struct cli *cli, int argc, char **argv);
int cmd_heal(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_log(struct cli *cli, int argc, char **argv);
int cmd_inspect(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);
int cmd_diagnose(struct cli *cli, int argc, char **argv);

#endif
