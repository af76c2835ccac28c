/*
 * libFuzzer harness for the SPN and account-name rules: any bytes, never a crash, and
 * whatever is accepted formats back to exactly the input (the parser neither drops nor
 * invents anything), and every refusal has a one-line printable reason. The other name
 * rules the CLI and the directory's array records go through (host names, short names,
 * HOST[:PORT] members, descriptions) get the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/account.h"
#include "kasa/array.h"
#include "kasa/spn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kasa_ctx *ctx;
    char *text, why[256], back[KASA_SPN_MAX + 1];
    kasa_spn spn;
    kasa_member m;

    if (ctx == NULL && kasa_ctx_new(&ctx) != 0)
        return 0;
    text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    if (kasa_spn_parse(text, &spn, why, sizeof(why)) == 0) {
        kasa_spn_format(&spn, back, sizeof(back));
        if (strcmp(back, text) != 0)
            abort();
        if (!kasa_spn_equal_nocase(back, text))
            abort();
    } else {
        for (const char *p = why; *p; p++) {
            if (*p < 0x20 || *p >= 0x7f)
                abort();
        }
        if (why[0] == '\0')
            abort();
    }
    (void)kasa_account_name_check(text, KASA_ACCOUNT_COMPUTER, why, sizeof(why));
    (void)kasa_account_name_check(text, KASA_ACCOUNT_USER, why, sizeof(why));
    (void)kasa_account_check(ctx, text, 0);
    (void)kasa_spn_check(ctx, text);
    (void)kasa_hostname_check(ctx, "array", text);
    (void)kasa_short_name_check(ctx, text);
    (void)kasa_description_check(ctx, text);
    if (kasa_member_parse(ctx, text, &m) == 0) {
        /* An accepted member has a host and a port kasad can listen on. */
        if (m.host == NULL || m.port < 1 || m.port > 65535)
            abort();
        free(m.host);
        free(m.address);
    }
    free(text);
    return 0;
}
