/*
 * The Active Directory backend: LDAP (OpenLDAP's libldap, SASL/GSSAPI) for objects and
 * attributes, and the Kerberos set-password protocol (MIT's krb5_set_password) for
 * passwords, never unicodePwd writes.
 *
 * An account is a computer or user object whose sAMAccountName is the account's name;
 * AD itself keeps an object's SPNs in its servicePrincipalName attribute, so an SPN is
 * only a value there and AD's KDC issues tickets for it with the account's keys. kasa
 * marks the objects it made with adminDescription = kasa (an attribute no tool shows
 * users); others are read but not managed. Every search is paged (a domain of 100,000
 * objects answers in pages of AD_PAGE), and every value put into a filter or a DN is
 * escaped (lib/ldapesc.c). The admin's credential is a keytab, whose TGT goes into a
 * private MEMORY ccache, or a ccache; nothing is written to disk.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>
#include <lber.h>
#include <ldap.h>

#include "directory.h"
#include "kasa/keys.h"
#include "private.h"

#define AD_MARK "kasa"       /* adminDescription of the objects kasa made */
#define AD_PAGE 500          /* entries per page of a search */
#define AD_TIMEOUT 10        /* seconds for a connection or one request */
#define AD_ETYPES "24"       /* msDS-SupportedEncryptionTypes: AES128 | AES256 */
#define UAC_DISABLED 2       /* ACCOUNTDISABLE */
#define UAC_NORMAL 512       /* NORMAL_ACCOUNT: a user */
#define UAC_WORKSTATION 4096 /* WORKSTATION_TRUST_ACCOUNT: a computer */
#define UAC_NO_EXPIRY 65536  /* DONT_EXPIRE_PASSWORD: kasa rolls the keys, not a policy */
/* AD's default Kerberos policy: MaxServiceAge 600 minutes, the longest service ticket.
 * The domain's policy lives in the Default Domain Policy GPO (SYSVOL's GptTmpl.inf),
 * which LDAP does not show and SMB would; kasa assumes the default, says so in kasa
 * status, and [array] keep_window covers a longer policy (kasa.conf(5)). */
#define AD_TICKET_LIFE (10 * 3600)

struct ad {
    krb5_context kctx;
    krb5_ccache cc; /* the admin's tickets */
    LDAP *ld;
    char *who; /* the admin principal, for messages */
};

static struct ad *A(kasa_dir *dir)
{
    return dir->priv;
}

/* The layout of Cyrus SASL's sasl_interact_t (stable since SASL 2.0), so that no sasl.h
 * is needed for a callback that never has to answer anything. */
struct sasl_interact {
    unsigned long id;
    const char *challenge, *prompt, *defresult;
    const void *result;
    unsigned len;
};

/* GSSAPI asks at most for an authorization identity: none, so the bind is as the
 * ticket's principal. */
static int interact(LDAP *ld, unsigned flags, void *defaults, void *in)
{
    (void)ld;
    (void)flags;
    (void)defaults;
    for (struct sasl_interact *i = in; i->id != 0; i++) {
        i->result = "";
        i->len = 0;
    }
    return LDAP_SUCCESS;
}

static bool unreachable(int rc)
{
    return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
           rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY;
}

/* Set the error for an LDAP failure: "WHAT NAME: LDAP's message (AD's diagnostic)". */
static long fail(kasa_dir *dir, int rc, const char *what, const char *name)
{
    char *diag = NULL;
    long code = unreachable(rc)                   ? KASA_ERR_DIR_UNREACHABLE
                : rc == LDAP_INSUFFICIENT_ACCESS  ? KASA_ERR_DIR_DENIED
                : rc == LDAP_STRONG_AUTH_REQUIRED ? KASA_ERR_DIR_AUTH
                : rc == LDAP_INVALID_CREDENTIALS  ? KASA_ERR_DIR_AUTH
                                                  : KASA_ERR_DIR;

    if (A(dir)->ld != NULL)
        (void)ldap_get_option(A(dir)->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    if (diag != NULL && *diag != '\0')
        code =
            kasa_set_error(dir->ctx, code, "%s %s: %s (%s)", what, name, ldap_err2string(rc), diag);
    else
        code = kasa_set_error(dir->ctx, code, "%s %s: %s", what, name, ldap_err2string(rc));
    ldap_memfree(diag);
    return code;
}

/* The realm named by a base DN: DC=proseware,DC=lab is PROSEWARE.LAB. */
static char *realm_of(const char *base)
{
    char *out = calloc(1, strlen(base) + 1), *p = out;

    if (out == NULL)
        return NULL;
    for (const char *s = base; *s;) {
        if (strncasecmp(s, "DC=", 3) == 0) {
            if (p != out)
                *p++ = '.';
            for (s += 3; *s && *s != ','; s++)
                *p++ = (char)((*s >= 'a' && *s <= 'z') ? *s - 32 : *s);
        } else {
            while (*s && *s != ',')
                s++;
        }
        if (*s == ',')
            s++;
    }
    *p = '\0';
    return out;
}

/* The admin's tickets: from the keytab into a private MEMORY ccache, or the ccache. */
static long get_creds(kasa_dir *dir)
{
    const kasa_config *cfg = dir->cfg;
    struct ad *a = A(dir);
    krb5_get_init_creds_opt *opt = NULL;
    krb5_principal client = NULL;
    krb5_keytab kt = NULL;
    krb5_creds creds;
    long ret;

    memset(&creds, 0, sizeof(creds));
    if (cfg->keytab == NULL) {
        ret = cfg->ccache != NULL ? krb5_cc_resolve(a->kctx, cfg->ccache, &a->cc)
                                  : krb5_cc_default(a->kctx, &a->cc);
        if (ret)
            return kasa_set_krb5_error(dir->ctx, KASA_ERR_DIR_AUTH, a->kctx, ret,
                                       "%s names no keytab and the credential cache is not usable",
                                       cfg->path);
        a->who = strdup(cfg->principal != NULL ? cfg->principal : "the ccache's principal");
        return a->who == NULL ? kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL) : 0;
    }
    a->who = strdup(cfg->principal);
    if (a->who == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    ret = krb5_parse_name(a->kctx, cfg->principal, &client);
    if (ret) {
        ret = kasa_set_krb5_error(dir->ctx, KASA_ERR_CONFIG, a->kctx, ret, "%s: bad principal %s",
                                  cfg->path, cfg->principal);
        goto cleanup;
    }
    ret = krb5_kt_resolve(a->kctx, cfg->keytab, &kt);
    if (!ret)
        ret = krb5_get_init_creds_opt_alloc(a->kctx, &opt);
    if (!ret)
        ret = krb5_get_init_creds_keytab(a->kctx, &creds, client, kt, 0, NULL, opt);
    if (ret == KRB5_KDC_UNREACH || ret == KRB5_REALM_CANT_RESOLVE) {
        ret = kasa_set_krb5_error(dir->ctx, KASA_ERR_DIR_UNREACHABLE, a->kctx, ret,
                                  "cannot reach the KDC of %s (is the domain controller running?)",
                                  dir->realm);
        goto cleanup;
    }
    if (ret) {
        ret =
            kasa_set_krb5_error(dir->ctx, KASA_ERR_DIR_AUTH, a->kctx, ret,
                                "cannot get a ticket for %s from %s", cfg->principal, cfg->keytab);
        goto cleanup;
    }
    /* A private memory ccache: kasa never writes its tickets to disk. */
    ret = krb5_cc_new_unique(a->kctx, "MEMORY", NULL, &a->cc);
    if (!ret)
        ret = krb5_cc_initialize(a->kctx, a->cc, client);
    if (!ret)
        ret = krb5_cc_store_cred(a->kctx, a->cc, &creds);
    if (ret)
        ret = kasa_set_krb5_error(dir->ctx, KASA_ERR_INTERNAL, a->kctx, ret,
                                  "cannot keep the tickets of %s", cfg->principal);

cleanup:
    krb5_free_cred_contents(a->kctx, &creds);
    if (opt != NULL)
        krb5_get_init_creds_opt_free(a->kctx, opt);
    if (kt != NULL)
        krb5_kt_close(a->kctx, kt);
    krb5_free_principal(a->kctx, client);
    return ret;
}

/* Connect and bind with SASL/GSSAPI as the admin, through a->cc. */
static long bind_ldap(kasa_dir *dir)
{
    const kasa_config *cfg = dir->cfg;
    struct ad *a = A(dir);
    struct timeval tv = {AD_TIMEOUT, 0};
    const char *prev = NULL;
    char *ccname = NULL, *saved = NULL;
    OM_uint32 minor;
    int v3 = LDAP_VERSION3, rc;
    long ret = 0;

    rc = ldap_initialize(&a->ld, cfg->ldap_uri);
    if (rc != LDAP_SUCCESS) {
        a->ld = NULL;
        return kasa_set_error(dir->ctx, KASA_ERR_CONFIG, "%s: [directory] ldap_uri = %s: %s",
                              cfg->path, cfg->ldap_uri, ldap_err2string(rc));
    }
    if (ldap_set_option(a->ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
        ldap_set_option(a->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
        ldap_set_option(a->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
        ldap_set_option(a->ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
        /* The service name is ldap/HOST of the URI as written: a lab DC on a loopback
         * address has no reverse name, and a real one's may not be its SPN. */
        ldap_set_option(a->ld, LDAP_OPT_X_SASL_NOCANON, LDAP_OPT_ON) != LDAP_OPT_SUCCESS)
        return kasa_set_error(dir->ctx, KASA_ERR_INTERNAL, "cannot set the LDAP options");

    /* Point GSSAPI (inside Cyrus SASL) at the admin's ccache for this thread. */
    ret = krb5_cc_get_full_name(a->kctx, a->cc, &ccname);
    if (ret)
        return kasa_set_krb5_error(dir->ctx, KASA_ERR_INTERNAL, a->kctx, ret,
                                   "cannot name the credential cache");
    if (GSS_ERROR(gss_krb5_ccache_name(&minor, ccname, &prev))) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_INTERNAL, "cannot select the credential cache");
        goto cleanup;
    }
    if (prev != NULL && (saved = strdup(prev)) == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    rc = ldap_sasl_interactive_bind_s(a->ld, NULL, "GSSAPI", NULL, NULL, LDAP_SASL_QUIET, interact,
                                      NULL);
    (void)gss_krb5_ccache_name(&minor, saved, NULL);
    if (unreachable(rc)) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_DIR_UNREACHABLE,
                             "cannot reach the LDAP server at %s (is the domain controller "
                             "running?)",
                             cfg->ldap_uri);
    } else if (rc != LDAP_SUCCESS) {
        char *diag = NULL;
        (void)ldap_get_option(a->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        ret = kasa_set_error(dir->ctx, KASA_ERR_DIR_AUTH,
                             "cannot bind to %s with GSSAPI as %s: %s%s%s%s", cfg->ldap_uri, a->who,
                             ldap_err2string(rc), diag != NULL ? " (" : "",
                             diag != NULL ? diag : "", diag != NULL ? ")" : "");
        ldap_memfree(diag);
    }

cleanup:
    free(saved);
    krb5_free_string(a->kctx, ccname);
    return ret;
}

static long ad_open(kasa_dir *dir)
{
    const kasa_config *cfg = dir->cfg;
    struct ad *a;
    long ret;

    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    dir->priv = a;
    ret = krb5_init_context(&a->kctx);
    if (ret) {
        a->kctx = NULL;
        return kasa_set_error(dir->ctx, KASA_ERR_CONFIG, "cannot read the Kerberos configuration");
    }
    dir->realm = cfg->realm != NULL ? strdup(cfg->realm) : realm_of(cfg->base_dn);
    if (dir->realm == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    ret = get_creds(dir);
    if (!ret)
        ret = bind_ldap(dir);
    return ret;
}

static void ad_close(kasa_dir *dir)
{
    struct ad *a = A(dir);

    if (a == NULL)
        return;
    if (a->ld != NULL)
        ldap_unbind_ext_s(a->ld, NULL, NULL);
    if (a->cc != NULL) {
        if (dir->cfg->keytab != NULL)
            krb5_cc_destroy(a->kctx, a->cc); /* our private MEMORY ccache */
        else
            krb5_cc_close(a->kctx, a->cc);
    }
    if (a->kctx != NULL)
        krb5_free_context(a->kctx);
    free(a->who);
    free(a);
    dir->priv = NULL;
}

/* Called for each entry a search returns. */
typedef long (*entry_fn)(kasa_dir *dir, LDAPMessage *e, void *arg);

/* A subtree search of the domain in pages, calling fn for each entry. */
static long search(kasa_dir *dir, const char *filter, char **attrs, entry_fn fn, void *arg)
{
    struct ad *a = A(dir);
    struct berval cookie = {0, NULL};
    struct timeval tv = {AD_TIMEOUT, 0};
    long ret = 0;

    do {
        LDAPControl *page = NULL, *ctrls[2] = {NULL, NULL}, **rctrls = NULL, *pr;
        LDAPMessage *res = NULL;
        ber_int_t count = 0;
        int rc, err = LDAP_SUCCESS;

        rc = ldap_create_page_control(a->ld, AD_PAGE, cookie.bv_val != NULL ? &cookie : NULL, 0,
                                      &page);
        ber_memfree(cookie.bv_val);
        cookie.bv_val = NULL;
        cookie.bv_len = 0;
        if (rc != LDAP_SUCCESS)
            return fail(dir, rc, "cannot page a search of", dir->cfg->base_dn);
        ctrls[0] = page;
        rc = ldap_search_ext_s(a->ld, dir->cfg->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0,
                               ctrls, NULL, &tv, LDAP_NO_LIMIT, &res);
        ldap_control_free(page);
        if (rc == LDAP_SUCCESS)
            rc = ldap_parse_result(a->ld, res, &err, NULL, NULL, NULL, &rctrls, 0);
        if (rc == LDAP_SUCCESS)
            rc = err;
        if (rc != LDAP_SUCCESS) {
            ldap_msgfree(res);
            ldap_controls_free(rctrls);
            return fail(dir, rc, "cannot search", dir->cfg->base_dn);
        }
        for (LDAPMessage *e = ldap_first_entry(a->ld, res); e != NULL && !ret;
             e = ldap_next_entry(a->ld, e))
            ret = fn(dir, e, arg);
        pr = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL);
        if (!ret && pr != NULL &&
            ldap_parse_pageresponse_control(a->ld, pr, &count, &cookie) != LDAP_SUCCESS)
            ret = kasa_set_error(dir->ctx, KASA_ERR_DIR, "bad paged-results control from %s",
                                 dir->cfg->ldap_uri);
        ldap_controls_free(rctrls);
        ldap_msgfree(res);
    } while (!ret && cookie.bv_val != NULL && cookie.bv_len > 0);
    ber_memfree(cookie.bv_val);
    return ret;
}

/* The first value of attr, as a string, or NULL. */
static char *value(kasa_dir *dir, LDAPMessage *e, const char *attr)
{
    struct berval **v = ldap_get_values_len(A(dir)->ld, e, attr);
    char *s = NULL;

    if (v != NULL && v[0] != NULL)
        s = strndup(v[0]->bv_val, v[0]->bv_len);
    ldap_value_free_len(v);
    return s;
}

static bool has_value(kasa_dir *dir, LDAPMessage *e, const char *attr, const char *want)
{
    struct berval **v = ldap_get_values_len(A(dir)->ld, e, attr);
    bool found = false;

    for (size_t i = 0; v != NULL && v[i] != NULL && !found; i++)
        found = v[i]->bv_len == strlen(want) && strncasecmp(v[i]->bv_val, want, v[i]->bv_len) == 0;
    ldap_value_free_len(v);
    return found;
}

/* The filter PRE VAL POST, VAL escaped. */
static long filter1(kasa_dir *dir, const char *pre, const char *val, const char *post, char **out)
{
    char *esc = kasa_ldap_filter_escape(val, strlen(val));

    *out = NULL;
    if (esc == NULL || asprintf(out, "%s%s%s", pre, esc, post) < 0) {
        *out = NULL;
        free(esc);
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    free(esc);
    return 0;
}

static char *account_attrs[] = {"sAMAccountName",
                                "objectClass",
                                "description",
                                "msDS-KeyVersionNumber",
                                "whenCreated",
                                "adminDescription",
                                "dNSHostName",
                                "msDS-SupportedEncryptionTypes",
                                NULL};

/* What a search for one account found. */
struct found {
    kasa_account *acct;
    char *dn;
    size_t n;
    bool managed;
};

/* GeneralizedTime (20261130202103.0Z) as seconds since the epoch; 0 when unreadable. */
static long long gentime(const char *s)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (s == NULL || strptime(s, "%Y%m%d%H%M%S", &tm) == NULL)
        return 0;
    return (long long)timegm(&tm);
}

/* Fill acct from an entry of account_attrs. */
static long read_account(kasa_dir *dir, LDAPMessage *e, kasa_account *acct, bool *managed)
{
    char *kvno = NULL, *created = NULL, *etypes = NULL;

    acct->name = value(dir, e, "sAMAccountName");
    acct->dns_host_name = value(dir, e, "dNSHostName");
    etypes = value(dir, e, "msDS-SupportedEncryptionTypes");
    acct->supported_etypes = etypes != NULL ? strtol(etypes, NULL, 10) : -1;
    free(etypes);
    acct->description = value(dir, e, "description");
    if (acct->description == NULL)
        acct->description = strdup("");
    kvno = value(dir, e, "msDS-KeyVersionNumber");
    created = value(dir, e, "whenCreated");
    acct->kvno = kvno != NULL ? (unsigned)strtoul(kvno, NULL, 10) : 0;
    acct->created = gentime(created);
    free(kvno);
    free(created);
    acct->kind =
        has_value(dir, e, "objectClass", "computer") ? KASA_ACCOUNT_COMPUTER : KASA_ACCOUNT_USER;
    *managed = has_value(dir, e, "adminDescription", AD_MARK);
    if (acct->name == NULL || acct->description == NULL ||
        asprintf(&acct->principal, "%s@%s", acct->name, dir->realm) < 0) {
        acct->principal = NULL;
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    return 0;
}

static long found_one(kasa_dir *dir, LDAPMessage *e, void *arg)
{
    struct found *f = arg;
    char *dn;

    if (f->n++ > 0)
        return 0;
    f->acct = calloc(1, sizeof(*f->acct));
    dn = ldap_get_dn(A(dir)->ld, e);
    f->dn = dn != NULL ? strdup(dn) : NULL;
    ldap_memfree(dn);
    if (f->acct == NULL || f->dn == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    return read_account(dir, e, f->acct, &f->managed);
}

/* Look up the user or computer object whose sAMAccountName is name (any case, as AD). */
static long find_account(kasa_dir *dir, const char *name, struct found *f)
{
    char *filter = NULL;
    long ret;

    memset(f, 0, sizeof(*f));
    ret = filter1(dir, "(&(objectClass=user)(sAMAccountName=", name, "))", &filter);
    if (!ret)
        ret = search(dir, filter, account_attrs, found_one, f);
    free(filter);
    return ret;
}

static void found_free(struct found *f)
{
    kasa_account_free(f->acct);
    free(f->dn);
    memset(f, 0, sizeof(*f));
}

static long ad_account_get(kasa_dir *dir, const char *name, kasa_account **out)
{
    struct found f;
    long ret;

    *out = NULL;
    ret = find_account(dir, name, &f);
    if (!ret && f.n == 0)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_NOT_FOUND,
                             "no account %s in %s; create it with kasa account create", name,
                             dir->realm);
    else if (!ret && !f.managed)
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOT_MANAGED,
                             "%s is an object of %s that kasa does not manage; make an account "
                             "with kasa account create",
                             f.acct->name, dir->realm);
    if (!ret) {
        *out = f.acct;
        f.acct = NULL;
    }
    found_free(&f);
    return ret;
}

/* A growing list of accounts. */
struct accounts {
    kasa_account *v;
    size_t n, cap;
};

static long add_account(kasa_dir *dir, LDAPMessage *e, void *arg)
{
    struct accounts *l = arg;
    bool managed = false;
    long ret;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        kasa_account *p = realloc(l->v, cap * sizeof(*p));
        if (p == NULL)
            return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        l->v = p;
        l->cap = cap;
    }
    memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
    ret = read_account(dir, e, &l->v[l->n], &managed);
    l->n++;
    return ret;
}

static long ad_account_list(kasa_dir *dir, kasa_account **out, size_t *n_out)
{
    struct accounts l = {NULL, 0, 0};
    long ret;

    ret = search(dir, "(&(objectClass=user)(adminDescription=" AD_MARK "))", account_attrs,
                 add_account, &l);
    if (ret) {
        kasa_account_list_free(l.v, l.n);
        return ret;
    }
    *out = l.v;
    *n_out = l.n;
    return 0;
}

/* Set name's password with the Kerberos set-password protocol, as the admin. */
static long set_password(kasa_dir *dir, const char *name, const char *pw)
{
    struct ad *a = A(dir);
    krb5_principal princ = NULL;
    krb5_data rcs = {0}, rs = {0};
    char *full = NULL;
    int code = 0;
    long ret;

    if (asprintf(&full, "%s@%s", name, dir->realm) < 0)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    ret = krb5_parse_name(a->kctx, full, &princ);
    if (!ret)
        ret = krb5_set_password_using_ccache(a->kctx, a->cc, (char *)pw, princ, &code, &rcs, &rs);
    if (ret)
        ret = kasa_set_krb5_error(dir->ctx,
                                  ret == KRB5_KDC_UNREACH ? KASA_ERR_DIR_UNREACHABLE : KASA_ERR_DIR,
                                  a->kctx, ret, "cannot set the password of %s", full);
    else if (code != 0)
        ret = kasa_set_error(
            dir->ctx, code == KRB5_KPASSWD_ACCESSDENIED ? KASA_ERR_DIR_DENIED : KASA_ERR_DIR,
            "the domain refused the password of %s: %.*s (%.*s)", full, (int)rcs.length,
            rcs.data != NULL ? rcs.data : "", (int)(rs.length > 200 ? 200 : rs.length),
            rs.data != NULL ? rs.data : "");
    krb5_free_data_contents(a->kctx, &rcs);
    krb5_free_data_contents(a->kctx, &rs);
    krb5_free_principal(a->kctx, princ);
    free(full);
    return ret;
}

/* Replace one single-valued attribute of dn. */
static long replace(kasa_dir *dir, const char *dn, const char *attr, const char *val)
{
    char *vals[] = {(char *)val, NULL};
    LDAPMod mod = {LDAP_MOD_REPLACE, (char *)attr, {vals}}, *mods[] = {&mod, NULL};
    int rc = ldap_modify_ext_s(A(dir)->ld, dn, mods, NULL, NULL);

    return rc == LDAP_SUCCESS ? 0 : fail(dir, rc, "cannot change", dn);
}

/*
 * The LDAP_SERVER_SD_FLAGS control (MS-ADTS 3.1.1.3.4.1.11) for the DACL alone: reading
 * nTSecurityDescriptor with it needs no right to the SACL, and writing with it replaces
 * the DACL and nothing else.
 */
static long sd_flags_control(kasa_dir *dir, LDAPControl **out)
{
    BerElement *ber = ber_alloc_t(LBER_USE_DER);
    struct berval bv = {0, NULL};
    int rc = -1;

    *out = NULL;
    if (ber != NULL && ber_printf(ber, "{i}", (ber_int_t)4 /* DACL_SECURITY_INFORMATION */) >= 0 &&
        ber_flatten2(ber, &bv, 0) == 0)
        rc = ldap_control_create("1.2.840.113556.1.4.801", 1, &bv, 1, out);
    ber_free(ber, 1);
    return rc == LDAP_SUCCESS ? 0 : kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
}

/*
 * The ASA's keys are kasa's alone: "Change Password" denied to SELF and Everyone (what
 * "User cannot change password" writes), so that a copy of the array keytab cannot change
 * the ASA's password through kpasswd (lib/adsd.c says more). kasa's own resets use the
 * Reset Password right and go on working. An SPN is a value of the account on AD, not an
 * object with keys of its own: nothing to do for one. Writes only when the denials are
 * missing.
 */
static long ad_protect_keys(kasa_dir *dir, const char *name, bool ticket_target)
{
    char *attrs[] = {"nTSecurityDescriptor", NULL};
    struct timeval tv = {AD_TIMEOUT, 0};
    LDAPControl *ctrl = NULL, *ctrls[2] = {NULL, NULL};
    LDAPMessage *res = NULL, *e;
    struct berval **sd = NULL;
    uint8_t *nsd = NULL;
    size_t nlen = 0;
    struct found f;
    long ret;
    int rc;

    if (ticket_target)
        return 0;
    ret = find_account(dir, name, &f);
    if (!ret && f.n == 0)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_NOT_FOUND, "no account %s in %s", name,
                             dir->realm);
    if (!ret)
        ret = sd_flags_control(dir, &ctrl);
    if (ret)
        goto cleanup;
    ctrls[0] = ctrl;
    rc = ldap_search_ext_s(A(dir)->ld, f.dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, ctrls,
                           NULL, &tv, 1, &res);
    if (rc != LDAP_SUCCESS) {
        ret = fail(dir, rc, "cannot read the security descriptor of", f.dn);
        goto cleanup;
    }
    e = ldap_first_entry(A(dir)->ld, res);
    sd = e != NULL ? ldap_get_values_len(A(dir)->ld, e, "nTSecurityDescriptor") : NULL;
    if (sd == NULL || sd[0] == NULL ||
        kasa_ad_sd_deny_change_password((const uint8_t *)sd[0]->bv_val, sd[0]->bv_len, &nsd,
                                        &nlen) != 0) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_DIR,
                             "cannot read the security descriptor of %s (it needs a DACL that "
                             "kasa's principal may read)",
                             f.dn);
        goto cleanup;
    }
    if (nsd != NULL) {
        struct berval v = {(ber_len_t)nlen, (char *)nsd}, *vals[] = {&v, NULL};
        LDAPMod mod = {LDAP_MOD_REPLACE | LDAP_MOD_BVALUES, "nTSecurityDescriptor", {NULL}};
        LDAPMod *mods[] = {&mod, NULL};
        mod.mod_bvalues = vals;
        rc = ldap_modify_ext_s(A(dir)->ld, f.dn, mods, ctrls, NULL);
        if (rc != LDAP_SUCCESS)
            ret = fail(dir, rc, "cannot deny Change Password on", f.dn);
    }

cleanup:
    free(nsd);
    ldap_value_free_len(sd);
    ldap_msgfree(res);
    ldap_control_free(ctrl);
    found_free(&f);
    return ret;
}

/* The DN of a new account: CN=NAME (no '$') in the container. */
static long new_dn(kasa_dir *dir, const char *name, kasa_account_kind kind, char **out)
{
    const kasa_config *cfg = dir->cfg;
    size_t len = strlen(name);
    char *cn;
    int n;

    if (kind == KASA_ACCOUNT_COMPUTER && len > 0 && name[len - 1] == '$')
        len--;
    cn = kasa_ldap_dn_escape(name, len);
    if (cn == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    if (cfg->container != NULL)
        n = asprintf(out, "CN=%s,%s", cn, cfg->container);
    else
        n = asprintf(out, "CN=%s,CN=%s,%s", cn,
                     kind == KASA_ACCOUNT_COMPUTER ? "Computers" : "Users", cfg->base_dn);
    free(cn);
    if (n < 0) {
        *out = NULL;
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    return 0;
}

/*
 * The object is made disabled, given a random password through kpasswd (so AD derives its
 * AES keys at kvno 1 and 2 from its first password), then enabled; a failure deletes it.
 * keys is not used: AD computes keys from passwords, and the roll sets them (not yet).
 */
static long ad_account_create(kasa_dir *dir, const char *name, kasa_account_kind kind,
                              const char *description, const char *dns_host_name,
                              const kasa_keyset *keys)
{
    bool computer = kind == KASA_ACCOUNT_COMPUTER;
    char uac_off[16], uac_on[16], *pw = NULL;
    char *oc[] = {computer ? "computer" : "user", NULL}, *sam[] = {(char *)name, NULL};
    char *uac[] = {uac_off, NULL}, *et[] = {AD_ETYPES, NULL}, *mark[] = {AD_MARK, NULL};
    char *desc[] = {(char *)description, NULL}, *dns[] = {(char *)dns_host_name, NULL};
    LDAPMod m_oc = {LDAP_MOD_ADD, "objectClass", {oc}};
    LDAPMod m_sam = {LDAP_MOD_ADD, "sAMAccountName", {sam}};
    LDAPMod m_uac = {LDAP_MOD_ADD, "userAccountControl", {uac}};
    LDAPMod m_et = {LDAP_MOD_ADD, "msDS-SupportedEncryptionTypes", {et}};
    LDAPMod m_mark = {LDAP_MOD_ADD, "adminDescription", {mark}};
    LDAPMod m_desc = {LDAP_MOD_ADD, "description", {desc}};
    LDAPMod m_dns = {LDAP_MOD_ADD, "dNSHostName", {dns}};
    LDAPMod *mods[] = {&m_oc, &m_sam, &m_uac, &m_et, &m_mark, NULL, NULL, NULL};
    struct found f;
    char *dn = NULL;
    int rc;
    long ret;

    (void)keys;
    ret = find_account(dir, name, &f);
    if (!ret && f.n > 0)
        ret = f.managed ? kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_EXISTS,
                                         "account %s already exists; see kasa account show %s",
                                         f.acct->name, f.acct->name)
                        : kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_EXISTS,
                                         "%s already exists in %s and kasa does not manage it; "
                                         "choose another name",
                                         f.acct->name, dir->realm);
    found_free(&f);
    if (ret)
        return ret;
    if (*description != '\0') /* AD refuses empty values */
        mods[5] = &m_desc;
    if (dns_host_name != NULL)
        mods[mods[5] != NULL ? 6 : 5] = &m_dns;
    snprintf(uac_off, sizeof(uac_off), "%d",
             (computer ? UAC_WORKSTATION : UAC_NORMAL | UAC_NO_EXPIRY) | UAC_DISABLED);
    snprintf(uac_on, sizeof(uac_on), "%d", computer ? UAC_WORKSTATION : UAC_NORMAL | UAC_NO_EXPIRY);
    ret = new_dn(dir, name, kind, &dn);
    if (ret)
        return ret;
    rc = ldap_add_ext_s(A(dir)->ld, dn, mods, NULL, NULL);
    if (rc == LDAP_ALREADY_EXISTS) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_EXISTS,
                             "%s already exists; choose another name", dn);
        goto cleanup;
    }
    if (rc != LDAP_SUCCESS) {
        ret = fail(dir, rc, "cannot create", dn);
        goto cleanup;
    }
    ret = kasa_password_generate(dir->ctx, &pw);
    if (!ret)
        ret = set_password(dir, name, pw);
    kasa_password_free(pw);
    if (!ret)
        ret = replace(dir, dn, "userAccountControl", uac_on);
    if (ret)
        (void)ldap_delete_ext_s(A(dir)->ld, dn, NULL, NULL);

cleanup:
    free(dn);
    return ret;
}

static long ad_account_delete(kasa_dir *dir, const kasa_account *acct)
{
    struct found f;
    long ret;
    int rc;

    ret = find_account(dir, acct->name, &f);
    if (!ret && f.n == 0)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_NOT_FOUND, "no account %s in %s",
                             acct->name, dir->realm);
    if (!ret) {
        rc = ldap_delete_ext_s(A(dir)->ld, f.dn, NULL, NULL);
        if (rc != LDAP_SUCCESS)
            ret = fail(dir, rc, "cannot delete", f.dn);
    }
    found_free(&f);
    return ret;
}

static char *spn_attrs[] = {"servicePrincipalName", "sAMAccountName", "adminDescription", NULL};

/* Claims being gathered: those equal to spn ignoring case (all when NULL). */
struct claims {
    const char *spn;
    bool with_owners;
    kasa_spn_claim *v;
    size_t n, cap;
};

static long add_claims(kasa_dir *dir, LDAPMessage *e, void *arg)
{
    struct claims *c = arg;
    struct berval **v = ldap_get_values_len(A(dir)->ld, e, "servicePrincipalName");
    char *holder = value(dir, e, "sAMAccountName");
    bool managed = c->with_owners && has_value(dir, e, "adminDescription", AD_MARK);
    long ret = 0;

    if (holder == NULL) { /* no account name: the DN says where it is */
        char *dn = ldap_get_dn(A(dir)->ld, e);
        holder = dn != NULL ? strdup(dn) : NULL;
        ldap_memfree(dn);
        managed = false;
    }
    for (size_t i = 0; v != NULL && v[i] != NULL && !ret; i++) {
        kasa_spn_claim *cl;
        char *s = strndup(v[i]->bv_val, v[i]->bv_len);
        if (s == NULL || (c->spn != NULL && strcasecmp(s, c->spn) != 0)) {
            ret = s == NULL ? kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL) : 0;
            free(s);
            continue;
        }
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            kasa_spn_claim *p = realloc(c->v, cap * sizeof(*p));
            if (p == NULL) {
                free(s);
                ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
                break;
            }
            c->v = p;
            c->cap = cap;
        }
        cl = &c->v[c->n++];
        cl->spn = s;
        cl->holder = holder != NULL ? strdup(holder) : NULL;
        cl->owner = managed && holder != NULL ? strdup(holder) : NULL;
        if (cl->holder == NULL || (managed && cl->owner == NULL))
            ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    ldap_value_free_len(v);
    free(holder);
    return ret;
}

/* One search: AD compares servicePrincipalName ignoring case, as kasa's rule does. */
static long ad_spn_claims(kasa_dir *dir, const char *spn, bool with_owners, kasa_spn_claim **out,
                          size_t *n_out)
{
    struct claims c = {spn, with_owners, NULL, 0, 0};
    char *filter = NULL;
    long ret;

    *out = NULL;
    *n_out = 0;
    if (spn != NULL)
        ret = filter1(dir, "(servicePrincipalName=", spn, ")", &filter);
    else
        ret = (filter = strdup("(servicePrincipalName=*)")) == NULL
                  ? kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL)
                  : 0;
    if (!ret)
        ret = search(dir, filter, spn_attrs, add_claims, &c);
    free(filter);
    if (ret) {
        kasa_spn_claims_free(c.v, c.n);
        return ret;
    }
    *out = c.v;
    *n_out = c.n;
    return 0;
}

/* Add or delete one value of the account's servicePrincipalName. */
static long modify_spn(kasa_dir *dir, int op, const char *spn, const kasa_account *acct)
{
    char *vals[] = {(char *)spn, NULL};
    LDAPMod mod = {op, "servicePrincipalName", {vals}}, *mods[] = {&mod, NULL};
    struct found f;
    long ret;
    int rc;

    ret = find_account(dir, acct->name, &f);
    if (!ret && f.n == 0)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_NOT_FOUND, "no account %s in %s",
                             acct->name, dir->realm);
    if (ret)
        goto cleanup;
    rc = ldap_modify_ext_s(A(dir)->ld, f.dn, mods, NULL, NULL);
    if (op == LDAP_MOD_ADD && (rc == LDAP_CONSTRAINT_VIOLATION || rc == LDAP_TYPE_OR_VALUE_EXISTS))
        ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_EXISTS,
                             "the domain refused SPN %s for %s: another object holds it (maybe "
                             "made meanwhile); run kasa spn query %s",
                             spn, acct->name, spn);
    else if (op == LDAP_MOD_DELETE && rc == LDAP_NO_SUCH_ATTRIBUTE)
        ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_NOT_FOUND, "%s no longer holds SPN %s",
                             acct->name, spn);
    else if (rc != LDAP_SUCCESS)
        ret = fail(dir, rc, op == LDAP_MOD_ADD ? "cannot add an SPN to" : "cannot delete an SPN of",
                   acct->name);

cleanup:
    found_free(&f);
    return ret;
}

static long ad_spn_add(kasa_dir *dir, const char *spn, const kasa_account *acct)
{
    return modify_spn(dir, LDAP_MOD_ADD, spn, acct);
}

static long ad_spn_delete(kasa_dir *dir, const char *spn, const kasa_account *acct)
{
    return modify_spn(dir, LDAP_MOD_DELETE, spn, acct);
}

static long collect_spns(kasa_dir *dir, LDAPMessage *e, void *arg)
{
    struct claims *c = arg;

    if (c->n > 0)
        return 0; /* sAMAccountName is unique; take the first */
    return add_claims(dir, e, c);
}

static long ad_spn_list(kasa_dir *dir, const kasa_account *acct, char ***out, size_t *n_out)
{
    struct claims c = {NULL, false, NULL, 0, 0};
    char *filter = NULL, **spns = NULL;
    long ret;

    *out = NULL;
    *n_out = 0;
    ret = filter1(dir, "(&(objectClass=user)(sAMAccountName=", acct->name, "))", &filter);
    if (!ret)
        ret = search(dir, filter, spn_attrs, collect_spns, &c);
    free(filter);
    if (!ret && (spns = calloc(c.n + 1, sizeof(*spns))) == NULL)
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; !ret && i < c.n; i++) {
        spns[i] = c.v[i].spn;
        c.v[i].spn = NULL;
    }
    kasa_spn_claims_free(c.v, c.n);
    if (ret) {
        free(spns);
        return ret;
    }
    *out = spns;
    *n_out = c.n;
    return 0;
}

/* AD computes keys from a password: directory.c never calls this (keys_from_password),
 * it sets the password the keys came from with ad_password_set. */
static long ad_key_set(kasa_dir *dir, const kasa_account *acct, const kasa_keyset *keys)
{
    (void)keys;
    return kasa_set_error(dir->ctx, KASA_ERR_INTERNAL,
                          "AD takes passwords, not keys: cannot set the keys of %s", acct->name);
}

/* The password through kpasswd, then the kvno AD gave it, read back from the object. */
static long ad_password_set(kasa_dir *dir, const kasa_account *acct, const char *password,
                            unsigned *kvno_out)
{
    struct found f;
    long ret;

    *kvno_out = 0;
    ret = set_password(dir, acct->name, password);
    if (ret)
        return ret;
    ret = find_account(dir, acct->name, &f);
    if (!ret && f.n == 0)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_NOT_FOUND,
                             "%s is gone from %s right after its password was set", acct->name,
                             dir->realm);
    if (!ret)
        *kvno_out = f.acct->kvno;
    found_free(&f);
    return ret;
}

/*
 * Records (arrays, roll locks) are serviceConnectionPoint objects: the class AD offers
 * for publishing a service in the directory, so every admin host reads the same array and
 * AD's own tools show it for what it is. A record is CN=TYPE-NAME in kasa's container
 * (CN=kasa in the configured container, else in CN=System, made when first needed), with
 * serviceClassName kasa-TYPE, serviceDNSName NAME (an array's FQDN) and each string as a
 * serviceBindingInformation value KEY=VALUE. Its DN follows from type and name alone, so
 * record_create is one LDAP add, which the DC refuses when the object exists: of two
 * creates of the same record exactly one succeeds, which the roll lock (lib/lock.c)
 * relies on.
 */
#define AD_CN_MAX 64 /* AD's upper bound on the length of a cn */
#define AD_SET_TRIES 5

static char *record_attrs[] = {"serviceBindingInformation", NULL};

/* kasa's container: CN=kasa in the configured container, else in CN=System. */
static char *record_container(kasa_dir *dir)
{
    const kasa_config *cfg = dir->cfg;
    char *s = NULL;

    if (cfg->container != NULL ? asprintf(&s, "CN=kasa,%s", cfg->container) < 0
                               : asprintf(&s, "CN=kasa,CN=System,%s", cfg->base_dn) < 0)
        s = NULL;
    return s;
}

/*
 * The DN of record TYPE NAME: CN=TYPE-NAME in kasa's container. AD allows a cn of 64
 * characters; a longer TYPE-NAME (a long array name, or its lock's private names, which
 * add up to 16 characters) keeps its first 47 and ends in ~ and 16 hex digits of the
 * SHA-256 of the whole: the same record for the same name, another for any other.
 * serviceDNSName keeps the name whole.
 */
static long record_dn(kasa_dir *dir, const char *type, const char *name, char **out)
{
    char *cn = NULL, *esc = NULL, *container = NULL;
    long ret = 0;

    *out = NULL;
    if (asprintf(&cn, "%s-%s", type, name) < 0)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    if (strlen(cn) > AD_CN_MAX) {
        unsigned char d[32];
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, cn, strlen(cn), d) != 0) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_INTERNAL, "cannot hash %s", cn);
            goto cleanup;
        }
        snprintf(cn + AD_CN_MAX - 17, 18, "~%02x%02x%02x%02x%02x%02x%02x%02x", d[0], d[1], d[2],
                 d[3], d[4], d[5], d[6], d[7]);
    }
    esc = kasa_ldap_dn_escape(cn, strlen(cn));
    container = record_container(dir);
    if (esc == NULL || container == NULL || asprintf(out, "CN=%s,%s", esc, container) < 0) {
        *out = NULL;
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }

cleanup:
    free(cn);
    free(esc);
    free(container);
    return ret;
}

/* Make kasa's container; one that exists already is fine. */
static long make_container(kasa_dir *dir)
{
    char *oc[] = {"container", NULL}, *mark[] = {AD_MARK, NULL};
    LDAPMod m_oc = {LDAP_MOD_ADD, "objectClass", {oc}};
    LDAPMod m_mark = {LDAP_MOD_ADD, "adminDescription", {mark}};
    LDAPMod *mods[] = {&m_oc, &m_mark, NULL};
    char *dn = record_container(dir);
    long ret = 0;
    int rc;

    if (dn == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    rc = ldap_add_ext_s(A(dir)->ld, dn, mods, NULL, NULL);
    if (rc != LDAP_SUCCESS && rc != LDAP_ALREADY_EXISTS)
        ret = fail(dir, rc, "cannot create kasa's container", dn);
    free(dn);
    return ret;
}

static long ad_record_create(kasa_dir *dir, const char *type, const char *name)
{
    char *oc[] = {"serviceConnectionPoint", NULL}, *cls[] = {NULL, NULL};
    char *dns[] = {(char *)name, NULL}, *mark[] = {AD_MARK, NULL};
    LDAPMod m_oc = {LDAP_MOD_ADD, "objectClass", {oc}};
    LDAPMod m_cls = {LDAP_MOD_ADD, "serviceClassName", {cls}};
    LDAPMod m_dns = {LDAP_MOD_ADD, "serviceDNSName", {dns}};
    LDAPMod m_mark = {LDAP_MOD_ADD, "adminDescription", {mark}};
    LDAPMod *mods[] = {&m_oc, &m_cls, &m_dns, &m_mark, NULL};
    char *dn = NULL;
    long ret;
    int rc;

    ret = record_dn(dir, type, name, &dn);
    if (ret)
        return ret;
    if (asprintf(&cls[0], "kasa-%s", type) < 0) {
        cls[0] = NULL;
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    rc = ldap_add_ext_s(A(dir)->ld, dn, mods, NULL, NULL);
    if (rc == LDAP_NO_SUCH_OBJECT) { /* the first record: no container yet */
        ret = make_container(dir);
        if (ret)
            goto cleanup;
        rc = ldap_add_ext_s(A(dir)->ld, dn, mods, NULL, NULL);
    }
    if (rc == LDAP_ALREADY_EXISTS)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_EXISTS, "%s %s already exists", type, name);
    else if (rc != LDAP_SUCCESS)
        ret = fail(dir, rc, "cannot create", dn);

cleanup:
    free(cls[0]);
    free(dn);
    return ret;
}

/* The KEY=VALUE strings of record TYPE NAME at dn. */
static long read_record(kasa_dir *dir, const char *type, const char *name, const char *dn,
                        struct berval ***vals)
{
    struct timeval tv = {AD_TIMEOUT, 0};
    LDAPMessage *res = NULL, *e;
    int rc;

    *vals = NULL;
    rc = ldap_search_ext_s(A(dir)->ld, dn, LDAP_SCOPE_BASE, "(objectClass=serviceConnectionPoint)",
                           record_attrs, 0, NULL, NULL, &tv, 1, &res);
    if (rc == LDAP_NO_SUCH_OBJECT ||
        (rc == LDAP_SUCCESS && ldap_count_entries(A(dir)->ld, res) < 1)) {
        ldap_msgfree(res);
        return kasa_set_error(dir->ctx, KASA_ERR_ARRAY_NOT_FOUND, "no %s %s in %s", type, name,
                              dir->realm);
    }
    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return fail(dir, rc, "cannot read", dn);
    }
    e = ldap_first_entry(A(dir)->ld, res);
    *vals = ldap_get_values_len(A(dir)->ld, e, "serviceBindingInformation");
    ldap_msgfree(res);
    return 0;
}

static long ad_record_get(kasa_dir *dir, const char *type, const char *name, kasa_attr **attrs,
                          size_t *n_out)
{
    struct berval **v = NULL;
    kasa_attr *out = NULL;
    char *dn = NULL;
    size_t n = 0;
    long ret;

    *attrs = NULL;
    *n_out = 0;
    ret = record_dn(dir, type, name, &dn);
    if (!ret)
        ret = read_record(dir, type, name, dn, &v);
    if (ret)
        goto cleanup;
    out = calloc((size_t)ldap_count_values_len(v) + 1, sizeof(*out));
    if (out == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        const char *eq = memchr(v[i]->bv_val, '=', v[i]->bv_len);
        if (eq == NULL) /* not one of kasa's */
            continue;
        out[n].key = strndup(v[i]->bv_val, (size_t)(eq - v[i]->bv_val));
        out[n].value = strndup(eq + 1, v[i]->bv_len - (size_t)(eq - v[i]->bv_val) - 1);
        n++;
        if (out[n - 1].key == NULL || out[n - 1].value == NULL) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
            goto cleanup;
        }
    }
    *attrs = out;
    *n_out = n;
    out = NULL;

cleanup:
    kasa_attrs_free(out, n);
    ldap_value_free_len(v);
    free(dn);
    return ret;
}

/*
 * One modify replaces the value of KEY (deletes the old KEY=... value, adds the new one),
 * so a reader never sees two. When another writer changed the key between the read and
 * the modify, the DC refuses the delete and the set is tried again.
 */
static long ad_record_set(kasa_dir *dir, const char *type, const char *name, const char *key,
                          const char *val)
{
    size_t klen = strlen(key);
    char *dn = NULL, *want = NULL;
    long ret;
    int rc = LDAP_SUCCESS;

    ret = record_dn(dir, type, name, &dn);
    if (ret)
        return ret;
    if (val != NULL && asprintf(&want, "%s=%s", key, val) < 0) {
        want = NULL;
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    for (int tries = 0; tries < AD_SET_TRIES; tries++) {
        struct berval **v = NULL, *old[2] = {NULL, NULL}, now = {0, want};
        struct berval *add[2] = {&now, NULL};
        LDAPMod m_del = {LDAP_MOD_DELETE | LDAP_MOD_BVALUES, "serviceBindingInformation", {NULL}};
        LDAPMod m_add = {LDAP_MOD_ADD | LDAP_MOD_BVALUES, "serviceBindingInformation", {NULL}};
        LDAPMod *mods[3] = {NULL, NULL, NULL};
        size_t m = 0;

        ret = read_record(dir, type, name, dn, &v);
        if (ret)
            goto cleanup;
        for (size_t i = 0; v != NULL && v[i] != NULL && old[0] == NULL; i++)
            if (v[i]->bv_len > klen && memcmp(v[i]->bv_val, key, klen) == 0 &&
                v[i]->bv_val[klen] == '=')
                old[0] = v[i];
        if (old[0] != NULL && want != NULL && old[0]->bv_len == strlen(want) &&
            memcmp(old[0]->bv_val, want, old[0]->bv_len) == 0) {
            ldap_value_free_len(v); /* already so */
            goto cleanup;
        }
        if (old[0] != NULL) {
            m_del.mod_bvalues = old;
            mods[m++] = &m_del;
        }
        if (want != NULL) {
            now.bv_len = strlen(want);
            m_add.mod_bvalues = add;
            mods[m++] = &m_add;
        }
        rc = m == 0 ? LDAP_SUCCESS : ldap_modify_ext_s(A(dir)->ld, dn, mods, NULL, NULL);
        ldap_value_free_len(v);
        if (rc != LDAP_NO_SUCH_ATTRIBUTE && rc != LDAP_TYPE_OR_VALUE_EXISTS)
            break;
    }
    if (rc != LDAP_SUCCESS)
        ret = fail(dir, rc, "cannot change", dn);

cleanup:
    free(want);
    free(dn);
    return ret;
}

/* Names of records being listed: those in kasa's container only. */
struct records {
    const char *container;
    char **v;
    size_t n, cap;
};

static long add_record(kasa_dir *dir, LDAPMessage *e, void *arg)
{
    struct records *r = arg;
    char *dn = ldap_get_dn(A(dir)->ld, e), *name = value(dir, e, "serviceDNSName"), *comma;
    size_t len;
    long ret = 0;

    /* Its parent must be kasa's container, where get and set look. */
    comma = dn != NULL ? strchr(dn, ',') : NULL;
    if (comma == NULL || name == NULL || strcasecmp(comma + 1, r->container) != 0)
        goto cleanup;
    len = r->n + 2;
    if (len > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        char **p = realloc(r->v, cap * sizeof(*p));
        if (p == NULL) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
            goto cleanup;
        }
        r->v = p;
        r->cap = cap;
    }
    r->v[r->n++] = name;
    r->v[r->n] = NULL;
    name = NULL;

cleanup:
    free(name);
    ldap_memfree(dn);
    return ret;
}

static long ad_record_list(kasa_dir *dir, const char *type, char ***names, size_t *n)
{
    static char *attrs[] = {"serviceDNSName", NULL};
    struct records r = {NULL, NULL, 0, 0};
    char *filter = NULL, *cls = NULL;
    long ret;

    *names = NULL;
    *n = 0;
    r.container = record_container(dir);
    if (r.container == NULL || asprintf(&cls, "kasa-%s", type) < 0) {
        cls = NULL;
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    ret = filter1(dir, "(&(objectClass=serviceConnectionPoint)(serviceClassName=", cls, "))",
                  &filter);
    if (!ret)
        ret = search(dir, filter, attrs, add_record, &r);
    if (!ret && r.v == NULL && (r.v = calloc(1, sizeof(*r.v))) == NULL)
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    if (!ret) {
        *names = r.v;
        *n = r.n;
        r.v = NULL;
        r.n = 0;
    }

cleanup:
    for (size_t i = 0; i < r.n; i++)
        free(r.v[i]);
    free(r.v);
    free((char *)r.container);
    free(filter);
    free(cls);
    return ret;
}

/* One modrdn in kasa's container: the DC refuses it when the new name exists. The
 * record's serviceDNSName (what record_list gives) follows, in a second step. */
static long ad_record_rename(kasa_dir *dir, const char *type, const char *from, const char *to)
{
    char *dn = NULL, *newdn = NULL, *rdn = NULL, *comma;
    char *dns[] = {(char *)to, NULL};
    LDAPMod m_dns = {LDAP_MOD_REPLACE, "serviceDNSName", {dns}};
    LDAPMod *mods[] = {&m_dns, NULL};
    long ret;
    int rc;

    ret = record_dn(dir, type, from, &dn);
    if (!ret)
        ret = record_dn(dir, type, to, &newdn);
    if (ret)
        goto cleanup;
    comma = strchr(newdn, ',');
    while (comma != NULL && comma > newdn && comma[-1] == '\\') /* an escaped comma */
        comma = strchr(comma + 1, ',');
    if (comma == NULL || (rdn = strndup(newdn, (size_t)(comma - newdn))) == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    rc = ldap_rename_s(A(dir)->ld, dn, rdn, NULL, 1, NULL, NULL);
    if (rc == LDAP_ALREADY_EXISTS)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_EXISTS, "%s %s already exists", type, to);
    else if (rc == LDAP_NO_SUCH_OBJECT)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_NOT_FOUND, "no %s %s in %s", type, from,
                             dir->realm);
    else if (rc != LDAP_SUCCESS)
        ret = fail(dir, rc, "cannot rename", dn);
    else
        (void)ldap_modify_ext_s(A(dir)->ld, newdn, mods, NULL, NULL);

cleanup:
    free(rdn);
    free(newdn);
    free(dn);
    return ret;
}

static long ad_record_delete(kasa_dir *dir, const char *type, const char *name)
{
    char *dn = NULL;
    long ret;
    int rc;

    ret = record_dn(dir, type, name, &dn);
    if (ret)
        return ret;
    rc = ldap_delete_ext_s(A(dir)->ld, dn, NULL, NULL);
    if (rc == LDAP_NO_SUCH_OBJECT)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_NOT_FOUND, "no %s %s in %s", type, name,
                             dir->realm);
    else if (rc != LDAP_SUCCESS)
        ret = fail(dir, rc, "cannot delete", dn);
    free(dn);
    return ret;
}

/*
 * Metadata on an account (MIT keeps it as the principal's string attributes): a record
 * of type meta named by the account's sAMAccountName, so kasa never writes attributes of
 * an account object that AD or its admins own. The account must exist.
 */
#define META "meta"

static long meta_account(kasa_dir *dir, const char *object, char **name_out)
{
    struct found f;
    long ret;

    *name_out = NULL;
    ret = find_account(dir, object, &f);
    if (!ret && f.n == 0)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_NOT_FOUND, "no account %s in %s", object,
                             dir->realm);
    if (!ret) {
        *name_out = f.acct->name;
        f.acct->name = NULL;
    }
    found_free(&f);
    return ret;
}

static long ad_meta_get(kasa_dir *dir, const char *object, const char *key, char **value_out)
{
    kasa_attr *attrs = NULL;
    char *name = NULL;
    size_t n = 0;
    long ret;

    *value_out = NULL;
    ret = meta_account(dir, object, &name);
    if (!ret)
        ret = ad_record_get(dir, META, name, &attrs, &n);
    if (ret == KASA_ERR_ARRAY_NOT_FOUND) /* nothing set yet */
        ret = 0;
    for (size_t i = 0; !ret && i < n; i++) {
        if (strcmp(attrs[i].key, key) == 0) {
            *value_out = strdup(attrs[i].value);
            if (*value_out == NULL)
                ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
            break;
        }
    }
    kasa_attrs_free(attrs, n);
    free(name);
    return ret;
}

static long ad_meta_set(kasa_dir *dir, const char *object, const char *key, const char *val)
{
    char *name = NULL;
    long ret;

    ret = meta_account(dir, object, &name);
    if (!ret) {
        ret = ad_record_create(dir, META, name);
        if (ret == KASA_ERR_ARRAY_EXISTS)
            ret = 0;
    }
    if (!ret)
        ret = ad_record_set(dir, META, name, key, val);
    free(name);
    return ret;
}

static long ad_ticket_life(kasa_dir *dir, const char *name, int64_t *life)
{
    (void)dir;
    (void)name;
    *life = AD_TICKET_LIFE;
    return 0;
}

const struct kasa_dir_ops kasa_dir_ad_ops = {
    .name = "ad",
    .exact_names = false,
    .open = ad_open,
    .close = ad_close,
    .account_create = ad_account_create,
    .account_get = ad_account_get,
    .account_list = ad_account_list,
    .account_delete = ad_account_delete,
    .spn_claims = ad_spn_claims,
    .spn_add = ad_spn_add,
    .spn_delete = ad_spn_delete,
    .spn_list = ad_spn_list,
    .key_set = ad_key_set,
    .keys_from_password = true,
    .password_set = ad_password_set,
    .protect_keys = ad_protect_keys,
    .record_create = ad_record_create,
    .record_get = ad_record_get,
    .record_set = ad_record_set,
    .record_list = ad_record_list,
    .record_delete = ad_record_delete,
    .record_rename = ad_record_rename,
    .meta_get = ad_meta_get,
    .meta_set = ad_meta_set,
    .ticket_life = ad_ticket_life,
};
