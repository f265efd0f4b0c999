-- demo.sql: the demo organisations that `make up` loads (once).
-- psql variable admin_password: the demo admin's password.
\set ON_ERROR_STOP 1
SELECT NOT EXISTS (SELECT FROM iam.organizations WHERE slug = 'acme') AS need_demo \gset
\if :need_demo
BEGIN;
\o /dev/null
SELECT iam.create_organization('Acme Corporation', 'acme') AS acme \gset
SELECT iam.create_organization('Globex Inc', 'globex') AS globex \gset
SELECT iam.create_user(:'acme', 'admin@acme.example', 'Ada Admin', 'admin', :'admin_password');
SELECT iam.create_user(:'acme', 'audrey@acme.example', 'Audrey Auditor', 'auditor', NULL);
SELECT iam.create_user(:'acme', m.email, m.name, 'member', NULL)
FROM (VALUES ('ben@acme.example', 'Ben Baker'),
			 ('carla@acme.example', 'Carla Cruz'),
			 ('dev@acme.example', 'Dev Patel'),
			 ('erin@acme.example', 'Erin Ng')) AS m(email, name);
UPDATE iam.users SET department = CASE WHEN name < 'D' THEN 'Engineering' ELSE 'Sales' END
	WHERE org_id = :'acme' AND role = 'member';
SELECT iam.create_user(:'globex', 'hank@globex.example', 'Hank Scorpio', 'admin', NULL);
\o
COMMIT;
\echo loaded the demo organisations acme and globex
\endif
