-- api_format: iam.api_ts, iam.api_user_json, iam.api_user_etag,
-- iam.api_urlencode and iam.api_next_link in C (iam 0.6) give, byte for byte, what their SQL
-- versions of 0.4 gave (kept here as the reference), for tricky rows and
-- values, every masking choice and any session TimeZone; and an
-- installation of 0.5 gets them with ALTER EXTENSION iam UPDATE.
\set VERBOSITY terse
\set regress_db :DBNAME

-- the definitions of 0.4, as they were
CREATE FUNCTION pg_temp.ts_sql(ts timestamptz) RETURNS text LANGUAGE sql STABLE
	RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
CREATE FUNCTION pg_temp.user_json_sql(u iam.users, unmasked boolean) RETURNS json LANGUAGE sql STABLE
	RETURN json_build_object(
		'id', u.id,
		'email', CASE WHEN unmasked THEN u.email::text ELSE iam.api_mask_email(u.email) END,
		'name', u.name, 'role', u.role, 'department', u.department,
		'phone', CASE WHEN unmasked THEN u.phone::text ELSE iam.api_mask_phone(u.phone) END,
		'profile_image', u.profile_image,
		'employment_equity', CASE WHEN unmasked THEN u.employment_equity END,
		'is_active', u.is_active, 'two_factor_enabled', u.two_factor_enabled, 'metadata', u.metadata,
		'last_login', pg_temp.ts_sql(u.last_login), 'created_at', pg_temp.ts_sql(u.created_at),
		'updated_at', pg_temp.ts_sql(u.updated_at), 'deleted_at', pg_temp.ts_sql(u.deleted_at));

CREATE FUNCTION pg_temp.user_etag_sql(u iam.users) RETURNS text LANGUAGE sql IMMUTABLE
	RETURN '"' || md5(u.id::text || '/' || extract(epoch FROM u.updated_at)::text || '/'
					  || jsonb_build_array(u.email, u.name, u.role, u.department, u.phone, u.profile_image,
										   u.employment_equity, u.is_active, u.two_factor_enabled, u.metadata,
										   u.deleted_at IS NULL)::text) || '"';
CREATE FUNCTION pg_temp.urlencode_sql(s text) RETURNS text LANGUAGE sql STABLE STRICT
BEGIN ATOMIC
	SELECT coalesce(string_agg(CASE WHEN b BETWEEN 48 AND 57 OR b BETWEEN 65 AND 90 OR b BETWEEN 97 AND 122
										 OR b IN (45, 46, 95, 126)
									THEN chr(b) ELSE '%' || upper(lpad(to_hex(b), 2, '0')) END, '' ORDER BY i), '')
	FROM (SELECT i, get_byte(convert_to(s, 'UTF8'), i) AS b
		  FROM generate_series(0, octet_length(convert_to(s, 'UTF8')) - 1) AS i) AS bytes;
END;
CREATE FUNCTION pg_temp.next_link_sql(path text, params jsonb, names text[], cursor text) RETURNS jsonb
	LANGUAGE sql STABLE
BEGIN ATOMIC
	SELECT jsonb_build_object('Link', format('</api/v1%s?%scursor=%s>; rel="next"', path,
		(SELECT coalesce(string_agg(n || '=' || pg_temp.urlencode_sql(params->>n) || '&', '' ORDER BY o), '')
		 FROM unnest(names) WITH ORDINALITY AS q(n, o) WHERE params->>n IS NOT NULL),
		cursor));
END;

SELECT proname, prolang = (SELECT oid FROM pg_language WHERE lanname = 'c') AS in_c, provolatile
FROM pg_proc
WHERE oid IN ('iam.api_ts(timestamptz)'::regprocedure, 'iam.api_user_json(iam.users, boolean)'::regprocedure,
			  'iam.api_user_etag(iam.users)'::regprocedure,
			  'iam.api_urlencode(text)'::regprocedure, 'iam.api_next_link(text, jsonb, text[], text)'::regprocedure)
ORDER BY proname;

-- URL encoding: unreserved characters kept, the rest %XX of their UTF-8 bytes
SELECT s, iam.api_urlencode(s), iam.api_urlencode(s) IS NOT DISTINCT FROM pg_temp.urlencode_sql(s) AS same
FROM (VALUES ('plain-._~AZaz09'), ('a b&c=d?e/f#g+h%i'), ('é ß ☃ 🎉'), (E'tab\tnew\nline'), (''), (NULL)) v(s);

-- Link headers: parameters in the order named, absent and null ones left
-- out, numbers, booleans and nested values as ->> gives them
SELECT iam.api_next_link(p, params, names, c) AS link,
	   iam.api_next_link(p, params, names, c) IS NOT DISTINCT FROM pg_temp.next_link_sql(p, params, names, c) AS same
FROM (VALUES
	('/users', '{"q": "ann b", "limit": 50, "is_active": true, "sort": "name", "x": "ignored"}'::jsonb,
	 ARRAY['q', 'role', 'is_active', 'sort', 'limit'], 'eyJz'),
	('/audit-logs', '{"since": "2026-01-01T00:00:00Z", "action": null, "n": 1.50, "o": {"a": [1, "é"]}}',
	 ARRAY['since', 'action', 'n', 'o', NULL], 'abc-_'),
	('/x', NULL, ARRAY['a'], NULL),
	(NULL, '{"a": 1}', NULL, 'c'),
	('/arr', '[1, 2]', ARRAY['0'], 'c')) v(p, params, names, c);

-- instants: the usual, the odd and the endless, in two time zones
CREATE TEMP TABLE instants (ts timestamptz);
INSERT INTO instants VALUES ('2026-01-02 03:04:05.000006+00'), ('1999-12-31 23:59:59.999999+00'),
	('2000-01-01 00:00:00+00'), ('1970-01-01 00:00:00+00'), ('0044-03-15 12:00:00+00 BC'),
	('10000-01-01 00:00:00+00'), ('2024-02-29 12:34:56.5+05:30'), ('infinity'), ('-infinity'), (NULL);
SET TimeZone = 'Pacific/Chatham';
SELECT ts AT TIME ZONE 'UTC' AS utc, iam.api_ts(ts), iam.api_ts(ts) IS NOT DISTINCT FROM pg_temp.ts_sql(ts) AS same
FROM instants ORDER BY ts NULLS LAST;
RESET TimeZone;
SELECT count(*) FILTER (WHERE iam.api_ts(ts) IS DISTINCT FROM pg_temp.ts_sql(ts)) AS differ FROM instants;

-- users: quotes, backslashes, control characters, non-ASCII, NULLs, big metadata
SELECT iam.create_organization('Json', 'json') AS org \gset
INSERT INTO iam.users (org_id, email, name, role, department, phone, profile_image, employment_equity,
					   is_active, two_factor_enabled, metadata, last_login, deleted_at)
VALUES (:'org', 'json.ann@example.com', 'Ann "the" \ O''Brien', 'admin', E'R&D\tlab', '+27 (21) 555-0199',
		'https://img.example/a.png', 'group A', true, true, '{"b": [1, 2.50, "x"], "a": {"n": null}}',
		'2025-06-01 10:00:00+00', NULL),
	   (:'org', 'json.élodie.ß@bücher.example', E'Élodie \u00df \u2603', 'member', NULL, NULL, NULL, NULL,
		false, false, '{}', NULL, '2026-01-01 00:00:00+00'),
	   (:'org', 'json.x@y.example', 'X', 'auditor', '', '123', '', '', true, false,
		jsonb_build_object('long', repeat('z', 5000), 'ctl', E'a\u0001b'), 'infinity', NULL),
	   (:'org', 'json.a.b@c.example', E'new\nline', 'member', 'Sales', '1-2', NULL, NULL, true, false, '{"k": "v"}', NULL, NULL),
	   (:'org', 'ærin.json@example.com', 'Ærin', 'member', NULL, '+1 555 0100', NULL, NULL, true, false, '{}', NULL, NULL);
SELECT u.email, m AS unmasked, iam.api_user_json(u, m)::text = pg_temp.user_json_sql(u, m)::text AS same
FROM iam.users u, (VALUES (true), (false), (NULL::boolean)) v(m)
WHERE u.org_id = :'org' ORDER BY u.email, m NULLS LAST;
-- ETags: the same digest as 0.5 gave, also for odd updated_at values
SELECT u.email, iam.api_user_etag(u) = pg_temp.user_etag_sql(u) AS same_etag
FROM iam.users u WHERE u.org_id = :'org' ORDER BY u.email;
UPDATE iam.users SET updated_at = '1960-01-01 00:00:00.000001+00' WHERE email = 'json.x@y.example';
UPDATE iam.users SET updated_at = 'infinity' WHERE email = 'json.a.b@c.example';
SELECT u.updated_at, iam.api_user_etag(u) = pg_temp.user_etag_sql(u) AS same_etag
FROM iam.users u WHERE u.email IN ('json.x@y.example', 'json.a.b@c.example') ORDER BY u.email;
-- what a masked caller sees, spelled out
SELECT iam.api_user_json(u, false)->>'email' AS email, iam.api_user_json(u, false)->>'phone' AS phone,
	   iam.api_user_json(u, false)->>'employment_equity' AS equity
FROM iam.users u WHERE u.org_id = :'org' ORDER BY u.email;
-- a NULL row: every field null, as json_build_object gave
SELECT iam.api_user_json(NULL::iam.users, true)::text = pg_temp.user_json_sql(NULL::iam.users, true)::text AS null_row_same;
DELETE FROM iam.users WHERE org_id = :'org';
DELETE FROM iam.organizations WHERE id = :'org';

-- 0.5 -> 0.6: the C versions arrive with the update
CREATE DATABASE iam_api_json_regress;
\c iam_api_json_regress
SET client_min_messages = warning;
CREATE EXTENSION iam VERSION '0.5' CASCADE;
SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = 'iam.api_user_json(iam.users, boolean)'::regprocedure;
ALTER EXTENSION iam UPDATE TO '0.6';
SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = 'iam.api_user_json(iam.users, boolean)'::regprocedure;
SELECT iam.api_ts('2026-01-02 03:04:05+00');
\c :regress_db
DROP DATABASE iam_api_json_regress;
