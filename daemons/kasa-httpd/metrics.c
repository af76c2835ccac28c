/*
 * Prometheus metrics for kasa-httpd (text exposition format 0.0.4): counters of
 * authentication attempts that the request threads bump with atomics, and what the array
 * keytab holds, read when /metrics is scraped. They are served by a second libmicrohttpd
 * daemon of one thread, with no authentication: it belongs on loopback or a management
 * network. Label values come from small fixed sets, except the keytab's principal names,
 * which are escaped; no key, and no client-chosen text, is ever printed.
 */
#include <netdb.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <krb5/krb5.h>

#include "kasa/acceptor.h"
#include "kasa/kasa.h"
#include "kasa/promtext.h"
#include "metrics.h"
#include "../promserve.h"

enum { MM_NONE, MM_KERBEROS, MM_NTLM, MM_OTHER, MM_COUNT };

static const char *const mech_label[MM_COUNT] = {"none", "kerberos", "ntlm", "other"};
static const char *const reason_label[MR_COUNT] = {
    "",          "no_token",     "malformed",       "scheme_refused", "replay",
    "wrong_key", "ntlm_refused", "channel_binding", "other"};

static atomic_ullong auths[MM_COUNT][2]; /* [mechanism][ok] */
static atomic_ullong failures[MR_COUNT];
static atomic_ullong replays;
static atomic_ullong header_timeouts;
static time_t started;
static const char *keytab_path;
static kasa_acceptor *acceptor;
static struct MHD_Daemon *daemon_;

/* The most a scrape lists, and the largest request body it reads (and drops). */
enum { MAX_PRINCIPALS = 1000, MAX_BODY = 65536 };

void metrics_count(const char *mechanism, bool ok, enum metrics_reason why)
{
    int m = MM_OTHER;

    if (mechanism == NULL || *mechanism == '\0')
        m = MM_NONE;
    else if (strcmp(mechanism, "Kerberos") == 0)
        m = MM_KERBEROS;
    else if (strcmp(mechanism, "NTLM") == 0)
        m = MM_NTLM;
    atomic_fetch_add_explicit(&auths[m][ok ? 1 : 0], 1, memory_order_relaxed);
    if (ok)
        return;
    if (why <= MR_NONE || why >= MR_COUNT)
        why = MR_OTHER;
    atomic_fetch_add_explicit(&failures[why], 1, memory_order_relaxed);
    if (why == MR_REPLAY)
        atomic_fetch_add_explicit(&replays, 1, memory_order_relaxed);
}

void metrics_header_timeouts(unsigned n)
{
    atomic_fetch_add_explicit(&header_timeouts, n, memory_order_relaxed);
}

struct kvno_of {
    char *principal;
    krb5_kvno kvno;
};

/* The keys the accept path holds in memory (kasa/acceptor.h). */
static void put_keys(FILE *f)
{
    kasa_accept_info info;

    if (acceptor == NULL)
        return;
    kasa_acceptor_info(acceptor, &info);
    kasa_prom_family(f, "kasa_httpd_keys_entries", "gauge",
                     "Keytab entries the accept path holds in memory.");
    fprintf(f, "kasa_httpd_keys_entries %zu\n", info.entries);
    kasa_prom_family(f, "kasa_httpd_keys_kvno", "gauge",
                     "The highest key version the keys in memory hold (0: none).");
    fprintf(f, "kasa_httpd_keys_kvno %u\n", info.max_kvno);
    kasa_prom_family(f, "kasa_httpd_keys_reloads_total", "counter",
                     "Times the array keytab was loaded into memory (the first load counts).");
    fprintf(f, "kasa_httpd_keys_reloads_total %lu\n", info.reloads);
    kasa_prom_family(f, "kasa_httpd_keytab_refused_total", "counter",
                     "Keytab files refused (truncated, not a keytab, no keys): the last good "
                     "keys stayed in use.");
    fprintf(f, "kasa_httpd_keytab_refused_total %lu\n", info.refused);
}

/* The highest kvno of each principal in the keytab; nothing when it cannot be read
 * (kasad has not written it yet). Entries are freed at once: their keys are never kept. */
static void put_keytab(FILE *f)
{
    krb5_context kc = NULL;
    krb5_keytab kt = NULL;
    krb5_kt_cursor cur;
    krb5_keytab_entry ent;
    struct kvno_of *seen = NULL;
    size_t n = 0;
    char name[4200], *p = NULL;
    struct stat sb;
    bool iterating = false;

    if (keytab_path == NULL || krb5_init_context(&kc) != 0)
        return;
    snprintf(name, sizeof(name), "FILE:%s", keytab_path);
    if (krb5_kt_resolve(kc, name, &kt) != 0 || krb5_kt_start_seq_get(kc, kt, &cur) != 0)
        goto cleanup;
    iterating = true;
    if ((seen = calloc(MAX_PRINCIPALS, sizeof(*seen))) == NULL)
        goto cleanup;
    while (krb5_kt_next_entry(kc, kt, &ent, &cur) == 0) {
        size_t i = 0;
        if (krb5_unparse_name(kc, ent.principal, &p) == 0) {
            while (i < n && strcmp(seen[i].principal, p) != 0)
                i++;
            if (i < n && ent.vno > seen[i].kvno) {
                seen[i].kvno = ent.vno;
            } else if (i == n && n < MAX_PRINCIPALS && (seen[n].principal = strdup(p)) != NULL) {
                seen[n++].kvno = ent.vno;
            }
            krb5_free_unparsed_name(kc, p);
            p = NULL;
        }
        krb5_free_keytab_entry_contents(kc, &ent); /* wipes the key */
    }
    kasa_prom_family(f, "kasa_httpd_keytab_kvno", "gauge",
                     "The highest key version the array keytab holds for the principal.");
    for (size_t i = 0; i < n; i++) {
        fputs("kasa_httpd_keytab_kvno{principal=\"", f);
        kasa_prom_label(f, seen[i].principal);
        fprintf(f, "\"} %u\n", (unsigned)seen[i].kvno);
    }
    if (stat(keytab_path, &sb) == 0) {
        kasa_prom_family(f, "kasa_httpd_keytab_mtime_seconds", "gauge",
                         "When the array keytab was last replaced (kasad), in seconds since "
                         "the epoch.");
        fprintf(f, "kasa_httpd_keytab_mtime_seconds %lld\n", (long long)sb.st_mtim.tv_sec);
    }

cleanup:
    for (size_t i = 0; i < n; i++)
        free(seen[i].principal);
    free(seen);
    if (iterating)
        krb5_kt_end_seq_get(kc, kt, &cur);
    if (kt != NULL)
        krb5_kt_close(kc, kt);
    krb5_free_context(kc);
}

/* The whole exposition, in a malloc'd string. */
static char *exposition(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);

    if (f == NULL)
        return NULL;
    kasa_prom_family(f, "kasa_httpd_authentications_total", "counter",
                     "Authentication attempts, by inner mechanism and result (one per auth "
                     "log line).");
    for (int m = 0; m < MM_COUNT; m++) {
        for (int ok = 1; ok >= 0; ok--) {
            if (m == MM_NONE && ok)
                continue; /* success always has a mechanism */
            fprintf(f, "kasa_httpd_authentications_total{mechanism=\"%s\",result=\"%s\"} %llu\n",
                    mech_label[m], ok ? "ok" : "failed",
                    atomic_load_explicit(&auths[m][ok], memory_order_relaxed));
        }
    }
    kasa_prom_family(f, "kasa_httpd_authentication_failures_total", "counter",
                     "Failed authentication attempts, by class of reason.");
    for (int r = MR_NONE + 1; r < MR_COUNT; r++)
        fprintf(f, "kasa_httpd_authentication_failures_total{reason=\"%s\"} %llu\n",
                reason_label[r], atomic_load_explicit(&failures[r], memory_order_relaxed));
    kasa_prom_family(f, "kasa_httpd_replays_total", "counter",
                     "Kerberos authenticators refused as replays.");
    fprintf(f, "kasa_httpd_replays_total %llu\n",
            atomic_load_explicit(&replays, memory_order_relaxed));
    kasa_prom_family(f, "kasa_httpd_header_timeouts_total", "counter",
                     "Connections closed because their request head was not complete within "
                     "header_timeout.");
    fprintf(f, "kasa_httpd_header_timeouts_total %llu\n",
            atomic_load_explicit(&header_timeouts, memory_order_relaxed));
    put_keytab(f);
    put_keys(f);
    kasa_prom_family(f, "kasa_httpd_start_time_seconds", "gauge",
                     "When kasa-httpd started, in seconds since the epoch.");
    fprintf(f, "kasa_httpd_start_time_seconds %lld\n", (long long)started);
    kasa_prom_family(f, "kasa_httpd_build_info", "gauge",
                     "The kasa version kasa-httpd was built from.");
    fputs("kasa_httpd_build_info{version=\"", f);
    kasa_prom_label(f, kasa_version());
    fputs("\"} 1\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

void metrics_set_acceptor(kasa_acceptor *a)
{
    acceptor = a;
}

int metrics_start(const char *listen, unsigned port, const char *keytab, MHD_LogCallback log)
{
    started = time(NULL);
    keytab_path = keytab;
    daemon_ = promserve_start("kasa-httpd", listen, port, exposition, log);
    if (daemon_ == NULL)
        return 1;
    return 0;
}

void metrics_stop(void)
{
    promserve_stop(daemon_);
    daemon_ = NULL;
}
