-- audit_partition: the audit trail partitioned by month.  Unsealed rows in
-- iam.audit_inbox, sealed ones in the month's partition of
-- iam_internal.audit_logs_sealed; the chain verifies across partitions and
-- after retention dropped some (from the anchor on); the partitions cannot
-- be detached, attached, dropped or disarmed except through pg_iam's
-- functions, whose workers alone are refused too.  Retention of
-- activity_logs.
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT c.oid::regclass AS rel, c.relkind, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_class c
WHERE c.oid IN ('iam.audit_logs'::regclass, 'iam.audit_inbox'::regclass,
				'iam_internal.audit_logs_sealed'::regclass, 'iam_internal.audit_logs_sealed_default'::regclass)
ORDER BY 1::text;
SELECT count(*) >= 4 AS months_ahead FROM pg_inherits WHERE inhparent = 'iam_internal.audit_logs_sealed'::regclass;
SELECT 'iam_internal.audit_logs_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMM') AS cur,
	   (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')::date AS next_month \gset

-- rows wait in the inbox, then land in their month
SELECT iam.create_organization('Partitions', 'partitions') AS o \gset
SELECT iam.create_user(:'o', 'p1@partitions.example', 'P 1', 'member', NULL) AS u \gset
UPDATE iam.users SET department = 'Ops' WHERE id = :'u';
SELECT tableoid::regclass AS partition, count(*) FROM iam.audit_logs WHERE org_id = :'o' GROUP BY 1;
SELECT iam.audit_seal() > 0 AS sealed;
SELECT tableoid::regclass::text = :'cur' AS in_current_month, count(*), min(seq), max(seq)
FROM iam.audit_logs WHERE org_id = :'o' GROUP BY 1;
SELECT ok, sealed, unsealed FROM iam.audit_verify(:'o');
SELECT max(seq) AS head FROM iam.audit_logs WHERE org_id = :'o' \gset

-- the owner cannot take the trail apart
ALTER TABLE iam.audit_logs DETACH PARTITION iam.audit_inbox;
ALTER TABLE iam_internal.audit_logs_sealed DETACH PARTITION iam_internal.audit_logs_sealed_default;
DROP TABLE iam_internal.audit_logs_sealed_default;
DROP TABLE iam.audit_inbox;
CREATE TABLE iam_internal.forged PARTITION OF iam_internal.audit_logs_sealed
	FOR VALUES FROM ('1990-01-01 00:00:00+00') TO ('1990-02-01 00:00:00+00');
CREATE TABLE forged (LIKE iam_internal.audit_logs_sealed INCLUDING CONSTRAINTS);
ALTER TABLE iam_internal.audit_logs_sealed ATTACH PARTITION forged
	FOR VALUES FROM ('1990-01-01 00:00:00+00') TO ('1990-02-01 00:00:00+00');
DROP TABLE forged;
ALTER TABLE iam_internal.audit_logs_sealed_default DISABLE TRIGGER audit_guard;
ALTER TABLE iam.audit_inbox DISABLE TRIGGER ALL;
DROP TRIGGER audit_guard_truncate ON iam_internal.audit_logs_sealed_default;
CREATE TRIGGER forge BEFORE INSERT ON iam.audit_inbox FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
ALTER TABLE iam_internal.audit_logs_sealed_default RENAME TO somewhere_else;
ALTER TABLE iam_internal.audit_logs_sealed_default ADD COLUMN note text;
TRUNCATE iam_internal.audit_logs_sealed;
TRUNCATE iam_internal.audit_logs_sealed_default;
DELETE FROM iam_internal.audit_logs_sealed WHERE org_id = :'o';
UPDATE iam_internal.audit_logs_sealed SET action = 'user.forged' WHERE org_id = :'o';
INSERT INTO iam_internal.audit_logs_sealed_default (org_id, action, seq, prev_hash, row_hash)
VALUES (:'o', 'user.created', 999, sha256(''), sha256('x'));
-- storage settings are allowed
ALTER TABLE iam_internal.audit_logs_sealed_default SET (fillfactor = 100);
ALTER TABLE iam_internal.audit_logs_sealed_default RESET (fillfactor);
-- the partition functions' workers, called directly, are refused at their DDL
SELECT iam_internal.audit_logs_add_partition_work('1990-01-15');
SELECT to_regclass('iam_internal.audit_logs_p199001') IS NULL AS nothing_created;
SELECT ok, sealed FROM iam.audit_verify(:'o');

-- the functions: bad arguments
SELECT iam.audit_logs_add_partition(NULL);
SELECT iam.audit_logs_add_partitions(-1);
SELECT iam.audit_logs_drop_partitions(NULL);
SELECT iam.audit_logs_add_partitions(0) AS none_missing;

-- retention: every partition up to this month dropped; the chain's last
-- dropped row becomes its anchor
SELECT iam.audit_logs_drop_partitions(:'next_month') >= 1 AS dropped;
SELECT to_regclass(:'cur') IS NULL AS current_month_gone;
SELECT count(*) AS rows_left FROM iam.audit_logs WHERE org_id = :'o';
SELECT seq = :head AS anchor_at_head, dropped_before = :'next_month'::timestamp AT TIME ZONE 'UTC' AS bound
FROM iam_internal.audit_anchors WHERE org_id = :'o';
SELECT ok, sealed FROM iam.audit_verify(:'o');
SELECT count(*) FILTER (WHERE NOT ok) AS broken_chains FROM iam.audit_verify();
-- the chain goes on after the anchor, into the default partition meanwhile
UPDATE iam.users SET department = 'Sales' WHERE id = :'u';
SELECT iam.audit_seal() > 0 AS sealed;
SELECT tableoid::regclass AS partition, min(seq) = :head + 1 AS continues
FROM iam.audit_logs WHERE org_id = :'o' GROUP BY 1;
SELECT ok, sealed FROM iam.audit_verify(:'o');
-- the month's partition again: its rows move out of the default partition
SELECT iam.audit_logs_add_partitions(0) AS created;
SELECT tableoid::regclass::text = :'cur' AS in_current_month, count(*) FROM iam.audit_logs WHERE org_id = :'o' GROUP BY 1;
SELECT count(*) AS in_default FROM iam_internal.audit_logs_sealed_default WHERE org_id = :'o';
SELECT ok, sealed FROM iam.audit_verify(:'o');
-- tampering after the anchor is still caught
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs SET action = 'user.forged' WHERE org_id = :'o' AND seq = :head + 1;
SELECT ok, first_bad_seq = :head + 1 AS at_first_after_anchor FROM iam.audit_verify(:'o');
ROLLBACK;
-- and a forged anchor too
BEGIN;
UPDATE iam_internal.audit_anchors SET row_hash = sha256('forged') WHERE org_id = :'o';
SELECT ok, detail FROM iam.audit_verify(:'o');
ROLLBACK;

-- activity_logs: retention drops whole months
SELECT iam.activity_logs_add_partition('1999-01-10');
INSERT INTO iam.activity_logs (org_id, type, created_at) VALUES (:'o', 'login', '1999-01-05 00:00:00+00');
SELECT iam.activity_logs_drop_partitions('1999-01-31');
SELECT iam.activity_logs_drop_partitions('1999-02-01');
SELECT count(*) AS rows_of_1999 FROM iam.activity_logs WHERE created_at < '2000-01-01';
SELECT to_regclass('iam_internal.activity_logs_p199901') IS NULL AS partition_gone;
SELECT iam.activity_logs_drop_partitions(NULL);
