/*
 * libFuzzer harness for the PROXY protocol header (proxyproto.h): kasa-httpd reads these
 * bytes from a balancer's connection before anything else, and the client they name goes
 * into the auth log. A header must be refused, incomplete, or parse to a length within
 * the input and the bound, naming an IPv4 or IPv6 client or none; and an incomplete one
 * must stay incomplete or parse the same way once more bytes arrive, never crash.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kasa_ctx *ctx;
    struct sockaddr_storage src, again;
    socklen_t src_len, again_len;
    size_t used, again_used;
    long ret;

    if (ctx == NULL && kasa_ctx_new(&ctx) != 0)
        return 0;
    ret = kasa_proxy_parse(ctx, data, size, &used, &src, &src_len);
    if (ret == 0) {
        if (used == 0 || used > size || used > KASA_PROXY_MAX)
            abort();
        if (src_len != 0 && !(src.ss_family == AF_INET && src_len == sizeof(struct sockaddr_in)) &&
            !(src.ss_family == AF_INET6 && src_len == sizeof(struct sockaddr_in6)))
            abort();
        /* The header alone parses the same: nothing after it was read. */
        if (kasa_proxy_parse(ctx, data, used, &again_used, &again, &again_len) != 0 ||
            again_used != used || again_len != src_len || memcmp(&again, &src, src_len) != 0)
            abort();
        /* A proper prefix of it is incomplete, not refused. */
        if (kasa_proxy_parse(ctx, data, used - 1, &again_used, &again, &again_len) !=
            KASA_ERR_AGAIN)
            abort();
    } else if (ret == KASA_ERR_AGAIN) {
        if (size >= KASA_PROXY_MAX || used != 0 || src_len != 0)
            abort();
    } else if (ret != KASA_ERR_PROTO || used != 0 || src_len != 0) {
        abort();
    }
    return 0;
}
