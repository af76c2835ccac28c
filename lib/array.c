/*
 * Arrays, kept as records in the directory. The record's strings:
 *   kasa.asa            the alternate service account
 *   kasa.short_name     the NetBIOS-style short name, when there is one
 *   kasa.members        "HOST:PORT[+HTTPPORT][=ADDRESS]" entries, space-separated
 *   kasa.stale          the hosts a forced roll left behind, space-separated
 *   kasa.roll           "KVNO STARTED" while a roll is staged but not committed
 *   kasa.committed      "KVNO AT": the last commit, for the members' retire rule
 *
 * Each record read is also remembered in [array] cache_dir, one file per array, so that
 * kasa status can still ask the members what they hold while the directory is down.
 */
#include "kasa/array.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>

#include "directory.h"
#include "kasa/proto.h"
#include "kasa/spn.h"
#include "private.h"

#define RECORD "array"

void kasa_array_free(kasa_array *a)
{
    if (a == NULL)
        return;
    kasa_array_list_free(a, 1);
}

void kasa_array_list_free(kasa_array *a, size_t n)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].fqdn);
        free(a[i].short_name);
        free(a[i].asa);
        for (size_t m = 0; m < a[i].n_members; m++) {
            free(a[i].members[m].host);
            free(a[i].members[m].address);
        }
        free(a[i].members);
    }
    free(a);
}

long kasa_hostname_check(kasa_ctx *ctx, const char *what, const char *name)
{
    char spn[KASA_SPN_MAX + 8], why[256];

    /* A host name follows the same rules as an SPN's host part. */
    if (name == NULL || strlen(name) > KASA_SPN_HOST_MAX || strchr(name, '/') != NULL ||
        strchr(name, ':') != NULL) {
        return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID, "the %s name is not a valid host name",
                              what);
    }
    snprintf(spn, sizeof(spn), "host/%s", name);
    if (kasa_spn_parse(spn, NULL, why, sizeof(why)) == 0)
        return 0;
    /* Quote the name only when it is short and printable: the message stays one line. */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f)
            return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID, "the %s name: %s", what, why);
    }
    if (strlen(name) > 80)
        return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID, "the %s name: %s", what, why);
    return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID, "%s is not a valid %s name: %s", name, what,
                          why);
}

long kasa_short_name_check(kasa_ctx *ctx, const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > KASA_SHORT_NAME_MAX)
        return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID,
                              "a short name is 1 to 15 characters (a NetBIOS name)");
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID,
                                  "a short name may hold only letters, digits and '-'");
    }
    return 0;
}

long kasa_member_parse(kasa_ctx *ctx, const char *text, kasa_member *out)
{
    const char *colon = strrchr(text, ':');
    char host[KASA_SPN_HOST_MAX + 1];
    size_t hlen = colon != NULL ? (size_t)(colon - text) : strlen(text);
    long port = KASA_PORT_DEFAULT, ret;

    memset(out, 0, sizeof(*out));
    if (hlen == 0 || hlen > KASA_SPN_HOST_MAX)
        return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID,
                              "a member is HOST[:PORT], e.g. cas1.proseware.lab:%d",
                              KASA_PORT_DEFAULT);
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (colon != NULL) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
            return kasa_set_error(ctx, KASA_ERR_ARRAY_INVALID,
                                  "the member's port must be a number from 1 to 65535");
    }
    ret = kasa_hostname_check(ctx, "member", host);
    if (ret)
        return ret;
    out->host = strdup(host);
    out->port = (int)port;
    if (out->host == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    return 0;
}

kasa_member *kasa_array_member(const kasa_array *a, const char *host)
{
    for (size_t i = 0; i < a->n_members; i++) {
        if (strcasecmp(a->members[i].host, host) == 0)
            return &a->members[i];
    }
    return NULL;
}

/* Parse the members string into a->members. */
static long parse_members(kasa_ctx *ctx, kasa_array *a, const char *list)
{
    char *copy = strdup(list), *tok, *save = NULL;
    long ret = 0;

    if (copy == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    a->members = calloc(KASA_ARRAY_MAX_MEMBERS, sizeof(*a->members));
    for (tok = strtok_r(copy, " ", &save);
         !ret && tok != NULL && a->members != NULL && a->n_members < KASA_ARRAY_MAX_MEMBERS;
         tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '='), *plus;
        kasa_member *m = &a->members[a->n_members];
        int http = 0;
        if (eq != NULL)
            *eq = '\0';
        plus = strchr(tok, '+');
        if (plus != NULL) {
            *plus = '\0';
            http = atoi(plus + 1);
        }
        ret = kasa_member_parse(ctx, tok, m);
        m->http_port = http > 0 && http < 65536 ? http : 0;
        if (!ret && eq != NULL && (m->address = strdup(eq + 1)) == NULL)
            ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        if (!ret || m->host != NULL)
            a->n_members++;
    }
    free(copy);
    if (a->members == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    return ret;
}

/* Is host in the space-separated list? */
static bool in_list(const char *list, const char *host)
{
    size_t len = strlen(host);

    for (const char *p = list; p != NULL && *p;) {
        const char *e = strchr(p, ' ');
        size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
        if (l == len && strncasecmp(p, host, len) == 0)
            return true;
        p = e != NULL ? e + 1 : NULL;
    }
    return false;
}

/* The array named fqdn from its record's strings. */
static long array_from_attrs(kasa_ctx *ctx, const char *fqdn, const kasa_attr *attrs, size_t n,
                             kasa_array *a)
{
    const char *stale = NULL;
    long ret = 0;

    a->fqdn = strdup(fqdn);
    for (size_t i = 0; !ret && i < n; i++) {
        const char *k = attrs[i].key, *v = attrs[i].value;
        if (strcmp(k, "kasa.asa") == 0)
            a->asa = strdup(v);
        else if (strcmp(k, "kasa.short_name") == 0 && *v)
            a->short_name = strdup(v);
        else if (strcmp(k, "kasa.members") == 0)
            ret = parse_members(ctx, a, v);
        else if (strcmp(k, "kasa.stale") == 0)
            stale = v;
        else if (strcmp(k, "kasa.roll") == 0) {
            long long started = 0;
            if (sscanf(v, "%u %lld", &a->roll_kvno, &started) == 2)
                a->roll_started = started;
        } else if (strcmp(k, "kasa.committed") == 0) {
            long long at = 0;
            if (sscanf(v, "%u %lld", &a->committed_kvno, &at) == 2)
                a->committed_at = at;
        }
    }
    for (size_t i = 0; !ret && stale != NULL && i < a->n_members; i++)
        a->members[i].stale = in_list(stale, a->members[i].host);
    if (!ret && (a->fqdn == NULL || a->asa == NULL))
        ret = kasa_set_error(ctx, KASA_ERR_DIR, "the record of array %s is incomplete", fqdn);
    return ret;
}

/* cache_dir/array-FQDN. */
static void cache_path(const kasa_config *cfg, const char *fqdn, char *buf, size_t len)
{
    snprintf(buf, len, "%s/array-%s", cfg->cache_dir, fqdn);
}

/* Remember the record: a line "KEY VALUE" per string, written whole (temp, rename).
 * Failing to is no error: the cache only helps when the directory is down. */
static void cache_write(const kasa_config *cfg, const char *fqdn, const kasa_attr *attrs, size_t n)
{
    char path[4200], tmp[4300];
    FILE *f;

    if (cfg == NULL || cfg->cache_dir == NULL)
        return;
    (void)mkdir(cfg->cache_dir, 0755);
    cache_path(cfg, fqdn, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    f = fopen(tmp, "w");
    if (f == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strchr(attrs[i].key, ' ') == NULL && strchr(attrs[i].value, '\n') == NULL)
            fprintf(f, "%s %s\n", attrs[i].key, attrs[i].value);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        (void)unlink(tmp);
}

static long read_array(kasa_dir *dir, const char *fqdn, kasa_array *a)
{
    kasa_attr *attrs = NULL;
    size_t n = 0;
    long ret;

    ret = dir->ops->record_get(dir, RECORD, fqdn, &attrs, &n);
    if (ret == KASA_ERR_ARRAY_NOT_FOUND)
        ret =
            kasa_set_error(dir->ctx, KASA_ERR_ARRAY_NOT_FOUND,
                           "no array %s in the directory; create it with kasa array create", fqdn);
    if (ret)
        return ret;
    ret = array_from_attrs(dir->ctx, fqdn, attrs, n, a);
    if (!ret)
        cache_write(dir->cfg, fqdn, attrs, n);
    kasa_attrs_free(attrs, n);
    return ret;
}

long kasa_array_cached(kasa_ctx *ctx, const kasa_config *cfg, const char *fqdn, kasa_array **out)
{
    char path[4200], line[8192];
    kasa_attr *attrs = NULL;
    size_t n = 0;
    kasa_array *a = NULL;
    FILE *f;
    long ret;

    *out = NULL;
    ret = kasa_hostname_check(ctx, "array", fqdn);
    if (ret)
        return ret;
    cache_path(cfg, fqdn, path, sizeof(path));
    f = fopen(path, "r");
    if (f == NULL)
        return kasa_set_error(ctx, KASA_ERR_ARRAY_NOT_FOUND,
                              "array %s was never read on this host (no %s): %s", fqdn, path,
                              strerror(errno));
    while (!ret && fgets(line, sizeof(line), f) != NULL) {
        char *sp = strchr(line, ' ');
        kasa_attr *more;
        if (sp == NULL)
            continue;
        line[strcspn(line, "\n")] = '\0';
        *sp = '\0';
        more = realloc(attrs, (n + 1) * sizeof(*attrs));
        if (more == NULL) {
            ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
            break;
        }
        attrs = more;
        attrs[n].key = strdup(line);
        attrs[n].value = strdup(sp + 1);
        n++;
    }
    fclose(f);
    if (!ret && (a = calloc(1, sizeof(*a))) == NULL)
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    if (!ret)
        ret = array_from_attrs(ctx, fqdn, attrs, n, a);
    kasa_attrs_free(attrs, n);
    if (ret) {
        kasa_array_free(a);
        return ret;
    }
    *out = a;
    return 0;
}

long kasa_array_get(kasa_dir *dir, const char *fqdn, kasa_array **out)
{
    kasa_array *a;
    long ret;

    *out = NULL;
    ret = kasa_hostname_check(dir->ctx, "array", fqdn);
    if (ret)
        return ret;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    ret = read_array(dir, fqdn, a);
    if (ret) {
        kasa_array_free(a);
        return ret;
    }
    *out = a;
    return 0;
}

long kasa_array_list(kasa_dir *dir, kasa_array **out, size_t *n_out)
{
    char **names = NULL;
    kasa_array *arrays = NULL;
    size_t n = 0, count = 0;
    long ret;

    *out = NULL;
    *n_out = 0;
    ret = dir->ops->record_list(dir, RECORD, &names, &n);
    if (ret)
        return ret;
    arrays = calloc(n + 1, sizeof(*arrays));
    if (arrays == NULL)
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    for (size_t i = 0; !ret && i < n; i++) {
        ret = read_array(dir, names[i], &arrays[count]);
        count++;
    }
    kasa_spn_list_free(names, n);
    if (ret) {
        kasa_array_list_free(arrays, count);
        return ret;
    }
    *out = arrays;
    *n_out = count;
    return 0;
}

long kasa_array_create(kasa_dir *dir, const char *fqdn, const char *asa, const char *short_name)
{
    kasa_account *acct = NULL;
    long ret;

    ret = kasa_hostname_check(dir->ctx, "array", fqdn);
    if (!ret && short_name != NULL)
        ret = kasa_short_name_check(dir->ctx, short_name);
    if (!ret)
        ret = kasa_account_get(dir, asa, &acct);
    kasa_account_free(acct);
    if (!ret)
        ret = dir->ops->record_create(dir, RECORD, fqdn);
    if (ret == KASA_ERR_ARRAY_EXISTS)
        return kasa_set_error(dir->ctx, ret, "array %s already exists; see kasa array show %s",
                              fqdn, fqdn);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, fqdn, "kasa.asa", asa);
    if (!ret && short_name != NULL)
        ret = dir->ops->record_set(dir, RECORD, fqdn, "kasa.short_name", short_name);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, fqdn, "kasa.members", "");
    if (ret && ret != KASA_ERR_ACCOUNT_NOT_FOUND && ret != KASA_ERR_NOT_MANAGED &&
        kasa_exit_status(ret) != 2)
        (void)dir->ops->record_delete(dir, RECORD, fqdn);
    return ret;
}

long kasa_array_delete(kasa_dir *dir, const char *fqdn)
{
    kasa_array *a = NULL;
    long ret = kasa_array_get(dir, fqdn, &a);

    kasa_array_free(a);
    return ret ? ret : dir->ops->record_delete(dir, RECORD, fqdn);
}

/* Write the members (and their stale flags) back. */
static long save_members(kasa_dir *dir, const kasa_array *a)
{
    char *list = NULL, *stale = NULL;
    size_t cap = 1;
    long ret;

    for (size_t i = 0; i < a->n_members; i++)
        cap += strlen(a->members[i].host) + 16 +
               (a->members[i].address ? strlen(a->members[i].address) + 1 : 0) + 1;
    list = calloc(1, cap);
    stale = calloc(1, cap);
    if (list == NULL || stale == NULL) {
        free(list);
        free(stale);
        return kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    }
    for (size_t i = 0; i < a->n_members; i++) {
        const kasa_member *m = &a->members[i];
        size_t l = strlen(list);
        char http[16] = "";
        if (m->http_port > 0)
            snprintf(http, sizeof(http), "+%d", m->http_port);
        snprintf(list + l, cap - l, "%s%s:%d%s%s%s", l ? " " : "", m->host, m->port, http,
                 m->address ? "=" : "", m->address ? m->address : "");
        if (m->stale) {
            l = strlen(stale);
            snprintf(stale + l, cap - l, "%s%s", l ? " " : "", m->host);
        }
    }
    ret = dir->ops->record_set(dir, RECORD, a->fqdn, "kasa.members", list);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, a->fqdn, "kasa.stale", stale);
    free(list);
    free(stale);
    return ret;
}

long kasa_array_add_member(kasa_dir *dir, const char *fqdn, const char *host, int port,
                           int http_port, const char *address)
{
    kasa_array *a = NULL;
    kasa_member *m;
    long ret;

    ret = kasa_hostname_check(dir->ctx, "member", host);
    if (!ret && address != NULL && (strchr(address, ' ') != NULL || strchr(address, '=') != NULL))
        ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_INVALID, "a member address holds no spaces");
    if (!ret)
        ret = kasa_array_get(dir, fqdn, &a);
    if (ret)
        goto cleanup;
    m = kasa_array_member(a, host);
    if (m == NULL) {
        if (a->n_members >= KASA_ARRAY_MAX_MEMBERS) {
            ret = kasa_set_error(dir->ctx, KASA_ERR_ARRAY_INVALID,
                                 "an array has at most %d members", KASA_ARRAY_MAX_MEMBERS);
            goto cleanup;
        }
        m = &a->members[a->n_members++];
        m->host = strdup(host);
    }
    m->port = port;
    m->http_port = http_port;
    free(m->address);
    m->address = address != NULL ? strdup(address) : NULL;
    if (m->host == NULL || (address != NULL && m->address == NULL))
        ret = kasa_set_error(dir->ctx, KASA_ERR_NOMEM, NULL);
    else
        ret = save_members(dir, a);

cleanup:
    kasa_array_free(a);
    return ret;
}

long kasa_array_remove_member(kasa_dir *dir, const char *fqdn, const char *host)
{
    kasa_array *a = NULL;
    kasa_member *m;
    long ret;

    ret = kasa_array_get(dir, fqdn, &a);
    if (ret)
        goto cleanup;
    m = kasa_array_member(a, host);
    if (m == NULL) {
        ret = kasa_set_error(dir->ctx, KASA_ERR_MEMBER_NOT_FOUND, "%s is not a member of %s", host,
                             fqdn);
        goto cleanup;
    }
    free(m->host);
    free(m->address);
    memmove(m, m + 1, (size_t)(&a->members[a->n_members] - (m + 1)) * sizeof(*m));
    a->n_members--;
    ret = save_members(dir, a);

cleanup:
    kasa_array_free(a);
    return ret;
}

long kasa_array_save_state(kasa_dir *dir, const kasa_array *a)
{
    char roll[64], committed[64];
    long ret;

    snprintf(roll, sizeof(roll), "%u %lld", a->roll_kvno, (long long)a->roll_started);
    snprintf(committed, sizeof(committed), "%u %lld", a->committed_kvno,
             (long long)a->committed_at);
    ret = dir->ops->record_set(dir, RECORD, a->fqdn, "kasa.roll", a->roll_kvno ? roll : NULL);
    if (!ret)
        ret = dir->ops->record_set(dir, RECORD, a->fqdn, "kasa.committed", committed);
    if (!ret)
        ret = save_members(dir, a);
    return ret;
}
