/*
 * test_ratelimit_lease.c
 *		Unit tests for the lease table (ratelimit_lease.c): leases sized by
 *		demand (none for a key seen once), one request of a key asks at a
 *		time, tokens are spent exactly once (also from several threads), a
 *		half-spent lease asks for a refill once, an expired lease's tokens
 *		come back as a refund, the table stays bounded.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ratelimit_lease.h"
#include "tap.h"

#define SEC		1000000LL
#define TTL		(1 * SEC)
#define IVAL	(5 * SEC)		/* TAT per token */

static void
test_spend_and_grant(void)
{
	LeaseTable *t = lease_table_create(1000, TTL);
	GcraResult	r = {0};
	int			want;
	int64_t		refund;
	int64_t		now = 1000 * SEC;
	int			spent = 0;
	int			refills = 0;
	bool		counts_down = true;

	tap_ok(!lease_spend(t, "k", now, 20, &r, &want, &refund) && want == 1 && refund == 0,
		   "a key seen once: no lease, one token");
	tap_ok(!lease_spend(t, "k", now, 20, &r, &want, &refund) && want == 4,
		   "seen twice in a lease lifetime: it asks for a lease of 4 (twice its demand)");
	for (int i = 0; i < 8; i++)
		spent += !lease_spend(t, "k", now, 20, &r, &want, &refund) && want == 1;
	tap_ok(spent == 8, "while it asks, the key's other requests ask for one token each");
	spent = 0;
	r = (GcraResult) {.allowed = true,.remaining = 100,.ahead_us = 30 * SEC};
	lease_grant(t, "k", now, IVAL, &r, 20, false);
	for (int i = 0; i < 25; i++)
	{
		if (!lease_spend(t, "k", now + i, 20, &r, &want, &refund))
			break;
		spent++;
		refills += want == 20;
		counts_down = counts_down && r.allowed && r.remaining == 100 + 18 - i &&
			r.ahead_us == 30 * SEC - i;
	}
	tap_ok(spent == 19, "20 granted, the asking request spent one: 19 spent from the lease (%d)", spent);
	tap_ok(counts_down, "remaining counts Redis's 100 plus the tokens held; the reset counts down");
	tap_ok(refills == 1, "at half the lease a refill is asked for, once (%d)", refills);
	tap_ok(want == 1, "the lease spent and a refill asked: the next request asks for one token");
	r = (GcraResult) {.allowed = true,.remaining = 80,.ahead_us = 40 * SEC};
	lease_grant(t, "k", now, IVAL, &r, 20, true);
	tap_ok(lease_spend(t, "k", now, 20, &r, &want, &refund) && r.remaining == 80 + 19,
		   "a refill's 20 tokens all go to the lease");
	r = (GcraResult) {0};
	lease_grant(t, "k2", now, IVAL, &r, 0, false);	/* nobody asked for k2: ignored */
	tap_ok(lease_table_size(t) == 1, "an answer for a key nobody asked about adds nothing");
	lease_table_free(t);
}

static void
test_refused_and_failed(void)
{
	LeaseTable *t = lease_table_create(1000, TTL);
	GcraResult	r = {0};
	int			want;
	int64_t		refund;
	int64_t		now = 1000 * SEC;

	(void) lease_spend(t, "k", now, 10, &r, &want, &refund);
	(void) lease_spend(t, "k", now, 10, &r, &want, &refund);
	lease_grant(t, "k", now, IVAL, &r, 0, false);	/* refused: allowed false */
	tap_ok(!lease_spend(t, "k", now, 10, &r, &want, &refund) && want == 6,
		   "a refused asking ends it: the next request asks for a lease again");
	lease_table_free(t);
}

static void
test_demand(void)
{
	LeaseTable *t = lease_table_create(1000, TTL);
	GcraResult	r = {0};
	int			want;
	int64_t		refund;
	int64_t		now = 1000 * SEC;

	for (int i = 0; i < 5; i++)
		(void) lease_spend(t, "k", now + i, 64, &r, &want, &refund);
	lease_grant(t, "k", now, IVAL, &r, 0, false);	/* the asking ends */
	(void) lease_spend(t, "k", now + TTL, 64, &r, &want, &refund);
	tap_ok(want == 10, "5 requests in the last lifetime: the next lease is twice that (%d)", want);
	lease_grant(t, "k", now, IVAL, &r, 0, false);
	(void) lease_spend(t, "k", now + 4 * TTL, 64, &r, &want, &refund);
	tap_ok(want == 1, "idle for two lifetimes: demand forgotten, one token (%d)", want);
	lease_table_free(t);
}

static void
refund_cb(const char *key, int64_t refund_us, void *arg)
{
	int64_t    *sum = arg;

	if (strcmp(key, "idle") == 0)
		*sum += refund_us;
}

static void
test_expiry(void)
{
	LeaseTable *t = lease_table_create(1000, TTL);
	GcraResult	r = {.allowed = true,.remaining = 50};
	int			want;
	int64_t		refund;
	int64_t		now = 1000 * SEC;
	int64_t		sum = 0;
	bool		spent;

	(void) lease_spend(t, "k", now, 10, &r, &want, &refund);
	(void) lease_spend(t, "k", now, 10, &r, &want, &refund);
	lease_grant(t, "k", now, IVAL, &r, 10, false);
	(void) lease_spend(t, "k", now, 10, &r, &want, &refund);	/* 8 left */
	spent = lease_spend(t, "k", now + TTL, 10, &r, &want, &refund);
	tap_ok(!spent && refund == 8 * IVAL && want == 6,
		   "an expired lease is not spent: its 8 tokens go back with the next asking (%lld)",
		   (long long) refund);
	r = (GcraResult) {.allowed = true,.remaining = 50};
	lease_grant(t, "k", now + TTL, IVAL, &r, 10, false);
	tap_ok(lease_spend(t, "k", now + TTL, 10, &r, &want, &refund) && refund == 0,
		   "the new lease is spent, nothing given back twice");

	r = (GcraResult) {.allowed = true,.remaining = 50};
	(void) lease_spend(t, "idle", now, 10, &r, &want, &refund);
	(void) lease_spend(t, "idle", now, 10, &r, &want, &refund);
	lease_grant(t, "idle", now, IVAL, &r, 10, false);
	lease_expire(t, now + TTL - 1, refund_cb, &sum);
	tap_ok(sum == 0 && lease_table_size(t) == 2, "a lease still running is not expired");
	lease_expire(t, now + 2 * TTL, refund_cb, &sum);
	tap_ok(sum == 9 * IVAL, "an idle key's expired lease: its 9 unspent tokens are refunded (%lld)",
		   (long long) sum);
	tap_ok(lease_table_size(t) == 0, "expired leases leave the table");
	lease_table_free(t);
}

static void
test_bounded(void)
{
	LeaseTable *t = lease_table_create(16, TTL);
	GcraResult	r = {0};
	int			want = 0;
	int64_t		refund;
	int			leases = 0;
	char		key[32];

	for (int i = 0; i < 200; i++)
	{
		snprintf(key, sizeof(key), "key-%d", i);
		(void) lease_spend(t, key, 1000 * SEC, 10, &r, &want, &refund);
		(void) lease_spend(t, key, 1000 * SEC, 10, &r, &want, &refund);
		leases += want > 1;
	}
	tap_ok(lease_table_size(t) <= 16 && leases == (int) lease_table_size(t),
		   "a full table leases no more: %d keys held, the others ask for one token", leases);
	lease_table_free(t);
}

typedef struct Spender
{
	LeaseTable *t;
	int			spent;
} Spender;

static void *
spend_all(void *arg)
{
	Spender    *s = arg;
	GcraResult	r;
	int			want;
	int64_t		refund;

	for (int i = 0; i < 1000; i++)
		s->spent += lease_spend(s->t, "hot", 1000 * SEC, 64, &r, &want, &refund);
	return NULL;
}

static void
test_threads(void)
{
	LeaseTable *t = lease_table_create(1000, TTL);
	GcraResult	r = {.allowed = true};
	Spender		s[4];
	pthread_t	th[4];
	int			want;
	int64_t		refund;
	int			total = 0;

	(void) lease_spend(t, "hot", 1000 * SEC, 64, &r, &want, &refund);
	lease_grant(t, "hot", 1000 * SEC, IVAL, &r, 64, true);
	for (int i = 0; i < 4; i++)
	{
		s[i] = (Spender) {.t = t};
		pthread_create(&th[i], NULL, spend_all, &s[i]);
	}
	for (int i = 0; i < 4; i++)
	{
		pthread_join(th[i], NULL);
		total += s[i].spent;
	}
	tap_ok(total == 64, "4 threads x 1000 requests on a lease of 64: exactly 64 spent (%d)", total);
	lease_table_free(t);
}

int
main(void)
{
	test_spend_and_grant();
	test_refused_and_failed();
	test_demand();
	test_expiry();
	test_bounded();
	test_threads();
	return tap_done();
}
