/*
 * libFuzzer harness for the member protocol: frames, requests and replies as kasad and
 * kasa decode them. Anything that decodes must encode again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kasa_ctx *ctx;
    kasa_request req;
    kasa_reply rep;
    const unsigned char *body;
    size_t body_len, used, len;
    unsigned type;
    unsigned char *out;

    if (ctx == NULL && kasa_ctx_new(&ctx) != 0)
        return 0;
    (void)kasa_frame_parse(ctx, data, size, &type, &body, &body_len, &used);
    if (kasa_request_decode(ctx, data, size, &req) == 0) {
        if (kasa_request_encode(ctx, &req, &out, &len) != 0)
            abort();
        kasa_proto_buf_free(out, KASA_FRAME_MAX);
        kasa_request_clear(&req);
    }
    if (kasa_reply_decode(ctx, data, size, &rep) == 0) {
        if (kasa_reply_encode(ctx, &rep, &out, &len) != 0)
            abort();
        kasa_proto_buf_free(out, KASA_FRAME_MAX);
        kasa_reply_clear(&rep);
    }
    return 0;
}
