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
 *
 * `iam-gateway token --sub UUID --org UUID [--sid UUID] [--ttl S]` prints an
 * access token signed with the configured key instead (for service
 * accounts, and for the end-to-end tests).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "accesslog.h"
#include "cache.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "jwt.h"
#include "jwtcache.h"
#include "metrics.h"
#include "ratelimit.h"
#include "redis.h"
#include "redis_pipeline.h"
#include "routes.h"

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

static JwtAlg
jwt_alg_of(ConfigJwtAlg alg)
{
	return alg == CONFIG_JWT_HS256 ? JWT_HS256 : alg == CONFIG_JWT_RS256 ? JWT_RS256 : JWT_ES256;
}

/* signing_key describes the IAM_JWT_KEY_FILE key as a JwtKey (borrowed from cfg). */
static JwtKey
signing_key(const Config *cfg)
{
	return (JwtKey) {
		.kid = cfg->jwt_kid,.pkey = cfg->jwt_pkey,
			.secret = cfg->jwt_secret,.secret_len = cfg->jwt_secret_len,
	};
}

/*
 * verifier_create builds the token verifier from the signing key and
 * IAM_JWT_VERIFY_KEYS.  Returns NULL (*none set) when no key is configured.
 */
static JwtVerifier *
verifier_create(const Config *cfg, bool *none)
{
	JwtKey		keys[1 + 64];
	size_t		n = 0;

	*none = false;
	if (cfg->jwt_key_file != NULL)
		keys[n++] = signing_key(cfg);
	for (int i = 0; i < cfg->n_jwt_verify_keys && n < sizeof(keys) / sizeof(keys[0]); i++)
		keys[n++] = (JwtKey) {
			.kid = cfg->jwt_verify_keys[i].kid,.pkey = cfg->jwt_verify_keys[i].pkey,
				.secret = cfg->jwt_verify_keys[i].secret,
				.secret_len = cfg->jwt_verify_keys[i].secret_len,
		};
	if (n == 0)
	{
		*none = true;
		return NULL;
	}
	/* HS256 holds secrets only; public keys verify the algorithm of their type */
	if (cfg->jwt_alg == CONFIG_JWT_HS256)
		return jwt_verifier_create(JWT_HS256, keys, n, cfg->jwt_issuer,
								   cfg->jwt_audience, cfg->jwt_leeway);
	return jwt_verifier_create_public(keys, n, cfg->jwt_issuer, cfg->jwt_audience,
									  cfg->jwt_leeway, JWT_MODE_ACCESS);
}

static bool
is_uuid_arg(const char *s)
{
	return s != NULL && routes_is_uuid(s);
}

static void
lower_copy(char *dst, const char *src)
{
	for (int i = 0; i < 37; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'F') ? (char) (src[i] - 'A' + 'a') : src[i];
}

/*
 * token_main: `iam-gateway token --sub UUID --org UUID [--sid UUID]
 * [--ttl SECONDS]` prints a signed access token and exits 0; a bad argument
 * or setting exits 2.
 */
static int
token_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"sub", required_argument, NULL, 's'},
		{"org", required_argument, NULL, 'o'},
		{"sid", required_argument, NULL, 'i'},
		{"ttl", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0}
	};
	const char *sub = NULL;
	const char *org = NULL;
	const char *sid = NULL;
	long		ttl = -1;
	Config	   *cfg;
	char	   *err = NULL;
	JwtClaims	claims;
	JwtKey		key;
	char	   *token;
	unsigned char jti[16];
	int			c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		char	   *end;

		switch (c)
		{
			case 's':
				sub = optarg;
				break;
			case 'o':
				org = optarg;
				break;
			case 'i':
				sid = optarg;
				break;
			case 't':
				errno = 0;
				ttl = strtol(optarg, &end, 10);
				if (errno != 0 || *end != '\0' || ttl < 1 || ttl > 366L * 86400)
					fail(EXIT_CONFIG, strdup("token: --ttl must be seconds between 1 and 31622400"));
				break;
			default:
				fail(EXIT_CONFIG, strdup("usage: iam-gateway token --sub UUID --org UUID [--sid UUID] [--ttl SECONDS]"));
		}
	}
	if (optind != argc || !is_uuid_arg(sub) || !is_uuid_arg(org) ||
		(sid != NULL && !is_uuid_arg(sid)))
		fail(EXIT_CONFIG, strdup("usage: iam-gateway token --sub UUID --org UUID [--sid UUID] [--ttl SECONDS] (UUIDs as 8-4-4-4-12 hex)"));
	/* signing needs no database: a placeholder keeps config_load content */
	{
		size_t		n = 0;
		const char **env;

		while (environ[n] != NULL)
			n++;
		if ((env = calloc(n + 2, sizeof(char *))) == NULL)
			fail(1, NULL);
		memcpy(env, environ, n * sizeof(char *));
		env[n] = "IAM_DATABASE_URL=postgresql://";	/* getenv order: first wins */
		cfg = config_load(env, &err);
		free(env);
	}
	if (cfg == NULL)
		fail(EXIT_CONFIG, err);
	if (cfg->jwt_key_file == NULL)
	{
		config_free(cfg);
		fail(EXIT_CONFIG, strdup("IAM_JWT_KEY_FILE: not set; a token needs the signing key"));
	}
	memset(&claims, 0, sizeof(claims));
	lower_copy(claims.sub, sub);
	lower_copy(claims.org, org);
	/* without --sid the token names no session: valid until exp (service accounts) */
	if (sid != NULL)
		lower_copy(claims.sid, sid);
	if (RAND_bytes(jti, sizeof(jti)) != 1)
		fail(1, strdup("token: RAND_bytes failed"));
	for (size_t i = 0; i < sizeof(jti); i++)
		snprintf(claims.jti + 2 * i, 3, "%02x", jti[i]);
	claims.iat = (long long) time(NULL);
	claims.exp = claims.iat + (ttl > 0 ? ttl : cfg->access_ttl);
	key = signing_key(cfg);
	token = jwt_sign(jwt_alg_of(cfg->jwt_alg), &key, cfg->jwt_issuer, cfg->jwt_audience, &claims);
	config_free(cfg);
	if (token == NULL)
		fail(1, strdup("token: signing failed"));
	printf("%s\n", token);
	free(token);
	return 0;
}

int
main(int argc, char **argv)
{
	sigset_t	blocked;
	sigset_t	stop;
	Config	   *cfg;
	DbPool	   *pool;
	HttpServer *srv;
	HttpContext ctx;
	JwtVerifier *verifier;
	JwtVerifier *external = NULL;
	JwtCache   *jwt_cache = NULL;
	Metrics    *metrics;
	Routes	   *routes;
	bool		no_key;
	char	   *err = NULL;
	char		num[3][16];
	int			fd;
	int			sig;
	int			left;

	if (argc > 1 && strcmp(argv[1], "token") == 0)
		return token_main(argc - 1, argv + 1);
	if (argc > 1)
		fail(EXIT_CONFIG, strdup("usage: iam-gateway [token --sub UUID --org UUID [--sid UUID] [--ttl SECONDS]]"));

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
	verifier = verifier_create(cfg, &no_key);
	if (verifier == NULL && !no_key)
		fail(EXIT_CONFIG, strdup("IAM_JWT_KEY_FILE: the keys cannot form a verifier (check IAM_JWT_VERIFY_KEYS and IAM_JWT_LEEWAY)"));
	if (no_key && cfg->n_oidc_keys == 0)
		accesslog_event("warn", "no IAM_JWT_KEY_FILE: every bearer token is refused", NULL);
	if (cfg->n_oidc_keys > 0)
	{
		JwtKey		keys[256];
		size_t		n = 0;

		for (int i = 0; i < cfg->n_oidc_keys && n < sizeof(keys) / sizeof(keys[0]); i++)
			keys[n++] = (JwtKey) {cfg->oidc_keys[i].kid, cfg->oidc_keys[i].pkey, NULL, 0};
		if ((external = jwt_verifier_create_public(keys, n, cfg->oidc_issuer, cfg->oidc_audience,
												   cfg->jwt_leeway, JWT_MODE_EXTERNAL)) == NULL)
			fail(EXIT_CONFIG, strdup("IAM_OIDC_JWKS_FILE: the keys cannot form a verifier"));
	}
	if (cfg->jwt_cache_size > 0 && (jwt_cache = jwtcache_create((size_t) cfg->jwt_cache_size)) == NULL)
		fail(1, NULL);
	if ((pool = db_pool_create(cfg->database_url, cfg->db_pool_size)) == NULL)
		fail(1, strdup("cannot create the database pool (out of memory, or libpq without thread safety)"));
	if ((metrics = metrics_create()) == NULL)
		fail(1, NULL);
	/* rate limiting, load shedding and the response cache (#7) */
	if (cfg->redis_enabled)
	{
		redis_init(&cfg->redis, cfg->redis_timeout_ms);
		if (redis_pipeline_start(&cfg->redis, cfg->redis_timeout_ms) != 0)
			fail(1, strdup("cannot start the Redis I/O thread"));
	}
	db_pool_set_max_waiters(pool, cfg->max_db_waiters);
	if (ratelimit_init(cfg) != 0 || cache_init(cfg) != 0)
		fail(1, NULL);
	if ((routes = routes_start(cfg->database_url)) == NULL)
		fail(1, strdup("cannot start the routes loader"));
	ctx.config = cfg;
	ctx.pool = pool;
	ctx.routes = routes;
	ctx.verifier = verifier;
	ctx.external = external;
	ctx.jwt_cache = jwt_cache;
	ctx.metrics = metrics;
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
	/*
	 * Answers the limiter's calls still open, resuming their requests: MHD
	 * must not be stopped while a request is suspended.
	 */
	redis_pipeline_stop();
	http_stop(srv);
	routes_stop(routes);
	cache_shutdown();
	ratelimit_shutdown();
	db_pool_destroy(pool);
	metrics_free(metrics);
	jwt_verifier_free(verifier);
	jwt_verifier_free(external);
	jwtcache_free(jwt_cache);
	config_free(cfg);
	accesslog_event("info", "stopped", NULL);
	return 0;
}
