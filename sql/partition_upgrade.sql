-- partition_upgrade: an installation with audit rows reaches 0.6 with ALTER
-- EXTENSION iam UPDATE: iam.audit_logs becomes partitioned with every row
-- kept (sealed ones in their months, unsealed ones in the inbox), the
-- chains still verify, the sealer goes on from their heads in the same
-- session, new rows land in the partitions, and the guards hold.  Rows
-- from 0.3 (sealed in place) and 0.5 (through the inbox) both.  In a
-- database of its own, dropped at the end.
\set VERBOSITY terse
\set regress_db :DBNAME
CREATE DATABASE iam_partition_upgrade_regress;
\c iam_partition_upgrade_regress
SET client_min_messages = warning;
CREATE EXTENSION iam VERSION '0.3' CASCADE;
SELECT iam.create_organization('Upgrade', 'upgrade') AS org \gset
SELECT iam.create_user(:'org', 'old@up.example', 'Old', 'member', NULL) AS u \gset
SELECT iam.audit_seal() > 0 AS sealed_in_place;
ALTER EXTENSION iam UPDATE TO '0.5';
UPDATE iam.users SET department = 'Ops' WHERE id = :'u';
SELECT iam.audit_seal() > 0 AS sealed_through_inbox;
UPDATE iam.users SET department = 'Sales' WHERE id = :'u';
SELECT count(*) AS rows_before, count(*) FILTER (WHERE seq IS NULL) AS unsealed_before FROM iam.audit_logs \gset
SELECT :rows_before > 3 AS some_rows, :unsealed_before AS unsealed_before;
SELECT ok, sealed, unsealed FROM iam.audit_verify(:'org');
SELECT relkind FROM pg_class WHERE oid = 'iam.audit_logs'::regclass;

ALTER EXTENSION iam UPDATE TO '0.6';
SELECT extversion FROM pg_extension WHERE extname = 'iam';
SELECT relkind, relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'iam.audit_logs'::regclass;
SELECT count(*) = :rows_before AS rows_kept, count(*) FILTER (WHERE seq IS NULL) AS unsealed FROM iam.audit_logs;
SELECT tableoid::regclass::text LIKE 'iam_internal.audit_logs_p%' OR tableoid = 'iam.audit_inbox'::regclass AS placed,
	   seq IS NULL AS unsealed, count(*)
FROM iam.audit_logs GROUP BY 1, 2 ORDER BY 1, 2;
SELECT ok, sealed, unsealed FROM iam.audit_verify(:'org');
SELECT to_regclass('iam_internal.audit_logs_0_5') IS NULL AS old_table_gone;
SELECT has_table_privilege('iam_auditor', 'iam.audit_logs', 'SELECT') AS auditor_reads,
	   has_table_privilege('iam_service', 'iam.audit_logs', 'SELECT') AS service_reads;
SELECT count(*) AS guards FROM pg_trigger
WHERE tgname IN ('audit_guard', 'audit_guard_truncate') AND tgrelid = 'iam.audit_logs'::regclass;
SELECT evtname, evtevent FROM pg_event_trigger WHERE evtname = 'iam_audit_ddl_guard';

-- the sealer goes on from the chain's head, in this session too
SELECT max(seq) AS head FROM iam.audit_logs WHERE org_id = :'org' \gset
SELECT iam.audit_seal() AS sealed_now;
UPDATE iam.users SET department = 'Legal' WHERE id = :'u';
SELECT iam.audit_seal() AS sealed_now;
SELECT max(seq) - :head AS new_seqs, count(*) FILTER (WHERE tableoid = 'iam.audit_inbox'::regclass) AS in_inbox
FROM iam.audit_logs WHERE org_id = :'org';
SELECT ok, sealed, unsealed FROM iam.audit_verify(:'org');
SELECT ok FROM iam.audit_verify();

-- the guards hold
DELETE FROM iam.audit_logs WHERE org_id = :'org';
UPDATE iam.audit_logs SET action = 'user.forged';
TRUNCATE iam.audit_logs;
ALTER TABLE iam.audit_logs DETACH PARTITION iam.audit_inbox;

-- the reports count the partitioned trail
SELECT iam.refresh_view('audit_summary') > 0 AS refreshed;
SELECT action, events FROM iam.audit_summary WHERE org_id = :'org' ORDER BY action;
\c :regress_db
DROP DATABASE iam_partition_upgrade_regress;
