/*
 * Keys: one key per enctype for one key version (kvno) of a principal. Keys come from
 * the system's CSPRNG through krb5_c_make_random_key(), or are derived as Active Directory
 * derives them from a random password; they live only in memory, and are wiped when
 * freed, as are the passwords.
 */
#ifndef KASA_KEYS_H
#define KASA_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <krb5/krb5.h>

#include "kasa/account.h"
#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kasa_keyset {
    unsigned kvno;
    size_t n;
    krb5_keyblock *keys; /* n keys, one per enctype */
} kasa_keyset;

/* Make fresh random keys for kvno, one per enctype. */
KASA_API long kasa_keyset_generate(kasa_ctx *ctx, unsigned kvno, const int32_t *enctypes, size_t n,
                                   kasa_keyset **out);

/* Wipe and free; NULL is fine. */
KASA_API void kasa_keyset_free(kasa_keyset *ks);

/* The keys Active Directory computes for the account's password at kvno, one per enctype:
 * krb5_c_string_to_key() with AD's salt (kasa_ad_salt). name is the sAMAccountName as
 * the directory stores it (a user's salt keeps its case). */
KASA_API long kasa_keyset_from_password(kasa_ctx *ctx, const char *password, const char *realm,
                                        const char *name, kasa_account_kind kind, unsigned kvno,
                                        const int32_t *enctypes, size_t n, kasa_keyset **out);

/* AD's salt (MS-KILE 3.1.1.2), malloc'd. A computer NAME$ of realm R:
 * upper(R) "host" lower(NAME) "." lower(R); a user: upper(R) and the name as stored. */
KASA_API long kasa_ad_salt(kasa_ctx *ctx, const char *realm, const char *name,
                           kasa_account_kind kind, char **out);

#define KASA_PASSWORD_LEN 64 /* characters of a random account password */

/* A random password of full strength from the CSPRNG: KASA_PASSWORD_LEN characters with
 * upper and lower case, digits and punctuation. Free it with kasa_password_free. */
KASA_API long kasa_password_generate(kasa_ctx *ctx, char **out);

/* Wipe and free; NULL is fine. */
KASA_API void kasa_password_free(char *pw);

#ifdef __cplusplus
}
#endif

#endif
