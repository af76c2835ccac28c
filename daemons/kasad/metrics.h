/*
 * kasad's Prometheus metrics: counters the network loop bumps, and a libmicrohttpd daemon
 * of its own thread, in the network process, that serves them as GET /metrics.
 */
#ifndef KASAD_METRICS_H
#define KASAD_METRICS_H

/* How a request from a peer ended (a label value). */
enum metrics_result {
    MRES_OK,      /* the keeper did it */
    MRES_REFUSED, /* not on the ACL, malformed, replayed, or a conflict (a committed kvno) */
    MRES_FAILED,  /* the keeper could not do it */
    MRES_COUNT
};

/* Why a connection was refused or dropped, in a small fixed set (a label value). */
enum metrics_refusal {
    MREF_ACL,               /* authenticated, not on the ACL */
    MREF_AUTH,              /* the GSS-API handshake failed, or lacked a required flag */
    MREF_MALFORMED,         /* a bad frame, a frame out of turn, a message that did not unwrap */
    MREF_HANDSHAKE_TIMEOUT, /* no handshake within --handshake-timeout */
    MREF_BUDGET,            /* dropped for a newer one: the pending budget was full */
    MREF_BUSY,              /* too many controllers connected */
    MREF_REPLAY,            /* a replayed authenticator or message */
    MREF_DESCRIPTORS,       /* out of file descriptors */
    MREF_COUNT
};

/* Count one request (op as on the wire; unknown ops share one label). Lock-free. */
void metrics_request(unsigned op, enum metrics_result result);

/* Count one refused connection, and a replay as well when why is MREF_REPLAY. */
void metrics_refused(enum metrics_refusal why);

/* Serve /metrics on listen (a numeric address) and port. What the keytab holds is asked of
 * the keeper over keeper_fd (a SOCK_SEQPACKET socket of the metrics' own). Says why on
 * stderr and returns non-zero when it cannot listen. */
int metrics_start(const char *listen, unsigned port, int keeper_fd);

void metrics_stop(void);

#endif
