/*
 * Writing and reading auth log lines. CSV quoting is libcsv's; the escaping of control
 * characters (which CSV would allow inside quotes, but which would split a line for grep
 * and for people) is ours, and so is the neutralization of values a spreadsheet would
 * run as a formula (OWASP's CSV injection advice: a leading single quote).
 */
#include "kasa/authlog.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "private.h"

/* Would a spreadsheet read s as a formula (or is s already quoted by the rule below)?
 * Attacker-chosen names reach the log from unauthenticated tickets. */
static bool needs_quote(const char *s)
{
    return s != NULL && s[0] != '\0' && strchr("=+-@\t\r'", s[0]) != NULL;
}

/* s with a leading ' when needs_quote(s), control bytes as \xNN and backslashes doubled
 * (malloc'd). */
static char *escape(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0, o = 0;
    char *out = malloc(len * 4 + 2);

    if (out == NULL)
        return NULL;
    if (needs_quote(s))
        out[o++] = '\'';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)sprintf(out + o, "\\x%02x", c);
        else if (c == '\\')
            o += (size_t)sprintf(out + o, "\\\\");
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

/* Undo escape(): the leading ' first (escape() added one exactly when the value started
 * with one of needs_quote()'s bytes or a quote), then the escapes. */
static void unescape(char *s)
{
    char *w = s, *r = s;

    if (*r == '\'')
        r++;
    for (; *r; r++) {
        unsigned v;
        if (r[0] == '\\' && r[1] == '\\') {
            *w++ = '\\';
            r++;
        } else if (r[0] == '\\' && r[1] == 'x' && sscanf(r + 2, "%2x", &v) == 1 && r[2] != '\0' &&
                   r[3] != '\0') {
            *w++ = (char)v;
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

long kasa_authlog_format(kasa_ctx *ctx, const kasa_auth_event *e, char **line_out)
{
    char when[32], kvno[16];
    const char *raw[KASA_AUTHLOG_FIELDS];
    char *line = NULL;
    size_t cap = 2, used = 0;
    time_t t = (time_t)e->time;
    struct tm tm;

    *line_out = NULL;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(kvno, sizeof(kvno), "%u", e->kvno);
    raw[0] = when;
    raw[1] = e->member;
    raw[2] = e->client;
    raw[3] = e->principal;
    raw[4] = e->spn;
    raw[5] = e->mechanism;
    raw[6] = e->kvno ? kvno : "";
    raw[7] = e->enctype;
    raw[8] = e->challenge ? "challenge" : e->ok ? "ok" : "failed";
    raw[9] = e->reason;
    for (int i = 0; i < KASA_AUTHLOG_FIELDS; i++)
        cap += (raw[i] != NULL ? strlen(raw[i]) : 0) * 8 + 6;
    line = malloc(cap);
    if (line == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    for (int i = 0; i < KASA_AUTHLOG_FIELDS; i++) {
        char *esc = escape(raw[i]);
        if (esc == NULL) {
            free(line);
            return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        }
        if (i > 0)
            line[used++] = ',';
        used += csv_write(line + used, cap - used - 2, esc, strlen(esc));
        free(esc);
    }
    line[used++] = '\n';
    line[used] = '\0';
    *line_out = line;
    return 0;
}

struct parse_state {
    char **fields;
    int n;
    bool overflow;
};

static void on_field(void *s, size_t len, void *data)
{
    struct parse_state *p = data;

    if (p->n >= KASA_AUTHLOG_FIELDS) {
        p->overflow = true;
        return;
    }
    p->fields[p->n] = strndup(s != NULL ? s : "", len);
    if (p->fields[p->n] != NULL)
        unescape(p->fields[p->n]);
    p->n++;
}

long kasa_authlog_parse(kasa_ctx *ctx, const char *line, char **fields)
{
    struct csv_parser parser;
    struct parse_state st = {fields, 0, false};
    size_t len = strcspn(line, "\r\n");
    bool ok;

    memset(fields, 0, KASA_AUTHLOG_FIELDS * sizeof(*fields));
    if (csv_init(&parser, CSV_STRICT) != 0)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    ok = csv_parse(&parser, line, len, on_field, NULL, &st) == len &&
         csv_fini(&parser, on_field, NULL, &st) == 0;
    csv_free(&parser);
    for (int i = 0; ok && i < st.n; i++)
        ok = fields[i] != NULL;
    if (!ok || st.overflow || st.n != KASA_AUTHLOG_FIELDS) {
        kasa_authlog_fields_free(fields);
        return kasa_set_error(ctx, KASA_ERR_PROTO, "not an auth log line (%d fields, expected %d)",
                              st.n, KASA_AUTHLOG_FIELDS);
    }
    return 0;
}

void kasa_authlog_fields_free(char **fields)
{
    for (int i = 0; i < KASA_AUTHLOG_FIELDS; i++) {
        free(fields[i]);
        fields[i] = NULL;
    }
}
