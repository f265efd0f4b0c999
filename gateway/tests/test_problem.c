/*
 * test_problem.c
 *		Unit tests for problem_body: the RFC 9457 shape every error has.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "problem.h"
#include "tap.h"

static const char *const members[] = {
	"type", "title", "status", "detail", "code", "request_id"
};

/* parse returns the object in body when it has exactly the six members. */
static json_t *
parse_six(const char *body)
{
	json_error_t jerr;
	json_t	   *obj = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);

	if (obj == NULL || !json_is_object(obj) || json_object_size(obj) != 6)
	{
		json_decref(obj);
		return NULL;
	}
	for (size_t i = 0; i < 6; i++)
	{
		json_t	   *v = json_object_get(obj, members[i]);

		if (v == NULL ||
			(i == 2 ? !json_is_integer(v) : !json_is_string(v)))
		{
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

static const char *
str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool
no_raw_control_bytes(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char) *s < 0x20)
			return false;
	return true;
}

int
main(void)
{
	char	   *body;
	json_t	   *obj;
	const char *nasty = "he said \"no\"\n\tthen \\left\x01\x1f</script>";

	/* a plain 404 */
	body = problem_body(&(Problem) {.status = 404,.code = "not_found",
						.detail = "There is no resource at this path."}, "req-1");
	obj = body != NULL ? parse_six(body) : NULL;
	tap_ok(obj != NULL, "404 body is JSON with exactly the six members");
	tap_ok(body != NULL && strncmp(body, "{\"type\":", 8) == 0,
		   "members come in the documented order, type first");
	if (obj != NULL)
	{
		tap_ok(json_integer_value(json_object_get(obj, "status")) == 404,
			   "status member matches");
		tap_ok(strcmp(str(obj, "type"), "urn:problem:iam:not-found") == 0,
			   "type is urn:problem:iam:not-found");
		tap_ok(strcmp(str(obj, "title"), "Not Found") == 0,
			   "title defaults to the reason phrase");
		tap_ok(strcmp(str(obj, "code"), "not_found") == 0, "code kept as given");
		tap_ok(strcmp(str(obj, "request_id"), "req-1") == 0,
			   "request_id is the request's id");
		tap_ok(strcmp(str(obj, "detail"), "There is no resource at this path.") == 0,
			   "detail kept as given");
	}
	json_decref(obj);
	free(body);

	/* 503 with Retry-After and Allow: those are headers, not members */
	body = problem_body(&(Problem) {.status = 503,.code = "database_unavailable",
						.retry_after = 1,.allow = "GET, HEAD"}, "r");
	obj = body != NULL ? parse_six(body) : NULL;
	tap_ok(obj != NULL, "503 body has exactly the six members");
	if (obj != NULL)
	{
		tap_ok(json_integer_value(json_object_get(obj, "status")) == 503,
			   "503 status matches");
		tap_ok(strcmp(str(obj, "type"), "urn:problem:iam:database-unavailable") == 0,
			   "type slug turns _ into -");
		tap_ok(strcmp(str(obj, "detail"), "Service Unavailable") == 0,
			   "missing detail falls back to the title");
	}
	tap_ok(body != NULL && strstr(body, "GET, HEAD") == NULL &&
		   strstr(body, "etry") == NULL,
		   "Allow and Retry-After do not leak into the body");
	json_decref(obj);
	free(body);

	/* hostile detail: quotes, backslash, control characters */
	body = problem_body(&(Problem) {.status = 400,.code = "bad_input",
						.detail = nasty}, "r");
	obj = body != NULL ? parse_six(body) : NULL;
	tap_ok(obj != NULL, "detail with quotes and control characters gives valid JSON");
	tap_ok(obj != NULL && strcmp(str(obj, "detail"), nasty) == 0,
		   "detail round-trips exactly");
	tap_ok(body != NULL && no_raw_control_bytes(body),
		   "no raw control bytes in the body");
	tap_ok(body != NULL && strstr(body, "</script>") != NULL &&
		   strstr(body, "\\\"no\\\"") != NULL,
		   "quotes are escaped as \\\"");
	json_decref(obj);
	free(body);

	/* invalid UTF-8 cannot break the body */
	body = problem_body(&(Problem) {.status = 422,.code = "invalid",
						.title = "bad \xff title",.detail = "bad \xc3 detail"}, "r");
	obj = body != NULL ? parse_six(body) : NULL;
	tap_ok(obj != NULL, "invalid UTF-8 in title/detail still gives valid JSON");
	tap_ok(obj != NULL && strcmp(str(obj, "detail"), "Unprocessable Content") == 0 &&
		   strcmp(str(obj, "title"), "Unprocessable Content") == 0,
		   "invalid UTF-8 is replaced by the reason phrase");
	json_decref(obj);
	free(body);

	/* codes that are SQLSTATEs or odd strings keep a well-formed URN */
	body = problem_body(&(Problem) {.status = 403,.code = "42501"}, "r");
	obj = body != NULL ? parse_six(body) : NULL;
	tap_ok(obj != NULL && strcmp(str(obj, "type"), "urn:problem:iam:42501") == 0 &&
		   strcmp(str(obj, "code"), "42501") == 0,
		   "SQLSTATE code gives urn:problem:iam:42501");
	json_decref(obj);
	free(body);

	body = problem_body(&(Problem) {.status = 400,.code = "Bad Code/../\"x"}, "r");
	obj = body != NULL ? parse_six(body) : NULL;
	tap_ok(obj != NULL && strcmp(str(obj, "type"), "urn:problem:iam:bad-code-----x") == 0,
		   "odd code characters become - in the type");
	json_decref(obj);
	free(body);

	/* a missing request id is an empty string, never "(null)" */
	body = problem_body(&(Problem) {.status = 500,.code = "internal"}, NULL);
	obj = body != NULL ? parse_six(body) : NULL;
	tap_ok(obj != NULL && strcmp(str(obj, "request_id"), "") == 0 &&
		   strstr(body, "null") == NULL,
		   "NULL request id gives \"\"");
	json_decref(obj);
	free(body);

	return tap_done();
}
