-- iam--0.4--0.5.sql: reports (issue 8).
--
-- Four materialized views in schema iam, each with a unique index so that it
-- refreshes CONCURRENTLY and each row carrying its org_id:
--   iam.user_statistics, iam.role_analytics, iam.audit_summary,
--   iam.activity_trends.
-- They are the interface; what they are computed from is kept up to date
-- incrementally, so that a refresh costs what changed, not what exists:
--   - iam.users and iam.activity_logs: statement-level triggers with
--     transition tables append per-statement deltas (insert only, so writers
--     never wait for each other) to iam_internal.*_deltas; a refresh folds
--     them into summary tables (iam_internal.user_counts, user_signups,
--     activity_counts);
--   - iam.audit_logs: sealed rows carry a gapless seq per organisation, so a
--     refresh folds the rows sealed since its per-chain watermark.
-- The views are then recomputed from the small summary tables.
--
-- Refreshes: iam.refresh_view(name) / iam.refresh_views() (from psql or
-- pg_cron), and the refresh worker (refresh_worker.c) on each view's period;
-- every refresh is recorded in iam.view_refreshes.
--
-- Materialized views cannot have row-level security, so they are granted to
-- no pg_iam role: tenants read them through iam.report_*() functions and the
-- REST handlers, which filter by iam.current_org_id().
--
-- iam.activity_logs becomes partitioned by month (partitions in schema
-- iam_internal, created ahead of time by the worker, a default partition as
-- a safety net).
-- CREATE EXTENSION iam runs iam--0.1.sql, the upgrades to 0.4 and this file.

\echo Use "CREATE EXTENSION iam" or "ALTER EXTENSION iam UPDATE" to load this file. \quit

CREATE SCHEMA iam_internal;
COMMENT ON SCHEMA iam_internal IS
	'pg_iam''s internal storage: summary tables and delta logs behind the report views, monthly partitions of iam.activity_logs. Granted to no role; read through schema iam';

------------------------------------------------------------------------------
-- iam.activity_logs, partitioned by month.  The rows of 0.4 move into the
-- new table; partitions cover every month that holds rows and the months
-- ahead; the default partition catches what no partition covers.
------------------------------------------------------------------------------
ALTER TABLE iam.activity_logs SET SCHEMA iam_internal;
ALTER TABLE iam_internal.activity_logs RENAME TO activity_logs_0_4;

CREATE TABLE iam.activity_logs (
	id			uuid NOT NULL DEFAULT gen_random_uuid(),
	user_id		uuid,
	org_id		uuid,
	type		varchar(50) NOT NULL CHECK (type ~ '^[a-z][a-z0-9_]*$'),
	description	text,
	ip_address	varchar(45),
	user_agent	text,
	location	varchar(100),
	metadata	jsonb,
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX activity_logs_org_created_idx ON iam.activity_logs (org_id, created_at, id);
CREATE INDEX activity_logs_org_user_idx ON iam.activity_logs (org_id, user_id, created_at);
CREATE INDEX activity_logs_org_type_idx ON iam.activity_logs (org_id, type, created_at);
COMMENT ON TABLE iam.activity_logs IS
	'Security-relevant events: logins, failures, lockouts, denials, escalation attempts. Partitioned by month of created_at (UTC): partitions iam_internal.activity_logs_pYYYYMM, created ahead by the refresh worker (iam.activity_logs_add_partitions), and iam_internal.activity_logs_default for anything else';
COMMENT ON COLUMN iam.activity_logs.id IS 'Event id (unique together with created_at, the partition key)';
COMMENT ON COLUMN iam.activity_logs.type IS 'Event kind, e.g. login, login_failed, lockout, permission_denied';
COMMENT ON COLUMN iam.activity_logs.metadata IS 'Event details as JSON (never a secret)';
COMMENT ON COLUMN iam.activity_logs.location IS 'Approximate place of the client, when known';

ALTER TABLE iam.activity_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE iam.activity_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON iam.activity_logs
	USING (org_id = iam.current_org_id()) WITH CHECK (org_id = iam.current_org_id());

CREATE TABLE iam_internal.activity_logs_default PARTITION OF iam.activity_logs DEFAULT;
COMMENT ON TABLE iam_internal.activity_logs_default IS
	'Default partition of iam.activity_logs: rows of a month without a partition of its own (iam.activity_logs_add_partitions moves them when it creates one)';

CREATE FUNCTION iam.activity_logs_add_partition(month date) RETURNS boolean
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lo		date := date_trunc('month', month)::date;
	hi		date := (date_trunc('month', month) + interval '1 month')::date;
	part	text := 'activity_logs_p' || to_char(lo, 'YYYYMM');
	bounds	text;
BEGIN
	IF to_regclass(format('iam_internal.%I', part)) IS NOT NULL THEN
		RETURN false;
	END IF;
	bounds := format('FROM (%L) TO (%L)', lo::text || ' 00:00:00+00', hi::text || ' 00:00:00+00');
	-- a table of its own first: rows of that month waiting in the default
	-- partition move into it, then it is attached (ATTACH would refuse
	-- while the default partition holds rows of the new range)
	EXECUTE format('CREATE TABLE iam_internal.%I (LIKE iam.activity_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
	EXECUTE format('WITH moved AS (DELETE FROM iam_internal.activity_logs_default '
				   'WHERE created_at >= %L AND created_at < %L RETURNING *) '
				   'INSERT INTO iam_internal.%I SELECT * FROM moved',
				   lo::text || ' 00:00:00+00', hi::text || ' 00:00:00+00', part);
	EXECUTE format('ALTER TABLE iam.activity_logs ATTACH PARTITION iam_internal.%I FOR VALUES %s', part, bounds);
	EXECUTE format('ALTER TABLE iam_internal.%I ENABLE ROW LEVEL SECURITY', part);
	EXECUTE format('ALTER TABLE iam_internal.%I FORCE ROW LEVEL SECURITY', part);
	EXECUTE format('CREATE POLICY tenant_isolation ON iam_internal.%I USING (org_id = iam.current_org_id()) '
				   'WITH CHECK (org_id = iam.current_org_id())', part);
	EXECUTE format('COMMENT ON TABLE iam_internal.%I IS %L', part,
				   format('Partition of iam.activity_logs: events of %s (UTC)', to_char(lo, 'YYYY-MM')));
	RETURN true;
END
$$;
COMMENT ON FUNCTION iam.activity_logs_add_partition(date) IS
	'Creates the partition of iam.activity_logs for the month (UTC) holding the date, moving that month''s rows out of the default partition; false when it exists already';

CREATE FUNCTION iam.activity_logs_add_partitions(months_ahead int DEFAULT 3) RETURNS int
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	created	int := 0;
	m		int;
BEGIN
	IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
		RAISE EXCEPTION 'months_ahead must be between 0 and 120' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR m IN 0 .. months_ahead LOOP
		IF iam.activity_logs_add_partition(((now() AT TIME ZONE 'UTC') + make_interval(months => m))::date) THEN
			created := created + 1;
		END IF;
	END LOOP;
	RETURN created;
END
$$;
COMMENT ON FUNCTION iam.activity_logs_add_partitions(int) IS
	'Makes sure iam.activity_logs has partitions for the current month (UTC) and months_ahead months after it; returns how many it created. The refresh worker calls it with iam.activity_partitions_ahead at start and every hour';

-- the rows of 0.4: a partition for every month that holds some, then the copy
SELECT iam.activity_logs_add_partition(m)
FROM (SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS m
	  FROM iam_internal.activity_logs_0_4) AS months;
SELECT iam.activity_logs_add_partitions(3);
INSERT INTO iam.activity_logs (id, user_id, org_id, type, description, ip_address, user_agent, location, metadata, created_at)
	SELECT id, user_id, org_id, type, description, ip_address, user_agent, location, metadata, created_at
	FROM iam_internal.activity_logs_0_4;
DROP TABLE iam_internal.activity_logs_0_4;

REVOKE ALL ON iam.activity_logs FROM PUBLIC;
GRANT SELECT ON iam.activity_logs TO iam_auditor;

------------------------------------------------------------------------------
-- Summary tables and delta logs (iam_internal)
------------------------------------------------------------------------------
CREATE TABLE iam_internal.user_deltas (
	org_id		uuid NOT NULL,
	role		varchar(50) NOT NULL,
	department	varchar(100),
	is_active	boolean NOT NULL,
	is_deleted	boolean NOT NULL,
	two_factor	boolean NOT NULL,
	created_day	date NOT NULL,
	n			int NOT NULL
);
COMMENT ON TABLE iam_internal.user_deltas IS
	'Changes to iam.users not yet folded into user_counts and user_signups: one row per statement and group, n users added (+) or removed (-)';

CREATE TABLE iam_internal.user_counts (
	org_id		uuid NOT NULL,
	role		varchar(50) NOT NULL,
	department	varchar(100),
	is_active	boolean NOT NULL,
	is_deleted	boolean NOT NULL,
	two_factor	boolean NOT NULL,
	n			bigint NOT NULL,
	UNIQUE NULLS NOT DISTINCT (org_id, role, department, is_active, is_deleted, two_factor)
);
COMMENT ON TABLE iam_internal.user_counts IS
	'Users per organisation, primary role, department, active, soft-deleted and 2FA, as of the last fold (behind iam.user_statistics and iam.role_analytics)';

CREATE TABLE iam_internal.user_signups (
	org_id	uuid NOT NULL,
	day		date NOT NULL,
	n		bigint NOT NULL,
	PRIMARY KEY (org_id, day)
);
COMMENT ON TABLE iam_internal.user_signups IS
	'Users created per organisation and day (UTC of created_at), deleted ones included, as of the last fold (behind iam.user_statistics)';

CREATE TABLE iam_internal.activity_deltas (
	org_id	uuid NOT NULL,
	hour	timestamptz NOT NULL,
	type	varchar(50) NOT NULL,
	n		int NOT NULL
);
COMMENT ON TABLE iam_internal.activity_deltas IS
	'Changes to iam.activity_logs not yet folded into activity_counts: one row per statement, organisation, hour and type';

CREATE TABLE iam_internal.activity_counts (
	org_id	uuid NOT NULL,
	hour	timestamptz NOT NULL,
	type	varchar(50) NOT NULL,
	n		bigint NOT NULL,
	PRIMARY KEY (org_id, hour, type)
);
COMMENT ON TABLE iam_internal.activity_counts IS
	'Activity events per organisation, hour and type, as of the last fold (behind iam.activity_trends); hours stay when retention drops old partitions';

CREATE TABLE iam_internal.audit_counts (
	org_id		uuid NOT NULL,
	day			date NOT NULL,
	action		varchar(100) NOT NULL,
	entity_type	varchar(50),
	n			bigint NOT NULL,
	UNIQUE NULLS NOT DISTINCT (org_id, day, action, entity_type)
);
COMMENT ON TABLE iam_internal.audit_counts IS
	'Sealed audit rows per organisation, day (UTC), action and entity type, up to audit_watermarks (behind iam.audit_summary)';

CREATE TABLE iam_internal.audit_watermarks (
	org_id	uuid PRIMARY KEY,
	seq		bigint NOT NULL
);
COMMENT ON TABLE iam_internal.audit_watermarks IS
	'Per organisation, the last seq of its audit chain counted in audit_counts';

------------------------------------------------------------------------------
-- Change capture: statement-level triggers with transition tables.  They
-- only append; folding is the refresh's job.
------------------------------------------------------------------------------
CREATE FUNCTION iam.report_capture_users() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO iam_internal.user_deltas
		SELECT org_id, role, department, is_active, deleted_at IS NOT NULL, two_factor_enabled,
			   (created_at AT TIME ZONE 'UTC')::date, count(*)
		FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6, 7;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO iam_internal.user_deltas
		SELECT org_id, role, department, is_active, deleted_at IS NOT NULL, two_factor_enabled,
			   (created_at AT TIME ZONE 'UTC')::date, -count(*)
		FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6, 7;
	ELSIF TG_OP = 'UPDATE' THEN
		-- an update that moves no user between groups (last_login, say)
		-- cancels out and appends nothing
		INSERT INTO iam_internal.user_deltas
		SELECT org_id, role, department, is_active, is_deleted, two_factor, created_day, sum(n)
		FROM (SELECT org_id, role, department, is_active, deleted_at IS NOT NULL AS is_deleted,
					 two_factor_enabled AS two_factor, (created_at AT TIME ZONE 'UTC')::date AS created_day, -1 AS n
			  FROM old_rows
			  UNION ALL
			  SELECT org_id, role, department, is_active, deleted_at IS NOT NULL,
					 two_factor_enabled, (created_at AT TIME ZONE 'UTC')::date, 1
			  FROM new_rows) AS d
		GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(n) <> 0;
	ELSE
		-- TRUNCATE (it holds ACCESS EXCLUSIVE: nothing else is in flight)
		DELETE FROM iam_internal.user_deltas;
		DELETE FROM iam_internal.user_counts;
		DELETE FROM iam_internal.user_signups;
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION iam.report_capture_users() IS
	'Statement-level AFTER trigger on iam.users: appends the statement''s net change per report group to iam_internal.user_deltas (TRUNCATE empties the summaries); runs as the owner, so a role allowed to change users needs no privilege on iam_internal';

CREATE TRIGGER report_capture_insert AFTER INSERT ON iam.users
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION iam.report_capture_users();
CREATE TRIGGER report_capture_update AFTER UPDATE ON iam.users
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION iam.report_capture_users();
CREATE TRIGGER report_capture_delete AFTER DELETE ON iam.users
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION iam.report_capture_users();
CREATE TRIGGER report_capture_truncate AFTER TRUNCATE ON iam.users
	FOR EACH STATEMENT EXECUTE FUNCTION iam.report_capture_users();
COMMENT ON TRIGGER report_capture_insert ON iam.users IS 'Feeds iam.user_statistics and iam.role_analytics (delta log)';
COMMENT ON TRIGGER report_capture_update ON iam.users IS 'Feeds iam.user_statistics and iam.role_analytics (delta log)';
COMMENT ON TRIGGER report_capture_delete ON iam.users IS 'Feeds iam.user_statistics and iam.role_analytics (delta log)';
COMMENT ON TRIGGER report_capture_truncate ON iam.users IS 'Empties the user summaries behind the reports';

CREATE FUNCTION iam.report_capture_activity() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO iam_internal.activity_deltas
		SELECT org_id, date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, count(*)
		FROM new_rows WHERE org_id IS NOT NULL GROUP BY 1, 2, 3;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO iam_internal.activity_deltas
		SELECT org_id, date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, -count(*)
		FROM old_rows WHERE org_id IS NOT NULL GROUP BY 1, 2, 3;
	ELSIF TG_OP = 'UPDATE' THEN
		INSERT INTO iam_internal.activity_deltas
		SELECT org_id, hour, type, sum(n)
		FROM (SELECT org_id, date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, type, -1 AS n
			  FROM old_rows
			  UNION ALL
			  SELECT org_id, date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, 1
			  FROM new_rows) AS d
		WHERE org_id IS NOT NULL
		GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
	ELSE
		DELETE FROM iam_internal.activity_deltas;
		DELETE FROM iam_internal.activity_counts;
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION iam.report_capture_activity() IS
	'Statement-level AFTER trigger on iam.activity_logs: appends the statement''s net change per organisation, hour and type to iam_internal.activity_deltas (TRUNCATE empties the summary); runs as the owner, like the users trigger';

CREATE TRIGGER report_capture_insert AFTER INSERT ON iam.activity_logs
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION iam.report_capture_activity();
CREATE TRIGGER report_capture_update AFTER UPDATE ON iam.activity_logs
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION iam.report_capture_activity();
CREATE TRIGGER report_capture_delete AFTER DELETE ON iam.activity_logs
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION iam.report_capture_activity();
CREATE TRIGGER report_capture_truncate AFTER TRUNCATE ON iam.activity_logs
	FOR EACH STATEMENT EXECUTE FUNCTION iam.report_capture_activity();
COMMENT ON TRIGGER report_capture_insert ON iam.activity_logs IS 'Feeds iam.activity_trends (delta log)';
COMMENT ON TRIGGER report_capture_update ON iam.activity_logs IS 'Feeds iam.activity_trends (delta log)';
COMMENT ON TRIGGER report_capture_delete ON iam.activity_logs IS 'Feeds iam.activity_trends (delta log)';
COMMENT ON TRIGGER report_capture_truncate ON iam.activity_logs IS 'Empties the activity summary behind the reports';

------------------------------------------------------------------------------
-- Folding (incremental) and rebuilding (from scratch)
------------------------------------------------------------------------------
CREATE FUNCTION iam.report_fold_users() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- one folder at a time; readers of the summaries are not blocked.  The
	-- DELETE takes exactly the deltas its snapshot sees: those of
	-- transactions still in flight stay for the next fold.
	LOCK TABLE iam_internal.user_counts, iam_internal.user_signups IN SHARE ROW EXCLUSIVE MODE;
	WITH d AS (DELETE FROM iam_internal.user_deltas RETURNING *),
	counts AS (
		INSERT INTO iam_internal.user_counts AS t (org_id, role, department, is_active, is_deleted, two_factor, n)
		SELECT org_id, role, department, is_active, is_deleted, two_factor, sum(n)
		FROM d GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0
		ON CONFLICT (org_id, role, department, is_active, is_deleted, two_factor)
			DO UPDATE SET n = t.n + excluded.n
		RETURNING 1)
	INSERT INTO iam_internal.user_signups AS s (org_id, day, n)
	SELECT org_id, created_day, sum(n) FROM d GROUP BY 1, 2 HAVING sum(n) <> 0
	ON CONFLICT (org_id, day) DO UPDATE SET n = s.n + excluded.n;
	DELETE FROM iam_internal.user_counts WHERE n = 0;
	DELETE FROM iam_internal.user_signups WHERE n = 0;
END
$$;
COMMENT ON FUNCTION iam.report_fold_users() IS
	'Internal: folds the committed user deltas into iam_internal.user_counts and user_signups';

CREATE FUNCTION iam.report_fold_activity() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	LOCK TABLE iam_internal.activity_counts IN SHARE ROW EXCLUSIVE MODE;
	WITH d AS (DELETE FROM iam_internal.activity_deltas RETURNING *)
	INSERT INTO iam_internal.activity_counts AS t (org_id, hour, type, n)
	SELECT org_id, hour, type, sum(n) FROM d GROUP BY 1, 2, 3 HAVING sum(n) <> 0
	ON CONFLICT (org_id, hour, type) DO UPDATE SET n = t.n + excluded.n;
	DELETE FROM iam_internal.activity_counts WHERE n = 0;
END
$$;
COMMENT ON FUNCTION iam.report_fold_activity() IS
	'Internal: folds the committed activity deltas into iam_internal.activity_counts';

CREATE FUNCTION iam.report_fold_audit() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	LOCK TABLE iam_internal.audit_counts, iam_internal.audit_watermarks IN SHARE ROW EXCLUSIVE MODE;
	-- per chain, the rows sealed after the watermark (index (org_id, seq));
	-- seq is assigned at sealing in commit order, so nothing can appear
	-- below a watermark later
	WITH chains AS (
		SELECT o.id AS org_id, coalesce(w.seq, 0) AS after_seq
		FROM iam.organizations o LEFT JOIN iam_internal.audit_watermarks w ON w.org_id = o.id),
	fresh AS (
		SELECT a.org_id, a.seq, (a.created_at AT TIME ZONE 'UTC')::date AS day, a.action, a.entity_type
		FROM chains c
		JOIN iam.audit_logs a ON a.org_id = c.org_id AND a.seq IS NOT NULL AND a.seq > c.after_seq),
	counts AS (
		INSERT INTO iam_internal.audit_counts AS t (org_id, day, action, entity_type, n)
		SELECT org_id, day, action, entity_type, count(*) FROM fresh GROUP BY 1, 2, 3, 4
		ON CONFLICT (org_id, day, action, entity_type) DO UPDATE SET n = t.n + excluded.n
		RETURNING 1)
	INSERT INTO iam_internal.audit_watermarks AS w (org_id, seq)
	SELECT org_id, max(seq) FROM fresh GROUP BY org_id
	ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq;
END
$$;
COMMENT ON FUNCTION iam.report_fold_audit() IS
	'Internal: counts the audit rows sealed since each organisation''s watermark into iam_internal.audit_counts';

CREATE FUNCTION iam.report_rebuild() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- writers finish first, and nothing writes meanwhile: the deltas this
	-- transaction removes are exactly those already in the tables it reads
	LOCK TABLE iam.users, iam.activity_logs IN SHARE MODE;
	LOCK TABLE iam_internal.user_counts, iam_internal.user_signups, iam_internal.activity_counts,
		iam_internal.audit_counts, iam_internal.audit_watermarks IN SHARE ROW EXCLUSIVE MODE;
	DELETE FROM iam_internal.user_deltas;
	DELETE FROM iam_internal.user_counts;
	DELETE FROM iam_internal.user_signups;
	INSERT INTO iam_internal.user_counts (org_id, role, department, is_active, is_deleted, two_factor, n)
	SELECT org_id, role, department, is_active, deleted_at IS NOT NULL, two_factor_enabled, count(*)
	FROM iam.users GROUP BY 1, 2, 3, 4, 5, 6;
	INSERT INTO iam_internal.user_signups (org_id, day, n)
	SELECT org_id, (created_at AT TIME ZONE 'UTC')::date, count(*) FROM iam.users GROUP BY 1, 2;

	DELETE FROM iam_internal.activity_deltas;
	DELETE FROM iam_internal.activity_counts;
	INSERT INTO iam_internal.activity_counts (org_id, hour, type, n)
	SELECT org_id, date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, count(*)
	FROM iam.activity_logs WHERE org_id IS NOT NULL GROUP BY 1, 2, 3;

	DELETE FROM iam_internal.audit_counts;
	DELETE FROM iam_internal.audit_watermarks;
	PERFORM iam.report_fold_audit();
END
$$;
COMMENT ON FUNCTION iam.report_rebuild() IS
	'Recomputes every summary behind the reports from iam.users, iam.activity_logs and iam.audit_logs (blocking their writers meanwhile); needed only after changes made with triggers disabled (session_replication_role = replica). Refresh the views afterwards';

-- what 0.4 left behind
SELECT iam.report_rebuild();

------------------------------------------------------------------------------
-- The report views
------------------------------------------------------------------------------
CREATE MATERIALIZED VIEW iam.user_statistics AS
SELECT o.id AS org_id,
	   coalesce(t.total, 0)::bigint AS total_users,
	   coalesce(t.active, 0)::bigint AS active_users,
	   coalesce(t.inactive, 0)::bigint AS inactive_users,
	   coalesce(t.deleted, 0)::bigint AS deleted_users,
	   coalesce(t.two_factor, 0)::bigint AS two_factor_users,
	   CASE WHEN coalesce(t.total, 0) > 0 THEN round(t.two_factor::numeric / t.total, 4) ELSE 0 END AS two_factor_adoption,
	   coalesce(r.by_role, '{}') AS users_by_role,
	   coalesce(d.by_department, '{}') AS users_by_department,
	   coalesce(t.no_department, 0)::bigint AS users_without_department,
	   coalesce(s.per_day, '{}') AS new_users_per_day
FROM iam.organizations o
LEFT JOIN (SELECT org_id,
				  sum(n) FILTER (WHERE NOT is_deleted) AS total,
				  sum(n) FILTER (WHERE NOT is_deleted AND is_active) AS active,
				  sum(n) FILTER (WHERE NOT is_deleted AND NOT is_active) AS inactive,
				  sum(n) FILTER (WHERE is_deleted) AS deleted,
				  sum(n) FILTER (WHERE NOT is_deleted AND two_factor) AS two_factor,
				  sum(n) FILTER (WHERE NOT is_deleted AND department IS NULL) AS no_department
		   FROM iam_internal.user_counts GROUP BY org_id) AS t ON t.org_id = o.id
LEFT JOIN (SELECT org_id, jsonb_object_agg(role, n) AS by_role
		   FROM (SELECT org_id, role, sum(n) AS n FROM iam_internal.user_counts
				 WHERE NOT is_deleted GROUP BY 1, 2) AS x
		   GROUP BY org_id) AS r ON r.org_id = o.id
LEFT JOIN (SELECT org_id, jsonb_object_agg(department, n) AS by_department
		   FROM (SELECT org_id, department, sum(n) AS n FROM iam_internal.user_counts
				 WHERE NOT is_deleted AND department IS NOT NULL GROUP BY 1, 2) AS x
		   GROUP BY org_id) AS d ON d.org_id = o.id
LEFT JOIN (SELECT org_id, jsonb_object_agg(to_char(day, 'YYYY-MM-DD'), n) AS per_day
		   FROM iam_internal.user_signups
		   WHERE day > (now() AT TIME ZONE 'UTC')::date - 90
		   GROUP BY org_id) AS s ON s.org_id = o.id;
CREATE UNIQUE INDEX user_statistics_key ON iam.user_statistics (org_id);
COMMENT ON MATERIALIZED VIEW iam.user_statistics IS
	'Report: one row per organisation with its user counts, as of the last refresh (iam.view_refreshes). Granted to no pg_iam role: tenants use iam.report_user_statistics() or GET /reports/user-statistics';
COMMENT ON COLUMN iam.user_statistics.total_users IS 'Users not soft-deleted (active and inactive)';
COMMENT ON COLUMN iam.user_statistics.active_users IS 'Users neither soft-deleted nor deactivated';
COMMENT ON COLUMN iam.user_statistics.inactive_users IS 'Users not soft-deleted but deactivated (is_active false)';
COMMENT ON COLUMN iam.user_statistics.deleted_users IS 'Soft-deleted users (deleted_at set)';
COMMENT ON COLUMN iam.user_statistics.two_factor_users IS 'Users not soft-deleted with 2FA enabled';
COMMENT ON COLUMN iam.user_statistics.two_factor_adoption IS 'two_factor_users / total_users, 4 decimals; 0 without users';
COMMENT ON COLUMN iam.user_statistics.users_by_role IS 'Users not soft-deleted per primary role (users.role), as {"role": count}';
COMMENT ON COLUMN iam.user_statistics.users_by_department IS 'Users not soft-deleted per department, as {"department": count}; users without one are in users_without_department';
COMMENT ON COLUMN iam.user_statistics.users_without_department IS 'Users not soft-deleted whose department is NULL';
COMMENT ON COLUMN iam.user_statistics.new_users_per_day IS 'Users created per day (UTC) over the 90 days up to the refresh, deleted ones included, as {"YYYY-MM-DD": count}; days without any are absent';

CREATE MATERIALIZED VIEW iam.role_analytics AS
WITH RECURSIVE
org_roles AS (
	SELECT o.id AS org_id, r.id AS role_id, r.name, r.is_system
	FROM iam.organizations o JOIN iam.roles r ON r.org_id = o.id OR r.org_id IS NULL),
-- users.role names the organisation's role of that name, else the system role
primary_role AS (
	SELECT DISTINCT ON (org_id, name) org_id, name, role_id
	FROM org_roles ORDER BY org_id, name, is_system),
-- members: users who hold permissions (active, not soft-deleted)
by_primary AS (
	SELECT org_id, role AS name, sum(n) AS n FROM iam_internal.user_counts
	WHERE is_active AND NOT is_deleted GROUP BY 1, 2),
extra AS (
	SELECT u.org_id, u.id AS user_id, u.role AS name, ur.role_id
	FROM iam.user_roles ur
	JOIN iam.users u ON u.id = ur.user_id AND u.org_id = ur.org_id
	WHERE u.is_active AND u.deleted_at IS NULL AND (ur.expires_at IS NULL OR ur.expires_at > now())),
extra_users AS (SELECT DISTINCT org_id, user_id, name FROM extra),
-- groups of users holding the same roles directly: all users of a primary
-- role without extra grants form one group; a user with extra grants is a
-- group of its own
direct AS (
	SELECT DISTINCT g.org_id, g.grp, g.members, g.role_id
	FROM (SELECT b.org_id, 'p:' || b.name AS grp, b.n - coalesce(x.n, 0) AS members, p.role_id
		  FROM by_primary b
		  JOIN primary_role p ON p.org_id = b.org_id AND p.name = b.name
		  LEFT JOIN (SELECT org_id, name, count(*) AS n FROM extra_users GROUP BY 1, 2) AS x
			ON x.org_id = b.org_id AND x.name = b.name
		  UNION ALL
		  SELECT e.org_id, 'u:' || e.user_id, 1, p.role_id
		  FROM extra_users e JOIN primary_role p ON p.org_id = e.org_id AND p.name = e.name
		  UNION ALL
		  SELECT org_id, 'u:' || user_id, 1, role_id FROM extra) AS g
	WHERE g.members > 0),
held (org_id, grp, members, role_id) AS (
	SELECT org_id, grp, members, role_id FROM direct
	UNION
	SELECT h.org_id, h.grp, h.members, ri.inherits_role_id
	FROM held h JOIN iam.role_inheritance ri ON ri.role_id = h.role_id),
inherited AS (
	SELECT org_id, grp, members, role_id FROM held
	EXCEPT
	SELECT org_id, grp, members, role_id FROM direct),
role_closure (role_id, ancestor) AS (
	SELECT id, id FROM iam.roles
	UNION
	SELECT c.role_id, ri.inherits_role_id
	FROM role_closure c JOIN iam.role_inheritance ri ON ri.role_id = c.ancestor)
SELECT r.org_id, r.role_id, r.name AS role_name, r.is_system,
	   coalesce((SELECT sum(members) FROM direct d WHERE d.org_id = r.org_id AND d.role_id = r.role_id), 0)::bigint
		   AS direct_members,
	   coalesce((SELECT sum(members) FROM inherited i WHERE i.org_id = r.org_id AND i.role_id = r.role_id), 0)::bigint
		   AS inherited_members,
	   (SELECT count(DISTINCT rp.permission_id) FROM role_closure c
		JOIN iam.role_permissions rp ON rp.role_id = c.ancestor WHERE c.role_id = r.role_id) AS permission_count,
	   (SELECT count(*) FROM iam.role_permissions rp WHERE rp.role_id = r.role_id) AS own_permission_count,
	   (SELECT max(ur.granted_at) FROM iam.user_roles ur WHERE ur.org_id = r.org_id AND ur.role_id = r.role_id)
		   AS last_granted_at
FROM org_roles r;
CREATE UNIQUE INDEX role_analytics_key ON iam.role_analytics (org_id, role_id);
COMMENT ON MATERIALIZED VIEW iam.role_analytics IS
	'Report: one row per organisation and role it can use (its own roles and the system roles), as of the last refresh. Granted to no pg_iam role: tenants use iam.report_role_analytics() or GET /reports/role-analytics';
COMMENT ON COLUMN iam.role_analytics.role_name IS 'Name of the role';
COMMENT ON COLUMN iam.role_analytics.is_system IS 'A system role, shared by all organisations';
COMMENT ON COLUMN iam.role_analytics.direct_members IS 'Active, not soft-deleted users of the organisation holding the role as primary role or through an unexpired user_roles grant';
COMMENT ON COLUMN iam.role_analytics.inherited_members IS 'Active, not soft-deleted users holding the role only through inheritance (a role they hold inherits it, transitively)';
COMMENT ON COLUMN iam.role_analytics.permission_count IS 'Permissions the role holds, inherited ones included';
COMMENT ON COLUMN iam.role_analytics.own_permission_count IS 'Permissions granted to the role itself (role_permissions)';
COMMENT ON COLUMN iam.role_analytics.last_granted_at IS 'Latest granted_at of a user_roles grant of the role in the organisation; NULL when never granted that way';

CREATE MATERIALIZED VIEW iam.audit_summary AS
SELECT org_id, day, action, entity_type, n AS events FROM iam_internal.audit_counts;
CREATE UNIQUE INDEX audit_summary_key ON iam.audit_summary (org_id, day, action, entity_type);
COMMENT ON MATERIALIZED VIEW iam.audit_summary IS
	'Report: audit rows per organisation, day (UTC), action and entity type, counting the rows sealed at the last refresh (the sealer seals within iam.audit_seal_interval). Granted to no pg_iam role: tenants use iam.report_audit_summary() or GET /reports/audit-summary';
COMMENT ON COLUMN iam.audit_summary.day IS 'Day (UTC) of the audit rows'' created_at';
COMMENT ON COLUMN iam.audit_summary.action IS 'Audit action, e.g. user.created';
COMMENT ON COLUMN iam.audit_summary.events IS 'Number of audit rows';

CREATE FUNCTION iam.activity_category(type text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE
		WHEN type IN ('login', 'login_succeeded', 'login_success') THEN 'login'
		WHEN type ~ 'lock' THEN 'lockout'
		WHEN type ~ '(_failed|_failure|^failed_)' THEN 'failure'
		WHEN type ~ '(denied|denial|escalation)' THEN 'denial'
		ELSE 'other' END;
COMMENT ON FUNCTION iam.activity_category(text) IS
	'Dashboard category of an activity type: login (login), failure (*_failed), lockout (*lock*), denial (permission_denied, privilege_escalation_attempt, *denied*), other';

CREATE MATERIALIZED VIEW iam.activity_trends AS
SELECT org_id, hour, type, iam.activity_category(type) AS category, n AS events
FROM iam_internal.activity_counts;
CREATE UNIQUE INDEX activity_trends_key ON iam.activity_trends (org_id, hour, type);
COMMENT ON MATERIALIZED VIEW iam.activity_trends IS
	'Report: activity events per organisation, hour (UTC) and type, with the type''s category (login, failure, lockout, denial, other), as of the last refresh. Granted to no pg_iam role: tenants use iam.report_activity_trends() or GET /reports/activity-trends';
COMMENT ON COLUMN iam.activity_trends.hour IS 'Start of the hour (UTC) of the events';
COMMENT ON COLUMN iam.activity_trends.type IS 'Activity type (iam.activity_logs.type)';
COMMENT ON COLUMN iam.activity_trends.category IS 'iam.activity_category(type): login, failure, lockout, denial or other';
COMMENT ON COLUMN iam.activity_trends.events IS 'Number of events';

------------------------------------------------------------------------------
-- Refreshing
------------------------------------------------------------------------------
CREATE TABLE iam.view_refreshes (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	view_name	text NOT NULL,
	started_at	timestamptz NOT NULL,
	duration	interval NOT NULL,
	rows		bigint,
	error		text,
	source		text
);
CREATE INDEX view_refreshes_view_idx ON iam.view_refreshes (view_name, started_at);
COMMENT ON TABLE iam.view_refreshes IS
	'One row per refresh of a report view (by the refresh worker, pg_cron or a direct call), kept 30 days; the latest one without error gives the report''s refreshed_at';
COMMENT ON COLUMN iam.view_refreshes.view_name IS 'Report view: user_statistics, role_analytics, audit_summary or activity_trends';
COMMENT ON COLUMN iam.view_refreshes.started_at IS 'When the refresh began (after waiting for a refresh in progress); the report holds the data committed by then';
COMMENT ON COLUMN iam.view_refreshes.duration IS 'How long the refresh took';
COMMENT ON COLUMN iam.view_refreshes.rows IS 'Rows in the view after the refresh; NULL when it failed';
COMMENT ON COLUMN iam.view_refreshes.error IS 'Why the refresh failed (SQLSTATE: message); NULL on success. A failed refresh changes nothing';
COMMENT ON COLUMN iam.view_refreshes.source IS 'application_name of the refreshing session: ''iam refresh worker'', ''pg_cron'', psql, or ''install''';

INSERT INTO iam.view_refreshes (view_name, started_at, duration, rows, source)
SELECT v, now(), interval '0', NULL, 'install'
FROM unnest(ARRAY['user_statistics', 'role_analytics', 'audit_summary', 'activity_trends']) AS v;

CREATE FUNCTION iam.refresh_view(name text) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t0		timestamptz;
	n		bigint;
	err		text;
	state	text;
BEGIN
	IF name IS NULL OR name NOT IN ('user_statistics', 'role_analytics', 'audit_summary', 'activity_trends') THEN
		RAISE EXCEPTION 'unknown report view "%"', name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Name one of user_statistics, role_analytics, audit_summary, activity_trends.';
	END IF;
	-- one refresh of a view at a time, readers never wait: a request made
	-- while another refresh runs waits for it, then refreshes again with
	-- what is committed by then, so it is never lost
	PERFORM pg_advisory_xact_lock(hashtextextended('iam.refresh_view ' || name, 0));
	t0 := clock_timestamp();
	BEGIN
		CASE name
			WHEN 'user_statistics', 'role_analytics' THEN PERFORM iam.report_fold_users();
			WHEN 'audit_summary' THEN PERFORM iam.report_fold_audit();
			WHEN 'activity_trends' THEN PERFORM iam.report_fold_activity();
		END CASE;
		EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY iam.%I', name);
		EXECUTE format('SELECT count(*) FROM iam.%I', name) INTO n;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
	END;
	INSERT INTO iam.view_refreshes (view_name, started_at, duration, rows, error, source)
	VALUES (name, t0, clock_timestamp() - t0, n, state || ': ' || err,
			nullif(current_setting('application_name'), ''));
	DELETE FROM iam.view_refreshes r
	WHERE r.view_name = refresh_view.name AND r.started_at < now() - interval '30 days';
	IF err IS NOT NULL THEN
		RAISE WARNING 'refresh of iam.% failed: %', name, err
			USING HINT = 'See iam.view_refreshes; the view keeps its previous contents.';
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION iam.refresh_view(text) IS
	'Brings one report view up to date now: folds the changes since the last refresh into its summary, then REFRESH MATERIALIZED VIEW CONCURRENTLY (readers are never blocked); returns its row count. '
	'A call made while the view is being refreshed waits for that refresh, then refreshes again. Every call is recorded in iam.view_refreshes; a failure is recorded there, raised as a WARNING, and returns NULL, leaving the view as it was. For pg_cron: SELECT cron.schedule(''iam-users'', ''0 * * * *'', $$SELECT iam.refresh_view(''user_statistics'')$$)';

CREATE FUNCTION iam.refresh_views() RETURNS TABLE (view_name text, rows bigint)
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
	SELECT v, iam.refresh_view(v)
	FROM unnest(ARRAY['user_statistics', 'role_analytics', 'audit_summary', 'activity_trends'])
		 WITH ORDINALITY AS x(v, i)
	ORDER BY i
$$;
COMMENT ON FUNCTION iam.refresh_views() IS
	'iam.refresh_view for every report view, in one transaction: (view_name, rows) each; rows NULL for a view whose refresh failed. For pg_cron: SELECT cron.schedule(''iam-reports'', ''*/15 * * * *'', ''SELECT iam.refresh_views()'')';

CREATE FUNCTION iam.report_refreshed_at(name text) RETURNS timestamptz
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	RETURN (SELECT max(r.started_at) FROM iam.view_refreshes r WHERE r.view_name = name AND r.error IS NULL);
COMMENT ON FUNCTION iam.report_refreshed_at(text) IS
	'Internal: when the report view was last refreshed successfully (iam.view_refreshes)';

------------------------------------------------------------------------------
-- Tenant access: a report of the organisation in iam.org_id.  SECURITY
-- DEFINER over the ungranted views, filtered like a row-level security
-- policy would.
------------------------------------------------------------------------------
CREATE FUNCTION iam.report_user_statistics() RETURNS SETOF iam.user_statistics
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		SELECT * FROM iam.user_statistics s WHERE s.org_id = iam.current_org_id();
	END;
COMMENT ON FUNCTION iam.report_user_statistics() IS
	'iam.user_statistics of the organisation in iam.org_id only (nothing without it)';

CREATE FUNCTION iam.report_role_analytics() RETURNS SETOF iam.role_analytics
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		SELECT * FROM iam.role_analytics s WHERE s.org_id = iam.current_org_id();
	END;
COMMENT ON FUNCTION iam.report_role_analytics() IS
	'iam.role_analytics of the organisation in iam.org_id only (nothing without it)';

CREATE FUNCTION iam.report_audit_summary(since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL)
	RETURNS SETOF iam.audit_summary
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		SELECT * FROM iam.audit_summary s
		WHERE s.org_id = iam.current_org_id()
		  AND (since IS NULL OR s.day >= (since AT TIME ZONE 'UTC')::date)
		  AND (until IS NULL OR s.day::timestamp AT TIME ZONE 'UTC' < until);
	END;
COMMENT ON FUNCTION iam.report_audit_summary(timestamptz, timestamptz) IS
	'iam.audit_summary of the organisation in iam.org_id only, the days that overlap [since, until) when given';

CREATE FUNCTION iam.report_activity_trends(since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL)
	RETURNS SETOF iam.activity_trends
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		SELECT * FROM iam.activity_trends s
		WHERE s.org_id = iam.current_org_id()
		  AND (since IS NULL OR s.hour >= date_trunc('hour', since))
		  AND (until IS NULL OR s.hour < until);
	END;
COMMENT ON FUNCTION iam.report_activity_trends(timestamptz, timestamptz) IS
	'iam.activity_trends of the organisation in iam.org_id only, the hours that overlap [since, until) when given';

------------------------------------------------------------------------------
-- REST: GET /reports/*
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_csv_field(v text) RETURNS text
	LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN v IS NULL THEN ''
				WHEN v ~ '[",\r\n]' THEN '"' || replace(v, '"', '""') || '"'
				ELSE v END;
COMMENT ON FUNCTION iam.api_csv_field(text) IS
	'Internal: one CSV field (RFC 4180): quoted when it holds a comma, quote or line break; NULL as empty';

CREATE FUNCTION iam.api_csv(columns text[], rows json) RETURNS text
	LANGUAGE sql IMMUTABLE
	RETURN (SELECT string_agg(iam.api_csv_field(c), ',' ORDER BY i) FROM unnest(columns) WITH ORDINALITY AS h(c, i))
		|| E'\r\n'
		|| coalesce((SELECT string_agg((SELECT string_agg(iam.api_csv_field(r->>c), ',' ORDER BY i)
									   FROM unnest(columns) WITH ORDINALITY AS h(c, i)) || E'\r\n', '' ORDER BY k)
					 FROM json_array_elements(rows) WITH ORDINALITY AS a(r, k)), '');
COMMENT ON FUNCTION iam.api_csv(text[], json) IS
	'Internal: CSV text (RFC 4180, CRLF line ends) of a JSON array of objects: a header line of the columns, then one line per object; nested JSON as its text';

CREATE FUNCTION iam.api_report_response(params jsonb, view_name text, data json, columns text[]) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE AS $$
DECLARE
	refreshed	text := iam.api_ts(iam.report_refreshed_at(view_name));
	rows		json;
BEGIN
	IF params->>'accept' = 'text/csv' THEN
		rows := CASE WHEN json_typeof(data) = 'array' THEN data ELSE json_build_array(data) END;
		SELECT json_agg((r::jsonb || jsonb_build_object('refreshed_at', refreshed))::json ORDER BY k) INTO rows
		FROM json_array_elements(rows) WITH ORDINALITY AS a(r, k);
		RETURN ROW(200, to_json(iam.api_csv(columns || 'refreshed_at'::text, coalesce(rows, '[]'))),
				   '{"Content-Type": "text/csv"}'::jsonb)::iam.api_response;
	END IF;
	RETURN ROW(200, json_build_object('refreshed_at', refreshed, 'data', data), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_report_response(jsonb, text, json, text[]) IS
	'Internal: the response of a report route: {"refreshed_at", "data"} as JSON; or, when params has "accept": "text/csv", headers {"Content-Type": "text/csv"} and a body that is one JSON string holding the CSV text (columns, then refreshed_at on every line), which the gateway unwraps and sends as is';

CREATE FUNCTION iam.api_reports_user_statistics(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	since	timestamptz := iam.api_timestamp(params, 'since');
	until	timestamptz := iam.api_timestamp(params, 'until');
	data	json;
BEGIN
	PERFORM iam.api_require(me, 'reports.read');
	SELECT json_build_object(
		'total_users', s.total_users, 'active_users', s.active_users, 'inactive_users', s.inactive_users,
		'deleted_users', s.deleted_users, 'two_factor_users', s.two_factor_users,
		'two_factor_adoption', s.two_factor_adoption, 'users_by_role', s.users_by_role,
		'users_by_department', s.users_by_department, 'users_without_department', s.users_without_department,
		'new_users_per_day', coalesce((SELECT jsonb_object_agg(d.key, d.value) FROM jsonb_each(s.new_users_per_day) AS d
									   WHERE (since IS NULL OR d.key::date >= (since AT TIME ZONE 'UTC')::date)
										 AND (until IS NULL OR d.key::date::timestamp AT TIME ZONE 'UTC' < until)), '{}'))
	INTO data
	FROM iam.user_statistics s WHERE s.org_id = iam.current_org_id();
	RETURN iam.api_report_response(params, 'user_statistics', data,
		ARRAY['total_users', 'active_users', 'inactive_users', 'deleted_users', 'two_factor_users',
			  'two_factor_adoption', 'users_by_role', 'users_by_department', 'users_without_department',
			  'new_users_per_day']);
END
$$;
COMMENT ON FUNCTION iam.api_reports_user_statistics(jsonb, jsonb) IS
	'GET /reports/user-statistics (reports.read): the organisation''s user counts from iam.user_statistics as {"refreshed_at", "data": {total_users, active_users, inactive_users, deleted_users, two_factor_users, two_factor_adoption, users_by_role, users_by_department, users_without_department, new_users_per_day}} (data null before the organisation''s first refresh); since/until restrict new_users_per_day. '
	'With params "accept": "text/csv" the body is a JSON string holding the CSV text and headers set Content-Type: text/csv; the gateway unwraps the string';

CREATE FUNCTION iam.api_reports_role_analytics(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	data	json;
BEGIN
	PERFORM iam.api_require(me, 'reports.read');
	SELECT coalesce(json_agg(json_build_object(
		'role_id', r.role_id, 'role', r.role_name, 'is_system', r.is_system,
		'direct_members', r.direct_members, 'inherited_members', r.inherited_members,
		'permission_count', r.permission_count, 'own_permission_count', r.own_permission_count,
		'last_granted_at', iam.api_ts(r.last_granted_at)) ORDER BY r.role_name, r.is_system), '[]')
	INTO data
	FROM iam.role_analytics r WHERE r.org_id = iam.current_org_id();
	RETURN iam.api_report_response(params, 'role_analytics', data,
		ARRAY['role_id', 'role', 'is_system', 'direct_members', 'inherited_members', 'permission_count',
			  'own_permission_count', 'last_granted_at']);
END
$$;
COMMENT ON FUNCTION iam.api_reports_role_analytics(jsonb, jsonb) IS
	'GET /reports/role-analytics (reports.read): per role the organisation can use, from iam.role_analytics: {"refreshed_at", "data": [{role_id, role, is_system, direct_members, inherited_members, permission_count, own_permission_count, last_granted_at}]} by role name. '
	'With params "accept": "text/csv" the body is a JSON string holding the CSV text and headers set Content-Type: text/csv; the gateway unwraps the string';

CREATE FUNCTION iam.api_reports_audit_summary(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	since	timestamptz := coalesce(iam.api_timestamp(params, 'since'), now() - interval '30 days');
	until	timestamptz := iam.api_timestamp(params, 'until');
	data	json;
BEGIN
	PERFORM iam.api_require(me, 'reports.read');
	SELECT coalesce(json_agg(json_build_object(
		'day', to_char(s.day, 'YYYY-MM-DD'), 'action', s.action, 'entity_type', s.entity_type, 'events', s.events)
		ORDER BY s.day DESC, s.action, s.entity_type), '[]')
	INTO data
	FROM iam.audit_summary s
	WHERE s.org_id = iam.current_org_id()
	  AND s.day >= (since AT TIME ZONE 'UTC')::date
	  AND (until IS NULL OR s.day::timestamp AT TIME ZONE 'UTC' < until);
	RETURN iam.api_report_response(params, 'audit_summary', data, ARRAY['day', 'action', 'entity_type', 'events']);
END
$$;
COMMENT ON FUNCTION iam.api_reports_audit_summary(jsonb, jsonb) IS
	'GET /reports/audit-summary (reports.read): audit rows per day (UTC), action and entity type from iam.audit_summary, newest day first, for the days overlapping [since, until) (since defaults to 30 days ago): {"refreshed_at", "data": [{day, action, entity_type, events}]}. '
	'With params "accept": "text/csv" the body is a JSON string holding the CSV text and headers set Content-Type: text/csv; the gateway unwraps the string';

CREATE FUNCTION iam.api_reports_activity_trends(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	since	timestamptz := coalesce(iam.api_timestamp(params, 'since'), now() - interval '30 days');
	until	timestamptz := iam.api_timestamp(params, 'until');
	data	json;
BEGIN
	PERFORM iam.api_require(me, 'reports.read');
	SELECT coalesce(json_agg(json_build_object(
		'hour', iam.api_ts(s.hour), 'type', s.type, 'category', s.category, 'events', s.events)
		ORDER BY s.hour DESC, s.type), '[]')
	INTO data
	FROM iam.activity_trends s
	WHERE s.org_id = iam.current_org_id()
	  AND s.hour >= date_trunc('hour', since)
	  AND (until IS NULL OR s.hour < until);
	RETURN iam.api_report_response(params, 'activity_trends', data, ARRAY['hour', 'type', 'category', 'events']);
END
$$;
COMMENT ON FUNCTION iam.api_reports_activity_trends(jsonb, jsonb) IS
	'GET /reports/activity-trends (reports.read): activity events per hour (UTC) and type, with the category (login, failure, lockout, denial, other), from iam.activity_trends, newest hour first, for the hours overlapping [since, until) (since defaults to 30 days ago): {"refreshed_at", "data": [{hour, type, category, events}]}. '
	'With params "accept": "text/csv" the body is a JSON string holding the CSV text and headers set Content-Type: text/csv; the gateway unwraps the string';

INSERT INTO iam.routes (method, path, handler, permission, read_only, rate_limit_class, query_params, body_schema, summary) VALUES
('GET', '/reports/user-statistics', 'iam.api_reports_user_statistics(jsonb,jsonb)', 'reports.read', true, 'read',
 '{"since": "timestamptz", "until": "timestamptz"}', NULL,
 'User counts of the organisation (JSON, or CSV with Accept: text/csv)'),
('GET', '/reports/role-analytics', 'iam.api_reports_role_analytics(jsonb,jsonb)', 'reports.read', true, 'read',
 '{}', NULL,
 'Members and permissions per role (JSON, or CSV with Accept: text/csv)'),
('GET', '/reports/audit-summary', 'iam.api_reports_audit_summary(jsonb,jsonb)', 'reports.read', true, 'read',
 '{"since": "timestamptz", "until": "timestamptz"}', NULL,
 'Audit events per day, action and entity type (JSON, or CSV with Accept: text/csv)'),
('GET', '/reports/activity-trends', 'iam.api_reports_activity_trends(jsonb,jsonb)', 'reports.read', true, 'read',
 '{"since": "timestamptz", "until": "timestamptz"}', NULL,
 'Security events per hour and type (JSON, or CSV with Accept: text/csv)');

------------------------------------------------------------------------------
-- Privileges: the views and summaries for no pg_iam role; the tenant
-- functions as the base tables are (user reports for services and
-- auditors, log reports for auditors); the handlers for the gateway.
------------------------------------------------------------------------------
REVOKE ALL ON iam.user_statistics, iam.role_analytics, iam.audit_summary, iam.activity_trends,
	iam.view_refreshes FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA iam_internal FROM PUBLIC;
REVOKE ALL ON FUNCTION
	iam.activity_logs_add_partition(date), iam.activity_logs_add_partitions(int),
	iam.report_capture_users(), iam.report_capture_activity(),
	iam.report_fold_users(), iam.report_fold_activity(), iam.report_fold_audit(), iam.report_rebuild(),
	iam.activity_category(text), iam.refresh_view(text), iam.refresh_views(), iam.report_refreshed_at(text),
	iam.report_user_statistics(), iam.report_role_analytics(),
	iam.report_audit_summary(timestamptz, timestamptz), iam.report_activity_trends(timestamptz, timestamptz),
	iam.api_csv_field(text), iam.api_csv(text[], json), iam.api_report_response(jsonb, text, json, text[]),
	iam.api_reports_user_statistics(jsonb, jsonb), iam.api_reports_role_analytics(jsonb, jsonb),
	iam.api_reports_audit_summary(jsonb, jsonb), iam.api_reports_activity_trends(jsonb, jsonb)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION iam.report_user_statistics(), iam.report_role_analytics() TO iam_service, iam_auditor;
GRANT EXECUTE ON FUNCTION iam.report_audit_summary(timestamptz, timestamptz),
	iam.report_activity_trends(timestamptz, timestamptz) TO iam_auditor;
GRANT EXECUTE ON FUNCTION iam.api_reports_user_statistics(jsonb, jsonb), iam.api_reports_role_analytics(jsonb, jsonb),
	iam.api_reports_audit_summary(jsonb, jsonb), iam.api_reports_activity_trends(jsonb, jsonb) TO iam_gateway;
