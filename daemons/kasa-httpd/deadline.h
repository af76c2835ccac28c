/*
 * kasa-httpd's deadline for a whole request head (header_timeout): a connection whose
 * request head is not complete within it, counted from the connection's start or from
 * the end of its previous response, is closed. libmicrohttpd 0.9.75 has no such option.
 */
#ifndef KASA_HTTPD_DEADLINE_H
#define KASA_HTTPD_DEADLINE_H

#include <microhttpd.h>

#include "kasa/kasa.h"

/* Where the watchdog's messages go: the daemon's log line writer. */
typedef void (*deadline_say_fn)(const char *fmt, ...) KASA_PRINTF(1, 2);

/* Heads are due within seconds (0: no deadline, and every call below does nothing);
 * starts the watchdog thread. Before MHD_start_daemon(). Returns 0, or an errno. */
int deadline_start(unsigned seconds, deadline_say_fn say);

/* Stop the watchdog, say what it closed since it last said, free the table; after
 * MHD_stop_daemon(). */
void deadline_stop(void);

/* From the connection notification: STARTED arms the first head's deadline, CLOSED
 * forgets the connection (libmicrohttpd calls it before closing the socket). */
void deadline_connection(struct MHD_Connection *c, enum MHD_ConnectionNotificationCode code);

/* The head of c's current request is complete: the access handler's first call for it. */
void deadline_head_done(struct MHD_Connection *c);

/* MHD_OPTION_NOTIFY_COMPLETED: the request ended, so the next head is due from now. */
void deadline_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                        enum MHD_RequestTerminationCode toe);

#endif
