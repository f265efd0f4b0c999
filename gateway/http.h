/*
 * http.h
 *		The HTTP server: listen socket, libmicrohttpd daemon, per-request
 *		state, dispatch and the one function that sends a response.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>

#include "config.h"
#include "db.h"
#include "jwt.h"
#include "jwtcache.h"
#include "metrics.h"
#include "routes.h"

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;

/* What handlers may use; owned by main and outliving the server. */
typedef struct HttpContext
{
	const Config *config;
	DbPool	   *pool;
	Routes	   *routes;			/* the API route table and its loader */
	const JwtVerifier *verifier;	/* NULL: no key configured, tokens refused */
	const JwtVerifier *external;	/* IAM_OIDC_*: the provider's tokens; NULL: none */
	JwtCache   *jwt_cache;		/* verified tokens (IAM_JWT_CACHE_SIZE); NULL: off */
	Metrics    *metrics;
} HttpContext;

/* An extra response header; both strings are copied by http_reply. */
typedef struct HttpHeader
{
	const char *name;
	const char *value;
} HttpHeader;

/*
 * http_listen binds and listens on cfg->listen_addr (SO_REUSEADDR,
 * non-blocking, close-on-exec).  Returns the socket, which http_start takes
 * over, or -1 with *errmsg set to one line such as `IAM_LISTEN: cannot
 * listen on 127.0.0.1:8080: Address already in use (set IAM_LISTEN to a free
 * host:port)`; the caller frees *errmsg with free() (NULL when out of
 * memory).
 */
extern int	http_listen(const Config *cfg, char **errmsg);

/*
 * http_start runs the daemon on listen_fd with ctx->config->threads threads.
 * On success the server owns listen_fd and the caller ends it with
 * http_stop; ctx is copied.  Returns NULL with *errmsg set (caller frees
 * with free()) on failure; listen_fd is then still the caller's to close.
 */
extern HttpServer *http_start(int listen_fd, const HttpContext *ctx,
							  char **errmsg);

/*
 * http_quiesce stops accepting connections; requests already received run
 * to completion and their responses ask the client to close.  Idempotent.
 */
extern void http_quiesce(HttpServer *srv);

/* http_in_flight returns how many requests are between start and completion. */
extern int	http_in_flight(HttpServer *srv);

/*
 * http_stop stops the daemon (closing idle and unfinished connections after
 * the handlers running now return), closes the listen socket and frees srv.
 * srv may be NULL.
 */
extern void http_stop(HttpServer *srv);

/*
 * http_reply queues a response to req: status, Content-Type content_type,
 * body[0..len) (copied; the caller keeps ownership of body), the n extra
 * headers, and the headers every response carries (X-Request-Id,
 * X-Content-Type-Options: nosniff, Cache-Control: no-store).  Call it at most
 * once per request.  Returns 0, or -1 when out of memory or when
 * libmicrohttpd refuses the response (the connection is then closed).
 */
extern int	http_reply(HttpRequest *req, unsigned int status,
					   const char *content_type, const char *body, size_t len,
					   const HttpHeader *headers, size_t n);

/*
 * http_add_header adds a header (copied) to whatever reply req gets later,
 * error replies included (the RateLimit-* headers).  At most
 * HTTP_EXTRA_HEADERS per request; more, or longer than 63/127 bytes, are
 * dropped.
 */
#define HTTP_EXTRA_HEADERS	6
extern void http_add_header(HttpRequest *req, const char *name, const char *value);

/* http_request_id returns req's X-Request-Id, valid until the request ends. */
extern const char *http_request_id(const HttpRequest *req);

/*
 * Accessors for the request handlers (api.c); every string is valid until
 * the request ends and belongs to the request.
 */
extern const char *http_method(const HttpRequest *req);
extern const char *http_path(const HttpRequest *req);	/* decoded, no query */
extern const char *http_remote(const HttpRequest *req); /* "" when unknown */
/* http_header returns the request header name (case-insensitive) or NULL. */
extern const char *http_header(HttpRequest *req, const char *name);
/* http_body returns the request body (NULL when none) and its length. */
extern const char *http_body(const HttpRequest *req, size_t *len);

/*
 * http_query_foreach calls cb for every query parameter, in order, with the
 * key and value as decoded by libmicrohttpd (value NULL without '='); stops
 * at the first non-zero return of cb and returns it (0 when all passed).
 */
extern int	http_query_foreach(HttpRequest *req,
							   int (*cb) (void *arg, const char *key, const char *value),
							   void *arg);

/* http_set_route records the route label for the access log and metrics (copied). */
extern void http_set_route(HttpRequest *req, const char *label);

/* http_set_user records the authenticated user id for the access log (copied). */
extern void http_set_user(HttpRequest *req, const char *user_id);

/* http_cors_origin returns the request's Origin when it is allowed, else NULL. */
extern const char *http_cors_origin(const HttpRequest *req);

/*
 * A handler that waits for something other than the database (the rate
 * limiter's Redis answer) suspends its request instead of its thread:
 * http_suspend parks req (call it from the handler, before whatever will
 * call http_resume is started, then return 0 without replying); the
 * thread goes on with other connections.  http_resume, from any thread,
 * wakes it: cont(req, arg) then runs on one of the server's threads and
 * finishes the request as a handler would (its return value likewise).
 * If the request ends without being resumed (the server stopping),
 * release(arg) is called instead; release may be NULL.
 */
typedef int (*HttpContinuation) (HttpRequest *req, void *arg);
extern void http_suspend(HttpRequest *req, HttpContinuation cont, void *arg,
						 void (*release) (void *arg));
extern void http_resume(HttpRequest *req);

#endif							/* HTTP_H */
