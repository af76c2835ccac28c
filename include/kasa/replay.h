/*
 * The array's replay cache: an authenticator (kasa_token_info.auth_digest) accepted once
 * by any member is refused by every member for the time a replay of it could still be
 * accepted, twice the clock skew Kerberos allows. RFC 4120, 3.2.3: servers that share a
 * key must share a replay cache; every member of an array shares the ASA's keys.
 *
 * "local": in this process's memory (bounded; the member's own, as MIT's file cache).
 * "redis://[:PASSWORD@]HOST[:PORT]": one atomic SET NX PX per authenticator in Redis or
 * Valkey, shared by every member that names it.
 */
#ifndef KASA_REPLAY_H
#define KASA_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kasa_replay kasa_replay;

#define KASA_REPLAY_LOCAL_MAX 65536 /* entries the local cache holds at most */

/* spec: NULL or "local", or a redis:// URL. ttl_s: how long an authenticator is
 * remembered. KASA_ERR_CONFIG for a spec that cannot be understood (nothing connects
 * yet: a Redis that is down is found at the first check). */
KASA_API long kasa_replay_open(kasa_ctx *ctx, const char *spec, unsigned ttl_s, kasa_replay **out);
KASA_API void kasa_replay_close(kasa_replay *r);

/* Remember digest: 0 when it is new; KASA_ERR_REPLAY when it was seen within the time;
 * KASA_ERR_REPLAY_STORE when the shared store cannot be asked (the caller applies its
 * policy, and may fall back to kasa_replay_check_local). Thread-safe. */
KASA_API long kasa_replay_check(kasa_ctx *ctx, kasa_replay *r, const unsigned char digest[32]);

/* The same against this process's own memory, whatever the spec. */
KASA_API long kasa_replay_check_local(kasa_ctx *ctx, kasa_replay *r,
                                      const unsigned char digest[32]);

/* Whether r shares its cache with other members (a Redis spec). */
KASA_API bool kasa_replay_shared(const kasa_replay *r);

/* For tests: the local cache at a given time (seconds), instead of the clock. */
KASA_API long kasa_replay_check_local_at(kasa_ctx *ctx, kasa_replay *r,
                                         const unsigned char digest[32], long long now);

#ifdef __cplusplus
}
#endif

#endif
