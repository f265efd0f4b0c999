/*-------------------------------------------------------------------------
 *
 * escalation.c
 *		iam.record_escalation_attempt(event jsonb): writes an activity_logs
 *		row of type privilege_escalation_attempt that survives the caller's
 *		transaction, which is about to fail with 42501.
 *
 *		PostgreSQL has no autonomous transactions, so the row is written by a
 *		short-lived dynamic background worker in a transaction of its own;
 *		the caller waits for it to finish, so the row is committed before the
 *		refusal reaches the client.  The event travels in a dynamic shared
 *		memory segment as JSON text, and the worker reports success through
 *		the same segment.  Dynamic workers need no shared_preload_libraries.
 *		When no worker slot is free (max_worker_processes) the attempt goes to
 *		the server log instead, with a WARNING to the caller; the refusal
 *		itself never depends on the record being written.
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
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "escalation.h"

/* what the caller hands the worker, in a dsm segment */
typedef struct EscalationEvent
{
	Oid			database;
	bool		recorded;		/* set by the worker after COMMIT */
	Size		len;
	char		json[FLEXIBLE_ARRAY_MEMBER];	/* NUL-terminated */
} EscalationEvent;

PG_FUNCTION_INFO_V1(iam_record_escalation_attempt);

/*
 * log_to_server leaves the event in the server log when it could not be
 * recorded in the table.
 */
static void
log_to_server(const char *json, const char *why)
{
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("privilege escalation attempt not recorded in iam.activity_logs: %s", why),
			 errdetail_log("event: %s", json),
			 errhint("Raise max_worker_processes if no worker slot was free.")));
}

Datum
iam_record_escalation_attempt(PG_FUNCTION_ARGS)
{
	Jsonb	   *event = PG_GETARG_JSONB_P(0);
	char	   *json = JsonbToCString(NULL, &event->root, VARSIZE(event));
	Size		len = strlen(json);
	dsm_segment *seg;
	EscalationEvent *shared;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	bool		recorded;

	if (RecoveryInProgress())
	{
		log_to_server(json, "the server is in recovery");
		PG_RETURN_BOOL(false);
	}

	seg = dsm_create(offsetof(EscalationEvent, json) + len + 1, 0);
	shared = dsm_segment_address(seg);
	shared->database = MyDatabaseId;
	shared->recorded = false;
	shared->len = len;
	memcpy(shared->json, json, len + 1);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "iam");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "escalation_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "iam escalation recorder");
	snprintf(worker.bgw_type, BGW_MAXLEN, "iam escalation recorder");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(seg);
		log_to_server(json, "no background worker slot was free");
		PG_RETURN_BOOL(false);
	}

	status = WaitForBackgroundWorkerShutdown(handle);
	recorded = shared->recorded;
	dsm_detach(seg);

	if (status != BGWH_STOPPED || !recorded)
	{
		log_to_server(json, "the recording worker failed");
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}

/*
 * escalation_worker_main inserts one event and exits.  It runs as the
 * bootstrap superuser in the caller's database, with a lock timeout so that
 * it can never wait forever on its caller.
 */
void
escalation_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	EscalationEvent *shared;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			rc;

	BackgroundWorkerUnblockSignals();
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "iam escalation recorder");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map the escalation event segment")));
	shared = dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(shared->database, InvalidOid, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "recording a privilege escalation attempt");

	SPI_execute("SET LOCAL lock_timeout = '5s'", false, 0);
	args[0] = CStringGetTextDatum(shared->json);
	rc = SPI_execute_with_args(
		"INSERT INTO iam.activity_logs "
		"(user_id, org_id, type, description, ip_address, user_agent, metadata) "
		"SELECT (e->>'user_id')::uuid, (e->>'org_id')::uuid, 'privilege_escalation_attempt', "
		"e->>'description', e->>'ip', e->>'user_agent', e->'metadata' "
		"FROM (SELECT $1::jsonb AS e) event",
		1, argtypes, args, NULL, false, 1);
	if (rc != SPI_OK_INSERT || SPI_processed != 1)
		elog(ERROR, "inserting the escalation event failed: %s", SPI_result_code_string(rc));

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	shared->recorded = true;
	dsm_detach(seg);
	proc_exit(0);
}
