/*
 * test_accesslog.c
 *		Unit tests for accesslog.c: what the access log shows of an email
 *		address in a request path, and the fields of a request's line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "accesslog.h"
#include "tap.h"

static void
expect(const char *in, const char *want)
{
	char		out[256];

	accesslog_mask_emails(in, out, sizeof(out));
	if (!tap_ok(strcmp(out, want) == 0, "%s -> %s", in, want))
		tap_diag("got %s", out);
}

/*
 * logged_line runs accesslog_request with stderr sent to a file and
 * returns the line it wrote, parsed (NULL when it is not one JSON object),
 * its text in buf.
 */
static json_t *
logged_line(const AccessLogRequest *r, char *buf, size_t size)
{
	char		path[] = "/tmp/test_accesslog.XXXXXX";
	int			fd = mkstemp(path);
	int			saved = dup(STDERR_FILENO);
	ssize_t		n;
	json_error_t err;

	if (fd < 0 || saved < 0)
		return NULL;
	unlink(path);
	dup2(fd, STDERR_FILENO);
	accesslog_request(r);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, size - 1, 0);
	close(fd);
	if (n <= 0 || buf[n - 1] != '\n' || memchr(buf, '\n', (size_t) n - 1) != NULL)
		return NULL;
	buf[n] = '\0';
	return json_loads(buf, JSON_REJECT_DUPLICATES, &err);
}

/* looks_like_utc_ms: YYYY-MM-DDTHH:MM:SS.mmmZ */
static bool
looks_like_utc_ms(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (s == NULL || strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i] != '\0'; i++)
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	return true;
}

static void
request_lines(void)
{
	static const struct
	{
		double		ms;
		const char *want;
	}			durations[] = {
		{1.5, "1.500"}, {0.0004, "0.000"}, {12345.6789, "12345.679"}, {0.9996, "1.000"}, {0, "0.000"},
	};

	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++)
	{
		AccessLogRequest r = {
			.method = "GET",.path = "/api/v1/users/ann@example.com",.route = "GET /users/{id}",
			.user_id = NULL,.status = 404,.duration_ms = durations[i].ms,
			.bytes = 9007199254740993ULL,.request_id = "rid-1",.remote = "127.0.0.1",
		};
		char		text[8192];
		json_t	   *line = logged_line(&r, text, sizeof(text));
		char		want[64];

		snprintf(want, sizeof(want), "\"duration_ms\":%s,", durations[i].want);
		tap_ok(line != NULL, "a request's line is one JSON object on one line (%g ms)", durations[i].ms);
		if (!tap_ok(strstr(text, want) != NULL, "duration_ms %g is written %s", durations[i].ms, durations[i].want))
			tap_diag("line: %s", text);
		if (i == 0)
		{
			tap_ok(looks_like_utc_ms(json_string_value(json_object_get(line, "ts"))),
				   "ts is UTC with milliseconds (%s)", json_string_value(json_object_get(line, "ts")));
			tap_ok(json_integer_value(json_object_get(line, "status")) == 404 &&
				   json_is_null(json_object_get(line, "user_id")) &&
				   strcmp(json_string_value(json_object_get(line, "path")) ?: "", "/api/v1/users/a***@example.com") == 0 &&
				   strcmp(json_string_value(json_object_get(line, "level")) ?: "", "info") == 0,
				   "status, null user, masked path, level");
			tap_ok(json_integer_value(json_object_get(line, "bytes")) == 9007199254740993LL,
				   "bytes is written exactly (2^53 + 1)");
		}
		json_decref(line);
	}
}

int
main(void)
{
	char		small[8];

	expect("/api/v1/users/me", "/api/v1/users/me");
	expect("/api/v1/users/jane.doe@example.com", "/api/v1/users/j***@example.com");
	expect("/x/a@b.c/y/bob+tag@mail.example/z", "/x/a***@b.c/y/b***@mail.example/z");
	expect("/x/@nolocal", "/x/@nolocal");
	expect("", "");
	accesslog_mask_emails("/users/jane.doe@example.com", small, sizeof(small));
	tap_ok(strlen(small) < sizeof(small) && strstr(small, "jane") == NULL,
		   "a short buffer is cut, never overflowed, never unmasked (%s)", small);
	request_lines();
	return tap_done();
}
