-- api_upgrade: an installation of 0.3 with data reaches 0.4 with ALTER
-- EXTENSION iam UPDATE: the route declarations and API functions are there,
-- and serve the existing data; audit rows that 0.3 left unsealed in
-- iam.audit_logs are sealed in place, new ones go through the inbox, and
-- both end up in one verified chain.  In a database of its own (no sealer
-- worker serves it), dropped at the end.
\set VERBOSITY terse
\set regress_db :DBNAME
CREATE DATABASE iam_api_upgrade_regress;
\c iam_api_upgrade_regress
SET client_min_messages = warning;
CREATE EXTENSION iam VERSION '0.3' CASCADE;
SELECT to_regclass('iam.routes') IS NULL AS no_routes_in_0_3;
SELECT iam.create_organization('Upgrade', 'upgrade') AS org \gset
SELECT iam.create_user(:'org', 'old@up.example', 'Old Admin', 'admin', NULL) AS old \gset
SELECT iam.create_user(:'org', 'kim@up.example', 'Kim', 'member', NULL) AS kim \gset
ALTER EXTENSION iam UPDATE TO '0.4';
SELECT extversion FROM pg_extension WHERE extname = 'iam';
-- a new session appends to the inbox; 0.3's rows wait in iam.audit_logs
\c iam_api_upgrade_regress
SET client_min_messages = warning;
UPDATE iam.users SET department = 'Ops' WHERE id = :'kim';
SELECT (SELECT count(*) FROM ONLY iam.audit_logs WHERE seq IS NULL) AS unsealed_in_place,
	   (SELECT count(*) FROM iam.audit_inbox) AS in_inbox;
SELECT iam.audit_seal() AS sealed;
SELECT ok, first_bad_seq, sealed, unsealed FROM iam.audit_verify(:'org');
SELECT (SELECT count(*) FROM ONLY iam.audit_logs WHERE seq IS NULL) AS unsealed_in_place,
	   (SELECT count(*) FROM iam.audit_inbox) AS in_inbox;
SELECT seq, action FROM iam.audit_logs WHERE org_id = :'org' ORDER BY seq;
-- the declared routes
SELECT method, path, handler::regproc AS handler, permission, read_only, rate_limit_class
FROM iam.routes ORDER BY path, method;
-- the API serves the data of 0.3
BEGIN;
SELECT set_config('iam.user_id', :'kim', true) IS NOT NULL AS kim, set_config('iam.org_id', :'org', true) IS NOT NULL AS org;
SELECT status, body::jsonb->>'name' AS name, body::jsonb->'permissions' AS permissions FROM iam.api_users_me('{}', NULL);
SELECT status, json_array_length(body->'data') AS users, body->'data'->0->>'email' AS first_email
FROM iam.api_users_list('{"sort": "name"}', NULL);
SELECT status, body FROM iam.api_authz_check('{}', '{"permissions": ["users.read", "users.delete"]}');
SELECT iam.api_users_delete(jsonb_build_object('id', :'old'), NULL);
ROLLBACK;
SELECT iam.openapi()::jsonb->>'openapi' AS openapi;
\c :regress_db
DROP DATABASE iam_api_upgrade_regress;
