/*
 * The array's replay cache (kasa/replay.h): a bounded table in memory, and Redis through
 * hiredis (Debian's libhiredis; RESP is not written here by hand) for a cache the members
 * share. The key is the SHA-256 of the authenticator's ciphertext, which a replay cannot
 * change without the authenticator no longer decrypting; the caller checks only
 * authenticators Kerberos has already accepted, so the cache holds nothing an attacker
 * chose.
 */
#include "kasa/replay.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "private.h"

#define PROBES 32            /* slots looked at per digest */
#define REDIS_TIMEOUT_MS 200 /* connect and each command */
#define REDIS_RETRY_MS 1000  /* after a failure, the next try */
#define REDIS_KEY_PREFIX "kasa:rc:"

struct slot {
    unsigned char digest[32];
    long long expires; /* seconds since the epoch; 0: empty */
};

struct kasa_replay {
    unsigned ttl;
    pthread_mutex_t lock;
    struct slot *table; /* KASA_REPLAY_LOCAL_MAX slots */
    /* Redis */
    bool shared;
    char *host, *password;
    int port;
    redisContext *rc;
    long long retry_after_ms; /* no connection attempt before this (after a failure) */
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* redis://[:PASSWORD@]HOST[:PORT]; the password may not hold '@' (Redis's own URLs
 * percent-encode it; a password for kasa is chosen without one). */
static long parse_redis(kasa_ctx *ctx, const char *spec, kasa_replay *r)
{
    const char *p = spec + strlen("redis://"), *at = strrchr(p, '@'), *colon;
    char *end;
    long port = 6379;

    if (at != NULL) {
        if (*p != ':' || at == p + 1)
            return kasa_set_error(ctx, KASA_ERR_CONFIG,
                                  "replay_cache %s: the password goes as redis://:PASSWORD@HOST",
                                  "redis://...");
        r->password = strndup(p + 1, (size_t)(at - p - 1));
        p = at + 1;
    }
    colon = strchr(p, ':');
    if (colon != NULL) {
        port = strtol(colon + 1, &end, 10);
        if (*end != '\0' || port < 1 || port > 65535)
            return kasa_set_error(ctx, KASA_ERR_CONFIG, "replay_cache: %s is not a port",
                                  colon + 1);
    }
    r->host = colon != NULL ? strndup(p, (size_t)(colon - p)) : strdup(p);
    if (r->host == NULL || *r->host == '\0' || strpbrk(r->host, "/?#") != NULL)
        return kasa_set_error(ctx, KASA_ERR_CONFIG,
                              "replay_cache: no host in the URL (redis://HOST:PORT)");
    r->port = (int)port;
    r->shared = true;
    return 0;
}

long kasa_replay_open(kasa_ctx *ctx, const char *spec, unsigned ttl_s, kasa_replay **out)
{
    kasa_replay *r = calloc(1, sizeof(*r));
    long ret = 0;

    *out = NULL;
    if (r == NULL || (r->table = calloc(KASA_REPLAY_LOCAL_MAX, sizeof(struct slot))) == NULL) {
        free(r);
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    }
    r->ttl = ttl_s > 0 ? ttl_s : 600;
    pthread_mutex_init(&r->lock, NULL);
    if (spec != NULL && strncmp(spec, "redis://", 8) == 0)
        ret = parse_redis(ctx, spec, r);
    else if (spec != NULL && strcmp(spec, "local") != 0)
        ret = kasa_set_error(ctx, KASA_ERR_CONFIG,
                             "replay_cache %.80s is neither local nor redis://HOST:PORT", spec);
    if (ret) {
        kasa_replay_close(r);
        return ret;
    }
    *out = r;
    return 0;
}

void kasa_replay_close(kasa_replay *r)
{
    if (r == NULL)
        return;
    if (r->rc != NULL)
        redisFree(r->rc);
    if (r->password != NULL)
        kasa_zap(r->password, strlen(r->password));
    free(r->password);
    free(r->host);
    free(r->table);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

bool kasa_replay_shared(const kasa_replay *r)
{
    return r != NULL && r->shared;
}

long kasa_replay_check_local_at(kasa_ctx *ctx, kasa_replay *r, const unsigned char digest[32],
                                long long now)
{
    size_t start, free_slot = SIZE_MAX, oldest = SIZE_MAX;

    memcpy(&start, digest, sizeof(start)); /* the digest is uniform: any 8 bytes will do */
    start %= KASA_REPLAY_LOCAL_MAX;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < PROBES; i++) {
        size_t at = (start + i) % KASA_REPLAY_LOCAL_MAX;
        struct slot *s = &r->table[at];
        if (s->expires > now && memcmp(s->digest, digest, 32) == 0) {
            pthread_mutex_unlock(&r->lock);
            return kasa_set_error(ctx, KASA_ERR_REPLAY, NULL);
        }
        if (s->expires <= now) {
            if (free_slot == SIZE_MAX)
                free_slot = at;
        } else if (oldest == SIZE_MAX || s->expires < r->table[oldest].expires) {
            oldest = at;
        }
    }
    /* Full around it: the entry that expires first makes room (memory stays bounded). */
    if (free_slot == SIZE_MAX)
        free_slot = oldest;
    memcpy(r->table[free_slot].digest, digest, 32);
    r->table[free_slot].expires = now + r->ttl;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

long kasa_replay_check_local(kasa_ctx *ctx, kasa_replay *r, const unsigned char digest[32])
{
    return kasa_replay_check_local_at(ctx, r, digest, (long long)time(NULL));
}

/* A connection to Redis, authenticated; NULL (r->rc unset) when it cannot be had now. */
static redisContext *connected(kasa_replay *r, char *why, size_t why_len)
{
    struct timeval tv = {0, REDIS_TIMEOUT_MS * 1000};
    redisReply *rep;

    if (r->rc != NULL)
        return r->rc;
    if (now_ms() < r->retry_after_ms) {
        snprintf(why, why_len, "not retried yet after a failure");
        return NULL;
    }
    r->rc = redisConnectWithTimeout(r->host, r->port, tv);
    if (r->rc == NULL || r->rc->err) {
        snprintf(why, why_len, "%s", r->rc != NULL ? r->rc->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(r->rc, tv);
    if (r->password != NULL) {
        rep = redisCommand(r->rc, "AUTH %s", r->password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            snprintf(why, why_len, "AUTH: %s",
                     rep != NULL ? rep->str : (r->rc->err ? r->rc->errstr : "no answer"));
            if (rep != NULL)
                freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    return r->rc;

fail:
    if (r->rc != NULL)
        redisFree(r->rc);
    r->rc = NULL;
    r->retry_after_ms = now_ms() + REDIS_RETRY_MS;
    return NULL;
}

/* One SET NX PX on r's connection: 0 new, KASA_ERR_REPLAY seen, -1 the connection failed
 * (why says how; the connection is dropped). */
static long set_once(kasa_replay *r, const char *key, char *why, size_t why_len)
{
    redisReply *rep = redisCommand(r->rc, "SET %s 1 NX PX %u", key, r->ttl * 1000U);
    long ret;

    if (rep != NULL && rep->type == REDIS_REPLY_STATUS) {
        ret = 0;
    } else if (rep != NULL && rep->type == REDIS_REPLY_NIL) {
        ret = KASA_ERR_REPLAY;
    } else {
        snprintf(why, why_len, "%s",
                 rep != NULL && rep->type == REDIS_REPLY_ERROR ? rep->str
                 : r->rc->err                                  ? r->rc->errstr
                                                               : "no answer");
        redisFree(r->rc); /* a broken connection is not used again */
        r->rc = NULL;
        ret = -1;
    }
    if (rep != NULL)
        freeReplyObject(rep);
    return ret;
}

long kasa_replay_check(kasa_ctx *ctx, kasa_replay *r, const unsigned char digest[32])
{
    char key[sizeof(REDIS_KEY_PREFIX) + 64], why[256] = "";
    bool had_connection;
    long ret;

    if (!r->shared)
        return kasa_replay_check_local(ctx, r, digest);
    memcpy(key, REDIS_KEY_PREFIX, sizeof(REDIS_KEY_PREFIX) - 1);
    for (size_t i = 0; i < 32; i++)
        snprintf(key + sizeof(REDIS_KEY_PREFIX) - 1 + 2 * i, 3, "%02x", digest[i]);
    pthread_mutex_lock(&r->lock);
    had_connection = r->rc != NULL;
    ret = connected(r, why, sizeof(why)) != NULL ? set_once(r, key, why, sizeof(why)) : -1;
    /* A connection that was already open may have died with a Redis that restarted since:
     * one new connection, at once, before calling Redis unreachable. */
    if (ret == -1 && had_connection && connected(r, why, sizeof(why)) != NULL)
        ret = set_once(r, key, why, sizeof(why));
    if (ret == -1)
        r->retry_after_ms = now_ms() + REDIS_RETRY_MS;
    pthread_mutex_unlock(&r->lock);
    if (ret == KASA_ERR_REPLAY)
        return kasa_set_error(ctx, KASA_ERR_REPLAY, NULL);
    if (ret == -1)
        return kasa_set_error(ctx, KASA_ERR_REPLAY_STORE, "Redis at %s:%d: %s", r->host, r->port,
                              why);
    /* Kept here too: should Redis go away, the fallback to this member's own cache
     * (replay_cache_failure = local) still knows what this member accepted just before. */
    (void)kasa_replay_check_local(ctx, r, digest);
    return 0;
}
