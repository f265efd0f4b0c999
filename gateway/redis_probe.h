/*
 * redis_probe.h
 *		Readiness probe for Redis.
 */
#ifndef REDIS_PROBE_H
#define REDIS_PROBE_H

#include "config.h"

/*
 * redis_probe_ping connects to r with a timeout of timeout_ms (also used for
 * each command), sends AUTH and SELECT when configured, then PING.  Returns
 * 0 when the answer is PONG, -1 otherwise (the reason is logged once per
 * outage).  The connection is closed before returning; nothing to free.
 */
extern int	redis_probe_ping(const ConfigRedis *r, int timeout_ms);

#endif							/* REDIS_PROBE_H */
