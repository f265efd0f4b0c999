#!/usr/bin/env bash
# bench/reports.sh (`make bench`): refreshing the report views at scale.  On
# a throwaway cluster: IAM_BENCH_REPORTS_USERS users in 10 organisations,
# IAM_BENCH_REPORTS_AUDIT sealed audit rows (in the monthly partitions of
# the trail) and IAM_BENCH_REPORTS_ACTIVITY activity events over a year,
# generated in bulk.  IAM_BENCH_REPORTS_SCALE picks the defaults: small (the
# default, a quick run: 50,000 users, 500,000 audit rows, 100,000 events)
# or large (issue 8's scale: 1,000,000 users, 10,000,000 audit rows,
# 1,000,000 events).  For each view it prints:
#   - a plain full REFRESH (and REFRESH CONCURRENTLY) of the same view
#     computed straight from the base tables (what the view would cost
#     without incremental maintenance);
#   - iam.refresh_view(name) after 1 % of the users changed (department,
#     2FA, deactivation; their audit rows sealed) and 1 % more activity:
#     the incremental fold plus the CONCURRENTLY refresh of the view;
#   - the mean time of a REST report request (the handler, 200 calls).
# Other sizes: IAM_BENCH_REPORTS_USERS=... and so on.
# Prints the table, also to bench/results/reports.md (reports-large.md at
# IAM_BENCH_REPORTS_SCALE=large).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

case "${IAM_BENCH_REPORTS_SCALE:-small}" in
	small) DEF_USERS=50000 DEF_AUDIT=500000 DEF_ACTIVITY=100000 ;;
	large) DEF_USERS=1000000 DEF_AUDIT=10000000 DEF_ACTIVITY=1000000 ;;
	*) die "IAM_BENCH_REPORTS_SCALE must be small or large" ;;
esac
USERS=${IAM_BENCH_REPORTS_USERS:-$DEF_USERS}
AUDIT=${IAM_BENCH_REPORTS_AUDIT:-$DEF_AUDIT}
ACTIVITY=${IAM_BENCH_REPORTS_ACTIVITY:-$DEF_ACTIVITY}
bench_cluster bench-reports 54391 <<'CONF'
autovacuum = off
shared_buffers = '1GB'
max_wal_size = '8GB'
work_mem = '64MB'
maintenance_work_mem = '512MB'
iam.refresh_schedule = off
CONF

log "generating $USERS users, $AUDIT audit rows, $ACTIVITY activity events ..."
T_GEN=$(date +%s)
PGOPTIONS='-c client_min_messages=warning' psql_bench -v users="$USERS" -v audit="$AUDIT" -v activity="$ACTIVITY" >/dev/null <<'SQL'
CREATE EXTENSION iam CASCADE;
INSERT INTO iam.organizations (id, name, slug)
SELECT md5('org' || o)::uuid, 'Org ' || o, 'org-' || o FROM generate_series(0, 9) AS o;
-- bulk load without the per-row triggers; the summaries are rebuilt below
ALTER TABLE iam.users DISABLE TRIGGER USER;
INSERT INTO iam.users (id, org_id, email, name, role, department, is_active, two_factor_enabled, deleted_at, created_at)
SELECT md5('user' || i)::uuid, md5('org' || (i % 10))::uuid, 'user' || i || '@bench.example', 'User ' || i,
	   (ARRAY['member', 'member', 'member', 'admin', 'auditor'])[1 + i % 5],
	   CASE WHEN i % 17 = 0 THEN NULL ELSE 'Dept ' || (i % 20) END,
	   i % 20 <> 0, i % 3 = 0, CASE WHEN i % 33 = 0 THEN now() END,
	   now() - (i % 365) * interval '1 day' - (i % 1440) * interval '1 minute'
FROM generate_series(1, :users) AS i;
ALTER TABLE iam.users ENABLE TRIGGER USER;
-- sealed audit rows, seq gapless per organisation after the rows already
-- chained (the organisations' creation; hashes are not checked here), under
-- the sealer's lock so that the worker chains nothing meanwhile; into the
-- trail's monthly partitions, with its guard off for this transaction
-- (its tables cannot be altered, so not by disabling its triggers)
SELECT iam.audit_logs_add_partition((now() - m * interval '1 month')::date) FROM generate_series(0, 12) AS m;
BEGIN;
SELECT pg_advisory_xact_lock(1229016397, 1);
SELECT iam.audit_seal();
CREATE TEMP TABLE heads AS
SELECT o.id AS org_id, coalesce(max(a.seq), 0) AS seq
FROM iam.organizations o LEFT JOIN iam.audit_logs a ON a.org_id = o.id AND a.seq IS NOT NULL GROUP BY o.id;
SET LOCAL session_replication_role = replica;
INSERT INTO iam.audit_logs (org_id, action, entity_type, entity_id, created_at, seq, prev_hash, row_hash)
SELECT md5('org' || (i % 10))::uuid,
	   (ARRAY['user.created', 'user.updated', 'user.updated', 'user.role_granted', 'role.updated'])[1 + i % 5],
	   CASE WHEN i % 5 = 4 THEN 'role' ELSE 'user' END, NULL,
	   now() - interval '365 days' + (i::double precision / :audit) * interval '365 days',
	   i / 10 + 1 + (SELECT h.seq FROM heads h WHERE h.org_id = md5('org' || (i % 10))::uuid),
	   '\x0000000000000000000000000000000000000000000000000000000000000000',
	   '\x0000000000000000000000000000000000000000000000000000000000000000'
FROM generate_series(0, :audit - 1) AS i;
COMMIT;
SELECT iam.activity_logs_add_partition((now() - m * interval '1 month')::date) FROM generate_series(0, 12) AS m;
ALTER TABLE iam.activity_logs DISABLE TRIGGER USER;
INSERT INTO iam.activity_logs (org_id, user_id, type, created_at)
SELECT md5('org' || (i % 10))::uuid, md5('user' || (i % 100000))::uuid,
	   (ARRAY['login', 'login', 'login', 'login_failed', 'lockout', 'permission_denied'])[1 + i % 6],
	   now() - (i % 8760) * interval '1 hour' - (i % 60) * interval '1 minute'
FROM generate_series(1, :activity) AS i;
ALTER TABLE iam.activity_logs ENABLE TRIGGER USER;
SELECT iam.report_rebuild();
SELECT iam.refresh_views();
-- a reader of the reports: an auditor of org 0
INSERT INTO iam.users (id, org_id, email, name, role) VALUES (md5('reader')::uuid, md5('org0')::uuid, 'reader@bench.example', 'Reader', 'auditor');
-- the same views straight from the base tables, for comparison
CREATE SCHEMA bench;
SET search_path = pg_catalog;
DO $$
DECLARE
	v text;
	def text;
BEGIN
	FOREACH v IN ARRAY ARRAY['user_statistics', 'role_analytics'] LOOP
		def := pg_get_viewdef(format('iam.%I', v)::regclass, true);
		def := replace(def, 'iam_internal.user_counts',
			'(SELECT org_id, role, department, is_active, deleted_at IS NOT NULL AS is_deleted, two_factor_enabled AS two_factor, count(*) AS n FROM iam.users GROUP BY 1, 2, 3, 4, 5, 6) user_counts');
		def := replace(def, 'iam_internal.user_signups',
			'(SELECT org_id, (created_at AT TIME ZONE ''UTC'')::date AS day, count(*) AS n FROM iam.users GROUP BY 1, 2) user_signups');
		EXECUTE format('CREATE MATERIALIZED VIEW bench.%I AS %s', v, rtrim(def, ';'));
	END LOOP;
END
$$;
CREATE MATERIALIZED VIEW bench.audit_summary AS
SELECT org_id, (created_at AT TIME ZONE 'UTC')::date AS day, action, entity_type, count(*) AS events
FROM iam.audit_logs WHERE seq IS NOT NULL GROUP BY 1, 2, 3, 4;
CREATE MATERIALIZED VIEW bench.activity_trends AS
SELECT org_id, date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, type,
	   iam.activity_category(type) AS category, count(*) AS events
FROM iam.activity_logs WHERE org_id IS NOT NULL GROUP BY 1, 2, 3;
CREATE UNIQUE INDEX ON bench.user_statistics (org_id);
CREATE UNIQUE INDEX ON bench.role_analytics (org_id, role_id);
CREATE UNIQUE INDEX ON bench.audit_summary (org_id, day, action, entity_type);
CREATE UNIQUE INDEX ON bench.activity_trends (org_id, hour, type);
VACUUM ANALYZE;
CHECKPOINT;
SQL
T_GEN=$(($(date +%s) - T_GEN))

# seconds STATEMENT: wall time of one statement, in seconds (3 decimals)
seconds() {
	psql_bench -At <<SQL | tail -n 1
SELECT clock_timestamp() AS t0 \\gset
$1 \\g /dev/null
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3);
SQL
}

VIEWS="user_statistics role_analytics audit_summary activity_trends"
declare -A FULL CONC INCR REQ
for v in $VIEWS; do
	log "$v: plain full REFRESH ..."
	FULL[$v]=$(seconds "REFRESH MATERIALIZED VIEW bench.$v")
	CONC[$v]=$(seconds "REFRESH MATERIALIZED VIEW CONCURRENTLY bench.$v")
done

log "1 % of the users change, 1 % more activity ..."
CHANGED=$((USERS / 100))
T_WRITE=$(seconds "UPDATE iam.users SET department = 'Moved', two_factor_enabled = NOT two_factor_enabled,
	is_active = (id::text < '8') WHERE id IN (SELECT md5('user' || i)::uuid FROM generate_series(1, $USERS, 100) AS i)")
psql_bench -c "INSERT INTO iam.activity_logs (org_id, type) SELECT md5('org' || (i % 10))::uuid, 'login' FROM generate_series(1, $ACTIVITY / 100) AS i" >/dev/null
psql_bench -c "SELECT iam.audit_seal()" >/dev/null
psql_bench -c "VACUUM ANALYZE iam_internal.user_deltas, iam_internal.activity_deltas" >/dev/null
for v in $VIEWS; do
	log "$v: iam.refresh_view after the change ..."
	INCR[$v]=$(seconds "SELECT iam.refresh_view('$v')")
done
log "the same views fully rebuilt from the base tables (iam.report_rebuild) ..."
REBUILD=$(seconds "SELECT iam.report_rebuild()")
CHECK=$(psql_bench -At <<'SQL'
REFRESH MATERIALIZED VIEW bench.user_statistics;
SELECT count(*) FROM (
	SELECT to_jsonb(s) FROM iam.user_statistics s EXCEPT SELECT to_jsonb(s) FROM bench.user_statistics s) AS d;
SQL
)

log "report requests ..."
for v in $VIEWS; do
	REQ[$v]=$(psql_bench -At <<SQL | tail -n 1
BEGIN;
SELECT set_config('iam.user_id', md5('reader')::uuid::text, true), set_config('iam.org_id', md5('org0')::uuid::text, true) \\gset
SELECT iam.api_reports_$v('{}', NULL) \\gset
SELECT clock_timestamp() AS t0 \\gset
SELECT count(iam.api_reports_$v('{}', NULL)) FROM generate_series(1, 200) \\gset
SELECT round((extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000 / 200)::numeric, 3);
COMMIT;
SQL
)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
TABLE="| view | plain full REFRESH | plain REFRESH CONCURRENTLY | iam.refresh_view after 1 % change | ÷ plain CONCURRENTLY (target ≤ 0.1) | report request (mean) |
|---|---|---|---|---|---|"
for v in $VIEWS; do
	TABLE="$TABLE
| $v | ${FULL[$v]} s | ${CONC[$v]} s | ${INCR[$v]} s | $(ratio "${INCR[$v]}" "${CONC[$v]}") | ${REQ[$v]} ms |"
done
TABLE="$TABLE

- change: UPDATE of $CHANGED users (1 %) moving them between report groups, with the capture triggers: $T_WRITE s
- full rebuild of every summary from the base tables (iam.report_rebuild): $REBUILD s
- user_statistics rows differing from the plain view after the incremental refresh: $CHECK (must be 0)
- data generation: ${T_GEN} s"

HEADER="## reports: refreshing the report views ($(date -u +%Y-%m-%d), $(nproc) cores, $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'))

$USERS users in 10 organisations, $AUDIT sealed audit rows, $ACTIVITY activity events over a year;
\"plain\" is the same view computed straight from the base tables; bench/reports.sh."
mkdir -p bench/results
printf '%s\n\n%s\n' "$HEADER" "$TABLE" | tee "bench/results/reports$([ "${IAM_BENCH_REPORTS_SCALE:-small}" = small ] || echo -large).md"
