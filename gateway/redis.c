/*
 * redis.c
 *		The request threads' Redis connections (the response cache's L2 and
 *		the readiness probe), and the outage state every Redis user shares.
 *
 * Each thread keeps its own redisContext (hiredis contexts are not
 * thread-safe), created on first use and freed by a thread-specific-data
 * destructor when the thread ends.  After any error the context is
 * unusable (hiredis's rule): it is freed at once, and the thread does not
 * try again before its backoff has passed, so a dead or stalled Redis costs
 * a request at most one timeout per backoff period, and nothing between.
 * Outages are logged once (first failure, then recovery) for the process.
 *
 * Ownership (hiredis): every redisReply is freed once with freeReplyObject
 * by whoever receives it from redis_command.
 */
#include "redis.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "accesslog.h"

#define BACKOFF_MIN_MS	50
#define BACKOFF_MAX_MS	2000

typedef struct RedisThread
{
	redisContext *c;
	int64_t		retry_at_ms;	/* monotonic: no attempt before */
	int			backoff_ms;
	uint64_t	failed_in;		/* redis_recoveries when this thread failed */
} RedisThread;

static const ConfigRedis *redis_cfg;
static int	redis_timeout_ms = 200;
static pthread_key_t redis_key;
static pthread_once_t redis_once = PTHREAD_ONCE_INIT;
static atomic_uint_least64_t redis_fail_count;
static atomic_bool redis_down;
static atomic_uint_least64_t redis_recoveries;	/* another thread got through */

static void
thread_free(void *p)
{
	RedisThread *t = p;

	if (t->c != NULL)
		redisFree(t->c);
	free(t);
}

static void
make_key(void)
{
	(void) pthread_key_create(&redis_key, thread_free);
}

void
redis_init(const ConfigRedis *cfg, int timeout_ms)
{
	pthread_once(&redis_once, make_key);
	redis_cfg = cfg;
	redis_timeout_ms = timeout_ms;
}

bool
redis_enabled(void)
{
	return redis_cfg != NULL;
}

uint64_t
redis_failures(void)
{
	return atomic_load(&redis_fail_count);
}

bool
redis_is_up(void)
{
	return redis_cfg != NULL && !atomic_load(&redis_down);
}

void
redis_script_init(RedisScript *s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	memset(s->sha, 0, sizeof(s->sha));
	if (EVP_Digest(s->text, strlen(s->text), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
		return;
	for (unsigned int i = 0; i < n; i++)
		snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fail drops t's context, schedules the next attempt and logs an outage once. */
static void
fail(RedisThread *t, const char *why)
{
	if (t->c != NULL)
	{
		redisFree(t->c);
		t->c = NULL;
	}
	t->backoff_ms = t->backoff_ms == 0 ? BACKOFF_MIN_MS :
		(t->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : t->backoff_ms * 2);
	t->retry_at_ms = now_ms() + t->backoff_ms;
	t->failed_in = atomic_load(&redis_recoveries);
	redis_report_failure(why);
}

void
redis_report_failure(const char *why)
{
	atomic_fetch_add(&redis_fail_count, 1);
	if (!atomic_exchange(&redis_down, true))
		accesslog_event("warn", "redis unavailable (retrying with backoff)",
						"detail", why, NULL);
}

void
redis_report_success(void)
{
	/* a plain load first: no shared-line write on the hot path */
	if (atomic_load(&redis_down) && atomic_exchange(&redis_down, false))
	{
		/* the other threads need not sit out their backoff */
		atomic_fetch_add(&redis_recoveries, 1);
		accesslog_event("info", "redis available again", NULL);
	}
}

static void
succeed(RedisThread *t)
{
	t->backoff_ms = 0;
	redis_report_success();
}

/* ok_status: reply is +OK (frees it). */
static bool
ok_status(redisReply *r)
{
	bool		ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;

	if (r != NULL)
		freeReplyObject(r);
	return ok;
}

/*
 * thread_conn returns the calling thread's connected context, or NULL;
 * *fresh tells whether it was connected just now.
 */
static RedisThread *
thread_conn(bool *fresh)
{
	RedisThread *t;
	struct timeval tv;

	if (redis_cfg == NULL)
		return NULL;
	if ((t = pthread_getspecific(redis_key)) == NULL)
	{
		if ((t = calloc(1, sizeof(RedisThread))) == NULL ||
			pthread_setspecific(redis_key, t) != 0)
		{
			free(t);
			return NULL;
		}
	}
	*fresh = t->c == NULL;
	if (t->c != NULL)
		return t;
	if (t->retry_at_ms > now_ms() && t->failed_in == atomic_load(&redis_recoveries))
		return NULL;
	tv.tv_sec = redis_timeout_ms / 1000;
	tv.tv_usec = (redis_timeout_ms % 1000) * 1000;
	t->c = redisConnectWithTimeout(redis_cfg->host, redis_cfg->port, tv);
	if (t->c == NULL || t->c->err || redisSetTimeout(t->c, tv) != REDIS_OK)
	{
		char		why[128];

		snprintf(why, sizeof(why), "%s", t->c != NULL ? t->c->errstr : "out of memory");
		fail(t, why);
		return NULL;
	}
	if (redis_cfg->password != NULL &&
		!ok_status(redis_cfg->username != NULL ?
				   redisCommand(t->c, "AUTH %s %s", redis_cfg->username, redis_cfg->password) :
				   redisCommand(t->c, "AUTH %s", redis_cfg->password)))
	{
		fail(t, "AUTH refused");
		return NULL;
	}
	if (redis_cfg->db != 0 && !ok_status(redisCommand(t->c, "SELECT %d", redis_cfg->db)))
	{
		fail(t, "SELECT refused");
		return NULL;
	}
	return t;
}

redisReply *
redis_command(int argc, const char **argv, const size_t *lens)
{
	bool		fresh;
	RedisThread *t = thread_conn(&fresh);
	redisReply *r;

	if (t == NULL)
		return NULL;
	r = redisCommandArgv(t->c, argc, argv, lens);
	if (r == NULL && !fresh)
	{
		/*
		 * An idle connection may have died with a Redis restart: try once
		 * more on a new one before counting a failure.
		 */
		redisFree(t->c);
		t->c = NULL;
		if ((t = thread_conn(&fresh)) == NULL)
			return NULL;
		r = redisCommandArgv(t->c, argc, argv, lens);
	}
	if (r == NULL)
	{
		char		why[128];

		snprintf(why, sizeof(why), "%s", t->c->errstr[0] != '\0' ? t->c->errstr : "no reply");
		fail(t, why);
		return NULL;
	}
	succeed(t);
	return r;
}
