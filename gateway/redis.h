/*
 * redis.h
 *		A small hiredis client for the request threads: one connection per
 *		thread, short timeouts, reconnection with backoff; Lua scripts, whose
 *		calls go through redis_pipeline.h; the outage state all of them share.
 */
#ifndef REDIS_H
#define REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"

/* A Lua script: its text and SHA-1 (hex), computed by redis_script_init. */
typedef struct RedisScript
{
	const char *text;
	char		sha[41];
} RedisScript;

/*
 * redis_init configures the client (cfg is borrowed for the process's
 * lifetime); timeout_ms bounds each connect and each command.  No
 * connection is opened yet.  Call once, before the request threads start.
 */
extern void redis_init(const ConfigRedis *cfg, int timeout_ms);

/* redis_enabled tells whether redis_init was called with a configuration. */
extern bool redis_enabled(void);

/* redis_script_init fills s->sha from s->text. */
extern void redis_script_init(RedisScript *s);

/*
 * redis_command runs one command (argv/lens as for redisCommandArgv) on the
 * calling thread's connection, connecting first when needed.  Returns the
 * reply, which the caller frees with freeReplyObject, or NULL when Redis is
 * unavailable: not configured, in backoff after a failure, or failing now
 * (the connection is then dropped and retried after a backoff that doubles
 * from 50 ms to 2 s).  An error reply (-ERR) is a reply, not a failure.
 */
extern redisReply *redis_command(int argc, const char **argv, const size_t *lens);

/*
 * redis_report_failure / redis_report_success: every Redis user of the
 * process (these connections and redis_pipeline.c's) reports into one
 * outage state, logged once per outage (first failure, then recovery) and
 * shown by redis_failures / redis_is_up.
 */
extern void redis_report_failure(const char *why);
extern void redis_report_success(void);

/* redis_failures counts failed commands and connection attempts. */
extern uint64_t redis_failures(void);

/* redis_is_up: the last command or connection attempt succeeded. */
extern bool redis_is_up(void);

#endif							/* REDIS_H */
