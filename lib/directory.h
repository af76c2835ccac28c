/*
 * The backend interface behind kasa/directory.h. A backend does the mechanics of one
 * directory; lib/directory.c holds every rule, so each backend stays small and the rules
 * are the same everywhere.
 */
#ifndef KASA_DIRECTORY_PRIV_H
#define KASA_DIRECTORY_PRIV_H

#include <stdint.h>

#include "kasa/directory.h"

/* One named string of a record. */
typedef struct kasa_attr {
    char *key;
    char *value;
} kasa_attr;

void kasa_attrs_free(kasa_attr *attrs, size_t n);

struct kasa_dir_ops {
    const char *name;
    bool exact_names; /* the KDC matches names case-sensitively (MIT), unlike AD */
    long (*open)(kasa_dir *dir);
    void (*close)(kasa_dir *dir);

    /* Fails with KASA_ERR_ACCOUNT_EXISTS when the name is taken, by anything. */
    long (*account_create)(kasa_dir *dir, const char *name, kasa_account_kind kind,
                           const char *description, const char *dns_host_name,
                           const kasa_keyset *keys);
    /* KASA_ERR_ACCOUNT_NOT_FOUND, or KASA_ERR_NOT_MANAGED for an object kasa did not make. */
    long (*account_get)(kasa_dir *dir, const char *name, kasa_account **out);
    long (*account_list)(kasa_dir *dir, kasa_account **out, size_t *n_out);
    long (*account_delete)(kasa_dir *dir, const kasa_account *acct);

    /* Claims of SPNs equal to spn ignoring case (every SPN when spn is NULL); owners are
     * looked up only when with_owners. */
    long (*spn_claims)(kasa_dir *dir, const char *spn, bool with_owners, kasa_spn_claim **out,
                       size_t *n_out);
    /* Fill in the owners of claims that spn_claims gave without, dropping those whose
     * holder is gone meanwhile (*n shrinks). Where each owner costs a round trip (MIT),
     * this reads only these claims, not every name again; NULL when spn_claims with
     * owners costs no more (AD). */
    long (*spn_owners)(kasa_dir *dir, kasa_spn_claim *claims, size_t *n);
    /* Give the account the SPN; nothing else checked. */
    long (*spn_add)(kasa_dir *dir, const char *spn, const kasa_account *acct);
    long (*spn_delete)(kasa_dir *dir, const char *spn, const kasa_account *acct);
    long (*spn_list)(kasa_dir *dir, const kasa_account *acct, char ***out, size_t *n_out);

    long (*key_set)(kasa_dir *dir, const kasa_account *acct, const kasa_keyset *keys);
    /* The keys of principal name (no realm) at kvno, as the directory holds them. NULL
     * when the directory never gives keys out (AD). */
    long (*keys_get)(kasa_dir *dir, const char *name, unsigned kvno, kasa_keyset **out);
    /* The directory takes passwords, not keys, and derives the keys itself with
     * kasa_ad_salt()'s salt (AD): key_set cannot work, password_set does instead. */
    bool keys_from_password;
    /* Set the account's password; *kvno_out is the kvno the directory holds after it. */
    long (*password_set)(kasa_dir *dir, const kasa_account *acct, const char *password,
                         unsigned *kvno_out);
    /* Make the object's keys kasa's alone: it can get no initial ticket (so no admin or
     * password-change service) and cannot change its own keys. A ticket target (an SPN)
     * must stay one. Writes nothing when the object is so already; also after key_set,
     * which may undo part of it. NULL when the directory needs nothing. */
    long (*protect_keys)(kasa_dir *dir, const char *name, bool ticket_target);

    /* Records: named bags of small strings that kasa keeps in the directory (arrays).
     * get fails with KASA_ERR_ARRAY_NOT_FOUND; create with KASA_ERR_ARRAY_EXISTS. */
    long (*record_create)(kasa_dir *dir, const char *type, const char *name);
    long (*record_get)(kasa_dir *dir, const char *type, const char *name, kasa_attr **attrs,
                       size_t *n);
    long (*record_set)(kasa_dir *dir, const char *type, const char *name, const char *key,
                       const char *value);
    long (*record_list)(kasa_dir *dir, const char *type, char ***names, size_t *n);
    /* Give record TYPE FROM the name TO, strings and all, in one step the directory
     * refuses (KASA_ERR_ARRAY_EXISTS) when TO exists; KASA_ERR_ARRAY_NOT_FOUND when FROM
     * does not. */
    long (*record_rename)(kasa_dir *dir, const char *type, const char *from, const char *to);
    long (*record_delete)(kasa_dir *dir, const char *type, const char *name);

    long (*meta_get)(kasa_dir *dir, const char *object, const char *key, char **value_out);
    long (*meta_set)(kasa_dir *dir, const char *object, const char *key, const char *value);
    /* The longest lifetime, in seconds, of a ticket for the principal name (no realm). */
    long (*ticket_life)(kasa_dir *dir, const char *name, int64_t *life);
};

struct kasa_dir {
    kasa_ctx *ctx;
    const kasa_config *cfg;
    const struct kasa_dir_ops *ops;
    char *realm;
    void *priv; /* the backend's state */
};

extern const struct kasa_dir_ops kasa_dir_mit_ops;
extern const struct kasa_dir_ops kasa_dir_ad_ops;

/* For the AD backend (lib/ldapesc.c): len bytes of in (which may hold NUL) escaped as a
 * search filter value (RFC 4515) or as a DN attribute value (RFC 4514). malloc'd, NULL
 * when out of memory. */
char *kasa_ldap_filter_escape(const char *in, size_t len);
char *kasa_ldap_dn_escape(const char *in, size_t len);

/* For the AD backend (lib/adsd.c): the self-relative security descriptor sd (len bytes,
 * from the directory, untrusted) with "Change Password" denied to SELF and Everyone at the
 * head of its DACL. 0 with *out malloc'd, or with *out NULL when sd denies it already;
 * -1 when sd is malformed or has no DACL (out of memory too). */
int kasa_ad_sd_deny_change_password(const uint8_t *sd, size_t len, uint8_t **out, size_t *out_len);

#endif
