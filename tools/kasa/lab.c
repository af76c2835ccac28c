/*
 * kasa lab: a throwaway MIT Kerberos realm on loopback, the realm the demo and every
 * end-to-end test run on (in the manner of krb5's k5test.py). Everything lives in one
 * directory: krb5.conf, kdc.conf, the database, keytabs, kasa.conf, logs, and lab.state,
 * which records the ports and the identity (pid and start time) of each daemon so that
 * "down" stops exactly what "up" started.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <com_err.h>
#include <profile.h>

#include "cli.h"
#include "lab_ad.h"
#include "proc.h"

#define LAB_ADDR "127.0.0.1"
#define LAB_DIR_DEFAULT "./lab"
#define LAB_REALM_DEFAULT "PROSEWARE.LAB"
#define READY_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 5000

static const char help_group[] =
    "usage: kasa lab up [--dir DIR] [--realm REALM] [--members N] [--replay redis]\n"
    "       kasa lab up --ad [--dir DIR] [--members N] [--replay redis]\n"
    "       kasa lab down [--dir DIR]\n"
    "       kasa lab member stop|start NAME [--dir DIR]\n"
    "       kasa lab env [--dir DIR]\n"
    "       kasa lab status [--dir DIR] [--json]\n"
    "\n"
    "A throwaway MIT Kerberos realm on 127.0.0.1 (default realm " LAB_REALM_DEFAULT ", default\n"
    "DIR " LAB_DIR_DEFAULT "): krb5kdc and kadmind on free ports, an admin principal for kasa, a\n"
    "test user alice (DIR/alice.keytab). Then: eval \"$(kasa lab env)\". See kasa(1).\n"
    "With --ad: a Samba AD domain on 127.0.0.20 instead (kasa lab up --ad --help).\n";

static const char *const daemon_names[N_DAEMONS] = {"krb5kdc", "kadmind"};

#define LAB_BALANCER "127.0.0.10"

/* DIR/name into buf. */
static const char *lab_path(const struct lab *lab, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", lab->dir, name);
    return buf;
}

static bool replay_redis; /* lab up --replay redis */

static int parse_dir_opts(struct cli *cli, int argc, char **argv, const char **dir,
                          const char **realm, int *members, bool *json, const char *help)
{
    static const struct option with_realm[] = {
        {"dir", required_argument, NULL, 'd'},
        {"realm", required_argument, NULL, 'r'},
        {"members", required_argument, NULL, 'm'},
        {"replay", required_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    long v;
    int c;

    while ((c = cli_getopt(cli, argc, argv, realm != NULL ? "d:r:" : "d:", with_realm, json)) !=
           -1) {
        switch (c) {
        case 'm':
            if (members == NULL)
                return cli_usage(cli, "unknown option --members");
            v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > LAB_MAX_MEMBERS)
                return cli_usage(cli, "--members takes a number from 0 to %d", LAB_MAX_MEMBERS);
            *members = (int)v;
            break;
        case 'R':
            if (members == NULL)
                return cli_usage(cli, "unknown option --replay");
            if (strcmp(optarg, "redis") != 0 && strcmp(optarg, "local") != 0)
                return cli_usage(cli, "--replay takes local or redis");
            replay_redis = strcmp(optarg, "redis") == 0;
            break;
        case 'h':
            fputs(help, stdout);
            return -1;
        case 'd':
            if (*optarg == '\0')
                return cli_usage(cli, "--dir takes a directory");
            /* kasa lab up --dir --realm X: the value is missing; a lab in ./--realm is not
             * what was meant. */
            if (*optarg == '-')
                return cli_usage(cli, "option --dir needs a value, not the option %s", optarg);
            *dir = optarg;
            break;
        case 'r':
            if (realm == NULL)
                return cli_usage(cli, "unknown option --realm");
            *realm = optarg;
            break;
        case 'j':
            break;
        default:
            return EXIT_USAGE;
        }
    }
    /* lab member takes operands; every other verb none. */
    return members == NULL && realm == NULL && strcmp(cli->cmd, "lab member") == 0
               ? 0
               : cli_operands(cli, argc - optind, 0, 0, "no arguments");
}

/*
 * Make dir absolute and check it can be written into configuration files and shell
 * lines as it is: no white space, quotes, or other characters that would need escaping.
 */
static int resolve_dir(struct cli *cli, const char *dir, bool create, struct lab *lab)
{
    char real[PATH_MAX];

    for (const unsigned char *p = (const unsigned char *)dir; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr("\"'\\$`;&|<>*?#{}[]()", *p) != NULL)
            return cli_usage(cli, "the lab directory's path may hold no spaces, quotes or shell "
                                  "characters");
    }
    if (*dir == '\0')
        return cli_usage(cli, "the lab directory's path is empty");
    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cli_say(cli, "cannot create %s: %s", dir, strerror(errno));
        return EXIT_FAILED;
    }
    if (realpath(dir, real) == NULL) {
        if (errno == ENOENT) {
            cli_say(cli, "no lab in %s; start one with kasa lab up --dir %s", dir, dir);
            return EXIT_FAILED;
        }
        cli_say(cli, "cannot use %s: %s", dir, strerror(errno));
        return EXIT_FAILED;
    }
    if (strlen(real) >= sizeof(lab->dir))
        return cli_usage(cli, "the lab directory's path is too long");
    memcpy(lab->dir, real, strlen(real) + 1);
    return 0;
}

/* Whether path is a directory with nothing in it. */
static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    bool empty = d != NULL;

    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    if (d != NULL)
        closedir(d);
    return empty;
}

int lab_resolve_dir(struct cli *cli, const char *dir, bool create, char *out, size_t len)
{
    struct lab lab;
    int st = resolve_dir(cli, dir, create, &lab);

    if (!st)
        snprintf(out, len, "%s", lab.dir);
    return st;
}

bool lab_dir_empty(const char *path)
{
    return dir_empty(path);
}

static int check_realm(struct cli *cli, const char *realm)
{
    size_t len = strlen(realm);

    if (len == 0 || len > 64)
        return cli_usage(cli, "the realm must be 1 to 64 characters");
    for (size_t i = 0; i < len; i++) {
        char c = realm[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return cli_usage(cli, "the realm may hold only upper-case letters, digits, '.' "
                                  "and '-' (e.g. PROSEWARE.LAB)");
    }
    if (realm[0] == '.' || realm[len - 1] == '.')
        return cli_usage(cli, "the realm may not start or end with '.'");
    return 0;
}

/* Write text to path by write-temp, fsync, rename, so no reader sees half a file. */
static int write_file(struct cli *cli, const char *path, const char *text, mode_t mode)
{
    char tmp[LAB_PATH_MAX + 8];
    size_t len = strlen(text);
    FILE *f;
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL || fwrite(text, 1, len, f) != len || fflush(f) != 0 || fsync(fd) != 0 ||
        fclose(f) != 0 || rename(tmp, path) != 0) {
        cli_say(cli, "cannot write %s: %s", path, strerror(errno));
        if (f != NULL)
            fclose(f);
        else if (fd >= 0)
            close(fd);
        unlink(tmp);
        return EXIT_FAILED;
    }
    return 0;
}

int lab_write_file(struct cli *cli, const char *path, const char *text, mode_t mode)
{
    return write_file(cli, path, text, mode);
}

void lab_read_members(profile_t prof, struct lab *lab)
{
    if (profile_get_integer(prof, "lab", "members", NULL, 0, &lab->n_members) != 0 ||
        lab->n_members < 0 || lab->n_members > LAB_MAX_MEMBERS)
        lab->n_members = 0;
    for (int i = 0; i < lab->n_members; i++) {
        char key[32];
        int pid = 0, start = 0;
        snprintf(key, sizeof(key), "member%d_port", i + 1);
        profile_get_integer(prof, "lab", key, NULL, 0, &lab->members[i].port);
        snprintf(key, sizeof(key), "member%d_pid", i + 1);
        profile_get_integer(prof, "lab", key, NULL, 0, &pid);
        snprintf(key, sizeof(key), "member%d_start", i + 1);
        profile_get_integer(prof, "lab", key, NULL, 0, &start);
        lab->members[i].proc.pid = pid;
        lab->members[i].proc.start = (unsigned long long)(unsigned)start;
        snprintf(key, sizeof(key), "member%d_http_port", i + 1);
        profile_get_integer(prof, "lab", key, NULL, 0, &lab->members[i].http_port);
        snprintf(key, sizeof(key), "member%d_http_pid", i + 1);
        profile_get_integer(prof, "lab", key, NULL, 0, &pid);
        snprintf(key, sizeof(key), "member%d_http_start", i + 1);
        profile_get_integer(prof, "lab", key, NULL, 0, &start);
        lab->members[i].http.pid = pid;
        lab->members[i].http.start = (unsigned long long)(unsigned)start;
    }
    {
        int pid = 0, start = 0;
        profile_get_integer(prof, "lab", "balancer_port", NULL, 0, &lab->balancer_port);
        profile_get_integer(prof, "lab", "balancer_pid", NULL, 0, &pid);
        profile_get_integer(prof, "lab", "balancer_start", NULL, 0, &start);
        lab->balancer.pid = pid;
        lab->balancer.start = (unsigned long long)(unsigned)start;
        pid = start = 0;
        profile_get_integer(prof, "lab", "redis_port", NULL, 0, &lab->redis_port);
        profile_get_integer(prof, "lab", "redis_pid", NULL, 0, &pid);
        profile_get_integer(prof, "lab", "redis_start", NULL, 0, &start);
        lab->redis.pid = pid;
        lab->redis.start = (unsigned long long)(unsigned)start;
    }
}

/* Read DIR/lab.state; 1 when there is none. */
static int read_state(struct cli *cli, struct lab *lab)
{
    char path[LAB_PATH_MAX], *realm = NULL;
    profile_t prof = NULL;
    long ret;
    int v[7] = {0};
    static const char *const keys[7] = {"kdc_port",    "kadmind_port", "kpasswd_port", "kdc_pid",
                                        "kadmind_pid", "kdc_start",    "kadmind_start"};

    lab_path(lab, "lab.state", path, sizeof(path));
    if (access(path, F_OK) != 0)
        return 1;
    ret = profile_init_path(path, &prof);
    if (!ret)
        ret = profile_get_string(prof, "lab", "realm", NULL, NULL, &realm);
    for (int i = 0; i < 7 && !ret; i++)
        ret = profile_get_integer(prof, "lab", keys[i], NULL, 0, &v[i]);
    if (!ret && (realm == NULL || check_realm(cli, realm) != 0))
        ret = PROF_NO_RELATION;
    if (ret) {
        cli_say(cli, "%s is damaged (%s); stop what runs there by hand and remove the directory",
                path, error_message(ret));
        profile_release_string(realm);
        if (prof != NULL)
            profile_release(prof);
        return -1;
    }
    snprintf(lab->realm, sizeof(lab->realm), "%s", realm);
    snprintf(lab->admin, sizeof(lab->admin), "kasa/admin@%s", realm);
    lab_read_members(prof, lab);
    lab->kdc_port = v[0];
    lab->kadmind_port = v[1];
    lab->kpasswd_port = v[2];
    lab->procs[D_KDC].pid = v[3];
    lab->procs[D_KADMIND].pid = v[4];
    /* Start times are clock ticks since boot; they fit an int for years of uptime. */
    lab->procs[D_KDC].start = (unsigned long long)(unsigned)v[5];
    lab->procs[D_KADMIND].start = (unsigned long long)(unsigned)v[6];
    profile_release_string(realm);
    profile_release(prof);
    return 0;
}

void lab_state_members(const struct lab *lab, char *text, size_t len)
{
    *text = '\0';
    snprintf(text + strlen(text), len - strlen(text), "\tmembers = %d\n", lab->n_members);
    for (int i = 0; i < lab->n_members; i++)
        snprintf(text + strlen(text), len - strlen(text),
                 "\tmember%d_port = %d\n\tmember%d_pid = %d\n\tmember%d_start = %llu\n"
                 "\tmember%d_http_port = %d\n\tmember%d_http_pid = %d\n"
                 "\tmember%d_http_start = %llu\n",
                 i + 1, lab->members[i].port, i + 1, (int)lab->members[i].proc.pid, i + 1,
                 lab->members[i].proc.start, i + 1, lab->members[i].http_port, i + 1,
                 (int)lab->members[i].http.pid, i + 1, lab->members[i].http.start);
    snprintf(text + strlen(text), len - strlen(text),
             "\tbalancer_port = %d\n\tbalancer_pid = %d\n\tbalancer_start = %llu\n",
             lab->balancer_port, (int)lab->balancer.pid, lab->balancer.start);
    if (lab->redis_port > 0)
        snprintf(text + strlen(text), len - strlen(text),
                 "\tredis_port = %d\n\tredis_pid = %d\n\tredis_start = %llu\n", lab->redis_port,
                 (int)lab->redis.pid, lab->redis.start);
}

static int write_state(struct cli *cli, const struct lab *lab)
{
    char path[LAB_PATH_MAX];
    char *text = malloc(LAB_STATE_MAX);
    int st;

    if (text == NULL) {
        cli_say(cli, "out of memory");
        return EXIT_FAILED;
    }
    snprintf(text, LAB_STATE_MAX,
             "# The state of the kasa lab in this directory; written by kasa lab.\n"
             "[lab]\n"
             "\trealm = %s\n"
             "\tkdc_port = %d\n"
             "\tkadmind_port = %d\n"
             "\tkpasswd_port = %d\n"
             "\tkdc_pid = %d\n"
             "\tkdc_start = %llu\n"
             "\tkadmind_pid = %d\n"
             "\tkadmind_start = %llu\n",
             lab->realm, lab->kdc_port, lab->kadmind_port, lab->kpasswd_port,
             (int)lab->procs[D_KDC].pid, lab->procs[D_KDC].start, (int)lab->procs[D_KADMIND].pid,
             lab->procs[D_KADMIND].start);
    lab_state_members(lab, text + strlen(text), LAB_STATE_MAX - strlen(text));
    st = write_file(cli, lab_path(lab, "lab.state", path, sizeof(path)), text, 0600);
    free(text);
    return st;
}

/* The domain the lab maps to its realm: the realm in lower case. */
static void realm_domain(const struct lab *lab, char *buf, size_t len)
{
    size_t i;

    for (i = 0; lab->realm[i] != '\0' && i + 1 < len; i++)
        buf[i] = (char)(lab->realm[i] >= 'A' && lab->realm[i] <= 'Z' ? lab->realm[i] + 32
                                                                     : lab->realm[i]);
    buf[i] = '\0';
}

static int write_configs(struct cli *cli, const struct lab *lab)
{
    char path[LAB_PATH_MAX], domain[128], text[8192];
    const char *d = lab->dir;
    int st;

    realm_domain(lab, domain, sizeof(domain));
    snprintf(text, sizeof(text),
             "# krb5.conf for the kasa lab realm %s; written by kasa lab up.\n"
             "[libdefaults]\n"
             "\tdefault_realm = %s\n"
             "\tdns_lookup_kdc = false\n"
             "\tdns_lookup_realm = false\n"
             "\tdns_canonicalize_hostname = false\n"
             "\trdns = false\n"
             "\tudp_preference_limit = 1\n"
             "\n"
             "[realms]\n"
             "\t%s = {\n"
             "\t\tkdc = " LAB_ADDR ":%d\n"
             "\t\tadmin_server = " LAB_ADDR ":%d\n"
             "\t\tkpasswd_server = " LAB_ADDR ":%d\n"
             "\t}\n"
             "\n"
             "[domain_realm]\n"
             "\t.%s = %s\n"
             "\t%s = %s\n",
             lab->realm, lab->realm, lab->realm, lab->kdc_port, lab->kadmind_port,
             lab->kpasswd_port, domain, lab->realm, domain, lab->realm);
    st = write_file(cli, lab_path(lab, "krb5.conf", path, sizeof(path)), text, 0644);
    if (st)
        return st;

    snprintf(text, sizeof(text),
             "# kdc.conf for the kasa lab realm %s; written by kasa lab up.\n"
             "[kdcdefaults]\n"
             "\tkdc_listen = " LAB_ADDR ":%d\n"
             "\tkdc_tcp_listen = " LAB_ADDR ":%d\n"
             "\n"
             "[realms]\n"
             "\t%s = {\n"
             "\t\tdatabase_name = %s/principal\n"
             "\t\tkey_stash_file = %s/stash\n"
             "\t\tacl_file = %s/kadm5.acl\n"
             "\t\tkadmind_listen = " LAB_ADDR ":%d\n"
             "\t\tkpasswd_listen = " LAB_ADDR ":%d\n"
             "\t\tmax_life = 10h\n"
             "\t\tmax_renewable_life = 7d\n"
             "\t\tsupported_enctypes = aes256-cts-hmac-sha1-96:normal "
             "aes128-cts-hmac-sha1-96:normal\n"
             "\t}\n"
             "\n"
             "[logging]\n"
             "\tkdc = FILE:%s/krb5kdc.log\n"
             "\tadmin_server = FILE:%s/kadmind.log\n"
             "\tdefault = FILE:%s/krb5lib.log\n",
             lab->realm, lab->kdc_port, lab->kdc_port, lab->realm, d, d, d, lab->kadmind_port,
             lab->kpasswd_port, d, d, d);
    st = write_file(cli, lab_path(lab, "kdc.conf", path, sizeof(path)), text, 0644);
    if (st)
        return st;

    snprintf(text, sizeof(text),
             "# kadmind's ACL: kasa's admin principal may do everything, extracting keys\n"
             "# included ('e'), which kasa needs to give an SPN its account's keys.\n"
             "kasa/admin@%s *e\n",
             lab->realm);
    st = write_file(cli, lab_path(lab, "kadm5.acl", path, sizeof(path)), text, 0644);
    if (st)
        return st;

    snprintf(text, sizeof(text),
             "# kasa.conf for the lab realm %s; written by kasa lab up. See kasa.conf(5).\n"
             "[directory]\n"
             "\tbackend = mit\n"
             "\trealm = %s\n"
             "\tadmin_server = " LAB_ADDR ":%d\n"
             "\tprincipal = kasa/admin@%s\n"
             "\tkeytab = %s/kasa-admin.keytab\n"
             "\tenctypes = " KASA_ENCTYPES_DEFAULT "\n"
             "[array]\n"
             "\t# what kasa status shows when kadmind is down; the lab's own\n"
             "\tcache_dir = %s/cache\n",
             lab->realm, lab->realm, lab->kadmind_port, lab->realm, d, d);
    return write_file(cli, lab_path(lab, "kasa.conf", path, sizeof(path)), text, 0644);
}

/* The environment the lab's programs run with: its krb5.conf, kdc.conf, rcache dir. */
struct lab_env {
    char config[LAB_PATH_MAX + 32], profile[LAB_PATH_MAX + 32], rcache[LAB_PATH_MAX + 32];
    char ntlm[LAB_PATH_MAX + 32], passwd[LAB_PATH_MAX + 32], group[LAB_PATH_MAX + 32];
    char winbindd[LAB_PATH_MAX + 48], asan[512];
    const char *env[13];
};

/* An AD lab has no kdc.conf and no NTLM user file. */
static void lab_env_init(const struct lab *lab, struct lab_env *e)
{
    int n = 0;

    snprintf(e->config, sizeof(e->config), "KRB5_CONFIG=%s/krb5.conf", lab->dir);
    snprintf(e->profile, sizeof(e->profile), "KRB5_KDC_PROFILE=%s/kdc.conf", lab->dir);
    snprintf(e->rcache, sizeof(e->rcache), "KRB5RCACHEDIR=%s", lab->dir);
    snprintf(e->ntlm, sizeof(e->ntlm), "NTLM_USER_FILE=%s/ntlm.users", lab->dir);
    e->env[n++] = e->config;
    e->env[n++] = e->rcache;
    if (!lab->ad) {
        e->env[n++] = e->profile;
        e->env[n++] = e->ntlm;
    }
    e->env[n] = NULL;
}

/*
 * kasa-httpd's environment on an AD lab: NTLM goes to the domain controller's winbindd,
 * as on a member joined to AD, with no NTLM user file. libwbclient looks for winbindd's
 * socket in the system's /run/samba/winbindd, where a real winbindd on this machine may
 * live, and takes another directory (SELFTEST_WINBINDD_SOCKET_DIR) only under nss_wrapper,
 * the library Samba's own tests use for that: so kasa-httpd runs with it preloaded, its
 * passwd and group files the lab's own (lab_ad.c writes them), and the lab's winbindd
 * socket stays in the lab. (DEEPBIND is what the sanitizers refuse; an ASan build must
 * also be told that its runtime is not first in the library list.)
 */
static void lab_env_httpd(const struct lab *lab, struct lab_env *e)
{
    const char *asan = getenv("ASAN_OPTIONS");
    int n = 0;

    lab_env_init(lab, e);
    if (!lab->ad)
        return;
    while (e->env[n] != NULL)
        n++;
    snprintf(e->passwd, sizeof(e->passwd), "NSS_WRAPPER_PASSWD=%s/ad/nss/passwd", lab->dir);
    snprintf(e->group, sizeof(e->group), "NSS_WRAPPER_GROUP=%s/ad/nss/group", lab->dir);
    snprintf(e->winbindd, sizeof(e->winbindd), "SELFTEST_WINBINDD_SOCKET_DIR=%s/ad/run/winbindd",
             lab->dir);
    snprintf(e->asan, sizeof(e->asan), "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
             asan != NULL ? asan : "", asan != NULL && *asan != '\0' ? ":" : "");
    e->env[n++] = "LD_PRELOAD=libnss_wrapper.so";
    e->env[n++] = "NSS_WRAPPER_DISABLE_DEEPBIND=1";
    e->env[n++] = e->passwd;
    e->env[n++] = e->group;
    e->env[n++] = e->winbindd;
    e->env[n++] = e->asan;
    e->env[n++] = "NTLM_USER_FILE"; /* never a file from the caller's environment */
    e->env[n] = NULL;
}

/* Run kadmin.local -q query against the lab's database. */
static int kadmin_local(struct cli *cli, const struct lab *lab, const char *query)
{
    char log[LAB_PATH_MAX];
    struct lab_env e;
    const char *argv[] = {"kadmin.local", "-r", lab->realm, "-q", query, NULL};

    lab_env_init(lab, &e);
    if (proc_run(argv, e.env, NULL, 0, lab_path(lab, "setup.log", log, sizeof(log))) != 0) {
        cli_say(cli, "kadmin.local failed on \"%s\"; see %s", query, log);
        return EXIT_FAILED;
    }
    return 0;
}

/* Create the database (random master password, stashed) and the lab's principals. */
static int create_realm(struct cli *cli, const struct lab *lab)
{
    unsigned char raw[24];
    char input[128], log[LAB_PATH_MAX], q[LAB_PATH_MAX + 64];
    size_t n = 0;
    struct lab_env e;
    int st;
    const char *argv[] = {"kdb5_util", "create", "-s", "-r", lab->realm, NULL};

    /* The master password is fed on stdin, never on a command line, and wiped after. */
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        cli_say(cli, "cannot read random bytes: %s", strerror(errno));
        return EXIT_FAILED;
    }
    for (int twice = 0; twice < 2; twice++) {
        for (size_t i = 0; i < sizeof(raw); i++)
            n += (size_t)snprintf(input + n, sizeof(input) - n, "%02x", raw[i]);
        input[n++] = '\n';
    }
    lab_env_init(lab, &e);
    st = proc_run(argv, e.env, input, n, lab_path(lab, "setup.log", log, sizeof(log)));
    kasa_zap(raw, sizeof(raw));
    kasa_zap(input, sizeof(input));
    if (st != 0) {
        cli_say(cli, "kdb5_util create failed; see %s", log);
        return EXIT_FAILED;
    }
    st = kadmin_local(cli, lab, "addprinc -randkey kasa/admin");
    if (!st) {
        snprintf(q, sizeof(q), "ktadd -k %s/kasa-admin.keytab kasa/admin", lab->dir);
        st = kadmin_local(cli, lab, q);
    }
    if (!st)
        st = kadmin_local(cli, lab, "addprinc -randkey +requires_preauth alice");
    if (!st) {
        snprintf(q, sizeof(q), "ktadd -k %s/alice.keytab alice", lab->dir);
        st = kadmin_local(cli, lab, q);
    }
    return st;
}

static bool daemon_ready(const struct lab *lab, int which)
{
    int port = which == D_KDC ? lab->kdc_port : lab->kadmind_port;

    return proc_port_open(LAB_ADDR, port);
}

/* Start the daemons that are not running; false when one died or never listened. */
static bool start_daemons(struct cli *cli, struct lab *lab)
{
    struct lab_env e;
    char log[N_DAEMONS][LAB_PATH_MAX];
    struct timespec tick = {0, 50 * 1000 * 1000};
    const char *kdc[] = {"krb5kdc", "-n", "-r", lab->realm, NULL};
    const char *kadmind[] = {"kadmind", "-nofork", "-r", lab->realm, NULL};
    const char *const *argvs[N_DAEMONS] = {kdc, kadmind};
    bool ok = true;

    lab_env_init(lab, &e);
    for (int i = 0; i < N_DAEMONS; i++) {
        char name[32];
        if (proc_alive(&lab->procs[i]))
            continue;
        snprintf(name, sizeof(name), "%s.out", daemon_names[i]);
        lab_path(lab, name, log[i], sizeof(log[i]));
        if (proc_spawn(argvs[i], e.env, log[i], &lab->procs[i]) != 0) {
            cli_say(cli, "cannot start %s: %s", daemon_names[i], strerror(errno));
            return false;
        }
    }
    for (int i = 0; i < N_DAEMONS && ok; i++) {
        int waited = 0;
        while (!daemon_ready(lab, i) && proc_alive(&lab->procs[i]) && waited < READY_TIMEOUT_MS) {
            nanosleep(&tick, NULL);
            waited += 50;
        }
        ok = proc_alive(&lab->procs[i]) && daemon_ready(lab, i);
        if (!ok && cli->verbose)
            cli_say(cli, "%s did not come up; see %s/%s.out", daemon_names[i], lab->dir,
                    daemon_names[i]);
    }
    return ok;
}

static void stop_daemons(struct lab *lab)
{
    for (int i = N_DAEMONS - 1; i >= 0; i--) {
        proc_stop(&lab->procs[i], STOP_TIMEOUT_MS);
        lab->procs[i].pid = 0;
        lab->procs[i].start = 0;
    }
}

static int pick_ports(struct cli *cli, struct lab *lab)
{
    int ports[3];
    int err = proc_free_ports(LAB_ADDR, ports, 3);

    if (err) {
        cli_say(cli, "cannot find free ports on " LAB_ADDR ": %s", strerror(err));
        return EXIT_FAILED;
    }
    lab->kdc_port = ports[0];
    lab->kadmind_port = ports[1];
    lab->kpasswd_port = ports[2];
    return 0;
}

/* cas1, cas1.proseware.lab, 127.0.0.11, DIR/cas1 for member index i (from 0); cas10 and
 * later on 127.0.2.10 and up. */
void lab_member_names(const struct lab *lab, int i, char *name, char *host, char *addr, char *dir)
{
    char domain[128];

    realm_domain(lab, domain, sizeof(domain));
    if (name != NULL)
        snprintf(name, 16, "cas%d", i + 1);
    if (host != NULL)
        snprintf(host, 160, "cas%d.%s", i + 1, domain);
    if (addr != NULL) {
        if (i < 9)
            snprintf(addr, 16, "127.0.0.%d", 11 + i);
        else /* 127.0.1.0/24 is for tests' floods; 127.0.2.N is casN */
            snprintf(addr, 16, "127.0.2.%d", i + 1);
    }
    if (dir != NULL)
        snprintf(dir, LAB_PATH_MAX, "%s/cas%d", lab->dir, i + 1);
}

/* The daemon to run: $ENV, else beside kasa in the build tree or the install, else PATH. */
static void find_daemon(const char *name, const char *env_name, char *buf, size_t len)
{
    char rel[3][128], exe[PATH_MAX];
    const char *env = getenv(env_name);
    ssize_t n;

    snprintf(rel[0], sizeof(rel[0]), "../../daemons/%s/%s", name, name);
    snprintf(rel[1], sizeof(rel[1]), "../sbin/%s", name);
    snprintf(rel[2], sizeof(rel[2]), "%s", name);

    if (env != NULL && *env != '\0') {
        snprintf(buf, len, "%s", env);
        return;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
            snprintf(buf, len, "%s/%s", exe, rel[i]);
            if (access(buf, X_OK) == 0)
                return;
        }
    }
    snprintf(buf, len, "%s", name);
}

/* The MIT realm's host keys for members first..last-1: random keys, extracted with one
 * kadmin.local reading its requests from stdin (one process and one database opening, not
 * two per member). kadmin.local's exit status does not tell a failed request, so each
 * keytab is checked after. */
static int mit_host_keys(struct cli *cli, const struct lab *lab, int first, int last)
{
    char log[LAB_PATH_MAX];
    struct lab_env e;
    const char *argv[] = {"kadmin.local", "-r", lab->realm, NULL};
    size_t cap = (size_t)(last - first) * (2 * LAB_PATH_MAX + 400) + 1, len = 0;
    char *in = malloc(cap);
    int st = 0;

    if (in == NULL) {
        cli_say(cli, "out of memory");
        return EXIT_FAILED;
    }
    for (int i = first; i < last; i++) {
        char host[160], dir[LAB_PATH_MAX];
        lab_member_names(lab, i, NULL, host, NULL, dir);
        len += (size_t)snprintf(in + len, cap - len,
                                "addprinc -randkey host/%s\nktadd -k %s/host.keytab host/%s\n",
                                host, dir, host);
    }
    lab_env_init(lab, &e);
    if (proc_run(argv, e.env, in, len, lab_path(lab, "setup.log", log, sizeof(log))) != 0)
        st = EXIT_FAILED;
    free(in);
    for (int i = first; !st && i < last; i++) {
        char dir[LAB_PATH_MAX], keytab[LAB_PATH_MAX + 16];
        struct stat sb;
        lab_member_names(lab, i, NULL, NULL, NULL, dir);
        snprintf(keytab, sizeof(keytab), "%s/host.keytab", dir);
        if (stat(keytab, &sb) != 0 || sb.st_size <= 2)
            st = EXIT_FAILED;
    }
    if (st)
        cli_say(cli, "kadmin.local did not make the members' host keys; see %s", log);
    return st;
}

int lab_create_member(struct cli *cli, struct lab *lab, int i, lab_host_key_fn host_key)
{
    char host[160], addr[16], dir[LAB_PATH_MAX], path[LAB_PATH_MAX + 16];
    char acl[512];
    int st, err;

    lab_member_names(lab, i, NULL, host, addr, dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cli_say(cli, "cannot create %s: %s", dir, strerror(errno));
        return EXIT_FAILED;
    }
    snprintf(path, sizeof(path), "%s/host.keytab", dir);
    st = host_key != NULL ? host_key(cli, lab, i, host, path) : 0; /* NULL: the caller's */
    if (st)
        return st;
    snprintf(acl, sizeof(acl),
             "# Principals that may stage keys on, copy from and read the status of this\n"
             "# member (kasad(8)). Written by kasa lab up.\n"
             "%s\n",
             lab->admin);
    snprintf(path, sizeof(path), "%s/acl", dir);
    st = write_file(cli, path, acl, 0644);
    if (st)
        return st;
    {
        int ports[2];
        err = proc_free_ports(addr, ports, 2);
        lab->members[i].port = ports[0];
        lab->members[i].http_port = ports[1];
    }
    if (err) {
        cli_say(cli, "cannot find a free port on %s: %s", addr, strerror(err));
        return EXIT_FAILED;
    }
    return 0;
}

/* Wait until addr:port listens (what p started); an exit status, said, when it does not. */
static int await_port(struct cli *cli, const char *out, const char *addr, int port, struct proc *p,
                      const char *what)
{
    struct timespec tick = {0, 20 * 1000 * 1000};

    for (int waited = 0; waited < READY_TIMEOUT_MS; waited += 20) {
        if (proc_port_open(addr, port))
            return 0;
        if (!proc_alive(p))
            break;
        nanosleep(&tick, NULL);
    }
    cli_say(cli, "%s did not start; see %s", what, out);
    proc_stop(p, STOP_TIMEOUT_MS);
    p->pid = 0;
    p->start = 0;
    return EXIT_FAILED;
}

/* Start argv unless p runs; with wait, wait until addr:port listens. */
static int spawn_ready(struct cli *cli, const struct lab *lab, const char *const *argv,
                       const char *out, const char *addr, int port, struct proc *p,
                       const char *what, bool httpd, const char *state_dir, bool wait)
{
    struct lab_env e;

    if (proc_alive(p))
        return 0;
    if (httpd)
        lab_env_httpd(lab, &e);
    else
        lab_env_init(lab, &e);
    /* A member is a machine of its own: its replay cache is its own, not the lab's. */
    if (state_dir != NULL)
        snprintf(e.rcache, sizeof(e.rcache), "KRB5RCACHEDIR=%s", state_dir);
    if (proc_spawn(argv, e.env, out, p) != 0) {
        cli_say(cli, "cannot start %s: %s", argv[0], strerror(errno));
        return EXIT_FAILED;
    }
    return wait ? await_port(cli, out, addr, port, p, what) : 0;
}

/* The lab's Redis password (DIR/redis/password, 0600): made once, random. */
static int redis_password(struct cli *cli, const struct lab *lab, char *pw, size_t len)
{
    char path[LAB_PATH_MAX + 32], text[80];
    unsigned char raw[24];
    size_t n = 0;
    FILE *f;
    int st;

    snprintf(path, sizeof(path), "%s/redis/password", lab->dir);
    if ((f = fopen(path, "r")) != NULL) {
        bool ok = fgets(pw, (int)len, f) != NULL;
        fclose(f);
        pw[strcspn(pw, "\n")] = '\0';
        if (ok && *pw != '\0')
            return 0;
    }
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        cli_say(cli, "cannot read random bytes: %s", strerror(errno));
        return EXIT_FAILED;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%02x", raw[i]);
    snprintf(pw, len, "%s", text);
    snprintf(text + n, sizeof(text) - n, "\n");
    st = write_file(cli, path, text, 0600);
    kasa_zap(raw, sizeof(raw));
    kasa_zap(text, sizeof(text));
    return st;
}

/* Start member i's kasad and kasa-httpd, whichever does not run; with wait, until they
 * listen. */
static int start_member(struct cli *cli, struct lab *lab, int i, bool wait)
{
    char name[16], host[160], addr[16], dir[LAB_PATH_MAX], kasad[PATH_MAX], httpd[PATH_MAX];
    char port[16], http_port[16], what[200];
    char keytab[LAB_PATH_MAX + 16], principal[300], managed[LAB_PATH_MAX + 16];
    char acl[LAB_PATH_MAX + 16], log[LAB_PATH_MAX + 16], out[LAB_PATH_MAX + 16];
    char alog[LAB_PATH_MAX + 16], hlog[LAB_PATH_MAX + 16], hout[LAB_PATH_MAX + 16];
    struct lab_member *m = &lab->members[i];
    int st;

    lab_member_names(lab, i, name, host, addr, dir);
    find_daemon("kasad", "KASAD", kasad, sizeof(kasad));
    find_daemon("kasa-httpd", "KASA_HTTPD", httpd, sizeof(httpd));
    snprintf(port, sizeof(port), "%d", m->port);
    snprintf(http_port, sizeof(http_port), "%d", m->http_port);
    snprintf(keytab, sizeof(keytab), "%s/host.keytab", dir);
    snprintf(principal, sizeof(principal), "host/%s@%s", host, lab->realm);
    snprintf(managed, sizeof(managed), "%s/array.keytab", dir);
    snprintf(acl, sizeof(acl), "%s/acl", dir);
    snprintf(log, sizeof(log), "%s/kasad.log", dir);
    snprintf(out, sizeof(out), "%s/kasad.out", dir);
    snprintf(alog, sizeof(alog), "%s/auth.log", dir);
    snprintf(hlog, sizeof(hlog), "%s/httpd.log", dir);
    snprintf(hout, sizeof(hout), "%s/httpd.out", dir);
    const char *kargv[] = {kasad,
                           "--foreground",
                           "--listen",
                           addr,
                           "--port",
                           port,
                           "--keytab",
                           keytab,
                           "--principal",
                           principal,
                           "--managed-keytab",
                           managed,
                           "--acl",
                           acl,
                           "--log",
                           log,
                           NULL};
    char hconf[LAB_PATH_MAX + 32];
    const char *hargv[] = {httpd, "--keytab",     managed,      "--member",   name, "--listen",
                           addr,  "--port",       http_port,    "--auth-log", alog, "--log",
                           hlog,  "--proxy-from", LAB_BALANCER, NULL,         NULL, NULL};
    /* With the lab's Redis, the replay cache the members share: its URL holds a password,
     * so it goes in a file of the member's own, not on a command line. */
    if (lab->redis_port > 0) {
        char text[512], pw[128];
        snprintf(hconf, sizeof(hconf), "%s/kasa-httpd.conf", dir);
        if (redis_password(cli, lab, pw, sizeof(pw)) != 0)
            return EXIT_FAILED;
        snprintf(text, sizeof(text),
                 "# written by kasa lab up --replay redis\n[kasa-httpd]\n"
                 "\treplay_cache = redis://:%s@" LAB_ADDR ":%d\n",
                 pw, lab->redis_port);
        st = write_file(cli, hconf, text, 0600);
        kasa_zap(text, sizeof(text));
        kasa_zap(pw, sizeof(pw));
        if (st)
            return st;
        hargv[15] = "--config";
        hargv[16] = hconf;
    }
    snprintf(what, sizeof(what), "kasad for %s", host);
    st = spawn_ready(cli, lab, kargv, out, addr, m->port, &m->proc, what, false, dir, wait);
    if (!st && m->http_port > 0) {
        snprintf(what, sizeof(what), "kasa-httpd for %s", host);
        st =
            spawn_ready(cli, lab, hargv, hout, addr, m->http_port, &m->http, what, true, dir, wait);
    }
    return st;
}

int lab_start_member(struct cli *cli, struct lab *lab, int i)
{
    return start_member(cli, lab, i, true);
}

int lab_start_members(struct cli *cli, struct lab *lab)
{
    int st = 0;

    /* All at once: a hundred members start in the time of a few. */
    for (int i = 0; !st && i < lab->n_members; i++)
        st = start_member(cli, lab, i, false);
    for (int i = 0; !st && i < lab->n_members; i++) {
        struct lab_member *m = &lab->members[i];
        char host[160], addr[16], dir[LAB_PATH_MAX], out[LAB_PATH_MAX + 16], what[200];
        lab_member_names(lab, i, NULL, host, addr, dir);
        snprintf(out, sizeof(out), "%s/kasad.out", dir);
        snprintf(what, sizeof(what), "kasad for %s", host);
        st = await_port(cli, out, addr, m->port, &m->proc, what);
        if (!st && m->http_port > 0) {
            snprintf(out, sizeof(out), "%s/httpd.out", dir);
            snprintf(what, sizeof(what), "kasa-httpd for %s", host);
            st = await_port(cli, out, addr, m->http_port, &m->http, what);
        }
    }
    return st;
}

/* HAProxy in TCP mode (NTLM is bound to the connection) on LAB_BALANCER for the array's
 * name, round robin over the members' kasa-httpd, each health-checked. It connects to
 * them from LAB_BALANCER too, and a PROXY v2 header names the client: kasa-httpd takes
 * that header from LAB_BALANCER only (--proxy-from), so clients that reach a member
 * directly (from 127.0.0.1) are themselves. */
int lab_start_balancer(struct cli *cli, struct lab *lab)
{
    char cfg[LAB_PATH_MAX + 16], out[LAB_PATH_MAX + 16], text[16384];
    int st;

    if (lab->n_members == 0 || proc_alive(&lab->balancer))
        return 0;
    if (lab->balancer_port == 0 && proc_free_ports(LAB_BALANCER, &lab->balancer_port, 1) != 0) {
        cli_say(cli, "cannot find a free port on " LAB_BALANCER);
        return EXIT_FAILED;
    }
    snprintf(text, sizeof(text),
             "# HAProxy for the kasa lab's array; written by kasa lab up.\n"
             "global\n"
             "\tmaxconn 1024\n"
             "defaults\n"
             "\tmode tcp\n"
             "\ttimeout connect 2s\n"
             "\ttimeout client 30s\n"
             "\ttimeout server 30s\n"
             "\tretries 3\n"
             "\toption redispatch 1\n"
             "frontend array\n"
             "\tbind " LAB_BALANCER ":%d\n"
             "\tdefault_backend members\n"
             "backend members\n"
             "\tbalance roundrobin\n"
             "\tsource " LAB_BALANCER "\n",
             lab->balancer_port);
    for (int i = 0; i < lab->n_members; i++) {
        char name[16], addr[16];
        lab_member_names(lab, i, name, NULL, addr, NULL);
        snprintf(text + strlen(text), sizeof(text) - strlen(text),
                 "\tserver %s %s:%d send-proxy-v2 check inter 500ms fall 1 rise 1\n", name, addr,
                 lab->members[i].http_port);
    }
    st = write_file(cli, lab_path(lab, "haproxy.cfg", cfg, sizeof(cfg)), text, 0644);
    if (st)
        return st;
    lab_path(lab, "haproxy.out", out, sizeof(out));
    const char *argv[] = {"haproxy", "-db", "-f", cfg, NULL};
    return spawn_ready(cli, lab, argv, out, LAB_BALANCER, lab->balancer_port, &lab->balancer,
                       "HAProxy", false, NULL, true);
}

void lab_stop_members(struct lab *lab, bool say)
{
    if (proc_stop(&lab->balancer, STOP_TIMEOUT_MS) && say)
        printf("stopped HAProxy (pid %d)\n", (int)lab->balancer.pid);
    lab->balancer.pid = 0;
    lab->balancer.start = 0;
    if (proc_stop(&lab->redis, STOP_TIMEOUT_MS) && say)
        printf("stopped Redis (pid %d)\n", (int)lab->redis.pid);
    lab->redis.pid = 0;
    lab->redis.start = 0;
    for (int i = 0; i < lab->n_members; i++) {
        struct lab_member *m = &lab->members[i];
        char name[16];
        lab_member_names(lab, i, name, NULL, NULL, NULL);
        if (proc_stop(&m->http, STOP_TIMEOUT_MS) && say)
            printf("stopped kasa-httpd %s (pid %d)\n", name, (int)m->http.pid);
        if (proc_stop(&m->proc, STOP_TIMEOUT_MS) && say)
            printf("stopped kasad %s (pid %d)\n", name, (int)m->proc.pid);
        m->proc.pid = 0;
        m->proc.start = 0;
        m->http.pid = 0;
        m->http.start = 0;
    }
}

/* alice's NTLM password for gss-ntlmssp (client and servers read NTLM_USER_FILE): made
 * once, random, kept with the lab. */
static int write_ntlm_users(struct cli *cli, const struct lab *lab)
{
    char path[LAB_PATH_MAX + 16], text[256], domain[64];
    unsigned char raw[12];
    size_t n = 0;
    int st;

    lab_path(lab, "ntlm.users", path, sizeof(path));
    if (access(path, F_OK) == 0)
        return 0;
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        cli_say(cli, "cannot read random bytes: %s", strerror(errno));
        return EXIT_FAILED;
    }
    snprintf(domain, sizeof(domain), "%.*s", (int)strcspn(lab->realm, "."), lab->realm);
    n = (size_t)snprintf(text, sizeof(text), "%s:alice:", domain);
    for (size_t i = 0; i < sizeof(raw); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%02x", raw[i]);
    snprintf(text + n, sizeof(text) - n, "\n");
    st = write_file(cli, path, text, 0600);
    kasa_zap(raw, sizeof(raw));
    kasa_zap(text, sizeof(text));
    return st;
}

/*
 * Redis for the array's shared replay cache (lab up --replay redis): on LAB_ADDR, with a
 * password, saving nothing to disk; its configuration (which holds the password) 0600 in
 * DIR/redis.
 */
int lab_start_redis(struct cli *cli, struct lab *lab, bool new)
{
    char dir[LAB_PATH_MAX + 16], conf[LAB_PATH_MAX + 32], out[LAB_PATH_MAX + 32], text[2048];
    char pw[128];
    const char *argv[] = {"redis-server", conf, NULL};
    int st;

    if (new && lab->redis_port == 0 && proc_free_ports(LAB_ADDR, &lab->redis_port, 1) != 0) {
        cli_say(cli, "no free port for Redis on " LAB_ADDR);
        return EXIT_FAILED;
    }
    if (lab->redis_port == 0 || proc_alive(&lab->redis))
        return 0;
    snprintf(dir, sizeof(dir), "%s/redis", lab->dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cli_say(cli, "cannot create %s: %s", dir, strerror(errno));
        return EXIT_FAILED;
    }
    if (redis_password(cli, lab, pw, sizeof(pw)) != 0)
        return EXIT_FAILED;
    snprintf(conf, sizeof(conf), "%s/redis.conf", dir);
    snprintf(out, sizeof(out), "%s/redis.out", dir);
    snprintf(text, sizeof(text),
             "# Redis for the kasa lab's shared replay cache; written by kasa lab up.\n"
             "port %d\nbind " LAB_ADDR "\nprotected-mode yes\nrequirepass %s\n"
             "save \"\"\nappendonly no\ndir %s\ndaemonize no\n",
             lab->redis_port, pw, dir);
    st = write_file(cli, conf, text, 0600);
    kasa_zap(text, sizeof(text));
    kasa_zap(pw, sizeof(pw));
    if (st)
        return st;
    return spawn_ready(cli, lab, argv, out, LAB_ADDR, lab->redis_port, &lab->redis, "Redis", false,
                       NULL, true);
}

static int lab_up(struct cli *cli, int argc, char **argv)
{
    const char *dir = LAB_DIR_DEFAULT, *realm = NULL;
    struct lab lab;
    bool fresh, all_up = true;
    int st, n_members = -1;

    if (lab_ad_wanted(argc, argv))
        return lab_ad_up(cli, argc, argv);
    st = parse_dir_opts(
        cli, argc, argv, &dir, &realm, &n_members, NULL,
        "usage: kasa lab up [--dir DIR] [--realm REALM] [--members N] [--replay redis]\n"
        "\n"
        "Start a throwaway MIT realm on " LAB_ADDR " in DIR (default " LAB_DIR_DEFAULT ")\n"
        "for REALM (default " LAB_REALM_DEFAULT "). Running it again starts only what is\n"
        "not running; the realm's database is kept until you remove DIR.\n"
        "  -d, --dir DIR       the lab's directory\n"
        "  -r, --realm REALM   the realm's name\n"
        "      --members N     also N array members (kasad) cas1.. on 127.0.0.11..19,\n"
        "                      cas10..cas100 on 127.0.2.10..100 (N at most 100)\n"
        "      --replay redis  the members share a replay cache in a Redis of the lab's\n"
        "                      own on 127.0.0.1, with a password in DIR/redis\n"
        "      --ad            a Samba AD domain instead (kasa lab up --ad --help)\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    if (realm != NULL && (st = check_realm(cli, realm)) != 0)
        return st;
    if (lab_ad_here(dir))
        return cli_usage(cli, "%s holds an AD lab; start it with kasa lab up --ad", dir);
    memset(&lab, 0, sizeof(lab));
    st = resolve_dir(cli, dir, true, &lab);
    if (st)
        return st;

    st = read_state(cli, &lab);
    if (st < 0)
        return EXIT_FAILED;
    fresh = st == 1;
    if (!fresh) {
        if (realm != NULL && strcmp(realm, lab.realm) != 0)
            return cli_usage(cli, "%s holds the lab realm %s, not %s; use another --dir", lab.dir,
                             lab.realm, realm);
        all_up = proc_alive(&lab.procs[D_KDC]) && proc_alive(&lab.procs[D_KADMIND]) &&
                 n_members <= lab.n_members;
        for (int i = 0; all_up && i < lab.n_members; i++)
            all_up = proc_alive(&lab.members[i].proc) && proc_alive(&lab.members[i].http);
        all_up = all_up && (lab.n_members == 0 || proc_alive(&lab.balancer));
        all_up = all_up && (lab.redis_port == 0 || proc_alive(&lab.redis)) &&
                 (!replay_redis || lab.redis_port > 0);
        if (all_up) {
            printf("lab %s already runs in %s (krb5kdc pid %d, kadmind pid %d, %d member%s)\n",
                   lab.realm, lab.dir, (int)lab.procs[D_KDC].pid, (int)lab.procs[D_KADMIND].pid,
                   lab.n_members, lab.n_members == 1 ? "" : "s");
            return EXIT_OK;
        }
    } else {
        /* Never write configuration into a directory that holds something else. */
        if (!dir_empty(lab.dir)) {
            cli_say(cli, "%s is not empty and holds no lab; give a new or empty --dir", lab.dir);
            return EXIT_FAILED;
        }
        snprintf(lab.realm, sizeof(lab.realm), "%s", realm != NULL ? realm : LAB_REALM_DEFAULT);
        snprintf(lab.admin, sizeof(lab.admin), "kasa/admin@%s", lab.realm);
        st = pick_ports(cli, &lab);
        if (!st)
            st = write_configs(cli, &lab);
        if (!st)
            st = create_realm(cli, &lab);
        if (st)
            return st;
    }

    /* A port taken between choosing it and the daemon binding it: choose again. */
    for (int attempt = 0;; attempt++) {
        if (start_daemons(cli, &lab))
            break;
        stop_daemons(&lab);
        if (attempt == 2) {
            cli_say(cli,
                    "the lab's daemons did not start; see %s/krb5kdc.out and "
                    "%s/kadmind.out",
                    lab.dir, lab.dir);
            write_state(cli, &lab);
            return EXIT_FAILED;
        }
        st = pick_ports(cli, &lab);
        if (!st)
            st = write_configs(cli, &lab);
        if (st)
            return st;
    }
    /* The members: make the new ones (their host keys in one kadmin.local), start every
     * one that is not running. */
    {
        int first = lab.n_members;
        for (int i = first; !st && i < n_members; i++)
            st = lab_create_member(cli, &lab, i, NULL);
        if (!st && n_members > first)
            st = mit_host_keys(cli, &lab, first, n_members);
        if (!st && n_members > first)
            lab.n_members = n_members;
    }
    if (!st)
        st = write_ntlm_users(cli, &lab);
    if (!st)
        st = lab_start_redis(cli, &lab, replay_redis);
    if (!st)
        st = lab_start_members(cli, &lab);
    if (!st)
        st = lab_start_balancer(cli, &lab);
    if (!st)
        st = write_state(cli, &lab);
    if (st) {
        lab_stop_members(&lab, false);
        stop_daemons(&lab);
        write_state(cli, &lab);
        return st;
    }
    printf("lab %s runs in %s\n"
           "  krb5kdc  " LAB_ADDR ":%d (pid %d)\n"
           "  kadmind  " LAB_ADDR ":%d (pid %d)\n",
           lab.realm, lab.dir, lab.kdc_port, (int)lab.procs[D_KDC].pid, lab.kadmind_port,
           (int)lab.procs[D_KADMIND].pid);
    for (int i = 0; i < lab.n_members; i++) {
        char host[160], addr[16];
        lab_member_names(&lab, i, NULL, host, addr, NULL);
        printf("  kasad    %s:%d (pid %d) as host/%s; kasa-httpd %s:%d (pid %d)\n", addr,
               lab.members[i].port, (int)lab.members[i].proc.pid, host, addr,
               lab.members[i].http_port, (int)lab.members[i].http.pid);
    }
    if (lab.n_members > 0)
        printf("  HAProxy  " LAB_BALANCER ":%d (pid %d), the array's name in front of them\n",
               lab.balancer_port, (int)lab.balancer.pid);
    if (lab.redis_port > 0)
        printf("  Redis    " LAB_ADDR ":%d (pid %d), the members' shared replay cache\n",
               lab.redis_port, (int)lab.redis.pid);
    printf("  test user alice: %s/alice.keytab\n"
           "point this shell at it: eval \"$(kasa lab env --dir %s)\"\n",
           lab.dir, lab.dir);
    return EXIT_OK;
}

/* Load an existing lab for down/env/status; prints and returns non-zero when none. */
static int load_lab(struct cli *cli, const char *dir, struct lab *lab, bool quiet_missing)
{
    int st;

    memset(lab, 0, sizeof(*lab));
    st = resolve_dir(cli, dir, false, lab);
    if (st)
        return st;
    st = read_state(cli, lab);
    if (st < 0)
        return EXIT_FAILED;
    if (st == 1) {
        if (!quiet_missing)
            cli_say(cli, "no lab in %s; start one with kasa lab up --dir %s", lab->dir, dir);
        return EXIT_FAILED;
    }
    return 0;
}

static int lab_down(struct cli *cli, int argc, char **argv)
{
    const char *dir = LAB_DIR_DEFAULT;
    struct lab lab;
    int st, stopped = 0;

    st = parse_dir_opts(cli, argc, argv, &dir, NULL, NULL, NULL,
                        "usage: kasa lab down [--dir DIR]\n"
                        "\n"
                        "Stop the daemons kasa lab up started in DIR, and only those. The\n"
                        "directory stays; remove it to throw the realm away. An AD lab\n"
                        "(lab up --ad) is thrown away: its address and directory go too.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    if (lab_ad_here(dir))
        return lab_ad_down(cli, dir);
    memset(&lab, 0, sizeof(lab));
    if (access(dir, F_OK) != 0 || resolve_dir(cli, dir, false, &lab) != 0 ||
        (st = read_state(cli, &lab)) == 1) {
        printf("no lab in %s; nothing to stop\n", dir);
        return EXIT_OK;
    }
    if (st < 0)
        return EXIT_FAILED;
    for (int i = 0; i < lab.n_members; i++)
        stopped += proc_alive(&lab.members[i].proc);
    lab_stop_members(&lab, true);
    for (int i = N_DAEMONS - 1; i >= 0; i--) {
        if (proc_stop(&lab.procs[i], STOP_TIMEOUT_MS)) {
            printf("stopped %s (pid %d)\n", daemon_names[i], (int)lab.procs[i].pid);
            stopped++;
        }
        lab.procs[i].pid = 0;
        lab.procs[i].start = 0;
    }
    if (stopped == 0)
        printf("nothing runs in %s; nothing to stop\n", lab.dir);
    return write_state(cli, &lab);
}

static int lab_env(struct cli *cli, int argc, char **argv)
{
    const char *dir = LAB_DIR_DEFAULT;
    struct lab lab;
    int st;

    st = parse_dir_opts(cli, argc, argv, &dir, NULL, NULL, NULL,
                        "usage: kasa lab env [--dir DIR]\n"
                        "\n"
                        "Print export lines that point kasa and MIT's tools (kinit, kvno,\n"
                        "kadmin.local) at the lab: eval \"$(kasa lab env)\".\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    if (lab_ad_here(dir))
        return lab_ad_env(cli, dir);
    st = load_lab(cli, dir, &lab, false);
    if (st)
        return st;
    /* resolve_dir() allowed no character that would need quoting. */
    printf("export KRB5_CONFIG=%s/krb5.conf\n"
           "export KRB5_KDC_PROFILE=%s/kdc.conf\n"
           "export KRB5CCNAME=FILE:%s/ccache\n"
           "export KRB5RCACHEDIR=%s\n"
           "export KASA_CONFIG=%s/kasa.conf\n"
           "export KASA_LAB_DIR=%s\n"
           "export NTLM_USER_FILE=%s/ntlm.users\n",
           lab.dir, lab.dir, lab.dir, lab.dir, lab.dir, lab.dir, lab.dir);
    return EXIT_OK;
}

static json_object *daemon_json(const struct lab *lab, int which, int port)
{
    json_object *o = json_object_new_object();
    char log[LAB_PATH_MAX], name[32];
    bool alive = proc_alive(&lab->procs[which]);

    snprintf(name, sizeof(name), "%s.log", which == D_KDC ? "krb5kdc" : "kadmind");
    json_object_object_add(o, "address", json_object_new_string(LAB_ADDR));
    json_object_object_add(o, "port", json_object_new_int(port));
    json_object_object_add(o, "pid", alive ? json_object_new_int(lab->procs[which].pid) : NULL);
    json_object_object_add(o, "running", json_object_new_boolean(alive));
    json_object_object_add(o, "log", json_object_new_string(lab_path(lab, name, log, sizeof(log))));
    return o;
}

bool lab_members_alive(const struct lab *lab)
{
    bool all = true;

    for (int i = 0; i < lab->n_members; i++)
        all = all && proc_alive(&lab->members[i].proc) && proc_alive(&lab->members[i].http);
    return all && (lab->n_members == 0 || proc_alive(&lab->balancer)) &&
           (lab->redis_port == 0 || proc_alive(&lab->redis));
}

void lab_members_json(const struct lab *lab, json_object *o)
{
    json_object *ms = json_object_new_array();

    for (int i = 0; i < lab->n_members; i++) {
        char name[16], host[160], addr[16], mdir[LAB_PATH_MAX], p2[LAB_PATH_MAX + 32];
        json_object *m = json_object_new_object();
        bool alive = proc_alive(&lab->members[i].proc);
        lab_member_names(lab, i, name, host, addr, mdir);
        json_object_object_add(m, "name", json_object_new_string(name));
        json_object_object_add(m, "host", json_object_new_string(host));
        json_object_object_add(m, "address", json_object_new_string(addr));
        json_object_object_add(m, "port", json_object_new_int(lab->members[i].port));
        json_object_object_add(m, "pid",
                               alive ? json_object_new_int(lab->members[i].proc.pid) : NULL);
        json_object_object_add(m, "running", json_object_new_boolean(alive));
        snprintf(p2, sizeof(p2), "%s/array.keytab", mdir);
        json_object_object_add(m, "managed_keytab", json_object_new_string(p2));
        snprintf(p2, sizeof(p2), "%s/host.keytab", mdir);
        json_object_object_add(m, "host_keytab", json_object_new_string(p2));
        snprintf(p2, sizeof(p2), "%s/acl", mdir);
        json_object_object_add(m, "acl", json_object_new_string(p2));
        snprintf(p2, sizeof(p2), "%s/kasad.log", mdir);
        json_object_object_add(m, "log", json_object_new_string(p2));
        {
            json_object *h = json_object_new_object();
            bool hup = proc_alive(&lab->members[i].http);
            json_object_object_add(h, "address", json_object_new_string(addr));
            json_object_object_add(h, "port", json_object_new_int(lab->members[i].http_port));
            json_object_object_add(h, "pid",
                                   hup ? json_object_new_int(lab->members[i].http.pid) : NULL);
            json_object_object_add(h, "running", json_object_new_boolean(hup));
            snprintf(p2, sizeof(p2), "%s/auth.log", mdir);
            json_object_object_add(h, "auth_log", json_object_new_string(p2));
            json_object_object_add(m, "http", h);
        }
        json_object_array_add(ms, m);
    }
    json_object_object_add(o, "members", ms);
    if (lab->n_members > 0) {
        json_object *b = json_object_new_object();
        bool bup = proc_alive(&lab->balancer);
        json_object_object_add(b, "address", json_object_new_string(LAB_BALANCER));
        json_object_object_add(b, "port", json_object_new_int(lab->balancer_port));
        json_object_object_add(b, "pid", bup ? json_object_new_int(lab->balancer.pid) : NULL);
        json_object_object_add(b, "running", json_object_new_boolean(bup));
        json_object_object_add(o, "balancer", b);
    }
    if (lab->redis_port > 0) {
        json_object *r = json_object_new_object();
        bool rup = proc_alive(&lab->redis);
        char pw[LAB_PATH_MAX + 32];
        snprintf(pw, sizeof(pw), "%s/redis/password", lab->dir);
        json_object_object_add(r, "address", json_object_new_string(LAB_ADDR));
        json_object_object_add(r, "port", json_object_new_int(lab->redis_port));
        json_object_object_add(r, "pid", rup ? json_object_new_int(lab->redis.pid) : NULL);
        json_object_object_add(r, "running", json_object_new_boolean(rup));
        json_object_object_add(r, "password_file", json_object_new_string(pw));
        json_object_object_add(o, "redis", r);
    }
}

void lab_members_table(const struct lab *lab, struct table *t)
{
    for (int i = 0; i < lab->n_members; i++) {
        char name[32], addr[64], pid[16], maddr[16];
        bool alive = proc_alive(&lab->members[i].proc);
        lab_member_names(lab, i, name, NULL, maddr, NULL);
        snprintf(name + strlen(name), sizeof(name) - strlen(name), " kasad");
        snprintf(addr, sizeof(addr), "%s:%d", maddr, lab->members[i].port);
        snprintf(pid, sizeof(pid), "%d", (int)lab->members[i].proc.pid);
        table_add(t, name, addr, alive ? pid : "-", alive ? "running" : "stopped");
        alive = proc_alive(&lab->members[i].http);
        lab_member_names(lab, i, name, NULL, maddr, NULL);
        snprintf(name + strlen(name), sizeof(name) - strlen(name), " httpd");
        snprintf(addr, sizeof(addr), "%s:%d", maddr, lab->members[i].http_port);
        snprintf(pid, sizeof(pid), "%d", (int)lab->members[i].http.pid);
        table_add(t, name, addr, alive ? pid : "-", alive ? "running" : "stopped");
    }
    if (lab->n_members > 0) {
        char addr[64], pid[16];
        bool alive = proc_alive(&lab->balancer);
        snprintf(addr, sizeof(addr), LAB_BALANCER ":%d", lab->balancer_port);
        snprintf(pid, sizeof(pid), "%d", (int)lab->balancer.pid);
        table_add(t, "balancer", addr, alive ? pid : "-", alive ? "running" : "stopped");
    }
    if (lab->redis_port > 0) {
        char addr[64], pid[16];
        bool alive = proc_alive(&lab->redis);
        snprintf(addr, sizeof(addr), LAB_ADDR ":%d", lab->redis_port);
        snprintf(pid, sizeof(pid), "%d", (int)lab->redis.pid);
        table_add(t, "redis", addr, alive ? pid : "-", alive ? "running" : "stopped");
    }
}

static int lab_status(struct cli *cli, int argc, char **argv)
{
    const char *dir = LAB_DIR_DEFAULT;
    bool json = false, all;
    struct lab lab;
    char path[LAB_PATH_MAX];
    int st;

    st = parse_dir_opts(cli, argc, argv, &dir, NULL, NULL, &json,
                        "usage: kasa lab status [--dir DIR] [--json]\n"
                        "\n"
                        "What runs in the lab: each daemon's address, port and pid.\n"
                        "Exit 0 when everything runs, 1 otherwise.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    if (lab_ad_here(dir))
        return lab_ad_status(cli, dir, json);
    st = load_lab(cli, dir, &lab, false);
    if (st)
        return st;
    all = proc_alive(&lab.procs[D_KDC]) && proc_alive(&lab.procs[D_KADMIND]);
    all = all && lab_members_alive(&lab);
    if (json) {
        json_object *o = json_object_new_object(), *files = json_object_new_object();
        static const char *const names[][2] = {
            {"krb5_config", "krb5.conf"},     {"kdc_profile", "kdc.conf"},
            {"kasa_config", "kasa.conf"},     {"admin_keytab", "kasa-admin.keytab"},
            {"alice_keytab", "alice.keytab"}, {"acl", "kadm5.acl"},
        };
        json_object_object_add(o, "dir", json_object_new_string(lab.dir));
        json_object_object_add(o, "realm", json_object_new_string(lab.realm));
        json_object_object_add(o, "running", json_object_new_boolean(all));
        json_object_object_add(o, "kdc", daemon_json(&lab, D_KDC, lab.kdc_port));
        json_object_object_add(o, "kadmind", daemon_json(&lab, D_KADMIND, lab.kadmind_port));
        json_object *kp = daemon_json(&lab, D_KADMIND, lab.kpasswd_port);
        json_object_object_add(o, "kpasswd", kp);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            json_object_object_add(
                files, names[i][0],
                json_object_new_string(lab_path(&lab, names[i][1], path, sizeof(path))));
        json_object_object_add(o, "files", files);
        lab_members_json(&lab, o);
        cli_json_print(o);
    } else {
        struct table *t = table_new(4, "SERVICE", "ADDRESS", "PID", "STATE");
        static const char *const services[] = {"kdc", "kadmind", "kpasswd"};
        int ports[] = {lab.kdc_port, lab.kadmind_port, lab.kpasswd_port};
        int which[] = {D_KDC, D_KADMIND, D_KADMIND};
        printf("lab %s in %s\n", lab.realm, lab.dir);
        for (int i = 0; i < 3; i++) {
            char addr[64], pid[16];
            bool alive = proc_alive(&lab.procs[which[i]]);
            snprintf(addr, sizeof(addr), LAB_ADDR ":%d", ports[i]);
            snprintf(pid, sizeof(pid), "%d", (int)lab.procs[which[i]].pid);
            table_add(t, services[i], addr, alive ? pid : "-", alive ? "running" : "stopped");
        }
        lab_members_table(&lab, t);
        table_print(t, stdout);
        table_free(t);
    }
    return all ? EXIT_OK : EXIT_FAILED;
}

/* kasa lab member stop|start NAME: one member down or up, for demos and fault tests. */
static int lab_member(struct cli *cli, int argc, char **argv)
{
    const char *dir = LAB_DIR_DEFAULT;
    struct lab lab;
    int st, which = -1;
    bool start;

    st = parse_dir_opts(cli, argc, argv, &dir, NULL, NULL, NULL,
                        "usage: kasa lab member stop|start NAME [--dir DIR]\n"
                        "\n"
                        "Stop or start one member's kasad (NAME: cas1 or cas1.proseware.lab).\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 2, 2, "stop|start NAME");
    if (st)
        return st;
    if (strcmp(argv[optind], "stop") != 0 && strcmp(argv[optind], "start") != 0)
        return cli_usage(cli, "say stop or start, not %s", argv[optind]);
    start = strcmp(argv[optind], "start") == 0;
    st = lab_ad_here(dir) ? lab_ad_load(cli, dir, &lab) : load_lab(cli, dir, &lab, false);
    if (st)
        return st;
    for (int i = 0; i < lab.n_members; i++) {
        char name[16], host[160];
        lab_member_names(&lab, i, name, host, NULL, NULL);
        if (strcmp(argv[optind + 1], name) == 0 || strcmp(argv[optind + 1], host) == 0)
            which = i;
    }
    if (which < 0) {
        cli_say(cli, "the lab has no member %s (it has %d: cas1..)", argv[optind + 1],
                lab.n_members);
        return EXIT_FAILED;
    }
    if (start) {
        st = lab_start_member(cli, &lab, which);
        if (!st)
            printf("started kasad %s (pid %d) and kasa-httpd (pid %d)\n", argv[optind + 1],
                   (int)lab.members[which].proc.pid, (int)lab.members[which].http.pid);
    } else {
        bool was = proc_stop(&lab.members[which].http, STOP_TIMEOUT_MS);
        if (proc_stop(&lab.members[which].proc, STOP_TIMEOUT_MS) || was)
            printf("stopped kasad and kasa-httpd %s (pid %d)\n", argv[optind + 1],
                   (int)lab.members[which].proc.pid);
        else
            printf("%s was not running\n", argv[optind + 1]);
        memset(&lab.members[which].proc, 0, sizeof(lab.members[which].proc));
        memset(&lab.members[which].http, 0, sizeof(lab.members[which].http));
    }
    if (st)
        return st;
    return lab.ad ? lab_ad_save(cli, &lab) : write_state(cli, &lab);
}

int cmd_lab(struct cli *cli, int argc, char **argv)
{
    static const struct cli_verb verbs[] = {
        {"up", lab_up},         {"down", lab_down},     {"env", lab_env},
        {"status", lab_status}, {"member", lab_member}, {NULL, NULL},
    };

    return cli_dispatch(cli, "lab", verbs, help_group, argc, argv);
}
