-- iam--0.5--0.6.sql
-- CREATE EXTENSION iam runs iam--0.1.sql, the upgrades to 0.5 and this file.

\echo Use "CREATE EXTENSION iam" or "ALTER EXTENSION iam UPDATE" to load this file. \quit

------------------------------------------------------------------------------
-- The reports are cacheable (#7).  A report changes only when its view is
-- refreshed, and every refresh, by the worker, pg_cron or a DBA, records
-- itself in iam.view_refreshes in the refresh's own transaction: a statement
-- trigger there moves the version of everything at that commit, so the next
-- report request after a refresh is fresh in every gateway.
------------------------------------------------------------------------------
UPDATE iam.routes SET cacheable = true WHERE method = 'GET' AND path LIKE '/reports/%';
CREATE TRIGGER cache_bump AFTER INSERT ON iam.view_refreshes
	FOR EACH STATEMENT EXECUTE FUNCTION iam.cache_bump();
COMMENT ON TRIGGER cache_bump ON iam.view_refreshes IS
	'A report view was refreshed: bumps, at commit, the version of everything, so the gateways'' cached report responses are stale';

------------------------------------------------------------------------------
-- The REST API's hot formatting in C (api_format.c): every listing row,
-- every user response and write and every page goes through these, and as SQL
-- functions they cost more than their work (to_char parses its format on
-- each call, the URL encoder ran a query per value; a handler that plans
-- its query on each call, such as the user listing, read back and inlined
-- their bodies each time).  Same output, byte for byte
-- (sql/api_format.sql).
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION iam.api_ts(ts timestamptz) RETURNS text
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_ts';
COMMENT ON FUNCTION iam.api_ts(timestamptz) IS
	'Internal: an instant as RFC 3339 in UTC with microseconds (2026-01-02T03:04:05.000000Z), whatever the session''s TimeZone; NULL for infinity';

CREATE OR REPLACE FUNCTION iam.api_user_json(u iam.users, unmasked boolean) RETURNS json
	LANGUAGE C STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_user_json';
COMMENT ON FUNCTION iam.api_user_json(iam.users, boolean) IS
	'Internal: a user as the API shows it (never the password hash or the external id); unless unmasked, email and phone are masked and employment_equity is null';

CREATE OR REPLACE FUNCTION iam.api_user_etag(u iam.users) RETURNS text
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_user_etag';
COMMENT ON FUNCTION iam.api_user_etag(iam.users) IS
	'Internal: the ETag of a user, a quoted digest of its id, updated_at and every field the API shows (so that two changes within one transaction still give two ETags); the same digest as in 0.5, so ETags handed out before an upgrade still match';

CREATE OR REPLACE FUNCTION iam.api_urlencode(s text) RETURNS text
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_urlencode';
COMMENT ON FUNCTION iam.api_urlencode(text) IS 'Internal: s percent-encoded for a URL query (RFC 3986 unreserved characters kept)';

CREATE OR REPLACE FUNCTION iam.api_next_link(path text, params jsonb, names text[], cursor text) RETURNS jsonb
	LANGUAGE C STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_next_link';
COMMENT ON FUNCTION iam.api_next_link(text, jsonb, text[], text) IS
	'Internal: the headers {"Link": "</api/v1/path?query&cursor=...>; rel=\"next\""} of a page that has a next one, repeating the query parameters names present in params';

-- iam.api_caller() in C (api_caller.c): the first call of nearly every
-- request; the same checks, run as the caller, planned once per backend.
CREATE OR REPLACE FUNCTION iam.api_caller() RETURNS uuid
	LANGUAGE C STABLE
	AS 'MODULE_PATHNAME', 'iam_api_caller';
COMMENT ON FUNCTION iam.api_caller() IS
	'Internal, first call of every authenticated API function: iam.user_id, after checking that it names an existing, active, not deleted user of iam.org_id and, when iam.session_id is set, that the session is neither revoked nor expired; with iam.external_sub instead (external identity provider), the user whose stack_auth_id it is, written to iam.user_id and iam.org_id; IA401 otherwise';

------------------------------------------------------------------------------
-- Reports at scale (issue 8): incremental report views.
--
-- Since 0.5 the summaries behind the reports are folded incrementally, but
-- audit_summary and activity_trends were still materialized views over
-- them, and REFRESH MATERIALIZED VIEW CONCURRENTLY diffs the whole view: at
-- a year of hourly activity that costs nearly what a full refresh does.
-- They become plain views (security_invoker, so still readable by no
-- pg_iam role) over the summary tables: a refresh is the fold of what
-- changed since the last one, nothing more.  Their row counts, which
-- iam.view_refreshes records, are kept up to date by the folds too
-- (iam_internal.report_rows) instead of being counted.  user_statistics
-- and role_analytics stay materialized views over the small per-group
-- summaries.  iam.report_rebuild(view) rebuilds one report from scratch.
------------------------------------------------------------------------------
CREATE TABLE iam_internal.report_rows (
	view_name	text PRIMARY KEY,
	n			bigint NOT NULL
);
COMMENT ON TABLE iam_internal.report_rows IS
	'Rows of the report views that are plain views over a summary (audit_summary, activity_trends), kept up to date by the folds, so that a refresh need not count them';

-- a fold removes the groups that dropped to zero through this index, not by
-- reading the whole summary
CREATE INDEX activity_counts_zero_idx ON iam_internal.activity_counts (org_id) WHERE n = 0;
CREATE INDEX user_counts_zero_idx ON iam_internal.user_counts (org_id) WHERE n = 0;
CREATE INDEX user_signups_zero_idx ON iam_internal.user_signups (org_id) WHERE n = 0;
COMMENT ON INDEX iam_internal.activity_counts_zero_idx IS 'Groups a fold brought to zero, which it then deletes';
COMMENT ON INDEX iam_internal.user_counts_zero_idx IS 'Groups a fold brought to zero, which it then deletes';
COMMENT ON INDEX iam_internal.user_signups_zero_idx IS 'Days a fold brought to zero, which it then deletes';

-- TRUNCATE of the activity log empties the row count with the summary
CREATE OR REPLACE FUNCTION iam.report_capture_activity() RETURNS trigger
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
		UPDATE iam_internal.report_rows SET n = 0 WHERE view_name = 'activity_trends';
	END IF;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION iam.report_fold_activity() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	added	bigint;
	removed	bigint;
BEGIN
	-- one folder at a time; readers of the summary are not blocked.  The
	-- DELETE takes exactly the deltas its snapshot sees: those of
	-- transactions still in flight stay for the next fold.
	LOCK TABLE iam_internal.activity_counts IN SHARE ROW EXCLUSIVE MODE;
	WITH d AS (DELETE FROM iam_internal.activity_deltas RETURNING *),
	up AS (
		INSERT INTO iam_internal.activity_counts AS t (org_id, hour, type, n)
		SELECT org_id, hour, type, sum(n) FROM d GROUP BY 1, 2, 3 HAVING sum(n) <> 0
		ON CONFLICT (org_id, hour, type) DO UPDATE SET n = t.n + excluded.n
		RETURNING t.xmax = 0 AS inserted)
	SELECT count(*) FILTER (WHERE inserted) INTO added FROM up;
	DELETE FROM iam_internal.activity_counts WHERE n = 0;
	GET DIAGNOSTICS removed = ROW_COUNT;
	IF added <> 0 OR removed <> 0 THEN
		UPDATE iam_internal.report_rows SET n = n + added - removed WHERE view_name = 'activity_trends';
	END IF;
END
$$;
COMMENT ON FUNCTION iam.report_fold_activity() IS
	'Internal: folds the committed activity deltas into iam_internal.activity_counts (and its row count into report_rows)';

CREATE OR REPLACE FUNCTION iam.report_fold_audit() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c		record;
	got		bigint;
	added	bigint := 0;
BEGIN
	LOCK TABLE iam_internal.audit_counts, iam_internal.audit_watermarks IN SHARE ROW EXCLUSIVE MODE;
	-- per chain, the rows sealed after the watermark: one statement per
	-- organisation, planned with its watermark's value, so that each
	-- monthly partition answers from its (org_id, seq) index (one join of
	-- every chain would read every partition).  seq is assigned at sealing
	-- in commit order, so nothing can appear below a watermark later.
	FOR c IN SELECT o.id AS org_id, coalesce(w.seq, 0) AS after_seq
			 FROM iam.organizations o LEFT JOIN iam_internal.audit_watermarks w ON w.org_id = o.id
	LOOP
		EXECUTE format($fold$
			WITH fresh AS (
				SELECT seq, (created_at AT TIME ZONE 'UTC')::date AS day, action, entity_type
				FROM iam.audit_logs WHERE org_id = %1$L AND seq IS NOT NULL AND seq > %2$s),
			counts AS (
				INSERT INTO iam_internal.audit_counts AS t (org_id, day, action, entity_type, n)
				SELECT %1$L, day, action, entity_type, count(*) FROM fresh GROUP BY 2, 3, 4
				ON CONFLICT (org_id, day, action, entity_type) DO UPDATE SET n = t.n + excluded.n
				RETURNING t.xmax = 0 AS inserted),
			marks AS (
				INSERT INTO iam_internal.audit_watermarks AS w (org_id, seq)
				SELECT %1$L, max(seq) FROM fresh HAVING count(*) > 0
				ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq
				RETURNING 1)
			SELECT count(*) FILTER (WHERE inserted) FROM counts$fold$, c.org_id, c.after_seq) INTO got;
		added := added + got;
	END LOOP;
	IF added <> 0 THEN
		UPDATE iam_internal.report_rows SET n = n + added WHERE view_name = 'audit_summary';
	END IF;
END
$$;
COMMENT ON FUNCTION iam.report_fold_audit() IS
	'Internal: counts the audit rows sealed since each organisation''s watermark into iam_internal.audit_counts (and its row count into report_rows)';

-- the log reports become plain views over their summaries
DROP FUNCTION iam.report_audit_summary(timestamptz, timestamptz);
DROP FUNCTION iam.report_activity_trends(timestamptz, timestamptz);
DROP MATERIALIZED VIEW iam.audit_summary;
DROP MATERIALIZED VIEW iam.activity_trends;

CREATE VIEW iam.audit_summary WITH (security_invoker = true) AS
SELECT org_id, day, action, entity_type, n AS events FROM iam_internal.audit_counts;
COMMENT ON VIEW iam.audit_summary IS
	'Report: audit rows per organisation, day (UTC), action and entity type, counting the rows sealed at the last refresh (the sealer seals within iam.audit_seal_interval); a view over iam_internal.audit_counts, which each refresh brings up to date with the rows sealed since the previous one. Granted to no pg_iam role: tenants use iam.report_audit_summary() or GET /reports/audit-summary';
COMMENT ON COLUMN iam.audit_summary.day IS 'Day (UTC) of the audit rows'' created_at';
COMMENT ON COLUMN iam.audit_summary.action IS 'Audit action, e.g. user.created';
COMMENT ON COLUMN iam.audit_summary.events IS 'Number of audit rows';

CREATE VIEW iam.activity_trends WITH (security_invoker = true) AS
SELECT org_id, hour, type, iam.activity_category(type) AS category, n AS events
FROM iam_internal.activity_counts;
COMMENT ON VIEW iam.activity_trends IS
	'Report: activity events per organisation, hour (UTC) and type, with the type''s category (login, failure, lockout, denial, other), as of the last refresh; a view over iam_internal.activity_counts, which each refresh brings up to date with the events logged since the previous one. Granted to no pg_iam role: tenants use iam.report_activity_trends() or GET /reports/activity-trends';
COMMENT ON COLUMN iam.activity_trends.hour IS 'Start of the hour (UTC) of the events';
COMMENT ON COLUMN iam.activity_trends.type IS 'Activity type (iam.activity_logs.type)';
COMMENT ON COLUMN iam.activity_trends.category IS 'iam.activity_category(type): login, failure, lockout, denial or other';
COMMENT ON COLUMN iam.activity_trends.events IS 'Number of events';
REVOKE ALL ON iam.audit_summary, iam.activity_trends FROM PUBLIC;

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
REVOKE ALL ON FUNCTION iam.report_audit_summary(timestamptz, timestamptz),
	iam.report_activity_trends(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION iam.report_audit_summary(timestamptz, timestamptz),
	iam.report_activity_trends(timestamptz, timestamptz) TO iam_auditor;

INSERT INTO iam_internal.report_rows (view_name, n)
VALUES ('audit_summary', (SELECT count(*) FROM iam_internal.audit_counts)),
	   ('activity_trends', (SELECT count(*) FROM iam_internal.activity_counts));

CREATE FUNCTION iam.report_rebuild(view_name text) RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	total	bigint;
BEGIN
	IF view_name IS NULL OR view_name NOT IN ('user_statistics', 'role_analytics', 'audit_summary', 'activity_trends') THEN
		RAISE EXCEPTION 'unknown report view "%"', view_name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Name one of user_statistics, role_analytics, audit_summary, activity_trends.';
	END IF;
	-- the view's refreshes wait for the rebuild (and it for them)
	PERFORM pg_advisory_xact_lock(hashtextextended('iam.refresh_view ' || view_name, 0));
	CASE view_name
	WHEN 'user_statistics', 'role_analytics' THEN
		-- writers finish first, and nothing writes meanwhile: the deltas this
		-- transaction removes are exactly those already in the table it reads
		LOCK TABLE iam.users IN SHARE MODE;
		LOCK TABLE iam_internal.user_counts, iam_internal.user_signups IN SHARE ROW EXCLUSIVE MODE;
		DELETE FROM iam_internal.user_deltas;
		DELETE FROM iam_internal.user_counts;
		DELETE FROM iam_internal.user_signups;
		INSERT INTO iam_internal.user_counts (org_id, role, department, is_active, is_deleted, two_factor, n)
		SELECT org_id, role, department, is_active, deleted_at IS NOT NULL, two_factor_enabled, count(*)
		FROM iam.users GROUP BY 1, 2, 3, 4, 5, 6;
		INSERT INTO iam_internal.user_signups (org_id, day, n)
		SELECT org_id, (created_at AT TIME ZONE 'UTC')::date, count(*) FROM iam.users GROUP BY 1, 2;
		EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY iam.%I', view_name);
		EXECUTE format('SELECT count(*) FROM iam.%I', view_name) INTO total;
	WHEN 'activity_trends' THEN
		LOCK TABLE iam.activity_logs IN SHARE MODE;
		LOCK TABLE iam_internal.activity_counts IN SHARE ROW EXCLUSIVE MODE;
		DELETE FROM iam_internal.activity_deltas;
		DELETE FROM iam_internal.activity_counts;
		INSERT INTO iam_internal.activity_counts (org_id, hour, type, n)
		SELECT org_id, date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, count(*)
		FROM iam.activity_logs WHERE org_id IS NOT NULL GROUP BY 1, 2, 3;
		GET DIAGNOSTICS total = ROW_COUNT;
		UPDATE iam_internal.report_rows r SET n = total WHERE r.view_name = 'activity_trends';
	WHEN 'audit_summary' THEN
		LOCK TABLE iam_internal.audit_counts, iam_internal.audit_watermarks IN SHARE ROW EXCLUSIVE MODE;
		DELETE FROM iam_internal.audit_counts;
		DELETE FROM iam_internal.audit_watermarks;
		UPDATE iam_internal.report_rows r SET n = 0 WHERE r.view_name = 'audit_summary';
		PERFORM iam.report_fold_audit();
		SELECT r.n INTO total FROM iam_internal.report_rows r WHERE r.view_name = 'audit_summary';
	END CASE;
	RETURN total;
END
$$;
COMMENT ON FUNCTION iam.report_rebuild(text) IS
	'Rebuilds one report from scratch: its summary recomputed from iam.users, iam.activity_logs or iam.audit_logs (blocking the writers of users or activity_logs meanwhile, never the readers of the report), the view brought up to date; returns its row count. Needed only after changes made with triggers disabled (session_replication_role = replica); note that activity_trends and audit_summary then lose the hours and days of partitions dropped for retention';

CREATE OR REPLACE FUNCTION iam.report_rebuild() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- user_statistics also rebuilds the summaries role_analytics reads
	PERFORM iam.report_rebuild(v)
	FROM unnest(ARRAY['user_statistics', 'role_analytics', 'audit_summary', 'activity_trends']) WITH ORDINALITY AS x(v, i)
	ORDER BY i;
END
$$;
COMMENT ON FUNCTION iam.report_rebuild() IS
	'iam.report_rebuild(view) for every report view: recomputes every summary behind the reports from iam.users, iam.activity_logs and iam.audit_logs (blocking their writers meanwhile) and brings the views up to date; needed only after changes made with triggers disabled (session_replication_role = replica)';

CREATE OR REPLACE FUNCTION iam.refresh_view(name text) RETURNS bigint
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
			WHEN 'user_statistics', 'role_analytics' THEN
				PERFORM iam.report_fold_users();
				EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY iam.%I', name);
				EXECUTE format('SELECT count(*) FROM iam.%I', name) INTO n;
			WHEN 'audit_summary' THEN
				PERFORM iam.report_fold_audit();
			WHEN 'activity_trends' THEN
				PERFORM iam.report_fold_activity();
		END CASE;
		IF n IS NULL THEN
			SELECT r.n INTO STRICT n FROM iam_internal.report_rows r WHERE r.view_name = name;
		END IF;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
		n := NULL;
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
	'Brings one report view up to date now: folds the changes since the last refresh into its summary (audit_summary and activity_trends are views over theirs), then, for user_statistics and role_analytics, REFRESH MATERIALIZED VIEW CONCURRENTLY; readers are never blocked; returns its row count. '
	'A call made while the view is being refreshed waits for that refresh, then refreshes again. Every call is recorded in iam.view_refreshes; a failure is recorded there, raised as a WARNING, and returns NULL, leaving the view as it was. For pg_cron: SELECT cron.schedule(''iam-users'', ''0 * * * *'', $$SELECT iam.refresh_view(''user_statistics'')$$)';

REVOKE ALL ON FUNCTION iam.report_rebuild(text) FROM PUBLIC;

------------------------------------------------------------------------------
-- The audit trail partitioned by month (issue 8), its chain and immutability
-- kept across partitions.
--
--   iam.audit_logs                      PARTITION BY LIST ((seq IS NULL))
--   ├ iam.audit_inbox                   seq IS NULL: rows waiting for the
--   │                                   sealer (no indexes, as before)
--   └ iam_internal.audit_logs_sealed    seq set: PARTITION BY RANGE (created_at)
--     ├ iam_internal.audit_logs_pYYYYMM one per month (UTC), created ahead by
--     │                                 the refresh worker
--     └ iam_internal.audit_logs_sealed_default  anything else
--
-- Writers still append to the inbox, the sealer still moves rows from it
-- into iam.audit_logs (which routes them to their month), readers still
-- read iam.audit_logs.  The row guard (audit.c) is declared once on
-- iam.audit_logs and so present on every partition; TRUNCATE guards are
-- declared on each.  An event trigger (audit_partition.c) refuses DDL on
-- any of these tables (detach, attach, drop, triggers, ...) except from
-- the extension's scripts and these functions: audit_logs_add_partition(s)
-- and audit_logs_drop_partitions (retention), which records in
-- iam_internal.audit_anchors, per chain, the seq and row_hash of the last
-- row dropped, where iam.audit_verify then starts.  activity_logs gets
-- the same retention (activity_logs_drop_partitions).
--
-- A partitioned table has no unique index without its partition key, so
-- the (org_id, seq) unique index, the sealer's backstop, becomes a plain
-- index: the sealer's lock is what keeps seq gapless and unique, and
-- iam.audit_verify reports a duplicate.
------------------------------------------------------------------------------
-- nothing is sealed meanwhile (the sealer's lock, as in audit_chain.h)
SELECT pg_advisory_xact_lock(1229016397, 1);

CREATE TABLE iam_internal.audit_anchors (
	org_id			uuid,
	seq				bigint NOT NULL,
	row_hash		bytea NOT NULL CHECK (octet_length(row_hash) = 32),
	dropped_before	timestamptz NOT NULL,
	dropped_at		timestamptz NOT NULL DEFAULT now(),
	UNIQUE NULLS NOT DISTINCT (org_id)
);
COMMENT ON TABLE iam_internal.audit_anchors IS
	'Per audit chain (organisation; NULL for shared objects), the last row that retention dropped (iam.audit_logs_drop_partitions): iam.audit_verify checks the chain from the row after it, starting from its row_hash';
COMMENT ON COLUMN iam_internal.audit_anchors.seq IS 'seq of the last dropped row of the chain';
COMMENT ON COLUMN iam_internal.audit_anchors.row_hash IS 'row_hash of that row: the prev_hash the next row must carry';
COMMENT ON COLUMN iam_internal.audit_anchors.dropped_before IS 'The partitions dropped held the rows created before this instant';
COMMENT ON COLUMN iam_internal.audit_anchors.dropped_at IS 'When the anchor was last moved';

-- the trail of 0.5 steps aside
DROP VIEW iam.audit_status;
ALTER TABLE iam.audit_inbox NO INHERIT iam.audit_logs;
ALTER TABLE iam.audit_logs RENAME TO audit_logs_0_5;
ALTER TABLE iam.audit_logs_0_5 SET SCHEMA iam_internal;

CREATE TABLE iam.audit_logs (LIKE iam_internal.audit_logs_0_5 INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
	PARTITION BY LIST ((seq IS NULL));
COMMENT ON TABLE iam.audit_logs IS
	'Append-only record of every change to admin data, hash-chained per organisation. Partitioned: unsealed rows (seq NULL) in iam.audit_inbox, sealed ones in iam_internal.audit_logs_sealed by month of created_at (UTC), partitions created ahead by the refresh worker (iam.audit_logs_add_partitions) and dropped only by iam.audit_logs_drop_partitions; rows are unique by id, not declared (a partitioned table has no unique index without its partition key)';
DO $comments$
DECLARE
	c record;
BEGIN
	FOR c IN SELECT a.attname, d.description FROM pg_attribute a
			 JOIN pg_description d ON d.objoid = a.attrelid AND d.objsubid = a.attnum
			 WHERE a.attrelid = 'iam_internal.audit_logs_0_5'::regclass
	LOOP
		EXECUTE format('COMMENT ON COLUMN iam.audit_logs.%I IS %L', c.attname, c.description);
	END LOOP;
END
$comments$;
COMMENT ON COLUMN iam.audit_logs.id IS 'Row id';
ALTER TABLE iam.audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE iam.audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON iam.audit_logs
	USING (org_id = iam.current_org_id()) WITH CHECK (org_id = iam.current_org_id());
REVOKE ALL ON iam.audit_logs FROM PUBLIC;
GRANT SELECT ON iam.audit_logs TO iam_auditor;

CREATE TABLE iam_internal.audit_logs_sealed PARTITION OF iam.audit_logs FOR VALUES IN (false)
	PARTITION BY RANGE (created_at);
COMMENT ON TABLE iam_internal.audit_logs_sealed IS
	'Partition of iam.audit_logs: the sealed rows (seq set), partitioned by month of created_at (UTC) into audit_logs_pYYYYMM and audit_logs_sealed_default';
CREATE INDEX audit_logs_sealed_chain_idx ON iam_internal.audit_logs_sealed (org_id, seq);
CREATE INDEX audit_logs_sealed_org_created_idx ON iam_internal.audit_logs_sealed (org_id, created_at, id);
CREATE INDEX audit_logs_sealed_org_user_idx ON iam_internal.audit_logs_sealed (org_id, user_id, created_at);
CREATE INDEX audit_logs_sealed_org_action_idx ON iam_internal.audit_logs_sealed (org_id, action, created_at);
CREATE INDEX audit_logs_sealed_entity_idx ON iam_internal.audit_logs_sealed (org_id, entity_type, entity_id, created_at);
CREATE INDEX audit_logs_sealed_id_idx ON iam_internal.audit_logs_sealed (id);
COMMENT ON INDEX iam_internal.audit_logs_sealed_chain_idx IS 'The chains in seq order: heads for the sealer, verification, report folds';
COMMENT ON INDEX iam_internal.audit_logs_sealed_org_created_idx IS 'Listings of an organisation''s trail (GET /audit-logs)';
COMMENT ON INDEX iam_internal.audit_logs_sealed_org_user_idx IS 'An organisation''s trail by acting user';
COMMENT ON INDEX iam_internal.audit_logs_sealed_org_action_idx IS 'An organisation''s trail by action';
COMMENT ON INDEX iam_internal.audit_logs_sealed_entity_idx IS 'The trail of one entity (erasure, listings by entity)';
COMMENT ON INDEX iam_internal.audit_logs_sealed_id_idx IS 'A row by id (erasure)';
CREATE TABLE iam_internal.audit_logs_sealed_default PARTITION OF iam_internal.audit_logs_sealed DEFAULT;
COMMENT ON TABLE iam_internal.audit_logs_sealed_default IS
	'Default partition of the sealed audit trail: rows of a month without a partition of its own (iam.audit_logs_add_partition moves them when it creates one)';

-- the inbox becomes the unsealed partition; its row guard comes from
-- iam.audit_logs from now on
DROP TRIGGER audit_guard ON iam.audit_inbox;
ALTER TABLE iam.audit_logs ATTACH PARTITION iam.audit_inbox FOR VALUES IN (true);
COMMENT ON TABLE iam.audit_inbox IS
	'Audit rows waiting for the sealer: the partition of iam.audit_logs holding the rows with seq NULL, appended by the capture triggers, moved into iam_internal.audit_logs_sealed with their chain position by the sealer; no indexes, so that writers pay for one heap insert; written only by pg_iam''s code';

CREATE FUNCTION iam_internal.audit_logs_add_partition_work(month date) RETURNS boolean
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lo		date := date_trunc('month', month)::date;
	hi		date := (date_trunc('month', month) + interval '1 month')::date;
	part	text := 'audit_logs_p' || to_char(lo, 'YYYYMM');
	lo_ts	text := lo::text || ' 00:00:00+00';
	hi_ts	text := hi::text || ' 00:00:00+00';
BEGIN
	IF to_regclass(format('iam_internal.%I', part)) IS NOT NULL THEN
		RETURN false;
	END IF;
	-- a table of its own first: rows of that month in the default partition
	-- move into it, then it is attached (ATTACH would refuse while the
	-- default partition holds rows of the new range)
	EXECUTE format('CREATE TABLE iam_internal.%I (LIKE iam_internal.audit_logs_sealed INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
	EXECUTE format('ALTER TABLE iam_internal.%I ADD CHECK (created_at >= %L AND created_at < %L)', part, lo_ts, hi_ts);
	EXECUTE format('WITH moved AS (DELETE FROM iam_internal.audit_logs_sealed_default '
				   'WHERE created_at >= %L AND created_at < %L RETURNING *) '
				   'INSERT INTO iam_internal.%I SELECT * FROM moved ORDER BY org_id, seq',
				   lo_ts, hi_ts, part);
	EXECUTE format('ALTER TABLE iam_internal.audit_logs_sealed ATTACH PARTITION iam_internal.%I FOR VALUES FROM (%L) TO (%L)',
				   part, lo_ts, hi_ts);
	EXECUTE format('CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON iam_internal.%I '
				   'FOR EACH STATEMENT EXECUTE FUNCTION iam.audit_guard()', part);
	EXECUTE format('COMMENT ON TABLE iam_internal.%I IS %L', part,
				   format('Partition of the sealed audit trail: rows created in %s (UTC)', to_char(lo, 'YYYY-MM')));
	EXECUTE format('COMMENT ON TRIGGER audit_guard_truncate ON iam_internal.%I IS %L', part,
				   'The audit trail is append-only: TRUNCATE is refused for every role');
	RETURN true;
END
$$;
COMMENT ON FUNCTION iam_internal.audit_logs_add_partition_work(date) IS
	'Internal: the work of iam.audit_logs_add_partition, which alone may run it (its DDL is refused otherwise)';

CREATE FUNCTION iam.audit_logs_add_partition(month date) RETURNS boolean
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'iam_audit_logs_add_partition';
COMMENT ON FUNCTION iam.audit_logs_add_partition(date) IS
	'Creates the partition of the sealed audit trail for the month (UTC) holding the date, moving that month''s rows out of the default partition unchanged; false when it exists already';

CREATE FUNCTION iam.audit_logs_add_partitions(months_ahead int DEFAULT 3) RETURNS int
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	created	int := 0;
	m		int;
BEGIN
	IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
		RAISE EXCEPTION 'months_ahead must be between 0 and 120' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Pass how many months after the current one need a partition.';
	END IF;
	FOR m IN 0 .. months_ahead LOOP
		IF iam.audit_logs_add_partition(((now() AT TIME ZONE 'UTC') + make_interval(months => m))::date) THEN
			created := created + 1;
		END IF;
	END LOOP;
	RETURN created;
END
$$;
COMMENT ON FUNCTION iam.audit_logs_add_partitions(int) IS
	'Makes sure the sealed audit trail has partitions for the current month (UTC) and months_ahead months after it; returns how many it created. The refresh worker calls it with iam.audit_partitions_ahead at start and every hour';

CREATE FUNCTION iam_internal.audit_logs_drop_partitions_work(before date) RETURNS int
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p		record;
	dropped	int := 0;
BEGIN
	-- the sealer waits: the anchors are the chains' last dropped rows
	PERFORM pg_advisory_xact_lock(1229016397, 1);
	FOR p IN
		SELECT c.relname, to_date(substr(c.relname, 13), 'YYYYMM') AS month
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'iam_internal.audit_logs_sealed'::regclass
		  AND c.relname ~ '^audit_logs_p[0-9]{6}$'
		  AND to_date(substr(c.relname, 13), 'YYYYMM') + interval '1 month' <= before
		ORDER BY 2
	LOOP
		EXECUTE format('INSERT INTO iam_internal.audit_anchors AS a (org_id, seq, row_hash, dropped_before) '
					   'SELECT DISTINCT ON (org_id) org_id, seq, row_hash, %L FROM iam_internal.%I '
					   'ORDER BY org_id, seq DESC '
					   'ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, row_hash = excluded.row_hash, '
					   'dropped_before = excluded.dropped_before, dropped_at = now() '
					   'WHERE excluded.seq > a.seq',
					   (p.month + interval '1 month')::date::text || ' 00:00:00+00', p.relname);
		-- partitions made by the extension's scripts belong to the extension
		IF EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
				   AND d.objid = format('iam_internal.%I', p.relname)::regclass AND d.deptype = 'e') THEN
			EXECUTE format('ALTER EXTENSION iam DROP TABLE iam_internal.%I', p.relname);
		END IF;
		EXECUTE format('DROP TABLE iam_internal.%I', p.relname);
		dropped := dropped + 1;
	END LOOP;
	RETURN dropped;
END
$$;
COMMENT ON FUNCTION iam_internal.audit_logs_drop_partitions_work(date) IS
	'Internal: the work of iam.audit_logs_drop_partitions, which alone may run it (its DDL is refused otherwise)';

CREATE FUNCTION iam.audit_logs_drop_partitions(before date) RETURNS int
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'iam_audit_logs_drop_partitions';
COMMENT ON FUNCTION iam.audit_logs_drop_partitions(date) IS
	'Retention: drops the monthly partitions of the sealed audit trail whose month ends on or before the date, after recording per chain the seq and row_hash of its last dropped row in iam_internal.audit_anchors, so that iam.audit_verify checks the rest from there; returns how many it dropped. The default partition is never dropped. audit_summary keeps counting the dropped days';

CREATE FUNCTION iam.activity_logs_drop_partitions(before date) RETURNS int
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p		record;
	dropped	int := 0;
BEGIN
	IF before IS NULL THEN
		RAISE EXCEPTION 'before must not be NULL' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Pass the first day of the oldest month to keep.';
	END IF;
	FOR p IN
		SELECT c.relname
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'iam.activity_logs'::regclass
		  AND c.relname ~ '^activity_logs_p[0-9]{6}$'
		  AND to_date(substr(c.relname, 16), 'YYYYMM') + interval '1 month' <= before
		ORDER BY 1
	LOOP
		-- partitions made by the extension's scripts belong to the extension
		IF EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
				   AND d.objid = format('iam_internal.%I', p.relname)::regclass AND d.deptype = 'e') THEN
			EXECUTE format('ALTER EXTENSION iam DROP TABLE iam_internal.%I', p.relname);
		END IF;
		EXECUTE format('DROP TABLE iam_internal.%I', p.relname);
		dropped := dropped + 1;
	END LOOP;
	RETURN dropped;
END
$$;
COMMENT ON FUNCTION iam.activity_logs_drop_partitions(date) IS
	'Retention: drops the monthly partitions of iam.activity_logs whose month ends on or before the date; returns how many it dropped. The default partition is never dropped. activity_trends keeps counting the dropped hours';

-- partitions for every month holding sealed rows and the months ahead, then
-- the rows of 0.5, in chain order (no guard on the new table yet)
SELECT iam.audit_logs_add_partition(m)
FROM (SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS m
	  FROM ONLY iam_internal.audit_logs_0_5 WHERE seq IS NOT NULL) AS months;
SELECT iam.audit_logs_add_partitions(3);
INSERT INTO iam.audit_logs SELECT * FROM ONLY iam_internal.audit_logs_0_5 ORDER BY org_id, seq, created_at, id;
DROP TABLE iam_internal.audit_logs_0_5;

-- the guards: rows on every partition (cloned from here), TRUNCATE on each
CREATE TRIGGER audit_guard BEFORE INSERT OR UPDATE OR DELETE ON iam.audit_logs
	FOR EACH ROW EXECUTE FUNCTION iam.audit_guard();
COMMENT ON TRIGGER audit_guard ON iam.audit_logs IS
	'The audit trail is append-only: only pg_iam''s triggers append (to the inbox), only its sealer moves rows into the sealed partitions, only iam.erase_user erases, only iam.audit_logs_add_partition moves rows between partitions; present on every partition';
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON iam.audit_logs
	FOR EACH STATEMENT EXECUTE FUNCTION iam.audit_guard();
COMMENT ON TRIGGER audit_guard_truncate ON iam.audit_logs IS
	'The audit trail is append-only: TRUNCATE is refused for every role';
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON iam_internal.audit_logs_sealed
	FOR EACH STATEMENT EXECUTE FUNCTION iam.audit_guard();
COMMENT ON TRIGGER audit_guard_truncate ON iam_internal.audit_logs_sealed IS
	'The audit trail is append-only: TRUNCATE is refused for every role';
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON iam_internal.audit_logs_sealed_default
	FOR EACH STATEMENT EXECUTE FUNCTION iam.audit_guard();
COMMENT ON TRIGGER audit_guard_truncate ON iam_internal.audit_logs_sealed_default IS
	'The audit trail is append-only: TRUNCATE is refused for every role';

CREATE VIEW iam.audit_status AS
	SELECT count(*) AS unsealed,
		   min(created_at) AS oldest_unsealed,
		   coalesce(pg_catalog.now() - min(created_at), interval '0') AS lag
	FROM iam.audit_logs WHERE seq IS NULL;
COMMENT ON VIEW iam.audit_status IS
	'Audit rows waiting for the sealer: how many, the oldest one''s created_at and its age (the sealing lag; stays below iam.audit_seal_interval plus a pass when the sealer keeps up)';
COMMENT ON COLUMN iam.audit_status.unsealed IS 'Audit rows committed or in progress that have no seq yet';
COMMENT ON COLUMN iam.audit_status.oldest_unsealed IS 'created_at of the oldest unsealed row';
COMMENT ON COLUMN iam.audit_status.lag IS 'Age of the oldest unsealed row at the start of this transaction; 0 when everything is sealed';
REVOKE ALL ON iam.audit_status FROM PUBLIC;
GRANT SELECT ON iam.audit_status TO iam_auditor, iam_gateway;

CREATE FUNCTION iam.audit_ddl_guard() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'iam_audit_ddl_guard';
COMMENT ON FUNCTION iam.audit_ddl_guard() IS
	'Event trigger function (ddl_command_start): refuses (42501) DDL on iam.audit_logs and its partitions (detach, attach, drop, create a partition, triggers, rules, policies, renames, columns) for every role, the owner included, except from the extension''s scripts and iam.audit_logs_add_partition / iam.audit_logs_drop_partitions; storage settings stay allowed';
CREATE EVENT TRIGGER iam_audit_ddl_guard ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE', 'DROP TABLE', 'CREATE TABLE', 'CREATE TRIGGER', 'DROP TRIGGER',
				 'ALTER TRIGGER', 'CREATE RULE', 'DROP RULE', 'DROP POLICY')
	EXECUTE FUNCTION iam.audit_ddl_guard();
COMMENT ON EVENT TRIGGER iam_audit_ddl_guard IS
	'Keeps the audit trail''s partitions part of it: see iam.audit_ddl_guard()';

REVOKE ALL ON FUNCTION iam.audit_logs_add_partition(date), iam.audit_logs_add_partitions(int),
	iam.audit_logs_drop_partitions(date), iam.activity_logs_drop_partitions(date),
	iam_internal.audit_logs_add_partition_work(date), iam_internal.audit_logs_drop_partitions_work(date),
	iam.audit_ddl_guard()
	FROM PUBLIC;
