/*
 * Service principal names: service/host[:port][/name], the way Active Directory's setspn
 * writes them. Parsing is pure: no directory, no network.
 */
#ifndef KASA_SPN_H
#define KASA_SPN_H

#include <stdbool.h>
#include <stddef.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KASA_SPN_MAX 512      /* the whole SPN */
#define KASA_SPN_CLASS_MAX 64 /* the service class */
#define KASA_SPN_HOST_MAX 253 /* a DNS name */
#define KASA_SPN_LABEL_MAX 63 /* one DNS label */

typedef struct kasa_spn {
    char service[KASA_SPN_CLASS_MAX + 1];
    char host[KASA_SPN_HOST_MAX + 1];
    unsigned port;                    /* 0 when absent */
    char name[KASA_SPN_HOST_MAX + 1]; /* "" when absent */
} kasa_spn;

/*
 * Parse and validate text as an SPN. On success returns 0 and fills *out (may be NULL).
 * On failure returns KASA_ERR_SPN_INVALID and writes the reason, a phrase such as
 * "no host after the service class", into why (when why_len > 0).
 */
KASA_API long kasa_spn_parse(const char *text, kasa_spn *out, char *why, size_t why_len);

/* kasa_spn_parse() that sets the context's error: "http/ is not a valid SPN: no host
 * after the service class". */
KASA_API long kasa_spn_check(kasa_ctx *ctx, const char *spn);

/* Write spn back as text (always fits in KASA_SPN_MAX + 1 bytes). */
KASA_API void kasa_spn_format(const kasa_spn *spn, char *buf, size_t len);

/* Compare two SPNs the way Active Directory does: ASCII case-insensitively. */
KASA_API bool kasa_spn_equal_nocase(const char *a, const char *b);

#ifdef __cplusplus
}
#endif

#endif
