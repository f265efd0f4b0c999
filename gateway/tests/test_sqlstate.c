/*
 * test_sqlstate.c
 *		Unit tests for sqlstate_map: the documented SQLSTATE -> HTTP table.
 */
#include <string.h>

#include "sqlstate.h"
#include "tap.h"

static void
expect(const char *state, const char *msg, unsigned int status,
	   const char *code, const char *detail, bool retry, int retry_after)
{
	SqlstateMapping m = sqlstate_map(state, msg);

	tap_ok(m.status == status && strcmp(m.code, code) == 0 &&
		   (detail == NULL || strcmp(m.detail, detail) == 0) &&
		   m.retry == retry && m.retry_after == retry_after,
		   "%s -> %u %s%s", state != NULL ? state : "(none)", status, code,
		   retry ? " (retried)" : "");
	if (msg != NULL && detail == NULL)
		tap_ok(strstr(m.detail, msg) == NULL,
			   "%s: the server's message is not shown", state != NULL ? state : "(none)");
}

int
main(void)
{
	char		cls[16];
	const char *leak = "duplicate key value violates unique constraint \"users_email_key\"";

	/* custom codes: message becomes the detail */
	expect("IA400", "bad cursor", 400, "bad_request", "bad cursor", false, 0);
	expect("IA401", "not an active user", 401, "unauthorized", "not an active user", false, 0);
	expect("IA403", "missing permission users.read", 403, "forbidden", "missing permission users.read", false, 0);
	expect("IA404", "user not found", 404, "not_found", "user not found", false, 0);
	expect("IA409", "email already in use", 409, "conflict", "email already in use", false, 0);
	expect("IA412", "etag mismatch", 412, "precondition_failed", "etag mismatch", false, 0);
	expect("IA422", "name: must not be empty", 422, "unprocessable", "name: must not be empty", false, 0);
	expect("IA404", "", 404, "not_found", "The resource does not exist.", false, 0);
	expect("IA404", NULL, 404, "not_found", "The resource does not exist.", false, 0);
	/* an IA code outside the list is an internal error with a generic text */
	expect("IA999", "oops internal", 500, "IA999", NULL, false, 0);

	/* PostgreSQL's own codes: generic details, SQLSTATE kept as code */
	expect("23505", leak, 409, "23505", NULL, false, 0);
	expect("23503", leak, 409, "23503", NULL, false, 0);
	expect("23514", leak, 422, "23514", NULL, false, 0);
	expect("23502", leak, 422, "23502", NULL, false, 0);
	expect("22P02", leak, 422, "22P02", NULL, false, 0);
	expect("22023", leak, 422, "22023", NULL, false, 0);
	expect("42501", leak, 403, "42501", NULL, false, 0);
	expect("P0002", leak, 404, "P0002", NULL, false, 0);
	expect("28000", leak, 401, "28000", NULL, false, 0);
	expect("40001", leak, 503, "40001", NULL, true, 1);
	expect("40P01", leak, 503, "40P01", NULL, true, 1);
	expect("57014", leak, 503, "57014", NULL, false, 0);
	expect("08006", leak, 503, "08006", NULL, false, 1);
	expect("57P01", leak, 503, "57P01", NULL, false, 1);
	expect("42P01", "relation \"iam.secret\" does not exist", 500, "42P01", "internal error", false, 0);
	expect("XX000", leak, 500, "XX000", "internal error", false, 0);
	expect("23000", leak, 500, "23000", "internal error", false, 0);
	expect(NULL, NULL, 503, "database_unavailable", NULL, false, 1);
	expect("bad", "x", 503, "database_unavailable", NULL, false, 1);
	expect("2350", "x", 503, "database_unavailable", NULL, false, 1);

	tap_ok(strcmp(sqlstate_class_label("23505", cls), "23") == 0, "class of 23505 is 23");
	tap_ok(strcmp(sqlstate_class_label("IA404", cls), "IA") == 0, "class of IA404 is IA");
	tap_ok(strcmp(sqlstate_class_label(NULL, cls), "connection") == 0, "no SQLSTATE: connection");
	return tap_done();
}
