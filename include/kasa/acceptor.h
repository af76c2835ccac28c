/*
 * The accept path's keys, held in memory (issue 14): the member's array keytab read once
 * into a MEMORY keytab, with one GSS-API acceptor credential per principal acquired from
 * it, and read again only when kasad replaces the file (inotify, and a cheap check every
 * few seconds in case a change was missed). A reload builds a whole new set of keys and
 * credentials and swaps it in at once: a request holds the set it started with until it
 * is done, so it never sees half a keytab; a file that cannot be read whole (truncated,
 * garbage, no keys) leaves the last good set in place, and says why.
 *
 * A credential names one principal, so MIT looks its key up by the ticket's kvno and
 * enctype (krb5_kt_get_entry) instead of trying every key the keytab keeps: the cost of
 * an accept does not grow with the number of kvnos a member keeps through a roll.
 * Kerberos itself stays MIT's (gss_accept_sec_context); nothing here decrypts.
 *
 * The credentials check no replay themselves ("none" replay cache): the caller checks
 * every authenticator they accept against the array's replay cache (kasa/replay.h).
 */
#ifndef KASA_ACCEPTOR_H
#define KASA_ACCEPTOR_H

#include <stdbool.h>
#include <stddef.h>

#include <gssapi/gssapi.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kasa_acceptor kasa_acceptor;
typedef struct kasa_accept_keys kasa_accept_keys;

/* Where the acceptor says what it did (a reload, a file it kept away from): a syslog
 * level (KASA_LOG_*) and one sentence with no key material. */
typedef void (*kasa_acceptor_log_fn)(void *data, int level, const char *msg);

#define KASA_ACCEPTOR_WATCH 0x1 /* a thread that reloads on change (else: kasa_acceptor_check) */

/* Open the acceptor for the keytab at path and load it if it exists (a keytab kasad has
 * not written yet is not an error: there are no keys until it appears). copies: how many
 * credentials per principal (1 to 256), one for each thread that accepts at the same
 * time: MIT holds a credential's lock through each accept. */
KASA_API long kasa_acceptor_open(kasa_ctx *ctx, const char *path, unsigned flags, unsigned copies,
                                 kasa_acceptor_log_fn log, void *log_data, kasa_acceptor **out);
KASA_API void kasa_acceptor_close(kasa_acceptor *a);

/* Read the keytab again if it changed (or always, with force): 0 when the keys in use are
 * the file's, KASA_ERR_KEYTAB with the reason when the file was refused and the last good
 * keys stay. Done by the watch thread; for tests and SIGHUP. */
KASA_API long kasa_acceptor_check(kasa_ctx *ctx, kasa_acceptor *a, bool force);

/* The keys in use, held until kasa_acceptor_release: a reload meanwhile does not touch
 * them. Never NULL. */
KASA_API kasa_accept_keys *kasa_acceptor_hold(kasa_acceptor *a);
KASA_API void kasa_acceptor_release(kasa_acceptor *a, kasa_accept_keys *k);

/* The acceptor credential for tickets to principal ("service/host@REALM", as the ticket
 * names it; the same name in another case, as Active Directory's KDC issues them, is the
 * same principal), or GSS_C_NO_CREDENTIAL when the keys hold no such principal: the
 * calling thread's copy. Valid while k is held. */
KASA_API gss_cred_id_t kasa_accept_keys_cred(const kasa_accept_keys *k, const char *principal);

/* The same, and the principal's name as the keys hold it (what MIT's context names as the
 * target once the ticket decrypts), valid while k is held; NULL with no credential. */
KASA_API gss_cred_id_t kasa_accept_keys_find(const kasa_accept_keys *k, const char *principal,
                                             const char **name_out);

/* What the held keys are: how many keytab entries and principals, the highest kvno, and
 * the generation (1 for the first keys loaded, one more at each reload). */
typedef struct kasa_accept_info {
    size_t entries, principals;
    unsigned max_kvno;
    unsigned long generation;
    unsigned long reloads, refused; /* since open: reloads done, files kept away from */
} kasa_accept_info;

KASA_API void kasa_acceptor_info(kasa_acceptor *a, kasa_accept_info *out);

#ifdef __cplusplus
}
#endif

#endif
