/*
 * Raw NTLM messages from clients that gss-ntlmssp 1.2 refuses although MS-NLMP allows
 * them, rewritten into the form it reads. See ntlmcompat.c.
 */
#ifndef KASA_HTTPD_NTLMCOMPAT_H
#define KASA_HTTPD_NTLMCOMPAT_H

#include <stddef.h>

/* tok (malloc'd, *len bytes), or a new buffer that replaces it (tok is then freed). */
unsigned char *ntlm_compat(unsigned char *tok, size_t *len);

#endif
