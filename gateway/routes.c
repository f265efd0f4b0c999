/*
 * routes.c
 *		The API route table: compiled from iam.routes, matched per request,
 *		reloaded on NOTIFY iam_routes.  The loader's connection also polls
 *		the response cache's versions (cache_versions_poll).
 *
 * A table is immutable once built.  The loader builds a new one and swaps
 * the pointer under a mutex; each request takes a reference (an atomic
 * count) for as long as it uses a Route, so a reload never frees a table
 * under a running request.  Identifiers (handler names) only ever come from
 * the declarations, and are checked to be plain names before they are
 * spliced into the handler's SQL; values travel as parameters.
 */
#include "routes.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "accesslog.h"
#include "cache.h"
#include "db.h"
#include "json_body.h"

#define ROUTE_PATH_TEXT_MAX		200
#define ROUTE_QUERY_TEXT_MAX	500
#define ROUTE_MAX_SEGMENTS		16
#define LOADER_POLL_MS			250
#define LOADER_RETRY_MS			1000

struct RouteTable
{
	atomic_int	refs;
	uint64_t	generation;
	Route	   *routes;			/* sorted by precedence, then method */
	int			n;
	pthread_mutex_t openapi_lock;	/* guards openapi */
	char	   *openapi;
	size_t		openapi_len;
};

struct Routes
{
	pthread_mutex_t lock;		/* guards current */
	RouteTable *current;
	char	   *conninfo;		/* secret */
	pthread_t	thread;
	atomic_bool stop;
	uint64_t	generation;		/* loader thread only (and routes_start) */
	bool		failing;		/* loader: last load failed (log once) */
	PGconn	   *conn;			/* loader's connection: LISTEN, cache polls */
	int64_t		next_cache_poll;	/* loader: when to poll cache versions (ms) */
};

/* ---- table building ---- */

static void
param_free(RouteParam *p)
{
	free(p->name);
	for (int i = 0; i < p->n_values; i++)
		free(p->values[i]);
	free(p->values);
}

static void
route_free(Route *r)
{
	free(r->path);
	free(r->label);
	free(r->handler);
	free(r->sql);
	free(r->rate_limit_class);
	for (int i = 0; i < r->n_segments; i++)
	{
		free(r->segments[i].literal);
		param_free(&r->segments[i].param);
	}
	free(r->segments);
	for (int i = 0; i < r->n_query; i++)
		param_free(&r->query[i]);
	free(r->query);
}

static bool
is_name(const char *s, size_t len)
{
	if (len == 0 || len > 63 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* is_handler_name accepts name or schema.name, lower-case identifiers only. */
static bool
is_handler_name(const char *s)
{
	const char *dot = strchr(s, '.');

	if (dot == NULL)
		return is_name(s, strlen(s));
	return is_name(s, (size_t) (dot - s)) && is_name(dot + 1, strlen(dot + 1));
}

static bool
is_literal(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/*
 * parse_type reads a declared type.  Path segments allow uuid, int and text;
 * query parameters also bool, timestamptz and enum:a,b,c.
 */
static int
parse_type(const char *s, bool query, RouteParam *p)
{
	if (strcmp(s, "uuid") == 0)
		p->type = ROUTE_UUID;
	else if (strcmp(s, "int") == 0)
		p->type = ROUTE_INT;
	else if (strcmp(s, "text") == 0)
		p->type = ROUTE_TEXT;
	else if (query && strcmp(s, "bool") == 0)
		p->type = ROUTE_BOOL;
	else if (query && strcmp(s, "timestamptz") == 0)
		p->type = ROUTE_TIMESTAMPTZ;
	else if (query && strncmp(s, "enum:", 5) == 0)
	{
		const char *w = s + 5;

		p->type = ROUTE_ENUM;
		while (*w != '\0')
		{
			size_t		len = strcspn(w, ",");
			char	  **grown;

			if (len == 0 || len > 63)
				return -1;
			for (size_t i = 0; i < len; i++)
				if (!((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= '0' && w[i] <= '9') ||
					  w[i] == '_' || w[i] == '-' || w[i] == '.'))
					return -1;
			grown = realloc(p->values, sizeof(char *) * (size_t) (p->n_values + 1));
			if (grown == NULL)
				return -1;
			p->values = grown;
			if ((p->values[p->n_values] = strndup(w, len)) == NULL)
				return -1;
			p->n_values++;
			w += len;
			if (*w == ',')
			{
				w++;
				if (*w == '\0')
					return -1;
			}
		}
		if (p->n_values == 0)
			return -1;
	}
	else
		return -1;
	return 0;
}

/*
 * compile_path splits a template like /users/{id:uuid}/roles into segments
 * and writes its label form (/users/{id}/roles) into label.
 */
static int
compile_path(Route *r, const char *path, char *label, size_t label_size)
{
	const char *p = path;
	size_t		lo = 0;

	if (path[0] != '/' || path[1] == '\0')
		return -1;
	r->segments = calloc(ROUTE_MAX_SEGMENTS, sizeof(RouteSegment));
	if (r->segments == NULL)
		return -1;
	label[0] = '\0';
	while (*p == '/')
	{
		const char *seg = p + 1;
		size_t		len = strcspn(seg, "/");
		RouteSegment *s;

		if (r->n_segments == ROUTE_MAX_SEGMENTS || len == 0)
			return -1;
		s = &r->segments[r->n_segments++];
		if (seg[0] == '{')
		{
			const char *colon = memchr(seg, ':', len);
			char		type[128];

			if (seg[len - 1] != '}' || colon == NULL ||
				!is_name(seg + 1, (size_t) (colon - seg - 1)) ||
				(size_t) (seg + len - 1 - colon - 1) >= sizeof(type))
				return -1;
			memcpy(type, colon + 1, (size_t) (seg + len - 1 - colon - 1));
			type[seg + len - 1 - colon - 1] = '\0';
			if ((s->param.name = strndup(seg + 1, (size_t) (colon - seg - 1))) == NULL ||
				parse_type(type, false, &s->param) != 0)
				return -1;
			for (int i = 0; i < r->n_segments - 1; i++)
				if (r->segments[i].literal == NULL &&
					strcmp(r->segments[i].param.name, s->param.name) == 0)
					return -1;	/* two parameters of one name */
			lo += (size_t) snprintf(label + lo, lo < label_size ? label_size - lo : 0,
									"/{%s}", s->param.name);
		}
		else
		{
			if (!is_literal(seg, len) || (s->literal = strndup(seg, len)) == NULL)
				return -1;
			lo += (size_t) snprintf(label + lo, lo < label_size ? label_size - lo : 0,
									"/%s", s->literal);
		}
		p = seg + len;
	}
	return *p == '\0' && lo < label_size ? 0 : -1;
}

/* compile_query reads query_params, a JSON object {"name": "type", ...}. */
static int
compile_query(Route *r, const char *text)
{
	json_error_t jerr;
	json_t	   *obj;
	const char *key;
	json_t	   *v;
	int			rc = 0;

	if (text == NULL || text[0] == '\0')
		return 0;
	obj = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL || !json_is_object(obj))
	{
		json_decref(obj);
		return -1;
	}
	if (json_object_size(obj) > 0 &&
		(r->query = calloc(json_object_size(obj), sizeof(RouteParam))) == NULL)
		rc = -1;
	json_object_foreach(obj, key, v)
	{
		RouteParam *p;

		if (rc != 0)
			break;
		p = &r->query[r->n_query++];
		if (!is_name(key, strlen(key)) || !json_is_string(v) ||
			(p->name = strdup(key)) == NULL ||
			parse_type(json_string_value(v), true, p) != 0)
			rc = -1;
	}
	json_decref(obj);
	return rc;
}

static int
compile_route(Route *r, const RouteRow *row)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
	char		label[1024];
	bool		known = false;

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		known = known || (row->method != NULL && strcmp(row->method, methods[i]) == 0);
	if (!known || row->path == NULL || row->handler == NULL ||
		!is_handler_name(row->handler))
		return -1;
	strcpy(r->method, row->method);
	r->read_only = row->read_only;
	r->cacheable = row->cacheable;
	r->authenticated = row->authenticated;
	r->rate_limit_requests = row->rate_limit_requests;
	r->rate_limit_seconds = row->rate_limit_seconds;
	r->issues_token = row->issues_token;
	if ((r->path = strdup(row->path)) == NULL ||
		(r->handler = strdup(row->handler)) == NULL ||
		(r->rate_limit_class = strdup(row->rate_limit_class != NULL ?
									  row->rate_limit_class : "default")) == NULL ||
		compile_path(r, row->path, label, sizeof(label)) != 0 ||
		compile_query(r, row->query_params) != 0 ||
		asprintf(&r->label, "%s %s", r->method, label) < 0 ||
		asprintf(&r->sql, "SELECT status, body, headers FROM %s($1::jsonb, $2::jsonb)",
				 r->handler) < 0)
	{
		/* asprintf leaves its pointer undefined on failure */
		return -1;
	}
	return 0;
}

/* segment_rank: literal 0, uuid/int 1, text 2. */
static int
segment_rank(const RouteSegment *s)
{
	if (s->literal != NULL)
		return 0;
	return s->param.type == ROUTE_TEXT ? 2 : 1;
}

/* route_cmp orders by precedence, then template text, then method. */
static int
route_cmp(const void *a, const void *b)
{
	const Route *x = a;
	const Route *y = b;
	int			n = x->n_segments < y->n_segments ? x->n_segments : y->n_segments;
	int			c;

	for (int i = 0; i < n; i++)
	{
		int			rx = segment_rank(&x->segments[i]);
		int			ry = segment_rank(&y->segments[i]);

		if (rx != ry)
			return rx - ry;
		if (rx == 0 && (c = strcmp(x->segments[i].literal, y->segments[i].literal)) != 0)
			return c;
	}
	if (x->n_segments != y->n_segments)
		return x->n_segments - y->n_segments;
	if ((c = strcmp(x->path, y->path)) != 0)
		return c;
	return strcmp(x->method, y->method);
}

RouteTable *
routes_table_build(const RouteRow *rows, int n, uint64_t generation,
				   int *skipped)
{
	RouteTable *t = calloc(1, sizeof(RouteTable));
	int			bad = 0;

	if (t == NULL)
		return NULL;
	if (n > 0 && (t->routes = calloc((size_t) n, sizeof(Route))) == NULL)
	{
		free(t);
		return NULL;
	}
	atomic_init(&t->refs, 1);
	t->generation = generation;
	pthread_mutex_init(&t->openapi_lock, NULL);
	for (int i = 0; i < n; i++)
	{
		Route	   *r = &t->routes[t->n];
		bool		dup = false;

		memset(r, 0, sizeof(*r));
		if (compile_route(r, &rows[i]) == 0)
		{
			for (int k = 0; k < t->n && !dup; k++)
				dup = strcmp(t->routes[k].method, r->method) == 0 &&
					strcmp(t->routes[k].path, r->path) == 0;
			if (!dup)
			{
				t->n++;
				continue;
			}
		}
		bad++;
		accesslog_event("warn", "route declaration ignored",
						"method", rows[i].method, "path", rows[i].path,
						"handler", rows[i].handler,
						"detail", dup ? "duplicate method and path" :
						"bad method, path template, handler name or query_params", NULL);
		route_free(r);
		memset(r, 0, sizeof(*r));
	}
	qsort(t->routes, (size_t) t->n, sizeof(Route), route_cmp);
	for (int i = 0; i < t->n; i++)
		t->routes[i].index = i;
	if (skipped != NULL)
		*skipped = bad;
	return t;
}

RouteTable *
routes_table_retain(RouteTable *t)
{
	atomic_fetch_add(&t->refs, 1);
	return t;
}

void
routes_table_release(RouteTable *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	for (int i = 0; i < t->n; i++)
		route_free(&t->routes[i]);
	free(t->routes);
	pthread_mutex_destroy(&t->openapi_lock);
	free(t->openapi);
	free(t);
}

uint64_t
routes_table_generation(const RouteTable *t)
{
	return t->generation;
}

int
routes_table_size(const RouteTable *t)
{
	return t->n;
}

const Route *
routes_table_route(const RouteTable *t, int i)
{
	return i >= 0 && i < t->n ? &t->routes[i] : NULL;
}

char *
routes_openapi_get(RouteTable *t, size_t *len)
{
	char	   *copy = NULL;

	pthread_mutex_lock(&t->openapi_lock);
	if (t->openapi != NULL && (copy = malloc(t->openapi_len + 1)) != NULL)
	{
		memcpy(copy, t->openapi, t->openapi_len + 1);
		*len = t->openapi_len;
	}
	pthread_mutex_unlock(&t->openapi_lock);
	return copy;
}

void
routes_openapi_set(RouteTable *t, const char *doc, size_t len)
{
	char	   *copy = malloc(len + 1);

	if (copy == NULL)
		return;
	memcpy(copy, doc, len);
	copy[len] = '\0';
	pthread_mutex_lock(&t->openapi_lock);
	free(t->openapi);
	t->openapi = copy;
	t->openapi_len = len;
	pthread_mutex_unlock(&t->openapi_lock);
}

/* ---- values ---- */

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool
routes_is_uuid(const char *s)
{
	for (int i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!is_hex(s[i]))
			return false;
	}
	return s[36] == '\0';
}

static bool
is_int(const char *s, long long *out)
{
	size_t		len = strlen(s);
	long long	v = 0;

	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* digits reads n decimal digits at s into *v. */
static bool
digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

bool
routes_is_timestamptz(const char *s)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			y,
				mo,
				d,
				h,
				mi,
				sec,
				oh,
				om;
	const char *p;

	/* YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM) */
	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
		s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
		!digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
		s[16] != ':' || !digits(s + 17, 2, &sec))
		return false;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
		mi > 59 || sec > 60)
		return false;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	p = s + 19;
	if (*p == '.')
	{
		int			n = 0;

		for (p++; *p >= '0' && *p <= '9'; p++)
			n++;
		if (n < 1 || n > 9)
			return false;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return true;
	if ((*p != '+' && *p != '-') || strlen(p) != 6 || !digits(p + 1, 2, &oh) ||
		p[3] != ':' || !digits(p + 4, 2, &om))
		return false;
	return oh <= 23 && om <= 59;
}

/*
 * typed_value returns the JSON value of s as type p (a new reference), or
 * NULL when s is malformed.
 */
static json_t *
typed_value(const RouteParam *p, const char *s, bool path)
{
	long long	v;
	char		lower[37];

	switch (p->type)
	{
		case ROUTE_UUID:
			if (!routes_is_uuid(s))
				return NULL;
			for (int i = 0; i < 37; i++)
				lower[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char) (s[i] - 'A' + 'a') : s[i];
			return json_string(lower);
		case ROUTE_INT:
			return is_int(s, &v) ? json_integer(v) : NULL;
		case ROUTE_TEXT:
			{
				size_t		len = strlen(s);

				if ((path && (len == 0 || len > ROUTE_PATH_TEXT_MAX)) ||
					(!path && len > ROUTE_QUERY_TEXT_MAX))
					return NULL;
				for (size_t i = 0; i < len; i++)
					if ((unsigned char) s[i] < 0x20 || s[i] == 0x7F)
						return NULL;
				/* json_string refuses invalid UTF-8 */
				return json_body_utf8_valid(s, len) ? json_string(s) : NULL;
			}
		case ROUTE_BOOL:
			if (strcmp(s, "true") == 0)
				return json_true();
			if (strcmp(s, "false") == 0)
				return json_false();
			return NULL;
		case ROUTE_TIMESTAMPTZ:
			return routes_is_timestamptz(s) ? json_string(s) : NULL;
		case ROUTE_ENUM:
			for (int i = 0; i < p->n_values; i++)
				if (strcmp(s, p->values[i]) == 0)
					return json_string(s);
			return NULL;
	}
	return NULL;
}

/* ---- matching ---- */

/*
 * split_path cuts path into at most ROUTE_MAX_SEGMENTS segments (pointers
 * into buf, a copy).  Returns the count, or -1 when path is not of the form
 * /a/b (empty segments, as in a trailing slash, do not match).
 */
static int
split_path(const char *path, char *buf, size_t size, char **segs)
{
	char	   *p = buf;
	int			n = 0;

	if (path[0] != '/' || strlen(path) >= size)
		return -1;
	strcpy(buf, path + 1);
	for (;;)
	{
		char	   *slash = strchr(p, '/');

		if (n == ROUTE_MAX_SEGMENTS)
			return -1;
		segs[n++] = p;
		if (slash != NULL)
			*slash = '\0';
		if (*p == '\0')
			return -1;
		if (slash == NULL)
			return n;
		p = slash + 1;
	}
}

static bool
template_matches(const Route *r, char **segs, int n, json_t *params)
{
	if (r->n_segments != n)
		return false;
	for (int i = 0; i < n; i++)
	{
		size_t		len = strlen(segs[i]);

		if (r->segments[i].literal != NULL)
		{
			if (strcmp(r->segments[i].literal, segs[i]) != 0)
				return false;
		}
		else
		{
			char		val[ROUTE_PATH_TEXT_MAX + 64];
			json_t	   *v;

			if (len >= sizeof(val))
				return false;
			memcpy(val, segs[i], len);
			val[len] = '\0';
			if ((v = typed_value(&r->segments[i].param, val, true)) == NULL)
				return false;
			if (params != NULL)
				json_object_set_new(params, r->segments[i].param.name, v);
			else
				json_decref(v);
		}
	}
	return true;
}

/* allow_list writes the methods of the routes [from, to) into allow. */
static void
allow_list(const RouteTable *t, int from, int to, char *allow, size_t size)
{
	static const char *const order[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
	size_t		o = 0;

	allow[0] = '\0';
	for (size_t m = 0; m < sizeof(order) / sizeof(order[0]); m++)
		for (int i = from; i < to; i++)
			if (strcmp(t->routes[i].method, order[m]) == 0)
			{
				int			w = snprintf(allow + o, o < size ? size - o : 0, "%s%s%s",
										 o > 0 ? ", " : "", order[m],
										 m == 0 ? ", HEAD" : "");

				if (w > 0 && o + (size_t) w < size)
					o += (size_t) w;
			}
}

/*
 * find_template returns the index of the first route (in precedence order)
 * whose template matches path and sets *end past its last method, or -1.
 */
static int
find_template(const RouteTable *t, const char *path, int *end)
{
	char		buf[2048];
	char	   *segs[ROUTE_MAX_SEGMENTS];
	int			n = split_path(path, buf, sizeof(buf), segs);

	if (n < 0)
		return -1;
	for (int i = 0; i < t->n; i++)
	{
		if (!template_matches(&t->routes[i], segs, n, NULL))
			continue;
		*end = i + 1;
		while (*end < t->n && strcmp(t->routes[*end].path, t->routes[i].path) == 0)
			(*end)++;
		return i;
	}
	return -1;
}

RouteMatch
routes_match(const RouteTable *t, const char *method, const char *path,
			 const Route **route, json_t *params, char *allow, size_t allow_size)
{
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	int			end = 0;
	int			first = find_template(t, path, &end);

	*route = NULL;
	if (allow_size > 0)
		allow[0] = '\0';
	if (first < 0)
		return ROUTE_NOT_FOUND;
	for (int i = first; i < end; i++)
	{
		if (strcmp(t->routes[i].method, m) == 0)
		{
			char		buf[2048];
			char	   *segs[ROUTE_MAX_SEGMENTS];
			int			n = split_path(path, buf, sizeof(buf), segs);

			/* match again, this time collecting the parameters */
			(void) template_matches(&t->routes[i], segs, n, params);
			*route = &t->routes[i];
			return ROUTE_FOUND;
		}
	}
	allow_list(t, first, end, allow, allow_size);
	return ROUTE_METHOD_NOT_ALLOWED;
}

bool
routes_allow(const RouteTable *t, const char *path, char *allow, size_t allow_size)
{
	int			end = 0;
	int			first = find_template(t, path, &end);

	if (first < 0)
		return false;
	allow_list(t, first, end, allow, allow_size);
	return true;
}

int
routes_query_param(const Route *route, json_t *params, const char *key,
				   const char *value, char *detail, size_t detail_size)
{
	const RouteParam *p = NULL;
	json_t	   *v;

	for (int i = 0; i < route->n_query; i++)
		if (strcmp(route->query[i].name, key) == 0)
			p = &route->query[i];
	if (p == NULL)
	{
		/* name the parameter only when it is one of ours, harmless to echo */
		if (is_name(key, strlen(key)))
			snprintf(detail, detail_size, "Unknown query parameter \"%s\".", key);
		else
			snprintf(detail, detail_size, "Unknown query parameter.");
		return -1;
	}
	if (json_object_get(params, p->name) != NULL)
	{
		snprintf(detail, detail_size, "Query parameter \"%s\" is given more than once.", p->name);
		return -1;
	}
	if (value == NULL || (v = typed_value(p, value, false)) == NULL)
	{
		static const char *const names[] = {
			"a UUID", "a non-negative integer of at most 10 digits",
			"text of at most 500 bytes", "true or false",
			"an RFC 3339 timestamp (e.g. 2026-01-02T03:04:05Z)", "one of: "
		};

		if (p->type == ROUTE_ENUM)
		{
			size_t		o = (size_t) snprintf(detail, detail_size,
											  "Query parameter \"%s\" must be one of:", p->name);

			for (int i = 0; i < p->n_values && o < detail_size; i++)
				o += (size_t) snprintf(detail + o, detail_size - o, "%s %s",
									   i > 0 ? "," : "", p->values[i]);
			if (o < detail_size)
				snprintf(detail + o, detail_size - o, ".");
		}
		else
			snprintf(detail, detail_size, "Query parameter \"%s\" must be %s.",
					 p->name, names[p->type]);
		return -1;
	}
	json_object_set_new(params, p->name, v);
	return 0;
}

/* ---- the loader ---- */

static int
load(Routes *r)
{
	static const char sql[] =
		"SELECT r.method, r.path, r.handler::regproc::text, r.read_only, r.cacheable, "
		"r.rate_limit_class, r.authenticated, r.query_params::text, "
		"c.requests, c.per_seconds, r.issues_token "
		"FROM iam.routes r LEFT JOIN iam.rate_limit_classes c ON c.name = r.rate_limit_class "
		"ORDER BY r.method, r.path";
	PGresult   *res = PQexecParams(r->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	RouteRow   *rows = NULL;
	RouteTable *t = NULL;
	RouteTable *old;
	int			n;
	int			skipped = 0;
	char		num[2][24];

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		if (!r->failing)
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

			accesslog_event("warn", "cannot load iam.routes (retrying)",
							"sqlstate", state, "detail", msg != NULL ? msg :
							PQerrorMessage(r->conn), NULL);
		}
		r->failing = true;
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	if (n > 0 && (rows = calloc((size_t) n, sizeof(RouteRow))) == NULL)
	{
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < n; i++)
	{
		rows[i].method = PQgetvalue(res, i, 0);
		rows[i].path = PQgetvalue(res, i, 1);
		rows[i].handler = PQgetvalue(res, i, 2);
		rows[i].read_only = PQgetvalue(res, i, 3)[0] == 't';
		rows[i].cacheable = PQgetvalue(res, i, 4)[0] == 't';
		rows[i].rate_limit_class = PQgetvalue(res, i, 5);
		rows[i].authenticated = PQgetvalue(res, i, 6)[0] == 't';
		rows[i].query_params = PQgetvalue(res, i, 7);
		rows[i].rate_limit_requests = PQgetisnull(res, i, 8) ? 0 : atoi(PQgetvalue(res, i, 8));
		rows[i].rate_limit_seconds = PQgetisnull(res, i, 9) ? 0 : atoi(PQgetvalue(res, i, 9));
		rows[i].issues_token = PQgetvalue(res, i, 10)[0] == 't';
	}
	t = routes_table_build(rows, n, r->generation + 1, &skipped);
	free(rows);
	PQclear(res);
	if (t == NULL)
		return -1;
	r->generation++;
	r->failing = false;
	pthread_mutex_lock(&r->lock);
	old = r->current;
	r->current = t;
	pthread_mutex_unlock(&r->lock);
	routes_table_release(old);
	snprintf(num[0], sizeof(num[0]), "%d", routes_table_size(t));
	snprintf(num[1], sizeof(num[1]), "%llu", (unsigned long long) r->generation);
	accesslog_event("info", "routes loaded", "routes", num[0], "generation", num[1], NULL);
	return 0;
}

static int64_t
loader_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* connect_and_load opens the LISTEN connection and loads; 0 on success. */
static int
connect_and_load(Routes *r)
{
	PGresult   *res;

	if (r->conn == NULL)
	{
		if ((r->conn = db_open(r->conninfo, "iam-gateway routes")) == NULL)
		{
			if (!r->failing)
				accesslog_event("warn", "routes loader cannot connect (retrying)", NULL);
			r->failing = true;
			return -1;
		}
		/* a hung server must not hang the loader (and so shutdown) for long */
		res = PQexec(r->conn, "SET statement_timeout = '5s'; LISTEN iam_routes");
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			PQclear(res);
			PQfinish(r->conn);
			r->conn = NULL;
			return -1;
		}
		PQclear(res);
		/* the response cache's versions (#7), from scratch */
		if (cache_poll_interval_ms() > 0)
			(void) cache_versions_poll(r->conn);
		r->next_cache_poll = loader_now_ms() + cache_poll_interval_ms();
	}
	return load(r);
}

/* nap sleeps ms milliseconds in short steps, returning early on stop. */
static void
nap(Routes *r, int ms)
{
	const struct timespec tick = {0, 50 * 1000000L};

	for (int waited = 0; waited < ms && !atomic_load(&r->stop); waited += 50)
		nanosleep(&tick, NULL);
}

static void *
loader_main(void *arg)
{
	Routes	   *r = arg;
	bool		need_load = r->current == NULL;

	while (!atomic_load(&r->stop))
	{
		struct pollfd pfd;
		PGnotify   *note;
		int			rc;
		int			wait_ms = LOADER_POLL_MS;
		int			cache_ms = cache_poll_interval_ms();

		if (r->conn == NULL || need_load)
		{
			if (connect_and_load(r) != 0)
			{
				/* a failed query on a dead connection: reconnect next time */
				if (r->conn != NULL && PQstatus(r->conn) != CONNECTION_OK)
				{
					PQfinish(r->conn);
					r->conn = NULL;
				}
				if (r->conn == NULL)
					cache_versions_off();	/* changes may be missed */
				need_load = true;
				nap(r, LOADER_RETRY_MS);
				continue;
			}
			need_load = false;
		}

		/*
		 * The response cache's versions (#7): polled every IAM_CACHE_POLL_MS
		 * between notifications; a failed poll on a dead connection
		 * reconnects (cache off meanwhile).
		 */
		if (cache_ms > 0)
		{
			int64_t		now = loader_now_ms();

			if (now >= r->next_cache_poll)
			{
				if (cache_versions_poll(r->conn) != 0 && PQstatus(r->conn) != CONNECTION_OK)
				{
					accesslog_event("warn", "routes loader lost its connection (reconnecting)", NULL);
					PQfinish(r->conn);
					r->conn = NULL;
					cache_versions_off();
					continue;
				}
				now = loader_now_ms();
				r->next_cache_poll = now + cache_ms;
			}
			if (r->next_cache_poll - now < wait_ms)
				wait_ms = (int) (r->next_cache_poll - now);
		}
		pfd.fd = PQsocket(r->conn);
		pfd.events = POLLIN;
		rc = poll(&pfd, 1, wait_ms);
		if (rc < 0 && errno != EINTR)
			need_load = true;
		if (rc > 0 && !PQconsumeInput(r->conn))
		{
			accesslog_event("warn", "routes loader lost its connection (reconnecting)", NULL);
			PQfinish(r->conn);
			r->conn = NULL;
			cache_versions_off();
			continue;
		}
		while ((note = PQnotifies(r->conn)) != NULL)
		{
			need_load = true;
			PQfreemem(note);
		}
	}
	return NULL;
}

Routes *
routes_start(const char *conninfo)
{
	Routes	   *r = calloc(1, sizeof(Routes));

	if (r == NULL)
		return NULL;
	if ((r->conninfo = strdup(conninfo)) == NULL)
	{
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	atomic_init(&r->stop, false);
	(void) connect_and_load(r);
	if (pthread_create(&r->thread, NULL, loader_main, r) != 0)
	{
		if (r->conn != NULL)
			PQfinish(r->conn);
		routes_table_release(r->current);
		free(r->conninfo);
		free(r);
		return NULL;
	}
	return r;
}

RouteTable *
routes_current(Routes *r)
{
	RouteTable *t;

	pthread_mutex_lock(&r->lock);
	t = r->current != NULL ? routes_table_retain(r->current) : NULL;
	pthread_mutex_unlock(&r->lock);
	return t;
}

void
routes_stop(Routes *r)
{
	if (r == NULL)
		return;
	atomic_store(&r->stop, true);
	pthread_join(r->thread, NULL);
	if (r->conn != NULL)
		PQfinish(r->conn);
	routes_table_release(r->current);
	pthread_mutex_destroy(&r->lock);
	explicit_bzero(r->conninfo, strlen(r->conninfo));
	free(r->conninfo);
	free(r);
}
