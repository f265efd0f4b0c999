/*
 * problem.h
 *		RFC 9457 problem details: the one path that writes every error reply.
 */
#ifndef PROBLEM_H
#define PROBLEM_H

#include "http.h"

/*
 * Problem describes one error reply; pointers are borrowed for the call.
 * Bodies never carry SQL text, library error strings or stack traces: those
 * go to the log, if anywhere.
 */
typedef struct Problem
{
	unsigned int status;		/* HTTP status, e.g. 404 */
	const char *code;			/* application code ("not_found") or SQLSTATE */
	const char *title;			/* NULL: the status's reason phrase */
	const char *detail;			/* NULL: the title */
	int			retry_after;	/* seconds for Retry-After; 0: no header */
	const char *allow;			/* Allow header for 405; NULL: no header */
	const char *www_authenticate;	/* WWW-Authenticate for 401; NULL: none */
} Problem;

/*
 * problem_body returns the compact JSON object
 *   {"type":"urn:problem:iam:<code with _ as ->","title","status","detail",
 *    "code","request_id"}
 * in that order, as a NUL-terminated string the caller frees with free().
 * A title or detail that is not valid UTF-8 is replaced by the reason
 * phrase.  Returns NULL when out of memory.
 */
extern char *problem_body(const Problem *p, const char *request_id);

/*
 * problem_reply queues p as an application/problem+json response to req,
 * with Retry-After and Allow when given.  Nothing is left for the caller to
 * free.  Returns 0, or -1 when the response could not be built or queued
 * (the connection should then be closed).
 */
extern int	problem_reply(HttpRequest *req, const Problem *p);

#endif							/* PROBLEM_H */
