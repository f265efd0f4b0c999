/*
 * main.c
 *		iam-gateway start-up and graceful shutdown.
 *
 * Signals: SIGTERM, SIGINT and SIGPIPE are blocked before any thread starts,
 * so every thread inherits the mask; the main thread then waits for
 * SIGTERM/SIGINT with sigwait and does all shutdown work in ordinary code
 * (no async-signal-safety concerns).  SIGPIPE stays blocked: a write to a
 * closed socket fails with EPIPE instead of killing the process.
 *
 * Exit status: 0 after a clean shutdown, 2 for a bad setting (including a
 * listen address that cannot be bound), 1 for any other start-up failure.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accesslog.h"
#include "config.h"
#include "db.h"
#include "http.h"

#define EXIT_CONFIG		2

extern char **environ;

/* fail prints "iam-gateway: <msg>" and exits with status. */
static void
fail(int status, char *msg)
{
	fprintf(stderr, "iam-gateway: %s\n", msg != NULL ? msg : "out of memory");
	free(msg);
	exit(status);
}

/*
 * drain waits until no request is in flight or timeout_s has passed.  A
 * second SIGTERM/SIGINT cuts the wait short.
 */
static void
drain(HttpServer *srv, const sigset_t *stop, int timeout_s)
{
	struct timespec deadline;
	struct timespec now;
	const struct timespec tick = {0, 50 * 1000000L};

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_s;
	while (http_in_flight(srv) > 0)
	{
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec ||
			(now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
			break;
		if (sigtimedwait(stop, NULL, &tick) > 0)
		{
			accesslog_event("warn", "second signal: not waiting for requests", NULL);
			break;
		}
	}
}

int
main(void)
{
	sigset_t	blocked;
	sigset_t	stop;
	Config	   *cfg;
	DbPool	   *pool;
	HttpServer *srv;
	HttpContext ctx;
	char	   *err = NULL;
	char		num[3][16];
	int			fd;
	int			sig;
	int			left;

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	blocked = stop;
	sigaddset(&blocked, SIGPIPE);
	if ((errno = pthread_sigmask(SIG_BLOCK, &blocked, NULL)) != 0)
		fail(1, strdup("cannot block signals"));

	if ((cfg = config_load((const char *const *) environ, &err)) == NULL)
		fail(EXIT_CONFIG, err);
	if ((fd = http_listen(cfg, &err)) < 0)
		fail(EXIT_CONFIG, err);
	if ((pool = db_pool_create(cfg->database_url, cfg->db_pool_size)) == NULL)
		fail(1, strdup("cannot create the database pool (out of memory, or libpq without thread safety)"));
	ctx.config = cfg;
	ctx.pool = pool;
	if ((srv = http_start(fd, &ctx, &err)) == NULL)
		fail(1, err);

	snprintf(num[0], sizeof(num[0]), "%d", cfg->threads);
	snprintf(num[1], sizeof(num[1]), "%d", cfg->db_pool_size);
	accesslog_event("info", "listening", "listen", cfg->listen,
					"threads", num[0], "db_pool_size", num[1],
					"redis", cfg->redis_enabled ? "configured" : "not configured",
					"jwt_alg", config_jwt_alg_name(cfg->jwt_alg), NULL);

	/* sigwait only returns members of stop; it fails only on a bad set */
	while (sigwait(&stop, &sig) != 0)
		;

	snprintf(num[2], sizeof(num[2]), "%d", http_in_flight(srv));
	accesslog_event("info", "shutting down", "signal", strsignal(sig),
					"in_flight", num[2], NULL);
	http_quiesce(srv);
	drain(srv, &stop, cfg->shutdown_timeout);
	if ((left = http_in_flight(srv)) > 0)
	{
		snprintf(num[2], sizeof(num[2]), "%d", left);
		accesslog_event("warn", "shutdown timeout: closing unfinished requests",
						"in_flight", num[2], NULL);
	}
	http_stop(srv);
	db_pool_destroy(pool);
	config_free(cfg);
	accesslog_event("info", "stopped", NULL);
	return 0;
}
