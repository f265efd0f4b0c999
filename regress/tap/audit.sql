-- audit.sql: the audit trail is append-only for every role, its owner
-- included; the pg_iam roles cannot get around it (disable triggers, alter or
-- drop the table, call the sanctioned write paths); a role that may change
-- admin data is audited without any privilege on the trail.
BEGIN;
SELECT plan(78);

SELECT iam.create_organization('Tap Audit', 'tap-audit') AS org \gset
SELECT iam.create_user(:'org', 'tap@audit.example', 'Tap', 'member', NULL) AS u \gset

-- the owner (a superuser, who created the extension)
SELECT is((SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'iam.audit_logs'::regclass),
		  current_user::text, 'the test runs as the owner of iam.audit_logs');

SELECT throws_ok($$INSERT INTO iam.audit_logs (org_id, action) VALUES (NULL, 'user.created')$$, '42501', 'rows of the audit trail are written only by pg_iam''s audit triggers',
				 'owner: INSERT on iam.audit_logs is refused');
SELECT throws_ok($$INSERT INTO iam.audit_logs (org_id, action, seq, prev_hash, row_hash) VALUES (NULL, 'user.created', 999999, sha256(''), sha256('x'))$$, '42501', 'rows of the audit trail are written only by pg_iam''s audit triggers',
				 'owner: INSERT with chosen hashes on iam.audit_logs is refused');
SELECT throws_ok($$UPDATE iam.audit_logs SET action = 'user.forged'$$, '42501', 'the audit trail is append-only',
				 'owner: UPDATE on iam.audit_logs is refused');
SELECT throws_ok($$DELETE FROM iam.audit_logs$$, '42501', 'the audit trail is append-only',
				 'owner: DELETE on iam.audit_logs is refused');
SELECT throws_ok($$TRUNCATE iam.audit_logs$$, '42501', 'the audit trail is append-only',
				 'owner: TRUNCATE on iam.audit_logs is refused');
-- the inbox holds the organisation's unsealed rows (created above, not committed)
SELECT throws_ok($$INSERT INTO iam.audit_inbox (org_id, action) VALUES (NULL, 'user.created')$$, '42501', 'rows of the audit trail are written only by pg_iam''s audit triggers',
				 'owner: INSERT on iam.audit_inbox is refused');
SELECT throws_ok($$UPDATE iam.audit_inbox SET action = 'user.forged'$$, '42501', 'the audit trail is append-only',
				 'owner: UPDATE on iam.audit_inbox is refused');
SELECT throws_ok($$DELETE FROM iam.audit_inbox$$, '42501', 'the audit trail is append-only',
				 'owner: DELETE on iam.audit_inbox is refused');
SELECT throws_ok($$TRUNCATE iam.audit_inbox$$, '42501', 'the audit trail is append-only',
				 'owner: TRUNCATE on iam.audit_inbox is refused');

-- each pg_iam role: every way round the trail is refused
CREATE TEMP TABLE trail_attacks (ord int, what text, stmt text);
INSERT INTO trail_attacks VALUES
	(1, 'INSERT', $$INSERT INTO iam.audit_logs (org_id, action) VALUES (NULL, 'user.created')$$),
	(2, 'INSERT with chosen hashes', $$INSERT INTO iam.audit_logs (org_id, action, seq, prev_hash, row_hash) VALUES (NULL, 'user.created', 999999, sha256(''), sha256('x'))$$),
	(3, 'UPDATE', $$UPDATE iam.audit_logs SET action = 'user.forged'$$),
	(4, 'DELETE', $$DELETE FROM iam.audit_logs$$),
	(5, 'TRUNCATE', $$TRUNCATE iam.audit_logs$$),
	(6, 'disable the guard trigger', $$ALTER TABLE iam.audit_logs DISABLE TRIGGER audit_guard$$),
	(7, 'disable all triggers', $$ALTER TABLE iam.audit_logs DISABLE TRIGGER ALL$$),
	(8, 'alter the table', $$ALTER TABLE iam.audit_logs ADD COLUMN note text$$),
	(9, 'drop the table', $$DROP TABLE iam.audit_logs$$),
	(10, 'drop the guard trigger', $$DROP TRIGGER audit_guard ON iam.audit_logs$$),
	(11, 'call the erasure path', $$SELECT iam.audit_erase_entity('user', gen_random_uuid())$$),
	(12, 'call the append path', $$SELECT iam.audit_append('user.forged', 'user', NULL, NULL, NULL)$$),
	(13, 'seal', $$SELECT iam.audit_seal()$$),
	(14, 'erase a user', $$SELECT iam.erase_user(gen_random_uuid())$$),
	(15, 'INSERT into the inbox', $$INSERT INTO iam.audit_inbox (org_id, action) VALUES (NULL, 'user.created')$$),
	(16, 'UPDATE the inbox', $$UPDATE iam.audit_inbox SET action = 'user.forged'$$),
	(17, 'DELETE from the inbox', $$DELETE FROM iam.audit_inbox$$),
	(18, 'TRUNCATE the inbox', $$TRUNCATE iam.audit_inbox$$),
	(19, 'disable the inbox''s guard trigger', $$ALTER TABLE iam.audit_inbox DISABLE TRIGGER audit_guard$$),
	(20, 'drop the inbox', $$DROP TABLE iam.audit_inbox$$);
GRANT SELECT ON trail_attacks TO PUBLIC;

SET LOCAL ROLE iam_gateway;
SELECT set_config('iam.org_id', :'org', true) IS NOT NULL AS ctx \gset
SELECT throws_ok(stmt, '42501', NULL, 'iam_gateway: ' || what || ' is refused') FROM trail_attacks ORDER BY ord;
RESET ROLE;

SET LOCAL ROLE iam_service;
SELECT set_config('iam.org_id', :'org', true) IS NOT NULL AS ctx \gset
SELECT throws_ok(stmt, '42501', NULL, 'iam_service: ' || what || ' is refused') FROM trail_attacks ORDER BY ord;
RESET ROLE;

SET LOCAL ROLE iam_auditor;
SELECT set_config('iam.org_id', :'org', true) IS NOT NULL AS ctx \gset
SELECT throws_ok(stmt, '42501', NULL, 'iam_auditor: ' || what || ' is refused') FROM trail_attacks ORDER BY ord;
RESET ROLE;

-- a role allowed to change users, with no privilege on the trail, is audited
CREATE ROLE iam_tap_editor NOLOGIN NOBYPASSRLS;
GRANT USAGE ON SCHEMA iam TO iam_tap_editor;
GRANT SELECT, UPDATE ON iam.users TO iam_tap_editor;
SET LOCAL ROLE iam_tap_editor;
SELECT set_config('iam.org_id', :'org', true) IS NOT NULL AS ctx \gset
UPDATE iam.users SET department = 'Audit' WHERE id = :'u';
RESET ROLE;
SELECT is((SELECT db_role::text FROM iam.audit_logs WHERE entity_id = :'u' AND changes ? 'department'),
		  'iam_tap_editor', 'a change by a role without privilege on the trail is recorded, with that role');

-- writers append to the inbox; the sealer moves the rows into the trail
-- proper with their place in the chain
SELECT is((SELECT count(*) FROM iam_internal.audit_logs_sealed WHERE org_id = :'org'), 0::bigint,
		  'before sealing, no row of the organisation is in the sealed partitions');
SELECT is((SELECT count(*) FROM iam.audit_logs WHERE org_id = :'org' AND seq IS NULL), 3::bigint,
		  'its unsealed rows read through iam.audit_logs (from the inbox)');
SELECT ok(iam.audit_seal() > 0, 'the owner seals');
SELECT is((SELECT count(*) FROM iam.audit_inbox WHERE org_id = :'org'), 0::bigint,
		  'sealing empties the inbox');
SELECT is((SELECT array_agg(seq ORDER BY seq) FROM iam_internal.audit_logs_sealed WHERE org_id = :'org'), '{1,2,3}'::bigint[],
		  'the rows are in the sealed partitions, chained from 1');
-- the auditor verifies the chain of its organisation
SET LOCAL ROLE iam_auditor;
SELECT set_config('iam.org_id', :'org', true) IS NOT NULL AS ctx \gset
SELECT is((SELECT ok FROM iam.audit_verify(:'org')), true, 'iam_auditor verifies its organisation''s chain');
SELECT is((SELECT sealed FROM iam.audit_verify(:'org')), 3::bigint, 'iam_auditor sees the whole chain of its organisation');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
