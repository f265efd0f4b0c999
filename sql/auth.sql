-- auth: the sign-in pieces the extension computes, checked against known
-- answers: RFC 6238 TOTP vectors, crypt_blowfish's bcrypt vectors, the
-- rehash decision, and the login / refresh / reset handlers (lockout with a
-- short window, refresh-token reuse, single-use reset tokens).
\set VERBOSITY terse

-- TOTP: RFC 6238 appendix B (SHA-1, secret "12345678901234567890"), the
-- last 6 of its 8 digits
SELECT t, iam.totp_code(convert_to('12345678901234567890', 'UTF8'), t / 30) = want AS rfc6238
FROM (VALUES (59::bigint, '287082'), (1111111109, '081804'), (1111111111, '050471'),
			 (1234567890, '005924'), (2000000000, '279037'), (20000000000, '353130')) v(t, want)
ORDER BY t;
-- RFC 4226 appendix D: HOTP counters 0..9 are the same function
SELECT array_agg(iam.totp_code(convert_to('12345678901234567890', 'UTF8'), c) ORDER BY c)
	= '{755224,287082,359152,969429,338314,254676,287922,162583,399871,520489}' AS rfc4226
FROM generate_series(0, 9) c;
-- matching: the step of at, one step either way, never one at or before after_step
SELECT iam.totp_match(convert_to('12345678901234567890', 'UTF8'), '050471', to_timestamp(1111111111), NULL)
	= 1111111111 / 30 AS current_step,
	   iam.totp_match(convert_to('12345678901234567890', 'UTF8'), '050471', to_timestamp(1111111111 + 30), NULL)
	= 1111111111 / 30 AS one_step_late,
	   iam.totp_match(convert_to('12345678901234567890', 'UTF8'), '050471', to_timestamp(1111111111 - 30), NULL)
	= 1111111111 / 30 AS one_step_early,
	   iam.totp_match(convert_to('12345678901234567890', 'UTF8'), '050471', to_timestamp(1111111111 + 60), NULL)
	IS NULL AS two_steps_late_refused,
	   iam.totp_match(convert_to('12345678901234567890', 'UTF8'), '050471', to_timestamp(1111111111), 1111111111 / 30)
	IS NULL AS replay_refused,
	   iam.totp_match(convert_to('12345678901234567890', 'UTF8'), '05047a', to_timestamp(1111111111), NULL)
	IS NULL AS non_digits_refused,
	   iam.totp_match(convert_to('12345678901234567890', 'UTF8'), '50471', to_timestamp(1111111111), NULL)
	IS NULL AS five_digits_refused;
SELECT iam.totp_code('\x0102'::bytea, 1);
-- base32 of the RFC secret, as authenticator apps read it (RFC 4648)
SELECT iam.base32_encode(convert_to('12345678901234567890', 'UTF8')) = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ' AS base32,
	   iam.base32_encode('\x666f6f6261'::bytea) = 'MZXW6YTB' AS base32_partial;

-- bcrypt hashes of earlier systems: crypt_blowfish's published vectors
SELECT v, iam.auth_password_verify(h, p) AS right_password, iam.auth_password_verify(h, p || 'x') AS wrong_password
FROM (VALUES
	(1, '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', 'U*U'),
	(2, '$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK', 'U*U*'),
	(3, '$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a', 'U*U*U'),
	(4, '$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', 'U*U'),
	(5, '$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', 'U*U')) x(v, h, p)
ORDER BY v;
-- bcrypt ignores what follows the 72nd byte; the vector says so
SELECT iam.auth_password_verify('$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui',
	'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored') AS bcrypt_72,
	   iam.auth_password_verify('$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui',
	'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') AS bcrypt_72_prefix;
-- other forms never match; a NULL hash (unknown account) is false
SELECT iam.auth_password_verify('$1$abcdefgh$abcdefghijklmnopqrstuv', 'x') AS md5crypt,
	   iam.auth_password_verify('$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeX', 'U*U') AS bcrypt_altered,
	   iam.auth_password_verify(NULL, 'anything at all') AS unknown_account,
	   iam.auth_password_verify(iam.password_hash('long enough password'), 'long enough password') AS argon2id,
	   iam.auth_password_verify(iam.password_hash('long enough password'), 'long enough passwore') AS argon2id_wrong,
	   iam.auth_password_verify('$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', repeat('U*U', 400)) AS over_1024_bytes;

-- the rehash decision: anything but argon2id at the configured costs or more
SELECT iam.auth_password_needs_rehash('$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW') AS bcrypt,
	   iam.auth_password_needs_rehash(iam.password_hash('long enough password')) AS current_costs,
	   iam.auth_password_needs_rehash('$argon2id$v=19$m=8192,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g') AS less_memory,
	   iam.auth_password_needs_rehash('$argon2id$v=19$m=19456,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g') AS fewer_iterations,
	   iam.auth_password_needs_rehash('$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g') AS stronger,
	   iam.auth_password_needs_rehash('$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g') AS argon2i;
SET iam.argon2_iterations = 3;
SELECT iam.auth_password_needs_rehash('$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g') AS after_raising_costs;
RESET iam.argon2_iterations;

-- login: a bcrypt hash signs in and is rehashed to argon2id
SELECT iam.create_organization('Org Auth', 'org-auth') AS org \gset
SELECT iam.create_user(:'org', 'legacy@auth.example', 'Legacy User', 'member', NULL) AS legacy \gset
UPDATE iam.users SET password_hash = '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW' WHERE id = :'legacy';
CREATE FUNCTION pg_temp.login(email text, pw text) RETURNS TABLE (status int, code text, keys text, retry_after boolean)
	LANGUAGE sql AS $$
	SELECT (r).status, (r).body->>'code',
		   (SELECT string_agg(k, ',' ORDER BY k) FROM json_object_keys((r).body) k),
		   (r).headers ? 'Retry-After'
	FROM (SELECT iam.api_auth_login('{}', jsonb_build_object('email', email, 'password', pw)) r) x
$$;
SELECT * FROM pg_temp.login('legacy@auth.example', 'U*U*');
SELECT * FROM pg_temp.login('LEGACY@auth.example', 'U*U');
SELECT password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%' AS rehashed_to_argon2id,
	   iam.auth_password_verify(password_hash, 'U*U') AS same_password
FROM iam.users WHERE id = :'legacy';
SELECT type, metadata->>'rehashed' AS rehashed FROM iam.activity_logs
WHERE user_id = :'legacy' ORDER BY created_at, type;
SELECT * FROM pg_temp.login('legacy@auth.example', 'U*U');
SELECT * FROM pg_temp.login('nobody@auth.example', 'U*U');

-- lockout: 5 failures within iam.lockout_window lock the account, even for
-- the right password, until the window has passed
SELECT iam.create_user(:'org', 'locked@auth.example', 'Lock Test', 'member', 'the right passphrase') AS locked \gset
SET iam.lockout_window = 2;
SELECT n, (pg_temp.login('locked@auth.example', 'wrong passphrase ' || n)).status
FROM generate_series(1, 5) n ORDER BY n;
SELECT * FROM pg_temp.login('locked@auth.example', 'the right passphrase');
SELECT count(*) FILTER (WHERE type = 'login_failed') AS failures,
	   count(*) FILTER (WHERE type = 'lockout') AS lockouts,
	   count(*) FILTER (WHERE type = 'login_locked') AS refused_while_locked
FROM iam.activity_logs WHERE user_id = :'locked';
SELECT (iam.api_auth_login('{}', '{"email": "locked@auth.example", "password": "the right passphrase"}')).headers->>'Retry-After'
	IN ('1', '2') AS retry_after_within_window;
SELECT pg_sleep(2.1);
SELECT * FROM pg_temp.login('locked@auth.example', 'the right passphrase');
-- a success starts the count afresh
SELECT (pg_temp.login('locked@auth.example', 'wrong passphrase')).status AS after_success;
SELECT (pg_temp.login('locked@auth.example', 'the right passphrase')).status AS not_locked_by_one;
RESET iam.lockout_window;

-- refresh: rotation, and reuse of a rotated token revokes the session
CREATE TEMP TABLE tok AS
SELECT (r).body->>'refresh_token' AS rt1, ((r).body->>'session_id')::uuid AS sid
FROM (SELECT iam.api_auth_login('{}', '{"email": "locked@auth.example", "password": "the right passphrase"}') r) x;
SELECT count(*) AS stored_as_digest FROM iam.user_sessions s, tok
WHERE s.id = tok.sid AND s.token_hash = sha256(convert_to(tok.rt1, 'UTF8'));
ALTER TABLE tok ADD COLUMN rt2 text;
UPDATE tok SET rt2 = (iam.api_auth_refresh('{}', jsonb_build_object('refresh_token', rt1))).body->>'refresh_token';
SELECT rt2 IS NOT NULL AND rt2 <> rt1 AS rotated FROM tok;
SELECT (r).status, (r).body->>'code' AS code
FROM (SELECT iam.api_auth_refresh('{}', jsonb_build_object('refresh_token', rt1)) r FROM tok) x;
SELECT s.revoked_at IS NOT NULL AS revoked, s.revoked_reason FROM iam.user_sessions s, tok WHERE s.id = tok.sid;
SELECT count(*) AS reuse_rows FROM iam.activity_logs a, tok
WHERE a.type = 'token_reuse_detected' AND a.metadata->>'session_id' = tok.sid::text;
SELECT (r).status AS newest_token_of_revoked_session, (r).body->>'code' AS code
FROM (SELECT iam.api_auth_refresh('{}', jsonb_build_object('refresh_token', rt2)) r FROM tok) x;
SELECT (iam.api_auth_refresh('{}', '{"refresh_token": "never issued"}')).status AS unknown_token;

-- password reset: queued in the outbox, single use, revokes every session
SELECT count(*) > 0 AS live_sessions_before FROM iam.user_sessions
WHERE user_id = :'locked' AND revoked_at IS NULL;
SELECT (iam.api_auth_password_reset('{}', '{"email": "locked@auth.example"}')).status;
SELECT (iam.api_auth_password_reset('{}', '{"email": "nobody@auth.example"}')).status AS unknown_address;
SELECT payload->>'token' AS reset FROM iam.email_outbox
WHERE to_address = 'locked@auth.example' AND template = 'password_reset' \gset
SELECT count(*) AS stored_as_digest FROM iam.auth_tokens
WHERE token_hash = sha256(convert_to(:'reset', 'UTF8')) AND used_at IS NULL AND kind = 'password_reset';
SELECT (iam.api_auth_password_reset_confirm('{}', jsonb_build_object('token', :'reset', 'password', 'short'))).status;
SELECT (iam.api_auth_password_reset_confirm('{}', jsonb_build_object('token', :'reset', 'password', 'a new passphrase'))).status;
SELECT count(*) AS live_sessions_after FROM iam.user_sessions WHERE user_id = :'locked' AND revoked_at IS NULL;
SELECT DISTINCT revoked_reason FROM iam.user_sessions WHERE user_id = :'locked' AND revoked_at > now() - interval '1 minute'
ORDER BY 1;
SELECT (iam.api_auth_password_reset_confirm('{}', jsonb_build_object('token', :'reset', 'password', 'another new passphrase'))).status;
SELECT * FROM pg_temp.login('locked@auth.example', 'a new passphrase');
SELECT * FROM pg_temp.login('locked@auth.example', 'the right passphrase');
