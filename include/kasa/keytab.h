/*
 * The keytab a member holds for its array: an ordinary MIT keytab file that any GSSAPI
 * service on the member reads, with one entry per principal (the ASA and each SPN) x
 * enctype x kept kvno, plus a small state file beside it that records when each kvno
 * arrived and when the directory committed it. Both are replaced atomically (write a
 * temporary file, fsync, rename), so a reader never sees half of either.
 */
#ifndef KASA_KEYTAB_H
#define KASA_KEYTAB_H

#include <stddef.h>
#include <stdint.h>

#include "kasa/kasa.h"
#include "kasa/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a member holds: one set per kvno, oldest first, keys included. */
typedef struct kasa_held {
    size_t n;
    kasa_kvno_set *sets;
} kasa_held;

KASA_API void kasa_held_clear(kasa_held *held);

/* Read the keytab at path and its state file (path + ".state"); a missing keytab is an
 * empty one. */
KASA_API long kasa_held_load(kasa_ctx *ctx, const char *path, kasa_held *held);

/* Replace the keytab and its state file with held, atomically: mode 0600, or 0640 owned
 * by group gid when gid >= 0 (for a service that runs as another user, like Apache). */
KASA_API long kasa_held_store(kasa_ctx *ctx, const char *path, const kasa_held *held, int gid);

/* Add set (deep-copied) at its kvno; a set already there is replaced unless it was
 * committed, which is refused with KASA_ERR_KVNO. */
KASA_API long kasa_held_stage(kasa_ctx *ctx, kasa_held *held, const kasa_kvno_set *set,
                              int64_t now);

/*
 * Record that committed_kvno became the directory's kvno at committed_at, then drop
 * every kvno K below it whose successor K+1 was committed more than keep seconds ago
 * (no ticket for K can still be valid). Dropped kvnos go to dropped[] (room for
 * KASA_PROTO_MAX_SETS), their count to *n_dropped.
 */
KASA_API long kasa_held_retire(kasa_ctx *ctx, kasa_held *held, unsigned committed_kvno,
                               int64_t committed_at, int64_t keep, int64_t now, unsigned *dropped,
                               size_t *n_dropped);

/* Prove, from the keytab on disk, that every principal of set holds set's keys: one
 * checksum over nonce per enctype. Without keys in set (PROVE), for every enctype the
 * keytab holds for set's first principal at set's kvno. */
KASA_API long kasa_keytab_prove(kasa_ctx *ctx, const char *path, const kasa_kvno_set *set,
                                const unsigned char *nonce, kasa_proof *proofs, size_t *n_proofs);

/* Check a member's proofs against the keys it was sent. */
KASA_API long kasa_proof_verify(kasa_ctx *ctx, const kasa_keyset *keys, const unsigned char *nonce,
                                const kasa_proof *proofs, size_t n_proofs);

/* Deep copy of a kvno set (keys included). */
KASA_API long kasa_kvno_set_copy(kasa_ctx *ctx, const kasa_kvno_set *from, kasa_kvno_set *to);

#ifdef __cplusplus
}
#endif

#endif
