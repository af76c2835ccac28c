/*
 * libFuzzer harness for AD security descriptors (lib/adsd.c): kasa reads the ASA's
 * nTSecurityDescriptor from the directory and writes back a new one with "Change
 * Password" denied. A descriptor must be refused or give one that, read again, already
 * denies it (nothing more to write) and is no longer than the input plus two ACEs.
 */
#include <stdint.h>
#include <stdlib.h>

#include "directory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *out = NULL, *again = NULL;
    size_t out_len = 0, again_len = 0;

    if (kasa_ad_sd_deny_change_password(data, size, &out, &out_len) != 0) {
        if (out != NULL)
            abort();
        return 0;
    }
    if (out == NULL)
        return 0;            /* denied already */
    if (out_len > size + 80) /* parts never overlap: each is copied once */
        abort();
    if (kasa_ad_sd_deny_change_password(out, out_len, &again, &again_len) != 0 || again != NULL)
        abort();
    free(out);
    return 0;
}
