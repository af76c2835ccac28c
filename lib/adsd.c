/*
 * Active Directory security descriptors, for one purpose: deny the "Change Password"
 * right on the ASA to SELF and to Everyone, which is what "User cannot change password"
 * in AD's own tools writes. Without it anyone holding the array keytab (root on any
 * member) can change the ASA's password with its keys through kpasswd, and every member
 * then holds keys the KDC no longer uses. A reset by kasa's admin principal (the "Reset
 * Password" right) is not affected.
 *
 * The format is MS-DTYP 2.4.6 (a self-relative SECURITY_DESCRIPTOR) with its ACL (2.4.5)
 * and object ACEs (2.4.4.4). It is written by hand because no Debian package offers a C
 * API for it: Samba's security library is private to Samba, its Python bindings are not
 * C, and OpenLDAP treats the attribute as opaque bytes. Every offset and length read
 * from the directory is checked before use.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"

#define SD_HEADER 20
#define ACL_HEADER 8
#define SE_DACL_PRESENT 0x0004
#define SE_SELF_RELATIVE 0x8000
#define ACL_REVISION_DS 4 /* needed for object ACEs */
#define ACCESS_DENIED_OBJECT_ACE_TYPE 0x06
#define ADS_RIGHT_DS_CONTROL_ACCESS 0x100
#define ACE_OBJECT_TYPE_PRESENT 0x1
#define DENY_ACE_SIZE (4 + 4 + 4 + 16 + 12) /* header, mask, flags, GUID, a one-RID SID */

/* ab721a53-1e2f-11d0-9819-00aa0040529b, User-Change-Password, in its byte order. */
static const uint8_t change_password[16] = {0x53, 0x1a, 0x72, 0xab, 0x2f, 0x1e, 0xd0, 0x11,
                                            0x98, 0x19, 0x00, 0xaa, 0x00, 0x40, 0x52, 0x9b};
/* S-1-5-10 (SELF) and S-1-1-0 (Everyone). */
static const uint8_t sid_self[12] = {1, 1, 0, 0, 0, 0, 0, 5, 10, 0, 0, 0};
static const uint8_t sid_everyone[12] = {1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

/* The length of the SID at off, or 0 when it does not fit in len. */
static size_t sid_len(const uint8_t *sd, size_t len, size_t off)
{
    size_t n;

    if (off + 8 > len || off + 8 < off)
        return 0;
    n = 8 + 4 * (size_t)sd[off + 1];
    return sd[off] == 1 && off + n <= len ? n : 0;
}

/* The length of the ACL at off, or 0 when it or one of its ACEs does not fit. */
static size_t acl_len(const uint8_t *sd, size_t len, size_t off)
{
    size_t size, count, at;

    if (off + ACL_HEADER > len || off + ACL_HEADER < off)
        return 0;
    size = get16(sd + off + 2);
    count = get16(sd + off + 4);
    if (size < ACL_HEADER || off + size > len)
        return 0;
    at = off + ACL_HEADER;
    for (size_t i = 0; i < count; i++) {
        size_t ace;
        if (at + 4 > off + size)
            return 0;
        ace = get16(sd + at + 2);
        if (ace < 4 || at + ace > off + size)
            return 0;
        at += ace;
    }
    return size;
}

/* Whether the ACL at off (already checked) denies Change Password to sid. */
static bool denies(const uint8_t *sd, size_t off, const uint8_t *sid)
{
    size_t count = get16(sd + off + 4), at = off + ACL_HEADER;

    for (size_t i = 0; i < count; i++) {
        size_t ace = get16(sd + at + 2);
        if (sd[at] == ACCESS_DENIED_OBJECT_ACE_TYPE && ace == DENY_ACE_SIZE &&
            (get32(sd + at + 4) & ADS_RIGHT_DS_CONTROL_ACCESS) &&
            get32(sd + at + 8) == ACE_OBJECT_TYPE_PRESENT &&
            memcmp(sd + at + 12, change_password, 16) == 0 && memcmp(sd + at + 28, sid, 12) == 0)
            return true;
        at += ace;
    }
    return false;
}

static void deny_ace(uint8_t *p, const uint8_t *sid)
{
    p[0] = ACCESS_DENIED_OBJECT_ACE_TYPE;
    p[1] = 0; /* explicit, not inherited */
    put16(p + 2, DENY_ACE_SIZE);
    put32(p + 4, ADS_RIGHT_DS_CONTROL_ACCESS);
    put32(p + 8, ACE_OBJECT_TYPE_PRESENT);
    memcpy(p + 12, change_password, 16);
    memcpy(p + 28, sid, 12);
}

int kasa_ad_sd_deny_change_password(const uint8_t *sd, size_t len, uint8_t **out, size_t *out_len)
{
    size_t off[4], n[4], dacl, total, at;
    bool self, everyone;
    uint8_t *p;

    *out = NULL;
    *out_len = 0;
    if (len < SD_HEADER || sd[0] != 1 || !(get16(sd + 2) & SE_SELF_RELATIVE))
        return -1;
    /* Owner, group, SACL, DACL: each absent (offset 0) or wholly inside the buffer. */
    for (int i = 0; i < 4; i++) {
        off[i] = get32(sd + 4 + 4 * i);
        n[i] = 0;
        if (off[i] == 0)
            continue;
        if (off[i] < SD_HEADER)
            return -1;
        n[i] = i < 2 ? sid_len(sd, len, off[i]) : acl_len(sd, len, off[i]);
        if (n[i] == 0)
            return -1;
    }
    /* AD writes each part once; parts that overlap are refused rather than copied twice. */
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (n[i] > 0 && n[j] > 0 && off[i] < off[j] + n[j] && off[j] < off[i] + n[i])
                return -1;
    /* No DACL means everyone may do anything; a DACL of two denials would then lock
     * everyone out of the object. Never made by AD: refuse it. */
    if (off[3] == 0 || !(get16(sd + 2) & SE_DACL_PRESENT))
        return -1;
    dacl = off[3];
    self = denies(sd, dacl, sid_self);
    everyone = denies(sd, dacl, sid_everyone);
    if (self && everyone)
        return 0;
    if (get16(sd + dacl + 4) > 0xffff - 2 || n[3] + 2 * DENY_ACE_SIZE > 0xffff)
        return -1;

    /* The new descriptor: header, the new DACL (the denials first, as AD's canonical
     * order has explicit denials before everything else), then owner, group and SACL. */
    total = SD_HEADER + n[3] + (self ? 0 : DENY_ACE_SIZE) + (everyone ? 0 : DENY_ACE_SIZE);
    total += n[0] + n[1] + n[2];
    p = calloc(1, total);
    if (p == NULL)
        return -1;
    p[0] = 1;
    put16(p + 2, get16(sd + 2) | SE_DACL_PRESENT | SE_SELF_RELATIVE);
    at = SD_HEADER;
    put32(p + 16, (uint32_t)at);
    {
        size_t added = (self ? 0 : 1) + (everyone ? 0 : 1);
        p[at] = sd[dacl] > ACL_REVISION_DS ? sd[dacl] : ACL_REVISION_DS;
        put16(p + at + 2, n[3] + added * DENY_ACE_SIZE);
        put16(p + at + 4, get16(sd + dacl + 4) + added);
        at += ACL_HEADER;
        if (!self) {
            deny_ace(p + at, sid_self);
            at += DENY_ACE_SIZE;
        }
        if (!everyone) {
            deny_ace(p + at, sid_everyone);
            at += DENY_ACE_SIZE;
        }
        memcpy(p + at, sd + dacl + ACL_HEADER, n[3] - ACL_HEADER);
        at += n[3] - ACL_HEADER;
    }
    for (int i = 0; i < 3; i++) {
        if (n[i] == 0)
            continue;
        put32(p + 4 + 4 * i, (uint32_t)at);
        memcpy(p + at, sd + off[i], n[i]);
        at += n[i];
    }
    *out = p;
    *out_len = total;
    return 0;
}
