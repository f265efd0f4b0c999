/*
 * health.c
 *		/healthz (liveness) and /readyz (readiness).
 *
 * Liveness answers from memory so an orchestrator never restarts a healthy
 * gateway because PostgreSQL is slow; readiness checks the dependencies a
 * request needs, so a load balancer stops sending traffic while they are
 * away and resumes by itself when they return.
 */
#include "health.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "problem.h"
#include "redis_probe.h"

#define HEALTH_PROBE_TIMEOUT_MS		1000

int
health_live(HttpRequest *req, const HttpContext *ctx)
{
	static const char body[] = "{\"status\":\"ok\"}";

	(void) ctx;
	return http_reply(req, 200, "application/json", body, sizeof(body) - 1,
					  NULL, 0);
}

int
health_ready(HttpRequest *req, const HttpContext *ctx)
{
	const Config *cfg = ctx->config;
	json_t	   *obj;
	char	   *body;
	int			rc;

	if (db_ping(ctx->pool, HEALTH_PROBE_TIMEOUT_MS) != 0)
		return problem_reply(req, &(Problem) {
			.status = 503,
				.code = "database_unavailable",
				.detail = "PostgreSQL is not answering; try again shortly.",
				.retry_after = 1,
		});
	if (cfg->redis_enabled &&
		redis_probe_ping(&cfg->redis, HEALTH_PROBE_TIMEOUT_MS) != 0)
		return problem_reply(req, &(Problem) {
			.status = 503,
				.code = "redis_unavailable",
				.detail = "Redis is not answering; try again shortly.",
				.retry_after = 1,
		});

	/* json_pack's "s" copies; obj is ours to json_decref */
	obj = json_pack("{s:s, s:s, s:s}", "status", "ready", "database", "ok",
					"redis", cfg->redis_enabled ? "ok" : "not configured");
	body = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(obj);
	if (body == NULL)
		return -1;
	rc = http_reply(req, 200, "application/json", body, strlen(body), NULL, 0);
	free(body);
	return rc;
}
