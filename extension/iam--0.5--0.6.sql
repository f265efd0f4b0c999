-- iam--0.5--0.6.sql
-- CREATE EXTENSION iam runs iam--0.1.sql, the upgrades to 0.5 and this file.

\echo Use "CREATE EXTENSION iam" or "ALTER EXTENSION iam UPDATE" to load this file. \quit

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
	added	bigint;
BEGIN
	LOCK TABLE iam_internal.audit_counts, iam_internal.audit_watermarks IN SHARE ROW EXCLUSIVE MODE;
	-- per chain, the rows sealed after the watermark (index (org_id, seq) of
	-- every partition); seq is assigned at sealing in commit order, so
	-- nothing can appear below a watermark later
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
		RETURNING t.xmax = 0 AS inserted),
	marks AS (
		INSERT INTO iam_internal.audit_watermarks AS w (org_id, seq)
		SELECT org_id, max(seq) FROM fresh GROUP BY org_id
		ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq
		RETURNING 1)
	SELECT count(*) FILTER (WHERE inserted) INTO added FROM counts;
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
