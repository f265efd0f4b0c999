/*
 * test_ratelimit.c
 *		Unit tests for the in-process limiter: GCRA arithmetic (exact
 *		counts, headers' numbers, refill, reset after the window), the
 *		bounded key table, several keys at once, trusted proxies.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "ratelimit.h"
#include "tap.h"

#define SEC		1000000LL

static void
test_gcra(void)
{
	int64_t		tat = 0;
	int64_t		now = 1000 * SEC;
	GcraResult	r;
	int			allowed = 0;
	bool		remaining_ok = true;

	/* 10 a minute: 10 at once, then refused */
	for (int i = 0; i < 10; i++)
	{
		r = gcra_step(&tat, now, 10, 60 * SEC);
		allowed += r.allowed;
		remaining_ok = remaining_ok && r.remaining == 9 - i;
	}
	tap_ok(allowed == 10, "10 a minute: 10 requests at once pass (%d)", allowed);
	tap_ok(remaining_ok, "remaining counts down 9 .. 0");
	tap_ok(r.ahead_us == 60 * SEC, "after 10, the quota is whole again in 60 s");
	r = gcra_step(&tat, now, 10, 60 * SEC);
	tap_ok(!r.allowed, "the 11th is refused");
	tap_ok(r.retry_us == 6 * SEC, "retry after 6 s, one interval (%lld us)", (long long) r.retry_us);
	tap_ok(r.remaining == 0, "refused: remaining 0");
	tap_ok(tat == now + 60 * SEC, "a refusal does not move the TAT");
	r = gcra_step(&tat, now + 6 * SEC - 1, 10, 60 * SEC);
	tap_ok(!r.allowed, "1 us before the retry time: still refused");
	r = gcra_step(&tat, now + 6 * SEC, 10, 60 * SEC);
	tap_ok(r.allowed && r.remaining == 0, "at the retry time: one passes, none left");
	r = gcra_step(&tat, now + 6 * SEC, 10, 60 * SEC);
	tap_ok(!r.allowed, "and the next at the same instant is refused");
	/* a full window later everything is back */
	allowed = 0;
	for (int i = 0; i < 11; i++)
		allowed += gcra_step(&tat, now + 66 * SEC, 10, 60 * SEC).allowed;
	tap_ok(allowed == 10, "a window after the last request: 10 pass again, the 11th not (%d)", allowed);

	/* odd limits: 3 per second, interval rounded down */
	tat = 0;
	allowed = 0;
	for (int i = 0; i < 4; i++)
		allowed += gcra_step(&tat, now, 3, SEC).allowed;
	tap_ok(allowed == 3, "3 a second: exactly 3 at once (%d)", allowed);
	/* limit larger than the period in microseconds: interval clamps at 1 */
	tat = 0;
	r = gcra_step(&tat, now, 1000000, 1);
	tap_ok(r.allowed, "a limit above the period's microseconds does not divide by zero");
	/* a stale TAT in the past counts as now */
	tat = 5;
	r = gcra_step(&tat, now, 2, SEC);
	tap_ok(r.allowed && r.remaining == 1, "an expired TAT is a whole quota");
}

static void
test_local(void)
{
	RateLimitLocal *l = ratelimit_local_create(1000);
	const char *k1[1] = {"iam:rl:read:u:a"};
	const char *k2[1] = {"iam:rl:read:u:b"};
	const char *both[2] = {"iam:rl:auth:ip:1.2.3.4", "iam:rl:auth:acct:x"};
	const char *ip_only[1] = {"iam:rl:auth:ip:1.2.3.4"};
	const char *acct_other_ip[2] = {"iam:rl:auth:ip:5.6.7.8", "iam:rl:auth:acct:x"};
	int64_t		now = 2000 * SEC;
	int			n = 0;
	GcraResult	r;

	for (int i = 0; i < 5; i++)
		n += ratelimit_local_check(l, k1, 1, now, 3, 60 * SEC).allowed;
	tap_ok(n == 3, "local: 3 of 5 pass for one key");
	r = ratelimit_local_check(l, k2, 1, now, 3, 60 * SEC);
	tap_ok(r.allowed && r.remaining == 2, "local: another key is independent");
	tap_ok(ratelimit_local_size(l) == 2, "local: two keys held");

	n = 0;
	for (int i = 0; i < 3; i++)
		n += ratelimit_local_check(l, both, 2, now, 2, 60 * SEC).allowed;
	tap_ok(n == 2, "local: two keys at once: 2 of 3 pass");
	r = ratelimit_local_check(l, acct_other_ip, 2, now, 2, 60 * SEC);
	tap_ok(!r.allowed, "local: the account's key refuses from another IP");
	r = ratelimit_local_check(l, (const char *[]) {"iam:rl:auth:ip:5.6.7.8"}, 1, now, 2, 60 * SEC);
	tap_ok(r.allowed && r.remaining == 1,
		   "local: a refused request counts against none of its keys (the other IP is untouched)");
	r = ratelimit_local_check(l, ip_only, 1, now, 2, 60 * SEC);
	tap_ok(!r.allowed, "local: the first IP is used up");
	ratelimit_local_free(l);

	/* bounded: expired keys are swept, beyond the bound new keys pass */
	l = ratelimit_local_create(16);	/* one per stripe */
	{
		char		key[64];
		int			passed = 0;

		for (int i = 0; i < 200; i++)
		{
			const char *k[1] = {key};

			snprintf(key, sizeof(key), "k%d", i);
			passed += ratelimit_local_check(l, k, 1, now, 1, SEC).allowed;
		}
		tap_ok(passed == 200 && ratelimit_local_size(l) <= 16,
			   "local: the table never holds more than its bound (%zu)", ratelimit_local_size(l));
		for (int i = 0; i < 200; i++)
		{
			const char *k[1] = {key};

			snprintf(key, sizeof(key), "n%d", i);
			(void) ratelimit_local_check(l, k, 1, now + 10 * SEC, 1, SEC);
		}
		tap_ok(ratelimit_local_size(l) > 0 && ratelimit_local_size(l) <= 16,
			   "local: expired keys make room for new ones");
	}
	ratelimit_local_free(l);
}

typedef struct Hammer
{
	RateLimitLocal *l;
	int			allowed;
} Hammer;

static void *
hammer(void *arg)
{
	Hammer	   *h = arg;
	const char *k[1] = {"shared"};

	for (int i = 0; i < 1000; i++)
		h->allowed += ratelimit_local_check(h->l, k, 1, 3000 * SEC, 100, 3600 * SEC).allowed;
	return NULL;
}

static void
test_threads(void)
{
	RateLimitLocal *l = ratelimit_local_create(1000);
	Hammer		h[4];
	pthread_t	t[4];
	int			total = 0;

	for (int i = 0; i < 4; i++)
	{
		h[i].l = l;
		h[i].allowed = 0;
		pthread_create(&t[i], NULL, hammer, &h[i]);
	}
	for (int i = 0; i < 4; i++)
	{
		pthread_join(t[i], NULL);
		total += h[i].allowed;
	}
	tap_ok(total == 100, "4 threads x 1000 requests on one key of 100: exactly 100 pass (%d)", total);
	ratelimit_local_free(l);
}

static void
test_proxies(void)
{
	ConfigCidr	cidrs[3] = {
		{.family = AF_INET,.addr = {10, 0, 0, 0},.bits = 8},
		{.family = AF_INET,.addr = {192, 168, 1, 7},.bits = 32},
		{.family = AF_INET6,.addr = {0x20, 0x01, 0x0d, 0xb8},.bits = 32},
	};
	Config		cfg;

	memset(&cfg, 0, sizeof(cfg));
	tap_ok(!ratelimit_is_trusted(&cfg, "10.1.2.3"), "no trusted proxies: nobody is trusted");
	cfg.trusted_proxies = cidrs;
	cfg.n_trusted_proxies = 3;
	tap_ok(ratelimit_is_trusted(&cfg, "10.255.0.1"), "10.0.0.0/8 contains 10.255.0.1");
	tap_ok(!ratelimit_is_trusted(&cfg, "11.0.0.1"), "10.0.0.0/8 does not contain 11.0.0.1");
	tap_ok(ratelimit_is_trusted(&cfg, "192.168.1.7") && !ratelimit_is_trusted(&cfg, "192.168.1.8"),
		   "a /32 is one address");
	tap_ok(ratelimit_is_trusted(&cfg, "::ffff:10.0.0.9"), "an IPv4-mapped IPv6 peer counts as IPv4");
	tap_ok(ratelimit_is_trusted(&cfg, "2001:db8::1") && !ratelimit_is_trusted(&cfg, "2001:db9::1"),
		   "IPv6 networks");
	tap_ok(!ratelimit_is_trusted(&cfg, "garbage") && !ratelimit_is_trusted(&cfg, ""),
		   "a malformed address is never trusted");
}

/* load: config_load of a minimal environment plus extra; NULL with *err on error */
static Config *
load(const char *extra1, const char *extra2, char **err)
{
	const char *env[] = {"IAM_DATABASE_URL=postgresql://localhost/iam", "IAM_THREADS=2",
		extra1, extra2, NULL};

	if (extra1 == NULL)
		env[2] = NULL;
	else if (extra2 == NULL)
		env[3] = NULL;
	*err = NULL;
	return config_load(env, err);
}

static void
test_config(void)
{
	char	   *err;
	Config	   *cfg = load(NULL, NULL, &err);

	tap_ok(cfg != NULL && cfg->rate_limit && !cfg->rate_limit_fail_closed && cfg->cache &&
		   cfg->cache_ttl == 60 && cfg->cache_l1_mb == 64 && cfg->redis_timeout_ms == 200 &&
		   cfg->max_db_waiters == 4 * cfg->db_pool_size && cfg->n_trusted_proxies == 0 &&
		   cfg->rate_limit_lease_ms == 1000,
		   "defaults: limiter on, fail-open, 1 s leases, cache on for 60 s in 64 MB, 200 ms Redis timeout, 4 waiters per connection");
	config_free(cfg);
	cfg = load("IAM_RATE_LIMIT_FAIL=closed", "IAM_TRUSTED_PROXIES=10.0.0.0/8, ::1", &err);
	tap_ok(cfg != NULL && cfg->rate_limit_fail_closed && cfg->n_trusted_proxies == 2 &&
		   cfg->trusted_proxies[0].bits == 8 && cfg->trusted_proxies[1].bits == 128,
		   "IAM_RATE_LIMIT_FAIL=closed, IAM_TRUSTED_PROXIES with a network and an address");
	config_free(cfg);
	cfg = load("IAM_RATE_LIMIT_FAIL=sometimes", NULL, &err);
	tap_ok(cfg == NULL && err != NULL && strncmp(err, "IAM_RATE_LIMIT_FAIL:", 20) == 0,
		   "a bad IAM_RATE_LIMIT_FAIL is refused, naming the setting (%s)", err != NULL ? err : "");
	free(err);
	cfg = load("IAM_TRUSTED_PROXIES=10.0.0.0/33", NULL, &err);
	tap_ok(cfg == NULL && err != NULL && strncmp(err, "IAM_TRUSTED_PROXIES:", 20) == 0,
		   "a prefix too long for IPv4 is refused");
	free(err);
	cfg = load("IAM_TRUSTED_PROXIES=proxy.example", NULL, &err);
	tap_ok(cfg == NULL && err != NULL && strncmp(err, "IAM_TRUSTED_PROXIES:", 20) == 0,
		   "a host name is refused (addresses only)");
	free(err);
	cfg = load("IAM_RATE_LIMIT=maybe", NULL, &err);
	tap_ok(cfg == NULL && err != NULL && strncmp(err, "IAM_RATE_LIMIT:", 15) == 0,
		   "IAM_RATE_LIMIT must be on or off");
	free(err);
	cfg = load("IAM_RATE_LIMIT_LEASE_MS=0", NULL, &err);
	tap_ok(cfg != NULL && cfg->rate_limit_lease_ms == 0, "IAM_RATE_LIMIT_LEASE_MS=0: no leases");
	config_free(cfg);
	cfg = load("IAM_RATE_LIMIT_LEASE_MS=-5", NULL, &err);
	tap_ok(cfg == NULL && err != NULL && strncmp(err, "IAM_RATE_LIMIT_LEASE_MS", 23) == 0,
		   "a negative IAM_RATE_LIMIT_LEASE_MS is refused (%s)", err != NULL ? err : "");
	free(err);
	cfg = load("IAM_CACHE=off", "IAM_MAX_DB_WAITERS=0", &err);
	tap_ok(cfg != NULL && !cfg->cache && cfg->max_db_waiters == 0, "IAM_CACHE=off, IAM_MAX_DB_WAITERS=0 (no bound)");
	config_free(cfg);
}

int
main(void)
{
	test_config();
	test_gcra();
	test_local();
	test_threads();
	test_proxies();
	return tap_done();
}
