/*
 * Reading kasa.conf with MIT's profile library, so its syntax, quoting and comments are
 * exactly krb5.conf's, and administrators need learn nothing new.
 */
#include "kasa/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <com_err.h>
#include <profile.h>

#include "private.h"

static const char *const directory_keys[] = {
    "backend",  "realm",    "admin_server", "principal", "keytab", "ccache",
    "enctypes", "ldap_uri", "base_dn",      "container", NULL,
};

const char *kasa_config_path(const char *path)
{
    const char *env;

    if (path != NULL)
        return path;
    env = secure_getenv(KASA_CONFIG_ENV);
    if (env != NULL && *env != '\0')
        return env;
    return KASA_CONFIG_DEFAULT;
}

void kasa_config_free(kasa_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->backend);
    free(cfg->realm);
    free(cfg->admin_server);
    free(cfg->principal);
    free(cfg->keytab);
    free(cfg->ccache);
    free(cfg->enctypes);
    free(cfg->ldap_uri);
    free(cfg->base_dn);
    free(cfg->container);
    free(cfg->cache_dir);
    free(cfg);
}

/* Copy [directory] key into *out; absent keys give def (which may be NULL). */
static long get_string(kasa_ctx *ctx, profile_t prof, const kasa_config *cfg, const char *key,
                       const char *def, char **out)
{
    char *val = NULL;
    long ret;

    ret = profile_get_string(prof, "directory", key, NULL, def, &val);
    if (ret)
        return kasa_set_error(ctx, KASA_ERR_CONFIG, "%s: cannot read [directory] %s: %s", cfg->path,
                              key, error_message(ret));
    *out = NULL;
    if (val != NULL && *val != '\0') {
        *out = strdup(val);
        if (*out == NULL)
            ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    }
    profile_release_string(val);
    return ret;
}

/* DES, triple DES and export RC4: broken or retired (RFC 6649, RFC 8429). krb5 1.20 has
 * no public call for this. RC4 (arcfour-hmac) stays allowed: some AD realms still need it. */
static bool is_weak(krb5_enctype et)
{
    return et < ENCTYPE_AES128_CTS_HMAC_SHA1_96 || et == ENCTYPE_ARCFOUR_HMAC_EXP;
}

/* Turn a space- or comma-separated list of enctype names into numbers. */
static long parse_enctypes(kasa_ctx *ctx, kasa_config *cfg, const char *list)
{
    char *copy = NULL, *tok, *save = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    long ret = 0;

    copy = strdup(list);
    ids = calloc(strlen(list) / 2 + 1, sizeof(*ids));
    if (copy == NULL || ids == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    for (tok = strtok_r(copy, " \t,", &save); tok != NULL; tok = strtok_r(NULL, " \t,", &save)) {
        krb5_enctype et;
        krb5_boolean valid = FALSE;
        if (krb5_string_to_enctype(tok, &et) != 0 || krb5_c_valid_enctype(et) == FALSE ||
            is_weak(et)) {
            ret = kasa_set_error(ctx, KASA_ERR_CONFIG,
                                 "%s: [directory] enctypes: %s is not an enctype kasa can use "
                                 "(try aes256-cts-hmac-sha1-96)",
                                 cfg->path, tok);
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++)
            valid = valid || ids[i] == et;
        if (!valid)
            ids[n++] = et;
    }
    if (n == 0) {
        ret = kasa_set_error(ctx, KASA_ERR_CONFIG, "%s: [directory] enctypes is empty", cfg->path);
        goto cleanup;
    }
    cfg->enctypes = ids;
    cfg->n_enctypes = n;
    ids = NULL;

cleanup:
    free(copy);
    free(ids);
    return ret;
}

/* Warn about keys kasa does not know in section: a typo must not pass silently. */
static void warn_unknown(kasa_ctx *ctx, profile_t prof, const kasa_config *cfg, const char *section,
                         const char *const *keys)
{
    const char *names[] = {section, NULL};
    char **rel = NULL;

    if (profile_get_relation_names(prof, names, &rel) != 0)
        return;
    for (size_t i = 0; rel[i] != NULL; i++) {
        size_t k = 0;
        while (keys[k] != NULL && strcmp(keys[k], rel[i]) != 0)
            k++;
        if (keys[k] == NULL)
            kasa_warn(ctx, "%s: [%s] %s is not a kasa setting; ignored", cfg->path, section,
                      rel[i]);
    }
    profile_free_list(rel);
}

static const char *const array_keys[] = {"keep_window", "clock_skew", "lock_timeout", "cache_dir",
                                         NULL};

/* [array] key as seconds (a whole number, or with an s, m, h or d suffix), in 0..max. */
static long get_seconds(kasa_ctx *ctx, profile_t prof, const kasa_config *cfg, const char *key,
                        int64_t def, int64_t max, int64_t *out)
{
    char *val = NULL, *end;
    long long v;
    long ret;

    *out = def;
    ret = profile_get_string(prof, "array", key, NULL, NULL, &val);
    if (ret || val == NULL)
        return 0;
    errno = 0;
    v = strtoll(val, &end, 10);
    if (end != val && *end != '\0' && end[1] == '\0' && strchr("smhd", *end) != NULL && v >= 0 &&
        v <= max) { /* a unit; the bound first, so the product cannot overflow */
        v *= *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 1;
        end++;
    }
    if (errno != 0 || end == val || *end != '\0' || v < 0 || v > max)
        ret = kasa_set_error(ctx, KASA_ERR_CONFIG,
                             "%s: [array] %s = %s is not a number of seconds from 0 to %lld (or "
                             "with s, m, h, d)",
                             cfg->path, key, val, (long long)max);
    else
        *out = v;
    profile_release_string(val);
    return ret;
}

/* One line of a profile inside a section: is it valid, and does it open or close a group?
 * The rules are those of MIT's prof_parse.c, restated. */
static bool syntax_ok(char *line, int *level, bool *want_brace)
{
    char *p = line + strspn(line, " \t"), *eq, *tag_end;

    if (*want_brace) {
        *want_brace = false;
        if (*p != '{')
            return false;
        p += 1 + strspn(p + 1, " \t");
        if (*p != '\0' && *p != '#' && *p != ';')
            return false;
        (*level)++;
        return true;
    }
    if (*p == '\0' || *p == '#' || *p == ';')
        return true;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (*level > 0 || close == NULL || close == p + 1)
            return false;
        p = close + 1 + (close[1] == '*');
        return p[strspn(p, " \t")] == '\0';
    }
    if (*p == '}')
        return (*level)-- > 0;
    eq = strchr(p, '=');
    if (eq == NULL || eq == p)
        return false;
    /* The tag is one word, or a quoted string. */
    tag_end = *p == '"' ? strchr(p + 1, '"') : p + strcspn(p, " \t=");
    if (tag_end == NULL || tag_end > eq)
        return false;
    tag_end += *p == '"';
    if (tag_end + strspn(tag_end, " \t") != eq)
        return false;
    p = eq + 1 + strspn(eq + 1, " \t");
    if (*p == '\0') {
        *want_brace = true;
    } else if (*p == '{') {
        p += 1 + strspn(p + 1, " \t");
        if (*p != '\0' && *p != '#' && *p != ';')
            return false;
        (*level)++;
    }
    return true;
}

unsigned kasa_config_syntax_line(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[4096];
    unsigned n = 0, bad = 0, open_at = 0;
    bool in_section = false, want_brace = false;
    int level = 0;

    if (f == NULL)
        return 0;
    while (bad == 0 && fgets(buf, sizeof(buf), f) != NULL) {
        n++;
        buf[strcspn(buf, "\r\n")] = '\0';
        /* Before the first section, lines are comments; include directives are not syntax. */
        if ((!in_section && buf[0] != '[') || strncmp(buf, "include", 7) == 0 ||
            strncmp(buf, "module ", 7) == 0)
            continue;
        in_section = true;
        if (level == 0)
            open_at = n;
        if (!syntax_ok(buf, &level, &want_brace))
            bad = n;
    }
    fclose(f);
    /* A group still open at the end: the line that opened it. */
    if (bad == 0 && (level > 0 || want_brace))
        bad = open_at;
    return bad;
}

long kasa_config_load(kasa_ctx *ctx, const char *path, kasa_config **cfg_out)
{
    kasa_config *cfg = NULL;
    profile_t prof = NULL;
    char *enctypes = NULL;
    long ret;

    *cfg_out = NULL;
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    cfg->path = strdup(kasa_config_path(path));
    if (cfg->path == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    if (access(cfg->path, R_OK) != 0) {
        ret = kasa_set_error(ctx, KASA_ERR_CONFIG,
                             "cannot read %s: %s; give -c FILE or set KASA_CONFIG (for a lab: "
                             "eval \"$(kasa lab env)\")",
                             cfg->path, strerror(errno));
        goto cleanup;
    }
    ret = profile_init_path(cfg->path, &prof);
    if (ret) {
        unsigned line = kasa_config_syntax_line(cfg->path);
        if (line != 0)
            ret = kasa_set_error(ctx, KASA_ERR_CONFIG, "%s:%u: %s", cfg->path, line,
                                 error_message(ret));
        else
            ret = kasa_set_error(ctx, KASA_ERR_CONFIG, "%s: %s", cfg->path, error_message(ret));
        goto cleanup;
    }
    warn_unknown(ctx, prof, cfg, "directory", directory_keys);
    warn_unknown(ctx, prof, cfg, "array", array_keys);
    ret = get_string(ctx, prof, cfg, "backend", "mit", &cfg->backend);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "realm", NULL, &cfg->realm);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "admin_server", NULL, &cfg->admin_server);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "principal", NULL, &cfg->principal);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "keytab", NULL, &cfg->keytab);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "ccache", NULL, &cfg->ccache);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "enctypes", KASA_ENCTYPES_DEFAULT, &enctypes);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "ldap_uri", NULL, &cfg->ldap_uri);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "base_dn", NULL, &cfg->base_dn);
    if (!ret)
        ret = get_string(ctx, prof, cfg, "container", NULL, &cfg->container);
    if (!ret)
        ret = get_seconds(ctx, prof, cfg, "keep_window", 0, 366LL * 86400, &cfg->keep_window);
    if (!ret)
        ret = get_seconds(ctx, prof, cfg, "clock_skew", 300, 86400, &cfg->clock_skew);
    if (!ret)
        ret = get_seconds(ctx, prof, cfg, "lock_timeout", 600, 86400, &cfg->lock_timeout);
    if (!ret) {
        char *v = NULL;
        if (profile_get_string(prof, "array", "cache_dir", NULL, KASA_CACHE_DIR_DEFAULT, &v) == 0 &&
            v != NULL)
            cfg->cache_dir = strdup(v);
        profile_release_string(v);
        if (cfg->cache_dir == NULL)
            ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    }
    if (ret)
        goto cleanup;

    if (cfg->backend == NULL ||
        (strcmp(cfg->backend, "mit") != 0 && strcmp(cfg->backend, "ad") != 0)) {
        ret = kasa_set_error(ctx, KASA_ERR_CONFIG,
                             "%s: [directory] backend = %s is not known; the backends are mit "
                             "and ad",
                             cfg->path, cfg->backend != NULL ? cfg->backend : "");
        goto cleanup;
    }
    if (strcmp(cfg->backend, "ad") == 0 && (cfg->ldap_uri == NULL || cfg->base_dn == NULL)) {
        ret = kasa_set_error(ctx, KASA_ERR_CONFIG,
                             "%s: [directory] backend = ad needs ldap_uri and base_dn (e.g. "
                             "ldap://dc1.proseware.lab and DC=proseware,DC=lab)",
                             cfg->path);
        goto cleanup;
    }
    if (cfg->keytab != NULL && cfg->principal == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_CONFIG,
                             "%s: [directory] keytab is set but principal is not; name the "
                             "principal whose keys the keytab holds",
                             cfg->path);
        goto cleanup;
    }
    if (cfg->keytab != NULL && cfg->ccache != NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_CONFIG, "%s: [directory] set keytab or ccache, not both",
                             cfg->path);
        goto cleanup;
    }
    ret = parse_enctypes(ctx, cfg, enctypes != NULL ? enctypes : KASA_ENCTYPES_DEFAULT);
    if (ret)
        goto cleanup;

    *cfg_out = cfg;
    cfg = NULL;

cleanup:
    free(enctypes);
    if (prof != NULL)
        profile_release(prof);
    kasa_config_free(cfg);
    return ret;
}
