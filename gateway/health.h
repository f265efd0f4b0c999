/*
 * health.h
 *		Liveness and readiness endpoints.
 */
#ifndef HEALTH_H
#define HEALTH_H

#include "http.h"

/*
 * health_live answers GET /healthz with 200 {"status":"ok"}: the process is
 * alive; no I/O is done.  Returns 0, or -1 when the reply could not be
 * queued.
 */
extern int	health_live(HttpRequest *req, const HttpContext *ctx);

/*
 * health_ready answers GET /readyz: 200
 * {"status":"ready","database":"ok","redis":"ok"|"not configured"} when
 * PostgreSQL (and Redis, when IAM_REDIS_URL is set) answer, otherwise a 503
 * problem with Retry-After: 1 and code database_unavailable or
 * redis_unavailable.  Blocks the calling thread for at most about a second
 * per dependency (plus connect_timeout for PostgreSQL).  Returns 0, or -1
 * when the reply could not be queued.
 */
extern int	health_ready(HttpRequest *req, const HttpContext *ctx);

#endif							/* HEALTH_H */
