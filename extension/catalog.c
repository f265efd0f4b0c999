/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		Look-ups of the extension's own objects in the system catalogs,
 *		shared by the modules that act with the rights of the tables' owner
 *		(the RBAC reads, the audit appends).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"

/*
 * iam_table_owner returns the owner of table iam.<relname>; an error when
 * the table does not exist (the extension is damaged).
 */
Oid
iam_table_owner(const char *relname)
{
	Oid			relid = get_relname_relid(relname, get_namespace_oid("iam", false));
	HeapTuple	tuple;
	Oid			owner;

	if (!OidIsValid(relid))
		elog(ERROR, "table iam.%s does not exist", relname);
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}
