-- bench/gen.sql: the deterministic dataset of bench/http.sh, shared by the
-- gateway and the Node baseline.  psql variables: users (total users) and
-- audit_passes (audit rows = users x audit_passes, made by the C capture
-- trigger and sealed, so that iam.audit_logs is a real, chained trail).
-- Ids are md5 of a name, so every run (and both systems) see the same rows;
-- random() runs under a fixed seed in a fixed order.
--
--   5 organisations; org 1 holds 90 % of the users (so that page 1,000 of
--   50 exists at the small scale), orgs 2-5 share the rest
--   10 roles per organisation, inheriting up to three levels deep, 8
--   permissions each; users: member (1 in 5) or one of their organisation's
--   roles, an extra role for 1 in 5, two direct grants for 1 in 10
--   user 1 (the caller of every scenario) is the admin of org 1, with a
--   password (argon2id for pg_iam, bcrypt cost 10 in bench_node.credentials)
--   created_at one minute apart: a total order for both paginations
--   bench_node: the baseline's own audit and activity tables (iam.audit_logs
--   is append-only for pg_iam's code) and its bcrypt credentials
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;	-- random() in a fixed order
SELECT setseed(0.4242);

INSERT INTO iam.organizations (id, name, slug)
SELECT md5('org' || o)::uuid, 'Bench ' || o, 'bench-' || o FROM generate_series(1, 5) AS o;

INSERT INTO iam.roles (id, name, display_name, org_id)
SELECT md5(format('role-%s-%s', o, k))::uuid, 'bench_r' || k, 'Bench role ' || k, md5('org' || o)::uuid
FROM generate_series(1, 5) AS o, generate_series(0, 9) AS k;
INSERT INTO iam.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM (SELECT * FROM iam.roles WHERE name LIKE 'bench_r%' ORDER BY id) AS r,
	 LATERAL (SELECT id FROM iam.permissions
			  WHERE name <> 'platform.admin' AND r.id IS NOT NULL ORDER BY random(), id LIMIT 8) AS p;
INSERT INTO iam.role_inheritance (role_id, inherits_role_id)
SELECT md5(format('role-%s-%s', o, e.a))::uuid, md5(format('role-%s-%s', o, e.b))::uuid
FROM generate_series(1, 5) AS o,
	 (VALUES (4, 0), (4, 1), (5, 1), (5, 2), (6, 2), (6, 3), (7, 4), (7, 5), (8, 5), (8, 6),
			 (9, 7), (9, 8)) AS e (a, b);

-- user i is in org 1 when i <= 90 % of users, else in org 2 + i % 4.  In
-- chunks of 100,000, each sealed before the next, and the inbox vacuumed
-- (as autovacuum would) so that its dead rows do not pile up
SELECT format($q$INSERT INTO iam.users (id, org_id, email, name, role, department, phone, created_at, updated_at)
SELECT md5('user' || i)::uuid,
	   md5('org' || CASE WHEN i <= %1$s * 9 / 10 THEN 1 ELSE 2 + i %% 4 END)::uuid,
	   'user' || i || '@bench.example', 'User ' || i,
	   CASE WHEN i = 1 THEN 'admin' WHEN random() < 0.2 THEN 'member' ELSE 'bench_r' || floor(random() * 10)::int END,
	   'Department ' || (i %% 20), '+27 21 555 ' || lpad((i %% 10000)::text, 4, '0'),
	   timestamptz '2020-01-01 00:00:00+00' + i * interval '1 minute',
	   timestamptz '2020-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(%2$s, %3$s) AS i$q$, :users, c * 100000 + 1, least((c + 1) * 100000, :users)),
	   'SELECT iam.audit_seal()', 'VACUUM iam.audit_inbox'
FROM generate_series(0, (:users - 1) / 100000) AS c ORDER BY c \gexec
INSERT INTO iam.user_roles (user_id, role_id, org_id, expires_at)
SELECT u.id, md5(format('role-%s-%s', CASE WHEN i <= :users * 9 / 10 THEN 1 ELSE 2 + i % 4 END,
						floor(random() * 10)::int))::uuid, u.org_id,
	   CASE WHEN random() < 0.3 THEN now() + interval '30 days' END
FROM generate_series(2, :users) AS i JOIN iam.users u ON u.id = md5('user' || i)::uuid
WHERE i % 5 = 1;
INSERT INTO iam.user_permissions (user_id, permission_id, org_id, expires_at)
SELECT u.id, p.id, u.org_id, CASE WHEN random() < 0.2 THEN now() + interval '7 days' END
FROM generate_series(2, :users) AS i JOIN iam.users u ON u.id = md5('user' || i)::uuid,
	 LATERAL (SELECT id FROM iam.permissions
			  WHERE name <> 'platform.admin' AND i > 0 ORDER BY random(), id LIMIT 2) AS p
WHERE i % 10 = 3;

-- the caller's password, for the login scenario
SELECT iam.set_password(md5('user1')::uuid, 'bench-password-0001');

SELECT iam.audit_seal();

-- the audit trail: audit_passes updates of every user through the capture
-- trigger, 100,000 users at a time, each chunk sealed into the hash chain
SELECT format('UPDATE iam.users SET last_login = %L::timestamptz WHERE created_at > %L AND created_at <= %L',
			  timestamptz '2024-01-01 00:00:00+00' + g * interval '1 day',
			  timestamptz '2020-01-01 00:00:00+00' + c * 100000 * interval '1 minute',
			  timestamptz '2020-01-01 00:00:00+00' + (c + 1) * 100000 * interval '1 minute'),
	   'SELECT iam.audit_seal()', 'VACUUM iam.audit_inbox'
FROM generate_series(1, :audit_passes) AS g, generate_series(0, (:users - 1) / 100000) AS c ORDER BY g, c \gexec

-- the baseline's own tables (the seed's audit_logs and activity_logs columns)
CREATE SCHEMA bench_node;
CREATE TABLE bench_node.audit_logs (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id		uuid,
	org_id		uuid,
	action		varchar(100) NOT NULL,
	entity_type	varchar(50),
	entity_id	uuid,
	changes		jsonb,
	ip_address	varchar(45),
	user_agent	text,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON bench_node.audit_logs (org_id, created_at);
CREATE INDEX ON bench_node.audit_logs (entity_type, entity_id);
CREATE TABLE bench_node.activity_logs (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id		uuid,
	org_id		uuid,
	type		varchar(50) NOT NULL,
	description	text,
	ip_address	varchar(45),
	user_agent	text,
	location	varchar(100),
	metadata	jsonb,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON bench_node.activity_logs (org_id, created_at);
-- the same number of audit rows as pg_iam's trail
INSERT INTO bench_node.audit_logs (id, user_id, org_id, action, entity_type, entity_id, changes, ip_address, user_agent, created_at)
SELECT id, user_id, org_id, action, entity_type, entity_id, changes, ip_address, user_agent, created_at FROM iam.audit_logs;
CREATE TABLE bench_node.credentials (
	user_id			uuid PRIMARY KEY,
	password_hash	varchar(255) NOT NULL
);
-- bcrypt.hashSync('bench-password-0001', 10) (cost 10, the usual setting)
INSERT INTO bench_node.credentials VALUES
	(md5('user1')::uuid, :'bcrypt_hash');

VACUUM ANALYZE;
