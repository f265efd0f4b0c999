/*-------------------------------------------------------------------------
 *
 * audit_partition.c
 *		The monthly partitions of the audit trail, and the guard that keeps
 *		them part of it.
 *
 *		iam.audit_logs is partitioned by LIST ((seq IS NULL)): iam.audit_inbox
 *		holds the rows waiting for the sealer, iam_internal.audit_logs_sealed
 *		the chained ones, itself partitioned by RANGE (created_at) into
 *		months (iam_internal.audit_logs_pYYYYMM) and a default partition.
 *		Row triggers (audit.c) refuse every write but the extension's own;
 *		this file closes the other doors:
 *		- iam.audit_ddl_guard(), an event trigger on ddl_command_start,
 *		  refuses DDL on any table of the trail (detach or attach a
 *		  partition, create one holding rows of one's own, drop one, disable,
 *		  drop or add triggers, rules, renames, new columns), for every role,
 *		  its owner included.  Allowed are the extension's own scripts
 *		  (CREATE / ALTER EXTENSION) and the partition functions below while
 *		  they run, and storage settings (reloptions, statistics).
 *		- iam.audit_logs_add_partition(month) and
 *		  iam.audit_logs_drop_partitions(before): the only ways to change the
 *		  partitions afterwards.  Each runs its plpgsql worker
 *		  (iam_internal.audit_logs_*_work) with the guard open and, for the
 *		  rows a new month's partition takes out of the default one, the
 *		  row guard in AUDIT_WRITE_PARTITION mode.  The workers alone fail
 *		  at their first DDL.  Dropping records, per chain, the last row
 *		  dropped in iam_internal.audit_anchors, where iam.audit_verify
 *		  starts from.
 *
 *		The maintenance flag is backend-local C state, set only around one
 *		SPI call and reset on error, so SQL cannot set it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "audit.h"
#include "catalog.h"

PG_FUNCTION_INFO_V1(iam_audit_ddl_guard);
PG_FUNCTION_INFO_V1(iam_audit_logs_add_partition);
PG_FUNCTION_INFO_V1(iam_audit_logs_drop_partitions);

/* true while a partition function of this file runs its worker */
static bool partition_maintenance = false;

/*
 * trail_root returns the oid of iam.audit_logs, or InvalidOid when the
 * extension (or a version with a partitioned trail) is not there.
 */
static Oid
trail_root(void)
{
	Oid			nsp = get_namespace_oid("iam", true);
	Oid			relid;

	if (!OidIsValid(nsp))
		return InvalidOid;
	relid = get_relname_relid("audit_logs", nsp);
	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		return InvalidOid;
	return relid;
}

/* is_trail_relation: relid is iam.audit_logs or one of its partitions */
static bool
is_trail_relation(Oid relid, Oid root)
{
	List	   *ancestors;
	bool		found;

	if (!OidIsValid(relid))
		return false;
	if (relid == root)
		return true;
	if (!get_rel_relispartition(relid))
		return false;
	ancestors = get_partition_ancestors(relid);
	found = list_member_oid(ancestors, root);
	list_free(ancestors);
	return found;
}

static bool
rangevar_is_trail(RangeVar *rv, Oid root)
{
	if (rv == NULL)
		return false;
	return is_trail_relation(RangeVarGetRelid(rv, NoLock, true), root);
}

static void
refuse(const char *what, const char *relname)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("the tables of the audit trail cannot be changed with %s", what),
			 errdetail("%s is part of the append-only audit trail; the command is refused for every role, its owner included.",
					   relname),
			 errhint("Manage its partitions with iam.audit_logs_add_partitions() and iam.audit_logs_drop_partitions().")));
}

/* alter_cmd_allowed: ALTER TABLE subcommands that change only storage */
static bool
alter_cmd_allowed(AlterTableCmd *cmd)
{
	switch (cmd->subtype)
	{
		case AT_SetRelOptions:
		case AT_ResetRelOptions:
		case AT_ReplaceRelOptions:
		case AT_SetStatistics:
		case AT_SetOptions:
		case AT_ResetOptions:
		case AT_ClusterOn:
		case AT_DropCluster:
			return true;
		default:
			return false;
	}
}

/*
 * iam.audit_ddl_guard(): event trigger on ddl_command_start.  Refuses DDL on
 * the trail's tables except from the extension's scripts and its partition
 * functions.
 */
Datum
iam_audit_ddl_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *parsetree;
	Oid			root;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.audit_ddl_guard() was not called by an event trigger"),
				 errhint("Use it only in the event trigger iam_audit_ddl_guard.")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (strcmp(trigdata->event, "ddl_command_start") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.audit_ddl_guard() must fire on ddl_command_start"),
				 errhint("Recreate the event trigger as in the extension's script.")));

	if (creating_extension || partition_maintenance)
		PG_RETURN_VOID();
	root = trail_root();
	if (!OidIsValid(root))
		PG_RETURN_VOID();

	parsetree = trigdata->parsetree;
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
				ListCell   *lc;
				bool		harmless = true;

				foreach(lc, stmt->cmds)
				{
					if (!alter_cmd_allowed((AlterTableCmd *) lfirst(lc)))
						harmless = false;
				}
				if (!harmless && rangevar_is_trail(stmt->relation, root))
					refuse("ALTER TABLE", stmt->relation->relname);
				/* ATTACH PARTITION of a table of one's own */
				foreach(lc, stmt->cmds)
				{
					AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

					if (cmd->subtype == AT_AttachPartition || cmd->subtype == AT_DetachPartition)
					{
						PartitionCmd *pc = (PartitionCmd *) cmd->def;

						if (rangevar_is_trail(pc->name, root))
							refuse("ATTACH or DETACH PARTITION", pc->name->relname);
					}
				}
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;
				ListCell   *lc;

				if (stmt->removeType != OBJECT_TABLE && stmt->removeType != OBJECT_TRIGGER &&
					stmt->removeType != OBJECT_RULE && stmt->removeType != OBJECT_POLICY)
					break;
				foreach(lc, stmt->objects)
				{
					List	   *names = (List *) lfirst(lc);
					RangeVar   *rv;

					/* a trigger, rule or policy: its table's name comes first */
					if (stmt->removeType != OBJECT_TABLE)
					{
						if (list_length(names) < 2)
							continue;
						names = list_truncate(list_copy(names), list_length(names) - 1);
					}
					rv = makeRangeVarFromNameList(names);
					if (rangevar_is_trail(rv, root))
						refuse(stmt->removeType == OBJECT_TABLE ? "DROP TABLE" :
							   stmt->removeType == OBJECT_TRIGGER ? "DROP TRIGGER" :
							   stmt->removeType == OBJECT_RULE ? "DROP RULE" : "DROP POLICY",
							   rv->relname);
				}
				break;
			}
		case T_CreateStmt:
			{
				CreateStmt *stmt = (CreateStmt *) parsetree;
				ListCell   *lc;

				/* a partition of the trail, holding whatever it was given */
				if (stmt->partbound == NULL)
					break;
				foreach(lc, stmt->inhRelations)
				{
					if (rangevar_is_trail((RangeVar *) lfirst(lc), root))
						refuse("CREATE TABLE ... PARTITION OF", ((RangeVar *) lfirst(lc))->relname);
				}
				break;
			}
		case T_CreateTrigStmt:
			if (rangevar_is_trail(((CreateTrigStmt *) parsetree)->relation, root))
				refuse("CREATE TRIGGER", ((CreateTrigStmt *) parsetree)->relation->relname);
			break;
		case T_RuleStmt:
			if (rangevar_is_trail(((RuleStmt *) parsetree)->relation, root))
				refuse("CREATE RULE", ((RuleStmt *) parsetree)->relation->relname);
			break;
		case T_RenameStmt:
			if (rangevar_is_trail(((RenameStmt *) parsetree)->relation, root))
				refuse("RENAME", ((RenameStmt *) parsetree)->relation->relname);
			break;
		case T_AlterObjectSchemaStmt:
			if (rangevar_is_trail(((AlterObjectSchemaStmt *) parsetree)->relation, root))
				refuse("SET SCHEMA", ((AlterObjectSchemaStmt *) parsetree)->relation->relname);
			break;
		default:
			break;
	}
	PG_RETURN_VOID();
}

/*
 * run_maintenance runs sql (one argument of type argtype) with the guard
 * open, as the trail's owner and with the row guard in
 * AUDIT_WRITE_PARTITION mode; returns the first column of its one row.
 * Refused before the update that partitions the trail.
 */
static Datum
run_maintenance(const char *sql, Oid argtype, Datum arg, bool *isnull)
{
	Oid			save_userid;
	int			save_sec_context;
	AuditWriteMode save_mode;
	volatile Datum result = (Datum) 0;
	volatile bool null = true;

	if (!OidIsValid(trail_root()))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the audit trail is not partitioned yet"),
				 errhint("Run ALTER EXTENSION iam UPDATE.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(iam_table_owner("audit_logs"),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	save_mode = audit_set_write_mode(AUDIT_WRITE_PARTITION);
	partition_maintenance = true;
	PG_TRY();
	{
		Datum		args[1];
		bool		n;

		args[0] = arg;
		if (SPI_execute_with_args(sql, 1, &argtype, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "running \"%s\" failed", sql);
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &n);
		null = n;
	}
	PG_FINALLY();
	{
		partition_maintenance = false;
		audit_set_write_mode(save_mode);
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	/* by-value results only (boolean, int) */
	SPI_finish();
	*isnull = null;
	return result;
}

/*
 * iam.audit_logs_add_partition(month date) → boolean: the partition of the
 * sealed trail for the month (UTC) holding the date; false when it exists.
 */
Datum
iam_audit_logs_add_partition(PG_FUNCTION_ARGS)
{
	bool		isnull;
	Datum		d;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("month must not be NULL"),
				 errhint("Pass a date of the month to create the partition of.")));
	d = run_maintenance("SELECT iam_internal.audit_logs_add_partition_work($1)", DATEOID,
						PG_GETARG_DATUM(0), &isnull);
	PG_RETURN_BOOL(!isnull && DatumGetBool(d));
}

/*
 * iam.audit_logs_drop_partitions(before date) → int: drops the monthly
 * partitions of the sealed trail that end on or before the date, after
 * recording each chain's last dropped row as its anchor.
 */
Datum
iam_audit_logs_drop_partitions(PG_FUNCTION_ARGS)
{
	bool		isnull;
	Datum		d;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("before must not be NULL"),
				 errhint("Pass the first day of the oldest month to keep.")));
	d = run_maintenance("SELECT iam_internal.audit_logs_drop_partitions_work($1)", DATEOID,
						PG_GETARG_DATUM(0), &isnull);
	PG_RETURN_INT32(isnull ? 0 : DatumGetInt32(d));
}
