/*
 * The Prometheus text exposition format's escaping, shared by kasad's and kasa-httpd's
 * /metrics: label values may be principal names from a keytab, which must not end a
 * label or a line.
 */
#include "kasa/promtext.h"

/* s with backslash and newline escaped, and double quote too when quote. */
static void put_escaped(FILE *f, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"' && quote)
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

void kasa_prom_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s ", name);
    put_escaped(f, help, false);
    fprintf(f, "\n# TYPE %s %s\n", name, type);
}

void kasa_prom_label(FILE *f, const char *value)
{
    put_escaped(f, value, true);
}
