/*
 * The directory: where accounts, SPNs and keys live. One interface over every backend
 * (MIT Kerberos through kadm5 today; Active Directory through LDAP and kpasswd next).
 *
 * The rules live here, not in the backends: SPNs are validated, an SPN has one owner in
 * the whole directory (compared case-insensitively, as Active Directory does), an
 * account that owns SPNs is not deleted by accident.
 */
#ifndef KASA_DIRECTORY_H
#define KASA_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "kasa/account.h"
#include "kasa/config.h"
#include "kasa/kasa.h"
#include "kasa/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kasa_dir kasa_dir;

/* One name in the directory that answers for an SPN. */
typedef struct kasa_spn_claim {
    char *spn;    /* as the directory spells it */
    char *holder; /* the directory object that carries it (MIT: the principal) */
    char *owner;  /* the kasa account that owns it; NULL when kasa does not manage it */
} kasa_spn_claim;

KASA_API void kasa_spn_claims_free(kasa_spn_claim *claims, size_t n);

/* Connect to the directory that cfg names. cfg must outlive the handle. */
KASA_API long kasa_dir_open(kasa_ctx *ctx, const kasa_config *cfg, kasa_dir **dir_out);
KASA_API void kasa_dir_close(kasa_dir *dir);

/* The realm (MIT) or domain (AD) the directory serves. */
KASA_API const char *kasa_dir_realm(kasa_dir *dir);

/* Accounts. */
/* dns_host_name (may be NULL) is AD's dNSHostName of a computer account; MIT has none
 * and refuses one. */
KASA_API long kasa_account_create(kasa_dir *dir, const char *name, kasa_account_kind kind,
                                  const char *description, const char *dns_host_name);
KASA_API long kasa_account_get(kasa_dir *dir, const char *name, kasa_account **out);
KASA_API long kasa_account_list(kasa_dir *dir, kasa_account **out, size_t *n_out);
/* Refused with KASA_ERR_ACCOUNT_HAS_SPNS while it owns SPNs, unless force (which deletes
 * them with it). */
KASA_API long kasa_account_delete(kasa_dir *dir, const char *name, bool force);

/* SPNs, the setspn verbs: -S, -D, -L, -Q, -X. */
KASA_API long kasa_spn_add(kasa_dir *dir, const char *spn, const char *account);
KASA_API long kasa_spn_delete(kasa_dir *dir, const char *spn, const char *account);
KASA_API long kasa_spn_list(kasa_dir *dir, const char *account, char ***spns_out, size_t *n_out);
KASA_API void kasa_spn_list_free(char **spns, size_t n);
/* The owner of spn (exact spelling); KASA_ERR_SPN_NOT_FOUND when none. Names that differ
 * only by case are reported through *variants_out (may be NULL). */
KASA_API long kasa_spn_query(kasa_dir *dir, const char *spn, kasa_spn_claim **claim_out,
                             kasa_spn_claim **variants_out, size_t *n_variants_out);
/* Every SPN claimed by two or more names, grouped: claims sorted so that one SPN's claims
 * are adjacent. */
KASA_API long kasa_spn_duplicates(kasa_dir *dir, kasa_spn_claim **claims_out, size_t *n_out);

/* Keys. The directory's current kvno of an account (and of its SPNs). */
KASA_API long kasa_key_kvno(kasa_dir *dir, const char *account, unsigned *kvno_out);
/* New keys for the account at kvno, as the directory will hold them once kasa_key_set()
 * commits them: random (MIT), or derived from a fresh random password with AD's salt (AD),
 * that password then in *password_out for the commit (NULL on MIT; wipe it with
 * kasa_password_free(), never log or store it). */
KASA_API long kasa_key_new(kasa_dir *dir, const char *account, unsigned kvno,
                           kasa_keyset **keys_out, char **password_out);
/* Make the directory hold keys (at keys->kvno) for the account and every SPN it owns.
 * Like account and SPN creation, it leaves them keys that only kasa can change: none of
 * them gets an initial ticket or changes its own keys; the SPNs stay ticket targets.
 * On AD, which takes passwords, password is the one kasa_key_new() derived keys from
 * (NULL on MIT); when AD then holds another kvno than keys->kvno (an admin reset the
 * account meanwhile, or another DC answered), KASA_ERR_KVNO, the password set: the keys
 * are the directory's at that kvno, which kasa_key_kvno() gives. */
KASA_API long kasa_key_set(kasa_dir *dir, const char *account, const kasa_keyset *keys,
                           const char *password);

/* Per-object metadata: small named strings on an account or SPN. */
KASA_API long kasa_meta_get(kasa_dir *dir, const char *object, const char *key, char **value_out);
KASA_API long kasa_meta_set(kasa_dir *dir, const char *object, const char *key, const char *value);

#ifdef __cplusplus
}
#endif

#endif
