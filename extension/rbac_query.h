/*-------------------------------------------------------------------------
 *
 * rbac_query.h
 *		Reads of the RBAC tables for the permission engine: as the tables'
 *		owner, with a fixed search_path and the latest snapshot.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_RBAC_QUERY_H
#define IAM_RBAC_QUERY_H

#include "executor/spi.h"

#define RBAC_QUERY_MAX_ARGS 6

/* One statement, prepared on first use and kept for the life of the backend. */
typedef struct RbacQuery
{
	const char *sql;
	int			nargs;
	Oid			argtypes[RBAC_QUERY_MAX_ARGS];
	SPIPlanPtr	plan;
} RbacQuery;

/* What rbac_query_begin changed, for rbac_query_end to restore. */
typedef struct RbacQueryScope
{
	MemoryContext caller_context;	/* current before begin: copy results here */
	Oid			saved_userid;
	int			saved_sec_context;
	int			saved_nestlevel;
} RbacQueryScope;

extern void rbac_query_begin(RbacQueryScope *scope);
extern uint64 rbac_query_run(RbacQuery *query, Datum *values, const char *nulls,
							 bool read_only);
extern void rbac_query_end(RbacQueryScope *scope);

#endif							/* IAM_RBAC_QUERY_H */
