-- isolation.sql: row-level security keeps organisations apart, for every
-- tenant-owned table and view of schema iam (found from the catalog, so
-- tables added later are covered without editing this file).  Materialized
-- views cannot have row-level security: they are granted to no pg_iam role,
-- and tenants reach the reports through functions (sql/reports.sql); so are
-- the report views that are plain views over the summaries in iam_internal
-- (audit_summary, activity_trends).
BEGIN;

CREATE TEMP TABLE tenant_relations AS
SELECT c.oid::regclass AS rel, c.relkind, c.relname::text AS relname,
	   CASE WHEN c.relname = 'organizations' THEN 'id' ELSE 'org_id' END AS org_col
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'iam'
WHERE c.relkind IN ('r', 'p', 'v')
  AND c.relname NOT IN ('audit_summary', 'activity_trends')
  AND (c.relname = 'organizations'
	   OR EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id'
				  AND NOT a.attisdropped));
GRANT SELECT ON tenant_relations TO PUBLIC;

SELECT plan(3 + 5 * (SELECT count(*)::int FROM tenant_relations)
			  + (SELECT count(*)::int FROM tenant_relations WHERE relkind IN ('r', 'p')));

-- data in two organisations, in every tenant table
SELECT iam.create_organization('Tenant A', 'tenant-a') AS a \gset
SELECT iam.create_organization('Tenant B', 'tenant-b') AS b \gset
CREATE TEMP TABLE orgs AS SELECT :'a'::uuid AS a, :'b'::uuid AS b;
GRANT SELECT ON orgs TO PUBLIC;
DO $$
DECLARE
	o	record;
	u	uuid;
	r	uuid;
	p	uuid;
BEGIN
	SELECT id INTO p FROM iam.permissions WHERE name = 'users.read';
	FOR o IN SELECT unnest(ARRAY[a, b]) AS id, unnest(ARRAY['a', 'b']) AS tag FROM orgs LOOP
		u := iam.create_user(o.id, 'boss@' || o.tag || '.example', 'Boss ' || o.tag, 'admin', NULL);
		INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor', o.id) RETURNING id INTO r;
		INSERT INTO iam.role_permissions (role_id, permission_id) VALUES (r, p);
		INSERT INTO iam.role_inheritance (role_id, inherits_role_id)
			SELECT r, id FROM iam.roles WHERE name = 'member' AND is_system;
		INSERT INTO iam.user_roles (user_id, role_id) VALUES (u, r);
		INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (u, p);
		INSERT INTO iam.user_sessions (user_id, org_id, expires_at) VALUES (u, o.id, now() + interval '1 hour');
		-- audit rows come from the changes above (audit_logs refuses direct inserts)
		INSERT INTO iam.activity_logs (org_id, user_id, type) VALUES (o.id, u, 'login');
		INSERT INTO iam.user_totp (user_id, org_id, totp_secret) VALUES (u, o.id, '\x3132333435363738393031323334353637383930');
		INSERT INTO iam.auth_tokens (token_hash, kind, user_id, org_id, expires_at)
			VALUES (sha256(convert_to(o.tag, 'UTF8')), 'password_reset', u, o.id, now() + interval '1 hour');
		INSERT INTO iam.email_outbox (org_id, to_address, template, payload)
			VALUES (o.id, 'boss@' || o.tag || '.example', 'password_reset', '{}');
	END LOOP;
END
$$;

-- every tenant table has RLS enabled and forced
SELECT ok(c.relrowsecurity AND c.relforcerowsecurity, t.relname || ': row-level security enabled and forced')
FROM tenant_relations t JOIN pg_class c ON c.oid = t.rel
WHERE t.relkind IN ('r', 'p') ORDER BY t.relname;

-- a role that may read everything, yet is not exempt from RLS
CREATE ROLE iam_tap_reader NOLOGIN NOBYPASSRLS;
GRANT USAGE ON SCHEMA iam TO iam_tap_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA iam TO iam_tap_reader;

CREATE FUNCTION pg_temp.count_where(rel regclass, cond text) RETURNS bigint
	LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM %s WHERE %s', rel, cond) INTO n;
	RETURN n;
END $$;

SET ROLE iam_tap_reader;
SELECT set_config('iam.org_id', (SELECT a::text FROM orgs), true);
SELECT is(pg_temp.count_where(rel, format('%I = %L', org_col, (SELECT b FROM orgs))), 0::bigint,
		  relname || ': org A sees no row of org B')
FROM tenant_relations ORDER BY relname;
SELECT cmp_ok(pg_temp.count_where(rel, format('%I = %L', org_col, (SELECT a FROM orgs))), '>', 0::bigint,
			  relname || ': org A sees its own rows')
FROM tenant_relations ORDER BY relname;
SELECT is(pg_temp.count_where(rel, format('%I IS DISTINCT FROM %L AND %I IS NOT NULL',
										  org_col, (SELECT a FROM orgs), org_col)), 0::bigint,
		  relname || ': nothing but org A''s rows and shared rows is visible')
FROM tenant_relations ORDER BY relname;

SELECT set_config('iam.org_id', (SELECT b::text FROM orgs), true);
SELECT is(pg_temp.count_where(rel, format('%I = %L', org_col, (SELECT a FROM orgs))), 0::bigint,
		  relname || ': org B sees no row of org A')
FROM tenant_relations ORDER BY relname;

SELECT set_config('iam.org_id', '', true);
SELECT is(pg_temp.count_where(rel, format('%I IS NOT NULL', org_col)), 0::bigint,
		  relname || ': without iam.org_id no tenant row is visible')
FROM tenant_relations ORDER BY relname;
RESET ROLE;

-- writes are checked too: org A cannot create a row in org B
CREATE ROLE iam_tap_writer NOLOGIN NOBYPASSRLS;
GRANT USAGE ON SCHEMA iam TO iam_tap_writer;
GRANT SELECT, INSERT, UPDATE ON iam.users, iam.roles TO iam_tap_writer;
SET ROLE iam_tap_writer;
SELECT set_config('iam.org_id', (SELECT a::text FROM orgs), true);
SELECT throws_ok(format('INSERT INTO iam.users (org_id, email, name) VALUES (%L, %L, %L)',
						(SELECT b FROM orgs), 'intruder@b.example', 'Intruder'),
				 '42501', NULL, 'org A cannot insert a user into org B');
SELECT is((SELECT count(*) FROM iam.users WHERE email = 'boss@b.example'), 0::bigint,
		  'org A cannot even see org B''s user to update it');
SELECT throws_ok(format('INSERT INTO iam.roles (name, display_name) VALUES (%L, %L)', 'global', 'Global'),
				 '42501', NULL, 'a tenant cannot create a shared system role');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
