/*
 * sqlstate.c
 *		The one table that turns a database error into an HTTP answer.
 *
 * The API functions raise client-facing errors with SQLSTATE "IA" + the
 * HTTP status; only those carry a message meant for the client.  Errors
 * raised by PostgreSQL itself (or by older functions) name tables,
 * constraints and values, so the client gets a fixed sentence per status
 * and the full error goes to the gateway log only.
 */
#include "sqlstate.h"

#include <stdio.h>
#include <string.h>

#define DETAIL_CONFLICT		"The request conflicts with the current state of the resource."
#define DETAIL_INVALID		"The request is well-formed but contains invalid values."
#define DETAIL_FORBIDDEN	"You are not allowed to do this."
#define DETAIL_NOT_FOUND	"The resource does not exist."
#define DETAIL_UNAUTHORIZED	"The credentials are not valid (any more)."
#define DETAIL_BAD_REQUEST	"The request is not valid."
#define DETAIL_PRECONDITION	"The resource has changed since it was read."
#define DETAIL_BUSY			"The database is busy; try again shortly."
#define DETAIL_TIMEOUT		"The request took too long."
#define DETAIL_UNAVAILABLE	"The database is unavailable; try again shortly."
#define DETAIL_INTERNAL		"internal error"

/* The custom IA### codes: status, application code, generic detail. */
static const struct
{
	const char *sqlstate;
	unsigned int status;
	const char *code;
	const char *detail;
}			custom_codes[] =
{
	{"IA400", 400, "bad_request", DETAIL_BAD_REQUEST},
	{"IA401", 401, "unauthorized", DETAIL_UNAUTHORIZED},
	{"IA403", 403, "forbidden", DETAIL_FORBIDDEN},
	{"IA404", 404, "not_found", DETAIL_NOT_FOUND},
	{"IA409", 409, "conflict", DETAIL_CONFLICT},
	{"IA412", 412, "precondition_failed", DETAIL_PRECONDITION},
	{"IA422", 422, "unprocessable", DETAIL_INVALID},
};

static bool
well_formed(const char *s)
{
	if (s == NULL || strlen(s) != 5)
		return false;
	for (int i = 0; i < 5; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

SqlstateMapping
sqlstate_map(const char *sqlstate, const char *message)
{
	SqlstateMapping m = {500, sqlstate, DETAIL_INTERNAL, false, 0};

	if (!well_formed(sqlstate))
	{
		/* no SQLSTATE: libpq lost the connection or never had one */
		m.status = 503;
		m.code = "database_unavailable";
		m.detail = DETAIL_UNAVAILABLE;
		m.retry_after = 1;
		return m;
	}
	for (size_t i = 0; i < sizeof(custom_codes) / sizeof(custom_codes[0]); i++)
	{
		if (strcmp(sqlstate, custom_codes[i].sqlstate) != 0)
			continue;
		m.status = custom_codes[i].status;
		m.code = custom_codes[i].code;
		m.detail = message != NULL && message[0] != '\0' ? message : custom_codes[i].detail;
		return m;
	}

	if (strcmp(sqlstate, "23505") == 0 || strcmp(sqlstate, "23503") == 0)
	{
		m.status = 409;
		m.detail = DETAIL_CONFLICT;
	}
	else if (strcmp(sqlstate, "23514") == 0 || strcmp(sqlstate, "23502") == 0 ||
			 strncmp(sqlstate, "22", 2) == 0)
	{
		m.status = 422;
		m.detail = DETAIL_INVALID;
	}
	else if (strcmp(sqlstate, "42501") == 0)
	{
		m.status = 403;
		m.detail = DETAIL_FORBIDDEN;
	}
	else if (strcmp(sqlstate, "P0002") == 0)
	{
		m.status = 404;
		m.detail = DETAIL_NOT_FOUND;
	}
	else if (strcmp(sqlstate, "28000") == 0)
	{
		m.status = 401;
		m.detail = DETAIL_UNAUTHORIZED;
	}
	else if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0)
	{
		m.status = 503;
		m.detail = DETAIL_BUSY;
		m.retry = true;
		m.retry_after = 1;
	}
	else if (strcmp(sqlstate, "57014") == 0)
	{
		m.status = 503;
		m.detail = DETAIL_TIMEOUT;
	}
	else if (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
			 strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0)
	{
		m.status = 503;
		m.detail = DETAIL_UNAVAILABLE;
		m.retry_after = 1;
	}
	return m;
}

const char *
sqlstate_class_label(const char *sqlstate, char *out)
{
	if (well_formed(sqlstate))
		snprintf(out, 16, "%.2s", sqlstate);
	else
		snprintf(out, 16, "connection");
	return out;
}
