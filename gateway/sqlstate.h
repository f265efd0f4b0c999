/*
 * sqlstate.h
 *		SQLSTATE -> HTTP status, problem code and client-safe detail.
 */
#ifndef SQLSTATE_H
#define SQLSTATE_H

#include <stdbool.h>

/* What one database error becomes for the client; strings are borrowed. */
typedef struct SqlstateMapping
{
	unsigned int status;		/* HTTP status */
	const char *code;			/* problem code: an application code or the SQLSTATE */
	const char *detail;			/* client-safe text */
	bool		retry;			/* 40001/40P01: run the transaction once more */
	int			retry_after;	/* seconds for Retry-After; 0: none */
} SqlstateMapping;

/*
 * sqlstate_map maps sqlstate (five characters; NULL or malformed counts as
 * "connection lost") and the error's primary message to a response.
 *
 * Custom codes IA400, IA401, IA403, IA404, IA409, IA412 and IA422 are raised
 * by the API functions on purpose: their message is client-safe and becomes
 * the detail (a NULL or empty message gets the generic one), and the code is
 * bad_request, unauthorized, forbidden, not_found, conflict,
 * precondition_failed or unprocessable.  Every other SQLSTATE gets a generic
 * detail and keeps the SQLSTATE as code; its message is never used.  The
 * returned mapping borrows sqlstate and message; nothing to free.
 */
extern SqlstateMapping sqlstate_map(const char *sqlstate, const char *message);

/*
 * sqlstate_class_label writes the two-character class of sqlstate (or
 * "connection" when sqlstate is NULL or malformed) into out[16], for the
 * database-error metric.  Returns out.
 */
extern const char *sqlstate_class_label(const char *sqlstate, char *out);

#endif							/* SQLSTATE_H */
