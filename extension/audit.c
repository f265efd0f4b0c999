/*-------------------------------------------------------------------------
 *
 * audit.c
 *		Change capture and the write gate of iam.audit_logs.
 *
 *		- iam.audit_capture(entity_type, entity_id_column, org_id_column,
 *		  insert_verb, update_verb, delete_verb): row-level AFTER trigger on
 *		  every table holding admin data.  It appends one unsealed audit row
 *		  per changed row to iam.audit_inbox (a child of iam.audit_logs
 *		  without indexes, which the sealer empties into iam.audit_logs): action entity_type.verb, changes holding only the
 *		  columns that changed as {"column": {"old": ..., "new": ...}}, and
 *		  the request context (iam.user_id, iam.request_id, iam.ip,
 *		  iam.user_agent) plus the database role.  Secret columns appear as
 *		  "[redacted]"; an UPDATE that changes nothing appends nothing.
 *		- iam.audit_guard(): BEFORE trigger on iam.audit_logs and
 *		  iam.audit_inbox that refuses (42501) every INSERT, UPDATE, DELETE
 *		  and TRUNCATE except those made by the extension's own code paths, which announce themselves with
 *		  audit_set_write_mode() for the duration of one SPI call.  The mode
 *		  is backend-local C state: SQL cannot set it.
 *		- iam.audit_append(...): the same append path for events that are not
 *		  row changes (iam.erase_user records the erasure with it).
 *
 *		Values in changes are JSON independent of the session: booleans and
 *		numbers as JSON, json/jsonb nested, timestamps ISO 8601 in UTC,
 *		bytea as \x hex, everything else as its text output.
 *
 *		Sanctioned writes run as the owner of iam.audit_logs, so that a role
 *		allowed to change admin data needs no privilege on the trail, and
 *		row-level security of the trail does not apply to them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

#include "audit.h"
#include "catalog.h"

#define AUDIT_NARGS 10

static AuditWriteMode audit_write_mode = AUDIT_WRITE_NONE;
static SPIPlanPtr append_plan = NULL;

PG_FUNCTION_INFO_V1(iam_audit_capture);
PG_FUNCTION_INFO_V1(iam_audit_guard);
PG_FUNCTION_INFO_V1(iam_audit_append);

AuditWriteMode
audit_set_write_mode(AuditWriteMode mode)
{
	AuditWriteMode previous = audit_write_mode;

	audit_write_mode = mode;
	return previous;
}


/*
 * is_secret_column says whether a column's value must never enter the log:
 * password hashes, tokens and their hashes, TOTP secrets and recovery codes.
 */
static bool
is_secret_column(const char *name)
{
	size_t		len = strlen(name);

	return strcmp(name, "token") == 0 ||
		strcmp(name, "recovery_codes") == 0 ||
		(len >= 5 && strcmp(name + len - 5, "_hash") == 0) ||
		strstr(name, "secret") != NULL ||
		strstr(name, "totp") != NULL;
}

/* push_string pushes a JSON string value (or key, with seq WJB_KEY). */
static void
push_string(JsonbParseState **state, JsonbIteratorToken seq, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, seq, &v);
}

/*
 * push_value pushes one column value as a JSON value, in a form independent
 * of the session's settings (DateStyle, TimeZone, bytea_output, extra_float_digits
 * aside: floats use the shortest exact form since PostgreSQL 12).
 */
static void
push_value(JsonbParseState **state, Datum value, bool isnull, Oid typid)
{
	JsonbValue	v;
	Oid			outfunc;
	bool		varlena;
	char	   *str;

	if (isnull)
	{
		v.type = jbvNull;
		pushJsonbValue(state, WJB_VALUE, &v);
		return;
	}
	switch (typid)
	{
		case BOOLOID:
			v.type = jbvBool;
			v.val.boolean = DatumGetBool(value);
			pushJsonbValue(state, WJB_VALUE, &v);
			return;
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			getTypeOutputInfo(typid, &outfunc, &varlena);
			str = OidOutputFunctionCall(outfunc, value);
			/* NaN and infinities have no JSON number form */
			if (strchr(str, 'N') == NULL && strchr(str, 'n') == NULL)
			{
				v.type = jbvNumeric;
				v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																	CStringGetDatum(str),
																	ObjectIdGetDatum(InvalidOid),
																	Int32GetDatum(-1)));
				pushJsonbValue(state, WJB_VALUE, &v);
				return;
			}
			push_string(state, WJB_VALUE, str);
			return;
		case JSONOID:
		case JSONBOID:
			{
				Jsonb	   *jb;

				if (typid == JSONOID)
					jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															CStringGetDatum(TextDatumGetCString(value))));
				else
					jb = DatumGetJsonbP(value);
				if (JB_ROOT_IS_SCALAR(jb))
				{
					JsonbExtractScalar(&jb->root, &v);
					pushJsonbValue(state, WJB_VALUE, &v);
					return;
				}
				v.type = jbvBinary;
				v.val.binary.data = &jb->root;
				v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
				pushJsonbValue(state, WJB_VALUE, &v);
				return;
			}
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
		case DATEOID:
			{
				int			utc = 0;

				/* palloc'd: the parse state keeps the pointer */
				push_string(state, WJB_VALUE,
							JsonEncodeDateTime(NULL, value, typid,
											   typid == TIMESTAMPTZOID ? &utc : NULL));
				return;
			}
		case BYTEAOID:
			{
				bytea	   *b = DatumGetByteaPP(value);
				int			len = VARSIZE_ANY_EXHDR(b);
				char	   *hex = palloc(len * 2 + 3);

				hex[0] = '\\';
				hex[1] = 'x';
				hex_encode(VARDATA_ANY(b), len, hex + 2);
				hex[len * 2 + 2] = '\0';
				push_string(state, WJB_VALUE, hex);
				return;
			}
		default:
			getTypeOutputInfo(typid, &outfunc, &varlena);
			push_string(state, WJB_VALUE, OidOutputFunctionCall(outfunc, value));
			return;
	}
}

/*
 * build_changes returns {"column": {"old": ..., "new": ...}} for the columns
 * that differ between oldtuple and newtuple (either may be NULL: an INSERT
 * has no old row, a DELETE no new one; then every non-NULL column counts),
 * or NULL when nothing changed.
 */
static Jsonb *
build_changes(TupleDesc tupdesc, HeapTuple oldtuple, HeapTuple newtuple)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;
	int			nchanged = 0;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		Datum		oldval = (Datum) 0,
					newval = (Datum) 0;
		bool		oldnull = true,
					newnull = true;
		bool		secret;

		if (att->attisdropped)
			continue;
		if (oldtuple != NULL)
			oldval = heap_getattr(oldtuple, i + 1, tupdesc, &oldnull);
		if (newtuple != NULL)
			newval = heap_getattr(newtuple, i + 1, tupdesc, &newnull);
		if (oldnull && newnull)
			continue;
		if (!oldnull && !newnull &&
			datum_image_eq(oldval, newval, att->attbyval, att->attlen))
			continue;

		nchanged++;
		secret = is_secret_column(NameStr(att->attname));
		push_string(&state, WJB_KEY, NameStr(att->attname));
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		push_string(&state, WJB_KEY, "old");
		if (secret && !oldnull)
			push_string(&state, WJB_VALUE, "[redacted]");
		else
			push_value(&state, oldval, oldnull, att->atttypid);
		push_string(&state, WJB_KEY, "new");
		if (secret && !newnull)
			push_string(&state, WJB_VALUE, "[redacted]");
		else
			push_value(&state, newval, newnull, att->atttypid);
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return nchanged > 0 ? JsonbValueToJsonb(result) : NULL;
}

/* context_value returns a request-context setting as text, NULL when empty. */
static Datum
context_value(const char *name, char *null)
{
	const char *value = GetConfigOption(name, true, false);

	if (value == NULL || *value == '\0')
	{
		*null = 'n';
		return (Datum) 0;
	}
	*null = ' ';
	return CStringGetTextDatum(value);
}

/*
 * audit_append_row inserts one unsealed row into iam.audit_inbox, with the
 * request context of the current transaction, as the trail's owner and under
 * AUDIT_WRITE_APPEND.  org_id and entity_id may be NULL, changes too.  While
 * the extension is still at 0.3 (this library installed, ALTER EXTENSION
 * UPDATE not run yet) there is no inbox: the row goes to iam.audit_logs, as
 * 0.3 did, and the sealer seals it in place.
 */
static void
audit_append_row(const char *action, const char *entity_type, Datum entity_id,
				 bool entity_id_null, Datum org_id, bool org_id_null, Jsonb *changes)
{
	Datum		values[AUDIT_NARGS];
	char		nulls[AUDIT_NARGS];
	Oid			save_userid;
	int			save_sec_context;
	AuditWriteMode save_mode;
	volatile int rc = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/*
	 * Prepared once per session, in whatever search_path the first caller
	 * has: every name in it is schema-qualified, as it runs as the owner.
	 */
	if (append_plan == NULL)
	{
		Oid			argtypes[AUDIT_NARGS] = {TEXTOID, UUIDOID, TEXTOID, TEXTOID, UUIDOID,
		JSONBOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
		SPIPlanPtr	plan;

		/*
		 * created_at is the clock, not the transaction start: rows of one
		 * transaction then keep the order of the changes, in listings and in
		 * the chain, which the sealer builds in created_at order.
		 */
		bool		has_inbox = OidIsValid(get_relname_relid("audit_inbox", get_namespace_oid("iam", false)));

		plan = SPI_prepare(psprintf("INSERT INTO iam.%s (user_id, org_id, action, entity_type, "
									"entity_id, changes, ip_address, user_agent, request_id, db_role, "
									"created_at) "
									"VALUES ($1::pg_catalog.uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
									"pg_catalog.clock_timestamp())",
									has_inbox ? "audit_inbox" : "audit_logs"),
						   AUDIT_NARGS, argtypes);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		append_plan = plan;
	}

	values[0] = context_value("iam.user_id", &nulls[0]);
	values[1] = org_id;
	nulls[1] = org_id_null ? 'n' : ' ';
	values[2] = CStringGetTextDatum(action);
	nulls[2] = ' ';
	values[3] = CStringGetTextDatum(entity_type);
	nulls[3] = ' ';
	values[4] = entity_id;
	nulls[4] = entity_id_null ? 'n' : ' ';
	values[5] = changes != NULL ? JsonbPGetDatum(changes) : (Datum) 0;
	nulls[5] = changes != NULL ? ' ' : 'n';
	values[6] = context_value("iam.ip", &nulls[6]);
	values[7] = context_value("iam.user_agent", &nulls[7]);
	values[8] = context_value("iam.request_id", &nulls[8]);
	/* the role of the session (after SET ROLE), not a SECURITY DEFINER owner */
	values[9] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	nulls[9] = ' ';

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(iam_table_owner("audit_logs"),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	save_mode = audit_set_write_mode(AUDIT_WRITE_APPEND);
	PG_TRY();
	{
		rc = SPI_execute_plan(append_plan, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		audit_set_write_mode(save_mode);
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "appending to the audit trail failed: %s", SPI_result_code_string(rc));
	SPI_finish();
}

/* column_value returns the value of the named column of tuple (as uuid). */
static Datum
column_value(Relation rel, HeapTuple tuple, const char *column, bool *isnull)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), column);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" named by trigger \"%s\" does not exist in \"%s\"",
						column, "iam.audit_capture", RelationGetRelationName(rel)),
				 errhint("Recreate the trigger with the columns holding the entity id and the organisation id.")));
	if (SPI_gettypeid(RelationGetDescr(rel), attnum) != UUIDOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of \"%s\" is not a uuid", column, RelationGetRelationName(rel)),
				 errhint("iam.audit_capture() takes the entity and organisation ids from uuid columns.")));
	return heap_getattr(tuple, attnum, RelationGetDescr(rel), isnull);
}

/*
 * iam.audit_capture(entity_type, entity_id_column, org_id_column,
 * insert_verb, update_verb, delete_verb): AFTER INSERT OR UPDATE OR DELETE
 * ... FOR EACH ROW.
 */
Datum
iam_audit_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	Relation	rel;
	HeapTuple	oldtuple = NULL,
				newtuple = NULL,
				row;
	const char *verb;
	char	   *action;
	Jsonb	   *changes;
	Datum		entity_id,
				org_id;
	bool		entity_id_null,
				org_id_null;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.audit_capture() was not called by a trigger"),
				 errhint("Use it only in CREATE TRIGGER ... EXECUTE FUNCTION iam.audit_capture(...).")));
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.audit_capture() must be fired AFTER ... FOR EACH ROW"),
				 errhint("Recreate the trigger as AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW.")));
	trigger = trigdata->tg_trigger;
	if (trigger->tgnargs != 6)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.audit_capture() takes 6 arguments, trigger \"%s\" passes %d",
						trigger->tgname, trigger->tgnargs),
				 errhint("Pass entity_type, entity_id_column, org_id_column, insert_verb, update_verb, delete_verb.")));

	rel = trigdata->tg_relation;
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		newtuple = trigdata->tg_trigtuple;
		row = newtuple;
		verb = trigger->tgargs[3];
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		oldtuple = trigdata->tg_trigtuple;
		newtuple = trigdata->tg_newtuple;
		row = newtuple;
		verb = trigger->tgargs[4];
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		oldtuple = trigdata->tg_trigtuple;
		row = oldtuple;
		verb = trigger->tgargs[5];
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.audit_capture() must be fired by INSERT, UPDATE or DELETE"),
				 errhint("Recreate the trigger as AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW.")));

	changes = build_changes(RelationGetDescr(rel), oldtuple, newtuple);
	if (changes == NULL)
		return PointerGetDatum(NULL);	/* an UPDATE that changed nothing */

	entity_id = column_value(rel, row, trigger->tgargs[1], &entity_id_null);
	/* an empty org_id_column: the table holds shared objects only */
	if (trigger->tgargs[2][0] == '\0')
	{
		org_id = (Datum) 0;
		org_id_null = true;
	}
	else
		org_id = column_value(rel, row, trigger->tgargs[2], &org_id_null);
	action = psprintf("%s.%s", trigger->tgargs[0], verb);
	audit_append_row(action, trigger->tgargs[0], entity_id, entity_id_null,
					 org_id, org_id_null, changes);
	return PointerGetDatum(NULL);
}

/*
 * iam.audit_append(action, entity_type, entity_id, org_id, changes) appends
 * an event that is not a row change.  Not granted to any role: extension
 * functions call it as the owner.
 */
Datum
iam_audit_append(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("action and entity_type must not be NULL"),
				 errhint("Pass an action such as user.erased and its entity type.")));
	audit_append_row(text_to_cstring(PG_GETARG_TEXT_PP(0)),
					 text_to_cstring(PG_GETARG_TEXT_PP(1)),
					 PG_GETARG_DATUM(2), PG_ARGISNULL(2),
					 PG_GETARG_DATUM(3), PG_ARGISNULL(3),
					 PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4));
	PG_RETURN_VOID();
}

/*
 * tuple_is_sealed says whether a row of the trail has a seq.
 */
static bool
tuple_is_sealed(HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;

	(void) heap_getattr(tuple, SPI_fnumber(desc, "seq"), desc, &isnull);
	return !isnull;
}

/*
 * audit_write_allowed says whether the row write that fired the guard is
 * the one the current code path announced:
 *	- APPEND: an unsealed row (into iam.audit_inbox; at 0.3, iam.audit_logs);
 *	- SEAL: a row leaving the inbox, a sealed row entering iam.audit_logs,
 *	  or seq and hashes given to a row that 0.3 left unsealed in
 *	  iam.audit_logs;
 *	- REDACT: erasure markers written into a row of either table;
 *	- PARTITION: sealed rows leaving the default partition of the sealed
 *	  trail and entering a new month's partition, unchanged.
 * TRUNCATE is never allowed.
 */
static bool
audit_write_allowed(TriggerData *trigdata)
{
	TriggerEvent event = trigdata->tg_event;
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	bool		inbox = strcmp(RelationGetRelationName(trigdata->tg_relation), "audit_inbox") == 0;

	if (!TRIGGER_FIRED_FOR_ROW(event))
		return false;
	switch (audit_write_mode)
	{
		case AUDIT_WRITE_APPEND:
			return TRIGGER_FIRED_BY_INSERT(event) &&
				!tuple_is_sealed(trigdata->tg_trigtuple, desc);
		case AUDIT_WRITE_SEAL:
			if (inbox)
				return TRIGGER_FIRED_BY_DELETE(event);
			if (TRIGGER_FIRED_BY_INSERT(event))
				return tuple_is_sealed(trigdata->tg_trigtuple, desc);
			return TRIGGER_FIRED_BY_UPDATE(event) &&
				!tuple_is_sealed(trigdata->tg_trigtuple, desc) &&
				tuple_is_sealed(trigdata->tg_newtuple, desc);
		case AUDIT_WRITE_REDACT:
			return TRIGGER_FIRED_BY_UPDATE(event);
		case AUDIT_WRITE_PARTITION:
			return !inbox && (TRIGGER_FIRED_BY_INSERT(event) || TRIGGER_FIRED_BY_DELETE(event)) &&
				tuple_is_sealed(trigdata->tg_trigtuple, desc);
		case AUDIT_WRITE_NONE:
			break;
	}
	return false;
}

/*
 * iam.audit_guard(): BEFORE INSERT OR UPDATE OR DELETE ... FOR EACH ROW and
 * BEFORE TRUNCATE ... FOR EACH STATEMENT on iam.audit_logs and
 * iam.audit_inbox.  Lets through only the write the extension's current code
 * path announced.
 */
Datum
iam_audit_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.audit_guard() was not called by a trigger"),
				 errhint("Use it only in the triggers of iam.audit_logs.")));
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.audit_guard() must be fired BEFORE"),
				 errhint("Recreate the triggers of iam.audit_logs as in the extension's script.")));

	if (audit_write_allowed(trigdata))
		return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
							   trigdata->tg_newtuple : trigdata->tg_trigtuple);
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("rows of the audit trail are written only by pg_iam's audit triggers"),
				 errhint("Change the admin data itself; its audit trigger records the change.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("the audit trail is append-only"),
			 errdetail("%s on %s is refused for every role, its owner included.",
					   TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? "UPDATE" :
					   TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ? "DELETE" : "TRUNCATE",
					   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(trigdata->tg_relation)),
												  RelationGetRelationName(trigdata->tg_relation))),
			 errhint("Personal data is erased with iam.erase_user(), which keeps the chain verifiable.")));
	return PointerGetDatum(NULL);	/* not reached */
}
