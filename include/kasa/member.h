/*
 * The controller's side of the member protocol: one authenticated, encrypted request to
 * kasad on an array member, and its reply. See kasa/proto.h for the wire format.
 */
#ifndef KASA_MEMBER_H
#define KASA_MEMBER_H

#include <gssapi/gssapi.h>

#include "kasa/config.h"
#include "kasa/kasa.h"
#include "kasa/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kasa_member_creds kasa_member_creds;

/* Where a member is: its host name (its identity, host/NAME@REALM) and where to
 * connect (address may be NULL: the name itself). */
typedef struct kasa_member_addr {
    const char *host;
    const char *address;
    int port;
    int timeout_ms;                 /* for connecting and for each read; 0: 10 s */
    const kasa_member_creds *creds; /* shared by many calls (kasa_member_creds_get), or NULL */
} kasa_member_addr;

/*
 * The controller's credentials for calls to many members at once: acquired once, and each
 * member's service ticket fetched beforehand, one after another. A hundred calls that each
 * asked the KDC at the same moment would open a hundred connections to it at once, and
 * MIT's krb5kdc listens with a backlog of 5: a connection dropped costs a second before
 * TCP tries again. A member whose ticket cannot be had is not an error here: its call
 * says why. Safe to share among threads; free it after the calls.
 */
KASA_API long kasa_member_creds_get(kasa_ctx *ctx, const kasa_config *cfg,
                                    const kasa_member_addr *addrs, size_t n,
                                    kasa_member_creds **out);
KASA_API void kasa_member_creds_free(kasa_member_creds *c);

/*
 * Send req to the member and wait for its reply: connect, authenticate both ways with
 * Kerberos as cfg's principal (from its keytab, or the default ccache), wrap, unwrap.
 * A reply the member marks as failed becomes KASA_ERR_MEMBER (KASA_ERR_MEMBER_DENIED when
 * the member's ACL refused us), with the member's sentence; *rep is filled either way.
 * Safe to call from several threads at once, each with its own ctx.
 */
KASA_API long kasa_member_call(kasa_ctx *ctx, const kasa_config *cfg, const kasa_member_addr *addr,
                               const kasa_request *req, kasa_reply *rep);

/* Set the error to code with a detail sentence ending in GSS-API's own words for
 * major/minor ("...: Wrong principal in request"). Returns code. */
KASA_API long kasa_set_gss_error(kasa_ctx *ctx, long code, OM_uint32 major, OM_uint32 minor,
                                 const char *fmt, ...) KASA_PRINTF(5, 6);

/* Read and write whole frames on a blocking socket, each within timeout_ms. */
KASA_API long kasa_frame_send(kasa_ctx *ctx, int fd, unsigned type, const void *body, size_t len,
                              int timeout_ms);
KASA_API long kasa_frame_recv(kasa_ctx *ctx, int fd, int timeout_ms, unsigned *type,
                              unsigned char **body, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
