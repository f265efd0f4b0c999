/*
 * redis_pipeline.h
 *		The rate limiter's Redis connection: one per gateway, shared by
 *		every request thread, driven by one I/O thread that batches the
 *		calls into one script run per round trip and answers each call
 *		through its callback.
 */
#ifndef REDIS_PIPELINE_H
#define REDIS_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "redis.h"

typedef struct RedisCall RedisCall;

/*
 * Called once per submitted call, on the I/O thread, with the call's answer
 * (an error reply such as -ERR is an answer), or with NULL when Redis
 * failed: not reachable, connection lost, or no reply within the timeout.
 * answer belongs to the pipeline and is freed after the callback returns;
 * the pipeline no longer touches the call once the callback has started,
 * so the callback may hand it (and what holds it) to another thread.
 */
typedef void (*RedisCallDone) (RedisCall *call, const redisReply *answer);

/* Embedded by the caller, who owns its memory until done has been called. */
struct RedisCall
{
	RedisCallDone done;
	/* the pipeline's own, from redis_pipeline_call until done */
	RedisCall  *next;
	RedisScript *script;
	char	   *resp;			/* keys, then (nkeys, nargs, args), as RESP bulk strings */
	size_t		keys_len;
	size_t		args_len;
	int			nkeys;
	int			nargs;
	int64_t		deadline_ms;	/* CLOCK_MONOTONIC */
};

/*
 * redis_pipeline_start connects lazily to cfg (borrowed for the process's
 * lifetime) and starts the I/O thread; timeout_ms bounds a connection
 * attempt and the wait for each reply.  Returns 0, or -1 when the thread
 * cannot start.
 */
extern int	redis_pipeline_start(const ConfigRedis *cfg, int timeout_ms);

/*
 * redis_pipeline_stop answers every call not yet answered with NULL, stops
 * the thread and closes the connection.  Further calls are refused.
 */
extern void redis_pipeline_stop(void);

/*
 * redis_pipeline_call queues one call of batch script s with its keys and
 * arguments (copied) and returns 0: call->done (set by the caller) will be
 * called exactly once, on the I/O thread, possibly before this function
 * returns.  Returns -1 when Redis is known to be unavailable at the moment
 * (not started, stopped, or waiting out a backoff after a failure): done
 * is then not called.
 *
 * A batch script serves several calls in one run (atomically, in the order
 * they were queued): KEYS holds the keys of every call of the batch, call
 * after call; ARGV[1] is the number of calls, followed for each call by
 * its number of keys, its number of arguments and its arguments.  It
 * returns an array with one element per call, the answer to that call.
 * NOSCRIPT is answered by loading the script and sending the batch again,
 * once.
 */
extern int	redis_pipeline_call(RedisCall *call, RedisScript *s, int nkeys,
								const char *const *keys, int nargs,
								const char *const *args);

/* redis_pipeline_counts: calls answered by Redis, and the script runs that answered them. */
extern void redis_pipeline_counts(uint64_t *calls, uint64_t *runs);

#endif							/* REDIS_PIPELINE_H */
