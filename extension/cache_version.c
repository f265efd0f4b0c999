/*-------------------------------------------------------------------------
 *
 * cache_version.c
 *		Versions of the gateway's response cache, kept in shared memory so
 *		that a write never waits for another one to tell the gateways.
 *
 *		The gateway keys a cached response by, among others, the version of
 *		the caller's organisation and a version of "everything".  Here is
 *		where those versions live: a fixed table of CACHE_VERSION_SLOTS slots,
 *		an organisation hashed to one (cache_slot_of; a collision only costs
 *		the organisations sharing a slot extra invalidations), each slot a
 *		version and the change number of its last bump; a global version for
 *		changes that concern every organisation (the permission catalogue,
 *		system roles, TRUNCATE); a change counter; and the generation, the
 *		time the table was created, so that versions are never reused across
 *		a restart (the gateway's Redis outlives the server).
 *
 *		Writers: the statement trigger iam.cache_bump() (here, in C: it runs
 *		on every write to admin data) notes each organisation a statement
 *		changed, read from the transition tables (a NULL organisation, or
 *		TRUNCATE: everything); iam.cache_note_change(org) does the same from
 *		SQL.  A note only sets a bit in a backend-local bitmap.  The transaction callback bumps the noted slots at
 *		XACT_EVENT_COMMIT, which CommitTransaction fires after
 *		ProcArrayEndTransaction: the commit is already visible to new
 *		snapshots when its version changes, so a response read under the new
 *		version contains the write.  (Bumping before, in PRE_COMMIT, would let
 *		a gateway cache data of before the commit under the new version.)  An
 *		abort forgets the bitmap; a rolled-back subtransaction's notes are
 *		kept, which costs an invalidation and nothing else.  PREPARE
 *		TRANSACTION is refused after a note, as PostgreSQL refuses it after
 *		NOTIFY: nobody would bump at COMMIT PREPARED.
 *
 *		No lock at all, only atomics, so committing writers never wait for
 *		each other (NOTIFY, which this replaces, serialised every notifying
 *		commit on its cluster-wide lock, fsync included).  A committing
 *		backend does: inflight += 1; c = ++counter; each noted slot's version
 *		+= 1 and its changed_at raised to c (everything += 1 if noted);
 *		inflight -= 1.  The poller, iam.cache_changes(since), reads counter
 *		(C), then inflight: when it is 0, every bump numbered <= C is complete
 *		and visible, so the slots with changed_at > since are all the changes
 *		up to C and the caller may pass C as its next since.  When a bump is in
 *		flight the changes found are still returned, but next_since stays at
 *		since, so the next poll looks again.  The atomics' full barriers order
 *		these steps.
 *
 *		Without shared_preload_libraries there is no table: notes are ignored
 *		and iam.cache_changes returns a NULL generation (with a NOTICE, once
 *		per session), which the gateway takes as "cache off".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "cache_version.h"

typedef struct CacheVersionSlot
{
	pg_atomic_uint64 version;	/* bumps committed for this slot */
	pg_atomic_uint64 changed_at;	/* counter value of the latest one */
} CacheVersionSlot;

typedef struct CacheVersionShared
{
	int64		generation;		/* creation time (microseconds), set once */
	pg_atomic_uint64 counter;	/* committed transactions that bumped */
	pg_atomic_uint32 inflight;	/* backends between counter and slots */
	pg_atomic_uint64 everything;	/* version of every organisation */
	CacheVersionSlot slots[CACHE_VERSION_SLOTS];
} CacheVersionShared;

#define PENDING_WORDS (CACHE_VERSION_SLOTS / 64)

static CacheVersionShared *cache_versions = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* this transaction's notes (backend-local) */
static uint64 pending[PENDING_WORDS];
static bool pending_any = false;
static bool pending_everything = false;
static bool preload_noticed = false;

PG_FUNCTION_INFO_V1(iam_cache_note_change);
PG_FUNCTION_INFO_V1(iam_cache_bump);
PG_FUNCTION_INFO_V1(iam_cache_changes);
PG_FUNCTION_INFO_V1(iam_cache_slot);

/*
 * cache_slot_of returns the slot of an organisation: FNV-1a, 64 bits, over
 * the 16 bytes of the uuid, modulo CACHE_VERSION_SLOTS.  gateway/cache.c's
 * cache_slot_of must compute the same (both are tested against one value).
 */
static int
cache_slot_of(const pg_uuid_t *org)
{
	uint64		h = UINT64CONST(14695981039346656037);

	for (int i = 0; i < UUID_LEN; i++)
		h = (h ^ org->data[i]) * UINT64CONST(1099511628211);
	return (int) (h % CACHE_VERSION_SLOTS);
}

static Size
cache_version_shmem_size(void)
{
	return MAXALIGN(sizeof(CacheVersionShared));
}

static void
cache_version_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(cache_version_shmem_size());
}

/*
 * cache_version_shmem_startup creates the table (or attaches to it), under
 * AddinShmemInitLock; the only lock this module ever takes.
 */
static void
cache_version_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cache_versions = ShmemInitStruct("iam cache versions", cache_version_shmem_size(), &found);
	if (!found)
	{
		cache_versions->generation = GetCurrentTimestamp();
		pg_atomic_init_u64(&cache_versions->counter, 0);
		pg_atomic_init_u32(&cache_versions->inflight, 0);
		pg_atomic_init_u64(&cache_versions->everything, 0);
		for (int i = 0; i < CACHE_VERSION_SLOTS; i++)
		{
			pg_atomic_init_u64(&cache_versions->slots[i].version, 0);
			pg_atomic_init_u64(&cache_versions->slots[i].changed_at, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
pending_clear(void)
{
	if (!pending_any)
		return;
	memset(pending, 0, sizeof(pending));
	pending_any = false;
	pending_everything = false;
}

/* raise_to sets *p to v unless it already holds more (a later bump) */
static void
raise_to(pg_atomic_uint64 *p, uint64 v)
{
	uint64		cur = pg_atomic_read_u64(p);

	while (cur < v && !pg_atomic_compare_exchange_u64(p, &cur, v))
		;
}

/* publish bumps the noted slots; atomics only, it cannot fail */
static void
publish(void)
{
	uint64		c;

	pg_atomic_fetch_add_u32(&cache_versions->inflight, 1);
	c = pg_atomic_add_fetch_u64(&cache_versions->counter, 1);
	if (pending_everything)
		pg_atomic_fetch_add_u64(&cache_versions->everything, 1);
	for (int w = 0; w < PENDING_WORDS; w++)
	{
		for (uint64 bits = pending[w]; bits != 0; bits &= bits - 1)
		{
			CacheVersionSlot *s = &cache_versions->slots[w * 64 + pg_rightmost_one_pos64(bits)];

			pg_atomic_fetch_add_u64(&s->version, 1);
			raise_to(&s->changed_at, c);
		}
	}
	pg_atomic_fetch_sub_u32(&cache_versions->inflight, 1);
}

/*
 * cache_version_xact_callback bumps the noted slots once the transaction's
 * commit is visible, and forgets them on abort.
 */
static void
cache_version_xact_callback(XactEvent event, void *arg)
{
	if (!pending_any)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (cache_versions != NULL)
				publish();
			pending_clear();
			break;
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot prepare a transaction that changed iam administration data"),
					 errhint("Commit it directly: the gateways' cache versions are bumped at commit.")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pending_clear();
			break;
		default:
			break;
	}
}

/*
 * CacheVersionInit registers the transaction callback and, when the library
 * is being preloaded, asks for the shared table.
 */
void
CacheVersionInit(void)
{
	RegisterXactCallback(cache_version_xact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cache_version_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cache_version_shmem_startup;
}

/* note_change notes a change of org (NULL: of everything) for the commit */
static void
note_change(const pg_uuid_t *org)
{
	if (cache_versions == NULL)
		return;
	if (org == NULL)
		pending_everything = true;
	else
	{
		int			slot = cache_slot_of(org);

		pending[slot / 64] |= UINT64CONST(1) << (slot % 64);
	}
	pending_any = true;
}

/*
 * iam.cache_note_change(org_id uuid) notes that this transaction changed
 * the organisation's data (NULL: every organisation's); the versions move
 * when it commits.  Without the shared table, nothing.
 */
Datum
iam_cache_note_change(PG_FUNCTION_ARGS)
{
	note_change(PG_ARGISNULL(0) ? NULL : PG_GETARG_UUID_P(0));
	PG_RETURN_VOID();
}

/* note_table notes the organisation (column attno) of every row of rows */
static void
note_table(Tuplestorestate *rows, TupleDesc desc, int attno)
{
	TupleTableSlot *slot;

	if (rows == NULL)
		return;
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(rows);
	while (tuplestore_gettupleslot(rows, true, false, slot))
	{
		bool		isnull;
		Datum		org = slot_getattr(slot, attno, &isnull);

		note_change(isnull ? NULL : DatumGetUUIDP(org));
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * iam.cache_bump(): AFTER ... FOR EACH STATEMENT trigger with transition
 * tables, argument the organisation column (none: the table holds shared
 * objects, every change concerns everything).  Notes the organisations of
 * the rows the statement changed.  In C because it runs on every write to
 * admin data: the PL/pgSQL version, one dynamic query per statement, cost a
 * single-row UPDATE a fifth of its throughput.
 */
Datum
iam_cache_bump(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	int			attno;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.cache_bump() must be called as a statement trigger"),
				 errhint("Recreate the cache_bump_* triggers as in the extension's script.")));
	if (cache_versions == NULL)
		return PointerGetDatum(NULL);
	if (trigdata->tg_trigger->tgnargs < 1 || TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
	{
		note_change(NULL);
		return PointerGetDatum(NULL);
	}
	attno = SPI_fnumber(RelationGetDescr(trigdata->tg_relation), trigdata->tg_trigger->tgargs[0]);
	if (attno <= 0 || TupleDescAttr(RelationGetDescr(trigdata->tg_relation), attno - 1)->atttypid != UUIDOID)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("\"%s\" is not a uuid column of \"%s\"", trigdata->tg_trigger->tgargs[0],
						RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Pass iam.cache_bump() the table's organisation column.")));
	note_table(trigdata->tg_newtable, RelationGetDescr(trigdata->tg_relation), attno);
	note_table(trigdata->tg_oldtable, RelationGetDescr(trigdata->tg_relation), attno);
	return PointerGetDatum(NULL);
}

/* iam.cache_slot(org_id uuid): the organisation's slot (see cache_slot_of) */
Datum
iam_cache_slot(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(cache_slot_of(PG_GETARG_UUID_P(0)));
}

/*
 * iam.cache_changes(since bigint) returns (generation, next_since,
 * everything, slots, versions): the table's generation, the since to pass
 * next time, the global version, and the slots bumped after since with
 * their versions.  since 0 gives every slot ever bumped.  All NULL (and a
 * NOTICE, once) without the shared table.
 */
Datum
iam_cache_changes(PG_FUNCTION_ARGS)
{
	int64		since = PG_GETARG_INT64(0);
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	Datum	   *slots;
	Datum	   *versions;
	int			n = 0;
	uint64		c;
	uint32		inflight;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (since < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since must not be negative"),
				 errhint("Pass 0 for every change, then the next_since returned.")));
	if (cache_versions == NULL)
	{
		if (!preload_noticed)
			ereport(NOTICE,
					(errmsg("iam is not in shared_preload_libraries: no cache versions, the gateway's response cache stays off"),
					 errhint("Add iam to shared_preload_libraries and restart the server.")));
		preload_noticed = true;
		memset(nulls, true, sizeof(nulls));
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}

	c = pg_atomic_read_u64(&cache_versions->counter);
	pg_memory_barrier();
	inflight = pg_atomic_read_u32(&cache_versions->inflight);
	pg_memory_barrier();

	slots = palloc(sizeof(Datum) * CACHE_VERSION_SLOTS);
	versions = palloc(sizeof(Datum) * CACHE_VERSION_SLOTS);
	for (int i = 0; i < CACHE_VERSION_SLOTS; i++)
	{
		CacheVersionSlot *s = &cache_versions->slots[i];

		if (pg_atomic_read_u64(&s->changed_at) > (uint64) since)
		{
			slots[n] = Int32GetDatum(i);
			versions[n] = Int64GetDatum((int64) pg_atomic_read_u64(&s->version));
			n++;
		}
	}
	values[0] = Int64GetDatum(cache_versions->generation);
	/* a bump in flight may not be visible yet: look again from since */
	values[1] = Int64GetDatum(inflight == 0 ? (int64) c : since);
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&cache_versions->everything));
	values[3] = PointerGetDatum(construct_array(slots, n, INT4OID, sizeof(int32), true,
												TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_array(versions, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
