/*
 * kasa diagnose: given the name clients use, walk the chain and say in plain words what
 * breaks Kerberos and how to fix it: the SPNs a client asks for with that name (after
 * resolving it as browsers and MIT Kerberos do), who owns them, whether every member
 * holds the directory's keys and accepts a fresh ticket, the state of the last roll,
 * clock skew, and a live Negotiate request through the balancer. One line per finding,
 * with its severity and a fix that names the real ASA and members.
 *
 * Two failures look alike to users and are told apart here: when no ticket can be had
 * for the SPN, browsers silently fall back to NTLM; when a ticket can be had but a member
 * cannot decrypt it, the client gets a hard 401.
 */
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <krb5/krb5.h>
#include <profile.h>

#include "cli.h"
#include "kasa/array.h"
#include "kasa/roll.h"

#define SKEW_DEFAULT 300
#define NAME_MAX_LEN 256
#define MAX_ALIASES 3 /* the names canonicalizing clients may ask for */
#define MAX_PROBED (1 + MAX_ALIASES)

enum severity { S_OK, S_INFO, S_WARN, S_ERROR };
static const char *const severity_names[] = {"OK", "INFO", "WARN", "ERROR"};

struct findings {
    json_object *json;
    bool print;
    int worst;
};

/* Kerberos as a client uses it: kasa's principal from its keytab, or --as from the
 * default credential cache. */
struct kclient {
    krb5_context k;
    krb5_ccache cc; /* NULL: no credentials (why says why) */
    krb5_principal me;
    long long authtime; /* the KDC's clock, from a fresh initial ticket; 0: not known */
    char why[400];
};

/* Which clients ask for a name. */
enum { WHO_CHROMIUM = 1, WHO_MIT_DEFAULT = 2, WHO_MIT_HERE = 4 };

/* A name other than NAME that clients ask for a ticket to. */
struct alias {
    char host[NAME_MAX_LEN];
    unsigned who;
};

/* One SPN whose tickets the members are asked to accept. */
struct probed {
    char spn[NAME_MAX_LEN + 8]; /* HTTP/HOST */
    unsigned kvno;              /* of the ticket the KDC issues for it */
};

struct diag {
    struct cli *cli;
    struct findings f;
    const char *name;
    const kasa_array *a; /* NULL: no array has that name */
    const char *realm;
    const char *as, *address;
    int port, max_skew;
    struct kclient kc;
    struct alias aliases[MAX_ALIASES];
    size_t n_aliases;
    char canonical[NAME_MAX_LEN]; /* what getaddrinfo calls NAME; "" when it does not resolve */
    struct probed probed[MAX_PROBED];
    size_t n_probed;
};

static void finding(struct findings *f, enum severity s, const char *check, const char *fix,
                    const char *fmt, ...) KASA_PRINTF(5, 6);

static void finding(struct findings *f, enum severity s, const char *check, const char *fix,
                    const char *fmt, ...)
{
    char msg[1536];
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

/* The account SPNs should belong to: the ASA, or a word for it when no array is known. */
static const char *asa_of(const struct diag *d)
{
    return d->a != NULL ? d->a->asa : "ACCOUNT";
}

static const char *array_of(const struct diag *d)
{
    return d->a != NULL ? d->a->fqdn : d->name;
}

/*
 * On AD, the KDC picks a ticket's enctype from the ASA's msDS-SupportedEncryptionTypes;
 * without AES there it issues RC4 tickets, which the members (AES keys only) cannot
 * decrypt. kasa sets it on the accounts it creates; someone may have cleared it since.
 */
static void check_asa(struct diag *d)
{
    kasa_account *acct = NULL;
    char fix[600];
    long v;

    if (kasa_account_get(d->cli->dir, d->a->asa, &acct) != 0) {
        finding(&d->f, S_ERROR, "asa", NULL, "cannot read the ASA %s: %s", d->a->asa,
                kasa_error(d->cli->ctx));
        return;
    }
    v = acct->supported_etypes;
    if (v != 0 && (v < 0 || !(v & (KASA_AD_ETYPE_AES128 | KASA_AD_ETYPE_AES256)))) {
        snprintf(fix, sizeof(fix),
                 "set msDS-SupportedEncryptionTypes to 24 (AES only) on %s (Set-ADComputer %.*s "
                 "-KerberosEncryptionType AES128,AES256), then kasa roll %s",
                 acct->name, (int)strcspn(acct->name, "$"), acct->name, d->a->fqdn);
        finding(&d->f, S_ERROR, "asa", fix,
                "%s has %s msDS-SupportedEncryptionTypes: AD issues its tickets with RC4, and "
                "the members hold only AES keys",
                acct->name, v < 0 ? "no" : "no AES in its");
    } else if (v > 0 && (v & 0x04)) {
        finding(&d->f, S_WARN, "asa", "set msDS-SupportedEncryptionTypes to 24 (AES only)",
                "%s allows RC4 (msDS-SupportedEncryptionTypes %ld)", acct->name, v);
    } else if (v > 0) {
        finding(&d->f, S_OK, "asa", NULL, "%s allows AES only (msDS-SupportedEncryptionTypes %ld)",
                acct->name, v);
    }
    kasa_account_free(acct);
}

/* One SPN a client would ask for: exists, owned by the ASA, no rival spelling. */
static void check_spn(struct diag *d, const char *spn, bool required)
{
    struct findings *f = &d->f;
    const char *asa = d->a != NULL ? d->a->asa : NULL;
    kasa_spn_claim *claim = NULL, *variants = NULL;
    size_t n = 0;
    char fix[800];
    long ret;

    ret = kasa_spn_query(d->cli->dir, spn, &claim, &variants, &n);
    if (ret && ret != KASA_ERR_SPN_NOT_FOUND) {
        finding(f, S_ERROR, "spn", NULL, "cannot look up %s: %s", spn, kasa_error(d->cli->ctx));
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
        snprintf(fix, sizeof(fix), "kasa spn add %s %s", spn, asa_of(d));
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
                 claim->holder, spn, asa_of(d));
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

/* Credentials to ask the KDC for service tickets with, as a client would. */
static void kclient_open(struct cli *cli, const char *as, struct kclient *c)
{
    krb5_keytab kt = NULL;
    krb5_principal want = NULL;
    krb5_creds creds;
    krb5_error_code kret;

    memset(c, 0, sizeof(*c));
    memset(&creds, 0, sizeof(creds));
    kret = krb5_init_context(&c->k);
    if (kret) {
        c->k = NULL;
        snprintf(c->why, sizeof(c->why), "cannot start Kerberos (error %d)", (int)kret);
        return;
    }
    if (as != NULL || cli->cfg->keytab == NULL || cli->cfg->principal == NULL) {
        /* The user's tickets (kinit first), as kasa_http_probe uses them. */
        if (as != NULL) {
            kret = krb5_parse_name(c->k, as, &want);
            if (!kret)
                kret = krb5_cc_cache_match(c->k, want, &c->cc);
        } else {
            kret = krb5_cc_default(c->k, &c->cc);
        }
        if (!kret)
            kret = krb5_cc_get_principal(c->k, c->cc, &c->me);
    } else {
        kret = krb5_parse_name(c->k, cli->cfg->principal, &c->me);
        if (!kret)
            kret = krb5_kt_resolve(c->k, cli->cfg->keytab, &kt);
        if (!kret)
            kret = krb5_get_init_creds_keytab(c->k, &creds, c->me, kt, 0, NULL, NULL);
        if (!kret)
            kret = krb5_cc_new_unique(c->k, "MEMORY", NULL, &c->cc);
        if (!kret)
            kret = krb5_cc_initialize(c->k, c->cc, c->me);
        if (!kret)
            kret = krb5_cc_store_cred(c->k, c->cc, &creds);
        if (!kret)
            c->authtime = creds.times.authtime;
    }
    if (kret) {
        const char *m = krb5_get_error_message(c->k, kret);
        snprintf(c->why, sizeof(c->why), "no credentials for %s: %s",
                 as != NULL ? as : "kasa's principal", m);
        krb5_free_error_message(c->k, m);
        if (c->cc != NULL)
            krb5_cc_close(c->k, c->cc);
        c->cc = NULL;
    }
    if (creds.client != NULL)
        krb5_free_cred_contents(c->k, &creds);
    if (kt != NULL)
        krb5_kt_close(c->k, kt);
    krb5_free_principal(c->k, want);
}

static void kclient_close(struct kclient *c)
{
    if (c->k == NULL)
        return;
    if (c->cc != NULL) {
        /* The memory cache is ours; the user's default cache is only closed. */
        if (strcmp(krb5_cc_get_type(c->k, c->cc), "MEMORY") == 0)
            krb5_cc_destroy(c->k, c->cc);
        else
            krb5_cc_close(c->k, c->cc);
    }
    krb5_free_principal(c->k, c->me);
    krb5_free_context(c->k);
}

/* A service ticket for spn (SPN@REALM), as a client asks the KDC for it: true with the
 * key version it is encrypted with, else false with the KDC's reason in why. */
static bool service_ticket(struct kclient *c, const char *spn, unsigned *kvno, char *why,
                           size_t len)
{
    krb5_principal server = NULL;
    krb5_creds in, *out = NULL;
    krb5_ticket *t = NULL;
    krb5_error_code kret;

    if (c->cc == NULL) {
        snprintf(why, len, "%s", c->why);
        return false;
    }
    memset(&in, 0, sizeof(in));
    kret = krb5_parse_name(c->k, spn, &server);
    if (!kret) {
        in.client = c->me;
        in.server = server;
        kret = krb5_get_credentials(c->k, KRB5_GC_NO_STORE, c->cc, &in, &out);
    }
    if (!kret)
        kret = krb5_decode_ticket(&out->ticket, &t);
    if (!kret) {
        *kvno = t->enc_part.kvno;
    } else {
        const char *m = krb5_get_error_message(c->k, kret);
        snprintf(why, len, "%s", m);
        krb5_free_error_message(c->k, m);
    }
    if (t != NULL)
        krb5_free_ticket(c->k, t);
    if (out != NULL)
        krb5_free_creds(c->k, out);
    krb5_free_principal(c->k, server);
    return kret == 0;
}

/* How MIT Kerberos on this host canonicalizes (krb5.conf; MIT's defaults are true, true). */
enum canon { CANON_FALSE, CANON_TRUE, CANON_FALLBACK };

static bool profile_bool(const char *v)
{
    static const char *const yes[] = {"y", "yes", "true", "t", "1", "on", NULL};
    for (size_t i = 0; yes[i] != NULL; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return true;
    }
    return false;
}

static enum canon mit_canon_here(krb5_context k, bool *rdns)
{
    profile_t prof = NULL;
    char *v = NULL, *r = NULL;
    enum canon c = CANON_TRUE;

    *rdns = true;
    if (k == NULL || krb5_get_profile(k, &prof) != 0)
        return c;
    if (profile_get_string(prof, "libdefaults", "dns_canonicalize_hostname", NULL, "true", &v) ==
            0 &&
        v != NULL)
        c = strcasecmp(v, "fallback") == 0 ? CANON_FALLBACK
            : profile_bool(v)              ? CANON_TRUE
                                           : CANON_FALSE;
    if (profile_get_string(prof, "libdefaults", "rdns", NULL, "true", &r) == 0 && r != NULL)
        *rdns = profile_bool(r);
    profile_release_string(v);
    profile_release_string(r);
    profile_release(prof);
    return c;
}

static void lower(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
    }
    if (s[-1] == '.')
        s[-1] = '\0';
}

static void add_alias(struct diag *d, const char *host, unsigned who)
{
    if (host[0] == '\0' || strcasecmp(host, d->name) == 0)
        return;
    for (size_t i = 0; i < d->n_aliases; i++) {
        if (strcasecmp(d->aliases[i].host, host) == 0) {
            d->aliases[i].who |= who;
            return;
        }
    }
    if (d->n_aliases < MAX_ALIASES) {
        snprintf(d->aliases[d->n_aliases].host, sizeof(d->aliases[0].host), "%s", host);
        d->aliases[d->n_aliases++].who = who;
    }
}

/*
 * Resolve NAME as clients do. Chromium looks up the canonical name itself (getaddrinfo
 * with AI_CANONNAME, following CNAMEs and hosts-file aliases) unless its
 * DisableAuthNegotiateCnameLookup policy is set, whatever krb5.conf says. MIT Kerberos
 * (curl, GSSAPI) with dns_canonicalize_hostname = true, its default, takes the same
 * canonical name and then, with rdns = true (also the default), the reverse lookup of
 * the first address; it lowercases the result.
 */
static void resolve_names(struct diag *d)
{
    struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *res = NULL;
    char fwd[NAME_MAX_LEN] = "", rev[NI_MAXHOST] = "";
    bool rdns_here;
    enum canon here = mit_canon_here(d->kc.k, &rdns_here);
    bool name_ticket = d->n_probed > 0; /* check_ticket got one for HTTP/NAME */

    if (getaddrinfo(d->name, NULL, &hints, &res) != 0) {
        finding(&d->f, S_INFO, "dns", NULL,
                "%s does not resolve here; clients resolve it through their own DNS", d->name);
        return;
    }
    if (res->ai_canonname != NULL)
        snprintf(fwd, sizeof(fwd), "%s", res->ai_canonname);
    if (getnameinfo(res->ai_addr, res->ai_addrlen, rev, sizeof(rev), NULL, 0, NI_NAMEREQD) != 0)
        rev[0] = '\0';
    freeaddrinfo(res);
    if (fwd[0] != '\0')
        lower(fwd);
    if (rev[0] != '\0')
        lower(rev);
    snprintf(d->canonical, sizeof(d->canonical), "%s", fwd[0] != '\0' ? fwd : d->name);

    add_alias(d, fwd, WHO_CHROMIUM);
    add_alias(d, rev[0] != '\0' ? rev : fwd, WHO_MIT_DEFAULT);
    /* "fallback" canonicalizes only when the KDC has no HTTP/NAME. */
    if (here == CANON_TRUE || (here == CANON_FALLBACK && !name_ticket))
        add_alias(d, rdns_here && rev[0] != '\0' ? rev : fwd, WHO_MIT_HERE);
    if (d->n_aliases == 0)
        finding(&d->f, S_OK, "dns", NULL,
                "%s is its own canonical name here: browsers and MIT Kerberos clients ask for "
                "HTTP/%s",
                d->name, d->name);
}

/* Who asks for an alias, in words: "A, B and C". */
static const char *who_words(unsigned who, char *buf, size_t len)
{
    static const struct {
        unsigned bit;
        const char *words;
    } names[] = {
        {WHO_CHROMIUM, "Chromium-based browsers (Chrome, Edge; they look up the canonical name "
                       "themselves)"},
        {WHO_MIT_DEFAULT, "MIT Kerberos clients with the default krb5.conf (curl)"},
        {WHO_MIT_HERE, "clients using this host's krb5.conf"},
    };
    size_t used = 0, n = 0, total = 0;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        total += (who & names[i].bit) != 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && used < len; i++) {
        if (!(who & names[i].bit))
            continue;
        n++;
        used += (size_t)snprintf(buf + used, len - used, "%s%s",
                                 n == 1       ? ""
                                 : n == total ? " and "
                                              : ", ",
                                 names[i].words);
    }
    return buf;
}

/* An alias that changes the SPN: the SPN of the canonical name must belong to the ASA,
 * or clients must stop canonicalizing. */
static void check_alias(struct diag *d, const struct alias *al)
{
    static const char stop[] =
        "or stop canonicalization on the clients: for Chromium-based browsers the "
        "DisableAuthNegotiateCnameLookup policy (true; the command-line switch does "
        "nothing), for MIT Kerberos dns_canonicalize_hostname = false in krb5.conf";
    kasa_spn_claim *claim = NULL, *variants = NULL;
    char spn[NAME_MAX_LEN + 8], who[400], fix[1200], why[400];
    size_t n = 0;
    unsigned kvno = 0;
    long ret;

    snprintf(spn, sizeof(spn), "HTTP/%s", al->host);
    who_words(al->who, who, sizeof(who));
    ret = kasa_spn_query(d->cli->dir, spn, &claim, &variants, &n);
    if (ret && ret != KASA_ERR_SPN_NOT_FOUND) {
        finding(&d->f, S_ERROR, "alias", NULL, "cannot look up %s: %s", spn,
                kasa_error(d->cli->ctx));
        return;
    }
    if (claim != NULL && claim->owner != NULL && d->a != NULL &&
        strcmp(claim->owner, d->a->asa) == 0) {
        finding(&d->f, S_OK, "alias", NULL,
                "%s is an alias of %s: %s ask for %s, which belongs to %s, the array's ASA",
                d->name, al->host, who, spn, claim->owner);
    } else if (claim == NULL) {
        snprintf(fix, sizeof(fix),
                 "kasa spn add %s %s, then kasa roll %s (so the members hold "
                 "its key); %s",
                 spn, asa_of(d), array_of(d), stop);
        finding(&d->f, S_ERROR, "alias", fix,
                "%s is an alias of %s: %s ask for %s, which no account owns: they get no "
                "ticket and fall back to NTLM",
                d->name, al->host, who, spn);
    } else {
        const char *owner = claim->owner != NULL ? claim->owner : claim->holder;
        snprintf(fix, sizeof(fix), "kasa spn delete %s %s; kasa spn add %s %s; kasa roll %s; %s",
                 spn, owner, spn, asa_of(d), array_of(d), stop);
        finding(&d->f, S_ERROR, "alias", fix,
                "%s is an alias of %s: %s ask for %s, which belongs to %s, not to the array's "
                "ASA: the members cannot decrypt those tickets, clients get 401",
                d->name, al->host, who, spn, owner);
    }

    /* What a canonicalizing client gets from the KDC (a missing SPN was said above). */
    snprintf(spn, sizeof(spn), "HTTP/%s@%s", al->host, d->realm);
    if (d->kc.cc == NULL) {
        /* check_ticket said why no ticket can be asked for. */
    } else if (!service_ticket(&d->kc, spn, &kvno, why, sizeof(why))) {
        if (claim != NULL)
            finding(&d->f, S_ERROR, "alias", NULL,
                    "a client that canonicalizes gets no Kerberos ticket for %s (%s): it falls "
                    "back to NTLM",
                    spn, why);
    } else if (d->n_probed < MAX_PROBED) {
        snprintf(d->probed[d->n_probed].spn, sizeof(d->probed[0].spn), "HTTP/%s", al->host);
        d->probed[d->n_probed++].kvno = kvno;
    }
    if (claim != NULL)
        kasa_spn_claims_free(claim, 1);
    kasa_spn_claims_free(variants, n);
}

/* The ticket a client that does not canonicalize gets, for HTTP/NAME. */
static void check_ticket(struct diag *d)
{
    char spn[NAME_MAX_LEN + 64], why[400];
    unsigned kvno = 0;

    if (d->kc.cc == NULL) {
        finding(&d->f, S_WARN, "ticket",
                "kinit as a test user and pass --as, or set kasa.conf's keytab and principal",
                "cannot ask the KDC for tickets as a client would (%s): no ticket or member "
                "was tried",
                d->kc.why);
        return;
    }
    snprintf(spn, sizeof(spn), "HTTP/%s@%s", d->name, d->realm);
    if (!service_ticket(&d->kc, spn, &kvno, why, sizeof(why))) {
        finding(&d->f, S_ERROR, "ticket", NULL,
                "a client gets no Kerberos ticket for %s (%s): Negotiate falls back to NTLM", spn,
                why);
        return;
    }
    finding(&d->f, S_OK, "ticket", NULL, "the KDC issues tickets for %s, with kvno %u", spn, kvno);
    snprintf(d->probed[0].spn, sizeof(d->probed[0].spn), "HTTP/%s", d->name);
    d->probed[0].kvno = kvno;
    d->n_probed = 1;
}

/* What one member answered to a live request for each probed SPN. */
struct member_probe {
    int status[MAX_PROBED]; /* HTTP status; -1: no answer; 0: not probed */
    bool failed;            /* some probe did not give 200 */
};

/* The array's record of the i-th member of a status (its address and HTTP port). */
static const kasa_member *member_of(const kasa_array_status *s, size_t i)
{
    if (s->array == NULL)
        return NULL;
    return kasa_array_member(s->array, s->members[i].host);
}

static void probe_member(struct diag *d, const kasa_member *mem, struct member_probe *p)
{
    memset(p, 0, sizeof(*p));
    for (size_t k = 0; k < d->n_probed && mem != NULL && mem->http_port > 0; k++) {
        char spn[NAME_MAX_LEN + 64];
        int status = -1;
        snprintf(spn, sizeof(spn), "%s@%s", d->probed[k].spn, d->realm);
        if (kasa_http_probe(d->cli->ctx, d->cli->cfg, d->as, spn,
                            mem->address != NULL ? mem->address : mem->host, mem->http_port,
                            &status) != 0)
            status = -1;
        p->status[k] = status;
        p->failed = p->failed || status != 200;
    }
}

/* The kvnos a member holds, "9, 10", into buf. */
static const char *held(const kasa_member_status *m, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t s = 0; s < m->reply.n_sets && used < len; s++)
        used += (size_t)snprintf(buf + used, len - used, "%s%u", s > 0 ? ", " : "",
                                 m->reply.sets[s].kvno);
    if (buf[0] == '\0')
        snprintf(buf, len, "none");
    return buf;
}

/* The fix for a member that lacks the right keys: a copy from a member known to be
 * healthy, else a roll (or finishing the one that was interrupted). */
static const char *repair(const struct diag *d, const kasa_array_status *s, const char *healthy,
                          const char *host, char *fix, size_t len)
{
    if (s->roll_note != NULL && s->roll_interrupted)
        snprintf(fix, len, "kasa roll --resume %s (a roll of the array was interrupted)",
                 array_of(d));
    else if (healthy != NULL)
        snprintf(fix, len, "kasa copy %s --from %s --to %s", array_of(d), healthy, host);
    else
        snprintf(fix, len,
                 "kasa roll %s (no member is healthy, so there is nothing to copy from: a roll "
                 "gives the directory and every member fresh keys)",
                 array_of(d));
    return fix;
}

/* The array as a whole: the directory, a roll in progress, keys changed behind kasa's
 * back, the keep window. */
static void check_array_state(struct diag *d, const kasa_array_status *s)
{
    char fix[400];

    if (s->dir_unreachable)
        finding(&d->f, S_ERROR, "directory",
                "bring the directory back (for MIT: kadmind on the admin server), then "
                "diagnose again",
                "the directory could not be asked%s%s: what follows is what each member says "
                "it holds, not checked against the directory",
                s->dir_error != NULL ? ": " : "", s->dir_error != NULL ? s->dir_error : "");
    if (s->roll_note != NULL) {
        if (s->roll_interrupted) {
            snprintf(fix, sizeof(fix), "kasa roll --resume %s", array_of(d));
            finding(&d->f, S_ERROR, "roll", fix, "%s", s->roll_note);
        } else {
            finding(&d->f, S_WARN, "roll", "let it finish, then diagnose again", "%s",
                    s->roll_note);
        }
    }
    if (s->foreign_change != NULL) {
        snprintf(fix, sizeof(fix), "kasa roll %s", array_of(d));
        finding(&d->f, S_ERROR, "foreign-change", fix,
                "keys were changed behind kasa's back: %s; the members do not hold them, so "
                "clients get 401",
                s->foreign_change);
    }
    if (s->keys_unchecked != NULL)
        finding(&d->f, S_WARN, "keys",
                "give kasa credentials that get tickets (its keytab and principal in "
                "kasa.conf), then diagnose again",
                "the members' keys were not checked against the directory's (%s): their "
                "verdicts compare kvnos only",
                s->keys_unchecked);
    if (s->keep_seconds > 0) {
        char span[32];
        finding(&d->f, S_INFO, "keep", NULL,
                "members keep a superseded kvno for %s after a roll%s%s%s, so tickets issued "
                "before it stay usable",
                cli_duration(s->keep_seconds, span, sizeof(span)),
                s->keep_source != NULL ? " (" : "", s->keep_source != NULL ? s->keep_source : "",
                s->keep_source != NULL ? ")" : "");
    }
}

/* Tickets encrypted with a kvno the directory did not commit: the KDC's keys were changed
 * behind kasa's back (kasa_status may say so already, in foreign_change). */
static void check_ticket_kvnos(struct diag *d, const kasa_array_status *s)
{
    char fix[300];

    if (s->dir_unreachable || s->foreign_change != NULL || s->roll_note != NULL)
        return;
    snprintf(fix, sizeof(fix), "kasa roll %s", array_of(d));
    for (size_t k = 0; k < d->n_probed; k++) {
        if (d->probed[k].kvno != s->dir_kvno)
            finding(&d->f, S_ERROR, "foreign-change", fix,
                    "the KDC encrypts tickets for %s with kvno %u, but kasa committed kvno %u: "
                    "its keys were changed behind kasa's back, and the members do not hold them",
                    d->probed[k].spn, d->probed[k].kvno, s->dir_kvno);
    }
}

/* One member's live answers: 401 when it cannot decrypt a ticket the KDC issues. */
static void report_probes(struct diag *d, const kasa_array_status *s, size_t i,
                          const struct member_probe *p, const char *healthy)
{
    const kasa_member *mem = member_of(s, i);
    const kasa_member_status *m = &s->members[i];
    const char *addr;
    char fix[500], kv[128];

    if (mem == NULL)
        return;
    addr = mem->address != NULL ? mem->address : mem->host;
    if (mem->http_port <= 0) {
        if (d->n_probed > 0)
            finding(&d->f, S_INFO, "probe", NULL,
                    "%s has no HTTP endpoint on record, so no live request was sent to it "
                    "(kasa array add-member %s %s:%d --http-port PORT records one)",
                    mem->host, array_of(d), mem->host, mem->port);
        return;
    }
    for (size_t k = 0; k < d->n_probed; k++) {
        int st = p->status[k];
        if (st == 200) {
            finding(&d->f, S_OK, "probe", NULL,
                    "%s accepts a ticket for %s (kvno %u) over HTTP (%s port %d)", mem->host,
                    d->probed[k].spn, d->probed[k].kvno, addr, mem->http_port);
        } else if (st < 0) {
            finding(&d->f, S_ERROR, "probe",
                    "start its web server (kasa-httpd), or correct "
                    "its --http-port with kasa array add-member",
                    "nothing answers on %s's HTTP endpoint (%s port %d)", mem->host, addr,
                    mem->http_port);
        } else if (st == 401 || st == 403) {
            finding(&d->f, S_ERROR, "probe", repair(d, s, healthy, mem->host, fix, sizeof(fix)),
                    "%s rejects a ticket for %s (kvno %u; it holds kvno %s): clients get 401, "
                    "not NTLM, since the ticket itself was issued",
                    mem->host, d->probed[k].spn, d->probed[k].kvno, held(m, kv, sizeof(kv)));
        } else {
            finding(&d->f, S_ERROR, "probe", NULL,
                    "%s answered a Negotiate request for %s with HTTP %d", mem->host,
                    d->probed[k].spn, st);
        }
    }
}

/* One member's keys, as kasa_status judged them. */
static void report_member(struct diag *d, const kasa_array_status *s, size_t i, const char *healthy,
                          long long now)
{
    const kasa_member_status *m = &s->members[i];
    char fix[500], kv[128];

    switch (m->verdict) {
    case KASA_VERDICT_OK:
        finding(&d->f, S_OK, "member", NULL, "%s holds kvno %u, the directory's", m->host,
                s->dir_kvno);
        break;
    case KASA_VERDICT_FOREIGN:
        snprintf(fix, sizeof(fix),
                 "keys of an SPN deleted from %s go when their kvno retires; anything else: "
                 "find out who changed %s's keytab, then kasa roll %s",
                 asa_of(d), m->host, array_of(d));
        finding(&d->f, S_ERROR, "member", fix, "%s holds keys the array does not own: %s", m->host,
                m->foreign != NULL ? m->foreign : "");
        break;
    case KASA_VERDICT_UNREACHABLE:
        snprintf(fix, sizeof(fix), "start kasad on %s (port %d), or check its ACL", m->host,
                 m->port);
        finding(&d->f, S_ERROR, "member", fix, "%s cannot be asked what it holds: %s", m->host,
                m->error != NULL ? m->error : "");
        break;
    case KASA_VERDICT_WRONG_KEY:
        finding(&d->f, S_ERROR, "member", repair(d, s, healthy, m->host, fix, sizeof(fix)),
                "%s is WRONG-KEY: it holds kvno %u but not the directory's key%s%s; it cannot "
                "decrypt the tickets clients bring it, they get 401",
                m->host, s->dir_kvno, m->wrong_key != NULL ? ": " : "",
                m->wrong_key != NULL ? m->wrong_key : "");
        break;
    default:
        finding(&d->f, S_ERROR, "member", repair(d, s, healthy, m->host, fix, sizeof(fix)),
                "%s is %s: it does not hold kvno %u (it holds %s), so it cannot decrypt the "
                "tickets clients bring it, they get 401",
                m->host, kasa_verdict_name(m->verdict), s->dir_kvno, held(m, kv, sizeof(kv)));
        break;
    }
    if (m->verdict != KASA_VERDICT_UNREACHABLE && m->reply.now != 0 &&
        llabs((long long)m->reply.now - now) > d->max_skew)
        finding(&d->f, S_ERROR, "clock", "synchronize its clock (NTP)",
                "%s's clock is %lld seconds off this host's; Kerberos allows %d", m->host,
                (long long)m->reply.now - now, d->max_skew);
}

/* The members: each must hold the directory's keys and accept a fresh ticket. */
static void check_members(struct diag *d)
{
    kasa_array_status s;
    struct member_probe *probes = NULL;
    const char *healthy = NULL;
    long long now;

    if (kasa_status(d->cli->dir, d->cli->cfg, d->a->fqdn, 0, &s) != 0) {
        finding(&d->f, S_ERROR, "members", NULL, "cannot ask the members: %s",
                kasa_error(d->cli->ctx));
        return;
    }
    now = (long long)time(NULL); /* the members' clocks are compared as they answered */
    check_array_state(d, &s);
    check_ticket_kvnos(d, &s);
    if (s.n == 0) {
        char fix[400];
        snprintf(fix, sizeof(fix), "kasa array add-member %s HOST[:PORT]", d->a->fqdn);
        finding(&d->f, S_ERROR, "members", fix, "%s has no members", d->a->fqdn);
    }
    probes = calloc(s.n + 1, sizeof(*probes));
    if (probes == NULL) {
        finding(&d->f, S_ERROR, "members", NULL, "out of memory");
        kasa_array_status_clear(&s);
        return;
    }
    /* Probe every member, not one request through the balancer: one bad member among
     * good ones fails a share of the requests, which a single request can miss. */
    for (size_t i = 0; i < s.n; i++)
        probe_member(d, member_of(&s, i), &probes[i]);
    for (size_t i = 0; i < s.n && healthy == NULL; i++) {
        if (s.members[i].verdict == KASA_VERDICT_OK && !probes[i].failed)
            healthy = s.members[i].host;
    }
    for (size_t i = 0; i < s.n; i++) {
        report_member(d, &s, i, healthy, now);
        report_probes(d, &s, i, &probes[i], healthy);
    }
    free(probes);
    kasa_array_status_clear(&s);
}

static void check_kdc_clock(struct diag *d)
{
    long long now = (long long)time(NULL);

    if (d->kc.authtime == 0)
        return;
    if (llabs(d->kc.authtime - now) > d->max_skew)
        finding(&d->f, S_ERROR, "clock", "synchronize the clocks (NTP)",
                "the KDC's clock is %lld seconds off this host's; Kerberos allows %d",
                d->kc.authtime - now, d->max_skew);
    else
        finding(&d->f, S_OK, "clock", NULL, "the KDC's clock agrees with this host's");
}

/* A live Negotiate request through the balancer (--port), for HTTP/NAME and for each
 * name a canonicalizing client asks for. */
static void check_live(struct diag *d)
{
    const char *addr = d->address != NULL ? d->address : d->name;
    size_t n = 1 + d->n_aliases;

    for (size_t k = 0; k < n; k++) {
        const char *host = k == 0 ? d->name : d->aliases[k - 1].host;
        char spn[NAME_MAX_LEN + 64];
        int status = -1;

        snprintf(spn, sizeof(spn), "HTTP/%s@%s", host, d->realm);
        if (kasa_http_probe(d->cli->ctx, d->cli->cfg, d->as, spn, addr, d->port, &status) != 0)
            finding(&d->f, S_ERROR, "live", NULL,
                    "a client gets no Kerberos ticket for %s (%s), so Negotiate falls back to "
                    "NTLM",
                    spn, kasa_error(d->cli->ctx));
        else if (status == 200)
            finding(&d->f, S_OK, "live", NULL,
                    "a live Negotiate request for %s to %s port %d authenticated with Kerberos",
                    spn, addr, d->port);
        else if (status < 0)
            finding(&d->f, S_ERROR, "live", NULL, "nothing answers on %s port %d", addr, d->port);
        else
            finding(&d->f, S_ERROR, "live", NULL,
                    "the server at %s port %d refused a ticket for %s (HTTP %d): clients get "
                    "%d, not NTLM, since the ticket itself was issued",
                    addr, d->port, spn, status, status);
    }
}

/* The directory cannot be asked: say so, and what each member of the array (as this
 * host last read it) holds; never healthy. */
static int diagnose_offline(struct diag *d, bool json)
{
    kasa_array_status s;
    char fix[300];

    cli_say(d->cli, "%s; diagnosing from what the members hold", kasa_error(d->cli->ctx));
    finding(&d->f, S_ERROR, "directory", "start kadmind (or reach it), then diagnose again",
            "the directory cannot be asked: %s", kasa_error(d->cli->ctx));
    if (kasa_status_cached(d->cli->ctx, d->cli->cfg, d->name, kasa_error(d->cli->ctx), 0, &s) ==
        0) {
        for (size_t i = 0; i < s.n; i++) {
            const kasa_member_status *m = &s.members[i];
            const kasa_kvno_set *latest =
                m->reply.n_sets > 0 ? &m->reply.sets[m->reply.n_sets - 1] : NULL;
            if (m->verdict == KASA_VERDICT_UNREACHABLE)
                finding(&d->f, S_ERROR, "member", "start kasad there, or check its ACL",
                        "%s cannot be asked what it holds: %s", m->host,
                        m->error != NULL ? m->error : "");
            else if (latest == NULL)
                finding(&d->f, S_ERROR, "member", "roll the array once the directory is back",
                        "%s holds no key for %s", m->host, s.array->fqdn);
            else
                finding(&d->f, S_INFO, "member", NULL,
                        "%s holds kvno %u (newest); not compared with the directory", m->host,
                        latest->kvno);
        }
        kasa_array_status_clear(&s);
    } else {
        snprintf(fix, sizeof(fix), "diagnose again once the directory answers");
        finding(&d->f, S_INFO, "members", fix, "this host never read an array named %s", d->name);
    }
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", cli_json_str(d->name));
        json_object_object_add(o, "healthy", json_object_new_boolean(false));
        json_object_object_add(o, "findings", d->f.json);
        cli_json_print(o);
    } else {
        printf("not healthy: see the findings above\n");
    }
    return EXIT_FAILED;
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
    struct diag d;
    kasa_array *arrays = NULL;
    size_t n = 0;
    char spn[600], fix[600];
    bool json = false;
    int c, st;
    long ret;

    memset(&d, 0, sizeof(d));
    d.cli = cli;
    d.f.print = true;
    d.max_skew = SKEW_DEFAULT;
    snprintf(cli->cmd, sizeof(cli->cmd), "diagnose");
    optind = 0;
    while ((c = cli_getopt(cli, argc, argv, "p:", opts, &json)) != -1) {
        char *end;
        long v;
        switch (c) {
        case 'h':
            fputs("usage: kasa diagnose NAME [--port P] [--address ADDR] [--as PRINCIPAL]\n"
                  "                     [--max-skew SECONDS] [--json]\n"
                  "\n"
                  "Why does NAME (outlook.proseware.lab, or the short name outlook) fall back to\n"
                  "NTLM, or get 401? The SPNs clients ask for (after resolving NAME as browsers\n"
                  "and MIT Kerberos do), their owners, the state of the roll, each member's\n"
                  "keys and a live request to each member's HTTP endpoint, clock skew, and with\n"
                  "--port a live request through the balancer (to ADDR when NAME does not\n"
                  "resolve). --max-skew: the clock difference a member may have (default 300).\n"
                  "One line per finding with the fix; exit 0 only when healthy.\n",
                  stdout);
            return EXIT_OK;
        case 'p':
            v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > 65535)
                return cli_usage(cli, "--port takes a port from 1 to 65535");
            d.port = (int)v;
            break;
        case 'A':
            d.address = optarg;
            break;
        case 'a':
            d.as = optarg;
            break;
        case 's':
            v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > INT_MAX)
                return cli_usage(cli, "--max-skew takes seconds");
            d.max_skew = (int)v;
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
    if (!st && strlen(argv[optind]) >= NAME_MAX_LEN)
        st = cli_usage(cli, "NAME is longer than %d characters", NAME_MAX_LEN - 1);
    if (st)
        return st;
    d.name = argv[optind];
    if (json) {
        d.f.print = false;
        d.f.json = json_object_new_array();
    }
    if (cli_try_open_dir(cli, &ret) != 0) {
        if (cli->cfg == NULL) {
            if (d.f.json != NULL)
                json_object_put(d.f.json);
            return cli_fail(cli, ret);
        }
        return diagnose_offline(&d, json);
    }
    d.realm = kasa_dir_realm(cli->dir);
    ret = kasa_array_list(cli->dir, &arrays, &n);
    if (ret)
        return cli_fail(cli, ret);
    d.a = find_array(arrays, n, d.name);
    if (d.a == NULL) {
        snprintf(fix, sizeof(fix), "kasa array create %s --asa ACCOUNT", d.name);
        finding(&d.f, S_WARN, "array", fix, "no array is named %s: kasa knows no members for it",
                d.name);
    } else {
        finding(&d.f, S_OK, "array", NULL, "%s is the array %s; its ASA is %s", d.name, d.a->fqdn,
                d.a->asa);
    }
    kclient_open(cli, d.as, &d.kc);
    if (d.a != NULL)
        check_asa(&d);

    /* The SPNs: HTTP/ is what browsers and curl ask for; the RPC classes, MAPI clients. */
    snprintf(spn, sizeof(spn), "HTTP/%s", d.name);
    check_spn(&d, spn, true);
    for (size_t i = 0; rpc[i] != NULL; i++) {
        snprintf(spn, sizeof(spn), "%s/%s", rpc[i], d.name);
        check_spn(&d, spn, false);
    }
    check_ticket(&d);

    /* DNS: a client that canonicalizes asks for the SPN of the canonical name. */
    resolve_names(&d);
    for (size_t i = 0; i < d.n_aliases; i++)
        check_alias(&d, &d.aliases[i]);

    if (d.a != NULL)
        check_members(&d);
    check_kdc_clock(&d);
    if (d.port > 0)
        check_live(&d);

    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", cli_json_str(d.name));
        json_object_object_add(o, "canonical_name",
                               cli_json_str(d.canonical[0] != '\0' ? d.canonical : NULL));
        json_object_object_add(o, "healthy", json_object_new_boolean(d.f.worst < S_WARN));
        json_object_object_add(o, "findings", d.f.json);
        cli_json_print(o);
    } else {
        printf("%s\n", d.f.worst < S_WARN ? "healthy: clients using this name can use Kerberos"
                                          : "not healthy: see the findings above");
    }
    kclient_close(&d.kc);
    kasa_array_list_free(arrays, n);
    return d.f.worst < S_WARN ? EXIT_OK : EXIT_FAILED;
}
