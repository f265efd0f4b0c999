-- audit_upgrade: an installation of 0.2 with data reaches 0.3 with ALTER
-- EXTENSION iam UPDATE: from then on changes are audited and chained, and
-- the trail refuses direct writes.  In a database of its own, dropped at the
-- end.
\set VERBOSITY terse
\set regress_db :DBNAME
CREATE DATABASE iam_audit_upgrade_regress;
\c iam_audit_upgrade_regress
SET client_min_messages = warning;
CREATE EXTENSION iam VERSION '0.2' CASCADE;
SELECT to_regprocedure('iam.audit_verify(uuid, bigint, bytea)') IS NULL AS no_verify_in_0_2;
SELECT iam.create_organization('Upgrade', 'upgrade') AS org \gset
SELECT iam.create_user(:'org', 'old@up.example', 'Old', 'member', NULL) AS old \gset
SELECT count(*) AS audit_rows_before FROM iam.audit_logs;
ALTER EXTENSION iam UPDATE TO '0.3';
SELECT extversion FROM pg_extension WHERE extname = 'iam';
SELECT count(*) AS capture_triggers FROM pg_trigger WHERE tgname = 'audit_capture';
UPDATE iam.users SET name = 'Older' WHERE id = :'old';
SELECT action, changes->'name' AS name FROM iam.audit_logs ORDER BY created_at;
SELECT iam.audit_seal() AS sealed;
SELECT ok, first_bad_seq, sealed, unsealed FROM iam.audit_verify(:'org');
DELETE FROM iam.audit_logs;
\c :regress_db
DROP DATABASE iam_audit_upgrade_regress;
