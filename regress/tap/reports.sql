-- reports.sql: the refresh worker and pg_cron, in the database the worker
-- serves (iam.database = iam).  Not one transaction: the worker and pg_cron
-- only see committed data, and ALTER SYSTEM cannot run in a transaction.
-- Every wait is a bounded poll; nothing asserts how long anything took.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(10);

-- wait_for(condition, seconds): polls the condition (an SQL expression)
-- every 0.1 s, each time with a fresh snapshot (of the statistics too);
-- true once it holds
CREATE FUNCTION pg_temp.wait_for(cond text, seconds int) RETURNS boolean
	LANGUAGE plpgsql AS $$
DECLARE
	ok	boolean;
BEGIN
	FOR i IN 1 .. seconds * 10 LOOP
		PERFORM pg_stat_clear_snapshot();	-- pg_stat_activity is read once per transaction otherwise
		EXECUTE 'SELECT ' || cond INTO ok;
		IF ok THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN false;
END
$$;

-- pg_cron first: its jobs start on the minute.  The job connects over the
-- cluster's socket (TCP needs a password in the test cluster).
SELECT cron.schedule('iam-tap-reports', '* * * * *', $$SELECT iam.refresh_view('role_analytics')$$) AS job \gset
UPDATE cron.job SET nodename = split_part(current_setting('unix_socket_directories'), ',', 1) WHERE jobid = :job;

-- the report views (materialized, or plain views over the summaries in
-- iam_internal) have no row-level security: nobody but the owner reads them
SELECT is(array_agg(format('%s: %s', c.relname, r.rolname) ORDER BY 1), NULL,
		  'the report views are granted to no pg_iam role and not to PUBLIC')
FROM pg_class c
CROSS JOIN (SELECT rolname FROM pg_roles WHERE rolname IN ('iam_gateway', 'iam_service', 'iam_auditor')
			UNION ALL SELECT 'public') AS r
WHERE c.relnamespace = 'iam'::regnamespace
  AND c.relname IN ('user_statistics', 'role_analytics', 'audit_summary', 'activity_trends')
  AND has_table_privilege(r.rolname, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER');

-- the worker may still be waiting out its restart delay: the database or the
-- extension did not exist yet when the cluster started
SELECT ok(pg_temp.wait_for($$EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'iam refresh worker'
									  AND datname = current_database())$$, 30),
		  'the refresh worker runs in this database');
SELECT pid AS worker FROM pg_stat_activity WHERE backend_type = 'iam refresh worker' \gset

-- a shorter period, after pg_reload_conf()
SELECT now() AS t1 \gset
ALTER SYSTEM SET iam.refresh_activity_trends_period = 1;
SELECT pg_reload_conf() AS reloaded \gset
SELECT ok(pg_temp.wait_for(format($$EXISTS (SELECT FROM iam.view_refreshes WHERE view_name = 'activity_trends'
										   AND source = 'iam refresh worker' AND error IS NULL AND started_at > %L)$$, :'t1'), 60),
		  'the worker refreshes activity_trends on the period set by reload');

-- its refreshes show new data
SELECT iam.create_organization('Tap Reports', 'tap-reports') AS org \gset
SELECT now() AS t_org \gset
INSERT INTO iam.activity_logs (org_id, type) VALUES (:'org', 'lockout');
SELECT ok(pg_temp.wait_for(format($$EXISTS (SELECT FROM iam.activity_trends WHERE org_id = %L AND type = 'lockout')$$, :'org'), 60),
		  'a committed event reaches activity_trends through the worker');

-- a failing refresh is recorded, and the worker carries on
SELECT now() AS t2 \gset
ALTER TABLE iam_internal.activity_counts RENAME TO activity_counts_away;
SELECT ok(pg_temp.wait_for(format($$EXISTS (SELECT FROM iam.view_refreshes WHERE view_name = 'activity_trends'
										   AND source = 'iam refresh worker' AND error IS NOT NULL AND started_at > %L)$$, :'t2'), 60),
		  'the worker records a failing refresh in iam.view_refreshes');
ALTER TABLE iam_internal.activity_counts_away RENAME TO activity_counts;
SELECT now() AS t3 \gset
SELECT ok(pg_temp.wait_for(format($$EXISTS (SELECT FROM iam.view_refreshes WHERE view_name = 'activity_trends'
										   AND source = 'iam refresh worker' AND error IS NULL AND started_at > %L)$$, :'t3'), 60),
		  'the next refresh succeeds again');
SELECT is((SELECT pid FROM pg_stat_activity WHERE backend_type = 'iam refresh worker'), :worker,
		  'the same worker process: it survived the failure');

-- more audit partitions ahead, created by the worker on reload
ALTER SYSTEM SET iam.audit_partitions_ahead = 7;
SELECT pg_reload_conf() AS reloaded \gset
SELECT ok(pg_temp.wait_for(format($$EXISTS (SELECT FROM pg_class WHERE relnamespace = 'iam_internal'::regnamespace AND relname = %L)$$,
								  'audit_logs_p' || to_char((now() AT TIME ZONE 'UTC') + interval '7 months', 'YYYYMM')), 60),
		  'the worker creates the audit partitions iam.audit_partitions_ahead months ahead');
ALTER SYSTEM RESET iam.audit_partitions_ahead;

-- the worker's schedule off: settings for pg_cron
ALTER SYSTEM SET iam.refresh_schedule = off;
SELECT pg_reload_conf() AS reloaded \gset

-- pg_cron ran the job (every minute) after the organisation was created
SELECT ok(pg_temp.wait_for(format($$EXISTS (SELECT FROM iam.view_refreshes WHERE view_name = 'role_analytics'
										   AND source = 'pg_cron' AND error IS NULL AND started_at > %L)$$, :'t_org'), 90),
		  'pg_cron refreshed role_analytics with iam.refresh_view');
SELECT ok(EXISTS (SELECT FROM iam.role_analytics WHERE org_id = :'org'), 'role_analytics knows the new organisation');

-- leave things as they were
SELECT cron.unschedule(:job) AS unscheduled \gset
ALTER SYSTEM RESET iam.refresh_activity_trends_period;
ALTER SYSTEM RESET iam.refresh_schedule;
SELECT pg_reload_conf() AS reloaded \gset
DELETE FROM iam.organizations WHERE id = :'org';

SELECT * FROM finish();
