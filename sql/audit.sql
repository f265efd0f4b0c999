-- audit: every change to admin data leaves one audit row with the changed
-- columns only and the request context; secrets are redacted; the trail
-- refuses every write but the extension's own.
\set VERBOSITY terse
SELECT iam.create_organization('Audit A', 'audit-a') AS a \gset
SELECT iam.create_user(:'a', 'boss@audit.example', 'Boss', 'admin', NULL) AS boss \gset

-- the request context of the gateway
BEGIN;
SELECT set_config('iam.user_id', :'boss', true) IS NOT NULL AS ctx,
	   set_config('iam.request_id', 'req-create-1', true) IS NOT NULL AS req,
	   set_config('iam.ip', '192.0.2.7', true) IS NOT NULL AS ip,
	   set_config('iam.user_agent', 'regress/1.0', true) IS NOT NULL AS ua;
SELECT iam.create_user(:'a', 'ann@audit.example', 'Ann', 'member', 'Correct-horse-battery-9') AS ann \gset
COMMIT;
SELECT action, entity_type, entity_id = :'ann' AS entity, org_id = :'a' AS org,
	   user_id = :'boss' AS actor, request_id, ip_address, user_agent, db_role,
	   seq IS NULL AS unsealed
FROM iam.audit_logs WHERE entity_id = :'ann' ORDER BY created_at, action;
-- an INSERT records every column set, as {"old": null, "new": ...}
SELECT key, value->'old' AS old, value->'new' AS new
FROM iam.audit_logs, jsonb_each(changes)
WHERE entity_id = :'ann' AND action = 'user.created'
  AND key NOT IN ('id', 'org_id', 'created_at', 'updated_at')
ORDER BY key;
-- the password hash never enters the log
SELECT changes FROM iam.audit_logs WHERE entity_id = :'ann' AND changes ? 'password_hash';
SELECT count(*) AS argon2_in_trail FROM iam.audit_logs WHERE changes::text LIKE '%argon2%';

-- an UPDATE records only the columns that changed
UPDATE iam.users SET name = 'Ann Lee', department = 'Sales' WHERE id = :'ann';
SELECT action, user_id IS NULL AS no_actor, db_role, request_id IS NULL AS no_request,
	   changes - 'updated_at' AS changes, changes ? 'updated_at' AS touched
FROM iam.audit_logs WHERE entity_id = :'ann' AND changes ? 'department';
-- an UPDATE that changes nothing writes no row
SELECT count(*) AS before FROM iam.audit_logs WHERE entity_id = :'ann' \gset
UPDATE iam.users SET name = 'Ann Lee', department = 'Sales' WHERE id = :'ann';
SELECT count(*) - :before AS rows_for_noop FROM iam.audit_logs WHERE entity_id = :'ann';
-- values are JSON independent of the session: timestamps in UTC, booleans, numbers
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
UPDATE iam.users SET last_login = '2030-01-02 03:04:05+00', is_active = false WHERE id = :'ann';
SELECT changes->'last_login'->>'new' AS last_login, changes->'is_active' AS is_active
FROM iam.audit_logs WHERE entity_id = :'ann' AND changes ? 'last_login';
RESET TimeZone;
RESET DateStyle;
-- a role switched to is the recorded database role
CREATE ROLE audit_regress_dba NOLOGIN SUPERUSER;
SET ROLE audit_regress_dba;
UPDATE iam.users SET phone = '+27 21 555 0100' WHERE id = :'ann';
RESET ROLE;
SELECT db_role, changes->'phone' AS phone FROM iam.audit_logs WHERE entity_id = :'ann' AND changes ? 'phone';
DROP ROLE audit_regress_dba;

-- grants made by the grant functions are audited like any other change
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('clerk', 'Clerk', :'a') RETURNING id AS clerk \gset
INSERT INTO iam.role_permissions (role_id, permission_id)
	SELECT :'clerk', id FROM iam.permissions WHERE name = 'users.read';
BEGIN;
SELECT set_config('iam.user_id', :'boss', true) IS NOT NULL AS ctx;
SELECT iam.grant_role(:'ann', 'clerk');
SELECT iam.revoke_role(:'ann', 'clerk');
COMMIT;
SELECT action, entity_type, entity_id = :'ann' AS about_ann, user_id = :'boss' AS by_boss,
	   changes->'role_id'->>'new' IS NOT NULL AS new_role, changes->'role_id'->>'old' IS NOT NULL AS old_role
FROM iam.audit_logs WHERE action LIKE 'user.role_%' AND entity_id = :'ann' ORDER BY created_at, action;
SELECT action, entity_id = :'clerk' AS about_clerk, org_id = :'a' AS org
FROM iam.audit_logs WHERE entity_type = 'role' AND entity_id = :'clerk' ORDER BY created_at, action;
-- shared objects (the permission catalogue) go to the chain of org_id NULL
INSERT INTO iam.permissions (name, display_name, category) VALUES ('reports.audit_regress', 'Regress', 'reports');
SELECT action, org_id IS NULL AS shared FROM iam.audit_logs
WHERE entity_type = 'permission' AND changes->'name'->>'new' = 'reports.audit_regress';
DELETE FROM iam.permissions WHERE name = 'reports.audit_regress';
SELECT action, changes->'name'->>'old' AS name, changes->'name'->'new' AS new FROM iam.audit_logs
WHERE action = 'permission.deleted' AND changes->'name'->>'old' = 'reports.audit_regress';
-- organisations chain on their own id
UPDATE iam.organizations SET settings = '{"theme": "dark"}' WHERE id = :'a';
SELECT action, org_id = :'a' AS own_chain, changes->'settings' AS settings
FROM iam.audit_logs WHERE action = 'organization.updated' AND entity_id = :'a';

-- the trail is append-only, for its owner too
UPDATE iam.audit_logs SET action = 'user.forged' WHERE entity_id = :'ann';
DELETE FROM iam.audit_logs WHERE entity_id = :'ann';
TRUNCATE iam.audit_logs;
INSERT INTO iam.audit_logs (org_id, action) VALUES (:'a', 'user.created');
INSERT INTO iam.audit_logs (org_id, action, seq, prev_hash, row_hash)
	VALUES (:'a', 'user.created', 1, sha256(''), sha256('x'));
SELECT count(*) > 0 AS rows_survive FROM iam.audit_logs WHERE entity_id = :'ann';

-- misuse of the trigger functions
SELECT iam.audit_capture();
CREATE TABLE audit_regress_t (id uuid PRIMARY KEY, org_id uuid);
CREATE TRIGGER bad BEFORE INSERT ON audit_regress_t FOR EACH ROW EXECUTE FUNCTION iam.audit_capture('t', 'id', 'org_id', 'a', 'b', 'c');
INSERT INTO audit_regress_t VALUES (gen_random_uuid(), NULL);
DROP TRIGGER bad ON audit_regress_t;
CREATE TRIGGER bad AFTER INSERT ON audit_regress_t FOR EACH ROW EXECUTE FUNCTION iam.audit_capture('t', 'id');
INSERT INTO audit_regress_t VALUES (gen_random_uuid(), NULL);
DROP TRIGGER bad ON audit_regress_t;
CREATE TRIGGER bad AFTER INSERT ON audit_regress_t FOR EACH ROW EXECUTE FUNCTION iam.audit_capture('thing', 'id', 'tenant', 'created', 'updated', 'deleted');
INSERT INTO audit_regress_t VALUES (gen_random_uuid(), NULL);
DROP TABLE audit_regress_t;
