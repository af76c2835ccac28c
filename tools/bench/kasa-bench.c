/*
 * kasa-bench: the load generator of make bench. It mints N fresh Negotiate (SPNEGO,
 * Kerberos) tokens for one SPN from the default credential cache, before any timing,
 * then sends them, one request each, over one keep-alive HTTP/1.1 connection to a
 * server, and reports requests per second and the server's CPU time per request (read
 * from /proc for the pids given). wrk cannot do this: every Kerberos authenticator must
 * be new, or the server's replay cache refuses it.
 *
 *   kasa-bench mint SPN N FILE            write N base64 tokens, one a line
 *   kasa-bench run ADDR PORT HOST PATH FILE PID...
 */
#include <arpa/inet.h>
#include <errno.h>
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

/* utime + stime of pid, in clock ticks. */
static long long cpu_ticks(const char *pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    /* fields after the comm: state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (long long)(ut + st);
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
    long long cpu0 = 0, cpu1 = 0;
    long ok = 0, total = 0;
    size_t have = 0;
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (f == NULL || fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        fprintf(stderr, "kasa-bench: cannot connect to %s:%d: %s\n", addr, port, strerror(errno));
        return 1;
    }
    for (int i = 0; i < npids; i++)
        cpu0 += cpu_ticks(pids[i]);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (getline(&line, &cap, f) > 0) {
        int len;
        line[strcspn(line, "\n")] = '\0';
        len = snprintf(req, sizeof(req),
                       "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Negotiate %s\r\n\r\n", url,
                       host, line);
        if (write(fd, req, (size_t)len) != len)
            break;
        total++;
        if (read_response(fd, resp, sizeof(resp), &have) == 200)
            ok++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 0; i < npids; i++)
        cpu1 += cpu_ticks(pids[i]);
    {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        double cpu_us = (double)(cpu1 - cpu0) * 1e6 / (double)sysconf(_SC_CLK_TCK);
        printf("%ld requests, %ld accepted, %.0f requests/s, %.1f us server CPU per request\n",
               total, ok, (double)total / secs, ok > 0 ? cpu_us / (double)ok : 0.0);
    }
    free(line);
    fclose(f);
    close(fd);
    return ok == total ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "mint") == 0)
        return mint(argv[2], atol(argv[3]), argv[4]);
    if (argc >= 8 && strcmp(argv[1], "run") == 0)
        return run(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6], argv + 7, argc - 7);
    fprintf(stderr, "usage: kasa-bench mint SPN N FILE | run ADDR PORT HOST PATH FILE PID...\n");
    return 2;
}
