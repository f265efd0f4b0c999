/*-------------------------------------------------------------------------
 *
 * rbac_cycle.c
 *		iam.role_inheritance_refuse_cycle(): the BEFORE INSERT OR UPDATE row
 *		trigger on iam.role_inheritance that refuses an edge closing a cycle
 *		(role A inherits B while B already inherits A, directly or through
 *		other roles), with SQLSTATE 23514 (check_violation): a cycle breaks
 *		an integrity rule of the data, like a CHECK constraint spanning rows.
 *
 *		Two transactions could each add one half of a cycle without seeing
 *		the other's.  So the trigger first takes SHARE UPDATE EXCLUSIVE on
 *		iam.role_inheritance: it conflicts with itself but not with the ROW
 *		EXCLUSIVE lock of ordinary writes or the ACCESS SHARE of reads, so
 *		only writers of edges wait for each other, until commit.  Then it
 *		looks for the path with the latest snapshot (rbac_query.c), which
 *		also sees the committed edges a REPEATABLE READ snapshot would hide
 *		and the rows written earlier by the current statement.  (VACUUM and
 *		ANALYZE of the table take the same lock: an edge may wait for one.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "rbac_query.h"

/*
 * $1 role_id, $2 inherits_role_id of the new edge, $3 id of the row being
 * updated (NULL on INSERT: its old version is not an edge any more).  One
 * row, with both names, when $2 already reaches $1.
 */
static RbacQuery cycle_query = {
	"WITH RECURSIVE reach(id) AS (\n"
	"	SELECT $2::uuid\n"
	"	UNION\n"
	"	SELECT ri.inherits_role_id FROM iam.role_inheritance ri JOIN reach ON ri.role_id = reach.id\n"
	"	WHERE ri.id IS DISTINCT FROM $3\n"
	")\n"
	"SELECT (SELECT name::text FROM iam.roles WHERE id = $1),\n"
	"       (SELECT name::text FROM iam.roles WHERE id = $2)\n"
	"WHERE EXISTS (SELECT FROM reach WHERE id = $1)",
	3, {UUIDOID, UUIDOID, UUIDOID}, NULL
};

PG_FUNCTION_INFO_V1(iam_role_inheritance_refuse_cycle);

/* The value of a uuid column of tuple, or NULL. */
static Datum
uuid_column(HeapTuple tuple, TupleDesc tupdesc, const char *column, bool *isnull)
{
	int			attnum = SPI_fnumber(tupdesc, column);

	if (attnum <= 0 || SPI_gettypeid(tupdesc, attnum) != UUIDOID)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("table has no uuid column \"%s\"", column),
				 errhint("iam.role_inheritance_refuse_cycle() belongs on iam.role_inheritance only.")));
	return heap_getattr(tuple, attnum, tupdesc, isnull);
}

Datum
iam_role_inheritance_refuse_cycle(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	HeapTuple	newtuple;
	RbacQueryScope scope;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		role_null;
	bool		inherits_null;
	bool		old_null = true;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.role_inheritance_refuse_cycle() was not called by a trigger"),
				 errhint("Use it only in CREATE TRIGGER ... EXECUTE FUNCTION iam.role_inheritance_refuse_cycle().")));
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		  TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.role_inheritance_refuse_cycle() must be fired BEFORE INSERT OR UPDATE FOR EACH ROW"),
				 errhint("Recreate the trigger as BEFORE INSERT OR UPDATE ... FOR EACH ROW.")));

	tupdesc = trigdata->tg_relation->rd_att;
	newtuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;
	values[0] = uuid_column(newtuple, tupdesc, "role_id", &role_null);
	values[1] = uuid_column(newtuple, tupdesc, "inherits_role_id", &inherits_null);
	/* NOT NULL and CHECK (role_id <> inherits_role_id) report these */
	if (role_null || inherits_null ||
		memcmp(DatumGetUUIDP(values[0]), DatumGetUUIDP(values[1]), sizeof(pg_uuid_t)) == 0)
		return PointerGetDatum(newtuple);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		values[2] = uuid_column(trigdata->tg_trigtuple, tupdesc, "id", &old_null);
	if (old_null)
	{
		values[2] = (Datum) 0;
		nulls[2] = 'n';
	}

	/* writers of edges take turns until commit (see the file comment) */
	LockRelationOid(RelationGetRelid(trigdata->tg_relation), ShareUpdateExclusiveLock);

	rbac_query_begin(&scope);
	if (rbac_query_run(&cycle_query, values, nulls, false) > 0)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		char	   *role = SPI_getvalue(tuple, SPI_tuptable->tupdesc, 1);
		char	   *inherits = SPI_getvalue(tuple, SPI_tuptable->tupdesc, 2);

		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("role inheritance would create a cycle"),
				 errdetail("Role \"%s\" already inherits role \"%s\", directly or through other roles.",
						   inherits ? inherits : "?", role ? role : "?"),
				 errhint("Remove an inheritance on that path first, or leave this one out.")));
	}
	rbac_query_end(&scope);
	return PointerGetDatum(newtuple);
}
