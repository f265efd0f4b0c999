-- password: argon2id hashing, verification and the password policy
\set VERBOSITY terse
SELECT iam.create_organization('Org P', 'org-p') AS org \gset
SELECT iam.create_user(:'org', 'pat@example.com', 'Patricia Lee-Smith', 'member', 'correct horse battery') AS pat \gset
SELECT password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%' AS argon2id_owasp_defaults,
	   iam.password_verify(password_hash, 'correct horse battery') AS right_password,
	   iam.password_verify(password_hash, 'correct horse batterY') AS wrong_password
FROM iam.users WHERE id = :'pat';

-- each hash has its own salt
SELECT iam.password_hash('same password twice') <> iam.password_hash('same password twice') AS salted;

-- settings change the cost of new hashes
SET iam.argon2_memory_kib = 8192;
SET iam.argon2_iterations = 1;
SELECT iam.password_hash('cheaper for this test') LIKE '$argon2id$v=19$m=8192,t=1,p=1$%' AS costs_follow_settings;
RESET iam.argon2_memory_kib;
RESET iam.argon2_iterations;
-- and cannot go below a safe floor
SET iam.argon2_memory_kib = 1024;

-- the policy names the rule that is broken
SELECT iam.set_password(:'pat', 'short');
SELECT iam.set_password(:'pat', 'PAT@EXAMPLE.COM');
SELECT iam.set_password(:'pat', 'PATRICIA lee-smith');
SELECT iam.set_password(:'pat', repeat('x', 1025));
SELECT iam.set_password(:'pat', NULL);
SELECT iam.set_password('00000000-0000-0000-0000-000000000009', 'a perfectly fine one');
-- 12 characters count as 12 even when they take more bytes
SELECT iam.password_hash('ääääääääääää') LIKE '$argon2id$%' AS twelve_multibyte_chars;
SELECT iam.password_hash('äääääääääää');
-- a failed set_password leaves the old hash in place
SELECT iam.password_verify(password_hash, 'correct horse battery') AS old_password_kept
FROM iam.users WHERE id = :'pat';

SELECT iam.set_password(:'pat', 'a new passphrase here');
SELECT iam.password_verify(password_hash, 'a new passphrase here') AS new_password,
	   iam.password_verify(password_hash, 'correct horse battery') AS old_password
FROM iam.users WHERE id = :'pat';

-- anything that is not an argon2id hash never verifies
SELECT iam.password_verify('$2b$10$abcdefghijklmnopqrstuu', 'x') AS bcrypt_not_yet;
SELECT iam.password_verify('', '') AS empty;
SELECT iam.password_verify('$argon2id$garbage', 'x') AS garbage;
SELECT iam.password_verify(NULL, 'x') IS NULL AS null_in_null_out;
