-- reports_incremental: audit_summary and activity_trends are plain views
-- over summaries that each refresh folds forward; the row counts recorded
-- for them are kept by the folds and stay exact; iam.report_rebuild(view)
-- rebuilds one report from scratch.  In a transaction, rolled back.
\set VERBOSITY terse
SET client_min_messages = warning;
BEGIN;
SELECT c.relname, c.relkind FROM pg_class c
WHERE c.oid IN ('iam.user_statistics'::regclass, 'iam.role_analytics'::regclass,
				'iam.audit_summary'::regclass, 'iam.activity_trends'::regclass)
ORDER BY 1;
SELECT iam.create_organization('Incremental', 'incremental') AS o \gset
INSERT INTO iam.activity_logs (org_id, type, created_at)
SELECT :'o', CASE WHEN i % 2 = 0 THEN 'login' ELSE 'login_failed' END, now() - i * interval '1 hour'
FROM generate_series(1, 6) AS i;
SELECT iam.refresh_view('activity_trends') AS n \gset
SELECT :n = count(*) AS rows_exact FROM iam.activity_trends;
SELECT sum(events) AS events FROM iam.activity_trends WHERE org_id = :'o';
-- groups that drop to zero leave the summary, and the count follows
DELETE FROM iam.activity_logs WHERE org_id = :'o' AND created_at < now() - interval '3 hours 30 minutes';
SELECT iam.refresh_view('activity_trends') AS n \gset
SELECT :n = count(*) AS rows_exact_after_delete FROM iam.activity_trends;
SELECT type, sum(events) AS events FROM iam.activity_trends WHERE org_id = :'o' GROUP BY type ORDER BY type;
-- audit rows are counted once sealed, from the watermark on
SELECT iam.audit_seal() >= 0 AS sealed;
SELECT iam.refresh_view('audit_summary') AS n \gset
SELECT :n = count(*) AS audit_rows_exact FROM iam.audit_summary;
SELECT action, events FROM iam.audit_summary WHERE org_id = :'o' ORDER BY action;
SELECT iam.refresh_view('audit_summary') AS n \gset
SELECT :n = count(*) AS nothing_new_nothing_counted FROM iam.audit_summary;
SELECT action, events FROM iam.audit_summary WHERE org_id = :'o' ORDER BY action;
-- rebuilt from scratch: the same contents
CREATE TEMP TABLE before AS
SELECT 'a' AS v, to_jsonb(s) AS r FROM iam.audit_summary s
UNION ALL SELECT 't', to_jsonb(s) FROM iam.activity_trends s
UNION ALL SELECT 'u', to_jsonb(s) FROM iam.user_statistics s;
SELECT iam.report_rebuild('activity_trends') AS n \gset
SELECT :n = count(*) AS activity_rebuilt FROM iam.activity_trends;
SELECT iam.report_rebuild('audit_summary') AS n \gset
SELECT :n = count(*) AS audit_rebuilt FROM iam.audit_summary;
SELECT iam.report_rebuild('user_statistics') AS n \gset
SELECT :n = count(*) AS users_rebuilt FROM iam.user_statistics;
SELECT iam.report_rebuild('role_analytics') AS n \gset
SELECT :n = count(*) AS roles_rebuilt FROM iam.role_analytics;
SELECT count(*) AS differences FROM (
	(SELECT * FROM before
	 EXCEPT ALL
	 (SELECT 'a', to_jsonb(s) FROM iam.audit_summary s
	  UNION ALL SELECT 't', to_jsonb(s) FROM iam.activity_trends s
	  UNION ALL SELECT 'u', to_jsonb(s) FROM iam.user_statistics s))) AS d;
SELECT iam.report_rebuild('users');
ROLLBACK;
