/*
 * AD security descriptors (lib/adsd.c): "Change Password" denied to SELF and Everyone is
 * put at the head of the DACL, once; the rest of the descriptor is kept byte for byte;
 * and hostile bytes (truncations, offsets and sizes out of bounds, no DACL) are refused,
 * never read past.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "directory.h"

static const uint8_t owner[] = {1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0,
                                0, 0, 2, 0, 0, 0, 3, 0, 0,  0, 0, 2, 0, 0}; /* S-1-5-21-1-2-3-512 */
static const uint8_t self_sid[] = {1, 1, 0, 0, 0, 0, 0, 5, 10, 0, 0, 0};
static const uint8_t guid[] = {0x53, 0x1a, 0x72, 0xab, 0x2f, 0x1e, 0xd0, 0x11,
                               0x98, 0x19, 0x00, 0xaa, 0x00, 0x40, 0x52, 0x9b};

static void put32(uint8_t *p, size_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A descriptor as AD returns one: header, owner, then a DACL with one allow ACE
 * (Authenticated Users: read), DACL after the owner so that offsets matter. */
static size_t make_sd(uint8_t *sd)
{
    size_t at = 20, dacl;

    memset(sd, 0, 256);
    sd[0] = 1;
    sd[2] = 0x04; /* DACL present */
    sd[3] = 0x80; /* self-relative */
    put32(sd + 4, at);
    memcpy(sd + at, owner, sizeof(owner));
    at += sizeof(owner);
    dacl = at;
    put32(sd + 16, dacl);
    sd[at] = 2;          /* revision */
    sd[at + 2] = 8 + 20; /* size */
    sd[at + 4] = 1;      /* one ACE */
    at += 8;
    sd[at] = 0;                                                                /* ACCESS_ALLOWED */
    sd[at + 2] = 20;                                                           /* its size */
    put32(sd + at + 4, 0x20094);                                               /* read */
    memcpy(sd + at + 8, (uint8_t[]){1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0}, 12); /* S-1-5-11 */
    return at + 20;
}

static void adds_the_denials_once(void **state)
{
    uint8_t sd[256], *out = NULL, *again = (uint8_t *)1;
    size_t len = make_sd(sd), out_len = 0, again_len = 1, dacl;

    (void)state;
    assert_int_equal(kasa_ad_sd_deny_change_password(sd, len, &out, &out_len), 0);
    assert_non_null(out);
    assert_int_equal(out_len, len + 2 * 40);
    dacl = out[16] | out[17] << 8;
    assert_int_equal(out[dacl], 4);                                /* ACL_REVISION_DS */
    assert_int_equal(out[dacl + 2] | out[dacl + 3] << 8, 28 + 80); /* size */
    assert_int_equal(out[dacl + 4], 3);                            /* three ACEs */
    assert_int_equal(out[dacl + 8], 0x06);                         /* denied object ACE first */
    assert_memory_equal(out + dacl + 8 + 12, guid, 16);
    assert_memory_equal(out + dacl + 8 + 28, self_sid, 12);
    assert_int_equal(out[dacl + 48], 0x06);
    assert_int_equal(out[dacl + 48 + 28 + 7], 1); /* Everyone's authority */
    assert_int_equal(out[dacl + 88], 0);          /* then the allow ACE, as it was */
    assert_memory_equal(out + dacl + 88, sd + 48 + 8, 20);
    /* The owner is kept, at its new offset. */
    assert_memory_equal(out + (out[4] | out[5] << 8), owner, sizeof(owner));
    /* Done already: nothing to write. */
    assert_int_equal(kasa_ad_sd_deny_change_password(out, out_len, &again, &again_len), 0);
    assert_null(again);
    assert_int_equal(again_len, 0);
    free(out);
}

static void refuses_no_dacl(void **state)
{
    uint8_t sd[256], *out = NULL;
    size_t len = make_sd(sd), out_len;

    (void)state;
    put32(sd + 16, 0);
    assert_int_equal(kasa_ad_sd_deny_change_password(sd, len, &out, &out_len), -1);
    assert_null(out);
    make_sd(sd);
    sd[2] = 0; /* DACL not present */
    assert_int_equal(kasa_ad_sd_deny_change_password(sd, len, &out, &out_len), -1);
}

static void refuses_hostile_bytes(void **state)
{
    uint8_t sd[256], *out = NULL, copy[256];
    size_t len = make_sd(sd), out_len;

    (void)state;
    /* Every truncation: refused, never read past (ASan watches the heap copy). */
    for (size_t n = 0; n < len; n++) {
        uint8_t *h = malloc(n > 0 ? n : 1);
        memcpy(h, sd, n);
        assert_int_equal(kasa_ad_sd_deny_change_password(h, n, &out, &out_len), -1);
        free(h);
    }
    /* Offsets into the header, past the end, near SIZE_MAX. */
    static const uint32_t offs[] = {4, 19, 255, 0xffffffffu, 0xfffffff0u};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        for (int field = 0; field < 4; field++) {
            memcpy(copy, sd, len);
            put32(copy + 4 + 4 * field, offs[i]);
            assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
        }
    }
    /* An ACE of size 0 (would loop), one past the ACL, an ACL past the buffer, a SID
     * claiming 255 sub-authorities, a count of ACEs the ACL cannot hold. */
    memcpy(copy, sd, len);
    copy[48 + 8 + 2] = 0;
    assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
    memcpy(copy, sd, len);
    copy[48 + 8 + 2] = 200;
    assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
    memcpy(copy, sd, len);
    copy[48 + 2] = 250;
    assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
    memcpy(copy, sd, len);
    copy[20 + 1] = 255;
    assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
    memcpy(copy, sd, len);
    copy[48 + 4] = 200;
    assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
    /* The owner inside the DACL: parts that overlap are refused. */
    memcpy(copy, sd, len);
    put32(copy + 4, 48 + 8 + 8);
    assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
    /* Not self-relative, wrong revision. */
    memcpy(copy, sd, len);
    copy[3] = 0;
    assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
    memcpy(copy, sd, len);
    copy[0] = 2;
    assert_int_equal(kasa_ad_sd_deny_change_password(copy, len, &out, &out_len), -1);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adds_the_denials_once),
        cmocka_unit_test(refuses_no_dacl),
        cmocka_unit_test(refuses_hostile_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
