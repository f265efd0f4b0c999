/*-------------------------------------------------------------------------
 *
 * timestamps.c
 *		iam.touch_updated_at(): the BEFORE UPDATE row trigger that keeps
 *		updated_at honest.  Unlike contrib's moddatetime it leaves updated_at
 *		alone when an UPDATE changes nothing else, so updated_at (and the
 *		ETags and audit rows derived from it) means "last real change".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(iam_touch_updated_at);

/* Whether any column but skip differs between two versions of a row. */
static bool
row_changed_except(HeapTuple oldtuple, HeapTuple newtuple, TupleDesc tupdesc, int skip)
{
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		Datum		oldval,
					newval;
		bool		oldnull,
					newnull;

		if (att->attisdropped || i + 1 == skip)
			continue;
		oldval = heap_getattr(oldtuple, i + 1, tupdesc, &oldnull);
		newval = heap_getattr(newtuple, i + 1, tupdesc, &newnull);
		if (oldnull != newnull)
			return true;
		if (!oldnull && !datumIsEqual(oldval, newval, att->attbyval, att->attlen))
			return true;
	}
	return false;
}

Datum
iam_touch_updated_at(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	HeapTuple	newtuple;
	int			attnum;
	Datum		now;
	bool		isnull = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.touch_updated_at() was not called by a trigger"),
				 errhint("Use it only in CREATE TRIGGER ... EXECUTE FUNCTION iam.touch_updated_at().")));
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.touch_updated_at() must be fired BEFORE UPDATE FOR EACH ROW"),
				 errhint("Recreate the trigger as BEFORE UPDATE ... FOR EACH ROW.")));

	tupdesc = trigdata->tg_relation->rd_att;
	newtuple = trigdata->tg_newtuple;
	attnum = SPI_fnumber(tupdesc, "updated_at");
	if (attnum <= 0 || TupleDescAttr(tupdesc, attnum - 1)->atttypid != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("table \"%s\" has no timestamptz column \"updated_at\"",
						RelationGetRelationName(trigdata->tg_relation)),
				 errhint("iam.touch_updated_at() maintains a column named updated_at of type timestamptz.")));

	if (!row_changed_except(trigdata->tg_trigtuple, newtuple, tupdesc, attnum))
		return PointerGetDatum(newtuple);

	now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	return PointerGetDatum(heap_modify_tuple_by_cols(newtuple, tupdesc, 1, &attnum,
													 &now, &isnull));
}
