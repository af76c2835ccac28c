/*
 * The auth log: one CSV line per authentication attempt on a member, written by
 * kasa-httpd and read by kasa log summary.
 *
 *   time,member,client,principal,spn,mechanism,kvno,enctype,result,reason
 *
 * time is ISO 8601 UTC; mechanism is the inner mechanism (Kerberos or NTLM), never just
 * "Negotiate"; result is ok, failed, or challenge: a 401 that carries a token to go on
 * with the exchange (NTLM's CHALLENGE, a SPNEGO continuation), a leg and not an outcome. Every
 * field is quoted (libcsv's writer), and any control character or backslash in a field is written
 * as \xNN or \\ first, so a name holding commas, quotes or newlines can never end a line or forge
 * another one.
 *
 * A value that starts with = + - @ TAB or CR, which a spreadsheet would run as a formula
 * (the SPN and realm come from unauthenticated tickets), is written with a single quote
 * in front: "'=cmd|' /C calc'!A0@EVIL". So is a value that itself starts with a single
 * quote, so the rule can be undone: kasa_authlog_parse() removes one leading quote and
 * gives back exactly what was logged. Legitimate values never start with those bytes
 * (the time, ok/failed, the kvno, which is unsigned, principals, Kerberos and NTLM); the
 * one that can is an unknown enctype number from a hostile ticket, "-1", written "'-1".
 */
#ifndef KASA_AUTHLOG_H
#define KASA_AUTHLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KASA_AUTHLOG_FIELDS 10

typedef struct kasa_auth_event {
    int64_t time;
    const char *member;
    const char *client;    /* the client's address */
    const char *principal; /* Kerberos principal, or NTLM DOMAIN\user; "" when unknown */
    const char *spn;       /* the target the client asked for */
    const char *mechanism; /* "Kerberos", "NTLM", or "" when the token named neither */
    unsigned kvno;         /* 0 when unknown */
    const char *enctype;   /* "" when unknown */
    bool ok;
    bool challenge;     /* a 401 that continues the exchange (result "challenge") */
    const char *reason; /* why it failed, or what the challenge asks; "" when ok */
} kasa_auth_event;

/* Format one event as a line ending in "\n" (malloc'd). */
KASA_API long kasa_authlog_format(kasa_ctx *ctx, const kasa_auth_event *e, char **line_out);

/* Parse one line into fields[KASA_AUTHLOG_FIELDS] (each malloc'd, unescaped). */
KASA_API long kasa_authlog_parse(kasa_ctx *ctx, const char *line, char **fields);

KASA_API void kasa_authlog_fields_free(char **fields);

#ifdef __cplusplus
}
#endif

#endif
