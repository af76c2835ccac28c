/*
 * kasad, the member agent: shared between its two processes. The network process
 * (net.c) accepts connections, authenticates every peer with Kerberos and checks it
 * against the ACL; only then does it pass the request to the keeper (keeper.c), the one
 * process that touches the array keytab.
 */
#ifndef KASAD_H
#define KASAD_H

#include <signal.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>

#include "kasa/kasa.h"

#define KASAD_MAX_AUTHORIZED 32 /* authorized peers (controllers) served at once */

struct kasad_opts {
    const char *listen; /* address to bind; default 0.0.0.0 */
    int port;
    const char *keytab;         /* kasad's own host keytab (acceptor) */
    const char *principal;      /* kasad's own principal; NULL: any in the keytab */
    const char *managed_keytab; /* the array keytab kasad keeps */
    int keytab_gid;             /* group that may read it (0640); -1: nobody else (0600) */
    const char *acl;            /* principals allowed to stage, copy, read status */
    const char *pidfile;
    const char *log;
    bool foreground;
    int timeout_ms;     /* per read of an authorized peer; a silent one is dropped after it */
    int handshake_ms;   /* for the whole handshake; bytes do not extend it */
    int max_pending;    /* connections not yet authorized, from everyone */
    int max_per_source; /* ... and from one address */
    long clock_offset;  /* seconds added to the clock kasad reports (tests) */
    const char *metrics_listen; /* /metrics, when metrics_port is not 0 */
    int metrics_port;
    const char *user; /* --user: become this user once the sockets are open; NULL: stay */
};

/* Log one line: time, "kasad", the message. Never pass key material. */
void kasad_log(const char *fmt, ...) KASA_PRINTF(1, 2);
/* The same at a level (KASA_LOG_ERR, _WARNING, _INFO), which the journal keeps. */
void kasad_log_at(int level, const char *fmt, ...) KASA_PRINTF(2, 3);

/* SIGHUP (logrotate): the handler sets kasad_reopen in whichever process got it; each
 * process's loop then calls kasad_log_reopen(), and the network process tells the keeper
 * (kasad_keeper_pid) too. */
extern volatile sig_atomic_t kasad_reopen;
extern pid_t kasad_keeper_pid;
void kasad_on_hup(int sig);
void kasad_log_reopen(void);

/* The keeper's loop on fd (a SOCK_SEQPACKET socket to the network process) and, when
 * not -1, metrics_fd (the metrics' own, which may ask for status alone); returns when the
 * network process goes away. */
int keeper_run(const struct kasad_opts *opts, int fd, int metrics_fd);

/* The network process's loop; returns the exit status. */
int net_run(const struct kasad_opts *opts, int keeper_fd, int listen_fd);

#endif
