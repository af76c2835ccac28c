/* The metrics endpoint both daemons share: see promserve.h. */
#include "promserve.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum { MAX_BODY = 65536, MAX_CONNECTIONS = 16, TIMEOUT_S = 10 };

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                               const char *type)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (body == NULL)
        return MHD_NO;
    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* GET /metrics, and 404 for anything else, once the request (and any body) is in. */
static enum MHD_Result on_scrape(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **req_cls)
{
    promserve_fn fn = *(promserve_fn *)cls;
    size_t len = 0;
    char *body;

    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) { /* the head */
        *req_cls = calloc(1, sizeof(size_t));
        return *req_cls != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_size > 0) { /* a body: counted and dropped */
        size_t *got = *req_cls;
        *got += *upload_size;
        *upload_size = 0;
        return *got <= MAX_BODY ? MHD_YES : MHD_NO;
    }
    if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0)
        return respond(c, MHD_HTTP_NOT_FOUND, strdup("not found\n"), 10,
                       "text/plain; charset=utf-8");
    if ((body = fn(&len)) == NULL)
        return MHD_NO;
    return respond(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static void on_done(void *cls, struct MHD_Connection *c, void **req_cls,
                    enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)c;
    (void)code;
    free(*req_cls);
    *req_cls = NULL;
}

struct MHD_Daemon *promserve_start(const char *who, const char *listen, unsigned port,
                                   promserve_fn fn, MHD_LogCallback log)
{
    static promserve_fn served; /* one endpoint per process */
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    struct MHD_Daemon *d;
    sigset_t stop, old;
    char portstr[16];

    served = fn;
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(listen, portstr, &hints, &res) != 0) {
        fprintf(stderr, "%s: cannot listen on %s for metrics\n", who, listen);
        return NULL;
    }
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    /* The thread inherits this mask: the daemon's signals stay with its main thread. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    sigaddset(&stop, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                             (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                         (uint16_t)port, NULL, NULL, on_scrape, &served, MHD_OPTION_EXTERNAL_LOGGER,
                         log, NULL, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_NOTIFY_COMPLETED, on_done,
                         NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)TIMEOUT_S, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (d == NULL)
        fprintf(stderr, "%s: cannot listen on %s port %u for metrics\n", who, listen, port);
    return d;
}

void promserve_stop(struct MHD_Daemon *d)
{
    if (d != NULL)
        MHD_stop_daemon(d);
}
