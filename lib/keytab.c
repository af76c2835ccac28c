/*
 * A member's array keytab and its state file. Reading goes through MIT's keytab API; the
 * file is written as one image in MIT's format (see put_entry: MIT's writer is quadratic
 * in entries and stamps each with the current time) and replaced atomically (temp file,
 * one fsync, rename), so it is exactly what MIT's tools and every GSSAPI acceptor read.
 */
#include "kasa/keytab.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "private.h"

#define STATE_SUFFIX ".state"

void kasa_held_clear(kasa_held *held)
{
    for (size_t i = 0; i < held->n; i++)
        kasa_kvno_set_clear(&held->sets[i]);
    free(held->sets);
    held->sets = NULL;
    held->n = 0;
}

static kasa_kvno_set *find_set(kasa_held *held, unsigned kvno)
{
    for (size_t i = 0; i < held->n; i++) {
        if (held->sets[i].kvno == kvno)
            return &held->sets[i];
    }
    return NULL;
}

/* Insert an empty set for kvno, keeping sets sorted by kvno. */
static kasa_kvno_set *add_set(kasa_held *held, unsigned kvno)
{
    kasa_kvno_set *sets = realloc(held->sets, (held->n + 1) * sizeof(*sets));
    size_t at = 0;

    if (sets == NULL)
        return NULL;
    held->sets = sets;
    while (at < held->n && sets[at].kvno < kvno)
        at++;
    memmove(&sets[at + 1], &sets[at], (held->n - at) * sizeof(*sets));
    memset(&sets[at], 0, sizeof(*sets));
    sets[at].kvno = kvno;
    held->n++;
    return &sets[at];
}

static bool has_principal(const kasa_kvno_set *set, const char *name)
{
    for (size_t i = 0; i < set->n_principals; i++) {
        if (strcmp(set->principals[i], name) == 0)
            return true;
    }
    return false;
}

static long add_principal(kasa_ctx *ctx, kasa_kvno_set *set, const char *name)
{
    char **p = realloc(set->principals, (set->n_principals + 1) * sizeof(*p));

    if (p == NULL || (p[set->n_principals] = strdup(name)) == NULL) {
        if (p != NULL)
            set->principals = p;
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    }
    set->principals = p;
    set->n_principals++;
    return 0;
}

/* Add a copy of key to set's keyset unless its enctype is there already. */
static long add_key(kasa_ctx *ctx, krb5_context kctx, kasa_kvno_set *set, const krb5_keyblock *key)
{
    krb5_keyblock *keys;

    if (set->keys == NULL) {
        set->keys = calloc(1, sizeof(*set->keys));
        if (set->keys == NULL)
            return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
        set->keys->kvno = set->kvno;
    }
    for (size_t i = 0; i < set->keys->n; i++) {
        if (set->keys->keys[i].enctype == key->enctype)
            return 0;
    }
    keys = realloc(set->keys->keys, (set->keys->n + 1) * sizeof(*keys));
    if (keys == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    set->keys->keys = keys;
    if (krb5_copy_keyblock_contents(kctx, key, &keys[set->keys->n]) != 0)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    set->keys->n++;
    return 0;
}

/* Apply the state file's times to the sets; a missing or damaged file leaves them 0. */
static void load_state(const char *path, kasa_held *held)
{
    char state[4096 + sizeof(STATE_SUFFIX)], line[128];
    FILE *f;

    snprintf(state, sizeof(state), "%s" STATE_SUFFIX, path);
    f = fopen(state, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned kvno;
        long long arrived, committed;
        kasa_kvno_set *set;
        if (sscanf(line, "%u %lld %lld", &kvno, &arrived, &committed) != 3)
            continue;
        set = find_set(held, kvno);
        if (set != NULL) {
            if (arrived > 0) /* else keep the keytab's timestamp */
                set->arrived = arrived;
            set->committed = committed;
        }
    }
    fclose(f);
}

/*
 * The keytab read back from its image, the counterpart of put_entry: MIT's FILE reader
 * seeks before every entry (glibc's fseek is a system call: ~8 per entry and read, 3,357
 * lseek in one roll on a member keeping 20 kvnos), and kasad reads its keytab several
 * times a roll. Entries are handed to each() as MIT's reader would give them; holes
 * (negative sizes) are skipped and a zero size ends the file, as in MIT's reader; anything
 * that does not fit is KASA_ERR_KEYTAB. Only version 0x0502 (what MIT and kasa write).
 */
typedef long (*entry_fn)(kasa_ctx *ctx, krb5_context kctx, const krb5_keytab_entry *e, void *arg);

static bool take(const unsigned char **p, const unsigned char *end, size_t n)
{
    if ((size_t)(end - *p) < n)
        return false;
    *p += n;
    return true;
}

static bool get16(const unsigned char **p, const unsigned char *end, unsigned *v)
{
    const unsigned char *q = *p;
    if (!take(p, end, 2))
        return false;
    *v = (unsigned)q[0] << 8 | q[1];
    return true;
}

static bool get32(const unsigned char **p, const unsigned char *end, uint32_t *v)
{
    const unsigned char *q = *p;
    if (!take(p, end, 4))
        return false;
    *v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    return true;
}

static bool get_counted(const unsigned char **p, const unsigned char *end, krb5_data *d)
{
    unsigned len;
    const unsigned char *q;
    if (!get16(p, end, &len))
        return false;
    q = *p;
    if (!take(p, end, len))
        return false;
    d->magic = KV5M_DATA;
    d->length = len;
    d->data = (char *)q;
    return true;
}

#define MAX_COMPONENTS 16

static long read_image(kasa_ctx *ctx, krb5_context kctx, const char *path, entry_fn each, void *arg)
{
    unsigned char *buf = NULL;
    const unsigned char *p, *end;
    struct stat sb;
    size_t len = 0;
    long ret = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size > 64 * 1024 * 1024 ||
        (buf = malloc((size_t)sb.st_size + 1)) == NULL) {
        ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "cannot read keytab %s: %s", path,
                             strerror(errno != 0 ? errno : ENOMEM));
        goto cleanup;
    }
    while (len < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)sb.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    p = buf;
    end = buf + len;
    if (len < 2 || buf[0] != 5 || buf[1] != 2) {
        ret = kasa_set_error(ctx, KASA_ERR_KEYTAB,
                             "keytab %s is damaged: not a keytab of version 0x0502", path);
        goto cleanup;
    }
    p += 2;
    while (!ret && p < end) {
        uint32_t size32, nt, stamp, vno32;
        int32_t size;
        unsigned ncomp, enctype;
        const unsigned char *e, *q, *vno8 = NULL;
        krb5_data comps[MAX_COMPONENTS], key;
        krb5_principal_data princ;
        krb5_keytab_entry ent;
        if (!get32(&p, end, &size32)) {
            ret = -1;
            break;
        }
        size = (int32_t)size32;
        if (size == 0) /* MIT's end mark */
            break;
        if (size < 0) { /* a hole MIT left where an entry was removed */
            if (size == INT32_MIN || !take(&p, end, (size_t)(-(int64_t)size)))
                ret = -1;
            continue;
        }
        q = p;
        if (!take(&p, end, (size_t)size)) {
            ret = -1;
            break;
        }
        e = p;
        memset(&princ, 0, sizeof(princ));
        memset(&ent, 0, sizeof(ent));
        if (!get16(&q, e, &ncomp) || ncomp == 0 || ncomp > MAX_COMPONENTS ||
            !get_counted(&q, e, &princ.realm)) {
            ret = -1;
            break;
        }
        for (unsigned c = 0; c < ncomp; c++)
            if (!get_counted(&q, e, &comps[c]))
                ret = -1;
        if (!ret && get32(&q, e, &nt) && get32(&q, e, &stamp))
            vno8 = q; /* the 8-bit kvno; the 32-bit one may follow the key */
        if (ret || vno8 == NULL || !take(&q, e, 1) || !get16(&q, e, &enctype) ||
            !get_counted(&q, e, &key)) {
            ret = -1;
            break;
        }
        princ.magic = KV5M_PRINCIPAL;
        princ.data = comps;
        princ.length = (krb5_int32)ncomp;
        princ.type = (krb5_int32)nt;
        ent.magic = KV5M_KEYTAB_ENTRY;
        ent.principal = &princ;
        ent.timestamp = (krb5_timestamp)stamp;
        ent.vno = *vno8;
        /* The 32-bit kvno, when the entry has room for it and it is not 0 (as MIT). */
        if ((size_t)(e - q) >= 4 && get32(&q, e, &vno32) && vno32 != 0)
            ent.vno = vno32;
        ent.key.magic = KV5M_KEYBLOCK;
        ent.key.enctype = (krb5_enctype)enctype; /* as MIT reads it: 16 bits, unsigned */
        ent.key.length = key.length;
        ent.key.contents = (krb5_octet *)key.data;
        ret = each(ctx, kctx, &ent, arg);
    }
    if (ret == -1)
        ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "keytab %s is damaged", path);

cleanup:
    if (buf != NULL) {
        kasa_zap(buf, len);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return ret;
}

static long held_entry(kasa_ctx *ctx, krb5_context kctx, const krb5_keytab_entry *entry, void *arg)
{
    kasa_held *held = arg;
    kasa_kvno_set *set = find_set(held, entry->vno);
    char *pname = NULL;
    long r = 0;

    if (set == NULL && (set = add_set(held, entry->vno)) == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    if (krb5_unparse_name(kctx, entry->principal, &pname) != 0)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    if (!has_principal(set, pname))
        r = add_principal(ctx, set, pname);
    /* When the kvno arrived, should the state file not say. */
    if (!r && set->arrived == 0)
        set->arrived = (int64_t)(uint32_t)entry->timestamp;
    if (!r)
        r = add_key(ctx, kctx, set, &entry->key);
    krb5_free_unparsed_name(kctx, pname);
    return r;
}

long kasa_held_load(kasa_ctx *ctx, const char *path, kasa_held *held)
{
    krb5_context kctx;
    long ret;

    memset(held, 0, sizeof(*held));
    ret = kasa_krb5(ctx, &kctx);
    if (ret)
        return ret;
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return 0;
    ret = read_image(ctx, kctx, path, held_entry, held);
    if (ret) {
        kasa_held_clear(held);
        return ret;
    }
    load_state(path, held);
    return 0;
}

/* fsync path, then rename it to final and fsync the directory. */
static long commit_file(kasa_ctx *ctx, const char *tmp, const char *final, int gid)
{
    char dir[4096];
    const char *slash = strrchr(final, '/');
    int fd;

    /* Owner and mode are set on the temporary file, so the name never points at a file a
     * reader (the service's group) cannot open. */
    fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0 || close(fd) != 0 ||
        (gid >= 0 && chown(tmp, (uid_t)-1, (gid_t)gid) != 0) ||
        chmod(tmp, gid >= 0 ? 0640 : 0600) != 0 || rename(tmp, final) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return kasa_set_error(ctx, KASA_ERR_KEYTAB, "cannot replace %s: %s", final, strerror(e));
    }
    snprintf(dir, sizeof(dir), "%.*s", slash != NULL ? (int)(slash - final) : 1,
             slash != NULL ? final : ".");
    if (dir[0] == '\0')
        strcpy(dir, "/");
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    return 0;
}

/*
 * The keytab as one image in memory, in MIT's FILE keytab format version 0x0502
 * (doc/formats/keytab_file_format.rst in krb5: big-endian; each entry a 32-bit size, the
 * principal as counted strings with its name type, a timestamp, an 8-bit kvno, the key as
 * enctype and counted bytes, and the 32-bit kvno). MIT's API writes a FILE keytab only
 * entry by entry, each add reading the file from its start and syncing it: quadratic in
 * the entries a member keeps through its keep window. MIT's reader (kasa_held_load, klist
 * -k, every acceptor) reads what is written here, and the tests check that it does.
 */
struct image {
    unsigned char *buf;
    size_t len, cap;
    bool failed;
};

static void put(struct image *im, const void *p, size_t n)
{
    if (im->failed)
        return;
    if (im->len + n > im->cap) {
        size_t cap = im->cap ? im->cap * 2 : 4096;
        unsigned char *nb;
        while (cap < im->len + n)
            cap *= 2;
        nb = malloc(cap);
        if (nb == NULL) {
            im->failed = true;
            return;
        }
        /* The old buffer holds keys: copied, then wiped, never just freed. */
        if (im->buf != NULL) {
            memcpy(nb, im->buf, im->len);
            kasa_zap(im->buf, im->cap);
            free(im->buf);
        }
        im->buf = nb;
        im->cap = cap;
    }
    memcpy(im->buf + im->len, p, n);
    im->len += n;
}

static void put16(struct image *im, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(im, b, 2);
}

static void put32(struct image *im, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(im, b, 4);
}

static void put_counted(struct image *im, const void *p, size_t n)
{
    if (n > 0xffff) {
        im->failed = true;
        return;
    }
    put16(im, (unsigned)n);
    put(im, p, n);
}

/* One entry: principal p with key at kvno, stamped when. */
static void put_entry(struct image *im, krb5_const_principal p, unsigned kvno,
                      const krb5_keyblock *key, uint32_t when)
{
    size_t at = im->len;

    put32(im, 0); /* the size, filled in below */
    put16(im, (unsigned)p->length);
    put_counted(im, p->realm.data, p->realm.length);
    for (krb5_int32 c = 0; c < p->length; c++)
        put_counted(im, p->data[c].data, p->data[c].length);
    put32(im, (uint32_t)p->type);
    put32(im, when);
    put(im, &(unsigned char){(unsigned char)(kvno & 0xff)}, 1);
    put16(im, (unsigned)(uint16_t)key->enctype);
    put_counted(im, key->contents, key->length);
    put32(im, kvno);
    if (!im->failed) {
        uint32_t size = (uint32_t)(im->len - at - 4);
        im->buf[at] = (unsigned char)(size >> 24);
        im->buf[at + 1] = (unsigned char)(size >> 16);
        im->buf[at + 2] = (unsigned char)(size >> 8);
        im->buf[at + 3] = (unsigned char)size;
    }
}

static long store_state(kasa_ctx *ctx, const char *path, const kasa_held *held)
{
    char state[4096 + 16], tmp[4096 + 32];
    FILE *f;
    int fd;

    snprintf(state, sizeof(state), "%s" STATE_SUFFIX, path);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", state, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return kasa_set_error(ctx, KASA_ERR_KEYTAB, "cannot write %s: %s", tmp, strerror(errno));
    }
    fprintf(f, "# kvno arrived committed (seconds since the epoch); written by kasad\n");
    for (size_t i = 0; i < held->n; i++)
        fprintf(f, "%u %lld %lld\n", held->sets[i].kvno, (long long)held->sets[i].arrived,
                (long long)held->sets[i].committed);
    if (fclose(f) != 0) {
        unlink(tmp);
        return kasa_set_error(ctx, KASA_ERR_KEYTAB, "cannot write %s: %s", tmp, strerror(errno));
    }
    return commit_file(ctx, tmp, state, -1);
}

long kasa_held_store(kasa_ctx *ctx, const char *path, const kasa_held *held, int gid)
{
    krb5_context kctx;
    struct image im = {NULL, 0, 0, false};
    char tmp[4096 + 32];
    uint32_t now = (uint32_t)time(NULL);
    long ret;
    int fd = -1;

    ret = kasa_krb5(ctx, &kctx);
    if (!ret)
        ret = store_state(ctx, path, held);
    if (ret)
        return ret;
    put16(&im, 0x0502);
    for (size_t i = 0; !ret && i < held->n; i++) {
        const kasa_kvno_set *set = &held->sets[i];
        /* Each entry keeps the time its kvno arrived, so a roll does not make every kvno
         * look new. */
        uint32_t when = set->arrived > 0 ? (uint32_t)set->arrived : now;
        for (size_t p = 0; !ret && p < set->n_principals; p++) {
            krb5_principal princ = NULL;
            ret = krb5_parse_name(kctx, set->principals[p], &princ);
            if (ret) {
                ret = kasa_set_krb5_error(ctx, KASA_ERR_KEYTAB, kctx, ret, "bad principal %s",
                                          set->principals[p]);
                break;
            }
            for (size_t k = 0; set->keys != NULL && k < set->keys->n; k++)
                put_entry(&im, princ, set->kvno, &set->keys->keys[k], when);
            krb5_free_principal(kctx, princ);
        }
    }
    if (!ret && im.failed)
        ret = kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    if (!ret) {
        snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
        unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        for (size_t off = 0; fd >= 0 && off < im.len;) {
            ssize_t w = write(fd, im.buf + off, im.len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                close(fd);
                fd = -1;
                break;
            }
            off += (size_t)w;
        }
        if (fd < 0 || close(fd) != 0) {
            ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "cannot write keytab %s: %s", tmp,
                                 strerror(errno != 0 ? errno : EIO));
            unlink(tmp);
        }
    }
    if (im.buf != NULL) {
        kasa_zap(im.buf, im.cap);
        free(im.buf);
    }
    if (ret)
        return ret;
    return commit_file(ctx, tmp, path, gid); /* one fsync, one rename */
}

long kasa_kvno_set_copy(kasa_ctx *ctx, const kasa_kvno_set *from, kasa_kvno_set *to)
{
    krb5_context kctx;
    long ret;

    memset(to, 0, sizeof(*to));
    ret = kasa_krb5(ctx, &kctx);
    if (ret)
        return ret;
    to->kvno = from->kvno;
    to->arrived = from->arrived;
    to->committed = from->committed;
    for (size_t i = 0; !ret && i < from->n_principals; i++)
        ret = add_principal(ctx, to, from->principals[i]);
    for (size_t i = 0; !ret && from->keys != NULL && i < from->keys->n; i++)
        ret = add_key(ctx, kctx, to, &from->keys->keys[i]);
    if (ret)
        kasa_kvno_set_clear(to);
    return ret;
}

/* Whether two key sets hold the same keys (order aside). */
static bool same_keys(const kasa_keyset *a, const kasa_keyset *b)
{
    if (a == NULL || b == NULL || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        bool found = false;
        for (size_t j = 0; j < b->n && !found; j++)
            found = a->keys[i].enctype == b->keys[j].enctype &&
                    a->keys[i].length == b->keys[j].length &&
                    memcmp(a->keys[i].contents, b->keys[j].contents, a->keys[i].length) == 0;
        if (!found)
            return false;
    }
    return true;
}

long kasa_held_stage(kasa_ctx *ctx, kasa_held *held, const kasa_kvno_set *set, int64_t now)
{
    kasa_kvno_set *slot = find_set(held, set->kvno), copy;
    int64_t arrived = now;
    long ret;

    if (slot != NULL && slot->committed != 0) {
        /* A roll's stage (no commit time) must not change a committed kvno. A copy carries
         * its kvno's commit time: it is the committed keys from another member, and replaces
         * what this member holds at that kvno whole (keys altered here, an entry of one
         * principal wrong), keeping when the kvno arrived. */
        if (set->committed == 0 &&
            !(same_keys(slot->keys, set->keys) && set->n_principals == slot->n_principals))
            return kasa_set_error(ctx, KASA_ERR_KVNO,
                                  "kvno %u is already committed in the directory with other "
                                  "keys; it cannot be replaced",
                                  set->kvno);
        if (set->committed == 0)
            return 0; /* the same keys again change nothing */
        arrived = slot->arrived;
    }
    ret = kasa_kvno_set_copy(ctx, set, &copy);
    if (ret)
        return ret;
    /* A copy carries the time its kvno was committed; a roll's new kvno has none yet. */
    copy.arrived = arrived;
    if (slot == NULL && (slot = add_set(held, set->kvno)) == NULL) {
        kasa_kvno_set_clear(&copy);
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    }
    kasa_kvno_set_clear(slot);
    *slot = copy;
    return 0;
}

long kasa_held_retire(kasa_ctx *ctx, kasa_held *held, unsigned committed_kvno, int64_t committed_at,
                      int64_t keep, int64_t now, unsigned *dropped, size_t *n_dropped)
{
    kasa_kvno_set *c = find_set(held, committed_kvno);

    (void)ctx;
    *n_dropped = 0;
    if (c != NULL && c->committed == 0)
        c->committed = committed_at;
    for (size_t i = 0; i < held->n;) {
        kasa_kvno_set *k = &held->sets[i];
        int64_t succ = 0;
        if (k->kvno >= committed_kvno) {
            i++;
            continue;
        }
        /* K+1 was committed no later than any later kvno: the earliest known time of
         * those bounds when tickets for K stopped being issued. */
        for (size_t j = 0; j < held->n; j++) {
            int64_t t =
                held->sets[j].kvno == committed_kvno ? committed_at : held->sets[j].committed;
            if (held->sets[j].kvno > k->kvno && t > 0 && (succ == 0 || t < succ))
                succ = t;
        }
        if (succ == 0 && committed_kvno > k->kvno)
            succ = committed_at;
        if (succ > 0 && now - succ > keep && *n_dropped < KASA_PROTO_MAX_SETS) {
            dropped[(*n_dropped)++] = k->kvno;
            kasa_kvno_set_clear(k);
            memmove(k, k + 1, (held->n - i - 1) * sizeof(*k));
            held->n--;
            continue;
        }
        i++;
    }
    return 0;
}

/* The entries of the keytab at path with one kvno, read in one pass. */
struct at_kvno {
    unsigned kvno;
    krb5_keytab_entry *all;
    size_t n;
};

static long at_kvno_entry(kasa_ctx *ctx, krb5_context kctx, const krb5_keytab_entry *e, void *arg)
{
    struct at_kvno *w = arg;
    krb5_keytab_entry *more;

    if (e->vno != w->kvno)
        return 0;
    more = realloc(w->all, (w->n + 1) * sizeof(*more));
    if (more == NULL)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    w->all = more;
    memset(&w->all[w->n], 0, sizeof(w->all[w->n]));
    if (krb5_copy_principal(kctx, e->principal, &w->all[w->n].principal) != 0 ||
        krb5_copy_keyblock_contents(kctx, &e->key, &w->all[w->n].key) != 0) {
        krb5_free_keytab_entry_contents(kctx, &w->all[w->n]);
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    }
    w->all[w->n].vno = e->vno;
    w->n++;
    return 0;
}

static long entries_at(kasa_ctx *ctx, krb5_context kctx, const char *path, unsigned kvno,
                       krb5_keytab_entry **out, size_t *n_out)
{
    struct at_kvno w = {kvno, NULL, 0};
    long ret = read_image(ctx, kctx, path, at_kvno_entry, &w);

    if (ret) {
        for (size_t i = 0; i < w.n; i++)
            krb5_free_keytab_entry_contents(kctx, &w.all[i]); /* wipes the keys */
        free(w.all);
        return ret;
    }
    *out = w.all;
    *n_out = w.n;
    return 0;
}

long kasa_keytab_prove(kasa_ctx *ctx, const char *path, const kasa_kvno_set *set,
                       const unsigned char *nonce, kasa_proof *proofs, size_t *n_proofs)
{
    krb5_context kctx;
    krb5_keytab_entry *all = NULL;
    krb5_enctype ets[KASA_PROTO_MAX_KEYS];
    size_t n_all = 0, n_ets = 0;
    krb5_data data;
    long ret;

    *n_proofs = 0;
    ret = kasa_krb5(ctx, &kctx);
    if (!ret)
        ret = entries_at(ctx, kctx, path, set->kvno, &all, &n_all);
    if (ret)
        return ret;
    if (set->keys != NULL) {
        for (size_t k = 0; k < set->keys->n && n_ets < KASA_PROTO_MAX_KEYS; k++)
            ets[n_ets++] = set->keys->keys[k].enctype;
    } else if (set->n_principals > 0) { /* what the first principal holds at the kvno */
        krb5_principal princ = NULL;
        ret = krb5_parse_name(kctx, set->principals[0], &princ);
        for (size_t i = 0; !ret && i < n_all; i++) {
            bool seen = false;
            if (!krb5_principal_compare(kctx, all[i].principal, princ))
                continue;
            for (size_t e = 0; e < n_ets; e++)
                seen = seen || ets[e] == all[i].key.enctype;
            if (!seen && n_ets < KASA_PROTO_MAX_KEYS)
                ets[n_ets++] = all[i].key.enctype;
        }
        krb5_free_principal(kctx, princ);
        if (!ret && n_ets == 0)
            ret = kasa_set_error(ctx, KASA_ERR_KEYTAB, "%s does not hold %s at kvno %u", path,
                                 set->principals[0], set->kvno);
        else if (ret)
            ret = kasa_set_krb5_error(ctx, KASA_ERR_KEYTAB, kctx, ret, "cannot parse %s",
                                      set->principals[0]);
    }
    data.magic = KV5M_DATA;
    data.data = (char *)nonce;
    data.length = KASA_PROTO_NONCE;
    for (size_t k = 0; !ret && k < n_ets; k++) {
        krb5_enctype et = ets[k];
        const krb5_keytab_entry *first = NULL;
        krb5_checksum cksum = {0};
        for (size_t p = 0; !ret && p < set->n_principals; p++) {
            krb5_principal princ = NULL;
            const krb5_keytab_entry *entry = NULL;
            ret = krb5_parse_name(kctx, set->principals[p], &princ);
            for (size_t i = 0; !ret && i < n_all && entry == NULL; i++)
                if (all[i].key.enctype == et &&
                    krb5_principal_compare(kctx, all[i].principal, princ))
                    entry = &all[i];
            krb5_free_principal(kctx, princ);
            if (!ret && entry == NULL)
                ret = KRB5_KT_NOTFOUND;
            if (ret) {
                ret = kasa_set_krb5_error(ctx, KASA_ERR_KEYTAB, kctx, ret,
                                          "%s does not hold %s at kvno %u", path,
                                          set->principals[p], set->kvno);
                break;
            }
            if (first == NULL)
                first = entry;
            else if (entry->key.length != first->key.length ||
                     memcmp(entry->key.contents, first->key.contents, first->key.length) != 0)
                ret = kasa_set_error(ctx, KASA_ERR_KEYTAB,
                                     "%s holds different keys for %s at kvno %u", path,
                                     set->principals[p], set->kvno);
        }
        if (!ret && first != NULL) {
            ret = krb5_c_make_checksum(kctx, 0, &first->key, KASA_KEYUSAGE_PROOF, &data, &cksum);
            if (ret)
                ret = kasa_set_krb5_error(ctx, KASA_ERR_INTERNAL, kctx, ret, "cannot make a proof");
            else if (cksum.length > KASA_PROTO_MAX_PROOF)
                ret = kasa_set_error(ctx, KASA_ERR_INTERNAL, "proof checksum too long");
            else {
                proofs[*n_proofs].enctype = et;
                proofs[*n_proofs].len = cksum.length;
                memcpy(proofs[*n_proofs].bytes, cksum.contents, cksum.length);
                (*n_proofs)++;
            }
            if (cksum.contents != NULL)
                krb5_free_checksum_contents(kctx, &cksum);
        }
    }
    for (size_t i = 0; i < n_all; i++)
        krb5_free_keytab_entry_contents(kctx, &all[i]); /* wipes the keys */
    free(all);
    return ret;
}

long kasa_proof_verify(kasa_ctx *ctx, const kasa_keyset *keys, const unsigned char *nonce,
                       const kasa_proof *proofs, size_t n_proofs)
{
    krb5_context kctx;
    krb5_data data;
    long ret;

    ret = kasa_krb5(ctx, &kctx);
    if (ret)
        return ret;
    data.magic = KV5M_DATA;
    data.data = (char *)nonce;
    data.length = KASA_PROTO_NONCE;
    for (size_t k = 0; k < keys->n; k++) {
        const krb5_keyblock *key = &keys->keys[k];
        krb5_boolean valid = FALSE;
        krb5_checksum want;
        /* Make the checksum we expect and compare: the member used the key's default
         * checksum type, so ours is the same if and only if the keys are. */
        if (krb5_c_make_checksum(kctx, 0, key, KASA_KEYUSAGE_PROOF, &data, &want) != 0)
            return kasa_set_error(ctx, KASA_ERR_INTERNAL, "cannot make a checksum to compare");
        for (size_t p = 0; p < n_proofs && !valid; p++) {
            unsigned char diff = 0;
            if (proofs[p].enctype != key->enctype || proofs[p].len != want.length)
                continue;
            for (uint32_t b = 0; b < want.length; b++)
                diff |= (unsigned char)(proofs[p].bytes[b] ^ want.contents[b]);
            valid = diff == 0;
        }
        krb5_free_checksum_contents(kctx, &want);
        if (!valid)
            return kasa_set_error(ctx, KASA_ERR_MEMBER,
                                  "the member gave no valid proof that it holds the enctype %d key",
                                  key->enctype);
    }
    return 0;
}
