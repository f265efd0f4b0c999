/*
 * cache.c
 *		Two-level response cache with versions polled from PostgreSQL.
 *
 * Correctness rests on the key: SHA-256 of the route, its parameters, the
 * caller's organisation and user id, and the versions: the generation of
 * the extension's version table, the version of everything, the version of
 * the organisation's slot (and this gateway's own bump of it, if any).  So
 * a response is only ever served to the same caller of the same
 * organisation for the same request, and only while no write committed
 * since it was read.  Every committed change to the admin tables bumps the
 * slot of each organisation it touched (or everything) in the extension's
 * shared memory, just after the commit became visible (cache_version.c,
 * iam--0.3--0.4.sql); the routes loader polls iam.cache_changes every
 * IAM_CACHE_POLL_MS and hands the answer to cache_versions_apply, and the
 * next request builds another key.  Versions are read before the database
 * is, so a response read before a commit is stored under the version of
 * before.  Stale entries are never looked up again and age out
 * (IAM_CACHE_TTL, LRU).  When the poll fails (connection lost, iam not
 * preloaded) caching stops until a poll from scratch succeeds.
 *
 * An organisation's slot is FNV-1a (64 bits) of the 16 bytes of its uuid,
 * modulo CACHE_SLOTS (4096): cache_slot_of here, cache_slot_of in
 * extension/cache_version.c, iam.cache_slot() in SQL; tests/test_cache.c
 * and the regression tests pin the same values.  Organisations sharing a
 * slot share invalidations, nothing else (the key names the organisation).
 *
 * L1 is one hash table + LRU list under a mutex; L2 is Redis (GET, SET EX)
 * through redis.c, shared by the gateways that agree on a version.
 */
#include "cache.h"
#include "fnv.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "accesslog.h"
#include "redis.h"

#define LRU_BUCKETS		16384
#define ENTRY_MAX		(1024 * 1024)	/* bigger responses are not cached */

void
cache_entry_free(CacheEntry *e)
{
	if (e == NULL)
		return;
	free(e->etag);
	free(e->headers);
	free(e->body);
	free(e);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* entry_copy returns a deep copy of e, or NULL when out of memory. */
static CacheEntry *
entry_copy(const CacheEntry *e)
{
	CacheEntry *c = calloc(1, sizeof(CacheEntry));

	if (c == NULL)
		return NULL;
	c->status = e->status;
	c->body_len = e->body_len;
	c->etag = dup_or_null(e->etag);
	c->headers = dup_or_null(e->headers);
	c->body = malloc(e->body_len + 1);
	if ((e->etag != NULL && c->etag == NULL) || (e->headers != NULL && c->headers == NULL) ||
		c->body == NULL)
	{
		cache_entry_free(c);
		return NULL;
	}
	memcpy(c->body, e->body != NULL ? e->body : "", e->body_len);
	c->body[e->body_len] = '\0';
	return c;
}

static size_t
entry_bytes(const CacheEntry *e)
{
	return sizeof(CacheEntry) + e->body_len + 1 +
		(e->etag != NULL ? strlen(e->etag) + 1 : 0) +
		(e->headers != NULL ? strlen(e->headers) + 1 : 0);
}

/* ---- L1 ---- */

typedef struct LruNode
{
	struct LruNode *hnext;		/* hash chain */
	struct LruNode *prev;		/* LRU list, most recent first */
	struct LruNode *next;
	char		key[65];
	int64_t		expires_ms;
	size_t		bytes;
	CacheEntry *entry;
} LruNode;

struct CacheLru
{
	pthread_mutex_t lock;		/* guards everything below */
	LruNode    *buckets[LRU_BUCKETS];
	LruNode    *head;
	LruNode    *tail;
	size_t		bytes;
	size_t		count;
	size_t		max_bytes;
};

CacheLru *
cache_lru_create(size_t max_bytes)
{
	CacheLru   *lru = calloc(1, sizeof(CacheLru));

	if (lru == NULL)
		return NULL;
	pthread_mutex_init(&lru->lock, NULL);
	lru->max_bytes = max_bytes;
	return lru;
}

static void
unlink_node(CacheLru *lru, LruNode *n)
{
	LruNode   **p = &lru->buckets[fnv1a_str(n->key) % LRU_BUCKETS];

	while (*p != n)
		p = &(*p)->hnext;
	*p = n->hnext;
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		lru->head = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	else
		lru->tail = n->prev;
	lru->bytes -= n->bytes;
	lru->count--;
	cache_entry_free(n->entry);
	free(n);
}

void
cache_lru_free(CacheLru *lru)
{
	if (lru == NULL)
		return;
	while (lru->head != NULL)
		unlink_node(lru, lru->head);
	pthread_mutex_destroy(&lru->lock);
	free(lru);
}

static LruNode *
lookup(CacheLru *lru, const char *key)
{
	for (LruNode *n = lru->buckets[fnv1a_str(key) % LRU_BUCKETS]; n != NULL; n = n->hnext)
		if (strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

int
cache_lru_put(CacheLru *lru, const char *key, const CacheEntry *e, int64_t expires_ms)
{
	LruNode    *n;
	LruNode    *old;
	size_t		bytes = entry_bytes(e) + sizeof(LruNode);

	if (strlen(key) >= sizeof(n->key) || bytes > lru->max_bytes)
		return -1;
	if ((n = calloc(1, sizeof(LruNode))) == NULL || (n->entry = entry_copy(e)) == NULL)
	{
		free(n);
		return -1;
	}
	strcpy(n->key, key);
	n->expires_ms = expires_ms;
	n->bytes = bytes;
	pthread_mutex_lock(&lru->lock);
	if ((old = lookup(lru, key)) != NULL)
		unlink_node(lru, old);
	while (lru->tail != NULL && lru->bytes + bytes > lru->max_bytes)
		unlink_node(lru, lru->tail);
	n->hnext = lru->buckets[fnv1a_str(key) % LRU_BUCKETS];
	lru->buckets[fnv1a_str(key) % LRU_BUCKETS] = n;
	n->next = lru->head;
	if (lru->head != NULL)
		lru->head->prev = n;
	lru->head = n;
	if (lru->tail == NULL)
		lru->tail = n;
	lru->bytes += bytes;
	lru->count++;
	pthread_mutex_unlock(&lru->lock);
	return 0;
}

CacheEntry *
cache_lru_get(CacheLru *lru, const char *key, int64_t now_ms)
{
	LruNode    *n;
	CacheEntry *copy = NULL;

	pthread_mutex_lock(&lru->lock);
	if ((n = lookup(lru, key)) != NULL)
	{
		if (n->expires_ms <= now_ms)
			unlink_node(lru, n);
		else
		{
			/* move to the front */
			if (n != lru->head)
			{
				n->prev->next = n->next;
				if (n->next != NULL)
					n->next->prev = n->prev;
				else
					lru->tail = n->prev;
				n->prev = NULL;
				n->next = lru->head;
				lru->head->prev = n;
				lru->head = n;
			}
			copy = entry_copy(n->entry);
		}
	}
	pthread_mutex_unlock(&lru->lock);
	return copy;
}

size_t
cache_lru_bytes(CacheLru *lru)
{
	size_t		b;

	pthread_mutex_lock(&lru->lock);
	b = lru->bytes;
	pthread_mutex_unlock(&lru->lock);
	return b;
}

size_t
cache_lru_count(CacheLru *lru)
{
	size_t		c;

	pthread_mutex_lock(&lru->lock);
	c = lru->count;
	pthread_mutex_unlock(&lru->lock);
	return c;
}

/* ---- versions ---- */

/*
 * The versions as last polled from iam.cache_changes.  slot[] mirrors the
 * extension's table; local[] holds this gateway's own bumps (cache_written),
 * until the poll shows the slot moved.
 */
static struct
{
	pthread_mutex_t lock;		/* guards everything in this struct */
	int64_t		generation;		/* the table's; 0: caching off */
	int64_t		since;			/* next_since of the last poll */
	int64_t		everything;
	int64_t		local_seq;
	int64_t		slot[CACHE_SLOTS];
	int64_t		local[CACHE_SLOTS];
}			versions = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char instance[33];		/* tells this process's local versions apart */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
cache_slot_of(const char *org)
{
	uint64_t	h = FNV1A_OFFSET_BASIS;
	int			n = 0;

	if (org == NULL)
		return -1;
	for (const char *p = org; *p != '\0'; p++)
	{
		int			hi;
		int			lo;

		if (*p == '-')
			continue;
		if (n == 16 || (hi = hexval(p[0])) < 0 || (lo = hexval(p[1])) < 0)
			return -1;
		h = fnv1a_add(h, (unsigned char) (hi << 4 | lo));
		n++;
		p++;
	}
	return n == 16 ? (int) (h % CACHE_SLOTS) : -1;
}

/* versions_off stops caching until a poll from since 0; lock held. */
static void
versions_off(void)
{
	versions.generation = 0;
	versions.since = 0;
}

void
cache_versions_off(void)
{
	pthread_mutex_lock(&versions.lock);
	versions_off();
	pthread_mutex_unlock(&versions.lock);
}

int64_t
cache_versions_since(void)
{
	int64_t		s;

	pthread_mutex_lock(&versions.lock);
	s = versions.since;
	pthread_mutex_unlock(&versions.lock);
	return s;
}

/* parse_i64 reads a whole decimal number into *v; false when s is not one. */
static bool
parse_i64(const char *s, int64_t *v)
{
	char	   *end;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/*
 * array_next reads the next element of a one-dimensional array literal of
 * integers ("{1,2,3}") at *p; false at its end or on anything else.
 */
static bool
array_next(const char **p, int64_t *v)
{
	char	   *end;

	if (**p == '{' || **p == ',')
		(*p)++;
	if (**p == '}' || **p == '\0')
		return false;
	errno = 0;
	*v = strtoll(*p, &end, 10);
	if (errno != 0 || end == *p || (*end != ',' && *end != '}'))
		return false;
	*p = end;
	return true;
}

int
cache_versions_apply(int64_t since_used, const char *generation, const char *next_since,
					 const char *everything, const char *slots, const char *vers)
{
	int64_t		gen;
	int64_t		next;
	int64_t		all;
	int64_t		s;
	int64_t		v;
	const char *ps = slots;
	const char *pv = vers;
	int			rc = 0;

	pthread_mutex_lock(&versions.lock);
	if (!parse_i64(generation, &gen) || gen == 0 || !parse_i64(next_since, &next) ||
		!parse_i64(everything, &all) || slots == NULL || vers == NULL ||
		slots[0] != '{' || vers[0] != '{')
	{
		versions_off();
		rc = -1;
		goto done;
	}
	if (gen != versions.generation)
	{
		/* another table (a restart, another server): since meant nothing */
		versions_off();
		if (since_used != 0)
		{
			rc = 1;
			goto done;
		}
		memset(versions.slot, 0, sizeof(versions.slot));
		memset(versions.local, 0, sizeof(versions.local));
	}
	while (array_next(&ps, &s))
	{
		if (!array_next(&pv, &v) || s < 0 || s >= CACHE_SLOTS)
		{
			versions_off();
			rc = -1;
			goto done;
		}
		if (versions.slot[s] != v)
		{
			versions.slot[s] = v;
			versions.local[s] = 0;
		}
	}
	if (*ps != '}' || array_next(&pv, &v))
	{
		versions_off();
		rc = -1;
		goto done;
	}
	versions.everything = all;
	versions.since = next;
	versions.generation = gen;
done:
	pthread_mutex_unlock(&versions.lock);
	return rc;
}

void
cache_written(const char *org)
{
	int			s = cache_slot_of(org);

	if (s < 0)
		return;
	pthread_mutex_lock(&versions.lock);
	if (versions.generation != 0)
		versions.local[s] = ++versions.local_seq;
	pthread_mutex_unlock(&versions.lock);
}

int
cache_versions_poll(PGconn *conn)
{
	static bool failing = false;	/* poller thread only: log once */
	char		since[24];
	const char *params[1] = {since};
	PGresult   *res;
	int			rc;

	for (int attempt = 0; attempt < 2; attempt++)
	{
		int64_t		used = cache_versions_since();

		snprintf(since, sizeof(since), "%lld", (long long) used);
		res = PQexecParams(conn,
						   "SELECT generation, next_since, everything, slots, versions "
						   "FROM iam.cache_changes($1::bigint)",
						   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		{
			cache_versions_off();
			if (!failing)
				accesslog_event("warn", "iam.cache_changes() failed: response cache off",
								"sqlstate", PQresultErrorField(res, PG_DIAG_SQLSTATE), NULL);
			failing = true;
			PQclear(res);
			return -1;
		}
		if (PQgetisnull(res, 0, 0))
		{
			cache_versions_off();
			if (!failing)
				accesslog_event("warn", "no cache versions (iam is not in shared_preload_libraries): response cache off", NULL);
			failing = true;
			PQclear(res);
			return -1;
		}
		rc = cache_versions_apply(used, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
								  PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
								  PQgetvalue(res, 0, 4));
		PQclear(res);
		if (rc < 0)
		{
			if (!failing)
				accesslog_event("warn", "iam.cache_changes(): unexpected answer: response cache off", NULL);
			failing = true;
			return -1;
		}
		if (rc == 0)
		{
			if (failing)
				accesslog_event("info", "cache versions polled again: response cache on", NULL);
			failing = false;
			return 0;
		}
		/* rc 1: a new generation, poll again from 0 */
	}
	return -1;
}

/* ---- the two levels ---- */

static const Config *cache_cfg;
static CacheLru *l1;
static atomic_uint_least64_t hits_l1;
static atomic_uint_least64_t hits_l2;
static atomic_uint_least64_t misses;
static atomic_uint_least64_t not_modified;

int
cache_init(const Config *cfg)
{
	unsigned char r[16];

	cache_cfg = cfg;
	if (RAND_bytes(r, sizeof(r)) != 1)
		return -1;
	for (int i = 0; i < 16; i++)
		snprintf(instance + 2 * i, 3, "%02x", r[i]);
	if (cfg->cache && (l1 = cache_lru_create((size_t) cfg->cache_l1_mb * 1024 * 1024)) == NULL)
		return -1;
	return 0;
}

int
cache_poll_interval_ms(void)
{
	return cache_cfg != NULL && cache_cfg->cache ? cache_cfg->cache_poll_ms : 0;
}

void
cache_shutdown(void)
{
	cache_lru_free(l1);
	l1 = NULL;
	cache_versions_off();
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
cache_key(const char *label, const char *params, const char *org, const char *sub,
		  char out[65])
{
	char		ver[160];
	int			slot = cache_slot_of(org);
	int64_t		generation;
	int64_t		everything;
	int64_t		v;
	int64_t		local;
	EVP_MD_CTX *md;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	bool		ok;

	if (cache_cfg == NULL || !cache_cfg->cache || l1 == NULL || slot < 0)
		return false;
	pthread_mutex_lock(&versions.lock);
	generation = versions.generation;
	everything = versions.everything;
	v = versions.slot[slot];
	local = versions.local[slot];
	pthread_mutex_unlock(&versions.lock);
	if (generation == 0)
		return false;
	/* a local version means nothing to another gateway: name this one */
	snprintf(ver, sizeof(ver), "%lld/%lld/%lld/%lld/%s", (long long) generation,
			 (long long) everything, (long long) v, (long long) local,
			 local != 0 ? instance : "");
	if ((md = EVP_MD_CTX_new()) == NULL)
		return false;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		EVP_DigestUpdate(md, label, strlen(label) + 1) == 1 &&
		EVP_DigestUpdate(md, params, strlen(params) + 1) == 1 &&
		EVP_DigestUpdate(md, org, strlen(org) + 1) == 1 &&
		EVP_DigestUpdate(md, sub, strlen(sub) + 1) == 1 &&
		EVP_DigestUpdate(md, ver, strlen(ver) + 1) == 1 &&
		EVP_DigestFinal_ex(md, digest, &n) == 1 && n == 32;
	EVP_MD_CTX_free(md);
	if (!ok)
		return false;
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
	return true;
}

/* l2_parse reads "<status>\n<etag>\n<headers>\n<body>" into an entry. */
static CacheEntry *
l2_parse(const char *s, size_t len)
{
	const char *end = s + len;
	const char *nl[3];
	const char *p = s;
	CacheEntry *e;

	for (int i = 0; i < 3; i++)
	{
		if ((nl[i] = memchr(p, '\n', (size_t) (end - p))) == NULL)
			return NULL;
		p = nl[i] + 1;
	}
	if ((e = calloc(1, sizeof(CacheEntry))) == NULL)
		return NULL;
	e->status = atoi(s);
	e->etag = strndup(nl[0] + 1, (size_t) (nl[1] - nl[0] - 1));
	e->headers = nl[2] > nl[1] + 1 ? strndup(nl[1] + 1, (size_t) (nl[2] - nl[1] - 1)) : NULL;
	e->body_len = (size_t) (end - p);
	e->body = malloc(e->body_len + 1);
	if (e->etag == NULL || e->body == NULL || (nl[2] > nl[1] + 1 && e->headers == NULL) ||
		e->status < 200 || e->status > 299)
	{
		cache_entry_free(e);
		return NULL;
	}
	memcpy(e->body, p, e->body_len);
	e->body[e->body_len] = '\0';
	return e;
}

CacheEntry *
cache_get(const char *key)
{
	CacheEntry *e;
	char		rkey[80];
	const char *argv[2] = {"GET", rkey};
	redisReply *r;

	if (l1 == NULL)
		return NULL;
	if ((e = cache_lru_get(l1, key, now_ms())) != NULL)
	{
		atomic_fetch_add(&hits_l1, 1);
		return e;
	}
	snprintf(rkey, sizeof(rkey), "iam:c:%s", key);
	if (redis_enabled() && (r = redis_command(2, argv, NULL)) != NULL)
	{
		if (r->type == REDIS_REPLY_STRING && (e = l2_parse(r->str, r->len)) != NULL)
		{
			/* L1 keeps it no longer than Redis would */
			(void) cache_lru_put(l1, key, e, now_ms() + (int64_t) cache_cfg->cache_ttl * 1000);
			atomic_fetch_add(&hits_l2, 1);
		}
		freeReplyObject(r);
		if (e != NULL)
			return e;
	}
	atomic_fetch_add(&misses, 1);
	return NULL;
}

void
cache_put(const char *key, const CacheEntry *e)
{
	char		rkey[80];
	char		ttl[16];
	char	   *blob;
	size_t		head;
	const char *argv[5] = {"SET", rkey, NULL, "EX", ttl};
	size_t		lens[5];
	redisReply *r;

	if (l1 == NULL || e->body_len > ENTRY_MAX)
		return;
	(void) cache_lru_put(l1, key, e, now_ms() + (int64_t) cache_cfg->cache_ttl * 1000);
	if (!redis_enabled())
		return;
	head = strlen(e->etag) + (e->headers != NULL ? strlen(e->headers) : 0) + 32;
	if ((blob = malloc(head + e->body_len)) == NULL)
		return;
	head = (size_t) snprintf(blob, head, "%d\n%s\n%s\n", e->status, e->etag,
							 e->headers != NULL ? e->headers : "");
	memcpy(blob + head, e->body, e->body_len);
	snprintf(rkey, sizeof(rkey), "iam:c:%s", key);
	snprintf(ttl, sizeof(ttl), "%d", cache_cfg->cache_ttl);
	argv[2] = blob;
	lens[0] = 3;
	lens[1] = strlen(rkey);
	lens[2] = head + e->body_len;
	lens[3] = 2;
	lens[4] = strlen(ttl);
	if ((r = redis_command(5, argv, lens)) != NULL)
		freeReplyObject(r);
	free(blob);
}

void
cache_etag(const char *body, size_t len, char out[40])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (EVP_Digest(body, len, md, &n, EVP_sha256(), NULL) != 1 || n < 16)
		return;
	out[0] = '"';
	for (int i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	out[33] = '"';
	out[34] = '\0';
}

bool
cache_etag_matches(const char *inm, const char *etag)
{
	size_t		elen = strlen(etag);

	if (inm == NULL || etag[0] == '\0')
		return false;
	while (*inm != '\0')
	{
		size_t		len;

		while (*inm == ' ' || *inm == '\t' || *inm == ',')
			inm++;
		len = strcspn(inm, ",");
		while (len > 0 && (inm[len - 1] == ' ' || inm[len - 1] == '\t'))
			len--;
		if (len == 1 && inm[0] == '*')
			return true;
		/* weak comparison (RFC 9110 13.1.2): W/ is ignored */
		if (len > 2 && strncmp(inm, "W/", 2) == 0)
		{
			if (len - 2 == elen && memcmp(inm + 2, etag, elen) == 0)
				return true;
		}
		else if (len == elen && memcmp(inm, etag, elen) == 0)
			return true;
		inm += strcspn(inm, ",");
	}
	return false;
}

char *
cache_metrics(void)
{
	char	   *s = NULL;

	if (asprintf(&s,
				 "# HELP iam_cache_requests_total Cacheable requests by outcome (hit_l1, hit_l2, miss).\n"
				 "# TYPE iam_cache_requests_total counter\n"
				 "iam_cache_requests_total{outcome=\"hit_l1\"} %llu\n"
				 "iam_cache_requests_total{outcome=\"hit_l2\"} %llu\n"
				 "iam_cache_requests_total{outcome=\"miss\"} %llu\n"
				 "# HELP iam_cache_not_modified_total 304 replies to If-None-Match.\n"
				 "# TYPE iam_cache_not_modified_total counter\n"
				 "iam_cache_not_modified_total %llu\n"
				 "# HELP iam_cache_l1_bytes Bytes held by the in-process cache.\n"
				 "# TYPE iam_cache_l1_bytes gauge\n"
				 "iam_cache_l1_bytes %zu\n",
				 (unsigned long long) atomic_load(&hits_l1),
				 (unsigned long long) atomic_load(&hits_l2),
				 (unsigned long long) atomic_load(&misses),
				 (unsigned long long) atomic_load(&not_modified),
				 l1 != NULL ? cache_lru_bytes(l1) : (size_t) 0) < 0)
		return NULL;
	return s;
}

void
cache_note_not_modified(void)
{
	atomic_fetch_add(&not_modified, 1);
}
