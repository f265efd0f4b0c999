/*-------------------------------------------------------------------------
 *
 * audit_sealer.c
 *		The sealer: a static background worker, registered when iam is in
 *		shared_preload_libraries, that seals the audit trail of database
 *		iam.database every iam.audit_seal_interval milliseconds (one
 *		transaction per pass; audit_chain.c does the work).  Without the
 *		preload there is no sealer: call iam.audit_seal() (from pg_cron, say)
 *		instead; iam.audit_status shows what waits.
 *
 *		Settings: iam.database (postmaster start), iam.audit_seal_interval
 *		(reload).  The worker waits on its latch, exits with the postmaster,
 *		reloads the configuration on SIGHUP and, when the database does not
 *		exist yet or an error ends it, is restarted by the postmaster after
 *		AUDIT_SEALER_RESTART seconds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "commands/dbcommands.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "audit_chain.h"
#include "audit_sealer.h"

#define AUDIT_SEALER_RESTART 5

static char *audit_database = NULL;
static int	audit_seal_interval = 200;
static bool audit_sealer_registered = false;	/* inherited from the postmaster */
static bool audit_sealer_warned = false;

/*
 * AuditSealerInit defines the sealer's settings and, when the library is
 * being preloaded, registers the worker.
 */
void
AuditSealerInit(void)
{
	BackgroundWorker worker;

	/*
	 * PostgreSQL allows a PGC_POSTMASTER setting to be defined only while
	 * preloading (otherwise it is FATAL).  Loaded later, there are no
	 * workers, and the setting is only shown.
	 */
	DefineCustomStringVariable("iam.database",
							   "Database whose audit trail the sealer worker seals.",
							   NULL,
							   &audit_database, "iam",
							   process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("iam.audit_seal_interval",
							"Time between two passes of the audit sealer.",
							"Bounds how long a committed audit row waits unsealed.",
							&audit_seal_interval,
							200, 10, 60000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = AUDIT_SEALER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "iam");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "audit_sealer_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "iam audit sealer");
	snprintf(worker.bgw_type, BGW_MAXLEN, "iam audit sealer");
	RegisterBackgroundWorker(&worker);
	audit_sealer_registered = true;
}

/*
 * audit_sealer_check says once per session, when rows wait unsealed in a
 * database no sealer worker serves, how to get them sealed.
 */
void
audit_sealer_check(int64 unsealed)
{
	if (unsealed == 0 || audit_sealer_warned)
		return;
	if (audit_sealer_registered && MyDatabaseId != InvalidOid &&
		strcmp(get_database_name(MyDatabaseId), audit_database) == 0)
		return;
	audit_sealer_warned = true;
	ereport(NOTICE,
			(errmsg("no audit sealer worker serves this database: unsealed rows wait for iam.audit_seal()"),
			 errhint("Add iam to shared_preload_libraries and set iam.database to this database, or schedule SELECT iam.audit_seal() with pg_cron.")));
}

/* seal_pass seals what is committed, in a transaction of its own */
static void
seal_pass(void)
{
	int64		n = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "sealing the audit trail");
	if (audit_chain_installed())
		n = audit_chain_seal();
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (n > 0)
		elog(DEBUG1, "iam audit sealer: sealed " INT64_FORMAT " rows", n);
}

void
audit_sealer_main(Datum main_arg)
{
	MemoryContext passcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(audit_database, NULL, 0);

	passcxt = AllocSetContextCreate(TopMemoryContext, "iam audit sealer pass",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext old;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 audit_seal_interval, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		old = MemoryContextSwitchTo(passcxt);
		seal_pass();
		MemoryContextSwitchTo(old);
		MemoryContextReset(passcxt);
	}
}
