/*
 * ratelimit.h
 *		Per-class request limits (GCRA), in Redis shared by every gateway or
 *		in process, with the RateLimit-* headers and 429 replies.
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "redis.h"
#include "routes.h"

/*
 * GCRA with a limit of `limit` requests per `period_us`: each request moves
 * the theoretical arrival time (TAT) of its key by period/limit; a request
 * is refused when that would put the TAT more than the period ahead of now.
 * So `limit` requests pass at once, then one every period/limit, and a full
 * period after the last request everything is allowed again.
 */
typedef struct GcraResult
{
	bool		allowed;
	int64_t		ahead_us;		/* TAT - now after the decision (>= 0) */
	int64_t		retry_us;		/* refused: when the next one would pass */
	int			remaining;		/* requests that would pass right now */
} GcraResult;

/*
 * gcra_step decides one request for a key whose TAT is *tat (0: none),
 * updating *tat when allowed.  Pure; exported for the tests.
 */
extern GcraResult gcra_step(int64_t *tat, int64_t now_us, int limit, int64_t period_us);

/*
 * The in-process limiter: a bounded hash of key -> TAT.  Thread-safe.
 * ratelimit_local_create returns NULL when out of memory; max_keys bounds
 * memory (expired keys are swept when it is reached; beyond it, new keys
 * pass unrecorded, and that is logged once).
 */
typedef struct RateLimitLocal RateLimitLocal;
extern RateLimitLocal *ratelimit_local_create(size_t max_keys);
extern void ratelimit_local_free(RateLimitLocal *l);
/* ratelimit_local_check decides for all nkeys keys at once (all pass or none counts). */
extern GcraResult ratelimit_local_check(RateLimitLocal *l, const char *const *keys,
										int nkeys, int64_t now_us, int limit,
										int64_t period_us);
extern size_t ratelimit_local_size(RateLimitLocal *l);

/* The limiter's batch script (redis_pipeline.h), exported for the tests. */
extern RedisScript ratelimit_script;

/*
 * ratelimit_init sets the limiter up from cfg (borrowed for the process's
 * lifetime); with Redis configured, redis_init and redis_pipeline_start
 * must have been called first.  Returns 0, or -1 when out of memory.
 */
extern int	ratelimit_init(const Config *cfg);
extern void ratelimit_shutdown(void);

/*
 * ratelimit_client_ip writes the client's address into out: the socket
 * peer, or, when the peer is a trusted proxy (IAM_TRUSTED_PROXIES), the
 * right-most address of X-Forwarded-For that is not a trusted proxy.
 */
extern void ratelimit_client_ip(HttpRequest *req, const Config *cfg, char *out,
								size_t size);

/* ratelimit_is_trusted tells whether addr (text) is in cfg's trusted proxies. */
extern bool ratelimit_is_trusted(const Config *cfg, const char *addr);

/*
 * Counting a request against its route's class: per user when sub is
 * given, else per client IP (and per account when the body is a JSON
 * object with an "email").  The decision sets the RateLimit-* headers of
 * the reply; a refusal answers 429 (or 503 when Redis fails and
 * IAM_RATE_LIMIT_FAIL=closed).
 *
 * ratelimit_start decides at once when it can (limits off for the route,
 * no Redis): RATELIMIT_PASS, or RATELIMIT_ANSWERED with *rc the reply's
 * result.  With Redis it suspends the request (http_suspend with cont, arg
 * and release) and returns RATELIMIT_WAIT with *wait set: cont runs once
 * Redis has answered or failed, and calls ratelimit_finish(wait), which
 * returns 0 when the request may go on, or -1 when it was answered (*rc).
 * A wait is freed by ratelimit_finish, or by ratelimit_wait_free when the
 * request ends without being resumed.
 */
typedef struct RateLimitWait RateLimitWait;
typedef enum RateLimitOutcome
{
	RATELIMIT_PASS,
	RATELIMIT_ANSWERED,
	RATELIMIT_WAIT
} RateLimitOutcome;

extern RateLimitOutcome ratelimit_start(HttpRequest *req, const Config *cfg,
										const Route *route, const char *sub,
										const char *client_ip, const char *body,
										size_t body_len, HttpContinuation cont,
										void *arg, void (*release) (void *arg),
										RateLimitWait **wait, int *rc);
extern int	ratelimit_finish(HttpRequest *req, const Config *cfg, const Route *route,
							 RateLimitWait *wait, int *rc);
extern void ratelimit_wait_free(RateLimitWait *wait);

/* ratelimit_metrics appends the limiter's Prometheus lines to buf (malloc'd, grown). */
extern char *ratelimit_metrics(void);

#endif							/* RATELIMIT_H */
