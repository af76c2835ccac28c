/*
 * The MIT Kerberos backend: kadm5's client API (libkadm5clnt_mit) talking to kadmind.
 *
 * MIT's database has no SPN aliases, so an SPN is a principal of its own (SPN@REALM)
 * that carries the same keys and kvno as the account that owns it; the owner is written
 * on the SPN principal as the string attribute kasa.owner, so every admin host sees it.
 * Accounts are principals NAME@REALM with kasa.kind and kasa.description. Every object
 * is created disabled and enabled only once its keys and attributes are in place; if a
 * step fails, the object is deleted again, so nothing half-made is left behind. Their
 * holders cannot get initial tickets as them or change their keys: see mit_protect_keys.
 *
 * kadm5 lists names only (kadm5_get_principals, one round trip for the whole realm); an
 * attribute costs one round trip per principal, which over 100,000 principals is seconds.
 * So kasa keeps two indexes, written before the objects they list (a crash leaves an
 * entry too many, never one too few) and read back through the objects themselves, so
 * that an object deleted or changed behind kasa's back drops out: on each account, a
 * string kasa.spn:SPN per SPN it owns; on the record kasa-index/accounts, a string
 * kasa.account:NAME per account. Each says kasa.index: complete once it holds every
 * object; an index without it (an account made before kasa kept one, an index that
 * outgrew MIT's 64 KB of strings per principal, one deleted by hand) is not used, and
 * the whole realm is read instead. See spn_index_ensure and account_index_ensure.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <kadm5/admin.h>
#include <krb5/krb5.h>

#include "directory.h"
#include "private.h"

#define ATTR_KIND "kasa.kind"
#define ATTR_DESCRIPTION "kasa.description"
#define ATTR_OWNER "kasa.owner"
#define ATTR_CREATED "kasa.created"
#define RECORD_PREFIX "kasa-"   /* records are kasa-TYPE/NAME principals */
#define KEYS_POLICY "kasa-keys" /* no key change by their holder: see mit_protect_keys */
#define KEYS_MIN_LIFE INT32_MAX /* 68 years, the longest minimum password life */
#define KEYS_EXPIRED 1          /* a password expiration long past (0 is "never") */

/* The indexes (see the top of this file). */
#define ATTR_INDEX "kasa.index" /* COMPLETE on an index that lists every object it is for */
#define COMPLETE "complete"
#define ATTR_SPN "kasa.spn:"          /* on an account: one per SPN it owns */
#define ACCOUNT_INDEX_TYPE "index"    /* the record kasa-index/accounts, */
#define ACCOUNT_INDEX_NAME "accounts" /* which lists every account */
#define ACCOUNT_INDEX RECORD_PREFIX ACCOUNT_INDEX_TYPE "/" ACCOUNT_INDEX_NAME
#define ATTR_ACCOUNT "kasa.account:" /* on ACCOUNT_INDEX: one per account */

struct mit {
    krb5_context kctx;
    void *handle;
    bool have_policy; /* KEYS_POLICY is known to be right */
};

static struct mit *M(kasa_dir *dir)
{
    return dir->priv;
}

/* Set the error for a kadm5 failure, choosing the kasa code from the kadm5 one. */
static long fail(kasa_dir *dir, long kret, const char *what, const char *name)
{
    long code;
    const char *hint = "";

    switch (kret) {
    case KADM5_AUTH_GET:
    case KADM5_AUTH_ADD:
    case KADM5_AUTH_MODIFY:
    case KADM5_AUTH_DELETE:
    case KADM5_AUTH_INSUFFICIENT:
    case KADM5_AUTH_LIST:
    case KADM5_AUTH_SETKEY:
    case KADM5_AUTH_EXTRACT:
        code = KASA_ERR_DIR_DENIED;
        hint = " (kasa's principal needs \"*e\" in kadmind's kadm5.acl)";
        break;
    case KADM5_RPC_ERROR:
    case KADM5_NO_SRV:
    case KADM5_CANT_RESOLVE:
    case KRB5_KDC_UNREACH:
    case KRB5_REALM_CANT_RESOLVE:
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EPIPE:
    case ECONNRESET:
        code = KASA_ERR_DIR_UNREACHABLE;
        hint = " (kadmind did not answer: is it running?)";
        break;
    default:
        code = KASA_ERR_DIR;
        break;
    }
    return kasa_set_krb5_error(dir->ctx, code, M(dir)->kctx, kret, "%s %s%s", what, name, hint);
}

/* name@REALM as a principal. */
static long principal(kasa_dir *dir, const char *name, krb5_principal *out)
{
    char *full = NULL;
    long ret;

    if (asprintf(&full, "%s@%s", name, dir->realm) < 0)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    ret = krb5_parse_name(M(dir)->kctx, full, out);
    if (ret)
        ret = kasa_set_krb5_error(dir->ctx, KASA_ERR_INTERNAL, M(dir)->kctx, ret,
                                  "cannot make a principal of %s", full);
    free(full);
    return ret;
}

static long mit_open(kasa_dir *dir)
{
    const kasa_config *cfg = dir->cfg;
    kadm5_config_params params;
    krb5_ccache cc = NULL;
    char *realm = NULL, *ccname = NULL;
    const char *who = NULL;
    struct mit *m;
    long ret;

    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    dir->priv = m;
    ret = kadm5_init_krb5_context(&m->kctx);
    if (ret) {
        m->kctx = NULL;
        ret = kasa_set_error(dir->ctx, KASA_ERR_CONFIG, "cannot read the Kerberos configuration");
        goto cleanup;
    }
    if (cfg->realm != NULL) {
        dir->realm = strdup(cfg->realm);
    } else {
        ret = krb5_get_default_realm(m->kctx, &realm);
        if (ret) {
            ret = kasa_set_krb5_error(dir->ctx, KASA_ERR_CONFIG, m->kctx, ret,
                                      "%s: no [directory] realm and no default realm", cfg->path);
            goto cleanup;
        }
        dir->realm = strdup(realm);
    }
    if (dir->realm == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }

    memset(&params, 0, sizeof(params));
    params.mask = KADM5_CONFIG_REALM;
    params.realm = dir->realm;
    if (cfg->admin_server != NULL) {
        params.mask |= KADM5_CONFIG_ADMIN_SERVER;
        params.admin_server = cfg->admin_server;
    }
    if (cfg->keytab != NULL) {
        ret =
            kadm5_init_with_skey(m->kctx, cfg->principal, cfg->keytab, KADM5_ADMIN_SERVICE, &params,
                                 KADM5_STRUCT_VERSION, KADM5_API_VERSION_4, NULL, &m->handle);
        who = cfg->principal;
    } else {
        ret = cfg->ccache != NULL ? krb5_cc_resolve(m->kctx, cfg->ccache, &cc)
                                  : krb5_cc_default(m->kctx, &cc);
        who = cfg->principal;
        if (!ret && who == NULL) {
            /* No principal configured: whoever the credential cache belongs to. */
            krb5_principal client = NULL;
            ret = krb5_cc_get_principal(m->kctx, cc, &client);
            if (!ret)
                ret = krb5_unparse_name(m->kctx, client, &ccname);
            krb5_free_principal(m->kctx, client);
            if (ret) {
                ret = kasa_set_krb5_error(dir->ctx, KASA_ERR_DIR_AUTH, m->kctx, ret,
                                          "%s names no keytab and principal, and there is no "
                                          "usable credential cache (kinit first)",
                                          cfg->path);
                m->handle = NULL;
                goto cleanup;
            }
            who = ccname;
        }
        if (!ret)
            ret =
                kadm5_init_with_creds(m->kctx, (char *)who, cc, KADM5_ADMIN_SERVICE, &params,
                                      KADM5_STRUCT_VERSION, KADM5_API_VERSION_4, NULL, &m->handle);
        if (who == NULL)
            who = "the credential cache's principal";
    }
    if (ret) {
        m->handle = NULL;
        switch (ret) {
        case KRB5_KDC_UNREACH:
        case KRB5_REALM_CANT_RESOLVE:
            ret = kasa_set_krb5_error(dir->ctx, KASA_ERR_DIR_UNREACHABLE, m->kctx, ret,
                                      "cannot reach the KDC of %s (is it running?)", dir->realm);
            break;
        case KADM5_RPC_ERROR:
        case KADM5_NO_SRV:
        case KADM5_CANT_RESOLVE:
        case ECONNREFUSED:
        case ETIMEDOUT:
            ret = kasa_set_krb5_error(dir->ctx, KASA_ERR_DIR_UNREACHABLE, m->kctx, ret,
                                      "cannot reach kadmind for %s%s%s (is it running?)",
                                      dir->realm, cfg->admin_server ? " at " : "",
                                      cfg->admin_server ? cfg->admin_server : "");
            break;
        default:
            ret =
                kasa_set_krb5_error(dir->ctx, KASA_ERR_DIR_AUTH, m->kctx, ret,
                                    "cannot authenticate to kadmind for %s as %s", dir->realm, who);
            break;
        }
        goto cleanup;
    }

cleanup:
    krb5_free_unparsed_name(m->kctx, ccname);
    if (cc != NULL)
        krb5_cc_close(m->kctx, cc);
    if (realm != NULL)
        krb5_free_default_realm(m->kctx, realm);
    return ret;
}

static void mit_close(kasa_dir *dir)
{
    struct mit *m = M(dir);

    if (m == NULL)
        return;
    if (m->handle != NULL)
        kadm5_destroy(m->handle);
    if (m->kctx != NULL)
        krb5_free_context(m->kctx);
    free(m);
    dir->priv = NULL;
}

/* The value of string attribute key on princ, or NULL (*found false) when absent. */
static long get_attr(kasa_dir *dir, krb5_principal princ, const char *name, const char *key,
                     char **value_out)
{
    krb5_string_attr *strs = NULL;
    int n = 0;
    long ret;

    *value_out = NULL;
    ret = kadm5_get_strings(M(dir)->handle, princ, &strs, &n);
    if (ret)
        return fail(dir, ret, "cannot read the attributes of", name);
    for (int i = 0; i < n; i++) {
        if (strcmp(strs[i].key, key) == 0) {
            *value_out = strdup(strs[i].value);
            if (*value_out == NULL)
                ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
            break;
        }
    }
    kadm5_free_strings(M(dir)->handle, strs, n);
    return ret;
}

/* Give princ the keys ks (at ks->kvno), replacing any it has. */
static long set_keys(kasa_dir *dir, krb5_principal princ, const char *name,
                     const krb5_keyblock *keys, size_t n, unsigned kvno)
{
    kadm5_key_data *kd;
    long ret;

    kd = calloc(n, sizeof(*kd));
    if (kd == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        kd[i].kvno = kvno;
        kd[i].key = keys[i]; /* borrowed: setkey copies, and kd is only freed, not zapped */
    }
    ret = kadm5_setkey_principal_4(M(dir)->handle, princ, FALSE, kd, (int)n);
    free(kd);
    if (ret)
        return fail(dir, ret, "cannot set the keys of", name);
    return 0;
}

/* Turn tickets for princ on or off. */
static long set_enabled(kasa_dir *dir, krb5_principal princ, const char *name, bool on,
                        krb5_flags extra)
{
    kadm5_principal_ent_rec ent;
    long ret;

    memset(&ent, 0, sizeof(ent));
    ent.principal = princ;
    ent.attributes = (on ? 0 : KRB5_KDB_DISALLOW_ALL_TIX) | extra;
    ret = kadm5_modify_principal(M(dir)->handle, &ent, KADM5_ATTRIBUTES);
    if (ret)
        return fail(dir, ret, "cannot enable", name);
    return 0;
}

/*
 * Make princ, disabled and keyless, then let fill() complete it; enable it at the end.
 * Any failure deletes it again.
 */
static long create_object(kasa_dir *dir, krb5_principal princ, const char *name,
                          const char *const *attrs, const krb5_keyblock *keys, size_t n_keys,
                          unsigned kvno, krb5_flags flags)
{
    kadm5_principal_ent_rec ent;
    long ret;

    memset(&ent, 0, sizeof(ent));
    ent.principal = princ;
    ent.attributes = KRB5_KDB_DISALLOW_ALL_TIX;
    ret = kadm5_create_principal_3(
        M(dir)->handle, &ent, KADM5_PRINCIPAL | KADM5_ATTRIBUTES | KADM5_KEY_DATA, 0, NULL, NULL);
    if (ret == KADM5_DUP)
        return kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_EXISTS, "%s@%s already exists", name,
                              dir->realm);
    if (ret)
        return fail(dir, ret, "cannot create", name);
    for (size_t i = 0; attrs[i] != NULL && !ret; i += 2) {
        ret = kadm5_set_string(M(dir)->handle, princ, attrs[i], attrs[i + 1]);
        if (ret)
            ret = fail(dir, ret, "cannot set the attributes of", name);
    }
    if (!ret)
        ret = set_keys(dir, princ, name, keys, n_keys, kvno);
    if (!ret)
        ret = set_enabled(dir, princ, name, true, flags);
    if (ret)
        (void)kadm5_delete_principal(M(dir)->handle, princ);
    return ret;
}

/* The string attributes of the principal name (no realm); *found false, and none, when
 * there is no such principal. */
static long read_strings(kasa_dir *dir, const char *name, krb5_string_attr **strs, int *n,
                         bool *found)
{
    krb5_principal princ = NULL;
    long ret;

    *strs = NULL;
    *n = 0;
    *found = false;
    ret = principal(dir, name, &princ);
    if (ret)
        return ret;
    ret = kadm5_get_strings(M(dir)->handle, princ, strs, n);
    krb5_free_principal(M(dir)->kctx, princ);
    if (ret) {
        *strs = NULL;
        *n = 0;
        return ret == KADM5_UNK_PRINC ? 0 : fail(dir, ret, "cannot read the attributes of", name);
    }
    *found = true;
    return 0;
}

/* The value of key among strs, or NULL. */
static const char *string_value(const krb5_string_attr *strs, int n, const char *key)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(strs[i].key, key) == 0)
            return strs[i].value;
    }
    return NULL;
}

/* Set key on the principal name to value, or remove it when value is NULL; the kadm5
 * code. One step in kadmind: writers of different keys never undo each other. */
static long write_string(kasa_dir *dir, const char *name, const char *key, const char *value)
{
    krb5_principal princ = NULL;
    long ret;

    ret = principal(dir, name, &princ);
    if (ret)
        return ret;
    ret = kadm5_set_string(M(dir)->handle, princ, key, value);
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

/* One of kasa's indexes: the names entered on its holder (the strings prefix+NAME). */
struct index {
    bool found;    /* the holder exists */
    bool complete; /* it says it lists every object */
    char **names;
    size_t n;
};

static void index_free(struct index *ix)
{
    kasa_spn_list_free(ix->names, ix->n);
    memset(ix, 0, sizeof(*ix));
}

static long index_read(kasa_dir *dir, const char *holder, const char *prefix, struct index *ix)
{
    krb5_string_attr *strs = NULL;
    size_t plen = strlen(prefix);
    const char *v;
    int n = 0;
    long ret;

    memset(ix, 0, sizeof(*ix));
    ret = read_strings(dir, holder, &strs, &n, &ix->found);
    if (ret)
        return ret;
    ix->names = calloc((size_t)n + 1, sizeof(*ix->names));
    if (ix->names == NULL)
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    for (int i = 0; !ret && i < n; i++) {
        if (strncmp(strs[i].key, prefix, plen) != 0)
            continue;
        if ((ix->names[ix->n] = strdup(strs[i].key + plen)) == NULL)
            ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        else
            ix->n++;
    }
    v = string_value(strs, n, ATTR_INDEX);
    ix->complete = v != NULL && strcmp(v, COMPLETE) == 0;
    if (strs != NULL)
        kadm5_free_strings(M(dir)->handle, strs, n);
    if (ret)
        index_free(ix);
    return ret;
}

/* Enter (present) or take out the entry prefix+name of the index on holder; the kadm5
 * code. */
static long index_entry(kasa_dir *dir, const char *holder, const char *prefix, const char *name,
                        bool present)
{
    char *key = NULL;
    long ret;

    if (asprintf(&key, "%s%s", prefix, name) < 0)
        return ENOMEM;
    ret = write_string(dir, holder, key, present ? "" : NULL);
    free(key);
    return ret;
}

/*
 * Enter name in the index on holder, before its object is made. A complete index that
 * cannot take it (MIT keeps at most 64 KB of strings on a principal) stops saying it is
 * complete, so that readers read the realm instead; only when even that fails is the
 * object not made. An index that is not complete needs no entry.
 */
static long index_add(kasa_dir *dir, const char *holder, const char *prefix, const char *name,
                      bool complete)
{
    long kret, kret2;

    kret = index_entry(dir, holder, prefix, name, true);
    if (kret == 0 || kret == KADM5_UNK_PRINC || !complete)
        return 0;
    kret2 = write_string(dir, holder, ATTR_INDEX, NULL);
    if (kret2 == 0 || kret2 == KADM5_UNK_PRINC)
        return 0;
    return kasa_set_krb5_error(dir->ctx, KASA_ERR_DIR, M(dir)->kctx, kret,
                               "cannot enter %s in kasa's index on %s, nor mark that index "
                               "incomplete; kasa needs the modify right on %s",
                               name, holder, holder);
}

/* Make the account index exist and complete: see below. */
static long account_index_ensure(kasa_dir *dir, bool *complete_out);

/*
 * The account goes into the account index before it is made (a crash between leaves an
 * entry for nothing, which readers skip), and again once made, in case a delete of the
 * same name took the entry out meanwhile (mit_account_delete checks on its side).
 */
static long mit_account_create(kasa_dir *dir, const char *name, kasa_account_kind kind,
                               const char *description, const char *dns_host_name,
                               const kasa_keyset *keys)
{
    krb5_principal princ = NULL;
    kadm5_principal_ent_rec ent;
    char *kind_attr = NULL;
    char created[32];
    bool indexed = false;
    long ret;

    if (dns_host_name != NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_USAGE,
                              "an MIT Kerberos principal has no DNS host name; --dns-host-name is "
                              "for Active Directory");
    ret = principal(dir, name, &princ);
    if (ret)
        return ret;
    memset(&ent, 0, sizeof(ent));
    ret = kadm5_get_principal(M(dir)->handle, princ, &ent, KADM5_PRINCIPAL);
    if (ret == 0) {
        kadm5_free_principal_ent(M(dir)->handle, &ent);
        ret = get_attr(dir, princ, name, ATTR_KIND, &kind_attr);
        if (!ret && kind_attr != NULL)
            ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_EXISTS,
                                 "account %s already exists; see kasa account show %s", name, name);
        else if (!ret)
            ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_EXISTS,
                                 "principal %s@%s already exists and kasa does not manage it; "
                                 "choose another name",
                                 name, dir->realm);
        goto cleanup;
    }
    if (ret != KADM5_UNK_PRINC) {
        ret = fail(dir, ret, "cannot look up", name);
        goto cleanup;
    }
    ret = account_index_ensure(dir, &indexed);
    if (!ret)
        ret = index_add(dir, ACCOUNT_INDEX, ATTR_ACCOUNT, name, indexed);
    if (ret)
        goto cleanup;
    snprintf(created, sizeof(created), "%lld", (long long)time(NULL));
    /* A new account owns no SPN: its SPN index is complete from the start. */
    const char *attrs[] = {ATTR_KIND,
                           kasa_account_kind_name(kind),
                           ATTR_DESCRIPTION,
                           description,
                           ATTR_CREATED,
                           created,
                           ATTR_INDEX,
                           COMPLETE,
                           NULL};
    ret = create_object(dir, princ, name, attrs, keys->keys, keys->n, keys->kvno,
                        KRB5_KDB_REQUIRES_PRE_AUTH);
    if (!ret)
        (void)index_entry(dir, ACCOUNT_INDEX, ATTR_ACCOUNT, name, true);

cleanup:
    free(kind_attr);
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

/* Fill an account from its principal; KASA_ERR_NOT_MANAGED when kasa did not make it.
 * Strings first: in a read of the whole realm, a principal that is no account costs one
 * round trip, not two. */
static long read_account(kasa_dir *dir, const char *name, krb5_principal princ, kasa_account *acct)
{
    kadm5_principal_ent_rec ent;
    krb5_string_attr *strs = NULL;
    int n = 0;
    char *full = NULL;
    long ret;

    ret = kadm5_get_strings(M(dir)->handle, princ, &strs, &n);
    if (ret == KADM5_UNK_PRINC)
        return kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_NOT_FOUND,
                              "no account %s in %s; create it with kasa account create", name,
                              dir->realm);
    if (ret)
        return fail(dir, ret, "cannot read the attributes of", name);
    acct->kind = 0;
    for (int i = 0; i < n && !ret; i++) {
        if (strcmp(strs[i].key, ATTR_KIND) == 0)
            acct->kind = strcmp(strs[i].value, "computer") == 0 ? KASA_ACCOUNT_COMPUTER
                         : strcmp(strs[i].value, "user") == 0   ? KASA_ACCOUNT_USER
                                                                : 0;
        else if (strcmp(strs[i].key, ATTR_DESCRIPTION) == 0 && acct->description == NULL)
            ret = (acct->description = strdup(strs[i].value)) == NULL;
        else if (strcmp(strs[i].key, ATTR_CREATED) == 0)
            acct->created = strtoll(strs[i].value, NULL, 10);
    }
    kadm5_free_strings(M(dir)->handle, strs, n);
    if (ret)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    if (acct->kind == 0)
        return kasa_set_error(dir->ctx, KASA_ERR_NOT_MANAGED,
                              "%s@%s is a principal kasa does not manage; make an account with "
                              "kasa account create",
                              name, dir->realm);
    memset(&ent, 0, sizeof(ent));
    ret = kadm5_get_principal(M(dir)->handle, princ, &ent, KADM5_PRINCIPAL_NORMAL_MASK);
    if (ret == KADM5_UNK_PRINC)
        return kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_NOT_FOUND,
                              "no account %s in %s; create it with kasa account create", name,
                              dir->realm);
    if (ret)
        return fail(dir, ret, "cannot look up", name);
    acct->kvno = ent.kvno;
    kadm5_free_principal_ent(M(dir)->handle, &ent);
    if (asprintf(&full, "%s@%s", name, dir->realm) < 0)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    acct->principal = full;
    acct->name = strdup(name);
    if (acct->description == NULL)
        acct->description = strdup("");
    if (acct->name == NULL || acct->description == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    return 0;
}

static long mit_account_get(kasa_dir *dir, const char *name, kasa_account **out)
{
    krb5_principal princ = NULL;
    kasa_account *acct;
    long ret;

    *out = NULL;
    acct = calloc(1, sizeof(*acct));
    if (acct == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    ret = principal(dir, name, &princ);
    if (!ret)
        ret = read_account(dir, name, princ, acct);
    if (princ != NULL)
        krb5_free_principal(M(dir)->kctx, princ);
    if (ret) {
        kasa_account_free(acct);
        return ret;
    }
    *out = acct;
    return 0;
}

/* Every name kadm5_get_principals gives for the glob expr (every principal of the realm
 * when NULL), without the realm: one round trip, however many names. */
static long list_names(kasa_dir *dir, const char *expr, char ***names_out, int *n_out)
{
    long ret;

    ret = kadm5_get_principals(M(dir)->handle, (char *)expr, names_out, n_out);
    if (ret) {
        *names_out = NULL;
        *n_out = 0;
        return fail(dir, ret, "cannot list the principals of", dir->realm);
    }
    /* Names are NAME@REALM; cut at the last '@' (the realm holds none). */
    for (int i = 0; i < *n_out; i++) {
        char *at = strrchr((*names_out)[i], '@');
        if (at != NULL)
            *at = '\0';
    }
    return 0;
}

/* Whether a principal name (no realm) has more than one component: an SPN. */
static bool is_spn_name(const char *name)
{
    for (const char *p = name; *p; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '/')
            return true;
    }
    return false;
}

/* Fill accounts from the names of n principals (SPNs skipped): two round trips per
 * account, one per other principal. Principals kasa did not make, and those deleted
 * meanwhile, are left out. */
static long read_accounts(kasa_dir *dir, char *const *names, size_t n, kasa_account **out,
                          size_t *n_out)
{
    kasa_account *accts = NULL;
    size_t count = 0;
    long ret = 0;

    accts = calloc(n + 1, sizeof(*accts));
    if (accts == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        krb5_principal princ = NULL;
        if (is_spn_name(names[i]) || strchr(names[i], '\\') != NULL)
            continue;
        ret = principal(dir, names[i], &princ);
        if (ret)
            goto cleanup;
        ret = read_account(dir, names[i], princ, &accts[count]);
        krb5_free_principal(M(dir)->kctx, princ);
        if (ret == KASA_ERR_NOT_MANAGED || ret == KASA_ERR_ACCOUNT_NOT_FOUND) {
            free(accts[count].name);
            free(accts[count].principal);
            free(accts[count].description);
            memset(&accts[count], 0, sizeof(accts[count]));
            ret = 0;
            continue;
        }
        if (ret)
            goto cleanup;
        count++;
    }
    *out = accts;
    *n_out = count;
    accts = NULL;

cleanup:
    if (accts != NULL)
        kasa_account_list_free(accts, n + 1);
    return ret;
}

/* Every account kasa made, from a read of every principal of the realm. */
static long account_scan(kasa_dir *dir, kasa_account **out, size_t *n_out)
{
    char **names = NULL;
    int n = 0;
    long ret;

    ret = list_names(dir, NULL, &names, &n);
    if (!ret)
        ret = read_accounts(dir, names, (size_t)n, out, n_out);
    kadm5_free_name_list(M(dir)->handle, names, n);
    return ret;
}

static long mit_record_create(kasa_dir *dir, const char *type, const char *name);

/*
 * Make the account index exist and be complete: create it, enter every account a read of
 * the realm finds, then say it is complete. It is made before that read, so that an
 * account another kasa creates meanwhile enters itself (mit_account_create enters an
 * account before making it). When kasa may not create or change the index (the narrow
 * ACL of doc/DEPLOY.md), it stays incomplete and account list reads the realm.
 */
static long account_index_ensure(kasa_dir *dir, bool *complete_out)
{
    kasa_account *accts = NULL;
    struct index ix;
    bool found;
    size_t n = 0;
    long ret, kret = 0;

    *complete_out = false;
    ret = index_read(dir, ACCOUNT_INDEX, ATTR_ACCOUNT, &ix);
    if (ret)
        return ret;
    found = ix.found;
    *complete_out = ix.complete;
    index_free(&ix);
    if (*complete_out)
        return 0;
    if (!found) {
        ret = mit_record_create(dir, ACCOUNT_INDEX_TYPE, ACCOUNT_INDEX_NAME);
        if (ret && ret != KASA_ERR_ARRAY_EXISTS)
            return 0; /* no index: every account list reads the realm */
    }
    ret = account_scan(dir, &accts, &n);
    if (ret)
        return ret;
    for (size_t i = 0; i < n && !kret; i++)
        kret = index_entry(dir, ACCOUNT_INDEX, ATTR_ACCOUNT, accts[i].name, true);
    if (!kret)
        kret = write_string(dir, ACCOUNT_INDEX, ATTR_INDEX, COMPLETE);
    *complete_out = kret == 0;
    kasa_account_list_free(accts, n);
    return 0;
}

/* From the account index when it is complete (two round trips per account it lists), else
 * from a read of the whole realm (one per principal). */
static long mit_account_list(kasa_dir *dir, kasa_account **out, size_t *n_out)
{
    struct index ix;
    long ret;

    ret = index_read(dir, ACCOUNT_INDEX, ATTR_ACCOUNT, &ix);
    if (ret)
        return ret;
    if (ix.complete)
        ret = read_accounts(dir, ix.names, ix.n, out, n_out);
    else
        ret = account_scan(dir, out, n_out);
    index_free(&ix);
    return ret;
}

/* Delete the principal name@REALM. */
static long delete_object(kasa_dir *dir, const char *name)
{
    krb5_principal princ = NULL;
    long ret;

    ret = principal(dir, name, &princ);
    if (ret)
        return ret;
    ret = kadm5_delete_principal(M(dir)->handle, princ);
    if (ret)
        ret = fail(dir, ret, "cannot delete", name);
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

/* The owner kasa wrote on the SPN principal name, NULL when none; *found false when there
 * is no such principal (any more). One round trip. */
static long owner_of(kasa_dir *dir, const char *name, char **owner_out, bool *found)
{
    krb5_string_attr *strs = NULL;
    const char *v;
    int n = 0;
    long ret;

    *owner_out = NULL;
    ret = read_strings(dir, name, &strs, &n, found);
    if (ret || !*found)
        return ret;
    v = string_value(strs, n, ATTR_OWNER);
    if (v != NULL && (*owner_out = strdup(v)) == NULL)
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    kadm5_free_strings(M(dir)->handle, strs, n);
    return ret;
}

/* Whether the principal name is there and names account its owner. */
static bool owned(kasa_dir *dir, const char *name, const char *account)
{
    char *owner = NULL;
    bool found = false, yes;

    yes = owner_of(dir, name, &owner, &found) == 0 && found && owner != NULL &&
          strcmp(owner, account) == 0;
    free(owner);
    return yes;
}

static long mit_account_delete(kasa_dir *dir, const kasa_account *acct)
{
    krb5_string_attr *strs = NULL;
    bool found = false;
    int n = 0;
    long ret;

    ret = delete_object(dir, acct->name);
    if (ret)
        return ret;
    (void)index_entry(dir, ACCOUNT_INDEX, ATTR_ACCOUNT, acct->name, false);
    /* A create of the same name running meanwhile may have made it again after entering
     * it: then it stays entered. */
    if (read_strings(dir, acct->name, &strs, &n, &found) == 0 && found) {
        if (string_value(strs, n, ATTR_KIND) != NULL)
            (void)index_entry(dir, ACCOUNT_INDEX, ATTR_ACCOUNT, acct->name, true);
        kadm5_free_strings(M(dir)->handle, strs, n);
    }
    return 0;
}

/*
 * A glob that matches spn ignoring case ("[hH][tT][tT][pP]/..."), so that kadmind sends
 * only the names that may claim it, not the whole realm's. False when spn holds a
 * character that kadmind's glob or regular expression would take as special (a checked
 * SPN holds none). out has room for 4 * strlen(spn) + 1 bytes.
 */
static bool spn_glob(const char *spn, char *out)
{
    for (const char *s = spn; *s != '\0'; s++) {
        char c = *s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            *out++ = '[';
            *out++ = (char)(c | 0x20);
            *out++ = (char)(c & ~0x20);
            *out++ = ']';
        } else if ((c >= '0' && c <= '9') || strchr("-_./:", c) != NULL) {
            *out++ = c;
        } else {
            return false;
        }
    }
    *out = '\0';
    return true;
}

static long mit_spn_claims(kasa_dir *dir, const char *spn, bool with_owners, kasa_spn_claim **out,
                           size_t *n_out)
{
    kasa_spn_claim *claims = NULL;
    char **names = NULL, *glob = NULL;
    int n = 0;
    size_t count = 0;
    long ret;

    *out = NULL;
    *n_out = 0;
    if (spn != NULL) {
        glob = malloc(strlen(spn) * 4 + 1);
        if (glob == NULL)
            return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        if (!spn_glob(spn, glob)) {
            free(glob);
            glob = NULL;
        }
    }
    ret = list_names(dir, glob, &names, &n);
    free(glob);
    if (ret)
        return ret;
    claims = calloc((size_t)n + 1, sizeof(*claims));
    if (claims == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        kasa_spn_claim *c = &claims[count];
        bool found = true;
        if (!is_spn_name(names[i]) || strncmp(names[i], RECORD_PREFIX, 5) == 0 ||
            (spn != NULL && strcasecmp(names[i], spn) != 0))
            continue;
        c->spn = strdup(names[i]);
        if (c->spn == NULL || asprintf(&c->holder, "%s@%s", names[i], dir->realm) < 0) {
            c->holder = NULL;
            count++;
            ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
            goto cleanup;
        }
        count++;
        if (with_owners)
            ret = owner_of(dir, names[i], &c->owner, &found);
        if (ret)
            goto cleanup;
        if (!found) { /* deleted while we listed */
            free(c->spn);
            free(c->holder);
            memset(c, 0, sizeof(*c));
            count--;
        }
    }
    *out = claims;
    *n_out = count;
    claims = NULL;
    count = 0;

cleanup:
    kasa_spn_claims_free(claims, count);
    kadm5_free_name_list(M(dir)->handle, names, n);
    return ret;
}

/* The owners of claims that spn_claims listed without: one round trip each. A claim whose
 * principal is gone meanwhile is dropped. */
static long mit_spn_owners(kasa_dir *dir, kasa_spn_claim *claims, size_t *n)
{
    size_t kept = 0;
    long ret = 0;

    for (size_t i = 0; i < *n && !ret; i++) {
        bool found = false;
        free(claims[i].owner);
        claims[i].owner = NULL;
        ret = owner_of(dir, claims[i].spn, &claims[i].owner, &found);
        if (!ret && !found) {
            free(claims[i].spn);
            free(claims[i].holder);
            memset(&claims[i], 0, sizeof(claims[i]));
        }
    }
    if (ret)
        return ret;
    for (size_t i = 0; i < *n; i++) {
        if (claims[i].spn != NULL)
            claims[kept++] = claims[i];
    }
    *n = kept;
    return 0;
}

/* name's keys at kvno, as kadmind holds them (needs the 'e' right). */
static long mit_keys_get(kasa_dir *dir, const char *name, unsigned kvno, kasa_keyset **out)
{
    krb5_principal princ = NULL;
    kadm5_key_data *kd = NULL;
    kasa_keyset *ks = NULL;
    int n = 0;
    long ret;

    *out = NULL;
    ret = principal(dir, name, &princ);
    if (ret)
        return ret;
    ret = kadm5_get_principal_keys(M(dir)->handle, princ, kvno, &kd, &n);
    if (ret) {
        ret = fail(dir, ret, "cannot read the keys of", name);
        goto cleanup;
    }
    ks = calloc(1, sizeof(*ks));
    if (ks == NULL || (ks->keys = calloc((size_t)n + 1, sizeof(*ks->keys))) == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    ks->kvno = kvno;
    for (int i = 0; i < n; i++) {
        ret = krb5_copy_keyblock_contents(M(dir)->kctx, &kd[i].key, &ks->keys[ks->n]);
        if (ret) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
            goto cleanup;
        }
        ks->n++;
    }
    if (ks->n == 0) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_DIR, "%s has no keys at kvno %u", name, kvno);
        goto cleanup;
    }
    *out = ks;
    ks = NULL;

cleanup:
    if (kd != NULL)
        kadm5_free_kadm5_key_data(M(dir)->kctx, n, kd); /* zaps the keys */
    kasa_keyset_free(ks);
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

/* The account's keys at its current kvno. */
static long current_keys(kasa_dir *dir, const kasa_account *acct, kasa_keyset **out)
{
    return mit_keys_get(dir, acct->name, acct->kvno, out);
}

/* Every SPN principal of the realm that names acct its owner, read one by one: kadm5
 * cannot search by attribute, so this is one round trip per SPN principal. */
static long spn_scan(kasa_dir *dir, const kasa_account *acct, char ***out, size_t *n_out)
{
    kasa_spn_claim *claims = NULL;
    size_t n = 0, count = 0;
    char **spns = NULL;
    long ret;

    *out = NULL;
    *n_out = 0;
    ret = mit_spn_claims(dir, NULL, true, &claims, &n);
    if (ret)
        return ret;
    spns = calloc(n + 1, sizeof(*spns));
    if (spns == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        if (claims[i].owner != NULL && strcmp(claims[i].owner, acct->name) == 0) {
            spns[count++] = claims[i].spn;
            claims[i].spn = NULL;
        }
    }
    *out = spns;
    *n_out = count;

cleanup:
    kasa_spn_claims_free(claims, n);
    return ret;
}

/*
 * Make acct's SPN index complete when it is not (an account made before kasa kept one):
 * enter every SPN a scan of the realm finds, then say it is complete. A failure leaves it
 * incomplete, to be scanned next time; *complete_out says how it ends.
 */
static long spn_index_ensure(kasa_dir *dir, const kasa_account *acct, bool *complete_out)
{
    struct index ix;
    bool found;
    char **spns = NULL;
    size_t n = 0;
    long ret, kret = 0;

    *complete_out = false;
    ret = index_read(dir, acct->name, ATTR_SPN, &ix);
    if (ret)
        return ret;
    *complete_out = ix.complete;
    found = ix.found;
    index_free(&ix);
    if (*complete_out || !found)
        return 0;
    ret = spn_scan(dir, acct, &spns, &n);
    if (ret)
        return ret;
    for (size_t i = 0; i < n && !kret; i++)
        kret = index_entry(dir, acct->name, ATTR_SPN, spns[i], true);
    if (!kret)
        kret = write_string(dir, acct->name, ATTR_INDEX, COMPLETE);
    *complete_out = kret == 0;
    kasa_spn_list_free(spns, n);
    return 0;
}

/*
 * The SPN goes into its account's index before it is made (a crash between leaves an
 * entry for nothing, which readers skip), and again once made, in case a delete of the
 * same SPN took the entry out meanwhile (mit_spn_delete checks on its side).
 */
static long mit_spn_add(kasa_dir *dir, const char *spn, const kasa_account *acct)
{
    krb5_principal princ = NULL;
    kasa_keyset *keys = NULL;
    bool indexed = false;
    long ret;

    ret = current_keys(dir, acct, &keys);
    if (!ret)
        ret = spn_index_ensure(dir, acct, &indexed);
    if (!ret)
        ret = index_add(dir, acct->name, ATTR_SPN, spn, indexed);
    if (!ret)
        ret = principal(dir, spn, &princ);
    if (!ret) {
        const char *attrs[] = {ATTR_OWNER, acct->name, NULL};
        ret = create_object(dir, princ, spn, attrs, keys->keys, keys->n, keys->kvno, 0);
        if (ret == KASA_ERR_ACCOUNT_EXISTS)
            ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_EXISTS,
                                 "SPN %s was created by someone else meanwhile; run kasa spn "
                                 "query %s",
                                 spn, spn);
    }
    if (!ret)
        (void)index_entry(dir, acct->name, ATTR_SPN, spn, true);
    kasa_keyset_free(keys);
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

static long mit_spn_delete(kasa_dir *dir, const char *spn, const kasa_account *acct)
{
    long ret;

    ret = delete_object(dir, spn);
    if (ret)
        return ret;
    (void)index_entry(dir, acct->name, ATTR_SPN, spn, false);
    /* An add of the same SPN running meanwhile may have made it again after entering it:
     * then it stays entered. */
    if (owned(dir, spn, acct->name))
        (void)index_entry(dir, acct->name, ATTR_SPN, spn, true);
    return 0;
}

/* From the account's SPN index when it is complete, each entry checked against its SPN
 * principal (one round trip each: an SPN deleted or given to another owner behind
 * kasa's back drops out), else from a scan of the realm. */
static long mit_spn_list(kasa_dir *dir, const kasa_account *acct, char ***out, size_t *n_out)
{
    struct index ix;
    char **spns = NULL;
    size_t count = 0;
    long ret;

    *out = NULL;
    *n_out = 0;
    ret = index_read(dir, acct->name, ATTR_SPN, &ix);
    if (ret)
        return ret;
    if (!ix.complete) {
        index_free(&ix);
        return spn_scan(dir, acct, out, n_out);
    }
    spns = calloc(ix.n + 1, sizeof(*spns));
    if (spns == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    for (size_t i = 0; i < ix.n; i++) {
        char *owner = NULL;
        bool found = false;
        ret = owner_of(dir, ix.names[i], &owner, &found);
        if (ret)
            goto cleanup;
        if (found && owner != NULL && strcmp(owner, acct->name) == 0) {
            spns[count++] = ix.names[i];
            ix.names[i] = NULL;
        }
        free(owner);
    }
    *out = spns;
    *n_out = count;
    spns = NULL;
    count = 0;

cleanup:
    kasa_spn_list_free(spns, count);
    index_free(&ix);
    return ret;
}

/* The SPNs first, the account last: the account's kvno says the whole set moved. */
static long mit_key_set(kasa_dir *dir, const kasa_account *acct, const kasa_keyset *keys)
{
    krb5_principal princ = NULL;
    char **spns = NULL;
    bool indexed = false;
    size_t n = 0;
    long ret;

    ret = spn_index_ensure(dir, acct, &indexed);
    if (!ret)
        ret = mit_spn_list(dir, acct, &spns, &n);
    for (size_t i = 0; i <= n && !ret; i++) {
        const char *name = i < n ? spns[i] : acct->name;
        if (i == n)
            kasa_test_point("spns-committed");
        ret = principal(dir, name, &princ);
        if (!ret)
            ret = set_keys(dir, princ, name, keys->keys, keys->n, keys->kvno);
        krb5_free_principal(M(dir)->kctx, princ);
        princ = NULL;
    }
    kasa_spn_list_free(spns, n);
    return ret;
}

/* Make KEYS_POLICY exist with its minimum life, once per connection. */
static long keys_policy(kasa_dir *dir)
{
    kadm5_policy_ent_rec pol;
    long ret;

    if (M(dir)->have_policy)
        return 0;
    memset(&pol, 0, sizeof(pol));
    ret = kadm5_get_policy(M(dir)->handle, KEYS_POLICY, &pol);
    if (ret == KADM5_UNK_POLICY) {
        pol.policy = KEYS_POLICY;
        pol.pw_min_life = KEYS_MIN_LIFE;
        ret = kadm5_create_policy(M(dir)->handle, &pol, KADM5_POLICY | KADM5_PW_MIN_LIFE);
        if (ret == KADM5_DUP) /* another admin host made it meanwhile */
            ret = 0;
    } else if (!ret) {
        bool right = pol.pw_min_life == KEYS_MIN_LIFE;
        kadm5_free_policy_ent(M(dir)->handle, &pol);
        if (!right) {
            memset(&pol, 0, sizeof(pol));
            pol.policy = KEYS_POLICY;
            pol.pw_min_life = KEYS_MIN_LIFE;
            ret = kadm5_modify_policy(M(dir)->handle, &pol, KADM5_PW_MIN_LIFE);
        }
    }
    if (ret)
        return fail(dir, ret, "cannot make the password policy", KEYS_POLICY);
    M(dir)->have_policy = true;
    return 0;
}

/*
 * MIT has no "cannot change its own keys" flag; these three do it, and each is
 * checked by the KDC or kadmind, not by a client:
 * - requires_hwauth on the account: an initial ticket needs hardware preauthentication,
 *   which the realm does not have, so the KDC refuses every AS request from it ("Generic
 *   preauthentication failure"): no TGT, no kadmin, no kpasswd. It would also refuse
 *   service tickets for it, so the SPNs cannot have it;
 * - an expired password on an SPN: the KDC refuses its AS requests ("Password has
 *   expired") except for kadmin/changepw, and still issues service tickets for it;
 * - the policy KEYS_POLICY on both: kadmind refuses a principal's change of its own keys
 *   (kpasswd, or kadmin's cpw through kadmin/changepw) for 68 years after the last one;
 *   kasa's setkey as an administrator is not bound by it.
 * setkey clears the expiration, so this runs after every key change.
 */
static long mit_protect_keys(kasa_dir *dir, const char *name, bool ticket_target)
{
    kadm5_principal_ent_rec ent;
    krb5_principal princ = NULL;
    krb5_flags want;
    long mask = 0, ret;

    memset(&ent, 0, sizeof(ent));
    ret = keys_policy(dir);
    if (!ret)
        ret = principal(dir, name, &princ);
    if (ret)
        return ret;
    ret = kadm5_get_principal(M(dir)->handle, princ, &ent,
                              KADM5_PRINCIPAL | KADM5_ATTRIBUTES | KADM5_POLICY |
                                  KADM5_PW_EXPIRATION);
    if (ret) {
        ret = fail(dir, ret, "cannot look up", name);
        goto cleanup;
    }
    want = ticket_target ? 0 : KRB5_KDB_REQUIRES_HW_AUTH;
    if ((ent.attributes & want) != want) {
        ent.attributes |= want;
        mask |= KADM5_ATTRIBUTES;
    }
    if (ticket_target && ent.pw_expiration != KEYS_EXPIRED) {
        ent.pw_expiration = KEYS_EXPIRED;
        mask |= KADM5_PW_EXPIRATION;
    }
    if (ent.policy == NULL || strcmp(ent.policy, KEYS_POLICY) != 0) {
        free(ent.policy); /* kadm5 allocates it with malloc */
        ent.policy = strdup(KEYS_POLICY);
        if (ent.policy == NULL) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
            goto cleanup;
        }
        mask |= KADM5_POLICY;
    }
    if (mask != 0) {
        ret = kadm5_modify_principal(M(dir)->handle, &ent, mask);
        if (ret)
            ret = fail(dir, ret, "cannot protect the keys of", name);
    }

cleanup:
    kadm5_free_principal_ent(M(dir)->handle, &ent);
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

static long mit_meta_get(kasa_dir *dir, const char *object, const char *key, char **value_out)
{
    krb5_principal princ = NULL;
    long ret;

    ret = principal(dir, object, &princ);
    if (!ret)
        ret = get_attr(dir, princ, object, key, value_out);
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

static long mit_meta_set(kasa_dir *dir, const char *object, const char *key, const char *value)
{
    krb5_principal princ = NULL;
    long ret;

    ret = principal(dir, object, &princ);
    if (!ret) {
        ret = kadm5_set_string(M(dir)->handle, princ, key, value);
        if (ret)
            ret = fail(dir, ret, "cannot set an attribute of", object);
    }
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

/* A record is the principal kasa-TYPE/NAME@REALM: no keys, no tickets, only strings. */
static void record_principal_name(const char *type, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, RECORD_PREFIX "%s/%s", type, name);
}

static long mit_record_create(kasa_dir *dir, const char *type, const char *name)
{
    kadm5_principal_ent_rec ent;
    krb5_principal princ = NULL;
    char pname[1100];
    long ret;

    record_principal_name(type, name, pname, sizeof(pname));
    ret = principal(dir, pname, &princ);
    if (ret)
        return ret;
    memset(&ent, 0, sizeof(ent));
    ent.principal = princ;
    ent.attributes = KRB5_KDB_DISALLOW_ALL_TIX;
    ret = kadm5_create_principal_3(
        M(dir)->handle, &ent, KADM5_PRINCIPAL | KADM5_ATTRIBUTES | KADM5_KEY_DATA, 0, NULL, NULL);
    if (ret == KADM5_DUP)
        ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_EXISTS, "%s %s already exists", type, name);
    else if (ret)
        ret = fail(dir, ret, "cannot create", pname);
    if (!ret) {
        ret = kadm5_set_string(M(dir)->handle, princ, ATTR_KIND, type);
        if (ret) {
            ret = fail(dir, ret, "cannot set the attributes of", pname);
            (void)kadm5_delete_principal(M(dir)->handle, princ);
        }
    }
    krb5_free_principal(M(dir)->kctx, princ);
    return ret;
}

static long mit_record_get(kasa_dir *dir, const char *type, const char *name, kasa_attr **attrs,
                           size_t *n_out)
{
    krb5_principal princ = NULL;
    krb5_string_attr *strs = NULL;
    kasa_attr *out = NULL;
    char pname[1100];
    int n = 0;
    long ret;

    *attrs = NULL;
    *n_out = 0;
    record_principal_name(type, name, pname, sizeof(pname));
    ret = principal(dir, pname, &princ);
    if (ret)
        return ret;
    ret = kadm5_get_strings(M(dir)->handle, princ, &strs, &n);
    krb5_free_principal(M(dir)->kctx, princ);
    if (ret == KADM5_UNK_PRINC)
        return kasa_set_error(dir->ctx, KASA_ERR_ARRAY_NOT_FOUND, "no %s %s in %s", type, name,
                              dir->realm);
    if (ret)
        return fail(dir, ret, "cannot read", pname);
    out = calloc((size_t)n + 1, sizeof(*out));
    for (int i = 0; out != NULL && i < n; i++) {
        out[i].key = strdup(strs[i].key);
        out[i].value = strdup(strs[i].value);
        if (out[i].key == NULL || out[i].value == NULL)
            ret = KASA_ERR_NOMEM;
    }
    kadm5_free_strings(M(dir)->handle, strs, n);
    if (out == NULL || ret) {
        kasa_attrs_free(out, (size_t)n);
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    *attrs = out;
    *n_out = (size_t)n;
    return 0;
}

static long mit_record_set(kasa_dir *dir, const char *type, const char *name, const char *key,
                           const char *value)
{
    char pname[1100];

    record_principal_name(type, name, pname, sizeof(pname));
    return mit_meta_set(dir, pname, key, value);
}

static long mit_record_list(kasa_dir *dir, const char *type, char ***names_out, size_t *n_out)
{
    char **names = NULL, **out = NULL, prefix[128], glob[130];
    size_t plen, count = 0;
    int n = 0;
    long ret;

    *names_out = NULL;
    *n_out = 0;
    snprintf(prefix, sizeof(prefix), RECORD_PREFIX "%s/", type);
    plen = strlen(prefix);
    snprintf(glob, sizeof(glob), "%s*", prefix); /* kadmind sends only these names */
    ret = list_names(dir, strpbrk(prefix, "*?[]\\") == NULL ? glob : NULL, &names, &n);
    if (ret)
        return ret;
    out = calloc((size_t)n + 1, sizeof(*out));
    for (int i = 0; out != NULL && i < n; i++) {
        if (strncmp(names[i], prefix, plen) == 0 && (out[count] = strdup(names[i] + plen)) != NULL)
            count++;
    }
    kadm5_free_name_list(M(dir)->handle, names, n);
    if (out == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    *names_out = out;
    *n_out = count;
    return 0;
}

static long mit_record_delete(kasa_dir *dir, const char *type, const char *name)
{
    char pname[1100];

    record_principal_name(type, name, pname, sizeof(pname));
    return delete_object(dir, pname);
}

static long mit_record_rename(kasa_dir *dir, const char *type, const char *from, const char *to)
{
    krb5_principal src = NULL, dst = NULL;
    char sname[1100], dname[1100];
    long ret;

    record_principal_name(type, from, sname, sizeof(sname));
    record_principal_name(type, to, dname, sizeof(dname));
    ret = principal(dir, sname, &src);
    if (!ret)
        ret = principal(dir, dname, &dst);
    if (!ret) {
        ret = kadm5_rename_principal(M(dir)->handle, src, dst);
        if (ret == KADM5_DUP)
            ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_EXISTS, "%s %s already exists", type, to);
        else if (ret == KADM5_UNK_PRINC)
            ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_NOT_FOUND, "no %s %s in %s", type, from,
                                 dir->realm);
        else if (ret)
            ret = fail(dir, ret, "cannot rename", sname);
    }
    krb5_free_principal(M(dir)->kctx, src);
    krb5_free_principal(M(dir)->kctx, dst);
    return ret;
}

/* The longest ticket the KDC issues for name: its max_life (the KDC also caps it by the
 * realm's, which kadmind does not tell; the principal's is an upper bound). A renewal
 * re-encrypts the ticket in the service's current key, so renewable life does not keep an
 * old key in use. */
static long mit_ticket_life(kasa_dir *dir, const char *name, int64_t *life)
{
    kadm5_principal_ent_rec ent;
    krb5_principal princ = NULL;
    long ret;

    *life = 0;
    ret = principal(dir, name, &princ);
    if (ret)
        return ret;
    memset(&ent, 0, sizeof(ent));
    ret = kadm5_get_principal(M(dir)->handle, princ, &ent, KADM5_PRINCIPAL | KADM5_MAX_LIFE);
    krb5_free_principal(M(dir)->kctx, princ);
    if (ret)
        return fail(dir, ret, "cannot look up", name);
    *life = ent.max_life;
    kadm5_free_principal_ent(M(dir)->handle, &ent);
    return 0;
}

const struct kasa_dir_ops kasa_dir_mit_ops = {
    .name = "mit",
    .exact_names = true,
    .open = mit_open,
    .close = mit_close,
    .account_create = mit_account_create,
    .account_get = mit_account_get,
    .account_list = mit_account_list,
    .account_delete = mit_account_delete,
    .spn_claims = mit_spn_claims,
    .spn_owners = mit_spn_owners,
    .spn_add = mit_spn_add,
    .spn_delete = mit_spn_delete,
    .spn_list = mit_spn_list,
    .key_set = mit_key_set,
    .protect_keys = mit_protect_keys,
    .record_create = mit_record_create,
    .record_get = mit_record_get,
    .record_set = mit_record_set,
    .record_list = mit_record_list,
    .record_delete = mit_record_delete,
    .record_rename = mit_record_rename,
    .keys_get = mit_keys_get,
    .meta_get = mit_meta_get,
    .meta_set = mit_meta_set,
    .ticket_life = mit_ticket_life,
};
