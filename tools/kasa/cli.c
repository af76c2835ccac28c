/*
 * Helpers every command group uses: messages in kasa's one-line format, option parsing,
 * the directory opened on demand, JSON and table output.
 */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void vsay(struct cli *cli, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vsay(struct cli *cli, const char *fmt, va_list ap)
{
    fprintf(stderr, "kasa: %s%s", cli->cmd, cli->cmd[0] ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_say(struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsay(cli, fmt, ap);
    va_end(ap);
}

int cli_fail(struct cli *cli, long code)
{
    cli_say(cli, "%s", kasa_error(cli->ctx));
    return kasa_exit_status(code);
}

int cli_check(struct cli *cli, long code)
{
    return code ? cli_fail(cli, code) : 0;
}

int cli_usage(struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "kasa: %s%s", cli->cmd, cli->cmd[0] ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see kasa %s%s--help\n", cli->cmd, cli->cmd[0] ? " " : "");
    return EXIT_USAGE;
}

int cli_open_dir(struct cli *cli)
{
    long ret;

    if (cli->dir != NULL)
        return 0;
    ret = kasa_config_load(cli->ctx, cli->config_path, &cli->cfg);
    if (!ret)
        ret = kasa_dir_open(cli->ctx, cli->cfg, &cli->dir);
    /* Reading the configuration or reaching the directory is never bad usage. */
    return ret ? (cli_fail(cli, ret), EXIT_FAILED) : 0;
}

int cli_try_open_dir(struct cli *cli, long *code)
{
    long ret = 0;

    *code = 0;
    if (cli->dir != NULL)
        return 0;
    if (cli->cfg == NULL)
        ret = kasa_config_load(cli->ctx, cli->config_path, &cli->cfg);
    if (!ret)
        ret = kasa_dir_open(cli->ctx, cli->cfg, &cli->dir);
    *code = ret;
    return ret ? 1 : 0;
}

int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
               const struct option *extra, bool *json)
{
    struct option opts[24];
    char shorts[64];
    size_t n = 0;
    int c;

    for (; extra != NULL && extra[n].name != NULL && n < 20; n++)
        opts[n] = extra[n];
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    if (json != NULL)
        opts[n++] = (struct option){"json", no_argument, NULL, 'j'};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    snprintf(shorts, sizeof(shorts), ":h%s", shortopts != NULL ? shortopts : "");

    opterr = 0;
    c = getopt_long(argc, argv, shorts, opts, NULL);
    if (c == 'j' && json != NULL)
        *json = true;
    if (c == '?') {
        if (optopt != 0)
            cli_usage(cli, "unknown option -%c", optopt);
        else
            cli_usage(cli, "unknown option %s", argv[optind - 1]);
    } else if (c == ':') {
        cli_usage(cli, "option %s needs a value", argv[optind - 1]);
        c = '?';
    }
    return c;
}

int cli_operands(struct cli *cli, int argc, int min, int max, const char *what)
{
    if (argc < min)
        return cli_usage(cli, "missing %s", what);
    if (argc > max)
        return cli_usage(cli, "too many arguments (expected %s)", what);
    return 0;
}

int cli_dispatch(struct cli *cli, const char *group, const struct cli_verb *verbs,
                 const char *group_help, int argc, char **argv)
{
    snprintf(cli->cmd, sizeof(cli->cmd), "%s", group);
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0) {
        fputs(group_help, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    for (size_t i = 0; verbs[i].name != NULL; i++) {
        if (strcmp(verbs[i].name, argv[0]) == 0) {
            snprintf(cli->cmd, sizeof(cli->cmd), "%s %s", group, verbs[i].name);
            optind = 0; /* glibc: start a fresh scan of this verb's argv */
            return verbs[i].fn(cli, argc, argv);
        }
    }
    if (argv[0][0] == '-')
        return cli_usage(cli, "unknown option %s (the command comes first: kasa %s COMMAND ...)",
                         argv[0], group);
    return cli_usage(cli, "unknown command %s", argv[0]);
}

void cli_json_print(json_object *obj)
{
    puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(obj);
}

json_object *cli_json_str(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

const char *cli_time(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "-");
    return buf;
}

const char *cli_duration(long long seconds, char *buf, size_t len)
{
    long long s = seconds < 0 ? 0 : seconds;

    if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600 && s % 60 != 0)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 3600)
        snprintf(buf, len, "%lldm", s / 60);
    else
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    return buf;
}

struct table {
    int cols;
    size_t rows, cap;
    char **cells;
};

static void table_addv(struct table *t, va_list ap)
{
    if (t->rows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **p = realloc(t->cells, ncap * (size_t)t->cols * sizeof(*p));
        if (p == NULL)
            abort();
        t->cells = p;
        t->cap = ncap;
    }
    for (int c = 0; c < t->cols; c++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->rows * (size_t)t->cols + (size_t)c] = strdup(s != NULL ? s : "-");
    }
    t->rows++;
}

struct table *table_new(int cols, ...)
{
    struct table *t = calloc(1, sizeof(*t));
    va_list ap;

    if (t == NULL)
        abort();
    t->cols = cols;
    va_start(ap, cols);
    table_addv(t, ap);
    va_end(ap);
    return t;
}

void table_add(struct table *t, ...)
{
    va_list ap;

    va_start(ap, t);
    table_addv(t, ap);
    va_end(ap);
}

void table_print(struct table *t, FILE *out)
{
    size_t width[16] = {0};

    for (size_t r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->cols && c < 16; c++) {
            size_t w = strlen(t->cells[r * (size_t)t->cols + (size_t)c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->cols; c++) {
            const char *s = t->cells[r * (size_t)t->cols + (size_t)c];
            if (c == t->cols - 1)
                fprintf(out, "%s\n", s);
            else
                fprintf(out, "%-*s  ", (int)width[c], s);
        }
    }
}

void table_free(struct table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->rows * (size_t)t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

int cli_simple_opts(struct cli *cli, int argc, char **argv, bool *json, const char *help)
{
    int c;

    while ((c = cli_getopt(cli, argc, argv, "", NULL, json)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return -1;
        }
        if (c != 'j')
            return EXIT_USAGE;
    }
    return 0;
}
