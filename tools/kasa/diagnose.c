/*
 * kasa diagnose: given the name clients use, walk the chain and say in plain words what
 * breaks Kerberos and how to fix it: the SPNs a client asks for with that name, who owns
 * them, whether the owner is the array's ASA, whether every member holds the directory's
 * key version, clock skew (this host, the KDC, each member), DNS canonicalization, and a
 * live Negotiate request. One line per finding, with its severity and the fix.
 */
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <krb5/krb5.h>
#include <profile.h>

#include "cli.h"
#include "kasa/array.h"
#include "kasa/roll.h"

#define SKEW_DEFAULT 300

enum severity { S_OK, S_INFO, S_WARN, S_ERROR };
static const char *const severity_names[] = {"OK", "INFO", "WARN", "ERROR"};

struct findings {
    json_object *json;
    bool print;
    int worst;
};

static void finding(struct findings *f, enum severity s, const char *check, const char *fix,
                    const char *fmt, ...) KASA_PRINTF(5, 6);

static void finding(struct findings *f, enum severity s, const char *check, const char *fix,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if ((int)s > f->worst)
        f->worst = (int)s;
    if (f->print) {
        printf("%-5s  %s%s%s\n", severity_names[s], msg, fix != NULL ? "\n       fix: " : "",
               fix != NULL ? fix : "");
    } else {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "severity", cli_json_str(severity_names[s]));
        json_object_object_add(o, "check", cli_json_str(check));
        json_object_object_add(o, "finding", cli_json_str(msg));
        json_object_object_add(o, "fix", cli_json_str(fix));
        json_object_array_add(f->json, o);
    }
}

/* The array whose name or short name is name, or NULL. */
static kasa_array *find_array(kasa_array *arrays, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(arrays[i].fqdn, name) == 0 ||
            (arrays[i].short_name != NULL && strcasecmp(arrays[i].short_name, name) == 0))
            return &arrays[i];
    }
    return NULL;
}

/* One SPN a client would ask for: exists, owned by the ASA, no rival spelling. */
static void check_spn(struct cli *cli, struct findings *f, const char *spn, const char *asa,
                      bool required)
{
    kasa_spn_claim *claim = NULL, *variants = NULL;
    size_t n = 0;
    char fix[600];
    long ret;

    ret = kasa_spn_query(cli->dir, spn, &claim, &variants, &n);
    if (ret && ret != KASA_ERR_SPN_NOT_FOUND) {
        finding(f, S_ERROR, "spn", NULL, "cannot look up %s: %s", spn, kasa_error(cli->ctx));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (asa != NULL && variants[i].owner != NULL && strcmp(variants[i].owner, asa) == 0)
            continue;
        snprintf(fix, sizeof(fix), "kasa spn delete %s %s", variants[i].spn,
                 variants[i].owner != NULL ? variants[i].owner : "(kadmin delprinc)");
        finding(f, S_ERROR, "duplicate", fix,
                "%s is also claimed as %s by %s: two keys for one name, Active Directory "
                "counts it as a duplicate",
                spn, variants[i].spn,
                variants[i].owner != NULL ? variants[i].owner : variants[i].holder);
    }
    if (claim == NULL) {
        snprintf(fix, sizeof(fix), "kasa spn add %s %s", spn, asa != NULL ? asa : "ASA$");
        if (n > 0)
            finding(f, required ? S_ERROR : S_INFO, "spn", fix,
                    "clients ask for %s, but only %s exists, and MIT Kerberos matches names "
                    "exactly: the KDC cannot issue the ticket, clients fall back to NTLM",
                    spn, variants[0].spn);
        else
            finding(f, required ? S_ERROR : S_INFO, "spn", fix,
                    "no account owns %s: the KDC cannot issue a ticket for it, so clients "
                    "using this name fall back to NTLM",
                    spn);
    } else if (claim->owner == NULL) {
        snprintf(fix, sizeof(fix),
                 "remove the principal %s (kadmin delprinc), then kasa spn "
                 "add %s %s",
                 claim->holder, spn, asa != NULL ? asa : "ASA$");
        finding(f, S_ERROR, "owner", fix,
                "%s is a principal kasa does not manage: the members do not hold its key", spn);
    } else if (asa != NULL && strcmp(claim->owner, asa) != 0) {
        snprintf(fix, sizeof(fix), "kasa spn delete %s %s; kasa spn add %s %s", spn, claim->owner,
                 spn, asa);
        finding(f, S_ERROR, "owner", fix,
                "%s belongs to %s, not to the array's ASA %s: tickets for it are encrypted with "
                "a key the members do not hold",
                spn, claim->owner, asa);
    } else {
        finding(f, S_OK, "spn", NULL, "%s belongs to %s%s", spn, claim->owner,
                asa != NULL ? ", the array's ASA" : "");
    }
    if (claim != NULL)
        kasa_spn_claims_free(claim, 1);
    kasa_spn_claims_free(variants, n);
}

/* The KDC's clock: the authtime of a fresh ticket for kasa's own principal. */
static bool kdc_time(struct cli *cli, long long *kdc_now)
{
    krb5_context k = NULL;
    krb5_keytab kt = NULL;
    krb5_principal me = NULL;
    krb5_creds creds;
    bool ok = false;

    memset(&creds, 0, sizeof(creds));
    if (cli->cfg->keytab == NULL || krb5_init_context(&k) != 0)
        return false;
    if (krb5_parse_name(k, cli->cfg->principal, &me) == 0 &&
        krb5_kt_resolve(k, cli->cfg->keytab, &kt) == 0 &&
        krb5_get_init_creds_keytab(k, &creds, me, kt, 0, NULL, NULL) == 0) {
        *kdc_now = creds.times.authtime;
        ok = true;
        krb5_free_cred_contents(k, &creds);
    }
    if (kt != NULL)
        krb5_kt_close(k, kt);
    krb5_free_principal(k, me);
    krb5_free_context(k);
    return ok;
}

/* Whether clients canonicalize host names through DNS (krb5.conf, default true). */
static bool canonicalizes(void)
{
    krb5_context k = NULL;
    profile_t prof = NULL;
    char *v = NULL;
    bool on = true;

    if (krb5_init_context(&k) != 0)
        return true;
    if (krb5_get_profile(k, &prof) == 0 &&
        profile_get_string(prof, "libdefaults", "dns_canonicalize_hostname", NULL, "true", &v) ==
            0 &&
        v != NULL)
        on = strcasecmp(v, "false") != 0 && strcasecmp(v, "no") != 0 && strcmp(v, "0") != 0;
    profile_release_string(v);
    if (prof != NULL)
        profile_release(prof);
    krb5_free_context(k);
    return on;
}

int cmd_diagnose(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"address", required_argument, NULL, 'A'},
        {"as", required_argument, NULL, 'a'},
        {"max-skew", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    static const char *const rpc[] = {"exchangeMDB", "exchangeRFR", "exchangeAB", NULL};
    struct findings f = {NULL, true, S_OK};
    kasa_array *arrays = NULL, *a;
    size_t n = 0;
    const char *name, *address = NULL, *as = NULL;
    char spn[600], fix[600];
    bool json = false;
    int c, st, port = 0, max_skew = SKEW_DEFAULT;
    long ret;

    snprintf(cli->cmd, sizeof(cli->cmd), "diagnose");
    optind = 0;
    while ((c = cli_getopt(cli, argc, argv, "p:", opts, &json)) != -1) {
        char *end;
        long v;
        switch (c) {
        case 'h':
            fputs(
                "usage: kasa diagnose NAME [--port P] [--address ADDR] [--as PRINCIPAL] [--json]\n"
                "\n"
                "Why does NAME (outlook.proseware.lab, or the short name outlook) fall back to\n"
                "NTLM? The SPNs clients ask for, their owners, the array's members and their\n"
                "keys, clock skew, DNS canonicalization, and with --port a live Negotiate\n"
                "request (to ADDR when NAME does not resolve). One line per finding with the\n"
                "fix; exit 0 only when healthy.\n",
                stdout);
            return EXIT_OK;
        case 'p':
            v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > 65535)
                return cli_usage(cli, "--port takes a port from 1 to 65535");
            port = (int)v;
            break;
        case 'A':
            address = optarg;
            break;
        case 'a':
            as = optarg;
            break;
        case 's':
            v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > INT_MAX)
                return cli_usage(cli, "--max-skew takes seconds");
            max_skew = (int)v;
            break;
        case 'j':
            break;
        default:
            return EXIT_USAGE;
        }
    }
    st = cli_operands(cli, argc - optind, 1, 1, "NAME");
    if (!st)
        st = cli_check(cli, kasa_hostname_check(cli->ctx, "client", argv[optind]));
    if (!st)
        st = cli_open_dir(cli);
    if (st)
        return st;
    name = argv[optind];
    if (json) {
        f.print = false;
        f.json = json_object_new_array();
    }
    ret = kasa_array_list(cli->dir, &arrays, &n);
    if (ret)
        return cli_fail(cli, ret);
    a = find_array(arrays, n, name);
    if (a == NULL)
        finding(&f, S_WARN, "array", "kasa array create NAME --asa ACCOUNT",
                "no array is named %s: kasa knows no members for it", name);
    else
        finding(&f, S_OK, "array", NULL, "%s is the array %s; its ASA is %s", name, a->fqdn,
                a->asa);

    /* The SPNs: HTTP/ is what browsers and curl ask for; the RPC classes, MAPI clients. */
    snprintf(spn, sizeof(spn), "HTTP/%s", name);
    check_spn(cli, &f, spn, a != NULL ? a->asa : NULL, true);
    for (size_t i = 0; rpc[i] != NULL; i++) {
        snprintf(spn, sizeof(spn), "%s/%s", rpc[i], name);
        check_spn(cli, &f, spn, a != NULL ? a->asa : NULL, false);
    }

    /* The members: each must hold the directory's kvno, with a sane clock. */
    if (a != NULL) {
        kasa_array_status s;
        if (kasa_status(cli->dir, cli->cfg, a->fqdn, 0, &s) != 0) {
            finding(&f, S_ERROR, "members", NULL, "cannot ask the members: %s",
                    kasa_error(cli->ctx));
        } else {
            long long now = (long long)time(NULL);
            if (s.n == 0)
                finding(&f, S_ERROR, "members", "kasa array add-member", "%s has no members",
                        a->fqdn);
            for (size_t i = 0; i < s.n; i++) {
                kasa_member_status *m = &s.members[i];
                if (m->verdict == KASA_VERDICT_OK) {
                    finding(&f, S_OK, "member", NULL, "%s holds kvno %u, the directory's", m->host,
                            s.dir_kvno);
                } else if (m->verdict == KASA_VERDICT_FOREIGN) {
                    finding(&f, S_ERROR, "member",
                            "keys of an SPN deleted from the ASA go when their kvno retires; "
                            "anything else: find out who changed that member's keytab, then "
                            "roll the array",
                            "%s holds keys the array does not own: %s", m->host,
                            m->foreign != NULL ? m->foreign : "");
                } else if (m->verdict == KASA_VERDICT_UNREACHABLE) {
                    finding(&f, S_ERROR, "member", "start kasad there, or check its ACL",
                            "%s cannot be asked what it holds: %s", m->host,
                            m->error != NULL ? m->error : "");
                } else {
                    snprintf(fix, sizeof(fix), "kasa copy %s --from A-HEALTHY-MEMBER --to %s",
                             a->fqdn, m->host);
                    finding(&f, S_ERROR, "member", fix,
                            "%s is %s: it does not hold kvno %u, so it cannot decrypt the "
                            "tickets clients bring it",
                            m->host, kasa_verdict_name(m->verdict), s.dir_kvno);
                }
                if (m->verdict != KASA_VERDICT_UNREACHABLE && m->reply.now != 0 &&
                    llabs((long long)m->reply.now - now) > max_skew)
                    finding(&f, S_ERROR, "clock", "synchronize its clock (NTP)",
                            "%s's clock is %lld seconds off this host's; Kerberos allows %d",
                            m->host, (long long)m->reply.now - now, max_skew);
            }
            kasa_array_status_clear(&s);
        }
    }
    {
        long long kdc_now;
        long long now = (long long)time(NULL);
        if (kdc_time(cli, &kdc_now)) {
            if (llabs(kdc_now - now) > max_skew)
                finding(&f, S_ERROR, "clock", "synchronize the clocks (NTP)",
                        "the KDC's clock is %lld seconds off this host's; Kerberos allows %d",
                        kdc_now - now, max_skew);
            else
                finding(&f, S_OK, "clock", NULL, "the KDC's clock agrees with this host's");
        }
    }

    /* DNS: a client that canonicalizes asks for the SPN of the canonical name. */
    {
        struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *res = NULL;
        if (getaddrinfo(name, NULL, &hints, &res) != 0) {
            finding(&f, S_INFO, "dns", NULL,
                    "%s does not resolve here; clients resolve it through their own DNS", name);
        } else {
            if (res->ai_canonname != NULL && strcasecmp(res->ai_canonname, name) != 0 &&
                canonicalizes()) {
                snprintf(fix, sizeof(fix),
                         "kasa spn add HTTP/%s ASA$, or dns_canonicalize_hostname = false in "
                         "the clients' krb5.conf",
                         res->ai_canonname);
                finding(&f, S_WARN, "dns", fix,
                        "%s is an alias of %s: clients that canonicalize ask for HTTP/%s", name,
                        res->ai_canonname, res->ai_canonname);
            }
            freeaddrinfo(res);
        }
    }

    /* A live Negotiate request, as a client would make it. */
    if (port > 0) {
        int status = -1;
        snprintf(spn, sizeof(spn), "HTTP/%s@%s", name, kasa_dir_realm(cli->dir));
        if (kasa_http_probe(cli->ctx, cli->cfg, as, spn, address != NULL ? address : name, port,
                            &status) != 0)
            finding(&f, S_ERROR, "live", NULL,
                    "a client gets no Kerberos ticket for %s (%s), so Negotiate falls back to "
                    "NTLM",
                    spn, kasa_error(cli->ctx));
        else if (status == 200)
            finding(&f, S_OK, "live", NULL,
                    "a live Negotiate request to %s port %d authenticated with Kerberos", name,
                    port);
        else if (status < 0)
            finding(&f, S_ERROR, "live", NULL, "nothing answers on %s port %d",
                    address != NULL ? address : name, port);
        else
            finding(&f, S_ERROR, "live", NULL,
                    "the server at %s port %d refused the Kerberos ticket (HTTP %d): clients "
                    "fall back to NTLM",
                    name, port, status);
    }

    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", cli_json_str(name));
        json_object_object_add(o, "healthy", json_object_new_boolean(f.worst < S_WARN));
        json_object_object_add(o, "findings", f.json);
        cli_json_print(o);
    } else {
        printf("%s\n", f.worst < S_WARN ? "healthy: clients using this name can use Kerberos"
                                        : "not healthy: see the findings above");
    }
    kasa_array_list_free(arrays, n);
    return f.worst < S_WARN ? EXIT_OK : EXIT_FAILED;
}
