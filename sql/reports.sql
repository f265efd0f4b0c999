-- reports: the four report views hold the right numbers for a known
-- dataset, a refresh reflects new data (incrementally, and equal to a
-- computation from scratch), each organisation sees only its own reports
-- (functions and REST handlers, JSON and CSV), failures are recorded, and
-- activity_logs is partitioned by month.
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT iam.create_organization('Reports A', 'reports-a') AS a \gset
SELECT iam.create_organization('Reports B', 'reports-b') AS b \gset
CREATE TEMP TABLE today AS SELECT (now() AT TIME ZONE 'UTC')::date AS d;
GRANT SELECT ON today TO PUBLIC;

-- organisation A: 10 users over three days, roles admin/member/auditor and
-- an own role editor that inherits member; departments; 2FA; one
-- deactivated, one soft-deleted
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor', :'a');
INSERT INTO iam.role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM iam.roles r, iam.permissions p
WHERE r.org_id = :'a' AND r.name = 'editor' AND p.name IN ('users.update', 'users.read');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id)
SELECT e.id, m.id FROM iam.roles e, iam.roles m WHERE e.org_id = :'a' AND e.name = 'editor' AND m.name = 'member' AND m.is_system;
INSERT INTO iam.users (org_id, email, name, role, department, is_active, two_factor_enabled, deleted_at, created_at)
SELECT :'a', 'u' || i || '@reports-a.example', 'User ' || i, v.role, v.dept, v.active, v.tfa, v.deleted,
	   now() - make_interval(days => v.days_ago)
FROM (VALUES
	(1, 'admin', 'Ops', true, true, NULL::timestamptz, 0),
	(2, 'admin', 'Ops', true, false, NULL, 0),
	(3, 'member', 'Sales', true, true, NULL, 1),
	(4, 'member', 'Sales', true, false, NULL, 1),
	(5, 'member', 'Sales', false, false, NULL, 1),
	(6, 'member', NULL, true, false, NULL, 2),
	(7, 'editor', 'Sales', true, true, NULL, 2),
	(8, 'editor', NULL, true, false, NULL, 2),
	(9, 'auditor', 'Audit', true, false, NULL, 2),
	(10, 'member', 'Sales', true, false, now(), 200)) AS v (i, role, dept, active, tfa, deleted, days_ago);
-- extra roles: u3 (member) also editor, u4 (member) an expired auditor grant
INSERT INTO iam.user_roles (user_id, role_id, granted_at)
SELECT u.id, r.id, timestamptz '2026-01-02 03:04:05+00' FROM iam.users u, iam.roles r
WHERE u.email = 'u3@reports-a.example' AND r.org_id = :'a' AND r.name = 'editor';
INSERT INTO iam.user_roles (user_id, role_id, expires_at)
SELECT u.id, r.id, now() - interval '1 day' FROM iam.users u, iam.roles r
WHERE u.email = 'u4@reports-a.example' AND r.name = 'auditor' AND r.is_system;
-- organisation B: 2 users
SELECT count(iam.create_user(:'b', 'u' || i || '@reports-b.example', 'B ' || i, 'admin', NULL)) AS b_users
FROM generate_series(1, 2) AS i;
-- activity: fixed hours of yesterday
INSERT INTO iam.activity_logs (org_id, type, created_at)
SELECT :'a', t, (SELECT d FROM today)::timestamp AT TIME ZONE 'UTC' - interval '1 day' + make_interval(hours => h)
FROM (VALUES ('login', 9), ('login', 9), ('login', 10), ('login_failed', 9), ('lockout', 9),
			 ('permission_denied', 10), ('privilege_escalation_attempt', 10), ('logout', 11)) AS v (t, h);
INSERT INTO iam.activity_logs (org_id, type) VALUES (:'b', 'login');
SELECT iam.audit_seal() > 0 AS sealed;

-- before a refresh the views do not know the new organisations
SELECT count(*) AS a_rows FROM iam.user_statistics WHERE org_id = :'a';
SELECT view_name, rows IS NOT NULL AS ok, error FROM iam.refresh_views() LEFT JOIN LATERAL
	(SELECT error FROM iam.view_refreshes r WHERE r.view_name = refresh_views.view_name ORDER BY id DESC LIMIT 1) AS e ON true
ORDER BY view_name;

-- user_statistics
SELECT total_users, active_users, inactive_users, deleted_users, two_factor_users, two_factor_adoption,
	   users_by_role, users_by_department, users_without_department
FROM iam.user_statistics WHERE org_id = :'a';
SELECT (SELECT d FROM today) - key::date AS days_ago, value AS new_users
FROM iam.user_statistics, jsonb_each(new_users_per_day) WHERE org_id = :'a' ORDER BY 1;
SELECT total_users, users_by_role FROM iam.user_statistics WHERE org_id = :'b';

-- role_analytics: u3 holds editor directly (extra grant), u7 and u8 as
-- primary role; member is held directly by u3, u4, u6 (u5 is inactive) and
-- through editor by u7 and u8; u4's auditor grant has expired
SELECT role_name, is_system, direct_members, inherited_members, permission_count, own_permission_count,
	   CASE WHEN last_granted_at = timestamptz '2026-01-02 03:04:05+00' THEN '2026-01-02'
			WHEN last_granted_at IS NOT NULL THEN 'today' END AS last_granted
FROM iam.role_analytics WHERE org_id = :'a' ORDER BY role_name;

-- audit_summary: the changes above, per action and entity type
SELECT day = (SELECT d FROM today) AS today, action, entity_type, events
FROM iam.audit_summary WHERE org_id = :'a' ORDER BY action, entity_type;

-- activity_trends
SELECT hour - ((SELECT d FROM today)::timestamp AT TIME ZONE 'UTC' - interval '1 day') AS hour_of_yesterday,
	   type, category, events
FROM iam.activity_trends WHERE org_id = :'a' ORDER BY 1, 2;

-- a refresh reflects new data, incrementally: changes to users (an
-- update moving users between groups, a delete, an insert), activity, audit
UPDATE iam.users SET department = 'Ops', two_factor_enabled = true WHERE email LIKE 'u_@reports-a.example' AND role = 'member';
UPDATE iam.users SET last_login = now() WHERE org_id = :'a';	-- changes no group: no delta
DELETE FROM iam.users WHERE email = 'u10@reports-a.example';
INSERT INTO iam.users (org_id, email, name, role) VALUES (:'a', 'u11@reports-a.example', 'User 11', 'editor');
INSERT INTO iam.activity_logs (org_id, type, created_at)
SELECT :'a', 'login', (SELECT d FROM today)::timestamp AT TIME ZONE 'UTC' - interval '1 day' + interval '9 hours 30 minutes';
SELECT count(*) AS user_deltas FROM iam_internal.user_deltas WHERE org_id = :'a';
SELECT iam.audit_seal() > 0 AS sealed;
SELECT view_name, rows IS NOT NULL AS ok FROM iam.refresh_views() ORDER BY view_name;
SELECT count(*) AS user_deltas_left FROM iam_internal.user_deltas;
SELECT total_users, active_users, deleted_users, two_factor_users, users_by_role, users_by_department
FROM iam.user_statistics WHERE org_id = :'a';
SELECT role_name, direct_members, inherited_members FROM iam.role_analytics WHERE org_id = :'a' ORDER BY role_name;
SELECT events FROM iam.activity_trends
WHERE org_id = :'a' AND type = 'login' AND hour = (SELECT d FROM today)::timestamp AT TIME ZONE 'UTC' - interval '15 hours';
SELECT action, events FROM iam.audit_summary WHERE org_id = :'a' AND action LIKE 'user.%' ORDER BY action;

-- the incremental summaries equal a computation from scratch, in both
-- organisations of this test (earlier tests of this database made changes
-- with triggers off, which only iam.report_rebuild() catches up with)
CREATE TEMP TABLE incremental AS
SELECT 'user_statistics' AS v, to_jsonb(s) AS r FROM iam.user_statistics s WHERE s.org_id IN (:'a', :'b')
UNION ALL SELECT 'role_analytics', to_jsonb(s) FROM iam.role_analytics s WHERE s.org_id IN (:'a', :'b')
UNION ALL SELECT 'audit_summary', to_jsonb(s) FROM iam.audit_summary s WHERE s.org_id IN (:'a', :'b')
UNION ALL SELECT 'activity_trends', to_jsonb(s) FROM iam.activity_trends s WHERE s.org_id IN (:'a', :'b');
SELECT iam.report_rebuild();
SELECT count(*) AS refreshed FROM iam.refresh_views() WHERE rows IS NOT NULL;
CREATE TEMP TABLE rebuilt AS
SELECT 'user_statistics' AS v, to_jsonb(s) AS r FROM iam.user_statistics s WHERE s.org_id IN (:'a', :'b')
UNION ALL SELECT 'role_analytics', to_jsonb(s) FROM iam.role_analytics s WHERE s.org_id IN (:'a', :'b')
UNION ALL SELECT 'audit_summary', to_jsonb(s) FROM iam.audit_summary s WHERE s.org_id IN (:'a', :'b')
UNION ALL SELECT 'activity_trends', to_jsonb(s) FROM iam.activity_trends s WHERE s.org_id IN (:'a', :'b');
SELECT v, count(*) FILTER (WHERE src = 'i') AS only_incremental, count(*) FILTER (WHERE src = 'r') AS only_rebuilt
FROM ((SELECT 'i' AS src, * FROM incremental EXCEPT ALL SELECT 'i', * FROM rebuilt)
	  UNION ALL (SELECT 'r', * FROM rebuilt EXCEPT ALL SELECT 'r', * FROM incremental)) AS diff
GROUP BY v ORDER BY v;
SELECT count(*) > 0 AS compared FROM rebuilt;
-- and the users' summary equals the plain aggregate over iam.users
SELECT count(*) AS differences FROM (
	(SELECT org_id, count(*) FILTER (WHERE deleted_at IS NULL) AS total,
			count(*) FILTER (WHERE deleted_at IS NULL AND two_factor_enabled) AS tfa
	 FROM iam.users GROUP BY org_id
	 EXCEPT
	 SELECT org_id, total_users, two_factor_users FROM iam.user_statistics WHERE total_users + deleted_users > 0)
	UNION ALL
	(SELECT org_id, total_users, two_factor_users FROM iam.user_statistics WHERE total_users + deleted_users > 0
	 EXCEPT
	 SELECT org_id, count(*) FILTER (WHERE deleted_at IS NULL), count(*) FILTER (WHERE deleted_at IS NULL AND two_factor_enabled)
	 FROM iam.users GROUP BY org_id)) AS d;

-- TRUNCATE of the activity log empties its summary
BEGIN;
TRUNCATE iam.activity_logs;
SELECT iam.refresh_view('activity_trends') AS rows;
ROLLBACK;

-- tenants: the report functions show the organisation in iam.org_id only
CREATE ROLE reports_reader NOLOGIN;
GRANT iam_service, iam_auditor TO reports_reader;
BEGIN;
SET LOCAL ROLE reports_reader;
SELECT set_config('iam.org_id', :'a', true) IS NOT NULL AS as_a;
SELECT count(*) AS stats, min(total_users) AS total FROM iam.report_user_statistics();
SELECT count(*) AS roles FROM iam.report_role_analytics();
SELECT count(*) FILTER (WHERE org_id = :'a') AS own, count(*) FILTER (WHERE org_id <> :'a') AS other
FROM iam.report_audit_summary();
SELECT count(*) FILTER (WHERE org_id = :'a') AS own, count(*) FILTER (WHERE org_id <> :'a') AS other
FROM iam.report_activity_trends();
SELECT sum(events) AS events_yesterday_9_to_10 FROM iam.report_activity_trends(
	(SELECT d FROM today)::timestamp AT TIME ZONE 'UTC' - interval '15 hours',
	(SELECT d FROM today)::timestamp AT TIME ZONE 'UTC' - interval '14 hours');
SELECT set_config('iam.org_id', :'b', true) IS NOT NULL AS as_b;
SELECT total_users FROM iam.report_user_statistics();
SELECT count(*) FILTER (WHERE org_id = :'a') AS a_rows FROM iam.report_activity_trends();
SELECT set_config('iam.org_id', '', true) IS NOT NULL AS nobody;
SELECT (SELECT count(*) FROM iam.report_user_statistics()) + (SELECT count(*) FROM iam.report_role_analytics())
	   + (SELECT count(*) FROM iam.report_audit_summary()) + (SELECT count(*) FROM iam.report_activity_trends()) AS rows;
SELECT count(*) FROM iam.user_statistics;	-- the views themselves: refused
ROLLBACK;
BEGIN;
SET LOCAL ROLE iam_gateway;
SELECT count(*) FROM iam.activity_trends;
ROLLBACK;
BEGIN;
SET LOCAL ROLE iam_service;
SELECT count(*) FROM iam.report_audit_summary();	-- the logs' reports are for auditors
ROLLBACK;
DROP ROLE reports_reader;

-- REST handlers: reports.read, the caller's organisation only, JSON and CSV
SELECT id AS a_admin FROM iam.users WHERE email = 'u1@reports-a.example' \gset
SELECT id AS a_member FROM iam.users WHERE email = 'u4@reports-a.example' \gset
SELECT id AS a_auditor FROM iam.users WHERE email = 'u9@reports-a.example' \gset
SELECT id AS b_admin FROM iam.users WHERE email = 'u1@reports-b.example' \gset
CREATE FUNCTION pg_temp.call(fn text, params jsonb, who uuid, org uuid) RETURNS iam.api_response
	LANGUAGE plpgsql AS $$
DECLARE r iam.api_response;
BEGIN
	PERFORM set_config('iam.user_id', who::text, true), set_config('iam.org_id', org::text, true);
	EXECUTE format('SELECT * FROM iam.%I($1, NULL)', fn) INTO r USING params;
	RETURN r;
END $$;
CREATE FUNCTION pg_temp.code(fn text, params jsonb, who uuid, org uuid) RETURNS text
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_temp.call(fn, params, who, org);
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
BEGIN;
SET LOCAL ROLE iam_gateway;
SELECT pg_temp.code('api_reports_user_statistics', '{}', :'a_member', :'a') AS member;
SELECT pg_temp.code(f, '{}', :'a_auditor', :'a') AS auditor
FROM unnest(ARRAY['api_reports_user_statistics', 'api_reports_role_analytics',
				  'api_reports_audit_summary', 'api_reports_activity_trends']) AS f;
SELECT pg_temp.code('api_reports_user_statistics', '{}', :'a_admin', :'b') AS wrong_org;
SELECT status, body->'refreshed_at' IS NOT NULL AS refreshed_at, body->'data'->'total_users' AS total,
	   body->'data'->'users_by_role' AS by_role
FROM pg_temp.call('api_reports_user_statistics', '{}', :'a_admin', :'a');
SELECT status, body->'data'->'total_users' AS total FROM pg_temp.call('api_reports_user_statistics', '{}', :'b_admin', :'b');
SELECT status, json_array_length(body->'data') AS roles, body->'data'->0->>'role' AS first,
	   body->'data'->0->>'last_granted_at' AS granted
FROM pg_temp.call('api_reports_role_analytics', '{}', :'a_admin', :'a');
SELECT (SELECT count(*) FROM json_array_elements(body->'data')) AS rows,
	   (SELECT sum((e->>'events')::int) FROM json_array_elements(body->'data') e) AS events
FROM pg_temp.call('api_reports_activity_trends', '{}', :'a_admin', :'a');
SELECT (SELECT sum((e->>'events')::int) FROM json_array_elements(body->'data') e) AS events
FROM pg_temp.call('api_reports_activity_trends', '{}', :'b_admin', :'b');
SELECT json_array_length(body->'data') AS rows
FROM pg_temp.call('api_reports_activity_trends',
	jsonb_build_object('since', to_char((SELECT d FROM today) - 1, 'YYYY-MM-DD') || 'T10:00:00Z',
					   'until', to_char((SELECT d FROM today) - 1, 'YYYY-MM-DD') || 'T11:00:00Z'), :'a_admin', :'a');
SELECT json_array_length(body->'data') AS future_rows
FROM pg_temp.call('api_reports_audit_summary', '{"since": "2999-01-01T00:00:00Z"}', :'a_admin', :'a');
SELECT (SELECT count(*) FROM json_object_keys(body->'data'->'new_users_per_day')) AS days
FROM pg_temp.call('api_reports_user_statistics',
	jsonb_build_object('since', to_char((SELECT d FROM today) - 1, 'YYYY-MM-DD') || 'T00:00:00Z'), :'a_admin', :'a');
SELECT pg_temp.code('api_reports_audit_summary', '{"since": "yesterday"}', :'a_admin', :'a') AS bad_since;
-- CSV: a JSON string holding the text, and the Content-Type header
SELECT status, headers, json_typeof(body) AS body_type,
	   split_part(body #>> '{}', E'\r\n', 1) AS header_line,
	   array_length(string_to_array(body #>> '{}', E'\r\n'), 1) AS lines
FROM pg_temp.call('api_reports_role_analytics', '{"accept": "text/csv"}', :'a_admin', :'a');
SELECT regexp_replace(body #>> '{}', '[0-9a-f]{8}-[0-9a-f-]{27}|[0-9T:.-]{26}Z', '*', 'g') AS csv
FROM pg_temp.call('api_reports_activity_trends',
	jsonb_build_object('accept', 'text/csv',
					   'since', to_char((SELECT d FROM today) - 1, 'YYYY-MM-DD') || 'T10:00:00Z',
					   'until', to_char((SELECT d FROM today) - 1, 'YYYY-MM-DD') || 'T11:00:00Z'), :'a_admin', :'a');
SELECT split_part(body #>> '{}', E'\r\n', 1) AS header_line
FROM pg_temp.call('api_reports_user_statistics', '{"accept": "text/csv"}', :'a_admin', :'a');
ROLLBACK;
SELECT iam.api_csv(ARRAY['a', 'b'], '[{"a": "x,y", "b": "say \"hi\""}, {"a": null, "b": {"k": 1}}]') AS csv;

-- the routes
SELECT method, path, handler::regproc AS handler, permission, read_only, query_params
FROM iam.routes WHERE path LIKE '/reports/%' ORDER BY path;

-- refresh_view: unknown names are refused; a failing refresh is recorded,
-- warns, returns NULL and leaves the view as it was
SELECT iam.refresh_view('users');
SELECT iam.refresh_view(NULL);
ALTER TABLE iam_internal.activity_counts RENAME TO activity_counts_away;
SET client_min_messages = warning;
SELECT iam.refresh_view('activity_trends') AS rows;
SELECT view_name, rows, error, source FROM iam.view_refreshes ORDER BY id DESC LIMIT 1;
SELECT count(*) > 0 AS kept FROM iam.activity_trends;
ALTER TABLE iam_internal.activity_counts_away RENAME TO activity_counts;
SELECT iam.refresh_view('activity_trends') > 0 AS refreshed;

-- activity_logs: monthly partitions ahead, the default partition for the
-- rest; creating a month's partition moves its rows out of the default
SELECT count(*) >= 4 AS partitions_ahead FROM pg_inherits WHERE inhparent = 'iam.activity_logs'::regclass;
INSERT INTO iam.activity_logs (org_id, type, created_at) VALUES (:'a', 'login', '2001-02-03 04:05:06+00');
SELECT tableoid::regclass AS partition FROM iam.activity_logs WHERE created_at = '2001-02-03 04:05:06+00';
SELECT iam.activity_logs_add_partition('2001-02-15');
SELECT iam.activity_logs_add_partition('2001-02-01');
SELECT tableoid::regclass AS partition FROM iam.activity_logs WHERE created_at = '2001-02-03 04:05:06+00';
SELECT iam.activity_logs_add_partitions(0);
SELECT iam.activity_logs_add_partitions(-1);
SELECT iam.refresh_view('activity_trends') > 0 AS refreshed;
SELECT events FROM iam.activity_trends WHERE org_id = :'a' AND hour = '2001-02-03 04:00:00+00';
