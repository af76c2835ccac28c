/*
 * The Prometheus text exposition format (0.0.4), as kasa's daemons write it for their
 * /metrics endpoints: a metric family's HELP and TYPE lines, and label values escaped.
 * What the metrics are, and how they are served, is each daemon's business.
 */
#ifndef KASA_PROMTEXT_H
#define KASA_PROMTEXT_H

#include <stdio.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "# HELP name help" and "# TYPE name type" (counter, gauge); help is one line of
 * fixed text, written with backslashes and newlines escaped. */
KASA_API void kasa_prom_family(FILE *f, const char *name, const char *type, const char *help);

/* A label value, between the quotes the caller writes: backslash, double quote and
 * newline escaped, so no value can end its label or its line. */
KASA_API void kasa_prom_label(FILE *f, const char *value);

#ifdef __cplusplus
}
#endif

#endif
