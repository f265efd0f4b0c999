/*
 * accesslog.h
 *		JSON lines on stderr: one per request, plus a few life-cycle events.
 */
#ifndef ACCESSLOG_H
#define ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What is logged for one request; every pointer is borrowed for the call. */
typedef struct AccessLogRequest
{
	const char *method;
	const char *path;			/* without the query string; emails are masked */
	const char *route;			/* route label ("GET /users/{id}"), or NULL */
	const char *user_id;		/* authenticated user, or NULL */
	unsigned int status;		/* 0 when no response was sent */
	double		duration_ms;
	uint64_t	bytes;			/* response body bytes */
	const char *request_id;
	const char *remote;			/* peer IP address, or NULL */
	bool		aborted;		/* the response was not (fully) sent */
} AccessLogRequest;

/*
 * accesslog_request writes
 *   {"ts":…,"level":"info","msg":"request","method":…,"path":…,"route":…,
 *    "status":…,"duration_ms":…,"bytes":…,"request_id":…,"user_id":…,
 *    "remote":…}
 * (route and user_id null when unknown; anything in the path that looks like
 * an email address is masked as j***@example.com).
 * to stderr with a single write(2).  Level is "warn" when the request was
 * aborted or got no response (status 0).  Strings are escaped, invalid UTF-8
 * becomes U+FFFD, and over-long values are cut so a line never exceeds 4096
 * bytes.  Allocates nothing; a failed write is ignored.
 */
extern void accesslog_request(const AccessLogRequest *r);

/*
 * accesslog_mask_emails copies s into out[size], replacing the local part
 * of every "local@domain" after its first character by "***".  Returns out.
 */
extern const char *accesslog_mask_emails(const char *s, char *out, size_t size);

/*
 * accesslog_event writes {"ts":…,"level":level,"msg":msg, key: value, …} the
 * same way.  The variable arguments are (const char *key, const char *value)
 * pairs ended by a single NULL; every value is logged as a JSON string.  A
 * NULL value is logged as null.  Pairs that no longer fit in the line are
 * dropped.  Never pass secrets here: the database URL, tokens and
 * Authorization headers must not reach the log.
 */
extern void accesslog_event(const char *level, const char *msg,...);

#endif							/* ACCESSLOG_H */
