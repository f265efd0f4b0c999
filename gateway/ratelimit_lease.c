/*
 * ratelimit_lease.c
 *		Tokens of the shared limiter that this gateway holds for a key.
 *
 * Why: a round trip to Redis per request costs the gateway two thread
 * wake-ups (the pipeline's and the suspended request's) and Redis a script
 * run; on a small machine that was half the throughput of a cached read
 * (bench/ratelimit.sh).  So a busy key asks Redis for several tokens at
 * once: the script debits all of them from the key's TAT in Redis, where
 * every gateway sees them gone, and this gateway spends them on the key's
 * next requests without asking.  No gateway can let more through than the
 * limit, since every token was taken in Redis before it was spent.  What
 * leases cost is the other way round: tokens held here are unavailable to
 * the other gateways until spent, or until the lease expires and they are
 * given back (refund).  The script never leases more than an eighth of
 * what is left and ratelimit.c at most 1/32 of the limit, so a key near its
 * limit, and any small limit, gets its tokens one at a time, exactly.
 *
 * Locking: a stripe's mutex guards its buckets and their entries.
 */
#include "ratelimit_lease.h"
#include "fnv.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_STRIPES	16
#define LEASE_BUCKETS	1024	/* per stripe */

typedef struct LeaseEntry
{
	struct LeaseEntry *next;
	int			tokens;			/* held, not yet spent */
	int			remaining;		/* left in Redis after the last grant */
	int64_t		expires_us;		/* the tokens' lease ends */
	int64_t		interval_us;	/* TAT per token, to give tokens back */
	int64_t		tat_us;			/* the key's TAT after the last grant, our clock */
	int64_t		window_us;		/* demand: requests since window_us ... */
	int			count;
	int			prev_count;		/* ... and in the lifetime before it */
	int64_t		last_us;		/* the key's last request */
	bool		asking;			/* a request of this key asks Redis for a lease */
	char		key[];
} LeaseEntry;

typedef struct LeaseStripe
{
	pthread_mutex_t lock;
	LeaseEntry *buckets[LEASE_BUCKETS];
	size_t		n;
} LeaseStripe;

struct LeaseTable
{
	LeaseStripe stripes[LEASE_STRIPES];
	size_t		max_per_stripe;
	int64_t		ttl_us;
};

LeaseTable *
lease_table_create(size_t max_keys, int64_t ttl_us)
{
	LeaseTable *t = calloc(1, sizeof(LeaseTable));

	if (t == NULL)
		return NULL;
	for (int i = 0; i < LEASE_STRIPES; i++)
		pthread_mutex_init(&t->stripes[i].lock, NULL);
	t->max_per_stripe = max_keys / LEASE_STRIPES > 0 ? max_keys / LEASE_STRIPES : 1;
	t->ttl_us = ttl_us;
	return t;
}

void
lease_table_free(LeaseTable *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < LEASE_STRIPES; i++)
	{
		for (int b = 0; b < LEASE_BUCKETS; b++)
			for (LeaseEntry *e = t->stripes[i].buckets[b], *next; e != NULL; e = next)
			{
				next = e->next;
				free(e);
			}
		pthread_mutex_destroy(&t->stripes[i].lock);
	}
	free(t);
}

size_t
lease_table_size(LeaseTable *t)
{
	size_t		n = 0;

	for (int i = 0; i < LEASE_STRIPES; i++)
	{
		pthread_mutex_lock(&t->stripes[i].lock);
		n += t->stripes[i].n;
		pthread_mutex_unlock(&t->stripes[i].lock);
	}
	return n;
}

static LeaseStripe *
stripe_of(LeaseTable *t, uint64_t h)
{
	return &t->stripes[h % LEASE_STRIPES];
}

static LeaseEntry **
bucket_of(LeaseStripe *s, uint64_t h)
{
	return &s->buckets[(h / LEASE_STRIPES) % LEASE_BUCKETS];
}

/* lookup returns key's entry, or NULL; lock held. */
static LeaseEntry *
lookup(LeaseEntry *head, const char *key)
{
	for (; head != NULL; head = head->next)
		if (strcmp(head->key, key) == 0)
			return head;
	return NULL;
}

/*
 * take_idle unlinks s's entries whose lease has ended, that have not been
 * used for a lease lifetime and that nobody is asking for, onto *out; lock
 * held.  (An active key's expired lease goes back with its next request.)
 */
static void
take_idle(LeaseStripe *s, int64_t now_us, int64_t ttl_us, LeaseEntry **out)
{
	for (int b = 0; b < LEASE_BUCKETS; b++)
	{
		LeaseEntry **p = &s->buckets[b];

		while (*p != NULL)
		{
			LeaseEntry *e = *p;

			if (e->expires_us <= now_us && e->last_us + ttl_us <= now_us && !e->asking)
			{
				*p = e->next;
				e->next = *out;
				*out = e;
				s->n--;
			}
			else
				p = &e->next;
		}
	}
}

/* give_back refunds the unspent tokens of the entries on list, and frees them. */
static void
give_back(LeaseEntry *list, LeaseRefund refund, void *arg)
{
	while (list != NULL)
	{
		LeaseEntry *next = list->next;

		if (list->tokens > 0 && refund != NULL)
			refund(list->key, list->tokens * list->interval_us, arg);
		free(list);
		list = next;
	}
}

/* lease_size counts this request into e's demand and sizes its lease; lock held. */
static int
lease_size(LeaseTable *t, LeaseEntry *e, int64_t now_us, int max_want)
{
	int			demand;

	if (now_us - e->window_us >= t->ttl_us)
	{
		e->prev_count = now_us - e->window_us < 2 * t->ttl_us ? e->count : 0;
		e->count = 0;
		e->window_us = now_us;
	}
	e->count++;
	demand = e->count > e->prev_count ? e->count : e->prev_count;
	if (demand < 2)
		return 1;
	return 2 * demand < max_want ? 2 * demand : max_want;
}

bool
lease_spend(LeaseTable *t, const char *key, int64_t now_us, int max_want,
			GcraResult *r, int *want, int64_t *refund_us)
{
	uint64_t	h = fnv1a_str(key);
	LeaseStripe *s = stripe_of(t, h);
	LeaseEntry **head = bucket_of(s, h);
	LeaseEntry *e;
	int			size;

	*want = 1;
	*refund_us = 0;
	pthread_mutex_lock(&s->lock);
	if ((e = lookup(*head, key)) == NULL && s->n < t->max_per_stripe &&
		(e = calloc(1, sizeof(LeaseEntry) + strlen(key) + 1)) != NULL)
	{
		strcpy(e->key, key);
		e->window_us = now_us;
		e->next = *head;
		*head = e;
		s->n++;
	}
	if (e == NULL)
	{
		pthread_mutex_unlock(&s->lock);
		return false;			/* full: one token at a time */
	}
	e->last_us = now_us;
	size = lease_size(t, e, now_us, max_want);
	if (e->tokens > 0 && now_us < e->expires_us)
	{
		e->tokens--;
		*r = (GcraResult) {
			.allowed = true,
			.ahead_us = e->tat_us > now_us ? e->tat_us - now_us : 0,
			.remaining = e->remaining + e->tokens,
		};
		/* half spent: more are asked for while the rest is spent */
		*want = 0;
		if (e->tokens <= size / 2 && size > 1 && !e->asking)
		{
			e->asking = true;
			*want = size;
		}
		pthread_mutex_unlock(&s->lock);
		return true;
	}
	*refund_us = e->tokens * e->interval_us;
	e->tokens = 0;
	/* one request of a key asks for a lease at a time; the others for one token */
	if (size > 1 && !e->asking)
	{
		e->asking = true;
		*want = size;
	}
	pthread_mutex_unlock(&s->lock);
	return false;
}

int
lease_grant(LeaseTable *t, const char *key, int64_t now_us,
			int64_t interval_us, const GcraResult *r, int granted, bool refill)
{
	uint64_t	h = fnv1a_str(key);
	LeaseStripe *s = stripe_of(t, h);
	LeaseEntry *e;
	int			held = 0;

	pthread_mutex_lock(&s->lock);
	if ((e = lookup(*bucket_of(s, h), key)) != NULL)
	{
		e->asking = false;
		if (!refill)
			granted--;			/* the asking request's own */
		if (granted > 0)
		{
			/* tokens of an earlier lease still held stay, under the new expiry */
			e->tokens += granted;
			e->expires_us = now_us + t->ttl_us;
			e->interval_us = interval_us;
		}
		if (r->allowed)
		{
			e->remaining = r->remaining;
			e->tat_us = now_us + r->ahead_us;
		}
		held = e->tokens;
	}
	pthread_mutex_unlock(&s->lock);
	return held;
}

void
lease_expire(LeaseTable *t, int64_t now_us, LeaseRefund refund, void *arg)
{
	for (int i = 0; i < LEASE_STRIPES; i++)
	{
		LeaseEntry *expired = NULL;

		pthread_mutex_lock(&t->stripes[i].lock);
		take_idle(&t->stripes[i], now_us, t->ttl_us, &expired);
		pthread_mutex_unlock(&t->stripes[i].lock);
		give_back(expired, refund, arg);
	}
}
