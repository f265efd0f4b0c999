/*
 * api.c
 *		The request pipeline of /api/v1, from route match to the reply.
 *
 * Order (PostgREST's): route -> token -> rate limit -> query/body checks ->
 * response cache -> database, so no pooled connection is taken for a
 * request that is refused anyway.  While the limiter waits for Redis the
 * request is suspended (api_handle returns, api_resume goes on), so its
 * thread serves other connections meanwhile.  The database part is one
 * round trip in libpq's pipeline mode:
 *
 *     [Parse of statements not yet prepared on this connection]
 *     Execute ctx    SELECT set_config('iam.user_id', $1, true), ... x5
 *                    (+ set_config('transaction_read_only', 'on', true))
 *     Execute h<i>   SELECT status, body, headers FROM handler($1, $2)
 *     Sync
 *
 * Without an explicit BEGIN everything before the Sync is one implicit
 * transaction: the Sync commits it, and any error rolls all of it back, so
 * a failing handler costs no extra ROLLBACK round trip.  Read-only routes
 * set transaction_read_only in the same transaction, which is what BEGIN
 * READ ONLY would do.  Statements are prepared once per connection and
 * route-table generation (db.c keeps the per-connection record).
 *
 * Ownership: libpq results are PQclear'ed where read; jansson values we
 * create are json_decref'ed here; body and header strings taken from
 * results are copied before the result is cleared.
 */
#include "api.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "accesslog.h"
#include "auth.h"
#include "cache.h"
#include "json_body.h"
#include "problem.h"
#include "ratelimit.h"
#include "sqlstate.h"

#define API_POOL_WAIT_MS	5000
#define API_DB_TIMEOUT_MS	30000
#define API_IF_MATCH_MAX	256
#define API_HEADER_MAX		16
#define API_CTX_PARAMS		7	/* user, org, request id, ip, user agent, session, external subject */

#define CTX_SQL \
	"SELECT set_config('iam.user_id', $1, true), set_config('iam.org_id', $2, true), " \
	"set_config('iam.request_id', $3, true), set_config('iam.ip', $4, true), " \
	"set_config('iam.user_agent', $5, true), set_config('iam.session_id', $6, true), " \
	"set_config('iam.external_sub', $7, true)"
#define CTX_RO_SQL	CTX_SQL ", set_config('transaction_read_only', 'on', true)"

/* What one round trip produced. */
typedef struct ApiResult
{
	bool		ok;				/* the handler returned a row */
	bool		conn_lost;		/* connection-level failure or timeout */
	bool		prepare_failed;	/* a Parse failed: state unknown, drop conn */
	int			status;
	char	   *body;			/* malloc'd; NULL for SQL NULL */
	size_t		body_len;
	char	   *headers;		/* malloc'd jsonb text; NULL for SQL NULL */
	char		sqlstate[6];	/* first error, "" when none */
	char	   *message;		/* malloc'd primary message of the first error */
} ApiResult;

static void
result_clear(ApiResult *r)
{
	free(r->body);
	free(r->headers);
	free(r->message);
	memset(r, 0, sizeof(*r));
}

static char *
dup_value(const PGresult *res, int col, size_t *len)
{
	int			n = PQgetlength(res, 0, col);
	char	   *s;

	if (PQgetisnull(res, 0, col) || (s = malloc((size_t) n + 1)) == NULL)
		return NULL;
	memcpy(s, PQgetvalue(res, 0, col), (size_t) n);
	s[n] = '\0';
	if (len != NULL)
		*len = (size_t) n;
	return s;
}

/* wait_result waits (until deadline) until PQgetResult will not block. */
static int
wait_result(PGconn *conn, const struct timespec *deadline)
{
	while (PQisBusy(conn))
	{
		struct timespec now;
		long long	ms;
		struct pollfd pfd = {.fd = PQsocket(conn),.events = POLLIN};
		int			n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (long long) (deadline->tv_sec - now.tv_sec) * 1000 +
			(deadline->tv_nsec - now.tv_nsec) / 1000000;
		if (ms <= 0)
			return -1;
		n = poll(&pfd, 1, (int) ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || !PQconsumeInput(conn))
			return -1;
	}
	return 0;
}

/* note_error keeps the first error of the round trip. */
static void
note_error(ApiResult *out, const PGresult *res, Metrics *metrics)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char		cls[16];

	metrics_db_error(metrics, sqlstate_class_label(state, cls));
	if (out->sqlstate[0] != '\0' || out->conn_lost)
		return;
	if (state != NULL && strlen(state) == 5)
		memcpy(out->sqlstate, state, 6);
	else
		out->conn_lost = true;
	out->message = msg != NULL ? strdup(msg) : NULL;
}

/*
 * round_trip runs the pipeline for route r on conn.  Returns 0 when the
 * round trip completed (out->ok or an SQL error in out), -1 on a
 * connection-level failure (out->conn_lost).
 */
static int
round_trip(PGconn *conn, DbConnState *st, uint64_t generation, int n_routes,
		   const Route *r, const char *const ctxv[API_CTX_PARAMS], const char *params,
		   const char *body, Metrics *metrics, ApiResult *out)
{
	enum
	{
		CMD_DEALLOCATE, CMD_PREP_CTX, CMD_PREP_CTX_RO, CMD_PREP_HANDLER,
		CMD_CTX, CMD_HANDLER
	}			cmds[8];
	int			ncmds = 0;
	char		hname[32];
	const char *hv[2] = {params, body};
	struct timespec deadline;
	bool		fresh_generation = st->routes_generation != generation;
	PGresult   *res;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += API_DB_TIMEOUT_MS / 1000;
	snprintf(hname, sizeof(hname), "h%d", r->index);

	if (!PQenterPipelineMode(conn))
	{
		out->conn_lost = true;
		return -1;
	}
	if (fresh_generation && st->routes_generation != 0)
	{
		/* the table changed: forget the old handler statements */
		if (!PQsendQueryParams(conn, "DEALLOCATE ALL", 0, NULL, NULL, NULL, NULL, 0))
			goto send_failed;
		cmds[ncmds++] = CMD_DEALLOCATE;
		st->common_prepared = false;
	}
	if (fresh_generation)
	{
		if (db_state_reserve(st, (size_t) n_routes) != 0)
			goto send_failed;
		st->routes_generation = generation;
	}
	if (!st->common_prepared)
	{
		if (!PQsendPrepare(conn, "ctx", CTX_SQL, API_CTX_PARAMS, NULL) ||
			!PQsendPrepare(conn, "ctx_ro", CTX_RO_SQL, API_CTX_PARAMS, NULL))
			goto send_failed;
		cmds[ncmds++] = CMD_PREP_CTX;
		cmds[ncmds++] = CMD_PREP_CTX_RO;
	}
	if (!st->handler_prepared[r->index])
	{
		if (!PQsendPrepare(conn, hname, r->sql, 2, NULL))
			goto send_failed;
		cmds[ncmds++] = CMD_PREP_HANDLER;
	}
	if (!PQsendQueryPrepared(conn, r->read_only ? "ctx_ro" : "ctx", API_CTX_PARAMS, ctxv, NULL, NULL, 0) ||
		!PQsendQueryPrepared(conn, hname, 2, hv, NULL, NULL, 0) ||
		!PQpipelineSync(conn))
		goto send_failed;
	cmds[ncmds++] = CMD_CTX;
	cmds[ncmds++] = CMD_HANDLER;

	for (int i = 0; i < ncmds; i++)
	{
		for (;;)
		{
			ExecStatusType status;

			if (wait_result(conn, &deadline) != 0)
				goto lost;
			if ((res = PQgetResult(conn)) == NULL)
				break;
			status = PQresultStatus(res);
			if (status == PGRES_FATAL_ERROR)
			{
				note_error(out, res, metrics);
				if (cmds[i] != CMD_CTX && cmds[i] != CMD_HANDLER)
					out->prepare_failed = true;
			}
			else if (status == PGRES_COMMAND_OK && cmds[i] == CMD_PREP_HANDLER)
				st->handler_prepared[r->index] = 1;
			else if (status == PGRES_COMMAND_OK && cmds[i] == CMD_PREP_CTX_RO)
				st->common_prepared = true;
			else if (status == PGRES_TUPLES_OK && cmds[i] == CMD_HANDLER)
			{
				if (PQntuples(res) == 1 && PQnfields(res) == 3 && !PQgetisnull(res, 0, 0))
				{
					out->ok = true;
					out->status = atoi(PQgetvalue(res, 0, 0));
					out->body = dup_value(res, 1, &out->body_len);
					out->headers = dup_value(res, 2, NULL);
				}
			}
			PQclear(res);
		}
	}
	/* the Sync: a commit-time error (deferred check, serialization) comes first */
	for (int guard = 0; guard < 4; guard++)
	{
		ExecStatusType status;

		if (wait_result(conn, &deadline) != 0)
			goto lost;
		if ((res = PQgetResult(conn)) == NULL)
			continue;
		status = PQresultStatus(res);
		if (status == PGRES_FATAL_ERROR)
			note_error(out, res, metrics);
		PQclear(res);
		if (status == PGRES_PIPELINE_SYNC)
		{
			if (!PQexitPipelineMode(conn))
				goto lost;
			if (out->sqlstate[0] != '\0' || out->conn_lost)
				out->ok = false;
			return out->conn_lost ? -1 : 0;
		}
	}
	goto lost;

send_failed:
lost:
	out->conn_lost = true;
	out->ok = false;
	return -1;
}

/* A query-string walk: one parameter at a time into params. */
typedef struct QueryWalk
{
	const Route *route;
	json_t	   *params;
	char		detail[256];
} QueryWalk;

static int
query_cb(void *arg, const char *key, const char *value)
{
	QueryWalk  *w = arg;

	return routes_query_param(w->route, w->params, key, value, w->detail,
							  sizeof(w->detail)) == 0 ? 0 : 1;
}

static int
reply_problem(HttpRequest *req, unsigned int status, const char *code,
			  const char *detail)
{
	return problem_reply(req, &(Problem) {.status = status,.code = code,.detail = detail});
}

/* is_token_char: RFC 9110 tchar, for header names from the handler. */
static bool
is_header_name(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
			  (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
			return false;
	return true;
}

static bool
is_header_value(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char) *s < 0x20 && *s != '\t')
			return false;
	return true;
}

/* media_type_is says whether ct is type, with optional parameters. */
static bool
media_type_is(const char *ct, const char *type)
{
	size_t		n = strlen(type);

	if (ct == NULL || strncasecmp(ct, type, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/*
 * reply_text sends a handler's non-JSON answer (a report as CSV): the
 * handler's body is then one JSON string, whose text is the response; the
 * only case where the gateway decodes a body instead of passing it through.
 */
static int
reply_text(HttpRequest *req, const Route *route, const ApiResult *res,
		   const char *content_type, const HttpHeader *headers, size_t n)
{
	json_error_t jerr;
	json_t	   *text = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, &jerr);
	int			rc;

	if (!json_is_string(text))
	{
		json_decref(text);
		accesslog_event("error", "handler's text body is not a JSON string", "route", route->label,
						"request_id", http_request_id(req), NULL);
		return reply_problem(req, 500, "internal", "internal error");
	}
	rc = http_reply(req, (unsigned int) res->status, content_type,
					json_string_value(text), json_string_length(text), headers, n);
	json_decref(text);
	return rc;
}

/* reply_result sends the handler's answer: status, body as is, headers. */
static int
reply_result(HttpRequest *req, const Route *route, ApiResult *res)
{
	HttpHeader	headers[API_HEADER_MAX];
	size_t		n = 0;
	const char *content_type = NULL;	/* NULL: the body is JSON */
	json_t	   *hobj = NULL;
	const char *key;
	json_t	   *v;
	int			rc;

	if (res->status < 200 || res->status > 599)
	{
		char		num[16];

		snprintf(num, sizeof(num), "%d", res->status);
		accesslog_event("error", "handler returned a bad status", "route", route->label,
						"status", num, "request_id", http_request_id(req), NULL);
		return reply_problem(req, 500, "internal", "internal error");
	}
	if (res->headers != NULL)
	{
		json_error_t jerr;

		hobj = json_loads(res->headers, 0, &jerr);
		if (hobj != NULL && json_is_object(hobj))
		{
			json_object_foreach(hobj, key, v)
			{
				if (strcasecmp(key, "Content-Type") == 0 && json_is_string(v) &&
					media_type_is(json_string_value(v), "text/csv"))
					content_type = "text/csv; charset=utf-8";
				else if (n < API_HEADER_MAX && json_is_string(v) && is_header_name(key) &&
					is_header_value(json_string_value(v)))
					headers[n++] = (HttpHeader) {key, json_string_value(v)};
				else
					accesslog_event("warn", "handler header ignored", "route", route->label,
									"header", key, NULL);
			}
		}
	}
	if (res->status == 204 || res->body == NULL)
		rc = http_reply(req, (unsigned int) res->status, "application/json", "", 0, headers, n);
	else if (content_type != NULL)
		rc = reply_text(req, route, res, content_type, headers, n);
	else
		rc = http_reply(req, (unsigned int) res->status, "application/json",
						res->body, res->body_len, headers, n);
	json_decref(hobj);
	return rc;
}

/*
 * reply_entry sends a cacheable response (#7): the body with its ETag, or
 * 304 without a body when If-None-Match names the ETag.
 */
static int
reply_entry(HttpRequest *req, const Route *route, const CacheEntry *e)
{
	ApiResult	res;
	const char *inm = http_header(req, "If-None-Match");
	HttpHeader	h[1] = {{"ETag", e->etag}};

	/* conditional requests are for GET; a cached POST answer is just sent */
	if (strcmp(route->method, "GET") == 0 && cache_etag_matches(inm, e->etag))
	{
		cache_note_not_modified();
		return http_reply(req, 304, "application/json", "", 0, h, 1);
	}
	if (e->headers == NULL)
		return http_reply(req, (unsigned int) e->status, "application/json",
						  e->body, e->body_len, h, 1);
	/* the handler's own headers (with its ETag) go the usual way; nothing is freed */
	memset(&res, 0, sizeof(res));
	res.status = e->status;
	res.body = e->body;
	res.body_len = e->body_len;
	res.headers = e->headers;
	return reply_result(req, route, &res);
}

/*
 * entry_of makes the cache entry of a handler's 200 response, with the
 * handler's ETag or one of the body.  The strings are copies; the caller
 * frees the entry.  NULL when out of memory.
 */
static CacheEntry *
entry_of(const ApiResult *res)
{
	CacheEntry *e = calloc(1, sizeof(CacheEntry));
	char		etag[40];
	json_t	   *h = NULL;
	json_error_t jerr;
	bool		has_headers;

	if (e == NULL)
		return NULL;
	if (res->headers != NULL)
		h = json_loads(res->headers, 0, &jerr);
	has_headers = json_is_object(h) && json_object_size(h) > 0;
	if (json_is_string(json_object_get(h, "ETag")) &&
		strlen(json_string_value(json_object_get(h, "ETag"))) < sizeof(etag))
		snprintf(etag, sizeof(etag), "%s", json_string_value(json_object_get(h, "ETag")));
	else
		cache_etag(res->body != NULL ? res->body : "", res->body_len, etag);
	json_decref(h);
	e->status = res->status;
	e->etag = strdup(etag);
	e->headers = has_headers ? strdup(res->headers) : NULL;
	e->body_len = res->body_len;
	e->body = malloc(res->body_len + 1);
	if (e->etag == NULL || e->body == NULL || (has_headers && e->headers == NULL))
	{
		cache_entry_free(e);
		return NULL;
	}
	memcpy(e->body, res->body != NULL ? res->body : "", res->body_len);
	e->body[res->body_len] = '\0';
	return e;
}

/* reply_db_error maps the round trip's error to problem+json and logs it. */
static int
reply_db_error(HttpRequest *req, const Route *route, const ApiResult *res)
{
	SqlstateMapping m = sqlstate_map(res->conn_lost ? NULL : res->sqlstate, res->message);

	if (m.status >= 500 || strncmp(res->sqlstate, "IA", 2) != 0)
		accesslog_event(m.status >= 500 ? "error" : "info", "database error",
						"route", route->label, "sqlstate",
						res->conn_lost ? "connection" : res->sqlstate,
						"detail", res->message, "request_id", http_request_id(req), NULL);
	return problem_reply(req, &(Problem) {
		.status = m.status,.code = m.code,.detail = m.detail,
			.retry_after = m.retry_after,
			.www_authenticate = m.status == 401 ? "Bearer error=\"invalid_token\"" : NULL,
	});
}

/*
 * content_type_is_json accepts application/json, and the JSON merge patch
 * type (RFC 7396) that PATCH bodies may declare.
 */
static bool
content_type_is_json(const char *ct)
{
	return media_type_is(ct, "application/json") ||
		media_type_is(ct, "application/merge-patch+json");
}

/*
 * accepts_csv says whether an Accept header asks for text/csv before (or
 * without) JSON; handlers that can answer in CSV (the reports) then get
 * "accept": "text/csv" in their params.  Quality values are not weighed.
 */
static bool
accepts_csv(const char *accept)
{
	const char *csv = accept != NULL ? strcasestr(accept, "text/csv") : NULL;
	const char *json = accept != NULL ? strcasestr(accept, "application/json") : NULL;

	return csv != NULL && (json == NULL || csv < json);
}

/*
 * caller_label writes who an external token's subject is for the access
 * log and the rate limiter: "ext-" and 16 hex digits of its SHA-256, so an
 * arbitrary provider string never reaches a log line or a Redis key.
 */
static void
caller_label(const char *ext_sub, char out[40])
{
	unsigned char d[32];
	unsigned int n = 0;

	strcpy(out, "ext-");
	if (EVP_Digest(ext_sub, strlen(ext_sub), d, &n, EVP_sha256(), NULL) != 1)
		memset(d, 0, sizeof(d));
	for (int i = 0; i < 8; i++)
		snprintf(out + 4 + 2 * i, 3, "%02x", d[i]);
}

/*
 * authenticate verifies the bearer token; 0 with *claims, or replies 401.
 * A token found in the verified-token cache is not verified again; one
 * whose iss is the external provider's (IAM_OIDC_ISSUER) goes to that
 * provider's keys, every other to the gateway's.
 */
static int
authenticate(HttpRequest *req, const HttpContext *ctx, JwtClaims *claims, char label[40], int *rc)
{
	const char *authz = http_header(req, "Authorization");
	const char *token;
	size_t		len;
	long long	now = (long long) time(NULL);
	JwtError	err;

	if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
	{
		*rc = problem_reply(req, &(Problem) {
			.status = 401,.code = "unauthorized",
				.detail = "This resource needs a bearer token.",
				.www_authenticate = "Bearer",
		});
		return -1;
	}
	token = authz + 7;
	while (*token == ' ')
		token++;
	len = strlen(token);
	if (jwtcache_get(ctx->jwt_cache, token, len, now, claims))
		err = JWT_OK;
	else
	{
		const JwtVerifier *v = ctx->external != NULL &&
			jwt_issuer_is(token, len, ctx->config->oidc_issuer) ? ctx->external : ctx->verifier;

		err = v == NULL ? JWT_UNKNOWN_KID : jwt_verify(v, token, len, now, claims);
		if (err == JWT_OK)
			jwtcache_put(ctx->jwt_cache, token, len, now, claims);
	}
	if (err != JWT_OK)
	{
		accesslog_event("info", "bearer token refused", "reason", jwt_error_name(err),
						"request_id", http_request_id(req), NULL);
		*rc = problem_reply(req, &(Problem) {
			.status = 401,.code = "invalid_token",
				.detail = "The bearer token is not valid.",
				.www_authenticate = "Bearer error=\"invalid_token\"",
		});
		return -1;
	}
	if (claims->ext_sub[0] != '\0')
		caller_label(claims->ext_sub, label);
	else
		snprintf(label, 40, "%s", claims->sub);
	http_set_user(req, label);
	return 0;
}

/* reply_options answers OPTIONS: 204 with Allow (and CORS when allowed). */
static int
reply_options(HttpRequest *req, const char *allow)
{
	HttpHeader	h[5];
	size_t		n = 0;
	char		allow_all[160];

	snprintf(allow_all, sizeof(allow_all), "%s, OPTIONS", allow);
	h[n++] = (HttpHeader) {"Allow", allow_all};
	if (http_cors_origin(req) != NULL)
	{
		h[n++] = (HttpHeader) {"Access-Control-Allow-Methods", allow_all};
		h[n++] = (HttpHeader) {"Access-Control-Allow-Headers",
			"Authorization, Content-Type, If-Match, X-Request-Id"};
		h[n++] = (HttpHeader) {"Access-Control-Max-Age", "600"};
	}
	return http_reply(req, 204, "text/plain", "", 0, h, n);
}

/*
 * A request between its stages, kept while the rate limiter's answer is
 * awaited (the request suspended, ratelimit_start); freed by
 * api_request_free whichever way the request ends.
 */
typedef struct ApiRequest
{
	const HttpContext *ctx;
	RouteTable *t;				/* a reference, held until the reply */
	const Route *route;
	json_t	   *params;			/* path (then query) parameters */
	JwtClaims	claims;
	char		who[40];		/* user id, or ext-… for an external token */
	char		client_ip[64];
	RateLimitWait *wait;
} ApiRequest;

static void
api_request_free(void *arg)
{
	ApiRequest *a = arg;

	ratelimit_wait_free(a->wait);
	json_decref(a->params);
	routes_table_release(a->t);
	free(a);
}

static int	api_serve(HttpRequest *req, ApiRequest *a);

/* api_resume: the limiter has decided (or failed); go on or stop there. */
static int
api_resume(HttpRequest *req, void *arg)
{
	ApiRequest *a = arg;
	RateLimitWait *wait = a->wait;
	int			rc;

	a->wait = NULL;
	if (ratelimit_finish(req, a->ctx->config, a->route, wait, &rc) != 0)
	{
		api_request_free(a);
		return rc;
	}
	return api_serve(req, a);
}

int
api_handle(HttpRequest *req, const HttpContext *ctx, const char *path)
{
	RouteTable *t = routes_current(ctx->routes);
	ApiRequest *a;
	char		allow[128];
	const char *body;
	size_t		body_len;
	int			rc;

	if (t == NULL)
		return problem_reply(req, &(Problem) {
			.status = 503,.code = "routes_unavailable",
				.detail = "The API routes are not loaded yet; try again shortly.",
				.retry_after = 1,
		});
	if (strcmp(http_method(req), "OPTIONS") == 0)
	{
		rc = routes_allow(t, path, allow, sizeof(allow)) ?
			reply_options(req, allow) :
			reply_problem(req, 404, "not_found", "There is no resource at this path.");
		routes_table_release(t);
		return rc;
	}
	if ((a = calloc(1, sizeof(ApiRequest))) == NULL || (a->params = json_object()) == NULL)
	{
		free(a);
		routes_table_release(t);
		return -1;
	}
	a->ctx = ctx;
	a->t = t;
	switch (routes_match(t, http_method(req), path, &a->route, a->params, allow, sizeof(allow)))
	{
		case ROUTE_NOT_FOUND:
			rc = reply_problem(req, 404, "not_found", "There is no resource at this path.");
			goto done;
		case ROUTE_METHOD_NOT_ALLOWED:
			rc = problem_reply(req, &(Problem) {
				.status = 405,.code = "method_not_allowed",
					.detail = "This resource does not support this method.",
					.allow = allow,
			});
			goto done;
		case ROUTE_FOUND:
			break;
	}
	http_set_route(req, a->route->label);

	if (a->route->authenticated && authenticate(req, ctx, &a->claims, a->who, &rc) != 0)
		goto done;

	/* rate limit (#7): per user, or per client IP (and account) when anonymous */
	ratelimit_client_ip(req, ctx->config, a->client_ip, sizeof(a->client_ip));
	body = http_body(req, &body_len);
	switch (ratelimit_start(req, ctx->config, a->route, a->who, a->client_ip, body, body_len,
							api_resume, a, api_request_free, &a->wait, &rc))
	{
		case RATELIMIT_WAIT:
			return 0;			/* api_resume goes on */
		case RATELIMIT_ANSWERED:
			goto done;
		case RATELIMIT_PASS:
			break;
	}
	return api_serve(req, a);

done:
	api_request_free(a);
	return rc;
}

/*
 * api_serve finishes an admitted request: query, header and body checks,
 * the response cache, one round trip, the reply.  Frees a.
 */
static int
api_serve(HttpRequest *req, ApiRequest *a)
{
	const HttpContext *ctx = a->ctx;
	const Route *route = a->route;
	json_t	   *params = a->params;
	const JwtClaims *c = &a->claims;
	QueryWalk	walk;
	const char *if_match;
	const char *body;
	size_t		body_len;
	char	   *params_text = NULL;
	PGconn	   *conn;
	DbConnState *st;
	ApiResult	res;
	int			rc;
	char		cache_key_hex[65];
	bool		cacheable = false;

	memset(&res, 0, sizeof(res));
	body = http_body(req, &body_len);
	walk.route = route;
	walk.params = params;
	walk.detail[0] = '\0';
	if (http_query_foreach(req, query_cb, &walk) != 0)
	{
		rc = reply_problem(req, 400, "bad_query", walk.detail);
		goto done;
	}
	if ((if_match = http_header(req, "If-Match")) != NULL)
	{
		json_t	   *v = strlen(if_match) <= API_IF_MATCH_MAX ? json_string(if_match) : NULL;

		if (v == NULL)
		{
			rc = reply_problem(req, 400, "bad_request", "The If-Match header is not valid.");
			goto done;
		}
		json_object_set_new(params, "if_match", v);
	}
	if (accepts_csv(http_header(req, "Accept")))
		json_object_set_new(params, "accept", json_string("text/csv"));

	if (body != NULL && body_len > 0)
	{
		const char *detail;

		if (!content_type_is_json(http_header(req, "Content-Type")))
		{
			rc = reply_problem(req, 415, "unsupported_media_type",
							   "The request body must be application/json.");
			goto done;
		}
		if (json_body_check(body, body_len, &detail) != 0)
		{
			rc = reply_problem(req, 400, "bad_body", detail);
			goto done;
		}
	}
	else
		body = NULL;

	/* the session lifetime, for the routes that start or extend one */
	if (route->issues_token)
		json_object_set_new(params, "refresh_ttl", json_integer(ctx->config->refresh_ttl));
	if ((params_text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
	{
		rc = -1;
		goto done;
	}

	/*
	 * The response cache (#7), for cacheable read-only routes: the key names
	 * the caller (user and session), its organisation and their cache
	 * version, taken before the database is read, and the parameters and
	 * body (a read-only POST such as /authz/check asks its question in the
	 * body).  An external token's user is known only to SQL: nothing to key
	 * a cache on.
	 */
	if (route->cacheable && route->read_only && c->ext_sub[0] == '\0')
	{
		char		caller[80];
		char	   *question = malloc(strlen(params_text) + 1 + (body != NULL ? body_len : 0) + 1);

		if (question == NULL)
		{
			rc = -1;
			goto done;
		}
		snprintf(caller, sizeof(caller), "%s/%s", c->sub, c->sid);
		/* params_text is compact JSON: a newline cannot occur in it */
		sprintf(question, "%s\n", params_text);
		if (body != NULL)
			memcpy(question + strlen(params_text) + 1, body, body_len);
		question[strlen(params_text) + 1 + (body != NULL ? body_len : 0)] = '\0';
		cacheable = cache_key(route->label, question, c->org, caller, cache_key_hex);
		free(question);
	}
	if (cacheable)
	{
		CacheEntry *hit = cache_get(cache_key_hex);

		if (hit != NULL)
		{
			rc = reply_entry(req, route, hit);
			cache_entry_free(hit);
			goto done;
		}
	}

	/* the database, last: one round trip, retried once on 40001/40P01 */
	for (int attempt = 0; attempt < 2; attempt++)
	{
		const char *ua = http_header(req, "User-Agent");
		char		ua_cut[256];
		const char *ctxv[API_CTX_PARAMS];

		/* iam.user_agent: at most 255 bytes, cut at a character boundary */
		snprintf(ua_cut, sizeof(ua_cut), "%s", ua != NULL ? ua : "");
		for (size_t len = strlen(ua_cut); len > 0 && !json_body_utf8_valid(ua_cut, len);)
			ua_cut[--len] = '\0';
		ctxv[0] = c->sub;
		ctxv[1] = c->org;
		ctxv[2] = http_request_id(req);
		ctxv[3] = a->client_ip;
		ctxv[4] = ua_cut;
		ctxv[5] = c->sid;	/* iam.api_caller() refuses a revoked session */
		ctxv[6] = c->ext_sub;	/* iam.api_caller() maps it to a user */

		result_clear(&res);
		if ((conn = db_pool_acquire_state(ctx->pool, API_POOL_WAIT_MS, &st)) == NULL)
		{
			/* load shedding (#7): too many requests wait for a connection */
			if (errno == EAGAIN)
			{
				rc = problem_reply(req, &(Problem) {
					.status = 503,.code = "overloaded",
						.detail = "The server is overloaded; try again shortly.",
						.retry_after = 1,
				});
				goto done;
			}
			metrics_db_error(ctx->metrics, "connection");
			rc = problem_reply(req, &(Problem) {
				.status = 503,.code = "database_unavailable",
					.detail = "The database is unavailable; try again shortly.",
					.retry_after = 1,
			});
			goto done;
		}
		(void) round_trip(conn, st, routes_table_generation(a->t), routes_table_size(a->t),
						  route, ctxv, params_text, body, ctx->metrics, &res);
		db_pool_release(ctx->pool, conn, res.conn_lost || res.prepare_failed);
		if (res.ok || res.conn_lost)
			break;
		if (!sqlstate_map(res.sqlstate, NULL).retry || attempt == 1)
			break;
	}
	/* a write of ours: the next read of this organisation must not wait for the poll */
	if (res.ok && !route->read_only && res.status < 400)
		cache_written(c->org);
	if (res.ok && cacheable && res.status == 200)
	{
		CacheEntry *e = entry_of(&res);

		if (e != NULL)
		{
			cache_put(cache_key_hex, e);
			rc = reply_entry(req, route, e);
			cache_entry_free(e);
			goto done;
		}
	}
	if (res.ok && route->issues_token)
		rc = auth_token_reply(req, ctx, res.status, res.body, res.body_len, res.headers);
	else
		rc = res.ok ? reply_result(req, route, &res) : reply_db_error(req, route, &res);

done:
	result_clear(&res);
	free(params_text);
	api_request_free(a);
	return rc;
}


int
api_openapi(HttpRequest *req, const HttpContext *ctx)
{
	RouteTable *t = routes_current(ctx->routes);
	char	   *doc;
	size_t		len = 0;
	PGconn	   *conn;
	PGresult   *res;
	int			rc;

	if (t == NULL)
		return problem_reply(req, &(Problem) {
			.status = 503,.code = "routes_unavailable",
				.detail = "The API routes are not loaded yet; try again shortly.",
				.retry_after = 1,
		});
	if ((doc = routes_openapi_get(t, &len)) == NULL)
	{
		if ((conn = db_pool_acquire(ctx->pool, API_POOL_WAIT_MS)) == NULL)
		{
			routes_table_release(t);
			return problem_reply(req, &(Problem) {
				.status = 503,.code = "database_unavailable",
					.detail = "The database is unavailable; try again shortly.",
					.retry_after = 1,
			});
		}
		res = PQexecParams(conn, "SELECT iam.openapi()", 0, NULL, NULL, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			!PQgetisnull(res, 0, 0))
		{
			len = (size_t) PQgetlength(res, 0, 0);
			routes_openapi_set(t, PQgetvalue(res, 0, 0), len);
			doc = routes_openapi_get(t, &len);
		}
		else
			accesslog_event("error", "iam.openapi() failed", "sqlstate",
							PQresultErrorField(res, PG_DIAG_SQLSTATE), "detail",
							PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), NULL);
		PQclear(res);
		db_pool_release(ctx->pool, conn, false);
	}
	routes_table_release(t);
	if (doc == NULL)
		return reply_problem(req, 500, "internal", "internal error");
	rc = http_reply(req, 200, "application/json", doc, len, NULL, 0);
	free(doc);
	return rc;
}
