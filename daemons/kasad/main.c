/*
 * kasad: the member agent on every array member. It holds the array keytab, takes
 * staged keys from kasa roll and kasa copy, and reports what it holds. Started in the
 * foreground for tests and service managers; the pidfile appears once it listens.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <netdb.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <com_err.h>
#include <profile.h>

#include "kasa/config.h"
#include "kasa/proto.h"
#include "kasad.h"
#include "metrics.h"

static FILE *log_file;
static const char *log_path; /* --log; NULL: stderr, which is not reopened */
volatile sig_atomic_t kasad_reopen;
pid_t kasad_keeper_pid;

void kasad_on_hup(int sig)
{
    (void)sig;
    kasad_reopen = 1;
}

/* The log again at its path (logrotate moved it): the new file takes the stream's
 * descriptor, so nothing holding the stream notices. */
void kasad_log_reopen(void)
{
    int fd;

    if (log_path == NULL)
        return;
    fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        kasad_log_at(KASA_LOG_ERR, "cannot reopen %s: %s; still writing to the old file", log_path,
                     strerror(errno));
        return;
    }
    fflush(log_file);
    dup2(fd, fileno(log_file));
    close(fd);
}

void kasad_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kasa_log_line(log_file, "kasad", fmt, ap);
    va_end(ap);
}

void kasad_log_at(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kasa_log_line_at(log_file, "kasad", level, fmt, ap);
    va_end(ap);
}

static const char usage[] =
    "usage: kasad --managed-keytab FILE --acl FILE [options]\n"
    "\n"
    "The kasa member agent: keeps the array keytab, takes staged keys, reports status.\n"
    "  -k, --keytab FILE          kasad's own keytab (host/MEMBER; default: the default keytab)\n"
    "  -P, --principal NAME       kasad's own principal (default: any in its keytab)\n"
    "  -m, --managed-keytab FILE  the array keytab kasad keeps (written 0600, atomically)\n"
    "  -a, --acl FILE             principals allowed to stage, copy and read status, one a line\n"
    "  -l, --listen ADDR          address to listen on (default 0.0.0.0)\n"
    "  -p, --port PORT            port (default 7460)\n"
    "      --pidfile FILE         write the pid here once listening\n"
    "      --log FILE             log here (default: stderr)\n"
    "  -f, --foreground           do not detach\n"
    "      --timeout MS           drop an authorized peer silent this long (default 10000)\n"
    "      --handshake-timeout MS drop a peer not authenticated this long after it\n"
    "                             connected, whatever it sends (default 5000)\n"
    "      --max-pending N        unauthenticated connections at once (default 256); when\n"
    "                             full, the oldest makes room for the new one\n"
    "      --max-per-source N     ... of them from one address (default 32)\n"
    "      --keytab-group GROUP   let GROUP read the array keytab (0640), e.g. www-data\n"
    "      --user USER            started as root, become USER once listening (both\n"
    "                             processes; its groups too, for --keytab-group)\n"
    "      --metrics-port PORT    serve Prometheus metrics at /metrics on this port ...\n"
    "      --metrics-listen ADDR  ... and address (default 127.0.0.1; no authentication)\n"
    "  -c, --config FILE          read these settings from FILE's [kasad] section\n"
    "                             (krb5.conf syntax: managed_keytab = ..., acl = ...)\n"
    "      --version              print the version\n"
    "  -h, --help                 this help\n"
    "See kasad(8).\n";

static int fail_usage(const char *fmt, ...) KASA_PRINTF(1, 2);

static int fail_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "kasad: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see kasad --help\n");
    return 2;
}

/* Strings read from the configuration file, freed when kasad stops. */
static char *config_strings[16];
static size_t n_config_strings;

/* A number setting: its flag, its config key, where it goes, its bounds, whether the
 * command line gave it (the command line wins over the file). */
struct number {
    const char *flag, *key;
    int *value;
    long min, max;
    bool set;
};

/* Parse text as a number in n's bounds; 2 (bad usage) with a message naming it (its flag,
 * or where + its config key) when it is not. */
static int number_parse(struct number *n, const char *text, const char *where, const char *name)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || *text == '\0' || *end != '\0' || v < n->min || v > n->max) {
        fprintf(stderr, "kasad: %s%s %s is not a number from %ld to %ld; see kasad --help\n", where,
                name, text, n->min, n->max);
        return 2;
    }
    *n->value = (int)v;
    return 0;
}

/*
 * Fill what the command line left unset from the [kasad] section of a krb5.conf-style
 * file (MIT's profile library reads it).
 */
static int read_config(const char *path, struct kasad_opts *o, struct number *numbers,
                       bool listen_set)
{
    static const char *const strings[] = {
        "keytab", "principal",    "managed_keytab", "acl",  "listen", "pidfile",
        "log",    "keytab_group", "metrics_listen", "user", NULL};
    const char *group = NULL;
    const char **fields[] = {
        &o->keytab, &o->principal, &o->managed_keytab, &o->acl, &o->listen, &o->pidfile,
        &o->log,    &group,        &o->metrics_listen, &o->user};
    const char *section[] = {"kasad", NULL};
    char where[4200];
    profile_t prof = NULL;
    char **names = NULL;
    int st = 0;
    long ret;

    ret = profile_init_path(path, &prof);
    if (ret) {
        unsigned line = kasa_config_syntax_line(path);
        if (line != 0)
            fprintf(stderr, "kasad: %s:%u: %s\n", path, line, error_message(ret));
        else
            fprintf(stderr, "kasad: %s: %s\n", path, error_message(ret));
        return 1;
    }
    if (profile_get_relation_names(prof, section, &names) == 0) {
        for (size_t i = 0; names[i] != NULL; i++) {
            bool known = false;
            for (size_t k = 0; strings[k] != NULL; k++)
                known = known || strcmp(strings[k], names[i]) == 0;
            for (struct number *n = numbers; n->flag != NULL; n++)
                known = known || strcmp(n->key, names[i]) == 0;
            if (!known)
                fprintf(stderr, "kasad: %s: [kasad] %s is not a kasad setting; ignored\n", path,
                        names[i]);
        }
        profile_free_list(names);
    }
    for (size_t k = 0; strings[k] != NULL; k++) {
        char *v = NULL;
        if (profile_get_string(prof, "kasad", strings[k], NULL, NULL, &v) != 0 || v == NULL)
            continue;
        if (k == 4 ? !listen_set : *fields[k] == NULL)
            *fields[k] = config_strings[n_config_strings++] = strdup(v);
        profile_release_string(v);
    }
    snprintf(where, sizeof(where), "%s: [kasad] ", path);
    for (struct number *n = numbers; n->flag != NULL && st == 0; n++) {
        char *v = NULL;
        if (n->set || profile_get_string(prof, "kasad", n->key, NULL, NULL, &v) != 0 || v == NULL)
            continue;
        st = number_parse(n, v, where, n->key);
        profile_release_string(v);
    }
    profile_release(prof);
    /* keytab_group = www-data: as --keytab-group, which wins. */
    if (st == 0 && group != NULL && o->keytab_gid < 0) {
        struct group *g = getgrnam(group);
        if (g == NULL) {
            fprintf(stderr, "kasad: %skeytab_group %s is not a group; see kasad --help\n", where,
                    group);
            return 2;
        }
        o->keytab_gid = (int)g->gr_gid;
    }
    return st;
}

/* Raise the descriptor limit to what the connection budget needs, or shrink the budget
 * to what the limit allows, saying so; 1 when the limit leaves no room at all. */
static int fit_descriptors(struct kasad_opts *o)
{
    const rlim_t fixed = KASAD_MAX_AUTHORIZED + 32; /* controllers, logs, keeper, libraries */
    rlim_t need = (rlim_t)o->max_pending + fixed;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return 0;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < need) {
        if (rl.rlim_cur <= fixed + 8) {
            fprintf(stderr,
                    "kasad: the descriptor limit (%llu) leaves no room for connections; "
                    "raise it (ulimit -n, LimitNOFILE=)\n",
                    (unsigned long long)rl.rlim_cur);
            return 1;
        }
        o->max_pending = (int)(rl.rlim_cur - fixed);
        fprintf(stderr,
                "kasad: the descriptor limit is %llu: at most %d unauthenticated "
                "connections\n",
                (unsigned long long)rl.rlim_cur, o->max_pending);
    }
    if (o->max_per_source > o->max_pending)
        o->max_per_source = o->max_pending;
    return 0;
}

/*
 * --user: the identity kasad keeps once its sockets and log are open. Its groups come
 * with it (initgroups), so that it may give the array keytab to a --keytab-group it
 * belongs to; setuid() then changes every thread's identity, and getting root back must
 * fail. NULL or the current user: nothing to do.
 */
static int become_user(const char *user)
{
    const struct passwd *pw;

    if (user == NULL)
        return 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        kasad_log_at(KASA_LOG_ERR, "cannot become %s: no such user", user);
        return 1;
    }
    if (pw->pw_uid == geteuid())
        return 0;
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        kasad_log_at(KASA_LOG_ERR, "cannot become %s: %s", user, strerror(errno));
        return 1;
    }
    if (setuid(0) == 0) {
        kasad_log_at(KASA_LOG_ERR, "cannot become %s: root could be taken back", user);
        return 1;
    }
    return 0;
}

static int listen_on(const struct kasad_opts *o)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    int fd = -1, one = 1, gai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    snprintf(port, sizeof(port), "%d", o->port);
    gai = getaddrinfo(o->listen, port, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, "kasad: cannot listen on %s: %s\n", o->listen, gai_strerror(gai));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 512) != 0) {
        fprintf(stderr, "kasad: cannot listen on %s port %d: %s\n", o->listen, o->port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int write_pidfile(const char *path)
{
    char tmp[4096 + 8];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        fprintf(stderr, "kasad: cannot write pidfile %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"keytab", required_argument, NULL, 'k'},
        {"principal", required_argument, NULL, 'P'},
        {"managed-keytab", required_argument, NULL, 'm'},
        {"acl", required_argument, NULL, 'a'},
        {"listen", required_argument, NULL, 'l'},
        {"port", required_argument, NULL, 'p'},
        {"pidfile", required_argument, NULL, 'i'},
        {"log", required_argument, NULL, 'L'},
        {"foreground", no_argument, NULL, 'f'},
        {"timeout", required_argument, NULL, 't'},
        {"handshake-timeout", required_argument, NULL, 'H'},
        {"max-pending", required_argument, NULL, 'N'},
        {"max-per-source", required_argument, NULL, 'S'},
        {"config", required_argument, NULL, 'c'},
        {"keytab-group", required_argument, NULL, 'g'},
        {"user", required_argument, NULL, 'u'},
        /* A test hook, not in --help or kasad(8): report the clock this many seconds off,
         * so tests/e2e/diagnose.sh can show kasa diagnose a skewed member. */
        {"clock-offset", required_argument, NULL, 'O'},
        {"metrics-listen", required_argument, NULL, 'M'},
        {"metrics-port", required_argument, NULL, 'Q'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool listen_set = false;
    struct kasad_opts o = {.listen = "0.0.0.0",
                           .port = KASA_PORT_DEFAULT,
                           .timeout_ms = 10000,
                           .handshake_ms = 5000,
                           .max_pending = 256,
                           .max_per_source = 32,
                           .keytab_gid = -1};
    struct number numbers[] = {
        {"--port", "port", &o.port, 1, 65535, false},
        {"--timeout", "timeout", &o.timeout_ms, 100, 600000, false},
        {"--handshake-timeout", "handshake_timeout", &o.handshake_ms, 100, 600000, false},
        {"--max-pending", "max_pending", &o.max_pending, 1, 65536, false},
        {"--max-per-source", "max_per_source", &o.max_per_source, 1, 65536, false},
        {"--metrics-port", "metrics_port", &o.metrics_port, 1, 65535, false},
        {NULL, NULL, NULL, 0, 0, false},
    };
    int c, sv[2], msv[2] = {-1, -1}, listen_fd, status;
    pid_t keeper;
    char *end;

    log_file = stderr;
    /* kasad holds keys: a crash must not leave them in a core file. */
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:k:P:m:a:l:p:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'O':
            o.clock_offset = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || o.clock_offset < -86400 * 365 ||
                o.clock_offset > 86400 * 365)
                return fail_usage("--clock-offset %s is not a number of seconds", optarg);
            break;
        case 'u':
            o.user = optarg;
            break;
        case 'g': {
            struct group *g = getgrnam(optarg);
            if (g == NULL)
                return fail_usage("--keytab-group %s is not a group", optarg);
            o.keytab_gid = (int)g->gr_gid;
            break;
        }
        case 'k':
            o.keytab = optarg;
            break;
        case 'P':
            o.principal = optarg;
            break;
        case 'm':
            o.managed_keytab = optarg;
            break;
        case 'a':
            o.acl = optarg;
            break;
        case 'l':
            o.listen = optarg;
            listen_set = true;
            break;
        case 'p':
        case 't':
        case 'H':
        case 'N':
        case 'S':
        case 'Q': {
            struct number *n = &numbers[strchr("ptHNSQ", c) - "ptHNSQ"];
            if (number_parse(n, optarg, "", n->flag) != 0)
                return 2;
            n->set = true;
            break;
        }
        case 'M':
            o.metrics_listen = optarg;
            break;
        case 'i':
            o.pidfile = optarg;
            break;
        case 'L':
            o.log = optarg;
            break;
        case 'f':
            o.foreground = true;
            break;
        case 'V':
            printf("kasad %s\n", kasa_version());
            return 0;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case ':':
            return fail_usage("option %s needs a value", argv[optind - 1]);
        default:
            return fail_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail_usage("unexpected argument %s", argv[optind]);
    if (config != NULL && (c = read_config(config, &o, numbers, listen_set)) != 0)
        return c;
    if (o.managed_keytab == NULL)
        return fail_usage("--managed-keytab is required");
    if (o.acl == NULL)
        return fail_usage("--acl is required");
    if (o.metrics_listen != NULL && o.metrics_port == 0)
        return fail_usage("metrics listen address %.60s given without a metrics port",
                          o.metrics_listen);
    if (o.metrics_port != 0) {
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE,
                                 .ai_socktype = SOCK_STREAM},
                        *res = NULL;
        if (o.metrics_listen == NULL)
            o.metrics_listen = "127.0.0.1";
        if (getaddrinfo(o.metrics_listen, NULL, &hints, &res) != 0)
            return fail_usage("metrics listen address %.60s is not a numeric IPv4 or IPv6 address",
                              o.metrics_listen);
        freeaddrinfo(res);
    }
    if (o.user != NULL && getpwnam(o.user) == NULL)
        return fail_usage("--user %.60s is not a user", o.user);
    if (o.user != NULL && geteuid() != 0 && getpwnam(o.user)->pw_uid != geteuid())
        return fail_usage("--user %.60s needs kasad to start as root", o.user);
    if (fit_descriptors(&o) != 0)
        return 1;
    if (o.log != NULL) {
        log_file = fopen(o.log, "a");
        log_path = o.log;
        if (log_file == NULL) {
            fprintf(stderr, "kasad: cannot open log %s: %s\n", o.log, strerror(errno));
            return 1;
        }
    }
    if (!o.foreground && daemon(0, o.log != NULL ? 0 : 1) != 0) {
        fprintf(stderr, "kasad: cannot detach: %s\n", strerror(errno));
        return 1;
    }

    /* The keeper is forked before any socket faces the network. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
        (o.metrics_port != 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, msv) != 0)) {
        kasad_log_at(KASA_LOG_ERR, "socketpair: %s", strerror(errno));
        return 1;
    }
    signal(SIGHUP, kasad_on_hup); /* both processes reopen the log on SIGHUP */
    keeper = fork();
    if (keeper < 0) {
        kasad_log_at(KASA_LOG_ERR, "fork: %s", strerror(errno));
        return 1;
    }
    if (keeper == 0) {
        close(sv[0]);
        if (msv[0] >= 0)
            close(msv[0]);
        signal(SIGINT, SIG_IGN); /* the network process decides when to stop */
        if (become_user(o.user) != 0)
            _exit(1);
        _exit(keeper_run(&o, sv[1], msv[1]));
    }
    close(sv[1]);
    kasad_keeper_pid = keeper;
    if (msv[1] >= 0)
        close(msv[1]);

    listen_fd = listen_on(&o);
    if (listen_fd < 0 ||
        (o.metrics_port != 0 &&
         metrics_start(o.metrics_listen, (unsigned)o.metrics_port, msv[0]) != 0) ||
        (o.pidfile != NULL && write_pidfile(o.pidfile) != 0) || become_user(o.user) != 0) {
        metrics_stop();
        close(sv[0]);
        waitpid(keeper, NULL, 0);
        return 1;
    }
    kasad_log("listening on %s port %d; keeping %s", o.listen, o.port, o.managed_keytab);
    if (o.metrics_port != 0)
        kasad_log("metrics at http://%s%s%s:%d/metrics (no authentication)",
                  strchr(o.metrics_listen, ':') != NULL ? "[" : "", o.metrics_listen,
                  strchr(o.metrics_listen, ':') != NULL ? "]" : "", o.metrics_port);
    kasa_notify("READY=1");
    status = net_run(&o, sv[0], listen_fd);
    kasa_notify("STOPPING=1");
    metrics_stop();
    close(listen_fd);
    close(sv[0]); /* the keeper sees EOF and ends */
    waitpid(keeper, NULL, 0);
    if (o.pidfile != NULL)
        unlink(o.pidfile);
    kasad_log("stopped");
    for (size_t i = 0; i < n_config_strings; i++)
        free(config_strings[i]);
    return status;
}
