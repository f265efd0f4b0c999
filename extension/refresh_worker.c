/*-------------------------------------------------------------------------
 *
 * refresh_worker.c
 *		The refresh worker: a static background worker, registered when iam
 *		is in shared_preload_libraries, that keeps the report views of
 *		database iam.database fresh.  Each view is refreshed on its own
 *		period (iam.refresh_<view>_period) by calling iam.refresh_view(name)
 *		in a transaction of its own, which folds the changes since the last
 *		refresh, runs REFRESH MATERIALIZED VIEW CONCURRENTLY and records the
 *		refresh, or its failure, in iam.view_refreshes.  The worker also
 *		creates the monthly partitions of iam.activity_logs ahead of time
 *		(iam.activity_partitions_ahead), and from 0.6 those of the sealed
 *		audit trail (iam.audit_partitions_ahead), at start and every hour.
 *
 *		With iam.refresh_schedule = off the worker refreshes nothing by
 *		itself: pg_cron (or anything else) calls iam.refresh_views() or
 *		iam.refresh_view(name) instead.  The partitions are still created.
 *
 *		Settings are re-read on SIGHUP (pg_reload_conf()): a changed period
 *		applies at once, counted from the view's last refresh.  The worker
 *		waits on its latch, exits with the postmaster or on SIGTERM, starts
 *		only once recovery has finished (so never on a hot standby), and is
 *		restarted by the postmaster REFRESH_WORKER_RESTART seconds after it
 *		died (a crash, or the database not existing yet).  A refresh that
 *		fails is recorded by iam.refresh_view itself; any other error of a
 *		pass is logged and the pass abandoned, and the worker carries on.
 *
 *		No shared state: the worker keeps its schedule in local memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "refresh_worker.h"

#define REFRESH_WORKER_RESTART 10
/* how long to sleep while the extension (at 0.5) is missing, in ms */
#define REFRESH_WORKER_IDLE 10000
/* how often to make sure the partitions ahead exist, in ms */
#define REFRESH_PARTITION_EVERY (3600 * 1000L)

typedef struct ReportView
{
	const char *name;			/* iam.<name>, the argument of refresh_view */
	int			period;			/* seconds; 0 = not on a schedule */
	TimestampTz last;			/* last refresh (attempt), 0 = unknown */
} ReportView;

static ReportView views[] = {
	{"user_statistics", 3600, 0},
	{"role_analytics", 86400, 0},
	{"audit_summary", 86400, 0},
	{"activity_trends", 3600, 0},
};
#define NVIEWS ((int) lengthof(views))

static bool refresh_schedule = true;
static bool schedule_loaded = false;	/* views[].last read from the table */
static int	partitions_ahead = 3;
static int	audit_partitions_ahead = 3;

/*
 * RefreshWorkerInit defines the worker's settings and, when the library is
 * being preloaded, registers the worker.
 */
void
RefreshWorkerInit(void)
{
	BackgroundWorker worker;
	MemoryContext old;
	int			i;

	DefineCustomBoolVariable("iam.refresh_schedule",
							 "Whether the refresh worker refreshes the report views on their periods.",
							 "Turn off when pg_cron schedules iam.refresh_views() instead.",
							 &refresh_schedule, true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	/* GUC keeps the descriptions by reference */
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (i = 0; i < NVIEWS; i++)
		DefineCustomIntVariable(psprintf("iam.refresh_%s_period", views[i].name),
								psprintf("Time between two refreshes of iam.%s by the refresh worker.",
										 views[i].name),
								"0 leaves the view to iam.refresh_view() calls.",
								&views[i].period,
								views[i].period, 0, INT_MAX / 1000,
								PGC_SIGHUP, GUC_UNIT_S,
								NULL, NULL, NULL);
	MemoryContextSwitchTo(old);
	DefineCustomIntVariable("iam.audit_partitions_ahead",
							"Months of iam.audit_logs partitions the refresh worker creates ahead of the current one.",
							NULL,
							&audit_partitions_ahead,
							3, 0, 120,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("iam.activity_partitions_ahead",
							"Months of iam.activity_logs partitions the refresh worker creates ahead of the current one.",
							NULL,
							&partitions_ahead,
							3, 0, 120,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = REFRESH_WORKER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "iam");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "refresh_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "iam refresh worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "iam refresh worker");
	RegisterBackgroundWorker(&worker);
}

/* begin_pass / end_pass: one transaction with SPI and a snapshot */
static void
begin_pass(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_pass(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * installed says whether the database has iam at 0.5 or later (the function
 * this worker calls), inside a pass.
 */
static bool
installed(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT to_regprocedure('iam.refresh_view(text)') IS NOT NULL", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && DatumGetBool(d);
}

/*
 * load_schedule sets each view's last refresh from iam.view_refreshes, so
 * that a restarted worker keeps the rhythm; returns false while the
 * extension is missing.
 */
static bool
load_schedule(void)
{
	bool		ok;
	int			i;

	begin_pass("iam refresh worker: reading iam.view_refreshes");
	ok = installed();
	if (ok)
	{
		if (SPI_execute("SELECT view_name, max(started_at) FROM iam.view_refreshes GROUP BY view_name",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed");
		for (i = 0; i < NVIEWS; i++)
		{
			uint64		r;

			views[i].last = 0;
			for (r = 0; r < SPI_processed; r++)
			{
				char	   *name = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
				bool		isnull;
				Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);

				if (strcmp(name, views[i].name) == 0 && !isnull)
					views[i].last = DatumGetTimestampTz(d);
			}
		}
	}
	end_pass();
	schedule_loaded = ok;
	return ok;
}

/* refresh_one: SELECT iam.refresh_view(name), in a transaction of its own */
static void
refresh_one(ReportView *view)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	begin_pass(psprintf("iam refresh worker: refreshing iam.%s", view->name));
	if (installed())
	{
		args[0] = CStringGetTextDatum(view->name);
		if (SPI_execute_with_args("SELECT iam.refresh_view($1)", 1, argtypes, args, NULL,
								  false, 1) != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_with_args failed");
	}
	end_pass();
	elog(DEBUG1, "iam refresh worker: refreshed iam.%s", view->name);
}

/*
 * add_partitions: iam.activity_logs_add_partitions(iam.activity_partitions_ahead)
 * and, from 0.6, iam.audit_logs_add_partitions(iam.audit_partitions_ahead)
 */
static void
add_partitions(void)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];

	begin_pass("iam refresh worker: creating activity_logs and audit_logs partitions");
	if (installed())
	{
		bool		isnull;
		Datum		d;

		args[0] = Int32GetDatum(partitions_ahead);
		if (SPI_execute_with_args("SELECT iam.activity_logs_add_partitions($1)", 1, argtypes, args, NULL,
								  false, 1) != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_with_args failed");
		if (SPI_execute("SELECT to_regprocedure('iam.audit_logs_add_partitions(integer)') IS NOT NULL",
						true, 1) != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull && DatumGetBool(d))
		{
			args[0] = Int32GetDatum(audit_partitions_ahead);
			if (SPI_execute_with_args("SELECT iam.audit_logs_add_partitions($1)", 1, argtypes, args, NULL,
									  false, 1) != SPI_OK_SELECT)
				elog(ERROR, "SPI_execute_with_args failed");
		}
	}
	end_pass();
}

/*
 * run_guarded runs one unit of work; an error is logged, its transaction
 * rolled back, and false returned, so that the worker carries on.
 */
static bool
run_guarded(void (*work) (ReportView *), ReportView *view, MemoryContext passcxt)
{
	bool		ok = true;

	PG_TRY();
	{
		work(view);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(passcxt);
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		pgstat_report_activity(STATE_IDLE, NULL);
		RESUME_INTERRUPTS();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static void
add_partitions_work(ReportView *unused)
{
	add_partitions();
}

static void
load_schedule_work(ReportView *unused)
{
	if (!load_schedule())
		elog(DEBUG1, "iam refresh worker: extension iam 0.5 is not installed yet");
}

void
refresh_worker_main(Datum main_arg)
{
	MemoryContext passcxt;
	char	   *database;
	TimestampTz next_partitions = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	database = pstrdup(GetConfigOption("iam.database", false, false));
	BackgroundWorkerInitializeConnection(database, NULL, 0);
	SetConfigOption("application_name", "iam refresh worker", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("iam refresh worker");

	passcxt = AllocSetContextCreate(TopMemoryContext, "iam refresh worker pass",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext old;
		TimestampTz now;
		long		timeout = REFRESH_WORKER_IDLE;
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* the months ahead may have changed: create them now */
			next_partitions = 0;
		}
		old = MemoryContextSwitchTo(passcxt);

		if (!schedule_loaded)
		{
			/* the extension may be created (or updated) later */
			run_guarded(load_schedule_work, NULL, passcxt);
			/* a view never refreshed is refreshed at once */
			for (i = 0; schedule_loaded && i < NVIEWS; i++)
				if (views[i].last == 0)
					views[i].last = 1;
		}

		if (schedule_loaded)
		{
			now = GetCurrentTimestamp();
			if (now >= next_partitions)
			{
				run_guarded(add_partitions_work, NULL, passcxt);
				next_partitions = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), REFRESH_PARTITION_EVERY);
			}
			timeout = (long) Min(REFRESH_PARTITION_EVERY,
								 TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_partitions) + 1);

			for (i = 0; refresh_schedule && i < NVIEWS; i++)
			{
				TimestampTz due;
				long		wait;

				if (views[i].period <= 0)
					continue;
				due = TimestampTzPlusMilliseconds(views[i].last, (int64) views[i].period * 1000);
				if (GetCurrentTimestamp() >= due)
				{
					/* the next one counts from the start of this one */
					views[i].last = GetCurrentTimestamp();
					run_guarded(refresh_one, &views[i], passcxt);
					due = TimestampTzPlusMilliseconds(views[i].last, (int64) views[i].period * 1000);
				}
				wait = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due);
				timeout = Min(timeout, Max(wait, 1));
				CHECK_FOR_INTERRUPTS();
			}
		}

		MemoryContextSwitchTo(old);
		MemoryContextReset(passcxt);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
