-- audit_erase: iam.erase_user anonymises a user, revokes their sessions and
-- erases their personal data inside the audit trail through the sanctioned
-- path: the chain still verifies, the erasure is itself audited, and any
-- other tampering is still caught.
\set VERBOSITY terse
SELECT iam.create_organization('Erase A', 'erase-a') AS a \gset
SELECT iam.create_user(:'a', 'eve.secret@erase.example', 'Eve Secretname', 'member', NULL) AS eve \gset
SELECT iam.create_user(:'a', 'kim@erase.example', 'Kim', 'member', NULL) AS kim \gset
UPDATE iam.users SET phone = '+44 20 7946 0000', profile_image = 'https://img.example/eve.png',
					 metadata = '{"nickname": "evie"}', department = 'Legal' WHERE id = :'eve';
UPDATE iam.users SET name = 'Eve Othername' WHERE id = :'eve';
INSERT INTO iam.user_sessions (user_id, org_id, expires_at) VALUES
	(:'eve', :'a', now() + interval '1 day'), (:'eve', :'a', now() + interval '1 day'),
	(:'kim', :'a', now() + interval '1 day');
-- half of the rows sealed before the erasure, half after
SELECT iam.audit_seal() > 0 AS sealed;
UPDATE iam.users SET phone = '+44 20 7946 0001' WHERE id = :'eve';

SELECT count(*) AS trail_rows_with_pii FROM iam.audit_logs
WHERE changes::text ~ '(Secretname|Othername|eve\.secret|20 7946|evie|img\.example)';

BEGIN;
SELECT set_config('iam.request_id', 'gdpr-42', true) IS NOT NULL AS ctx;
SELECT iam.erase_user(:'eve');
COMMIT;

-- the user row keeps no personal data, the account is closed
SELECT email LIKE 'erased-%@erased.invalid' AS email_erased, name, phone, profile_image, metadata,
	   is_active, deleted_at IS NOT NULL AS deleted, password_hash
FROM iam.users WHERE id = :'eve';
SELECT user_id = :'eve' AS is_eve, count(*) FILTER (WHERE revoked_at IS NULL) AS live_sessions
FROM iam.user_sessions WHERE org_id = :'a' GROUP BY 1 ORDER BY 1;
-- nor does the trail; what is not personal stays readable
SELECT count(*) AS trail_rows_with_pii FROM iam.audit_logs
WHERE changes::text ~ '(Secretname|Othername|eve\.secret|20 7946|evie|img\.example)';
SELECT changes->'department' AS department, changes->'phone' ? 'erased' AS phone_marker
FROM iam.audit_logs WHERE entity_id = :'eve' AND changes ? 'department';
-- the erasure is audited
SELECT action, request_id, changes->'sessions_revoked'->'new' AS sessions,
	   (changes->'audit_rows_erased'->>'new')::int > 0 AS erased_rows
FROM iam.audit_logs WHERE action = 'user.erased' AND entity_id = :'eve';
-- Kim is untouched
SELECT count(*) AS kim_markers FROM iam.audit_logs WHERE entity_id = :'kim' AND changes::text LIKE '%erased%';

-- the chain still verifies, sealed before or after the erasure
SELECT iam.audit_seal() > 0 AS sealed;
SELECT ok, first_bad_seq, detail, unsealed FROM iam.audit_verify(:'a');
-- erasing twice changes nothing more and still verifies
SELECT iam.erase_user(:'eve');
SELECT iam.audit_seal() > 0 AS sealed;
SELECT ok, first_bad_seq, detail FROM iam.audit_verify(:'a');

-- other tampering is still caught after the erasure
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs SET changes = jsonb_set(changes, '{department,new}', '"Board"')
WHERE entity_id = :'eve' AND changes ? 'department';
SELECT ok, detail ~ 'does not match' AS altered FROM iam.audit_verify(:'a');
ROLLBACK;
-- a marker carrying a wrong digest is caught too
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE iam.audit_logs
SET changes = jsonb_set(changes, '{phone}', '{"erased": "0000000000000000000000000000000000000000000000000000000000000000"}')
WHERE entity_id = :'eve' AND changes ? 'department';
SELECT ok, detail ~ 'does not match' AS altered FROM iam.audit_verify(:'a');
ROLLBACK;

-- the redaction path is not open to anyone else
SELECT iam.erase_user('00000000-0000-0000-0000-000000000000');
UPDATE iam.audit_logs SET changes = '{}' WHERE entity_id = :'kim';
