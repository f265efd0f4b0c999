/*
 * jwtcache.c
 *		The verified-token cache.  An ES256 verification costs about 60 µs,
 *		and a client sends the same access token with every request for an
 *		hour; so each gateway verifies a token once and then finds its
 *		claims by the token's SHA-256 digest.
 *
 * Why this is safe: the digest covers the whole token, signature included,
 * so only the exact bytes that verified hit; an entry dies at the token's
 * exp (not exp + leeway: a late token is verified again); and revocation
 * never depended on the signature check: the session is checked in SQL on
 * every request (iam.session_id).  Only successful verifications are kept.
 *
 * Layout: the capacity is split into sets of CACHE_WAYS entries; a token's
 * digest picks its set, where it is looked for among the ways and, when
 * the set is full, replaces the first way whose reference bit is clear,
 * clearing bits on the way (CLOCK, an approximation of LRU).  A set is
 * guarded by one of CACHE_LOCKS mutexes (set number modulo CACHE_LOCKS),
 * held only to compare and copy a few hundred bytes.  The counters are
 * atomics.
 */
#include "jwtcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define CACHE_WAYS			8
#define CACHE_LOCKS			64
#define DIGEST_LEN			32

typedef struct Entry
{
	unsigned char digest[DIGEST_LEN];
	bool		used;
	bool		referenced;		/* CLOCK: touched since the hand last passed */
	JwtClaims	claims;
} Entry;

typedef struct Set
{
	Entry		way[CACHE_WAYS];
	unsigned int hand;
} Set;

struct JwtCache
{
	Set		   *sets;
	size_t		nsets;
	pthread_mutex_t locks[CACHE_LOCKS];
	unsigned long long hits;	/* atomic */
	unsigned long long misses;	/* atomic */
};

JwtCache *
jwtcache_create(size_t capacity)
{
	JwtCache   *c;

	if (capacity == 0 || capacity > SIZE_MAX / 2 / sizeof(Entry))
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->nsets = (capacity + CACHE_WAYS - 1) / CACHE_WAYS;
	if ((c->sets = calloc(c->nsets, sizeof(Set))) == NULL)
	{
		free(c);
		return NULL;
	}
	for (int i = 0; i < CACHE_LOCKS; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	return c;
}

void
jwtcache_free(JwtCache *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < CACHE_LOCKS; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->sets);
	free(c);
}

size_t
jwtcache_capacity(const JwtCache *c)
{
	return c != NULL ? c->nsets * CACHE_WAYS : 0;
}

/* digest_of computes the SHA-256 of the token; false when OpenSSL fails. */
static bool
digest_of(const char *token, size_t len, unsigned char out[DIGEST_LEN])
{
	unsigned int n = 0;

	return EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) == 1 && n == DIGEST_LEN;
}

/* set_of returns the set of digest (its first 8 bytes, uniformly random). */
static size_t
set_of(const JwtCache *c, const unsigned char *digest)
{
	uint64_t	h;

	memcpy(&h, digest, sizeof(h));
	return (size_t) (h % c->nsets);
}

bool
jwtcache_get(JwtCache *c, const char *token, size_t len, long long now, JwtClaims *out)
{
	unsigned char d[DIGEST_LEN];
	size_t		s;
	Set		   *set;
	bool		hit = false;

	if (c == NULL || token == NULL || !digest_of(token, len, d))
		return false;
	s = set_of(c, d);
	set = &c->sets[s];
	pthread_mutex_lock(&c->locks[s % CACHE_LOCKS]);
	for (int i = 0; i < CACHE_WAYS; i++)
	{
		Entry	   *e = &set->way[i];

		if (!e->used || memcmp(e->digest, d, DIGEST_LEN) != 0)
			continue;
		if (e->claims.exp > now)
		{
			*out = e->claims;
			e->referenced = true;
			hit = true;
		}
		else
			e->used = false;	/* expired: gone for good */
		break;
	}
	pthread_mutex_unlock(&c->locks[s % CACHE_LOCKS]);
	__atomic_add_fetch(hit ? &c->hits : &c->misses, 1, __ATOMIC_RELAXED);
	return hit;
}

void
jwtcache_put(JwtCache *c, const char *token, size_t len, long long now,
			 const JwtClaims *claims)
{
	unsigned char d[DIGEST_LEN];
	size_t		s;
	Set		   *set;
	Entry	   *slot = NULL;

	if (c == NULL || token == NULL || claims == NULL || claims->exp <= now ||
		!digest_of(token, len, d))
		return;
	s = set_of(c, d);
	set = &c->sets[s];
	pthread_mutex_lock(&c->locks[s % CACHE_LOCKS]);
	/* the token itself (two threads verified it at once), else a free or expired way */
	for (int i = 0; i < CACHE_WAYS && slot == NULL; i++)
		if (set->way[i].used && memcmp(set->way[i].digest, d, DIGEST_LEN) == 0)
			slot = &set->way[i];
	for (int i = 0; i < CACHE_WAYS && slot == NULL; i++)
		if (!set->way[i].used || set->way[i].claims.exp <= now)
			slot = &set->way[i];
	/* CLOCK: at most one full turn clears every bit, so this ends */
	while (slot == NULL)
	{
		Entry	   *e = &set->way[set->hand];

		set->hand = (set->hand + 1) % CACHE_WAYS;
		if (e->referenced)
			e->referenced = false;
		else
			slot = e;
	}
	memcpy(slot->digest, d, DIGEST_LEN);
	slot->claims = *claims;
	slot->used = true;
	slot->referenced = false;
	pthread_mutex_unlock(&c->locks[s % CACHE_LOCKS]);
}

void
jwtcache_stats(JwtCache *c, unsigned long long *hits, unsigned long long *misses)
{
	if (hits != NULL)
		*hits = c != NULL ? __atomic_load_n(&c->hits, __ATOMIC_RELAXED) : 0;
	if (misses != NULL)
		*misses = c != NULL ? __atomic_load_n(&c->misses, __ATOMIC_RELAXED) : 0;
}
