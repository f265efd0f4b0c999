#!/usr/bin/env bash
# bench/rbac.sh (`make bench`): the permission engine against the SQL a
# service would otherwise run.  On a throwaway cluster (started and removed
# here, like scripts/test.sh), with deterministic data (setseed): 100,000
# users in 5 organisations, 50 roles (10 per organisation, inheriting three
# levels deep), 200 permissions, an extra role for 1 user in 5 and direct
# grants (global or scoped to a document) for 1 user in 10.  Prints:
#   - cached iam.has_permission: checks per second over 500,000 random
#     (user, permission) pairs of 1,000 warmed users, and the cost of the
#     same scan without the check;
#   - the first check of a user: a cache miss in a warm backend (the
#     dictionary is loaded, the user is not), and after
#     iam.rbac_cache_reset() (dictionary rebuilt too), timed one by one;
#   - the straightforward join (users -> roles -> role_permissions ->
#     permissions, union user_permissions, inheritance as a recursive CTE)
#     answering the same questions, and the ratio;
#   - bytes per cached user (iam.rbac_cache_stats) with 10,000 users cached.
# The table goes to stdout and to bench/results/rbac.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

bench_cluster bench 54379 <<'CONF'
fsync = off
synchronous_commit = off
autovacuum = off
shared_buffers = '256MB'
CONF

log "generating data (100,000 users) ..."
PGOPTIONS='-c client_min_messages=warning' psql_bench >/dev/null <<'SQL'
CREATE EXTENSION iam CASCADE;
SET max_parallel_workers_per_gather = 0;	-- random() in a fixed order
SELECT setseed(0.4242);

INSERT INTO iam.organizations (id, name, slug)
SELECT md5('org' || o)::uuid, 'Bench ' || o, 'bench-' || o FROM generate_series(1, 5) AS o;

-- 184 more permissions, 200 in all, in the allowed categories
INSERT INTO iam.permissions (name, display_name, category)
SELECT c || '.bench_' || i, 'Bench ' || i, c
FROM generate_series(1, 184) AS i,
	 LATERAL (SELECT (ARRAY['users', 'roles', 'permissions', 'audit', 'activity', 'reports',
						   'jobs', 'org', 'sessions'])[1 + i % 9] AS c) AS cat;

-- 10 roles per organisation: r0-r3 plain, r4-r6 inherit two of them, r7-r8
-- two of those, r9 inherits r7 and r8 (three levels)
INSERT INTO iam.roles (id, name, display_name, org_id)
SELECT md5(format('role-%s-%s', o, k))::uuid, 'bench_r' || k, 'Bench role ' || k, md5('org' || o)::uuid
FROM generate_series(1, 5) AS o, generate_series(0, 9) AS k;
INSERT INTO iam.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM iam.roles r,
	 LATERAL (SELECT id FROM iam.permissions
			  WHERE name <> 'platform.admin' AND r.id IS NOT NULL ORDER BY random() LIMIT 8) AS p
WHERE r.name LIKE 'bench_r%';
INSERT INTO iam.role_inheritance (role_id, inherits_role_id)
SELECT md5(format('role-%s-%s', o, e.a))::uuid, md5(format('role-%s-%s', o, e.b))::uuid
FROM generate_series(1, 5) AS o,
	 (VALUES (4, 0), (4, 1), (5, 1), (5, 2), (6, 2), (6, 3), (7, 4), (7, 5), (8, 5), (8, 6),
			 (9, 7), (9, 8)) AS e (a, b);

-- users: primary role member (1 in 5) or one of their organisation's roles
INSERT INTO iam.users (id, org_id, email, name, role)
SELECT md5('user' || i)::uuid, md5('org' || (1 + i % 5))::uuid, 'user' || i || '@bench.example', 'User ' || i,
	   CASE WHEN random() < 0.2 THEN 'member' ELSE 'bench_r' || floor(random() * 10)::int END
FROM generate_series(1, 100000) AS i;
-- an extra role for 1 user in 5, some expiring in a month
INSERT INTO iam.user_roles (user_id, role_id, expires_at)
SELECT md5('user' || i)::uuid, md5(format('role-%s-%s', 1 + i % 5, floor(random() * 10)::int))::uuid,
	   CASE WHEN random() < 0.3 THEN now() + interval '30 days' END
FROM generate_series(1, 100000) AS i WHERE i % 5 = 1;
-- direct grants for 1 user in 10: two permissions, global or on one document
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type, resource_id, expires_at)
SELECT md5('user' || i)::uuid, p.id,
	   CASE WHEN i % 20 = 3 THEN 'document' END, CASE WHEN i % 20 = 3 THEN md5('doc' || i)::uuid END,
	   CASE WHEN random() < 0.2 THEN now() + interval '7 days' END
FROM generate_series(1, 100000) AS i,
	 LATERAL (SELECT id FROM iam.permissions
			  WHERE name <> 'platform.admin' AND i > 0 ORDER BY random() LIMIT 2) AS p
WHERE i % 10 = 3;
VACUUM ANALYZE;

-- the straightforward join, as the seed would write it
CREATE SCHEMA bench;
CREATE FUNCTION bench.join_check(uid uuid, perm text) RETURNS boolean
	LANGUAGE sql STABLE AS $$
	WITH RECURSIVE closure(role_id) AS (
		SELECT r.id FROM iam.users u
		JOIN iam.roles r ON r.name = u.role AND (r.org_id = u.org_id OR r.org_id IS NULL)
		WHERE u.id = uid AND u.is_active AND u.deleted_at IS NULL
		UNION
		SELECT ur.role_id FROM iam.user_roles ur JOIN iam.users u ON u.id = ur.user_id
		WHERE ur.user_id = uid AND u.is_active AND u.deleted_at IS NULL
		  AND (ur.expires_at IS NULL OR ur.expires_at > now())
		UNION
		SELECT ri.inherits_role_id FROM iam.role_inheritance ri JOIN closure c ON ri.role_id = c.role_id
	)
	SELECT EXISTS (
		SELECT FROM closure c
		JOIN iam.role_permissions rp ON rp.role_id = c.role_id
		JOIN iam.permissions p ON p.id = rp.permission_id
		WHERE p.name = perm
		UNION ALL
		SELECT FROM iam.user_permissions up
		JOIN iam.permissions p ON p.id = up.permission_id
		JOIN iam.users u ON u.id = up.user_id
		WHERE up.user_id = uid AND p.name = perm AND up.resource_type IS NULL
		  AND (up.expires_at IS NULL OR up.expires_at > now())
		  AND u.is_active AND u.deleted_at IS NULL)
$$;

-- elapsed milliseconds of one query
CREATE FUNCTION bench.ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0	timestamptz := clock_timestamp();
	n	bigint;
BEGIN
	EXECUTE q INTO n;
	RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$$;

-- microseconds of each first check, one by one (reset: empty the cache first)
CREATE FUNCTION bench.first_checks(users uuid[], perms text[], reset boolean) RETURNS float8[]
	LANGUAGE plpgsql AS $$
DECLARE
	t0		timestamptz;
	held	boolean;
	out		float8[] := '{}';
BEGIN
	FOR i IN 1 .. array_length(users, 1) LOOP
		IF reset THEN
			PERFORM iam.rbac_cache_reset();
		END IF;
		t0 := clock_timestamp();
		held := iam.has_permission(users[i], perms[1 + (i * 7919) % array_length(perms, 1)]);
		out := out || extract(epoch FROM clock_timestamp() - t0) * 1e6;
	END LOOP;
	RETURN out;
END
$$;
SQL

log "measuring ..."
TABLE=$(PGOPTIONS='-c client_min_messages=warning' psql_bench -At <<'SQL'
SET temp_buffers = '256MB';
SET max_parallel_workers_per_gather = 0;
SELECT setseed(0.17) \gset
CREATE TEMP TABLE perms AS SELECT array_agg(name::text ORDER BY name) AS names FROM iam.permissions;
-- 500,000 questions about 1,000 users (every 100th), permissions at random
CREATE TEMP TABLE pairs AS
SELECT g AS n, md5('user' || (100 * (1 + floor(random() * 1000)::int) - 37))::uuid AS u,
	   (SELECT names FROM perms)[1 + floor(random() * 200)::int] AS p
FROM generate_series(1, 500000) AS g;
-- users never asked about before, for the first checks
CREATE TEMP TABLE cold AS
SELECT g AS n, md5('user' || (50 * g - 11))::uuid AS u,
	   (SELECT names FROM perms)[1 + floor(random() * 200)::int] AS p
FROM generate_series(1, 2000) AS g;
ANALYZE pairs;
ANALYZE cold;

-- warm the 1,000 users, then time the cached checks (best of 5) and the bare scan
SELECT count(*) FROM pairs WHERE iam.has_permission(u, p) \gset warm_
CREATE TEMP TABLE runs AS
SELECT bench.ms('SELECT count(*) FROM pairs WHERE iam.has_permission(u, p)') AS cached,
	   bench.ms('SELECT count(*) FROM pairs WHERE u IS NOT NULL AND p IS NOT NULL') AS scan
FROM generate_series(1, 5);
SELECT min(cached) * 1000 / 500000 AS cached_us, min(scan) * 1000 / 500000 AS scan_us FROM runs \gset
SELECT hits, misses FROM iam.rbac_cache_stats() \gset

-- first checks: a cache miss each (warm dictionary), then after a reset
SELECT bench.ms('SELECT count(*) FROM cold WHERE n <= 1000 AND iam.has_permission(u, p)') * 1000 / 1000 AS miss_mean_us \gset
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) AS miss_p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY t) AS miss_p99
FROM unnest(bench.first_checks(ARRAY(SELECT u FROM cold WHERE n > 1000 ORDER BY n),
							   (SELECT names FROM perms), false)) AS t \gset
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) AS reset_p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY t) AS reset_p99
FROM unnest(bench.first_checks(ARRAY(SELECT u FROM cold WHERE n <= 200 ORDER BY n),
							   (SELECT names FROM perms), true)) AS t \gset

-- the join, on the first 2,000 questions; it must give the same answers
SELECT bench.ms('SELECT count(*) FROM pairs WHERE n <= 2000 AND bench.join_check(u, p)') * 1000 / 2000 AS join_us \gset
SELECT count(*) FILTER (WHERE iam.has_permission(u, p) IS DISTINCT FROM bench.join_check(u, p)) AS disagree,
	   count(*) FILTER (WHERE iam.has_permission(u, p)) AS granted
FROM pairs WHERE n <= 2000 \gset

-- memory: 10,000 users cached (the default iam.rbac_cache_max_users)
SELECT 1 AS done FROM iam.rbac_cache_reset() \gset reset_
SELECT count(*) FROM generate_series(1, 10000) AS i WHERE iam.has_permission(md5('user' || (10 * i - 3))::uuid, 'users.read') \gset mem_
SELECT cached_users, bytes, bytes / cached_users AS bytes_per_user FROM iam.rbac_cache_stats() \gset

\pset format unaligned
\pset tuples_only on
SELECT format(E'| measure | result | target |\n|---|---|---|\n'
			  '| cached `iam.has_permission`, 500,000 checks over 1,000 warm users | %s µs/check, %s checks/s | ≤ 1 µs |\n'
			  '| the same scan without the check (included above) | %s µs/row | |\n'
			  '| straightforward SQL join (recursive CTE), 2,000 checks | %s µs/check, %s checks/s | |\n'
			  '| join ÷ cached | %s× | ≥ 50× |\n'
			  '| first check of a user (miss, warm dictionary): mean of 1,000 | %s µs | ≤ 200 µs |\n'
			  '| first check of a user, one by one: p50 / p99 of 1,000 | %s / %s µs | ≤ 200 µs |\n'
			  '| first check after `iam.rbac_cache_reset()` (dictionary of 200 rebuilt): p50 / p99 of 200 | %s / %s µs | |\n'
			  '| bytes per cached user (%s users, %s bytes in all) | %s | |\n'
			  '| answers: cached = join on the 2,000 shared questions (%s granted) | %s disagreements | 0 |',
			  round(:cached_us::numeric, 3), to_char(1e6 / :cached_us, 'FM999,999,999'),
			  round(:scan_us::numeric, 3),
			  round(:join_us::numeric, 1), to_char(1e6 / :join_us, 'FM999,999,999'),
			  round((:join_us / :cached_us)::numeric, 0),
			  round(:miss_mean_us::numeric, 1),
			  round(:miss_p50::numeric, 1), round(:miss_p99::numeric, 1),
			  round(:reset_p50::numeric, 1), round(:reset_p99::numeric, 1),
			  to_char(:cached_users, 'FM999,999'), to_char(:bytes, 'FM999,999,999'), :bytes_per_user,
			  :granted, :disagree);
SQL
)

HEADER="## rbac: permission checks ($(date -u +%Y-%m-%d), $(nproc) cores, $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'))

Data: 100,000 users in 5 organisations, 50 roles inheriting 3 levels deep, 200 permissions,
an extra role for 1 user in 5, direct or scoped grants for 1 user in 10 (setseed; bench/rbac.sh).
Cached checks: \`SELECT count(*) FROM pairs WHERE iam.has_permission(u, p)\` over 500,000
pregenerated random pairs, best of 5, one backend, after one warming pass.  First checks:
users not yet cached in a warm backend (one query over 1,000 users, then one by one in
PL/pgSQL with clock_timestamp(), which adds about a microsecond), and after
\`iam.rbac_cache_reset()\`, which also rebuilds the permission dictionary."
mkdir -p bench/results
printf '%s\n\n%s\n' "$HEADER" "$TABLE" | tee bench/results/rbac.md
