/*-------------------------------------------------------------------------
 *
 * rbac.c
 *		Permission resolution: iam.has_permission (global and on one
 *		resource), iam.check_permissions, iam.user_permissions,
 *		iam.effective_roles, and rbac_user_holds for the other C modules.
 *
 *		The rules (DESIGN.md, issue 3):
 *		- a user holds nothing unless is_active and deleted_at IS NULL;
 *		- the roles held are the primary role (users.role, looked up by name:
 *		  the organisation's role of that name, else the system role), the
 *		  unexpired user_roles, and every role these inherit through
 *		  role_inheritance, transitively;
 *		- the permissions held are those of the roles held plus the
 *		  unexpired user_permissions; a grant with resource_type/resource_id
 *		  answers only for that resource, a global grant for every resource;
 *		- a grant expires at expires_at: from that instant (compared with the
 *		  statement's start time, to the microsecond) it counts for nothing,
 *		  and a role grant that expired takes the roles it brought with it;
 *		- a role, grant or inheritance row of another organisation than the
 *		  user's counts for nothing (system roles, org_id NULL, count for
 *		  every organisation);
 *		- platform.admin, held globally, is the one permission that crosses
 *		  organisations: its holder holds every permission of the catalogue,
 *		  globally, hence for every resource of every organisation;
 *		- an unknown permission name, or one over 100 characters or with a
 *		  character outside [a-z0-9_.], is held by nobody (false, no error);
 *		- a NULL argument gives NULL (the functions are STRICT).
 *
 *		The rules live in the SQL below (the loader) and in entry_holds (the
 *		decision); rbac_cache.c keeps what the loader found, rbac_query.c
 *		runs it with the owner's rights and the latest snapshot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/timestamp.h"

#include "rbac.h"
#include "rbac_cache.h"
#include "rbac_query.h"

/*
 * The roles a user holds, with the expiry each brings (the user_roles
 * grant's, NULL for the primary role): $1 user id, $2 statement time.  An
 * inactive, deleted or unknown user holds none.  UNION (not UNION ALL) stops
 * the recursion on an inheritance cycle.
 */
#define ROLES_HELD_SQL \
	"WITH RECURSIVE\n" \
	"u AS (\n" \
	"	SELECT id, org_id, role FROM iam.users\n" \
	"	WHERE id = $1 AND is_active AND deleted_at IS NULL\n" \
	"),\n" \
	"held(role_id, expires_at) AS (\n" \
	"	(SELECT r.id, NULL::timestamptz\n" \
	"	 FROM u JOIN iam.roles r ON r.name = u.role AND (r.org_id = u.org_id OR r.org_id IS NULL)\n" \
	"	 ORDER BY r.org_id NULLS LAST LIMIT 1)\n" \
	"	UNION ALL\n" \
	"	SELECT ur.role_id, ur.expires_at\n" \
	"	FROM u JOIN iam.user_roles ur ON ur.user_id = u.id AND ur.org_id = u.org_id\n" \
	"	JOIN iam.roles r ON r.id = ur.role_id AND (r.org_id = u.org_id OR r.org_id IS NULL)\n" \
	"	WHERE ur.expires_at IS NULL OR ur.expires_at > $2\n" \
	"),\n" \
	"closure(role_id, expires_at) AS (\n" \
	"	SELECT role_id, expires_at FROM held\n" \
	"	UNION\n" \
	"	SELECT ri.inherits_role_id, c.expires_at\n" \
	"	FROM closure c\n" \
	"	JOIN iam.role_inheritance ri ON ri.role_id = c.role_id\n" \
	"	JOIN iam.roles r ON r.id = ri.inherits_role_id\n" \
	"	CROSS JOIN u\n" \
	"	WHERE (r.org_id = u.org_id OR r.org_id IS NULL)\n" \
	"	  AND (ri.org_id = u.org_id OR ri.org_id IS NULL)\n" \
	")\n"

/*
 * Everything a user holds: (permission, resource_type, resource_id,
 * expires_at), resource NULL for a global grant.  A permission may come more
 * than once.
 */
static RbacQuery load_user_query = {
	ROLES_HELD_SQL
	"SELECT p.name::text, NULL::text, NULL::uuid, c.expires_at\n"
	"FROM closure c\n"
	"JOIN iam.role_permissions rp ON rp.role_id = c.role_id\n"
	"JOIN iam.permissions p ON p.id = rp.permission_id\n"
	"UNION ALL\n"
	"SELECT p.name::text, up.resource_type::text, up.resource_id, up.expires_at\n"
	"FROM u JOIN iam.user_permissions up ON up.user_id = u.id AND up.org_id = u.org_id\n"
	"JOIN iam.permissions p ON p.id = up.permission_id\n"
	"WHERE up.expires_at IS NULL OR up.expires_at > $2",
	2, {UUIDOID, TIMESTAMPTZOID}, NULL
};

static RbacQuery effective_roles_query = {
	ROLES_HELD_SQL
	"SELECT DISTINCT r.name::text FROM closure c JOIN iam.roles r ON r.id = c.role_id ORDER BY 1",
	2, {UUIDOID, TIMESTAMPTZOID}, NULL
};

/* bit order is byte order, so user_permissions comes out sorted */
static RbacQuery permission_names_query = {
	"SELECT name::text FROM iam.permissions ORDER BY name COLLATE \"C\"",
	0, {InvalidOid}, NULL
};

PG_FUNCTION_INFO_V1(iam_has_permission);
PG_FUNCTION_INFO_V1(iam_has_permission_on);
PG_FUNCTION_INFO_V1(iam_check_permissions);
PG_FUNCTION_INFO_V1(iam_user_permissions);
PG_FUNCTION_INFO_V1(iam_effective_roles);

bool
rbac_permission_name_copy(const char *name, int len, char *buf)
{
	if (len < 1 || len > RBAC_PERMISSION_MAX_LEN)
		return false;
	for (int i = 0; i < len; i++)
	{
		char		c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
			return false;
		buf[i] = c;
	}
	buf[len] = '\0';
	return true;
}

/* Copy a text datum of at most max bytes into buf; false if longer. */
static bool
text_datum_copy(Datum datum, char *buf, int max)
{
	text	   *t = DatumGetTextPP(datum);
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len > max)
		return false;
	memcpy(buf, VARDATA_ANY(t), len);
	buf[len] = '\0';
	return true;
}

/*
 * rbac_prepare applies the invalidations other sessions committed (a cheap
 * unlocked test when there are none) and, when the cache is stale, rebuilds
 * it: reloads the permission dictionary.  After it, permission bits are
 * valid for the rest of the call.
 */
static void
rbac_prepare(void)
{
	RbacQueryScope scope;
	uint64		generation;
	uint64		count;
	char	  **names;

	AcceptInvalidationMessages();
	if (rbac_cache_is_valid())
		return;

	generation = rbac_cache_begin_rebuild();
	rbac_query_begin(&scope);
	count = rbac_query_run(&permission_names_query, NULL, NULL, true);
	names = MemoryContextAlloc(scope.caller_context, sizeof(char *) * Max(count, 1));
	for (uint64 i = 0; i < count; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext oldcontext = MemoryContextSwitchTo(scope.caller_context);

		names[i] = TextDatumGetCString(d);
		MemoryContextSwitchTo(oldcontext);
	}
	rbac_query_end(&scope);
	rbac_cache_finish_rebuild(generation, names, (int) count);
}

/*
 * load_user resolves what user_id holds at now and hands it to the cache;
 * returns the cached entry or, when the cache cannot keep it, a transient
 * one in the caller's memory context.
 */
static RbacUserEntry *
load_user(const pg_uuid_t *user_id, TimestampTz now)
{
	uint64		generation = rbac_cache_generation();
	RbacUserEntry *entry = rbac_cache_new_entry(user_id);
	RbacQueryScope scope;
	Datum		values[2];
	uint64		count;

	values[0] = UUIDPGetDatum(user_id);
	values[1] = TimestampTzGetDatum(now);
	rbac_query_begin(&scope);
	count = rbac_query_run(&load_user_query, values, NULL, true);
	for (uint64 i = 0; i < count; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		char		name[RBAC_PERMISSION_MAX_LEN + 1];
		bool		isnull;
		Datum		d;
		int			bit;

		d = SPI_getbinval(tuple, tupdesc, 1, &isnull);
		/* a permission created since the dictionary was loaded: next rebuild */
		if (!text_datum_copy(d, name, RBAC_PERMISSION_MAX_LEN) ||
			(bit = rbac_cache_permission_bit(name)) < 0)
			continue;

		d = SPI_getbinval(tuple, tupdesc, 4, &isnull);
		if (!isnull)
			entry->valid_until = Min(entry->valid_until, DatumGetTimestampTz(d));

		d = SPI_getbinval(tuple, tupdesc, 2, &isnull);
		if (isnull)
			entry->bits[bit / 64] |= UINT64CONST(1) << (bit % 64);
		else
		{
			RbacScopedGrant *grant;

			if (entry->scoped == NULL)
				entry->scoped = MemoryContextAlloc(scope.caller_context,
												   sizeof(RbacScopedGrant) * count);
			grant = &entry->scoped[entry->nscoped];
			/* resource_type is varchar(50) of [a-z0-9_]: it always fits */
			if (!text_datum_copy(d, grant->resource_type, RBAC_RESOURCE_TYPE_MAX_LEN))
				continue;
			grant->bit = bit;
			grant->resource_id = *DatumGetUUIDP(SPI_getbinval(tuple, tupdesc, 3, &isnull));
			entry->nscoped++;
		}
	}
	rbac_query_end(&scope);
	return rbac_cache_store(generation, entry);
}

/* What user_id holds now: from the cache, or loaded. */
static RbacUserEntry *
user_entry(const pg_uuid_t *user_id)
{
	TimestampTz now = GetCurrentStatementStartTimestamp();
	RbacUserEntry *entry = rbac_cache_find(user_id, now);

	return entry != NULL ? entry : load_user(user_id, now);
}

/*
 * entry_holds decides whether entry holds the permission bit (-1: unknown
 * permission), globally when resource_type is NULL, else on that resource.
 */
static bool
entry_holds(const RbacUserEntry *entry, int bit,
			const char *resource_type, int resource_type_len,
			const pg_uuid_t *resource_id)
{
	if (bit < 0)
		return false;
	if (entry->platform_admin || rbac_entry_has_bit(entry, bit))
		return true;
	if (resource_type == NULL)
		return false;
	for (int i = 0; i < entry->nscoped; i++)
	{
		const RbacScopedGrant *grant = &entry->scoped[i];

		if (grant->bit == bit &&
			memcmp(&grant->resource_id, resource_id, sizeof(pg_uuid_t)) == 0 &&
			strncmp(grant->resource_type, resource_type, resource_type_len) == 0 &&
			grant->resource_type[resource_type_len] == '\0')
			return true;
	}
	return false;
}

/* One check; resource_type NULL for the global question. */
static bool
check_one(const pg_uuid_t *user_id, const char *permission, int permission_len,
		  const char *resource_type, int resource_type_len,
		  const pg_uuid_t *resource_id)
{
	char		name[RBAC_PERMISSION_MAX_LEN + 1];
	int			bit;

	if (!rbac_permission_name_copy(permission, permission_len, name))
		return false;
	/* a longer resource_type than the column allows matches no grant */
	if (resource_type != NULL && resource_type_len > RBAC_RESOURCE_TYPE_MAX_LEN)
		resource_type = NULL;
	rbac_prepare();
	bit = rbac_cache_permission_bit(name);
	if (bit < 0)
		return false;
	return entry_holds(user_entry(user_id), bit, resource_type, resource_type_len, resource_id);
}

bool
rbac_user_holds(pg_uuid_t *user_id, const char *permission)
{
	if (user_id == NULL || permission == NULL)
		return false;
	return check_one(user_id, permission, strlen(permission), NULL, 0, NULL);
}

/* iam.has_permission(user_id uuid, permission text) */
Datum
iam_has_permission(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id = PG_GETARG_UUID_P(0);
	text	   *permission = PG_GETARG_TEXT_PP(1);

	PG_RETURN_BOOL(check_one(user_id, VARDATA_ANY(permission), VARSIZE_ANY_EXHDR(permission),
							 NULL, 0, NULL));
}

/* iam.has_permission(user_id uuid, permission text, resource_type text, resource_id uuid) */
Datum
iam_has_permission_on(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id = PG_GETARG_UUID_P(0);
	text	   *permission = PG_GETARG_TEXT_PP(1);
	text	   *resource_type = PG_GETARG_TEXT_PP(2);
	pg_uuid_t  *resource_id = PG_GETARG_UUID_P(3);

	PG_RETURN_BOOL(check_one(user_id, VARDATA_ANY(permission), VARSIZE_ANY_EXHDR(permission),
							 VARDATA_ANY(resource_type), VARSIZE_ANY_EXHDR(resource_type),
							 resource_id));
}

/*
 * iam.check_permissions(user_id uuid, permissions text[]) -> boolean[]: one
 * answer per element, in the same positions (NULL for a NULL element).
 */
Datum
iam_check_permissions(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id = PG_GETARG_UUID_P(0);
	ArrayType  *permissions = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *elem_nulls;
	int			count;
	Datum	   *answers;
	RbacUserEntry *entry;

	if (ARR_NDIM(permissions) == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(BOOLOID));
	deconstruct_array(permissions, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &elem_nulls, &count);

	rbac_prepare();
	entry = user_entry(user_id);
	answers = palloc(sizeof(Datum) * count);
	for (int i = 0; i < count; i++)
	{
		text	   *t;
		char		name[RBAC_PERMISSION_MAX_LEN + 1];
		bool		held = false;

		if (elem_nulls[i])
		{
			answers[i] = BoolGetDatum(false);
			continue;
		}
		t = DatumGetTextPP(elems[i]);
		if (rbac_permission_name_copy(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), name))
			held = entry_holds(entry, rbac_cache_permission_bit(name), NULL, 0, NULL);
		answers[i] = BoolGetDatum(held);
	}
	PG_RETURN_ARRAYTYPE_P(construct_md_array(answers, elem_nulls, ARR_NDIM(permissions),
											 ARR_DIMS(permissions), ARR_LBOUND(permissions),
											 BOOLOID, 1, true, TYPALIGN_CHAR));
}

/*
 * iam.user_permissions(user_id uuid) -> setof text: the permissions held
 * globally now, in name order (every permission for a platform admin).
 */
Datum
iam_user_permissions(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id = PG_GETARG_UUID_P(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RbacUserEntry *entry;
	int			count;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	rbac_prepare();
	entry = user_entry(user_id);
	count = rbac_cache_permission_count();
	for (int bit = 0; bit < count; bit++)
	{
		Datum		value;
		bool		isnull = false;

		if (!entry->platform_admin && !rbac_entry_has_bit(entry, bit))
			continue;
		value = CStringGetTextDatum(rbac_cache_permission_name(bit));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}

/*
 * iam.effective_roles(user_id uuid) -> setof text: names of the roles held
 * now (primary, granted, inherited), in name order.  Not cached: it is for
 * people and the admin UI, not for hot paths.
 */
Datum
iam_effective_roles(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RbacQueryScope scope;
	Datum		values[2];
	uint64		count;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = TimestampTzGetDatum(GetCurrentStatementStartTimestamp());
	rbac_query_begin(&scope);
	count = rbac_query_run(&effective_roles_query, values, NULL, true);
	for (uint64 i = 0; i < count; i++)
	{
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		/* the tuplestore copies the value into its own context */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	rbac_query_end(&scope);
	return (Datum) 0;
}
