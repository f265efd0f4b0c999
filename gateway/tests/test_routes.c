/*
 * test_routes.c
 *		Unit tests for the route table: template compilation, precedence,
 *		404 / 405 + Allow, typed path parameters, query parameters.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "routes.h"
#include "tap.h"

#define ROW(m, p, h, q) {.method = m, .path = p, .handler = h, .read_only = true, .rate_limit_class = "default", .authenticated = true, .query_params = q, .rate_limit_requests = 600, .rate_limit_seconds = 60}

static const RouteRow rows[] = {
	ROW("GET", "/users", "iam.api_users_list",
		"{\"q\":\"text\",\"limit\":\"int\",\"is_active\":\"bool\","
		"\"created_after\":\"timestamptz\",\"sort\":\"enum:created_at,name,email\","
		"\"role\":\"text\",\"department_id\":\"uuid\"}"),
	ROW("POST", "/users", "iam.api_users_create", "{}"),
	ROW("GET", "/users/{id:uuid}", "iam.api_users_get", "{}"),
	ROW("PATCH", "/users/{id:uuid}", "iam.api_users_patch", "{}"),
	ROW("DELETE", "/users/{id:uuid}", "iam.api_users_delete", "{}"),
	ROW("GET", "/users/me", "iam.api_users_me", "{}"),
	ROW("DELETE", "/users/{id:uuid}/roles/{role:text}", "iam.api_users_revoke_role", "{}"),
	ROW("GET", "/jobs/{id:int}", "iam.api_jobs_get", "{}"),
	ROW("GET", "/things/{name:text}", "iam.api_things_by_name", "{}"),
	ROW("GET", "/things/{n:int}", "iam.api_things_by_number", "{}"),
	ROW("GET", "/things/special", "iam.api_things_special", "{}"),
	ROW("GET", "/audit-logs/verify", "api_audit_verify", NULL),
	/* bad declarations: ignored */
	ROW("GET", "/bad/{id:float}", "iam.api_x", "{}"),
	ROW("GET", "/Bad", "iam.api_x", "{}"),
	ROW("GET", "/bad//x", "iam.api_x", "{}"),
	ROW("GET", "/bad2", "iam.api_x; DROP TABLE iam.users", "{}"),
	ROW("GET", "/bad3", "\"Iam\".x", "{}"),
	ROW("GET", "/bad4", "12345", "{}"),
	ROW("OPTIONS", "/bad5", "iam.api_x", "{}"),
	ROW("GET", "/bad6", "iam.api_x", "{\"a\":\"float\"}"),
	ROW("GET", "/bad7", "iam.api_x", "[1]"),
	ROW("GET", "/bad8/{a:uuid}/{a:int}", "iam.api_x", "{}"),
	ROW("GET", "/users", "iam.api_users_list_again", "{}"),	/* duplicate */
};

static RouteTable *t;

/* match returns the handler of the route found, or "404" / "405:<allow>". */
static const char *
match(const char *method, const char *path, json_t **params_out)
{
	static char out[256];
	const Route *r;
	char		allow[128];
	json_t	   *params = json_object();
	RouteMatch	m = routes_match(t, method, path, &r, params, allow, sizeof(allow));

	if (m == ROUTE_FOUND)
		snprintf(out, sizeof(out), "%s", r->handler);
	else if (m == ROUTE_NOT_FOUND)
		snprintf(out, sizeof(out), "404");
	else
		snprintf(out, sizeof(out), "405:%s", allow);
	if (params_out != NULL)
		*params_out = params;
	else
		json_decref(params);
	return out;
}

static void
expect_match(const char *method, const char *path, const char *want)
{
	const char *got = match(method, path, NULL);

	if (!tap_ok(strcmp(got, want) == 0, "%s %s -> %s", method, path, want))
		tap_diag("got %s", got);
}

/* params_text returns the compact JSON of the params of a match (static). */
static const char *
params_text(const char *method, const char *path)
{
	static char out[512];
	json_t	   *params;
	char	   *s;

	match(method, path, &params);
	s = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
	snprintf(out, sizeof(out), "%s", s);
	free(s);
	json_decref(params);
	return out;
}

/* query runs one parameter through routes_query_param on GET /users. */
static int
query(json_t *params, const char *key, const char *value, char *detail)
{
	const Route *r;
	char		allow[64];
	json_t	   *ignored = json_object();

	routes_match(t, "GET", "/users", &r, ignored, allow, sizeof(allow));
	json_decref(ignored);
	return routes_query_param(r, params, key, value, detail, 256);
}

static void
query_ok(const char *key, const char *value, const char *want_json)
{
	json_t	   *params = json_object();
	char		detail[256] = "";
	char	   *s;
	int			rc = query(params, key, value, detail);

	s = json_dumps(json_object_get(params, key), JSON_ENCODE_ANY | JSON_COMPACT);
	tap_ok(rc == 0 && s != NULL && strcmp(s, want_json) == 0, "?%s=%s -> %s", key, value, want_json);
	if (rc != 0 || s == NULL || strcmp(s, want_json) != 0)
		tap_diag("rc %d, got %s, detail %s", rc, s != NULL ? s : "(none)", detail);
	free(s);
	json_decref(params);
}

static void
query_bad(const char *key, const char *value, const char *want_in_detail)
{
	json_t	   *params = json_object();
	char		detail[256] = "";
	int			rc = query(params, key, value, detail);

	tap_ok(rc == -1 && strstr(detail, want_in_detail) != NULL && json_object_size(params) == 0,
		   "?%s=%s refused (%s)", key, value != NULL ? value : "(no =)", want_in_detail);
	if (strstr(detail, want_in_detail) == NULL)
		tap_diag("detail: %s", detail);
	json_decref(params);
}

int
main(void)
{
	int			skipped = -1;
	const char *uuid = "0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b";
	json_t	   *params;
	char		detail[256];
	const Route *r;
	char		allow[128];

	t = routes_table_build(rows, (int) (sizeof(rows) / sizeof(rows[0])), 7, &skipped);
	tap_ok(t != NULL, "table builds");
	tap_ok(skipped == 11, "the 11 bad or duplicate declarations are left out (got %d)", skipped);
	tap_ok(routes_table_size(t) == 12, "12 routes remain");
	tap_ok(routes_table_generation(t) == 7, "generation kept");

	/* templates and labels */
	match("GET", "/users/me", NULL);
	routes_match(t, "GET", "/users/" "0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b", &r,
				 NULL, allow, sizeof(allow));
	tap_ok(r != NULL && strcmp(r->label, "GET /users/{id}") == 0, "label strips types: %s",
		   r != NULL ? r->label : "");
	tap_ok(r != NULL && strcmp(r->sql, "SELECT status, body, headers FROM iam.api_users_get($1::jsonb, $2::jsonb)") == 0,
		   "handler SQL from the declared name");
	tap_ok(r != NULL && r->read_only && r->authenticated, "flags kept");

	/* matching and precedence */
	expect_match("GET", "/users", "iam.api_users_list");
	expect_match("POST", "/users", "iam.api_users_create");
	expect_match("GET", "/users/me", "iam.api_users_me");
	expect_match("HEAD", "/users/me", "iam.api_users_me");
	expect_match("PATCH", "/users/me", "405:GET, HEAD");
	expect_match("GET", "/users/0B7E2F36-3A1D-4C49-9E4B-2F1E5D6C7A8B", "iam.api_users_get");
	expect_match("PATCH", "/users/0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b", "iam.api_users_patch");
	expect_match("PUT", "/users/0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b", "405:GET, HEAD, PATCH, DELETE");
	expect_match("DELETE", "/users", "405:GET, HEAD, POST");
	expect_match("GET", "/users/not-a-uuid", "404");
	expect_match("GET", "/users/0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8", "404");
	expect_match("GET", "/users/0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8bb", "404");
	expect_match("GET", "/users/0b7e2f363a1d4c499e4b2f1e5d6c7a8b", "404");
	expect_match("GET", "/users/'; DROP TABLE iam.users; --", "404");
	expect_match("GET", "/users/", "404");
	expect_match("GET", "/users//me", "404");
	expect_match("GET", "/", "404");
	expect_match("GET", "", "404");
	expect_match("GET", "/nope", "404");
	expect_match("GET", "/USERS", "404");
	expect_match("DELETE", "/users/0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b/roles/auditor",
				 "iam.api_users_revoke_role");
	expect_match("GET", "/users/0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b/roles/auditor",
				 "405:DELETE");
	expect_match("GET", "/jobs/42", "iam.api_jobs_get");
	expect_match("GET", "/jobs/-1", "404");
	expect_match("GET", "/jobs/12345678901", "404");
	expect_match("GET", "/jobs/1e3", "404");
	expect_match("GET", "/things/special", "iam.api_things_special");
	expect_match("GET", "/things/12", "iam.api_things_by_number");
	expect_match("GET", "/things/widget", "iam.api_things_by_name");
	expect_match("POST", "/things/special", "405:GET, HEAD");
	expect_match("GET", "/audit-logs/verify", "api_audit_verify");
	expect_match("GET", "/bad6", "404");

	/* typed path parameters */
	tap_ok(strcmp(params_text("GET", "/users/0B7E2F36-3A1D-4C49-9E4B-2F1E5D6C7A8B"),
				  "{\"id\":\"0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b\"}") == 0,
		   "uuid parameter is lower-cased");
	tap_ok(strcmp(params_text("GET", "/jobs/0042"), "{\"id\":42}") == 0, "int parameter is a number");
	tap_ok(strcmp(params_text("DELETE", "/users/0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b/roles/auditor"),
				  "{\"id\":\"0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b\",\"role\":\"auditor\"}") == 0,
		   "two parameters");
	tap_ok(strcmp(params_text("GET", "/things/J\xc3\xbcrgen"), "{\"name\":\"J\xc3\xbcrgen\"}") == 0,
		   "text parameter keeps UTF-8");
	expect_match("GET", "/things/bad\xff", "404");
	expect_match("GET", "/things/a\x01" "b", "404");
	{
		char		longseg[260] = "/things/";

		memset(longseg + 8, 'x', 200);
		longseg[208] = '\0';
		expect_match("GET", longseg, "iam.api_things_by_name");
		strcat(longseg, "x");
		expect_match("GET", longseg, "404");
	}
	tap_ok(routes_allow(t, "/users", allow, sizeof(allow)) && strcmp(allow, "GET, HEAD, POST") == 0,
		   "routes_allow lists a path's methods");
	tap_ok(!routes_allow(t, "/nope", allow, sizeof(allow)), "routes_allow: unknown path");

	/* query parameters */
	query_ok("q", "ann", "\"ann\"");
	query_ok("q", "", "\"\"");
	query_ok("q", "' OR 1=1 --", "\"' OR 1=1 --\"");
	query_ok("limit", "50", "50");
	query_ok("limit", "0", "0");
	query_ok("is_active", "true", "true");
	query_ok("is_active", "false", "false");
	query_ok("created_after", "2026-01-02T03:04:05Z", "\"2026-01-02T03:04:05Z\"");
	query_ok("created_after", "2026-01-02T03:04:05.123456+02:00", "\"2026-01-02T03:04:05.123456+02:00\"");
	query_ok("created_after", "2024-02-29T00:00:00-05:30", "\"2024-02-29T00:00:00-05:30\"");
	query_ok("sort", "email", "\"email\"");
	query_ok("department_id", "0B7E2F36-3A1D-4C49-9E4B-2F1E5D6C7A8B", "\"0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8b\"");
	query_bad("nope", "1", "Unknown query parameter \"nope\"");
	query_bad("x'; --", "1", "Unknown query parameter.");
	query_bad("limit", "-1", "non-negative integer");
	query_bad("limit", "12345678901", "non-negative integer");
	query_bad("limit", "ten", "non-negative integer");
	query_bad("limit", "1 OR 1=1", "non-negative integer");
	query_bad("limit", NULL, "non-negative integer");
	query_bad("is_active", "yes", "true or false");
	query_bad("is_active", "TRUE", "true or false");
	query_bad("created_after", "2026-01-02", "RFC 3339");
	query_bad("created_after", "2026-13-02T03:04:05Z", "RFC 3339");
	query_bad("created_after", "2023-02-29T03:04:05Z", "RFC 3339");
	query_bad("created_after", "2026-01-02T03:04:05", "RFC 3339");
	query_bad("created_after", "2026-01-02T03:04:05+0200", "RFC 3339");
	query_bad("created_after", "2026-01-02T24:04:05Z", "RFC 3339");
	query_bad("created_after", "2026-01-02T03:04:05.Z", "RFC 3339");
	query_bad("created_after", "now", "RFC 3339");
	query_bad("sort", "password_hash", "one of: created_at, name, email");
	query_bad("sort", "", "one of");
	query_bad("department_id", "42", "UUID");
	{
		char		big[600];

		memset(big, 'a', 501);
		big[501] = '\0';
		query_bad("q", big, "at most 500");
		big[500] = '\0';
		{
			char		want[620];

			snprintf(want, sizeof(want), "\"%s\"", big);
			query_ok("q", big, want);
		}
	}
	query_bad("q", "bad\xff", "at most 500");

	/* repeated parameter */
	params = json_object();
	tap_ok(query(params, "limit", "5", detail) == 0 && query(params, "limit", "6", detail) == -1 &&
		   strstr(detail, "more than once") != NULL &&
		   json_integer_value(json_object_get(params, "limit")) == 5,
		   "a repeated parameter is refused and the first value kept");
	json_decref(params);

	tap_ok(routes_is_uuid(uuid) && !routes_is_uuid("") && !routes_is_uuid("0b7e2f36-3a1d-4c49-9e4b-2f1e5d6c7a8g"),
		   "routes_is_uuid");
	tap_ok(routes_is_timestamptz("1999-12-31t23:59:60z") && !routes_is_timestamptz("1999-12-31 23:59:59Z"),
		   "routes_is_timestamptz: lower-case t/z and leap second accepted, space refused");

	/* references: the table outlives its last user */
	routes_table_retain(t);
	routes_table_release(t);
	tap_ok(routes_table_size(t) == 12, "a retained table survives one release");
	routes_openapi_set(t, "{\"openapi\":\"3.1.0\"}", 19);
	{
		size_t		len = 0;
		char	   *doc = routes_openapi_get(t, &len);

		tap_ok(doc != NULL && len == 19 && strcmp(doc, "{\"openapi\":\"3.1.0\"}") == 0,
			   "the OpenAPI document is cached with the table");
		free(doc);
	}
	routes_table_release(t);
	return tap_done();
}
