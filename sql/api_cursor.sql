-- api_cursor: the keyset cursors and the listings' query cache in C (iam
-- 0.7).  iam.api_cursor_encode gives, byte for byte, what its SQL version of
-- 0.4 gave (kept here as the reference), and iam.api_cursor_decode accepts
-- and refuses what that version did, with IA400 and nothing else for every
-- malformed cursor.  iam.api_cached_query answers its query's rows for the
-- values of each call, follows DDL on what it read, refuses writes, and no
-- pg_iam role may call it.
\set VERBOSITY terse

-- the definitions of 0.4, as they were
CREATE FUNCTION pg_temp.encode_sql(sort text, v text, id uuid) RETURNS text LANGUAGE sql STABLE
	RETURN rtrim(translate(encode(convert_to(jsonb_build_object('s', sort, 'v', v, 'id', id)::text, 'UTF8'),
								  'base64'), E'+/\n', '-_'), '=');
CREATE FUNCTION pg_temp.decode_sql(cursor text, sort text, is_timestamp boolean) RETURNS jsonb
	LANGUAGE plpgsql STABLE AS $$
DECLARE
	b64	text;
	c	jsonb;
BEGIN
	IF cursor IS NULL THEN
		RETURN NULL;
	END IF;
	BEGIN
		IF length(cursor) > 500 OR cursor !~ '^[A-Za-z0-9_-]+$' THEN
			RAISE EXCEPTION 'malformed';
		END IF;
		b64 := translate(cursor, '-_', '+/');
		b64 := b64 || repeat('=', (4 - length(b64) % 4) % 4);
		c := convert_from(decode(b64, 'base64'), 'UTF8')::jsonb;
		IF jsonb_typeof(c) IS DISTINCT FROM 'object' OR c->>'s' IS DISTINCT FROM sort
		   OR jsonb_typeof(c->'v') IS DISTINCT FROM 'string'
		   OR (c->>'id') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
		   OR (SELECT count(*) FROM jsonb_object_keys(c)) <> 3 THEN
			RAISE EXCEPTION 'malformed';
		END IF;
		IF is_timestamp AND (c->>'v')::timestamptz IS NULL THEN
			RAISE EXCEPTION 'malformed';
		END IF;
	EXCEPTION WHEN OTHERS THEN
		RAISE EXCEPTION 'invalid cursor' USING ERRCODE = 'IA400';
	END;
	RETURN c;
END
$$;
-- what decoding gives: the object, or the SQLSTATE and message of the error
CREATE FUNCTION pg_temp.outcome(f text, cursor text, sort text, is_timestamp boolean) RETURNS text
	LANGUAGE plpgsql AS $$
DECLARE
	r	jsonb;
BEGIN
	EXECUTE format('SELECT %s($1, $2, $3)', f) INTO r USING cursor, sort, is_timestamp;
	RETURN coalesce(r::text, 'NULL');
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
CREATE FUNCTION pg_temp.b64url(json text) RETURNS text LANGUAGE sql IMMUTABLE
	RETURN rtrim(translate(encode(convert_to(json, 'UTF8'), 'base64'), E'+/\n', '-_'), '=');

SELECT proname, l.lanname, provolatile FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid IN ('iam.api_cursor_encode(text, text, uuid)'::regprocedure,
				'iam.api_cursor_decode(text, text, boolean)'::regprocedure,
				'iam.api_cached_query(text, text[], boolean)'::regprocedure)
ORDER BY proname;

-- encoding: quotes, backslashes, control characters, non-ASCII, NULLs and
-- values long enough for base64 lines (which the SQL version cut and joined)
CREATE TEMP TABLE made (sort text, v text, id uuid);
INSERT INTO made VALUES
	('users:created_at:asc', '2026-01-02T03:04:05.000006Z', '3e026b79-b902-84d6-82c9-6f38d47a0fbe'),
	('users:name:desc', 'ann "the" \ o''brien', '00000000-0000-0000-0000-000000000000'),
	('users:email:asc', E'tab\tnew\nline\u0001', 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
	('users:name:asc', 'élodie ß ☃ 🎉', '3e026b79-b902-84d6-82c9-6f38d47a0fbe'),
	('users:name:asc', repeat('long value ', 30), '3e026b79-b902-84d6-82c9-6f38d47a0fbe'),
	('audit-logs', '', 'c0ffee00-0000-4000-8000-000000000002'), (NULL, NULL, NULL), ('a', 'b', 'c0ffee00-0000-4000-8000-000000000001');
SELECT sort, left(iam.api_cursor_encode(sort, v, id), 40) AS cursor,
	   iam.api_cursor_encode(sort, v, id) IS NOT DISTINCT FROM pg_temp.encode_sql(sort, v, id) AS same
FROM made ORDER BY sort NULLS LAST, v;

-- decoding what was made: both versions give the same object, or refuse alike
SELECT m.sort, s.sort AS asked, t AS is_timestamp,
	   pg_temp.outcome('iam.api_cursor_decode', c, s.sort, t) AS c_version,
	   pg_temp.outcome('iam.api_cursor_decode', c, s.sort, t) = pg_temp.outcome('pg_temp.decode_sql', c, s.sort, t) AS same
FROM (SELECT *, pg_temp.encode_sql(sort, v, id) AS c FROM made) m,
	 (VALUES ('users:created_at:asc'), ('users:name:asc'), ('audit-logs')) s(sort), (VALUES (true), (false)) b(t)
WHERE m.sort IS NOT DISTINCT FROM s.sort OR m.sort = 'users:name:desc'
ORDER BY m.sort, m.v, s.sort, t;

-- malformed: every one refused with IA400 by both, NULL is NULL
SELECT label, pg_temp.outcome('iam.api_cursor_decode', c, 'users:created_at:asc', true) AS c_version,
	   pg_temp.outcome('iam.api_cursor_decode', c, 'users:created_at:asc', true)
		 = pg_temp.outcome('pg_temp.decode_sql', c, 'users:created_at:asc', true) AS same
FROM (VALUES
	('null', NULL),
	('empty', ''),
	('not base64url', '!!!'),
	('base64, not url', '+/+/'),
	('one character too many', 'eyJz' || 'a'),
	('too long', repeat('A', 501)),
	('not JSON', 'bm90IGpzb24'),
	('not UTF-8', pg_temp.b64url('x') || '_w'),
	('array', pg_temp.b64url('[1, 2]')),
	('string', pg_temp.b64url('"s"')),
	('empty object', pg_temp.b64url('{}')),
	('id missing', pg_temp.b64url('{"s": "users:created_at:asc", "v": "2026-01-01T00:00:00Z"}')),
	('extra key', pg_temp.b64url('{"s": "users:created_at:asc", "v": "2026-01-01T00:00:00Z", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe", "x": 1}')),
	('v a number', pg_temp.b64url('{"s": "users:created_at:asc", "v": 1e999999, "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('v an object', pg_temp.b64url('{"s": "users:created_at:asc", "v": {"a": "b"}, "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('v not a time', pg_temp.b64url('{"s": "users:created_at:asc", "v": "not a time", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('v out of range', pg_temp.b64url('{"s": "users:created_at:asc", "v": "294277-01-01T00:00:00Z", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('v February 30', pg_temp.b64url('{"s": "users:created_at:asc", "v": "2026-02-30T00:00:00Z", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('v with NUL escape', pg_temp.b64url('{"s": "users:created_at:asc", "v": "\u0000", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('id not a uuid', pg_temp.b64url('{"s": "users:created_at:asc", "v": "2026-01-01T00:00:00Z", "id": "x''; DROP TABLE x"}')),
	('id a uuid and more', pg_temp.b64url('{"s": "users:created_at:asc", "v": "2026-01-01T00:00:00Z", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe0"}')),
	('id a number', pg_temp.b64url('{"s": "users:created_at:asc", "v": "2026-01-01T00:00:00Z", "id": 7}')),
	('s null', pg_temp.b64url('{"s": null, "v": "2026-01-01T00:00:00Z", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('another sort', pg_temp.b64url('{"s": "users:created_at:desc", "v": "2026-01-01T00:00:00Z", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('trailing garbage', pg_temp.b64url('{"s": "users:created_at:asc", "v": "2026-01-01T00:00:00Z", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"} x'))
) v(label, c)
ORDER BY label;
-- stricter than 0.4, which let a null id through to the listing's query
SELECT pg_temp.outcome('iam.api_cursor_decode', c, 'audit-logs', true) AS c_version,
	   pg_temp.outcome('pg_temp.decode_sql', c, 'audit-logs', true) AS sql_version
FROM (VALUES (pg_temp.b64url('{"s": "audit-logs", "v": "2026-01-01T00:00:00Z", "id": null}'))) v(c);
-- accepted alike: escapes, upper-case ids, keys in another order, other spellings of an instant
SELECT label, pg_temp.outcome('iam.api_cursor_decode', c, 'users:created_at:asc', true) AS c_version,
	   pg_temp.outcome('iam.api_cursor_decode', c, 'users:created_at:asc', true)
		 = pg_temp.outcome('pg_temp.decode_sql', c, 'users:created_at:asc', true) AS same
FROM (VALUES
	('escaped sort', pg_temp.b64url('{"s": "users\u003acreated_at:asc", "v": "2026-01-01T00:00:00Z", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('upper-case id', pg_temp.b64url('{"id": "3E026B79-B902-84D6-82C9-6F38D47A0FBE", "v": "2026-01-01T00:00:00Z", "s": "users:created_at:asc"}')),
	('a date', pg_temp.b64url('{"s": "users:created_at:asc", "v": "2026-01-01", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}')),
	('infinity', pg_temp.b64url('{"s": "users:created_at:asc", "v": "infinity", "id": "3e026b79-b902-84d6-82c9-6f38d47a0fbe"}'))
) v(label, c)
ORDER BY label;

-- iam.api_cached_query: the values of each call, as text parameters
CREATE TEMP TABLE pets (id int PRIMARY KEY, name text, born date);
INSERT INTO pets VALUES (1, 'Rex', '2020-01-01'), (2, 'Tom', '2021-06-01'), (3, 'Kit', NULL);
SELECT * FROM iam.api_cached_query('SELECT name, born FROM pg_temp.pets WHERE id > $1::int ORDER BY id',
								   ARRAY['1']) AS t(name text, born date);
SELECT * FROM iam.api_cached_query('SELECT name, born FROM pg_temp.pets WHERE id > $1::int ORDER BY id',
								   ARRAY['2']) AS t(name text, born date);
-- NULL elements are NULL parameters; no arguments at all
SELECT * FROM iam.api_cached_query('SELECT count(*) FROM pg_temp.pets WHERE born IS NOT DISTINCT FROM $1::date',
								   ARRAY[NULL]) AS t(n bigint);
SELECT * FROM iam.api_cached_query('SELECT count(*) FROM pg_temp.pets', NULL) AS t(n bigint);
-- the same text sees new rows, and its plan follows DDL on the table
INSERT INTO pets VALUES (4, 'Bo', '2022-02-02');
SELECT * FROM iam.api_cached_query('SELECT name, born FROM pg_temp.pets WHERE id > $1::int ORDER BY id',
								   ARRAY['2']) AS t(name text, born date);
ALTER TABLE pets DROP COLUMN born;
ALTER TABLE pets ADD COLUMN born timestamptz DEFAULT '2000-01-01 00:00:00+00';
SELECT * FROM iam.api_cached_query('SELECT name, born FROM pg_temp.pets WHERE id > $1::int ORDER BY id',
								   ARRAY['2']) AS t(name text, born date);
SELECT * FROM iam.api_cached_query('SELECT name, born FROM pg_temp.pets WHERE id > $1::int ORDER BY id',
								   ARRAY['2']) AS t(name text, born timestamptz);
-- custom plans: the same rows
SELECT * FROM iam.api_cached_query('SELECT name FROM pg_temp.pets WHERE name LIKE $1 ORDER BY id',
								   ARRAY['%o%'], true) AS t(name text);
-- refused: a write, a malformed query, a bad parameter, NULL, columns that do not match
SELECT * FROM iam.api_cached_query('INSERT INTO pg_temp.pets (id, name) VALUES (9, $1) RETURNING id',
								   ARRAY['Eve']) AS t(id int);
SELECT * FROM iam.api_cached_query('SELEKT 1', NULL) AS t(n int);
SELECT * FROM iam.api_cached_query('SELECT name FROM pg_temp.pets WHERE id = $1::int', ARRAY['x']) AS t(name text);
SELECT * FROM iam.api_cached_query(NULL, NULL) AS t(n int);
SELECT * FROM iam.api_cached_query('SELECT 1, 2', NULL) AS t(n int);
SELECT * FROM iam.api_cached_query('SELECT 1', NULL) AS t(n text);
SELECT * FROM iam.api_cached_query('SELECT 1', ARRAY[ARRAY['a'], ARRAY['b']]) AS t(n int);
SELECT count(*) AS pets_still FROM pets;
-- no role of pg_iam may call it
SELECT r AS role, has_function_privilege(r, 'iam.api_cached_query(text, text[], boolean)', 'EXECUTE') AS may_call
FROM unnest(ARRAY['iam_gateway', 'iam_service', 'iam_auditor', 'iam_admin']) r
WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = r)
ORDER BY r;

-- 0.6 -> 0.7: the C versions arrive with the update, a cursor handed out by
-- 0.6 still pages on, and PATCH /users/{id} writes and audits as before
\set regress_db :DBNAME
CREATE DATABASE iam_api_cursor_regress;
\c iam_api_cursor_regress
SET client_min_messages = warning;
CREATE EXTENSION iam VERSION '0.6' CASCADE;
SELECT iam.create_organization('Cursor Upgrade', 'cursor-upgrade') AS org \gset
SELECT iam.create_user(:'org', 'ada@cu.example', 'Ada', 'admin', NULL) AS ada \gset
SELECT iam.create_user(:'org', 'bo@cu.example', 'Bo', 'member', NULL) AS bo \gset
SELECT iam.create_user(:'org', 'cy@cu.example', 'Cy', 'member', NULL) AS cy \gset
UPDATE iam.users SET created_at = '2026-01-01 00:00:00+00'::timestamptz
	+ CASE name WHEN 'Ada' THEN interval '1 hour' WHEN 'Bo' THEN interval '2 hours' ELSE interval '3 hours' END
WHERE org_id = :'org';
SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = 'iam.api_cursor_decode(text, text, boolean)'::regprocedure;
BEGIN;
SELECT set_config('iam.user_id', :'ada', true) IS NOT NULL AS ada, set_config('iam.org_id', :'org', true) IS NOT NULL AS org;
SELECT body->'next_cursor' IS NOT NULL AS has_cursor, body->'data'->0->>'name' AS first
FROM iam.api_users_list('{"limit": "1"}', NULL);
SELECT body->>'next_cursor' AS cursor_06 FROM iam.api_users_list('{"limit": "1"}', NULL) \gset
COMMIT;
ALTER EXTENSION iam UPDATE TO '0.7';
SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = 'iam.api_cursor_decode(text, text, boolean)'::regprocedure;
\c iam_api_cursor_regress
SET client_min_messages = warning;
SELECT set_config('iam.user_id', :'ada', false) IS NOT NULL AS ada, set_config('iam.org_id', :'org', false) IS NOT NULL AS org;
SELECT status, (SELECT array_agg(d->>'name') FROM json_array_elements(body->'data') d) AS names
FROM iam.api_users_list(jsonb_build_object('limit', '5', 'cursor', :'cursor_06'), NULL);
-- both write paths: an address left as it is, a new one; a taken one is
-- refused (the concurrent case: specs/user_email_race.spec)
SELECT status, body->>'department' AS department FROM iam.api_users_update(jsonb_build_object('id', :'bo'), '{"department": "Ops"}');
SELECT status, body->>'email' AS email FROM iam.api_users_update(jsonb_build_object('id', :'bo'), '{"email": "Bo.New@cu.example"}');
SELECT iam.api_users_update(jsonb_build_object('id', :'cy'), '{"email": "BO.NEW@CU.EXAMPLE"}');
SELECT status, body->>'role' AS role, body->>'is_active' AS is_active
FROM iam.api_users_update(jsonb_build_object('id', :'cy'), '{"is_active": false}');
SELECT iam.audit_seal() > 0 AS sealed;
SELECT u.name, a.action, (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(a.changes) k) AS changed
FROM iam.audit_logs a JOIN iam.users u ON u.id = a.entity_id
WHERE a.org_id = :'org' AND a.action = 'user.updated' AND a.user_id = :'ada' ORDER BY a.seq;
SELECT ok FROM iam.audit_verify(:'org');
\c :regress_db
DROP DATABASE iam_api_cursor_regress;
