/*
 * kasa.conf: krb5.conf-style profile syntax, read with the profile library MIT Kerberos
 * ships. See kasa.conf(5).
 *
 *   [directory]
 *       backend = mit
 *       realm = PROSEWARE.LAB
 *       admin_server = 127.0.0.1:749
 *       principal = kasa/admin@PROSEWARE.LAB
 *       keytab = /etc/kasa/admin.keytab
 *       enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
 *
 * or, for Active Directory, backend = ad with ldap_uri, base_dn and optionally container.
 */
#ifndef KASA_CONFIG_H
#define KASA_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "kasa/kasa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KASA_CONFIG_ENV "KASA_CONFIG"
#define KASA_CONFIG_DEFAULT "/etc/kasa/kasa.conf"
#define KASA_ENCTYPES_DEFAULT "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96"
#define KASA_CACHE_DIR_DEFAULT "/var/cache/kasa"

typedef struct kasa_config {
    char *path;         /* the file read */
    char *backend;      /* "mit" or "ad" */
    char *realm;        /* NULL: krb5.conf's default realm */
    char *admin_server; /* host[:port]; NULL: krb5.conf's admin_server for the realm */
    char *principal;    /* who kasa authenticates to the directory as */
    char *keytab;       /* that principal's keys; NULL: use ccache */
    char *ccache;       /* NULL: the default credential cache */
    int32_t *enctypes;  /* the enctypes of the keys kasa makes */
    /* backend = ad */
    char *ldap_uri;  /* ldap://dc1.proseware.lab */
    char *base_dn;   /* DC=proseware,DC=lab; the realm is made from it when not set */
    char *container; /* where new accounts go; NULL: CN=Computers or CN=Users of base_dn */
    size_t n_enctypes;
    /* [array] */
    int64_t keep_window;  /* seconds a superseded kvno is kept; 0: from the realm */
    int64_t clock_skew;   /* seconds added to the realm's ticket lifetime */
    int64_t lock_timeout; /* seconds after which a roll's lock may be taken over */
    char *cache_dir;      /* where arrays are remembered for when the directory is down */
} kasa_config;

/*
 * Read the configuration from path; when path is NULL, from $KASA_CONFIG, else from
 * KASA_CONFIG_DEFAULT. Unknown settings are warned about, not fatal.
 */
KASA_API long kasa_config_load(kasa_ctx *ctx, const char *path, kasa_config **cfg_out);

KASA_API void kasa_config_free(kasa_config *cfg);

/* The path kasa_config_load() would read for path (NULL: the environment, the default). */
KASA_API const char *kasa_config_path(const char *path);

/*
 * The number of the first line of the krb5.conf-style file at path that MIT's profile
 * library refuses (a relation without "=", an unclosed "[section", a stray "}", ...), or
 * 0 when there is none or the file cannot be read. The profile library reports a syntax
 * error without its line; kasa.conf, kasad's and kasa-httpd's --config add it with this.
 */
KASA_API unsigned kasa_config_syntax_line(const char *path);

#ifdef __cplusplus
}
#endif

#endif
