/*
 * Accounts: the alternate service account (ASA) that owns an array's SPNs. A computer
 * account's name ends in '$' (CASARRAY-ASA$), a user account's does not. Names follow
 * Active Directory's sAMAccountName rules so that one name works on every backend.
 */
#ifndef KASA_ACCOUNT_H
#define KASA_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KASA_COMPUTER_NAME_MAX 16 /* NetBIOS name (15) and the '$' */
#define KASA_USER_NAME_MAX 20     /* sAMAccountName */
#define KASA_DESCRIPTION_MAX 1024

typedef enum kasa_account_kind {
    KASA_ACCOUNT_COMPUTER = 1,
    KASA_ACCOUNT_USER = 2,
} kasa_account_kind;

typedef struct kasa_account {
    char *name;      /* CASARRAY-ASA$ */
    char *principal; /* as the directory names it: CASARRAY-ASA$@PROSEWARE.LAB */
    kasa_account_kind kind;
    char *description;   /* never NULL; "" when none */
    unsigned kvno;       /* the directory's current key version */
    long long created;   /* seconds since the epoch, 0 when unknown */
    char *dns_host_name; /* AD's dNSHostName; NULL when none (always on MIT) */
    /* AD's msDS-SupportedEncryptionTypes (KASA_AD_ETYPE_* bits); -1 when the AD account
     * has none, and AD then issues its tickets with RC4; 0 on MIT, which has no such
     * attribute. */
    long supported_etypes;
} kasa_account;

#define KASA_AD_ETYPE_AES128 0x08
#define KASA_AD_ETYPE_AES256 0x10

/* "computer" or "user". */
KASA_API const char *kasa_account_kind_name(kasa_account_kind kind);

/* Free one account (fields and the struct); NULL is fine. */
KASA_API void kasa_account_free(kasa_account *acct);

/* Free an array of n accounts returned by kasa_account_list(). */
KASA_API void kasa_account_list_free(kasa_account *accts, size_t n);

/*
 * Validate an account name for the given kind. Returns 0, or KASA_ERR_ACCOUNT_INVALID
 * with the reason ("a computer account's name ends in '$' ...") in why.
 */
KASA_API long kasa_account_name_check(const char *name, kasa_account_kind kind, char *why,
                                      size_t why_len);

/* kasa_account_name_check() that sets the context's error; kind 0 takes the kind from
 * the name (a trailing '$' makes a computer account). */
KASA_API long kasa_account_check(kasa_ctx *ctx, const char *name, kasa_account_kind kind);

/* A description is one line of at most KASA_DESCRIPTION_MAX bytes. */
KASA_API long kasa_description_check(kasa_ctx *ctx, const char *description);

/* A computer account's DNS host name (AD's dNSHostName): a host name as an SPN's host
 * part is, with no port; a user account has none. */
KASA_API long kasa_dns_host_name_check(kasa_ctx *ctx, const char *name, kasa_account_kind kind);

#ifdef __cplusplus
}
#endif

#endif
