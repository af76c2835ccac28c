/*
 * Arrays: a load-balanced name (outlook.proseware.lab), its optional short name
 * (outlook), the alternate service account that owns its SPNs, and its members. Kept in
 * the directory, so every admin host sees the same arrays, together with the state of
 * the last key roll (what kvno was staged, which members lag behind).
 */
#ifndef KASA_ARRAY_H
#define KASA_ARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kasa/config.h"
#include "kasa/directory.h"
#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KASA_ARRAY_MAX_MEMBERS 256
#define KASA_SHORT_NAME_MAX 15

typedef struct kasa_member {
    char *host;    /* its name and identity: host/HOST@REALM */
    int port;      /* kasad's port */
    char *address; /* where to connect, when not the name itself; NULL otherwise */
    int http_port; /* its Negotiate HTTP endpoint (kasa verify), 0 when none */
    bool stale;    /* left behind by a forced roll */
} kasa_member;

typedef struct kasa_array {
    char *fqdn;
    char *short_name; /* NULL when none */
    char *asa;
    size_t n_members;
    kasa_member *members;
    /* The roll in progress, if any: kvno staged but not yet committed. */
    unsigned roll_kvno; /* 0: none */
    int64_t roll_started;
    /* The last commit: the directory's kvno and when it moved there. */
    unsigned committed_kvno;
    int64_t committed_at;
} kasa_array;

KASA_API void kasa_array_free(kasa_array *a);
KASA_API void kasa_array_list_free(kasa_array *a, size_t n);

/* Check an array's FQDN, short name, or a member's host name. */
KASA_API long kasa_hostname_check(kasa_ctx *ctx, const char *what, const char *name);
KASA_API long kasa_short_name_check(kasa_ctx *ctx, const char *name);

/* Parse "HOST[:PORT]" (the port defaults to KASA_PORT_DEFAULT). */
KASA_API long kasa_member_parse(kasa_ctx *ctx, const char *text, kasa_member *out);

KASA_API long kasa_array_create(kasa_dir *dir, const char *fqdn, const char *asa,
                                const char *short_name);
KASA_API long kasa_array_get(kasa_dir *dir, const char *fqdn, kasa_array **out);
KASA_API long kasa_array_list(kasa_dir *dir, kasa_array **out, size_t *n_out);

/* The array as this host last read it from the directory ([array] cache_dir), for when
 * the directory cannot be asked. */
KASA_API long kasa_array_cached(kasa_ctx *ctx, const kasa_config *cfg, const char *fqdn,
                                kasa_array **out);
KASA_API long kasa_array_delete(kasa_dir *dir, const char *fqdn);
/* address may be NULL; http_port 0 when the member has no HTTP endpoint kasa should try.
 * Adding a host already there updates it. */
KASA_API long kasa_array_add_member(kasa_dir *dir, const char *fqdn, const char *host, int port,
                                    int http_port, const char *address);
KASA_API long kasa_array_remove_member(kasa_dir *dir, const char *fqdn, const char *host);

/* Write the array's roll state, stale flags and last commit back to the directory. */
KASA_API long kasa_array_save_state(kasa_dir *dir, const kasa_array *a);

/* The member named host, or NULL. */
KASA_API kasa_member *kasa_array_member(const kasa_array *a, const char *host);

#ifdef __cplusplus
}
#endif

#endif
