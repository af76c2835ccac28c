/*
 * kasa-httpd's Prometheus metrics: counters the request threads bump, and a second,
 * unauthenticated libmicrohttpd daemon that serves them as GET /metrics.
 */
#ifndef KASA_HTTPD_METRICS_H
#define KASA_HTTPD_METRICS_H

#include <stdbool.h>

#include <microhttpd.h>

/* Why an attempt failed, in a few fixed classes (a label value; never the free text). */
enum metrics_reason {
    MR_NONE, /* it did not fail */
    MR_NO_TOKEN,
    MR_MALFORMED,
    MR_SCHEME_REFUSED,
    MR_REPLAY,
    MR_WRONG_KEY,
    MR_NTLM_REFUSED,
    MR_CHANNEL_BINDING,
    MR_OTHER,
    MR_COUNT
};

/* Count one authentication attempt; mechanism is what the auth log says ("Kerberos",
 * "NTLM", "" for none). Safe from any thread. */
void metrics_count(const char *mechanism, bool ok, enum metrics_reason why);

/* Count n connections closed because their request head was not complete in time
 * (deadline.c). Safe from any thread. */
void metrics_header_timeouts(unsigned n);

/* Serve /metrics on listen (a numeric address) and port; keytab is read at each scrape.
 * Says why on stderr and returns non-zero when it cannot listen. */
int metrics_start(const char *listen, unsigned port, const char *keytab, MHD_LogCallback log);

/* The keys in memory, reported at each scrape (reloads, files refused, what is held). */
struct kasa_acceptor;
void metrics_set_acceptor(struct kasa_acceptor *a);

void metrics_stop(void);

#endif
