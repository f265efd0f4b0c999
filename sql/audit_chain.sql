-- audit_chain: iam.audit_seal() chains the trail per organisation (seq gapless
-- from 1, prev_hash linking each row to the one before), iam.audit_verify
-- recomputes it and catches a superuser who edits, deletes, forges, swaps or
-- truncates.  Tampering is done with triggers off (session_replication_role =
-- replica), which only a superuser can do, inside a transaction rolled back.
\set VERBOSITY terse
SELECT iam.create_organization('Chain A', 'chain-a') AS a \gset
SELECT iam.create_organization('Chain B', 'chain-b') AS b \gset
SELECT count(iam.create_user(:'a', 'u' || i || '@chain-a.example', 'User ' || i, 'member', NULL)) AS users
FROM generate_series(1, 3) AS i;
SELECT iam.create_user(:'b', 'u@chain-b.example', 'Bea', 'member', NULL) AS bea \gset
UPDATE iam.users SET department = 'Ops' WHERE org_id = :'a';
UPDATE iam.users SET department = 'Ops' WHERE id = :'bea';

-- sealing: everything gets a seq; a second call finds nothing left
SELECT iam.audit_seal() > 0 AS sealed_some;
SELECT iam.audit_seal() AS sealed_again;
SELECT unsealed, lag = interval '0' AS no_lag FROM iam.audit_status;
SELECT org_id = :'a' AS is_a, count(*) AS rows, min(seq), max(seq),
	   count(DISTINCT seq) = count(*) AS no_duplicate,
	   bool_and(octet_length(row_hash) = 32 AND octet_length(prev_hash) = 32) AS hashed
FROM iam.audit_logs WHERE org_id IN (:'a', :'b') GROUP BY org_id ORDER BY 1;
-- the first row links to 32 zero bytes, each next one to its predecessor
SELECT bool_and(CASE WHEN l.seq = 1 THEN l.prev_hash = '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
					 ELSE l.prev_hash = p.row_hash END) AS linked
FROM iam.audit_logs l LEFT JOIN iam.audit_logs p ON p.org_id = l.org_id AND p.seq = l.seq - 1
WHERE l.org_id IN (:'a', :'b');
SELECT ok, first_bad_seq, detail, sealed, unsealed FROM iam.audit_verify(:'a');
SELECT bool_and(ok) AS all_ok, count(*) FILTER (WHERE org_id IS NULL) AS shared_chain
FROM iam.audit_verify();

-- an unsealed row is counted as waiting
UPDATE iam.users SET department = 'Sales' WHERE id = :'bea';
SELECT ok, sealed, unsealed FROM iam.audit_verify(:'b');
SELECT unsealed FROM iam.audit_status;
SELECT iam.audit_seal() AS sealed_one;

-- a checkpoint is the head; verify against it
SELECT seq AS cp_seq, row_hash AS cp_hash FROM iam.audit_checkpoint(:'a') \gset
SELECT :cp_seq = max(seq) AS checkpoint_is_head FROM iam.audit_logs WHERE org_id = :'a';
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a', :cp_seq, :'cp_hash');
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a', :cp_seq, sha256('not the head'));

-- tamper 1: a superuser edits a row
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs SET changes = jsonb_set(changes, '{department,new}', '"Board"')
WHERE org_id = :'a' AND seq = 5;
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a');
ROLLBACK;
-- ... or only the context of a row
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs SET ip_address = '203.0.113.9' WHERE org_id = :'a' AND seq = 2;
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a');
ROLLBACK;
-- ... and recomputes its row_hash naively (the next link breaks)
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs SET action = 'user.deleted', row_hash = sha256('forged')
WHERE org_id = :'a' AND seq = 3;
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a');
ROLLBACK;
-- tamper 2: a superuser deletes a row
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM iam.audit_logs WHERE org_id = :'a' AND seq = 4;
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a');
ROLLBACK;
-- tamper 3: a superuser inserts a forged row in the middle (renumbering the rest)
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs SET seq = seq + 1000 WHERE org_id = :'a' AND seq >= 3;
UPDATE iam.audit_logs SET seq = seq - 999 WHERE org_id = :'a' AND seq >= 1003;
INSERT INTO iam.audit_logs (org_id, action, entity_type, seq, prev_hash, row_hash)
	SELECT :'a', 'user.created', 'user', 3, row_hash, sha256('forged')
	FROM iam.audit_logs WHERE org_id = :'a' AND seq = 2;
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a');
ROLLBACK;
-- ... or at the tail
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO iam.audit_logs (org_id, action, entity_type, seq, prev_hash, row_hash)
	SELECT :'a', 'user.created', 'user', seq + 1, row_hash, sha256('forged')
	FROM iam.audit_logs WHERE org_id = :'a' ORDER BY seq DESC LIMIT 1;
SELECT ok, first_bad_seq = :cp_seq + 1 AS at_new_tail, detail FROM iam.audit_verify(:'a');
ROLLBACK;
-- tamper 4: a superuser swaps two rows
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs SET seq = -seq WHERE org_id = :'a' AND seq IN (2, 3);
UPDATE iam.audit_logs SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END WHERE org_id = :'a' AND seq IN (-2, -3);
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a');
ROLLBACK;
-- tamper 5: a superuser truncates the tail: the chain alone still looks
-- whole, the checkpoint kept elsewhere catches it
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM iam.audit_logs WHERE org_id = :'a' AND seq > :cp_seq - 2;
SELECT ok AS ok_without_checkpoint FROM iam.audit_verify(:'a');
SELECT ok, first_bad_seq = :cp_seq - 1 AS first_missing, detail ~ 'removed from its tail' AS says_tail
FROM iam.audit_verify(:'a', :cp_seq, :'cp_hash');
ROLLBACK;
-- tamper 6: an erasure marker on a column without personal data
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs
SET changes = jsonb_set(changes, '{department}',
						jsonb_build_object('erased', encode(sha256(convert_to((changes->'department')::text, 'UTF8')), 'hex')))
WHERE org_id = :'a' AND seq = 5;
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a');
ROLLBACK;
-- one organisation's damage does not hide in the other's result
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM iam.audit_logs WHERE org_id = :'b' AND seq = 1;
SELECT org_id = :'a' AS is_a, ok, first_bad_seq FROM iam.audit_verify() WHERE org_id IN (:'a', :'b') ORDER BY 1;
ROLLBACK;
SELECT bool_and(ok) AS all_ok_again FROM iam.audit_verify();

-- bad arguments
SELECT * FROM iam.audit_verify(NULL, 3, NULL);
SELECT * FROM iam.audit_verify(:'a', 0, NULL);
-- sealing needs READ COMMITTED
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT iam.audit_seal();
ROLLBACK;

-- within one transaction the chain keeps the order of the changes
BEGIN;
SELECT iam.create_organization('Order', 'order-test') AS o \gset
SELECT iam.create_user(:'o', 'first@order.example', 'First', 'member', NULL) AS u1 \gset
UPDATE iam.users SET department = 'One' WHERE id = :'u1';
UPDATE iam.users SET department = 'Two' WHERE id = :'u1';
SELECT iam.create_user(:'o', 'second@order.example', 'Second', 'member', NULL) AS u2 \gset
UPDATE iam.users SET department = 'Three' WHERE id = :'u1';
COMMIT;
SELECT iam.audit_seal() > 0 AS sealed;
SELECT seq, action, entity_id = :'u1' AS first_user, changes->'department'->>'new' AS department
FROM iam.audit_logs WHERE org_id = :'o' ORDER BY seq;
