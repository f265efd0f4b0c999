/*
 * test_redis_pipeline.c
 *		Unit tests for redis_pipeline.c and the limiter's batch script,
 *		against a real redis-server this test starts on a free loopback
 *		port (and a silent listener, for the timeout): every call answered
 *		exactly once, batches decide exactly what one request at a time
 *		would, leases and refunds, NOSCRIPT reloads, refusals during a
 *		backoff, a stalled Redis answered by the timeout.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ratelimit.h"
#include "redis.h"
#include "redis_pipeline.h"
#include "tap.h"

#define THREADS		4
#define PER_THREAD	60

/* One call and what it was answered. */
typedef struct Probe
{
	RedisCall	call;
	atomic_int	answers;		/* times done ran */
	bool		got_reply;
	bool		is_array;
	long long	v[5];			/* allowed, ahead, retry, remaining, granted */
} Probe;

static void
probe_done(RedisCall *call, const redisReply *r)
{
	Probe	   *p = (Probe *) call;

	p->got_reply = r != NULL;
	p->is_array = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 5;
	for (size_t i = 0; p->is_array && i < 5; i++)
		p->v[i] = r->element[i]->integer;
	atomic_fetch_add(&p->answers, 1);
}

/* wait_answers waits (5 s at most) until n probes have been answered. */
static bool
wait_answers(Probe *probes, int n)
{
	for (int tries = 0; tries < 5000; tries++)
	{
		int			done = 0;

		for (int i = 0; i < n; i++)
			done += atomic_load(&probes[i].answers) > 0;
		if (done == n)
			return true;
		usleep(1000);
	}
	return false;
}

static int
submit(Probe *p, const char *key, const char *limit, const char *period)
{
	memset(p, 0, sizeof(*p));
	p->call.done = probe_done;
	return redis_pipeline_call(&p->call, &ratelimit_script, 1, (const char *const[]) {key}, 4,
							   (const char *const[]) {limit, period, "1", "0"});
}

/* free_port asks the kernel for a free loopback port. */
static int
free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t	len = sizeof(a);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);
	int			port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0 &&
		getsockname(fd, (struct sockaddr *) &a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* start_redis runs redis-server in the foreground of a child; 0 when it is up. */
static pid_t
start_redis(int port)
{
	char		num[16];
	pid_t		pid;

	snprintf(num, sizeof(num), "%d", port);
	if ((pid = fork()) == 0)
	{
		freopen("/dev/null", "w", stdout);
		execlp("redis-server", "redis-server", "--port", num, "--bind", "127.0.0.1",
			   "--save", "", "--appendonly", "no", (char *) NULL);
		_exit(127);
	}
	for (int tries = 0; pid > 0 && tries < 100; tries++)
	{
		redisContext *c = redisConnect("127.0.0.1", port);
		bool		up = c != NULL && c->err == 0;

		redisFree(c);
		if (up)
			return pid;
		usleep(50000);
	}
	return -1;
}

typedef struct Hammer
{
	Probe	   *probes;
	const char *key;
} Hammer;

static void *
hammer(void *arg)
{
	Hammer	   *h = arg;

	for (int i = 0; i < PER_THREAD; i++)
		if (submit(&h->probes[i], h->key, "25", "3600000000") != 0)
			h->probes[i].answers = -1000;
	return NULL;
}

/* Many threads at once: batches form, and decide as one request at a time would. */
static void
test_batches(void)
{
	static Probe probes[THREADS][PER_THREAD];
	pthread_t	th[THREADS];
	Hammer		h[THREADS];
	int			allowed[2] = {0, 0};
	bool		once = true;
	bool		remaining_seen[2][25] = {{false}};
	bool		distinct = true;

	for (int t = 0; t < THREADS; t++)
	{
		h[t].probes = probes[t];
		h[t].key = t % 2 == 0 ? "test:rl:even" : "test:rl:odd";
		pthread_create(&th[t], NULL, hammer, &h[t]);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	tap_ok(wait_answers(&probes[0][0], THREADS * PER_THREAD), "%d calls from %d threads are all answered",
		   THREADS * PER_THREAD, THREADS);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < PER_THREAD; i++)
		{
			Probe	   *p = &probes[t][i];

			once = once && atomic_load(&p->answers) == 1 && p->is_array;
			if (p->is_array && p->v[0] == 1)
			{
				allowed[t % 2]++;
				if (p->v[3] >= 0 && p->v[3] < 25)
				{
					distinct = distinct && !remaining_seen[t % 2][p->v[3]];
					remaining_seen[t % 2][p->v[3]] = true;
				}
				else
					distinct = false;
			}
		}
	tap_ok(once, "each call answered exactly once, with its own 5 numbers");
	tap_ok(allowed[0] == 25 && allowed[1] == 25,
		   "25 an hour, %d calls per key: exactly 25 allowed per key (%d, %d)",
		   2 * PER_THREAD, allowed[0], allowed[1]);
	tap_ok(distinct, "the allowed calls of a key saw remaining 24, 23, ... 0, each once");
}

/* The batch script itself: one run for several calls, keys repeated within it. */
static void
test_script_layout(redisContext *c)
{
	/* 3 calls: key a (limit 2), key a again, then keys a and b (limit 2) */
	redisReply *r = redisCommand(c, "EVAL %s 4 t:a t:a t:a t:b 3 "
								 "1 4 2 1000000000 1 0 1 4 2 1000000000 1 0 2 4 2 1000000000 1 0",
								 ratelimit_script.text);
	bool		ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3;

	for (size_t i = 0; ok && i < 3; i++)
		ok = r->element[i]->type == REDIS_REPLY_ARRAY && r->element[i]->elements == 5;
	tap_ok(ok, "a batch of 3 calls gets an array of 3 answers");
	if (ok)
	{
		tap_ok(r->element[0]->element[0]->integer == 1 && r->element[0]->element[3]->integer == 1,
			   "call 1 (a): allowed, 1 left");
		tap_ok(r->element[1]->element[0]->integer == 1 && r->element[1]->element[3]->integer == 0,
			   "call 2 (a again, same run): allowed, 0 left - it saw call 1's write");
		tap_ok(r->element[2]->element[0]->integer == 0 && r->element[2]->element[2]->integer > 0,
			   "call 3 (a and b): refused because of a, with a retry time");
	}
	freeReplyObject(r);
	r = redisCommand(c, "EXISTS t:b");
	tap_ok(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0,
		   "a refused call wrote nothing (b untouched)");
	freeReplyObject(r);
	r = redisCommand(c, "PTTL t:a");
	tap_ok(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 999000 && r->integer <= 1000001,
		   "a written key expires once its TAT has passed: 2 x 500 s ahead (%lld ms)",
		   r != NULL ? r->integer : -1);
	freeReplyObject(r);
}

/* eval_one runs the script for one call of key; returns its answer's 5 numbers in v. */
static bool
eval_one(redisContext *c, const char *key, const char *limit, const char *period,
		 const char *want, const char *refund, long long *v)
{
	redisReply *r = redisCommand(c, "EVAL %s 1 %s 1 1 4 %s %s %s %s", ratelimit_script.text,
								 key, limit, period, want, refund);
	bool		ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 5;

	for (size_t i = 0; ok && i < 5; i++)
		v[i] = r->element[0]->element[i]->integer;
	freeReplyObject(r);
	return ok;
}

/*
 * Leases: a call that wants several tokens gets at most what it wants and
 * at most an eighth of what is left (at least one); they are debited at
 * once; a refund gives TAT back.  Limit 640 an hour: 5,625,000 us a token.
 */
static void
test_script_leases(redisContext *c)
{
	long long	v[5] = {0};
	int			n = 0;
	int			total = 0;

	tap_ok(eval_one(c, "t:lease", "640", "3600000000", "20", "0", v) &&
		   v[0] == 1 && v[4] == 20 && v[3] == 620,
		   "640 an hour, want 20: 20 granted at once, 620 left (%lld, %lld)", v[4], v[3]);
	tap_ok(eval_one(c, "t:lease", "640", "3600000000", "1000", "0", v) &&
		   v[0] == 1 && v[4] == 77 && v[3] == 543,
		   "want 1000: an eighth of the 620 left, 77 (%lld)", v[4]);
	/* drain with big wants: the grants shrink to one token at a time, never past the limit */
	while (n++ < 1000 && eval_one(c, "t:lease", "640", "3600000000", "64", "0", v) && v[0] == 1)
	{
		total += (int) v[4];
		if (v[3] < 8 && v[4] != 1)
			break;
	}
	tap_ok(v[0] == 0 && total == 543 && v[4] == 0 && v[2] > 0,
		   "drained by leases: exactly the 543 left were granted, then refused with a retry (%d)", total);
	tap_ok(eval_one(c, "t:lease", "640", "3600000000", "0", "56250000", v) && v[0] == 1 &&
		   v[4] == 0 && v[3] == 10,
		   "a refund of 10 tokens' TAT (want 0): nothing granted, 10 available again (%lld)", v[3]);
	tap_ok(eval_one(c, "t:lease", "640", "3600000000", "64", "0", v) && v[0] == 1 && v[4] == 1,
		   "with 10 left a lease is one token");
	tap_ok(eval_one(c, "t:fresh", "640", "3600000000", "0", "999999999999", v) && v[0] == 1 &&
		   v[3] == 640,
		   "a refund larger than the TAT leaves a whole quota, not more (%lld)", v[3]);
}

/* SCRIPT FLUSH under the pipeline: the next call loads the script again. */
static void
test_noscript(redisContext *c)
{
	Probe		p;
	redisReply *r = redisCommand(c, "SCRIPT FLUSH");

	freeReplyObject(r);
	tap_ok(submit(&p, "test:rl:flushed", "5", "60000000") == 0 && wait_answers(&p, 1) &&
		   p.is_array && p.v[0] == 1 && p.v[3] == 4,
		   "after SCRIPT FLUSH a call is still answered (allowed, 4 left)");
}

/* A Redis that accepts and never answers: the timeout answers, then a backoff refuses. */
static void
test_stalled(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t	len = sizeof(a);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);
	ConfigRedis cfg = {.host = "127.0.0.1"};
	Probe		p;
	struct timespec t0,
				t1;
	double		ms;

	if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof(a)) != 0 || listen(fd, 8) != 0 ||
		getsockname(fd, (struct sockaddr *) &a, &len) != 0)
	{
		tap_ok(false, "a silent listener");
		return;
	}
	cfg.port = ntohs(a.sin_port);
	redis_pipeline_start(&cfg, 150);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	tap_ok(submit(&p, "k", "5", "60000000") == 0 && wait_answers(&p, 1) && !p.got_reply,
		   "a Redis that never answers: the call is answered with a failure");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double) (t1.tv_sec - t0.tv_sec) * 1e3 + (double) (t1.tv_nsec - t0.tv_nsec) / 1e6;
	tap_ok(ms >= 140 && ms < 2000, "after the 150 ms timeout (%.0f ms)", ms);
	tap_ok(submit(&p, "k", "5", "60000000") == -1, "during the backoff a call is refused at once");
	tap_ok(!redis_is_up() && redis_failures() > 0, "the outage is counted (iam_redis_up 0)");
	usleep(120000);				/* the first backoff is 50 ms */
	tap_ok(submit(&p, "k", "5", "60000000") == 0 && wait_answers(&p, 1) && !p.got_reply,
		   "after the backoff calls are accepted again (and fail again: still silent)");
	redis_pipeline_stop();
	close(fd);
}

/* redis_pipeline_stop answers what is still open. */
static void
test_stop_answers(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t	len = sizeof(a);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);
	ConfigRedis cfg = {.host = "127.0.0.1"};
	Probe		p;

	if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof(a)) != 0 || listen(fd, 8) != 0 ||
		getsockname(fd, (struct sockaddr *) &a, &len) != 0)
	{
		tap_ok(false, "a silent listener");
		return;
	}
	cfg.port = ntohs(a.sin_port);
	redis_pipeline_start(&cfg, 10000);
	tap_ok(submit(&p, "k", "5", "60000000") == 0, "a call waits on a silent Redis");
	usleep(50000);
	redis_pipeline_stop();
	tap_ok(atomic_load(&p.answers) == 1 && !p.got_reply, "stopping answers it (failure) at once");
	tap_ok(submit(&p, "k", "5", "60000000") == -1, "after the stop calls are refused");
	close(fd);
}

int
main(void)
{
	int			port = free_port();
	pid_t		redis = port > 0 ? start_redis(port) : -1;
	ConfigRedis cfg = {.host = "127.0.0.1",.port = port};
	redisContext *c;

	signal(SIGPIPE, SIG_IGN);
	redis_script_init(&ratelimit_script);
	if (!tap_ok(redis > 0, "redis-server started on port %d", port))
		return tap_done();
	c = redisConnect("127.0.0.1", port);
	redis_init(&cfg, 1000);
	tap_ok(redis_pipeline_start(&cfg, 1000) == 0, "the pipeline starts");
	test_batches();
	{
		uint64_t	calls;
		uint64_t	runs;

		redis_pipeline_counts(&calls, &runs);
		tap_ok(calls == THREADS * PER_THREAD && runs >= 1 && runs < calls,
			   "calls queued together shared script runs (%llu calls, %llu runs)",
			   (unsigned long long) calls, (unsigned long long) runs);
	}
	test_script_layout(c);
	test_script_leases(c);
	test_noscript(c);
	redis_pipeline_stop();
	redisFree(c);
	kill(redis, SIGTERM);
	waitpid(redis, NULL, 0);

	test_stalled();
	test_stop_answers();
	return tap_done();
}
