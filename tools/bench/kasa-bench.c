/*
 * kasa-bench: the load generator of make bench. It mints N fresh Negotiate (SPNEGO,
 * Kerberos) tokens for one SPN from the default credential cache, before any timing,
 * then sends them, one request each, over one keep-alive HTTP/1.1 connection to a
 * server, and reports requests per second, the responses that were not 200, and the
 * server's CPU time per accepted request (the kernel's CPU clock of each pid given, in
 * nanoseconds: /proc's clock ticks are too coarse for a few thousand requests of tens of
 * microseconds). Pids after "--" (a Redis the server asks) are reported on their own.
 * wrk cannot do this: every Kerberos authenticator must be new, or the server's replay
 * cache refuses it.
 *
 *   kasa-bench mint SPN N FILE            write N base64 tokens, one a line
 *   kasa-bench run ADDR PORT HOST PATH FILE PID... [-- PID...]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>

static const gss_OID_desc spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

static int mint(const char *spn, long n, const char *path)
{
    gss_buffer_desc nb = {strlen(spn), (void *)spn};
    gss_name_t target = GSS_C_NO_NAME;
    OM_uint32 major, minor;
    FILE *f = fopen(path, "w");

    if (f == NULL || GSS_ERROR(gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &target))) {
        fprintf(stderr, "kasa-bench: cannot start minting\n");
        return 1;
    }
    for (long i = 0; i < n; i++) {
        gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
        gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
        gnutls_datum_t d, b64;
        major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &ctx, target, (gss_OID)&spnego, 0,
                                     0, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out,
                                     NULL, NULL);
        if (GSS_ERROR(major)) {
            fprintf(stderr, "kasa-bench: no token for %s (kinit first?)\n", spn);
            return 1;
        }
        d.data = out.value;
        d.size = (unsigned)out.length;
        if (gnutls_base64_encode2(&d, &b64) != 0)
            return 1;
        fprintf(f, "%.*s\n", (int)b64.size, (char *)b64.data);
        gnutls_free(b64.data);
        gss_release_buffer(&minor, &out);
        gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
    }
    gss_release_name(&minor, &target);
    return fclose(f) == 0 ? 0 : 1;
}

/* CPU time (user + system, every thread) of the pids, in nanoseconds; a pid gone is 0. */
static long long cpu_ns(char **pids, int npids)
{
    long long ns = 0;

    for (int i = 0; i < npids; i++) {
        clockid_t clk;
        struct timespec ts;
        if (clock_getcpuclockid((pid_t)atoi(pids[i]), &clk) == 0 && clock_gettime(clk, &ts) == 0)
            ns += (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    return ns;
}

/* Read one HTTP response; returns its status, or -1. */
static int read_response(int fd, char *buf, size_t size, size_t *have)
{
    for (;;) {
        char *end = memmem(buf, *have, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t head = (size_t)(end - buf) + 4, body = 0;
            char *cl = memmem(buf, head, "Content-Length: ", 16);
            int status = atoi(buf + 9);
            if (cl != NULL)
                body = strtoul(cl + 16, NULL, 10);
            while (*have < head + body) {
                ssize_t r = read(fd, buf + *have, size - *have);
                if (r <= 0)
                    return -1;
                *have += (size_t)r;
            }
            memmove(buf, buf + head + body, *have - head - body);
            *have -= head + body;
            return status;
        }
        if (*have == size)
            return -1;
        ssize_t r = read(fd, buf + *have, size - *have);
        if (r <= 0)
            return -1;
        *have += (size_t)r;
    }
}

static int run(const char *addr, int port, const char *host, const char *url, const char *path,
               char **pids, int npids)
{
    static char req[16384], resp[65536];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timespec t0, t1;
    long long cpu0, cpu1, other0, other1;
    long ok = 0, refused = 0, total = 0;
    size_t have = 0;
    char *line = NULL;
    size_t cap = 0;
    char **others = NULL;
    int nothers = 0;
    FILE *f = fopen(path, "r");
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    for (int i = 0; i < npids; i++) {
        if (strcmp(pids[i], "--") == 0) {
            others = pids + i + 1;
            nothers = npids - i - 1;
            npids = i;
            break;
        }
    }
    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (f == NULL || fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        fprintf(stderr, "kasa-bench: cannot connect to %s:%d: %s\n", addr, port, strerror(errno));
        return 1;
    }
    cpu0 = cpu_ns(pids, npids);
    other0 = cpu_ns(others, nothers);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (getline(&line, &cap, f) > 0) {
        int len, status;
        line[strcspn(line, "\n")] = '\0';
        len = snprintf(req, sizeof(req),
                       "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Negotiate %s\r\n\r\n", url,
                       host, line);
        if (write(fd, req, (size_t)len) != len) {
            fprintf(stderr, "kasa-bench: %s:%d closed the connection after %ld requests\n", addr,
                    port, total);
            break;
        }
        total++;
        status = read_response(fd, resp, sizeof(resp), &have);
        if (status == 200)
            ok++;
        else if (status > 0)
            refused++;
        else {
            fprintf(stderr, "kasa-bench: %s:%d closed the connection after %ld requests\n", addr,
                    port, total);
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cpu1 = cpu_ns(pids, npids);
    other1 = cpu_ns(others, nothers);
    {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        double per = ok > 0 ? 1e3 * (double)ok : 1.0;
        printf("%ld requests, %ld accepted, %ld refused, %.0f requests/s, %.1f us server CPU per "
               "request",
               total, ok, refused, (double)total / secs, (double)(cpu1 - cpu0) / per);
        if (nothers > 0)
            printf(", %.1f us in the other processes", (double)(other1 - other0) / per);
        printf("\n");
    }
    free(line);
    fclose(f);
    close(fd);
    return ok == total ? 0 : 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed connection is reported, not fatal */
    if (argc == 5 && strcmp(argv[1], "mint") == 0)
        return mint(argv[2], atol(argv[3]), argv[4]);
    if (argc >= 8 && strcmp(argv[1], "run") == 0)
        return run(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6], argv + 7, argc - 7);
    fprintf(stderr, "usage: kasa-bench mint SPN N FILE\n"
                    "       kasa-bench run ADDR PORT HOST PATH FILE PID... [-- PID...]\n");
    return 2;
}
