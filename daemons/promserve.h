/*
 * The metrics endpoint of kasad and kasa-httpd: GET /metrics on its own libmicrohttpd
 * thread (16 connections, 10 s each, bodies over 64 KiB dropped), 404 for anything else.
 * Each daemon writes its own exposition; this is the serving both share. (Not in libkasa,
 * which does not link libmicrohttpd.)
 */
#ifndef KASA_PROMSERVE_H
#define KASA_PROMSERVE_H

#include <stddef.h>

#include <microhttpd.h>

/* The exposition text, malloc'd, its length in *len; NULL on failure (the scrape fails). */
typedef char *(*promserve_fn)(size_t *len);

/* Serve fn on listen (a numeric address) and port; the thread blocks SIGTERM, SIGINT,
 * SIGHUP and SIGPIPE, which stay the daemon's main thread's. NULL, having said why on
 * stderr as who, when it cannot listen. */
struct MHD_Daemon *promserve_start(const char *who, const char *listen, unsigned port,
                                   promserve_fn fn, MHD_LogCallback log);

void promserve_stop(struct MHD_Daemon *d);

#endif
