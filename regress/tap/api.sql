-- api.sql: the REST API functions of iam 0.4 (iam.api_*), called the way the
-- gateway calls them: the request context set transaction-locally, then
-- handler(params, body).  Per handler: the happy path and each client error
-- (IA400, IA401, IA403, IA404, IA409, IA412, IA422), masking, pagination,
-- merge-patch semantics, the escalation guard, and iam.openapi().
BEGIN;
SELECT plan(238);

-- two organisations; a is the one under test
SELECT iam.create_organization('Api A', 'api-a') AS a \gset
SELECT iam.create_organization('Api B', 'api-b') AS b \gset
SELECT iam.create_user(:'a', 'root@api-a.example', 'Root Admin', 'admin', NULL) AS root \gset
SELECT iam.create_user(:'a', 'mia@api-a.example', 'Mia Member', 'member', NULL) AS mia \gset
SELECT iam.create_user(:'a', 'aud@api-a.example', 'Aud Auditor', 'auditor', NULL) AS aud \gset
SELECT iam.create_user(:'a', 'ina@api-a.example', 'Ina Inactive', 'member', NULL) AS ina \gset
SELECT iam.create_user(:'a', 'gone@api-a.example', 'Gone Deleted', 'member', NULL) AS gone \gset
SELECT iam.create_user(:'b', 'bob@api-b.example', 'Bob Other', 'admin', NULL) AS bob \gset
UPDATE iam.users SET is_active = false WHERE id = :'ina';
UPDATE iam.users SET deleted_at = now(), is_active = false WHERE id = :'gone';
UPDATE iam.users SET phone = '+27 21 555 0100', department = 'Sales', employment_equity = 'x' WHERE id = :'mia';
-- a manager who may manage roles and users but holds little else; a nobody
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('manager', 'Manager', :'a') RETURNING id AS manager_role \gset
INSERT INTO iam.role_permissions (role_id, permission_id)
	SELECT :'manager_role', id FROM iam.permissions
	WHERE name IN ('roles.manage', 'roles.read', 'users.read', 'users.create', 'users.update', 'org.read');
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('nobody', 'Nobody', :'a') RETURNING id AS nobody_role \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('buyer', 'Buyer', :'b') RETURNING id AS buyer_role \gset
SELECT iam.create_user(:'a', 'max@api-a.example', 'Max Manager', 'manager', NULL) AS max \gset
SELECT iam.create_user(:'a', 'nob@api-a.example', 'Nob Nobody', 'nobody', NULL) AS nob \gset
-- distinct creation times, in the order of the names above
UPDATE iam.users u SET created_at = '2026-01-01 00:00:00+00'::timestamptz + o.n * interval '1 day'
FROM (VALUES (:'root'::uuid, 1), (:'mia', 2), (:'aud', 3), (:'ina', 4), (:'gone', 5), (:'max', 6), (:'nob', 7))
	AS o(id, n) WHERE u.id = o.id;
SELECT id AS admin_role FROM iam.roles WHERE name = 'admin' AND is_system \gset
SELECT id AS member_role FROM iam.roles WHERE name = 'member' AND is_system \gset

-- the last response, for the checks that follow a call
CREATE TEMP TABLE last (status int, body json, headers jsonb);
GRANT ALL ON last TO PUBLIC;
CREATE FUNCTION pg_temp.as_user(u uuid, o uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('iam.user_id', coalesce(u::text, ''), true),
			set_config('iam.org_id', coalesce(o::text, ''), true);
END
$$;
CREATE FUNCTION pg_temp.api(handler text, params jsonb DEFAULT '{}', body jsonb DEFAULT NULL) RETURNS int
	LANGUAGE plpgsql AS $$
DECLARE
	r iam.api_response;
BEGIN
	EXECUTE format('SELECT * FROM iam.%I($1, $2)', handler) INTO r USING params, body;
	DELETE FROM last;
	INSERT INTO last VALUES (r.status, r.body, r.headers);
	RETURN r.status;
END
$$;
-- throws_ok(call, code) for api(handler, params, body)
CREATE FUNCTION pg_temp.fails(handler text, params jsonb, body jsonb, code text, message text, what text)
	RETURNS text LANGUAGE sql AS $$
	SELECT throws_ok(format('SELECT pg_temp.api(%L, %L, %L)', handler, params, body), code, message, what);
$$;
CREATE FUNCTION pg_temp.attempts() RETURNS bigint LANGUAGE sql
	RETURN (SELECT count(*) FROM iam.activity_logs WHERE type = 'privilege_escalation_attempt');
CREATE FUNCTION pg_temp.id(u uuid) RETURNS jsonb LANGUAGE sql RETURN jsonb_build_object('id', u);
CREATE FUNCTION pg_temp.body() RETURNS jsonb LANGUAGE sql RETURN (SELECT body::jsonb FROM last);

------------------------------------------------------------------------------
-- the caller: IA401 unless an active, not deleted user of iam.org_id
------------------------------------------------------------------------------
SELECT pg_temp.as_user(NULL, NULL);
SELECT pg_temp.fails('api_users_me', '{}', NULL, 'IA401', 'not signed in as an active user of this organisation', 'no context: IA401');
SELECT pg_temp.as_user(:'ina', :'a');
SELECT pg_temp.fails('api_users_me', '{}', NULL, 'IA401', NULL, 'inactive caller: IA401');
SELECT pg_temp.as_user(:'gone', :'a');
SELECT pg_temp.fails('api_users_me', '{}', NULL, 'IA401', NULL, 'deleted caller: IA401');
SELECT pg_temp.as_user(:'root', :'b');
SELECT pg_temp.fails('api_users_me', '{}', NULL, 'IA401', NULL, 'caller of another organisation: IA401');
SELECT pg_temp.as_user(gen_random_uuid(), :'a');
SELECT pg_temp.fails('api_users_me', '{}', NULL, 'IA401', NULL, 'unknown caller: IA401');
SELECT pg_temp.as_user(:'root', NULL);
SELECT pg_temp.fails('api_users_list', '{}', NULL, 'IA401', NULL, 'no organisation: IA401 (list)');
SELECT pg_temp.fails('api_authz_check', '{}', '{"permissions": ["users.read"]}', 'IA401', NULL, 'no organisation: IA401 (authz)');

------------------------------------------------------------------------------
-- GET /users/me
------------------------------------------------------------------------------
SELECT pg_temp.as_user(:'mia', :'a');
SELECT is(pg_temp.api('api_users_me'), 200, 'GET /users/me: 200');
SELECT is(pg_temp.body()->>'id', :'mia', 'GET /users/me: the caller');
SELECT is(pg_temp.body()->'permissions', '["org.read", "roles.read", "users.read"]', 'GET /users/me: its permissions');
SELECT is(pg_temp.body()->>'email', 'mia@api-a.example', 'GET /users/me: own e-mail unmasked');
SELECT ok(NOT pg_temp.body() ? 'password_hash', 'GET /users/me: no password hash');

------------------------------------------------------------------------------
-- GET /users: filters, sort, keyset pagination, masking
------------------------------------------------------------------------------
SELECT pg_temp.as_user(:'nob', :'a');
SELECT pg_temp.fails('api_users_list', '{}', NULL, 'IA403', 'permission denied: this requires users.read', 'GET /users without users.read: IA403');
SELECT pg_temp.as_user(:'root', :'a');
SELECT is(pg_temp.api('api_users_list'), 200, 'GET /users: 200');
SELECT is((SELECT array_agg(e->>'name' ORDER BY o) FROM json_array_elements((SELECT body FROM last)->'data') WITH ORDINALITY AS x(e, o)),
		  ARRAY['Root Admin', 'Mia Member', 'Aud Auditor', 'Ina Inactive', 'Max Manager', 'Nob Nobody'],
		  'GET /users: the organisation''s users that are not deleted, by created_at');
SELECT ok((SELECT body->'next_cursor' FROM last)::text = 'null' AND (SELECT headers FROM last) IS NULL,
		  'GET /users: one page only: next_cursor null, no Link');
SELECT is((SELECT e->>'email' FROM json_array_elements((SELECT body FROM last)->'data') e WHERE e->>'id' = :'mia'),
		  'mia@api-a.example', 'GET /users: unmasked with users.read_pii');
SELECT pg_temp.as_user(:'max', :'a');
SELECT pg_temp.api('api_users_list');
SELECT is((SELECT e->>'email' FROM json_array_elements((SELECT body FROM last)->'data') e WHERE e->>'id' = :'mia'),
		  'm***@api-a.example', 'GET /users: e-mail masked without users.read_pii');
SELECT is((SELECT e->>'phone' FROM json_array_elements((SELECT body FROM last)->'data') e WHERE e->>'id' = :'mia'),
		  '+** ** *** **00', 'GET /users: phone masked without users.read_pii');
SELECT is((SELECT e->>'employment_equity' FROM json_array_elements((SELECT body FROM last)->'data') e WHERE e->>'id' = :'mia'),
		  NULL, 'GET /users: employment equity hidden without users.read_pii');
SELECT is((SELECT e->>'email' FROM json_array_elements((SELECT body FROM last)->'data') e WHERE e->>'id' = :'max'),
		  'max@api-a.example', 'GET /users: the caller''s own e-mail unmasked');
-- q searches names; e-mail addresses only for callers who may see them
SELECT pg_temp.api('api_users_list', '{"q": "MEMBER"}');
SELECT is((SELECT json_array_length(body->'data') FROM last), 1, 'GET /users?q=: case-insensitive substring of the name');
SELECT pg_temp.api('api_users_list', '{"q": "mia@"}');
SELECT is((SELECT json_array_length(body->'data') FROM last), 0, 'GET /users?q=: no e-mail search without users.read_pii');
SELECT pg_temp.as_user(:'root', :'a');
SELECT pg_temp.api('api_users_list', '{"q": "mia@"}');
SELECT is((SELECT json_array_length(body->'data') FROM last), 1, 'GET /users?q=: e-mail search with users.read_pii');
SELECT pg_temp.api('api_users_list', '{"q": "%"}');
SELECT is((SELECT json_array_length(body->'data') FROM last), 0, 'GET /users?q=%: LIKE wildcards are literal');
SELECT pg_temp.api('api_users_list', '{"role": "admin"}');
SELECT is((SELECT body->'data'->0->>'id' FROM last), :'root', 'GET /users?role=admin');
SELECT is((SELECT json_array_length(body->'data') FROM last), 1, 'GET /users?role=admin: only admins');
SELECT pg_temp.api('api_users_list', '{"department": "Sales"}');
SELECT is((SELECT body->'data'->0->>'id' FROM last), :'mia', 'GET /users?department=');
SELECT pg_temp.api('api_users_list', '{"is_active": false}');
SELECT is((SELECT array_agg(e->>'id') FROM json_array_elements((SELECT body FROM last)->'data') e), ARRAY[:'ina'], 'GET /users?is_active=false');
SELECT pg_temp.api('api_users_list', '{"created_after": "2026-01-03T12:00:00Z", "created_before": "2026-01-05T12:00:00Z"}');
SELECT is((SELECT array_agg(e->>'id' ORDER BY e->>'created_at') FROM json_array_elements((SELECT body FROM last)->'data') e),
		  ARRAY[:'aud', :'ina'], 'GET /users?created_after=&created_before= (exclusive)');
SELECT pg_temp.fails('api_users_list', '{"created_after": "yesterday"}', NULL, 'IA400', NULL, 'GET /users?created_after=garbage: IA400');
SELECT pg_temp.fails('api_users_list', '{"sort": "password_hash"}', NULL, 'IA400', 'sort must be one of created_at, name, email', 'GET /users?sort=unknown: IA400');
SELECT pg_temp.fails('api_users_list', '{"order": "sideways"}', NULL, 'IA400', NULL, 'GET /users?order=unknown: IA400');
SELECT pg_temp.fails('api_users_list', '{"limit": 0}', NULL, 'IA400', 'limit must be between 1 and 200', 'GET /users?limit=0: IA400');
SELECT pg_temp.fails('api_users_list', '{"limit": 201}', NULL, 'IA400', NULL, 'GET /users?limit=201: IA400');
SELECT pg_temp.fails('api_users_list', '{"limit": 9999999999}', NULL, 'IA400', NULL, 'GET /users?limit=9999999999: IA400');

-- pagination by name, both ways: pages join up to the full list, Link and cursor agree
CREATE TEMP TABLE pages (sort text, ord text, page int, ids text[], cursor text, link text);
DO $$
DECLARE
	s text;
	o text;
	p jsonb;
	n int;
	r iam.api_response;
BEGIN
	FOREACH s IN ARRAY ARRAY['name', 'email', 'created_at'] LOOP
		FOREACH o IN ARRAY ARRAY['asc', 'desc'] LOOP
			p := jsonb_build_object('sort', s, 'order', o, 'limit', 2);
			n := 0;
			LOOP
				n := n + 1;
				r := iam.api_users_list(p, NULL);
				INSERT INTO pages VALUES (s, o, n, ARRAY(SELECT e->>'id' FROM json_array_elements(r.body->'data') e),
										  r.body->>'next_cursor', r.headers->>'Link');
				EXIT WHEN r.body->>'next_cursor' IS NULL OR n > 10;
				p := p || jsonb_build_object('cursor', r.body->>'next_cursor');
			END LOOP;
		END LOOP;
	END LOOP;
END
$$;
SELECT is((SELECT count(*) FROM pages WHERE sort = 'name' AND ord = 'asc'), 3::bigint, 'GET /users?sort=name&limit=2: 3 pages of 6 users');
SELECT is((SELECT array_agg(i ORDER BY page, o) FROM pages, unnest(ids) WITH ORDINALITY AS x(i, o) WHERE sort = 'name' AND ord = 'asc'),
		  (SELECT array_agg(id::text ORDER BY lower(name), id) FROM iam.users WHERE org_id = :'a' AND deleted_at IS NULL),
		  'GET /users?sort=name: pages join up to the list by name');
SELECT is((SELECT array_agg(i ORDER BY page, o) FROM pages, unnest(ids) WITH ORDINALITY AS x(i, o) WHERE sort = 'email' AND ord = 'desc'),
		  (SELECT array_agg(id::text ORDER BY lower(email) DESC, id DESC) FROM iam.users WHERE org_id = :'a' AND deleted_at IS NULL),
		  'GET /users?sort=email&order=desc: pages join up to the list');
SELECT is((SELECT array_agg(i ORDER BY page, o) FROM pages, unnest(ids) WITH ORDINALITY AS x(i, o) WHERE sort = 'created_at' AND ord = 'desc'),
		  ARRAY[:'nob', :'max', :'ina', :'aud', :'mia', :'root'],
		  'GET /users?sort=created_at&order=desc: pages join up to the list');
SELECT is((SELECT link FROM pages WHERE sort = 'name' AND ord = 'asc' AND page = 1),
		  format('</api/v1/users?sort=name&order=asc&limit=2&cursor=%s>; rel="next"',
				 (SELECT cursor FROM pages WHERE sort = 'name' AND ord = 'asc' AND page = 1)),
		  'GET /users: Link rel="next" repeats the query with the next cursor');
SELECT ok((SELECT cursor IS NULL AND link IS NULL FROM pages WHERE sort = 'name' AND ord = 'asc' AND page = 3),
		  'GET /users: the last page has neither next_cursor nor Link');
SELECT ok((SELECT bool_and(cursor ~ '^[A-Za-z0-9_-]+$') FROM pages WHERE cursor IS NOT NULL), 'cursors are base64url');
SELECT pg_temp.fails('api_users_list',
	jsonb_build_object('sort', 'email', 'limit', 2, 'cursor', (SELECT cursor FROM pages WHERE sort = 'name' AND ord = 'asc' AND page = 1)),
	NULL, 'IA400', 'invalid cursor', 'GET /users: a cursor of another sort: IA400');
SELECT pg_temp.fails('api_users_list', '{"cursor": "!!!"}', NULL, 'IA400', 'invalid cursor', 'GET /users: malformed cursor: IA400');
SELECT pg_temp.fails('api_users_list', '{"cursor": "bm90IGpzb24"}', NULL, 'IA400', 'invalid cursor', 'GET /users: cursor that is not JSON: IA400');
SELECT pg_temp.fails('api_users_list',
	jsonb_build_object('cursor', rtrim(translate(encode(convert_to('{"s": "users:created_at:asc", "v": "not a time", "id": "' || :'mia' || '"}', 'UTF8'), 'base64'), E'+/\n', '-_'), '=')),
	NULL, 'IA400', 'invalid cursor', 'GET /users: tampered cursor value: IA400');
SELECT pg_temp.fails('api_users_list',
	jsonb_build_object('cursor', rtrim(translate(encode(convert_to('{"s": "users:created_at:asc", "v": "2026-01-01T00:00:00Z", "id": "x''; DROP TABLE x"}', 'UTF8'), 'base64'), E'+/\n', '-_'), '=')),
	NULL, 'IA400', 'invalid cursor', 'GET /users: tampered cursor id: IA400');

------------------------------------------------------------------------------
-- POST /users
------------------------------------------------------------------------------
SELECT pg_temp.as_user(:'mia', :'a');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "new@api-a.example", "name": "New"}', 'IA403', NULL, 'POST /users without users.create: IA403');
SELECT pg_temp.as_user(:'root', :'a');
SELECT is(pg_temp.api('api_users_create', '{}', '{"email": "New@api-a.example", "name": "New User", "department": "Ops", "phone": "+1 555 0199", "password": "a long enough passphrase", "metadata": {"k": 1}}'),
		  201, 'POST /users: 201');
SELECT pg_temp.body()->>'id' AS new_user \gset
SELECT is((SELECT headers->>'Location' FROM last), '/api/v1/users/' || :'new_user', 'POST /users: Location');
SELECT ok((SELECT headers->>'ETag' ~ '^"[0-9a-f]{32}"$' FROM last), 'POST /users: ETag');
SELECT is((SELECT org_id FROM iam.users WHERE id = :'new_user'), :'a'::uuid, 'POST /users: in the caller''s organisation');
SELECT ok((SELECT password_hash LIKE '$argon2id$%' FROM iam.users WHERE id = :'new_user'), 'POST /users: password hashed');
SELECT is((SELECT count(*) FROM iam.audit_logs WHERE entity_id = :'new_user' AND action = 'user.created' AND user_id = :'root'),
		  1::bigint, 'POST /users: audited as the caller');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "NEW@api-a.example", "name": "Again"}', 'IA409', 'email: a user with this e-mail address already exists', 'POST /users: e-mail taken (any case): IA409');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "bob@api-b.example", "name": "Bob Again"}', 'IA409', NULL, 'POST /users: e-mail taken in another organisation: IA409');
SELECT pg_temp.fails('api_users_create', '{}', '{"name": "No Mail"}', 'IA422', 'email: is required', 'POST /users: email missing: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "not-an-address", "name": "X"}', 'IA422', 'email: must be an e-mail address', 'POST /users: bad email: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "x1@api-a.example", "name": "  "}', 'IA422', 'name: must not be empty', 'POST /users: blank name: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "x1@api-a.example", "name": "X", "phone": "call me"}', 'IA422', 'phone: must be a phone number', 'POST /users: bad phone: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "x1@api-a.example", "name": "X", "is_admin": true}', 'IA422', 'is_admin: unknown field', 'POST /users: unknown field: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "x1@api-a.example", "name": "X", "org_id": "00000000-0000-0000-0000-000000000000"}', 'IA422', 'org_id: unknown field', 'POST /users: org_id refused: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '["x"]', 'IA422', 'the request body must be a JSON object', 'POST /users: body not an object: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "x1@api-a.example", "name": "X", "password": "short"}', 'IA422', 'password: password is too short', 'POST /users: weak password: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "x1@api-a.example", "name": "X", "role": "buyer"}', 'IA422', 'role: unknown role', 'POST /users: role of another organisation: IA422');
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "x1@api-a.example", "name": "X", "is_active": "yes"}', 'IA422', 'is_active: must be true or false', 'POST /users: is_active not a boolean: IA422');
SELECT pg_temp.as_user(:'max', :'a');
SELECT pg_temp.attempts() AS attempts_before \gset
SELECT pg_temp.fails('api_users_create', '{}', '{"email": "boss@api-a.example", "name": "Boss", "role": "admin"}', 'IA403', NULL, 'POST /users with a role the caller cannot give: IA403');
SELECT cmp_ok(pg_temp.attempts(), '>', :attempts_before::bigint, 'POST /users: the escalation attempt is recorded');
SELECT is(pg_temp.api('api_users_create', '{}', '{"email": "helper@api-a.example", "name": "Helper", "role": "manager"}'), 201,
		  'POST /users with a role whose permissions the caller holds: 201');

------------------------------------------------------------------------------
-- GET /users/{id}
------------------------------------------------------------------------------
SELECT pg_temp.as_user(:'mia', :'a');
SELECT is(pg_temp.api('api_users_get', pg_temp.id(:'root')), 200, 'GET /users/{id}: 200');
SELECT is(pg_temp.body()->>'email', 'r***@api-a.example', 'GET /users/{id}: masked');
SELECT is((SELECT headers->>'ETag' FROM last), (SELECT iam.api_user_etag(u) FROM iam.users u WHERE id = :'root'), 'GET /users/{id}: ETag');
SELECT pg_temp.fails('api_users_get', pg_temp.id(:'bob'), NULL, 'IA404', 'user not found', 'GET /users/{id} of another organisation: IA404');
SELECT pg_temp.fails('api_users_get', pg_temp.id(gen_random_uuid()), NULL, 'IA404', 'user not found', 'GET /users/{id} absent: IA404');
SELECT pg_temp.fails('api_users_get', pg_temp.id(:'gone'), NULL, 'IA404', 'user not found', 'GET /users/{id} deleted: IA404');
SELECT pg_temp.fails('api_users_get', '{"id": "1; DROP TABLE iam.users"}', NULL, 'IA404', 'not found', 'GET /users/{id} malformed: IA404');
SELECT pg_temp.as_user(:'nob', :'a');
SELECT pg_temp.fails('api_users_get', pg_temp.id(:'root'), NULL, 'IA403', NULL, 'GET /users/{id} without users.read: IA403');

------------------------------------------------------------------------------
-- PATCH /users/{id}: merge patch, If-Match, escalation guard
------------------------------------------------------------------------------
SELECT pg_temp.as_user(:'root', :'a');
SELECT iam.api_user_etag(u) AS new_etag FROM iam.users u WHERE id = :'new_user' \gset
SELECT is(pg_temp.api('api_users_update', pg_temp.id(:'new_user') || jsonb_build_object('if_match', :'new_etag'),
					  '{"name": "Renamed", "phone": null, "metadata": {"k": null, "b": {"c": 2}}}'), 200, 'PATCH /users/{id} with the current ETag: 200');
SELECT is((SELECT jsonb_build_object('name', name, 'phone', phone, 'department', department, 'metadata', metadata) FROM iam.users WHERE id = :'new_user'),
		  '{"name": "Renamed", "phone": null, "department": "Ops", "metadata": {"b": {"c": 2}}}',
		  'PATCH /users/{id}: merge patch (set, null removes, absent keeps, objects merge)');
SELECT isnt((SELECT headers->>'ETag' FROM last), :'new_etag', 'PATCH /users/{id}: a new ETag');
SELECT is((SELECT body->>'name' FROM last), 'Renamed', 'PATCH /users/{id}: returns the user');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'new_user') || jsonb_build_object('if_match', :'new_etag'), '{"name": "Lost Update"}',
					 'IA412', NULL, 'PATCH /users/{id} with an old ETag: IA412');
SELECT is(pg_temp.api('api_users_update', pg_temp.id(:'new_user') || '{"if_match": "*"}', '{"metadata": null}'), 200, 'PATCH /users/{id} If-Match *: 200');
SELECT is((SELECT metadata FROM iam.users WHERE id = :'new_user'), '{}'::jsonb, 'PATCH /users/{id}: metadata null empties it');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'new_user'), '{"name": null}', 'IA422', 'name: cannot be removed', 'PATCH /users/{id}: removing name: IA422');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'new_user'), '{"id": "00000000-0000-0000-0000-000000000000"}', 'IA422', 'id: cannot be changed', 'PATCH /users/{id}: immutable field: IA422');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'new_user'), '{"password_hash": "x"}', 'IA422', 'password_hash: cannot be changed', 'PATCH /users/{id}: password_hash: IA422');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'new_user'), '{"nickname": "x"}', 'IA422', 'nickname: unknown field', 'PATCH /users/{id}: unknown field: IA422');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'new_user'), '{"email": "MIA@api-a.example"}', 'IA409', NULL, 'PATCH /users/{id}: e-mail taken: IA409');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'root'), '{"is_active": false}', 'IA409', 'you cannot deactivate yourself', 'PATCH /users/{id}: deactivating oneself: IA409');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'bob'), '{"name": "Hijack"}', 'IA404', NULL, 'PATCH /users/{id} of another organisation: IA404');
SELECT is((SELECT name FROM iam.users WHERE id = :'bob'), 'Bob Other', 'PATCH /users/{id} of another organisation changes nothing');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'new_user'), '{"role": "buyer"}', 'IA422', 'role: unknown role', 'PATCH /users/{id}: role of another organisation: IA422');
SELECT pg_temp.as_user(:'mia', :'a');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'new_user'), '{"name": "X"}', 'IA403', NULL, 'PATCH /users/{id} without users.update: IA403');
SELECT pg_temp.as_user(:'max', :'a');
SELECT pg_temp.attempts() AS attempts_before \gset
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'max'), '{"role": "admin"}', 'IA403', NULL, 'PATCH /users/{id}: giving oneself admin: IA403');
SELECT pg_temp.fails('api_users_update', pg_temp.id(:'mia'), '{"role": "auditor"}', 'IA403', NULL, 'PATCH /users/{id}: giving a role with permissions the caller lacks: IA403');
SELECT is(pg_temp.attempts(), :attempts_before::bigint + 2, 'PATCH /users/{id}: both escalation attempts recorded');
SELECT is((SELECT role FROM iam.users WHERE id = :'max'), 'manager', 'PATCH /users/{id}: the refused role change changed nothing');
SELECT is(pg_temp.api('api_users_update', pg_temp.id(:'mia'), '{"role": "manager", "department": null}'), 200, 'PATCH /users/{id}: a role the caller may give: 200');
SELECT ok(iam.has_permission(:'mia', 'roles.manage'), 'PATCH /users/{id}: the new role counts at once');
SELECT pg_temp.as_user(:'root', :'a');
SELECT is(pg_temp.api('api_users_update', pg_temp.id(:'mia'), '{"role": "member"}'), 200, 'PATCH /users/{id}: role back');

------------------------------------------------------------------------------
-- DELETE /users/{id} and POST /users/{id}/restore
------------------------------------------------------------------------------
INSERT INTO iam.user_sessions (user_id, org_id, expires_at) VALUES (:'new_user', :'a', now() + interval '1 hour');
SELECT pg_temp.as_user(:'max', :'a');
SELECT pg_temp.fails('api_users_delete', pg_temp.id(:'new_user'), NULL, 'IA403', NULL, 'DELETE /users/{id} without users.delete: IA403');
SELECT pg_temp.as_user(:'root', :'a');
SELECT pg_temp.fails('api_users_delete', pg_temp.id(:'root'), NULL, 'IA409', 'you cannot delete yourself', 'DELETE /users/{id} oneself: IA409');
SELECT pg_temp.fails('api_users_delete', pg_temp.id(:'bob'), NULL, 'IA404', NULL, 'DELETE /users/{id} of another organisation: IA404');
SELECT pg_temp.fails('api_users_delete', pg_temp.id(:'new_user') || '{"if_match": "\"stale\""}', NULL, 'IA412', NULL, 'DELETE /users/{id} with a stale If-Match: IA412');
SELECT is(pg_temp.api('api_users_delete', pg_temp.id(:'new_user')), 204, 'DELETE /users/{id}: 204');
SELECT ok((SELECT body IS NULL AND headers IS NULL FROM last), 'DELETE /users/{id}: no body');
SELECT ok((SELECT deleted_at IS NOT NULL AND NOT is_active FROM iam.users WHERE id = :'new_user'), 'DELETE /users/{id}: soft delete');
SELECT ok((SELECT bool_and(revoked_at IS NOT NULL) FROM iam.user_sessions WHERE user_id = :'new_user'), 'DELETE /users/{id}: sessions revoked');
SELECT pg_temp.fails('api_users_get', pg_temp.id(:'new_user'), NULL, 'IA404', NULL, 'GET /users/{id} after delete: IA404');
SELECT pg_temp.fails('api_users_delete', pg_temp.id(:'new_user'), NULL, 'IA404', NULL, 'DELETE /users/{id} twice: IA404');
SELECT pg_temp.fails('api_users_restore', pg_temp.id(:'mia'), NULL, 'IA409', 'the user is not deleted', 'POST /users/{id}/restore of a live user: IA409');
SELECT pg_temp.fails('api_users_restore', pg_temp.id(:'bob'), NULL, 'IA404', NULL, 'POST /users/{id}/restore of another organisation: IA404');
SELECT is(pg_temp.api('api_users_restore', pg_temp.id(:'new_user')), 200, 'POST /users/{id}/restore: 200');
SELECT ok((SELECT deleted_at IS NULL AND is_active FROM iam.users WHERE id = :'new_user'), 'POST /users/{id}/restore: active again');
SELECT pg_temp.as_user(:'max', :'a');
SELECT pg_temp.fails('api_users_restore', pg_temp.id(:'new_user'), NULL, 'IA403', NULL, 'POST /users/{id}/restore without users.delete: IA403');

------------------------------------------------------------------------------
-- GET /users/{id}/permissions, POST /users/{id}/roles, DELETE /users/{id}/roles/{role}
------------------------------------------------------------------------------
SELECT pg_temp.as_user(:'mia', :'a');
SELECT is(pg_temp.api('api_users_permissions', pg_temp.id(:'max')), 200, 'GET /users/{id}/permissions: 200');
SELECT ok(pg_temp.body()->'permissions' ? 'roles.manage' AND pg_temp.body()->'roles' ? 'manager', 'GET /users/{id}/permissions: roles and permissions');
SELECT pg_temp.fails('api_users_permissions', pg_temp.id(:'bob'), NULL, 'IA404', NULL, 'GET /users/{id}/permissions of another organisation: IA404');
SELECT pg_temp.fails('api_users_roles_grant', pg_temp.id(:'mia'), '{"role": "auditor"}', 'IA403', NULL, 'POST /users/{id}/roles without roles.manage: IA403');
SELECT pg_temp.as_user(:'root', :'a');
SELECT is(pg_temp.api('api_users_roles_grant', pg_temp.id(:'mia'), '{"role": "auditor"}'), 201, 'POST /users/{id}/roles: 201');
SELECT is((SELECT headers->>'Location' FROM last), '/api/v1/users/' || :'mia' || '/roles/auditor', 'POST /users/{id}/roles: Location');
SELECT ok(iam.has_permission(:'mia', 'audit.read'), 'POST /users/{id}/roles: granted');
SELECT is(pg_temp.api('api_users_roles_grant', pg_temp.id(:'mia'), jsonb_build_object('role', 'auditor', 'expires_at', '2099-01-01T00:00:00Z')), 200,
		  'POST /users/{id}/roles again: 200');
SELECT is(pg_temp.body()->>'expires_at', '2099-01-01T00:00:00.000000Z', 'POST /users/{id}/roles: expiry updated');
SELECT pg_temp.fails('api_users_roles_grant', pg_temp.id(:'mia'), '{"role": "ghost"}', 'IA422', 'role: unknown role', 'POST /users/{id}/roles: unknown role: IA422');
SELECT pg_temp.fails('api_users_roles_grant', pg_temp.id(:'mia'), '{"role": "buyer"}', 'IA422', 'role: unknown role', 'POST /users/{id}/roles: role of another organisation: IA422');
SELECT pg_temp.fails('api_users_roles_grant', pg_temp.id(:'mia'), '{"role": "auditor", "expires_at": "2000-01-01T00:00:00Z"}', 'IA422', 'expires_at: must be in the future', 'POST /users/{id}/roles: past expiry: IA422');
SELECT pg_temp.fails('api_users_roles_grant', pg_temp.id(:'mia'), '{"role": "auditor", "expires_at": "soon"}', 'IA422', NULL, 'POST /users/{id}/roles: malformed expiry: IA422');
SELECT pg_temp.fails('api_users_roles_grant', pg_temp.id(:'mia'), '{"role": "auditor", "why": "x"}', 'IA422', 'why: unknown field', 'POST /users/{id}/roles: unknown field: IA422');
SELECT pg_temp.fails('api_users_roles_grant', pg_temp.id(:'bob'), '{"role": "auditor"}', 'IA404', NULL, 'POST /users/{id}/roles for another organisation''s user: IA404');
SELECT pg_temp.as_user(:'max', :'a');
SELECT pg_temp.attempts() AS attempts_before \gset
SELECT pg_temp.fails('api_users_roles_grant', pg_temp.id(:'nob'), '{"role": "admin"}', 'IA403', NULL, 'POST /users/{id}/roles: escalation refused: IA403');
SELECT cmp_ok(pg_temp.attempts(), '>', :attempts_before::bigint, 'POST /users/{id}/roles: escalation recorded');
SELECT pg_temp.as_user(:'root', :'a');
SELECT is(pg_temp.api('api_users_roles_revoke', pg_temp.id(:'mia') || '{"role": "auditor"}'), 204, 'DELETE /users/{id}/roles/{role}: 204');
SELECT ok(NOT iam.has_permission(:'mia', 'audit.read'), 'DELETE /users/{id}/roles/{role}: revoked');
SELECT pg_temp.fails('api_users_roles_revoke', pg_temp.id(:'mia') || '{"role": "auditor"}', NULL, 'IA404', NULL, 'DELETE /users/{id}/roles/{role} not held: IA404');
SELECT pg_temp.fails('api_users_roles_revoke', pg_temp.id(:'bob') || '{"role": "admin"}', NULL, 'IA404', NULL, 'DELETE /users/{id}/roles/{role} of another organisation: IA404');
SELECT pg_temp.as_user(:'mia', :'a');
SELECT pg_temp.fails('api_users_roles_revoke', pg_temp.id(:'max') || '{"role": "manager"}', NULL, 'IA403', NULL, 'DELETE /users/{id}/roles/{role} without roles.manage: IA403');

------------------------------------------------------------------------------
-- roles
------------------------------------------------------------------------------
SELECT pg_temp.as_user(:'nob', :'a');
SELECT pg_temp.fails('api_roles_list', '{}', NULL, 'IA403', NULL, 'GET /roles without roles.read: IA403');
SELECT pg_temp.as_user(:'mia', :'a');
SELECT is(pg_temp.api('api_roles_list'), 200, 'GET /roles: 200');
SELECT is((SELECT array_agg(e->>'name' ORDER BY e->>'name') FROM json_array_elements((SELECT body FROM last)->'data') e),
		  ARRAY['admin', 'auditor', 'manager', 'member', 'nobody'], 'GET /roles: system roles and the organisation''s, not another''s');
SELECT pg_temp.fails('api_roles_create', '{}', '{"name": "editor"}', 'IA403', NULL, 'POST /roles without roles.manage: IA403');
SELECT pg_temp.as_user(:'max', :'a');
SELECT is(pg_temp.api('api_roles_create', '{}', '{"name": "editor", "description": "Edits", "permissions": ["users.read", "users.update"]}'), 201, 'POST /roles: 201');
SELECT pg_temp.body()->>'id' AS editor \gset
SELECT is((SELECT headers->>'Location' FROM last), '/api/v1/roles/' || :'editor', 'POST /roles: Location');
SELECT is(pg_temp.body()->'permissions', '["users.read", "users.update"]', 'POST /roles: with its permissions');
SELECT is(pg_temp.body()->>'display_name', 'editor', 'POST /roles: display_name defaults to the name');
SELECT pg_temp.fails('api_roles_create', '{}', '{"name": "editor"}', 'IA409', 'name: a role with this name already exists', 'POST /roles: name taken: IA409');
SELECT pg_temp.fails('api_roles_create', '{}', '{"name": "admin"}', 'IA409', NULL, 'POST /roles: system role name: IA409');
SELECT is(pg_temp.api('api_roles_create', '{}', '{"name": "buyer"}'), 201, 'POST /roles: a name used by another organisation is free');
SELECT pg_temp.fails('api_roles_create', '{}', '{"name": "Bad Name"}', 'IA422', NULL, 'POST /roles: malformed name: IA422');
SELECT pg_temp.fails('api_roles_create', '{}', '{"name": "x1", "permissions": ["users.read", "no.such"]}', 'IA422', 'permissions[1]: unknown permission', 'POST /roles: unknown permission: IA422');
SELECT pg_temp.fails('api_roles_create', '{}', '{"name": "x1", "permissions": "users.read"}', 'IA422', NULL, 'POST /roles: permissions not an array: IA422');
SELECT pg_temp.attempts() AS attempts_before \gset
SELECT pg_temp.fails('api_roles_create', '{}', '{"name": "x1", "permissions": ["users.delete"]}', 'IA403', NULL, 'POST /roles: a permission the caller lacks: IA403');
SELECT cmp_ok(pg_temp.attempts(), '>', :attempts_before::bigint, 'POST /roles: escalation recorded');
SELECT ok(NOT EXISTS (SELECT FROM iam.roles WHERE name = 'x1'), 'POST /roles: the refused role was not created');

SELECT is(pg_temp.api('api_roles_get', pg_temp.id(:'admin_role')), 200, 'GET /roles/{id}: a system role');
SELECT pg_temp.fails('api_roles_get', pg_temp.id(:'buyer_role'), NULL, 'IA404', 'role not found', 'GET /roles/{id} of another organisation: IA404');
SELECT pg_temp.fails('api_roles_get', pg_temp.id(gen_random_uuid()), NULL, 'IA404', 'role not found', 'GET /roles/{id} absent: IA404');
SELECT is(pg_temp.api('api_roles_get', pg_temp.id(:'editor')), 200, 'GET /roles/{id}: 200');
SELECT (SELECT headers->>'ETag' FROM last) AS editor_etag \gset

-- a rename carries the role's holders along
SELECT iam.create_user(:'a', 'ed@api-a.example', 'Ed Editor', 'editor', NULL) AS ed \gset
SELECT is(pg_temp.api('api_roles_update', pg_temp.id(:'editor') || jsonb_build_object('if_match', :'editor_etag'),
					  '{"name": "writer", "description": null}'), 200, 'PATCH /roles/{id}: 200');
SELECT is((SELECT role FROM iam.users WHERE id = :'ed'), 'writer', 'PATCH /roles/{id}: users of the renamed role follow it');
SELECT ok(iam.has_permission(:'ed', 'users.update'), 'PATCH /roles/{id}: and keep its permissions');
SELECT is((SELECT description FROM iam.roles WHERE id = :'editor'), NULL, 'PATCH /roles/{id}: null removes the description');
SELECT pg_temp.fails('api_roles_update', pg_temp.id(:'editor') || jsonb_build_object('if_match', :'editor_etag'), '{"name": "other"}', 'IA412', NULL, 'PATCH /roles/{id} with an old ETag: IA412');
SELECT pg_temp.fails('api_roles_update', pg_temp.id(:'admin_role'), '{"name": "boss"}', 'IA409', 'system roles cannot be changed', 'PATCH /roles/{id} of a system role: IA409');
SELECT pg_temp.fails('api_roles_update', pg_temp.id(:'editor'), '{"name": "manager"}', 'IA409', NULL, 'PATCH /roles/{id}: name taken: IA409');
SELECT pg_temp.fails('api_roles_update', pg_temp.id(:'editor'), '{"display_name": null}', 'IA422', 'display_name: cannot be removed', 'PATCH /roles/{id}: display_name null: IA422');
SELECT pg_temp.fails('api_roles_update', pg_temp.id(:'editor'), '{"is_system": true}', 'IA422', 'is_system: cannot be changed', 'PATCH /roles/{id}: immutable field: IA422');
SELECT pg_temp.fails('api_roles_update', pg_temp.id(:'buyer_role'), '{"name": "seller"}', 'IA404', NULL, 'PATCH /roles/{id} of another organisation: IA404');

SELECT is(pg_temp.api('api_roles_permissions_set', pg_temp.id(:'editor'), '{"permissions": ["users.read"]}'), 200, 'PUT /roles/{id}/permissions: 200');
SELECT is(pg_temp.body()->'permissions', '["users.read"]', 'PUT /roles/{id}/permissions: replaced');
SELECT pg_temp.fails('api_roles_permissions_set', pg_temp.id(:'editor'), '{"permissions": ["users.delete"]}', 'IA403', NULL, 'PUT /roles/{id}/permissions: escalation refused: IA403');
SELECT pg_temp.fails('api_roles_permissions_set', pg_temp.id(:'admin_role'), '{"permissions": []}', 'IA409', NULL, 'PUT /roles/{id}/permissions of a system role: IA409');
SELECT pg_temp.fails('api_roles_permissions_set', pg_temp.id(:'buyer_role'), '{"permissions": []}', 'IA404', NULL, 'PUT /roles/{id}/permissions of another organisation: IA404');
SELECT pg_temp.fails('api_roles_permissions_set', pg_temp.id(:'editor'), '{"permissions": [1]}', 'IA422', 'permissions[0]: must be a string', 'PUT /roles/{id}/permissions: not a name: IA422');

SELECT pg_temp.fails('api_roles_delete', pg_temp.id(:'admin_role'), NULL, 'IA409', 'system roles cannot be deleted', 'DELETE /roles/{id} of a system role: IA409');
SELECT pg_temp.fails('api_roles_delete', pg_temp.id(:'editor'), NULL, 'IA409', 'the role is the primary role of 1 user(s)', 'DELETE /roles/{id} in use: IA409');
SELECT pg_temp.fails('api_roles_delete', pg_temp.id(:'buyer_role'), NULL, 'IA404', NULL, 'DELETE /roles/{id} of another organisation: IA404');
UPDATE iam.users SET role = 'member' WHERE id = :'ed';
SELECT is(pg_temp.api('api_roles_delete', pg_temp.id(:'editor')), 204, 'DELETE /roles/{id}: 204');
SELECT ok(NOT EXISTS (SELECT FROM iam.roles WHERE id = :'editor'), 'DELETE /roles/{id}: gone');
SELECT pg_temp.as_user(:'mia', :'a');
SELECT pg_temp.fails('api_roles_delete', pg_temp.id(:'manager_role'), NULL, 'IA403', NULL, 'DELETE /roles/{id} without roles.manage: IA403');

------------------------------------------------------------------------------
-- GET /permissions, POST /authz/check
------------------------------------------------------------------------------
SELECT is(pg_temp.api('api_permissions_list'), 200, 'GET /permissions: 200');
SELECT is((SELECT json_array_length(body->'data') FROM last), (SELECT count(*)::int FROM iam.permissions), 'GET /permissions: the catalogue');
SELECT pg_temp.as_user(:'nob', :'a');
SELECT pg_temp.fails('api_permissions_list', '{}', NULL, 'IA403', NULL, 'GET /permissions without roles.read: IA403');

SELECT pg_temp.as_user(:'mia', :'a');
SELECT is(pg_temp.api('api_authz_check', '{}', '{"permissions": ["users.read", "users.delete", "no.such", "Bad Name", "users.read"]}'), 200, 'POST /authz/check: 200');
SELECT is(pg_temp.body(), '{"results": {"users.read": true, "users.delete": false, "no.such": false, "Bad Name": false}}',
		  'POST /authz/check: one answer per name, unknown and malformed names false');
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type, resource_id)
	SELECT :'mia', id, 'document', '11111111-1111-1111-1111-111111111111' FROM iam.permissions WHERE name = 'users.update';
SELECT pg_temp.api('api_authz_check', '{}', '{"permissions": ["users.update", "users.read"], "resource": {"type": "document", "id": "11111111-1111-1111-1111-111111111111"}}');
SELECT is(pg_temp.body(), '{"results": {"users.update": true, "users.read": true}}', 'POST /authz/check with a resource: scoped grants count');
SELECT pg_temp.api('api_authz_check', '{}', '{"permissions": ["users.update"], "resource": {"type": "document", "id": "22222222-2222-2222-2222-222222222222"}}');
SELECT is(pg_temp.body(), '{"results": {"users.update": false}}', 'POST /authz/check with another resource: false');
SELECT pg_temp.fails('api_authz_check', '{}', '{"permissions": []}', 'IA422', 'permissions: must be an array of 1 to 100 permission names', 'POST /authz/check: empty list: IA422');
SELECT pg_temp.fails('api_authz_check', '{}', jsonb_build_object('permissions', (SELECT jsonb_agg('users.read'::text) FROM generate_series(1, 101))),
					 'IA422', NULL, 'POST /authz/check: 101 names: IA422');
SELECT pg_temp.fails('api_authz_check', '{}', '{"permissions": ["users.read", 1]}', 'IA422', NULL, 'POST /authz/check: a name that is not a string: IA422');
SELECT pg_temp.fails('api_authz_check', '{}', NULL, 'IA422', NULL, 'POST /authz/check: no body: IA422');
SELECT pg_temp.fails('api_authz_check', '{}', '{"permissions": ["users.read"], "user_id": "x"}', 'IA422', 'user_id: unknown field', 'POST /authz/check: unknown field: IA422');
SELECT pg_temp.fails('api_authz_check', '{}', '{"permissions": ["users.read"], "resource": {"type": "document", "id": "nope"}}', 'IA422', NULL, 'POST /authz/check: bad resource: IA422');

------------------------------------------------------------------------------
-- audit and activity logs
------------------------------------------------------------------------------
SELECT pg_temp.as_user(:'mia', :'a');
SELECT pg_temp.fails('api_audit_logs_list', '{}', NULL, 'IA403', 'permission denied: this requires audit.read', 'GET /audit-logs without audit.read: IA403');
SELECT pg_temp.fails('api_audit_logs_verify', '{}', NULL, 'IA403', NULL, 'GET /audit-logs/verify without audit.read: IA403');
SELECT pg_temp.fails('api_activity_logs_list', '{}', NULL, 'IA403', NULL, 'GET /activity-logs without activity.read: IA403');
SELECT pg_temp.as_user(:'aud', :'a');
SELECT is(pg_temp.api('api_audit_logs_list', jsonb_build_object('entity_id', :'new_user', 'action', 'user.created')), 200, 'GET /audit-logs: 200');
SELECT is((SELECT json_array_length(body->'data') FROM last), 1, 'GET /audit-logs?entity_id=&action=: filtered');
SELECT is(pg_temp.body()->'data'->0->'changes'->'email'->>'new', 'N***@api-a.example', 'GET /audit-logs: e-mail inside changes masked without users.read_pii');
SELECT is(pg_temp.body()->'data'->0->>'actor', :'root', 'GET /audit-logs: the actor');
SELECT pg_temp.api('api_audit_logs_list', jsonb_build_object('entity_id', :'bob'));
SELECT is((SELECT json_array_length(body->'data') FROM last), 0, 'GET /audit-logs: nothing of another organisation');
SELECT pg_temp.api('api_audit_logs_list', jsonb_build_object('actor', :'root', 'limit', 3));
SELECT pg_temp.body()->>'next_cursor' AS audit_cursor \gset
SELECT ok((SELECT headers->>'Link' LIKE '</api/v1/audit-logs?actor=' || :'root' || '&limit=3&cursor=%>; rel="next"' FROM last), 'GET /audit-logs: Link');
SELECT (SELECT array_agg(e->>'id') FROM json_array_elements((SELECT body FROM last)->'data') e) AS audit_page1 \gset
SELECT pg_temp.api('api_audit_logs_list', jsonb_build_object('actor', :'root', 'limit', 3, 'cursor', :'audit_cursor'));
SELECT is((SELECT count(*) FROM json_array_elements((SELECT body FROM last)->'data') e WHERE e->>'id' = ANY (:'audit_page1'::text[])),
		  0::bigint, 'GET /audit-logs: the next page does not repeat the first');
SELECT ok((SELECT bool_and((e->>'created_at')::timestamptz <= (SELECT max(created_at) FROM iam.audit_logs WHERE id::text = ANY (:'audit_page1'::text[])))
		   FROM json_array_elements((SELECT body FROM last)->'data') e), 'GET /audit-logs: newest first across pages');
SELECT pg_temp.fails('api_audit_logs_list', jsonb_build_object('cursor', :'audit_cursor' || 'x'), NULL, 'IA400', 'invalid cursor', 'GET /audit-logs: tampered cursor: IA400');
SELECT pg_temp.fails('api_audit_logs_list', '{"actor": "me"}', NULL, 'IA400', NULL, 'GET /audit-logs: malformed actor: IA400');
SELECT is(pg_temp.api('api_audit_logs_verify'), 200, 'GET /audit-logs/verify: 200');
SELECT is(pg_temp.body()->>'ok', 'true', 'GET /audit-logs/verify: ok');
SELECT is(pg_temp.api('api_activity_logs_list', '{"type": "privilege_escalation_attempt", "limit": 1}'), 200, 'GET /activity-logs: 200');
SELECT is(pg_temp.body()->'data'->0->>'type', 'privilege_escalation_attempt', 'GET /activity-logs?type=');
SELECT isnt(pg_temp.body()->>'next_cursor', NULL, 'GET /activity-logs: next_cursor');
SELECT pg_temp.fails('api_activity_logs_list', '{"cursor": "e30"}', NULL, 'IA400', 'invalid cursor', 'GET /activity-logs: bad cursor: IA400');

------------------------------------------------------------------------------
-- route declarations, privileges, OpenAPI
------------------------------------------------------------------------------
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
		   WHERE p.pronamespace = 'iam'::regnamespace AND p.prorettype = 'iam.api_response'::regtype
			 AND p.proname LIKE 'api\_%' AND p.proargtypes = '3802 3802'::oidvector
			 AND (SELECT count(*) FROM iam.routes r WHERE r.handler = p.oid) <> 1),
		  NULL, 'every handler-shaped iam.api_* function serves exactly one route');
SELECT count(*) AS route_count FROM iam.routes \gset
SELECT is((SELECT array_agg(handler::text ORDER BY 1) FROM iam.routes
		   WHERE handler::text !~ '^iam\.api_[a-z0-9_]+\(jsonb,jsonb\)$'
			  OR (SELECT prorettype FROM pg_proc WHERE oid = handler) <> 'iam.api_response'::regtype
			  OR NOT (SELECT prosecdef FROM pg_proc WHERE oid = handler)),
		  NULL, 'every handler is a SECURITY DEFINER iam.api_*(jsonb, jsonb) returning iam.api_response');
SELECT is((SELECT array_agg(handler::text ORDER BY 1) FROM iam.routes
		   WHERE NOT coalesce((SELECT proconfig FROM pg_proc WHERE oid = handler), '{}') @> ARRAY['search_path=pg_catalog, pg_temp']),
		  NULL, 'every handler pins search_path');
SELECT is((SELECT array_agg(handler::text ORDER BY 1) FROM iam.routes
		   WHERE has_function_privilege('public', handler, 'EXECUTE') OR has_function_privilege('iam_service', handler, 'EXECUTE')
			  OR NOT has_function_privilege('iam_gateway', handler, 'EXECUTE')),
		  NULL, 'handlers: EXECUTE for iam_gateway only');
SELECT ok(has_table_privilege('iam_gateway', 'iam.routes', 'SELECT') AND has_table_privilege('iam_gateway', 'iam.rate_limit_classes', 'SELECT')
		  AND NOT has_table_privilege('iam_gateway', 'iam.routes', 'INSERT, UPDATE, DELETE'), 'iam_gateway reads the declarations only');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
		   WHERE p.pronamespace = 'iam'::regnamespace AND p.proname LIKE 'api\_%'
			 AND p.oid NOT IN (SELECT handler FROM iam.routes) AND has_function_privilege('iam_gateway', p.oid, 'EXECUTE')),
		  NULL, 'the API helpers are not executable by iam_gateway');
SELECT is((SELECT array_agg(tgrelid::regclass::text ORDER BY tgrelid::regclass::text) FROM pg_trigger WHERE tgname = 'routes_notify'),
		  ARRAY['iam.rate_limit_classes', 'iam.routes'], 'NOTIFY iam_routes triggers on both tables');
SELECT is((SELECT array_agg(name || ':' || requests || '/' || per_seconds ORDER BY name) FROM iam.rate_limit_classes),
		  ARRAY['auth:10/60', 'default:600/60', 'expensive:30/60', 'read:1200/60', 'write:120/60'], 'rate-limit classes seeded');
SET LOCAL ROLE iam_gateway;
SELECT is((SELECT count(*) FROM (SELECT method, path, handler::regproc::text, read_only, cacheable, rate_limit_class, authenticated, query_params::text
								 FROM iam.routes) x), :route_count::bigint, 'iam_gateway reads every route');
SELECT is(pg_temp.api('api_users_me'), 200, 'iam_gateway calls a handler');
SELECT lives_ok('SELECT iam.openapi()', 'iam_gateway calls iam.openapi()');
SELECT throws_ok('SELECT iam.api_caller()', '42501', NULL, 'iam_gateway cannot call the helpers');
RESET ROLE;
SELECT throws_ok($$INSERT INTO iam.routes (method, path, handler, read_only, summary) VALUES ('GET', '/Bad Path', 'iam.api_users_me(jsonb,jsonb)', true, 'x')$$,
				 '23514', NULL, 'iam.routes: malformed path template refused');

CREATE TEMP TABLE doc AS SELECT iam.openapi()::jsonb AS d;
SELECT is((SELECT d->>'openapi' FROM doc), '3.1.0', 'openapi(): OpenAPI 3.1.0');
SELECT is((SELECT count(*) FROM doc, jsonb_each(d->'paths') p, jsonb_object_keys(p.value) m),
		  (SELECT count(*) + 4 FROM iam.routes), 'openapi(): one operation per route, plus healthz, readyz, metrics, openapi.json');
SELECT is((SELECT array_agg(r.method || ' ' || r.path ORDER BY 1) FROM iam.routes r, doc
		   WHERE d->'paths'->('/api/v1' || regexp_replace(r.path, ':[a-z]+\}', '}', 'g'))->lower(r.method)->>'operationId'
				 IS DISTINCT FROM regexp_replace((SELECT proname FROM pg_proc WHERE oid = r.handler), '^api_', '')),
		  NULL, 'openapi(): each route under /api/v1 with {id} templates and its operationId');
SELECT is((SELECT count(DISTINCT o.value->>'operationId') FROM doc, jsonb_each(d->'paths') p, jsonb_each(p.value) o),
		  (SELECT count(*) + 4 FROM iam.routes), 'openapi(): operationIds are unique');
SELECT is((SELECT d->'paths'->'/api/v1/users/{id}'->'get'->'parameters'->0 FROM doc),
		  '{"in": "path", "name": "id", "schema": {"type": "string", "format": "uuid"}, "required": true}', 'openapi(): a uuid path parameter');
SELECT is((SELECT p->'schema' FROM doc, jsonb_array_elements(d->'paths'->'/api/v1/users'->'get'->'parameters') p WHERE p->>'name' = 'sort'),
		  '{"enum": ["created_at", "name", "email"], "type": "string"}', 'openapi(): an enum query parameter');
SELECT is((SELECT d->'paths'->'/api/v1/users'->'post'->'requestBody'->'content'->'application/json'->'schema'->'required' FROM doc),
		  '["email", "name"]', 'openapi(): the request body schema');
SELECT is((SELECT d->'paths'->'/api/v1/users/{id}'->'get'->'responses'->'404'->>'$ref' FROM doc),
		  '#/components/responses/NotFound', 'openapi(): problem responses by reference');
SELECT is((SELECT d->'components'->'responses'->'NotFound'->'content'->'application/problem+json'->'schema'->>'$ref' FROM doc),
		  '#/components/schemas/Problem', 'openapi(): problem+json with the Problem schema');
SELECT ok((SELECT d->'security' = '[{"bearerAuth": []}]' AND d->'components'->'securitySchemes'->'bearerAuth'->>'bearerFormat' = 'JWT'
				  AND d->'paths'->'/healthz'->'get'->'security' = '[]' FROM doc), 'openapi(): bearer JWT security, none for /healthz');
SELECT is((SELECT array_agg(x.ref ORDER BY 1) FROM doc,
				  regexp_matches(d::text, '"\$ref": "#/components/([a-zA-Z]+)/([a-zA-Z]+)"', 'g') AS m,
				  LATERAL (SELECT m[1] || '/' || m[2] AS ref) x
		   WHERE d->'components'->m[1]->m[2] IS NULL), NULL, 'openapi(): every $ref resolves');

SELECT * FROM finish();
ROLLBACK;
