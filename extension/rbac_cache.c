/*-------------------------------------------------------------------------
 *
 * rbac_cache.c
 *		The per-backend permission cache: a dictionary of permission names
 *		(name -> bit, in name order) and, per user, the global permissions
 *		held as a bitmap over it, the few resource-scoped grants, and the
 *		earliest expiry among the grants counted.  Users are kept in a hash
 *		table, at most iam.rbac_cache_max_users of them, evicting the least
 *		recently used (a dlist, most recent at the head).  Everything lives in
 *		one long-lived memory context, "iam RBAC cache", reset on rebuild.
 *
 *		Invalidation is PostgreSQL's own, hence transactional:
 *		- a statement-level AFTER trigger on each RBAC table (iam.rbac_invalidate,
 *		  on users only for the columns that matter) calls
 *		  CacheInvalidateRelcache on the table.  The message joins the
 *		  transaction's invalidation list: it is applied in this backend at
 *		  the next command boundary (so a session sees its own changes), again
 *		  at rollback (so a rolled-back change is forgotten), and broadcast to
 *		  every backend only at commit (so nobody sees another session's
 *		  uncommitted change, and everybody hears of a committed one);
 *		- the relcache callback registered here only marks the cache stale
 *		  (for one of the RBAC tables, or InvalidOid = every relation, sent
 *		  when the invalidation queue overflowed) and bumps a generation;
 *		- rbac.c accepts pending invalidations at each check; the next lookup
 *		  after a stale mark rebuilds: memory reset, dictionary reloaded,
 *		  users reloaded one by one as they are asked about.
 *		An entry loaded while an invalidation arrived (generation moved) is
 *		answered from but not kept.  An entry is reloaded once the statement
 *		time reaches its earliest expiry.
 *
 *		Changes made with triggers disabled (session_replication_role =
 *		replica, ALTER TABLE ... DISABLE TRIGGER) are not heard of; call
 *		iam.rbac_cache_reset() or reconnect after such maintenance.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "rbac_cache.h"

/* the tables whose invalidation marks the cache stale */
static const char *const rbac_relnames[] = {
	"users", "roles", "permissions", "role_permissions",
	"user_roles", "user_permissions", "role_inheritance"
};
#define RBAC_NRELS ((int) lengthof(rbac_relnames))

typedef struct PermissionDictEntry
{
	char		name[RBAC_PERMISSION_MAX_LEN + 1];	/* hash key */
	int			bit;
} PermissionDictEntry;

static int	rbac_cache_max_users = 10000;

static MemoryContext RbacCacheContext = NULL;
static HTAB *permission_dict = NULL;	/* name -> bit */
static char **permission_names = NULL;	/* bit -> name */
static int	permission_count = 0;
static int	bitmap_words = 0;
static int	platform_admin_bit = -1;
static HTAB *user_cache = NULL;
static dlist_head user_lru = DLIST_STATIC_INIT(user_lru);

static bool cache_valid = false;
static uint64 cache_generation = 0;
static Oid	rbac_relids[RBAC_NRELS];

static uint64 stat_hits = 0;
static uint64 stat_misses = 0;
static uint64 stat_rebuilds = 0;

PG_FUNCTION_INFO_V1(iam_rbac_invalidate);
PG_FUNCTION_INFO_V1(iam_rbac_cache_stats);
PG_FUNCTION_INFO_V1(iam_rbac_cache_reset);

/*
 * rbac_cache_relcache_callback marks the cache stale when one of the RBAC
 * tables (or every relation) is invalidated.  It runs inside invalidation
 * processing, so it must not touch the tables or allocate.
 */
static void
rbac_cache_relcache_callback(Datum arg, Oid relid)
{
	if (OidIsValid(relid))
	{
		int			i;

		for (i = 0; i < RBAC_NRELS; i++)
		{
			if (rbac_relids[i] == relid)
				break;
		}
		if (i == RBAC_NRELS)
			return;
	}
	cache_valid = false;
	cache_generation++;
}

/*
 * RbacCacheInit defines iam.rbac_cache_max_users and registers the relcache
 * callback.  Called from _PG_init, in the postmaster when preloaded (the
 * callback is inherited by every backend) or in the backend otherwise.
 */
void
RbacCacheInit(void)
{
	DefineCustomIntVariable("iam.rbac_cache_max_users",
							"Most users whose resolved permissions one backend keeps cached.",
							"The least recently used user is evicted beyond it; 0 disables the cache.",
							&rbac_cache_max_users,
							10000, 0, 10000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(rbac_cache_relcache_callback, (Datum) 0);
}

static Size
user_entry_size(void)
{
	return MAXALIGN(offsetof(RbacUserEntry, bits) + sizeof(uint64) * bitmap_words);
}

/* Forget everything; the next lookup rebuilds. */
static void
rbac_cache_discard(void)
{
	if (RbacCacheContext != NULL)
		MemoryContextReset(RbacCacheContext);
	permission_dict = NULL;
	permission_names = NULL;
	permission_count = 0;
	bitmap_words = 0;
	platform_admin_bit = -1;
	user_cache = NULL;
	dlist_init(&user_lru);
	cache_valid = false;
}

bool
rbac_cache_is_valid(void)
{
	return cache_valid;
}

/*
 * rbac_cache_generation counts the invalidations heard of: read it before
 * taking the snapshot of a load, hand it to rbac_cache_store after.
 */
uint64
rbac_cache_generation(void)
{
	return cache_generation;
}

/*
 * rbac_cache_begin_rebuild empties the cache and learns the current oids of
 * the RBAC tables (they change when the extension is re-created).  Returns
 * the generation to pass to rbac_cache_finish_rebuild once the caller has
 * read the permission names.
 */
uint64
rbac_cache_begin_rebuild(void)
{
	Oid			nsp;

	if (RbacCacheContext == NULL)
		RbacCacheContext = AllocSetContextCreate(TopMemoryContext, "iam RBAC cache",
												 ALLOCSET_DEFAULT_SIZES);
	rbac_cache_discard();
	nsp = get_namespace_oid("iam", false);
	for (int i = 0; i < RBAC_NRELS; i++)
		rbac_relids[i] = get_relname_relid(rbac_relnames[i], nsp);
	return cache_generation;
}

/*
 * rbac_cache_finish_rebuild installs the dictionary (names in bit order,
 * copied) and an empty user table.  The cache becomes valid only if no
 * invalidation arrived since rbac_cache_begin_rebuild; otherwise the
 * dictionary still serves the current call and the next call rebuilds.
 */
void
rbac_cache_finish_rebuild(uint64 generation, char **names, int count)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(RbacCacheContext);
	HASHCTL		ctl;

	ctl.keysize = RBAC_PERMISSION_MAX_LEN + 1;
	ctl.entrysize = sizeof(PermissionDictEntry);
	ctl.hcxt = RbacCacheContext;
	permission_dict = hash_create("iam permission dictionary", Max(count, 16), &ctl,
								  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	permission_names = palloc(sizeof(char *) * Max(count, 1));
	for (int i = 0; i < count; i++)
	{
		PermissionDictEntry *entry;

		permission_names[i] = pstrdup(names[i]);
		/* longer names cannot be asked about (rbac.c refuses them) */
		if (strlen(names[i]) > RBAC_PERMISSION_MAX_LEN)
			continue;
		entry = hash_search(permission_dict, names[i], HASH_ENTER, NULL);
		entry->bit = i;
	}
	permission_count = count;
	bitmap_words = (count + 63) / 64;
	platform_admin_bit = rbac_cache_permission_bit("platform.admin");

	ctl.keysize = sizeof(pg_uuid_t);
	ctl.entrysize = user_entry_size();
	ctl.hcxt = RbacCacheContext;
	user_cache = hash_create("iam RBAC user cache",
							 Min(Max(rbac_cache_max_users, 16), 1024), &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	dlist_init(&user_lru);
	MemoryContextSwitchTo(oldcontext);

	stat_rebuilds++;
	cache_valid = (generation == cache_generation);
}

/* The bit of a permission name, or -1 when it is not in the catalogue. */
int
rbac_cache_permission_bit(const char *name)
{
	PermissionDictEntry *entry;

	if (permission_dict == NULL || strlen(name) > RBAC_PERMISSION_MAX_LEN)
		return -1;
	entry = hash_search(permission_dict, name, HASH_FIND, NULL);
	return entry ? entry->bit : -1;
}

int
rbac_cache_permission_count(void)
{
	return permission_count;
}

const char *
rbac_cache_permission_name(int bit)
{
	Assert(bit >= 0 && bit < permission_count);
	return permission_names[bit];
}

/*
 * rbac_cache_new_entry returns an empty transient entry for user_id, sized
 * for the current dictionary, in the caller's memory context.
 */
RbacUserEntry *
rbac_cache_new_entry(const pg_uuid_t *user_id)
{
	RbacUserEntry *entry = palloc0(user_entry_size());

	entry->user_id = *user_id;
	entry->valid_until = DT_NOEND;
	return entry;
}

/*
 * Removing an entry frees its scoped grants by hand: entries come and go
 * one by one within the long-lived context, which is reset only on rebuild.
 */
static void
user_entry_evict(RbacUserEntry *entry)
{
	dlist_delete(&entry->lru_node);
	if (entry->scoped != NULL)
		pfree(entry->scoped);
	hash_search(user_cache, &entry->user_id, HASH_REMOVE, NULL);
}

/*
 * rbac_cache_find returns the cached entry of user_id if it is still good at
 * now (the statement time), or NULL: a miss, after which the caller loads
 * the user and calls rbac_cache_store.
 */
RbacUserEntry *
rbac_cache_find(const pg_uuid_t *user_id, TimestampTz now)
{
	RbacUserEntry *entry;

	if (cache_valid)
	{
		entry = hash_search(user_cache, user_id, HASH_FIND, NULL);
		if (entry != NULL && now < entry->valid_until)
		{
			stat_hits++;
			dlist_move_head(&user_lru, &entry->lru_node);
			return entry;
		}
		if (entry != NULL)
			user_entry_evict(entry);	/* a grant it counted has expired */
	}
	stat_misses++;
	return NULL;
}

/*
 * rbac_cache_store keeps a copy of a transient entry loaded under
 * generation, evicting the least recently used users beyond
 * iam.rbac_cache_max_users, and returns the copy; when the cache is stale,
 * moved on, or disabled it returns entry itself.
 */
RbacUserEntry *
rbac_cache_store(uint64 generation, RbacUserEntry *entry)
{
	RbacUserEntry *cached;
	bool		found;

	entry->platform_admin = platform_admin_bit >= 0 &&
		rbac_entry_has_bit(entry, platform_admin_bit);
	if (!cache_valid || generation != cache_generation || rbac_cache_max_users <= 0)
		return entry;

	while (hash_get_num_entries(user_cache) >= rbac_cache_max_users &&
		   !dlist_is_empty(&user_lru))
		user_entry_evict(dlist_tail_element(RbacUserEntry, lru_node, &user_lru));

	cached = hash_search(user_cache, &entry->user_id, HASH_ENTER, &found);
	if (found)
	{
		dlist_delete(&cached->lru_node);
		if (cached->scoped != NULL)
			pfree(cached->scoped);
	}
	memcpy(cached, entry, user_entry_size());
	cached->scoped = NULL;
	if (entry->nscoped > 0)
	{
		cached->scoped = MemoryContextAlloc(RbacCacheContext,
											sizeof(RbacScopedGrant) * entry->nscoped);
		memcpy(cached->scoped, entry->scoped, sizeof(RbacScopedGrant) * entry->nscoped);
	}
	dlist_push_head(&user_lru, &cached->lru_node);
	return cached;
}

/*
 * iam.rbac_invalidate(): statement-level AFTER trigger on the RBAC tables.
 * Queues a relcache invalidation of the table, which reaches this backend's
 * cache at the next command and the other backends' at commit.
 */
Datum
iam_rbac_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.rbac_invalidate() was not called by a trigger"),
				 errhint("Use it only in CREATE TRIGGER ... EXECUTE FUNCTION iam.rbac_invalidate().")));
	if (!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iam.rbac_invalidate() must be fired AFTER ... FOR EACH STATEMENT"),
				 errhint("Recreate the trigger as AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT.")));

	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * iam.rbac_cache_stats() reports this backend's cache: users cached (0 while
 * stale), bytes allocated, hits, misses and full rebuilds.
 */
Datum
iam_rbac_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	values[0] = Int64GetDatum(cache_valid && user_cache != NULL ?
							  (int64) hash_get_num_entries(user_cache) : 0);
	values[1] = Int64GetDatum(RbacCacheContext != NULL ?
							  (int64) MemoryContextMemAllocated(RbacCacheContext, true) : 0);
	values[2] = Int64GetDatum((int64) stat_hits);
	values[3] = Int64GetDatum((int64) stat_misses);
	values[4] = Int64GetDatum((int64) stat_rebuilds);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * iam.rbac_cache_reset() empties this backend's cache and zeroes its
 * counters; the next check rebuilds.
 */
Datum
iam_rbac_cache_reset(PG_FUNCTION_ARGS)
{
	rbac_cache_discard();
	stat_hits = stat_misses = stat_rebuilds = 0;
	PG_RETURN_VOID();
}
