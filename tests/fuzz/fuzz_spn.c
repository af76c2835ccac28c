/*
 * libFuzzer harness for the SPN and account-name rules: any bytes, never a crash, and
 * whatever is accepted formats back to exactly the input (the parser neither drops nor
 * invents anything), and every refusal has a one-line printable reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kasa/account.h"
#include "kasa/spn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text, why[256], back[KASA_SPN_MAX + 1];
    kasa_spn spn;

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
    free(text);
    return 0;
}
