-- iam--0.3--0.4.sql: the REST API of the gateway, declared in SQL.
--
-- iam.routes says, once, which HTTP route calls which SQL function; the
-- gateway loads it at start and again on NOTIFY iam_routes, and
-- iam.openapi() derives /openapi.json from it.  Each route is one
-- SECURITY DEFINER function iam.api_*(params jsonb, body jsonb) returning
-- iam.api_response; it checks the caller (iam.api_caller), then its
-- permissions, and raises client-facing errors with SQLSTATE IA + the HTTP
-- status (IA400, IA401, IA403, IA404, IA409, IA412, IA422) whose message is
-- safe to show to the client.
--
-- The functions run as the extension's owner, a superuser whom row-level
-- security does not restrict: like the 0.2 grant functions, every query
-- names the caller's organisation itself, and a row of another organisation
-- is answered exactly like an absent one (IA404).
--
-- Also: the audit trail's inbox (iam.audit_inbox, at the end), so that
-- writers append to an unindexed table and the sealer moves rows into
-- iam.audit_logs already chained, instead of updating them in place.
-- CREATE EXTENSION iam runs iam--0.1.sql, the upgrades to 0.3 and this file.

\echo Use "CREATE EXTENSION iam" or "ALTER EXTENSION iam UPDATE" to load this file. \quit

------------------------------------------------------------------------------
-- Route declarations
------------------------------------------------------------------------------
CREATE TABLE iam.rate_limit_classes (
	name		text PRIMARY KEY,
	requests	int NOT NULL CHECK (requests > 0),
	per_seconds	int NOT NULL CHECK (per_seconds > 0)
);
COMMENT ON TABLE iam.rate_limit_classes IS
	'Rate limits of the gateway: a client may make at most requests requests of a class per per_seconds seconds; a change reaches running gateways within seconds (NOTIFY iam_routes)';
COMMENT ON COLUMN iam.rate_limit_classes.name IS 'Class name that iam.routes.rate_limit_class refers to';
COMMENT ON COLUMN iam.rate_limit_classes.requests IS 'Requests allowed per window';
COMMENT ON COLUMN iam.rate_limit_classes.per_seconds IS 'Length of the window in seconds';
INSERT INTO iam.rate_limit_classes (name, requests, per_seconds) VALUES
	('default', 600, 60), ('auth', 10, 60), ('expensive', 30, 60);

CREATE TABLE iam.routes (
	method				text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
	path				text NOT NULL
						CHECK (path ~ '^(/([a-z0-9-]+|\{[a-z_][a-z0-9_]*:(uuid|int|text)\}))+$'),
	handler				regprocedure NOT NULL,
	permission			text,
	read_only			boolean NOT NULL,
	cacheable			boolean NOT NULL DEFAULT false,
	rate_limit_class	text NOT NULL DEFAULT 'default' REFERENCES iam.rate_limit_classes,
	authenticated		boolean NOT NULL DEFAULT true,
	query_params		jsonb NOT NULL DEFAULT '{}'
						CHECK (jsonb_typeof(query_params) = 'object'),
	body_schema			jsonb CHECK (jsonb_typeof(body_schema) = 'object'),
	summary				text NOT NULL CHECK (btrim(summary) <> ''),
	PRIMARY KEY (method, path)
);
COMMENT ON TABLE iam.routes IS
	'REST routes of the gateway under /api/v1, each served by one SQL function; the gateway loads them at start and reloads on NOTIFY iam_routes; iam.openapi() documents them';
COMMENT ON COLUMN iam.routes.method IS 'HTTP method';
COMMENT ON COLUMN iam.routes.path IS
	'Path template under /api/v1: segments are literal [a-z0-9-]+ or {name:type} with type uuid, int or text; a literal segment wins over a typed one';
COMMENT ON COLUMN iam.routes.handler IS
	'The iam.api_*(params jsonb, body jsonb) RETURNS iam.api_response function the route calls';
COMMENT ON COLUMN iam.routes.permission IS
	'Permission the route needs, for documentation (the handler checks it itself; the gateway does not); NULL when any signed-in user may call it';
COMMENT ON COLUMN iam.routes.read_only IS 'True: the gateway runs the handler in a READ ONLY transaction';
COMMENT ON COLUMN iam.routes.cacheable IS 'True: the gateway may cache the response';
COMMENT ON COLUMN iam.routes.rate_limit_class IS 'Rate-limit class (iam.rate_limit_classes) the route counts against';
COMMENT ON COLUMN iam.routes.authenticated IS 'False: no bearer token is needed (iam.user_id and iam.org_id are then empty)';
COMMENT ON COLUMN iam.routes.query_params IS
	'Allowed query parameters as {"name": "type"}, type one of uuid, int, bool, timestamptz, text, enum:a,b,c; the gateway refuses any other parameter (400)';
COMMENT ON COLUMN iam.routes.body_schema IS 'JSON Schema of the request body (for OpenAPI); NULL when the route takes no body';
COMMENT ON COLUMN iam.routes.summary IS 'One-line description, the OpenAPI summary';

CREATE FUNCTION iam.routes_notify() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM pg_catalog.pg_notify('iam_routes', TG_TABLE_NAME);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION iam.routes_notify() IS
	'Statement-level AFTER trigger on iam.routes and iam.rate_limit_classes: NOTIFY iam_routes (payload: the table name), delivered at commit, so that gateways reload the declarations';
CREATE TRIGGER routes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON iam.routes
	FOR EACH STATEMENT EXECUTE FUNCTION iam.routes_notify();
COMMENT ON TRIGGER routes_notify ON iam.routes IS 'Tells the gateways (NOTIFY iam_routes) to reload the routes';
CREATE TRIGGER routes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON iam.rate_limit_classes
	FOR EACH STATEMENT EXECUTE FUNCTION iam.routes_notify();
COMMENT ON TRIGGER routes_notify ON iam.rate_limit_classes IS 'Tells the gateways (NOTIFY iam_routes) to reload the rate limits';

CREATE TYPE iam.api_response AS (status int, body json, headers jsonb);
COMMENT ON TYPE iam.api_response IS 'What an API function returns: the HTTP status, the response body and extra headers';
COMMENT ON COLUMN iam.api_response.status IS 'HTTP status, e.g. 200, 201, 204';
COMMENT ON COLUMN iam.api_response.body IS 'Response body, sent to the client byte for byte as application/json; NULL for 204';
COMMENT ON COLUMN iam.api_response.headers IS 'Extra response headers as {"Name": "value"} (ETag, Location, Link), or NULL';

------------------------------------------------------------------------------
-- Helpers of the API functions.  Internal: granted to no role, and without a
-- SET clause of their own (they are called from the SECURITY DEFINER
-- handlers, whose search_path is pinned, and name everything in full), so
-- that the hot paths do not pay for one.
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_error(code text, message text, hint text) RETURNS void
	LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, HINT = hint;
END
$$;
COMMENT ON FUNCTION iam.api_error(text, text, text) IS
	'Internal: raises a client-facing API error (SQLSTATE IA + HTTP status, e.g. IA422) whose message the gateway shows to the client';

CREATE FUNCTION iam.api_caller() RETURNS uuid
	LANGUAGE plpgsql STABLE AS $$
DECLARE
	me	uuid := iam.current_user_id();
BEGIN
	IF me IS NULL OR NOT EXISTS (SELECT FROM iam.users u
								 WHERE u.id = me AND u.org_id = iam.current_org_id()
								   AND u.is_active AND u.deleted_at IS NULL) THEN
		RAISE EXCEPTION 'not signed in as an active user of this organisation'
			USING ERRCODE = 'IA401', HINT = 'Sign in again.';
	END IF;
	RETURN me;
END
$$;
COMMENT ON FUNCTION iam.api_caller() IS
	'Internal, first call of every authenticated API function: iam.user_id, after checking that it names an existing, active, not deleted user of iam.org_id; IA401 otherwise';

CREATE FUNCTION iam.api_require(me uuid, permission text) RETURNS void
	LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF NOT iam.has_permission(me, permission) THEN
		RAISE EXCEPTION 'permission denied: this requires %', permission
			USING ERRCODE = 'IA403', HINT = format('Ask an administrator for the %s permission.', permission);
	END IF;
END
$$;
COMMENT ON FUNCTION iam.api_require(uuid, text) IS
	'Internal: IA403 naming the permission unless the user holds it';

CREATE FUNCTION iam.api_refuse(fn text, message text, missing text, details jsonb) RETURNS void
	LANGUAGE plpgsql AS $$
DECLARE
	me	uuid := iam.current_user_id();
BEGIN
	PERFORM iam.record_escalation_attempt(jsonb_build_object(
		'user_id', me,
		'org_id', iam.current_org_id(),
		'description', fn || ': ' || message,
		'ip', nullif(current_setting('iam.ip', true), ''),
		'user_agent', nullif(current_setting('iam.user_agent', true), ''),
		'metadata', jsonb_strip_nulls(details || jsonb_build_object(
			'function', fn, 'missing', missing,
			'request_id', nullif(current_setting('iam.request_id', true), '')))));
	RAISE EXCEPTION '%', message
		USING ERRCODE = 'IA403', HINT = format('This needs %s.', missing);
END
$$;
COMMENT ON FUNCTION iam.api_refuse(text, text, text, jsonb) IS
	'Internal: records a privilege_escalation_attempt of the caller durably (like iam.refuse_grant), then raises IA403 with message';

CREATE FUNCTION iam.api_guard_role(me uuid, fn text, role_id uuid, role_name text, details jsonb) RETURNS void
	LANGUAGE plpgsql AS $$
DECLARE
	missing	text;
BEGIN
	IF NOT iam.has_permission(me, 'roles.manage') THEN
		PERFORM iam.api_refuse(fn, format('permission denied: giving a user role %s requires roles.manage', role_name),
							   'roles.manage', details);
	END IF;
	SELECT p INTO missing FROM iam.role_permission_names(role_id) AS p
	WHERE NOT iam.has_permission(me, p) ORDER BY p LIMIT 1;
	IF missing IS NOT NULL THEN
		PERFORM iam.api_refuse(fn, format('permission denied: you cannot give role %s, it holds %s, which you do not hold',
										  role_name, missing), missing, details);
	END IF;
END
$$;
COMMENT ON FUNCTION iam.api_guard_role(uuid, text, uuid, text, jsonb) IS
	'Internal escalation guard for setting a user''s primary role: the caller needs roles.manage and every permission the role holds (inherited ones included); a refusal is recorded and raises IA403';

CREATE FUNCTION iam.api_ts(ts timestamptz) RETURNS text
	LANGUAGE sql STABLE
	RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
COMMENT ON FUNCTION iam.api_ts(timestamptz) IS
	'Internal: an instant as RFC 3339 in UTC with microseconds (2026-01-02T03:04:05.000000Z), whatever the session''s TimeZone';

CREATE FUNCTION iam.api_mask_email(email text) RETURNS text
	LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN strpos(email, '@') > 1 THEN left(email, 1) || '***' || substr(email, strpos(email, '@'))
				WHEN email IS NOT NULL THEN '***' END;
COMMENT ON FUNCTION iam.api_mask_email(text) IS
	'Internal: an e-mail address masked for callers without users.read_pii: j***@example.com';

CREATE FUNCTION iam.api_mask_phone(phone text) RETURNS text
	LANGUAGE sql IMMUTABLE
	RETURN regexp_replace(phone, '[0-9](?=([^0-9]*[0-9]){2})', '*', 'g');
COMMENT ON FUNCTION iam.api_mask_phone(text) IS
	'Internal: a phone number masked for callers without users.read_pii: every digit but the last two replaced by *';

CREATE FUNCTION iam.api_user_etag(u iam.users) RETURNS text
	LANGUAGE sql IMMUTABLE
	RETURN '"' || md5(u.id::text || '/' || extract(epoch FROM u.updated_at)::text || '/'
					  || jsonb_build_array(u.email, u.name, u.role, u.department, u.phone, u.profile_image,
										   u.employment_equity, u.is_active, u.two_factor_enabled, u.metadata,
										   u.deleted_at IS NULL)::text) || '"';
COMMENT ON FUNCTION iam.api_user_etag(iam.users) IS
	'Internal: the ETag of a user, a quoted digest of its id, updated_at and every field the API shows (so that two changes within one transaction still give two ETags)';

CREATE FUNCTION iam.api_role_etag(r iam.roles) RETURNS text
	LANGUAGE sql STABLE
	RETURN '"' || md5(r.id::text || '/' || extract(epoch FROM r.updated_at)::text || '/'
					  || jsonb_build_array(r.name, r.display_name, r.description,
										   ARRAY(SELECT iam.role_permission_names(r.id)))::text) || '"';
COMMENT ON FUNCTION iam.api_role_etag(iam.roles) IS
	'Internal: the ETag of a role, a quoted digest of its id, updated_at, names, description and permissions (a change of its permissions changes it too)';

CREATE FUNCTION iam.api_check_if_match(params jsonb, etag text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	wanted	text := params->>'if_match';
BEGIN
	IF wanted IS NOT NULL AND btrim(wanted) <> '*'
	   AND NOT etag = ANY (SELECT btrim(t) FROM unnest(string_to_array(wanted, ',')) AS t) THEN
		RAISE EXCEPTION 'the resource has changed since it was read (If-Match does not match its ETag)'
			USING ERRCODE = 'IA412', HINT = 'Read the resource again and retry with its current ETag.';
	END IF;
END
$$;
COMMENT ON FUNCTION iam.api_check_if_match(jsonb, text) IS
	'Internal: IA412 when params has an if_match (the If-Match header: *, or a comma-separated list of ETags) that does not match etag';

CREATE FUNCTION iam.api_path_id(params jsonb, name text) RETURNS uuid
	LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF params->>name ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
		RETURN (params->>name)::uuid;
	END IF;
	RAISE EXCEPTION 'not found' USING ERRCODE = 'IA404', HINT = 'Check the id in the path.';
END
$$;
COMMENT ON FUNCTION iam.api_path_id(jsonb, text) IS
	'Internal: the uuid path parameter name of params; IA404 when it is absent or malformed (the gateway checks it first)';

CREATE FUNCTION iam.api_limit(params jsonb) RETURNS int
	LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	lim	text := params->>'limit';
BEGIN
	IF lim IS NULL THEN
		RETURN 50;
	ELSIF lim ~ '^[0-9]{1,10}$' AND lim::bigint BETWEEN 1 AND 200 THEN
		RETURN lim::int;
	END IF;
	RAISE EXCEPTION 'limit must be between 1 and 200' USING ERRCODE = 'IA400', HINT = 'Leave limit out for 50 items a page.';
END
$$;
COMMENT ON FUNCTION iam.api_limit(jsonb) IS 'Internal: the limit query parameter (1 to 200, default 50); IA400 otherwise';

CREATE FUNCTION iam.api_timestamp(params jsonb, name text) RETURNS timestamptz
	LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF params->>name IS NULL THEN
		RETURN NULL;
	END IF;
	IF params->>name ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$' THEN
		BEGIN
			RETURN (params->>name)::timestamptz;
		EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
			NULL;
		END;
	END IF;
	RAISE EXCEPTION '% must be an RFC 3339 date-time such as 2026-01-02T03:04:05Z', name
		USING ERRCODE = 'IA400', HINT = 'Include the time zone (Z or an offset).';
END
$$;
COMMENT ON FUNCTION iam.api_timestamp(jsonb, text) IS
	'Internal: the RFC 3339 timestamptz query parameter name of params, NULL when absent; IA400 when malformed';

CREATE FUNCTION iam.api_uuid_param(params jsonb, name text) RETURNS uuid
	LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF params->>name IS NULL THEN
		RETURN NULL;
	ELSIF params->>name ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
		RETURN (params->>name)::uuid;
	END IF;
	RAISE EXCEPTION '% must be a uuid', name USING ERRCODE = 'IA400', HINT = 'Pass an id such as 00000000-0000-0000-0000-000000000000.';
END
$$;
COMMENT ON FUNCTION iam.api_uuid_param(jsonb, text) IS
	'Internal: the uuid query parameter name of params, NULL when absent; IA400 when malformed';

-- Cursors are opaque to clients: base64url of {"s": sort, "v": last sort
-- value, "id": last id}.  They carry nothing a client could not see anyway.
CREATE FUNCTION iam.api_cursor_encode(sort text, v text, id uuid) RETURNS text
	LANGUAGE sql STABLE
	RETURN rtrim(translate(encode(convert_to(jsonb_build_object('s', sort, 'v', v, 'id', id)::text, 'UTF8'),
								  'base64'), E'+/\n', '-_'), '=');
COMMENT ON FUNCTION iam.api_cursor_encode(text, text, uuid) IS
	'Internal: an opaque keyset cursor (base64url of {"s": sort, "v": last sort value, "id": last id})';

CREATE FUNCTION iam.api_cursor_decode(cursor text, sort text, is_timestamp boolean) RETURNS jsonb
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
		RAISE EXCEPTION 'invalid cursor'
			USING ERRCODE = 'IA400',
				  HINT = 'Pass the next_cursor of the previous page unchanged, with the same sort and order.';
	END;
	RETURN c;
END
$$;
COMMENT ON FUNCTION iam.api_cursor_decode(text, text, boolean) IS
	'Internal: the content of a cursor made by iam.api_cursor_encode for the same sort, NULL for NULL; IA400 for anything else';

CREATE FUNCTION iam.api_urlencode(s text) RETURNS text
	LANGUAGE sql STABLE STRICT
BEGIN ATOMIC
	SELECT coalesce(string_agg(CASE WHEN b BETWEEN 48 AND 57 OR b BETWEEN 65 AND 90 OR b BETWEEN 97 AND 122
										 OR b IN (45, 46, 95, 126)
									THEN chr(b) ELSE '%' || upper(lpad(to_hex(b), 2, '0')) END, '' ORDER BY i), '')
	FROM (SELECT i, get_byte(convert_to(s, 'UTF8'), i) AS b
		  FROM generate_series(0, octet_length(convert_to(s, 'UTF8')) - 1) AS i) AS bytes;
END;
COMMENT ON FUNCTION iam.api_urlencode(text) IS 'Internal: s percent-encoded for a URL query (RFC 3986 unreserved characters kept)';

CREATE FUNCTION iam.api_next_link(path text, params jsonb, names text[], cursor text) RETURNS jsonb
	LANGUAGE sql STABLE
BEGIN ATOMIC
	SELECT jsonb_build_object('Link', format('</api/v1%s?%scursor=%s>; rel="next"', path,
		(SELECT coalesce(string_agg(n || '=' || iam.api_urlencode(params->>n) || '&', '' ORDER BY o), '')
		 FROM unnest(names) WITH ORDINALITY AS q(n, o) WHERE params->>n IS NOT NULL),
		cursor));
END;
COMMENT ON FUNCTION iam.api_next_link(text, jsonb, text[], text) IS
	'Internal: the headers {"Link": "</api/v1/path?query&cursor=...>; rel=\"next\""} of a page that has a next one, repeating the query parameters names present in params';

CREATE FUNCTION iam.api_body_object(body jsonb, allowed text[], immutable text[] DEFAULT '{}') RETURNS void
	LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	k	text;
BEGIN
	IF jsonb_typeof(body) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'the request body must be a JSON object'
			USING ERRCODE = 'IA422', HINT = 'Send a JSON object with Content-Type: application/json.';
	END IF;
	SELECT key INTO k FROM jsonb_object_keys(body) AS key WHERE key <> ALL (allowed) ORDER BY key LIMIT 1;
	IF k = ANY (immutable) THEN
		RAISE EXCEPTION '%: cannot be changed', k
			USING ERRCODE = 'IA422', HINT = format('Leave %s out of the request.', k);
	ELSIF k IS NOT NULL THEN
		RAISE EXCEPTION '%: unknown field', left(k, 100)
			USING ERRCODE = 'IA422', HINT = format('Known fields: %s.', array_to_string(allowed, ', '));
	END IF;
END
$$;
COMMENT ON FUNCTION iam.api_body_object(jsonb, text[], text[]) IS
	'Internal: IA422 unless body is a JSON object whose keys are all in allowed; a key in immutable is named as one that cannot be changed';

CREATE FUNCTION iam.api_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	k		text;
	v		jsonb;
	result	jsonb;
BEGIN
	IF jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
		RETURN patch;
	END IF;
	result := CASE WHEN jsonb_typeof(target) = 'object' THEN target ELSE '{}' END;
	FOR k, v IN SELECT * FROM jsonb_each(patch) LOOP
		IF jsonb_typeof(v) = 'null' THEN
			result := result - k;
		ELSE
			result := jsonb_set(result, ARRAY[k], iam.api_merge_patch(result->k, v));
		END IF;
	END LOOP;
	RETURN result;
END
$$;
COMMENT ON FUNCTION iam.api_merge_patch(jsonb, jsonb) IS
	'Internal: JSON merge patch (RFC 7396) of target by patch: objects merge recursively, null removes a member, anything else replaces';

CREATE FUNCTION iam.api_string_field(body jsonb, field text, max_len int, nullable boolean,
									 pattern text DEFAULT NULL, rule text DEFAULT NULL) RETURNS text
	LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v	jsonb := body->field;
BEGIN
	IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
		IF nullable THEN
			RETURN NULL;
		END IF;
		RAISE EXCEPTION '%: is required', field USING ERRCODE = 'IA422', HINT = format('Give %s a value.', field);
	END IF;
	IF jsonb_typeof(v) <> 'string' THEN
		RAISE EXCEPTION '%: must be a string', field USING ERRCODE = 'IA422', HINT = format('Send %s as a JSON string.', field);
	END IF;
	IF btrim(v #>> '{}') = '' AND NOT nullable THEN
		RAISE EXCEPTION '%: must not be empty', field USING ERRCODE = 'IA422', HINT = format('Give %s a value.', field);
	END IF;
	IF length(v #>> '{}') > max_len THEN
		RAISE EXCEPTION '%: must be at most % characters long', field, max_len
			USING ERRCODE = 'IA422', HINT = format('Shorten %s.', field);
	END IF;
	IF pattern IS NOT NULL AND (v #>> '{}') !~ pattern THEN
		RAISE EXCEPTION '%: must be %', field, rule USING ERRCODE = 'IA422', HINT = format('Correct %s.', field);
	END IF;
	RETURN v #>> '{}';
END
$$;
COMMENT ON FUNCTION iam.api_string_field(jsonb, text, int, boolean, text, text) IS
	'Internal: the string member field of a request body, checked (present unless nullable, a string, at most max_len characters, matching pattern, described by rule); IA422 naming the field otherwise';

CREATE FUNCTION iam.api_user_fields(body jsonb) RETURNS void
	LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF body ? 'email' THEN
		PERFORM iam.api_string_field(body, 'email', 255, false,
			'^[^@[:space:][:cntrl:]]+@[^@[:space:][:cntrl:].]+(\.[^@[:space:][:cntrl:].]+)+$', 'an e-mail address');
	END IF;
	IF body ? 'name' THEN
		PERFORM iam.api_string_field(body, 'name', 255, false);
	END IF;
	IF body ? 'role' THEN
		PERFORM iam.api_string_field(body, 'role', 50, false, '^[a-z][a-z0-9_]*$', 'a role name');
	END IF;
	IF body ? 'department' THEN
		PERFORM iam.api_string_field(body, 'department', 100, true);
	END IF;
	IF body ? 'phone' THEN
		PERFORM iam.api_string_field(body, 'phone', 20, true, '^\+?[0-9 ().-]{3,20}$', 'a phone number');
	END IF;
	IF body ? 'profile_image' THEN
		PERFORM iam.api_string_field(body, 'profile_image', 2048, true, '^https?://[^[:space:][:cntrl:]]+$', 'an http(s) URL');
	END IF;
	IF body ? 'employment_equity' THEN
		PERFORM iam.api_string_field(body, 'employment_equity', 50, true);
	END IF;
	IF body ? 'is_active' AND jsonb_typeof(body->'is_active') IS DISTINCT FROM 'boolean' THEN
		RAISE EXCEPTION 'is_active: must be true or false' USING ERRCODE = 'IA422', HINT = 'Send a JSON boolean.';
	END IF;
	IF body ? 'metadata' AND jsonb_typeof(body->'metadata') IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'metadata: must be a JSON object' USING ERRCODE = 'IA422', HINT = 'Send an object, or null for none.';
	END IF;
	IF body ? 'password' THEN
		PERFORM iam.api_string_field(body, 'password', 1024, false);
	END IF;
END
$$;
COMMENT ON FUNCTION iam.api_user_fields(jsonb) IS
	'Internal: checks the user fields present in a request body (types, lengths, formats); IA422 naming the first bad field';

CREATE FUNCTION iam.api_user_json(u iam.users, unmasked boolean) RETURNS json
	LANGUAGE sql STABLE
	RETURN json_build_object(
		'id', u.id,
		'email', CASE WHEN unmasked THEN u.email::text ELSE iam.api_mask_email(u.email) END,
		'name', u.name,
		'role', u.role,
		'department', u.department,
		'phone', CASE WHEN unmasked THEN u.phone::text ELSE iam.api_mask_phone(u.phone) END,
		'profile_image', u.profile_image,
		'employment_equity', CASE WHEN unmasked THEN u.employment_equity END,
		'is_active', u.is_active,
		'two_factor_enabled', u.two_factor_enabled,
		'metadata', u.metadata,
		'last_login', iam.api_ts(u.last_login),
		'created_at', iam.api_ts(u.created_at),
		'updated_at', iam.api_ts(u.updated_at),
		'deleted_at', iam.api_ts(u.deleted_at));
COMMENT ON FUNCTION iam.api_user_json(iam.users, boolean) IS
	'Internal: a user as the API shows it (never the password hash or the external id); unless unmasked, email and phone are masked and employment_equity is null';

CREATE FUNCTION iam.api_user_response(status int, u iam.users, me uuid) RETURNS iam.api_response
	LANGUAGE sql STABLE
	RETURN ROW(status,
			   iam.api_user_json(u, u.id = me OR iam.has_permission(me, 'users.read_pii')),
			   jsonb_build_object('ETag', iam.api_user_etag(u))
			   || CASE WHEN status = 201 THEN jsonb_build_object('Location', '/api/v1/users/' || u.id) ELSE '{}' END
			  )::iam.api_response;
COMMENT ON FUNCTION iam.api_user_response(int, iam.users, uuid) IS
	'Internal: the response with one user (masked unless the caller holds users.read_pii or is that user), its ETag, and for 201 its Location';

CREATE FUNCTION iam.api_role_json(r iam.roles) RETURNS json
	LANGUAGE sql STABLE
	RETURN json_build_object(
		'id', r.id,
		'name', r.name,
		'display_name', r.display_name,
		'description', r.description,
		'is_system', r.is_system,
		'permissions', to_json(ARRAY(SELECT iam.role_permission_names(r.id))),
		'created_at', iam.api_ts(r.created_at),
		'updated_at', iam.api_ts(r.updated_at));
COMMENT ON FUNCTION iam.api_role_json(iam.roles) IS
	'Internal: a role as the API shows it, with every permission it holds (inherited ones included)';

CREATE FUNCTION iam.api_role_response(status int, r iam.roles) RETURNS iam.api_response
	LANGUAGE sql STABLE
	RETURN ROW(status, iam.api_role_json(r),
			   jsonb_build_object('ETag', iam.api_role_etag(r))
			   || CASE WHEN status = 201 THEN jsonb_build_object('Location', '/api/v1/roles/' || r.id) ELSE '{}' END
			  )::iam.api_response;
COMMENT ON FUNCTION iam.api_role_response(int, iam.roles) IS
	'Internal: the response with one role, its ETag, and for 201 its Location';

-- the user of the caller's organisation named by the path, not deleted
CREATE FUNCTION iam.api_target_user(params jsonb, for_update boolean) RETURNS iam.users
	LANGUAGE plpgsql AS $$
DECLARE
	target	uuid := iam.api_path_id(params, 'id');
	u		iam.users;
BEGIN
	IF for_update THEN
		SELECT * INTO u FROM iam.users
		WHERE id = target AND org_id = iam.current_org_id() AND deleted_at IS NULL FOR NO KEY UPDATE;
	ELSE
		SELECT * INTO u FROM iam.users
		WHERE id = target AND org_id = iam.current_org_id() AND deleted_at IS NULL;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'user not found' USING ERRCODE = 'IA404', HINT = 'Check the user id.';
	END IF;
	RETURN u;
END
$$;
COMMENT ON FUNCTION iam.api_target_user(jsonb, boolean) IS
	'Internal: the not deleted user of the caller''s organisation whose id is the path parameter id (locked when for_update); IA404 for an absent, deleted or other organisation''s id';

CREATE FUNCTION iam.api_target_role(params jsonb, for_update boolean) RETURNS iam.roles
	LANGUAGE plpgsql AS $$
DECLARE
	target	uuid := iam.api_path_id(params, 'id');
	r		iam.roles;
BEGIN
	IF for_update THEN
		SELECT * INTO r FROM iam.roles
		WHERE id = target AND (org_id = iam.current_org_id() OR org_id IS NULL) FOR NO KEY UPDATE;
	ELSE
		SELECT * INTO r FROM iam.roles
		WHERE id = target AND (org_id = iam.current_org_id() OR org_id IS NULL);
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role not found' USING ERRCODE = 'IA404', HINT = 'Check the role id.';
	END IF;
	RETURN r;
END
$$;
COMMENT ON FUNCTION iam.api_target_role(jsonb, boolean) IS
	'Internal: the role (of the caller''s organisation, or a system role) whose id is the path parameter id; IA404 for an absent or other organisation''s id';

CREATE FUNCTION iam.api_permission_names(body jsonb, field text, min_items int, max_items int, known boolean)
	RETURNS text[]
	LANGUAGE plpgsql STABLE AS $$
DECLARE
	v		jsonb := body->field;
	names	text[];
	bad		int;
BEGIN
	IF jsonb_typeof(v) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION '%: must be an array of permission names', field
			USING ERRCODE = 'IA422', HINT = 'Send e.g. ["users.read", "roles.read"].';
	END IF;
	IF jsonb_array_length(v) NOT BETWEEN min_items AND max_items THEN
		RAISE EXCEPTION '%: must have % to % items', field, min_items, max_items
			USING ERRCODE = 'IA422', HINT = 'Send fewer names, or split the request.';
	END IF;
	SELECT min(o) INTO bad FROM jsonb_array_elements(v) WITH ORDINALITY AS e(x, o)
	WHERE jsonb_typeof(x) <> 'string';
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION '%[%]: must be a string', field, bad - 1
			USING ERRCODE = 'IA422', HINT = 'Permission names are strings such as "users.read".';
	END IF;
	names := ARRAY(SELECT jsonb_array_elements_text(v));
	IF known THEN
		SELECT min(o) INTO bad FROM unnest(names) WITH ORDINALITY AS n(name, o)
		WHERE NOT EXISTS (SELECT FROM iam.permissions p WHERE p.name = n.name);
		IF bad IS NOT NULL THEN
			RAISE EXCEPTION '%[%]: unknown permission', field, bad - 1
				USING ERRCODE = 'IA422', HINT = 'GET /api/v1/permissions lists the catalogue.';
		END IF;
	END IF;
	RETURN names;
END
$$;
COMMENT ON FUNCTION iam.api_permission_names(jsonb, text, int, int, boolean) IS
	'Internal: the array of permission names body.field (min_items to max_items strings; with known, each in the catalogue); IA422 naming the bad item otherwise';

CREATE FUNCTION iam.api_mask_changes(changes jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
	SELECT jsonb_object_agg(k, CASE WHEN k IN ('email', 'phone') AND jsonb_typeof(v) = 'object' THEN
		(SELECT jsonb_object_agg(k2, CASE WHEN jsonb_typeof(v2) <> 'string' THEN v2
										  WHEN k = 'email' THEN to_jsonb(iam.api_mask_email(v2 #>> '{}'))
										  ELSE to_jsonb(iam.api_mask_phone(v2 #>> '{}')) END)
		 FROM jsonb_each(v) AS x(k2, v2))
		WHEN k = 'employment_equity' AND jsonb_typeof(v) = 'object' THEN
		(SELECT jsonb_object_agg(k2, CASE WHEN jsonb_typeof(v2) = 'string' THEN '"***"'::jsonb ELSE v2 END)
		 FROM jsonb_each(v) AS x(k2, v2))
		ELSE v END)
	FROM jsonb_each(changes) AS c(k, v);
END;
COMMENT ON FUNCTION iam.api_mask_changes(jsonb) IS
	'Internal: the changes of a user''s audit row with e-mail addresses and phone numbers masked (and employment equity hidden), for callers without users.read_pii';

------------------------------------------------------------------------------
-- Users
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_users_me(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	result	iam.api_response;
BEGIN
	-- the user object with "permissions" appended as its last member
	SELECT 200, (left(iam.api_user_json(u, true)::text, -1) || ', "permissions" : '
				 || to_json(ARRAY(SELECT iam.user_permissions(me)))::text || '}')::json, NULL
	INTO result FROM iam.users u WHERE u.id = me;
	RETURN result;
END
$$;
COMMENT ON FUNCTION iam.api_users_me(jsonb, jsonb) IS
	'GET /users/me: the caller, unmasked, with "permissions", the names of every permission it holds globally';

CREATE FUNCTION iam.api_users_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me			uuid := iam.api_caller();
	pii			boolean;
	lim			int := iam.api_limit(params);
	sort		text := coalesce(params->>'sort', 'created_at');
	descending	boolean := coalesce(params->>'order', 'asc') = 'desc';
	sort_key	text;
	cursor_key	text;
	cur			jsonb;
	q			text;
	conds		text := '';
	items		json[] := '{}';
	last_key	text;
	last_id		uuid;
	more		boolean := false;
	r			record;
BEGIN
	PERFORM iam.api_require(me, 'users.read');
	pii := iam.has_permission(me, 'users.read_pii');
	IF params->>'order' IS NOT NULL AND params->>'order' NOT IN ('asc', 'desc') THEN
		PERFORM iam.api_error('IA400', 'order must be asc or desc', 'Leave order out for asc.');
	END IF;
	-- identifiers only ever come from this list; values travel as parameters
	sort_key := CASE sort WHEN 'created_at' THEN 'u.created_at' WHEN 'name' THEN 'lower(u.name)'
						  WHEN 'email' THEN 'lower(u.email)' END;
	IF sort_key IS NULL THEN
		PERFORM iam.api_error('IA400', 'sort must be one of created_at, name, email', 'Leave sort out for created_at.');
	END IF;
	cursor_key := format('users:%s:%s', sort, CASE WHEN descending THEN 'desc' ELSE 'asc' END);
	cur := iam.api_cursor_decode(params->>'cursor', cursor_key, sort = 'created_at');

	IF params->>'q' IS NOT NULL AND params->>'q' <> '' THEN
		q := '%' || replace(replace(replace(lower(params->>'q'), '\', '\\'), '%', '\%'), '_', '\_') || '%';
		-- without users.read_pii, a search must not reveal masked e-mail addresses
		conds := conds || CASE WHEN pii THEN ' AND (lower(u.name) LIKE $2 OR lower(u.email) LIKE $2)'
							   ELSE ' AND lower(u.name) LIKE $2' END;
	END IF;
	IF params ? 'role' THEN conds := conds || ' AND u.role = $3'; END IF;
	IF params ? 'department' THEN conds := conds || ' AND u.department = $4'; END IF;
	IF params ? 'is_active' THEN conds := conds || ' AND u.is_active = $5'; END IF;
	IF params ? 'created_after' THEN conds := conds || ' AND u.created_at > $6'; END IF;
	IF params ? 'created_before' THEN conds := conds || ' AND u.created_at < $7'; END IF;
	IF cur IS NOT NULL THEN
		conds := conds || format(' AND (%s, u.id) %s (%s, $9)', sort_key, CASE WHEN descending THEN '<' ELSE '>' END,
								 CASE WHEN sort = 'created_at' THEN '$8::timestamptz' ELSE '$8' END);
	END IF;

	FOR r IN EXECUTE format(
		'SELECT iam.api_user_json(u, $11 OR u.id = $12) AS j, %s AS k, u.id FROM iam.users u '
		'WHERE u.org_id = $1 AND u.deleted_at IS NULL%s ORDER BY %s %s, u.id %s LIMIT $10',
		CASE WHEN sort = 'created_at' THEN 'iam.api_ts(u.created_at)' ELSE sort_key END,
		conds, sort_key, CASE WHEN descending THEN 'DESC' ELSE 'ASC' END, CASE WHEN descending THEN 'DESC' ELSE 'ASC' END)
		USING iam.current_org_id(), q, params->>'role', params->>'department', (params->>'is_active')::boolean,
			  iam.api_timestamp(params, 'created_after'), iam.api_timestamp(params, 'created_before'),
			  cur->>'v', (cur->>'id')::uuid, lim + 1, pii, me
	LOOP
		IF cardinality(items) = lim THEN
			more := true;
			EXIT;
		END IF;
		items := items || r.j;
		last_key := r.k;
		last_id := r.id;
	END LOOP;

	RETURN ROW(200,
			   json_build_object('data', to_json(items),
								 'next_cursor', CASE WHEN more THEN iam.api_cursor_encode(cursor_key, last_key, last_id) END),
			   CASE WHEN more THEN iam.api_next_link('/users', params,
					ARRAY['q', 'role', 'department', 'is_active', 'created_after', 'created_before', 'sort', 'order', 'limit'],
					iam.api_cursor_encode(cursor_key, last_key, last_id)) END)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_users_list(jsonb, jsonb) IS
	'GET /users: the organisation''s users that are not deleted, filtered (q: substring of the name, and of the e-mail address for callers with users.read_pii, trigram-indexed; role, department, is_active, created_after, created_before), sorted (created_at, name or email; asc or desc) and keyset-paginated (limit 1..200, default 50; cursor); {"data", "next_cursor"} and a Link rel="next" header when there is a next page';

CREATE FUNCTION iam.api_users_create(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	org		uuid := iam.current_org_id();
	u		iam.users;
	role_id	uuid;
	rname	text;
BEGIN
	PERFORM iam.api_require(me, 'users.create');
	PERFORM iam.api_body_object(body, ARRAY['email', 'name', 'role', 'department', 'phone', 'profile_image',
											'employment_equity', 'is_active', 'metadata', 'password']);
	PERFORM iam.api_string_field(body, 'email', 255, false);
	PERFORM iam.api_string_field(body, 'name', 255, false);
	PERFORM iam.api_user_fields(body);
	rname := coalesce(body->>'role', 'member');
	SELECT r.id INTO role_id FROM iam.roles r WHERE r.name = rname AND (r.org_id = org OR r.org_id IS NULL);
	IF role_id IS NULL THEN
		PERFORM iam.api_error('IA422', 'role: unknown role', 'Use a system role (admin, member, auditor) or a role of your organisation.');
	END IF;
	IF rname <> 'member' THEN
		PERFORM iam.api_guard_role(me, 'api_users_create', role_id, rname,
								   jsonb_build_object('email', body->>'email', 'role', rname));
	END IF;
	IF EXISTS (SELECT FROM iam.users x WHERE lower(x.email) = lower(body->>'email')) THEN
		PERFORM iam.api_error('IA409', 'email: a user with this e-mail address already exists', 'Use another e-mail address.');
	END IF;
	BEGIN
		INSERT INTO iam.users (org_id, email, name, role, department, phone, profile_image, employment_equity,
							   is_active, metadata)
		VALUES (org, body->>'email', body->>'name', rname, body->>'department', body->>'phone', body->>'profile_image',
				body->>'employment_equity', coalesce((body->>'is_active')::boolean, true),
				coalesce(nullif(body->'metadata', 'null'), '{}'))
		RETURNING * INTO u;
		IF body->>'password' IS NOT NULL THEN
			PERFORM iam.set_password(u.id, body->>'password');
			SELECT * INTO u FROM iam.users WHERE id = u.id;
		END IF;
	EXCEPTION
		WHEN unique_violation THEN
			PERFORM iam.api_error('IA409', 'email: a user with this e-mail address already exists', 'Use another e-mail address.');
		WHEN invalid_parameter_value THEN
			PERFORM iam.api_error('IA422', 'password: ' || SQLERRM, 'Choose a passphrase of at least 12 characters that is not your e-mail address or name.');
	END;
	RETURN iam.api_user_response(201, u, me);
END
$$;
COMMENT ON FUNCTION iam.api_users_create(jsonb, jsonb) IS
	'POST /users (users.create): creates a user of the caller''s organisation from {email, name, role?, department?, phone?, profile_image?, employment_equity?, is_active?, metadata?, password?}; a role other than member needs roles.manage and every permission of the role (escalation guard); 201 with Location and ETag; IA409 for a taken e-mail address, IA422 naming a bad field';

CREATE FUNCTION iam.api_users_get(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
BEGIN
	PERFORM iam.api_require(me, 'users.read');
	RETURN iam.api_user_response(200, iam.api_target_user(params, false), me);
END
$$;
COMMENT ON FUNCTION iam.api_users_get(jsonb, jsonb) IS
	'GET /users/{id} (users.read): one user of the caller''s organisation, with its ETag; IA404 for an absent, deleted or other organisation''s id';

CREATE FUNCTION iam.api_users_update(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	org		uuid := iam.current_org_id();
	u		iam.users;
	current	jsonb;
	patched	jsonb;
	k		text;
	role_id	uuid;
BEGIN
	PERFORM iam.api_require(me, 'users.update');
	u := iam.api_target_user(params, true);
	PERFORM iam.api_check_if_match(params, iam.api_user_etag(u));
	PERFORM iam.api_body_object(body,
		ARRAY['email', 'name', 'role', 'department', 'phone', 'profile_image', 'employment_equity', 'is_active', 'metadata'],
		ARRAY['id', 'org_id', 'created_at', 'updated_at', 'deleted_at', 'last_login', 'two_factor_enabled',
			  'password', 'password_hash', 'stack_auth_id']);
	FOREACH k IN ARRAY ARRAY['email', 'name', 'role', 'is_active'] LOOP
		IF jsonb_typeof(body->k) = 'null' THEN
			PERFORM iam.api_error('IA422', k || ': cannot be removed', format('Send a new value for %s, or leave it out.', k));
		END IF;
	END LOOP;
	current := jsonb_build_object('email', u.email, 'name', u.name, 'role', u.role, 'department', u.department,
								  'phone', u.phone, 'profile_image', u.profile_image,
								  'employment_equity', u.employment_equity, 'is_active', u.is_active,
								  'metadata', u.metadata);
	patched := iam.api_merge_patch(current, body);
	patched := jsonb_set(patched, '{metadata}', coalesce(patched->'metadata', '{}'));
	PERFORM iam.api_user_fields(patched);

	IF patched->>'role' <> u.role THEN
		SELECT r.id INTO role_id FROM iam.roles r
		WHERE r.name = patched->>'role' AND (r.org_id = org OR r.org_id IS NULL);
		IF role_id IS NULL THEN
			PERFORM iam.api_error('IA422', 'role: unknown role', 'Use a system role (admin, member, auditor) or a role of your organisation.');
		END IF;
		PERFORM iam.api_guard_role(me, 'api_users_update', role_id, patched->>'role',
								   jsonb_build_object('target_user', u.id, 'role', patched->>'role'));
	END IF;
	IF u.id = me AND NOT (patched->>'is_active')::boolean THEN
		PERFORM iam.api_error('IA409', 'you cannot deactivate yourself', 'Ask another administrator.');
	END IF;
	IF lower(patched->>'email') <> lower(u.email)
	   AND EXISTS (SELECT FROM iam.users x WHERE lower(x.email) = lower(patched->>'email')) THEN
		PERFORM iam.api_error('IA409', 'email: a user with this e-mail address already exists', 'Use another e-mail address.');
	END IF;

	BEGIN
		IF patched->>'role' <> u.role OR (patched->>'is_active')::boolean <> u.is_active THEN
			UPDATE iam.users SET email = patched->>'email', name = patched->>'name', role = patched->>'role',
								 department = patched->>'department', phone = patched->>'phone',
								 profile_image = patched->>'profile_image',
								 employment_equity = patched->>'employment_equity',
								 is_active = (patched->>'is_active')::boolean, metadata = patched->'metadata'
			WHERE id = u.id RETURNING * INTO u;
		ELSE
			-- columns that permission checks read are left out of the SET
			-- list, so that the permission caches stay warm
			UPDATE iam.users SET email = patched->>'email', name = patched->>'name',
								 department = patched->>'department', phone = patched->>'phone',
								 profile_image = patched->>'profile_image',
								 employment_equity = patched->>'employment_equity', metadata = patched->'metadata'
			WHERE id = u.id RETURNING * INTO u;
		END IF;
	EXCEPTION WHEN unique_violation THEN
		PERFORM iam.api_error('IA409', 'email: a user with this e-mail address already exists', 'Use another e-mail address.');
	END;
	RETURN iam.api_user_response(200, u, me);
END
$$;
COMMENT ON FUNCTION iam.api_users_update(jsonb, jsonb) IS
	'PATCH /users/{id} (users.update): JSON merge patch (RFC 7396) of email, name, role, department, phone, profile_image, employment_equity, is_active, metadata (null removes an optional field; metadata merges); IA412 when If-Match does not match the ETag; a new role needs roles.manage and its every permission (escalation guard, recorded); IA422 for unknown, immutable or bad fields, IA409 for a taken e-mail address or deactivating oneself';

CREATE FUNCTION iam.api_users_delete(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	u		iam.users;
BEGIN
	PERFORM iam.api_require(me, 'users.delete');
	u := iam.api_target_user(params, true);
	PERFORM iam.api_check_if_match(params, iam.api_user_etag(u));
	IF u.id = me THEN
		PERFORM iam.api_error('IA409', 'you cannot delete yourself', 'Ask another administrator.');
	END IF;
	UPDATE iam.users SET deleted_at = now(), is_active = false WHERE id = u.id;
	UPDATE iam.user_sessions SET revoked_at = now() WHERE user_id = u.id AND revoked_at IS NULL;
	RETURN ROW(204, NULL, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_users_delete(jsonb, jsonb) IS
	'DELETE /users/{id} (users.delete): soft delete (deleted_at, is_active false) and revocation of the user''s sessions; 204; IA409 for oneself; IA412 when If-Match does not match';

CREATE FUNCTION iam.api_users_restore(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	target	uuid := iam.api_path_id(params, 'id');
	u		iam.users;
BEGIN
	PERFORM iam.api_require(me, 'users.delete');
	SELECT * INTO u FROM iam.users WHERE id = target AND org_id = iam.current_org_id() FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		PERFORM iam.api_error('IA404', 'user not found', 'Check the user id.');
	ELSIF u.deleted_at IS NULL THEN
		PERFORM iam.api_error('IA409', 'the user is not deleted', 'Only a deleted user can be restored.');
	END IF;
	UPDATE iam.users SET deleted_at = NULL, is_active = true WHERE id = u.id RETURNING * INTO u;
	RETURN iam.api_user_response(200, u, me);
END
$$;
COMMENT ON FUNCTION iam.api_users_restore(jsonb, jsonb) IS
	'POST /users/{id}/restore (users.delete): undoes a soft delete (deleted_at NULL, is_active true); 200 with the user; IA409 when the user is not deleted';

CREATE FUNCTION iam.api_users_permissions(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	u		iam.users;
BEGIN
	PERFORM iam.api_require(me, 'users.read');
	u := iam.api_target_user(params, false);
	RETURN ROW(200, json_build_object(
		'user_id', u.id,
		'roles', to_json(ARRAY(SELECT iam.effective_roles(u.id))),
		'permissions', to_json(ARRAY(SELECT iam.user_permissions(u.id)))), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_users_permissions(jsonb, jsonb) IS
	'GET /users/{id}/permissions (users.read): the roles and global permissions the user holds now, inherited ones included';

CREATE FUNCTION iam.api_users_roles_grant(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	org		uuid := iam.current_org_id();
	u		iam.users;
	rname	text;
	rid		uuid;
	expires	timestamptz;
	existed	boolean;
	g		record;
BEGIN
	PERFORM iam.api_require(me, 'roles.manage');
	u := iam.api_target_user(params, false);
	PERFORM iam.api_body_object(body, ARRAY['role', 'expires_at']);
	rname := iam.api_string_field(body, 'role', 50, false, '^[a-z][a-z0-9_]*$', 'a role name');
	IF iam.api_string_field(body, 'expires_at', 64, true) IS NOT NULL THEN
		BEGIN
			expires := iam.api_timestamp(body, 'expires_at');
		EXCEPTION WHEN SQLSTATE 'IA400' THEN
			PERFORM iam.api_error('IA422', 'expires_at: must be an RFC 3339 date-time such as 2026-01-02T03:04:05Z',
								  'Include the time zone (Z or an offset).');
		END;
		IF expires <= now() THEN
			PERFORM iam.api_error('IA422', 'expires_at: must be in the future', 'Leave expires_at out for no expiry.');
		END IF;
	END IF;
	SELECT r.id INTO rid FROM iam.roles r WHERE r.name = rname AND (r.org_id = org OR r.org_id IS NULL);
	IF rid IS NULL THEN
		PERFORM iam.api_error('IA422', 'role: unknown role', 'Use a system role (admin, member, auditor) or a role of your organisation.');
	END IF;
	existed := EXISTS (SELECT FROM iam.user_roles ur WHERE ur.user_id = u.id AND ur.role_id = rid);
	BEGIN
		PERFORM iam.grant_role(u.id, rname, expires);
	EXCEPTION
		WHEN insufficient_privilege THEN
			-- grant_role has recorded the attempt already
			PERFORM iam.api_error('IA403', 'permission denied: you cannot grant role ' || rname
										   || ', it holds permissions you do not hold',
								  'A user can only grant roles whose every permission it holds.');
		WHEN invalid_parameter_value THEN
			PERFORM iam.api_error('IA422', 'role: cannot be granted', 'Check the role and expires_at.');
	END;
	SELECT ur.expires_at, ur.granted_at INTO g FROM iam.user_roles ur WHERE ur.user_id = u.id AND ur.role_id = rid;
	RETURN ROW(CASE WHEN existed THEN 200 ELSE 201 END,
			   json_build_object('user_id', u.id, 'role', rname, 'granted_by', me,
								 'granted_at', iam.api_ts(g.granted_at), 'expires_at', iam.api_ts(g.expires_at)),
			   CASE WHEN NOT existed THEN jsonb_build_object('Location', format('/api/v1/users/%s/roles/%s', u.id, rname)) END
			  )::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_users_roles_grant(jsonb, jsonb) IS
	'POST /users/{id}/roles (roles.manage): grants {role, expires_at?} through iam.grant_role (escalation guard, refusals recorded); 201 for a new grant, 200 when it updates an existing one';

CREATE FUNCTION iam.api_users_roles_revoke(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	u		iam.users;
	rname	text := params->>'role';
BEGIN
	PERFORM iam.api_require(me, 'roles.manage');
	u := iam.api_target_user(params, false);
	IF rname IS NULL OR rname !~ '^[a-z][a-z0-9_]{0,49}$' OR NOT iam.revoke_role(u.id, rname) THEN
		PERFORM iam.api_error('IA404', 'the user does not hold this role as an extra role',
							  'The primary role is changed with PATCH /api/v1/users/{id}.');
	END IF;
	RETURN ROW(204, NULL, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_users_roles_revoke(jsonb, jsonb) IS
	'DELETE /users/{id}/roles/{role} (roles.manage): revokes an extra role through iam.revoke_role; 204; IA404 when the user does not hold it (the primary role is changed with PATCH)';

------------------------------------------------------------------------------
-- Roles and the permission catalogue
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_roles_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	result	json;
BEGIN
	PERFORM iam.api_require(me, 'roles.read');
	SELECT json_build_object('data', coalesce(json_agg(iam.api_role_json(r) ORDER BY r.is_system DESC, r.name), '[]'),
							 'next_cursor', NULL)
	INTO result FROM iam.roles r WHERE r.org_id = iam.current_org_id() OR r.org_id IS NULL;
	RETURN ROW(200, result, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_roles_list(jsonb, jsonb) IS
	'GET /roles (roles.read): the system roles and the caller''s organisation''s roles, each with its permissions; {"data", "next_cursor": null}';

CREATE FUNCTION iam.api_roles_create(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	org		uuid := iam.current_org_id();
	rname	text;
	perms	text[];
	r		iam.roles;
BEGIN
	PERFORM iam.api_require(me, 'roles.manage');
	PERFORM iam.api_body_object(body, ARRAY['name', 'display_name', 'description', 'permissions']);
	rname := iam.api_string_field(body, 'name', 50, false, '^[a-z][a-z0-9_]*$',
								  'lower-case letters, digits and underscores, starting with a letter');
	PERFORM iam.api_string_field(body, 'display_name', 100, true);
	IF jsonb_typeof(body->'display_name') = 'string' AND btrim(body->>'display_name') = '' THEN
		PERFORM iam.api_error('IA422', 'display_name: must not be empty', 'Leave display_name out to use the name.');
	END IF;
	PERFORM iam.api_string_field(body, 'description', 1000, true);
	IF body ? 'permissions' THEN
		perms := iam.api_permission_names(body, 'permissions', 0, 200, true);
	END IF;
	IF EXISTS (SELECT FROM iam.roles x WHERE x.name = rname AND (x.org_id = org OR x.org_id IS NULL)) THEN
		PERFORM iam.api_error('IA409', 'name: a role with this name already exists', 'Choose another name.');
	END IF;
	INSERT INTO iam.roles (name, display_name, description, org_id)
	VALUES (rname, coalesce(body->>'display_name', rname), body->>'description', org)
	RETURNING * INTO r;
	IF perms IS NOT NULL THEN
		BEGIN
			PERFORM iam.set_role_permissions(r.id, perms);
		EXCEPTION WHEN insufficient_privilege THEN
			-- set_role_permissions has recorded the attempt already
			PERFORM iam.api_error('IA403', 'permission denied: a role can only be given permissions you hold',
								  'Leave out the permissions you do not hold.');
		END;
	END IF;
	RETURN iam.api_role_response(201, r);
END
$$;
COMMENT ON FUNCTION iam.api_roles_create(jsonb, jsonb) IS
	'POST /roles (roles.manage): creates a role of the caller''s organisation from {name, display_name?, description?, permissions?}; permissions go through iam.set_role_permissions (escalation guard); 201 with Location and ETag; IA409 for a taken or system name';

CREATE FUNCTION iam.api_roles_get(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
BEGIN
	PERFORM iam.api_require(me, 'roles.read');
	RETURN iam.api_role_response(200, iam.api_target_role(params, false));
END
$$;
COMMENT ON FUNCTION iam.api_roles_get(jsonb, jsonb) IS
	'GET /roles/{id} (roles.read): a system role or one of the caller''s organisation, with its permissions and ETag';

CREATE FUNCTION iam.api_roles_update(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	org		uuid := iam.current_org_id();
	r		iam.roles;
	old_name text;
	patched	jsonb;
BEGIN
	PERFORM iam.api_require(me, 'roles.manage');
	r := iam.api_target_role(params, true);
	PERFORM iam.api_check_if_match(params, iam.api_role_etag(r));
	IF r.is_system THEN
		PERFORM iam.api_error('IA409', 'system roles cannot be changed', 'Create a role of your organisation instead.');
	END IF;
	PERFORM iam.api_body_object(body, ARRAY['name', 'display_name', 'description'],
								ARRAY['id', 'is_system', 'org_id', 'created_at', 'updated_at', 'permissions']);
	IF jsonb_typeof(body->'name') = 'null' OR jsonb_typeof(body->'display_name') = 'null' THEN
		PERFORM iam.api_error('IA422', CASE WHEN jsonb_typeof(body->'name') = 'null' THEN 'name' ELSE 'display_name' END
									   || ': cannot be removed', 'Send a new value, or leave it out.');
	END IF;
	patched := iam.api_merge_patch(jsonb_build_object('name', r.name, 'display_name', r.display_name,
													  'description', r.description), body);
	PERFORM iam.api_string_field(patched, 'name', 50, false, '^[a-z][a-z0-9_]*$',
								 'lower-case letters, digits and underscores, starting with a letter');
	PERFORM iam.api_string_field(patched, 'display_name', 100, false);
	PERFORM iam.api_string_field(patched, 'description', 1000, true);
	old_name := r.name;
	IF patched->>'name' <> old_name
	   AND EXISTS (SELECT FROM iam.roles x WHERE x.name = patched->>'name' AND (x.org_id = org OR x.org_id IS NULL)) THEN
		PERFORM iam.api_error('IA409', 'name: a role with this name already exists', 'Choose another name.');
	END IF;
	UPDATE iam.roles SET name = patched->>'name', display_name = patched->>'display_name',
						 description = patched->>'description'
	WHERE id = r.id RETURNING * INTO r;
	IF r.name <> old_name THEN
		-- users.role names the role: renaming it keeps its holders
		UPDATE iam.users SET role = r.name WHERE org_id = org AND role = old_name;
	END IF;
	RETURN iam.api_role_response(200, r);
END
$$;
COMMENT ON FUNCTION iam.api_roles_update(jsonb, jsonb) IS
	'PATCH /roles/{id} (roles.manage): JSON merge patch of name, display_name, description; a rename carries the users whose primary role it is along; IA409 for a system role or a taken name; IA412 when If-Match does not match';

CREATE FUNCTION iam.api_roles_delete(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	r		iam.roles;
	holders	bigint;
BEGIN
	PERFORM iam.api_require(me, 'roles.manage');
	r := iam.api_target_role(params, true);
	PERFORM iam.api_check_if_match(params, iam.api_role_etag(r));
	IF r.is_system THEN
		PERFORM iam.api_error('IA409', 'system roles cannot be deleted', 'Only roles of your organisation can be deleted.');
	END IF;
	SELECT count(*) INTO holders FROM iam.users u WHERE u.org_id = r.org_id AND u.role = r.name;
	IF holders > 0 THEN
		PERFORM iam.api_error('IA409', format('the role is the primary role of %s user(s)', holders),
							  'Give those users another role first.');
	END IF;
	DELETE FROM iam.roles WHERE id = r.id;
	RETURN ROW(204, NULL, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_roles_delete(jsonb, jsonb) IS
	'DELETE /roles/{id} (roles.manage): deletes a role of the caller''s organisation with its grants; 204; IA409 for a system role or one that is still some user''s primary role';

CREATE FUNCTION iam.api_roles_permissions_set(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	r		iam.roles;
	perms	text[];
BEGIN
	PERFORM iam.api_require(me, 'roles.manage');
	r := iam.api_target_role(params, true);
	IF r.is_system THEN
		PERFORM iam.api_error('IA409', 'system roles cannot be changed', 'Create a role of your organisation instead.');
	END IF;
	PERFORM iam.api_body_object(body, ARRAY['permissions']);
	perms := iam.api_permission_names(body, 'permissions', 0, 200, true);
	BEGIN
		PERFORM iam.set_role_permissions(r.id, perms);
	EXCEPTION WHEN insufficient_privilege THEN
		-- set_role_permissions has recorded the attempt already
		PERFORM iam.api_error('IA403', 'permission denied: a role can only be given permissions you hold',
							  'Leave out the permissions you do not hold.');
	END;
	SELECT * INTO r FROM iam.roles WHERE id = r.id;
	RETURN iam.api_role_response(200, r);
END
$$;
COMMENT ON FUNCTION iam.api_roles_permissions_set(jsonb, jsonb) IS
	'PUT /roles/{id}/permissions (roles.manage): replaces the role''s own permissions with {permissions: [names]} through iam.set_role_permissions (escalation guard, refusals recorded); IA409 for a system role';

CREATE FUNCTION iam.api_permissions_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	result	json;
BEGIN
	PERFORM iam.api_require(me, 'roles.read');
	SELECT json_build_object('data', coalesce(json_agg(json_build_object(
				'name', p.name, 'display_name', p.display_name, 'description', p.description,
				'category', p.category) ORDER BY p.name), '[]'), 'next_cursor', NULL)
	INTO result FROM iam.permissions p;
	RETURN ROW(200, result, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_permissions_list(jsonb, jsonb) IS
	'GET /permissions (roles.read): the permission catalogue';

------------------------------------------------------------------------------
-- Authorisation checks for services (a hot path: static SQL, one pass)
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_authz_check(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	perms	jsonb := body->'permissions';
	res		jsonb := body->'resource';
	names	text[];
	result	json;
BEGIN
	IF jsonb_typeof(body) IS DISTINCT FROM 'object'
	   OR EXISTS (SELECT FROM jsonb_object_keys(body) AS k WHERE k NOT IN ('permissions', 'resource')) THEN
		PERFORM iam.api_body_object(body, ARRAY['permissions', 'resource']);
	END IF;
	IF jsonb_typeof(perms) IS DISTINCT FROM 'array' OR jsonb_array_length(perms) NOT BETWEEN 1 AND 100
	   OR EXISTS (SELECT FROM jsonb_array_elements(perms) AS e WHERE jsonb_typeof(e) <> 'string') THEN
		PERFORM iam.api_error('IA422', 'permissions: must be an array of 1 to 100 permission names',
							  'Send e.g. {"permissions": ["users.read"]}.');
	END IF;
	names := ARRAY(SELECT jsonb_array_elements_text(perms));
	IF res IS NULL OR jsonb_typeof(res) = 'null' THEN
		SELECT json_object_agg(n.name, n.ok) INTO result
		FROM (SELECT DISTINCT ON (a.name) a.name, a.ok
			  FROM unnest(names, iam.check_permissions(me, names)) AS a(name, ok)) AS n;
	ELSE
		IF jsonb_typeof(res) <> 'object'
		   OR EXISTS (SELECT FROM jsonb_object_keys(res) AS k WHERE k NOT IN ('type', 'id'))
		   OR jsonb_typeof(res->'type') IS DISTINCT FROM 'string' OR res->>'type' !~ '^[a-z][a-z0-9_]{0,49}$'
		   OR jsonb_typeof(res->'id') IS DISTINCT FROM 'string'
		   OR res->>'id' !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
			PERFORM iam.api_error('IA422', 'resource: must be {"type": a resource type, "id": a uuid}',
								  'Send e.g. {"type": "document", "id": "00000000-0000-0000-0000-000000000000"}.');
		END IF;
		SELECT json_object_agg(n.name, iam.has_permission(me, n.name, res->>'type', (res->>'id')::uuid)) INTO result
		FROM (SELECT DISTINCT unnest(names) AS name) AS n;
	END IF;
	RETURN ROW(200, json_build_object('results', result), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_authz_check(jsonb, jsonb) IS
	'POST /authz/check: {"results": {"permission": true|false}} for the caller and {permissions: [1 to 100 names], resource?: {type, id}}; unknown or malformed names answer false';

------------------------------------------------------------------------------
-- Audit trail and activity
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_audit_logs_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	pii		boolean;
	lim		int := iam.api_limit(params);
	cur		jsonb;
	conds	text := '';
	items	json[] := '{}';
	last_key text;
	last_id	uuid;
	more	boolean := false;
	r		record;
BEGIN
	PERFORM iam.api_require(me, 'audit.read');
	pii := iam.has_permission(me, 'users.read_pii');
	cur := iam.api_cursor_decode(params->>'cursor', 'audit-logs', true);
	IF params ? 'actor' THEN conds := conds || ' AND a.user_id = $2'; END IF;
	IF params ? 'action' THEN conds := conds || ' AND a.action = $3'; END IF;
	IF params ? 'entity_type' THEN conds := conds || ' AND a.entity_type = $4'; END IF;
	IF params ? 'entity_id' THEN conds := conds || ' AND a.entity_id = $5'; END IF;
	IF params ? 'since' THEN conds := conds || ' AND a.created_at >= $6'; END IF;
	IF params ? 'until' THEN conds := conds || ' AND a.created_at < $7'; END IF;
	IF cur IS NOT NULL THEN conds := conds || ' AND (a.created_at, a.id) < ($8::timestamptz, $9)'; END IF;
	FOR r IN EXECUTE
		'SELECT json_build_object(''id'', a.id, ''seq'', a.seq, ''action'', a.action, ''actor'', a.user_id, '
		'''entity_type'', a.entity_type, ''entity_id'', a.entity_id, '
		'''changes'', CASE WHEN $11 OR a.entity_type IS DISTINCT FROM ''user'' THEN a.changes '
		'ELSE iam.api_mask_changes(a.changes) END, '
		'''ip_address'', a.ip_address, ''user_agent'', a.user_agent, ''request_id'', a.request_id, '
		'''db_role'', a.db_role, ''created_at'', iam.api_ts(a.created_at)) AS j, '
		'iam.api_ts(a.created_at) AS k, a.id FROM iam.audit_logs a WHERE a.org_id = $1' || conds
		|| ' ORDER BY a.created_at DESC, a.id DESC LIMIT $10'
		USING iam.current_org_id(), iam.api_uuid_param(params, 'actor'), params->>'action', params->>'entity_type',
			  iam.api_uuid_param(params, 'entity_id'), iam.api_timestamp(params, 'since'),
			  iam.api_timestamp(params, 'until'), cur->>'v', (cur->>'id')::uuid, lim + 1, pii
	LOOP
		IF cardinality(items) = lim THEN
			more := true;
			EXIT;
		END IF;
		items := items || r.j;
		last_key := r.k;
		last_id := r.id;
	END LOOP;
	RETURN ROW(200,
			   json_build_object('data', to_json(items),
								 'next_cursor', CASE WHEN more THEN iam.api_cursor_encode('audit-logs', last_key, last_id) END),
			   CASE WHEN more THEN iam.api_next_link('/audit-logs', params,
					ARRAY['actor', 'action', 'entity_type', 'entity_id', 'since', 'until', 'limit'],
					iam.api_cursor_encode('audit-logs', last_key, last_id)) END)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_audit_logs_list(jsonb, jsonb) IS
	'GET /audit-logs (audit.read): the organisation''s audit trail, newest first, filtered (actor, action, entity_type, entity_id, since inclusive, until exclusive) and keyset-paginated (limit, cursor); e-mail addresses and phone numbers inside changes are masked without users.read_pii';

CREATE FUNCTION iam.api_audit_logs_verify(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	org		uuid := iam.current_org_id();
	v		record;
BEGIN
	PERFORM iam.api_require(me, 'audit.read');
	SELECT * INTO v FROM iam.audit_verify(org) AS x WHERE x.org_id = org;
	RETURN ROW(200, json_build_object(
		'ok', coalesce(v.ok, true), 'first_bad_seq', v.first_bad_seq, 'detail', v.detail,
		'sealed', coalesce(v.sealed, 0), 'unsealed', coalesce(v.unsealed, 0)), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_audit_logs_verify(jsonb, jsonb) IS
	'GET /audit-logs/verify (audit.read): iam.audit_verify of the caller''s organisation''s chain: {ok, first_bad_seq, detail, sealed, unsealed}';

CREATE FUNCTION iam.api_activity_logs_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	lim		int := iam.api_limit(params);
	cur		jsonb;
	conds	text := '';
	items	json[] := '{}';
	last_key text;
	last_id	uuid;
	more	boolean := false;
	r		record;
BEGIN
	PERFORM iam.api_require(me, 'activity.read');
	cur := iam.api_cursor_decode(params->>'cursor', 'activity-logs', true);
	IF params ? 'user' THEN conds := conds || ' AND a.user_id = $2'; END IF;
	IF params ? 'type' THEN conds := conds || ' AND a.type = $3'; END IF;
	IF params ? 'since' THEN conds := conds || ' AND a.created_at >= $4'; END IF;
	IF params ? 'until' THEN conds := conds || ' AND a.created_at < $5'; END IF;
	IF cur IS NOT NULL THEN conds := conds || ' AND (a.created_at, a.id) < ($6::timestamptz, $7)'; END IF;
	FOR r IN EXECUTE
		'SELECT json_build_object(''id'', a.id, ''user_id'', a.user_id, ''type'', a.type, '
		'''description'', a.description, ''ip_address'', a.ip_address, ''user_agent'', a.user_agent, '
		'''location'', a.location, ''metadata'', a.metadata, ''created_at'', iam.api_ts(a.created_at)) AS j, '
		'iam.api_ts(a.created_at) AS k, a.id FROM iam.activity_logs a WHERE a.org_id = $1' || conds
		|| ' ORDER BY a.created_at DESC, a.id DESC LIMIT $8'
		USING iam.current_org_id(), iam.api_uuid_param(params, 'user'), params->>'type',
			  iam.api_timestamp(params, 'since'), iam.api_timestamp(params, 'until'),
			  cur->>'v', (cur->>'id')::uuid, lim + 1
	LOOP
		IF cardinality(items) = lim THEN
			more := true;
			EXIT;
		END IF;
		items := items || r.j;
		last_key := r.k;
		last_id := r.id;
	END LOOP;
	RETURN ROW(200,
			   json_build_object('data', to_json(items),
								 'next_cursor', CASE WHEN more THEN iam.api_cursor_encode('activity-logs', last_key, last_id) END),
			   CASE WHEN more THEN iam.api_next_link('/activity-logs', params,
					ARRAY['user', 'type', 'since', 'until', 'limit'],
					iam.api_cursor_encode('activity-logs', last_key, last_id)) END)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_activity_logs_list(jsonb, jsonb) IS
	'GET /activity-logs (activity.read): the organisation''s security events (logins, failures, lockouts, denials, escalation attempts), newest first, filtered (user, type, since inclusive, until exclusive) and keyset-paginated (limit, cursor)';

------------------------------------------------------------------------------
-- The routes
------------------------------------------------------------------------------
INSERT INTO iam.routes (method, path, handler, permission, read_only, rate_limit_class, query_params, body_schema, summary) VALUES
('GET', '/users/me', 'iam.api_users_me(jsonb,jsonb)', NULL, true, 'default', '{}', NULL,
 'The caller and the permissions it holds'),
('GET', '/users', 'iam.api_users_list(jsonb,jsonb)', 'users.read', true, 'default',
 '{"q": "text", "role": "text", "department": "text", "is_active": "bool", "created_after": "timestamptz",
   "created_before": "timestamptz", "sort": "enum:created_at,name,email", "order": "enum:asc,desc",
   "limit": "int", "cursor": "text"}', NULL,
 'List users: filters, sort and keyset pagination'),
('POST', '/users', 'iam.api_users_create(jsonb,jsonb)', 'users.create', false, 'default', '{}',
 '{"type": "object", "additionalProperties": false, "required": ["email", "name"], "properties": {
   "email": {"type": "string", "format": "email", "maxLength": 255},
   "name": {"type": "string", "minLength": 1, "maxLength": 255},
   "role": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 50, "default": "member"},
   "department": {"type": ["string", "null"], "maxLength": 100},
   "phone": {"type": ["string", "null"], "pattern": "^\\+?[0-9 ().-]{3,20}$"},
   "profile_image": {"type": ["string", "null"], "format": "uri", "maxLength": 2048},
   "employment_equity": {"type": ["string", "null"], "maxLength": 50},
   "is_active": {"type": "boolean", "default": true},
   "metadata": {"type": ["object", "null"]},
   "password": {"type": "string", "maxLength": 1024, "writeOnly": true}}}',
 'Create a user'),
('GET', '/users/{id:uuid}', 'iam.api_users_get(jsonb,jsonb)', 'users.read', true, 'default', '{}', NULL,
 'Read a user'),
('PATCH', '/users/{id:uuid}', 'iam.api_users_update(jsonb,jsonb)', 'users.update', false, 'default', '{}',
 '{"type": "object", "additionalProperties": false, "properties": {
   "email": {"type": "string", "format": "email", "maxLength": 255},
   "name": {"type": "string", "minLength": 1, "maxLength": 255},
   "role": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 50},
   "department": {"type": ["string", "null"], "maxLength": 100},
   "phone": {"type": ["string", "null"], "pattern": "^\\+?[0-9 ().-]{3,20}$"},
   "profile_image": {"type": ["string", "null"], "format": "uri", "maxLength": 2048},
   "employment_equity": {"type": ["string", "null"], "maxLength": 50},
   "is_active": {"type": "boolean"},
   "metadata": {"type": ["object", "null"]}}}',
 'Update a user (JSON merge patch, If-Match)'),
('DELETE', '/users/{id:uuid}', 'iam.api_users_delete(jsonb,jsonb)', 'users.delete', false, 'default', '{}', NULL,
 'Soft-delete a user'),
('POST', '/users/{id:uuid}/restore', 'iam.api_users_restore(jsonb,jsonb)', 'users.delete', false, 'default', '{}', NULL,
 'Restore a soft-deleted user'),
('GET', '/users/{id:uuid}/permissions', 'iam.api_users_permissions(jsonb,jsonb)', 'users.read', true, 'default', '{}', NULL,
 'A user''s effective roles and permissions'),
('POST', '/users/{id:uuid}/roles', 'iam.api_users_roles_grant(jsonb,jsonb)', 'roles.manage', false, 'default', '{}',
 '{"type": "object", "additionalProperties": false, "required": ["role"], "properties": {
   "role": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 50},
   "expires_at": {"type": ["string", "null"], "format": "date-time"}}}',
 'Grant a user an extra role'),
('DELETE', '/users/{id:uuid}/roles/{role:text}', 'iam.api_users_roles_revoke(jsonb,jsonb)', 'roles.manage', false, 'default', '{}', NULL,
 'Revoke an extra role from a user'),
('GET', '/roles', 'iam.api_roles_list(jsonb,jsonb)', 'roles.read', true, 'default', '{}', NULL,
 'List the system roles and the organisation''s roles'),
('POST', '/roles', 'iam.api_roles_create(jsonb,jsonb)', 'roles.manage', false, 'default', '{}',
 '{"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
   "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 50},
   "display_name": {"type": ["string", "null"], "minLength": 1, "maxLength": 100},
   "description": {"type": ["string", "null"], "maxLength": 1000},
   "permissions": {"type": "array", "maxItems": 200, "items": {"type": "string"}}}}',
 'Create a role'),
('GET', '/roles/{id:uuid}', 'iam.api_roles_get(jsonb,jsonb)', 'roles.read', true, 'default', '{}', NULL,
 'Read a role'),
('PATCH', '/roles/{id:uuid}', 'iam.api_roles_update(jsonb,jsonb)', 'roles.manage', false, 'default', '{}',
 '{"type": "object", "additionalProperties": false, "properties": {
   "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 50},
   "display_name": {"type": "string", "minLength": 1, "maxLength": 100},
   "description": {"type": ["string", "null"], "maxLength": 1000}}}',
 'Update a role (JSON merge patch, If-Match)'),
('DELETE', '/roles/{id:uuid}', 'iam.api_roles_delete(jsonb,jsonb)', 'roles.manage', false, 'default', '{}', NULL,
 'Delete a role'),
('PUT', '/roles/{id:uuid}/permissions', 'iam.api_roles_permissions_set(jsonb,jsonb)', 'roles.manage', false, 'default', '{}',
 '{"type": "object", "additionalProperties": false, "required": ["permissions"], "properties": {
   "permissions": {"type": "array", "maxItems": 200, "items": {"type": "string"}}}}',
 'Replace a role''s permissions'),
('GET', '/permissions', 'iam.api_permissions_list(jsonb,jsonb)', 'roles.read', true, 'default', '{}', NULL,
 'The permission catalogue'),
('POST', '/authz/check', 'iam.api_authz_check(jsonb,jsonb)', NULL, true, 'default', '{}',
 '{"type": "object", "additionalProperties": false, "required": ["permissions"], "properties": {
   "permissions": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "string"}},
   "resource": {"type": ["object", "null"], "additionalProperties": false, "required": ["type", "id"], "properties": {
     "type": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 50},
     "id": {"type": "string", "format": "uuid"}}}}}',
 'Check the caller''s permissions'),
('GET', '/audit-logs', 'iam.api_audit_logs_list(jsonb,jsonb)', 'audit.read', true, 'default',
 '{"actor": "uuid", "action": "text", "entity_type": "text", "entity_id": "uuid", "since": "timestamptz",
   "until": "timestamptz", "limit": "int", "cursor": "text"}', NULL,
 'The audit trail, newest first'),
('GET', '/audit-logs/verify', 'iam.api_audit_logs_verify(jsonb,jsonb)', 'audit.read', true, 'expensive', '{}', NULL,
 'Verify the organisation''s audit hash chain'),
('GET', '/activity-logs', 'iam.api_activity_logs_list(jsonb,jsonb)', 'activity.read', true, 'default',
 '{"user": "uuid", "type": "text", "since": "timestamptz", "until": "timestamptz", "limit": "int", "cursor": "text"}', NULL,
 'Security events, newest first');

------------------------------------------------------------------------------
-- OpenAPI 3.1, derived from iam.routes
------------------------------------------------------------------------------
CREATE FUNCTION iam.openapi_param_schema(name text, type text, in_path boolean) RETURNS jsonb
	LANGUAGE sql IMMUTABLE
	RETURN CASE
		WHEN type = 'uuid' THEN '{"type": "string", "format": "uuid"}'::jsonb
		WHEN type = 'int' AND name = 'limit' THEN '{"type": "integer", "minimum": 1, "maximum": 200, "default": 50}'
		WHEN type = 'int' THEN '{"type": "integer", "minimum": 0, "maximum": 9999999999}'
		WHEN type = 'bool' THEN '{"type": "boolean"}'
		WHEN type = 'timestamptz' THEN '{"type": "string", "format": "date-time"}'
		WHEN type = 'text' AND in_path THEN '{"type": "string", "minLength": 1, "maxLength": 200}'
		WHEN type = 'text' THEN '{"type": "string", "maxLength": 500}'
		WHEN type LIKE 'enum:%' THEN jsonb_build_object('type', 'string',
									 'enum', to_jsonb(string_to_array(substr(type, 6), ',')))
	END;
COMMENT ON FUNCTION iam.openapi_param_schema(text, text, boolean) IS
	'Internal: the JSON Schema of a path or query parameter of a route from its declared type (uuid, int, bool, timestamptz, text, enum:a,b)';

CREATE FUNCTION iam.openapi() RETURNS json
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	problem		jsonb := '{"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}';
	paths		jsonb := '{}';
	r			record;
	oapath		text;
	op_name		text;
	parameters	jsonb;
	responses	jsonb;
	ok_headers	jsonb;
	ok_schema	jsonb;
	op			jsonb;
	m			text[];
	if_match	boolean;
BEGIN
	FOR r IN SELECT rt.*, p.proname::text AS fname, obj_description(p.oid, 'pg_proc') AS fdesc
			 FROM iam.routes rt JOIN pg_proc p ON p.oid = rt.handler::oid
			 ORDER BY rt.path, rt.method
	LOOP
		oapath := '/api/v1' || regexp_replace(r.path, '\{([a-z_][a-z0-9_]*):[a-z]+\}', '{\1}', 'g');
		op_name := regexp_replace(r.fname, '^api_', '');
		if_match := r.method IN ('PATCH', 'DELETE') AND r.path ~ '^/[a-z-]+/\{id:uuid\}$';

		parameters := '[]';
		FOR m IN SELECT regexp_matches(r.path, '\{([a-z_][a-z0-9_]*):([a-z]+)\}', 'g') LOOP
			parameters := parameters || jsonb_build_array(jsonb_build_object(
				'name', m[1], 'in', 'path', 'required', true,
				'schema', iam.openapi_param_schema(m[1], m[2], true)));
		END LOOP;
		parameters := parameters || coalesce((SELECT jsonb_agg(jsonb_build_object(
				'name', q.key, 'in', 'query', 'required', false,
				'schema', iam.openapi_param_schema(q.key, q.value #>> '{}', false)) ORDER BY q.key)
			FROM jsonb_each(r.query_params) AS q), '[]');
		IF if_match THEN
			parameters := parameters || jsonb_build_array(jsonb_build_object(
				'name', 'If-Match', 'in', 'header', 'required', false,
				'description', 'ETag of the version the change is based on; 412 when the resource has changed since',
				'schema', jsonb_build_object('type', 'string')));
		END IF;

		ok_schema := jsonb_build_object('$ref', '#/components/schemas/' || CASE
			WHEN r.fname IN ('api_users_get', 'api_users_create', 'api_users_update', 'api_users_restore') THEN 'User'
			WHEN r.fname = 'api_users_me' THEN 'Me'
			WHEN r.fname = 'api_users_list' THEN 'UserPage'
			WHEN r.fname = 'api_users_permissions' THEN 'UserPermissions'
			WHEN r.fname = 'api_users_roles_grant' THEN 'RoleGrant'
			WHEN r.fname IN ('api_roles_get', 'api_roles_create', 'api_roles_update', 'api_roles_permissions_set') THEN 'Role'
			WHEN r.fname = 'api_roles_list' THEN 'RolePage'
			WHEN r.fname = 'api_permissions_list' THEN 'PermissionPage'
			WHEN r.fname = 'api_authz_check' THEN 'AuthzResults'
			WHEN r.fname = 'api_audit_logs_list' THEN 'AuditLogPage'
			WHEN r.fname = 'api_audit_logs_verify' THEN 'AuditVerification'
			WHEN r.fname = 'api_activity_logs_list' THEN 'ActivityLogPage'
			ELSE 'Object' END);
		ok_headers := '{}';
		IF ok_schema->>'$ref' ~ '/(User|Role)$' THEN
			ok_headers := ok_headers || '{"ETag": {"description": "Version of the resource, for If-Match", "schema": {"type": "string"}}}';
		END IF;
		IF r.query_params ? 'cursor' THEN
			ok_headers := ok_headers || '{"Link": {"description": "<...&cursor=...>; rel=\"next\" when there is a next page", "schema": {"type": "string"}}}';
		END IF;

		IF r.method = 'DELETE' THEN
			responses := '{"204": {"description": "Done"}}';
		ELSIF r.fname ~ '_create$' THEN
			responses := jsonb_build_object('201', jsonb_build_object('description', 'Created',
				'headers', ok_headers || '{"Location": {"description": "URL of the new resource", "schema": {"type": "string"}}}',
				'content', jsonb_build_object('application/json', jsonb_build_object('schema', ok_schema))));
		ELSIF r.fname ~ '_grant$' THEN
			responses := jsonb_build_object(
				'200', jsonb_build_object('description', 'The grant existed and was updated',
					'content', jsonb_build_object('application/json', jsonb_build_object('schema', ok_schema))),
				'201', jsonb_build_object('description', 'Granted',
					'headers', '{"Location": {"description": "URL of the grant", "schema": {"type": "string"}}}'::jsonb,
					'content', jsonb_build_object('application/json', jsonb_build_object('schema', ok_schema))));
		ELSE
			responses := jsonb_build_object('200', jsonb_build_object('description', 'OK',
				'content', jsonb_build_object('application/json', jsonb_build_object('schema', ok_schema)))
				|| CASE WHEN ok_headers <> '{}' THEN jsonb_build_object('headers', ok_headers) ELSE '{}' END);
		END IF;
		responses := responses || '{"400": {"$ref": "#/components/responses/BadRequest"},
									"429": {"$ref": "#/components/responses/TooManyRequests"},
									"503": {"$ref": "#/components/responses/Unavailable"},
									"default": {"$ref": "#/components/responses/Error"}}';
		IF r.authenticated THEN
			responses := responses || '{"401": {"$ref": "#/components/responses/Unauthorized"}}';
		END IF;
		IF r.permission IS NOT NULL OR r.method <> 'GET' AND r.fname <> 'api_authz_check' THEN
			responses := responses || '{"403": {"$ref": "#/components/responses/Forbidden"}}';
		END IF;
		IF r.path ~ '\{' THEN
			responses := responses || '{"404": {"$ref": "#/components/responses/NotFound"}}';
		END IF;
		IF r.method <> 'GET' AND r.fname <> 'api_authz_check' THEN
			responses := responses || '{"409": {"$ref": "#/components/responses/Conflict"}}';
		END IF;
		IF if_match THEN
			responses := responses || '{"412": {"$ref": "#/components/responses/PreconditionFailed"}}';
		END IF;
		IF r.body_schema IS NOT NULL THEN
			responses := responses || '{"413": {"$ref": "#/components/responses/TooLarge"},
										"422": {"$ref": "#/components/responses/Unprocessable"}}';
		END IF;

		op := jsonb_build_object(
			'operationId', op_name,
			'summary', r.summary,
			'tags', jsonb_build_array(split_part(r.path, '/', 2)),
			'responses', responses);
		IF r.fdesc IS NOT NULL THEN
			op := op || jsonb_build_object('description', r.fdesc
				|| CASE WHEN r.permission IS NOT NULL THEN format(E'\n\nNeeds the permission `%s`.', r.permission) ELSE '' END);
		END IF;
		IF parameters <> '[]' THEN
			op := op || jsonb_build_object('parameters', parameters);
		END IF;
		IF r.body_schema IS NOT NULL THEN
			op := op || jsonb_build_object('requestBody', jsonb_build_object('required', true, 'content',
				CASE WHEN r.method = 'PATCH'
					 THEN jsonb_build_object('application/merge-patch+json', jsonb_build_object('schema', r.body_schema),
											 'application/json', jsonb_build_object('schema', r.body_schema))
					 ELSE jsonb_build_object('application/json', jsonb_build_object('schema', r.body_schema)) END));
		END IF;
		IF NOT r.authenticated THEN
			op := op || '{"security": []}';
		END IF;
		paths := jsonb_set(paths, ARRAY[oapath], coalesce(paths->oapath, '{}') || jsonb_build_object(lower(r.method), op));
	END LOOP;

	-- operations the gateway answers itself
	paths := paths || jsonb_build_object(
		'/healthz', jsonb_build_object('get', jsonb_build_object('operationId', 'healthz', 'tags', '["operations"]'::jsonb,
			'summary', 'Liveness: 200 while the process runs', 'security', '[]'::jsonb,
			'responses', jsonb_build_object('200', jsonb_build_object('description', 'Alive',
				'content', '{"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}}}}}'::jsonb)))),
		'/readyz', jsonb_build_object('get', jsonb_build_object('operationId', 'readyz', 'tags', '["operations"]'::jsonb,
			'summary', 'Readiness: 200 when PostgreSQL (and Redis, if configured) answer', 'security', '[]'::jsonb,
			'responses', jsonb_build_object('200', jsonb_build_object('description', 'Ready',
				'content', '{"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}}}}}'::jsonb),
				'503', jsonb_build_object('$ref', '#/components/responses/Unavailable')))),
		'/metrics', jsonb_build_object('get', jsonb_build_object('operationId', 'metrics', 'tags', '["operations"]'::jsonb,
			'summary', 'Prometheus metrics', 'security', '[]'::jsonb,
			'responses', jsonb_build_object('200', jsonb_build_object('description', 'Metrics in the Prometheus text format',
				'content', '{"text/plain": {"schema": {"type": "string"}}}'::jsonb)))),
		'/openapi.json', jsonb_build_object('get', jsonb_build_object('operationId', 'openapi', 'tags', '["operations"]'::jsonb,
			'summary', 'This document', 'security', '[]'::jsonb,
			'responses', jsonb_build_object('200', jsonb_build_object('description', 'The OpenAPI 3.1 document',
				'content', '{"application/json": {"schema": {"type": "object"}}}'::jsonb)))));

	RETURN jsonb_build_object(
		'openapi', '3.1.0',
		'info', jsonb_build_object(
			'title', 'pg_iam admin API',
			'version', (SELECT extversion FROM pg_extension WHERE extname = 'iam'),
			'description', 'Identity, access control and audit of an organisation. Errors are RFC 9457 problem+json. '
						   || 'Generated by iam.openapi() from iam.routes.',
			'license', jsonb_build_object('name', 'Proprietary', 'identifier', 'LicenseRef-Proprietary')),
		'servers', '[{"url": "/"}]'::jsonb,
		'security', '[{"bearerAuth": []}]'::jsonb,
		'tags', (SELECT jsonb_agg(jsonb_build_object('name', t) ORDER BY t)
				 FROM (SELECT DISTINCT split_part(path, '/', 2) AS t FROM iam.routes UNION SELECT 'operations') AS tags),
		'paths', paths,
		'components', iam.openapi_components())::json;
END
$$;
COMMENT ON FUNCTION iam.openapi() IS
	'The OpenAPI 3.1 document of the REST API, generated from iam.routes (paths under /api/v1 with their parameters, request bodies, responses and bearer security) plus the gateway''s own /healthz, /readyz, /metrics and /openapi.json; the gateway serves it at GET /openapi.json';

CREATE FUNCTION iam.openapi_components() RETURNS jsonb
	LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
	SELECT jsonb_build_object(
		'securitySchemes', '{"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}'::jsonb,
		'schemas', '{
			"Problem": {"type": "object", "description": "RFC 9457 problem details",
				"required": ["type", "title", "status"],
				"properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
					"detail": {"type": "string"}, "code": {"type": "string"}, "request_id": {"type": "string"}}},
			"Object": {"type": "object"},
			"User": {"type": "object", "properties": {
				"id": {"type": "string", "format": "uuid"},
				"email": {"type": "string", "description": "Masked (j***@example.com) without users.read_pii"},
				"name": {"type": "string"}, "role": {"type": "string"},
				"department": {"type": ["string", "null"]},
				"phone": {"type": ["string", "null"], "description": "Masked (all but the last two digits) without users.read_pii"},
				"profile_image": {"type": ["string", "null"]},
				"employment_equity": {"type": ["string", "null"], "description": "null without users.read_pii"},
				"is_active": {"type": "boolean"}, "two_factor_enabled": {"type": "boolean"},
				"metadata": {"type": "object"},
				"last_login": {"type": ["string", "null"], "format": "date-time"},
				"created_at": {"type": "string", "format": "date-time"},
				"updated_at": {"type": "string", "format": "date-time"},
				"deleted_at": {"type": ["string", "null"], "format": "date-time"}}},
			"Me": {"allOf": [{"$ref": "#/components/schemas/User"},
				{"type": "object", "properties": {"permissions": {"type": "array", "items": {"type": "string"}}}}]},
			"UserPage": {"type": "object", "properties": {
				"data": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
				"next_cursor": {"type": ["string", "null"]}}},
			"UserPermissions": {"type": "object", "properties": {
				"user_id": {"type": "string", "format": "uuid"},
				"roles": {"type": "array", "items": {"type": "string"}},
				"permissions": {"type": "array", "items": {"type": "string"}}}},
			"RoleGrant": {"type": "object", "properties": {
				"user_id": {"type": "string", "format": "uuid"}, "role": {"type": "string"},
				"granted_by": {"type": "string", "format": "uuid"},
				"granted_at": {"type": "string", "format": "date-time"},
				"expires_at": {"type": ["string", "null"], "format": "date-time"}}},
			"Role": {"type": "object", "properties": {
				"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
				"display_name": {"type": "string"}, "description": {"type": ["string", "null"]},
				"is_system": {"type": "boolean"},
				"permissions": {"type": "array", "items": {"type": "string"}},
				"created_at": {"type": "string", "format": "date-time"},
				"updated_at": {"type": "string", "format": "date-time"}}},
			"RolePage": {"type": "object", "properties": {
				"data": {"type": "array", "items": {"$ref": "#/components/schemas/Role"}},
				"next_cursor": {"type": "null"}}},
			"Permission": {"type": "object", "properties": {
				"name": {"type": "string"}, "display_name": {"type": "string"},
				"description": {"type": ["string", "null"]}, "category": {"type": "string"}}},
			"PermissionPage": {"type": "object", "properties": {
				"data": {"type": "array", "items": {"$ref": "#/components/schemas/Permission"}},
				"next_cursor": {"type": "null"}}},
			"AuthzResults": {"type": "object", "properties": {
				"results": {"type": "object", "additionalProperties": {"type": "boolean"}}}},
			"AuditLog": {"type": "object", "properties": {
				"id": {"type": "string", "format": "uuid"}, "seq": {"type": ["integer", "null"]},
				"action": {"type": "string"}, "actor": {"type": ["string", "null"], "format": "uuid"},
				"entity_type": {"type": ["string", "null"]}, "entity_id": {"type": ["string", "null"], "format": "uuid"},
				"changes": {"type": ["object", "null"]}, "ip_address": {"type": ["string", "null"]},
				"user_agent": {"type": ["string", "null"]}, "request_id": {"type": ["string", "null"]},
				"db_role": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"}}},
			"AuditLogPage": {"type": "object", "properties": {
				"data": {"type": "array", "items": {"$ref": "#/components/schemas/AuditLog"}},
				"next_cursor": {"type": ["string", "null"]}}},
			"AuditVerification": {"type": "object", "properties": {
				"ok": {"type": "boolean"}, "first_bad_seq": {"type": ["integer", "null"]},
				"detail": {"type": ["string", "null"]}, "sealed": {"type": "integer"}, "unsealed": {"type": "integer"}}},
			"ActivityLog": {"type": "object", "properties": {
				"id": {"type": "string", "format": "uuid"}, "user_id": {"type": ["string", "null"], "format": "uuid"},
				"type": {"type": "string"}, "description": {"type": ["string", "null"]},
				"ip_address": {"type": ["string", "null"]}, "user_agent": {"type": ["string", "null"]},
				"location": {"type": ["string", "null"]}, "metadata": {"type": ["object", "null"]},
				"created_at": {"type": "string", "format": "date-time"}}},
			"ActivityLogPage": {"type": "object", "properties": {
				"data": {"type": "array", "items": {"$ref": "#/components/schemas/ActivityLog"}},
				"next_cursor": {"type": ["string", "null"]}}}
		}'::jsonb,
		'responses', (SELECT jsonb_object_agg(name, jsonb_build_object('description', description,
							 'content', '{"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}'::jsonb)
							 || coalesce(headers, '{}'))
					  FROM (VALUES
						('BadRequest', 'Malformed request: unknown, repeated or malformed query parameter, invalid cursor, invalid JSON', NULL::jsonb),
						('Unauthorized', 'Missing or invalid bearer token, or the user is no longer an active user of the organisation',
						 '{"headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}}'),
						('Forbidden', 'The caller lacks the permission the operation needs', NULL),
						('NotFound', 'No such resource in the caller''s organisation', NULL),
						('Conflict', 'The request conflicts with the current state (e.g. a taken e-mail address)', NULL),
						('PreconditionFailed', 'If-Match does not match the current ETag', NULL),
						('TooLarge', 'The request body is larger than 1 MiB', NULL),
						('Unprocessable', 'Well-formed but invalid; detail names the field', NULL),
						('TooManyRequests', 'Rate limited', '{"headers": {"Retry-After": {"schema": {"type": "integer"}}}}'),
						('Unavailable', 'The database is unavailable',
						 '{"headers": {"Retry-After": {"schema": {"type": "integer"}}}}'),
						('Error', 'Unexpected error', NULL)) AS r(name, description, headers)));
END;
COMMENT ON FUNCTION iam.openapi_components() IS
	'Internal: the components (security scheme, schemas, problem+json responses) of iam.openapi()';

------------------------------------------------------------------------------
-- Privileges: the gateway reads the declarations and calls the handlers and
-- iam.openapi(); nothing else is executable by anyone but the owner.
------------------------------------------------------------------------------
REVOKE ALL ON iam.routes, iam.rate_limit_classes FROM PUBLIC;
GRANT SELECT ON iam.routes, iam.rate_limit_classes TO iam_gateway;

DO $privileges$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
			 WHERE p.pronamespace = 'iam'::regnamespace
			   AND (p.proname LIKE 'api\_%' OR p.proname LIKE 'openapi%' OR p.proname = 'routes_notify')
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
	FOR f IN SELECT handler FROM iam.routes UNION SELECT 'iam.openapi()'::regprocedure LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO iam_gateway', f);
	END LOOP;
END
$privileges$;

------------------------------------------------------------------------------
-- Audit inbox.  Until 0.3 the capture trigger appended unsealed rows to
-- iam.audit_logs and the sealer then updated each one: two index-maintained
-- writes of every row (seq is indexed, so the update cannot be HOT), which
-- cost audited writers about a quarter of their throughput.  From 0.4 the
-- trigger appends to iam.audit_inbox, a child of iam.audit_logs without
-- indexes, and the sealer moves each row into iam.audit_logs proper with its
-- seq, prev_hash and row_hash: one indexed write per row, made in batches by
-- the sealer rather than by the writers.  Being a child, the inbox's rows
-- are still read through iam.audit_logs (unsealed: seq NULL), so listings,
-- iam.audit_status, iam.audit_verify's unsealed counts and iam.erase_user see
-- a change as soon as it commits, as before.  Rows left unsealed in
-- iam.audit_logs by 0.3 are still sealed in place.
------------------------------------------------------------------------------
CREATE TABLE iam.audit_inbox (
	CHECK (seq IS NULL AND prev_hash IS NULL AND row_hash IS NULL)
) INHERITS (iam.audit_logs)
WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
	  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000);
COMMENT ON TABLE iam.audit_inbox IS
	'Audit rows waiting for the sealer (child of iam.audit_logs, so they read through it with seq NULL): appended by the capture triggers, moved into iam.audit_logs with their chain position by the sealer; no indexes, so that writers pay for one heap insert; written only by pg_iam''s code';
CREATE TRIGGER audit_guard BEFORE INSERT OR UPDATE OR DELETE ON iam.audit_inbox
	FOR EACH ROW EXECUTE FUNCTION iam.audit_guard();
COMMENT ON TRIGGER audit_guard ON iam.audit_inbox IS
	'Only pg_iam''s triggers append, only its sealer removes (moving the row into iam.audit_logs), only iam.erase_user erases';
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON iam.audit_inbox
	FOR EACH STATEMENT EXECUTE FUNCTION iam.audit_guard();
COMMENT ON TRIGGER audit_guard_truncate ON iam.audit_inbox IS
	'The audit trail is append-only: TRUNCATE is refused for every role';
ALTER TABLE iam.audit_inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE iam.audit_inbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON iam.audit_inbox USING (org_id = iam.current_org_id())
	WITH CHECK (org_id = iam.current_org_id());
REVOKE ALL ON iam.audit_inbox FROM PUBLIC;
-- the columns mean what they mean in iam.audit_logs (comments are not inherited)
DO $inbox_comments$
DECLARE
	c record;
BEGIN
	FOR c IN SELECT a.attname, d.description FROM pg_attribute a
			 JOIN pg_description d ON d.objoid = a.attrelid AND d.objsubid = a.attnum
			 WHERE a.attrelid = 'iam.audit_logs'::regclass
	LOOP
		EXECUTE format('COMMENT ON COLUMN iam.audit_inbox.%I IS %L', c.attname, c.description);
	END LOOP;
END
$inbox_comments$;

COMMENT ON FUNCTION iam.audit_guard() IS
	'BEFORE trigger on iam.audit_logs and iam.audit_inbox: refuses (42501) INSERT, UPDATE, DELETE and TRUNCATE for every role, the owner included, except the appends (to the inbox), seals (moves from the inbox, updates of rows 0.3 left unsealed) and erasures made by the extension''s own C code';

------------------------------------------------------------------------------
-- Rate limits and cache versions (#7)
--
-- Classes: auth (login, refresh, reset: 10 a minute per client IP and per
-- account), write (120 a minute per user), read (1200 a minute per user);
-- default and expensive stay for routes declared with them.  Reads of the
-- REST API are read, everything else write.
--
-- The gateway caches the responses of GET routes declared cacheable, keyed
-- (among others) by the version of the caller's organisation and a version
-- of everything.  The versions live in shared memory (cache_version.c, which
-- needs iam in shared_preload_libraries): 4096 slots, an organisation hashed
-- to one.  A statement trigger on every admin table calls
-- iam.cache_note_change for each organisation the statement changed (NULL
-- for changes that concern every organisation: the permission catalogue,
-- system roles, TRUNCATE); the slots move just after the transaction's
-- commit became visible, never before, and not at all on rollback.  A
-- gateway polls iam.cache_changes every few milliseconds.  So a response
-- cached under a version was read after every write that version stands
-- for, and writers never wait for each other (NOTIFY, used before, holds a
-- cluster-wide lock from pre-commit to the end of the commit).
------------------------------------------------------------------------------
INSERT INTO iam.rate_limit_classes (name, requests, per_seconds) VALUES
	('read', 1200, 60), ('write', 120, 60)
ON CONFLICT (name) DO NOTHING;
UPDATE iam.rate_limit_classes SET requests = 10, per_seconds = 60 WHERE name = 'auth';
UPDATE iam.routes SET rate_limit_class = CASE WHEN read_only THEN 'read' ELSE 'write' END
WHERE rate_limit_class = 'default';
UPDATE iam.routes SET cacheable = true
WHERE (method = 'GET' AND path IN ('/users/me', '/roles', '/roles/{id:uuid}', '/permissions'))
   OR (method = 'POST' AND path = '/authz/check');
COMMENT ON COLUMN iam.routes.rate_limit_class IS
	'Rate-limit class (iam.rate_limit_classes) the route counts against: per user (sub) for authenticated routes, per client IP (and per account, the body''s email) for the others';
COMMENT ON COLUMN iam.routes.cacheable IS
	'True (read-only routes): the gateway caches the response per route, parameters, body, organisation, caller and cache version, sends an ETag and answers a GET''s If-None-Match with 304';

CREATE FUNCTION iam.cache_note_change(org_id uuid) RETURNS void
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'iam_cache_note_change';
COMMENT ON FUNCTION iam.cache_note_change(uuid) IS
	'Internal (iam.cache_bump): this transaction changed the organisation''s data (NULL: every organisation''s); its cache version slot is bumped once the commit is visible, not at all on rollback';
CREATE FUNCTION iam.cache_slot(org_id uuid) RETURNS integer
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'iam_cache_slot';
COMMENT ON FUNCTION iam.cache_slot(uuid) IS
	'The organisation''s cache version slot, 0-4095: FNV-1a (64 bits) of the 16 bytes of the uuid, modulo 4096; the gateway computes the same';
CREATE FUNCTION iam.cache_changes(since bigint, OUT generation bigint, OUT next_since bigint,
								  OUT everything bigint, OUT slots integer[], OUT versions bigint[])
	RETURNS record
	LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'iam_cache_changes';
COMMENT ON FUNCTION iam.cache_changes(bigint) IS
	'Polled by the gateway: the version table''s generation (new at each server start), the since to pass next (0 the first time), the version of everything, and the slots bumped after since with their versions; all NULL when iam is not in shared_preload_libraries (cache off)';

CREATE FUNCTION iam.cache_bump() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'iam_cache_bump';
COMMENT ON FUNCTION iam.cache_bump() IS
	'Statement-level AFTER trigger (C) on the admin tables: notes, like iam.cache_note_change, each organisation whose rows the statement changed (column TG_ARGV[0] of the transition tables; NULL rows, no column and TRUNCATE: every organisation), so that once the transaction commits gateways stop serving cached responses older than the change';
REVOKE ALL ON FUNCTION iam.cache_bump() FROM PUBLIC;
REVOKE ALL ON FUNCTION iam.cache_note_change(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION iam.cache_slot(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION iam.cache_changes(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION iam.cache_changes(bigint) TO iam_gateway;

DO $cache$
DECLARE
	t	record;
	op	text;
BEGIN
	FOR t IN SELECT * FROM (VALUES ('organizations', 'id'), ('users', 'org_id'), ('roles', 'org_id'),
								   ('role_permissions', 'org_id'), ('user_roles', 'org_id'),
								   ('user_permissions', 'org_id'), ('role_inheritance', 'org_id'),
								   ('user_sessions', 'org_id')) AS x(tab, col)
	LOOP
		FOREACH op IN ARRAY CASE WHEN t.tab = 'user_sessions' THEN ARRAY['UPDATE', 'DELETE']
								 ELSE ARRAY['INSERT', 'UPDATE', 'DELETE'] END
		LOOP
			EXECUTE format('CREATE TRIGGER cache_bump_%s AFTER %s ON iam.%I REFERENCING %s '
						   'FOR EACH STATEMENT EXECUTE FUNCTION iam.cache_bump(%L)',
						   lower(op), op, t.tab,
						   CASE op WHEN 'INSERT' THEN 'NEW TABLE AS cache_new'
								   WHEN 'DELETE' THEN 'OLD TABLE AS cache_old'
								   ELSE 'OLD TABLE AS cache_old NEW TABLE AS cache_new' END, t.col);
			EXECUTE format('COMMENT ON TRIGGER cache_bump_%s ON iam.%I IS %L', lower(op), t.tab,
						   'Bumps, at commit, the cache versions of the organisations changed: the gateways'' cached responses of them are stale');
		END LOOP;
		EXECUTE format('CREATE TRIGGER cache_bump_truncate AFTER TRUNCATE ON iam.%I '
					   'FOR EACH STATEMENT EXECUTE FUNCTION iam.cache_bump()', t.tab);
		EXECUTE format('COMMENT ON TRIGGER cache_bump_truncate ON iam.%I IS %L', t.tab,
					   'Bumps, at commit, the version of everything: every cached response of the gateways is stale');
	END LOOP;
END
$cache$;
CREATE TRIGGER cache_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON iam.permissions
	FOR EACH STATEMENT EXECUTE FUNCTION iam.cache_bump();
COMMENT ON TRIGGER cache_bump ON iam.permissions IS
	'The permission catalogue is every organisation''s: bumps, at commit, the version of everything, so every cached response of the gateways is stale';

------------------------------------------------------------------------------
-- Authentication and sessions (#6)
--
-- Login, refresh, logout, sessions, TOTP 2FA, password reset and
-- invitations, as API functions like the others.  Two things are special:
--
-- * Routes flagged issues_token (login, refresh) return, on success,
--   {user_id, org_id, session_id, refresh_token}: the gateway, which holds
--   the signing key, turns that into {access_token, refresh_token,
--   token_type, expires_in}.  Their failures are returned, not raised, as
--   {code, detail} with a 4xx status (and Retry-After for 429), so that the
--   failure rows that lockout and reuse detection count are committed; the
--   gateway sends them as problem+json.
-- * The gateway sets iam.session_id from the access token's sid, and
--   iam.api_caller() refuses (IA401) a token whose session is revoked or
--   expired: a revocation takes effect from the very next request.
--
-- Refresh, reset and invitation tokens are 256 random bits from OpenSSL;
-- only their SHA-256 digests are stored.
------------------------------------------------------------------------------
CREATE FUNCTION iam.auth_password_verify(hash text, password text) RETURNS boolean
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'iam_auth_password_verify';
COMMENT ON FUNCTION iam.auth_password_verify(text, text) IS
	'Internal: true when password matches hash (argon2id PHC, or bcrypt $2a$/$2b$/$2y$); a NULL hash costs a dummy argon2id verification at the configured costs and is false';
CREATE FUNCTION iam.auth_password_needs_rehash(hash text) RETURNS boolean
	LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'iam_auth_password_needs_rehash';
COMMENT ON FUNCTION iam.auth_password_needs_rehash(text) IS
	'Internal: true when hash is not argon2id or has lower costs than the iam.argon2_* settings';
CREATE FUNCTION iam.auth_password_rehash(password text) RETURNS text
	LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'iam_auth_password_rehash';
COMMENT ON FUNCTION iam.auth_password_rehash(text) IS
	'Internal: a fresh argon2id hash of a password just verified at login, without the policy check';
CREATE FUNCTION iam.auth_random_token() RETURNS text
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'iam_auth_random_token';
COMMENT ON FUNCTION iam.auth_random_token() IS
	'Internal: 256 random bits from OpenSSL as 43 characters of base64url (refresh, reset and invitation tokens)';
CREATE FUNCTION iam.totp_code(secret bytea, step bigint) RETURNS text
	LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'iam_totp_code';
COMMENT ON FUNCTION iam.totp_code(bytea, bigint) IS
	'Internal: the 6-digit RFC 6238 (HMAC-SHA-1) code of secret for 30-second step step';
CREATE FUNCTION iam.totp_match(secret bytea, code text, at timestamptz, after_step bigint) RETURNS bigint
	LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'iam_totp_match';
COMMENT ON FUNCTION iam.totp_match(bytea, text, timestamptz, bigint) IS
	'Internal: the step within one step of at whose code is code and which is greater than after_step (NULL: any), or NULL; compares in constant time';
CREATE FUNCTION iam.base32_encode(data bytea) RETURNS text
	LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'iam_base32_encode';
COMMENT ON FUNCTION iam.base32_encode(bytea) IS
	'Internal: RFC 4648 base32 without padding, for TOTP secrets';

CREATE FUNCTION iam.auth_digest(token text) RETURNS bytea
	LANGUAGE sql IMMUTABLE
	RETURN pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8'));
COMMENT ON FUNCTION iam.auth_digest(text) IS
	'Internal: the SHA-256 digest under which a token is stored';

ALTER TABLE iam.routes ADD COLUMN issues_token boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN iam.routes.issues_token IS
	'True for login and refresh: on success the handler returns {user_id, org_id, session_id, refresh_token} and the gateway answers {access_token, refresh_token, token_type, expires_in} with an access token it signs; a 4xx answer {code, detail} becomes problem+json';

ALTER TABLE iam.user_sessions ADD COLUMN revoked_reason text
	CHECK (revoked_reason IN ('logout', 'revoked', 'token_reuse', 'password_reset', 'user_disabled'));
COMMENT ON COLUMN iam.user_sessions.revoked_reason IS
	'Why the session was revoked: logout, revoked (by the user or an administrator), token_reuse (a rotated refresh token came back), password_reset, user_disabled';
COMMENT ON COLUMN iam.user_sessions.expires_at IS
	'End of the session: the current refresh token is refused from then on (moved forward by each refresh)';

CREATE TABLE iam.session_refresh_history (
	token_hash	bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
	session_id	uuid NOT NULL REFERENCES iam.user_sessions (id) ON DELETE CASCADE,
	rotated_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_refresh_history_session_idx ON iam.session_refresh_history (session_id);
COMMENT ON TABLE iam.session_refresh_history IS
	'Digests of refresh tokens already rotated: presenting one again revokes its session (reuse detection)';
COMMENT ON COLUMN iam.session_refresh_history.token_hash IS 'SHA-256 digest of a rotated refresh token';
COMMENT ON COLUMN iam.session_refresh_history.session_id IS 'Session the token belonged to';
COMMENT ON COLUMN iam.session_refresh_history.rotated_at IS 'When the token was exchanged for a new one';

CREATE TABLE iam.user_totp (
	user_id				uuid PRIMARY KEY,
	org_id				uuid NOT NULL,
	totp_secret			bytea NOT NULL CHECK (octet_length(totp_secret) BETWEEN 10 AND 64),
	enabled_at			timestamptz,
	last_step			bigint,
	recovery_code_hashes bytea[] NOT NULL DEFAULT '{}',
	created_at			timestamptz NOT NULL DEFAULT now(),
	FOREIGN KEY (user_id, org_id) REFERENCES iam.users (id, org_id) ON DELETE CASCADE
);
COMMENT ON TABLE iam.user_totp IS
	'TOTP second factor of a user (RFC 6238); the secret is never returned after setup and never logged';
COMMENT ON COLUMN iam.user_totp.totp_secret IS 'Shared TOTP secret (20 random bytes)';
COMMENT ON COLUMN iam.user_totp.enabled_at IS 'When a valid code confirmed the setup; NULL while pending';
COMMENT ON COLUMN iam.user_totp.last_step IS '30-second step of the last accepted code: a code of this step or an earlier one is refused (no replay)';
COMMENT ON COLUMN iam.user_totp.recovery_code_hashes IS 'SHA-256 digests of the unused single-use recovery codes';

CREATE TABLE iam.auth_tokens (
	token_hash	bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
	kind		text NOT NULL CHECK (kind IN ('password_reset', 'invitation')),
	user_id		uuid NOT NULL,
	org_id		uuid NOT NULL,
	expires_at	timestamptz NOT NULL,
	used_at		timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	FOREIGN KEY (user_id, org_id) REFERENCES iam.users (id, org_id) ON DELETE CASCADE
);
CREATE INDEX auth_tokens_user_idx ON iam.auth_tokens (org_id, user_id);
COMMENT ON TABLE iam.auth_tokens IS 'Single-use, expiring password-reset and invitation tokens, stored as SHA-256 digests';
COMMENT ON COLUMN iam.auth_tokens.token_hash IS 'SHA-256 digest of the token sent by e-mail';
COMMENT ON COLUMN iam.auth_tokens.kind IS 'password_reset or invitation';
COMMENT ON COLUMN iam.auth_tokens.used_at IS 'When the token was used; a used token is refused';

CREATE TABLE iam.email_outbox (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	org_id		uuid NOT NULL REFERENCES iam.organizations (id) ON DELETE CASCADE,
	to_address	varchar(255) NOT NULL,
	template	text NOT NULL CHECK (template IN ('password_reset', 'invitation')),
	payload		jsonb NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	sent_at		timestamptz,
	attempts	int NOT NULL DEFAULT 0
);
CREATE INDEX email_outbox_unsent_idx ON iam.email_outbox (created_at) WHERE sent_at IS NULL;
COMMENT ON TABLE iam.email_outbox IS
	'Messages waiting for the delivery worker (a later issue); payload holds the single-use token the message carries, so only the extension''s owner reads it';
COMMENT ON COLUMN iam.email_outbox.to_address IS 'Recipient e-mail address';
COMMENT ON COLUMN iam.email_outbox.template IS 'Message kind: password_reset or invitation';
COMMENT ON COLUMN iam.email_outbox.payload IS 'Template values: token, name, expires_at (and organisation for invitations)';
COMMENT ON COLUMN iam.email_outbox.sent_at IS 'When the worker delivered it; NULL while queued';
COMMENT ON COLUMN iam.email_outbox.attempts IS 'Delivery attempts so far';

DO $auth_rls$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['user_totp', 'auth_tokens', 'email_outbox']
	LOOP
		EXECUTE format('ALTER TABLE iam.%I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE format('ALTER TABLE iam.%I FORCE ROW LEVEL SECURITY', t);
		EXECUTE format('CREATE POLICY tenant_isolation ON iam.%I USING (org_id = iam.current_org_id()) '
					   'WITH CHECK (org_id = iam.current_org_id())', t);
	END LOOP;
END
$auth_rls$;
REVOKE ALL ON iam.session_refresh_history, iam.user_totp, iam.auth_tokens, iam.email_outbox FROM PUBLIC;

-- The caller check, now also refusing a revoked or expired session, and
-- resolving a token of the external identity provider (iam.external_sub)
-- to the user whose stack_auth_id it is.
CREATE OR REPLACE FUNCTION iam.api_caller() RETURNS uuid
	LANGUAGE plpgsql STABLE AS $$
DECLARE
	me		uuid := iam.current_user_id();
	sid		text := pg_catalog.current_setting('iam.session_id', true);
	ext		text := pg_catalog.current_setting('iam.external_sub', true);
	ext_user record;
BEGIN
	IF me IS NULL AND ext IS NOT NULL AND ext <> '' THEN
		SELECT x.id, x.org_id INTO ext_user FROM iam.users x
		WHERE x.stack_auth_id = ext AND x.is_active AND x.deleted_at IS NULL;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'not signed in as an active user'
				USING ERRCODE = 'IA401', HINT = 'Sign in again.';
		END IF;
		PERFORM pg_catalog.set_config('iam.user_id', ext_user.id::text, true),
				pg_catalog.set_config('iam.org_id', ext_user.org_id::text, true);
		RETURN ext_user.id;
	END IF;
	IF me IS NULL OR NOT EXISTS (SELECT FROM iam.users u
								 WHERE u.id = me AND u.org_id = iam.current_org_id()
								   AND u.is_active AND u.deleted_at IS NULL) THEN
		RAISE EXCEPTION 'not signed in as an active user of this organisation'
			USING ERRCODE = 'IA401', HINT = 'Sign in again.';
	END IF;
	IF sid IS NOT NULL AND sid <> '' AND NOT EXISTS (
		SELECT FROM iam.user_sessions s
		WHERE s.id = sid::uuid AND s.user_id = me AND s.revoked_at IS NULL AND s.expires_at > now()) THEN
		RAISE EXCEPTION 'this session has ended'
			USING ERRCODE = 'IA401', HINT = 'Sign in again.';
	END IF;
	RETURN me;
END
$$;
COMMENT ON FUNCTION iam.api_caller() IS
	'Internal, first call of every authenticated API function: iam.user_id, after checking that it names an existing, active, not deleted user of iam.org_id and, when iam.session_id is set, that the session is neither revoked nor expired; with iam.external_sub instead (external identity provider), the user whose stack_auth_id it is, written to iam.user_id and iam.org_id; IA401 otherwise';

-- Helpers of the flows
CREATE FUNCTION iam.auth_activity(user_id uuid, org_id uuid, type text, description text, metadata jsonb)
	RETURNS void LANGUAGE sql AS $$
	INSERT INTO iam.activity_logs (user_id, org_id, type, description, ip_address, user_agent, metadata)
	VALUES (auth_activity.user_id, auth_activity.org_id, auth_activity.type, auth_activity.description,
			nullif(pg_catalog.current_setting('iam.ip', true), ''),
			nullif(pg_catalog.current_setting('iam.user_agent', true), ''),
			jsonb_strip_nulls(coalesce(auth_activity.metadata, '{}')
				|| jsonb_build_object('request_id', nullif(pg_catalog.current_setting('iam.request_id', true), ''))))
$$;
COMMENT ON FUNCTION iam.auth_activity(uuid, uuid, text, text, jsonb) IS
	'Internal: appends a security event to iam.activity_logs with the request context (never a secret in metadata)';

CREATE FUNCTION iam.auth_refusal(status int, code text, detail text, retry_after int DEFAULT NULL)
	RETURNS iam.api_response LANGUAGE sql IMMUTABLE
	RETURN ROW(status, json_build_object('code', code, 'detail', detail),
			   CASE WHEN retry_after IS NOT NULL
					THEN jsonb_build_object('Retry-After', greatest(retry_after, 1)::text) END)::iam.api_response;
COMMENT ON FUNCTION iam.auth_refusal(int, text, text, int) IS
	'Internal: a refusal of a token-issuing route, returned rather than raised so that the rows it wrote commit; the gateway sends it as problem+json (with Retry-After when given)';

CREATE FUNCTION iam.auth_session_start(u iam.users, ttl int) RETURNS iam.api_response
	LANGUAGE plpgsql AS $$
DECLARE
	new_token	text := iam.auth_random_token();
	sid			uuid;
BEGIN
	INSERT INTO iam.user_sessions (user_id, org_id, token_hash, ip_address, user_agent, expires_at)
	VALUES (u.id, u.org_id, iam.auth_digest(new_token),
			left(nullif(pg_catalog.current_setting('iam.ip', true), ''), 45),
			nullif(pg_catalog.current_setting('iam.user_agent', true), ''),
			now() + make_interval(secs => ttl))
	RETURNING id INTO sid;
	RETURN ROW(200, json_build_object('user_id', u.id, 'org_id', u.org_id, 'session_id', sid,
									  'refresh_token', new_token), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.auth_session_start(iam.users, int) IS
	'Internal: a new session of user u lasting ttl seconds with a fresh refresh token; the token-issuing answer for the gateway';

CREATE FUNCTION iam.auth_refresh_ttl(params jsonb) RETURNS int
	LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN jsonb_typeof(params->'refresh_ttl') = 'number'
				THEN least(greatest((params->>'refresh_ttl')::int, 60), 366 * 86400) ELSE 604800 END;
COMMENT ON FUNCTION iam.auth_refresh_ttl(jsonb) IS
	'Internal: the session lifetime in seconds the gateway passes to token-issuing routes (IAM_REFRESH_TTL), 604800 when absent';

CREATE FUNCTION iam.auth_revoke_sessions(user_id uuid, reason text, except_session uuid DEFAULT NULL) RETURNS int
	LANGUAGE sql AS $$
	WITH r AS (
		UPDATE iam.user_sessions s SET revoked_at = now(), revoked_reason = auth_revoke_sessions.reason
		WHERE s.user_id = auth_revoke_sessions.user_id AND s.revoked_at IS NULL
		  AND s.id IS DISTINCT FROM except_session
		RETURNING 1)
	SELECT count(*)::int FROM r
$$;
COMMENT ON FUNCTION iam.auth_revoke_sessions(uuid, text, uuid) IS
	'Internal: revokes every live session of a user (but except_session) for reason; returns how many';

------------------------------------------------------------------------------
-- Login and refresh (issues_token routes)
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_auth_login(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	login_email	text;
	pw			text;
	otp			text;
	u			iam.users;
	threshold	int := coalesce(nullif(current_setting('iam.lockout_threshold', true), ''), '5')::int;
	win			interval := coalesce(nullif(current_setting('iam.lockout_window', true), ''), '900')::interval;
	failures	int := 0;
	oldest		timestamptz;
	ok			boolean;
	tf			iam.user_totp;
	step		bigint;
	method		text := 'password';
	rehashed	boolean := false;
	norm		text;
	generic		constant text := 'The e-mail address or password is not correct.';
BEGIN
	PERFORM iam.api_body_object(body, ARRAY['email', 'password', 'totp']);
	login_email := iam.api_string_field(body, 'email', 255, false);
	IF jsonb_typeof(body->'password') IS DISTINCT FROM 'string' THEN
		PERFORM iam.api_error('IA422', 'password: must be a string', 'Send the password as a JSON string.');
	END IF;
	pw := body->>'password';
	otp := iam.api_string_field(body, 'totp', 64, true);

	SELECT * INTO u FROM iam.users x WHERE lower(x.email) = lower(login_email) AND x.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM iam.auth_password_verify(NULL, pw);	-- the same work as a known account
		PERFORM iam.auth_activity(NULL, NULL, 'login_failed', 'login failed: unknown account', NULL);
		RETURN iam.auth_refusal(401, 'invalid_credentials', generic);
	END IF;

	IF threshold > 0 THEN
		SELECT count(*), min(f.created_at) INTO failures, oldest
		FROM (SELECT a.created_at FROM iam.activity_logs a
			  WHERE a.org_id = u.org_id AND a.user_id = u.id AND a.type = 'login_failed'
				AND a.created_at > greatest(now() - win, coalesce(u.last_login, '-infinity'))
			  ORDER BY a.created_at DESC LIMIT threshold) f;
		IF failures >= threshold THEN
			PERFORM iam.auth_activity(u.id, u.org_id, 'login_locked', 'login refused: account locked', NULL);
			RETURN iam.auth_refusal(429, 'locked',
				'Too many failed sign-ins for this account; try again later.',
				ceil(extract(epoch FROM oldest + win - now()))::int);
		END IF;
	END IF;

	ok := iam.auth_password_verify(u.password_hash, pw) AND u.is_active;
	IF ok AND u.two_factor_enabled THEN
		IF otp IS NULL THEN
			RETURN iam.auth_refusal(401, 'totp_required', 'This account needs a one-time code: send it as totp.');
		END IF;
		SELECT * INTO tf FROM iam.user_totp t WHERE t.user_id = u.id AND t.enabled_at IS NOT NULL FOR UPDATE;
		step := iam.totp_match(tf.totp_secret, otp, now(), tf.last_step);
		IF step IS NOT NULL THEN
			UPDATE iam.user_totp SET last_step = step WHERE user_id = u.id;
			method := 'totp';
		ELSE
			norm := lower(replace(otp, '-', ''));
			IF iam.auth_digest(norm) = ANY (tf.recovery_code_hashes) THEN
				UPDATE iam.user_totp SET recovery_code_hashes = array_remove(recovery_code_hashes, iam.auth_digest(norm))
				WHERE user_id = u.id;
				method := 'recovery_code';
			ELSE
				ok := false;
			END IF;
		END IF;
	END IF;

	IF NOT ok THEN
		PERFORM iam.auth_activity(u.id, u.org_id, 'login_failed', 'login failed', NULL);
		IF threshold > 0 AND failures + 1 >= threshold THEN
			PERFORM iam.auth_activity(u.id, u.org_id, 'lockout', 'account locked after repeated failed logins',
									  jsonb_build_object('failures', failures + 1,
														 'window_seconds', extract(epoch FROM win)::int));
		END IF;
		RETURN iam.auth_refusal(401, 'invalid_credentials', generic);
	END IF;

	-- signed in: the rest of the transaction acts as the user
	PERFORM set_config('iam.user_id', u.id::text, true), set_config('iam.org_id', u.org_id::text, true);
	IF iam.auth_password_needs_rehash(u.password_hash) THEN
		UPDATE iam.users SET password_hash = iam.auth_password_rehash(pw), last_login = now()
		WHERE id = u.id;
		rehashed := true;
	ELSE
		UPDATE iam.users SET last_login = now() WHERE id = u.id;
	END IF;
	PERFORM iam.auth_activity(u.id, u.org_id, 'login', 'signed in',
							  jsonb_build_object('method', method, 'rehashed', rehashed));
	RETURN iam.auth_session_start(u, iam.auth_refresh_ttl(params));
END
$$;
COMMENT ON FUNCTION iam.api_auth_login(jsonb, jsonb) IS
	'POST /auth/login {email, password, totp?}: verifies the password (argon2id, or bcrypt rehashed to argon2id, as are weaker argon2id costs; a dummy verification for unknown e-mail addresses), the TOTP code or a recovery code when 2FA is on, and starts a session; iam.lockout_threshold failures within iam.lockout_window lock the account (429 with Retry-After) until the window passes; every outcome is an activity row';

CREATE FUNCTION iam.api_auth_refresh(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	h		bytea;
	s		iam.user_sessions;
	u		iam.users;
	new_token text;
	sid		uuid;
	invalid	constant text := 'The refresh token is not valid.';
BEGIN
	PERFORM iam.api_body_object(body, ARRAY['refresh_token']);
	h := iam.auth_digest(iam.api_string_field(body, 'refresh_token', 200, false));
	SELECT * INTO s FROM iam.user_sessions x WHERE x.token_hash = h FOR UPDATE;
	IF NOT FOUND THEN
		SELECT r.session_id INTO sid FROM iam.session_refresh_history r WHERE r.token_hash = h;
		IF FOUND THEN
			-- a rotated token came back: whoever holds the session now may be a thief
			SELECT * INTO s FROM iam.user_sessions x WHERE x.id = sid FOR UPDATE;
			UPDATE iam.user_sessions SET revoked_at = now(), revoked_reason = 'token_reuse'
			WHERE id = sid AND revoked_at IS NULL;
			PERFORM iam.auth_activity(s.user_id, s.org_id, 'token_reuse_detected',
									  'a rotated refresh token was used again: session revoked',
									  jsonb_build_object('session_id', sid));
		END IF;
		RETURN iam.auth_refusal(401, 'invalid_grant', invalid);
	END IF;
	IF s.revoked_at IS NOT NULL OR s.expires_at <= now() THEN
		RETURN iam.auth_refusal(401, 'invalid_grant', invalid);
	END IF;
	SELECT * INTO u FROM iam.users x WHERE x.id = s.user_id AND x.org_id = s.org_id
										AND x.is_active AND x.deleted_at IS NULL;
	IF NOT FOUND THEN
		UPDATE iam.user_sessions SET revoked_at = now(), revoked_reason = 'user_disabled' WHERE id = s.id;
		RETURN iam.auth_refusal(401, 'invalid_grant', invalid);
	END IF;
	INSERT INTO iam.session_refresh_history (token_hash, session_id) VALUES (h, s.id);
	new_token := iam.auth_random_token();
	UPDATE iam.user_sessions
	SET token_hash = iam.auth_digest(new_token), last_activity = now(),
		expires_at = now() + make_interval(secs => iam.auth_refresh_ttl(params)),
		ip_address = coalesce(left(nullif(current_setting('iam.ip', true), ''), 45), ip_address),
		user_agent = coalesce(nullif(current_setting('iam.user_agent', true), ''), user_agent)
	WHERE id = s.id;
	RETURN ROW(200, json_build_object('user_id', u.id, 'org_id', u.org_id, 'session_id', s.id,
									  'refresh_token', new_token), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_refresh(jsonb, jsonb) IS
	'POST /auth/refresh {refresh_token}: rotates the session''s refresh token (the old one is kept as a digest) and extends the session; an already-rotated token revokes the whole session and writes a token_reuse_detected activity row; 401 invalid_grant otherwise';

------------------------------------------------------------------------------
-- Sessions
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_auth_logout(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me	uuid := iam.api_caller();
	sid	uuid := nullif(current_setting('iam.session_id', true), '')::uuid;
BEGIN
	IF sid IS NOT NULL THEN
		UPDATE iam.user_sessions SET revoked_at = now(), revoked_reason = 'logout'
		WHERE id = sid AND user_id = me AND revoked_at IS NULL;
		PERFORM iam.auth_activity(me, iam.current_org_id(), 'logout', 'signed out',
								  jsonb_build_object('session_id', sid));
	END IF;
	RETURN ROW(204, NULL, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_logout(jsonb, jsonb) IS
	'POST /auth/logout: revokes the session of the bearer token (its access and refresh tokens are refused from the next request on); 204';

CREATE FUNCTION iam.api_auth_sessions_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me	uuid := iam.api_caller();
	sid	uuid := nullif(current_setting('iam.session_id', true), '')::uuid;
BEGIN
	RETURN ROW(200, json_build_object('data', coalesce((
		SELECT json_agg(json_build_object('id', s.id, 'ip_address', s.ip_address, 'user_agent', s.user_agent,
										  'created_at', iam.api_ts(s.created_at),
										  'last_activity', iam.api_ts(s.last_activity),
										  'expires_at', iam.api_ts(s.expires_at),
										  'current', s.id IS NOT DISTINCT FROM sid)
						ORDER BY s.created_at DESC, s.id)
		FROM iam.user_sessions s
		WHERE s.org_id = iam.current_org_id() AND s.user_id = me AND s.revoked_at IS NULL
		  AND s.expires_at > now()), '[]')), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_sessions_list(jsonb, jsonb) IS
	'GET /auth/sessions: the caller''s live sessions, newest first, with ip address, user agent, creation, last activity (last sign-in or refresh), expiry, and current = the bearer token''s session';

CREATE FUNCTION iam.api_auth_sessions_delete(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me	uuid := iam.api_caller();
	target	uuid := iam.api_path_id(params, 'id');
	s	iam.user_sessions;
BEGIN
	SELECT * INTO s FROM iam.user_sessions x
	WHERE x.id = target AND x.org_id = iam.current_org_id() AND x.revoked_at IS NULL
	FOR UPDATE;
	IF NOT FOUND OR (s.user_id <> me AND NOT iam.has_permission(me, 'sessions.manage')) THEN
		PERFORM iam.api_error('IA404', 'no such session', 'GET /api/v1/auth/sessions lists your sessions.');
	END IF;
	UPDATE iam.user_sessions SET revoked_at = now(), revoked_reason = 'revoked' WHERE id = s.id;
	PERFORM iam.auth_activity(s.user_id, s.org_id, 'session_revoked', 'session revoked',
							  jsonb_build_object('session_id', s.id, 'by', me));
	RETURN ROW(204, NULL, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_sessions_delete(jsonb, jsonb) IS
	'DELETE /auth/sessions/{id}: revokes one of the caller''s sessions (any session of the organisation with sessions.manage); its tokens are refused from the next request on; IA404 otherwise';

CREATE FUNCTION iam.api_auth_sessions_revoke_others(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me	uuid := iam.api_caller();
	sid	uuid := nullif(current_setting('iam.session_id', true), '')::uuid;
	n	int;
BEGIN
	n := iam.auth_revoke_sessions(me, 'revoked', sid);
	PERFORM iam.auth_activity(me, iam.current_org_id(), 'sessions_revoked', 'other sessions revoked',
							  jsonb_build_object('count', n));
	RETURN ROW(200, json_build_object('revoked', n), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_sessions_revoke_others(jsonb, jsonb) IS
	'POST /auth/sessions/revoke-others: revokes every session of the caller but the current one; {revoked: n}';

------------------------------------------------------------------------------
-- TOTP second factor
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_auth_2fa_setup(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	u		iam.users;
	secret	bytea;
	b32		text;
BEGIN
	SELECT * INTO u FROM iam.users WHERE id = me;
	IF u.two_factor_enabled THEN
		PERFORM iam.api_error('IA409', 'two-factor authentication is already enabled',
							  'Sign in with a code; an administrator can reset it.');
	END IF;
	secret := substr(decode(translate(iam.auth_random_token(), '-_', '+/') || '=', 'base64'), 1, 20);
	INSERT INTO iam.user_totp (user_id, org_id, totp_secret) VALUES (u.id, u.org_id, secret)
	ON CONFLICT (user_id) DO UPDATE SET totp_secret = excluded.totp_secret, enabled_at = NULL,
										last_step = NULL, recovery_code_hashes = '{}', created_at = now();
	b32 := iam.base32_encode(secret);
	PERFORM iam.auth_activity(u.id, u.org_id, 'totp_setup_started', 'two-factor setup started', NULL);
	RETURN ROW(200, json_build_object('secret', b32,
		'otpauth_uri', format('otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=6&period=30',
							  'pg_iam', iam.api_urlencode(u.email), b32, 'pg_iam')), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_2fa_setup(jsonb, jsonb) IS
	'POST /auth/2fa/setup: a new TOTP secret for the caller, returned this once as {secret (base32), otpauth_uri}; 2FA is on only after POST /auth/2fa/verify; IA409 when it is already on';

CREATE FUNCTION iam.api_auth_2fa_verify(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	tf		iam.user_totp;
	step	bigint;
	codes	text[] := '{}';
	c		text;
BEGIN
	PERFORM iam.api_body_object(body, ARRAY['code']);
	SELECT * INTO tf FROM iam.user_totp WHERE user_id = me AND enabled_at IS NULL FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM iam.api_error('IA409', 'no two-factor setup is pending', 'Start with POST /api/v1/auth/2fa/setup.');
	END IF;
	step := iam.totp_match(tf.totp_secret, iam.api_string_field(body, 'code', 16, false), now(), NULL);
	IF step IS NULL THEN
		PERFORM iam.api_error('IA422', 'code: not the current code of the authenticator', 'Enter the 6 digits the app shows now.');
	END IF;
	FOR i IN 1..10 LOOP
		c := lower(left(iam.base32_encode(decode(translate(iam.auth_random_token(), '-_', '+/') || '=', 'base64')), 10));
		codes := codes || (left(c, 5) || '-' || right(c, 5));
	END LOOP;
	UPDATE iam.user_totp
	SET enabled_at = now(), last_step = step,
		recovery_code_hashes = ARRAY(SELECT iam.auth_digest(replace(x, '-', '')) FROM unnest(codes) x)
	WHERE user_id = me;
	UPDATE iam.users SET two_factor_enabled = true WHERE id = me;
	PERFORM iam.auth_activity(me, iam.current_org_id(), 'totp_enabled', 'two-factor authentication enabled', NULL);
	RETURN ROW(200, json_build_object('recovery_codes', codes), NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_2fa_verify(jsonb, jsonb) IS
	'POST /auth/2fa/verify {code}: a valid code of the pending secret turns 2FA on; returns ten single-use recovery codes once (stored as SHA-256 digests)';

------------------------------------------------------------------------------
-- Password reset and invitations
------------------------------------------------------------------------------
CREATE FUNCTION iam.auth_token_issue(kind text, u iam.users, ttl interval, payload jsonb) RETURNS timestamptz
	LANGUAGE plpgsql AS $$
DECLARE
	new_token	text := iam.auth_random_token();
	expires		timestamptz := now() + ttl;
BEGIN
	INSERT INTO iam.auth_tokens (token_hash, kind, user_id, org_id, expires_at)
	VALUES (iam.auth_digest(new_token), auth_token_issue.kind, u.id, u.org_id, expires);
	INSERT INTO iam.email_outbox (org_id, to_address, template, payload)
	VALUES (u.org_id, u.email, auth_token_issue.kind,
			auth_token_issue.payload || jsonb_build_object('token', new_token, 'name', u.name, 'expires_at', iam.api_ts(expires)));
	RETURN expires;
END
$$;
COMMENT ON FUNCTION iam.auth_token_issue(text, iam.users, interval, jsonb) IS
	'Internal: a single-use token of kind for user u, valid for ttl, stored as its digest and queued in iam.email_outbox';

CREATE FUNCTION iam.auth_token_use(kind text, body jsonb) RETURNS iam.users
	LANGUAGE plpgsql AS $$
DECLARE
	t	iam.auth_tokens;
	u	iam.users;
BEGIN
	PERFORM iam.api_body_object(body, ARRAY['token', 'password']);
	SELECT * INTO t FROM iam.auth_tokens x
	WHERE x.token_hash = iam.auth_digest(iam.api_string_field(body, 'token', 200, false)) AND x.kind = auth_token_use.kind
	FOR UPDATE;
	IF NOT FOUND OR t.used_at IS NOT NULL OR t.expires_at <= now() THEN
		PERFORM iam.api_error('IA400', 'token: not valid, already used or expired', 'Ask for a new link.');
	END IF;
	SELECT * INTO u FROM iam.users x WHERE x.id = t.user_id AND x.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM iam.api_error('IA400', 'token: not valid, already used or expired', 'Ask for a new link.');
	END IF;
	IF jsonb_typeof(body->'password') IS DISTINCT FROM 'string' THEN
		PERFORM iam.api_error('IA422', 'password: is required', 'Send the new password as a JSON string.');
	END IF;
	PERFORM set_config('iam.user_id', u.id::text, true), set_config('iam.org_id', u.org_id::text, true);
	BEGIN
		PERFORM iam.set_password(u.id, body->>'password');
	EXCEPTION WHEN invalid_parameter_value THEN
		PERFORM iam.api_error('IA422', 'password: ' || SQLERRM,
							  'Choose a passphrase of at least 12 characters that is not your e-mail address or name.');
	END;
	UPDATE iam.auth_tokens SET used_at = now() WHERE token_hash = t.token_hash;
	RETURN u;
END
$$;
COMMENT ON FUNCTION iam.auth_token_use(text, jsonb) IS
	'Internal: consumes a single-use token of kind from body {token, password} and sets the password (policy: IA422 naming the rule); IA400 for an unknown, used or expired token';

CREATE FUNCTION iam.api_auth_password_reset(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	u	iam.users;
BEGIN
	PERFORM iam.api_body_object(body, ARRAY['email']);
	SELECT * INTO u FROM iam.users x
	WHERE lower(x.email) = lower(iam.api_string_field(body, 'email', 255, false))
	  AND x.deleted_at IS NULL AND x.is_active;
	IF FOUND THEN
		PERFORM iam.auth_token_issue('password_reset', u, interval '1 hour', '{}');
		PERFORM iam.auth_activity(u.id, u.org_id, 'password_reset_requested', 'password reset requested', NULL);
	END IF;
	-- the same answer whether or not the address is known
	RETURN ROW(202, '{}'::json, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_password_reset(jsonb, jsonb) IS
	'POST /auth/password-reset {email}: queues a reset message with a single-use token valid one hour when the address belongs to an active user; 202 either way';

CREATE FUNCTION iam.api_auth_password_reset_confirm(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	u	iam.users := iam.auth_token_use('password_reset', body);
	n	int;
BEGIN
	n := iam.auth_revoke_sessions(u.id, 'password_reset');
	PERFORM iam.auth_activity(u.id, u.org_id, 'password_reset', 'password reset; every session revoked',
							  jsonb_build_object('sessions_revoked', n));
	RETURN ROW(204, NULL, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_password_reset_confirm(jsonb, jsonb) IS
	'POST /auth/password-reset/confirm {token, password}: sets the password with a reset token (single use) and revokes every session of the user; 204';

CREATE FUNCTION iam.api_auth_invitations_create(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	created	iam.api_response;
	u		iam.users;
	org		record;
BEGIN
	IF body ? 'password' THEN
		PERFORM iam.api_error('IA422', 'password: the invited user chooses it', 'Leave password out.');
	END IF;
	created := iam.api_users_create(params, body);
	SELECT * INTO u FROM iam.users WHERE id = (created.body->>'id')::uuid;
	SELECT o.name INTO org FROM iam.organizations o WHERE o.id = u.org_id;
	PERFORM iam.auth_token_issue('invitation', u, interval '7 days',
								 jsonb_build_object('organization', org.name));
	PERFORM iam.auth_activity(me, u.org_id, 'user_invited', 'user invited',
							  jsonb_build_object('invited_user_id', u.id));
	RETURN created;
END
$$;
COMMENT ON FUNCTION iam.api_auth_invitations_create(jsonb, jsonb) IS
	'POST /auth/invitations (users.create): creates the user like POST /users, without a password, and queues an invitation with a single-use token valid seven days; 201 with the user';

CREATE FUNCTION iam.api_auth_invitations_accept(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	u	iam.users := iam.auth_token_use('invitation', body);
BEGIN
	PERFORM iam.auth_activity(u.id, u.org_id, 'invitation_accepted', 'invitation accepted; password set', NULL);
	RETURN ROW(204, NULL, NULL)::iam.api_response;
END
$$;
COMMENT ON FUNCTION iam.api_auth_invitations_accept(jsonb, jsonb) IS
	'POST /auth/invitations/accept {token, password}: sets the invited user''s password with the invitation token (single use); 204, then sign in';

INSERT INTO iam.routes (method, path, handler, permission, read_only, rate_limit_class, authenticated, issues_token,
						query_params, body_schema, summary) VALUES
('POST', '/auth/login', 'iam.api_auth_login(jsonb,jsonb)', NULL, false, 'auth', false, true, '{}',
 '{"type": "object", "additionalProperties": false, "required": ["email", "password"], "properties": {
   "email": {"type": "string", "maxLength": 255},
   "password": {"type": "string", "maxLength": 1024, "writeOnly": true},
   "totp": {"type": "string", "maxLength": 64, "writeOnly": true}}}',
 'Sign in: an access token and a refresh token'),
('POST', '/auth/refresh', 'iam.api_auth_refresh(jsonb,jsonb)', NULL, false, 'auth', false, true, '{}',
 '{"type": "object", "additionalProperties": false, "required": ["refresh_token"], "properties": {
   "refresh_token": {"type": "string", "maxLength": 200, "writeOnly": true}}}',
 'Exchange a refresh token for new tokens (rotation; reuse revokes the session)'),
('POST', '/auth/logout', 'iam.api_auth_logout(jsonb,jsonb)', NULL, false, 'write', true, false, '{}', NULL,
 'Sign out: revoke the bearer token''s session'),
('GET', '/auth/sessions', 'iam.api_auth_sessions_list(jsonb,jsonb)', NULL, true, 'read', true, false, '{}', NULL,
 'The caller''s live sessions'),
('DELETE', '/auth/sessions/{id:uuid}', 'iam.api_auth_sessions_delete(jsonb,jsonb)', NULL, false, 'write', true, false,
 '{}', NULL, 'Revoke a session'),
('POST', '/auth/sessions/revoke-others', 'iam.api_auth_sessions_revoke_others(jsonb,jsonb)', NULL, false, 'write',
 true, false, '{}', NULL, 'Revoke every session of the caller but the current one'),
('POST', '/auth/2fa/setup', 'iam.api_auth_2fa_setup(jsonb,jsonb)', NULL, false, 'auth', true, false, '{}', NULL,
 'Start TOTP setup: the secret and an otpauth URI, shown once'),
('POST', '/auth/2fa/verify', 'iam.api_auth_2fa_verify(jsonb,jsonb)', NULL, false, 'auth', true, false, '{}',
 '{"type": "object", "additionalProperties": false, "required": ["code"], "properties": {
   "code": {"type": "string", "pattern": "^[0-9]{6}$"}}}',
 'Confirm TOTP setup with a code: 2FA on, recovery codes shown once'),
('POST', '/auth/password-reset', 'iam.api_auth_password_reset(jsonb,jsonb)', NULL, false, 'auth', false, false, '{}',
 '{"type": "object", "additionalProperties": false, "required": ["email"], "properties": {
   "email": {"type": "string", "maxLength": 255}}}',
 'Ask for a password-reset message'),
('POST', '/auth/password-reset/confirm', 'iam.api_auth_password_reset_confirm(jsonb,jsonb)', NULL, false, 'auth', false,
 false, '{}',
 '{"type": "object", "additionalProperties": false, "required": ["token", "password"], "properties": {
   "token": {"type": "string", "maxLength": 200, "writeOnly": true},
   "password": {"type": "string", "maxLength": 1024, "writeOnly": true}}}',
 'Set a new password with a reset token; revokes every session'),
('POST', '/auth/invitations', 'iam.api_auth_invitations_create(jsonb,jsonb)', 'users.create', false, 'write', true,
 false, '{}',
 '{"type": "object", "additionalProperties": false, "required": ["email", "name"], "properties": {
   "email": {"type": "string", "format": "email", "maxLength": 255},
   "name": {"type": "string", "minLength": 1, "maxLength": 255},
   "role": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 50, "default": "member"},
   "department": {"type": ["string", "null"], "maxLength": 100}}}',
 'Invite a user by e-mail'),
('POST', '/auth/invitations/accept', 'iam.api_auth_invitations_accept(jsonb,jsonb)', NULL, false, 'auth', false, false,
 '{}',
 '{"type": "object", "additionalProperties": false, "required": ["token", "password"], "properties": {
   "token": {"type": "string", "maxLength": 200, "writeOnly": true},
   "password": {"type": "string", "maxLength": 1024, "writeOnly": true}}}',
 'Accept an invitation: choose a password');

DO $auth_privileges$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
			 WHERE p.pronamespace = 'iam'::regnamespace
			   AND (p.proname LIKE 'auth\_%' OR p.proname LIKE 'api\_auth\_%' OR p.proname LIKE 'totp\_%'
					OR p.proname = 'base32_encode' OR p.proname = 'api_caller')
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
	FOR f IN SELECT r.handler FROM iam.routes r JOIN pg_proc p ON p.oid = r.handler
			 WHERE p.proname LIKE 'api\_auth\_%' LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO iam_gateway', f);
	END LOOP;
END
$auth_privileges$;
