/*
 * problem.c
 *		Error replies as RFC 9457 application/problem+json.
 *
 * Every error the gateway sends goes through problem_reply, so the shape of
 * an error is decided in one place: six members, a stable `type` URN derived
 * from the application code, and the request id the client can quote when
 * asking an operator to find the matching log line.
 */
#include "problem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define PROBLEM_TYPE_PREFIX		"urn:problem:iam:"
#define PROBLEM_CODE_MAX		64

/* problem_reason returns the reason phrase of status (RFC 9110). */
static const char *
problem_reason(unsigned int status)
{
	switch (status)
	{
		case 400:
			return "Bad Request";
		case 401:
			return "Unauthorized";
		case 403:
			return "Forbidden";
		case 404:
			return "Not Found";
		case 405:
			return "Method Not Allowed";
		case 409:
			return "Conflict";
		case 412:
			return "Precondition Failed";
		case 413:
			return "Content Too Large";
		case 414:
			return "URI Too Long";
		case 415:
			return "Unsupported Media Type";
		case 422:
			return "Unprocessable Content";
		case 429:
			return "Too Many Requests";
		case 500:
			return "Internal Server Error";
		case 503:
			return "Service Unavailable";
		default:
			return status >= 500 ? "Server Error" : "Client Error";
	}
}

/*
 * problem_slug writes the type slug of code into out: lower case, '_' and
 * anything outside [a-z0-9] as '-', so the URN stays well-formed whatever
 * the code is.
 */
static void
problem_slug(const char *code, char *out, size_t size)
{
	size_t		i;

	for (i = 0; code[i] != '\0' && i + 1 < size; i++)
	{
		char		c = code[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		out[i] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c : '-';
	}
	out[i] = '\0';
}

/* problem_set adds key: s to obj, or key: fallback when s is not UTF-8. */
static int
problem_set(json_t *obj, const char *key, const char *s, const char *fallback)
{
	json_t	   *v = json_string(s);

	if (v == NULL)
		v = json_string(fallback);
	/* json_object_set_new steals v, even on failure */
	return json_object_set_new(obj, key, v);
}

char *
problem_body(const Problem *p, const char *request_id)
{
	const char *reason = problem_reason(p->status);
	const char *code = p->code != NULL ? p->code : "error";
	const char *title = p->title != NULL ? p->title : reason;
	const char *detail = p->detail != NULL ? p->detail : title;
	char		slug[PROBLEM_CODE_MAX + 1];
	char		type[sizeof(PROBLEM_TYPE_PREFIX) + PROBLEM_CODE_MAX];
	json_t	   *obj;
	char	   *body = NULL;

	problem_slug(code, slug, sizeof(slug));
	snprintf(type, sizeof(type), PROBLEM_TYPE_PREFIX "%s", slug);

	if ((obj = json_object()) == NULL)
		return NULL;
	if (problem_set(obj, "type", type, "about:blank") == 0 &&
		problem_set(obj, "title", title, reason) == 0 &&
		json_object_set_new(obj, "status", json_integer(p->status)) == 0 &&
		problem_set(obj, "detail", detail, reason) == 0 &&
		problem_set(obj, "code", code, "error") == 0 &&
		problem_set(obj, "request_id", request_id != NULL ? request_id : "", "") == 0)
		body = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	/* json_dumps allocates with malloc (we install no custom allocator) */
	return body;
}

int
problem_reply(HttpRequest *req, const Problem *p)
{
	HttpHeader	headers[3];
	size_t		n = 0;
	char		retry[16];
	char	   *body;
	int			rc;

	body = problem_body(p, http_request_id(req));
	if (body == NULL)
		return -1;
	if (p->retry_after > 0)
	{
		snprintf(retry, sizeof(retry), "%d", p->retry_after);
		headers[n++] = (HttpHeader) {"Retry-After", retry};
	}
	if (p->allow != NULL)
		headers[n++] = (HttpHeader) {"Allow", p->allow};
	if (p->www_authenticate != NULL)
		headers[n++] = (HttpHeader) {"WWW-Authenticate", p->www_authenticate};
	rc = http_reply(req, p->status, "application/problem+json", body,
					strlen(body), headers, n);
	free(body);
	return rc;
}
