-- reports_upgrade: an installation of 0.4 with data reaches 0.5 with ALTER
-- EXTENSION iam UPDATE: activity_logs becomes partitioned by month with its
-- rows, privileges and row-level security, and the report views hold the
-- existing data at once.  In a database of its own, dropped at the end.
\set VERBOSITY terse
\set regress_db :DBNAME
CREATE DATABASE iam_reports_upgrade_regress;
\c iam_reports_upgrade_regress
SET client_min_messages = warning;
CREATE EXTENSION iam VERSION '0.4' CASCADE;
SELECT iam.create_organization('Upgrade', 'upgrade') AS org \gset
SELECT count(iam.create_user(:'org', 'u' || i || '@up.example', 'U ' || i, CASE WHEN i = 1 THEN 'admin' ELSE 'member' END, NULL))
FROM generate_series(1, 5) AS i;
INSERT INTO iam.activity_logs (org_id, type, created_at)
VALUES (:'org', 'login', '2020-03-04 05:06:07+00'), (:'org', 'login', now()), (:'org', 'login_failed', now());
SELECT iam.audit_seal() > 0 AS sealed;
SELECT relkind FROM pg_class WHERE oid = 'iam.activity_logs'::regclass;
ALTER EXTENSION iam UPDATE TO '0.5';
SELECT extversion FROM pg_extension WHERE extname = 'iam';
-- activity_logs: partitioned, the rows kept in their months' partitions
SELECT relkind, relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'iam.activity_logs'::regclass;
SELECT tableoid::regclass = 'iam_internal.activity_logs_p202003'::regclass AS march_2020, count(*)
FROM iam.activity_logs GROUP BY 1 ORDER BY 1;
SELECT count(*) AS in_default FROM iam_internal.activity_logs_default;
SELECT has_table_privilege('iam_auditor', 'iam.activity_logs', 'SELECT') AS auditor_reads,
	   has_table_privilege('iam_service', 'iam.activity_logs', 'SELECT') AS service_reads;
SELECT to_regclass('iam_internal.activity_logs_0_4') IS NULL AS old_table_gone;
-- the reports hold the data of 0.4
SELECT total_users, users_by_role FROM iam.user_statistics WHERE org_id = :'org';
SELECT role_name, direct_members FROM iam.role_analytics WHERE org_id = :'org' ORDER BY role_name;
SELECT action, events FROM iam.audit_summary WHERE org_id = :'org' ORDER BY action;
SELECT type, sum(events) FROM iam.activity_trends WHERE org_id = :'org' GROUP BY type ORDER BY type;
SELECT view_name, source FROM iam.view_refreshes ORDER BY id;
-- and keep up with new data
INSERT INTO iam.activity_logs (org_id, type) VALUES (:'org', 'lockout');
INSERT INTO iam.users (org_id, email, name) VALUES (:'org', 'u6@up.example', 'U 6');
SELECT view_name, rows > 0 AS refreshed FROM iam.refresh_views() ORDER BY view_name;
SELECT total_users FROM iam.user_statistics WHERE org_id = :'org';
SELECT sum(events) AS lockouts FROM iam.activity_trends WHERE org_id = :'org' AND type = 'lockout';
SELECT count(*) AS report_routes FROM iam.routes WHERE path LIKE '/reports/%';
\c :regress_db
DROP DATABASE iam_reports_upgrade_regress;
