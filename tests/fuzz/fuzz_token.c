/*
 * libFuzzer harness for Negotiate token decoding (kasa-httpd reads these from any
 * client) and for auth log lines (kasa log summary reads files anyone may have written).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/authlog.h"
#include "kasa/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kasa_ctx *ctx;
    kasa_token_info t;
    char *line, *fields[KASA_AUTHLOG_FIELDS];

    if (ctx == NULL && kasa_ctx_new(&ctx) != 0)
        return 0;
    if (kasa_token_decode(ctx, data, size, &t) == 0) {
        /* Whatever decodes must point inside the input. */
        if (t.mech_token != NULL &&
            (t.mech_token < data || t.mech_token + t.mech_token_len > data + size))
            abort();
        if (strlen(t.sname) >= sizeof(t.sname) || t.n_mechs > KASA_TOKEN_MAX_MECHS)
            abort();
        for (size_t i = 0; i < t.n_mechs; i++) {
            if (kasa_mech_name(t.mechs[i]) == NULL)
                abort();
        }
    }
    line = malloc(size + 1);
    if (line == NULL)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    if (kasa_authlog_parse(ctx, line, fields) == 0)
        kasa_authlog_fields_free(fields);
    free(line);
    return 0;
}
