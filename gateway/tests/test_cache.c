/*
 * test_cache.c
 *		Unit tests for the response cache's parts: the L1 LRU (bounds,
 *		order, expiry, copies), ETags and If-None-Match, the slot hash
 *		shared with the extension, the version bookkeeping behind the keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "tap.h"

static CacheEntry
entry(const char *body)
{
	return (CacheEntry) {
		.status = 200,.etag = (char *) "\"e\"",.headers = NULL,
			.body = (char *) body,.body_len = strlen(body),
	};
}

static void
test_lru(void)
{
	CacheLru   *lru = cache_lru_create(4096);
	CacheEntry	a = entry("alpha");
	CacheEntry *got;
	char		big[3000];
	bool		bounded = true;

	tap_ok(cache_lru_put(lru, "k1", &a, 1000) == 0, "put one entry");
	got = cache_lru_get(lru, "k1", 999);
	tap_ok(got != NULL && got->body_len == 5 && memcmp(got->body, "alpha", 5) == 0 &&
		   strcmp(got->etag, "\"e\"") == 0 && got->status == 200,
		   "get returns a copy of it");
	tap_ok(got != NULL && got->body != a.body, "the copy shares no memory with the cache");
	cache_entry_free(got);
	tap_ok(cache_lru_get(lru, "k1", 1000) == NULL, "expired at its deadline");
	tap_ok(cache_lru_count(lru) == 0 && cache_lru_bytes(lru) == 0, "and dropped");
	tap_ok(cache_lru_get(lru, "absent", 0) == NULL, "an absent key is a miss");

	/* LRU order: touch k1, then adding evicts k2 */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 40; i++)
	{
		char		key[16];
		CacheEntry	e = entry("0123456789012345678901234567890123456789");

		snprintf(key, sizeof(key), "n%d", i);
		cache_lru_put(lru, key, &e, 1000000);
		bounded = bounded && cache_lru_bytes(lru) <= 4096;
		/* keep n0 recent */
		cache_entry_free(cache_lru_get(lru, "n0", 1));
	}
	tap_ok(bounded, "the bytes held never pass the bound (%zu)", cache_lru_bytes(lru));
	got = cache_lru_get(lru, "n0", 1);
	tap_ok(got != NULL, "the most recently used entry survives");
	cache_entry_free(got);
	got = cache_lru_get(lru, "n1", 1);
	tap_ok(got == NULL, "the least recently used entry is evicted");
	cache_entry_free(got);
	got = cache_lru_get(lru, "n39", 1);
	tap_ok(got != NULL, "the newest entry is there");
	cache_entry_free(got);
	{
		CacheEntry	b = entry(big);
		CacheEntry	huge;
		char	   *hb = malloc(10000);

		memset(hb, 'y', 9999);
		hb[9999] = '\0';
		huge = entry(hb);
		tap_ok(cache_lru_put(lru, "big", &b, 1000000) == 0 && cache_lru_bytes(lru) <= 4096,
			   "a large entry evicts enough others");
		tap_ok(cache_lru_put(lru, "huge", &huge, 1000000) == -1, "an entry above the bound is refused");
		free(hb);
	}
	{
		CacheEntry	v1 = entry("one");
		CacheEntry	v2 = entry("two");
		size_t		before;

		cache_lru_put(lru, "same", &v1, 1000000);
		before = cache_lru_count(lru);
		cache_lru_put(lru, "same", &v2, 1000000);
		got = cache_lru_get(lru, "same", 1);
		tap_ok(got != NULL && strcmp(got->body, "two") == 0 && cache_lru_count(lru) == before,
			   "putting a key again replaces its entry");
		cache_entry_free(got);
	}
	cache_lru_free(lru);
}

static void
test_etags(void)
{
	char		e1[40];
	char		e2[40];
	char		weak[64];

	cache_etag("{\"a\":1}", 7, e1);
	cache_etag("{\"a\":2}", 7, e2);
	tap_ok(strlen(e1) == 34 && e1[0] == '"' && e1[33] == '"', "an ETag is 32 hex digits in quotes");
	tap_ok(strcmp(e1, e2) != 0, "another body, another ETag");
	tap_ok(cache_etag_matches(e1, e1), "If-None-Match: the ETag matches");
	tap_ok(!cache_etag_matches(e2, e1), "another ETag does not");
	tap_ok(cache_etag_matches("*", e1), "* matches");
	snprintf(weak, sizeof(weak), "\"x\", W/%s", e1);
	tap_ok(cache_etag_matches(weak, e1), "a list with a weak form matches");
	tap_ok(!cache_etag_matches(NULL, e1) && !cache_etag_matches("", e1), "no header matches nothing");
	tap_ok(!cache_etag_matches("\"1f\"", "\"1f3\""), "a prefix is not a match");
}

/*
 * The slot hash must be the extension's: these values are the ones
 * iam.cache_slot() returns (regress/tap/cache.sql pins the same).
 */
static void
test_slots(void)
{
	tap_ok(cache_slot_of("11111111-1111-4111-8111-111111111111") == 2901 &&
		   cache_slot_of("22222222-2222-4222-8222-222222222222") == 4069 &&
		   cache_slot_of("00000000-0000-0000-0000-000000000000") == 1125 &&
		   cache_slot_of("b5c3a1f0-7d2e-4c8a-9f61-0e4d2a9c7b13") == 2784,
		   "cache_slot_of: FNV-1a of the uuid's bytes mod 4096, as iam.cache_slot()");
	tap_ok(cache_slot_of("B5C3A1F07D2E4C8A9F610E4D2A9C7B13") == 2784,
		   "cache_slot_of: upper case and no hyphens, the same slot");
	tap_ok(cache_slot_of("b5c3a1f0-7d2e-4c8a-9f61-0e4d2a9c7b1") == -1 &&
		   cache_slot_of("b5c3a1f0-7d2e-4c8a-9f61-0e4d2a9c7b133") == -1 &&
		   cache_slot_of("g5c3a1f0-7d2e-4c8a-9f61-0e4d2a9c7b13") == -1 &&
		   cache_slot_of("") == -1 && cache_slot_of(NULL) == -1,
		   "cache_slot_of: -1 for anything but a uuid");
}

/* IAM_CACHE_POLL_MS: 20 ms by default, 1 to 10000 */
static void
test_poll_setting(void)
{
	const char *env[] = {"IAM_DATABASE_URL=postgresql://localhost/iam", "IAM_THREADS=2", NULL, NULL};
	char	   *err = NULL;
	Config	   *cfg = config_load(env, &err);

	tap_ok(cfg != NULL && cfg->cache_poll_ms == 20, "IAM_CACHE_POLL_MS defaults to 20");
	config_free(cfg);
	free(err);
	err = NULL;
	env[2] = "IAM_CACHE_POLL_MS=0";
	cfg = config_load(env, &err);
	tap_ok(cfg == NULL && err != NULL && strstr(err, "IAM_CACHE_POLL_MS") != NULL,
		   "IAM_CACHE_POLL_MS=0 is refused, naming the setting");
	config_free(cfg);
	free(err);
}

static void
test_keys(void)
{
	Config		cfg;
	char		k1[65];
	char		k2[65];
	char		k3[65];
	char		k4[65];
	const char *org = "11111111-1111-4111-8111-111111111111";
	const char *other = "22222222-2222-4222-8222-222222222222";

	memset(&cfg, 0, sizeof(cfg));
	cfg.cache = true;
	cfg.cache_ttl = 60;
	cfg.cache_l1_mb = 1;
	tap_ok(cache_init(&cfg) == 0, "cache_init");
	tap_ok(!cache_key("GET /users/me", "{}", org, "u1", k1), "no poll yet: nothing is cacheable");
	tap_ok(cache_versions_apply(0, "700", "5", "1", "{2901,4069}", "{3,4}") == 0,
		   "a first poll (since 0) applies");
	tap_ok(cache_versions_since() == 5, "... and gives the next since");
	tap_ok(cache_key("GET /users/me", "{}", org, "u1", k1) && strlen(k1) == 64, "after a poll: a key");
	cache_key("GET /users/me", "{}", org, "u2", k2);
	cache_key("GET /users/me", "{}", other, "u1", k3);
	cache_key("GET /roles", "{}", org, "u1", k4);
	tap_ok(strcmp(k1, k2) != 0 && strcmp(k1, k3) != 0 && strcmp(k1, k4) != 0,
		   "caller, organisation and route each change the key");
	cache_key("GET /users/me", "{\"a\":1}", org, "u1", k2);
	tap_ok(strcmp(k1, k2) != 0, "parameters change the key");
	cache_key("GET /users/me", "{}", org, "u1", k2);
	tap_ok(strcmp(k1, k2) == 0, "the same request, the same key");
	tap_ok(!cache_key("GET /users/me", "{}", "not-a-uuid", "u1", k2), "an organisation that is no uuid: not cacheable");
	/* other's slot is 4069 */
	cache_versions_apply(5, "700", "6", "1", "{4069}", "{5}");
	cache_key("GET /users/me", "{}", org, "u1", k2);
	tap_ok(strcmp(k1, k2) == 0, "a write to another organisation's slot keeps the key");
	cache_key("GET /users/me", "{}", other, "u1", k2);
	tap_ok(strcmp(k3, k2) != 0, "... and changes that organisation's");
	cache_versions_apply(6, "700", "6", "1", "{}", "{}");
	cache_key("GET /users/me", "{}", org, "u1", k2);
	tap_ok(strcmp(k1, k2) == 0, "a poll without changes keeps the key");
	cache_versions_apply(6, "700", "7", "1", "{2901}", "{4}");
	cache_key("GET /users/me", "{}", org, "u1", k2);
	tap_ok(strcmp(k1, k2) != 0, "a write to the organisation's slot changes its key");
	strcpy(k1, k2);
	cache_versions_apply(7, "700", "8", "2", "{}", "{}");
	cache_key("GET /users/me", "{}", org, "u1", k2);
	tap_ok(strcmp(k1, k2) != 0, "a change of everything changes every key");
	strcpy(k1, k2);
	cache_written(org);
	cache_key("GET /users/me", "{}", org, "u1", k2);
	tap_ok(strcmp(k1, k2) != 0, "a write through this gateway changes the key at once");
	strcpy(k3, k2);
	cache_versions_apply(8, "700", "8", "2", "{2901}", "{4}");
	cache_key("GET /users/me", "{}", org, "u1", k2);
	tap_ok(strcmp(k3, k2) == 0, "... and keeps it while the poll shows the slot unchanged");
	cache_versions_apply(8, "700", "9", "2", "{2901}", "{5}");
	cache_key("GET /users/me", "{}", org, "u1", k2);
	tap_ok(strcmp(k3, k2) != 0 && strcmp(k1, k2) != 0, "the slot's next version replaces the local bump");
	strcpy(k1, k2);
	tap_ok(cache_versions_apply(9, "700", "10", "2", "{1,2}", "{1}") == -1 &&
		   !cache_key("GET /users/me", "{}", org, "u1", k2) && cache_versions_since() == 0,
		   "a malformed answer: caching off, the next poll from 0");
	tap_ok(cache_versions_apply(0, "700", "9", "2", "{2901,4069}", "{5,5}") == 0 &&
		   cache_key("GET /users/me", "{}", org, "u1", k2) && strcmp(k1, k2) == 0,
		   "a poll from 0 of the same generation: the same keys again");
	tap_ok(cache_versions_apply(9, NULL, NULL, NULL, NULL, NULL) == -1 &&
		   !cache_key("GET /users/me", "{}", org, "u1", k2),
		   "no versions (iam not preloaded): caching off");
	cache_versions_apply(0, "700", "9", "2", "{2901,4069}", "{5,5}");
	tap_ok(cache_versions_apply(9, "800", "1", "0", "{}", "{}") == 1 &&
		   !cache_key("GET /users/me", "{}", org, "u1", k2) && cache_versions_since() == 0,
		   "a new generation seen from since > 0: caching off, poll again from 0");
	tap_ok(cache_versions_apply(0, "800", "1", "0", "{2901}", "{5}") == 0 &&
		   cache_key("GET /users/me", "{}", org, "u1", k2) && strcmp(k1, k2) != 0,
		   "the new generation gives new keys, even for equal versions");
	cache_versions_off();
	tap_ok(!cache_key("GET /users/me", "{}", org, "u1", k2), "poll connection lost: caching stops");
	cache_versions_apply(0, "800", "1", "0", "{2901}", "{5}");
	cache_key("GET /users/me", "{}", org, "u1", k2);
	{
		CacheEntry	e = entry("{}");
		CacheEntry *got;

		e.etag = (char *) "\"abc\"";
		cache_put(k2, &e);
		got = cache_get(k2);
		tap_ok(got != NULL && strcmp(got->body, "{}") == 0, "cache_put then cache_get (L1 only)");
		cache_entry_free(got);
		tap_ok(cache_get(k1) == NULL, "another key misses");
	}
	cache_shutdown();
}

int
main(void)
{
	test_lru();
	test_etags();
	test_slots();
	test_poll_setting();
	test_keys();
	return tap_done();
}
