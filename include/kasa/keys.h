/*
 * Keys: one key per enctype for one key version (kvno) of a principal. Keys come from
 * the system's CSPRNG through krb5_c_make_random_key(), live only in memory, and are
 * wiped when freed.
 */
#ifndef KASA_KEYS_H
#define KASA_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <krb5/krb5.h>

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

#ifdef __cplusplus
}
#endif

#endif
