/*-------------------------------------------------------------------------
 *
 * rbac_query.c
 *		How the permission engine reads the RBAC tables (users, roles,
 *		permissions, role_permissions, user_roles, user_permissions,
 *		role_inheritance).  Every read
 *		- runs as the owner of iam.users (the extension's owner), with
 *		  SECURITY_NOFORCE_RLS, the way referential-integrity checks do: the
 *		  answer never depends on the caller's row-level security context
 *		  (iam.org_id) or table privileges, and the caller needs EXECUTE on
 *		  the check function only;
 *		- runs with search_path = pg_catalog, pg_temp, so no operator or
 *		  function of the caller's schemas can stand in for a built-in one
 *		  while we run with the owner's rights;
 *		- reads with the latest snapshot (GetLatestSnapshot), not the
 *		  statement's or the transaction's: what the per-backend cache keeps
 *		  must be what is committed now plus this session's own changes of
 *		  earlier commands.  Reading with an older snapshot after having
 *		  processed the invalidation of a newer commit would cache a stale
 *		  answer for good (see rbac_cache.c).
 *
 *		Usage: rbac_query_begin; rbac_query_run (results in SPI_tuptable,
 *		valid until rbac_query_end; copy what you keep into
 *		scope->caller_context); rbac_query_end.  On error, transaction or
 *		subtransaction abort restores the user id, the setting and SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "rbac_query.h"


/*
 * rbac_query_begin connects to SPI and switches to the owner's rights and
 * the fixed search_path.  Raises 0A000 in a parallel worker or during a
 * parallel query, where no new snapshot can be taken.
 */
void
rbac_query_begin(RbacQueryScope *scope)
{
	Oid			owner;

	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("permission checks cannot run during a parallel operation"),
				 errhint("Call iam.has_permission and friends from a function marked PARALLEL UNSAFE.")));

	owner = iam_table_owner("users");
	scope->caller_context = CurrentMemoryContext;
	GetUserIdAndSecContext(&scope->saved_userid, &scope->saved_sec_context);
	SetUserIdAndSecContext(owner, scope->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	scope->saved_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * rbac_query_run executes query (preparing and keeping its plan the first
 * time) with the latest snapshot and returns the number of rows, which are
 * in SPI_tuptable.  read_only queries see changes up to the previous command
 * of this transaction; others advance the command counter first, so they
 * also see rows written earlier by the current statement (what a trigger
 * checking a multi-row INSERT needs).
 */
uint64
rbac_query_run(RbacQuery *query, Datum *values, const char *nulls, bool read_only)
{
	int			rc;

	if (query->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(query->sql, query->nargs, query->argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		query->plan = plan;
	}

	rc = SPI_execute_snapshot(query->plan, values, nulls, GetLatestSnapshot(),
							  InvalidSnapshot, read_only, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot returned %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* rbac_query_end restores search_path and the user id, and leaves SPI. */
void
rbac_query_end(RbacQueryScope *scope)
{
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	AtEOXact_GUC(true, scope->saved_nestlevel);
	SetUserIdAndSecContext(scope->saved_userid, scope->saved_sec_context);
}
