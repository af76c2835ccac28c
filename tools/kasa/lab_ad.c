/*
 * kasa lab up --ad: a throwaway Samba AD domain (PROSEWARE.LAB, NetBIOS PROSEWARE) in
 * DIR/ad, served by one "samba -i -M single" on 127.0.0.20, for the AD directory backend
 * and its tests. The lab writes DIR/krb5.conf and DIR/kasa.conf for the domain, gives
 * alice (an AD user) and the domain's Administrator (kasa's admin) keytabs, and records
 * samba's identity in DIR/lab.state (kind = ad) so that "down" stops exactly what "up"
 * started, samba's own children included, then removes the address and the directory.
 *
 * The address: Samba binds only to an address an interface really has, so up adds
 * 127.0.0.20/32 to lo (and down removes it). We chose that over libsocket-wrapper, which
 * Samba's own tests use, because with a real address every client (MIT's kinit and kvno,
 * ldapsearch, kasa, kasad, HAProxy) reaches the DC as it would a real one, with no
 * LD_PRELOAD and no shared socket_wrapper directory to pass to each of them; the price is
 * that up needs root (CAP_NET_ADMIN), which the lab's CI has.
 *
 * Provisioning takes about 5 s, so kasa run from a build tree keeps a provisioned
 * template in BUILD/lab-cache (keyed by Samba's version) and copies it per lab, then
 * gives the copy its own Administrator password and its own alice. Only smb.conf names
 * absolute paths, and the lab writes its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <profile.h>

#include "lab_ad.h"
#include "proc.h"

#define AD_ADDR "127.0.0.20"
#define AD_REALM "PROSEWARE.LAB"
#define AD_DOMAIN "proseware.lab"
#define AD_NETBIOS "PROSEWARE"
#define AD_BASE_DN "DC=proseware,DC=lab"
#define AD_TEMPLATE_LAYOUT "1" /* bump when the provision command below changes */
#define AD_READY_TIMEOUT_MS 60000
#define AD_STOP_TIMEOUT_MS 10000
#define AD_PATH_MAX (PATH_MAX + 64)

/* The ports up waits for, and status shows. */
static const struct {
    const char *name;
    int port;
} ad_ports[] = {{"kdc", 88}, {"ldap", 389}, {"kpasswd", 464}};
#define N_AD_PORTS (sizeof(ad_ports) / sizeof(ad_ports[0]))

struct ad_lab {
    char dir[PATH_MAX];
    struct proc samba;
    int addr_added;   /* 1 when this lab put AD_ADDR on lo */
    struct lab array; /* the members and the balancer, run by lab.c's code */
};

/*
 * Sets passwords, creates alice, gives the DC an SPN for the LDAP URI's name (so that
 * SASL/GSSAPI to ldap://127.0.0.20 finds a key), and exports the keytabs, all on the
 * offline database through Samba's own Python bindings: the passwords arrive on stdin,
 * never on a command line. argv: smb.conf, sam.ldb, alice.keytab, admin.keytab.
 */
static const char ad_setup_py[] =
    "import sys, ldb\n"
    "from samba.param import LoadParm\n"
    "from samba.auth import system_session\n"
    "from samba.samdb import SamDB\n"
    "from samba.net import Net\n"
    "import samba.dckeytab  # adds Net.export_keytab\n"
    "conf, url, alice_kt, admin_kt = sys.argv[1:5]\n"
    "admin_pw, alice_pw = sys.stdin.read().split('\\n')[:2]\n"
    "lp = LoadParm()\n"
    "lp.load(conf)\n"
    "db = SamDB(url=url, session_info=system_session(), lp=lp)\n"
    "db.setpassword('(sAMAccountName=Administrator)', admin_pw)\n"
    "db.newuser('alice', alice_pw)\n"
    "dc = db.search(base=db.domain_dn(), expression='(sAMAccountName=DC1$)', attrs=[])[0]\n"
    "m = ldb.Message()\n"
    "m.dn = dc.dn\n"
    "m['spn'] = ldb.MessageElement('ldap/" AD_ADDR "', ldb.FLAG_MOD_ADD, "
    "'servicePrincipalName')\n"
    "db.modify(m)\n"
    "net = Net(None, lp)\n"
    "net.export_keytab(keytab=alice_kt, principal='alice@" AD_REALM "')\n"
    "net.export_keytab(keytab=admin_kt, principal='Administrator@" AD_REALM "')\n";

/*
 * Makes member NAME's computer account (enabled, AES only, dNSHostName HOST and the SPNs
 * host/HOST and host/NAME, as a domain join leaves them) with a random password from
 * stdin, and exports its host/HOST keys to KEYTAB. argv: smb.conf, sam.ldb, NAME, HOST,
 * KEYTAB.
 */
static const char ad_member_py[] =
    "import sys, ldb\n"
    "from samba.param import LoadParm\n"
    "from samba.auth import system_session\n"
    "from samba.samdb import SamDB\n"
    "from samba.net import Net\n"
    "from samba import dsdb\n"
    "import samba.dckeytab  # adds Net.export_keytab\n"
    "conf, url, name, host, kt = sys.argv[1:6]\n"
    "pw = sys.stdin.read().split('\\n')[0]\n"
    "lp = LoadParm()\n"
    "lp.load(conf)\n"
    "db = SamDB(url=url, session_info=system_session(), lp=lp)\n"
    "cn = name.upper()\n"
    "db.add({'dn': 'CN=%s,CN=Computers,%s' % (cn, db.domain_dn()),\n"
    "        'objectClass': 'computer', 'sAMAccountName': cn + '$',\n"
    "        'userAccountControl': str(dsdb.UF_WORKSTATION_TRUST_ACCOUNT),\n"
    "        'dNSHostName': host, 'msDS-SupportedEncryptionTypes': '24',\n"
    "        'servicePrincipalName': ['host/' + host, 'host/' + cn]})\n"
    "db.setpassword('(sAMAccountName=%s$)' % ldb.binary_encode(cn), pw)\n"
    "Net(None, lp).export_keytab(keytab=kt, principal='host/%s@" AD_REALM "' % host)\n";

static const char *ad_path(const struct ad_lab *lab, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", lab->dir, name);
    return buf;
}

bool lab_ad_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--ad") == 0)
            return true;
    }
    return false;
}

/* The members' side of the lab: lab.c's struct lab for this directory and domain. */
static void array_init(struct ad_lab *lab)
{
    struct lab *a = &lab->array;

    memset(a, 0, sizeof(*a));
    /* lab_resolve_dir() refused a directory too long for a->dir. */
    memcpy(a->dir, lab->dir, strnlen(lab->dir, sizeof(a->dir) - 1));
    snprintf(a->realm, sizeof(a->realm), AD_REALM);
    snprintf(a->admin, sizeof(a->admin), "Administrator@" AD_REALM);
    a->ad = true;
}

/* Read DIR/lab.state of an AD lab: 1 when there is none or it is not an AD lab. */
static int read_ad_state(struct ad_lab *lab)
{
    char path[AD_PATH_MAX], *kind = NULL;
    profile_t prof = NULL;
    int pid = 0, start = 0, ret = 1;

    array_init(lab);
    ad_path(lab, "lab.state", path, sizeof(path));
    if (access(path, F_OK) != 0 || profile_init_path(path, &prof) != 0)
        return 1;
    if (profile_get_string(prof, "lab", "kind", NULL, NULL, &kind) == 0 && kind != NULL &&
        strcmp(kind, "ad") == 0) {
        profile_get_integer(prof, "lab", "samba_pid", NULL, 0, &pid);
        profile_get_integer(prof, "lab", "samba_start", NULL, 0, &start);
        profile_get_integer(prof, "lab", "address_added", NULL, 0, &lab->addr_added);
        lab->samba.pid = pid;
        /* Start times are clock ticks since boot; they fit an int for years of uptime. */
        lab->samba.start = (unsigned long long)(unsigned)start;
        lab_read_members(prof, &lab->array);
        ret = 0;
    }
    profile_release_string(kind);
    profile_release(prof);
    return ret;
}

static int write_ad_state(struct cli *cli, const struct ad_lab *lab)
{
    char path[AD_PATH_MAX];
    char *text = malloc(LAB_STATE_MAX);
    int st;

    if (text == NULL) {
        cli_say(cli, "out of memory");
        return EXIT_FAILED;
    }
    snprintf(text, LAB_STATE_MAX,
             "# The state of the kasa AD lab in this directory; written by kasa lab.\n"
             "[lab]\n"
             "\tkind = ad\n"
             "\trealm = " AD_REALM "\n"
             "\taddress = " AD_ADDR "\n"
             "\taddress_added = %d\n"
             "\tsamba_pid = %d\n"
             "\tsamba_start = %llu\n",
             lab->addr_added, (int)lab->samba.pid, lab->samba.start);
    lab_state_members(&lab->array, text + strlen(text), LAB_STATE_MAX - strlen(text));
    st = lab_write_file(cli, ad_path(lab, "lab.state", path, sizeof(path)), text, 0600);
    free(text);
    return st;
}

bool lab_ad_here(const char *dir)
{
    struct ad_lab lab;

    memset(&lab, 0, sizeof(lab));
    if (realpath(dir, lab.dir) == NULL)
        return false;
    return read_ad_state(&lab) == 0;
}

/* A password AD's complexity rules accept: 24 random bytes in hex, framed by the other
 * character classes. */
static int random_password(struct cli *cli, char *buf, size_t len)
{
    unsigned char raw[24];
    size_t n;

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        cli_say(cli, "cannot read random bytes: %s", strerror(errno));
        return EXIT_FAILED;
    }
    n = (size_t)snprintf(buf, len, "Kasa-");
    for (size_t i = 0; i < sizeof(raw) && n + 3 < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%02x", raw[i]);
    snprintf(buf + n, len - n, "!Z");
    kasa_zap(raw, sizeof(raw));
    return 0;
}

/* Run argv, output to DIR/setup.log; reports and returns an exit status on failure. */
static int run_logged(struct cli *cli, const struct ad_lab *lab, const char *const *argv,
                      const char *input, size_t input_len, const char *what)
{
    char log[AD_PATH_MAX];

    ad_path(lab, "setup.log", log, sizeof(log));
    if (proc_run(argv, NULL, input, input_len, log) != 0) {
        cli_say(cli, "%s failed; see %s", what, log);
        return EXIT_FAILED;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

static int rm_tree(const char *path)
{
    return nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

/* Samba's version, e.g. "4.17.12-Debian", into buf; false when samba does not run. */
static bool samba_version(const struct ad_lab *lab, char *buf, size_t len)
{
    char out[AD_PATH_MAX];
    const char *argv[] = {"samba", "-V", NULL};
    FILE *f;
    bool ok = false;

    ad_path(lab, "samba-version.out", out, sizeof(out));
    unlink(out);
    if (proc_run(argv, NULL, NULL, 0, out) == 0 && (f = fopen(out, "r")) != NULL) {
        ok = fgets(buf, (int)len, f) != NULL && strncmp(buf, "Version ", 8) == 0;
        fclose(f);
        if (ok) {
            memmove(buf, buf + 8, strlen(buf + 8) + 1);
            buf[strcspn(buf, "\n")] = '\0';
            for (char *p = buf; *p; p++)
                if (*p == '/' || *p <= ' ')
                    *p = '_';
        }
    }
    unlink(out);
    return ok;
}

/* The build tree kasa runs from (it holds build.ninja), into buf; false when installed. */
static bool build_root(char *buf, size_t len)
{
    char exe[PATH_MAX], probe[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    if (n <= 0)
        return false;
    exe[n] = '\0';
    for (int up = 0; up < 3; up++) { /* BUILD/tools/kasa/kasa */
        slash = strrchr(exe, '/');
        if (slash == NULL)
            return false;
        *slash = '\0';
    }
    snprintf(probe, sizeof(probe), "%s/build.ninja", exe);
    if (access(probe, F_OK) != 0)
        return false;
    snprintf(buf, len, "%s", exe);
    return true;
}

/* samba-tool domain provision into target (a directory that does not exist yet). */
static int provision(struct cli *cli, const struct ad_lab *lab, const char *target)
{
    char targetdir[AD_PATH_MAX + 16], adminpass[128], pass_opt[160];
    int st;

    /* The template's own password is replaced in every lab; this one is thrown away. */
    st = random_password(cli, adminpass, sizeof(adminpass));
    if (st)
        return st;
    snprintf(targetdir, sizeof(targetdir), "--targetdir=%s", target);
    snprintf(pass_opt, sizeof(pass_opt), "--adminpass=%s", adminpass);
    const char *argv[] = {"samba-tool",
                          "domain",
                          "provision",
                          targetdir,
                          "--realm=" AD_REALM,
                          "--domain=" AD_NETBIOS,
                          "--server-role=dc",
                          "--dns-backend=NONE",
                          "--host-name=dc1",
                          pass_opt,
                          "--option=interfaces=" AD_ADDR,
                          "--option=bind interfaces only=yes",
                          NULL};
    st = run_logged(cli, lab, argv, NULL, 0, "samba-tool domain provision");
    kasa_zap(adminpass, sizeof(adminpass));
    kasa_zap(pass_opt, sizeof(pass_opt));
    return st;
}

/*
 * Put a provisioned domain in DIR/ad: a copy of the build tree's template (made on first
 * use; two labs making it at once each provision and the second rename loses), or, for
 * an installed kasa, a provision in place.
 */
static int provision_domain(struct cli *cli, const struct ad_lab *lab)
{
    char root[PATH_MAX], version[128], cache[PATH_MAX + 64], tmpl[PATH_MAX + 256];
    char work[PATH_MAX + 256], target[AD_PATH_MAX + 300], ad[AD_PATH_MAX];
    int st;

    ad_path(lab, "ad", ad, sizeof(ad));
    if (!build_root(root, sizeof(root)) || !samba_version(lab, version, sizeof(version)))
        return provision(cli, lab, ad);
    snprintf(cache, sizeof(cache), "%s/lab-cache", root);
    snprintf(tmpl, sizeof(tmpl), "%s/samba-ad-%s-%s", cache, version, AD_TEMPLATE_LAYOUT);
    if (access(tmpl, F_OK) != 0) {
        if (mkdir(cache, 0700) != 0 && errno != EEXIST) {
            cli_say(cli, "cannot create %s: %s", cache, strerror(errno));
            return EXIT_FAILED;
        }
        snprintf(work, sizeof(work), "%s/tmp.XXXXXX", cache);
        if (mkdtemp(work) == NULL) {
            cli_say(cli, "cannot create a directory in %s: %s", cache, strerror(errno));
            return EXIT_FAILED;
        }
        snprintf(target, sizeof(target), "%s/ad", work);
        st = provision(cli, lab, target);
        if (!st && rename(target, tmpl) != 0 && errno != EEXIST && errno != ENOTEMPTY) {
            cli_say(cli, "cannot move the template to %s: %s", tmpl, strerror(errno));
            st = EXIT_FAILED;
        }
        rm_tree(work);
        if (st)
            return st;
    }
    const char *cp[] = {"cp", "-a", tmpl, ad, NULL};
    return run_logged(cli, lab, cp, NULL, 0, "copying the provisioned template");
}

/* The lab's smb.conf: every path under DIR/ad, so that two labs share no file or
 * socket (winbindd's socket would otherwise be the system's /run/samba/winbindd). */
static int write_smb_conf(struct cli *cli, const struct ad_lab *lab)
{
    char path[AD_PATH_MAX + 32], text[8192];
    const char *d = lab->dir;
    static const char *const subdirs[] = {"ad/run",   "ad/log", "ad/lock",
                                          "ad/cache", "ad/etc", "ad/nss"};

    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        ad_path(lab, subdirs[i], path, sizeof(path));
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            cli_say(cli, "cannot create %s: %s", path, strerror(errno));
            return EXIT_FAILED;
        }
    }
    snprintf(text, sizeof(text),
             "# smb.conf of the kasa AD lab's domain controller; written by kasa lab up --ad.\n"
             "[global]\n"
             "\tnetbios name = DC1\n"
             "\trealm = " AD_REALM "\n"
             "\tworkgroup = " AD_NETBIOS "\n"
             "\tserver role = active directory domain controller\n"
             "\tinterfaces = " AD_ADDR "\n"
             "\tbind interfaces only = yes\n"
             "\t# no DNS server (the lab's krb5.conf names the KDC), no NetBIOS browsing\n"
             "\tserver services = -dns -nbt -wrepl -dnsupdate -ntp_signd\n"
             "\tprivate dir = %s/ad/private\n"
             "\tstate directory = %s/ad/state\n"
             "\tcache directory = %s/ad/cache\n"
             "\tlock directory = %s/ad/lock\n"
             "\tpid directory = %s/ad/run\n"
             "\tbinddns dir = %s/ad/bind-dns\n"
             "\tncalrpc dir = %s/ad/run/ncalrpc\n"
             "\twinbindd socket directory = %s/ad/run/winbindd\n"
             "\tntp signd socket directory = %s/ad/run/ntp_signd\n"
             "\tlog file = %s/ad/log/log.%%m\n"
             "\tlogging = file\n"
             "\n"
             "[sysvol]\n"
             "\tpath = %s/ad/state/sysvol\n"
             "\tread only = no\n"
             "\n"
             "[netlogon]\n"
             "\tpath = %s/ad/state/sysvol/" AD_DOMAIN "/scripts\n"
             "\tread only = no\n",
             d, d, d, d, d, d, d, d, d, d, d, d);
    return lab_write_file(cli, ad_path(lab, "ad/etc/smb.conf", path, sizeof(path)), text, 0644);
}

/*
 * The passwd and group files of the members' kasa-httpd, which runs under nss_wrapper so
 * that its NTLM logins reach the lab's winbindd (lab.c says why): root and the user
 * running the lab, so that nothing that looks a user up finds less than it would.
 */
static int write_nss_files(struct cli *cli, const struct ad_lab *lab)
{
    char path[AD_PATH_MAX + 32], passwd[1024], group[256];
    const struct passwd *me = getpwuid(geteuid());
    size_t n;
    int st;

    n = (size_t)snprintf(passwd, sizeof(passwd), "root:x:0:0:root:/root:/bin/sh\n");
    if (me != NULL && me->pw_uid != 0 && n < sizeof(passwd))
        snprintf(passwd + n, sizeof(passwd) - n, "%s:x:%u:%u::%s:/bin/sh\n", me->pw_name,
                 (unsigned)me->pw_uid, (unsigned)me->pw_gid, me->pw_dir);
    snprintf(group, sizeof(group), "root:x:0:\n");
    st = lab_write_file(cli, ad_path(lab, "ad/nss/passwd", path, sizeof(path)), passwd, 0644);
    if (!st)
        st = lab_write_file(cli, ad_path(lab, "ad/nss/group", path, sizeof(path)), group, 0644);
    return st;
}

/* Passwords for Administrator and alice (files 0600 in DIR), users and keytabs. */
static int create_accounts(struct cli *cli, const struct ad_lab *lab)
{
    char admin[128], alice[128], input[300], conf[AD_PATH_MAX], sam[AD_PATH_MAX];
    char alice_kt[AD_PATH_MAX], admin_kt[AD_PATH_MAX], path[AD_PATH_MAX], line[140];
    int st;

    st = random_password(cli, admin, sizeof(admin));
    if (!st)
        st = random_password(cli, alice, sizeof(alice));
    if (!st) {
        snprintf(line, sizeof(line), "%s\n", admin);
        st = lab_write_file(cli, ad_path(lab, "admin.password", path, sizeof(path)), line, 0600);
    }
    if (!st) {
        snprintf(line, sizeof(line), "%s\n", alice);
        st = lab_write_file(cli, ad_path(lab, "alice.password", path, sizeof(path)), line, 0600);
    }
    if (!st) {
        /* Samba's bindings are built for the system's Python (samba-tool's #!), which
         * need not be the python3 first on PATH. */
        const char *argv[] = {"/usr/bin/python3",
                              "-c",
                              ad_setup_py,
                              ad_path(lab, "ad/etc/smb.conf", conf, sizeof(conf)),
                              ad_path(lab, "ad/private/sam.ldb", sam, sizeof(sam)),
                              ad_path(lab, "alice.keytab", alice_kt, sizeof(alice_kt)),
                              ad_path(lab, "admin.keytab", admin_kt, sizeof(admin_kt)),
                              NULL};
        int n = snprintf(input, sizeof(input), "%s\n%s\n", admin, alice);
        st = run_logged(cli, lab, argv, input, (size_t)n,
                        "setting up Administrator and alice in the domain");
    }
    if (!st && (chmod(alice_kt, 0600) != 0 || chmod(admin_kt, 0600) != 0)) {
        cli_say(cli, "cannot make the keytabs private: %s", strerror(errno));
        st = EXIT_FAILED;
    }
    kasa_zap(admin, sizeof(admin));
    kasa_zap(alice, sizeof(alice));
    kasa_zap(input, sizeof(input));
    kasa_zap(line, sizeof(line));
    return st;
}

/* An AD lab's host key for member i: its computer account, made as a join would. */
static int ad_host_key(struct cli *cli, const struct lab *array, int i, const char *host,
                       const char *keytab)
{
    char pw[128], input[140], conf[AD_PATH_MAX], sam[AD_PATH_MAX], name[16];
    struct ad_lab lab;
    int st, n;

    memset(&lab, 0, sizeof(lab));
    memcpy(lab.dir, array->dir, strnlen(array->dir, sizeof(lab.dir) - 1));
    lab_member_names(array, i, name, NULL, NULL, NULL);
    st = random_password(cli, pw, sizeof(pw));
    if (st)
        return st;
    /* The system's Python, as in create_accounts(). */
    const char *argv[] = {"/usr/bin/python3",
                          "-c",
                          ad_member_py,
                          ad_path(&lab, "ad/etc/smb.conf", conf, sizeof(conf)),
                          ad_path(&lab, "ad/private/sam.ldb", sam, sizeof(sam)),
                          name,
                          host,
                          keytab,
                          NULL};
    n = snprintf(input, sizeof(input), "%s\n", pw);
    st = run_logged(cli, &lab, argv, input, (size_t)n, "making the member's computer account");
    if (!st && chmod(keytab, 0600) != 0) {
        cli_say(cli, "cannot make %s private: %s", keytab, strerror(errno));
        st = EXIT_FAILED;
    }
    kasa_zap(pw, sizeof(pw));
    kasa_zap(input, sizeof(input));
    return st;
}

static int write_configs(struct cli *cli, const struct ad_lab *lab)
{
    char path[AD_PATH_MAX], text[4096];
    int st;

    snprintf(text, sizeof(text),
             "# krb5.conf for the kasa AD lab's domain " AD_REALM "; written by kasa lab up.\n"
             "[libdefaults]\n"
             "\tdefault_realm = " AD_REALM "\n"
             "\tdns_lookup_kdc = false\n"
             "\tdns_lookup_realm = false\n"
             "\tdns_canonicalize_hostname = false\n"
             "\trdns = false\n"
             "\n"
             "[realms]\n"
             "\t" AD_REALM " = {\n"
             "\t\tkdc = " AD_ADDR "\n"
             "\t\tadmin_server = " AD_ADDR "\n"
             "\t\tkpasswd_server = " AD_ADDR "\n"
             "\t}\n"
             "\n"
             "[domain_realm]\n"
             "\t." AD_DOMAIN " = " AD_REALM "\n"
             "\t" AD_DOMAIN " = " AD_REALM "\n");
    st = lab_write_file(cli, ad_path(lab, "krb5.conf", path, sizeof(path)), text, 0644);
    if (st)
        return st;
    snprintf(text, sizeof(text),
             "# kasa.conf for the AD lab's domain " AD_REALM "; written by kasa lab up --ad.\n"
             "# See kasa.conf(5).\n"
             "[directory]\n"
             "\tbackend = ad\n"
             "\trealm = " AD_REALM "\n"
             "\tldap_uri = ldap://" AD_ADDR "\n"
             "\tbase_dn = " AD_BASE_DN "\n"
             "\tprincipal = Administrator@" AD_REALM "\n"
             "\tkeytab = %s/admin.keytab\n"
             "\tenctypes = " KASA_ENCTYPES_DEFAULT "\n"
             "[array]\n"
             "\tcache_dir = %s/cache\n",
             lab->dir, lab->dir);
    return lab_write_file(cli, ad_path(lab, "kasa.conf", path, sizeof(path)), text, 0644);
}

/* Whether /proc/PID/cmdline has an argument that is conf or ends in "=conf". */
static bool runs_with_conf(const char *pid, const char *conf)
{
    char path[64], buf[4096];
    size_t clen = strlen(conf), n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        size_t alen = strlen(buf + i);
        if (alen >= clen && strcmp(buf + i + alen - clen, conf) == 0 &&
            (alen == clen || buf[i + alen - clen - 1] == '='))
            return true;
    }
    return false;
}

/* Send sig to every process started with the lab's smb.conf (samba starts smbd and
 * winbindd in sessions of their own); returns how many there were. */
static int signal_conf_procs(const char *conf, int sig)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    while (d != NULL && (e = readdir(d)) != NULL) {
        char state[256];
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || !runs_with_conf(e->d_name, conf))
            continue;
        /* A zombie waits for its parent; it holds no socket. */
        snprintf(state, sizeof(state), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(state, "r");
        if (f != NULL) {
            bool zombie = fgets(state, sizeof(state), f) != NULL && strstr(state, ") Z ") != NULL;
            fclose(f);
            if (zombie)
                continue;
        }
        kill((pid_t)atoi(e->d_name), sig);
        n++;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* Stop samba, its process group and every process it started for this lab. */
static bool stop_samba(struct ad_lab *lab)
{
    struct timespec tick = {0, 50 * 1000 * 1000};
    char conf[AD_PATH_MAX];
    bool was = proc_alive(&lab->samba);
    int waited = 0;

    ad_path(lab, "ad/etc/smb.conf", conf, sizeof(conf));
    if (was)
        kill(-lab->samba.pid, SIGTERM);
    was = signal_conf_procs(conf, SIGTERM) > 0 || was;
    while ((proc_alive(&lab->samba) || signal_conf_procs(conf, 0) > 0) &&
           waited < AD_STOP_TIMEOUT_MS) {
        nanosleep(&tick, NULL);
        waited += 50;
    }
    if (proc_alive(&lab->samba))
        kill(-lab->samba.pid, SIGKILL);
    signal_conf_procs(conf, SIGKILL);
    for (waited = 0; (proc_alive(&lab->samba) || signal_conf_procs(conf, 0) > 0) && waited < 2000;
         waited += 50)
        nanosleep(&tick, NULL);
    lab->samba.pid = 0;
    lab->samba.start = 0;
    return was;
}

/* Whether AD_ADDR answers on any of the DC's ports (another lab, or a stray samba). */
static bool addr_in_use(void)
{
    for (size_t i = 0; i < N_AD_PORTS; i++)
        if (proc_port_open(AD_ADDR, ad_ports[i].port))
            return true;
    return false;
}

/* ip addr add/del AD_ADDR/32 dev lo. */
static int ip_addr(const struct ad_lab *lab, const char *verb)
{
    char log[AD_PATH_MAX];
    const char *argv[] = {"ip", "addr", verb, AD_ADDR "/32", "dev", "lo", NULL};

    return proc_run(argv, NULL, NULL, 0, ad_path(lab, "setup.log", log, sizeof(log)));
}

static int add_address(struct cli *cli, struct ad_lab *lab)
{
    if (addr_in_use()) {
        cli_say(cli, AD_ADDR " is taken: something (another AD lab?) answers on its KDC or "
                             "LDAP port; stop that lab with kasa lab down --dir ITS-DIR");
        return EXIT_FAILED;
    }
    if (ip_addr(lab, "add") != 0) {
        cli_say(cli,
                "cannot add " AD_ADDR "/32 to lo (see %s/setup.log): another AD lab "
                "holds it (stop it with kasa lab down), or it was left behind (ip addr "
                "del " AD_ADDR "/32 dev lo), or this is not root",
                lab->dir);
        return EXIT_FAILED;
    }
    lab->addr_added = 1;
    return write_ad_state(cli, lab);
}

/* Start samba in the foreground (its own session) and wait for its KDC and LDAP. */
static int start_samba(struct cli *cli, struct ad_lab *lab)
{
    struct timespec tick = {0, 50 * 1000 * 1000};
    char conf[AD_PATH_MAX], out[AD_PATH_MAX];
    const char *argv[] = {"samba", "-i", "-M", "single", "-s", conf, NULL};
    int waited;

    ad_path(lab, "ad/etc/smb.conf", conf, sizeof(conf));
    ad_path(lab, "ad/samba.out", out, sizeof(out));
    if (proc_spawn(argv, NULL, out, &lab->samba) != 0) {
        cli_say(cli, "cannot start samba: %s", strerror(errno));
        return EXIT_FAILED;
    }
    if (write_ad_state(cli, lab) != 0)
        return EXIT_FAILED;
    for (waited = 0; waited < AD_READY_TIMEOUT_MS && proc_alive(&lab->samba); waited += 50) {
        bool ready = true;
        for (size_t i = 0; i < 2 && ready; i++) /* the KDC and LDAP */
            ready = proc_port_open(AD_ADDR, ad_ports[i].port);
        if (ready)
            return 0;
        nanosleep(&tick, NULL);
    }
    cli_say(cli, "samba did not start; see %s and %s/ad/log", out, lab->dir);
    return EXIT_FAILED;
}

static int parse_up(struct cli *cli, int argc, char **argv, const char **dir, int *members,
                    bool *redis)
{
    char *end;
    long v;
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"ad", no_argument, NULL, 'A'},
        {"members", required_argument, NULL, 'm'},
        {"replay", required_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = cli_getopt(cli, argc, argv, "d:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs("usage: kasa lab up --ad [--dir DIR] [--members N] [--replay redis]\n"
                  "\n"
                  "Start a throwaway Samba AD domain " AD_REALM " (NetBIOS " AD_NETBIOS ")\n"
                  "on " AD_ADDR " in DIR (default ./lab): samba with its KDC, kpasswd and\n"
                  "LDAP, the domain's Administrator as kasa's admin (DIR/admin.keytab) and\n"
                  "a user alice (DIR/alice.keytab, DIR/alice.password). Needs root: it\n"
                  "adds " AD_ADDR " to lo, and kasa lab down removes it again.\n"
                  "With --members N: N array members cas1.. (computer accounts with\n"
                  "host keytabs, kasad and kasa-httpd on 127.0.0.11..) and HAProxy on\n"
                  "127.0.0.10, as in the MIT lab; their kasad trusts Administrator.\n"
                  "With --replay redis: the members' kasa-httpd share their replay cache\n"
                  "in a Redis of the lab's on 127.0.0.1, with a password (DIR/redis).\n",
                  stdout);
            return -1;
        case 'd':
            if (*optarg == '\0')
                return cli_usage(cli, "--dir takes a directory");
            /* kasa lab up --dir --ad: the value is missing, and --ad only looked like the flag
             * that brought us here; a directory named like an option is ./--ad. */
            if (*optarg == '-')
                return cli_usage(cli, "option --dir needs a value, not the option %s", optarg);
            *dir = optarg;
            break;
        case 'A':
            break;
        case 'm':
            v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > LAB_MAX_MEMBERS)
                return cli_usage(cli, "--members takes a number from 0 to %d", LAB_MAX_MEMBERS);
            *members = (int)v;
            break;
        case 'R':
            if (strcmp(optarg, "redis") != 0 && strcmp(optarg, "local") != 0)
                return cli_usage(cli, "--replay takes local or redis");
            *redis = strcmp(optarg, "redis") == 0;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    return cli_operands(cli, argc - optind, 0, 0, "no arguments");
}

int lab_ad_up(struct cli *cli, int argc, char **argv)
{
    const char *dir = "./lab";
    struct ad_lab lab;
    char path[AD_PATH_MAX];
    int st, n_members = -1;
    bool redis = false;

    st = parse_up(cli, argc, argv, &dir, &n_members, &redis);
    if (st)
        return st < 0 ? EXIT_OK : st;
    memset(&lab, 0, sizeof(lab));
    st = lab_resolve_dir(cli, dir, true, lab.dir, sizeof(lab.dir));
    if (st)
        return st;
    if (read_ad_state(&lab) == 0) {
        if (n_members >= 0 && n_members != lab.array.n_members)
            return cli_usage(cli, "the AD lab in %s has %d members; --members cannot change that",
                             lab.dir, lab.array.n_members);
        if (redis && lab.array.redis_port == 0)
            return cli_usage(cli, "the AD lab in %s has no Redis; --replay redis needs a new lab",
                             lab.dir);
        if (proc_alive(&lab.samba) && lab_members_alive(&lab.array)) {
            printf("AD lab " AD_REALM " already runs in %s (samba pid %d, %d member%s)\n", lab.dir,
                   (int)lab.samba.pid, lab.array.n_members, lab.array.n_members == 1 ? "" : "s");
            return EXIT_OK;
        }
        /* Restart: the domain is kept; the address may have gone with the samba. */
        if (!proc_alive(&lab.samba) && !lab.addr_added && (st = add_address(cli, &lab)) != 0)
            return st;
    } else {
        if (access(ad_path(&lab, "lab.state", path, sizeof(path)), F_OK) == 0) {
            cli_say(cli, "%s holds an MIT lab; give another --dir for the AD lab", lab.dir);
            return EXIT_FAILED;
        }
        if (!lab_dir_empty(lab.dir)) {
            cli_say(cli, "%s is not empty and holds no lab; give a new or empty --dir", lab.dir);
            return EXIT_FAILED;
        }
        st = add_address(cli, &lab);
        if (st)
            return st; /* nothing made yet: the directory stays empty */
        st = provision_domain(cli, &lab);
        if (!st)
            st = write_smb_conf(cli, &lab);
        if (!st)
            st = write_nss_files(cli, &lab);
        if (!st)
            st = create_accounts(cli, &lab);
        if (!st)
            st = write_configs(cli, &lab);
        /* The members' computer accounts go in before samba opens the database. */
        for (int i = 0; !st && i < n_members; i++) {
            st = lab_create_member(cli, &lab.array, i, ad_host_key);
            if (!st)
                lab.array.n_members = i + 1;
        }
        if (st)
            goto fail;
    }
    if (!proc_alive(&lab.samba)) {
        st = start_samba(cli, &lab);
        if (st)
            goto fail;
    }
    st = lab_start_redis(cli, &lab.array, redis);
    if (!st)
        st = lab_start_members(cli, &lab.array);
    if (!st)
        st = lab_start_balancer(cli, &lab.array);
    if (!st)
        st = write_ad_state(cli, &lab);
    if (st)
        goto fail;
    printf("AD lab " AD_REALM " runs in %s\n"
           "  samba    " AD_ADDR ":88 (kdc), :389 (ldap), :464 (kpasswd) (pid %d)\n",
           lab.dir, (int)lab.samba.pid);
    for (int i = 0; i < lab.array.n_members; i++) {
        char host[160], addr[16];
        lab_member_names(&lab.array, i, NULL, host, addr, NULL);
        printf("  kasad    %s:%d (pid %d) as host/%s; kasa-httpd %s:%d (pid %d)\n", addr,
               lab.array.members[i].port, (int)lab.array.members[i].proc.pid, host, addr,
               lab.array.members[i].http_port, (int)lab.array.members[i].http.pid);
    }
    if (lab.array.n_members > 0)
        printf("  HAProxy  127.0.0.10:%d (pid %d), the array's name in front of them\n",
               lab.array.balancer_port, (int)lab.array.balancer.pid);
    if (lab.array.redis_port > 0)
        printf("  Redis    127.0.0.1:%d (pid %d), the members' shared replay cache\n",
               lab.array.redis_port, (int)lab.array.redis.pid);
    printf("  admin: Administrator@" AD_REALM " (%s/admin.keytab)\n"
           "  test user alice: %s/alice.keytab, %s/alice.password\n"
           "point this shell at it: eval \"$(kasa lab env --dir %s)\"\n",
           lab.dir, lab.dir, lab.dir, lab.dir);
    return EXIT_OK;

fail:
    /* Leave nothing running and the address free; the directory stays for its logs. */
    lab_stop_members(&lab.array, false);
    stop_samba(&lab);
    if (lab.addr_added && ip_addr(&lab, "del") == 0)
        lab.addr_added = 0;
    write_ad_state(cli, &lab);
    return st;
}

/* DIR's AD lab, read from its lab.state; an exit status (said) when there is none. */
static int open_ad_lab(struct cli *cli, const char *dir, struct ad_lab *lab)
{
    int st;

    memset(lab, 0, sizeof(*lab));
    st = lab_resolve_dir(cli, dir, false, lab->dir, sizeof(lab->dir));
    if (st)
        return st;
    if (read_ad_state(lab) != 0) {
        cli_say(cli, "no AD lab in %s", lab->dir);
        return EXIT_FAILED;
    }
    return 0;
}

int lab_ad_down(struct cli *cli, const char *dir)
{
    struct ad_lab lab;
    int st;

    memset(&lab, 0, sizeof(lab));
    st = lab_resolve_dir(cli, dir, false, lab.dir, sizeof(lab.dir));
    if (st)
        return st;
    if (read_ad_state(&lab) != 0) {
        printf("no AD lab in %s; nothing to stop\n", dir);
        return EXIT_OK;
    }
    lab_stop_members(&lab.array, true);
    if (stop_samba(&lab))
        printf("stopped samba and its children\n");
    if (lab.addr_added) {
        if (ip_addr(&lab, "del") != 0) {
            cli_say(cli, "cannot remove " AD_ADDR "/32 from lo; see %s/setup.log", lab.dir);
            write_ad_state(cli, &lab);
            return EXIT_FAILED;
        }
        printf("removed " AD_ADDR " from lo\n");
    }
    if (rm_tree(lab.dir) != 0) {
        cli_say(cli, "cannot remove %s: %s", lab.dir, strerror(errno));
        return EXIT_FAILED;
    }
    printf("removed %s\n", lab.dir);
    return EXIT_OK;
}

int lab_ad_env(struct cli *cli, const char *dir)
{
    struct ad_lab lab;
    int st;

    memset(&lab, 0, sizeof(lab));
    st = lab_resolve_dir(cli, dir, false, lab.dir, sizeof(lab.dir));
    if (st)
        return st;
    /* lab_resolve_dir() allowed no character that would need quoting. */
    printf("export KRB5_CONFIG=%s/krb5.conf\n"
           "export KRB5CCNAME=FILE:%s/ccache\n"
           "export KRB5RCACHEDIR=%s\n"
           "export KASA_CONFIG=%s/kasa.conf\n"
           "export KASA_LAB_DIR=%s\n",
           lab.dir, lab.dir, lab.dir, lab.dir, lab.dir);
    return EXIT_OK;
}

int lab_ad_status(struct cli *cli, const char *dir, bool json)
{
    struct ad_lab lab;
    char pid[16], addr[64], path[AD_PATH_MAX];
    bool alive, all;
    int st;

    st = open_ad_lab(cli, dir, &lab);
    if (st)
        return st;
    alive = proc_alive(&lab.samba);
    all = alive && lab_members_alive(&lab.array);
    if (json) {
        json_object *o = json_object_new_object(), *s = json_object_new_object();
        json_object *ports = json_object_new_object();
        json_object_object_add(o, "dir", json_object_new_string(lab.dir));
        json_object_object_add(o, "kind", json_object_new_string("ad"));
        json_object_object_add(o, "realm", json_object_new_string(AD_REALM));
        json_object_object_add(o, "running", json_object_new_boolean(all));
        json_object_object_add(s, "address", json_object_new_string(AD_ADDR));
        for (size_t i = 0; i < N_AD_PORTS; i++)
            json_object_object_add(ports, ad_ports[i].name, json_object_new_int(ad_ports[i].port));
        json_object_object_add(s, "ports", ports);
        json_object_object_add(s, "pid", alive ? json_object_new_int(lab.samba.pid) : NULL);
        json_object_object_add(s, "running", json_object_new_boolean(alive));
        json_object_object_add(s, "log",
                               json_object_new_string(ad_path(&lab, "ad/log", path, sizeof(path))));
        json_object_object_add(o, "samba", s);
        lab_members_json(&lab.array, o);
        cli_json_print(o);
    } else {
        struct table *t = table_new(4, "SERVICE", "ADDRESS", "PID", "STATE");
        printf("AD lab " AD_REALM " in %s\n", lab.dir);
        snprintf(pid, sizeof(pid), "%d", (int)lab.samba.pid);
        for (size_t i = 0; i < N_AD_PORTS; i++) {
            char name[32];
            snprintf(name, sizeof(name), "samba %s", ad_ports[i].name);
            snprintf(addr, sizeof(addr), AD_ADDR ":%d", ad_ports[i].port);
            table_add(t, name, addr, alive ? pid : "-", alive ? "running" : "stopped");
        }
        lab_members_table(&lab.array, t);
        table_print(t, stdout);
        table_free(t);
    }
    return all ? EXIT_OK : EXIT_FAILED;
}

int lab_ad_load(struct cli *cli, const char *dir, struct lab *out)
{
    struct ad_lab lab;
    int st;

    st = open_ad_lab(cli, dir, &lab);
    if (st)
        return st;
    *out = lab.array;
    return 0;
}

int lab_ad_save(struct cli *cli, const struct lab *array)
{
    struct ad_lab lab;

    /* samba's entries as they are on disk, the members' as the caller has them. */
    memset(&lab, 0, sizeof(lab));
    memcpy(lab.dir, array->dir, strnlen(array->dir, sizeof(lab.dir) - 1));
    if (read_ad_state(&lab) != 0) {
        cli_say(cli, "no AD lab in %s", lab.dir);
        return EXIT_FAILED;
    }
    lab.array = *array;
    return write_ad_state(cli, &lab);
}
