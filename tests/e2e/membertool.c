/*
 * A test driver for kasad: well-formed requests through the real client code, and
 * hostile bytes through a raw socket, to show that kasad refuses them and keeps serving.
 *
 *   membertool status HOST ADDR PORT      a status request as kasa.conf's principal
 *   membertool export HOST ADDR PORT      an export request (prints only how many kvnos)
 *   membertool stage HOST ADDR PORT KVNO PRINCIPAL...   stage fresh random keys
 *   membertool raw ADDR PORT garbage|oversized|truncated|silent|badtoken
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <unistd.h>

#include "kasa/config.h"
#include "kasa/member.h"
#include "kasa/proto.h"

static int raw(const char *addr, int port, const char *how)
{
    struct sockaddr_in sin;
    unsigned char buf[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        perror("connect");
        return 1;
    }
    if (strcmp(how, "garbage") == 0) {
        (void)!write(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    } else if (strcmp(how, "oversized") == 0) {
        static const unsigned char hdr[] = {0x7f, 0xff, 0xff, 0xff, 1};
        (void)!write(fd, hdr, sizeof(hdr));
    } else if (strcmp(how, "truncated") == 0) {
        static const unsigned char hdr[] = {0, 0, 0, 100, 1, 'a', 'b'};
        (void)!write(fd, hdr, sizeof(hdr));
    } else if (strcmp(how, "badtoken") == 0) {
        unsigned char frame[5 + 64];
        kasa_frame_header(KASA_FRAME_TOKEN, 64, frame);
        memset(frame + 5, 0x60, 64);
        (void)!write(fd, frame, sizeof(frame));
    } else if (strcmp(how, "wrapped-first") == 0) {
        unsigned char frame[5 + 8];
        kasa_frame_header(KASA_FRAME_WRAPPED, 8, frame);
        memset(frame + 5, 1, 8);
        (void)!write(fd, frame, sizeof(frame));
    } else if (strcmp(how, "silent") != 0) {
        fprintf(stderr, "membertool: unknown raw kind %s\n", how);
        return 2;
    }
    /* Print what comes back: a plain error frame, or nothing before the close. */
    n = read(fd, buf, sizeof(buf) - 1);
    if (n >= 5 && buf[4] == KASA_FRAME_ERROR) {
        buf[n] = '\0';
        printf("error frame: %s\n", (char *)buf + 5);
    } else {
        printf("closed after %zd bytes\n", n < 0 ? (ssize_t)0 : n);
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    kasa_ctx *ctx = NULL;
    kasa_config *cfg = NULL;
    kasa_request req;
    kasa_reply rep;
    kasa_member_addr addr;
    long ret;
    int status;

    if (argc >= 5 && strcmp(argv[1], "raw") == 0)
        return raw(argv[2], atoi(argv[3]), argv[4]);
    if (argc < 5 || kasa_ctx_new(&ctx) != 0) {
        fprintf(stderr, "usage: see the comment at the top of membertool.c\n");
        return 2;
    }
    memset(&req, 0, sizeof(req));
    addr.host = argv[2];
    addr.address = argv[3];
    addr.port = atoi(argv[4]);
    addr.timeout_ms = 5000;
    ret = kasa_config_load(ctx, NULL, &cfg);
    if (!ret && strcmp(argv[1], "status") == 0) {
        req.op = KASA_OP_STATUS;
    } else if (!ret && strcmp(argv[1], "export") == 0) {
        req.op = KASA_OP_EXPORT;
    } else if (!ret && strcmp(argv[1], "stage") == 0 && argc >= 7) {
        req.op = KASA_OP_STAGE;
        req.stage.kvno = (unsigned)atoi(argv[5]);
        req.stage.n_principals = (size_t)(argc - 6);
        req.stage.principals = calloc((size_t)argc, sizeof(char *));
        for (int i = 6; i < argc; i++)
            req.stage.principals[i - 6] = strdup(argv[i]);
        ret = kasa_keyset_generate(ctx, req.stage.kvno, cfg->enctypes, cfg->n_enctypes,
                                   &req.stage.keys);
        if (getrandom(req.nonce, sizeof(req.nonce), 0) < 0)
            ret = 1;
    } else if (!ret) {
        fprintf(stderr, "membertool: bad usage\n");
        return 2;
    }
    if (!ret)
        ret = kasa_member_call(ctx, cfg, &addr, &req, &rep);
    if (ret) {
        printf("failed: %s\n", kasa_error(ctx));
        status = 1;
    } else {
        printf("ok: %s holds %zu kvno%s\n", rep.member, rep.n_sets, rep.n_sets == 1 ? "" : "s");
        status = 0;
    }
    kasa_reply_clear(&rep);
    kasa_request_clear(&req);
    kasa_config_free(cfg);
    kasa_ctx_free(ctx);
    return status;
}
