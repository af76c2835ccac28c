/*
 * The accept path's keys in memory (kasa/acceptor.h). The keytab file is read by MIT's own
 * FILE keytab code into a MEMORY keytab, and one acceptor credential per principal is
 * acquired from it with gss_acquire_cred_from; the set is reference-counted and swapped
 * whole under a mutex, so a request holds one set from start to end.
 *
 * MIT's FILE reader takes a file that ends inside an entry for a shorter keytab (a short
 * read is KRB5_KT_END, the same as the end), so the record framing (a version, then
 * records each after a 32-bit length) is walked here before MIT reads the entries: a
 * keytab cut short by a crash or a copy in progress is refused rather than taken for one
 * with fewer keys. Nothing of an entry's content is read here.
 */
#include "kasa/acceptor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "kasa/kasa_err.h"
#include "private.h"

#define MAX_KEYTAB_BYTES (16 * 1024 * 1024) /* far above any array's keytab */
#define POLL_SECONDS 5                      /* the check that catches a missed event */

struct princ {
    char *name;
    gss_cred_id_t *creds; /* copies of them */
};

struct kasa_accept_keys {
    unsigned refs;              /* under the acceptor's lock */
    char ktname[96];            /* the MEMORY keytab, "" when there are no keys */
    size_t n_princs, n_entries; /* principals (each with its credential), keytab entries */
    struct princ *princs;
    unsigned max_kvno, copies;
    unsigned long generation;
};

/* What a file was when last looked at: a change of any of these is a new keytab. */
struct ident {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct kasa_acceptor {
    char *path, *dir, *base;
    kasa_acceptor_log_fn log;
    void *log_data;
    unsigned copies;
    pthread_mutex_t lock; /* cur, counters */
    kasa_accept_keys *cur;
    unsigned long reloads, refused;
    pthread_mutex_t reload_lock; /* one reload at a time; kc, seen */
    krb5_context kc;
    struct ident seen;
    bool watching;
    pthread_t thread;
    int ino_fd, wake[2];
};

static const gss_OID_desc spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

static void say(kasa_acceptor *a, int level, const char *fmt, ...) KASA_PRINTF(3, 4);

static void say(kasa_acceptor *a, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (a->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    a->log(a->log_data, level, msg);
}

/* MIT's API has no way to destroy a MEMORY keytab (krb5_kt_destroy is not exported in
 * 1.20): an emptied one is kept here and used again by the next load, so reloads do not
 * leave one behind each. */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static char (*spares)[96];
static size_t n_spares;

/* Remove every entry of the MEMORY keytab name (krb5 wipes each key) and keep the name. */
static void empty_memory_keytab(const char *name)
{
    krb5_context kc = NULL;
    krb5_keytab kt = NULL;
    krb5_kt_cursor cur;
    krb5_keytab_entry ent;
    bool emptied = false;

    /* A context of our own: this may run in any request thread. */
    if (krb5_init_context(&kc) != 0)
        return;
    if (krb5_kt_resolve(kc, name, &kt) == 0) {
        for (;;) {
            krb5_error_code kret;
            if (krb5_kt_start_seq_get(kc, kt, &cur) != 0)
                break;
            kret = krb5_kt_next_entry(kc, kt, &ent, &cur);
            krb5_kt_end_seq_get(kc, kt, &cur);
            if (kret == KRB5_KT_END) {
                emptied = true;
                break;
            }
            if (kret != 0)
                break;
            kret = krb5_kt_remove_entry(kc, kt, &ent);
            krb5_free_keytab_entry_contents(kc, &ent);
            if (kret != 0)
                break;
        }
        krb5_kt_close(kc, kt);
    }
    krb5_free_context(kc);
    if (emptied) {
        pthread_mutex_lock(&spare_lock);
        char(*more)[96] = realloc(spares, (n_spares + 1) * sizeof(*spares));
        if (more != NULL) {
            spares = more;
            snprintf(spares[n_spares++], sizeof(spares[0]), "%s", name);
        }
        pthread_mutex_unlock(&spare_lock);
    }
}

/* An empty MEMORY keytab's name into name: a spare one, or a new one. */
static void memory_keytab_name(char *name, size_t len, const void *owner)
{
    static atomic_ulong serial;

    pthread_mutex_lock(&spare_lock);
    if (n_spares > 0) {
        snprintf(name, len, "%s", spares[--n_spares]);
        pthread_mutex_unlock(&spare_lock);
        return;
    }
    pthread_mutex_unlock(&spare_lock);
    snprintf(name, len, "MEMORY:kasa-accept-%ld-%p-%lu", (long)getpid(), owner,
             atomic_fetch_add(&serial, 1) + 1);
}

static void free_keys(kasa_accept_keys *k)
{
    OM_uint32 minor;

    if (k == NULL)
        return;
    /* The credentials first: they hold the MEMORY keytab open. */
    for (size_t i = 0; i < k->n_princs; i++) {
        for (unsigned c = 0; k->princs[i].creds != NULL && c < k->copies; c++)
            gss_release_cred(&minor, &k->princs[i].creds[c]);
        free(k->princs[i].creds);
        free(k->princs[i].name);
    }
    free(k->princs);
    if (k->ktname[0] != '\0')
        empty_memory_keytab(k->ktname);
    free(k);
}

/* The identity of path now; exists false when there is no such file. */
static void identify(const char *path, struct ident *id)
{
    struct stat sb;

    memset(id, 0, sizeof(*id));
    if (stat(path, &sb) != 0)
        return;
    id->exists = true;
    id->dev = sb.st_dev;
    id->ino = sb.st_ino;
    id->size = sb.st_size;
    id->mtime = sb.st_mtim;
    id->ctime = sb.st_ctim;
}

static bool same_ident(const struct ident *x, const struct ident *y)
{
    return x->exists == y->exists && x->dev == y->dev && x->ino == y->ino && x->size == y->size &&
           x->mtime.tv_sec == y->mtime.tv_sec && x->mtime.tv_nsec == y->mtime.tv_nsec &&
           x->ctime.tv_sec == y->ctime.tv_sec && x->ctime.tv_nsec == y->ctime.tv_nsec;
}

/* Whether buf is a whole keytab: MIT's version bytes, then records that each fit. */
static bool framing_whole(const unsigned char *buf, size_t len, char *why, size_t why_len)
{
    size_t off = 2;

    if (len < 2 || buf[0] != 5 || (buf[1] != 1 && buf[1] != 2)) {
        snprintf(why, why_len, "not a keytab (no keytab version at its start)");
        return false;
    }
    if (buf[1] == 1) /* version 1 is in host byte order; no one has written it since 1995 */
        return true;
    while (off < len) {
        int32_t size;
        size_t need;
        if (len - off < 4) {
            snprintf(why, why_len, "truncated: it ends inside an entry's length, at byte %zu", off);
            return false;
        }
        size = (int32_t)((uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 |
                         (uint32_t)buf[off + 2] << 8 | (uint32_t)buf[off + 3]);
        off += 4;
        if (size == 0) /* MIT's end mark */
            return true;
        if (size == INT32_MIN) {
            snprintf(why, why_len, "not a keytab (an entry of impossible length at byte %zu)",
                     off - 4);
            return false;
        }
        need = (size_t)(size < 0 ? -(int64_t)size : size);
        if (need > len - off) {
            snprintf(why, why_len,
                     "truncated: an entry at byte %zu needs %zu bytes, the file has %zu more",
                     off - 4, need, len - off);
            return false;
        }
        off += need;
    }
    return true;
}

/* Read the whole file behind fd (at most MAX_KEYTAB_BYTES) into a buffer the caller wipes. */
static long read_all(kasa_ctx *ctx, int fd, const char *path, unsigned char **buf_out,
                     size_t *len_out)
{
    struct stat sb;
    unsigned char *buf;
    size_t got = 0;

    *buf_out = NULL;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return kasa_set_error(ctx, KASA_ERR_KEYTAB, "%s is not a regular file", path);
    if (sb.st_size > MAX_KEYTAB_BYTES)
        return kasa_set_error(ctx, KASA_ERR_KEYTAB,
                              "%s is larger than a keytab can be (%lld bytes)", path,
                              (long long)sb.st_size);
    buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    while (got < (size_t)sb.st_size) {
        ssize_t r = pread(fd, buf + got, (size_t)sb.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    *buf_out = buf;
    *len_out = got;
    return 0;
}

/* Copy every entry of the FILE keytab fd into the MEMORY keytab mem; count what it holds. */
static long copy_entries(kasa_ctx *ctx, kasa_acceptor *a, int fd, krb5_keytab mem,
                         kasa_accept_keys *k)
{
    char name[PATH_MAX + 8];
    krb5_keytab kt = NULL;
    krb5_kt_cursor cur;
    krb5_keytab_entry ent;
    krb5_error_code kret;
    long ret = 0;

    /* The descriptor already open, not the path: the file kasad renames over it next is
     * another inode, and what MIT reads is what was checked. */
    snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
    if (access(name, R_OK) == 0)
        snprintf(name, sizeof(name), "FILE:/proc/self/fd/%d", fd);
    else /* no /proc: the path, and the identity check after the read */
        snprintf(name, sizeof(name), "FILE:%s", a->path);
    kret = krb5_kt_resolve(a->kc, name, &kt);
    if (kret == 0)
        kret = krb5_kt_start_seq_get(a->kc, kt, &cur);
    if (kret != 0) {
        ret = kasa_set_krb5_error(ctx, KASA_ERR_KEYTAB, a->kc, kret, "%s cannot be read", a->path);
        goto cleanup;
    }
    while ((kret = krb5_kt_next_entry(a->kc, kt, &ent, &cur)) == 0) {
        char *pname = NULL;
        bool known = false;
        kret = krb5_kt_add_entry(a->kc, mem, &ent);
        if (kret == 0)
            kret = krb5_unparse_name(a->kc, ent.principal, &pname);
        if (kret == 0) {
            for (size_t i = 0; i < k->n_princs && !known; i++)
                known = strcmp(k->princs[i].name, pname) == 0;
            if (!known) {
                struct princ *p = realloc(k->princs, (k->n_princs + 1) * sizeof(*p));
                if (p == NULL) {
                    kret = ENOMEM;
                } else {
                    k->princs = p;
                    p[k->n_princs].name = pname;
                    p[k->n_princs].creds = calloc(k->copies, sizeof(gss_cred_id_t));
                    k->n_princs++;
                    pname = NULL;
                    if (p[k->n_princs - 1].creds == NULL)
                        kret = ENOMEM;
                }
            }
        }
        if (ent.vno > k->max_kvno)
            k->max_kvno = ent.vno;
        k->n_entries++;
        krb5_free_unparsed_name(a->kc, pname);
        krb5_free_keytab_entry_contents(a->kc, &ent); /* wipes the key */
        if (kret != 0)
            break;
    }
    krb5_kt_end_seq_get(a->kc, kt, &cur);
    if (kret != KRB5_KT_END)
        ret = kasa_set_krb5_error(ctx, KASA_ERR_KEYTAB, a->kc, kret, "%s cannot be read whole",
                                  a->path);
cleanup:
    if (kt != NULL)
        krb5_kt_close(a->kc, kt);
    return ret;
}

/* One credential per principal, from the MEMORY keytab, with no replay cache of MIT's. */
static long acquire_creds(kasa_ctx *ctx, kasa_accept_keys *k)
{
    gss_key_value_element_desc el[2] = {{"keytab", k->ktname}, {"rcache", "none:"}};
    gss_key_value_set_desc store = {2, el};
    gss_OID_desc mechs[2] = {spnego_oid, *gss_mech_krb5};
    gss_OID_set_desc set = {2, mechs};
    OM_uint32 major, minor;

    for (size_t i = 0; i < k->n_princs; i++) {
        gss_buffer_desc nb = {strlen(k->princs[i].name), k->princs[i].name};
        gss_name_t name = GSS_C_NO_NAME;
        major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
        for (unsigned c = 0; !GSS_ERROR(major) && c < k->copies; c++)
            major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &set, GSS_C_ACCEPT,
                                          &store, &k->princs[i].creds[c], NULL, NULL);
        gss_release_name(&minor, &name);
        if (GSS_ERROR(major))
            return kasa_set_error(ctx, KASA_ERR_KEYTAB,
                                  "no acceptor credential for %s from the keys in memory "
                                  "(GSS-API major status 0x%x)",
                                  k->princs[i].name, (unsigned)major);
    }
    return 0;
}

/* Build a whole set of keys from the file as it is now, into *out. */
static long load(kasa_ctx *ctx, kasa_acceptor *a, const struct ident *now, kasa_accept_keys **out)
{
    kasa_accept_keys *k = NULL;
    krb5_keytab mem = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    char why[160];
    struct ident after;
    int fd = -1;
    long ret;
    krb5_error_code kret;

    *out = NULL;
    fd = open(a->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "%s cannot be opened: %s", a->path,
                             strerror(errno));
        goto cleanup;
    }
    ret = read_all(ctx, fd, a->path, &buf, &len);
    if (ret)
        goto cleanup;
    if (!framing_whole(buf, len, why, sizeof(why))) {
        ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "%s is %s", a->path, why);
        goto cleanup;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    k->refs = 1;
    k->copies = a->copies;
    memory_keytab_name(k->ktname, sizeof(k->ktname), a);
    kret = krb5_kt_resolve(a->kc, k->ktname, &mem);
    if (kret != 0) {
        k->ktname[0] = '\0';
        ret = kasa_set_krb5_error(ctx, KASA_ERR_KEYTAB, a->kc, kret, "no keytab in memory");
        goto cleanup;
    }
    ret = copy_entries(ctx, a, fd, mem, k);
    if (ret)
        goto cleanup;
    if (k->n_entries == 0) {
        ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "%s holds no keys", a->path);
        goto cleanup;
    }
    /* A file written in place while it was read is read again at its next change. */
    identify(a->path, &after);
    if (!same_ident(now, &after)) {
        ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "%s changed while it was read", a->path);
        goto cleanup;
    }
    ret = acquire_creds(ctx, k);
    if (ret)
        goto cleanup;
    *out = k;
    k = NULL;
cleanup:
    if (mem != NULL)
        krb5_kt_close(a->kc, mem);
    free_keys(k);
    if (buf != NULL) {
        kasa_zap(buf, len);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return ret;
}

static void release_locked(kasa_accept_keys *k, kasa_accept_keys **to_free)
{
    *to_free = NULL;
    if (k != NULL && --k->refs == 0)
        *to_free = k;
}

long kasa_acceptor_check(kasa_ctx *ctx, kasa_acceptor *a, bool force)
{
    struct ident now;
    kasa_accept_keys *k = NULL, *old = NULL;
    long ret = 0;

    pthread_mutex_lock(&a->reload_lock);
    identify(a->path, &now);
    if (!force && same_ident(&now, &a->seen))
        goto cleanup;
    if (!now.exists) {
        if (a->seen.exists) {
            pthread_mutex_lock(&a->lock);
            bool had = a->cur->n_entries > 0;
            pthread_mutex_unlock(&a->lock);
            if (had)
                say(a, KASA_LOG_WARNING,
                    "the keytab %s is gone; keeping the keys in memory until one appears", a->path);
        }
        a->seen = now;
        goto cleanup;
    }
    ret = load(ctx, a, &now, &k);
    a->seen = now; /* a file refused is said once, not at every check */
    if (ret) {
        pthread_mutex_lock(&a->lock);
        a->refused++;
        bool had = a->cur->n_entries > 0;
        pthread_mutex_unlock(&a->lock);
        say(a, KASA_LOG_ERR, "%s; %s", kasa_error(ctx),
            had ? "keeping the last good keys" : "no keys until a good keytab appears");
        goto cleanup;
    }
    pthread_mutex_lock(&a->lock);
    k->generation = a->cur->generation + 1;
    a->reloads++;
    release_locked(a->cur, &old);
    a->cur = k;
    pthread_mutex_unlock(&a->lock);
    say(a, KASA_LOG_INFO, "keys loaded from %s: %zu entries, %zu principals, kvno up to %u",
        a->path, k->n_entries, k->n_princs, k->max_kvno);
cleanup:
    pthread_mutex_unlock(&a->reload_lock);
    free_keys(old);
    return ret;
}

/* The watch: inotify on the keytab's directory (kasad renames a new file over the old),
 * and a check every POLL_SECONDS whatever it says. */
static void *watch(void *arg)
{
    kasa_acceptor *a = arg;
    kasa_ctx *ctx = NULL;
    char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

    if (kasa_ctx_new(&ctx) != 0)
        return NULL;
    for (;;) {
        struct pollfd pfd[2] = {{a->wake[0], POLLIN, 0}, {a->ino_fd, POLLIN, 0}};
        int n = poll(pfd, a->ino_fd >= 0 ? 2 : 1, POLL_SECONDS * 1000);
        if (n > 0 && (pfd[0].revents & POLLIN))
            break;
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            /* Only whether our file was named matters; the check looks at it afresh. */
            while (read(a->ino_fd, evbuf, sizeof(evbuf)) > 0)
                ;
        }
        kasa_acceptor_check(ctx, a, false);
    }
    kasa_ctx_free(ctx);
    return NULL;
}

long kasa_acceptor_open(kasa_ctx *ctx, const char *path, unsigned flags, unsigned copies,
                        kasa_acceptor_log_fn log, void *log_data, kasa_acceptor **out)
{
    kasa_acceptor *a = NULL;
    const char *slash;
    long ret = 0;
    krb5_error_code kret;

    *out = NULL;
    if (path == NULL || *path == '\0' || strlen(path) >= PATH_MAX)
        return kasa_set_error(ctx, KASA_ERR_USAGE, "no keytab file name");
    if (copies < 1 || copies > 256)
        return kasa_set_error(ctx, KASA_ERR_USAGE, "%u credentials per principal: 1 to 256",
                              copies);
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    a->ino_fd = a->wake[0] = a->wake[1] = -1;
    a->copies = copies;
    a->log = log;
    a->log_data = log_data;
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->reload_lock, NULL);
    slash = strrchr(path, '/');
    a->path = strdup(path);
    a->dir = slash == NULL   ? strdup(".")
             : slash == path ? strdup("/")
                             : strndup(path, (size_t)(slash - path));
    a->base = strdup(slash == NULL ? path : slash + 1);
    a->cur = calloc(1, sizeof(*a->cur));
    if (a->path == NULL || a->dir == NULL || a->base == NULL || a->cur == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        goto cleanup;
    }
    a->cur->refs = 1;
    a->cur->copies = copies;
    kret = krb5_init_context(&a->kc);
    if (kret != 0) {
        a->kc = NULL;
        ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "no krb5 context (krb5.conf unreadable?)");
        goto cleanup;
    }
    /* A first file that cannot be used is said (through log) and waited for, as a file
     * that is not there yet. */
    (void)kasa_acceptor_check(ctx, a, true);
    if (flags & KASA_ACCEPTOR_WATCH) {
        if (pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
            ret = kasa_set_error(ctx, KASA_ERR_IO, "no pipe for the keytab watch: %s",
                                 strerror(errno));
            goto cleanup;
        }
        a->ino_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (a->ino_fd >= 0 &&
            inotify_add_watch(a->ino_fd, a->dir,
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) < 0) {
            close(a->ino_fd);
            a->ino_fd = -1;
        }
        if (a->ino_fd < 0)
            say(a, KASA_LOG_WARNING,
                "no inotify watch on %s (%s): the keytab is checked every %d s instead", a->dir,
                strerror(errno), POLL_SECONDS);
        if (pthread_create(&a->thread, NULL, watch, a) != 0) {
            ret = kasa_set_error(ctx, KASA_ERR_IO, "no thread for the keytab watch");
            goto cleanup;
        }
        a->watching = true;
    }
    *out = a;
    a = NULL;
cleanup:
    kasa_acceptor_close(a);
    return ret;
}

void kasa_acceptor_close(kasa_acceptor *a)
{
    if (a == NULL)
        return;
    if (a->watching) {
        (void)!write(a->wake[1], "x", 1);
        pthread_join(a->thread, NULL);
    }
    if (a->ino_fd >= 0)
        close(a->ino_fd);
    if (a->wake[0] >= 0) {
        close(a->wake[0]);
        close(a->wake[1]);
    }
    free_keys(a->cur);
    if (a->kc != NULL)
        krb5_free_context(a->kc);
    pthread_mutex_destroy(&a->lock);
    pthread_mutex_destroy(&a->reload_lock);
    free(a->path);
    free(a->dir);
    free(a->base);
    free(a);
}

kasa_accept_keys *kasa_acceptor_hold(kasa_acceptor *a)
{
    kasa_accept_keys *k;

    pthread_mutex_lock(&a->lock);
    k = a->cur;
    k->refs++;
    pthread_mutex_unlock(&a->lock);
    return k;
}

void kasa_acceptor_release(kasa_acceptor *a, kasa_accept_keys *k)
{
    kasa_accept_keys *old;

    if (k == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    release_locked(k, &old);
    pthread_mutex_unlock(&a->lock);
    free_keys(old);
}

/* This thread's copy of a credential: threads take slots in turn, once each. */
static unsigned thread_slot(void)
{
    static atomic_uint next;
    static _Thread_local unsigned slot = UINT_MAX;

    if (slot == UINT_MAX)
        slot = atomic_fetch_add(&next, 1) % 65536;
    return slot;
}

gss_cred_id_t kasa_accept_keys_find(const kasa_accept_keys *k, const char *principal,
                                    const char **name_out)
{
    const struct princ *p = NULL;

    if (name_out != NULL)
        *name_out = NULL;
    if (k == NULL || principal == NULL)
        return GSS_C_NO_CREDENTIAL;
    for (size_t i = 0; i < k->n_princs && p == NULL; i++)
        if (strcmp(k->princs[i].name, principal) == 0)
            p = &k->princs[i];
    /* Active Directory's KDC issues a ticket for an SPN in whatever case the client asked
     * it, with the key of the SPN it found in any case. */
    for (size_t i = 0; i < k->n_princs && p == NULL; i++)
        if (strcasecmp(k->princs[i].name, principal) == 0)
            p = &k->princs[i];
    if (p == NULL)
        return GSS_C_NO_CREDENTIAL;
    if (name_out != NULL)
        *name_out = p->name;
    return p->creds[thread_slot() % k->copies];
}

gss_cred_id_t kasa_accept_keys_cred(const kasa_accept_keys *k, const char *principal)
{
    return kasa_accept_keys_find(k, principal, NULL);
}

void kasa_acceptor_info(kasa_acceptor *a, kasa_accept_info *out)
{
    pthread_mutex_lock(&a->lock);
    out->entries = a->cur->n_entries;
    out->principals = a->cur->n_princs;
    out->max_kvno = a->cur->max_kvno;
    out->generation = a->cur->generation;
    out->reloads = a->reloads;
    out->refused = a->refused;
    pthread_mutex_unlock(&a->lock);
}
