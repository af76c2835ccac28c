/*
 * curl --ntlm (and other clients with their own NTLM code) leave out the optional
 * 8-byte version field of NTLM messages (MS-NLMP 2.2.1.1 and 2.2.1.3: it is there only
 * with NTLMSSP_NEGOTIATE_VERSION). gss-ntlmssp 1.2 refuses both such messages: a
 * NEGOTIATE shorter than 40 bytes, and an AUTHENTICATE whose payload starts at 64, since
 * it decodes the AUTHENTICATE with the flags of its own CHALLENGE, where it always sets
 * NTLMSSP_NEGOTIATE_VERSION. So the field is put back, zeroed, and the payload offsets
 * moved past it. The bytes a client's NTLMv2 response covers (the challenges, the client
 * blob) are not touched; a client that sends a MIC over the messages sends the field
 * anyway, so nothing here changes what a MIC covers.
 */
#include "ntlmcompat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_NEGOTIATE 32    /* without the version field */
#define HEADER_AUTHENTICATE 64 /* without the version field */
#define VERSION_LEN 8

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* tok with VERSION_LEN zero bytes inserted at at (malloc'd), or NULL. */
static unsigned char *insert_version(const unsigned char *tok, size_t len, size_t at)
{
    unsigned char *out = calloc(1, len + VERSION_LEN);

    if (out == NULL)
        return NULL;
    memcpy(out, tok, at);
    memcpy(out + at + VERSION_LEN, tok + at, len - at);
    return out;
}

unsigned char *ntlm_compat(unsigned char *tok, size_t *len)
{
    unsigned char *out = NULL;
    uint32_t type;

    if (*len < 12 || memcmp(tok, "NTLMSSP", 8) != 0)
        return tok;
    type = le32(tok + 8);
    if (type == 1 && *len >= HEADER_NEGOTIATE && *len < HEADER_NEGOTIATE + VERSION_LEN) {
        /* Its fields are empty or point past the end anyway; padding moves nothing. */
        out = calloc(1, HEADER_NEGOTIATE + VERSION_LEN);
        if (out != NULL)
            memcpy(out, tok, *len);
        if (out != NULL)
            *len = HEADER_NEGOTIATE + VERSION_LEN;
    } else if (type == 3 && *len >= HEADER_AUTHENTICATE) {
        /* Six fields (LM and NT responses, domain, user, workstation, session key), each
         * length, room, offset; the payload starts at the smallest offset in use. */
        uint32_t first = UINT32_MAX;
        for (size_t f = 0; f < 6; f++) {
            const unsigned char *h = tok + 12 + 8 * f;
            if ((h[0] | h[1]) != 0 && le32(h + 4) < first)
                first = le32(h + 4);
        }
        if (first != HEADER_AUTHENTICATE || *len > SIZE_MAX - VERSION_LEN)
            return tok;
        out = insert_version(tok, *len, HEADER_AUTHENTICATE);
        if (out == NULL)
            return tok;
        for (size_t f = 0; f < 6; f++) {
            unsigned char *h = out + 12 + 8 * f;
            if (le32(h + 4) >= HEADER_AUTHENTICATE)
                put_le32(h + 4, le32(h + 4) + VERSION_LEN);
        }
        *len += VERSION_LEN;
    }
    if (out == NULL)
        return tok;
    free(tok);
    return out;
}
