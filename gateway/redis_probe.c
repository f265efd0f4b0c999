/*
 * redis_probe.c
 *		Is Redis there?  A readiness probe, one short-lived connection each.
 *
 * Later work adds a per-thread context for rate limiting and caching; the
 * probe stays separate so /readyz tells the truth even when those contexts
 * are broken.  Ownership (hiredis): each redisReply is freed once with
 * freeReplyObject; after any error the context is unusable and is freed
 * with redisFree.
 */
#include "redis_probe.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "accesslog.h"

static atomic_bool redis_down = false;

/*
 * redis_expect checks that reply (from redisCommand; NULL after an I/O
 * error) is the status want.  When not, it copies the reason (Redis's error
 * text, never our arguments) into why.  Frees the reply.
 */
static bool
redis_expect(redisContext *c, redisReply *reply, const char *want,
			 char *why, size_t why_size)
{
	bool		ok = reply != NULL && reply->type == REDIS_REPLY_STATUS &&
		strcmp(reply->str, want) == 0;

	if (reply == NULL)
		snprintf(why, why_size, "%s", c->errstr[0] != '\0' ? c->errstr : "no reply");
	else if (!ok)
		snprintf(why, why_size, "%s", reply->type == REDIS_REPLY_ERROR ?
				 reply->str : "unexpected reply");
	if (reply != NULL)
		freeReplyObject(reply);
	return ok;
}

int
redis_probe_ping(const ConfigRedis *r, int timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
	char		why[256] = "";
	bool		ok;

	if (c == NULL)
		snprintf(why, sizeof(why), "out of memory");
	else if (c->err)
		snprintf(why, sizeof(why), "%s", c->errstr);
	/* the connect timeout does not cover commands; this does */
	else if (redisSetTimeout(c, tv) != REDIS_OK)
		snprintf(why, sizeof(why), "%s", c->errstr);
	ok = why[0] == '\0';
	if (ok && r->password != NULL)
		ok = r->username != NULL ?
			redis_expect(c, redisCommand(c, "AUTH %s %s", r->username, r->password),
						 "OK", why, sizeof(why)) :
			redis_expect(c, redisCommand(c, "AUTH %s", r->password),
						 "OK", why, sizeof(why));
	if (ok && r->db != 0)
		ok = redis_expect(c, redisCommand(c, "SELECT %d", r->db), "OK",
						  why, sizeof(why));
	if (ok)
		ok = redis_expect(c, redisCommand(c, "PING"), "PONG", why, sizeof(why));

	/* log the first failure of an outage and the recovery, not every probe */
	if (!ok && !atomic_exchange(&redis_down, true))
		accesslog_event("warn", "redis unavailable", "detail", why, NULL);
	else if (ok && atomic_exchange(&redis_down, false))
		accesslog_event("info", "redis available again", NULL);
	if (c != NULL)
		redisFree(c);
	return ok ? 0 : -1;
}
