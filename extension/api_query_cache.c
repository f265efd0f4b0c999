/*-------------------------------------------------------------------------
 *
 * api_query_cache.c
 *		iam.api_cached_query(sql, args, custom_plans): the rows of a query
 *		of the REST API's listings, prepared once per backend and query text.
 *
 * The listings (users, audit and activity logs) build their query from the
 * filters, sort and cursor of the request, so PL/pgSQL's EXECUTE parsed,
 * analysed and planned it for every page: two thirds of the query's cost
 * for a page of 50 users (perf), and more with a keyset cursor, whose row
 * comparison the planner estimates against the statistics each time.  The
 * shapes are few (the text carries only identifiers and the page size, every
 * value is a parameter), so they are kept here as SPI plans, keyed by their
 * text, like ri_triggers.c keeps its plans, and the plan cache replans
 * them after DDL or a change of statistics or search_path.  A plain page
 * or a page after a cursor has one best plan whatever the values (the
 * index on the organisation and the sort key), so it is planned once, as
 * a generic plan: left to choose, the plan cache kept planning for each
 * call, since the generic plan's estimate for "any organisation" costs more
 * than a custom plan's for a large one.  With custom_plans the query is
 * planned for each call's values (filters and searches, whose best plan
 * depends on them), still without parsing it again.
 *
 * The parameters are all text (the query casts them: $1::uuid), so that
 * one function serves every listing; NULL elements are NULL parameters.
 * At most API_QUERY_CACHE_MAX texts of under API_QUERY_MAX_LEN bytes are
 * kept by a backend; others run unprepared, as before.  Internal: it runs
 * whatever it is given, so only the extension's own SECURITY DEFINER
 * functions may call it (no grant to anyone), and it is STABLE, so it
 * reads with the caller's snapshot and refuses to write.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"

PG_FUNCTION_INFO_V1(iam_api_cached_query);

#define API_QUERY_MAX_LEN		2048
#define API_QUERY_CACHE_MAX		256
#define API_QUERY_MAX_ARGS		32

typedef struct QueryPlan
{
	char		sql[API_QUERY_MAX_LEN];	/* the key */
	int			nargs;
	bool		custom_plans;
	SPIPlanPtr	plan;
} QueryPlan;

static HTAB *query_plans = NULL;

/*
 * cached_plan returns the kept plan of sql with nargs text parameters,
 * preparing it the first time; NULL when sql is not to be kept.
 */
static SPIPlanPtr
cached_plan(const char *sql, int nargs, Oid *argtypes, bool custom_plans)
{
	QueryPlan  *entry;
	SPIPlanPtr	plan;

	if (strlen(sql) >= API_QUERY_MAX_LEN)
		return NULL;
	if (query_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = API_QUERY_MAX_LEN;
		ctl.entrysize = sizeof(QueryPlan);
		query_plans = hash_create("iam api query plans", 64, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	entry = hash_search(query_plans, sql, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->nargs == nargs && entry->custom_plans == custom_plans ? entry->plan : NULL;
	if (hash_get_num_entries(query_plans) >= API_QUERY_CACHE_MAX)
		return NULL;

	/* prepared before the entry exists: a query that fails leaves none */
	plan = SPI_prepare_cursor(sql, nargs, argtypes,
							  custom_plans ? CURSOR_OPT_CUSTOM_PLAN : CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "iam.api_cached_query: cannot prepare: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "iam.api_cached_query: cannot keep the plan");
	entry = hash_search(query_plans, sql, HASH_ENTER, NULL);
	entry->nargs = nargs;
	entry->custom_plans = custom_plans;
	entry->plan = plan;
	return plan;
}

/* the query's columns must be those of the caller's column definition list */
static void
check_columns(TupleDesc got, TupleDesc expected)
{
	bool		same = got->natts == expected->natts;

	for (int i = 0; same && i < got->natts; i++)
		same = TupleDescAttr(got, i)->atttypid == TupleDescAttr(expected, i)->atttypid;
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("iam.api_cached_query: the query's columns are not those of the column definition list"),
				 errhint("Name as many columns, of the same types, in the AS clause as the query returns.")));
}

/*
 * iam.api_cached_query(sql text, args text[], custom_plans boolean) returns
 * setof record: the rows of sql with $1..$n the elements of args, as text.
 */
Datum
iam_api_cached_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *sql;
	Datum	   *values = NULL;
	bool	   *isnull = NULL;
	int			nargs = 0;
	Oid			argtypes[API_QUERY_MAX_ARGS];
	char		nulls[API_QUERY_MAX_ARGS];
	SPIPlanPtr	plan;
	int			rc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("iam.api_cached_query: the query is NULL"),
				 errhint("Pass the query's text.")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
	{
		ArrayType  *args = PG_GETARG_ARRAYTYPE_P(1);

		if (ARR_NDIM(args) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("iam.api_cached_query: the arguments must be a one-dimensional array"),
					 errhint("Pass ARRAY[...]::text[].")));
		deconstruct_array(args, TEXTOID, -1, false, TYPALIGN_INT, &values, &isnull, &nargs);
		if (nargs > API_QUERY_MAX_ARGS)
			ereport(ERROR,
					(errcode(ERRCODE_TOO_MANY_ARGUMENTS),
					 errmsg("iam.api_cached_query: at most %d arguments", API_QUERY_MAX_ARGS),
					 errhint("Pass fewer arguments.")));
	}
	for (int i = 0; i < nargs; i++)
	{
		argtypes[i] = TEXTOID;
		nulls[i] = isnull[i] ? 'n' : ' ';
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "iam.api_cached_query: SPI_connect failed");
	plan = cached_plan(sql, nargs, argtypes, !PG_ARGISNULL(2) && PG_GETARG_BOOL(2));
	if (plan != NULL)
		rc = SPI_execute_plan(plan, values, nulls, true, 0);
	else
		rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "iam.api_cached_query: not a query: %s", SPI_result_code_string(rc));
	check_columns(SPI_tuptable->tupdesc, rsinfo->setDesc);
	for (uint64 i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
	return (Datum) 0;
}
