/*-------------------------------------------------------------------------
 *
 * rbac_explain.c
 *		iam.explain_permission(user_id, permission [, resource_type,
 *		resource_id]): why a user holds a permission, or why not, for
 *		support staff in psql.  One row per path that grants it, e.g.
 *			primary role editor -> inherits member -> users.read
 *			granted role auditor -> audit.read
 *			direct grant users.update on document <id>
 *			primary role ops -> platform.admin (implies every permission)
 *		(the arrow is U+2192 in a UTF8 database, "->" in any other)
 *		or, when nothing grants it, one row per path that would have but
 *		does not count (expired, other organisation, other resource), or a
 *		single row with the reason: invalid permission name, unknown user,
 *		user deleted, user inactive, unknown permission, no grant.
 *
 *		It reads the tables directly, never the cache, and applies the rules
 *		of rbac.c in SQL of its own, written to keep the paths; the
 *		regression tests hold the two to the same answers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "rbac.h"
#include "rbac_cache.h"
#include "rbac_query.h"

#define EXPLAIN_COLUMNS 5

/* $1 user id, $2 permission: (is_active, deleted, permission known); no row without the user */
static RbacQuery status_query = {
	"SELECT u.is_active, u.deleted_at IS NOT NULL,\n"
	"       EXISTS (SELECT FROM iam.permissions p WHERE p.name = $2)\n"
	"FROM iam.users u WHERE u.id = $1",
	2, {UUIDOID, TEXTOID}, NULL
};

/*
 * Every path to $2 or to platform.admin for user $1, with the reason it
 * counts or not: $3/$4 the resource asked about (NULL for the global
 * question), $5 the statement time, $6 the arrow.  Unlike the loader of
 * rbac.c it follows rows of other organisations and expired grants too, to
 * report them, and stops on a cycle by the roles already visited on a path.
 */
static RbacQuery paths_query = {
	"WITH RECURSIVE\n"
	"u AS (SELECT id, org_id, role FROM iam.users WHERE id = $1),\n"
	"held(role_id, path, via, expires_at, foreign_org, visited) AS (\n"
	"	(SELECT r.id, 'primary role ' || r.name, 'primary role', NULL::timestamptz, false, ARRAY[r.id]\n"
	"	 FROM u JOIN iam.roles r ON r.name = u.role AND (r.org_id = u.org_id OR r.org_id IS NULL)\n"
	"	 ORDER BY r.org_id NULLS LAST LIMIT 1)\n"
	"	UNION ALL\n"
	"	SELECT r.id, 'granted role ' || r.name, 'granted role', ur.expires_at,\n"
	"	       ur.org_id <> u.org_id OR coalesce(r.org_id <> u.org_id, false), ARRAY[r.id]\n"
	"	FROM u JOIN iam.user_roles ur ON ur.user_id = u.id\n"
	"	JOIN iam.roles r ON r.id = ur.role_id\n"
	"),\n"
	"closure(role_id, path, via, expires_at, foreign_org, visited) AS (\n"
	"	SELECT * FROM held\n"
	"	UNION ALL\n"
	"	SELECT r.id, c.path || $6 || 'inherits ' || r.name, c.via, c.expires_at,\n"
	"	       c.foreign_org OR coalesce(r.org_id <> u.org_id, false)\n"
	"	       OR coalesce(ri.org_id <> u.org_id, false),\n"
	"	       c.visited || r.id\n"
	"	FROM closure c\n"
	"	JOIN iam.role_inheritance ri ON ri.role_id = c.role_id\n"
	"	JOIN iam.roles r ON r.id = ri.inherits_role_id\n"
	"	CROSS JOIN u\n"
	"	WHERE r.id <> ALL (c.visited)\n"
	"),\n"
	"paths(path, via, expires_at, foreign_org, on_resource, perm) AS (\n"
	"	SELECT c.path || $6 || p.name, c.via, c.expires_at, c.foreign_org, NULL::boolean, p.name::text\n"
	"	FROM closure c\n"
	"	JOIN iam.role_permissions rp ON rp.role_id = c.role_id\n"
	"	JOIN iam.permissions p ON p.id = rp.permission_id\n"
	"	WHERE p.name IN ($2, 'platform.admin')\n"
	"	UNION ALL\n"
	"	SELECT 'direct grant ' || p.name\n"
	"	       || coalesce(' on ' || up.resource_type || ' ' || up.resource_id, ''),\n"
	"	       CASE WHEN up.resource_type IS NULL THEN 'direct grant' ELSE 'scoped grant' END,\n"
	"	       up.expires_at, up.org_id <> u.org_id,\n"
	"	       CASE WHEN up.resource_type IS NOT NULL\n"
	"	            THEN coalesce(up.resource_type = $3 AND up.resource_id = $4, false) END,\n"
	"	       p.name::text\n"
	"	FROM u JOIN iam.user_permissions up ON up.user_id = u.id\n"
	"	JOIN iam.permissions p ON p.id = up.permission_id\n"
	"	WHERE p.name IN ($2, 'platform.admin')\n"
	")\n"
	"SELECT reason = 'granted', reason, via, path, expires_at FROM (\n"
	"	SELECT CASE WHEN foreign_org THEN 'other organisation'\n"
	"	            WHEN expires_at <= $5 THEN 'expired'\n"
	"	            WHEN NOT coalesce(on_resource, true) THEN 'other resource'\n"
	"	            ELSE 'granted' END AS reason,\n"
	"	       via,\n"
	"	       path || CASE WHEN perm <> $2 THEN ' (implies every permission)' ELSE '' END AS path,\n"
	"	       expires_at\n"
	"	FROM paths\n"
	"	WHERE perm = $2 OR on_resource IS NULL\n"
	") x\n"
	"ORDER BY reason <> 'granted', path COLLATE \"C\"",
	6, {UUIDOID, TEXTOID, TEXTOID, UUIDOID, TIMESTAMPTZOID, TEXTOID}, NULL
};

PG_FUNCTION_INFO_V1(iam_explain_permission);

/* Add a row that says why not. */
static void
put_reason(ReturnSetInfo *rsinfo, const char *reason, const char *path)
{
	Datum		values[EXPLAIN_COLUMNS];
	bool		nulls[EXPLAIN_COLUMNS] = {false, false, true, false, true};

	values[0] = BoolGetDatum(false);
	values[1] = CStringGetTextDatum(reason);
	values[2] = (Datum) 0;
	values[3] = CStringGetTextDatum(path);
	values[4] = (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * iam.explain_permission(user_id uuid, permission text
 *						  [, resource_type text, resource_id uuid])
 *	 -> table (granted boolean, reason text, via text, path text,
 *			   expires_at timestamptz)
 */
Datum
iam_explain_permission(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *permission = PG_GETARG_TEXT_PP(1);
	char		name[RBAC_PERMISSION_MAX_LEN + 1];
	RbacQueryScope scope;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	uint64		count;
	bool		isnull;
	bool		any_granted = false;

	InitMaterializedSRF(fcinfo, 0);

	if (!rbac_permission_name_copy(VARDATA_ANY(permission), VARSIZE_ANY_EXHDR(permission), name))
	{
		char	   *shown = text_to_cstring(permission);
		int			len = strlen(shown);
		int			cut = pg_mbcliplen(shown, len, RBAC_PERMISSION_MAX_LEN);

		/* echo at most 100 bytes of what was asked */
		put_reason(rsinfo, "invalid permission name",
				   psprintf("\"%.*s%s\" is not a permission name: 1 to 100 characters out of a-z, 0-9, _ and .",
							cut, shown, cut < len ? "..." : ""));
		return (Datum) 0;
	}

	values[0] = PG_GETARG_DATUM(0);
	values[1] = CStringGetTextDatum(name);
	if (PG_NARGS() == 4)
	{
		values[2] = PG_GETARG_DATUM(2);
		values[3] = PG_GETARG_DATUM(3);
	}
	else
	{
		values[2] = values[3] = (Datum) 0;
		nulls[2] = nulls[3] = 'n';
	}
	values[4] = TimestampTzGetDatum(GetCurrentStatementStartTimestamp());
	values[5] = CStringGetTextDatum(GetDatabaseEncoding() == PG_UTF8 ? " \u2192 " : " -> ");

	rbac_query_begin(&scope);
	count = rbac_query_run(&status_query, values, nulls, true);
	if (count == 0)
		put_reason(rsinfo, "unknown user", "no user has this id");
	else
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		bool		active = DatumGetBool(SPI_getbinval(tuple, tupdesc, 1, &isnull));
		bool		deleted = DatumGetBool(SPI_getbinval(tuple, tupdesc, 2, &isnull));
		bool		known = DatumGetBool(SPI_getbinval(tuple, tupdesc, 3, &isnull));

		if (deleted)
			put_reason(rsinfo, "user deleted",
					   "the user is deleted (deleted_at is set): a deleted user holds nothing");
		else if (!active)
			put_reason(rsinfo, "user inactive",
					   "the user is inactive (is_active = false): an inactive user holds nothing");
		else if (!known)
			put_reason(rsinfo, "unknown permission",
					   psprintf("%s is not in iam.permissions", name));
		else
		{
			count = rbac_query_run(&paths_query, values, nulls, true);
			for (uint64 i = 0; i < count; i++)
				any_granted |= DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 1, &isnull));
			for (uint64 i = 0; i < count; i++)
			{
				Datum		row[EXPLAIN_COLUMNS];
				bool		row_nulls[EXPLAIN_COLUMNS];

				heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, row, row_nulls);
				/* when something grants it, the paths that do not are noise */
				if (any_granted && !DatumGetBool(row[0]))
					continue;
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, row_nulls);
			}
			if (count == 0)
				put_reason(rsinfo, "no grant",
						   psprintf("no role or direct grant gives %s", name));
		}
	}
	rbac_query_end(&scope);
	return (Datum) 0;
}
