/*
 * test_jwtcache.c
 *		Unit tests for jwtcache.c: hits only for the exact token, never past
 *		its exp, a bounded size with CLOCK eviction, and threads sharing it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwtcache.h"
#include "tap.h"

#define NOW			1700000000LL

static JwtClaims
claims_for(int i, long long exp)
{
	JwtClaims	c;

	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "00000000-0000-4000-8000-%012d", i);
	snprintf(c.jti, sizeof(c.jti), "jti-%d", i);
	c.iat = NOW - 1;
	c.exp = exp;
	return c;
}

static void
token_for(int i, char *buf, size_t size)
{
	snprintf(buf, size, "eyJhbGciOiJFUzI1NiJ9.payload-%d.signature-%d", i, i * 7);
}

static bool
has(JwtCache *c, int i, long long now)
{
	char		t[128];
	JwtClaims	out;

	token_for(i, t, sizeof(t));
	memset(&out, 0, sizeof(out));
	return jwtcache_get(c, t, strlen(t), now, &out) &&
		strcmp(out.jti, claims_for(i, 0).jti) == 0;
}

static void
put(JwtCache *c, int i, long long exp)
{
	char		t[128];
	JwtClaims	cl = claims_for(i, exp);

	token_for(i, t, sizeof(t));
	jwtcache_put(c, t, strlen(t), NOW, &cl);
}

static void
test_basics(void)
{
	JwtCache   *c = jwtcache_create(100);
	char		t[128];
	JwtClaims	in = claims_for(1, NOW + 60);
	JwtClaims	out;
	unsigned long long hits = 0,
				misses = 0;

	tap_ok(jwtcache_create(0) == NULL, "a cache of no tokens is refused");
	tap_ok(c != NULL && jwtcache_capacity(c) == 104, "capacity rounded up to whole sets of 8");
	token_for(1, t, sizeof(t));
	tap_ok(!jwtcache_get(c, t, strlen(t), NOW, &out), "empty: a miss");
	jwtcache_put(c, t, strlen(t), NOW, &in);
	memset(&out, 0, sizeof(out));
	tap_ok(jwtcache_get(c, t, strlen(t), NOW, &out) && memcmp(&out, &in, sizeof(in)) == 0,
		   "after put: a hit with the very claims");
	t[strlen(t) - 1] ^= 1;
	tap_ok(!jwtcache_get(c, t, strlen(t), NOW, &out), "one byte of the signature changed: a miss");
	t[strlen(t) - 1] ^= 1;
	tap_ok(!jwtcache_get(c, t, strlen(t) - 1, NOW, &out), "a prefix of the token: a miss");
	tap_ok(jwtcache_get(c, t, strlen(t), NOW + 59, &out), "one second before exp: a hit");
	tap_ok(!jwtcache_get(c, t, strlen(t), NOW + 60, &out), "at exp: a miss (never past exp)");
	tap_ok(!jwtcache_get(c, t, strlen(t), NOW, &out), "and the expired entry is gone");

	put(c, 2, NOW);
	tap_ok(!has(c, 2, NOW - 10), "a token already expired when put is not kept");
	put(c, 3, NOW + 10);
	put(c, 3, NOW + 20);
	tap_ok(has(c, 3, NOW + 15), "putting a token again replaces its entry");
	jwtcache_stats(c, &hits, &misses);
	tap_ok(hits == 3 && misses == 6, "hit and miss counters (%llu, %llu)", hits, misses);

	tap_ok(!jwtcache_get(NULL, t, strlen(t), NOW, &out), "no cache: always a miss");
	jwtcache_put(NULL, t, strlen(t), NOW, &in);
	jwtcache_free(NULL);
	jwtcache_free(c);
}

static void
test_bounded(void)
{
	JwtCache   *c = jwtcache_create(16);
	int			kept = 0;

	for (int i = 0; i < 1000; i++)
		put(c, i, NOW + 3600);
	for (int i = 0; i < 1000; i++)
		kept += has(c, i, NOW);
	tap_ok(kept > 0 && kept <= 16, "1000 tokens into 16 places: at most 16 kept (%d)", kept);
	tap_ok(has(c, 999, NOW), "the last one put is there");
	jwtcache_free(c);

	/* one set: the tokens that were used survive, the unused one goes */
	c = jwtcache_create(8);
	for (int i = 0; i < 8; i++)
		put(c, i, NOW + 3600);
	for (int i = 0; i < 7; i++)
		has(c, i, NOW);
	put(c, 8, NOW + 3600);
	{
		bool		used_kept = true;

		for (int i = 0; i < 7; i++)
			used_kept = used_kept && has(c, i, NOW);
		tap_ok(used_kept && !has(c, 7, NOW) && has(c, 8, NOW),
			   "CLOCK: the one token never used since it was put is evicted");
	}
	/* an expired entry is reused before any live one */
	jwtcache_free(c);
	c = jwtcache_create(8);
	for (int i = 0; i < 8; i++)
		put(c, i, i == 5 ? NOW + 1 : NOW + 3600);
	{
		char		t[128];
		JwtClaims	cl = claims_for(9, NOW + 3600);
		bool		others = true;

		token_for(9, t, sizeof(t));
		jwtcache_put(c, t, strlen(t), NOW + 2, &cl);
		for (int i = 0; i < 8; i++)
			if (i != 5)
				others = others && has(c, i, NOW + 2);
		tap_ok(others && has(c, 9, NOW + 2), "an expired entry makes room before a live one goes");
	}
	jwtcache_free(c);
}

typedef struct Worker
{
	JwtCache   *c;
	int			seed;
	int			wrong;
	int			hits;
} Worker;

static void *
work(void *arg)
{
	Worker	   *w = arg;
	unsigned int r = (unsigned int) w->seed;

	for (int n = 0; n < 20000; n++)
	{
		int			i;
		char		t[128];
		JwtClaims	out;

		r = r * 1103515245u + 12345u;
		i = (int) ((r >> 8) % 200);
		token_for(i, t, sizeof(t));
		if (jwtcache_get(w->c, t, strlen(t), NOW, &out))
		{
			w->hits++;
			if (strcmp(out.jti, claims_for(i, 0).jti) != 0 || out.exp != NOW + 3600)
				w->wrong++;
		}
		else
			put(w->c, i, NOW + 3600);
	}
	return NULL;
}

static void
test_threads(void)
{
	JwtCache   *c = jwtcache_create(64);
	pthread_t	th[8];
	Worker		w[8];
	int			wrong = 0;
	int			hits = 0;

	for (int i = 0; i < 8; i++)
	{
		w[i] = (Worker) {c, i + 1, 0, 0};
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < 8; i++)
	{
		pthread_join(th[i], NULL);
		wrong += w[i].wrong;
		hits += w[i].hits;
	}
	tap_ok(wrong == 0 && hits > 0, "8 threads, 160000 operations: every hit has its own token's claims (%d hits)",
		   hits);
	jwtcache_free(c);
}

int
main(void)
{
	test_basics();
	test_bounded();
	test_threads();
	return tap_done();
}
