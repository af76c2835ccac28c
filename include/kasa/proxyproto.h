/*
 * Reading the PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1 and 2)
 * that a balancer in TCP mode sends before the client's own bytes, to name the client
 * it connected for. Pure: no network, so a fuzzer and unit tests can feed it anything.
 *
 * Version 1 is one text line of at most 107 bytes ending in CRLF:
 *   PROXY TCP4 192.0.2.7 192.0.2.1 52314 443\r\n      (TCP6 likewise; UNKNOWN ...\r\n)
 * Version 2 is 16 binary bytes (a 12-byte signature, version and command, family and
 * transport, a length) and that many bytes of addresses and TLVs.
 *
 * A caller reads the header from a socket without taking any byte that follows it (the
 * TLS ClientHello, the HTTP request): it peeks, parses, and takes *used_out bytes. When
 * the parser answers KASA_ERR_AGAIN, every byte it was given belongs to the header, so
 * the caller may take them all and wait for more.
 */
#ifndef KASA_PROXYPROTO_H
#define KASA_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest version 1 line, CRLF included (the spec's own bound). */
#define KASA_PROXY_V1_MAX 107

/* The most bytes of addresses and TLVs after version 2's 16 fixed bytes: an AF_UNIX
 * block (216) and room for a balancer's TLVs (ALPN, authority, SSL details). */
#define KASA_PROXY_V2_MAX_LEN 1024

/* The longest header of either version: a buffer this long always suffices. */
#define KASA_PROXY_MAX (16 + KASA_PROXY_V2_MAX_LEN)

/*
 * Parse the PROXY header at the start of buf[0..len). On success returns 0, *used_out is
 * the header's length, and *src_out holds the client's address and port (AF_INET or
 * AF_INET6) with *src_len_out its length; *src_len_out is 0 when the header names no
 * client (v1 UNKNOWN, v2 LOCAL or an unspecified family: a balancer's own health check),
 * and the connection's own peer is then the client. KASA_ERR_AGAIN: buf is a proper
 * prefix of a header, more bytes are needed. KASA_ERR_PROTO: not a valid header, with
 * the reason.
 */
KASA_API long kasa_proxy_parse(kasa_ctx *ctx, const unsigned char *buf, size_t len,
                               size_t *used_out, struct sockaddr_storage *src_out,
                               socklen_t *src_len_out);

#ifdef __cplusplus
}
#endif

#endif
