/*
 * kasa-httpd's own listener for --proxy-from: connections from the balancer's addresses
 * start with a PROXY protocol header naming the real client, which libmicrohttpd (its
 * per-address limit, the auth log's client field) then sees instead of the balancer.
 */
#ifndef KASA_HTTPD_PROXY_H
#define KASA_HTTPD_PROXY_H

#include <sys/socket.h>

#include <microhttpd.h>

#include "kasa/kasa.h"

/* Where proxy.c's messages go: the daemon's log line writer. */
typedef void (*proxy_say_fn)(const char *fmt, ...) KASA_PRINTF(1, 2);

/*
 * Listen on addr (its port included) and hand each connection to d, which must have
 * been started with MHD_USE_NO_LISTEN_SOCKET: those from an address in from (a comma
 * separated list of IPv4 or IPv6 addresses, each optionally /prefix) after their PROXY
 * header, as coming from the client it names; the others as they are. Returns 0, or 2
 * when from is not such a list (proxy_check() says why first), 1 when it cannot listen;
 * it then says why through fatal.
 */
int proxy_start(struct MHD_Daemon *d, const struct sockaddr *addr, const char *from,
                proxy_say_fn say, proxy_say_fn fatal);

/* 0 when from is a list proxy_start() takes, else 2, saying why on stderr: for the
 * command line's check, before anything starts. */
int proxy_check(const char *from);

/* Stop listening and close the connections still waiting for their header; before
 * MHD_stop_daemon(). */
void proxy_stop(void);

#endif
