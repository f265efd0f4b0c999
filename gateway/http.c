/*
 * http.c
 *		libmicrohttpd glue: the listen socket, the daemon and its limits,
 *		per-request state, dispatch and the one function that sends a reply.
 *
 * Ownership (libmicrohttpd): an HttpRequest is allocated on the first call
 * of the access handler for a request, kept in *req_cls, and freed in the
 * completion callback, which MHD calls exactly once for every request whose
 * handler ran, whatever the outcome.  The same callback writes the access
 * log line and decrements the in-flight count that graceful shutdown waits
 * on.  Responses are built with MHD_RESPMEM_MUST_COPY, so callers keep
 * their buffers.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "accesslog.h"
#include "api.h"
#include "auth.h"
#include "cache.h"
#include "health.h"
#include "ratelimit.h"
#include "problem.h"
#include "request_id.h"

#define HTTP_MAX_BODY			(1024 * 1024)	/* larger bodies get 413 */
#define HTTP_MAX_DRAIN			(8 * HTTP_MAX_BODY) /* then we hang up */
/*
 * Headers, read and write buffers of a connection.  MHD zeroes all of it
 * between two requests of a keep-alive connection, so more costs time on
 * every request; 32 KiB holds an 8 KiB bearer token and the rest.
 */
#define HTTP_CONNECTION_MEMORY	(32 * 1024)
#define HTTP_PATH_MAX			2048
#define HTTP_METHOD_MAX			32

struct HttpServer
{
	struct MHD_Daemon *daemon;
	int			listen_fd;
	HttpContext ctx;
	atomic_int	in_flight;
	atomic_bool closing;		/* quiesced: ask clients to close */
};

struct HttpRequest
{
	HttpServer *srv;
	struct MHD_Connection *conn;	/* valid during the current callback */
	struct timespec started;	/* CLOCK_MONOTONIC */
	uint64_t	body_bytes;		/* upload bytes seen */
	char	   *body;			/* the first HTTP_MAX_BODY bytes, malloc'd */
	size_t		body_cap;
	bool		too_large;
	bool		uri_too_long;	/* path did not fit in path[] */
	bool		replied;
	unsigned int status;		/* 0 until a response is queued */
	uint64_t	bytes;			/* response body length */
	char		request_id[REQUEST_ID_BUFSIZE];
	char		remote[INET6_ADDRSTRLEN];
	char		method[HTTP_METHOD_MAX];
	char		path[HTTP_PATH_MAX];
	char		route[160];		/* route label for metrics and the log; "" when none */
	char		user_id[40];	/* authenticated user; "" when none */
	const char *cors_origin;	/* the allowed Origin (config's string), or NULL */
	char		extra_name[HTTP_EXTRA_HEADERS][64];	/* http_add_header */
	char		extra_value[HTTP_EXTRA_HEADERS][128];
	int			n_extra;
	HttpContinuation cont;		/* set while suspended (http_suspend) */
	void	   *cont_arg;
	void		(*cont_release) (void *arg);
};

typedef int (*HttpHandler) (HttpRequest *req, const HttpContext *ctx);

static int	http_metrics(HttpRequest *req, const HttpContext *ctx);

/*
 * The operational routes, outside /api/v1 (whose table comes from SQL).
 * Only GET (and HEAD, which MHD answers without a body); a known path with
 * another method gets 405 and Allow.
 */
static const struct
{
	const char *path;
	const char *label;
	HttpHandler get;
}			http_routes[] =
{
	{"/healthz", "GET /healthz", health_live},
	{"/readyz", "GET /readyz", health_ready},
	{"/metrics", "GET /metrics", http_metrics},
	{"/openapi.json", "GET /openapi.json", api_openapi},
	{"/.well-known/jwks.json", "GET /.well-known/jwks.json", auth_jwks},
};

#define HTTP_API_PREFIX		"/api/v1"

#define HTTP_ALLOW_GET	"GET, HEAD"

int
http_listen(const Config *cfg, char **errmsg)
{
	int			one = 1;
	int			fd;
	int			err;
	const char *hint;

	fd = socket(cfg->listen_addr.ss_family,
				SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 &&
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		bind(fd, (const struct sockaddr *) &cfg->listen_addr,
			 cfg->listen_addrlen) == 0 &&
		listen(fd, SOMAXCONN) == 0)
		return fd;

	err = errno;
	if (fd >= 0)
		close(fd);
	switch (err)
	{
		case EADDRINUSE:
			hint = " (set IAM_LISTEN to a free host:port)";
			break;
		case EADDRNOTAVAIL:
			hint = " (set IAM_LISTEN to an address of this host)";
			break;
		case EACCES:
			hint = " (ports below 1024 need privileges; set IAM_LISTEN to another port)";
			break;
		default:
			hint = "";
	}
	if (asprintf(errmsg, "IAM_LISTEN: cannot listen on %s: %s%s",
				 cfg->listen, strerror(err), hint) < 0)
		*errmsg = NULL;
	return -1;
}

/* http_mhd_log turns libmicrohttpd's messages into JSON log lines. */
static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char		buf[512];
	size_t		len;

	(void) cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	accesslog_event("warn", "libmicrohttpd", "detail", buf, NULL);
}

void
http_add_header(HttpRequest *req, const char *name, const char *value)
{
	if (req->n_extra >= HTTP_EXTRA_HEADERS || strlen(name) >= sizeof(req->extra_name[0]) ||
		strlen(value) >= sizeof(req->extra_value[0]))
		return;
	strcpy(req->extra_name[req->n_extra], name);
	strcpy(req->extra_value[req->n_extra], value);
	req->n_extra++;
}

const char *
http_request_id(const HttpRequest *req)
{
	return req->request_id;
}

const char *
http_method(const HttpRequest *req)
{
	return req->method;
}

const char *
http_path(const HttpRequest *req)
{
	return req->path;
}

const char *
http_remote(const HttpRequest *req)
{
	return req->remote;
}

const char *
http_header(HttpRequest *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
http_body(const HttpRequest *req, size_t *len)
{
	*len = req->body != NULL ? (size_t) req->body_bytes : 0;
	return req->body;
}

typedef struct QueryWalk
{
	int			(*cb) (void *arg, const char *key, const char *value);
	void	   *arg;
	int			rc;
} QueryWalk;

static enum MHD_Result
http_query_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	QueryWalk  *w = cls;

	(void) kind;
	w->rc = w->cb(w->arg, key, value);
	return w->rc == 0 ? MHD_YES : MHD_NO;
}

int
http_query_foreach(HttpRequest *req,
				   int (*cb) (void *arg, const char *key, const char *value),
				   void *arg)
{
	QueryWalk	w = {cb, arg, 0};

	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, http_query_cb, &w);
	return w.rc;
}

void
http_set_route(HttpRequest *req, const char *label)
{
	snprintf(req->route, sizeof(req->route), "%s", label);
}

void
http_set_user(HttpRequest *req, const char *user_id)
{
	snprintf(req->user_id, sizeof(req->user_id), "%s", user_id);
}

const char *
http_cors_origin(const HttpRequest *req)
{
	return req->cors_origin;
}

void
http_suspend(HttpRequest *req, HttpContinuation cont, void *arg, void (*release) (void *arg))
{
	req->cont = cont;
	req->cont_arg = arg;
	req->cont_release = release;
	MHD_suspend_connection(req->conn);
}

void
http_resume(HttpRequest *req)
{
	MHD_resume_connection(req->conn);
}

/* http_metrics answers GET /metrics in the Prometheus text format. */
static int
http_metrics(HttpRequest *req, const HttpContext *ctx)
{
	MetricsGauges g = {
		.in_flight = http_in_flight(req->srv),
		.pool_waits = db_pool_waits(ctx->pool),
	};
	char	   *text = metrics_render(ctx->metrics, &g);
	char	   *more[3] = {ratelimit_metrics(), cache_metrics(), NULL};
	int			rc;

	if (asprintf(&more[2], "# HELP iam_db_shed_total Requests refused with 503 because too many waited for a database connection (IAM_MAX_DB_WAITERS).\n"
				 "# TYPE iam_db_shed_total counter\n"
				 "iam_db_shed_total %llu\n", (unsigned long long) db_pool_shed(ctx->pool)) < 0)
		more[2] = NULL;
	/* the limiter's, the cache's and the pool's own counters (#7) follow */
	for (int k = 0; k < 3 && text != NULL; k++)
	{
		char	   *joined = NULL;

		if (more[k] != NULL && asprintf(&joined, "%s%s", text, more[k]) >= 0)
		{
			free(text);
			text = joined;
		}
		free(more[k]);
	}
	for (int k = 0; k < 3 && text == NULL; k++)
		free(more[k]);
	if (text == NULL)
		return -1;
	rc = http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text,
					strlen(text), NULL, 0);
	free(text);
	return rc;
}

int
http_reply(HttpRequest *req, unsigned int status, const char *content_type,
		   const char *body, size_t len, const HttpHeader *headers, size_t n)
{
	struct MHD_Response *resp;
	enum MHD_Result ok;
	size_t		i;

	resp = MHD_create_response_from_buffer(len, (void *) body,
										   MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return -1;
	ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) &&
		MHD_add_response_header(resp, "X-Request-Id", req->request_id) &&
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") &&
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	for (i = 0; ok && i < n; i++)
		ok = MHD_add_response_header(resp, headers[i].name, headers[i].value);
	for (int k = 0; ok && k < req->n_extra; k++)
		ok = MHD_add_response_header(resp, req->extra_name[k], req->extra_value[k]);
	if (ok && req->cors_origin != NULL)
		ok = MHD_add_response_header(resp, "Access-Control-Allow-Origin", req->cors_origin) &&
			MHD_add_response_header(resp, "Vary", "Origin") &&
			MHD_add_response_header(resp, "Access-Control-Expose-Headers",
									"ETag, Location, Link, Retry-After, X-Request-Id, "
									"RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset");
	/* during shutdown, tell keep-alive clients to go elsewhere */
	if (ok && atomic_load(&req->srv->closing))
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (ok)
		ok = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp); /* MHD holds its own reference once queued */
	if (!ok)
		return -1;
	req->replied = true;
	req->status = status;
	/* MHD sends no body in reply to HEAD */
	req->bytes = strcmp(req->method, MHD_HTTP_METHOD_HEAD) == 0 ? 0 : len;
	return 0;
}

/* copy_cut copies src into dst[size], stopping at any char in stop. */
static void
copy_cut(char *dst, size_t size, const char *src, const char *stop)
{
	size_t		n = strcspn(src, stop);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* http_request_new allocates the per-request state; NULL when impossible. */
static HttpRequest *
http_request_new(HttpServer *srv, struct MHD_Connection *conn,
				 const char *url, const char *method)
{
	HttpRequest *req = calloc(1, sizeof(HttpRequest));
	const union MHD_ConnectionInfo *info;
	const char *incoming;

	if (req == NULL)
		return NULL;
	req->srv = srv;
	req->conn = conn;
	clock_gettime(CLOCK_MONOTONIC, &req->started);
	copy_cut(req->method, sizeof(req->method), method, "");
	/* MHD has split off the query already; cut again in case '?' was escaped */
	copy_cut(req->path, sizeof(req->path), url, "?");
	req->uri_too_long = strcspn(url, "?") >= sizeof(req->path);

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (info != NULL && info->client_addr != NULL)
	{
		const struct sockaddr *sa = info->client_addr;

		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr,
					  req->remote, sizeof(req->remote));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr,
					  req->remote, sizeof(req->remote));
	}

	incoming = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	for (int i = 0; incoming != NULL && i < srv->ctx.config->n_cors_origins; i++)
		if (strcmp(incoming, srv->ctx.config->cors_origins[i]) == 0)
			req->cors_origin = srv->ctx.config->cors_origins[i];

	incoming = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
	if (request_id_choose(incoming, req->request_id) != 0)
	{
		accesslog_event("error", "cannot generate a request id",
						"detail", "RAND_bytes failed", NULL);
		free(req);
		return NULL;
	}
	return req;
}

/* declared_too_large tells whether Content-Length announces > HTTP_MAX_BODY. */
static bool
declared_too_large(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
												 MHD_HTTP_HEADER_CONTENT_LENGTH);
	char	   *end;
	unsigned long long v;

	if (cl == NULL || cl[0] < '0' || cl[0] > '9')
		return false;			/* absent, or malformed: MHD rejects those */
	errno = 0;
	v = strtoull(cl, &end, 10);
	return errno == ERANGE || v > HTTP_MAX_BODY;
}

static int
reply_too_large(HttpRequest *req)
{
	return problem_reply(req, &(Problem) {
		.status = MHD_HTTP_CONTENT_TOO_LARGE,
			.code = "payload_too_large",
			.detail = "The request body is larger than 1 MiB.",
	});
}

/* http_dispatch finds the route for a fully received request and runs it. */
static int
http_dispatch(HttpRequest *req)
{
	size_t		i;

	if (req->too_large)
		return reply_too_large(req);
	/* never route on a truncated path */
	if (req->uri_too_long)
		return problem_reply(req, &(Problem) {
			.status = MHD_HTTP_URI_TOO_LONG,
				.code = "uri_too_long",
				.detail = "The request path is longer than 2047 bytes.",
		});
	if (strncmp(req->path, HTTP_API_PREFIX "/", sizeof(HTTP_API_PREFIX)) == 0)
		return api_handle(req, &req->srv->ctx, req->path + sizeof(HTTP_API_PREFIX) - 1);
	for (i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++)
	{
		if (strcmp(req->path, http_routes[i].path) != 0)
			continue;
		http_set_route(req, http_routes[i].label);
		if (strcmp(req->method, MHD_HTTP_METHOD_GET) == 0 ||
			strcmp(req->method, MHD_HTTP_METHOD_HEAD) == 0)
			return http_routes[i].get(req, &req->srv->ctx);
		return problem_reply(req, &(Problem) {
			.status = MHD_HTTP_METHOD_NOT_ALLOWED,
				.code = "method_not_allowed",
				.detail = "This resource supports GET and HEAD only.",
				.allow = HTTP_ALLOW_GET,
		});
	}
	return problem_reply(req, &(Problem) {
		.status = MHD_HTTP_NOT_FOUND,
			.code = "not_found",
			.detail = "There is no resource at this path.",
	});
}

/*
 * http_access is MHD's access handler.  The first call for a request sees
 * only the headers; then come zero or more calls with body data, and a
 * final one with *upload_data_size == 0, where we dispatch.  Bodies are
 * kept in req->body (at most 1 MiB).  A Content-Length over 1 MiB
 * gets 413 at once; a chunked body gets it when the body ends, and a client
 * still sending after HTTP_MAX_DRAIN bytes is disconnected.
 */
static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url,
			const char *method, const char *version, const char *upload_data,
			size_t *upload_data_size, void **req_cls)
{
	HttpServer *srv = cls;
	HttpRequest *req = *req_cls;

	(void) version;
	if (req == NULL)
	{
		if ((req = http_request_new(srv, conn, url, method)) == NULL)
			return MHD_NO;
		*req_cls = req;
		atomic_fetch_add(&srv->in_flight, 1);
		/* refuse before the client sends (or we read) the body */
		if (declared_too_large(conn))
		{
			req->too_large = true;
			return reply_too_large(req) == 0 ? MHD_YES : MHD_NO;
		}
		return MHD_YES;
	}

	req->conn = conn;
	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		/* keep the first HTTP_MAX_BODY bytes; count (and drop) the rest */
		if (!req->too_large && req->body_bytes + n <= HTTP_MAX_BODY)
		{
			/* +1: the body is kept NUL-terminated for libpq */
			if (req->body_bytes + n + 1 > req->body_cap)
			{
				size_t		cap = req->body_cap > 0 ? req->body_cap : 4096;
				char	   *grown;

				while (cap < req->body_bytes + n + 1)
					cap *= 2;
				if (cap > HTTP_MAX_BODY + 1)
					cap = HTTP_MAX_BODY + 1;
				if ((grown = realloc(req->body, cap)) == NULL)
					return MHD_NO;
				req->body = grown;
				req->body_cap = cap;
			}
			memcpy(req->body + req->body_bytes, upload_data, n);
			req->body[req->body_bytes + n] = '\0';
		}
		req->body_bytes += n;
		*upload_data_size = 0;
		if (req->body_bytes > HTTP_MAX_DRAIN)
			return MHD_NO;
		/*
		 * MHD 0.9.75 refuses a response queued in the middle of a body, so
		 * the 413 goes out when the body ends (http_dispatch).
		 */
		if (req->body_bytes > HTTP_MAX_BODY)
			req->too_large = true;
		return MHD_YES;
	}
	if (req->replied)
		return MHD_YES;
	if (req->cont != NULL)
	{
		/* resumed (http_resume): the suspended handler goes on */
		HttpContinuation cont = req->cont;

		req->cont = NULL;
		return cont(req, req->cont_arg) == 0 ? MHD_YES : MHD_NO;
	}
	return http_dispatch(req) == 0 ? MHD_YES : MHD_NO;
}

/* http_completed frees the request state and writes the access log line. */
static void
http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			   enum MHD_RequestTerminationCode toe)
{
	HttpServer *srv = cls;
	HttpRequest *req = *req_cls;
	struct timespec now;
	double		seconds;

	(void) conn;
	if (req == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	seconds = (double) (now.tv_sec - req->started.tv_sec) +
		(double) (now.tv_nsec - req->started.tv_nsec) / 1e9;
	metrics_request(srv->ctx.metrics, req->route[0] != '\0' ? req->route : NULL,
					req->status, seconds);
	accesslog_request(&(AccessLogRequest) {
		.method = req->method,
			.path = req->path,
			.route = req->route[0] != '\0' ? req->route : NULL,
			.user_id = req->user_id[0] != '\0' ? req->user_id : NULL,
			.status = req->status,
			.duration_ms = seconds * 1e3,
			.bytes = req->bytes,
			.request_id = req->request_id,
			.remote = req->remote[0] != '\0' ? req->remote : NULL,
			.aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK,
	});
	/* suspended and never resumed: only when the daemon stops */
	if (req->cont != NULL && req->cont_release != NULL)
		req->cont_release(req->cont_arg);
	free(req->body);
	free(req);
	*req_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

HttpServer *
http_start(int listen_fd, const HttpContext *ctx, char **errmsg)
{
	HttpServer *srv = calloc(1, sizeof(HttpServer));
	int			threads = ctx->config->threads;

	*errmsg = NULL;
	if (srv == NULL)
	{
		*errmsg = strdup("cannot start the HTTP server: out of memory");
		return NULL;
	}
	srv->listen_fd = listen_fd;
	srv->ctx = *ctx;
	atomic_init(&srv->in_flight, 0);
	atomic_init(&srv->closing, false);

	/*
	 * MHD_USE_ITC lets MHD_quiesce_daemon and http_resume wake the pool's
	 * threads.  Without
	 * CONNECTION_TIMEOUT an idle client would hold a connection forever.  The
	 * logger must be the first option, or MHD's early messages bypass it.
	 * The pool size comes last: with one thread it becomes the end of the
	 * list instead, because MHD warns about a pool of size 0 or 1.
	 */
	srv->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
								   MHD_USE_EPOLL | MHD_USE_ITC |
								   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
								   0, NULL, NULL,
								   http_access, srv,
								   MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, NULL,
								   MHD_OPTION_LISTEN_SOCKET, (MHD_socket) listen_fd,
								   MHD_OPTION_CONNECTION_TIMEOUT,
								   (unsigned int) ctx->config->idle_timeout,
								   MHD_OPTION_CONNECTION_MEMORY_LIMIT,
								   (size_t) HTTP_CONNECTION_MEMORY,
								   MHD_OPTION_NOTIFY_COMPLETED, http_completed, srv,
								   threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
								   (unsigned int) threads,
								   MHD_OPTION_END);
	if (srv->daemon == NULL)
	{
		*errmsg = strdup("cannot start the HTTP server (libmicrohttpd said why in the log line above)");
		free(srv);
		return NULL;
	}
	return srv;
}

void
http_quiesce(HttpServer *srv)
{
	if (atomic_exchange(&srv->closing, true))
		return;
	/* returns listen_fd, which must stay open until MHD_stop_daemon */
	(void) MHD_quiesce_daemon(srv->daemon);
}

int
http_in_flight(HttpServer *srv)
{
	return atomic_load(&srv->in_flight);
}

void
http_stop(HttpServer *srv)
{
	if (srv == NULL)
		return;
	MHD_stop_daemon(srv->daemon);
	close(srv->listen_fd);
	free(srv);
}
