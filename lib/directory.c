/*
 * The directory's rules, the same for every backend: what an SPN and an account name
 * may be, that an SPN has one owner in the whole directory (case-insensitively, as in
 * Active Directory: a client may ask for HTTP/x or http/x and mean one service), that
 * an account owning SPNs is not deleted by accident, that only kasa changes the keys of
 * an account and its SPNs. The backend only does mechanics.
 */
#include "directory.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kasa/spn.h"
#include "private.h"

void kasa_spn_claims_free(kasa_spn_claim *claims, size_t n)
{
    if (claims == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(claims[i].spn);
        free(claims[i].holder);
        free(claims[i].owner);
    }
    free(claims);
}

void kasa_attrs_free(kasa_attr *attrs, size_t n)
{
    if (attrs == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(attrs[i].key);
        free(attrs[i].value);
    }
    free(attrs);
}

void kasa_spn_list_free(char **spns, size_t n)
{
    if (spns == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(spns[i]);
    free(spns);
}

long kasa_dir_open(kasa_ctx *ctx, const kasa_config *cfg, kasa_dir **dir_out)
{
    kasa_dir *dir;
    long ret;

    *dir_out = NULL;
    dir = calloc(1, sizeof(*dir));
    if (dir == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    dir->ctx = ctx;
    dir->cfg = cfg;
    dir->ops = strcmp(cfg->backend, "ad") == 0 ? &kasa_dir_ad_ops : &kasa_dir_mit_ops;
    ret = dir->ops->open(dir);
    if (ret) {
        dir->ops->close(dir); /* frees what open made before it failed */
        free(dir->realm);
        free(dir);
        return ret;
    }
    *dir_out = dir;
    return 0;
}

void kasa_dir_close(kasa_dir *dir)
{
    if (dir == NULL)
        return;
    dir->ops->close(dir);
    free(dir->realm);
    free(dir);
}

const char *kasa_dir_realm(kasa_dir *dir)
{
    return dir->realm;
}

/* Look an account up by a name that may be either kind. */
static long get_account(kasa_dir *dir, const char *name, kasa_account **out)
{
    long ret = kasa_account_check(dir->ctx, name, 0);

    return ret ? ret : dir->ops->account_get(dir, name, out);
}

/*
 * The array's keys are changed by kasa alone: the ASA and every SPN get no initial ticket
 * of their own and cannot change their own keys, so a copy of a member's keytab cannot
 * re-key the array (k5srvutil change) nor act as the ASA (kinit). SPNs stay ticket
 * targets; nothing asks for a ticket to the account itself.
 */
static long protect_keys(kasa_dir *dir, const char *name, bool ticket_target)
{
    return dir->ops->protect_keys != NULL ? dir->ops->protect_keys(dir, name, ticket_target) : 0;
}

/* Delete an object just made whose keys could not be protected, keeping that failure's
 * code and sentence: nothing is left half-made. */
static long unmake(kasa_dir *dir, long ret, const char *account, const char *spn)
{
    char *why = strdup(kasa_error(dir->ctx));
    kasa_account *acct = NULL;

    if (dir->ops->account_get(dir, account, &acct) == 0) {
        if (spn != NULL)
            (void)dir->ops->spn_delete(dir, spn, acct);
        else
            (void)dir->ops->account_delete(dir, acct);
    }
    kasa_account_free(acct);
    ret = kasa_set_error(dir->ctx, ret, "%s", why != NULL ? why : "out of memory");
    free(why);
    return ret;
}

long kasa_account_create(kasa_dir *dir, const char *name, kasa_account_kind kind,
                         const char *description, const char *dns_host_name)
{
    kasa_keyset *keys = NULL;
    long ret;

    ret = kasa_account_check(dir->ctx, name, kind);
    if (ret)
        return ret;
    if (description == NULL)
        description = "";
    ret = kasa_description_check(dir->ctx, description);
    if (!ret && dns_host_name != NULL)
        ret = kasa_dns_host_name_check(dir->ctx, dns_host_name, kind);
    if (ret)
        return ret;
    ret = kasa_keyset_generate(dir->ctx, 1, dir->cfg->enctypes, dir->cfg->n_enctypes, &keys);
    if (ret)
        return ret;
    ret = dir->ops->account_create(dir, name, kind, description, dns_host_name, keys);
    kasa_keyset_free(keys);
    if (ret)
        return ret;
    ret = protect_keys(dir, name, false);
    if (ret)
        ret = unmake(dir, ret, name, NULL);
    return ret;
}

long kasa_account_get(kasa_dir *dir, const char *name, kasa_account **out)
{
    *out = NULL;
    return get_account(dir, name, out);
}

static int account_cmp(const void *a, const void *b)
{
    return strcasecmp(((const kasa_account *)a)->name, ((const kasa_account *)b)->name);
}

long kasa_account_list(kasa_dir *dir, kasa_account **out, size_t *n_out)
{
    long ret;

    *out = NULL;
    *n_out = 0;
    ret = dir->ops->account_list(dir, out, n_out);
    if (!ret && *n_out > 1)
        qsort(*out, *n_out, sizeof(**out), account_cmp);
    return ret;
}

long kasa_account_delete(kasa_dir *dir, const char *name, bool force)
{
    kasa_account *acct = NULL;
    char **spns = NULL;
    size_t n = 0;
    long ret;

    ret = get_account(dir, name, &acct);
    if (ret)
        goto cleanup;
    ret = dir->ops->spn_list(dir, acct, &spns, &n);
    if (ret)
        goto cleanup;
    if (n > 0 && !force) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_ACCOUNT_HAS_SPNS,
                             "%s owns %zu SPN%s (%s%s); delete them first with kasa spn delete, "
                             "or use --force to delete them with the account",
                             acct->name, n, n == 1 ? "" : "s", spns[0], n > 1 ? ", ..." : "");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        ret = dir->ops->spn_delete(dir, spns[i], acct);
        if (ret)
            goto cleanup;
    }
    ret = dir->ops->account_delete(dir, acct);

cleanup:
    kasa_spn_list_free(spns, n);
    kasa_account_free(acct);
    return ret;
}

/* What spn add and delete decide on: the account, and every claim of the SPN in any case,
 * the exact one singled out. */
struct spn_change {
    kasa_account *acct;
    kasa_spn_claim *claims;
    size_t n;
    const kasa_spn_claim *exact;
};

static long find_claims(kasa_dir *dir, const char *spn, struct spn_change *c)
{
    long ret;

    c->exact = NULL;
    ret = dir->ops->spn_claims(dir, spn, true, &c->claims, &c->n);
    for (size_t i = 0; !ret && i < c->n; i++) {
        if (strcmp(c->claims[i].spn, spn) == 0)
            c->exact = &c->claims[i];
    }
    return ret;
}

static long spn_change_begin(kasa_dir *dir, const char *spn, const char *account,
                             struct spn_change *c)
{
    long ret;

    memset(c, 0, sizeof(*c));
    ret = kasa_spn_check(dir->ctx, spn);
    if (!ret)
        ret = get_account(dir, account, &c->acct);
    if (!ret)
        ret = find_claims(dir, spn, c);
    return ret;
}

static void spn_change_end(struct spn_change *c)
{
    kasa_spn_claims_free(c->claims, c->n);
    kasa_account_free(c->acct);
}

static bool owned_by(const kasa_spn_claim *c, const kasa_account *acct)
{
    return c->owner != NULL && strcmp(c->owner, acct->name) == 0;
}

long kasa_spn_add(kasa_dir *dir, const char *spn, const char *account)
{
    struct spn_change c;
    const kasa_account *acct;
    const kasa_spn_claim *exact;
    long ret;

    ret = spn_change_begin(dir, spn, account, &c);
    if (ret)
        goto cleanup;
    acct = c.acct;
    exact = c.exact;

    if (exact != NULL) {
        if (owned_by(exact, acct)) {
            kasa_warn(dir->ctx, "%s already belongs to %s; nothing to do", spn, acct->name);
        } else if (exact->owner != NULL) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_EXISTS,
                                 "SPN %s already belongs to %s; delete it there first (kasa spn "
                                 "delete %s %s)",
                                 spn, exact->owner, spn, exact->owner);
        } else {
            ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_EXISTS,
                                 "SPN %s already exists as %s, which kasa does not manage; "
                                 "remove that principal first if nothing uses it",
                                 spn, exact->holder);
        }
        goto cleanup;
    }
    for (size_t i = 0; i < c.n; i++) {
        const kasa_spn_claim *v = &c.claims[i];
        if (owned_by(v, acct) && !dir->ops->exact_names) {
            kasa_warn(dir->ctx,
                      "%s differs only by case from %s, which %s already owns; the directory "
                      "counts them as one SPN, so nothing to do",
                      spn, v->spn, acct->name);
            goto cleanup;
        }
        if (owned_by(v, acct)) {
            kasa_warn(dir->ctx,
                      "%s differs only by case from %s, which %s already owns; Active Directory "
                      "counts them as one SPN, MIT Kerberos as two names (both are kept)",
                      spn, v->spn, acct->name);
            continue;
        }
        ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_EXISTS,
                             "SPN %s differs only by case from %s, which belongs to %s; SPNs are "
                             "unique ignoring case, so delete it there first",
                             spn, v->spn, v->owner != NULL ? v->owner : v->holder);
        goto cleanup;
    }
    ret = dir->ops->spn_add(dir, spn, acct);
    if (!ret) {
        ret = protect_keys(dir, spn, true);
        if (ret)
            ret = unmake(dir, ret, acct->name, spn);
    }
    if (!ret && dir->ops->exact_names && strncasecmp(spn, "http/", 5) == 0 &&
        strncmp(spn, "HTTP/", 5) != 0)
        kasa_warn(dir->ctx,
                  "browsers and curl ask for HTTP/%s (upper case); MIT Kerberos matches names "
                  "exactly, so add HTTP/%s too if they must use Kerberos",
                  spn + 5, spn + 5);

cleanup:
    spn_change_end(&c);
    return ret;
}

long kasa_spn_delete(kasa_dir *dir, const char *spn, const char *account)
{
    struct spn_change c;
    const kasa_spn_claim *exact;
    long ret;

    ret = spn_change_begin(dir, spn, account, &c);
    if (ret)
        goto cleanup;
    exact = c.exact;
    if (exact == NULL) {
        if (c.n > 0)
            ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_NOT_FOUND,
                                 "SPN %s is not in the directory, but %s is (names differ by "
                                 "case); give it exactly as kasa spn list shows it",
                                 spn, c.claims[0].spn);
        else
            ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_NOT_FOUND, "SPN %s is not in the directory",
                                 spn);
    } else if (exact->owner == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOT_MANAGED,
                             "SPN %s exists as %s, which kasa does not manage; kasa will not "
                             "delete it",
                             spn, exact->holder);
    } else if (!owned_by(exact, c.acct)) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_NOT_OWNED, "SPN %s belongs to %s, not to %s",
                             spn, exact->owner, c.acct->name);
    } else {
        ret = dir->ops->spn_delete(dir, spn, c.acct);
    }

cleanup:
    spn_change_end(&c);
    return ret;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

long kasa_spn_list(kasa_dir *dir, const char *account, char ***spns_out, size_t *n_out)
{
    kasa_account *acct = NULL;
    long ret;

    *spns_out = NULL;
    *n_out = 0;
    ret = get_account(dir, account, &acct);
    if (!ret)
        ret = dir->ops->spn_list(dir, acct, spns_out, n_out);
    if (!ret && *n_out > 1)
        qsort(*spns_out, *n_out, sizeof(**spns_out), str_cmp);
    kasa_account_free(acct);
    return ret;
}

long kasa_spn_query(kasa_dir *dir, const char *spn, kasa_spn_claim **claim_out,
                    kasa_spn_claim **variants_out, size_t *n_variants_out)
{
    struct spn_change c;
    long ret;

    memset(&c, 0, sizeof(c));
    *claim_out = NULL;
    if (variants_out != NULL) {
        *variants_out = NULL;
        *n_variants_out = 0;
    }
    ret = kasa_spn_check(dir->ctx, spn);
    if (!ret)
        ret = find_claims(dir, spn, &c);
    if (ret)
        goto cleanup;
    /* AD matches SPNs ignoring case: any spelling it holds is this SPN, and its owner gets
     * the tickets (on MIT only the exact name does). */
    if (c.exact == NULL && !dir->ops->exact_names && c.n > 0)
        c.exact = &c.claims[0];
    if (c.exact != NULL) {
        /* Move the exact claim out; the rest are the variants. */
        kasa_spn_claim *one = calloc(1, sizeof(*one));
        size_t at = (size_t)(c.exact - c.claims);
        if (one == NULL) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
            goto cleanup;
        }
        *one = c.claims[at];
        c.claims[at] = c.claims[--c.n];
        *claim_out = one;
    } else {
        ret = kasa_set_error(dir->ctx, KASA_ERR_SPN_NOT_FOUND, "no account owns SPN %s", spn);
    }
    if (variants_out != NULL) {
        *variants_out = c.claims;
        *n_variants_out = c.n;
        c.claims = NULL;
        c.n = 0;
    }

cleanup:
    spn_change_end(&c);
    return ret;
}

static int claim_cmp(const void *a, const void *b)
{
    const kasa_spn_claim *x = a, *y = b;
    int c = strcasecmp(x->spn, y->spn);

    return c != 0 ? c : strcmp(x->spn, y->spn);
}

/* The claims all[0..n) of one SPN, with their owners, as *grp_out (n_grp_out of them):
 * moved out of all and completed by the backend when it can, else looked up again. */
static long group_owners(kasa_dir *dir, kasa_spn_claim *all, size_t n, kasa_spn_claim **grp_out,
                         size_t *n_grp_out)
{
    kasa_spn_claim *grp;
    long ret;

    *grp_out = NULL;
    *n_grp_out = 0;
    if (dir->ops->spn_owners == NULL)
        return dir->ops->spn_claims(dir, all[0].spn, true, grp_out, n_grp_out);
    grp = calloc(n, sizeof(*grp));
    if (grp == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    memcpy(grp, all, n * sizeof(*grp));
    memset(all, 0, n * sizeof(*all));
    ret = dir->ops->spn_owners(dir, grp, &n);
    *grp_out = grp;
    *n_grp_out = n;
    return ret;
}

long kasa_spn_duplicates(kasa_dir *dir, kasa_spn_claim **claims_out, size_t *n_out)
{
    kasa_spn_claim *all = NULL, *dups = NULL, *grp = NULL;
    size_t n_all = 0, n_dups = 0, n_grp = 0, cap = 0;
    long ret;

    *claims_out = NULL;
    *n_out = 0;
    /* Names only first (one round trip for the whole directory); owners only for the few
     * that collide. The names are the directory's own, so a principal made behind kasa's
     * back is among them. */
    ret = dir->ops->spn_claims(dir, NULL, false, &all, &n_all);
    if (ret)
        return ret;
    if (n_all > 1)
        qsort(all, n_all, sizeof(*all), claim_cmp);
    for (size_t i = 0; i < n_all;) {
        size_t j = i + 1;
        while (j < n_all && strcasecmp(all[i].spn, all[j].spn) == 0)
            j++;
        if (j - i > 1) {
            ret = group_owners(dir, all + i, j - i, &grp, &n_grp);
            if (ret)
                goto cleanup;
            /* One account's own case pair (HTTP/ next to http/, which spn add allows on MIT
             * with a warning, since MIT's KDC matches names exactly): one owner, no rival. */
            bool one_owner = n_grp > 1 && grp[0].owner != NULL;
            for (size_t k = 1; one_owner && k < n_grp; k++)
                one_owner = grp[k].owner != NULL && strcmp(grp[k].owner, grp[0].owner) == 0;
            if (one_owner || n_grp < 2) {
                kasa_spn_claims_free(grp, n_grp);
                grp = NULL;
                n_grp = 0;
                i = j;
                continue;
            }
            if (n_dups + n_grp > cap) {
                size_t ncap = (n_dups + n_grp) * 2;
                kasa_spn_claim *p = realloc(dups, ncap * sizeof(*dups));
                if (p == NULL) {
                    ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
                    goto cleanup;
                }
                dups = p;
                cap = ncap;
            }
            if (n_grp > 1)
                qsort(grp, n_grp, sizeof(*grp), claim_cmp);
            memcpy(dups + n_dups, grp, n_grp * sizeof(*grp));
            n_dups += n_grp;
            free(grp);
            grp = NULL;
            n_grp = 0;
        }
        i = j;
    }
    *claims_out = dups;
    *n_out = n_dups;
    dups = NULL;
    n_dups = 0;

cleanup:
    kasa_spn_claims_free(grp, n_grp);
    kasa_spn_claims_free(dups, n_dups);
    kasa_spn_claims_free(all, n_all);
    return ret;
}

long kasa_key_kvno(kasa_dir *dir, const char *account, unsigned *kvno_out)
{
    kasa_account *acct = NULL;
    long ret;

    *kvno_out = 0;
    ret = get_account(dir, account, &acct);
    if (!ret)
        *kvno_out = acct->kvno;
    kasa_account_free(acct);
    return ret;
}

long kasa_key_new(kasa_dir *dir, const char *account, unsigned kvno, kasa_keyset **keys_out,
                  char **password_out)
{
    kasa_account *acct = NULL;
    char *pw = NULL;
    long ret;

    *keys_out = NULL;
    *password_out = NULL;
    if (!dir->ops->keys_from_password)
        return kasa_keyset_generate(dir->ctx, kvno, dir->cfg->enctypes, dir->cfg->n_enctypes,
                                    keys_out);
    /* The salt takes the name as the directory stores it, not as the admin typed it. */
    ret = get_account(dir, account, &acct);
    if (!ret)
        ret = kasa_password_generate(dir->ctx, &pw);
    if (!ret)
        ret = kasa_keyset_from_password(dir->ctx, pw, dir->realm, acct->name, acct->kind, kvno,
                                        dir->cfg->enctypes, dir->cfg->n_enctypes, keys_out);
    if (!ret) {
        *password_out = pw;
        pw = NULL;
    }
    kasa_password_free(pw);
    kasa_account_free(acct);
    return ret;
}

/* AD: set the password the keys came from, and check that AD holds them at their kvno. */
static long set_by_password(kasa_dir *dir, const kasa_account *acct, const kasa_keyset *keys,
                            const char *password)
{
    unsigned now = 0;
    long ret;

    if (password == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_DIR,
                              "%s derives keys from passwords: the keys of %s can only be set "
                              "with the password they came from (kasa roll does that)",
                              dir->ops->name, acct->name);
    ret = dir->ops->password_set(dir, acct, password, &now);
    if (!ret && now != keys->kvno)
        ret = kasa_set_error(dir->ctx, KASA_ERR_KVNO,
                             "the new password of %s is set, but the directory holds it at kvno "
                             "%u, not %u: the account was changed meanwhile (another admin, or "
                             "another domain controller answered)",
                             acct->name, now, keys->kvno);
    return ret;
}

long kasa_key_set(kasa_dir *dir, const char *account, const kasa_keyset *keys, const char *password)
{
    kasa_account *acct = NULL;
    char **spns = NULL;
    size_t n = 0;
    long ret;

    ret = get_account(dir, account, &acct);
    if (!ret && dir->ops->keys_from_password)
        ret = set_by_password(dir, acct, keys, password);
    else if (!ret)
        ret = dir->ops->key_set(dir, acct, keys);
    if (ret || dir->ops->protect_keys == NULL)
        goto cleanup;
    /* After the keys, which may undo part of the protection; this is also how an account
     * made before kasa protected keys gets protected. */
    ret = dir->ops->spn_list(dir, acct, &spns, &n);
    for (size_t i = 0; i <= n && !ret; i++)
        ret = protect_keys(dir, i < n ? spns[i] : acct->name, i < n);
    if (ret) {
        char *why = strdup(kasa_error(dir->ctx));
        ret = kasa_set_error(dir->ctx, ret,
                             "kvno %u is set for %s and its SPNs, but their keys are not "
                             "protected: %s",
                             keys->kvno, acct->name, why != NULL ? why : "out of memory");
        free(why);
    }

cleanup:
    kasa_spn_list_free(spns, n);
    kasa_account_free(acct);
    return ret;
}

long kasa_meta_get(kasa_dir *dir, const char *object, const char *key, char **value_out)
{
    *value_out = NULL;
    return dir->ops->meta_get(dir, object, key, value_out);
}

long kasa_meta_set(kasa_dir *dir, const char *object, const char *key, const char *value)
{
    return dir->ops->meta_set(dir, object, key, value);
}
