/*
 * jwtcache.h
 *		The verified-token cache: a bearer token's signature is checked once,
 *		then its claims are found by the token's SHA-256 digest until it
 *		expires.
 */
#ifndef JWTCACHE_H
#define JWTCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "jwt.h"

/* Thread-safe; its size is fixed at creation. */
typedef struct JwtCache JwtCache;

/*
 * jwtcache_create returns a cache of at most capacity tokens (rounded up
 * to a multiple of its set size, 8), or NULL when out of memory or when
 * capacity is 0.  Free it with jwtcache_free.
 */
extern JwtCache *jwtcache_create(size_t capacity);

/* jwtcache_free frees c (NULL is fine); no thread may be using it. */
extern void jwtcache_free(JwtCache *c);

/* jwtcache_capacity returns how many tokens c holds at most. */
extern size_t jwtcache_capacity(const JwtCache *c);

/*
 * jwtcache_get looks token[0..len) up: true with *out filled when it was
 * put and its exp is still after now; false otherwise (*out untouched).
 * c may be NULL (always false).
 */
extern bool jwtcache_get(JwtCache *c, const char *token, size_t len, long long now,
						 JwtClaims *out);

/*
 * jwtcache_put remembers that token[0..len) verified to *claims.  Only a
 * token whose exp is after now is kept; it never outlives exp.  When the
 * token's set is full, the least recently used of its tokens goes (CLOCK).
 * c may be NULL (nothing happens).
 */
extern void jwtcache_put(JwtCache *c, const char *token, size_t len, long long now,
						 const JwtClaims *claims);

/* jwtcache_stats reads the hit and miss counters (either pointer may be NULL). */
extern void jwtcache_stats(JwtCache *c, unsigned long long *hits, unsigned long long *misses);

#endif							/* JWTCACHE_H */
