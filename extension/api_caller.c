/*-------------------------------------------------------------------------
 *
 * api_caller.c
 *		iam.api_caller(): who is calling the REST API.  The first call of
 *		every authenticated API function, so of nearly every request.
 *
 *		It answers iam.user_id after checking that it names an active, not
 *		deleted user of iam.org_id and, when iam.session_id is set, that the
 *		session is neither revoked nor expired (revocation takes effect on
 *		the next request); or, for a token of an external identity provider
 *		(iam.external_sub, no iam.user_id), the active user whose
 *		stack_auth_id it is, whose id and organisation then become
 *		iam.user_id and iam.org_id for the rest of the transaction.  Anything
 *		else is IA401.
 *
 *		The same checks as the PL/pgSQL version of iam--0.3--0.4.sql, run as
 *		the caller (row-level security and privileges apply as they did),
 *		with the three queries planned once per backend: in PL/pgSQL the
 *		function cost about 28 us a call, as much as the rest of GET
 *		/users/me (track_functions).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(iam_api_caller);

#define ERRCODE_IAM_UNAUTHORIZED	MAKE_SQLSTATE('I', 'A', '4', '0', '1')

/*
 * The queries, with schema-qualified operators and functions, so that a
 * plan kept for the backend's lifetime never depends on the search_path of
 * whoever happened to call first.
 */
typedef struct CallerQuery
{
	const char *sql;
	int			nargs;
	Oid			argtypes[2];
	SPIPlanPtr	plan;
} CallerQuery;

static CallerQuery active_member = {
	"SELECT 1 FROM iam.users u WHERE u.id OPERATOR(pg_catalog.=) $1 "
	"AND u.org_id OPERATOR(pg_catalog.=) $2 AND u.is_active AND u.deleted_at IS NULL",
	2, {UUIDOID, UUIDOID}, NULL
};
static CallerQuery live_session = {
	"SELECT 1 FROM iam.user_sessions s WHERE s.id OPERATOR(pg_catalog.=) $1 "
	"AND s.user_id OPERATOR(pg_catalog.=) $2 AND s.revoked_at IS NULL "
	"AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()",
	2, {UUIDOID, UUIDOID}, NULL
};
static CallerQuery external_user = {
	"SELECT x.id::pg_catalog.text, x.org_id::pg_catalog.text FROM iam.users x "
	"WHERE x.stack_auth_id OPERATOR(pg_catalog.=) $1 AND x.is_active AND x.deleted_at IS NULL",
	1, {TEXTOID}, NULL
};

/* setting returns an iam.* setting, NULL when unset or empty. */
static const char *
setting(const char *name)
{
	const char *v = GetConfigOption(name, true, false);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static Datum
uuid_datum(const char *s)
{
	return DirectFunctionCall1(uuid_in, CStringGetDatum(s));
}

/* run executes q (planning it the first time) and returns the rows found. */
static uint64
run(CallerQuery *q, Datum *args, const char *nulls)
{
	int			rc;

	if (q->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(q->sql, q->nargs, q->argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "iam.api_caller: cannot plan its query: %s", SPI_result_code_string(SPI_result));
		q->plan = plan;
	}
	rc = SPI_execute_plan(q->plan, args, nulls, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "iam.api_caller: query failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

static void
refuse(const char *message)
{
	ereport(ERROR,
			(errcode(ERRCODE_IAM_UNAUTHORIZED),
			 errmsg("%s", message),
			 errhint("Sign in again.")));
}

Datum
iam_api_caller(PG_FUNCTION_ARGS)
{
	const char *me = setting("iam.user_id");
	const char *org = setting("iam.org_id");
	const char *sid = setting("iam.session_id");
	const char *ext = setting("iam.external_sub");
	Datum		args[2];
	Datum		result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "iam.api_caller: SPI_connect failed");
	if (me == NULL && ext != NULL)
	{
		char	   *id;
		char	   *org_id;

		args[0] = CStringGetTextDatum(ext);
		if (run(&external_user, args, NULL) == 0)
			refuse("not signed in as an active user");
		id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		org_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		(void) set_config_option("iam.user_id", id, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		(void) set_config_option("iam.org_id", org_id, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		result = SPI_datumTransfer(uuid_datum(id), false, UUID_LEN);
		SPI_finish();
		PG_RETURN_DATUM(result);
	}
	if (me == NULL)
		refuse("not signed in as an active user of this organisation");
	args[0] = uuid_datum(me);
	args[1] = org != NULL ? uuid_datum(org) : (Datum) 0;
	if (run(&active_member, args, org != NULL ? "  " : " n") == 0)
		refuse("not signed in as an active user of this organisation");
	if (sid != NULL)
	{
		Datum		session_args[2] = {uuid_datum(sid), args[0]};

		if (run(&live_session, session_args, NULL) == 0)
			refuse("this session has ended");
	}
	result = SPI_datumTransfer(args[0], false, UUID_LEN);
	SPI_finish();
	PG_RETURN_DATUM(result);
}
