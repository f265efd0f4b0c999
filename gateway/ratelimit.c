/*
 * ratelimit.c
 *		Per-class request limits with GCRA, in Redis or in process.
 *
 * With IAM_REDIS_URL every gateway shares one state per key in Redis: one
 * Lua script (loaded once, then EVALSHA) reads the TATs of the request's
 * keys, decides, and stores them, atomically and with Redis's clock, in one
 * round trip, batched with the other requests waiting at the same moment
 * on the gateway's one connection (redis_pipeline.c); the request is
 * suspended meanwhile, not its thread.  A busy single-key caller's tokens
 * come several at a time (ratelimit_lease.c) and are spent without a round
 * trip.  Without Redis, or while Redis fails and IAM_RATE_LIMIT_FAIL
 * is open (the default), the in-process limiter decides with the same
 * arithmetic, for this gateway alone; with IAM_RATE_LIMIT_FAIL=closed the
 * request is refused with 503 instead.  Limits come with the routes
 * (iam.rate_limit_classes), so a change applies on the next NOTIFY.
 *
 * Keys: iam:rl:<class>:u:<sub> for a signed-in caller, iam:rl:<class>:ip:
 * <address> otherwise, plus iam:rl:<class>:acct:<sha-256 of the lower-case
 * email> when an anonymous request's body names an account (login, reset).
 */
#include "ratelimit.h"
#include "fnv.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "accesslog.h"
#include "problem.h"
#include "ratelimit_lease.h"
#include "redis.h"
#include "redis_pipeline.h"

#define LOCAL_STRIPES		16
#define LOCAL_BUCKETS		1024	/* per stripe */
#define LOCAL_MAX_KEYS		200000
#define RL_MAX_KEYS			2
#define RL_KEY_MAX			160
#define LEASE_MAX_TOKENS	64		/* a lease holds at most this many tokens */
#define LEASE_LIMIT_SHARE	32		/* ... and at most 1/32 of the limit */

/* ---- GCRA ---- */

/* gcra_interval: the TAT one request moves (the script computes it alike) */
static int64_t
gcra_interval(int limit, int64_t period_us)
{
	int64_t		interval = period_us / (limit < 1 ? 1 : limit);

	return interval < 1 ? 1 : interval;
}

GcraResult
gcra_step(int64_t *tat, int64_t now_us, int limit, int64_t period_us)
{
	GcraResult	r = {0};
	int64_t		interval;
	int64_t		burst;
	int64_t		t = *tat > now_us ? *tat : now_us;
	int64_t		next;

	if (limit < 1)
		limit = 1;
	interval = gcra_interval(limit, period_us);
	burst = interval * limit;	/* <= period: limit requests at once */
	next = t + interval;
	if (next - burst > now_us)
	{
		r.allowed = false;
		r.retry_us = next - burst - now_us;
		r.ahead_us = t - now_us;
		r.remaining = 0;
		return r;
	}
	*tat = next;
	r.allowed = true;
	r.ahead_us = next - now_us;
	r.remaining = (int) ((burst - r.ahead_us) / interval);
	if (r.remaining < 0)
		r.remaining = 0;
	return r;
}

/* ---- the in-process limiter ---- */

typedef struct LocalEntry
{
	struct LocalEntry *next;
	int64_t		tat;
	char		key[];
} LocalEntry;

typedef struct LocalStripe
{
	pthread_mutex_t lock;
	LocalEntry *buckets[LOCAL_BUCKETS];
	size_t		n;
} LocalStripe;

struct RateLimitLocal
{
	LocalStripe stripes[LOCAL_STRIPES];
	size_t		max_per_stripe;
	atomic_bool full_logged;
};

RateLimitLocal *
ratelimit_local_create(size_t max_keys)
{
	RateLimitLocal *l = calloc(1, sizeof(RateLimitLocal));

	if (l == NULL)
		return NULL;
	for (int i = 0; i < LOCAL_STRIPES; i++)
		pthread_mutex_init(&l->stripes[i].lock, NULL);
	l->max_per_stripe = max_keys / LOCAL_STRIPES > 0 ? max_keys / LOCAL_STRIPES : 1;
	atomic_init(&l->full_logged, false);
	return l;
}

void
ratelimit_local_free(RateLimitLocal *l)
{
	if (l == NULL)
		return;
	for (int i = 0; i < LOCAL_STRIPES; i++)
	{
		for (int b = 0; b < LOCAL_BUCKETS; b++)
			for (LocalEntry *e = l->stripes[i].buckets[b], *next; e != NULL; e = next)
			{
				next = e->next;
				free(e);
			}
		pthread_mutex_destroy(&l->stripes[i].lock);
	}
	free(l);
}

size_t
ratelimit_local_size(RateLimitLocal *l)
{
	size_t		n = 0;

	for (int i = 0; i < LOCAL_STRIPES; i++)
	{
		pthread_mutex_lock(&l->stripes[i].lock);
		n += l->stripes[i].n;
		pthread_mutex_unlock(&l->stripes[i].lock);
	}
	return n;
}

/* sweep drops the entries of s whose TAT has passed; lock held. */
static void
sweep(LocalStripe *s, int64_t now_us)
{
	for (int b = 0; b < LOCAL_BUCKETS; b++)
	{
		LocalEntry **p = &s->buckets[b];

		while (*p != NULL)
		{
			if ((*p)->tat <= now_us)
			{
				LocalEntry *dead = *p;

				*p = dead->next;
				free(dead);
				s->n--;
			}
			else
				p = &(*p)->next;
		}
	}
}

/* find returns key's entry in its stripe, creating it; lock held.  NULL: full. */
static LocalEntry *
find(RateLimitLocal *l, LocalStripe *s, uint64_t h, const char *key, int64_t now_us)
{
	LocalEntry **head = &s->buckets[(h / LOCAL_STRIPES) % LOCAL_BUCKETS];
	LocalEntry *e;
	size_t		len;

	for (e = *head; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	if (s->n >= l->max_per_stripe)
		sweep(s, now_us);
	if (s->n >= l->max_per_stripe)
	{
		if (!atomic_exchange(&l->full_logged, true))
			accesslog_event("warn", "in-process rate limiter full: new clients pass unrecorded", NULL);
		return NULL;
	}
	len = strlen(key);
	if ((e = malloc(sizeof(LocalEntry) + len + 1)) == NULL)
		return NULL;
	memcpy(e->key, key, len + 1);
	e->tat = 0;
	e->next = *head;
	*head = e;
	s->n++;
	return e;
}

GcraResult
ratelimit_local_check(RateLimitLocal *l, const char *const *keys, int nkeys,
					  int64_t now_us, int limit, int64_t period_us)
{
	GcraResult	worst = {.allowed = true,.remaining = limit};
	int64_t		tats[RL_MAX_KEYS];
	LocalEntry *entries[RL_MAX_KEYS];
	int			stripe[RL_MAX_KEYS];

	if (nkeys > RL_MAX_KEYS)
		nkeys = RL_MAX_KEYS;
	/* lock the stripes in index order, each once */
	for (int i = 0; i < nkeys; i++)
		stripe[i] = (int) (fnv1a_str(keys[i]) % LOCAL_STRIPES);
	for (int st = 0; st < LOCAL_STRIPES; st++)
		for (int i = 0; i < nkeys; i++)
			if (stripe[i] == st)
			{
				pthread_mutex_lock(&l->stripes[st].lock);
				break;
			}
	for (int i = 0; i < nkeys; i++)
	{
		GcraResult	r;

		entries[i] = find(l, &l->stripes[stripe[i]], fnv1a_str(keys[i]), keys[i], now_us);
		tats[i] = entries[i] != NULL ? entries[i]->tat : 0;
		r = gcra_step(&tats[i], now_us, limit, period_us);
		if (!r.allowed && (worst.allowed || r.retry_us > worst.retry_us))
			worst = r;
		else if (worst.allowed && r.remaining <= worst.remaining)
			worst = r;
	}
	if (worst.allowed)
		for (int i = 0; i < nkeys; i++)
			if (entries[i] != NULL)
				entries[i]->tat = tats[i];
	for (int st = LOCAL_STRIPES - 1; st >= 0; st--)
		for (int i = 0; i < nkeys; i++)
			if (stripe[i] == st)
			{
				pthread_mutex_unlock(&l->stripes[st].lock);
				break;
			}
	return worst;
}

/* ---- the shared limiter (Redis) ---- */

/*
 * The decisions of a batch of requests (redis_pipeline.h's layout: per
 * request, its keys, and the arguments limit, period in microseconds,
 * tokens wanted and TAT given back in microseconds), taken one after the
 * other with Redis's clock, so that a batch decides exactly what the same
 * requests one at a time would.  A request that wants w > 1 tokens (a
 * lease, ratelimit_lease.c) gets at most w and at most an eighth of what
 * its keys have left, at least one; one that wants 0 only gives back.
 * The TAT given back is applied first.  Each request's answer is
 * {allowed (0/1), TAT - now of the tightest key, retry in microseconds,
 * remaining, tokens granted}; a refused request takes nothing.  Each key
 * is read once and written once per batch.
 */
RedisScript ratelimit_script = {
	.text =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local tats, dirty, out = {}, {}, {}\n"
	"local k, a = 1, 2\n"
	"for c = 1, tonumber(ARGV[1]) do\n"
	"  local nkeys, nargs = tonumber(ARGV[a]), tonumber(ARGV[a + 1])\n"
	"  local limit = tonumber(ARGV[a + 2])\n"
	"  local interval = math.floor(tonumber(ARGV[a + 3]) / limit)\n"
	"  if interval < 1 then interval = 1 end\n"
	"  local want, refund = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])\n"
	"  local burst = interval * limit\n"
	"  local avail, retry, rahead = limit, 0, 0\n"
	"  for i = k, k + nkeys - 1 do\n"
	"    local tat = tats[KEYS[i]]\n"
	"    if tat == nil then\n"
	"      local v = redis.call('GET', KEYS[i])\n"
	"      tat = v and tonumber(v) or now\n"
	"    end\n"
	"    if refund > 0 then tat = tat - refund; dirty[KEYS[i]] = true end\n"
	"    if tat < now then tat = now end\n"
	"    tats[KEYS[i]] = tat\n"
	"    local n = math.floor((now + burst - tat) / interval)\n"
	"    if n < avail then avail = n end\n"
	"    if tat + interval - burst - now > retry then retry = tat + interval - burst - now; rahead = tat - now end\n"
	"  end\n"
	"  if avail < 0 then avail = 0 end\n"
	"  if want < 1 then\n"
	"    out[c] = {1, 0, 0, avail, 0}\n"
	"  elseif avail < 1 then\n"
	"    out[c] = {0, rahead, retry, 0, 0}\n"
	"  else\n"
	"    local g = math.min(want, math.max(1, math.floor(avail / 8)))\n"
	"    local ahead = 0\n"
	"    for i = k, k + nkeys - 1 do\n"
	"      tats[KEYS[i]] = tats[KEYS[i]] + g * interval\n"
	"      dirty[KEYS[i]] = true\n"
	"      if tats[KEYS[i]] - now > ahead then ahead = tats[KEYS[i]] - now end\n"
	"    end\n"
	"    out[c] = {1, ahead, 0, avail - g, g}\n"
	"  end\n"
	"  k = k + nkeys\n"
	"  a = a + 2 + nargs\n"
	"end\n"
	"for key in pairs(dirty) do\n"
	"  redis.call('SET', key, string.format('%d', tats[key]), 'PX', math.floor((tats[key] - now) / 1000) + 1)\n"
	"end\n"
	"return out\n"
};

static RateLimitLocal *rl_local;
static LeaseTable *rl_leases;	/* NULL: IAM_RATE_LIMIT_LEASE_MS=0 */
static int64_t rl_lease_ttl_us;
static atomic_int_least64_t rl_last_expiry_us;	/* lease_expire last ran */
static atomic_uint_least64_t rl_allowed;
static atomic_uint_least64_t rl_limited;
static atomic_uint_least64_t rl_fallbacks;	/* decided in process because Redis failed */
static atomic_uint_least64_t rl_refused;	/* 503: Redis failed, fail-closed */
static atomic_uint_least64_t rl_leased;	/* allowed from a lease, without Redis */

int
ratelimit_init(const Config *cfg)
{
	redis_script_init(&ratelimit_script);
	if (rl_local == NULL && (rl_local = ratelimit_local_create(LOCAL_MAX_KEYS)) == NULL)
		return -1;
	rl_lease_ttl_us = (int64_t) cfg->rate_limit_lease_ms * 1000;
	if (rl_leases == NULL && rl_lease_ttl_us > 0 &&
		(rl_leases = lease_table_create(LOCAL_MAX_KEYS, rl_lease_ttl_us)) == NULL)
		return -1;
	return 0;
}

void
ratelimit_shutdown(void)
{
	ratelimit_local_free(rl_local);
	rl_local = NULL;
	lease_table_free(rl_leases);
	rl_leases = NULL;
}

/* parse_addr reads a textual IPv4/IPv6 address. */
static bool
parse_addr(const char *s, int *family, unsigned char *addr)
{
	if (inet_pton(AF_INET, s, addr) == 1)
	{
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, addr) == 1)
	{
		/* an IPv4-mapped IPv6 address counts as IPv4 */
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (memcmp(addr, mapped, 12) == 0)
		{
			memmove(addr, addr + 12, 4);
			*family = AF_INET;
		}
		else
			*family = AF_INET6;
		return true;
	}
	return false;
}

bool
ratelimit_is_trusted(const Config *cfg, const char *text)
{
	unsigned char addr[16];
	int			family;

	if (cfg->n_trusted_proxies == 0 || !parse_addr(text, &family, addr))
		return false;
	for (int i = 0; i < cfg->n_trusted_proxies; i++)
	{
		const ConfigCidr *c = &cfg->trusted_proxies[i];
		int			full = c->bits / 8;
		int			rest = c->bits % 8;

		if (c->family != family || memcmp(c->addr, addr, (size_t) full) != 0)
			continue;
		if (rest == 0 || ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest)) & 0xff) == 0)
			return true;
	}
	return false;
}

void
ratelimit_client_ip(HttpRequest *req, const Config *cfg, char *out, size_t size)
{
	const char *peer = http_remote(req);
	const char *xff;
	char		buf[1024];

	snprintf(out, size, "%s", peer);
	if (!ratelimit_is_trusted(cfg, peer) ||
		(xff = http_header(req, "X-Forwarded-For")) == NULL)
		return;
	snprintf(buf, sizeof(buf), "%s", xff);
	/* right to left: the first address no trusted proxy wrote is the client */
	for (;;)
	{
		char	   *comma = strrchr(buf, ',');
		char	   *item = comma != NULL ? comma + 1 : buf;
		size_t		len;
		unsigned char addr[16];
		int			family;

		while (*item == ' ' || *item == '\t')
			item++;
		len = strlen(item);
		while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
			item[--len] = '\0';
		if (!parse_addr(item, &family, addr))
			return;				/* garbage: keep the last good address */
		inet_ntop(family, addr, out, (socklen_t) size);
		if (!ratelimit_is_trusted(cfg, item) || comma == NULL)
			return;
		*comma = '\0';
	}
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* account_key derives the per-account key from an anonymous body's email. */
static bool
account_key(const char *cls, const char *body, size_t len, char *out, size_t size)
{
	json_error_t jerr;
	json_t	   *obj;
	json_t	   *email;
	bool		ok = false;

	if (body == NULL || len == 0 || (obj = json_loadb(body, len, 0, &jerr)) == NULL)
		return false;
	email = json_object_get(obj, "email");
	if (json_is_string(email) && json_string_length(email) > 0 && json_string_length(email) <= 320)
	{
		char		lower[321];
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		size_t		l = json_string_length(email);
		char		hex[65];

		for (size_t i = 0; i < l; i++)
			lower[i] = (char) tolower((unsigned char) json_string_value(email)[i]);
		if (EVP_Digest(lower, l, md, &n, EVP_sha256(), NULL) == 1 && n == 32)
		{
			for (unsigned int i = 0; i < 16; i++)
				snprintf(hex + 2 * i, 3, "%02x", md[i]);
			snprintf(out, size, "iam:rl:%s:acct:%s", cls, hex);
			ok = true;
		}
	}
	json_decref(obj);
	return ok;
}

/*
 * A decision in progress: the request's keys (for the in-process fallback)
 * and the Redis call whose answer resumes the request.
 */
struct RateLimitWait
{
	RedisCall	call;			/* first: the callback finds the wait from it */
	HttpRequest *req;
	char		kbuf[RL_MAX_KEYS][RL_KEY_MAX];
	const char *keys[RL_MAX_KEYS];
	int			nkeys;
	int			want;			/* tokens asked for: > 1 asks for a lease */
	int64_t		interval_us;	/* TAT per token, for the lease */
	bool		answered;		/* Redis decided; else it failed */
	int			granted;
	GcraResult	r;
};

/*
 * read_answer reads the script's reply {allowed, ahead, retry, remaining,
 * granted}; false (logged) when it is something else.
 */
static bool
read_answer(const redisReply *r, GcraResult *out, int *granted)
{
	bool		ok = r->type == REDIS_REPLY_ARRAY && r->elements == 5;

	for (size_t i = 0; ok && i < 5; i++)
		ok = r->element[i]->type == REDIS_REPLY_INTEGER;
	if (!ok)
	{
		accesslog_event("error", "rate-limit script: unexpected reply", "detail",
						r->type == REDIS_REPLY_ERROR ? r->str : "not an array of 5 integers", NULL);
		return false;
	}
	out->allowed = r->element[0]->integer == 1;
	out->ahead_us = r->element[1]->integer;
	out->retry_us = r->element[2]->integer;
	out->remaining = (int) r->element[3]->integer;
	*granted = (int) r->element[4]->integer;
	return true;
}

/*
 * on_answer runs on the Redis I/O thread: keep the decision (and the lease,
 * before the request can go on and free the wait), wake the request.
 */
static void
on_answer(RedisCall *call, const redisReply *reply)
{
	RateLimitWait *w = (RateLimitWait *) call;

	w->answered = reply != NULL && read_answer(reply, &w->r, &w->granted);
	if (w->want > 1)			/* the tokens held here are this caller's too */
		w->r.remaining += lease_grant(rl_leases, w->keys[0], now_us(), w->interval_us,
									  &w->r, w->answered ? w->granted : 0, false);
	http_resume(w->req);
}

/*
 * A call of the lease's own, not a request's: a refill (want > 0; the
 * tokens all go to the lease) or a refund (want 0).  Frees itself.
 */
typedef struct LeaseCall
{
	RedisCall	call;			/* first */
	int			want;
	int64_t		interval_us;
	char		key[RL_KEY_MAX];
} LeaseCall;

static void
lease_call_done(RedisCall *call, const redisReply *answer)
{
	LeaseCall  *c = (LeaseCall *) call;
	GcraResult	r = {0};
	int			granted = 0;

	/* a refund lost with Redis: those tokens come back as the TAT passes */
	if (c->want > 0)
	{
		if (answer == NULL || !read_answer(answer, &r, &granted))
			r.allowed = false, granted = 0;
		lease_grant(rl_leases, c->key, now_us(), c->interval_us, &r, granted, true);
	}
	free(c);
}

/*
 * script_call queues call (its done set) for keys with the script's four
 * arguments; redis_pipeline_call's result.
 */
static int
script_call(RedisCall *call, const char *const *keys, int nkeys, int limit,
			int64_t period_us, int want, int64_t refund_us)
{
	char		args[4][24];

	snprintf(args[0], sizeof(args[0]), "%d", limit);
	snprintf(args[1], sizeof(args[1]), "%lld", (long long) period_us);
	snprintf(args[2], sizeof(args[2]), "%d", want);
	snprintf(args[3], sizeof(args[3]), "%lld", (long long) refund_us);
	return redis_pipeline_call(call, &ratelimit_script, nkeys, keys, 4,
							   (const char *const[]) {args[0], args[1], args[2], args[3]});
}

/* lease_call_send asks Redis, on the lease's behalf, for want tokens of key after giving back refund_us. */
static void
lease_call_send(const char *key, int limit, int64_t period_us, int want, int64_t refund_us)
{
	LeaseCall  *c = calloc(1, sizeof(LeaseCall));
	const char *keys[1];

	if (c == NULL)
		goto failed;
	c->call.done = lease_call_done;
	c->want = want;
	c->interval_us = gcra_interval(limit, period_us);
	snprintf(c->key, sizeof(c->key), "%s", key);
	keys[0] = c->key;
	if (script_call(&c->call, keys, 1, limit, period_us, want, refund_us) == 0)
		return;
	free(c);
failed:
	if (want > 0)				/* nobody asks any more */
		lease_grant(rl_leases, key, now_us(), 0, &(GcraResult) {0}, 0, true);
}

/* refund_send gives a lease's unspent tokens back (wanting none: limit and period do not matter) */
static void
refund_send(const char *key, int64_t refund_us, void *arg)
{
	(void) arg;
	lease_call_send(key, 1, 1, 0, refund_us);
}

/*
 * expire_leases gives back the tokens of leases that ended unspent, at
 * most once per lease lifetime, from whichever request thread comes first.
 */
static void
expire_leases(int64_t now)
{
	int64_t		last = atomic_load(&rl_last_expiry_us);

	if (now - last < rl_lease_ttl_us ||
		!atomic_compare_exchange_strong(&rl_last_expiry_us, &last, now))
		return;
	lease_expire(rl_leases, now, refund_send, NULL);
}

static long long
ceil_s(int64_t us)
{
	return (long long) ((us + 999999) / 1000000);
}

/*
 * decide applies a decision to the reply: the RateLimit-* headers, and 429
 * when refused.  Without a Redis answer (failed) it refuses with 503
 * (fail-closed) or decides in process (fail-open).
 */
static int
decide(HttpRequest *req, const Config *cfg, const Route *route, RateLimitWait *w, int *rc)
{
	int64_t		period_us = (int64_t) route->rate_limit_seconds * 1000000;
	GcraResult	r = w->r;
	char		num[3][24];

	if (!w->answered)
	{
		if (redis_enabled())
		{
			if (cfg->rate_limit_fail_closed)
			{
				atomic_fetch_add(&rl_refused, 1);
				*rc = problem_reply(req, &(Problem) {
					.status = 503,.code = "rate_limiter_unavailable",
						.detail = "The rate limiter is unavailable; try again shortly.",
						.retry_after = 1,
				});
				return -1;
			}
			atomic_fetch_add(&rl_fallbacks, 1);
		}
		r = ratelimit_local_check(rl_local, w->keys, w->nkeys, now_us(),
								  route->rate_limit_requests, period_us);
	}
	snprintf(num[0], sizeof(num[0]), "%d", route->rate_limit_requests);
	snprintf(num[1], sizeof(num[1]), "%d", r.allowed ? r.remaining : 0);
	snprintf(num[2], sizeof(num[2]), "%lld", ceil_s(r.ahead_us));
	http_add_header(req, "RateLimit-Limit", num[0]);
	http_add_header(req, "RateLimit-Remaining", num[1]);
	http_add_header(req, "RateLimit-Reset", num[2]);
	if (r.allowed)
	{
		atomic_fetch_add(&rl_allowed, 1);
		return 0;
	}
	atomic_fetch_add(&rl_limited, 1);
	*rc = problem_reply(req, &(Problem) {
		.status = 429,.code = "rate_limited",
			.detail = "Too many requests; retry after the number of seconds in Retry-After.",
			.retry_after = (int) (ceil_s(r.retry_us) > 0 ? ceil_s(r.retry_us) : 1),
	});
	return -1;
}

RateLimitOutcome
ratelimit_start(HttpRequest *req, const Config *cfg, const Route *route,
				const char *sub, const char *client_ip, const char *body, size_t body_len,
				HttpContinuation cont, void *arg, void (*release) (void *arg),
				RateLimitWait **wait, int *rc)
{
	RateLimitWait *w;
	int64_t		refund_us = 0;
	int			decided;

	*wait = NULL;
	if (!cfg->rate_limit || route->rate_limit_requests <= 0 || route->rate_limit_seconds <= 0)
		return RATELIMIT_PASS;
	if ((w = calloc(1, sizeof(RateLimitWait))) == NULL)
	{
		*rc = -1;
		return RATELIMIT_ANSWERED;
	}
	w->req = req;
	w->call.done = on_answer;
	if (sub != NULL && sub[0] != '\0')
		snprintf(w->kbuf[w->nkeys++], RL_KEY_MAX, "iam:rl:%s:u:%s", route->rate_limit_class, sub);
	else
	{
		snprintf(w->kbuf[w->nkeys++], RL_KEY_MAX, "iam:rl:%s:ip:%s", route->rate_limit_class, client_ip);
		if (account_key(route->rate_limit_class, body, body_len, w->kbuf[w->nkeys], RL_KEY_MAX))
			w->nkeys++;
	}
	for (int i = 0; i < w->nkeys; i++)
		w->keys[i] = w->kbuf[i];

	if (redis_enabled())
	{
		int64_t		period_us = (int64_t) route->rate_limit_seconds * 1000000;
		int			lease_max = route->rate_limit_requests / LEASE_LIMIT_SHARE;

		w->want = 1;
		w->interval_us = gcra_interval(route->rate_limit_requests, period_us);
		if (rl_leases != NULL && w->nkeys == 1 && lease_max > 1)
		{
			int64_t		now = now_us();

			expire_leases(now);
			if (lease_spend(rl_leases, w->keys[0], now,
							lease_max < LEASE_MAX_TOKENS ? lease_max : LEASE_MAX_TOKENS,
							&w->r, &w->want, &refund_us))
			{
				if (w->want > 0)
					lease_call_send(w->keys[0], route->rate_limit_requests, period_us,
									w->want, 0);
				w->answered = true;	/* decided in process, from the lease */
				atomic_fetch_add(&rl_leased, 1);
				decided = decide(req, cfg, route, w, rc);
				free(w);
				return decided == 0 ? RATELIMIT_PASS : RATELIMIT_ANSWERED;
			}
		}
		/* suspended first: the answer may come before the submit returns */
		http_suspend(req, cont, arg, release);
		if (script_call(&w->call, w->keys, w->nkeys, route->rate_limit_requests, period_us,
						w->want, refund_us) != 0)
		{
			if (w->want > 1)	/* nobody asks any more */
				lease_grant(rl_leases, w->keys[0], now_us(), 0, &w->r, 0, false);
			http_resume(req);	/* Redis unavailable now: decide without it at once */
		}
		*wait = w;
		return RATELIMIT_WAIT;
	}
	decided = decide(req, cfg, route, w, rc);
	free(w);
	return decided == 0 ? RATELIMIT_PASS : RATELIMIT_ANSWERED;
}

int
ratelimit_finish(HttpRequest *req, const Config *cfg, const Route *route,
				 RateLimitWait *wait, int *rc)
{
	int			decided = decide(req, cfg, route, wait, rc);

	free(wait);
	return decided;
}

void
ratelimit_wait_free(RateLimitWait *wait)
{
	free(wait);
}

char *
ratelimit_metrics(void)
{
	char	   *s = NULL;
	uint64_t	calls;
	uint64_t	runs;

	redis_pipeline_counts(&calls, &runs);
	if (asprintf(&s,
				 "# HELP iam_ratelimit_decisions_total Rate-limit decisions by outcome.\n"
				 "# TYPE iam_ratelimit_decisions_total counter\n"
				 "iam_ratelimit_decisions_total{outcome=\"allowed\"} %llu\n"
				 "iam_ratelimit_decisions_total{outcome=\"limited\"} %llu\n"
				 "# HELP iam_ratelimit_redis_fallbacks_total Decisions made in process because Redis failed (fail-open).\n"
				 "# TYPE iam_ratelimit_redis_fallbacks_total counter\n"
				 "iam_ratelimit_redis_fallbacks_total %llu\n"
				 "# HELP iam_ratelimit_redis_refusals_total Requests refused with 503 because Redis failed (fail-closed).\n"
				 "# TYPE iam_ratelimit_redis_refusals_total counter\n"
				 "iam_ratelimit_redis_refusals_total %llu\n"
				 "# HELP iam_redis_failures_total Failed Redis commands and connection attempts.\n"
				 "# TYPE iam_redis_failures_total counter\n"
				 "iam_redis_failures_total %llu\n"
				 "# HELP iam_redis_up Whether the last Redis command succeeded (0 without Redis).\n"
				 "# TYPE iam_redis_up gauge\n"
				 "iam_redis_up %d\n"
				 "# HELP iam_ratelimit_lease_decisions_total Requests allowed from tokens leased from Redis earlier, without a round trip.\n"
				 "# TYPE iam_ratelimit_lease_decisions_total counter\n"
				 "iam_ratelimit_lease_decisions_total %llu\n"
				 "# HELP iam_ratelimit_redis_calls_total Decisions Redis answered.\n"
				 "# TYPE iam_ratelimit_redis_calls_total counter\n"
				 "iam_ratelimit_redis_calls_total %llu\n"
				 "# HELP iam_ratelimit_redis_script_runs_total Script runs that answered them (calls waiting together share one run).\n"
				 "# TYPE iam_ratelimit_redis_script_runs_total counter\n"
				 "iam_ratelimit_redis_script_runs_total %llu\n",
				 (unsigned long long) atomic_load(&rl_allowed),
				 (unsigned long long) atomic_load(&rl_limited),
				 (unsigned long long) atomic_load(&rl_fallbacks),
				 (unsigned long long) atomic_load(&rl_refused),
				 (unsigned long long) redis_failures(), redis_is_up() ? 1 : 0,
				 (unsigned long long) atomic_load(&rl_leased),
				 (unsigned long long) calls, (unsigned long long) runs) < 0)
		return NULL;
	return s;
}
