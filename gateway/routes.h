/*
 * routes.h
 *		The API route table, declared in SQL (iam.routes): path templates
 *		with typed parameters, method matching, query-parameter checks, and
 *		a loader that follows NOTIFY iam_routes.
 */
#ifndef ROUTES_H
#define ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef enum RouteType
{
	ROUTE_UUID,
	ROUTE_INT,					/* non-negative decimal, at most 10 digits */
	ROUTE_TEXT,					/* path: 1..200 bytes; query: at most 500 */
	ROUTE_BOOL,					/* query only: true / false */
	ROUTE_TIMESTAMPTZ,			/* query only: RFC 3339 */
	ROUTE_ENUM					/* query only: one of the listed words */
} RouteType;

typedef struct RouteParam
{
	char	   *name;
	RouteType	type;
	char	  **values;			/* ROUTE_ENUM: the allowed words */
	int			n_values;
} RouteParam;

typedef struct RouteSegment
{
	char	   *literal;		/* NULL for a typed segment */
	RouteParam	param;			/* typed segment */
} RouteSegment;

/* One route; immutable once its table is built. */
typedef struct Route
{
	int			index;			/* position in the table */
	char		method[8];
	char	   *path;			/* the template as declared, under /api/v1 */
	char	   *label;			/* "GET /users/{id}": metrics and logs */
	char	   *handler;		/* a checked, possibly qualified function name */
	char	   *sql;			/* SELECT status, body, headers FROM handler($1::jsonb, $2::jsonb) */
	bool		read_only;
	bool		cacheable;
	bool		authenticated;
	char	   *rate_limit_class;
	int			rate_limit_requests;	/* of the class; 0: not limited */
	int			rate_limit_seconds;
	bool		issues_token;	/* login/refresh: the gateway signs the access token (auth.c) */
	RouteSegment *segments;
	int			n_segments;
	RouteParam *query;
	int			n_query;
} Route;

/*
 * A route table: immutable once built, shared by the request threads and
 * freed when the last reference is released.
 */
typedef struct RouteTable RouteTable;

/* One row of iam.routes, as text, the way the loader reads it. */
typedef struct RouteRow
{
	const char *method;
	const char *path;
	const char *handler;		/* handler::regproc::text */
	bool		read_only;
	bool		cacheable;
	const char *rate_limit_class;
	bool		authenticated;
	const char *query_params;	/* query_params::text, a JSON object */
	int			rate_limit_requests;	/* iam.rate_limit_classes; 0: none */
	int			rate_limit_seconds;
	bool		issues_token;
} RouteRow;

/*
 * routes_table_build compiles rows into a table of generation generation
 * with one reference, which the caller gives up with routes_table_release.
 * A row that does not compile (bad template, bad handler name, bad query
 * declaration, duplicate method and path) is left out and logged; *skipped
 * (when not NULL) counts those.  Returns NULL only when out of memory.
 */
extern RouteTable *routes_table_build(const RouteRow *rows, int n,
									  uint64_t generation, int *skipped);

/* routes_table_retain adds a reference to t and returns t. */
extern RouteTable *routes_table_retain(RouteTable *t);

/* routes_table_release drops a reference; the last one frees t.  t may be NULL. */
extern void routes_table_release(RouteTable *t);

extern uint64_t routes_table_generation(const RouteTable *t);
extern int	routes_table_size(const RouteTable *t);
extern const Route *routes_table_route(const RouteTable *t, int i);

typedef enum RouteMatch
{
	ROUTE_FOUND,
	ROUTE_NOT_FOUND,			/* no template matches (or a typed segment is malformed) */
	ROUTE_METHOD_NOT_ALLOWED	/* the path matches, with other methods only */
} RouteMatch;

/*
 * routes_match finds the route for method (HEAD counts as GET) and path
 * (the part after /api/v1, starting with '/').  Templates are ordered
 * segment by segment, a literal before a typed segment, uuid and int before
 * text; the first template matching the path decides.  On ROUTE_FOUND
 * *route is set (valid while t is held) and the typed path parameters are
 * added to params (uuid lower-cased, int as a JSON integer).  On
 * ROUTE_METHOD_NOT_ALLOWED allow receives "GET, HEAD, PATCH"-style text
 * (always NUL-terminated within allow_size).  params is the caller's.
 */
extern RouteMatch routes_match(const RouteTable *t, const char *method,
							   const char *path, const Route **route,
							   json_t *params, char *allow, size_t allow_size);

/*
 * routes_allow writes the methods allowed on path (as for a 405) into
 * allow; returns false when no template matches path.
 */
extern bool routes_allow(const RouteTable *t, const char *path, char *allow,
						 size_t allow_size);

/*
 * routes_query_param checks one query parameter (key, value as decoded by
 * libmicrohttpd; value NULL when there was no '=') against route's
 * declaration and adds it to params, typed.  Returns 0, or -1 with a
 * client-safe sentence in detail[detail_size] when the parameter is
 * unknown, repeated (already in params) or malformed.
 */
extern int	routes_query_param(const Route *route, json_t *params,
							   const char *key, const char *value,
							   char *detail, size_t detail_size);

/* Value checks, exported for the tests. */
extern bool routes_is_uuid(const char *s);
extern bool routes_is_timestamptz(const char *s);

/*
 * The loader: a thread with its own PostgreSQL connection that LISTENs on
 * iam_routes and rebuilds the table after every notification (and after
 * every reconnection, which may have missed one).
 */
typedef struct Routes Routes;

/*
 * routes_start tries one load at once (so a gateway started with the
 * database up serves routes from its first request) and starts the loader
 * thread, which retries when that load failed.  conninfo is copied.
 * Returns NULL when out of memory or when the thread cannot start.
 */
extern Routes *routes_start(const char *conninfo);

/*
 * routes_current returns the current table with a reference the caller
 * releases with routes_table_release, or NULL when none has loaded yet.
 */
extern RouteTable *routes_current(Routes *r);

/* routes_stop ends the loader thread (within about a second) and frees r. */
extern void routes_stop(Routes *r);

/*
 * routes_openapi_get / routes_openapi_set: the /openapi.json document
 * cached with a table.  get returns a malloc'd copy (caller frees) or NULL;
 * set copies doc.
 */
extern char *routes_openapi_get(RouteTable *t, size_t *len);
extern void routes_openapi_set(RouteTable *t, const char *doc, size_t len);

#endif							/* ROUTES_H */
