/*
 * cache.h
 *		The response cache of cacheable GET routes: a bounded in-process LRU
 *		(L1) in front of Redis (L2), keyed by route, parameters,
 *		organisation, caller and the cache versions polled from the
 *		extension.
 */
#ifndef CACHE_H
#define CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"

/* A cached response; every string is malloc'd and owned by the entry. */
typedef struct CacheEntry
{
	int			status;
	char	   *etag;			/* quoted, e.g. "\"3f2a...\"" */
	char	   *headers;		/* the handler's headers (jsonb text), or NULL */
	char	   *body;
	size_t		body_len;
} CacheEntry;

/* cache_entry_free frees e and its strings; e may be NULL. */
extern void cache_entry_free(CacheEntry *e);

/*
 * The L1 LRU, exported for the tests.  Thread-safe.  Entries are copied in
 * and out, so a caller never shares memory with the cache; when the bytes
 * held would pass max_bytes, the least recently used entries go.
 */
typedef struct CacheLru CacheLru;
extern CacheLru *cache_lru_create(size_t max_bytes);	/* NULL: out of memory */
extern void cache_lru_free(CacheLru *lru);
/* cache_lru_put copies e under key (replacing); -1 when out of memory or too big. */
extern int	cache_lru_put(CacheLru *lru, const char *key, const CacheEntry *e,
						  int64_t expires_ms);
/* cache_lru_get returns a copy (caller frees) or NULL when absent or expired. */
extern CacheEntry *cache_lru_get(CacheLru *lru, const char *key, int64_t now_ms);
extern size_t cache_lru_bytes(CacheLru *lru);
extern size_t cache_lru_count(CacheLru *lru);

/*
 * Versions (#7), polled from the extension's shared memory.  An
 * organisation's slot is FNV-1a (64 bits) of the 16 bytes of its uuid,
 * modulo CACHE_SLOTS, the same as iam.cache_slot() in SQL.
 */
#define CACHE_SLOTS 4096

/* cache_slot_of returns org's slot, or -1 when org is not a uuid. */
extern int	cache_slot_of(const char *org);

/*
 * cache_versions_poll calls iam.cache_changes on conn (the routes loader's,
 * one thread only) and applies the answer.  0, or -1 when the query failed
 * or the server has no versions (iam not preloaded): caching is then off
 * until a poll succeeds, and the first failure is logged.  The caller checks
 * PQstatus(conn) to tell a lost connection.
 */
extern int	cache_versions_poll(PGconn *conn);

/*
 * cache_versions_apply takes the text columns of one iam.cache_changes row
 * (generation, next_since, everything, slots, versions), asked for with
 * since_used.  0 applied; 1 the generation changed while since_used was not
 * 0: caching off, poll again (cache_versions_since is 0 now); -1 malformed
 * or NULL (no versions): caching off.  Exported for the tests.
 */
extern int	cache_versions_apply(int64_t since_used, const char *generation,
								 const char *next_since, const char *everything,
								 const char *slots, const char *versions);

/* cache_versions_since is the since to pass to the next poll. */
extern int64_t cache_versions_since(void);

/* cache_versions_off stops caching until a poll from scratch (connection lost). */
extern void cache_versions_off(void);

/*
 * cache_written marks org changed by a write this gateway made, so that its
 * next read does not wait for the poll.
 */
extern void cache_written(const char *org);

/* cache_init sets the cache up from cfg (borrowed); 0, or -1 when out of memory. */
extern int	cache_init(const Config *cfg);

/* cache_poll_interval_ms is IAM_CACHE_POLL_MS, or 0 when the cache is off. */
extern int	cache_poll_interval_ms(void);
extern void cache_shutdown(void);

/*
 * cache_key writes the key of a response (64 hex digits) into out; false
 * when nothing may be cached now (cache off, no successful poll, org not a
 * uuid).
 */
extern bool cache_key(const char *route_label, const char *params, const char *org,
					  const char *sub, char out[65]);

/* cache_get looks in L1, then L2 (filling L1); a copy the caller frees, or NULL. */
extern CacheEntry *cache_get(const char *key);

/* cache_put stores e (copied) in L1 and L2. */
extern void cache_put(const char *key, const CacheEntry *e);

/* cache_etag writes the strong ETag of a body ("\"<32 hex>\"") into out[40]. */
extern void cache_etag(const char *body, size_t len, char out[40]);

/* cache_etag_matches: If-None-Match inm (a list, or *) names etag. */
extern bool cache_etag_matches(const char *inm, const char *etag);

/* cache_note_not_modified counts one 304. */
extern void cache_note_not_modified(void);

/* cache_metrics returns the cache's Prometheus lines (malloc'd) or NULL. */
extern char *cache_metrics(void);

#endif							/* CACHE_H */
